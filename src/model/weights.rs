//! Weight files: `*.safetensors` with the tensors under their stable names, the model config in
//! the file's metadata (`inrgan.config`, RON) and in a `.ron` file beside it. Loading checks
//! every name, shape and dtype against the config; files are written atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::config::ModelConfig;
use super::params::ParamSpec;

/// Metadata key of the model config.
pub const CONFIG_KEY: &str = "inrgan.config";
/// Metadata key of the file format version.
pub const FORMAT_KEY: &str = "inrgan.format";
pub const FORMAT: &str = "1";

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a readable safetensors file ({detail}); it may be truncated or corrupt")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path}: no model config in the metadata (key {CONFIG_KEY}); is this an INR-GAN Explorer weights file?"
    )]
    NoConfig { path: PathBuf },
    #[error("{path}: the model config does not parse: {detail}")]
    BadConfig { path: PathBuf, detail: String },
    #[error("{path}: {problems}")]
    Mismatch { path: PathBuf, problems: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WeightsError + '_ {
    move |source| WeightsError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, flushed, then
/// renamed over the target. A failure (such as a full disk) leaves any old file untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), WeightsError> {
    use std::io::Write;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(d) = dir {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "weights".into());
    let tmp = path.with_file_name(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(WeightsError::Io {
            path: path.to_path_buf(),
            source: e,
        });
    }
    Ok(())
}

/// Saves `values` (one vector per spec, in spec order) with `cfg`.
pub fn save(
    path: &Path,
    cfg: &ModelConfig,
    specs: &[ParamSpec],
    values: &[Vec<f32>],
) -> Result<(), WeightsError> {
    save_with(path, cfg, specs, values, &[])
}

/// Metadata keys of the facts a weights file may carry (images trained on, data set, SWD).
pub const FACT_PREFIX: &str = "inrgan.fact.";

/// [`save`] with extra facts (`name`, `value`) stored in the metadata under [`FACT_PREFIX`].
pub fn save_with(
    path: &Path,
    cfg: &ModelConfig,
    specs: &[ParamSpec],
    values: &[Vec<f32>],
    facts: &[(String, String)],
) -> Result<(), WeightsError> {
    save_as(path, cfg, specs, values, facts, false)
}

/// [`save_with`], storing the tensors as IEEE half floats when `half` (half the size; the
/// loader widens them back to f32, so a half file is exactly the model it loads as).
pub fn save_as(
    path: &Path,
    cfg: &ModelConfig,
    specs: &[ParamSpec],
    values: &[Vec<f32>],
    facts: &[(String, String)],
    half: bool,
) -> Result<(), WeightsError> {
    if specs.len() != values.len() || specs.iter().zip(values).any(|(s, v)| s.len() != v.len()) {
        return Err(WeightsError::Mismatch {
            path: path.to_path_buf(),
            problems: "values do not match the parameter specs".into(),
        });
    }
    let bytes: Vec<Vec<u8>> = values
        .iter()
        .map(|v| {
            if half {
                v.iter()
                    .flat_map(|&x| f32_to_f16(x).to_le_bytes())
                    .collect()
            } else {
                v.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
        })
        .collect();
    let dtype = if half {
        safetensors::Dtype::F16
    } else {
        safetensors::Dtype::F32
    };
    let mut views = Vec::with_capacity(specs.len());
    for (s, b) in specs.iter().zip(&bytes) {
        let view =
            safetensors::tensor::TensorView::new(dtype, s.shape.clone(), b).map_err(|e| {
                WeightsError::Corrupt {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                }
            })?;
        views.push((s.name.clone(), view));
    }
    let ron = cfg.to_ron();
    let mut meta = HashMap::from([
        (CONFIG_KEY.to_string(), ron.clone()),
        (FORMAT_KEY.to_string(), FORMAT.to_string()),
    ]);
    for (k, v) in facts {
        meta.insert(format!("{FACT_PREFIX}{k}"), v.clone());
    }
    let data = safetensors::serialize(views, Some(meta)).map_err(|e| WeightsError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    write_atomic(path, &data)?;
    write_atomic(&path.with_extension("ron"), ron.as_bytes())
}

/// The model config stored in a weights file.
pub fn read_config(path: &Path) -> Result<ModelConfig, WeightsError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    config_of(path, &bytes)
}

/// The facts stored by [`save_with`], sorted by name.
pub fn read_facts(path: &Path) -> Result<Vec<(String, String)>, WeightsError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    read_facts_bytes(path, &bytes)
}

/// [`read_facts`] of bytes in memory.
pub fn read_facts_bytes(path: &Path, bytes: &[u8]) -> Result<Vec<(String, String)>, WeightsError> {
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| WeightsError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let mut facts: Vec<(String, String)> = meta
        .metadata()
        .iter()
        .flatten()
        .filter_map(|(k, v)| {
            k.strip_prefix(FACT_PREFIX)
                .map(|n| (n.to_string(), v.clone()))
        })
        .collect();
    facts.sort();
    Ok(facts)
}

