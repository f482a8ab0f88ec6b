//! Ranks of the ground truth in a similarity matrix, by counting competitors (METHODS §6).
//!
//! A competitor is ahead of the ground truth when its score is **greater than or equal to** the
//! ground truth's: ties count against the ground truth (pessimistic), so a collapsed model whose
//! scores are all equal ranks every query last instead of first. On a tie-free matrix this is the
//! rank of the published argsort code; with ties, the order argsort gives is arbitrary. A NaN
//! ground truth ranks last and a NaN competitor counts as ahead (both pessimistic).
//!
//! Each query costs O(n) (no sort), and queries run in parallel. Besides the ranks, every
//! direction reports how many of its queries had a competitor tied with the ground truth.

use rayon::prelude::*;

/// The 0-based ranks of one direction's queries and how many of them tie at the ground truth.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ranks {
    /// Per query, the number of competitors scored at least as high as its ground truth.
    pub ranks: Vec<usize>,
    /// The number of queries with a competitor whose score equals the ground truth's.
    pub ties: usize,
}

/// Image → text: for image `i`, the 0-based rank of its best-placed caption in row `i`.
///
/// The image's own captions are not competitors of each other: the best of them is the ground
/// truth, and only the other images' captions can be ahead of it.
///
/// - `scores`: row-major `[n_img, n_cap]`
/// - `caption_image[j]`: the image caption `j` describes (every image needs one caption)
pub fn image_to_text(scores: &[f32], n_img: usize, caption_image: &[usize]) -> Ranks {
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
    let per_query: Vec<(usize, bool)> = scores
        .par_chunks(n_cap.max(1))
        .zip(captions_of.par_iter())
        .map(|(row, truth)| {
            assert!(!truth.is_empty(), "an image has no caption");
            let best = truth
                .iter()
                .map(|&c| row[c])
                .reduce(|a, b| {
                    if a.is_nan() || b.is_nan() {
                        f32::NAN
                    } else {
                        a.max(b)
                    }
                })
                .expect("checked non-empty");
            let at_least = row.iter().filter(|&&s| ahead_or_tied(s, best)).count();
            let above = row.iter().filter(|&&s| strictly_ahead(s, best)).count();
            let own = truth
                .iter()
                .filter(|&&c| ahead_or_tied(row[c], best))
                .count();
            let rank = at_least - own;
            (rank, rank > above)
        })
        .collect();
    collect(per_query)
}

/// Text → image: for caption `j`, the 0-based rank of its image in column `j`.
///
/// - `scores`: row-major `[n_img, n_cap]`
/// - `caption_image[j]`: the image caption `j` describes
pub fn text_to_image(scores: &[f32], n_img: usize, caption_image: &[usize]) -> Ranks {
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
    // Walk the matrix row by row (cache friendly), counting per column in parallel chunks:
    // `at_least` counts rows scored ≥ the truth (the truth's own row included), `equal` rows
    // scored exactly the truth (its own row included).
    const CHUNK: usize = 1024;
    let mut at_least = vec![0u32; n_cap];
    let mut equal = vec![0u32; n_cap];
    at_least
        .par_chunks_mut(CHUNK)
        .zip(equal.par_chunks_mut(CHUNK))
        .enumerate()
        .for_each(|(chunk, (at_least, equal))| {
            let start = chunk * CHUNK;
            let truth = &truth[start..start + at_least.len()];
            for row in scores.chunks(n_cap) {
                let row = &row[start..start + at_least.len()];
                for (((ge, eq), &s), &t) in at_least
                    .iter_mut()
                    .zip(equal.iter_mut())
                    .zip(row)
                    .zip(truth)
                {
                    *ge += u32::from(ahead_or_tied(s, t));
                    *eq += u32::from(s == t);
                }
            }
        });
    let per_query = at_least
        .iter()
        .zip(&equal)
        .map(|(&ge, &eq)| ((ge as usize).saturating_sub(1), eq > 1))
        .collect();
    collect(per_query)
}

