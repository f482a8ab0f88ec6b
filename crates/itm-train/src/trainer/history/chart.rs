//! The training chart: mean loss, margin (when the loss has one) and validation rsum per epoch,
//! one panel each, as a PNG.
//!
//! Drawn with `plotters` into an in-memory RGB buffer and encoded by `image`; text uses a
//! bundled DejaVu Sans Mono (Bitstream Vera licence, `assets/DejaVuSansMono.LICENSE`) through
//! `ab_glyph`, so no system font library is needed.

use std::path::Path;
use std::sync::OnceLock;

use image::ImageEncoder;
use image::codecs::png::PngEncoder;
use itm_data::{DataError, atomic};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::EpochRecord;

const FONT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/DejaVuSansMono.ttf"
));
const WIDTH: u32 = 720;
const PANEL_HEIGHT: u32 = 240;

/// Registers the bundled font as plotters' `sans-serif`, once per process. plotters is built
/// with `ab_glyph`, which reads no system fonts: any plot drawn in this build (criterion's
/// benchmark reports included, which share the plotters crate) needs it, or drawing text fails
/// with `FontUnavailable`.
pub fn register_bundled_font() {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        register_font("sans-serif", FontStyle::Normal, FONT)
            .unwrap_or_else(|_| panic!("the bundled font is a valid TrueType file"));
    });
}

/// The panels of `history`: (title, value per epoch). The margin panel is present when every
/// epoch recorded a margin.
fn panels(history: &[EpochRecord]) -> Vec<(&'static str, Vec<(f64, f64)>)> {
    let series = |value: fn(&EpochRecord) -> f64| {
        history.iter().map(|r| (r.epoch as f64, value(r))).collect()
    };
    let mut panels = vec![("mean training loss", series(|r| r.mean_loss))];
    if history.iter().all(|r| r.margin.is_some()) {
        panels.push((
            "margin",
            history
                .iter()
                .map(|r| (r.epoch as f64, r.margin.unwrap_or_default()))
                .collect(),
        ));
    }
    panels.push(("validation rsum", series(|r| r.validation.rsum())));
    panels
}

/// `[low, high]` around `values`, padded by 10% of the spread (when they are all equal: by
/// half their magnitude, or 0.5 around 0).
fn value_range(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (low, high) = values
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    if !low.is_finite() {
        return (0.0, 1.0);
    }
    let pad = if high > low {
        0.1 * (high - low)
    } else {
        if low == 0.0 { 0.5 } else { 0.5 * low.abs() }
    };
    (low - pad, high + pad)
}

/// Renders the chart of `history` as RGB pixels: `(width, height, pixels)`.
fn render(history: &[EpochRecord]) -> Result<(u32, u32, Vec<u8>), String> {
    register_bundled_font();
    let panels = panels(history);
    let height = PANEL_HEIGHT * panels.len() as u32;
    let mut pixels = vec![255u8; (WIDTH * height * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (WIDTH, height)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let last_epoch = history.iter().map(|r| r.epoch).max().unwrap_or(0) as f64;
        let first_epoch = history.iter().map(|r| r.epoch).min().unwrap_or(0) as f64;
        let areas = root.split_evenly((panels.len(), 1));
        for ((title, points), area) in panels.iter().zip(&areas) {
            let (low, high) = value_range(points.iter().map(|p| p.1));
            let mut chart = ChartBuilder::on(area)
                .caption(*title, ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(30)
                .y_label_area_size(70)
                .build_cartesian_2d(first_epoch - 0.5..last_epoch + 0.5, low..high)
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("epoch")
                .x_labels(history.len().clamp(2, 12))
                .x_label_formatter(&|x| format!("{x:.0}"))
                .draw()
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    BLUE.stroke_width(2),
                ))
                .map_err(|e| e.to_string())?;
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 3, BLUE.filled())))
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())?;
    }
    Ok((WIDTH, height, pixels))
}

/// Writes the chart of `history` to `path` (PNG, replaced atomically).
pub fn write_chart(path: &Path, history: &[EpochRecord]) -> Result<(), DataError> {
    let (width, height, pixels) =
        render(history).map_err(|e| DataError::invalid(path, format!("drawing the chart: {e}")))?;
    let mut png = Vec::new();
    PngEncoder::new(&mut png)
        .write_image(&pixels, width, height, image::ExtendedColorType::Rgb8)
        .map_err(|e| DataError::invalid(path, format!("encoding the chart: {e}")))?;
    atomic::write(path, &png)
}

#[cfg(test)]
mod tests {
    use super::*;
    use itm_core::eval::Metrics;

    fn record(epoch: usize, loss: f64, margin: Option<f64>, r1: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            learning_rate: 1e-3,
            mean_loss: loss,
            margin,
            skipped_steps: 0,
            validation: Metrics {
                i2t_recall: [r1, r1, r1],
                t2i_recall: [r1, r1, r1],
                i2t_medr: 1.0,
                i2t_meanr: 1.0,
                t2i_medr: 1.0,
                t2i_meanr: 1.0,
                i2t_ties: 0,
                t2i_ties: 0,
                degenerate: false,
            },
            seconds: 1.0,
        }
    }

    /// Three panels with a margin, two without; the PNG decodes to the expected size and the
    /// series are drawn (blue pixels present), and text is drawn (dark pixels present).
    #[test]
    fn png_has_a_panel_per_series() {
        let dir = std::env::temp_dir().join(format!("itm-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (margin, panels) in [(Some(0.2), 3u32), (None, 2)] {
            let history: Vec<_> = (0..4)
                .map(|e| record(e, 1.0 / (e + 1) as f64, margin, 10.0 * e as f64))
                .collect();
            let path = dir.join("chart.png");
            write_chart(&path, &history).unwrap();
            let image = image::open(&path).unwrap().to_rgb8();
            assert_eq!(image.dimensions(), (WIDTH, PANEL_HEIGHT * panels));
            let blue = image.pixels().filter(|p| p.0 == [0, 0, 255]).count();
            let dark = image
                .pixels()
                .filter(|p| p.0.iter().all(|&c| c < 60))
                .count();
            assert!(blue > 100, "{blue} blue pixels");
            assert!(dark > 100, "{dark} dark (text, axes) pixels");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
