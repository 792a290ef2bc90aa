//! The built-in assets (the shipped model and the emoji set), wherever the program runs from.
//! Each is looked for, in order: beside the executable (`<exe dir>/assets/...`, for a packaged
//! folder), embedded in the `inrgan` binary (its `main` registers the bytes with
//! [`register_embedded`], so a copied, packaged or `cargo install`ed binary carries them), and
//! in the source tree the crate was built from (tests and other binaries of this crate). A
//! missing asset is an error that says where it was looked for.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::OnceLock;

/// The assets' bytes, compiled into a binary.
pub struct Embedded {
    pub model: &'static [u8],
    pub emoji_index: &'static [u8],
    pub emoji_32: &'static [u8],
    pub emoji_64: &'static [u8],
}

static EMBEDDED: OnceLock<Embedded> = OnceLock::new();

/// Makes `e` the embedded assets (the first call wins).
pub fn register_embedded(e: Embedded) {
    let _ = EMBEDDED.set(e);
}

/// One built-in asset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asset {
    Model,
    EmojiIndex,
    Emoji32,
    Emoji64,
}

impl Asset {
    /// Its path relative to the crate root (and to a packaged folder).
    pub fn relative(self) -> &'static str {
        match self {
            Asset::Model => "assets/model/emoji.safetensors",
            Asset::EmojiIndex => "assets/emoji/index.tsv",
            Asset::Emoji32 => "assets/emoji/noto-emoji-32.png",
            Asset::Emoji64 => "assets/emoji/noto-emoji-64.png",
        }
    }

    fn embedded(self) -> Option<&'static [u8]> {
        let e = EMBEDDED.get()?;
        Some(match self {
            Asset::Model => e.model,
            Asset::EmojiIndex => e.emoji_index,
            Asset::Emoji32 => e.emoji_32,
            Asset::Emoji64 => e.emoji_64,
        })
    }
}

/// Where an asset came from.
#[derive(Clone, Debug, PartialEq)]
pub enum Origin {
    File(PathBuf),
    Embedded,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::File(p) => write!(f, "{}", p.display()),
            Origin::Embedded => f.write_str("embedded in the binary"),
        }
    }
}

fn beside_exe(a: Asset) -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.join(a.relative());
    p.is_file().then_some(p)
}

fn in_source_tree(a: Asset) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(a.relative());
    p.is_file().then_some(p)
}

/// Where `a` is found, if anywhere.
pub fn locate(a: Asset) -> Option<Origin> {
    beside_exe(a)
        .map(Origin::File)
        .or_else(|| a.embedded().map(|_| Origin::Embedded))
        .or_else(|| in_source_tree(a).map(Origin::File))
}

/// The bytes of `a` and where they came from.
pub fn read(a: Asset) -> Result<(Cow<'static, [u8]>, Origin), String> {
    match locate(a) {
        Some(Origin::Embedded) => Ok((
            Cow::Borrowed(a.embedded().unwrap_or_default()),
            Origin::Embedded,
        )),
        Some(Origin::File(p)) => std::fs::read(&p)
            .map(|b| (Cow::Owned(b), Origin::File(p.clone())))
            .map_err(|e| format!("cannot read {}: {e}", p.display())),
        None => Err(format!(
            "the built-in {} is missing: it is not beside the executable ({}), not embedded in \
             this binary, and not in the source tree ({})",
            a.relative(),
            std::env::current_exe()
                .ok()
                .and_then(|e| e
                    .parent()
                    .map(|p| p.join(a.relative()).display().to_string()))
                .unwrap_or_else(|| "unknown".into()),
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join(a.relative())
                .display()
        )),
    }
}
