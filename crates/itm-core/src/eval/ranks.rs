//! Ranks of the ground truth in a similarity matrix, by counting competitors.
//!
//! A competitor is ahead of the ground truth only if its score is **strictly greater**: ties
//! count in the ground truth's favour. Each query costs O(n) (no sort), and queries run in
//! parallel.

use rayon::prelude::*;

/// Image → text: for image `i`, the 0-based rank of its best-placed caption in row `i`.
///
/// - `scores`: row-major `[n_img, n_cap]`
/// - `caption_image[j]`: the image caption `j` describes (every image needs one caption)
pub fn image_to_text_ranks(scores: &[f32], n_img: usize, caption_image: &[usize]) -> Vec<usize> {
    let n_cap = caption_image.len();
    assert_eq!(scores.len(), n_img * n_cap, "scores must be [n_img, n_cap]");
    let mut captions_of = vec![Vec::new(); n_img];
    for (caption, &image) in caption_image.iter().enumerate() {
        assert!(
            image < n_img,
            "caption {caption} points at image {image} of {n_img}"
        );
        captions_of[image].push(caption);
    }
    scores
        .par_chunks(n_cap.max(1))
        .zip(captions_of.par_iter())
        .map(|(row, truth)| {
            assert!(!truth.is_empty(), "an image has no caption");
            let best = truth
                .iter()
                .map(|&c| row[c])
                .fold(f32::NEG_INFINITY, f32::max);
            row.iter().filter(|&&s| s > best).count()
        })
        .collect()
}

/// Text → image: for caption `j`, the 0-based rank of its image in column `j`.
///
/// - `scores`: row-major `[n_img, n_cap]`
/// - `caption_image[j]`: the image caption `j` describes
pub fn text_to_image_ranks(scores: &[f32], n_img: usize, caption_image: &[usize]) -> Vec<usize> {
    let n_cap = caption_image.len();
    assert_eq!(scores.len(), n_img * n_cap, "scores must be [n_img, n_cap]");
    let truth: Vec<f32> = caption_image
        .iter()
        .enumerate()
        .map(|(caption, &image)| {
            assert!(
                image < n_img,
                "caption {caption} points at image {image} of {n_img}"
            );
            scores[image * n_cap + caption]
        })
        .collect();
    // Walk the matrix row by row (cache friendly), counting per column in parallel chunks.
    const CHUNK: usize = 1024;
    let mut ranks = vec![0usize; n_cap];
    ranks
        .par_chunks_mut(CHUNK)
        .enumerate()
        .for_each(|(chunk, counts)| {
            let start = chunk * CHUNK;
            let truth = &truth[start..start + counts.len()];
            for row in scores.chunks(n_cap) {
                let row = &row[start..start + counts.len()];
                for ((count, &s), &t) in counts.iter_mut().zip(row).zip(truth) {
                    *count += usize::from(s > t);
                }
            }
        });
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_worked_two_images() {
        // Two images, two captions each: captions 0,1 → image 0; 2,3 → image 1.
        let scores = [
            0.1, 0.9, 0.5, 0.2, // image 0: best truth 0.9, nothing above → rank 0
            0.8, 0.3, 0.4, 0.1, // image 1: best truth 0.4, above it 0.8 → rank 1
        ];
        let captions = [0, 0, 1, 1];
        assert_eq!(image_to_text_ranks(&scores, 2, &captions), vec![0, 1]);
        // Columns: c0 truth 0.1 vs 0.8 → 1; c1 0.9 → 0; c2 0.4 vs 0.5 → 1; c3 0.1 vs 0.2 → 1.
        assert_eq!(text_to_image_ranks(&scores, 2, &captions), vec![1, 0, 1, 1]);
    }

    #[test]
    fn ties_favour_the_ground_truth() {
        let scores = [0.5, 0.5, 0.5, 0.5];
        let captions = [0, 1];
        assert_eq!(image_to_text_ranks(&scores, 2, &captions), vec![0, 0]);
        assert_eq!(text_to_image_ranks(&scores, 2, &captions), vec![0, 0]);
    }
}
