//! Recurrent text encoder (VSE∞ `bigru`, SCAN; METHODS §1).

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::tensor::{Device, Int, Tensor};

use super::bigru::{MaskedBiGru, MaskedBiGruConfig};

/// Configuration of a [`GruTextEncoder`].
#[derive(Config, Debug)]
pub struct GruTextEncoderConfig {
    /// Vocabulary size.
    pub vocab_size: usize,
    /// Width of the word embeddings.
    #[config(default = 300)]
    pub d_word: usize,
    /// Width of the joint embedding space `D` (the GRU hidden width).
    pub d_embed: usize,
}

/// `Embedding(V, d_word) → BiGRU(d_word → D)`, directions averaged, lengths respected.
#[derive(Module, Debug)]
pub struct GruTextEncoder {
    /// Word embedding table.
    pub embedding: Embedding,
    /// The length-aware bidirectional GRU.
    pub gru: MaskedBiGru,
}

impl GruTextEncoderConfig {
    /// Builds the encoder on `device`.
    pub fn init(&self, device: &Device) -> GruTextEncoder {
        GruTextEncoder {
            embedding: EmbeddingConfig::new(self.vocab_size, self.d_word).init(device),
            gru: MaskedBiGruConfig::new(self.d_word, self.d_embed).init(device),
        }
    }
}

impl GruTextEncoder {
    /// - `tokens`: `[batch, max_len]` token ids, padded past `lengths[b]`
    /// - returns word features `[batch, max_len, d_embed]`, zero at padding
    pub fn forward(&self, tokens: Tensor<2, Int>, lengths: &[usize]) -> Tensor<3> {
        self.gru.forward(self.embedding.forward(tokens), lengths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::TensorData;

    #[test]
    fn pad_tokens_do_not_change_the_output() {
        let device = Device::default();
        device.seed(11);
        let encoder = GruTextEncoderConfig::new(20, 8)
            .with_d_word(6)
            .init(&device);
        let short = Tensor::<2, Int>::from_data(
            TensorData::new(vec![4i64, 5, 6, 7, 8, 0], [2, 3]),
            &device,
        );
        let long = Tensor::<2, Int>::from_data(
            TensorData::new(vec![4i64, 5, 6, 0, 0, 7, 8, 0, 0, 0], [2, 5]),
            &device,
        );
        let lengths = [3, 2];
        let a = encoder.forward(short, &lengths);
        let b = encoder.forward(long, &lengths).slice([0..2, 0..3]);
        a.into_data()
            .assert_approx_eq::<f32>(&b.into_data(), Default::default());
    }
}
