//! The model zoo: a published system's name → its scoring head, joint width, text tower,
//! training defaults (METHODS §8) and citation.
//!
//! An entry is one block of [`ZOO`]. The image tower comes from the data (region features of
//! the width the data has, or pixels through a small ResNet/ViT); the text tower is a BiGRU over
//! the training vocabulary or a BERT-family model from a pretrained folder. The `clip` entry is a
//! dual encoder instead: CLIP's two towers, over pixels, from scratch or from a Hugging Face
//! CLIP folder.

use itm_core::VseModelConfig;
use itm_core::encoders::{ImageEncoderConfig, TextEncoderConfig};
use itm_core::fusion::{InstanceRelationConfig, MultiScaleFusionConfig};
use itm_core::loss::NegativeMining;
use itm_core::pooling::{GpoConfig, HremPoolingConfig, PoolingConfig};
use itm_core::similarity::{
    CHAN, COSINE, COSINE_CHAN, ChanAggregation, ChanConfig, ESL, EslAggregator, MULTI_LEVEL_SCAN,
    SCAN_I2T, SCAN_T2I, SimilarityConfig, XDIM, esl,
};

use crate::config::{LossKind, TrainingConfig};
pub use crate::towers::TextTower;
use crate::towers::{RegionTower, Towers};

/// The text tower a system was published with (a row of the towers table).
pub type ZooText = TextTower;

/// A published system.
#[derive(Debug, Clone, Copy)]
pub struct ZooEntry {
    /// The name used by `--model` and `model.name`.
    pub name: &'static str,
    /// One line: what the system is.
    pub summary: &'static str,
    /// The paper.
    pub citation: &'static str,
    /// The family the system belongs to, as lists name it (`VSE∞`, `SCAN`, …).
    pub family: &'static str,
    /// Published joint width `D`.
    pub d_embed: usize,
    /// Published text tower (any BiGRU entry can take a BERT folder instead).
    pub text: ZooText,
    /// The scoring head at width `D`: a row of the heads table
    /// ([`itm_core::similarity::HEADS`]), with the system's own settings where it has them.
    similarity: fn(usize) -> SimilarityConfig,
    /// Whether the encoded regions go through CHAN-ASDG's multi-scale fusion.
    pub region_fusion: bool,
    /// The pooling of both sets (GPO, HREM's max-k mean; the mean where a fine-grained head
    /// scores the sets themselves and the pooled vector only serves a first search stage).
    pooling: fn(usize) -> PoolingConfig,
    /// The system's own region tower (of its default, BiGRU script).
    pub regions: RegionTower,
    /// What the system's BERT script changes, when it has its own (CHAN).
    pub bert_script: Option<BertScript>,
    /// Whether training adds HREM's losses on relation-enhanced batch embeddings
    /// ([`hrem_relation`]).
    pub instance_relation: bool,
    /// Published training defaults.
    training: fn() -> TrainingConfig,
}

/// The pieces of a system that a run may switch off or re-weigh for an ablation
/// (`model.instance_relation`, `model.local_weight`); [`ZooEntry::pieces`] has the system's
/// own.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pieces {
    /// HREM's instance relation layer in training (heads with a global part only).
    pub instance_relation: bool,
    /// The weight `w` of a multi-grained head's local score (0: no local score, the cosine
    /// head); `None` for the other heads.
    pub local_weight: Option<f64>,
}

/// A system's BERT script where it differs from its BiGRU script: its region tower and head.
#[derive(Debug, Clone, Copy)]
pub struct BertScript {
    /// The region tower.
    pub regions: RegionTower,
    /// The scoring head at width `D`.
    similarity: fn(usize) -> SimilarityConfig,
}

impl ZooEntry {
    /// The scoring head at joint width `d_embed` (of the default, BiGRU script).
    pub fn similarity(&self, d_embed: usize) -> SimilarityConfig {
        (self.similarity)(d_embed)
    }

    /// The scoring head at joint width `d_embed` with the text tower `text`: the BERT
    /// script's where the system has its own.
    pub fn similarity_with(&self, d_embed: usize, text: TextTower) -> SimilarityConfig {
        match (text, self.bert_script) {
            (TextTower::Bert, Some(script)) => (script.similarity)(d_embed),
            _ => self.similarity(d_embed),
        }
    }

    /// The region tower of the script with the text tower `text`.
    pub fn region_tower(&self, text: TextTower) -> RegionTower {
        match (text, self.bert_script) {
            (TextTower::Bert, Some(script)) => script.regions,
            _ => self.regions,
        }
    }

    /// Whether the system scores pairs by the cosine of pooled vectors at width `d_embed`
    /// (the heads table's answer for its head).
    pub fn is_cosine(&self, d_embed: usize) -> bool {
        self.similarity(d_embed).is_cosine()
    }

