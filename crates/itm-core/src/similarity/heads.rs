//! The heads table: every scoring head, named once (METHODS §3).
//!
//! One row per head — its name, a one-line summary, its configuration at joint width `D` with
//! the published defaults (ESL's level count has one rule: [`esl_levels`]) and whether it is
//! the cosine of pooled vectors, a similarity of the region and word sets, or the sum of both
//! (the multi-grained head, [`COSINE_CHAN`]). The zoo, the CLI help, the examples, the benchmarks and the
//! tests all read this table instead of naming heads themselves.
//!
//! Two views of a row:
//! - [`BuiltinHead`]: a head a [`crate::VseModel`] can hold, with the [`SimilarityConfig`]
//!   that a model configuration (and a checkpoint) stores. Adding one touches its own file
//!   and this one (a variant of [`SimilarityConfig`] and [`SimilarityHead`], their arms below,
//!   a row in [`HEADS`]).
//! - [`Head`]: what readers that only score feature sets need (name, summary, "is cosine", a
//!   scorer at width `D`). A head written outside this crate implements it and joins a
//!   [`HeadTable`] through [`HeadTable::with`], touching no file here: the sharded scorer,
//!   the benchmarks and the memory example take any table (`tests/custom_head.rs` shows it).
//!   Burn modules are concrete types, so such a head scores sets but is not a variant a
//!   `VseModel` can train; it becomes one by moving into this crate as above.

use burn::config::Config;
use burn::module::Module;
use burn::tensor::Device;

use burn::tensor::Tensor;

use super::multi_grained::{combine, combine_host};
use super::{
    Chan, ChanConfig, Esl, EslConfig, FineGrainedSimilarity, HAT_IMAGE_REGIONS, MultiGrained,
    MultiGrainedConfig, MultiLevelScan, MultiLevelScanConfig, Scan, ScanConfig, ScanDirection,
    XDim, XDimConfig,
};

/// How an image and a caption are scored.
#[derive(Config, Debug)]
pub enum SimilarityConfig {
    /// Cosine of the pooled vectors (VSE++, VSE∞).
    Cosine,
    /// SCAN cross attention over regions and words.
    Scan(ScanConfig),
    /// CHAN hard alignment of words to regions.
    Chan(ChanConfig),
    /// ESL enhanced correspondence over levels of aggregated dimensions (learned).
    Esl(EslConfig),
    /// X-Dim dimension dependency (learned).
    XDim(XDimConfig),
    /// The cosine of the pooled vectors plus `w` × CHAN's hard alignment of the sets (AAHR's
    /// multi-grained score, our design).
    MultiGrained(MultiGrainedConfig),
    /// HAT's multi-level head: SCAN i2t per level, summed, over the packed level sets of
    /// multi-level towers (`image_regions`: the image tower's patches per level).
    MultiLevel(MultiLevelScanConfig),
}

/// The cosine head: no parameters; the poolings make the vectors.
#[derive(Module, Debug, Default)]
pub struct CosineHead;

/// A scoring head built from a [`SimilarityConfig`].
#[derive(Module, Debug)]
pub enum SimilarityHead {
    /// See [`SimilarityConfig::Cosine`].
    Cosine(CosineHead),
    /// See [`SimilarityConfig::Scan`].
    Scan(Scan),
    /// See [`SimilarityConfig::Chan`].
    Chan(Chan),
    /// See [`SimilarityConfig::Esl`].
    Esl(Esl),
    /// See [`SimilarityConfig::XDim`].
    XDim(XDim),
    /// See [`SimilarityConfig::MultiGrained`].
    MultiGrained(MultiGrained),
    /// See [`SimilarityConfig::MultiLevel`].
    MultiLevel(MultiLevelScan),
}

