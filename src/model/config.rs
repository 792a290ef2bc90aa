//! Model configuration (RON) and the built-in presets in `assets/presets/`.

use serde::{Deserialize, Serialize};

/// Coordinate embeddings of one level (the official `CoordFuser`, without the per-pixel const
/// embeddings, which exist only on the training grid).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EmbConfig {
    /// Resolution whose fixed logarithmic Fourier basis is used (`ceil(log2 r)` octaves per
    /// direction); 0 for none.
    pub log_res: usize,
    /// Add the two diagonal directions to the log basis.
    pub diagonal: bool,
    /// Extra random Fourier frequencies, drawn N(0, random_scale²) from `seed`; they break the
    /// periodicity of the log basis far outside the training square.
    pub random: usize,
    pub random_scale: f32,
    pub seed: u64,
}

/// One level of the multi-scale INR: a grid of `res`² cells on [-1, 1)², the previous level's
/// features upsampled 2x and concatenated with this level's coordinate embeddings, then FMM
/// layers of the given output widths, then a toRGB added to the upsampled RGB.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LevelConfig {
    pub res: usize,
    pub widths: Vec<usize>,
    /// Indices of the layers whose output also goes through a toRGB (the official blocks at the
    /// coarsest grid each add their own RGB); must include the last layer.
    pub rgb_after: Vec<usize>,
    pub emb: EmbConfig,
}

/// StyleGAN2's residual discriminator, scaled: channels at resolution r are
/// `min(channel_base / r, channel_max)`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscConfig {
    pub channel_base: usize,
    pub channel_max: usize,
    pub mbstd_group: usize,
    pub mbstd_channels: usize,
}

impl DiscConfig {
    pub fn channels(&self, res: usize) -> usize {
        (self.channel_base / res.max(1)).clamp(1, self.channel_max)
    }
}

/// How a level reads the previous level's features and RGB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum LinkMode {
    /// Nearest: a point reads the cell it falls in, cells and pixels at their lower-left
    /// corners (the official `inr-gan.yml`; exact on the training grid, blocky when magnified).
    /// Configs without a `link` field, so every model trained before the field existed.
    #[default]
    Nearest,
    /// Bilinear in coordinate space: cells at their centres `-1 + (2/R)(j + 1/2)`, pixels at
    /// theirs, a point reads the bilinear blend of the four cell centres around it (halo cells
    /// included, no clamping), so the function has no seams at any density.
    Bilinear,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    pub name: String,
    /// Training resolution (the finest level's `res`).
    pub resolution: usize,
    pub z_dim: usize,
    pub w_dim: usize,
    pub mapping_layers: usize,
    pub mapping_lr_mul: f32,
    /// Rank of the FMM factors.
    pub rank: usize,
    pub levels: Vec<LevelConfig>,
    /// The link between levels; absent in older configs, which load as Nearest.
    #[serde(default)]
    pub link: LinkMode,
    pub discriminator: DiscConfig,
}

/// Errors of configurations.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {name}: {problem}")]
    Invalid { name: String, problem: String },
    #[error("could not parse the model config: {0}")]
    Parse(String),
    #[error("unknown preset {0:?} (built in: {1})")]
    UnknownPreset(String, String),
}

/// The built-in presets: (name, RON text).
pub const PRESETS: &[(&str, &str)] = &[
    ("tiny", include_str!("../../assets/presets/tiny.ron")),
    (
        "tiny-bilinear",
        include_str!("../../assets/presets/tiny-bilinear.ron"),
    ),
    (
        "tiny-smooth",
        include_str!("../../assets/presets/tiny-smooth.ron"),
    ),
    ("emoji32", include_str!("../../assets/presets/emoji32.ron")),
    (
        "emoji32-smooth",
        include_str!("../../assets/presets/emoji32-smooth.ron"),
    ),
    ("emoji64", include_str!("../../assets/presets/emoji64.ron")),
    (
        "paper256",
        include_str!("../../assets/presets/paper256.ron"),
    ),
];

impl ModelConfig {
    pub fn from_ron(text: &str) -> Result<Self, ConfigError> {
        let c: ModelConfig = ron::from_str(text).map_err(|e| ConfigError::Parse(e.to_string()))?;
        c.validate()?;
        Ok(c)
    }

    pub fn to_ron(&self) -> String {
        ron::ser::to_string_pretty(self, ron::ser::PrettyConfig::default())
            .unwrap_or_else(|e| format!("/* unserialisable config: {e} */"))
    }

    /// A built-in preset by name, or a model config read from a `.ron` file (a preset's text
    /// edited: `assets/presets/` holds the built-in ones).
    pub fn preset(name: &str) -> Result<Self, ConfigError> {
        if name.ends_with(".ron") && !PRESETS.iter().any(|(n, _)| *n == name) {
            let text = std::fs::read_to_string(name)
                .map_err(|e| ConfigError::Parse(format!("{name}: {e}")))?;
            return Self::from_ron(&text).map_err(|e| match e {
                ConfigError::Parse(m) => ConfigError::Parse(format!("{name}: {m}")),
                other => other,
            });
        }
        let (_, text) = PRESETS.iter().find(|(n, _)| *n == name).ok_or_else(|| {
            ConfigError::UnknownPreset(
                name.into(),
                PRESETS
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", "),
            )
        })?;
        Self::from_ron(text)
    }

    /// Checks the structure: levels double in resolution up to `resolution`, widths non-zero.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |problem: String| ConfigError::Invalid {
            name: self.name.clone(),
            problem,
        };
        if self.levels.is_empty() {
            return Err(bad("no levels".into()));
        }
        if self.z_dim == 0 || self.w_dim == 0 || self.rank == 0 {
            return Err(bad("z_dim, w_dim and rank must be positive".into()));
        }
        for (i, l) in self.levels.iter().enumerate() {
            if l.widths.is_empty() || l.widths.contains(&0) {
                return Err(bad(format!(
                    "level {i}: widths must be non-empty and positive"
                )));
            }
            if i > 0 && l.res != 2 * self.levels[i - 1].res {
                return Err(bad(format!(
                    "level {i}: resolution {} is not twice {}",
                    l.res,
                    self.levels[i - 1].res
                )));
            }
            let last_layer = l.widths.len() - 1;
            if l.rgb_after.last() != Some(&last_layer)
                || l.rgb_after.windows(2).any(|w| w[0] >= w[1])
            {
                return Err(bad(format!(
                    "level {i}: rgb_after must be increasing and end at the last layer ({last_layer})"
                )));
            }
            if l.emb.log_res == 0 && l.emb.random == 0 && i == 0 {
                return Err(bad("the first level needs coordinate embeddings".into()));
            }
        }
        let last = self.levels.last().map(|l| l.res).unwrap_or(0);
        if last != self.resolution {
            return Err(bad(format!(
                "the finest level is {last}² but the resolution is {}",
                self.resolution
            )));
        }
        if self.resolution < 8 || !self.resolution.is_power_of_two() {
            return Err(bad("the resolution must be a power of two >= 8".into()));
        }
        Ok(())
    }
}