/// Both directions in one pass over the matrix: `(image → text, text → image)`, equal to
/// [`image_to_text`] and [`text_to_image`].
///
/// Rows are read once, in parallel blocks (our design): each row gives its image's rank and adds
/// to per-caption counters, which the blocks then sum. The two separate functions read the
/// matrix twice, the second time by column chunks; at COCO 5K (500 MB of scores) reading it once
/// is what counts.
///
/// - `scores`: row-major `[n_img, n_cap]`
/// - `caption_image[j]`: the image caption `j` describes (every image needs one caption)
pub fn both_directions(scores: &[f32], n_img: usize, caption_image: &[usize]) -> (Ranks, Ranks) {
    let n_cap = caption_image.len();
    assert_eq!(scores.len(), n_img * n_cap, "scores must be [n_img, n_cap]");
    let mut captions_of = vec![Vec::new(); n_img];
    let mut truth = Vec::with_capacity(n_cap);
    for (caption, &image) in caption_image.iter().enumerate() {
        assert!(
            image < n_img,
            "caption {caption} points at image {image} of {n_img}"
        );
        captions_of[image].push(caption);
        truth.push(scores[image * n_cap + caption]);
    }
    if n_cap == 0 {
        assert!(n_img == 0, "an image has no caption");
        return (collect(Vec::new()), collect(Vec::new()));
    }
    /// Rows per parallel item.
    const ROWS: usize = 32;
    /// What a run of consecutive rows found: each row's (rank, tied), and per caption the
    /// rows scored ≥ / = its truth. Rayon folds items into a few of these (one per split of
    /// the work) and reduces them in row order.
    struct Partial {
        rows: Vec<(usize, bool)>,
        at_least: Vec<u32>,
        equal: Vec<u32>,
    }
    let empty = || Partial {
        rows: Vec::new(),
        at_least: vec![0; n_cap],
        equal: vec![0; n_cap],
    };
    let Partial {
        rows: i2t,
        at_least,
        equal,
    } = scores
        .par_chunks(ROWS * n_cap)
        .zip(captions_of.par_chunks(ROWS))
        .fold(empty, |mut partial, (rows, owners)| {
            for (row, own) in rows.chunks(n_cap).zip(owners) {
                assert!(!own.is_empty(), "an image has no caption");
                let best = own
                    .iter()
                    .map(|&c| row[c])
                    .reduce(|a, b| {
                        if a.is_nan() || b.is_nan() {
                            f32::NAN
                        } else {
                            a.max(b)
                        }
                    })
                    .expect("checked non-empty");
                let (mut at_least, mut above) = (0usize, 0usize);
                for (((&s, &t), ge), eq) in row
                    .iter()
                    .zip(&truth)
                    .zip(partial.at_least.iter_mut())
                    .zip(partial.equal.iter_mut())
                {
                    at_least += usize::from(ahead_or_tied(s, best));
                    above += usize::from(strictly_ahead(s, best));
                    *ge += u32::from(ahead_or_tied(s, t));
                    *eq += u32::from(s == t);
                }
                let own_ahead = own.iter().filter(|&&c| ahead_or_tied(row[c], best)).count();
                let rank = at_least - own_ahead;
                partial.rows.push((rank, rank > above));
            }
            partial
        })
        .reduce(empty, |mut left, right| {
            left.rows.extend(right.rows);
            for (sum, count) in left.at_least.iter_mut().zip(&right.at_least) {
                *sum += count;
            }
            for (sum, count) in left.equal.iter_mut().zip(&right.equal) {
                *sum += count;
            }
            left
        });
    let t2i = at_least
        .iter()
        .zip(&equal)
        .map(|(&ge, &eq)| ((ge as usize).saturating_sub(1), eq > 1))
        .collect();
    (collect(i2t), collect(t2i))
}

/// Whether a competitor scored `s` is ahead of a ground truth scored `truth` or tied with it:
/// `s >= truth` for numbers, and `true` when either is NaN (pessimistic).
fn ahead_or_tied(s: f32, truth: f32) -> bool {
    s.partial_cmp(&truth) != Some(std::cmp::Ordering::Less)
}

/// Whether `s` is strictly ahead of `truth`, or either is NaN.
fn strictly_ahead(s: f32, truth: f32) -> bool {
    !matches!(
        s.partial_cmp(&truth),
        Some(std::cmp::Ordering::Less | std::cmp::Ordering::Equal)
    )
}

/// [`image_to_text`]'s ranks alone.
pub fn image_to_text_ranks(scores: &[f32], n_img: usize, caption_image: &[usize]) -> Vec<usize> {
    image_to_text(scores, n_img, caption_image).ranks
}

/// [`text_to_image`]'s ranks alone.
pub fn text_to_image_ranks(scores: &[f32], n_img: usize, caption_image: &[usize]) -> Vec<usize> {
    text_to_image(scores, n_img, caption_image).ranks
}

