//! Synthetic detector features: what a bottom-up-attention detector would give for a scene.
//!
//! Every region has an attribute code (shape, colour, size, grid cell, box, objectness or
//! background) that a fixed seeded random projection maps to `d_feature` channels; Gaussian
//! noise and a ReLU follow, so features are non-negative like pooled CNN activations.

use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::scene::{Colour, GRID, IMAGE_SIZE, Object, Scene, Shape, Size};

/// Width of the attribute code of a region.
pub const CODE_WIDTH: usize =
    Shape::ALL.len() + Colour::ALL.len() + Size::ALL.len() + 2 * GRID + 4 + 2;

/// How region features are synthesised.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionFeatureConfig {
    /// Channels per region (2048 like BUTD, smaller for speed).
    pub d_feature: usize,
    /// Regions per image (objects, object parts, then background up to this count).
    pub n_regions: usize,
    /// Standard deviation of the Gaussian noise added before the ReLU.
    pub noise: f32,
}

impl Default for RegionFeatureConfig {
    fn default() -> Self {
        Self {
            d_feature: 2048,
            n_regions: 12,
            noise: 1.0,
        }
    }
}

/// The fixed random projection `[CODE_WIDTH, d_feature]` shared by every split.
#[derive(Debug, Clone)]
pub struct RegionProjection {
    weights: Vec<f32>,
    d_feature: usize,
}

impl RegionProjection {
    /// Draws the projection from `seed`.
    pub fn new(d_feature: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let weights = (0..CODE_WIDTH * d_feature)
            .map(|_| StandardNormal.sample(&mut rng))
            .collect();
        Self { weights, d_feature }
    }

    fn project(&self, code: &[f32; CODE_WIDTH], noise: f32, rng: &mut impl Rng, out: &mut [f32]) {
        for (channel, value) in out.iter_mut().enumerate() {
            let mut sum = 0.0;
            for (k, &c) in code.iter().enumerate() {
                if c != 0.0 {
                    sum += c * self.weights[k * self.d_feature + channel];
                }
            }
            let jitter: f32 = StandardNormal.sample(rng);
            *value = (sum + noise * jitter).max(0.0);
        }
    }
}

fn one_hot(code: &mut [f32; CODE_WIDTH], offset: usize, index: usize, value: f32) {
    code[offset + index] = value;
}

/// Attribute code of a whole object (`strength` 1) or of a part of it (`strength` < 1).
fn object_code(object: &Object, strength: f32, box_scale: f32) -> [f32; CODE_WIDTH] {
    let mut code = [0.0; CODE_WIDTH];
    let shape = Shape::ALL
        .iter()
        .position(|&s| s == object.shape)
        .unwrap_or(0);
    let colour = Colour::ALL
        .iter()
        .position(|&c| c == object.colour)
        .unwrap_or(0);
    let size = Size::ALL
        .iter()
        .position(|&s| s == object.size)
        .unwrap_or(0);
    let mut offset = 0;
    one_hot(&mut code, offset, shape, strength);
    offset += Shape::ALL.len();
    one_hot(&mut code, offset, colour, strength);
    offset += Colour::ALL.len();
    one_hot(&mut code, offset, size, strength);
    offset += Size::ALL.len();
    one_hot(&mut code, offset, object.row, 1.0);
    offset += GRID;
    one_hot(&mut code, offset, object.col, 1.0);
    offset += GRID;
    let side = IMAGE_SIZE as f32;
    let extent = 2.0 * object.radius * box_scale / side;
    code[offset..offset + 4].copy_from_slice(&[object.cx / side, object.cy / side, extent, extent]);
    code[offset + 4] = strength; // objectness
    code
}

/// Attribute code of a background region with a random box.
fn background_code(rng: &mut impl Rng) -> [f32; CODE_WIDTH] {
    let mut code = [0.0; CODE_WIDTH];
    let offset = CODE_WIDTH - 6;
    for value in &mut code[offset..offset + 4] {
        *value = rng.random_range(0.0..1.0);
    }
    code[CODE_WIDTH - 1] = 1.0; // background
    code
}

/// Region features `[n_regions, d_feature]` of one scene, in a random order.
pub fn scene_regions(
    scene: &Scene,
    projection: &RegionProjection,
    config: &RegionFeatureConfig,
    rng: &mut impl Rng,
) -> Vec<f32> {
    let mut codes: Vec<[f32; CODE_WIDTH]> = scene
        .objects
        .iter()
        .map(|object| object_code(object, 1.0, 1.0))
        .collect();
    for object in &scene.objects {
        if rng.random_bool(0.5) {
            codes.push(object_code(object, 0.5, 0.5));
        }
    }
    codes.truncate(config.n_regions);
    while codes.len() < config.n_regions {
        codes.push(background_code(rng));
    }
    codes.shuffle(rng);
    let mut features = vec![0.0f32; config.n_regions * config.d_feature];
    for (code, out) in codes.iter().zip(features.chunks_mut(config.d_feature)) {
        projection.project(code, config.noise, rng, out);
    }
    features
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_non_negative_and_shaped() {
        let mut rng = StdRng::seed_from_u64(1);
        let config = RegionFeatureConfig {
            d_feature: 16,
            n_regions: 6,
            noise: 0.5,
        };
        let projection = RegionProjection::new(16, 9);
        let scene = Scene::random(&mut rng);
        let features = scene_regions(&scene, &projection, &config, &mut rng);
        assert_eq!(features.len(), 6 * 16);
        assert!(features.iter().all(|&v| v >= 0.0 && v.is_finite()));
        assert!(features.iter().any(|&v| v > 0.0));
    }

    #[test]
    fn same_attributes_give_close_features() {
        let config = RegionFeatureConfig {
            d_feature: 64,
            n_regions: 1,
            noise: 0.0,
        };
        let projection = RegionProjection::new(64, 3);
        let mut rng = StdRng::seed_from_u64(2);
        let scene = Scene::random(&mut rng);
        let a = scene_regions(&scene, &projection, &config, &mut rng);
        let b = scene_regions(&scene, &projection, &config, &mut rng);
        assert_eq!(
            a, b,
            "without noise the object region is a function of its attributes"
        );
    }
}
