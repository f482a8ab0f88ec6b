//! Visual-semantic embedding with global vectors (VSE++ / VSE∞).

use burn::config::Config;
use burn::module::Module;
use burn::tensor::{Device, Int, Tensor};

use crate::encoders::{
    BertConfig, BertTextEncoderConfig, ClipConfig, GruTextEncoderConfig, ImageEncoder,
    ImageEncoderConfig, ImageInput, RegionEncoderConfig, ResNetEncoderConfig, TextEncoder,
    TextEncoderConfig, VitEncoderConfig,
};
use crate::fusion::{
    InstanceRelation, InstanceRelationConfig, MultiScaleFusion, MultiScaleFusionConfig,
};
use crate::masking::l2_normalize;
use crate::pooling::{GpoConfig, Pooling, PoolingConfig};
use crate::similarity::FineGrainedSimilarity;
// The heads live in the heads table; they are re-exported here, where models name them.
pub use crate::similarity::{CosineHead, SimilarityConfig, SimilarityHead};

/// Configuration of a [`VseModel`].
#[derive(Config, Debug)]
pub struct VseModelConfig {
    /// Image encoder (regions or pixels → `D`).
    pub image: ImageEncoderConfig,
    /// Text encoder (words or subwords → `D`).
    pub text: TextEncoderConfig,
    /// Pooling of the region set.
    pub image_pooling: PoolingConfig,
    /// Pooling of the word set.
    pub text_pooling: PoolingConfig,
    /// How a pair is scored: the cosine of the pooled vectors, a fine-grained similarity of
    /// the region and word sets (the poolings are then unused), or the sum of both (the
    /// multi-grained head).
    #[config(default = "SimilarityConfig::Cosine")]
    pub similarity: SimilarityConfig,
    /// Multi-scale fusion of the encoded regions before pooling or fine-grained scoring
    /// (CHAN-ASDG); `None` leaves the regions as encoded.
    #[config(default = "None")]
    pub region_fusion: Option<MultiScaleFusionConfig>,
    /// HREM's instance relation layer over a training batch's pooled embeddings (heads with
    /// a global part: cosine, multi-grained). The trainer adds losses on the relation-enhanced embeddings; encoding, scoring
    /// and retrieval never use it. `None`: no layer.
    #[config(default = "None")]
    pub instance_relation: Option<InstanceRelationConfig>,
}

impl VseModelConfig {
    /// VSE∞ with precomputed regions and a BiGRU text encoder (Chen et al., CVPR 2021):
    /// `D = 1024`, 300-d word embeddings, GPO on both sides.
    pub fn vse_infinity_bigru(d_feature: usize, vocab_size: usize) -> Self {
        Self::vse_infinity_bigru_sized(d_feature, vocab_size, 1024, 300)
    }

    /// The VSE∞ BiGRU architecture at another width (small widths train quickly on `shapes`).
    pub fn vse_infinity_bigru_sized(
        d_feature: usize,
        vocab_size: usize,
        d_embed: usize,
        d_word: usize,
    ) -> Self {
        Self::gpo_bigru(
            ImageEncoderConfig::Regions(RegionEncoderConfig::new(d_feature, d_embed)),
            vocab_size,
            d_word,
        )
    }

    /// VSE∞ with a small ResNet over pixels instead of regions (stages `widths`, `D` wide).
    pub fn resnet_bigru(
        widths: Vec<usize>,
        vocab_size: usize,
        d_embed: usize,
        d_word: usize,
    ) -> Self {
        Self::gpo_bigru(
            ImageEncoderConfig::ResNet(ResNetEncoderConfig::new(widths, d_embed)),
            vocab_size,
            d_word,
        )
    }

    /// VSE∞ with a ViT over `image_size` pixels (`patch_size` patches, `depth` layers of width
    /// `d_model`, 4 heads) instead of regions.
    pub fn vit_bigru(
        image_size: usize,
        patch_size: usize,
        d_model: usize,
        depth: usize,
        vocab_size: usize,
        d_embed: usize,
        d_word: usize,
    ) -> Self {
        Self::gpo_bigru(
            ImageEncoderConfig::Vit(VitEncoderConfig::new(
                image_size, patch_size, d_model, depth, 4, d_embed,
            )),
            vocab_size,
            d_word,
        )
    }

