//! The CPU backend: every [`Backend`] operation in `f32` on the host, multithreaded with rayon
//! (one pool per backend, `available_parallelism` threads by default).
//!
//! Products go through `matrixmultiply::sgemm` (runtime-detected AVX-512 / AVX2 / FMA kernels):
//! [`LinearOps::gemm`] with the [`Gemm`] strides, cut into fixed tiles of C (and, for short and wide
//! products such as weight gradients over many pixels, fixed bins of K summed in a fixed order);
//! the convolutions as im2col + sgemm over fixed pixel blocks. Everything else is plain loops over
//! rows or planes.
//!
//! Determinism: every partition of the work depends on the shapes only, never on the number of
//! threads, and each output value is computed by one task in a fixed order, so results are bitwise
//! identical whatever the thread count (they differ from the GPU's in the last bits: other
//! summation orders).
//!
//! Buffers are [`CpuBuf`]s, each behind its own lock: an operation read-locks its inputs and
//! write-locks its outputs, so passing one buffer both as an input and as an output of a call
//! (other than the documented in-place operands) is an error, not a data race.
//!
//! Memory: a freed buffer of at least `POOL_MIN` values goes back to the backend's
//! `BufPool` and serves the next buffer of its length (a training step allocates the same
//! shapes every step; fresh allocations cost page faults and a zero fill on the calling thread
//! while the workers wait); the tasks' scratch vectors (`Scratch`) stay with their thread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use rayon::prelude::*;

use super::BackendError;
use super::check;
use super::{
    ActOps, AdamOps, AugmentOps, BResult, Backend, ConvOps, CoordsOps, FmmOps, FusedOps, ImageOps,
    LinearOps, MbstdOps, Memory, ModulateOps, ReduceOps, ResampleOps,
};
use crate::reference as r;
use crate::reference::act::ActShape;
use crate::reference::adam::AdamConfig;
use crate::reference::augment::{AUG_PARAMS, AugParams, AugShape};
use crate::reference::conv::{BLUR_TAPS, ConvShape, blur_down2x_out};
use crate::reference::coords::CoordsShape;
use crate::reference::fmm::{FMM_EPS, FmmShape};
use crate::reference::fused::{Assembly, FusedInput, FusedShape};
use crate::reference::linear::{BiasMode, Gemm};
use crate::reference::mbstd::{MBSTD_EPS, MbstdShape};
use crate::reference::modulate::ModulateShape;
use crate::reference::resample::{ConcatShape, SliceShape, Taps};

mod act;
mod adam;
mod augment;
mod conv;
mod coords;
mod fmm;
mod fused;
mod image;
/// Work (multiply-adds or values) below which an operation runs on the calling thread.
mod linear;
mod mbstd;
mod modulate;
mod reduce;
mod resample;

const PAR_WORK: usize = 1 << 15;
/// Values per work item of the elementwise operations.
const CHUNK: usize = 1 << 13;
/// Rows and columns of C per gemm tile.
const GEMM_MB: usize = 256;
const GEMM_NB: usize = 2048;
/// K per bin when a product with few tiles is split along K.
const KSPLIT_BIN: usize = 2048;
/// Products with fewer tiles than this (and K of at least two bins) are split along K.
const KSPLIT_MAX_TILES: usize = 8;
/// Most `f32` partial sums one operation allocates for a split reduction.
const PARTIAL_CAP: usize = 1 << 22;
/// Values of one im2col block (1 MiB of `f32`).
const COL_BUDGET: usize = 1 << 18;
/// Values of one activation buffer of a fused block's tile (512 KiB of `f32`: the tile's
/// input and activations stay in L2).
const FUSED_TILE_VALUES: usize = 1 << 17;
/// Output pixels from which a stride-1 convolution's forward and dX skip im2col
/// ([`CpuBackend::conv_shifted`]; smaller maps are batched instead).
const SHIFTED_MIN_PIXELS: usize = 256;
/// Most images side by side in one block of a convolution over small maps (measured on
/// emoji32's discriminator at batch 32: 8 beats 2 and the whole batch).
const CONV_GROUP_MAX: usize = 8;
/// Output channels per conv forward task when there are few pixel blocks.
const CONV_CO_BLOCK: usize = 64;
/// Input channels per conv input-gradient task.
const CONV_CI_BLOCK: usize = 16;
/// Output channels per conv weight-gradient task.
const CONV_W_CO_BLOCK: usize = 64;
/// Output pixels (over the batch) per bin of the conv weight gradient.
const CONV_BIN_PIXELS: usize = 4096;
/// Bins of the conv weight gradient that small products are split into (then each task
/// gathers its own pixels' taps once for all output channels) ...
const CONV_W_MIN_BINS: usize = 4;
/// ... when each bin keeps at least this many output pixels.
const CONV_W_MIN_BIN_PIXELS: usize = 128;

