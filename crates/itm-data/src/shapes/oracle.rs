//! The attribute oracle: the best any matcher could do from what the captions state.
//!
//! It scores an image for a caption by the number of stated attributes, relations and counts
//! the scene satisfies, and breaks ties at random. Ranking images for a caption this way is the
//! best one can do from what the caption states: every caption that fits several images equally
//! well costs the oracle too. Ranking captions for an image by the same count favours the
//! longer of the captions wholly true of it, a good heuristic but not a strict bound: a model
//! can edge past the oracle on image → text recall.

use rayon::prelude::*;

use super::caption::Meaning;
use super::scene::Scene;

/// Number of statements of `meaning` that `scene` satisfies.
pub fn satisfied(scene: &Scene, meaning: &Meaning) -> usize {
    let attributes: usize = meaning
        .mentions
        .iter()
        .map(|mention| {
            scene
                .objects
                .iter()
                .map(|object| mention.matched(object))
                .max()
                .unwrap_or(0)
        })
        .sum();
    let relation = meaning.relation.is_some_and(|relation| {
        scene.objects.iter().enumerate().any(|(i, a)| {
            scene.objects.iter().enumerate().any(|(j, b)| {
                i != j
                    && meaning.mentions[0].fits(a)
                    && meaning.mentions[1].fits(b)
                    && relation.holds(a, b)
            })
        })
    });
    let count = meaning.count == Some(scene.objects.len());
    attributes + usize::from(relation) + usize::from(count)
}

/// Number of statements `meaning` makes (the score of an image that satisfies it wholly).
pub fn statements(meaning: &Meaning) -> usize {
    meaning.mentions.iter().map(|m| m.stated()).sum::<usize>()
        + usize::from(meaning.relation.is_some())
        + usize::from(meaning.count.is_some())
}

/// Oracle similarity matrix, row-major `[n_img, n_cap]`: the satisfied statements plus a
/// deterministic tie-breaker in `[0, 0.5)` drawn from `seed`.
pub fn oracle_scores(scenes: &[Scene], meanings: &[Meaning], seed: u64) -> Vec<f32> {
    let n_cap = meanings.len();
    let mut scores = vec![0.0f32; scenes.len() * n_cap];
    scores
        .par_chunks_mut(n_cap.max(1))
        .zip(scenes.par_iter())
        .enumerate()
        .for_each(|(i, (row, scene))| {
            for (j, (score, meaning)) in row.iter_mut().zip(meanings).enumerate() {
                let noise = unit_hash(seed, i as u64, j as u64) * 0.5;
                *score = satisfied(scene, meaning) as f32 + noise as f32;
            }
        });
    scores
}

/// A uniform value in `[0, 1)` from a SplitMix64 hash of its arguments: reproducible and
/// independent of the order in which pairs are visited.
fn unit_hash(seed: u64, i: u64, j: u64) -> f64 {
    let mut z = seed
        .wrapping_add(i.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(j.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shapes::caption::{Mention, Relation};
    use crate::shapes::scene::{Colour, Object, Shape, Size};

    fn object(shape: Shape, colour: Colour, row: usize, col: usize) -> Object {
        Object {
            shape,
            colour,
            size: Size::Small,
            row,
            col,
            cx: 0.0,
            cy: 0.0,
            radius: 1.0,
        }
    }

    #[test]
    fn counts_attributes_relations_and_counts() {
        let scene = Scene {
            objects: vec![
                object(Shape::Circle, Colour::Red, 1, 0),
                object(Shape::Square, Colour::Blue, 1, 2),
            ],
        };
        let red_circle = Mention {
            shape: Some(Shape::Circle),
            colour: Some(Colour::Red),
            ..Default::default()
        };
        let blue_square = Mention {
            shape: Some(Shape::Square),
            colour: Some(Colour::Blue),
            ..Default::default()
        };
        let left = Meaning {
            mentions: vec![red_circle, blue_square],
            relation: Some(Relation::LeftOf),
            count: Some(2),
        };
        assert_eq!(satisfied(&scene, &left), 2 + 2 + 1 + 1);
        assert_eq!(statements(&left), 6);
        let right = Meaning {
            relation: Some(Relation::RightOf),
            count: Some(3),
            ..left
        };
        assert_eq!(satisfied(&scene, &right), 4);
    }

    #[test]
    fn tie_breaker_is_below_one_half_and_reproducible() {
        let values: Vec<f64> = (0..1000).map(|j| unit_hash(7, 3, j)).collect();
        assert!(values.iter().all(|&v| (0.0..1.0).contains(&v)));
        assert_eq!(unit_hash(7, 3, 5), unit_hash(7, 3, 5));
        let mean = values.iter().sum::<f64>() / 1000.0;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }
}
