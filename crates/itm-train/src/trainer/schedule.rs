//! Learning rates: VSE∞'s step decay over epochs, and the rate of every parameter group the
//! model declares
//! ([`VseModel::parameter_groups`](itm_core::VseModel::parameter_groups)).

use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrScheduler};
use itm_core::models::ParameterGroup;

/// `lr(epoch) = base · factor^{[epoch ≥ decay_epoch]}` (VSE∞'s single step).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepDecay {
    /// Initial learning rate.
    pub base: f64,
    /// First epoch (0-based) at the decayed rate.
    pub decay_epoch: usize,
    /// Multiplier applied from `decay_epoch` on.
    pub factor: f64,
}

impl StepDecay {
    /// The learning rate of `epoch` (0-based).
    pub fn at(&self, epoch: usize) -> f64 {
        if epoch >= self.decay_epoch {
            self.base * self.factor
        } else {
            self.base
        }
    }
}

/// The learning rate of every parameter: `rate`, times its group's factor for a parameter in
/// one of `groups` (e.g. a tenth for a pretrained BERT transformer, as VSE∞ fine-tunes it).
pub(super) fn learning_rates(rate: f64, groups: &[ParameterGroup]) -> ModuleLearningRate {
    groups
        .iter()
        .fold(ModuleLrScheduler::new(rate), |scheduler, group| {
            scheduler.with_group(group.parameters.clone(), rate * group.rate_factor)
        })
        .step()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Param;
    use burn::optim::{AdamWConfig, GradientsParams};
    use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
    use itm_core::VseModelConfig;
    use itm_core::encoders::{BertConfig, ImageInput, TextEncoder};
    use itm_core::loss::HingeLossConfig;

    #[test]
    fn decays_once() {
        let schedule = StepDecay {
            base: 5e-4,
            decay_epoch: 15,
            factor: 0.1,
        };
        assert_eq!(schedule.at(0), 5e-4);
        assert_eq!(schedule.at(14), 5e-4);
        assert!((schedule.at(15) - 5e-5).abs() < 1e-12);
        assert!((schedule.at(24) - 5e-5).abs() < 1e-12);
    }

    /// First AdamW step: every update is ≈ lr · sign(gradient), so the ratio of the mean update
    /// sizes of a BERT weight and of the projection is the ratio of their learning rates.
    #[test]
    fn bert_learns_at_a_tenth_of_the_rate() {
        let device = Device::flex().autodiff();
        device.seed(1);
        let bert = BertConfig::new(30, 8, 1, 2, 16, 12);
        let config = VseModelConfig::vse_infinity_bert(6, bert, 8);
        let model = config.init(&device);
        let regions = Tensor::<3>::random([4, 3, 6], Distribution::Normal(0.0, 1.0), &device);
        let tokens = Tensor::<2, Int>::from_data(
            TensorData::new(
                (0..20).map(|t| (t % 29 + 1) as i64).collect::<Vec<_>>(),
                [4, 5],
            ),
            &device,
        );
        let images = model.encode_images(ImageInput::Regions {
            features: regions,
            lengths: vec![3; 4],
        });
        let captions = model.encode_captions(tokens, &[5, 4, 3, 5]);
        let loss = HingeLossConfig::new().with_warmup_epochs(9).init().forward(
            model.similarity(images, captions),
            None,
            0,
        );
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let before = model.clone();
        let mut optimizer = AdamWConfig::new().with_weight_decay(0.0).init();
        let rates = learning_rates(1e-2, &model.parameter_groups());
        let after = optimizer.step(rates, model, grads);
        let change = |a: &Param<Tensor<2>>, b: &Param<Tensor<2>>| {
            let delta = (a.val() - b.val()).abs().mean().into_scalar::<f32>();
            delta as f64
        };
        let (TextEncoder::Bert(old), TextEncoder::Bert(new)) = (&before.text, &after.text) else {
            unreachable!("a BERT model")
        };
        let (old_ff, new_ff) = (
            &old.bert.encoder.layers[0].pwff,
            &new.bert.encoder.layers[0].pwff,
        );
        let bert_step = change(&old_ff.linear_inner.weight, &new_ff.linear_inner.weight);
        let projection_step = change(&old.projection.weight, &new.projection.weight);
        assert!(projection_step > 5e-3, "projection moved {projection_step}");
        let ratio = bert_step / projection_step;
        assert!(
            (0.07..0.13).contains(&ratio),
            "BERT/projection update ratio {ratio}"
        );
    }
}