impl SimilarityConfig {
    /// Builds the head on `device` (ESL and X-Dim have learned parameters).
    pub fn init(&self, device: &Device) -> SimilarityHead {
        match self {
            SimilarityConfig::Cosine => SimilarityHead::Cosine(CosineHead),
            SimilarityConfig::Scan(config) => SimilarityHead::Scan(config.init()),
            SimilarityConfig::Chan(config) => SimilarityHead::Chan(config.init()),
            SimilarityConfig::Esl(config) => SimilarityHead::Esl(config.init(device)),
            SimilarityConfig::XDim(config) => SimilarityHead::XDim(config.init(device)),
            SimilarityConfig::MultiGrained(config) => SimilarityHead::MultiGrained(config.init()),
            SimilarityConfig::MultiLevel(config) => SimilarityHead::MultiLevel(config.init()),
        }
    }

    /// Whether the head reads the packed level sets of multi-level towers
    /// ([`crate::encoders::pack_image_levels`], [`crate::encoders::pack_caption_levels`])
    /// rather than one flat set of regions and one of words.
    pub fn reads_levels(&self) -> bool {
        matches!(self, SimilarityConfig::MultiLevel(_))
    }

    /// Whether the model l2-normalises the sets before this head scores them: every head but
    /// the multi-level one, which scores HAT's projected features as they are (SCAN i2t's
    /// attention weights depend on the patches' norms).
    pub fn unit_sets(&self) -> bool {
        !self.reads_levels()
    }

    /// The head for an image tower whose levels have `image_regions` patches each (the
    /// tower's [`crate::encoders::ImageEncoderConfig::level_regions`]): the multi-level head
    /// takes that layout; every other head is returned as it is.
    pub fn with_image_levels(self, image_regions: &[usize]) -> Self {
        match self {
            SimilarityConfig::MultiLevel(config) => {
                SimilarityConfig::MultiLevel(MultiLevelScanConfig {
                    image_regions: image_regions.to_vec(),
                    ..config
                })
            }
            other => other,
        }
    }

    /// Whether pairs are scored by the cosine of pooled vectors alone (`false`: a
    /// fine-grained similarity of the region and word sets is part of the score).
    pub fn is_cosine(&self) -> bool {
        matches!(self, SimilarityConfig::Cosine)
    }

    /// Whether the score includes the cosine of the pooled vectors (the global part): the
    /// cosine and the multi-grained heads. Only such a model has the pooled embeddings that
    /// the ambiguity-aware loss, the distinguishability term and HREM's instance relation
    /// layer read.
    pub fn has_global(&self) -> bool {
        matches!(
            self,
            SimilarityConfig::Cosine | SimilarityConfig::MultiGrained(_)
        )
    }

    /// The weight `w` of the local score of a multi-grained head; `None` for the others.
    pub fn local_weight(&self) -> Option<f64> {
        match self {
            SimilarityConfig::MultiGrained(config) => Some(config.local_weight),
            _ => None,
        }
    }

    /// This head with the local score weighted `local_weight` (a multi-grained head; the
    /// others are returned unchanged). A weight of 0 removes the local score: the head becomes
    /// the cosine head, exactly the model without it.
    pub fn with_local_weight(self, local_weight: f64) -> Self {
        match self {
            SimilarityConfig::MultiGrained(_) if local_weight == 0.0 => SimilarityConfig::Cosine,
            SimilarityConfig::MultiGrained(config) => {
                SimilarityConfig::MultiGrained(config.with_local_weight(local_weight))
            }
            other => other,
        }
    }
}

impl SimilarityHead {
    /// The fine-grained similarity, `None` for the cosine head.
    pub fn fine_grained(&self) -> Option<&dyn FineGrainedSimilarity> {
        match self {
            SimilarityHead::Cosine(_) => None,
            SimilarityHead::Scan(scan) => Some(scan),
            SimilarityHead::Chan(chan) => Some(chan),
            SimilarityHead::Esl(esl) => Some(esl),
            SimilarityHead::XDim(xdim) => Some(xdim),
            SimilarityHead::MultiGrained(head) => Some(&head.local),
            SimilarityHead::MultiLevel(head) => Some(head),
        }
    }

