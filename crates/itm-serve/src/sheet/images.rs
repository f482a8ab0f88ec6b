//! The image sheet: for a few images of an index, the image on the left and the captions found
//! for it beside it, best first, with their scores.

use std::path::Path;

use image::{Rgb, RgbImage};
use serde::Serialize;

use super::label::{TEXT_COLOUR, draw_label};
use super::layout::{Band, caption_line, image_query_label, image_query_origin, image_sheet_size};
use super::{BACKGROUND, MATCH_COLOUR, QUERY_COLOUR, drawing, fill, place, write_sheet};
use crate::ServeError;
use crate::index::{Hit, Index};

/// Side of the mark before a caption that describes the image searched.
pub const MARK: u32 = 10;
/// Space from a caption line's left edge to its text (the mark sits in it).
const TEXT_INDENT: u32 = MARK + 6;

/// One caption found for an image.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSheetHit {
    /// 1-based rank.
    pub rank: usize,
    /// Caption row in the index.
    pub caption: usize,
    /// Its text.
    pub text: String,
    /// The image row the caption describes.
    pub image: usize,
    /// Cosine similarity to the image.
    pub score: f32,
    /// Whether the caption describes the image searched.
    pub ground_truth: bool,
}

/// One row of an image sheet.
#[derive(Debug, Clone, Serialize)]
pub struct ImageSheetRow {
    /// Image row in the index.
    pub image: usize,
    /// Dataset id.
    pub id: String,
    /// File name.
    pub file: Option<String>,
    /// How many of the captions shown describe it.
    pub ground_truth_found: usize,
    /// The captions found, best first.
    pub results: Vec<ImageSheetHit>,
}

/// Writes the sheet of `images` (index rows) with their top `k` captions to `output` (PNG,
/// [`image_sheet_size`]) and the description of its rows beside it (`.json`), both
/// atomically. Queries are the images' stored embeddings. Each row: the image framed blue with
/// `image ID` under it, then one line per caption found, `RANK. SCORE TEXT`, green behind a
/// green mark when the caption describes the image.
pub fn write_image_sheet(
    index: &Index,
    images: &[usize],
    k: usize,
    output: &Path,
) -> Result<Vec<ImageSheetRow>, ServeError> {
    let items = index.items();
    if let Some(&bad) = images.iter().find(|&&i| i >= items.images.len()) {
        return Err(ServeError::refused(
            index.folder(),
            format!(
                "image {bad} is past the last of the index's {}",
                items.images.len()
            ),
        ));
    }
    let picture = index
        .manifest()
        .source
        .pictures(items)
        .map_err(|e| ServeError::refused(index.folder(), e))?;
    let mut queries = Vec::with_capacity(images.len() * index.manifest().dim);
    for &i in images {
        queries.extend(index.images().row(i)?);
    }
    let found = index.captions().top_k(&queries, k)?;
    let k = k.min(index.manifest().n_captions);
    let (width, height) = image_sheet_size(images.len(), k);
    let mut sheet = RgbImage::from_pixel(width, height, Rgb(BACKGROUND));
    let text_error = drawing(output);
    let mut rows = Vec::with_capacity(images.len());
    for (row, (&image, hits)) in images.iter().zip(found).enumerate() {
        place(
            &mut sheet,
            image_query_origin(row, k),
            &picture.get(image)?,
            QUERY_COLOUR,
        );
        let id = items.images[image].id.clone();
        draw_label(
            &mut sheet,
            image_query_label(row, k),
            &format!("image {id}"),
            TEXT_COLOUR,
        )
        .map_err(&text_error)?;
        let mut results = Vec::with_capacity(hits.len());
        for (
            rank,
            Hit {
                index: caption,
                score,
            },
        ) in hits.into_iter().enumerate()
        {
            let item = &items.captions[caption];
            let ground_truth = item.image == image;
            let line = caption_line(row, rank, k);
            let ink = if ground_truth {
                let top = line.y + (line.height - MARK) / 2;
                fill(
                    &mut sheet,
                    Band {
                        x: line.x,
                        y: top,
                        width: MARK,
                        height: MARK,
                    },
                    MATCH_COLOUR,
                );
                MATCH_COLOUR
            } else {
                TEXT_COLOUR
            };
            let text_band = Band {
                x: line.x + TEXT_INDENT,
                width: line.width - TEXT_INDENT,
                ..line
            };
            let text = format!("{}. {score:.4} {}", rank + 1, item.text);
            draw_label(&mut sheet, text_band, &text, ink).map_err(&text_error)?;
            results.push(ImageSheetHit {
                rank: rank + 1,
                caption,
                text: item.text.clone(),
                image: item.image,
                score,
                ground_truth,
            });
        }
        rows.push(ImageSheetRow {
            image,
            id,
            file: items.images[image].file.clone(),
            ground_truth_found: results.iter().filter(|h| h.ground_truth).count(),
            results,
        });
    }
    write_sheet(&sheet, &rows, output)?;
    Ok(rows)
}
