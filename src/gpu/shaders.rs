//! The WGSL files in `shaders/`, compiled into the binary, and their naga validation.

macro_rules! shaders {
    ($($variant:ident => $file:literal $(after $prelude:literal)?),* $(,)?) => {
        /// One WGSL file of `shaders/` (one kernel family).
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Shader { $($variant),* }

        impl Shader {
            /// Every shader file, for the naga test and for warming pipelines.
            pub const ALL: &'static [Shader] = &[$(Shader::$variant),*];

            pub fn file_name(self) -> &'static str {
                match self { $(Shader::$variant => $file),* }
            }

            /// The source as compiled: the file, after its prelude from `shaders/include/`
            /// where it has one (WGSL has no includes).
            pub fn source(self) -> &'static str {
                match self {
                    $(Shader::$variant => concat!(
                        $(include_str!(concat!("../../shaders/include/", $prelude)),)?
                        include_str!(concat!("../../shaders/", $file))
                    )),*
                }
            }

            /// The prelude file (in `shaders/include/`) prepended to this shader, if any.
            pub fn prelude(self) -> Option<&'static str> {
                match self {
                    $(Shader::$variant => None $(.or(Some($prelude)))?),*
                }
            }
        }
    };
}

shaders! {
    Linear => "linear.wgsl",
    Fmm => "fmm.wgsl" after "tree_sum.wgsl",
    Coords => "coords.wgsl",
    Resample => "resample.wgsl",
    Act => "act.wgsl",
    Conv => "conv.wgsl",
    Mbstd => "mbstd.wgsl" after "tree_sum.wgsl",
    Reduce => "reduce.wgsl" after "tree_sum.wgsl",
    Adam => "adam.wgsl",
    Image => "image.wgsl",
    Modulate => "modulate.wgsl",
    Fused => "fused.wgsl",
    Augment => "augment.wgsl",
}

impl Shader {
    /// The source with `patch` = (line, replacement) applied; an error when the line is not in
    /// the file (a variant that silently compiled the default would be a wrong kernel).
    pub fn patched_source(self, patch: Option<(&str, &str)>) -> Result<String, String> {
        match patch {
            None => Ok(self.source().to_string()),
            Some((line, with)) if self.source().contains(line) => {
                Ok(self.source().replacen(line, with, 1))
            }
            Some((line, _)) => Err(format!("{}: no line {line:?} to patch", self.file_name())),
        }
    }
}

/// Parses and validates WGSL with naga (all validation flags, all capabilities the adapter might
/// offer). Needs no GPU. The error is naga's rendered diagnostic, with the source line.
pub fn validate_wgsl(name: &str, source: &str) -> Result<naga::Module, String> {
    let module = naga::front::wgsl::parse_str(source)
        .map_err(|e| format!("{name}: {}", e.emit_to_string(source)))?;
    naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::all(),
    )
    .validate(&module)
    .map_err(|e| format!("{name}: {}", e.emit_to_string(source)))?;
    Ok(module)
}

/// The names of the compute entry points of a shader.
pub fn entry_points(shader: Shader) -> Result<Vec<String>, String> {
    let m = validate_wgsl(shader.file_name(), shader.source())?;
    Ok(m.entry_points.iter().map(|e| e.name.clone()).collect())
}