    /// The multi-level head, to score its levels one by one ([`MultiLevelScan::level`]).
    pub fn multi_level(&self) -> Option<&MultiLevelScan> {
        match self {
            SimilarityHead::MultiLevel(head) => Some(head),
            _ => None,
        }
    }

    /// See [`SimilarityConfig::unit_sets`].
    pub fn unit_sets(&self) -> bool {
        self.multi_level().is_none()
    }

    /// [`SimilarityHead::fine_grained`], owned.
    pub fn into_fine_grained(self) -> Option<Box<dyn FineGrainedSimilarity>> {
        match self {
            SimilarityHead::Cosine(_) => None,
            SimilarityHead::Scan(scan) => Some(Box::new(scan)),
            SimilarityHead::Chan(chan) => Some(Box::new(chan)),
            SimilarityHead::Esl(esl) => Some(Box::new(esl)),
            SimilarityHead::XDim(xdim) => Some(Box::new(xdim)),
            SimilarityHead::MultiGrained(head) => Some(Box::new(head.local)),
            SimilarityHead::MultiLevel(head) => Some(Box::new(head)),
        }
    }

    /// Whether the score includes the cosine of the pooled vectors (see
    /// [`SimilarityConfig::has_global`]).
    pub fn has_global(&self) -> bool {
        matches!(
            self,
            SimilarityHead::Cosine(_) | SimilarityHead::MultiGrained(_)
        )
    }

    /// The pair scores `[n_img, n_cap]` from the head's parts: `global`, the cosines of the
    /// pooled vectors (present when [`SimilarityHead::has_global`]), and `local`, the scores of
    /// [`SimilarityHead::fine_grained`] (present when it is `Some`). A multi-grained head
    /// returns `global + w · local`, the others their one part.
    ///
    /// # Panics
    ///
    /// If the parts given are not the head's.
    pub fn combine(&self, global: Option<Tensor<2>>, local: Option<Tensor<2>>) -> Tensor<2> {
        match (self, global, local) {
            (SimilarityHead::MultiGrained(head), Some(global), Some(local)) => {
                combine(global, local, head.local_weight)
            }
            (SimilarityHead::Cosine(_), Some(global), None) => global,
            (head, None, Some(local)) if !head.has_global() => local,
            _ => panic!("the score parts given are not the head's"),
        }
    }

    /// [`SimilarityHead::combine`] on row-major host matrices.
    pub fn combine_host(&self, global: Option<Vec<f32>>, local: Option<Vec<f32>>) -> Vec<f32> {
        match (self, global, local) {
            (SimilarityHead::MultiGrained(head), Some(global), Some(local)) => {
                combine_host(global, &local, head.local_weight)
            }
            (SimilarityHead::Cosine(_), Some(global), None) => global,
            (head, None, Some(local)) if !head.has_global() => local,
            _ => panic!("the score parts given are not the head's"),
        }
    }
}

/// A row of a [`HeadTable`]: what every reader of the table needs to know of a head.
pub trait Head: Sync {
    /// The name (`--similarity`, `--method`, benchmark ids): lower case, `_` between words.
    fn name(&self) -> &'static str;
    /// One line: what the head computes.
    fn summary(&self) -> &'static str;
    /// Whether pairs are scored by the cosine of pooled vectors (no set scorer).
    fn is_cosine(&self) -> bool;
    /// Whether the score also adds the cosine of pooled vectors to the set scorer's (a
    /// multi-grained head): readers that score sets alone then see its local part only.
    fn adds_global(&self) -> bool {
        false
    }
    /// The set scorer at joint width `d_embed` with the published defaults, its learned
    /// parameters (if any) initialised on `device`; `None` for the cosine head; the local part
    /// for a multi-grained head ([`Head::adds_global`]).
    fn scorer(&self, d_embed: usize, device: &Device) -> Option<Box<dyn FineGrainedSimilarity>>;
    /// Whether the scorer reads the packed level sets of multi-level towers (see
    /// [`SimilarityConfig::reads_levels`]) instead of any region and word sets; such a head is
    /// left out of [`HeadTable::fine_grained`].
    fn reads_levels(&self) -> bool {
        false
    }
}

