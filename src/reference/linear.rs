//! Linear family: dense linear layer and the per-pixel modulated linear layer.

use super::{Float, c};

/// Shape of a dense linear layer `Y[n, o] = w_gain * sum_i X[n, i] W[o, i] + b_gain * b[o]`
/// (equalised learning rate: `w_gain = lr_mul / sqrt(d_in)`, `b_gain = lr_mul`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearShape {
    pub rows: usize,
    pub d_in: usize,
    pub d_out: usize,
    pub w_gain: f32,
    pub b_gain: f32,
}

pub fn linear_forward<F: Float>(s: &LinearShape, x: &[F], w: &[F], b: Option<&[F]>) -> Vec<F> {
    let (wg, bg) = (c::<F>(s.w_gain as f64), c::<F>(s.b_gain as f64));
    let mut y = vec![F::zero(); s.rows * s.d_out];
    for n in 0..s.rows {
        for o in 0..s.d_out {
            let mut acc = F::zero();
            for i in 0..s.d_in {
                acc = acc + x[n * s.d_in + i] * w[o * s.d_in + i];
            }
            let mut v = wg * acc;
            if let Some(b) = b {
                v = v + bg * b[o];
            }
            y[n * s.d_out + o] = v;
        }
    }
    y
}

/// Gradients of [`linear_forward`]: (dX, dW, db).
pub fn linear_backward<F: Float>(
    s: &LinearShape,
    x: &[F],
    w: &[F],
    dy: &[F],
) -> (Vec<F>, Vec<F>, Vec<F>) {
    let (wg, bg) = (c::<F>(s.w_gain as f64), c::<F>(s.b_gain as f64));
    let mut dx = vec![F::zero(); s.rows * s.d_in];
    let mut dw = vec![F::zero(); s.d_out * s.d_in];
    let mut db = vec![F::zero(); s.d_out];
    for n in 0..s.rows {
        for o in 0..s.d_out {
            let g = dy[n * s.d_out + o];
            db[o] = db[o] + bg * g;
            for i in 0..s.d_in {
                dx[n * s.d_in + i] = dx[n * s.d_in + i] + wg * g * w[o * s.d_in + i];
                dw[o * s.d_in + i] = dw[o * s.d_in + i] + wg * g * x[n * s.d_in + i];
            }
        }
    }
    (dx, dw, db)
}

/// Shape of the per-pixel modulated linear layer: image `b` applies its own weight
/// `W[b]` (`[c_out, c_in]`) to each of its `pixels` feature vectors, stored planar:
/// `Y[b, o, p] = sum_i W[b, o, i] X[b, i, p] + bias[o]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModLinearShape {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub pixels: usize,
}

pub fn modlinear_forward<F: Float>(
    s: &ModLinearShape,
    x: &[F],
    w: &[F],
    bias: Option<&[F]>,
) -> Vec<F> {
    let (ci, co, np) = (s.c_in, s.c_out, s.pixels);
    let mut y = vec![F::zero(); s.batch * co * np];
    for b in 0..s.batch {
        for o in 0..co {
            for p in 0..np {
                let mut acc = F::zero();
                for i in 0..ci {
                    acc = acc + w[(b * co + o) * ci + i] * x[(b * ci + i) * np + p];
                }
                if let Some(bias) = bias {
                    acc = acc + bias[o];
                }
                y[(b * co + o) * np + p] = acc;
            }
        }
    }
    y
}

/// Gradients of [`modlinear_forward`]: (dX, dW per image, dbias).
pub fn modlinear_backward<F: Float>(
    s: &ModLinearShape,
    x: &[F],
    w: &[F],
    dy: &[F],
) -> (Vec<F>, Vec<F>, Vec<F>) {
    let (ci, co, np) = (s.c_in, s.c_out, s.pixels);
    let mut dx = vec![F::zero(); s.batch * ci * np];
    let mut dw = vec![F::zero(); s.batch * co * ci];
    let mut db = vec![F::zero(); co];
    for b in 0..s.batch {
        for o in 0..co {
            for p in 0..np {
                let g = dy[(b * co + o) * np + p];
                db[o] = db[o] + g;
                for i in 0..ci {
                    dx[(b * ci + i) * np + p] =
                        dx[(b * ci + i) * np + p] + w[(b * co + o) * ci + i] * g;
                    dw[(b * co + o) * ci + i] =
                        dw[(b * co + o) * ci + i] + g * x[(b * ci + i) * np + p];
                }
            }
        }
    }
    (dx, dw, db)
}

/// Strides of one operand: element (i, j) of batch b is at `b * sb + i * si + j * sj`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides {
    pub sb: usize,
    pub si: usize,
    pub sj: usize,
}

const fn st(sb: usize, si: usize, sj: usize) -> Strides {
    Strides { sb, si, sj }
}

/// Where a product adds its bias.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BiasMode {
    None,
    PerRow,
    PerCol,
}

/// A strided batched product `C[b] = alpha * A[b] B[b] (+ bias_gain * bias) (+ C[b])`, the one
/// operation behind every linear layer of the model (`shaders/linear.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gemm {
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub batch: usize,
    pub a: Strides,
    pub b: Strides,
    pub c: Strides,
    pub alpha: f32,
    pub bias: BiasMode,
    pub bias_gain: f32,
    pub accumulate: bool,
    /// An epilogue `lrelu_alpha(v) * gain` applied to each result (after bias and
    /// accumulation): (alpha, gain). The model's layers use it so that the pre-activation is
    /// never stored; the backward reads the slope from the output.
    pub act: Option<(f32, f32)>,
}

fn extent(s: Strides, batch: usize, rows: usize, cols: usize) -> usize {
    if batch == 0 || rows == 0 || cols == 0 {
        return 0;
    }
    (batch - 1) * s.sb + (rows - 1) * s.si + (cols - 1) * s.sj + 1
}