    /// Whether the system's score has a global part, the cosine of pooled vectors (cosine and
    /// multi-grained heads): the losses and layers that read pooled embeddings need one.
    pub fn has_global(&self, d_embed: usize) -> bool {
        self.similarity(d_embed).has_global()
    }

    /// The system's own pieces (no ablation).
    pub fn pieces(&self) -> Pieces {
        Pieces {
            instance_relation: self.instance_relation,
            local_weight: self.similarity(self.d_embed).local_weight(),
        }
    }

    /// The published training defaults (METHODS §8).
    pub fn training(&self) -> TrainingConfig {
        (self.training)()
    }

    /// The pooling of the region set and of the word set at joint width `d_embed`.
    pub fn pooling(&self, d_embed: usize) -> PoolingConfig {
        (self.pooling)(d_embed)
    }

    /// The instance relation layer at joint width `d_embed`, if the system has one.
    pub fn instance_relation(&self, d_embed: usize) -> Option<InstanceRelationConfig> {
        self.instance_relation.then(|| hrem_relation(d_embed))
    }

    /// The model: `image` and `text` towers (of the same width `D`), this system's pooling on
    /// both sides and scoring head (its BERT script's with a BERT text tower) and, if it has
    /// them, its region fusion and instance relation layer. With [`Towers::System`] a region
    /// tower becomes the system's own ([`ZooEntry::region_tower`]); with
    /// [`Towers::VseInfinity`] it stays as given.
    pub fn model(
        &self,
        image: ImageEncoderConfig,
        text: TextEncoderConfig,
        towers: Towers,
    ) -> VseModelConfig {
        self.model_with(image, text, towers, self.pieces())
    }

    /// [`ZooEntry::model`] with `pieces` instead of the system's own: the instance relation
    /// layer on or off, a multi-grained head's local weight (0 leaves the cosine head).
    pub fn model_with(
        &self,
        image: ImageEncoderConfig,
        text: TextEncoderConfig,
        towers: Towers,
        pieces: Pieces,
    ) -> VseModelConfig {
        let d_embed = image.d_embed();
        let text_tower = match text {
            TextEncoderConfig::Gru(_) => TextTower::BiGru,
            TextEncoderConfig::Bert(_) => TextTower::Bert,
            TextEncoderConfig::Clip(_) => TextTower::Clip,
            TextEncoderConfig::BertLevels(_) => TextTower::BertLevels,
        };
        // A multi-level head takes the image tower's layout of levels.
        let similarity = match image.level_regions() {
            Some(regions) => self
                .similarity_with(d_embed, text_tower)
                .with_image_levels(&regions),
            None => self.similarity_with(d_embed, text_tower),
        };
        let image = match image {
            ImageEncoderConfig::Regions(regions) if towers == Towers::System => {
                ImageEncoderConfig::Regions(
                    self.region_tower(text_tower)
                        .encoder(regions.d_feature, regions.d_embed),
                )
            }
            other => other,
        };
        let similarity = match pieces.local_weight {
            Some(weight) => similarity.with_local_weight(weight),
            None => similarity,
        };
        VseModelConfig::new(image, text, self.pooling(d_embed), self.pooling(d_embed))
            .with_similarity(similarity)
            .with_region_fusion(
                self.region_fusion
                    .then(|| MultiScaleFusionConfig::new(d_embed)),
            )
            .with_instance_relation(pieces.instance_relation.then(|| hrem_relation(d_embed)))
    }
}

/// VSE∞'s generalized pooling operator.
fn gpo(_: usize) -> PoolingConfig {
    PoolingConfig::Gpo(GpoConfig::new())
}

/// The mean over the set, for the fine-grained systems: their heads score the region and word
/// sets, and none of their published models pools (the mean is only the first stage of a
/// two-stage search).
fn mean(_: usize) -> PoolingConfig {
    PoolingConfig::Mean
}

/// CHAN's BERT script: the regions' `fc` alone, the mean over words of every word's best
/// region.
const CHAN_BERT: BertScript = BertScript {
    regions: RegionTower::Fc,
    similarity: |_| SimilarityConfig::Chan(ChanConfig::new()),
};

/// CHAN's BiGRU script: LogSumExp over words at temperature 0.1 (`--belta 0.1`).
fn chan_bigru(_: usize) -> SimilarityConfig {
    SimilarityConfig::Chan(
        ChanConfig::new()
            .with_aggregation(ChanAggregation::LogSumExp)
            .with_temperature(0.1),
    )
}

/// HREM's aggregation of each set at width `D` (the published settings: 16 heads, residual
/// weight 0.8, max-2 mean, dropout 0.1).
fn hrem_pooling(d_embed: usize) -> PoolingConfig {
    PoolingConfig::Hrem(HremPoolingConfig::new(d_embed))
}