/// A head a [`crate::VseModel`] can hold: its name, summary and configuration at width `D`.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinHead {
    /// See [`Head::name`].
    pub name: &'static str,
    /// See [`Head::summary`].
    pub summary: &'static str,
    /// The configuration at joint width `D`, published defaults.
    config: fn(usize) -> SimilarityConfig,
}

impl BuiltinHead {
    /// The configuration at joint width `d_embed` with the published defaults.
    pub fn config(&self, d_embed: usize) -> SimilarityConfig {
        (self.config)(d_embed)
    }
}

impl Head for BuiltinHead {
    fn name(&self) -> &'static str {
        self.name
    }

    fn summary(&self) -> &'static str {
        self.summary
    }

    fn is_cosine(&self) -> bool {
        // The cosine head has no width-dependent settings: any width answers.
        self.config(2).is_cosine()
    }

    fn adds_global(&self) -> bool {
        let config = self.config(2);
        config.has_global() && !config.is_cosine()
    }

    fn scorer(&self, d_embed: usize, device: &Device) -> Option<Box<dyn FineGrainedSimilarity>> {
        self.config(d_embed).init(device).into_fine_grained()
    }

    fn reads_levels(&self) -> bool {
        self.config(2).reads_levels()
    }
}

/// ESL's level count at width `D`: the published 9 (widths `D … D/256` at `D = 512`), fewer
/// when `D` cannot be halved that often down to a width of 2 (the halving stops at an odd
/// width). `D = 512` → 9, `128` → 7, `96` → 6, `100` → 3, `1024` → 9, `7` → 1.
pub fn esl_levels(d_embed: usize) -> usize {
    let (mut width, mut levels) = (d_embed, 1);
    while levels < ESL_PUBLISHED_LEVELS && width.is_multiple_of(2) && width / 2 >= 2 {
        width /= 2;
        levels += 1;
    }
    levels
}

/// ESL's published level count (at `D = 512`).
pub const ESL_PUBLISHED_LEVELS: usize = 9;

/// ESL at width `D` with the published settings: [`esl_levels`] levels, adaptive
/// aggregation (ESL-A; ESL-H sets [`super::EslAggregator::Heuristic`]), the published code's
/// parameters (aggregators per modality, a learned sharpening exponent).
pub fn esl(d_embed: usize) -> EslConfig {
    EslConfig::new(d_embed)
        .with_levels(esl_levels(d_embed))
        .with_per_modality_levels(true)
        .with_learned_sharpness(true)
}

/// Cosine of the pooled vectors (VSE++, VSE∞).
pub const COSINE: BuiltinHead = BuiltinHead {
    name: "cosine",
    summary: "cosine of the pooled vectors (VSE++, VSE∞)",
    config: |_| SimilarityConfig::Cosine,
};

/// SCAN text-to-image stacked cross attention, LogSumExp (λ1 = 9, λ2 = 6).
pub const SCAN_T2I: BuiltinHead = BuiltinHead {
    name: "scan_t2i",
    summary: "SCAN text-to-image stacked cross attention, LogSumExp (λ1 = 9, λ2 = 6)",
    config: |_| SimilarityConfig::Scan(ScanConfig::new()),
};

/// SCAN image-to-text stacked cross attention, LogSumExp (λ1 = 4, λ2 = 5).
pub const SCAN_I2T: BuiltinHead = BuiltinHead {
    name: "scan_i2t",
    summary: "SCAN image-to-text stacked cross attention, LogSumExp (λ1 = 4, λ2 = 5)",
    config: |_| {
        SimilarityConfig::Scan(ScanConfig::new().with_direction(ScanDirection::ImageToText))
    },
};

