//! Two-stage evaluation of fine-grained models: with `k` covering every item, the two-stage
//! rankings are the head's exhaustive rankings, so the metrics equal the full protocol's; with a
//! small `k`, only the first stage's top `k` can be found by the head, and the result is
//! reported with the pairs it re-scored. Refusals: a cosine model, a multi-grained one, COCO 1K,
//! `k = 0`.

use burn::tensor::Device;
use itm_core::VseModelConfig;
use itm_core::eval::{Protocol, evaluate};
use itm_core::models::SimilarityConfig;
use itm_core::similarity::{COSINE_CHAN, HEADS, Head};
use itm_test_support::{shapes, word_tokenizer};
use itm_train::{
    Direction, evaluate_split, evaluate_split_two_stage, score_split, two_stage_matrix,
    two_stage_rankings,
};

#[test]
fn covering_every_item_gives_the_full_protocol() {
    let device = Device::flex();
    device.seed(4);
    let data = shapes(21, [20, 10, 12], 16, 6);
    let (vocab, tokenizer) = word_tokenizer(&data);
    let test = &data.test.retrieval;
    let (n_img, n_cap) = (test.n_images(), test.captions.len());
    let d = 16;
    // A multi-grained head is refused (its second stage would score sets alone).
    let multi = VseModelConfig::vse_infinity_bigru_sized(16, vocab.len(), d, 12)
        .with_similarity(COSINE_CHAN.config(d))
        .init(&device);
    let refused =
        evaluate_split_two_stage(&multi, test, &tokenizer, &device, Protocol::Flickr30k, 2);
    let Err(error) = refused else {
        panic!("a multi-grained model is refused")
    };
    let message = error.to_string();
    assert!(message.contains("multi-grained"), "{message}");
    for head in HEADS
        .iter()
        .filter(|head| !head.is_cosine() && !head.adds_global() && !head.reads_levels())
    {
        let config = VseModelConfig::vse_infinity_bigru_sized(16, vocab.len(), d, 12)
            .with_similarity(head.config(d));
        assert!(!matches!(config.similarity, SimilarityConfig::Cosine));
        let model = config.init(&device);
        let full =
            evaluate_split(&model, test, &tokenizer, &device, Protocol::Flickr30k, true).unwrap();
        let two = evaluate_split_two_stage(
            &model,
            test,
            &tokenizer,
            &device,
            Protocol::Flickr30k,
            n_cap,
        )
        .unwrap();
        assert_eq!(two.report.metrics, full.metrics, "{}", head.name());
        assert_eq!(two.pairs_rescored, 2 * n_img * n_cap);

        // k = 2: at most the first stage's top 2 per query can be ranked by the head; the
        // matrices rank those first, in the head's order, with the head's scores.
        let small =
            evaluate_split_two_stage(&model, test, &tokenizer, &device, Protocol::Flickr30k, 2)
                .unwrap();
        assert_eq!(small.pairs_rescored, n_img * 2 + n_cap * 2);
        let scores = score_split(&model, test, &tokenizer, &device, true).unwrap();
        let (images, captions) = itm_train::encode_sets(&model, test, &tokenizer, &device).unwrap();
        let method = model.fine_grained().unwrap();
        let rankings = two_stage_rankings(method, images.sets(), captions.sets(), 2, &device);
        for (i, list) in rankings.image_to_text.iter().enumerate() {
            assert_eq!(list.len(), 2);
            assert!(list[0].1 >= list[1].1);
            for &(j, score) in list {
                assert!(
                    (score - scores[i * n_cap + j]).abs() < 1e-4,
                    "{}",
                    head.name()
                );
            }
        }
        let matrix = two_stage_matrix(&rankings, Direction::TextToImage);
        let report = evaluate(&matrix, n_img, &test.caption_image, Protocol::Flickr30k);
        assert_eq!(report.metrics.t2i_recall, small.report.metrics.t2i_recall);
    }
}

#[test]
fn refusals_name_the_setting() {
    let device = Device::flex();
    let data = shapes(21, [20, 10, 10], 16, 6);
    let (vocab, tokenizer) = word_tokenizer(&data);
    let test = &data.test.retrieval;
    let cosine = VseModelConfig::vse_infinity_bigru_sized(16, vocab.len(), 16, 12).init(&device);
    let err = evaluate_split_two_stage(&cosine, test, &tokenizer, &device, Protocol::Flickr30k, 5)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("rerank_top") && err.contains("cosine"),
        "{err}"
    );
    let head = HEADS.iter().find(|head| !head.is_cosine()).unwrap();
    let scan = VseModelConfig::vse_infinity_bigru_sized(16, vocab.len(), 16, 12)
        .with_similarity(head.config(16))
        .init(&device);
    let err = evaluate_split_two_stage(&scan, test, &tokenizer, &device, Protocol::Coco1k, 5)
        .unwrap_err()
        .to_string();
    assert!(err.contains("folds"), "{err}");
    let err = evaluate_split_two_stage(&scan, test, &tokenizer, &device, Protocol::Flickr30k, 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least 1"), "{err}");
}
