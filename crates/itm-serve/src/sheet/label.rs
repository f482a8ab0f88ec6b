//! Text on a contact sheet, in the font `itm-train` bundles (DejaVu Sans Mono, drawn by
//! plotters through `ab_glyph`: no system font is read).

use image::RgbImage;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::layout::Band;

/// Size of the text in pixels (the font's em height).
pub const TEXT_SIZE: u32 = 13;
/// Colour of ordinary text.
pub const TEXT_COLOUR: [u8; 3] = [20, 20, 20];

/// Writes `text` in `colour`, vertically centred in `band` from its left edge, cut with "…"
/// where it would be wider than the band. Text never leaves the band.
pub fn draw_label(
    sheet: &mut RgbImage,
    band: Band,
    text: &str,
    colour: [u8; 3],
) -> Result<(), String> {
    itm_train::register_bundled_font();
    let (width, height) = sheet.dimensions();
    let root = BitMapBackend::with_buffer(sheet.as_mut(), (width, height)).into_drawing_area();
    let area = root.shrink((band.x as i32, band.y as i32), (band.width, band.height));
    let ink = RGBColor(colour[0], colour[1], colour[2]);
    let style = TextStyle::from(("sans-serif", TEXT_SIZE).into_font())
        .color(&ink)
        .pos(Pos::new(HPos::Left, VPos::Center));
    let fitted = fit(text, band.width, |s| {
        area.estimate_text_size(s, &style)
            .map(|(w, _)| w)
            .unwrap_or(u32::MAX)
    });
    area.draw_text(&fitted, &style, (0, band.height as i32 / 2))
        .map_err(|e| e.to_string())?;
    area.present().map_err(|e| e.to_string())
}

/// The longest prefix of `text` (whole characters, "…" appended when cut) whose `width` fits
/// in `max` pixels.
fn fit(text: &str, max: u32, width: impl Fn(&str) -> u32) -> String {
    if width(text) <= max {
        return text.to_string();
    }
    let chars: Vec<char> = text.chars().collect();
    let (mut low, mut high) = (0, chars.len());
    // The longest cut that fits: widths grow with the prefix.
    while low < high {
        let mid = (low + high).div_ceil(2);
        let candidate: String = chars[..mid].iter().collect::<String>() + "…";
        if width(&candidate) <= max {
            low = mid;
        } else {
            high = mid - 1;
        }
    }
    chars[..low].iter().collect::<String>() + "…"
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;

    /// A label darkens pixels inside its band and none outside; a long text is cut instead of
    /// running past the band's right edge.
    #[test]
    fn text_stays_in_its_band() {
        let mut sheet = RgbImage::from_pixel(300, 60, Rgb([255, 255, 255]));
        let band = Band {
            x: 10,
            y: 20,
            width: 120,
            height: 18,
        };
        let long = "a small red circle left of a large blue square below a green ring";
        draw_label(&mut sheet, band, long, TEXT_COLOUR).unwrap();
        let mut inside = 0;
        for (x, y, pixel) in sheet.enumerate_pixels() {
            let dark = pixel.0.iter().all(|&c| c < 128);
            let within = (band.x..band.x + band.width).contains(&x)
                && (band.y..band.y + band.height).contains(&y);
            assert!(within || pixel.0 == [255, 255, 255], "ink at ({x}, {y})");
            inside += usize::from(dark && within);
        }
        assert!(inside > 100, "only {inside} dark pixels in the band");
    }

    /// The cut keeps the longest prefix that fits, with "…", and leaves a text that fits alone.
    #[test]
    fn fit_cuts_at_the_longest_prefix() {
        let width = |s: &str| 10 * s.chars().count() as u32;
        assert_eq!(fit("abcdef", 60, width), "abcdef");
        assert_eq!(fit("abcdefgh", 60, width), "abcde…");
        assert_eq!(fit("abcdefgh", 5, width), "…");
    }
}
