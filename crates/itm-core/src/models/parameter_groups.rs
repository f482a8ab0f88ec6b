//! What a model tells its trainer about itself: the groups of parameters that learn at their
//! own rate, and the caption augmentation its text tower is trained with.
//!
//! The trainer asks these questions instead of matching on parameter paths or encoder names:
//! a new tower declares its groups here, in one place.

use burn::module::{Module, ModuleVisitor, Param, ParamGroup, ParamId};
use burn::tensor::Tensor;

use super::{VseModel, VseModelConfig};
use crate::encoders::{ImageEncoder, TextEncoder, TextEncoderConfig};

/// A set of a model's parameters that learns at a multiple of the run's learning rate.
#[derive(Clone, Debug)]
pub struct ParameterGroup {
    /// What the parameters are, for messages (e.g. `"pretrained text transformer"`).
    pub name: &'static str,
    /// The parameters, by id (the ids of a module's parameters survive optimiser steps).
    pub parameters: ParamGroup,
    /// Multiplier of the run's learning rate for these parameters.
    pub rate_factor: f64,
}

/// The augmentation a text tower's captions get in training.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptionAugmentation {
    /// The captions as tokenised.
    None,
    /// VSE∞'s subword augmentation (mask, replace or delete subwords), for a tower that reads
    /// subwords from a tokenizer with a mask token.
    Subwords,
}

/// Learning-rate factor of a pretrained BERT transformer: VSE∞ fine-tunes it at a tenth of the
/// rate of the rest of the model.
const PRETRAINED_TEXT_RATE: f64 = 0.1;

impl VseModel {
    /// The groups of parameters that learn at their own rate; every other parameter learns at
    /// the run's rate. A BERT text tower's transformer learns at a tenth of it (VSE∞); its
    /// projection, the image tower, the head, CLIP's towers and HAT's BERT levels learn at the
    /// run's rate.
    pub fn parameter_groups(&self) -> Vec<ParameterGroup> {
        match &self.text {
            TextEncoder::Bert(encoder) => vec![ParameterGroup {
                name: "pretrained text transformer",
                parameters: ParamGroup::ids_from_module(encoder.bert.clone()),
                rate_factor: PRETRAINED_TEXT_RATE,
            }],
            // HAT and DAIM train their towers at one rate (Adam 1e-4, METHODS §8).
            TextEncoder::Gru(_) | TextEncoder::Clip(_) | TextEncoder::BertLevels(_) => Vec::new(),
        }
    }
}

/// Which of a model's backbones a run loaded pretrained (and may keep frozen): the image
/// tower's and the text tower's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backbones {
    /// The image tower's backbone (the Swin of HAT's levels tower).
    pub image: bool,
    /// The text tower's backbone (the BERT of HAT's levels tower).
    pub text: bool,
}

impl VseModel {
    /// The parameters of the backbones in `which` that can be frozen: the Swin inside a Swin
    /// levels tower and the BERT inside a BERT levels tower (HAT, DAIM); their level
    /// projections are not part of them. Other towers have none.
    pub fn backbone_parameters(&self, which: Backbones) -> Vec<ParamId> {
        let mut ids = ParamIds(Vec::new());
        if which.image
            && let ImageEncoder::SwinLevels(tower) = &self.image
        {
            tower.swin.visit(&mut ids);
        }
        if which.text
            && let TextEncoder::BertLevels(tower) = &self.text
        {
            tower.bert.visit(&mut ids);
        }
        ids.0
    }
}

/// Collects the ids of the float parameters a module visits.
struct ParamIds(Vec<ParamId>);

impl ModuleVisitor for ParamIds {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        self.0.push(param.id);
    }
}

impl VseModelConfig {
    /// The augmentation the text tower's captions get in training: subword augmentation for a
    /// BERT tower (VSE∞), none for a BiGRU, CLIP's text transformer or HAT's BERT levels.
    pub fn caption_augmentation(&self) -> CaptionAugmentation {
        match &self.text {
            TextEncoderConfig::Bert(_) => CaptionAugmentation::Subwords,
            TextEncoderConfig::Gru(_)
            | TextEncoderConfig::Clip(_)
            | TextEncoderConfig::BertLevels(_) => CaptionAugmentation::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoders::BertConfig;
    use burn::tensor::Device;

    /// Every float parameter id of a module.
    fn ids(module: &impl Module) -> Vec<ParamId> {
        let mut visitor = ParamIds(Vec::new());
        module.visit(&mut visitor);
        visitor.0
    }

    /// A BERT model's one group holds exactly its transformer's parameters, at a tenth of the
    /// rate: not the projection, nor any image-tower parameter.
    #[test]
    fn a_bert_transformer_learns_at_a_tenth() {
        let device = Device::default();
        let config = VseModelConfig::vse_infinity_bert(6, BertConfig::new(30, 8, 1, 2, 16, 12), 8);
        let model = config.init(&device);
        let groups = model.parameter_groups();
        assert_eq!(groups.len(), 1);
        assert_eq!(groups[0].rate_factor, 0.1);
        let TextEncoder::Bert(encoder) = &model.text else {
            unreachable!("a BERT model")
        };
        let inside = ids(&encoder.bert);
        assert!(!inside.is_empty());
        for id in &inside {
            assert!(groups[0].parameters.matches(id, None), "{id:?} left out");
        }
        let outside: Vec<ParamId> = ids(&encoder.projection)
            .into_iter()
            .chain(ids(&model.image))
            .collect();
        assert!(!outside.is_empty());
        for id in &outside {
            assert!(!groups[0].parameters.matches(id, None), "{id:?} taken in");
        }
        assert_eq!(config.caption_augmentation(), CaptionAugmentation::Subwords);
    }

    /// A BiGRU model learns at one rate and its word captions are not augmented.
    #[test]
    fn a_bigru_model_has_no_groups() {
        let config = VseModelConfig::vse_infinity_bigru_sized(6, 12, 8, 4);
        let model = config.init(&Device::default());
        assert!(model.parameter_groups().is_empty());
        assert_eq!(config.caption_augmentation(), CaptionAugmentation::None);
    }
}
