//! Contact sheets: pictures of what an index retrieves, with the text that was searched.
//!
//! - [`write_contact_sheet`]: caption queries. Each row writes the caption above its pictures:
//!   first the caption's own image (framed blue), then the top images (the ground truth framed
//!   green, others grey), each with its rank and score under it.
//! - [`write_image_sheet`]: image queries. Each row shows the image on the left (its id under
//!   it) and the captions found beside it, best first, with rank and score; the captions that
//!   describe the image are written in green behind a green mark.
//!
//! Text is drawn in the font `itm-train` bundles ([`label`]); where everything sits is in
//! [`layout`]. Beside the PNG, a JSON file describes every row (`sheet.png` → `sheet.json`).
//! Both files are written atomically.

mod captions;
mod images;
mod label;
mod layout;

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{ImageFormat, Rgb, RgbImage};
use itm_data::atomic;
use serde::Serialize;

use crate::ServeError;

pub use captions::{SheetHit, SheetRow, write_contact_sheet};
pub use images::{ImageSheetHit, ImageSheetRow, MARK, write_image_sheet};
pub use label::{TEXT_COLOUR, TEXT_SIZE};
pub use layout::{
    BORDER, Band, CAPTION_BAND, CAPTION_LINE, CAPTION_TEXT_WIDTH, CELL, GAP, SCORE_BAND,
    caption_band, caption_line, frame_origin, image_query_label, image_query_origin,
    image_sheet_size, score_band, sheet_size,
};

/// Frame of the query's picture: a caption's own image, or the image searched.
pub const QUERY_COLOUR: [u8; 3] = [40, 90, 220];
/// Frame of a retrieved image that is the caption's own; mark and text of a caption found
/// that describes the image searched.
pub const MATCH_COLOUR: [u8; 3] = [20, 150, 40];
/// Frame of any other retrieved image.
pub const OTHER_COLOUR: [u8; 3] = [200, 200, 200];
/// Sheet background.
pub const BACKGROUND: [u8; 3] = [255, 255, 255];

/// The JSON file describing a sheet: the PNG's path with the extension `json`.
pub fn sidecar(png: &Path) -> PathBuf {
    png.with_extension("json")
}

/// Draws `picture`, resized to [`CELL`], framed in `colour`, with the frame's top-left corner
/// at `(x0, y0)`.
fn place(sheet: &mut RgbImage, (x0, y0): (u32, u32), picture: &RgbImage, colour: [u8; 3]) {
    fill(
        sheet,
        Band {
            x: x0,
            y: y0,
            width: CELL + 2 * BORDER,
            height: CELL + 2 * BORDER,
        },
        colour,
    );
    let resized = image::imageops::resize(picture, CELL, CELL, FilterType::Triangle);
    image::imageops::replace(
        sheet,
        &resized,
        i64::from(x0 + BORDER),
        i64::from(y0 + BORDER),
    );
}

/// Paints `band` in `colour`.
fn fill(sheet: &mut RgbImage, band: Band, colour: [u8; 3]) {
    for y in band.y..band.y + band.height {
        for x in band.x..band.x + band.width {
            sheet.put_pixel(x, y, Rgb(colour));
        }
    }
}

/// Writes `sheet` to `output` (PNG) and `rows` to its [`sidecar`] (JSON), both atomically.
fn write_sheet<T: Serialize>(
    sheet: &RgbImage,
    rows: &[T],
    output: &Path,
) -> Result<(), ServeError> {
    let mut png = std::io::Cursor::new(Vec::new());
    sheet
        .write_to(&mut png, ImageFormat::Png)
        .map_err(|e| ServeError::encode(output, format!("cannot encode the PNG: {e}")))?;
    atomic::write(output, png.get_ref())?;
    let text = serde_json::to_vec_pretty(rows)
        .map_err(|e| ServeError::encode(sidecar(output), e.to_string()))?;
    atomic::write(&sidecar(output), &text)?;
    Ok(())
}

/// Text drawing failed (the bundled font cannot fail to load, so this is a drawing error).
fn drawing(output: &Path) -> impl Fn(String) -> ServeError + '_ {
    move |e| ServeError::encode(output, format!("cannot draw the text: {e}"))
}