fn config_of(path: &Path, bytes: &[u8]) -> Result<ModelConfig, WeightsError> {
    let (_, meta) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| WeightsError::Corrupt {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
    let text = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(CONFIG_KEY))
        .ok_or_else(|| WeightsError::NoConfig {
            path: path.to_path_buf(),
        })?;
    ModelConfig::from_ron(text).map_err(|e| WeightsError::BadConfig {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// A loaded file: its config, the specs it was checked against, and one vector per spec.
pub type Loaded = (ModelConfig, Vec<ParamSpec>, Vec<Vec<f32>>);

/// Loads the tensors named by `specs` (every one must be present with its shape, as f32) and
/// the file's config. Extra tensors in the file are an error too: they mean another model.
pub fn load(
    path: &Path,
    specs_for: impl FnOnce(&ModelConfig) -> Vec<ParamSpec>,
) -> Result<Loaded, WeightsError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    load_bytes(path, &bytes, specs_for)
}

/// [`load`] of a file's bytes already in memory (`path` names them in errors).
pub fn load_bytes(
    path: &Path,
    bytes: &[u8],
    specs_for: impl FnOnce(&ModelConfig) -> Vec<ParamSpec>,
) -> Result<Loaded, WeightsError> {
    let cfg = config_of(path, bytes)?;
    let specs = specs_for(&cfg);
    let st = safetensors::SafeTensors::deserialize(bytes).map_err(|e| WeightsError::Corrupt {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })?;
    let mut problems = Vec::new();
    let mut values = Vec::with_capacity(specs.len());
    for s in &specs {
        match st.tensor(&s.name) {
            Err(_) => problems.push(format!("missing tensor {}", s.name)),
            Ok(t) => {
                if t.dtype() != safetensors::Dtype::F32 && t.dtype() != safetensors::Dtype::F16 {
                    problems.push(format!(
                        "{}: dtype {:?}, expected F32 or F16",
                        s.name,
                        t.dtype()
                    ));
                } else if t.shape() != s.shape.as_slice() {
                    problems.push(format!(
                        "{}: shape {:?}, the config needs {:?}",
                        s.name,
                        t.shape(),
                        s.shape
                    ));
                } else {
                    let v: Vec<f32> = if t.dtype() == safetensors::Dtype::F16 {
                        t.data()
                            .chunks_exact(2)
                            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
                            .collect()
                    } else {
                        t.data()
                            .chunks_exact(4)
                            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                            .collect()
                    };
                    if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                        problems.push(format!("{}: value {i} is {}", s.name, v[i]));
                    }
                    values.push(v);
                }
            }
        }
    }
    for name in st.names() {
        if !specs.iter().any(|s| s.name == name) {
            problems.push(format!("unexpected tensor {name}"));
        }
    }
    if !problems.is_empty() {
        problems.sort();
        return Err(WeightsError::Mismatch {
            path: path.to_path_buf(),
            problems: problems.join("; "),
        });
    }
    Ok((cfg, specs, values))
}

/// A short hash of a weights file's bytes (FNV-1a 64), for recipes and the model panel.
pub fn file_hash(path: &Path) -> Result<String, WeightsError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    Ok(bytes_hash(&bytes))
}

/// [`file_hash`] of bytes in memory (FNV-1a, 64 bits).
pub fn bytes_hash(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// f32 to IEEE 754 binary16, rounding to nearest even (overflow to infinity, subnormals kept).
pub fn f32_to_f16(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xff) as i32;
    let man = b & 0x7f_ffff;
    if exp == 0xff {
        // Inf or NaN (a NaN keeps a mantissa bit).
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        // Subnormal: shift the mantissa (with its implicit bit) into place, rounding.
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        let half = m >> shift;
        let rest = m & ((1 << shift) - 1);
        let mid = 1 << (shift - 1);
        let round = rest > mid || (rest == mid && (half & 1) == 1);
        return sign | (half + round as u32) as u16;
    }
    let half = ((e as u32) << 10) | (man >> 13);
    let rest = man & 0x1fff;
    let round = rest > 0x1000 || (rest == 0x1000 && (half & 1) == 1);
    // A carry out of the mantissa correctly bumps the exponent (up to infinity).
    sign | (half + round as u32) as u16
}

/// IEEE 754 binary16 to f32 (exact).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1f) as u32;
    let man = (h & 0x3ff) as u32;
    let bits = match exp {
        0 => {
            // Zero or subnormal: man * 2^-24.
            let v = man as f32 * (2.0f32).powi(-24);
            return if sign != 0 { -v } else { v };
        }
        0x1f => sign | 0x7f80_0000 | (man << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod half_tests {
    use super::*;

    #[test]
    fn half_round_trip_and_rounding() {
        for &x in &[
            0.0f32,
            1.0,
            -2.5,
            65504.0,
            6.1035156e-5,
            5.9604645e-8,
            0.333_333_34,
        ] {
            let h = f32_to_f16(x);
            let back = f16_to_f32(h);
            assert!(
                (back - x).abs() <= x.abs() * 1e-3 + 6e-8,
                "{x} -> {h:#x} -> {back}"
            );
        }
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f16_to_f32(0x0001), 5.9604645e-8);
        // Every half value survives f16 -> f32 -> f16.
        for h in 0..=u16::MAX {
            let x = f16_to_f32(h);
            if x.is_nan() {
                continue;
            }
            assert_eq!(f32_to_f16(x), h, "{h:#x}");
        }
    }
}