    /// Any image encoder, a BiGRU text encoder of the same width, GPO on both sides.
    pub fn gpo_bigru(image: ImageEncoderConfig, vocab_size: usize, d_word: usize) -> Self {
        let d_embed = image.d_embed();
        Self::new(
            image,
            TextEncoderConfig::Gru(
                GruTextEncoderConfig::new(vocab_size, d_embed).with_d_word(d_word),
            ),
            PoolingConfig::Gpo(GpoConfig::new()),
            PoolingConfig::Gpo(GpoConfig::new()),
        )
    }

    /// VSE∞ with precomputed regions and a BERT-family text encoder (`bert`, e.g. the
    /// `config.json` of bert-base-uncased): `BERT → Linear(hidden → D) → GPO`; published
    /// `D = 1024`.
    pub fn vse_infinity_bert(d_feature: usize, bert: BertConfig, d_embed: usize) -> Self {
        Self::new(
            ImageEncoderConfig::Regions(RegionEncoderConfig::new(d_feature, d_embed)),
            TextEncoderConfig::Bert(BertTextEncoderConfig::new(bert, d_embed)),
            PoolingConfig::Gpo(GpoConfig::new()),
            PoolingConfig::Gpo(GpoConfig::new()),
        )
    }

    /// CLIP as a dual encoder (Radford et al., ICML 2021): its vision and text towers
    /// ([`ClipConfig::image_encoder`], [`ClipConfig::text_encoder`]), each giving one
    /// projected token, which mean pooling over that set of one l2-normalises; cosine head.
    /// Trained with InfoNCE, whose temperature replaces CLIP's `logit_scale`.
    pub fn clip(clip: &ClipConfig) -> Self {
        Self::new(
            ImageEncoderConfig::Clip(clip.image_encoder()),
            TextEncoderConfig::Clip(clip.text_encoder()),
            PoolingConfig::Mean,
            PoolingConfig::Mean,
        )
    }

    /// Whether pairs are scored by the cosine of the pooled embeddings (the heads table's
    /// answer for [`VseModelConfig::similarity`]).
    pub fn is_cosine(&self) -> bool {
        self.similarity.is_cosine()
    }

    /// Whether the score includes the cosine of the pooled embeddings (cosine and
    /// multi-grained heads).
    pub fn has_global(&self) -> bool {
        self.similarity.has_global()
    }

    /// Builds the model on `device`.
    pub fn init(&self, device: &Device) -> VseModel {
        assert_eq!(
            self.image.d_embed(),
            self.text.d_embed(),
            "image and text must share the joint width D"
        );
        if let Some(relation) = &self.instance_relation {
            assert_eq!(
                relation.d_model,
                self.image.d_embed(),
                "the instance relation layer must have the joint width D"
            );
        }
        VseModel {
            image: self.image.init(device),
            image_pooling: self.image_pooling.init(device),
            text: self.text.init(device),
            text_pooling: self.text_pooling.init(device),
            similarity: self.similarity.init(device),
            region_fusion: self
                .region_fusion
                .as_ref()
                .map(|config| config.init(device)),
            instance_relation: self
                .instance_relation
                .as_ref()
                .map(|config| config.init(device)),
        }
    }
}

/// Two towers that map images and captions to sets of features in one space, scored by the
/// cosine of their pooled vectors or by a fine-grained similarity of the sets.
#[derive(Module, Debug)]
pub struct VseModel {
    /// Image encoder.
    pub image: ImageEncoder,
    /// Pooling of the encoded regions or grid cells.
    pub image_pooling: Pooling,
    /// Text encoder.
    pub text: TextEncoder,
    /// Pooling of the encoded words.
    pub text_pooling: Pooling,
    /// Scoring head.
    pub similarity: SimilarityHead,
    /// Multi-scale fusion of the encoded regions, if configured.
    pub region_fusion: Option<MultiScaleFusion>,
    /// HREM's instance relation layer, if configured (training losses only).
    pub instance_relation: Option<InstanceRelation>,
}