/// HREM's instance relation layer at width `D` (the published settings): one post-norm
/// transformer layer with 16 heads, a feed-forward block `D` wide, dropout 0.1, each item
/// attending to the top 50% of each modality (`D` must be a multiple of 16).
pub fn hrem_relation(d_embed: usize) -> InstanceRelationConfig {
    InstanceRelationConfig::new(d_embed, 16, d_embed).with_dropout(0.1)
}

/// VSE∞'s schedule: AdamW 5e-4, weight decay 1e-4, 25 epochs decayed ×0.1 at 15, margin 0.2,
/// grad clip 2, VSE0 in epoch 0 then hardest negatives, region drop 0.2.
fn vse_infinity_training() -> TrainingConfig {
    TrainingConfig::default()
}

/// Every system `itm` implements.
pub const ZOO: &[ZooEntry] = &[
    ZooEntry {
        name: "vse_infinity_bigru",
        family: "VSE∞",
        summary: "VSE∞: region features and a BiGRU, GPO pooling, cosine",
        citation: "Chen et al., Learning the Best Pooling Strategy for Visual Semantic \
                   Embedding, CVPR 2021",
        d_embed: 1024,
        text: ZooText::BiGru,
        similarity: |d| COSINE.config(d),
        training: vse_infinity_training,
        region_fusion: false,
        pooling: gpo,
        regions: RegionTower::FcMlp,
        bert_script: None,
        instance_relation: false,
    },
    ZooEntry {
        name: "vse_infinity_bert",
        family: "VSE∞",
        summary: "VSE∞: region features and BERT (lr ×0.1), GPO pooling, cosine",
        citation: "Chen et al., Learning the Best Pooling Strategy for Visual Semantic \
                   Embedding, CVPR 2021",
        d_embed: 1024,
        text: ZooText::Bert,
        similarity: |d| COSINE.config(d),
        training: vse_infinity_training,
        region_fusion: false,
        pooling: gpo,
        regions: RegionTower::FcMlp,
        bert_script: None,
        instance_relation: false,
    },
    ZooEntry {
        name: "scan_t2i",
        family: "SCAN",
        summary: "SCAN text-to-image stacked cross attention, LogSumExp",
        citation: "Lee et al., Stacked Cross Attention for Image-Text Matching, ECCV 2018",
        d_embed: 1024,
        text: ZooText::BiGru,
        similarity: |d| SCAN_T2I.config(d),
        training: scan_training,
        region_fusion: false,
        pooling: mean,
        regions: RegionTower::Fc,
        bert_script: None,
        instance_relation: false,
    },
    ZooEntry {
        name: "scan_i2t",
        family: "SCAN",
        summary: "SCAN image-to-text stacked cross attention, LogSumExp",
        citation: "Lee et al., Stacked Cross Attention for Image-Text Matching, ECCV 2018",
        d_embed: 1024,
        text: ZooText::BiGru,
        similarity: |d| SCAN_I2T.config(d),
        training: scan_training,
        region_fusion: false,
        pooling: mean,
        regions: RegionTower::Fc,
        bert_script: None,
        instance_relation: false,
    },
    ZooEntry {
        name: "chan",
        family: "CHAN",
        summary: "CHAN: every word aligned to its most similar region",
        citation: "Pan et al., Fine-Grained Image-Text Matching by Cross-Modal Hard Aligning \
                   Network, CVPR 2023",
        d_embed: 1024,
        text: ZooText::BiGru,
        similarity: chan_bigru,
        training: chan_training,
        region_fusion: false,
        pooling: mean,
        regions: RegionTower::FcSelfAttention,
        bert_script: Some(CHAN_BERT),
        instance_relation: false,
    },
    ZooEntry {
        name: "chan_asdg",
        family: "CHAN-ASDG",
        summary: "CHAN-ASDG: CHAN hard alignment (mean over words) over multi-scale fused \
                  regions (our fusion design: feature-space neighbourhoods of 1, 2, 4 regions \
                  and the image mean, learned weighted sum), on VSE∞'s region tower (its code \
                  builds on VSE∞)",
        citation: "CHAN-ASDG: cross-modal hard aligning with multi-scale fusion (see METHODS §4)",
        d_embed: 1024,
        text: ZooText::BiGru,
        similarity: |d| CHAN.config(d),
        training: chan_training,
        region_fusion: true,
        pooling: mean,
        regions: RegionTower::FcMlp,
        bert_script: None,
        instance_relation: false,
    },
    ZooEntry {
        name: "hat",
        family: "HAT",
        summary: "HAT: Swin levels (last three stages) and BERT levels (three layers), each \
                  projected, SCAN i2t per level (λ1 = 9) summed, VSE++ hinge with hardest \
                  negatives; tiny towers from scratch or pretrained folders (model.swin, \
                  model.bert)",
        citation: "HAT: hierarchical alignment transformer for image-text matching \
                   (LuminosityX/HAT; see METHODS §3, §8)",
        d_embed: 768,
        text: ZooText::BertLevels,
        similarity: |d| MULTI_LEVEL_SCAN.config(d),
        training: hat_training,
        region_fusion: false,
        pooling: mean,
        regions: RegionTower::FcMlp,
        bert_script: None,
        instance_relation: false,
    },
    ZooEntry {
        name: "daim",
        family: "DAIM",
        summary: "DAIM: HAT's network with, per level, the adaptive margin (our design) on the \
                  level's scores and the distinguishability term (λ 0.1, our design) on the \
                  level's mean features",
        citation: "DAIM: distinguishability and adaptive-margin image-text matching (see \
                   METHODS §5, §8)",
        d_embed: 768,
        text: ZooText::BertLevels,
        similarity: |d| MULTI_LEVEL_SCAN.config(d),
        training: daim_training,
        region_fusion: false,
        pooling: mean,
        regions: RegionTower::FcMlp,
        bert_script: None,
        instance_relation: false,
    },
    ZooEntry {
        name: "daim_vse",
        family: "DAIM",
        summary: "DAIM losses on VSE∞ towers: hinge with an adaptive margin + distinguishability \
                  (λ 0.1); our design of both, and single-level (the paper's three-level network is \
                  the daim entry)",
        citation: "DAIM: distinguishability and adaptive-margin image-text matching (see \
                   METHODS §5, §8)",
        d_embed: 768,
        text: ZooText::BiGru,
        similarity: |d| COSINE.config(d),
        training: daim_vse_training,
        region_fusion: false,
        pooling: gpo,
        regions: RegionTower::FcMlp,
        bert_script: None,
        instance_relation: false,
    },
    ZooEntry {
        name: "aahr",
        family: "AAHR",
        summary: "AAHR as a multi-grained network (our design; the paper publishes no code): \
                  GPO-pooled cosine (global) + w x CHAN hard alignment, mean over words \
                  (local, w = 1), HREM's instance relation losses in training, the \
                  ambiguity-aware hinge on the summed score; VSE∞'s region tower",
        citation: "AAHR: Ambiguity-Aware and High-Order Relation Learning for Multi-Grained \
                   Image-Text Matching (see METHODS §5; builds on GPO, CHAN and HREM)",
        d_embed: 1024,
        text: ZooText::BiGru,
        similarity: |d| COSINE_CHAN.config(d),
        training: aahr_training,
        region_fusion: false,
        pooling: gpo,
        regions: RegionTower::FcMlp,
        bert_script: None,
        instance_relation: true,
    },
    ZooEntry {
        name: "esl_h",
        family: "ESL",
        summary: "ESL with heuristic (convolutional) aggregation of the measure units",
        citation: "Zhang et al., Enhanced Semantic Similarity Learning Framework for \
                   Image-Text Matching, TCSVT 2023",
        d_embed: 512,
        text: ZooText::BiGru,
        similarity: |d| SimilarityConfig::Esl(esl(d).with_aggregator(EslAggregator::Heuristic)),
        training: esl_training,
        region_fusion: false,
        pooling: mean,
        regions: RegionTower::FcMlp,
        bert_script: None,
        instance_relation: false,
    },
    ZooEntry {
        name: "esl_a",
        family: "ESL",
        summary: "ESL with adaptive (learned) aggregation of the measure units",
        citation: "Zhang et al., Enhanced Semantic Similarity Learning Framework for \
                   Image-Text Matching, TCSVT 2023",
        d_embed: 512,
        text: ZooText::BiGru,
        similarity: |d| ESL.config(d),
        training: esl_training,
        region_fusion: false,
        pooling: mean,
        regions: RegionTower::FcMlp,
        bert_script: None,
        instance_relation: false,
    },
    ZooEntry {
        name: "xdim",
        family: "X-Dim",
        summary: "X-Dim: learned cross-dimensional dependency of word-region products",
        citation: "Zhang et al., Unlocking the Power of Cross-Dimensional Semantic Dependency \
                   for Image-Text Matching, ACM MM 2023",
        d_embed: 1024,
        text: ZooText::BiGru,
        similarity: |d| XDIM.config(d),
        training: vse_infinity_training,
        region_fusion: false,
        pooling: mean,
        regions: RegionTower::FcMlp,
        bert_script: None,
        instance_relation: false,
    },
    ZooEntry {
        name: "hrem",
        family: "HREM",
        summary: "HREM: each set aggregated as 0.8 x its max-2 mean + 0.2 x the mean after a \
                  fragment relation layer (HREM's towers), losses on batch embeddings refined \
                  by an instance relation layer (training only), cosine retrieval",
        citation: "Fu et al., Learning Semantic Relationship among Instances for Image-Text \
                   Matching, CVPR 2023",
        d_embed: 1024,
        text: ZooText::BiGru,
        similarity: |d| COSINE.config(d),
        training: hrem_training,
        region_fusion: false,
        pooling: hrem_pooling,
        regions: RegionTower::FcMlp,
        bert_script: None,
        instance_relation: true,
    },
    ZooEntry {
        name: "clip",
        family: "CLIP",
        summary: "CLIP dual encoder: a ViT over pixels and a causal text transformer, each \
                  pooled to one token (class / end-of-text) and projected, cosine, InfoNCE with \
                  a learned temperature; from scratch (2+2 layers of width 64) or from a Hugging \
                  Face CLIP folder (model.clip)",
        citation: "Radford et al., Learning Transferable Visual Models From Natural Language \
                   Supervision, ICML 2021",
        d_embed: 512,
        text: ZooText::Clip,
        similarity: |d| COSINE.config(d),
        training: clip_training,
        region_fusion: false,
        // CLIP's towers pool themselves (class and end-of-text tokens): mean pooling of that
        // set of one only normalises it.
        pooling: mean,
        regions: RegionTower::FcMlp,
        bert_script: None,
        instance_relation: false,
    },
];