/// CHAN hard alignment: every word to its most similar region, mean over words.
pub const CHAN: BuiltinHead = BuiltinHead {
    name: "chan",
    summary: "CHAN hard alignment of every word to its most similar region, mean over words",
    config: |_| SimilarityConfig::Chan(ChanConfig::new()),
};

/// ESL with adaptive aggregation and [`esl_levels`] levels.
pub const ESL: BuiltinHead = BuiltinHead {
    name: "esl",
    summary: "ESL enhanced correspondence over levels of aggregated dimensions (adaptive \
              aggregation; 9 levels at D = 512)",
    config: |d| SimilarityConfig::Esl(esl(d)),
};

/// X-Dim: learned cross-dimensional dependency of word–region products.
pub const XDIM: BuiltinHead = BuiltinHead {
    name: "xdim",
    summary: "X-Dim learned cross-dimensional dependency of word-region products",
    config: |d| SimilarityConfig::XDim(XDimConfig::new(d)),
};

/// AAHR's multi-grained score (our design): the cosine of the pooled vectors plus `w = 1` ×
/// CHAN's hard alignment (mean over words).
pub const COSINE_CHAN: BuiltinHead = BuiltinHead {
    name: "cosine_chan",
    summary: "cosine of the pooled vectors + w x CHAN hard alignment, mean over words (AAHR's \
              multi-grained score, our design; w = 1)",
    config: |_| SimilarityConfig::MultiGrained(MultiGrainedConfig::new()),
};

/// HAT's multi-level head (HAT, DAIM): SCAN i2t per level (λ1 = 9, mean over patches),
/// summed over the levels. Its configuration at `D` has HAT's layout (Swin-B at 224 px:
/// [`HAT_IMAGE_REGIONS`]); a model adapts it to its image tower
/// ([`SimilarityConfig::with_image_levels`]).
pub const MULTI_LEVEL_SCAN: BuiltinHead = BuiltinHead {
    name: "multi_level_scan",
    summary: "HAT's multi-level head: SCAN image-to-text per level (λ1 = 9, mean over patches), \
              summed over low, middle and high levels (multi-level towers only)",
    config: |_| SimilarityConfig::MultiLevel(MultiLevelScanConfig::new(HAT_IMAGE_REGIONS.to_vec())),
};

/// Every head of this crate, in the order lists show them.
pub const HEADS: &[BuiltinHead] = &[
    COSINE,
    SCAN_T2I,
    SCAN_I2T,
    CHAN,
    ESL,
    XDIM,
    COSINE_CHAN,
    MULTI_LEVEL_SCAN,
];

/// The built-in head named `name`.
pub fn builtin_head(name: &str) -> Option<&'static BuiltinHead> {
    HEADS.iter().find(|head| head.name == name)
}

/// A head whose name a [`HeadTable`] already has.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a head named {name:?} is already in the table")]
pub struct DuplicateHead {
    /// The name.
    pub name: String,
}

/// The heads a reader offers: the built-in ones ([`HeadTable::builtin`]), extended with heads
/// defined elsewhere ([`HeadTable::with`]).
#[derive(Clone)]
pub struct HeadTable {
    heads: Vec<&'static dyn Head>,
}

impl std::fmt::Debug for HeadTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.names()).finish()
    }
}

impl Default for HeadTable {
    /// [`HeadTable::builtin`].
    fn default() -> Self {
        Self::builtin()
    }
}

impl HeadTable {
    /// The rows of [`HEADS`].
    pub fn builtin() -> Self {
        Self {
            heads: HEADS.iter().map(|head| head as &'static dyn Head).collect(),
        }
    }

    /// This table with `head` appended; a name already in the table is refused.
    pub fn with(mut self, head: &'static dyn Head) -> Result<Self, DuplicateHead> {
        if self.get(head.name()).is_some() {
            return Err(DuplicateHead {
                name: head.name().to_string(),
            });
        }
        self.heads.push(head);
        Ok(self)
    }

    /// The head named `name`.
    pub fn get(&self, name: &str) -> Option<&'static dyn Head> {
        self.heads.iter().copied().find(|head| head.name() == name)
    }

