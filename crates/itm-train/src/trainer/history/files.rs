//! `metrics.jsonl` and `metrics.csv` (one record an epoch), `steps.jsonl` and `steps.csv` (one
//! record a logging interval): the history as text, rewritten after every epoch.

use std::path::Path;

use itm_data::{DataError, atomic};

use super::{EpochRecord, IntervalRecord};
use crate::TrainError;

/// Writes `metrics.jsonl` (one record a line, without its intervals) and `metrics.csv` (one row
/// an epoch; the margin column is empty for a loss without one), `steps.jsonl` and `steps.csv`
/// (one interval a line or row, every epoch's in order; empty loss or margin cells where the
/// record has none) to `folder`, each replaced atomically.
pub(crate) fn write_history(folder: &Path, history: &[EpochRecord]) -> Result<(), TrainError> {
    // The folder exists once a checkpoint was saved; not yet when no epoch could be kept.
    std::fs::create_dir_all(folder).map_err(|e| DataError::io(folder, e))?;
    atomic::write(&folder.join("metrics.jsonl"), jsonl(history).as_bytes())?;
    atomic::write(&folder.join("metrics.csv"), csv(history).as_bytes())?;
    let intervals: Vec<&IntervalRecord> = history.iter().flat_map(|r| &r.intervals).collect();
    atomic::write(&folder.join("steps.jsonl"), lines(&intervals).as_bytes())?;
    atomic::write(&folder.join("steps.csv"), steps_csv(&intervals).as_bytes())?;
    Ok(())
}

/// One JSON record an epoch a line, its intervals left to `steps.jsonl`.
fn jsonl(history: &[EpochRecord]) -> String {
    let epochs: Vec<EpochRecord> = history
        .iter()
        .map(|record| EpochRecord {
            intervals: Vec::new(),
            ..record.clone()
        })
        .collect();
    lines(&epochs)
}

/// One JSON record a line (an empty file for no records).
fn lines<T: serde::Serialize>(records: &[T]) -> String {
    records
        .iter()
        .map(|record| serde_json::to_string(record).expect("records serialise") + "\n")
        .collect()
}

/// A header and one row a logging interval.
fn steps_csv(intervals: &[&IntervalRecord]) -> String {
    let cell = |value: Option<f64>| value.map(|v| v.to_string()).unwrap_or_default();
    let mut csv = String::from("epoch,step,steps,mean_loss,margin,skipped\n");
    for r in intervals {
        csv.push_str(&format!(
            "{},{},{},{},{},{}\n",
            r.epoch,
            r.step,
            r.steps,
            cell(r.mean_loss),
            cell(r.margin),
            r.skipped
        ));
    }
    csv
}

/// A header and one row an epoch.
fn csv(history: &[EpochRecord]) -> String {
    let mut csv = String::from(
        "epoch,learning_rate,mean_loss,margin,skipped_steps,\
         i2t_r1,i2t_r5,i2t_r10,i2t_medr,i2t_meanr,t2i_r1,t2i_r5,t2i_r10,t2i_medr,t2i_meanr,\
         rsum,seconds,i2t_ties,t2i_ties,degenerate\n",
    );
    for r in history {
        let m = &r.validation;
        let margin = r.margin.map(|v| v.to_string()).unwrap_or_default();
        csv.push_str(&format!(
            "{},{},{},{margin},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            r.epoch,
            r.learning_rate,
            r.mean_loss,
            r.skipped_steps,
            m.i2t_recall[0],
            m.i2t_recall[1],
            m.i2t_recall[2],
            m.i2t_medr,
            m.i2t_meanr,
            m.t2i_recall[0],
            m.t2i_recall[1],
            m.t2i_recall[2],
            m.t2i_medr,
            m.t2i_meanr,
            m.rsum(),
            r.seconds,
            m.i2t_ties,
            m.t2i_ties,
            m.degenerate
        ));
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;
    use itm_core::eval::Metrics;

    fn record(epoch: usize, margin: Option<f64>) -> EpochRecord {
        EpochRecord {
            epoch,
            learning_rate: 5e-4,
            mean_loss: 1.5,
            margin,
            skipped_steps: 2,
            validation: Metrics {
                i2t_recall: [10.0, 20.0, 30.0],
                t2i_recall: [5.0, 15.0, 25.0],
                i2t_medr: 4.0,
                i2t_meanr: 6.5,
                t2i_medr: 3.0,
                t2i_meanr: 7.25,
                i2t_ties: 1,
                t2i_ties: 0,
                degenerate: false,
            },
            seconds: 0.5,
            intervals: vec![IntervalRecord {
                epoch,
                step: 10 * (epoch + 1),
                steps: 10,
                mean_loss: Some(2.5),
                margin,
                skipped: 2,
            }],
        }
    }

    /// A row holds every field in the header's order, the rsum computed, and an empty margin
    /// for a loss without one; the JSON lines read back as the records.
    #[test]
    fn rows_follow_the_header() {
        let history = [record(0, Some(0.2)), record(1, None)];
        let text = csv(&history);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].split(',').count(), 20);
        assert_eq!(
            lines[1],
            "0,0.0005,1.5,0.2,2,10,20,30,4,6.5,5,15,25,3,7.25,105,0.5,1,0,false"
        );
        assert_eq!(
            lines[2],
            "1,0.0005,1.5,,2,10,20,30,4,6.5,5,15,25,3,7.25,105,0.5,1,0,false"
        );
        let read: Vec<EpochRecord> = jsonl(&history)
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        let without_intervals: Vec<EpochRecord> = history
            .iter()
            .map(|r| EpochRecord {
                intervals: Vec::new(),
                ..r.clone()
            })
            .collect();
        assert_eq!(read, without_intervals);
        assert!(!jsonl(&history).contains("\"margin\":null"));
        assert!(!jsonl(&history).contains("intervals"));
    }

    /// `steps.csv` has a row per interval of every epoch, an empty cell for a missing margin;
    /// `steps.jsonl` reads back as the intervals; all four files land in the folder.
    #[test]
    fn intervals_go_to_the_steps_files() {
        let history = [record(0, Some(0.2)), record(1, None)];
        let intervals: Vec<&IntervalRecord> = history.iter().flat_map(|r| &r.intervals).collect();
        assert_eq!(
            steps_csv(&intervals),
            "epoch,step,steps,mean_loss,margin,skipped\n0,10,10,2.5,0.2,2\n1,20,10,2.5,,2\n"
        );
        let dir = std::env::temp_dir().join(format!("itm-history-{}", std::process::id()));
        write_history(&dir, &history).unwrap();
        let read: Vec<IntervalRecord> = std::fs::read_to_string(dir.join("steps.jsonl"))
            .unwrap()
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(
            read,
            [
                history[0].intervals[0].clone(),
                history[1].intervals[0].clone()
            ]
        );
        for file in ["metrics.jsonl", "metrics.csv", "steps.csv"] {
            assert!(dir.join(file).is_file(), "{file}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