/// CLIP: symmetric InfoNCE with the temperature learned from `1/0.07` and clamped at 100
/// (METHODS §5), no region drop (the towers read pixels). METHODS §8 gives no other CLIP
/// defaults: the optimiser and schedule are VSE∞'s (AdamW 5e-4, weight decay 1e-4, batch 128,
/// 25 epochs decayed ×0.1 at 15, grad clip 2), our choice.
fn clip_training() -> TrainingConfig {
    TrainingConfig {
        loss: LossKind::InfoNce,
        region_drop: 0.0,
        ..TrainingConfig::default()
    }
}

/// AAHR (our design): VSE∞'s schedule and margin 0.2 (METHODS §8 has no AAHR row), the
/// ambiguity-aware hinge (VSE0 in epoch 0, then the hardest weighted negatives) on the
/// multi-grained score, HREM's relation losses after HREM's 8000 warm-up steps.
fn aahr_training() -> TrainingConfig {
    TrainingConfig {
        loss: LossKind::AmbiguityAware,
        relation_warmup_steps: 8000,
        ..TrainingConfig::default()
    }
}

/// HREM: VSE∞'s schedule (METHODS §8 has no HREM row; ours), with the relation losses joining
/// after HREM's 8000 warm-up steps.
fn hrem_training() -> TrainingConfig {
    TrainingConfig {
        relation_warmup_steps: 8000,
        ..TrainingConfig::default()
    }
}

