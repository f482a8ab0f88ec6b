//! Where everything sits on a contact sheet, in pixels: the frames, the caption band above
//! each row of a caption sheet, the score band under each picture, the caption lines beside
//! the picture of an image sheet. The tests and the drawing read the same functions.

/// Side of a picture on the sheet, in pixels.
pub const CELL: u32 = 96;
/// Width of the frame around each picture.
pub const BORDER: u32 = 4;
/// Space between frames and around the sheet.
pub const GAP: u32 = 6;
/// Height of the band above a caption sheet's row that shows the caption searched.
pub const CAPTION_BAND: u32 = 20;
/// Height of the band under each picture that shows its score (or, under the query's own
/// image, the rank at which it was found).
pub const SCORE_BAND: u32 = 18;
/// Height of one caption found, beside the query of an image sheet.
pub const CAPTION_LINE: u32 = 18;
/// Width of the caption lines of an image sheet.
pub const CAPTION_TEXT_WIDTH: u32 = 600;

/// Side of a framed picture.
const FRAMED: u32 = CELL + 2 * BORDER;
/// Horizontal distance from one frame to the next.
const PITCH_X: u32 = FRAMED + GAP;
/// Vertical distance from one row of a caption sheet to the next.
const ROW_PITCH: u32 = CAPTION_BAND + FRAMED + SCORE_BAND + GAP;

/// A rectangle of the sheet: top-left corner and size, in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Band {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// Size `(width, height)` of a caption sheet of `rows` captions and `k` results each.
pub fn sheet_size(rows: usize, k: usize) -> (u32, u32) {
    (
        GAP + (k as u32 + 1) * PITCH_X,
        GAP + rows as u32 * ROW_PITCH,
    )
}

/// Top-left corner of the frame at (`row`, `column`) of a caption sheet; column 0 is the
/// caption's own image.
pub fn frame_origin(row: usize, column: usize) -> (u32, u32) {
    (
        GAP + column as u32 * PITCH_X,
        GAP + row as u32 * ROW_PITCH + CAPTION_BAND,
    )
}

/// The band above row `row` of a caption sheet with `k` results a row, where the caption
/// searched is written.
pub fn caption_band(row: usize, k: usize) -> Band {
    Band {
        x: GAP,
        y: GAP + row as u32 * ROW_PITCH,
        width: sheet_size(1, k).0 - 2 * GAP,
        height: CAPTION_BAND,
    }
}

/// The band under the frame at (`row`, `column`) of a caption sheet, where its score is
/// written.
pub fn score_band(row: usize, column: usize) -> Band {
    let (x, y) = frame_origin(row, column);
    Band {
        x,
        y: y + FRAMED,
        width: FRAMED,
        height: SCORE_BAND,
    }
}

/// Height of one row of an image sheet with `k` captions a query: the framed picture and its
/// label, or the caption lines when they are taller.
fn image_row_height(k: usize) -> u32 {
    (FRAMED + SCORE_BAND).max(k as u32 * CAPTION_LINE)
}

/// Size `(width, height)` of an image sheet of `rows` image queries and `k` captions each.
pub fn image_sheet_size(rows: usize, k: usize) -> (u32, u32) {
    (
        GAP + PITCH_X + CAPTION_TEXT_WIDTH + GAP,
        GAP + rows as u32 * (image_row_height(k) + GAP),
    )
}

/// Top-left corner of the query's frame in row `row` of an image sheet with `k` captions a
/// query (the picture sits on the left of its row).
pub fn image_query_origin(row: usize, k: usize) -> (u32, u32) {
    (GAP, GAP + row as u32 * (image_row_height(k) + GAP))
}

/// The band under the query's frame of an image sheet, where its id is written.
pub fn image_query_label(row: usize, k: usize) -> Band {
    let (x, y) = image_query_origin(row, k);
    Band {
        x,
        y: y + FRAMED,
        width: FRAMED,
        height: SCORE_BAND,
    }
}

/// The line of the caption found at `rank` (0-based) in row `row` of an image sheet with `k`
/// captions a query, right of the query's picture.
pub fn caption_line(row: usize, rank: usize, k: usize) -> Band {
    let (_, y) = image_query_origin(row, k);
    Band {
        x: GAP + PITCH_X,
        y: y + rank as u32 * CAPTION_LINE,
        width: CAPTION_TEXT_WIDTH,
        height: CAPTION_LINE,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inside(band: Band, (width, height): (u32, u32)) -> bool {
        band.x + band.width <= width && band.y + band.height <= height
    }

    fn overlap(a: Band, b: Band) -> bool {
        a.x < b.x + b.width && b.x < a.x + a.width && a.y < b.y + b.height && b.y < a.y + a.height
    }

    /// Every band lies on the sheet, and no two of them (nor a band and a frame) overlap.
    #[test]
    fn bands_fit_and_do_not_overlap() {
        let (rows, k) = (3, 4);
        let size = sheet_size(rows, k);
        let mut bands = Vec::new();
        for row in 0..rows {
            bands.push(caption_band(row, k));
            for column in 0..=k {
                let (x, y) = frame_origin(row, column);
                bands.push(Band {
                    x,
                    y,
                    width: FRAMED,
                    height: FRAMED,
                });
                bands.push(score_band(row, column));
            }
        }
        for (i, &a) in bands.iter().enumerate() {
            assert!(inside(a, size), "{a:?} outside {size:?}");
            for &b in &bands[i + 1..] {
                assert!(!overlap(a, b), "{a:?} overlaps {b:?}");
            }
        }
        assert_eq!(size, (6 + 5 * 110, 6 + 3 * 148));

        for k in [2, 12] {
            let size = image_sheet_size(rows, k);
            let mut bands = Vec::new();
            for row in 0..rows {
                let (x, y) = image_query_origin(row, k);
                bands.push(Band {
                    x,
                    y,
                    width: FRAMED,
                    height: FRAMED,
                });
                bands.push(image_query_label(row, k));
                bands.extend((0..k).map(|rank| caption_line(row, rank, k)));
            }
            for (i, &a) in bands.iter().enumerate() {
                assert!(inside(a, size), "{a:?} outside {size:?}");
                for &b in &bands[i + 1..] {
                    assert!(!overlap(a, b), "k {k}: {a:?} overlaps {b:?}");
                }
            }
        }
    }
}