// ---------------------------------------------------------------------------------------------
// Buffers

/// An `f32` buffer of the CPU backend (behind a lock; its length never changes). Large buffers
/// go back to their backend's pool when dropped.
#[derive(Debug)]
pub struct CpuBuf {
    data: RwLock<Vec<f32>>,
    len: usize,
    pool: Option<Arc<BufPool>>,
}

impl Drop for CpuBuf {
    fn drop(&mut self) {
        if let Some(pool) = self.pool.take() {
            let v = match self.data.get_mut() {
                Ok(v) => std::mem::take(v),
                Err(p) => std::mem::take(p.into_inner()),
            };
            pool.put(v);
        }
    }
}

/// Buffers of at least this many values are recycled through the backend's [`BufPool`].
const POOL_MIN: usize = 1 << 14;
/// Most bytes the pool keeps idle.
const POOL_CAP_BYTES: usize = 512 << 20;

/// Freed buffers by length, for the next buffer of the same length: a training step allocates
/// the same shapes every step, and a fresh allocation costs page faults and a zero fill on the
/// calling thread while the workers wait.
#[derive(Debug, Default)]
pub(crate) struct BufPool {
    free: Mutex<HashMap<usize, Vec<Vec<f32>>>>,
}

impl BufPool {
    fn idle_bytes(free: &HashMap<usize, Vec<Vec<f32>>>) -> usize {
        free.iter().map(|(n, v)| n * v.len() * 4).sum()
    }

    fn put(&self, v: Vec<f32>) {
        let n = v.len();
        let Ok(mut free) = self.free.lock() else {
            return;
        };
        if n >= POOL_MIN && Self::idle_bytes(&free) + n * 4 <= POOL_CAP_BYTES {
            free.entry(n).or_default().push(v);
        }
    }

    fn take(&self, n: usize) -> Option<Vec<f32>> {
        if n < POOL_MIN {
            return None;
        }
        self.free.lock().ok()?.get_mut(&n)?.pop()
    }
}

/// A worker's scratch vector ([`CpuBackend::tasks`] workspaces), kept by its thread between
/// operations instead of being allocated and zero-filled for every task group.
#[derive(Debug)]
pub(super) struct Scratch(Vec<f32>);

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}
/// Scratch vectors one thread keeps.
const SCRATCH_KEEP: usize = 8;

impl Default for Scratch {
    fn default() -> Self {
        Scratch(
            SCRATCH
                .try_with(|s| s.borrow_mut().pop())
                .ok()
                .flatten()
                .unwrap_or_default(),
        )
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.0);
        if v.capacity() > 0 {
            let _ = SCRATCH.try_with(|s| {
                let mut s = s.borrow_mut();
                if s.len() < SCRATCH_KEEP {
                    s.push(v);
                }
            });
        }
    }
}

impl std::ops::Deref for Scratch {
    type Target = Vec<f32>;
    fn deref(&self) -> &Vec<f32> {
        &self.0
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut Vec<f32> {
        &mut self.0
    }
}

impl CpuBuf {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

pub(super) fn shape_err(msg: impl Into<String>) -> BackendError {
    BackendError::Shape(msg.into())
}

/// A zero-filled vector of `n` values, or an out-of-memory error.
pub(crate) fn alloc_zeros<T: Clone + Default>(n: usize, label: &str) -> BResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| BackendError::OutOfMemory(format!("host buffer {label} of {n} values")))?;
    v.resize(n, T::default());
    Ok(v)
}

/// Read access to an input (fails if the same call holds it as an output).
fn rd<'a>(name: &str, b: &'a CpuBuf) -> BResult<RwLockReadGuard<'a, Vec<f32>>> {
    match b.data.try_read() {
        Ok(g) => Ok(g),
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(TryLockError::WouldBlock) => Err(shape_err(format!(
            "{name}: this buffer is also an output of the same call"
        ))),
    }
}