/// CHAN: VSE∞'s schedule with margin 0.05.
fn chan_training() -> TrainingConfig {
    TrainingConfig {
        margin: 0.05,
        ..TrainingConfig::default()
    }
}

/// HAT/DAIM (METHODS §8): batch 58, Adam 1e-4 (no weight decay) decayed ×0.1 at epoch 10,
/// pretrained backbones frozen until epoch 10's validation (as HAT), the adaptive margin
/// (hardest negatives after one VSE0 epoch, as VSE∞) and the distinguishability term with
/// λ = 0.1. The epoch count (20) is ours: the paper states only the decay step.
fn daim_training() -> TrainingConfig {
    TrainingConfig {
        epochs: 20,
        batch_size: 58,
        learning_rate: 1e-4,
        weight_decay: 0.0,
        lr_decay_epoch: 10,
        loss: LossKind::AdaptiveMargin,
        distinguishability: 0.1,
        frozen_backbone_epochs: HAT_FROZEN_EPOCHS,
        ..TrainingConfig::default()
    }
}

/// DAIM's terms on VSE∞'s towers: [`daim_training`] without backbones to freeze.
fn daim_vse_training() -> TrainingConfig {
    TrainingConfig {
        frozen_backbone_epochs: 0,
        ..daim_training()
    }
}

/// Epochs in which HAT keeps its pretrained Swin and BERT frozen: they are frozen when the
/// model is built and unfrozen at the end of epoch 10's validation, so they first learn in
/// epoch 11 (0-based), at the decayed rate.
pub const HAT_FROZEN_EPOCHS: usize = 11;

