//! The training chart, as a PNG, one panel a row: the training loss per logging interval
//! against the run's step (log scale when it spans a decade or more), the margin per interval
//! (when the loss has one), skipped steps per interval (when any were), the six validation
//! recalls per epoch, and the validation rsum per epoch. A history without intervals (written
//! before they were recorded) draws the loss and margin per epoch instead.
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

/// Colours of the recall curves: R@1, R@5, R@10 of image → text, then the same of text →
/// image in lighter shades.
const RECALL_COLOURS: [RGBColor; 6] = [
    RGBColor(0, 0, 255),
    RGBColor(0, 140, 0),
    RGBColor(220, 0, 0),
    RGBColor(110, 110, 255),
    RGBColor(90, 200, 90),
    RGBColor(255, 120, 120),
];

/// One curve of a panel.
struct Series {
    label: String,
    colour: RGBColor,
    points: Vec<(f64, f64)>,
}

/// One panel: a title, the x axis' name, its curves, whether y is drawn on a log scale
/// (points are then stored as `log10` of the values), and a fixed y range, if any.
struct Panel {
    title: String,
    x_desc: &'static str,
    series: Vec<Series>,
    log: bool,
    y_range: Option<(f64, f64)>,
}

impl Panel {
    fn one(title: impl Into<String>, x_desc: &'static str, points: Vec<(f64, f64)>) -> Self {
        Self {
            title: title.into(),
            x_desc,
            series: vec![Series {
                label: String::new(),
                colour: BLUE,
                points,
            }],
            log: false,
            y_range: None,
        }
    }
}

/// An axis label with three significant digits (no trailing zeros after the point).
fn label(value: f64) -> String {
    let magnitude = value.abs();
    let decimals = if magnitude >= 100.0 || magnitude == 0.0 {
        0
    } else if magnitude >= 10.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        (2 - magnitude.log10().floor() as i32).clamp(3, 8) as usize
    };
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// Whether `values` are drawn on a log scale: all positive and spanning a factor of 10 or more.
fn wants_log_scale(values: &[f64]) -> bool {
    let finite = values.iter().filter(|v| v.is_finite());
    let (low, high) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    low > 0.0 && high.is_finite() && high >= 10.0 * low
}

/// The loss panel: per interval against the step (log scale where it helps), or per epoch for
/// a history without intervals.
fn loss_panel(history: &[EpochRecord]) -> Panel {
    let points: Vec<(f64, f64)> = history
        .iter()
        .flat_map(|r| &r.intervals)
        .filter_map(|i| i.mean_loss.map(|loss| (i.step as f64, loss)))
        .collect();
    if points.is_empty() {
        return Panel::one(
            "mean training loss per epoch",
            "epoch",
            history
                .iter()
                .map(|r| (r.epoch as f64, r.mean_loss))
                .collect(),
        );
    }
    let values: Vec<f64> = points.iter().map(|p| p.1).collect();
    let log = wants_log_scale(&values);
    let steps = history
        .iter()
        .flat_map(|r| &r.intervals)
        .map(|i| i.steps)
        .max()
        .unwrap_or(1);
    let mut panel = Panel::one(
        format!(
            "training loss, mean of {steps} steps{}",
            if log { " (log scale)" } else { "" }
        ),
        "step",
        points
            .into_iter()
            .map(|(x, y)| (x, if log { y.log10() } else { y }))
            .collect(),
    );
    panel.log = log;
    panel
}