/// Write access to an output (fails if the same call also passes it as another operand).
fn wr<'a>(name: &str, b: &'a CpuBuf) -> BResult<RwLockWriteGuard<'a, Vec<f32>>> {
    match b.data.try_write() {
        Ok(g) => Ok(g),
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(TryLockError::WouldBlock) => Err(shape_err(format!(
            "{name}: this output buffer is also another operand of the same call"
        ))),
    }
}

/// Read access to an optional input.
fn rd_opt<'a>(name: &str, b: Option<&'a CpuBuf>) -> BResult<Option<RwLockReadGuard<'a, Vec<f32>>>> {
    b.map(|b| rd(name, b)).transpose()
}

// ---------------------------------------------------------------------------------------------
// Small numeric helpers

/// Sum in 8 interleaved lanes combined by a fixed tree: deterministic, vectorisable and more
/// accurate than a running sum.
fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for j in 0..8 {
            acc[j] += c[j];
        }
    }
    for (j, &x) in it.remainder().iter().enumerate() {
        acc[j] += x;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `sum_i a[i] b[i]` in 8 interleaved lanes (see [`sum8`]).
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (mut ia, mut ib) = (a.chunks_exact(8), b.chunks_exact(8));
    for (ca, cb) in (&mut ia).zip(&mut ib) {
        for j in 0..8 {
            acc[j] += ca[j] * cb[j];
        }
    }
    for (j, (&x, &y)) in ia.remainder().iter().zip(ib.remainder()).enumerate() {
        acc[j] += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `‖v‖₂` computed as `max |v| * sqrt(sum (v / max)^2)` (the FMM kernel's overflow-safe form).
fn scaled_norm(v: &[f32]) -> f32 {
    let mx = v.iter().fold(0f32, |m, &x| m.max(x.abs()));
    if mx > 0.0 {
        let inv = 1.0 / mx;
        let mut acc = [0f32; 8];
        for (j, &x) in v.iter().enumerate() {
            let s = x * inv;
            acc[j % 8] += s * s;
        }
        let ss = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        mx * ss.sqrt()
    } else {
        0.0
    }
}

/// A pointer into an output shared by the tasks of one operation, each task writing only its
/// own elements.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: tasks write disjoint elements (see each use) and the buffer outlives them.
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

impl Ptr {
    /// The pointer advanced by `off` values.
    ///
    /// # Safety
    /// `off` must stay inside the allocation.
    unsafe fn at(self, off: usize) -> *mut f32 {
        unsafe { self.0.add(off) }
    }
}

/// A stride as matrixmultiply takes it (0 along an axis of one element, whose stride is unused).
fn st(stride: usize, dim: usize) -> isize {
    if dim <= 1 { 0 } else { stride as isize }
}

/// `C (m x n) = alpha A (m x k) B (k x n) + beta C`, element strides `(rs, cs)` per operand.
///
/// # Safety
/// Every element addressed must lie inside its allocation, C's elements must not alias each
/// other or A and B, and no other thread may touch C's elements meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (rsa, csa) = (if m <= 1 { 0 } else { rsa }, if k <= 1 { 0 } else { csa });
    let (rsb, csb) = (if k <= 1 { 0 } else { rsb }, if n <= 1 { 0 } else { csb });
    let (rsc, csc) = (if m <= 1 { 0 } else { rsc }, if n <= 1 { 0 } else { csc });
    unsafe { matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
}

/// Whether `(i, j) -> i * si + j * sj` is one-to-one on `m x n` (a sufficient test).
fn injective(m: usize, n: usize, si: usize, sj: usize) -> bool {
    match (m, n) {
        (1, 1) => true,
        (1, _) => sj > 0,
        (_, 1) => si > 0,
        _ => {
            (sj > 0 && n.checked_mul(sj).is_some_and(|v| si >= v))
                || (si > 0 && m.checked_mul(si).is_some_and(|v| sj >= v))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The backend

/// The multithreaded `f32` CPU backend (see the module doc).
pub struct CpuBackend {
    pool: rayon::ThreadPool,
    threads: usize,
    /// Renders run each scale block fused (tiles of pixels through all its layers).
    fused: bool,
    /// Freed large buffers, reused by [`Memory::zeros`] and [`Memory::upload`].
    bufs: Arc<BufPool>,
}

impl CpuBackend {
    /// A backend with one worker per available hardware thread.
    pub fn new() -> BResult<Self> {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self::with_threads(n)
    }

    /// A backend with `threads` workers (at least 1); results do not depend on the count.
    pub fn with_threads(threads: usize) -> BResult<Self> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("inrgan-cpu-{i}"))
            .build()
            .map_err(|e| BackendError::Host(format!("thread pool: {e}")))?;
        Ok(Self {
            pool,
            threads,
            fused: super::Switches::current().fused,
            bufs: Arc::default(),
        })
    }

    /// Turns the fused block forward of renders on or off (on unless the program runs with `--no-fused`).
    pub fn set_fused(&mut self, on: bool) {
        self.fused = on;
    }

    /// A buffer holding `v` (returned to the pool when dropped if large).
    fn buf(&self, v: Vec<f32>) -> CpuBuf {
        CpuBuf {
            len: v.len(),
            pool: (v.len() >= POOL_MIN).then(|| self.bufs.clone()),
            data: RwLock::new(v),
        }
    }

    /// A vector of `n` values for an operation's own partial results that its tasks overwrite
    /// entirely before reading: a freed buffer of that length as it is (not zero-filled), else
    /// a fresh one. Give it back with [`CpuBackend::recycle`].
    fn partials(&self, n: usize, label: &str) -> BResult<Vec<f32>> {
        match self.bufs.take(n) {
            Some(v) => Ok(v),
            None => alloc_zeros(n, label),
        }
    }

    /// Returns [`CpuBackend::partials`]' vector to the pool.
    fn recycle(&self, v: Vec<f32>) {
        self.bufs.put(v);
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(task)` for every task: on the calling thread when `work` is small or there is one
    /// task, else in parallel on the pool; `init` makes each worker's scratch state.
    fn tasks<T, S>(
        &self,
        tasks: Vec<T>,
        work: usize,
        init: impl Fn() -> S + Sync + Send,
        f: impl Fn(&mut S, T) + Sync + Send,
    ) where
        T: Send,
    {
        if work < PAR_WORK || tasks.len() <= 1 || self.threads == 1 {
            let mut s = init();
            for t in tasks {
                f(&mut s, t);
            }
        } else {
            self.pool.install(|| {
                tasks
                    .into_par_iter()
                    .with_max_len(1)
                    .for_each_init(&init, |s, t| f(s, t))
            });
        }
    }

    /// Runs `f(index, row)` over the rows of `row` values of `out` (`work` in total).
    fn rows<T: Send>(
        &self,
        out: &mut [T],
        row: usize,
        work: usize,
        f: impl Fn(usize, &mut [T]) + Sync + Send,
    ) {
        if row == 0 {
            return;
        }
        if work < PAR_WORK || out.len() <= row || self.threads == 1 {
            out.chunks_mut(row).enumerate().for_each(|(i, r)| f(i, r));
        } else {
            self.pool.install(|| {
                out.par_chunks_mut(row)
                    .enumerate()
                    .for_each(|(i, r)| f(i, r))
            });
        }
    }

    /// Runs `f(start, chunk)` over fixed chunks of `out` (an elementwise operation).
    fn chunks<T: Send>(&self, out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync + Send) {
        if out.len() < PAR_WORK || self.threads == 1 {
            f(0, out);
        } else {
            self.pool.install(|| {
                out.par_chunks_mut(CHUNK)
                    .enumerate()
                    .for_each(|(i, c)| f(i * CHUNK, c))
            });
        }
    }

    // ---- gemm ----

    // ---- conv ----

    // ---- fused ----

    // ---- fmm ----
}

/// The first `n` values of a worker's scratch vector, grown as needed but not cleared: for
/// buffers that are entirely overwritten (products with beta 0, gathers, [`im2col_at`]).
fn scratch(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

impl Memory for CpuBackend {
    type Buf = CpuBuf;

    fn name(&self) -> String {
        format!("cpu: {} threads", self.threads)
    }

    fn zeros(&mut self, n: usize, label: &str) -> BResult<CpuBuf> {
        let v = match self.bufs.take(n) {
            Some(mut v) => {
                self.chunks(&mut v, |_, c| c.fill(0.0));
                v
            }
            None => alloc_zeros(n, label)?,
        };
        Ok(self.buf(v))
    }

    fn output(&mut self, n: usize, label: &str) -> BResult<CpuBuf> {
        let mut v = match self.bufs.take(n) {
            Some(v) => v,
            None => alloc_zeros(n, label)?,
        };
        if cfg!(debug_assertions) {
            self.chunks(&mut v, |_, c| c.fill(f32::NAN));
        }
        Ok(self.buf(v))
    }

    fn upload(&mut self, data: &[f32], label: &str) -> BResult<CpuBuf> {
        let v = match self.bufs.take(data.len()) {
            Some(mut v) => {
                v.copy_from_slice(data);
                v
            }
            None => {
                let mut v = alloc_zeros::<f32>(0, label)?;
                v.try_reserve_exact(data.len()).map_err(|_| {
                    BackendError::OutOfMemory(format!(
                        "host buffer {label} of {} values",
                        data.len()
                    ))
                })?;
                v.extend_from_slice(data);
                v
            }
        };
        Ok(self.buf(v))
    }

    fn write(&mut self, buf: &CpuBuf, data: &[f32]) -> BResult<()> {
        check::write(buf.len, data.len())?;
        wr("write", buf)?[..data.len()].copy_from_slice(data);
        Ok(())
    }

    fn read(&mut self, buf: &CpuBuf) -> BResult<Vec<f32>> {
        Ok(rd("read", buf)?.clone())
    }

    fn len(&self, buf: &CpuBuf) -> usize {
        buf.len
    }

    fn flush(&mut self) -> BResult<()> {
        Ok(())
    }
}

impl Backend for CpuBackend {
    fn pack(&mut self, batch: usize, parts: &[(&CpuBuf, usize)], label: &str) -> BResult<CpuBuf> {
        let total: usize = parts.iter().map(|p| p.1).sum();
        let mut guards = Vec::with_capacity(parts.len());
        for &(b, n) in parts {
            check::need(label, b.len, batch * n)?;
            guards.push((rd(label, b)?, n));
        }
        let y = self.zeros(batch * total, label)?;
        {
            let mut yg = wr(label, &y)?;
            // One pass: each image's row is its parts side by side.
            self.rows(&mut yg[..batch * total], total, batch * total, |b, row| {
                let mut at = 0;
                for (g, n) in &guards {
                    row[at..at + n].copy_from_slice(&g[b * n..(b + 1) * n]);
                    at += n;
                }
            });
        }
        Ok(y)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The net under `Memory::output`: in debug builds a read before the write shows as NaN.
    #[test]
    #[cfg(debug_assertions)]
    fn output_buffers_are_poisoned_in_debug_builds() {
        let mut be = CpuBackend::with_threads(2).unwrap();
        for n in [POOL_MIN, 7] {
            drop(be.upload(&vec![1.0; n], "a").unwrap());
            let o = be.output(n, "o").unwrap();
            assert!(be.read(&o).unwrap().iter().all(|v| v.is_nan()), "n = {n}");
        }
    }

    /// A recycled buffer comes back zero-filled from `zeros` and holding the data from
    /// `upload`, and buffers too small for the pool still work.
    #[test]
    fn pooled_buffers_are_reset() {
        let mut be = CpuBackend::with_threads(2).unwrap();
        for n in [POOL_MIN, POOL_MIN + 3, 7] {
            let dirty: Vec<f32> = (0..n).map(|i| i as f32 + 1.0).collect();
            let a = be.upload(&dirty, "a").unwrap();
            assert_eq!(be.read(&a).unwrap(), dirty);
            drop(a);
            assert_eq!(be.bufs.take(n).is_some(), n >= POOL_MIN);
            let a = be.upload(&dirty, "a").unwrap();
            drop(a);
            let z = be.zeros(n, "z").unwrap();
            assert!(be.read(&z).unwrap().iter().all(|&v| v == 0.0), "n = {n}");
            be.write(&z, &dirty).unwrap();
            drop(z);
            let u = be.upload(&vec![-2.0; n], "u").unwrap();
            assert!(be.read(&u).unwrap().iter().all(|&v| v == -2.0));
        }
    }
}