/// One level of a batch ([`VseModel::level_batch`]).
#[derive(Debug, Clone)]
pub struct LevelBatch {
    /// The level's scores `[n_img, n_cap]`.
    pub scores: Tensor<2>,
    /// The images' mean features at this level `[n_img, D]`.
    pub images: Tensor<2>,
    /// The captions' mean features at this level `[n_cap, D]`.
    pub captions: Tensor<2>,
}

impl VseModel {
    /// - `images`: regions `[batch, max_regions, d_feature]` with lengths, or pixels
    ///   `[batch, 3, height, width]`
    /// - returns unit image embeddings `[batch, D]`
    pub fn encode_images(&self, images: ImageInput) -> Tensor<2> {
        let (features, lengths) = self.encode_regions(images);
        self.image_pooling.forward(features, &lengths)
    }

    /// Encoded (and, if configured, fused) regions `[batch, n, D]` and their counts.
    fn encode_regions(&self, images: ImageInput) -> (Tensor<3>, Vec<usize>) {
        let (features, lengths) = self.image.forward(images);
        match &self.region_fusion {
            None => (features, lengths),
            Some(fusion) => (fusion.forward(features, &lengths), lengths),
        }
    }

    /// - `tokens`: `[batch, max_words]`, valid prefix `lengths`
    /// - returns unit caption embeddings `[batch, D]`
    pub fn encode_captions(&self, tokens: Tensor<2, Int>, lengths: &[usize]) -> Tensor<2> {
        let (features, lengths) = self.text.forward(tokens, lengths);
        self.text_pooling.forward(features, &lengths)
    }

    /// Similarity of unit embeddings: `[n_img, D] × [n_cap, D] → [n_img, n_cap]`.
    pub fn similarity(&self, images: Tensor<2>, captions: Tensor<2>) -> Tensor<2> {
        images.matmul(captions.transpose())
    }

    /// HREM's relation-enhanced embeddings of a training batch, when the model has the layer.
    ///
    /// - `images`, `captions`: unit embeddings `[B, D]`, caption `b` the positive of image `b`
    /// - returns `(images [B, D], captions [B, D])`: the instance relation layer's outputs,
    ///   l2-normalised, so that their dot products are cosines like the plain ones
    ///
    /// Only training losses read these; retrieval scores the plain embeddings.
    pub fn relate(&self, images: Tensor<2>, captions: Tensor<2>) -> Option<(Tensor<2>, Tensor<2>)> {
        let layer = self.instance_relation.as_ref()?;
        let (images, captions) = layer.forward(images, captions);
        Some((l2_normalize(images), l2_normalize(captions)))
    }

    /// The fine-grained similarity, when the model scores sets rather than vectors.
    pub fn fine_grained(&self) -> Option<&dyn FineGrainedSimilarity> {
        self.similarity.fine_grained()
    }

    /// Whether pairs are scored by the cosine of the pooled embeddings alone (the heads
    /// table's answer for this model's head; `false`: a fine-grained similarity of the sets
    /// is part of the score).
    pub fn is_cosine(&self) -> bool {
        self.fine_grained().is_none()
    }

    /// Whether the score includes the cosine of the pooled embeddings (the cosine and the
    /// multi-grained heads): only then does a batch have pooled embeddings for the losses
    /// that read them.
    pub fn has_global(&self) -> bool {
        self.similarity.has_global()
    }

    /// Region (or grid cell) features `[batch, n, D]` and their counts, for fine-grained
    /// scoring: unit vectors, except for a head that scores them as they are (the heads
    /// table's [`SimilarityHead::unit_sets`]: HAT's multi-level head, whose sets are the
    /// packed levels `[batch, Σ K_ℓ, D]`).
    pub fn encode_image_sets(&self, images: ImageInput) -> (Tensor<3>, Vec<usize>) {
        let (features, lengths) = self.encode_regions(images);
        (self.unit_if_needed(features), lengths)
    }

    /// Word features `[batch, max_words, D]` and their counts, for fine-grained scoring
    /// (unit vectors as in [`VseModel::encode_image_sets`]; the packed levels
    /// `[batch, levels · max_words, D]` of a multi-level text tower).
    pub fn encode_caption_sets(
        &self,
        tokens: Tensor<2, Int>,
        lengths: &[usize],
    ) -> (Tensor<3>, Vec<usize>) {
        let (features, lengths) = self.text.forward(tokens, lengths);
        (self.unit_if_needed(features), lengths)
    }