fn collect(per_query: Vec<(usize, bool)>) -> Ranks {
    let ties = per_query.iter().filter(|(_, tied)| *tied).count();
    Ranks {
        ranks: per_query.into_iter().map(|(rank, _)| rank).collect(),
        ties,
    }
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
        assert_eq!(image_to_text(&scores, 2, &captions).ties, 0);
        assert_eq!(text_to_image(&scores, 2, &captions).ties, 0);
    }

    #[test]
    fn ties_count_against_the_ground_truth() {
        let scores = [0.5, 0.5, 0.5, 0.5];
        let captions = [0, 1];
        assert_eq!(
            image_to_text(&scores, 2, &captions),
            Ranks {
                ranks: vec![1, 1],
                ties: 2
            }
        );
        assert_eq!(
            text_to_image(&scores, 2, &captions),
            Ranks {
                ranks: vec![1, 1],
                ties: 2
            }
        );
    }

    #[test]
    fn one_tie_at_the_truth_in_each_direction() {
        // Three images, two captions each (0,1 → 0; 2,3 → 1; 4,5 → 2).
        let scores = [
            0.9, 0.2, 0.9, 0.1, 0.3, 0.0, // image 0: truth 0.9 tied by caption 2 → rank 1
            0.1, 0.15, 0.7, 0.6, 0.5, 0.35, // image 1: truth 0.7, nothing ≥ → rank 0
            0.2, 0.3, 0.1, 0.6, 0.8, 0.4, // image 2: truth 0.8, nothing ≥ → rank 0
        ];
        let captions = [0, 0, 1, 1, 2, 2];
        let i2t = image_to_text(&scores, 3, &captions);
        assert_eq!(i2t.ranks, vec![1, 0, 0]);
        assert_eq!(i2t.ties, 1);
        // Column 3: truth (image 1) 0.6 tied by image 2's 0.6 → rank 1; columns 1 and 2: one
        // competitor strictly above → rank 1, no tie; columns 0, 4, 5: rank 0.
        let t2i = text_to_image(&scores, 3, &captions);
        assert_eq!(t2i.ranks, vec![0, 1, 1, 1, 0, 0]);
        assert_eq!(t2i.ties, 1);
    }

    #[test]
    fn own_captions_are_not_competitors() {
        // Image 0's two captions tie with each other: that is no tie at the truth.
        let scores = [0.9, 0.9, 0.1, 0.2, 0.2, 0.8];
        let captions = [0, 0, 1];
        let i2t = image_to_text(&scores, 2, &captions);
        assert_eq!(i2t.ranks, vec![0, 0]);
        assert_eq!(i2t.ties, 0);
    }

    #[test]
    fn one_pass_equals_the_two_directions() {
        use rand::{Rng, SeedableRng, rngs::StdRng};
        let mut rng = StdRng::seed_from_u64(7);
        // Coarse scores (many ties), a few NaNs, ragged captions per image, and more rows than
        // one parallel block.
        for (n_img, per_image) in [(1, 1), (3, 2), (70, 5), (101, 3)] {
            let caption_image: Vec<usize> = (0..n_img * per_image).map(|j| j / per_image).collect();
            let n_cap = caption_image.len();
            let scores: Vec<f32> = (0..n_img * n_cap)
                .map(|_| match rng.random_range(0..50) {
                    0 => f32::NAN,
                    _ => rng.random_range(0..8) as f32 * 0.125,
                })
                .collect();
            let (i2t, t2i) = both_directions(&scores, n_img, &caption_image);
            assert_eq!(i2t, image_to_text(&scores, n_img, &caption_image));
            assert_eq!(t2i, text_to_image(&scores, n_img, &caption_image));
        }
        let (i2t, t2i) = both_directions(&[], 0, &[]);
        assert!(i2t.ranks.is_empty() && t2i.ranks.is_empty());
    }

    #[test]
    fn nan_ranks_last() {
        let scores = [f32::NAN, 0.1, 0.2, 0.3, 0.9, 0.4];
        let captions = [0, 1, 1];
        // Image 0's truth is NaN: both other captions count as ahead.
        assert_eq!(image_to_text_ranks(&scores, 2, &captions), vec![2, 0]);
        // Caption 0's truth is NaN: image 1 counts as ahead.
        assert_eq!(text_to_image_ranks(&scores, 2, &captions)[0], 1);
    }
}