impl Gemm {
    /// Values each of A, B and C must hold.
    pub fn extents(&self) -> (usize, usize, usize) {
        (
            extent(self.a, self.batch, self.m, self.k),
            extent(self.b, self.batch, self.k, self.n),
            extent(self.c, self.batch, self.m, self.n),
        )
    }

    /// `Y = w_gain X W^T + b_gain b` as `Y^T = W X^T` (A = W, B = X, C = Y), so that weight
    /// rows are uniform across a GPU workgroup.
    pub fn linear_forward(s: &LinearShape, bias: bool) -> Self {
        Self {
            m: s.d_out,
            n: s.rows,
            k: s.d_in,
            batch: 1,
            a: st(0, s.d_in, 1),
            b: st(0, 1, s.d_in),
            c: st(0, 1, s.d_out),
            alpha: s.w_gain,
            bias: if bias {
                BiasMode::PerRow
            } else {
                BiasMode::None
            },
            bias_gain: s.b_gain,
            accumulate: false,
            act: None,
        }
    }

    /// `dX = w_gain dY W` (A = W, B = dY, C = dX).
    pub fn linear_backward_input(s: &LinearShape, accumulate: bool) -> Self {
        Self {
            m: s.d_in,
            n: s.rows,
            k: s.d_out,
            batch: 1,
            a: st(0, 1, s.d_in),
            b: st(0, 1, s.d_out),
            c: st(0, 1, s.d_in),
            alpha: s.w_gain,
            bias: BiasMode::None,
            bias_gain: 0.0,
            accumulate,
            act: None,
        }
    }

    /// `dW = w_gain dY^T X` (A = dY, B = X, C = dW).
    pub fn linear_backward_weight(s: &LinearShape, accumulate: bool) -> Self {
        Self {
            m: s.d_out,
            n: s.d_in,
            k: s.rows,
            batch: 1,
            a: st(0, 1, s.d_out),
            b: st(0, s.d_in, 1),
            c: st(0, s.d_in, 1),
            alpha: s.w_gain,
            bias: BiasMode::None,
            bias_gain: 0.0,
            accumulate,
            act: None,
        }
    }

    /// `Y[b] = W[b] X[b] + bias` on planar data (A = W, B = X, C = Y); `shared_weight` uses
    /// one `[c_out, c_in]` weight for every image.
    pub fn modlinear_forward(s: &ModLinearShape, bias: bool, shared_weight: bool) -> Self {
        let (ci, co, np) = (s.c_in, s.c_out, s.pixels);
        Self {
            m: co,
            n: np,
            k: ci,
            batch: s.batch,
            a: st(if shared_weight { 0 } else { co * ci }, ci, 1),
            b: st(ci * np, np, 1),
            c: st(co * np, np, 1),
            alpha: 1.0,
            bias: if bias {
                BiasMode::PerRow
            } else {
                BiasMode::None
            },
            bias_gain: 1.0,
            accumulate: false,
            act: None,
        }
    }

    /// `dX[b] = W[b]^T dY[b]` (A = W, B = dY, C = dX).
    pub fn modlinear_backward_input(
        s: &ModLinearShape,
        shared_weight: bool,
        accumulate: bool,
    ) -> Self {
        let (ci, co, np) = (s.c_in, s.c_out, s.pixels);
        Self {
            m: ci,
            n: np,
            k: co,
            batch: s.batch,
            a: st(if shared_weight { 0 } else { co * ci }, 1, ci),
            b: st(co * np, np, 1),
            c: st(ci * np, np, 1),
            alpha: 1.0,
            bias: BiasMode::None,
            bias_gain: 0.0,
            accumulate,
            act: None,
        }
    }

    /// `dW[b] = dY[b] X[b]^T`, one weight gradient per image (A = dY, B = X, C = dW).
    pub fn modlinear_backward_weight(s: &ModLinearShape, accumulate: bool) -> Self {
        let (ci, co, np) = (s.c_in, s.c_out, s.pixels);
        Self {
            m: co,
            n: ci,
            k: np,
            batch: s.batch,
            a: st(co * np, np, 1),
            b: st(ci * np, 1, np),
            c: st(co * ci, ci, 1),
            alpha: 1.0,
            bias: BiasMode::None,
            bias_gain: 0.0,
            accumulate,
            act: None,
        }
    }
}

/// The reference of [`Gemm`]: `c` is updated in place.
pub fn gemm<F: Float>(g: &Gemm, a: &[F], b: &[F], bias: Option<&[F]>, c: &mut [F]) {
    let alpha = super::c::<F>(g.alpha as f64);
    let bg = super::c::<F>(g.bias_gain as f64);
    for bt in 0..g.batch {
        for m in 0..g.m {
            for n in 0..g.n {
                let mut acc = F::zero();
                for k in 0..g.k {
                    acc = acc
                        + a[bt * g.a.sb + m * g.a.si + k * g.a.sj]
                            * b[bt * g.b.sb + k * g.b.si + n * g.b.sj];
                }
                let mut v = alpha * acc;
                match (g.bias, bias) {
                    (BiasMode::PerRow, Some(bb)) => v = v + bg * bb[m],
                    (BiasMode::PerCol, Some(bb)) => v = v + bg * bb[n],
                    _ => {}
                }
                let ci = bt * g.c.sb + m * g.c.si + n * g.c.sj;
                if g.accumulate {
                    v = v + c[ci];
                }
                if let Some((a, gain)) = g.act {
                    let (a, gain) = (super::c::<F>(a as f64), super::c::<F>(gain as f64));
                    v = if v > F::zero() { v } else { a * v } * gain;
                }
                c[ci] = v;
            }
        }
    }
}