    fn unit_if_needed(&self, features: Tensor<3>) -> Tensor<3> {
        if self.similarity.unit_sets() {
            l2_normalize(features)
        } else {
            features
        }
    }

    /// The per-level view of a batch for a model with the multi-level head (DAIM's losses per
    /// level, METHODS §5 "Multi-level alignment"); `None` for any other head.
    ///
    /// - `images`, `tokens`, `lengths`: as in [`VseModel::batch_scores`]
    /// - returns, per level `ℓ` (low → high), its score matrix `[n_img, n_cap]` (the head's
    ///   [`crate::similarity::MultiLevelScan::level`]; they sum to the batch scores) and the
    ///   level's mean features `[n_img, D]`, `[n_cap, D]` (the mean over the level's patches
    ///   and over each caption's tokens at that level; our design, what DAIM's
    ///   distinguishability term reads per level)
    pub fn level_batch(
        &self,
        images: ImageInput,
        tokens: Tensor<2, Int>,
        lengths: &[usize],
    ) -> Option<Vec<LevelBatch>> {
        let head = self.similarity.multi_level()?;
        let (regions, counts) = self.encode_image_sets(images);
        let (words, word_lengths) = self.encode_caption_sets(tokens, lengths);
        let levels = head.num_levels();
        let [n_cap, slots, dim] = words.dims();
        let per_level: Vec<usize> = word_lengths.iter().map(|len| len / levels).collect();
        let mut offset = 0;
        Some(
            (0..levels)
                .map(|level| {
                    let k = head.image_regions[level];
                    let image_mean = regions
                        .clone()
                        .narrow(1, offset, k)
                        .mean_dim(1)
                        .squeeze_dim::<2>(1);
                    offset += k;
                    let caption_rows = words
                        .clone()
                        .reshape([n_cap, slots / levels, levels, dim])
                        .narrow(2, level, 1)
                        .reshape([n_cap, slots / levels, dim]);
                    LevelBatch {
                        scores: head.level(level).similarity(
                            regions.clone(),
                            &counts,
                            words.clone(),
                            &word_lengths,
                        ),
                        images: image_mean,
                        captions: crate::pooling::mean_pool(caption_rows, &per_level),
                    }
                })
                .collect(),
        )
    }

    /// Scores of a batch `[n_img, n_cap]`, with whichever head the model has
    /// ([`VseModel::batch_forward`] without the pooled embeddings).
    pub fn batch_scores(
        &self,
        images: ImageInput,
        tokens: Tensor<2, Int>,
        lengths: &[usize],
    ) -> Tensor<2> {
        self.batch_forward(images, tokens, lengths).scores
    }

    /// A batch through both towers once: the scores `[n_img, n_cap]` with whichever head the
    /// model has and, when the head has a global part ([`VseModel::has_global`]), the unit
    /// pooled embeddings (`[n_img, D]`, `[n_cap, D]`) that part scored.
    ///
    /// - `images`: regions `[n_img, max_regions, d_feature]` with lengths, or pixels
    /// - `tokens`: `[n_cap, max_words]`, valid prefix `lengths`
    ///
    /// The cosine head scores `V Cᵀ` of the pooled vectors, a fine-grained head the unit
    /// region and word sets, the multi-grained head `V Cᵀ + w · S_local` of both, the pooled
    /// vectors and the sets coming from the same encoded features. The image side is encoded
    /// and pooled before the text side (the order of any random draws is the one
    /// [`VseModel::encode_images`] then [`VseModel::encode_captions`] make).
    pub fn batch_forward(
        &self,
        images: ImageInput,
        tokens: Tensor<2, Int>,
        lengths: &[usize],
    ) -> BatchForward {
        let global = self.has_global();
        let (regions, counts) = self.encode_regions(images);
        let pooled_images = global.then(|| self.image_pooling.forward(regions.clone(), &counts));
        let (words, word_counts) = self.text.forward(tokens, lengths);
        let pooled_captions =
            global.then(|| self.text_pooling.forward(words.clone(), &word_counts));
        let pooled = pooled_images.zip(pooled_captions);
        let local = self.fine_grained().map(|method| {
            method.similarity(
                l2_normalize(regions),
                &counts,
                l2_normalize(words),
                &word_counts,
            )
        });
        let global_scores = pooled
            .as_ref()
            .map(|(images, captions)| self.similarity(images.clone(), captions.clone()));
        BatchForward {
            scores: self.similarity.combine(global_scores, local),
            pooled,
        }
    }
}

