//! Pixels of `shapes` scenes: objects drawn on a lightly textured grey background.

use image::{Rgb, RgbImage};
use rand::Rng;
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::scene::{IMAGE_SIZE, Object, Scene, Shape};

/// Whether the point `(dx, dy)` from an object's centre lies inside a shape of radius `r`.
fn covers(shape: Shape, dx: f32, dy: f32, r: f32) -> bool {
    match shape {
        Shape::Circle => dx * dx + dy * dy <= r * r,
        Shape::Ring => {
            let d2 = dx * dx + dy * dy;
            d2 <= r * r && d2 >= (0.55 * r) * (0.55 * r)
        }
        Shape::Square => dx.abs() <= 0.85 * r && dy.abs() <= 0.85 * r,
        Shape::Diamond => dx.abs() + dy.abs() <= r,
        Shape::Cross => {
            let arm = 0.3 * r;
            (dx.abs() <= arm && dy.abs() <= r) || (dy.abs() <= arm && dx.abs() <= r)
        }
        Shape::Triangle => dy >= -r && dy <= r && dx.abs() <= (dy + r) / 2.0,
    }
}

fn draw(image: &mut RgbImage, object: &Object) {
    let colour = Rgb(object.colour.rgb());
    let r = object.radius;
    let x0 = (object.cx - r).floor().max(0.0) as u32;
    let y0 = (object.cy - r).floor().max(0.0) as u32;
    let x1 = ((object.cx + r).ceil() as u32).min(IMAGE_SIZE - 1);
    let y1 = ((object.cy + r).ceil() as u32).min(IMAGE_SIZE - 1);
    for y in y0..=y1 {
        for x in x0..=x1 {
            let (dx, dy) = (x as f32 + 0.5 - object.cx, y as f32 + 0.5 - object.cy);
            if covers(object.shape, dx, dy, r) {
                image.put_pixel(x, y, colour);
            }
        }
    }
}

/// Renders `scene` as a 64×64 RGB image; `seed` fixes the background texture.
pub fn render(scene: &Scene, seed: u64) -> RgbImage {
    let mut rng = StdRng::seed_from_u64(seed);
    let tint: [i32; 3] = [
        rng.random_range(-12..12),
        rng.random_range(-12..12),
        rng.random_range(-12..12),
    ];
    let stripe = rng.random_range(4.0f32..9.0);
    let mut image = RgbImage::from_fn(IMAGE_SIZE, IMAGE_SIZE, |x, y| {
        let wave = ((x as f32 + y as f32) / stripe).sin() * 6.0;
        let grain: f32 = rng.random_range(-8.0..8.0);
        Rgb(tint.map(|t| (128.0 + t as f32 + wave + grain).clamp(0.0, 255.0) as u8))
    });
    for object in &scene.objects {
        draw(&mut image, object);
    }
    image
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_drawn_in_their_colour_at_their_centre() {
        let mut rng = StdRng::seed_from_u64(0);
        for _ in 0..50 {
            let scene = Scene::random(&mut rng);
            let image = render(&scene, 1);
            assert_eq!(image.dimensions(), (IMAGE_SIZE, IMAGE_SIZE));
            for object in &scene.objects {
                if object.shape == Shape::Ring {
                    continue; // a ring's centre is background
                }
                let pixel = image.get_pixel(object.cx as u32, object.cy as u32);
                assert_eq!(pixel.0, object.colour.rgb(), "{object:?}");
            }
        }
    }

    #[test]
    fn ring_has_a_hole_and_cross_has_empty_corners() {
        assert!(!covers(Shape::Ring, 0.0, 0.0, 8.0));
        assert!(covers(Shape::Ring, 7.0, 0.0, 8.0));
        assert!(!covers(Shape::Cross, 6.0, 6.0, 8.0));
        assert!(covers(Shape::Square, 6.0, 6.0, 8.0));
    }
}
