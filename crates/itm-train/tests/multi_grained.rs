//! The `aahr` entry's multi-grained head through evaluation: the score matrix of a split (what
//! `itm evaluate` and training validation compute) is the blocked cosine matrix of the pooled
//! embeddings plus `w` times the sharded CHAN matrix of the sets, each computed on its own by
//! the same weights under a single-part head; the batch scores of training agree with it.

use burn::tensor::Device;
use itm_core::VseModel;
use itm_core::encoders::{
    GruTextEncoderConfig, ImageEncoderConfig, RegionEncoderConfig, TextEncoderConfig,
};
use itm_core::models::{CosineHead, SimilarityHead};
use itm_core::similarity::ChanConfig;
use itm_test_support::{shapes, word_tokenizer};
use itm_train::zoo::{self, Pieces};
use itm_train::{Towers, score_split};

#[test]
fn the_split_matrix_is_global_plus_weighted_local() {
    let data = shapes(21, [60, 0, 12], 16, 6);
    let (vocab, tokenizer) = word_tokenizer(&data);
    let device = Device::flex();
    device.seed(4);
    let weight = 0.7;
    let config = zoo::lookup("aahr").unwrap().model_with(
        ImageEncoderConfig::Regions(RegionEncoderConfig::new(16, 32)),
        TextEncoderConfig::Gru(GruTextEncoderConfig::new(vocab.len(), 32).with_d_word(8)),
        Towers::System,
        Pieces {
            instance_relation: true,
            local_weight: Some(weight),
        },
    );
    // Evaluation reads the model as training leaves it (batch norm with its running stats).
    let model = config.init(&device);
    let test = &data.test.retrieval;
    let combined = score_split(&model, test, &tokenizer, &device, true).unwrap();
    let global_model = VseModel {
        similarity: SimilarityHead::Cosine(CosineHead),
        ..model.clone()
    };
    let local_model = VseModel {
        similarity: SimilarityHead::Chan(ChanConfig::new().init()),
        ..model.clone()
    };
    let global = score_split(&global_model, test, &tokenizer, &device, true).unwrap();
    let local = score_split(&local_model, test, &tokenizer, &device, true).unwrap();
    assert_eq!(combined.len(), 12 * 60);
    let mut worst = 0.0f32;
    for ((c, g), l) in combined.iter().zip(&global).zip(&local) {
        worst = worst.max((c - (g + weight as f32 * l)).abs());
    }
    eprintln!("split matrix vs global + w · local: largest difference {worst:e}");
    assert!(worst <= 1e-6, "split matrix vs global + w · local: {worst}");
    // The local part moves the scores (it is not zero), and it is weighted.
    assert!(local.iter().zip(&global).any(|(l, g)| (l - g).abs() > 1e-3));

    // Training's batch scores of the whole split (one batch) are the same matrix.
    let indices: Vec<usize> = (0..test.n_images()).collect();
    let batch = test
        .images
        .prefetch(vec![indices], None, 1)
        .into_iter()
        .next()
        .unwrap()
        .unwrap();
    let ids = tokenizer.encode_all(&test.captions).unwrap();
    let refs: Vec<&[i64]> = ids.iter().map(Vec::as_slice).collect();
    let tokens = itm_data::TokenBatch::pad(&refs);
    let scores = model.batch_scores(
        batch.to_input(&device),
        tokens.to_tensor(&device),
        &tokens.lengths,
    );
    let scores = scores.into_data().try_into_vec::<f32>().unwrap();
    let worst = scores
        .iter()
        .zip(&combined)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    eprintln!("batch scores vs split matrix: largest difference {worst:e}");
    assert!(worst <= 1e-5, "batch scores vs split matrix: {worst}");
}
