//! Named parameter tensors: their specification (name, shape, initialisation), their buffers on
//! a backend, and conversion to and from host vectors (for checkpoints and weight files).

use crate::backend::BackendError;
use crate::backend::{BResult, Backend};
use crate::rng::Rng;

/// How a parameter starts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// N(0, std²).
    Normal(f32),
    /// Every value the same.
    Const(f32),
}

/// One named parameter tensor, with a stable hierarchical name such as
/// `g.mapping.fc0.weight` or `d.b16.conv0.weight`.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSpec {
    pub name: String,
    pub shape: Vec<usize>,
    pub init: Init,
    /// False for tracked buffers that the optimiser does not update (such as `w_avg`).
    pub trainable: bool,
}

impl ParamSpec {
    pub fn new(name: impl Into<String>, shape: &[usize], init: Init) -> Self {
        Self {
            name: name.into(),
            shape: shape.to_vec(),
            init,
            trainable: true,
        }
    }

    /// The same spec, not updated by the optimiser.
    pub fn frozen(mut self) -> Self {
        self.trainable = false;
        self
    }

    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Initial values drawn from `rng`.
    pub fn initial(&self, rng: &mut Rng) -> Vec<f32> {
        match self.init {
            Init::Normal(std) => (0..self.len()).map(|_| rng.normal() as f32 * std).collect(),
            Init::Const(v) => vec![v; self.len()],
        }
    }
}

/// The buffers of a list of parameters (or of their gradients, or optimiser moments) on a
/// backend, in the order of the specs.
pub struct ParamSet<B: Backend> {
    pub specs: Vec<ParamSpec>,
    pub bufs: Vec<B::Buf>,
}

impl<B: Backend> ParamSet<B> {
    /// Fresh parameters, drawn in spec order from `seed`.
    pub fn init(be: &mut B, specs: &[ParamSpec], seed: u64) -> BResult<Self> {
        let mut rng = Rng::new(seed);
        let host: Vec<Vec<f32>> = specs.iter().map(|s| s.initial(&mut rng)).collect();
        Self::from_host(be, specs, &host)
    }

    /// Zero-filled buffers of the same shapes (gradients, Adam moments).
    pub fn zeros(be: &mut B, specs: &[ParamSpec]) -> BResult<Self> {
        let bufs = specs
            .iter()
            .map(|s| be.zeros(s.len(), &s.name))
            .collect::<BResult<Vec<_>>>()?;
        Ok(Self {
            specs: specs.to_vec(),
            bufs,
        })
    }

    /// Buffers holding `host` (one vector per spec, checked against the shapes).
    pub fn from_host(be: &mut B, specs: &[ParamSpec], host: &[Vec<f32>]) -> BResult<Self> {
        if host.len() != specs.len() {
            return Err(BackendError::Shape(format!(
                "{} parameter tensors given, {} expected",
                host.len(),
                specs.len()
            )));
        }
        let mut bufs = Vec::with_capacity(specs.len());
        for (s, v) in specs.iter().zip(host) {
            if v.len() != s.len() {
                return Err(BackendError::Shape(format!(
                    "{}: {} values, shape {:?} needs {}",
                    s.name,
                    v.len(),
                    s.shape,
                    s.len()
                )));
            }
            bufs.push(be.upload(v, &s.name)?);
        }
        Ok(Self {
            specs: specs.to_vec(),
            bufs,
        })
    }

    /// All values, one vector per spec.
    pub fn to_host(&self, be: &mut B) -> BResult<Vec<Vec<f32>>> {
        self.bufs.iter().map(|b| be.read(b)).collect()
    }

    /// Index of the parameter called `name`.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.specs.iter().position(|s| s.name == name)
    }

    /// Total number of values.
    pub fn count(&self) -> usize {
        self.specs.iter().map(|s| s.len()).sum()
    }
}
