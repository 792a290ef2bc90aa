//! Minibatches for training. The sample sequence is a pure function of (seed, epoch,
//! position): epoch `e` visits every image once in the order [`epoch_order`]`(n, seed, e)`,
//! epochs follow each other (a batch may straddle two), and the x-flip of the sample at
//! (epoch, position) is a fair coin drawn from its own hash. So a [`BatcherState`] of three
//! numbers resumes the exact sequence, whatever the batch size. [`Batcher`] produces the
//! batches on a background thread with a bounded channel (two batches ahead), so loading
//! never stalls the trainer.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;

use serde::{Deserialize, Serialize};

use super::{DataError, Dataset};
use crate::rng::Rng;

/// Batches the background thread may hold ready.
const PREFETCH: usize = 2;

/// Where a batcher is in its sample sequence; save it with a checkpoint and pass it to
/// [`Batcher::resume`] to continue the same sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatcherState {
    /// The seed of the whole sequence.
    pub seed: u64,
    /// The current epoch (0-based).
    pub epoch: u64,
    /// The next sample's position in the current epoch's order.
    pub position: usize,
}

impl BatcherState {
    /// The start of the sequence for `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            epoch: 0,
            position: 0,
        }
    }
}

/// One minibatch.
#[derive(Clone, Debug)]
pub struct Batch {
    /// `[B, 3, R, R]` values in [-1, 1] (flipped where `flipped` says so).
    pub images: Vec<f32>,
    /// The data set index of each image.
    pub indices: Vec<usize>,
    /// Whether each image was mirrored left-right.
    pub flipped: Vec<bool>,
    /// The epoch of the batch's first image.
    pub epoch: u64,
    /// The state right after this batch: what to save with a checkpoint taken after it.
    pub state_after: BatcherState,
}

/// Mixes two words into a seed (SplitMix64-style finaliser).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The order in which epoch `epoch` visits `n` images: a Fisher-Yates shuffle seeded by
/// (seed, epoch).
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut rng = Rng::new(mix(seed, epoch));
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        order.swap(i, j);
    }
    order
}

/// Whether the sample at (epoch, position) is flipped when x-flip is on.
fn flip_coin(seed: u64, epoch: u64, position: usize) -> bool {
    Rng::new(mix(
        mix(seed ^ 0x5851_F42D_4C95_7F2D, epoch),
        position as u64,
    ))
    .next_u64()
        >> 63
        == 1
}

/// Copies image `src` (planar `[3, r, r]`) into `dst`, mirrored left-right when `flip`.
fn copy_image(dst: &mut [f32], src: &[f32], r: usize, flip: bool) {
    if !flip {
        dst.copy_from_slice(src);
        return;
    }
    for (d, s) in dst.chunks_exact_mut(r).zip(src.chunks_exact(r)) {
        for (x, v) in d.iter_mut().enumerate() {
            *v = s[r - 1 - x];
        }
    }
}

/// The batch of `batch_size` samples that starts at `state` (no thread). `order` caches the
/// current epoch's order between calls.
fn make_batch_cached(
    ds: &Dataset,
    batch_size: usize,
    xflip: bool,
    state: &BatcherState,
    order: &mut Option<(u64, Vec<usize>)>,
) -> Batch {
    let n = ds.len();
    let l = ds.image_len();
    let r = ds.resolution;
    let mut images = vec![0.0f32; batch_size * l];
    let mut indices = Vec::with_capacity(batch_size);
    let mut flipped = Vec::with_capacity(batch_size);
    let (mut epoch, mut pos) = (state.epoch, state.position);
    for dst in images.chunks_exact_mut(l) {
        if pos >= n {
            epoch += 1;
            pos = 0;
        }
        if order.as_ref().is_none_or(|(e, _)| *e != epoch) {
            *order = Some((epoch, epoch_order(n, state.seed, epoch)));
        }
        let idx = order.as_ref().map_or(0, |(_, o)| o[pos]);
        let flip = xflip && flip_coin(state.seed, epoch, pos);
        copy_image(dst, ds.image(idx), r, flip);
        indices.push(idx);
        flipped.push(flip);
        pos += 1;
    }
    if pos >= n {
        epoch += 1;
        pos = 0;
    }
    let first_epoch = if state.position >= n {
        state.epoch + 1
    } else {
        state.epoch
    };
    Batch {
        images,
        indices,
        flipped,
        epoch: first_epoch,
        state_after: BatcherState {
            seed: state.seed,
            epoch,
            position: pos,
        },
    }
}