/// What [`VseModel::batch_forward`] returns.
#[derive(Debug, Clone)]
pub struct BatchForward {
    /// The scores `[n_img, n_cap]`.
    pub scores: Tensor<2>,
    /// The unit pooled embeddings `([n_img, D], [n_cap, D])`, when the head has a global part.
    pub pooled: Option<(Tensor<2>, Tensor<2>)>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, TensorData};

    #[test]
    fn embeddings_are_unit_vectors_and_scores_are_cosines() {
        let device = Device::default();
        device.seed(2);
        let model = VseModelConfig::vse_infinity_bigru_sized(10, 30, 8, 6).init(&device);
        let regions = Tensor::<3>::random([3, 5, 10], Distribution::Normal(0.0, 1.0), &device);
        let images = model.encode_images(ImageInput::Regions {
            features: regions,
            lengths: vec![5, 4, 2],
        });
        let tokens = Tensor::<2, Int>::from_data(
            TensorData::new(vec![4i64, 5, 6, 7, 8, 0, 9, 0, 0], [3, 3]),
            &device,
        );
        let captions = model.encode_captions(tokens, &[3, 2, 1]);
        let scores = model.similarity(images.clone(), captions.clone());
        assert_eq!(scores.dims(), [3, 3]);
        let norms = images
            .square()
            .sum_dim(1)
            .into_data()
            .try_into_vec::<f32>()
            .unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
        let max = scores.abs().max().into_scalar::<f32>();
        assert!(max <= 1.0 + 1e-5);
    }

    /// A model knows from the heads table whether it is a cosine model.
    #[test]
    fn the_model_says_whether_it_is_a_cosine_model() {
        let device = Device::default();
        let cosine = VseModelConfig::vse_infinity_bigru_sized(10, 30, 8, 6);
        assert!(cosine.is_cosine() && cosine.init(&device).is_cosine());
        for head in crate::similarity::HEADS {
            let config = VseModelConfig::vse_infinity_bigru_sized(10, 30, 8, 6)
                .with_similarity(head.config(8));
            let model = config.init(&device);
            assert_eq!(
                config.is_cosine(),
                head.config(8).is_cosine(),
                "{}",
                head.name
            );
            assert_eq!(model.is_cosine(), config.is_cosine(), "{}", head.name);
            assert_eq!(model.fine_grained().is_none(), model.is_cosine());
        }
    }

    /// CLIP's towers in a `VseModel` embed images and captions as `ClipModel` does, as sets
    /// of one; the scores are the cosines of CLIP's logits.
    #[test]
    fn clip_towers_embed_as_the_clip_model() {
        use crate::encoders::clip::{ClipTextConfig, ClipVisionConfig};
        let device = Device::default();
        device.seed(3);
        let config = ClipConfig::new(
            ClipTextConfig::new(30, 16, 20, 2, 2, 8).with_eos_token_id(29),
            ClipVisionConfig::new(12, 18, 1, 2, 16, 8),
            10,
        );
        let clip = config.init(&device);
        let pixels = Tensor::<3>::random([2, 3, 256], Distribution::Normal(0.0, 1.0), &device)
            .reshape([2, 3, 16, 16]);
        let ids = Tensor::<2, Int>::from_data(
            TensorData::new(vec![28i64, 4, 5, 29, 0, 28, 7, 29, 3, 3], [2, 5]),
            &device,
        );
        let lengths = [4, 3];
        let expected_images = clip.encode_images(pixels.clone());
        let expected_texts = clip.encode_texts(ids.clone(), &lengths);
        let scale = clip.logit_scale();
        let logits = clip.logits_per_image(expected_images.clone(), expected_texts.clone());

        let mut model = VseModelConfig::clip(&config).init(&device);
        let (image, text) = clip.into_towers();
        model.image = ImageEncoder::Clip(image);
        model.text = TextEncoder::Clip(text);
        let images = model.encode_images(ImageInput::Pixels(pixels));
        let texts = model.encode_captions(ids.clone(), &lengths);
        let worst = |a: Tensor<2>, b: Tensor<2>| (a - b).abs().max().into_scalar::<f32>();
        assert!(worst(images.clone(), expected_images) < 1e-6);
        assert!(worst(texts.clone(), expected_texts) < 1e-6);
        let scores = model.similarity(images, texts) * scale.unsqueeze_dim::<2>(0);
        assert!(worst(scores, logits) < 1e-5);
        let (sets, counts) = model.encode_caption_sets(ids, &lengths);
        assert_eq!((sets.dims(), counts), ([2, 1, 10], vec![1, 1]));
    }

    /// Every parameter's gradient in `grads`, in the model's visiting order.
    fn parameter_gradients(model: &VseModel, grads: &burn::optim::GradientsParams) -> Vec<f32> {
        use burn::module::{ModuleVisitor, Param};
        struct Collect<'a>(&'a burn::optim::GradientsParams, Vec<f32>);
        impl ModuleVisitor for Collect<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(grad) = self.0.get::<D>(param.id) {
                    self.1
                        .extend(grad.into_data().try_into_vec::<f32>().unwrap());
                }
            }
        }
        let mut collect = Collect(grads, Vec::new());
        model.visit(&mut collect);
        collect.1
    }

    /// The multi-grained head scores `global + w · local`: its batch scores equal the cosine
    /// of the pooled embeddings plus `w` times CHAN's scores of the unit sets, each computed on
    /// its own through the model's public encoders, in values and in the gradients of every
    /// parameter and of the input regions (random inputs, a random weighting of the scores).
    #[test]
    fn the_multi_grained_score_is_global_plus_weighted_local() {
        use crate::similarity::{ChanConfig, MultiGrainedConfig};
        let device = Device::default().autodiff();
        device.seed(6);
        let weight = 0.7;
        let model = VseModelConfig::vse_infinity_bigru_sized(10, 30, 8, 6)
            .with_similarity(SimilarityConfig::MultiGrained(
                MultiGrainedConfig::new().with_local_weight(weight),
            ))
            .init(&device);
        assert!(model.has_global() && !model.is_cosine());
        let regions = Tensor::<3>::random([3, 5, 10], Distribution::Normal(0.0, 1.0), &device);
        let tokens = Tensor::<2, Int>::from_data(
            TensorData::new(vec![4i64, 5, 6, 7, 8, 0, 9, 3, 0, 2, 0, 0], [4, 3]),
            &device,
        );
        let lengths = [3, 2, 2, 1];
        let mix = Tensor::<2>::random([3, 4], Distribution::Normal(0.0, 1.0), &device);
        let run = |combined: bool| {
            let regions = regions.clone().detach().require_grad();
            let input = || ImageInput::Regions {
                features: regions.clone(),
                lengths: vec![5, 4, 2],
            };
            let scores = if combined {
                let out = model.batch_forward(input(), tokens.clone(), &lengths);
                let (images, captions) = out.pooled.expect("the global part's embeddings");
                assert_eq!((images.dims(), captions.dims()), ([3, 8], [4, 8]));
                out.scores
            } else {
                let global = model.similarity(
                    model.encode_images(input()),
                    model.encode_captions(tokens.clone(), &lengths),
                );
                let (sets, counts) = model.encode_image_sets(input());
                let (words, word_counts) = model.encode_caption_sets(tokens.clone(), &lengths);
                let local = ChanConfig::new()
                    .init()
                    .similarity(sets, &counts, words, &word_counts);
                global + local * weight
            };
            let values = scores.clone().into_data().try_into_vec::<f32>().unwrap();
            let grads = (scores * mix.clone()).sum().backward();
            let input_grad = regions.grad(&grads).expect("d/d regions");
            let params = burn::optim::GradientsParams::from_grads(grads, &model);
            let mut gradients = input_grad.into_data().try_into_vec::<f32>().unwrap();
            gradients.extend(parameter_gradients(&model, &params));
            (values, gradients)
        };
        let (values, gradients) = run(true);
        let (expected_values, expected_gradients) = run(false);
        assert_eq!(values.len(), 12);
        assert_eq!(gradients.len(), expected_gradients.len());
        assert!(gradients.len() > 3 * 5 * 10 && gradients.iter().any(|g| *g != 0.0));
        for (got, want, what) in [
            (&values, &expected_values, "scores"),
            (&gradients, &expected_gradients, "gradients"),
        ] {
            let worst = got
                .iter()
                .zip(want.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            eprintln!("multi-grained {what}: largest difference {worst:e}");
            for (a, b) in got.iter().zip(want.iter()) {
                assert!(
                    (a - b).abs() <= 1e-5 * (1.0 + b.abs()),
                    "{what}: {a} vs {b}"
                );
            }
        }
    }

    /// A local weight of 0 removes the local part: the head is the cosine head and the model
    /// scores exactly as the same weights with the cosine head.
    #[test]
    fn a_zero_local_weight_is_the_cosine_model() {
        use crate::similarity::MultiGrainedConfig;
        let multi = SimilarityConfig::MultiGrained(MultiGrainedConfig::new());
        assert_eq!(multi.local_weight(), Some(1.0));
        assert!(multi.has_global() && !multi.is_cosine());
        let halved = multi.clone().with_local_weight(0.5);
        assert_eq!(halved.local_weight(), Some(0.5));
        let off = multi.with_local_weight(0.0);
        assert!(off.is_cosine() && off.local_weight().is_none());
        // Other heads have no local weight to set.
        let chan = SimilarityConfig::Chan(crate::similarity::ChanConfig::new());
        assert_eq!(
            chan.clone().with_local_weight(0.0).to_string(),
            chan.to_string()
        );
        assert!(!chan.has_global() && chan.local_weight().is_none());
    }

    /// The relation layer adds parameters and refines a batch's embeddings, but the encoders
    /// and the scores never pass through it: the same weights without the layer encode the
    /// same vectors, bit for bit.
    #[test]
    fn the_instance_relation_layer_is_off_the_retrieval_path() {
        let device = Device::default();
        device.seed(4);
        let config = VseModelConfig::vse_infinity_bigru_sized(10, 30, 8, 6)
            .with_instance_relation(Some(InstanceRelationConfig::new(8, 2, 8)));
        let model = config.init(&device);
        let plain = VseModel {
            instance_relation: None,
            ..model.clone()
        };
        assert!(model.num_params() > plain.num_params());
        assert!(
            plain
                .relate(
                    Tensor::zeros([2, 8], &device),
                    Tensor::zeros([2, 8], &device)
                )
                .is_none()
        );
        let regions = Tensor::<3>::random([3, 5, 10], Distribution::Normal(0.0, 1.0), &device);
        let input = || ImageInput::Regions {
            features: regions.clone(),
            lengths: vec![5, 4, 2],
        };
        let tokens = Tensor::<2, Int>::from_data(
            TensorData::new(vec![4i64, 5, 6, 7, 8, 0, 9, 0, 0], [3, 3]),
            &device,
        );
        let images = model.encode_images(input());
        let captions = model.encode_captions(tokens.clone(), &[3, 2, 1]);
        let values = |t: Tensor<2>| t.into_data().try_into_vec::<f32>().unwrap();
        assert_eq!(values(images.clone()), values(plain.encode_images(input())));
        assert_eq!(
            values(captions.clone()),
            values(plain.encode_captions(tokens.clone(), &[3, 2, 1]))
        );
        assert_eq!(
            values(model.batch_scores(input(), tokens.clone(), &[3, 2, 1])),
            values(plain.batch_scores(input(), tokens, &[3, 2, 1]))
        );
        let (related_images, related_captions) = model
            .relate(images.clone(), captions.clone())
            .expect("the model has the layer");
        for (related, original) in [(related_images, images), (related_captions, captions)] {
            assert_eq!(related.dims(), [3, 8]);
            let norms = values(related.clone().square().sum_dim(1));
            assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
            let moved = (related - original).abs().max().into_scalar::<f32>();
            assert!(moved > 1e-3, "the layer changed nothing ({moved})");
        }
    }
}