/// The panels of `history`.
fn panels(history: &[EpochRecord]) -> Vec<Panel> {
    let intervals: Vec<_> = history.iter().flat_map(|r| &r.intervals).collect();
    let mut panels = vec![loss_panel(history)];
    let margins: Vec<(f64, f64)> = intervals
        .iter()
        .filter_map(|i| i.margin.map(|m| (i.step as f64, m)))
        .collect();
    if !margins.is_empty() {
        panels.push(Panel::one("margin per interval", "step", margins));
    } else if intervals.is_empty() && history.iter().all(|r| r.margin.is_some()) {
        let margins = history
            .iter()
            .map(|r| (r.epoch as f64, r.margin.unwrap_or_default()))
            .collect();
        panels.push(Panel::one("margin per epoch", "epoch", margins));
    }
    if intervals.iter().any(|i| i.skipped > 0) {
        let skipped = intervals
            .iter()
            .map(|i| (i.step as f64, i.skipped as f64))
            .collect();
        panels.push(Panel::one("skipped steps per interval", "step", skipped));
    }
    let names = [
        "i2t R@1", "i2t R@5", "i2t R@10", "t2i R@1", "t2i R@5", "t2i R@10",
    ];
    let recalls = names
        .iter()
        .zip(RECALL_COLOURS)
        .enumerate()
        .map(|(k, (name, colour))| Series {
            label: name.to_string(),
            colour,
            points: history
                .iter()
                .map(|r| {
                    let m = &r.validation;
                    let value = if k < 3 {
                        m.i2t_recall[k]
                    } else {
                        m.t2i_recall[k - 3]
                    };
                    (r.epoch as f64, value)
                })
                .collect(),
        })
        .collect();
    panels.push(Panel {
        title: "validation recall (%)".into(),
        x_desc: "epoch",
        series: recalls,
        log: false,
        y_range: Some((0.0, 100.0)),
    });
    panels.push(Panel::one(
        "validation rsum",
        "epoch",
        history
            .iter()
            .map(|r| (r.epoch as f64, r.validation.rsum()))
            .collect(),
    ));
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

/// Draws `panel` on `area`.
fn draw_panel(
    area: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
    panel: &Panel,
) -> Result<(), String> {
    let all = || panel.series.iter().flat_map(|s| s.points.iter().copied());
    let (x_low, x_high) = all().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), p| {
        (lo.min(p.0), hi.max(p.0))
    });
    let (x_low, x_high) = if x_low.is_finite() {
        (x_low - 0.5, x_high + 0.5)
    } else {
        (0.0, 1.0)
    };
    let (low, high) = panel
        .y_range
        .unwrap_or_else(|| value_range(all().map(|p| p.1)));
    let mut chart = ChartBuilder::on(area)
        .caption(&panel.title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(70)
        .build_cartesian_2d(x_low..x_high, low..high)
        .map_err(|e| e.to_string())?;
    let log = panel.log;
    let by_epoch = panel.x_desc == "epoch";
    let epochs = (x_high - x_low).round().max(2.0) as usize;
    chart
        .configure_mesh()
        .x_desc(panel.x_desc)
        .x_labels(if by_epoch { epochs.clamp(2, 12) } else { 10 })
        .x_label_formatter(&|x| format!("{x:.0}"))
        .y_label_formatter(&|y| label(if log { 10f64.powf(*y) } else { *y }))
        .draw()
        .map_err(|e| e.to_string())?;
    let labelled = panel.series.len() > 1;
    for series in &panel.series {
        let colour = series.colour;
        let drawn = chart
            .draw_series(LineSeries::new(
                series.points.iter().copied(),
                colour.stroke_width(2),
            ))
            .map_err(|e| e.to_string())?;
        if labelled {
            drawn.label(series.label.as_str()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        }
        if by_epoch || series.points.len() <= 60 {
            chart
                .draw_series(
                    series
                        .points
                        .iter()
                        .map(|&p| Circle::new(p, 3, colour.filled())),
                )
                .map_err(|e| e.to_string())?;
        }
    }
    if labelled {
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .label_font(("sans-serif", 12))
            .draw()
            .map_err(|e| e.to_string())?;
    }
    Ok(())
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
        let areas = root.split_evenly((panels.len(), 1));
        for (panel, area) in panels.iter().zip(&areas) {
            draw_panel(area, panel)?;
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
    use crate::trainer::history::IntervalRecord;
    use itm_core::eval::Metrics;

    fn record(epoch: usize, loss: f64, margin: Option<f64>, r1: f64) -> EpochRecord {
        EpochRecord {
            epoch,
            learning_rate: 1e-3,
            mean_loss: loss,
            margin,
            skipped_steps: 0,
            validation: Metrics {
                i2t_recall: [r1, r1 + 10.0, r1 + 20.0],
                t2i_recall: [r1 / 2.0, r1, r1 + 5.0],
                i2t_medr: 1.0,
                i2t_meanr: 1.0,
                t2i_medr: 1.0,
                t2i_meanr: 1.0,
                i2t_ties: 0,
                t2i_ties: 0,
                degenerate: false,
            },
            seconds: 1.0,
            intervals: Vec::new(),
        }
    }

    /// `history` with four intervals of 5 steps an epoch, the loss falling from `first` by
    /// halves, the second interval of epoch 1 skipping a step when `skip`.
    fn with_intervals(mut history: Vec<EpochRecord>, first: f64, skip: bool) -> Vec<EpochRecord> {
        for record in &mut history {
            record.intervals = (0..4)
                .map(|i| {
                    let n = record.epoch * 4 + i;
                    IntervalRecord {
                        epoch: record.epoch,
                        step: 5 * (n + 1),
                        steps: 5,
                        mean_loss: Some(first / 2f64.powi(n as i32)),
                        margin: record.margin,
                        skipped: usize::from(skip && record.epoch == 1 && i == 1),
                    }
                })
                .collect();
        }
        history
    }

    fn pixels(image: &image::RgbImage, colour: [u8; 3]) -> usize {
        image.pixels().filter(|p| p.0 == colour).count()
    }

    /// The panels for each kind of history, titled as drawn: the step curve on a log scale
    /// when the loss spans a decade (a warm-up's large loss), linear otherwise; margin and
    /// skipped panels only when there is something to draw; the per-epoch fallback.
    #[test]
    fn panels_follow_the_history() {
        let epochs: Vec<_> = (0..3)
            .map(|e| record(e, 1.0 / (e + 1) as f64, Some(0.2), 10.0 * e as f64))
            .collect();
        let titles = |history: &[EpochRecord]| -> Vec<String> {
            panels(history).into_iter().map(|p| p.title).collect()
        };
        assert_eq!(
            titles(&with_intervals(epochs.clone(), 40.0, true)),
            [
                "training loss, mean of 5 steps (log scale)",
                "margin per interval",
                "skipped steps per interval",
                "validation recall (%)",
                "validation rsum"
            ]
        );
        let flat: Vec<_> = with_intervals(epochs.clone(), 1.0, false)
            .into_iter()
            .map(|mut r| {
                r.margin = None;
                r.intervals.iter_mut().for_each(|i| {
                    i.margin = None;
                    i.mean_loss = i.mean_loss.map(|l| 1.0 + l / 10.0);
                });
                r
            })
            .collect();
        assert_eq!(
            titles(&flat),
            [
                "training loss, mean of 5 steps",
                "validation recall (%)",
                "validation rsum"
            ]
        );
        assert_eq!(
            titles(&epochs),
            [
                "mean training loss per epoch",
                "margin per epoch",
                "validation recall (%)",
                "validation rsum"
            ]
        );
        let log = &panels(&with_intervals(epochs.clone(), 40.0, false))[0];
        assert!(log.log);
        assert!((log.series[0].points[0].1 - 40f64.log10()).abs() < 1e-12);
        assert_eq!(panels(&epochs)[2].series.len(), 6);
        assert!(wants_log_scale(&[0.5, 5.0]) && !wants_log_scale(&[0.5, 4.9]));
        assert!(!wants_log_scale(&[0.0, 5.0]));
    }

    /// Labels keep three significant digits.
    #[test]
    fn labels_have_three_significant_digits() {
        let labels: Vec<String> = [1584.893, 39.811, 2.5119, 0.2, 0.0123456, 0.0, 100.0]
            .into_iter()
            .map(label)
            .collect();
        assert_eq!(
            labels,
            ["1585", "39.8", "2.51", "0.2", "0.0123", "0", "100"]
        );
    }

    /// The PNG decodes to one panel height per panel; the loss curve (blue) and the six recall
    /// curves (each its own colour) are drawn, and text is drawn (dark pixels).
    #[test]
    fn png_has_a_panel_per_series() {
        let dir = std::env::temp_dir().join(format!("itm-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let epochs: Vec<_> = (0..4)
            .map(|e| record(e, 1.0 / (e + 1) as f64, Some(0.2), 10.0 * e as f64))
            .collect();
        for (history, panels) in [
            (with_intervals(epochs.clone(), 40.0, true), 5u32),
            (epochs, 4),
        ] {
            let path = dir.join("chart.png");
            write_chart(&path, &history).unwrap();
            let image = image::open(&path).unwrap().to_rgb8();
            assert_eq!(image.dimensions(), (WIDTH, PANEL_HEIGHT * panels));
            for colour in RECALL_COLOURS {
                let drawn = pixels(&image, [colour.0, colour.1, colour.2]);
                assert!(drawn > 50, "{drawn} pixels of {colour:?}");
            }
            let dark = image
                .pixels()
                .filter(|p| p.0.iter().all(|&c| c < 60))
                .count();
            assert!(dark > 100, "{dark} dark (text, axes) pixels");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
