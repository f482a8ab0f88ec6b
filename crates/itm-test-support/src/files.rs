//! Reading what a run writes: JSON files, JSON-lines histories, the rsum of a record.

use std::path::Path;

use serde_json::Value;

/// A JSON file.
pub fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A JSON-lines file (a run's `metrics.jsonl`), one value per line.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect()
}

/// The rsum of a `validation` object of a run's record: the sum of its `i2t_recall` and
/// `t2i_recall` entries.
pub fn validation_rsum(validation: &Value) -> f64 {
    ["i2t_recall", "t2i_recall"]
        .iter()
        .flat_map(|key| validation[key].as_array().expect("recalls").iter())
        .map(|x| x.as_f64().expect("a recall"))
        .sum()
}
