//! The caption sheet: for a few captions of an index, the caption written above its own image
//! and the top-ranked images, with their scores.

use std::path::Path;

use image::{Rgb, RgbImage};
use serde::Serialize;

use super::label::{TEXT_COLOUR, draw_label};
use super::layout::{caption_band, frame_origin, score_band, sheet_size};
use super::{BACKGROUND, MATCH_COLOUR, OTHER_COLOUR, QUERY_COLOUR, drawing, place, write_sheet};
use crate::ServeError;
use crate::index::{Hit, Index};

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

/// Writes the sheet of `captions` (index rows) with their top `k` images to `output` (PNG,
/// [`sheet_size`]) and the description of its rows beside it (`.json`), both atomically.
/// Queries are the captions' stored embeddings, so the sheet shows exactly what the index
/// ranks. Above each row: `caption ROW: TEXT`; under the caption's own image: the rank at which
/// it was found (or "not in top k"); under each result: its rank and score.
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
    let text_error = drawing(output);
    for (row, (&caption, hits)) in captions.iter().zip(found).enumerate() {
        let truth = items.captions[caption].image;
        place(
            &mut sheet,
            frame_origin(row, 0),
            &picture.get(truth)?,
            QUERY_COLOUR,
        );
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
            place(
                &mut sheet,
                frame_origin(row, rank + 1),
                &picture.get(image)?,
                colour,
            );
            let label = format!("{}. {score:.4}", rank + 1);
            let ink = if ground_truth {
                MATCH_COLOUR
            } else {
                TEXT_COLOUR
            };
            draw_label(&mut sheet, score_band(row, rank + 1), &label, ink).map_err(&text_error)?;
            results.push(SheetHit {
                rank: rank + 1,
                image,
                id: items.images[image].id.clone(),
                file: items.images[image].file.clone(),
                score,
                ground_truth,
            });
        }
        let text = items.captions[caption].text.clone();
        let ground_truth_rank = results.iter().find(|h| h.ground_truth).map(|h| h.rank);
        let title = format!("caption {caption}: {text}");
        draw_label(&mut sheet, caption_band(row, k), &title, TEXT_COLOUR).map_err(&text_error)?;
        let found_at = match ground_truth_rank {
            Some(rank) => format!("found at {rank}"),
            None => format!("not in top {k}"),
        };
        draw_label(&mut sheet, score_band(row, 0), &found_at, TEXT_COLOUR).map_err(&text_error)?;
        rows.push(SheetRow {
            caption,
            text,
            ground_truth: truth,
            ground_truth_rank,
            results,
        });
    }
    write_sheet(&sheet, &rows, output)?;
    Ok(rows)
}
