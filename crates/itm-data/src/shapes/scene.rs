//! Scenes of the `shapes` dataset: 1–4 objects on a 3×3 grid, one object per cell.

use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Object shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Shape {
    /// A filled disc.
    Circle,
    /// A filled square.
    Square,
    /// A filled triangle pointing up.
    Triangle,
    /// A plus sign.
    Cross,
    /// An annulus.
    Ring,
    /// A square standing on a corner.
    Diamond,
}

/// Object colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Colour {
    /// Red.
    Red,
    /// Green.
    Green,
    /// Blue.
    Blue,
    /// Yellow.
    Yellow,
    /// Purple.
    Purple,
    /// Orange.
    Orange,
    /// White.
    White,
    /// Black.
    Black,
}

/// Object sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Size {
    /// Radius about a quarter of a grid cell.
    Small,
    /// Radius about 40% of a grid cell.
    Large,
}

impl Shape {
    /// Every shape, in a fixed order (the order of the attribute codes).
    pub const ALL: [Shape; 6] = [
        Shape::Circle,
        Shape::Square,
        Shape::Triangle,
        Shape::Cross,
        Shape::Ring,
        Shape::Diamond,
    ];

    /// The word used in captions.
    pub fn word(self) -> &'static str {
        match self {
            Shape::Circle => "circle",
            Shape::Square => "square",
            Shape::Triangle => "triangle",
            Shape::Cross => "cross",
            Shape::Ring => "ring",
            Shape::Diamond => "diamond",
        }
    }
}

impl Colour {
    /// Every colour, in a fixed order.
    pub const ALL: [Colour; 8] = [
        Colour::Red,
        Colour::Green,
        Colour::Blue,
        Colour::Yellow,
        Colour::Purple,
        Colour::Orange,
        Colour::White,
        Colour::Black,
    ];

    /// The word used in captions.
    pub fn word(self) -> &'static str {
        match self {
            Colour::Red => "red",
            Colour::Green => "green",
            Colour::Blue => "blue",
            Colour::Yellow => "yellow",
            Colour::Purple => "purple",
            Colour::Orange => "orange",
            Colour::White => "white",
            Colour::Black => "black",
        }
    }

    /// sRGB value used when rendering.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 30, 30],
            Colour::Green => [30, 170, 50],
            Colour::Blue => [30, 60, 220],
            Colour::Yellow => [235, 215, 30],
            Colour::Purple => [140, 40, 180],
            Colour::Orange => [245, 130, 20],
            Colour::White => [250, 250, 250],
            Colour::Black => [15, 15, 15],
        }
    }
}

impl Size {
    /// Both sizes.
    pub const ALL: [Size; 2] = [Size::Small, Size::Large];

    /// The word used in captions.
    pub fn word(self) -> &'static str {
        match self {
            Size::Small => "small",
            Size::Large => "large",
        }
    }
}

/// Side of the square images in pixels.
pub const IMAGE_SIZE: u32 = 64;
/// Grid cells per side.
pub const GRID: usize = 3;

/// One object of a scene.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Object {
    /// Its shape.
    pub shape: Shape,
    /// Its colour.
    pub colour: Colour,
    /// Its size.
    pub size: Size,
    /// Grid row, 0 (top) to 2 (bottom).
    pub row: usize,
    /// Grid column, 0 (left) to 2 (right).
    pub col: usize,
    /// Centre x in pixels.
    pub cx: f32,
    /// Centre y in pixels.
    pub cy: f32,
    /// Radius in pixels.
    pub radius: f32,
}

/// A scene: the objects of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// 1–4 objects in distinct grid cells.
    pub objects: Vec<Object>,
}

impl Scene {
    /// Draws a random scene.
    pub fn random(rng: &mut impl Rng) -> Self {
        let count = rng.random_range(1..=4);
        let mut cells: Vec<usize> = (0..GRID * GRID).collect();
        cells.shuffle(rng);
        let cell_size = IMAGE_SIZE as f32 / GRID as f32;
        let objects = cells[..count]
            .iter()
            .map(|&cell| {
                let (row, col) = (cell / GRID, cell % GRID);
                let size = Size::ALL[rng.random_range(0..2)];
                let radius = match size {
                    Size::Small => cell_size * 0.25,
                    Size::Large => cell_size * 0.42,
                } + rng.random_range(-0.5..0.5);
                let slack = (cell_size / 2.0 - radius).max(0.0) * 0.8;
                Object {
                    shape: Shape::ALL[rng.random_range(0..Shape::ALL.len())],
                    colour: Colour::ALL[rng.random_range(0..Colour::ALL.len())],
                    size,
                    row,
                    col,
                    cx: (col as f32 + 0.5) * cell_size + rng.random_range(-slack..=slack),
                    cy: (row as f32 + 0.5) * cell_size + rng.random_range(-slack..=slack),
                    radius,
                }
            })
            .collect();
        Self { objects }
    }
}
