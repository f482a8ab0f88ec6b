//! Pretrained weights and the Hugging Face files that describe them: everything that knows a
//! checkpoint's file format lives here, one file per family, so that the models of
//! `itm_core::encoders` know none.
//!
//! - `safetensors`: [`load_safetensors_into`] / [`save_safetensors`] for any burn module
//!   (PyTorch layout, keys renamed by regex rules; every parameter and tensor accounted for).
//! - `bert_config` / `bert`: a BERT `config.json` ([`bert_config_from_json`]) and folder
//!   ([`load_bert`]).
//! - `clip_config` / `clip`: a CLIP `config.json` ([`clip_config_from_json`]) and folder
//!   ([`load_clip`]).
//! - `swin_config` / `swin`: a Swin `config.json` ([`swin_config_from_json`]) and folder
//!   ([`load_swin`]); HAT's (timm's) names in a state dict ([`load_swin_hat`],
//!   [`load_swin_hat_safetensors`], [`swin_config_from_hat`]).

mod bert;
mod bert_config;
mod clip;
mod clip_config;
mod safetensors;
mod swin;
mod swin_config;

pub use bert::{BERT_IGNORED, BERT_KEY_REMAP, load_bert, sentence_max_length};
pub use bert_config::{BertConfigError, bert_config_from_json};
pub use clip::{CLIP_IGNORED, CLIP_KEY_REMAP, clip_tokenizer, load_clip, read_clip_config};
pub use clip_config::{ClipConfigError, clip_config_from_json};
pub(crate) use safetensors::apply_pytorch_tensors;
pub use safetensors::{
    load_safetensors_ignoring, load_safetensors_into, safetensors_names, safetensors_state_dict,
    save_safetensors,
};
pub use swin::{
    HAT_DROP_PATH_RATE, HAT_SWIN_PREFIX, SWIN_HAT_IGNORED, SWIN_HAT_KEY_REMAP, SWIN_IGNORED,
    SWIN_KEY_REMAP, load_swin, load_swin_hat, load_swin_hat_safetensors, swin_config_from_hat,
};
pub use swin_config::{SwinConfigError, swin_config_from_json};