/// HAT (METHODS §8): Adam 1e-4 (no weight decay), batch 58, decayed ×0.1 at epoch 10, the
/// VSE++ hinge loss with margin 0.2 and hardest negatives from the first step (HAT's
/// `compute_SCAN`), no region drop (the towers read pixels), pretrained backbones frozen for
/// [`HAT_FROZEN_EPOCHS`]. The epoch count (20) is ours.
fn hat_training() -> TrainingConfig {
    TrainingConfig {
        epochs: 20,
        batch_size: 58,
        learning_rate: 1e-4,
        weight_decay: 0.0,
        lr_decay_epoch: 10,
        mining: NegativeMining::Hardest,
        warmup_epochs: 0,
        region_drop: 0.0,
        frozen_backbone_epochs: HAT_FROZEN_EPOCHS,
        ..TrainingConfig::default()
    }
}

/// SCAN: Adam 2e-4 (AdamW without weight decay), 30 epochs decayed at 15, hardest negatives
/// from the start, no region drop.
fn scan_training() -> TrainingConfig {
    TrainingConfig {
        epochs: 30,
        learning_rate: 2e-4,
        weight_decay: 0.0,
        mining: NegativeMining::Hardest,
        warmup_epochs: 0,
        region_drop: 0.0,
        ..TrainingConfig::default()
    }
}

/// ESL on Flickr30K: 30 epochs decayed at 15 (COCO: 20, decayed at 10).
fn esl_training() -> TrainingConfig {
    TrainingConfig {
        epochs: 30,
        ..TrainingConfig::default()
    }
}

/// The entry named `name`.
pub fn lookup(name: &str) -> Option<&'static ZooEntry> {
    ZOO.iter().find(|entry| entry.name == name)
}

/// The families of the zoo in order, each once (`VSE∞, SCAN, CHAN, …`), for help texts.
pub fn families() -> String {
    let mut families: Vec<&str> = Vec::new();
    for entry in ZOO {
        if !families.contains(&entry.family) {
            families.push(entry.family);
        }
    }
    families.join(", ")
}

