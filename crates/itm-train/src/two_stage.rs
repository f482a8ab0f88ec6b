//! Two-stage scoring of a split by a fine-grained model: the first stage keeps, per query, the
//! `k` items of the other modality with the highest cosine of set means
//! ([`itm_core::similarity::mean_of_sets`]); the model's head re-scores those `k`
//! ([`ShardedScorer::rerank`]). `itm evaluate --rerank-top K` reports its metrics as a
//! two-stage result, beside (never instead of) the full protocol, which scores every pair.

use std::time::Instant;

use burn::tensor::Device;
use itm_core::VseModel;
use itm_core::eval::{Metrics, Protocol, RetrievalReport, image_to_text, text_to_image};
use itm_core::similarity::{
    BlockedCosine, FeatureSets, FineGrainedSimilarity, QueryModality, ShardedScorer, mean_of_sets,
    top_k_of_row,
};
use itm_data::{CaptionTokenizer, RetrievalSplit};

use crate::TrainError;
use crate::evaluate::encode_sets;

/// The rankings of a two-stage scoring in both directions.
#[derive(Debug, Clone)]
pub struct TwoStageRankings {
    /// Candidates kept by the first stage per query.
    pub k: usize,
    /// The first stage's `[n_img, n_cap]` cosine matrix of set means.
    pub first_stage: Vec<f32>,
    /// Per image, its candidate captions `(caption, head score)`, best first.
    pub image_to_text: Vec<Vec<(usize, f32)>>,
    /// Per caption, its candidate images `(image, head score)`, best first.
    pub text_to_image: Vec<Vec<(usize, f32)>>,
    /// Seconds of the first stage (means, cosine matrix, top k).
    pub first_stage_seconds: f64,
    /// Seconds of the second stage of image → text (the head on the candidates).
    pub image_to_text_seconds: f64,
    /// Seconds of the second stage of text → image.
    pub text_to_image_seconds: f64,
}

/// Ranks every image's captions and every caption's images in two stages: the top `k` by the
/// cosine of set means, re-scored by `method`.
///
/// - `images`: region sets `[n_img, K, D]`; `captions`: word sets `[n_cap, L, D]`
pub fn two_stage_rankings(
    method: &dyn FineGrainedSimilarity,
    images: FeatureSets,
    captions: FeatureSets,
    k: usize,
    device: &Device,
) -> TwoStageRankings {
    let started = Instant::now();
    let (n_img, n_cap) = (images.len(), captions.len());
    let first_stage = BlockedCosine::new(device.clone()).compute(
        &mean_of_sets(images),
        &mean_of_sets(captions),
        images.dim,
    );
    let i2t_candidates: Vec<Vec<usize>> = first_stage
        .chunks(n_cap.max(1))
        .map(|row| top_k_of_row(row, k))
        .collect();
    let t2i_candidates: Vec<Vec<usize>> = (0..n_cap)
        .map(|j| {
            let column: Vec<f32> = (0..n_img).map(|i| first_stage[i * n_cap + j]).collect();
            top_k_of_row(&column, k)
        })
        .collect();
    let first_stage_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let scorer = ShardedScorer::new(device.clone());
    let image_to_text = scorer.rerank(
        method,
        QueryModality::Images,
        images,
        captions,
        &i2t_candidates,
    );
    let image_to_text_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let text_to_image = scorer.rerank(
        method,
        QueryModality::Captions,
        captions,
        images,
        &t2i_candidates,
    );
    TwoStageRankings {
        k,
        first_stage,
        image_to_text,
        text_to_image,
        first_stage_seconds,
        image_to_text_seconds,
        text_to_image_seconds: started.elapsed().as_secs_f64(),
    }
}

/// Which direction a [`two_stage_matrix`] ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Rows (images) rank captions.
    ImageToText,
    /// Columns (captions) rank images.
    TextToImage,
}

/// A `[n_img, n_cap]` matrix whose order, per row (image → text) or per column (text → image),
/// is the two-stage ranking: the candidates by their head scores (the values kept), above every
/// other item, those in their first-stage order (`first - 3 + lowest head score`: below the
/// lowest candidate by at least 2, since a cosine is at most 1).
pub fn two_stage_matrix(rankings: &TwoStageRankings, direction: Direction) -> Vec<f32> {
    let first = &rankings.first_stage;
    let (lists, n_queries) = match direction {
        Direction::ImageToText => (&rankings.image_to_text, rankings.image_to_text.len()),
        Direction::TextToImage => (&rankings.text_to_image, rankings.text_to_image.len()),
    };
    let n_other = first.len() / n_queries.max(1);
    let (n_img, n_cap) = match direction {
        Direction::ImageToText => (n_queries, n_other),
        Direction::TextToImage => (n_other, n_queries),
    };
    let at = |query: usize, item: usize| match direction {
        Direction::ImageToText => query * n_cap + item,
        Direction::TextToImage => item * n_cap + query,
    };
    let mut matrix = vec![0.0f32; n_img * n_cap];
    for (query, list) in lists.iter().enumerate() {
        let lowest = list.iter().map(|&(_, s)| s).fold(f32::INFINITY, f32::min);
        for item in 0..n_other {
            matrix[at(query, item)] = first[at(query, item)] - 3.0 + lowest;
        }
        for &(item, score) in list {
            matrix[at(query, item)] = score;
        }
    }
    matrix
}

