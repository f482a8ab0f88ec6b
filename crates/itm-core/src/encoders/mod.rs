//! Encoders: turn region features and token ids into sets of `D`-wide features (METHODS §1).

mod bigru;
mod gru;
mod region;
mod text_gru;

pub use bigru::{MaskedBiGru, MaskedBiGruConfig};
pub use gru::{FusedGru, FusedGruConfig};
pub use region::{RegionEncoder, RegionEncoderConfig};
pub use text_gru::{GruTextEncoder, GruTextEncoderConfig};
