//! Resume state: where a run stands after its last completed epoch, saved after every epoch
//! (`resume.json` beside a `resume-N` folder with the model and the optimiser state) so that a
//! stopped run continues to the result of an uninterrupted one.

use std::path::Path;

use burn::module::{Param, ParamId};
use burn::optim::{ModuleOptimizer, OptimizerRecord};
use burn::tensor::{Device, Tensor};
use itm_core::loss::MarginStatistics;
use itm_core::{VseModel, VseModelConfig};
use itm_data::{CaptionTokenizer, DataError, atomic};
use serde::{Deserialize, Serialize};

use super::history::EpochRecord;
use crate::{Checkpoint, TrainError};

/// File of the resume state in the output folder.
pub const RESUME_FILE: &str = "resume.json";

/// File of the optimiser state in a resume folder.
const OPTIMIZER_FILE: &str = "optimizer.bpk";

/// Where a run stands after its last completed epoch (`resume.json` in the output folder).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ResumeState {
    /// The folder (beside `resume.json`) with the model and optimiser state.
    pub folder: String,
    /// Epochs completed.
    pub epochs_done: usize,
    /// Best validation rsum so far and its epoch.
    pub best_rsum: f64,
    pub best_epoch: usize,
    /// Every completed epoch's record.
    pub history: Vec<EpochRecord>,
    /// The state the loss carries between steps (empty for a stateless loss).
    #[serde(default)]
    pub loss: LossState,
}

/// What a loss carries from step to step, saved with the resume state so that a resumed run
/// continues it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct LossState {
    /// The adaptive margin's running score statistics.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub margin_statistics: Option<MarginStatistics>,
    /// The adaptive margin's running statistics of each level of a multi-level head (DAIM),
    /// low → high.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub level_margin_statistics: Vec<MarginStatistics>,
    /// InfoNCE's learned temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Temperature>,
}

/// The learned log inverse temperature of InfoNCE and the id of its parameter (the optimiser
/// state of the parameter is stored under that id).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(super) struct Temperature {
    param_id: u64,
    log_scale: f64,
}

impl Temperature {
    /// The state of the parameter `log_scale` (a one-element tensor).
    pub fn of(log_scale: &Param<Tensor<1>>) -> Self {
        Self {
            param_id: log_scale.id.val(),
            log_scale: log_scale.val().into_scalar::<f32>() as f64,
        }
    }

    /// The parameter again, under its saved id, on `device` and requiring a gradient.
    pub fn param(&self, device: &Device) -> Param<Tensor<1>> {
        Param::initialized(
            ParamId::from(self.param_id),
            Tensor::from_floats([self.log_scale as f32], device).require_grad(),
        )
    }
}

/// The run's position: the epoch to start from, the best model so far, the history and the
/// loss state.
pub(super) struct Start {
    pub epoch: usize,
    pub best: Option<(f64, usize, VseModel)>,
    pub history: Vec<EpochRecord>,
    pub loss: LossState,
}

impl Start {
    /// A run from its first epoch.
    pub fn fresh() -> Self {
        Self {
            epoch: 0,
            best: None,
            history: Vec::new(),
            loss: LossState::default(),
        }
    }
}

/// Saves the model and optimiser state in a new folder `state.folder`, then points
/// `resume.json` at it (an atomic replace), then removes the folder it pointed at before: a
/// run killed at any moment leaves a complete resume state, of this epoch or the one before.
pub(super) fn save_resume_state(
    output: &Path,
    model: &VseModel,
    optimizer: &ModuleOptimizer,
    model_config: &VseModelConfig,
    tokenizer: &CaptionTokenizer,
    state: ResumeState,
) -> Result<(), TrainError> {
    let previous = read_resume_state(output).ok().map(|s| s.folder);
    let folder = output.join(&state.folder);
    Checkpoint::new(&folder).save(model, model_config, tokenizer)?;
    let optimizer_path = folder.join(OPTIMIZER_FILE);
    let temporary = folder.join(format!(".{OPTIMIZER_FILE}.tmp-{}", std::process::id()));
    optimizer
        .to_record()
        .save(&temporary)
        .and_then(|()| {
            std::fs::rename(&temporary, &optimizer_path)
                .map_err(|e| burn::store::RecordError::Io(e.to_string()))
        })
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            TrainError::Weights {
                path: optimizer_path.clone(),
                message: e.to_string(),
            }
        })?;
    let json = serde_json::to_string_pretty(&state).expect("the state serialises");
    atomic::write(&output.join(RESUME_FILE), json.as_bytes())?;
    if let Some(previous) = previous.filter(|p| *p != state.folder) {
        let _ = std::fs::remove_dir_all(output.join(previous));
    }
    Ok(())
}

/// Reads `resume.json` in `output`, refusing a folder name that leaves `output`.
pub(super) fn read_resume_state(output: &Path) -> Result<ResumeState, TrainError> {
    let path = output.join(RESUME_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| DataError::io(&path, e))?;
    let state: ResumeState = serde_json::from_str(&text)
        .map_err(|e| DataError::invalid(&path, format!("not a resume state: {e}")))?;
    if state.folder.contains(['/', '\\']) || state.folder.starts_with('.') {
        return Err(
            DataError::invalid(&path, format!("bad folder name {:?}", state.folder)).into(),
        );
    }
    Ok(state)
}

/// The optimiser state saved in the resume folder `folder`.
pub(super) fn read_optimizer_state(folder: &Path) -> Result<OptimizerRecord, TrainError> {
    let path = folder.join(OPTIMIZER_FILE);
    OptimizerRecord::load(&path).map_err(|e| TrainError::Weights {
        path: path.clone(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("itm-resume-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// A state whose folder would leave the output folder, or an unknown field, is refused;
    /// a saved temperature reads back as the same parameter.
    #[test]
    fn resume_files_are_checked() {
        let dir = folder("checked");
        let write = |json: &str| std::fs::write(dir.join(RESUME_FILE), json).unwrap();
        let body = r#""epochs_done": 1, "best_rsum": 1.0, "best_epoch": 0, "history": []"#;
        write(&format!(r#"{{"folder": "resume-1", {body}}}"#));
        assert_eq!(read_resume_state(&dir).unwrap().epochs_done, 1);
        for bad in ["../x", ".hidden", "a\\\\b"] {
            write(&format!(r#"{{"folder": "{bad}", {body}}}"#));
            let error = read_resume_state(&dir).unwrap_err().to_string();
            assert!(error.contains("bad folder name"), "{bad}: {error}");
        }
        write(&format!(r#"{{"folder": "resume-1", "extra": 0, {body}}}"#));
        let error = read_resume_state(&dir).unwrap_err().to_string();
        assert!(error.contains("not a resume state"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();

        let device = Device::flex().autodiff();
        let param = Param::from_tensor(Tensor::<1>::from_floats([2.5f32], &device));
        let saved = Temperature::of(&param);
        let again = saved.param(&device);
        assert_eq!(again.id, param.id);
        assert_eq!(again.val().into_scalar::<f32>(), 2.5);
        assert_eq!(Temperature::of(&again), saved);
    }
}