/// A two-stage evaluation: metrics and what produced them.
#[derive(Debug, Clone)]
pub struct TwoStageReport {
    /// Metrics of the two-stage rankings (one fold).
    pub report: RetrievalReport,
    /// Candidates re-scored per query.
    pub k: usize,
    /// Pairs the head scored (`n_img · min(k, n_cap) + n_cap · min(k, n_img)`).
    pub pairs_rescored: usize,
    /// Seconds of the first stage.
    pub first_stage_seconds: f64,
    /// Seconds of the second stage.
    pub second_stage_seconds: f64,
}

/// Encodes `split` and evaluates the two-stage rankings of its fine-grained `model` with
/// `protocol` (whole-matrix protocols only: the first stage would have to be chosen per fold
/// for COCO 1K). Fails for a cosine model (its first stage is its head already), for a
/// multi-grained one (the second stage scores sets alone), for COCO 1K,
/// for `k = 0`, and on a non-finite head score.
pub fn evaluate_split_two_stage(
    model: &VseModel,
    split: &RetrievalSplit,
    tokenizer: &CaptionTokenizer,
    device: &Device,
    protocol: Protocol,
    k: usize,
) -> Result<TwoStageReport, TrainError> {
    let Some(method) = model.fine_grained() else {
        return Err(TrainError::config(
            "rerank_top",
            "the model is scored by the cosine of pooled embeddings, which is its first stage \
             already: evaluate it without re-ranking",
        ));
    };
    if model.has_global() {
        return Err(TrainError::config(
            "rerank_top",
            "the model's head adds the cosine of its pooled embeddings to a set score (a \
             multi-grained head), and the second stage re-scores sets alone: evaluate it \
             without re-ranking",
        ));
    }
    if protocol == Protocol::Coco1k {
        return Err(TrainError::config(
            "rerank_top",
            "two-stage evaluation scores the whole matrix (flickr30k or coco5k), not COCO's five \
             folds",
        ));
    }
    if k == 0 {
        return Err(TrainError::config("rerank_top", "must be at least 1"));
    }
    let (images, captions) = encode_sets(model, split, tokenizer, device)?;
    let rankings = two_stage_rankings(method, images.sets(), captions.sets(), k, device);
    let lists = rankings.image_to_text.iter().enumerate();
    for (image, list) in lists {
        if let Some(&(caption, value)) = list.iter().find(|(_, s)| !s.is_finite()) {
            return Err(TrainError::NonFiniteScores {
                image,
                caption,
                value,
            });
        }
    }
    let i2t = image_to_text(
        &two_stage_matrix(&rankings, Direction::ImageToText),
        split.n_images(),
        &split.caption_image,
    );
    let t2i = text_to_image(
        &two_stage_matrix(&rankings, Direction::TextToImage),
        split.n_images(),
        &split.caption_image,
    );
    let metrics = Metrics::from_directions(&i2t, &t2i);
    let (n_img, n_cap) = (split.n_images(), split.captions.len());
    Ok(TwoStageReport {
        report: RetrievalReport {
            protocol,
            metrics,
            folds: vec![metrics],
        },
        k,
        pairs_rescored: n_img * k.min(n_cap) + n_cap * k.min(n_img),
        first_stage_seconds: rankings.first_stage_seconds,
        second_stage_seconds: rankings.image_to_text_seconds + rankings.text_to_image_seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The matrix keeps the candidates' head scores and puts every other item below the lowest
    /// candidate, in first-stage order.
    #[test]
    fn the_matrix_ranks_candidates_first() {
        // 2 images × 3 captions.
        let rankings = TwoStageRankings {
            k: 1,
            first_stage: vec![0.9, 0.1, 0.5, 0.2, 0.8, 0.3],
            image_to_text: vec![vec![(0, -4.0)], vec![(1, 7.0)]],
            text_to_image: vec![vec![(1, 2.0)], vec![(1, 0.5)], vec![(0, -0.5)]],
            first_stage_seconds: 0.0,
            image_to_text_seconds: 0.0,
            text_to_image_seconds: 0.0,
        };
        let i2t = two_stage_matrix(&rankings, Direction::ImageToText);
        // Row 0: caption 0 kept at -4; captions 1 and 2 below it, 2 above 1 (0.5 > 0.1).
        assert_eq!(i2t[0], -4.0);
        assert!(i2t[2] < -4.0 && i2t[1] < i2t[2]);
        // Row 1: caption 1 at 7, the others at least 2 below it.
        assert_eq!(i2t[4], 7.0);
        assert!(i2t[3] <= 7.0 - 2.0 && i2t[5] <= 7.0 - 2.0 && i2t[5] > i2t[3]);
        let t2i = two_stage_matrix(&rankings, Direction::TextToImage);
        // Column 0: image 1 at 2.0, image 0 below; column 2: image 0 at -0.5, image 1 below.
        assert_eq!((t2i[3], t2i[2]), (2.0, -0.5));
        assert!(t2i[0] <= 2.0 - 2.0 && t2i[5] <= -0.5 - 2.0);
    }
}
