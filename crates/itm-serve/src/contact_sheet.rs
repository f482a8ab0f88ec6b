//! Contact sheets: for a few captions of an index, the caption's own image and the top-ranked
//! images in a PNG grid, the ground truth framed in green wherever it was retrieved.
//!
//! Captions are not drawn (no font is bundled); the sheet's rows are described in a JSON file
//! beside the PNG (`sheet.png` → `sheet.json`).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{ImageFormat, Rgb, RgbImage};
use itm_data::atomic;
use serde::Serialize;

use crate::ServeError;
use crate::index::{Hit, Index};

/// Side of a picture on the sheet, in pixels.
pub const CELL: u32 = 96;
/// Width of the frame around each picture.
pub const BORDER: u32 = 4;
/// Space between frames and around the sheet.
pub const GAP: u32 = 6;
/// Frame of the first column: the caption's own image.
pub const QUERY_COLOUR: [u8; 3] = [40, 90, 220];
/// Frame of a retrieved image that is the caption's own.
pub const MATCH_COLOUR: [u8; 3] = [20, 180, 40];
/// Frame of any other retrieved image.
pub const OTHER_COLOUR: [u8; 3] = [200, 200, 200];
/// Sheet background.
pub const BACKGROUND: [u8; 3] = [255, 255, 255];

/// Size `(width, height)` of a sheet of `rows` captions and `k` results each.
pub fn sheet_size(rows: usize, k: usize) -> (u32, u32) {
    let pitch = CELL + 2 * BORDER + GAP;
    (GAP + (k as u32 + 1) * pitch, GAP + rows as u32 * pitch)
}

/// Top-left corner of the frame at (`row`, `column`); column 0 is the caption's own image.
pub fn frame_origin(row: usize, column: usize) -> (u32, u32) {
    let pitch = CELL + 2 * BORDER + GAP;
    (GAP + column as u32 * pitch, GAP + row as u32 * pitch)
}

/// One retrieved image of a sheet row.
#[derive(Debug, Clone, Serialize)]
pub struct SheetHit {
    /// 1-based rank.
    pub rank: usize,
    /// Image row in the index.
    pub image: usize,
    /// Dataset id.
    pub id: String,
    /// File name.
    pub file: Option<String>,
    /// Cosine similarity to the caption.
    pub score: f32,
    /// Whether it is the image the caption describes.
    pub ground_truth: bool,
}

/// One row of a sheet.
#[derive(Debug, Clone, Serialize)]
pub struct SheetRow {
    /// Caption row in the index.
    pub caption: usize,
    /// Its text.
    pub text: String,
    /// The image it describes.
    pub ground_truth: usize,
    /// Rank of that image (1-based) when it is among the shown results.
    pub ground_truth_rank: Option<usize>,
    /// The shown results, best first.
    pub results: Vec<SheetHit>,
}

/// Writes the sheet of `captions` (index rows) with their top `k` images to `output` (PNG)
/// and the description of its rows beside it (`.json`), both atomically. Queries are the
/// captions' stored embeddings, so the sheet shows exactly what the index ranks.
pub fn write_contact_sheet(
    index: &Index,
    captions: &[usize],
    k: usize,
    output: &Path,
) -> Result<Vec<SheetRow>, ServeError> {
    let items = index.items();
    if let Some(&bad) = captions.iter().find(|&&j| j >= items.captions.len()) {
        return Err(ServeError::refused(
            index.folder(),
            format!(
                "caption {bad} is past the last of the index's {}",
                items.captions.len()
            ),
        ));
    }
    let picture = index
        .manifest()
        .source
        .pictures(items)
        .map_err(|e| ServeError::refused(index.folder(), e))?;
    let mut queries = Vec::with_capacity(captions.len() * index.manifest().dim);
    for &j in captions {
        queries.extend(index.captions().row(j)?);
    }
    let found = index.images().top_k(&queries, k)?;
    let k = k.min(index.manifest().n_images);
    let (width, height) = sheet_size(captions.len(), k);
    let mut sheet = RgbImage::from_pixel(width, height, Rgb(BACKGROUND));
    let mut rows = Vec::with_capacity(captions.len());
    for (row, (&caption, hits)) in captions.iter().zip(found).enumerate() {
        let truth = items.captions[caption].image;
        place(&mut sheet, row, 0, &picture.get(truth)?, QUERY_COLOUR);
        let mut results = Vec::with_capacity(hits.len());
        for (
            rank,
            Hit {
                index: image,
                score,
            },
        ) in hits.into_iter().enumerate()
        {
            let ground_truth = image == truth;
            let colour = if ground_truth {
                MATCH_COLOUR
            } else {
                OTHER_COLOUR
            };
            place(&mut sheet, row, rank + 1, &picture.get(image)?, colour);
            results.push(SheetHit {
                rank: rank + 1,
                image,
                id: items.images[image].id.clone(),
                file: items.images[image].file.clone(),
                score,
                ground_truth,
            });
        }
        rows.push(SheetRow {
            caption,
            text: items.captions[caption].text.clone(),
            ground_truth: truth,
            ground_truth_rank: results.iter().find(|h| h.ground_truth).map(|h| h.rank),
            results,
        });
    }
    let mut png = std::io::Cursor::new(Vec::new());
    sheet
        .write_to(&mut png, ImageFormat::Png)
        .map_err(|e| ServeError::encode(output, format!("cannot encode the PNG: {e}")))?;
    atomic::write(output, png.get_ref())?;
    let text = serde_json::to_vec_pretty(&rows).expect("sheet rows serialise");
    atomic::write(&sidecar(output), &text)?;
    Ok(rows)
}

/// The JSON file describing a sheet: the PNG's path with the extension `json`.
pub fn sidecar(png: &Path) -> PathBuf {
    png.with_extension("json")
}

/// Draws `picture`, resized to [`CELL`], framed in `colour`, at (`row`, `column`).
fn place(sheet: &mut RgbImage, row: usize, column: usize, picture: &RgbImage, colour: [u8; 3]) {
    let (x0, y0) = frame_origin(row, column);
    let side = CELL + 2 * BORDER;
    for y in 0..side {
        for x in 0..side {
            sheet.put_pixel(x0 + x, y0 + y, Rgb(colour));
        }
    }
    let resized = image::imageops::resize(picture, CELL, CELL, FilterType::Triangle);
    image::imageops::replace(
        sheet,
        &resized,
        i64::from(x0 + BORDER),
        i64::from(y0 + BORDER),
    );
}