    /// Every head, in table order.
    pub fn iter(&self) -> impl Iterator<Item = &'static dyn Head> + '_ {
        self.heads.iter().copied()
    }

    /// The heads that score any region and word sets (every head but the cosine and those
    /// that read the packed levels of multi-level towers, [`Head::reads_levels`]).
    pub fn fine_grained(&self) -> impl Iterator<Item = &'static dyn Head> + '_ {
        self.iter()
            .filter(|head| !head.is_cosine() && !head.reads_levels())
    }

    /// The names, in table order.
    pub fn names(&self) -> Vec<&'static str> {
        self.iter().map(|head| head.name()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::similarity::EslAggregator;

    #[test]
    fn esl_has_one_level_rule() {
        let levels: Vec<usize> = [512, 1024, 128, 96, 100, 8, 7, 2].map(esl_levels).to_vec();
        assert_eq!(levels, [9, 9, 7, 6, 3, 3, 1, 1]);
        // Every width gets a configuration ESL accepts (2^(levels − 1) divides D).
        let device = Device::default();
        for d in [2, 6, 7, 12, 100, 128, 512, 1024] {
            let config = esl(d);
            assert!(d.is_multiple_of(1 << (config.levels - 1)), "D = {d}");
            assert_eq!(config.aggregator, EslAggregator::Adaptive);
            let SimilarityConfig::Esl(from_table) = ESL.config(d) else {
                panic!("the esl row is ESL")
            };
            assert_eq!(from_table.levels, config.levels);
            ESL.scorer(d, &device).expect("ESL scores sets");
        }
    }

    #[test]
    fn the_table_names_every_head_once_and_knows_the_cosine_one() {
        let table = HeadTable::builtin();
        let names = table.names();
        assert_eq!(
            names,
            [
                "cosine",
                "scan_t2i",
                "scan_i2t",
                "chan",
                "esl",
                "xdim",
                "cosine_chan",
                "multi_level_scan"
            ]
        );
        let mut unique = names.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
        let device = Device::default();
        for head in table.iter() {
            let config = builtin_head(head.name()).unwrap().config(16);
            assert_eq!(head.is_cosine(), config.is_cosine(), "{}", head.name());
            assert_eq!(head.is_cosine(), head.scorer(16, &device).is_none());
            assert_eq!(
                config.init(&device).fine_grained().is_none(),
                head.is_cosine()
            );
        }
        assert_eq!(
            table.fine_grained().map(|h| h.name()).collect::<Vec<_>>(),
            ["scan_t2i", "scan_i2t", "chan", "esl", "xdim", "cosine_chan"]
        );
        let adding: Vec<&str> = table
            .iter()
            .filter(|head| head.adds_global())
            .map(|head| head.name())
            .collect();
        assert_eq!(adding, ["cosine_chan"]);
        assert!(builtin_head("cosine").unwrap().is_cosine());
        let multi = builtin_head("multi_level_scan").unwrap();
        assert!(multi.reads_levels() && !multi.config(8).unit_sets());
        let SimilarityConfig::MultiLevel(adapted) = multi.config(8).with_image_levels(&[4, 1])
        else {
            panic!("the multi-level head")
        };
        assert_eq!(adapted.image_regions, [4, 1]);
        assert!(
            HEADS
                .iter()
                .filter(|h| h.name != "multi_level_scan")
                .all(|h| {
                    !h.reads_levels() && h.config(8).unit_sets() && !h.config(8).reads_levels()
                })
        );
        assert!(builtin_head("nope").is_none() && table.get("nope").is_none());
        let again = table.clone().with(&CHAN).unwrap_err();
        assert!(again.to_string().contains("\"chan\""), "{again}");
    }
}