/// The batch of `batch_size` samples that starts at `state`, computed on the calling thread.
pub fn make_batch(
    ds: &Dataset,
    batch_size: usize,
    xflip: bool,
    state: &BatcherState,
) -> Result<Batch, DataError> {
    check(ds, batch_size)?;
    Ok(make_batch_cached(ds, batch_size, xflip, state, &mut None))
}

/// Rejects an empty data set or a zero batch size.
fn check(ds: &Dataset, batch_size: usize) -> Result<(), DataError> {
    if ds.is_empty() {
        return Err(DataError::Batcher(format!(
            "data set {} has no image",
            ds.source
        )));
    }
    if batch_size == 0 {
        return Err(DataError::Batcher("batch size must be at least 1".into()));
    }
    Ok(())
}

/// Serves minibatches produced on a background thread.
pub struct Batcher {
    rx: Option<Receiver<Batch>>,
    handle: Option<JoinHandle<()>>,
    state: BatcherState,
    batch_size: usize,
    xflip: bool,
}

impl Batcher {
    /// A batcher at the start of the sequence for `seed`.
    pub fn new(
        dataset: Arc<Dataset>,
        batch_size: usize,
        xflip: bool,
        seed: u64,
    ) -> Result<Self, DataError> {
        Self::resume(dataset, batch_size, xflip, BatcherState::new(seed))
    }

    /// A batcher that continues from `state` (as returned by [`Batcher::state`]).
    pub fn resume(
        dataset: Arc<Dataset>,
        batch_size: usize,
        xflip: bool,
        state: BatcherState,
    ) -> Result<Self, DataError> {
        check(&dataset, batch_size)?;
        let (tx, rx): (SyncSender<Batch>, Receiver<Batch>) = sync_channel(PREFETCH);
        let start = state.clone();
        let handle = std::thread::Builder::new()
            .name("inrgan-batcher".into())
            .spawn(move || {
                let mut s = start;
                let mut order = None;
                loop {
                    let b = make_batch_cached(&dataset, batch_size, xflip, &s, &mut order);
                    s = b.state_after.clone();
                    if tx.send(b).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| DataError::Batcher(format!("cannot start the loader thread: {e}")))?;
        Ok(Self {
            rx: Some(rx),
            handle: Some(handle),
            state,
            batch_size,
            xflip,
        })
    }

    /// The next minibatch (waits only if the loader thread is behind).
    pub fn next_batch(&mut self) -> Result<Batch, DataError> {
        let rx = self
            .rx
            .as_ref()
            .ok_or_else(|| DataError::Batcher("stopped".into()))?;
        let b = rx
            .recv()
            .map_err(|_| DataError::Batcher("the loader thread stopped".into()))?;
        self.state = b.state_after.clone();
        Ok(b)
    }

    /// The state after the last batch returned by [`Batcher::next_batch`].
    pub fn state(&self) -> BatcherState {
        self.state.clone()
    }

    /// Images per batch.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Whether x-flip augmentation is on.
    pub fn xflip(&self) -> bool {
        self.xflip
    }
}

impl Drop for Batcher {
    fn drop(&mut self) {
        // Dropping the receiver makes the thread's pending or next `send` fail, so it exits.
        self.rx = None;
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