/// The names of every entry, comma-separated (for error messages and help).
pub fn names() -> String {
    ZOO.iter()
        .map(|entry| entry.name)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Device;
    use itm_core::encoders::{ClipConfig, GruTextEncoderConfig, RegionEncoderConfig};

    /// Every entry builds a model at a small width and at its published width the heads get
    /// the published settings.
    #[test]
    fn every_entry_builds() {
        let device = Device::flex();
        for entry in ZOO {
            assert_eq!(lookup(entry.name).map(|e| e.name), Some(entry.name));
            let d = 16;
            let image = ImageEncoderConfig::Regions(RegionEncoderConfig::new(8, d));
            let text = TextEncoderConfig::Gru(GruTextEncoderConfig::new(20, d).with_d_word(8));
            let model = entry.model(image, text, Towers::System).init(&device);
            assert_eq!(model.is_cosine(), entry.is_cosine(d), "{}", entry.name);
            assert_eq!(model.fine_grained().is_none(), entry.is_cosine(d));
            let training = entry.training();
            assert!(training.lr_decay_epoch < training.epochs, "{}", entry.name);
        }
        assert!(lookup("nope").is_none());
        let SimilarityConfig::Esl(esl) = lookup("esl_h").unwrap().similarity(512) else {
            panic!("ESL")
        };
        assert_eq!((esl.levels, esl.aggregator), (9, EslAggregator::Heuristic));
        // ESL's level count is the heads table's one rule.
        for d in [96, 100, 7, 1024] {
            let SimilarityConfig::Esl(esl) = lookup("esl_a").unwrap().similarity(d) else {
                panic!("ESL")
            };
            assert_eq!(esl.levels, itm_core::similarity::esl_levels(d), "D = {d}");
        }
        assert_eq!(
            families(),
            "VSE∞, SCAN, CHAN, CHAN-ASDG, HAT, DAIM, AAHR, ESL, X-Dim, HREM, CLIP"
        );
        assert_eq!(lookup("chan").unwrap().training().margin, 0.05);
        let asdg = lookup("chan_asdg").unwrap();
        let model = asdg.model(
            ImageEncoderConfig::Regions(RegionEncoderConfig::new(8, 16)),
            TextEncoderConfig::Gru(GruTextEncoderConfig::new(20, 16)),
            Towers::System,
        );
        assert_eq!(model.region_fusion.map(|f| f.d_model), Some(16));
        assert_eq!(asdg.training().margin, 0.05);
        let daim = lookup("daim").unwrap().training();
        assert_eq!(
            (daim.loss, daim.distinguishability, daim.batch_size),
            (LossKind::AdaptiveMargin, 0.1, 58)
        );
        assert_eq!(
            lookup("aahr").unwrap().training().loss,
            LossKind::AmbiguityAware
        );
        assert_eq!(
            lookup("aahr").unwrap().training().relation_warmup_steps,
            8000
        );
        assert_eq!(
            lookup("vse_infinity_bigru").unwrap().training().loss,
            LossKind::Hinge
        );
        assert_eq!(lookup("scan_t2i").unwrap().training().learning_rate, 2e-4);
        let hrem = lookup("hrem").unwrap();
        let model = hrem.model(
            ImageEncoderConfig::Regions(RegionEncoderConfig::new(8, 1024)),
            TextEncoderConfig::Gru(GruTextEncoderConfig::new(20, 1024)),
            Towers::System,
        );
        let relation = model.instance_relation.expect("HREM's relation layer");
        assert_eq!(
            (relation.d_model, relation.n_heads, relation.d_ff),
            (1024, 16, 1024)
        );
        assert_eq!((relation.keep_ratio, relation.dropout), (0.5, 0.1));
        for pooling in [&model.image_pooling, &model.text_pooling] {
            let PoolingConfig::Hrem(hrem) = pooling else {
                panic!("HREM's aggregation")
            };
            assert_eq!(
                (hrem.d_model, hrem.heads, hrem.k, hrem.residual_weight),
                (1024, 16, 2, 0.8)
            );
        }
        assert_eq!(hrem.training().relation_warmup_steps, 8000);
        let vse = lookup("vse_infinity_bigru").unwrap();
        assert!(vse.instance_relation(1024).is_none());
        assert!(matches!(vse.pooling(1024), PoolingConfig::Gpo(_)));
    }

    /// The `aahr` entry is GPO + cosine (global), CHAN's mean hard alignment (local, w = 1),
    /// HREM's relation layer, VSE∞'s region tower; switching a piece off gives exactly the
    /// model without it, built by hand.
    #[test]
    fn aahr_is_the_multi_grained_composition_and_its_pieces_switch_off() {
        use itm_core::similarity::MultiGrainedConfig;
        let aahr = lookup("aahr").unwrap();
        let regions = || ImageEncoderConfig::Regions(RegionEncoderConfig::new(8, 32));
        let gru = || TextEncoderConfig::Gru(GruTextEncoderConfig::new(20, 32));
        assert_eq!(
            aahr.pieces(),
            Pieces {
                instance_relation: true,
                local_weight: Some(1.0)
            }
        );
        assert!(aahr.has_global(32) && !aahr.is_cosine(32));
        let by_hand = || {
            VseModelConfig::new(
                regions(),
                gru(),
                PoolingConfig::Gpo(GpoConfig::new()),
                PoolingConfig::Gpo(GpoConfig::new()),
            )
        };
        let multi =
            |w: f64| SimilarityConfig::MultiGrained(MultiGrainedConfig::new().with_local_weight(w));
        let relation = || Some(hrem_relation(32));
        let full = aahr.model(regions(), gru(), Towers::System);
        assert_eq!(
            full.to_string(),
            by_hand()
                .with_similarity(multi(1.0))
                .with_instance_relation(relation())
                .to_string()
        );
        let SimilarityConfig::MultiGrained(head) = &full.similarity else {
            panic!("multi-grained")
        };
        assert_eq!(head.local.aggregation, ChanAggregation::Mean);
        let with = |instance_relation, local_weight| {
            aahr.model_with(
                regions(),
                gru(),
                Towers::System,
                Pieces {
                    instance_relation,
                    local_weight,
                },
            )
            .to_string()
        };
        // −relation, −local, both, another weight.
        let no_relation = by_hand().with_similarity(multi(1.0)).to_string();
        assert_eq!(with(false, Some(1.0)), no_relation);
        let no_local = by_hand().with_instance_relation(relation()).to_string();
        assert_eq!(with(true, Some(0.0)), no_local);
        assert_eq!(with(false, Some(0.0)), by_hand().to_string());
        let half = by_hand()
            .with_similarity(multi(0.5))
            .with_instance_relation(relation());
        assert_eq!(with(true, Some(0.5)), half.to_string());
        // The other entries have no local weight; HREM's layer is theirs to switch.
        let hrem = lookup("hrem").unwrap().pieces();
        assert_eq!((hrem.instance_relation, hrem.local_weight), (true, None));
        assert!(!lookup("chan").unwrap().has_global(32));
    }

    /// `hat` and `daim` are HAT's network: the multi-level head takes the layout of the Swin
    /// levels it is given; DAIM trains it with the adaptive margin and distinguishability.
    #[test]
    fn hat_and_daim_are_the_multi_level_network() {
        use itm_core::encoders::{
            BertLevelEncoderConfig, SwinConfig, SwinLevelEncoderConfig, hat_text_layers,
        };
        let image = ImageEncoderConfig::SwinLevels(SwinLevelEncoderConfig::new(
            SwinConfig::tiny().with_stage_norms(true),
            16,
        ));
        let text = TextEncoderConfig::BertLevels(BertLevelEncoderConfig::new(
            crate::towers::tiny_bert(30),
            hat_text_layers(3),
            16,
        ));
        for name in ["hat", "daim"] {
            let entry = lookup(name).unwrap();
            assert_eq!((entry.text, entry.d_embed), (ZooText::BertLevels, 768));
            let model = entry.model(image.clone(), text.clone(), Towers::System);
            let SimilarityConfig::MultiLevel(head) = &model.similarity else {
                panic!("{name}: the multi-level head")
            };
            assert_eq!(head.image_regions, [256, 64, 16]);
            assert_eq!(head.level_head.lambda_softmax, Some(9.0));
            assert!(!model.similarity.unit_sets());
        }
        let hat = lookup("hat").unwrap().training();
        assert_eq!(
            (
                hat.loss,
                hat.margin,
                hat.mining,
                hat.batch_size,
                hat.learning_rate
            ),
            (LossKind::Hinge, 0.2, NegativeMining::Hardest, 58, 1e-4)
        );
        assert_eq!((hat.warmup_epochs, hat.lr_decay_epoch), (0, 10));
        // HAT unfreezes its pretrained backbones after epoch 10's validation.
        assert_eq!(hat.frozen_backbone_epochs, 11);
        let daim = lookup("daim").unwrap().training();
        assert_eq!(
            (daim.loss, daim.distinguishability),
            (LossKind::AdaptiveMargin, 0.1)
        );
    }

    /// The `clip` entry is CLIP's named dual-encoder configuration trained with InfoNCE.
    #[test]
    fn clip_entry_is_the_clip_dual_encoder() {
        let clip = lookup("clip").unwrap();
        assert_eq!((clip.text, clip.d_embed), (ZooText::Clip, 512));
        let training = clip.training();
        assert_eq!(
            (training.loss, training.region_drop),
            (LossKind::InfoNce, 0.0)
        );
        let config = ClipConfig::small(40, 39, 32, 16);
        let model = clip.model(
            ImageEncoderConfig::Clip(config.image_encoder()),
            TextEncoderConfig::Clip(config.text_encoder()),
            Towers::System,
        );
        assert_eq!(model.to_string(), VseModelConfig::clip(&config).to_string());
        assert!(matches!(model.image_pooling, PoolingConfig::Mean));
        assert!(matches!(model.text_pooling, PoolingConfig::Mean));
    }

    /// Each system gets its authors' region tower and, for CHAN, the head of the script of its
    /// text tower; `Towers::VseInfinity` keeps VSE∞'s region tower under the same head.
    #[test]
    fn systems_get_their_own_towers() {
        let regions = || ImageEncoderConfig::Regions(RegionEncoderConfig::new(8, 16));
        let gru = || TextEncoderConfig::Gru(GruTextEncoderConfig::new(20, 16));
        let bert = || {
            TextEncoderConfig::Bert(itm_core::encoders::BertTextEncoderConfig::new(
                itm_core::encoders::BertConfig::new(30, 16, 1, 2, 32, 16),
                16,
            ))
        };
        let tower = |config: &VseModelConfig| match &config.image {
            ImageEncoderConfig::Regions(r) => (r.mlp, r.self_attention),
            other => panic!("{other:?}"),
        };
        let chan = lookup("chan").unwrap();
        let bigru = chan.model(regions(), gru(), Towers::System);
        assert_eq!(tower(&bigru), (false, Some(8)));
        assert!(matches!(
            bigru.similarity,
            SimilarityConfig::Chan(ChanConfig { aggregation: ChanAggregation::LogSumExp, temperature, .. }) if temperature == 0.1
        ));
        assert!(matches!(bigru.image_pooling, PoolingConfig::Mean));
        let with_bert = chan.model(regions(), bert(), Towers::System);
        assert_eq!(tower(&with_bert), (false, None));
        assert!(matches!(
            with_bert.similarity,
            SimilarityConfig::Chan(ChanConfig {
                aggregation: ChanAggregation::Mean,
                ..
            })
        ));
        let ablation = chan.model(regions(), gru(), Towers::VseInfinity);
        assert_eq!(tower(&ablation), (true, None));
        assert_eq!(
            ablation.similarity.to_string(),
            bigru.similarity.to_string()
        );
        for name in ["scan_t2i", "scan_i2t"] {
            let scan = lookup(name)
                .unwrap()
                .model(regions(), gru(), Towers::System);
            assert_eq!(tower(&scan), (false, None), "{name}");
        }
        for name in ["vse_infinity_bigru", "esl_a", "xdim", "hrem", "aahr"] {
            let model = lookup(name)
                .unwrap()
                .model(regions(), gru(), Towers::System);
            assert_eq!(tower(&model), (true, None), "{name}");
        }
        for tower in RegionTower::ALL {
            assert!(!tower.name().is_empty() && !tower.summary().is_empty());
        }
    }
}
