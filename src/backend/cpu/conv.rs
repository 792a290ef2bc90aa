//! The CPU backend's `conv` family (`shaders/conv.wgsl`).

use super::*;

impl ConvOps for CpuBackend {
    fn conv2d_forward(
        &mut self,
        s: &ConvShape,
        x: &CpuBuf,
        w: &CpuBuf,
        b: Option<&CpuBuf>,
        y: &CpuBuf,
    ) -> BResult<()> {
        if !check::conv_forward(s, x.len, w.len, b.map(|b| b.len), y.len)? {
            return Ok(());
        }
        let (xg, wg) = (rd("conv2d_forward x", x)?, rd("conv2d_forward w", w)?);
        let bg = rd_opt("conv2d_forward b", b)?;
        let mut yg = wr("conv2d_forward y", y)?;
        self.conv_forward_f32(s, &xg, &wg, bg.as_deref().map(|v| v.as_slice()), &mut yg);
        Ok(())
    }

    fn conv2d_backward_input(
        &mut self,
        s: &ConvShape,
        dy: &CpuBuf,
        w: &CpuBuf,
        dx: &CpuBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::conv_backward_input(s, dy.len, w.len, dx.len)? {
            return Ok(());
        }
        let (dyg, wg) = (
            rd("conv2d_backward_input dy", dy)?,
            rd("conv2d_backward_input w", w)?,
        );
        let mut dxg = wr("conv2d_backward_input dx", dx)?;
        self.conv_backward_input_f32(s, &dyg, &wg, &mut dxg, accumulate);
        Ok(())
    }

    fn conv2d_backward_weight(
        &mut self,
        s: &ConvShape,
        dy: &CpuBuf,
        x: &CpuBuf,
        dw: &CpuBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::conv_backward_weight(s, dy.len, x.len, dw.len)? {
            return Ok(());
        }
        let (dyg, xg) = (
            rd("conv2d_backward_weight dy", dy)?,
            rd("conv2d_backward_weight x", x)?,
        );
        let mut dwg = wr("conv2d_backward_weight dw", dw)?;
        self.conv_backward_weight_f32(s, &dyg, &xg, &mut dwg, accumulate)
    }

    fn blur_down2x_forward(
        &mut self,
        x: &CpuBuf,
        y: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
    ) -> BResult<()> {
        if !check::blur_forward(x.len, y.len, planes, h, w)? {
            return Ok(());
        }
        let xg = rd("blur_down2x_forward x", x)?;
        let mut yg = wr("blur_down2x_forward y", y)?;
        let xv = &xg[..];
        let (ho, wo) = (blur_down2x_out(h), blur_down2x_out(w));
        let f = BLUR_TAPS.map(|v| v as f32);
        // Separable, one plane per task: rows first (t = the horizontal pass at every input
        // row), then columns.
        self.rows(
            &mut yg[..planes * ho * wo],
            ho * wo,
            planes * ho * wo * 16,
            |p, out| {
                let plane = &xv[p * h * w..(p + 1) * h * w];
                let mut t = vec![0f32; h * wo];
                for (src, trow) in plane.chunks_exact(w).zip(t.chunks_exact_mut(wo)) {
                    for (j, v) in trow.iter_mut().enumerate() {
                        let mut acc = 0f32;
                        for (bb, &fb) in f.iter().enumerate() {
                            let ix = (2 * j + bb).wrapping_sub(1);
                            if ix < w {
                                acc += fb * src[ix];
                            }
                        }
                        *v = acc;
                    }
                }
                for (i, orow) in out.chunks_exact_mut(wo).enumerate() {
                    orow.fill(0.0);
                    for (a, &fa) in f.iter().enumerate() {
                        let iy = (2 * i + a).wrapping_sub(1);
                        if iy < h {
                            for (o, &tv) in orow.iter_mut().zip(&t[iy * wo..(iy + 1) * wo]) {
                                *o += fa * tv;
                            }
                        }
                    }
                }
            },
        );
        Ok(())
    }

    fn blur_down2x_backward(
        &mut self,
        dy: &CpuBuf,
        dx: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::blur_backward(dy.len, dx.len, planes, h, w)? {
            return Ok(());
        }
        let dyg = rd("blur_down2x_backward dy", dy)?;
        let mut dxg = wr("blur_down2x_backward dx", dx)?;
        let dyv = &dyg[..];
        let (ho, wo) = (blur_down2x_out(h), blur_down2x_out(w));
        let f = BLUR_TAPS.map(|v| v as f32);
        // The transpose of the forward's two passes, one plane per task: output row i spreads
        // into input rows 2i - 1 ..= 2i + 2 (u), then each column j into columns 2j - 1 ..= 2j + 2.
        self.rows(
            &mut dxg[..planes * h * w],
            h * w,
            planes * h * w * 16,
            |p, out| {
                let g = &dyv[p * ho * wo..(p + 1) * ho * wo];
                let mut u = vec![0f32; h * wo];
                for (i, grow) in g.chunks_exact(wo).enumerate() {
                    for (a, &fa) in f.iter().enumerate() {
                        let iy = (2 * i + a).wrapping_sub(1);
                        if iy < h {
                            for (o, &gv) in u[iy * wo..(iy + 1) * wo].iter_mut().zip(grow) {
                                *o += fa * gv;
                            }
                        }
                    }
                }
                for (urow, orow) in u.chunks_exact(wo).zip(out.chunks_exact_mut(w)) {
                    if !accumulate {
                        orow.fill(0.0);
                    }
                    for (j, &uv) in urow.iter().enumerate() {
                        for (bb, &fb) in f.iter().enumerate() {
                            let ix = (2 * j + bb).wrapping_sub(1);
                            if ix < w {
                                orow[ix] += fb * uv;
                            }
                        }
                    }
                }
            },
        );
        Ok(())
    }
}

impl CpuBackend {
    /// Output pixels per im2col block for `rows` rows of columns (a multiple of 16 in 16..=1024).
    pub(super) fn pixel_block(rows: usize) -> usize {
        ((COL_BUDGET / rows.max(1)).clamp(16, 1024) / 16) * 16
    }

    /// Images per block of a convolution whose output maps have `hw_out` pixels, for blocks
    /// of `pb` pixels: maps smaller than a block are batched side by side, so that small maps
    /// (4x4 at the end of the discriminator) still make wide products (1 for larger maps).
    pub(super) fn image_group(pb: usize, hw_out: usize) -> usize {
        (pb / hw_out.max(1)).clamp(1, CONV_GROUP_MAX)
    }

    pub(super) fn conv_forward_f32(
        &self,
        s: &ConvShape,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let (h, wd, k) = (s.height, s.width, s.k);
        let hw_out = s.out_height() * s.out_width();
        let ckk = s.c_in * k * k;
        if k > 1 && s.stride == 1 && hw_out >= SHIFTED_MIN_PIXELS {
            let yp = Ptr(y.as_mut_ptr());
            self.conv_shifted(s, x, w, false, |n, co, r, row| {
                let bv = b.map_or(0.0, |b| s.b_gain * b[co]);
                // SAFETY: within Y; each task writes its own (image, channel block).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(
                        yp.at((n * s.c_out + co) * hw_out + r * s.width),
                        s.width,
                    )
                };
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = v + bv;
                }
            });
            return;
        }
        let direct = k == 1 && s.stride == 1;
        let pb = Self::pixel_block(ckk);
        let g = Self::image_group(pb, hw_out);
        // Tasks: (group of g images or one image, pixel block, output-channel block).
        let (groups, pblocks) = if g > 1 {
            (s.batch.div_ceil(g), 1)
        } else {
            (s.batch, hw_out.div_ceil(pb))
        };
        let cob = if groups * pblocks < 2 * self.threads {
            CONV_CO_BLOCK.min(s.c_out)
        } else {
            s.c_out
        };
        let coblocks = s.c_out.div_ceil(cob);
        let yp = Ptr(y.as_mut_ptr());
        let work = s.batch * hw_out * s.c_out * ckk;
        let tasks = (0..groups * pblocks * coblocks).collect();
        /// Output channels co0.. (`nco` rows of np, `ldc` apart at `c`) = w_gain W taps, for
        /// the taps' ckk rows of np values `ldb` apart at `taps`.
        ///
        /// # Safety
        /// `taps` must hold ckk rows of np values `ldb` apart, and `c` nco rows of np values
        /// `ldc` apart that no other task writes.
        #[allow(clippy::too_many_arguments)]
        unsafe fn outputs(
            s: &ConvShape,
            w: &[f32],
            co0: usize,
            nco: usize,
            taps: *const f32,
            ldb: usize,
            np: usize,
            c: *mut f32,
            ldc: usize,
        ) {
            let ckk = s.c_in * s.k * s.k;
            unsafe {
                sgemm(
                    nco,
                    ckk,
                    np,
                    s.w_gain,
                    w[co0 * ckk..].as_ptr(),
                    ckk as isize,
                    1,
                    taps,
                    ldb as isize,
                    1,
                    0.0,
                    c,
                    ldc as isize,
                    1,
                )
            }
        }
        let workspace = || <(Scratch, Scratch)>::default();
        self.tasks(
            tasks,
            work,
            workspace,
            |(cols, prod): &mut (Scratch, Scratch), t| {
                let (gi, rest) = (t / (pblocks * coblocks), t % (pblocks * coblocks));
                let (p0, co0) = ((rest / coblocks) * pb, (rest % coblocks) * cob);
                let nco = cob.min(s.c_out - co0);
                let bias = |co: usize| b.map_or(0.0, |b| s.b_gain * b[co0 + co]);
                if g > 1 {
                    // Images n0.. side by side: one product, then each image's rows scattered.
                    let n0 = gi * g;
                    let ni = g.min(s.batch - n0);
                    let np = ni * hw_out;
                    let cols = scratch(cols, ckk * np);
                    for i in 0..ni {
                        let xn = &x[(n0 + i) * s.c_in * h * wd..(n0 + i + 1) * s.c_in * h * wd];
                        im2col_at(s, xn, 0, hw_out, &mut cols[i * hw_out..], np);
                    }
                    let prod = scratch(prod, nco * np);
                    // SAFETY: cols holds ckk rows of np; `prod` is this worker's own.
                    unsafe {
                        outputs(s, w, co0, nco, cols.as_ptr(), np, np, prod.as_mut_ptr(), np)
                    };
                    for i in 0..ni {
                        for co in 0..nco {
                            let src = &prod[co * np + i * hw_out..co * np + (i + 1) * hw_out];
                            let bv = bias(co);
                            // SAFETY: within Y; each task writes its own (images, channel block).
                            let dst = unsafe {
                                std::slice::from_raw_parts_mut(
                                    yp.at(((n0 + i) * s.c_out + co0 + co) * hw_out),
                                    hw_out,
                                )
                            };
                            for (d, &v) in dst.iter_mut().zip(src) {
                                *d = v + bv;
                            }
                        }
                    }
                    return;
                }
                let n = gi;
                let np = pb.min(hw_out - p0);
                let xn = &x[n * s.c_in * h * wd..(n + 1) * s.c_in * h * wd];
                let (bptr, rsb) = if direct {
                    (xn[p0..].as_ptr(), (h * wd) as isize)
                } else {
                    im2col(s, xn, p0, np, cols);
                    (cols.as_ptr(), np as isize)
                };
                let yo = (n * s.c_out + co0) * hw_out + p0;
                // SAFETY: W, X/cols and Y offsets are within their checked lengths; each task
                // writes its own (image, channel block, pixel block) of Y.
                unsafe {
                    outputs(s, w, co0, nco, bptr, rsb as usize, np, yp.at(yo), hw_out);
                    if b.is_some() {
                        for co in 0..nco {
                            let bv = bias(co);
                            let row = std::slice::from_raw_parts_mut(yp.at(yo + co * hw_out), np);
                            row.iter_mut().for_each(|v| *v += bv);
                        }
                    }
                }
            },
        );
    }

    /// A stride-1 convolution without im2col: each image of `src` (`c_src` planes) is copied
    /// once with its zero border (`xp`, rows `wp = width + k - 1` long), and each of the k*k
    /// taps is one product of the tap's weights with `xp` shifted by the tap, summed into
    /// `c_dst` outputs of padded rows; `finish(image, channel, row, its values)`
    /// stores each output row (its first `width` values; the rest of a padded row is
    /// discarded). The products read the image where it lies instead of an im2col copy k*k
    /// times its size. The forward uses W as stored; dX (the transposed convolution) the same
    /// weights transposed and the taps mirrored.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn conv_shifted(
        &self,
        s: &ConvShape,
        src: &[f32],
        w: &[f32],
        transposed: bool,
        finish: impl Fn(usize, usize, usize, &[f32]) + Sync + Send,
    ) {
        let (h, wd, k, pad) = (s.height, s.width, s.k, s.pad());
        let (hp, wp) = (h + 2 * pad, wd + 2 * pad);
        let (hw, kk) = (h * wd, k * k);
        let (c_src, c_dst) = if transposed {
            (s.c_out, s.c_in)
        } else {
            (s.c_in, s.c_out)
        };
        // Output positions in padded rows: the last row needs only its `wd` values (so the
        // shifted reads stay inside `xp`).
        let npp = (h - 1) * wp + wd;
        let cb = if s.batch < 2 * self.threads {
            CONV_CO_BLOCK.min(c_dst)
        } else {
            c_dst
        };
        let blocks = c_dst.div_ceil(cb);
        let work = s.batch * hw * s.c_out * s.c_in * kk;
        let tasks = (0..s.batch * blocks).collect();
        let workspace = || <(Scratch, Scratch)>::default();
        self.tasks(
            tasks,
            work,
            workspace,
            |(xp, acc): &mut (Scratch, Scratch), t| {
                let (n, c0) = (t / blocks, (t % blocks) * cb);
                let nc = cb.min(c_dst - c0);
                let xp = scratch(xp, c_src * hp * wp);
                xp.fill(0.0);
                let xn = &src[n * c_src * hw..(n + 1) * c_src * hw];
                for (plane, sp) in xp.chunks_exact_mut(hp * wp).zip(xn.chunks_exact(hw)) {
                    for (r, row) in sp.chunks_exact(wd).enumerate() {
                        plane[(r + pad) * wp + pad..][..wd].copy_from_slice(row);
                    }
                }
                let acc = scratch(acc, nc * npp);
                for ky in 0..k {
                    for kx in 0..k {
                        // Forward: A(co, ci) = W[co, ci, ky, kx], read at the tap's shift. dX:
                        // A(ci, co) = W[co, ci, ky, kx], read at the mirrored shift.
                        let (a0, rsa, csa, shift) = if transposed {
                            let shift = (k - 1 - ky) * wp + (k - 1 - kx);
                            (c0 * kk + ky * k + kx, kk, s.c_in * kk, shift)
                        } else {
                            (
                                c0 * s.c_in * kk + ky * k + kx,
                                s.c_in * kk,
                                kk,
                                ky * wp + kx,
                            )
                        };
                        // SAFETY: the tap's weights and `xp` from the shift (npp values a row,
                        // rows hp * wp apart) lie within their lengths; `acc` is this worker's own.
                        unsafe {
                            sgemm(
                                nc,
                                c_src,
                                npp,
                                s.w_gain,
                                w[a0..].as_ptr(),
                                rsa as isize,
                                csa as isize,
                                xp[shift..].as_ptr(),
                                (hp * wp) as isize,
                                1,
                                if ky + kx == 0 { 0.0 } else { 1.0 },
                                acc.as_mut_ptr(),
                                npp as isize,
                                1,
                            )
                        };
                    }
                }
                for c in 0..nc {
                    for r in 0..h {
                        finish(n, c0 + c, r, &acc[c * npp + r * wp..][..wd]);
                    }
                }
            },
        );
    }

    pub(super) fn conv_backward_input_f32(
        &self,
        s: &ConvShape,
        dy: &[f32],
        w: &[f32],
        dx: &mut [f32],
        acc: bool,
    ) {
        let (h, wd, k) = (s.height, s.width, s.k);
        let (hw, hw_out) = (h * wd, s.out_height() * s.out_width());
        let (kk, ckk) = (k * k, s.c_in * k * k);
        if k > 1 && s.stride == 1 && hw_out >= SHIFTED_MIN_PIXELS {
            let dxp = Ptr(dx.as_mut_ptr());
            self.conv_shifted(s, dy, w, true, |n, ci, r, row| {
                // SAFETY: within dX; each task writes its own (image, channel block).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(dxp.at((n * s.c_in + ci) * hw + r * wd), wd)
                };
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = if acc { *d + v } else { v };
                }
            });
            return;
        }
        let direct = k == 1 && s.stride == 1;
        let cib = CONV_CI_BLOCK.min(s.c_in);
        let g = Self::image_group(Self::pixel_block(cib * kk), hw_out);
        let work = s.batch * hw_out * s.c_out * ckk;
        let dx = &mut dx[..s.x_len()];
        // Tasks: (first image, first input channel, that block's planes in each of the task's
        // images): one image each, or g images side by side for small maps.
        let n_cb = s.c_in.div_ceil(cib);
        let mut tasks: Vec<(usize, usize, Vec<&mut [f32]>)> = (0..s.batch.div_ceil(g) * n_cb)
            .map(|t| ((t / n_cb) * g, (t % n_cb) * cib, Vec::new()))
            .collect();
        if hw > 0 {
            for (n, img) in dx.chunks_mut(s.c_in * hw).enumerate() {
                for (cb, sl) in img.chunks_mut(cib * hw).enumerate() {
                    tasks[(n / g) * n_cb + cb].2.push(sl);
                }
            }
        }
        /// dcols (the taps of input channels ci0.., `rows` rows of np) = w_gain W^T dY, for
        /// dY's c_out rows of np values `ld` apart starting at `dy`.
        ///
        /// # Safety
        /// `dy` must hold c_out rows of np values `ld` apart, and `dcols` rows * np values.
        #[allow(clippy::too_many_arguments)]
        unsafe fn columns(
            s: &ConvShape,
            w: &[f32],
            ci0: usize,
            rows: usize,
            dy: *const f32,
            ld: usize,
            np: usize,
            dcols: &mut [f32],
        ) {
            let ckk = s.c_in * s.k * s.k;
            unsafe {
                sgemm(
                    rows,
                    s.c_out,
                    np,
                    s.w_gain,
                    w[ci0 * s.k * s.k..].as_ptr(),
                    1,
                    ckk as isize,
                    dy,
                    ld as isize,
                    1,
                    0.0,
                    dcols.as_mut_ptr(),
                    np as isize,
                    1,
                )
            }
        }
        let workspace = || <(Scratch, Scratch)>::default();
        self.tasks(
            tasks,
            work,
            workspace,
            |(dcols, dyg): &mut (Scratch, Scratch), (n0, ci0, mut planes)| {
                let Some(nci) = planes.first().map(|p| p.len() / hw) else {
                    return;
                };
                if g == 1 && direct {
                    let dyn_ = &dy[n0 * s.c_out * hw_out..(n0 + 1) * s.c_out * hw_out];
                    // SAFETY: in bounds by the checks; `planes[0]` is this task's own slice.
                    unsafe {
                        sgemm(
                            nci,
                            s.c_out,
                            hw,
                            s.w_gain,
                            w[ci0..].as_ptr(),
                            1,
                            ckk as isize,
                            dyn_.as_ptr(),
                            hw_out as isize,
                            1,
                            if acc { 1.0 } else { 0.0 },
                            planes[0].as_mut_ptr(),
                            hw as isize,
                            1,
                        )
                    };
                    return;
                }
                if !acc {
                    planes.iter_mut().for_each(|p| p.fill(0.0));
                }
                let rows = nci * kk;
                if g > 1 {
                    // The task's images side by side: dY gathered, one product, col2im each.
                    let np = planes.len() * hw_out;
                    let dyg = scratch(dyg, s.c_out * np);
                    for co in 0..s.c_out {
                        for i in 0..planes.len() {
                            let src = &dy[((n0 + i) * s.c_out + co) * hw_out..][..hw_out];
                            dyg[co * np + i * hw_out..][..hw_out].copy_from_slice(src);
                        }
                    }
                    let dcols = scratch(dcols, rows * np);
                    // SAFETY: `dyg` holds c_out rows of np; `dcols` is this worker's own.
                    unsafe { columns(s, w, ci0, rows, dyg.as_ptr(), np, np, dcols) };
                    for (i, dxs) in planes.iter_mut().enumerate() {
                        col2im(s, &dcols[i * hw_out..], np, nci, 0, hw_out, dxs);
                    }
                    return;
                }
                let dyn_ = &dy[n0 * s.c_out * hw_out..(n0 + 1) * s.c_out * hw_out];
                let dxs = &mut *planes[0];
                let pbk = Self::pixel_block(rows);
                let mut p0 = 0;
                while p0 < hw_out {
                    let np = pbk.min(hw_out - p0);
                    let dcols = scratch(dcols, rows * np);
                    // SAFETY: dY's c_out planes of this image from p0, np values each, lie in
                    // it; `dcols` is this worker's own.
                    unsafe { columns(s, w, ci0, rows, dyn_[p0..].as_ptr(), hw_out, np, dcols) };
                    col2im(s, dcols, np, nci, p0, np, dxs);
                    p0 += np;
                }
            },
        );
    }

    pub(super) fn conv_backward_weight_f32(
        &self,
        s: &ConvShape,
        dy: &[f32],
        x: &[f32],
        dw: &mut [f32],
        acc: bool,
    ) -> BResult<()> {
        let wl = s.w_len();
        let dw = &mut dw[..wl];
        let (h, wd, k) = (s.height, s.width, s.k);
        let (hw, hw_out) = (h * wd, s.out_height() * s.out_width());
        let ckk = s.c_in * k * k;
        let direct = k == 1 && s.stride == 1;
        let total = s.batch * hw_out;
        if total == 0 {
            if !acc {
                dw.fill(0.0);
            }
            return Ok(());
        }
        // Bins of output pixels, at least CONV_W_MIN_BINS where there are pixels enough, so
        // that the tasks split the pixels rather than the output channels: every channel block
        // of a bin would gather the same taps again.
        let bins = total
            .div_ceil(CONV_BIN_PIXELS)
            .max((total / CONV_W_MIN_BIN_PIXELS).min(CONV_W_MIN_BINS))
            .min((PARTIAL_CAP / wl).max(1))
            .max(1);
        let bin = total.div_ceil(bins);
        let bins = total.div_ceil(bin);
        let cob = if bins >= CONV_W_MIN_BINS {
            s.c_out
        } else {
            CONV_W_CO_BLOCK.min(s.c_out)
        };
        // Every block is overwritten: each task's first product has beta 0.
        let mut part = self.partials(bins * wl, "conv weight gradient partial sums")?;
        let mut tasks = Vec::new();
        for (bi, pw) in part.chunks_mut(wl).enumerate() {
            for (cb, sl) in pw.chunks_mut(cob * ckk).enumerate() {
                tasks.push((bi, cb * cob, sl));
            }
        }
        let pb = Self::pixel_block(ckk);
        let workspace = || <(Scratch, Scratch)>::default();
        self.tasks(
            tasks,
            total * s.c_out * ckk,
            workspace,
            |(cols, dyg): &mut (Scratch, Scratch), (bi, co0, ps)| {
                let nco = ps.len() / ckk;
                // The task's first product overwrites its partial sums (unfilled scratch).
                let mut beta = 0.0;
                let (q1, mut q) = ((bi * bin + bin).min(total), bi * bin);
                while q < q1 && hw_out < pb {
                    // Small maps: blocks of pb output positions across images (q = n hw_out + p),
                    // dY and the taps gathered side by side, so the sum over pixels is long.
                    let nq = pb.min(q1 - q);
                    let cols = scratch(cols, ckk * nq);
                    let dyg = scratch(dyg, nco * nq);
                    let mut j = 0;
                    while j < nq {
                        let (n, p) = ((q + j) / hw_out, (q + j) % hw_out);
                        let len = (hw_out - p).min(nq - j);
                        let xn = &x[n * s.c_in * hw..(n + 1) * s.c_in * hw];
                        im2col_at(s, xn, p, len, &mut cols[j..], nq);
                        for co in 0..nco {
                            let src = &dy[(n * s.c_out + co0 + co) * hw_out + p..][..len];
                            dyg[co * nq + j..][..len].copy_from_slice(src);
                        }
                        j += len;
                    }
                    // SAFETY: scratch within its lengths; `ps` is this task's own rows.
                    unsafe {
                        sgemm(
                            nco,
                            nq,
                            ckk,
                            s.w_gain,
                            dyg.as_ptr(),
                            nq as isize,
                            1,
                            cols.as_ptr(),
                            1,
                            nq as isize,
                            beta,
                            ps.as_mut_ptr(),
                            ckk as isize,
                            1,
                        )
                    };
                    beta = 1.0;
                    q += nq;
                }
                while q < q1 {
                    let (n, p) = (q / hw_out, q % hw_out);
                    let p1 = hw_out.min(p + (q1 - q));
                    let xn = &x[n * s.c_in * hw..(n + 1) * s.c_in * hw];
                    let mut p0 = p;
                    while p0 < p1 {
                        let np = pb.min(p1 - p0);
                        let (bptr, csb) = if direct {
                            (xn[p0..].as_ptr(), hw as isize)
                        } else {
                            im2col(s, xn, p0, np, cols);
                            (cols.as_ptr(), np as isize)
                        };
                        // SAFETY: in bounds by the checks; `ps` is this task's own block of rows.
                        unsafe {
                            sgemm(
                                nco,
                                np,
                                ckk,
                                s.w_gain,
                                dy[(n * s.c_out + co0) * hw_out + p0..].as_ptr(),
                                hw_out as isize,
                                1,
                                bptr,
                                1,
                                csb,
                                beta,
                                ps.as_mut_ptr(),
                                ckk as isize,
                                1,
                            )
                        };
                        beta = 1.0;
                        p0 += np;
                    }
                    q = n * hw_out + p1;
                }
            },
        );
        let sums = &part;
        self.chunks(dw, |start, out| {
            for (j, o) in out.iter_mut().enumerate() {
                let mut v = 0f32;
                for bi in 0..bins {
                    v += sums[bi * wl + start + j];
                }
                *o = if acc { *o + v } else { v };
            }
        });
        self.recycle(part);
        Ok(())
    }
}

/// Fills `cols` (`c_in k k` rows of `np` values) with the taps of output pixels `p0..p0 + np`
/// of one image `xn` (`[c_in, height, width]`); zero outside the image.
pub(super) fn im2col(s: &ConvShape, xn: &[f32], p0: usize, np: usize, cols: &mut Vec<f32>) {
    let cols = scratch(cols, s.c_in * s.k * s.k * np);
    im2col_at(s, xn, p0, np, cols, np);
}

/// [`im2col`] into the first `np` values of rows `ld` apart (several images' pixels side by
/// side in one block); every value of those runs is written, taps outside the image as zeros.
pub(super) fn im2col_at(
    s: &ConvShape,
    xn: &[f32],
    p0: usize,
    np: usize,
    cols: &mut [f32],
    ld: usize,
) {
    let (h, wd, k, stride) = (s.height, s.width, s.k, s.stride);
    let (wo, pad) = (s.out_width(), s.pad());
    for ci in 0..s.c_in {
        let plane = &xn[ci * h * wd..(ci + 1) * h * wd];
        for ky in 0..k {
            for kx in 0..k {
                let r = (ci * k + ky) * k + kx;
                let row = &mut cols[r * ld..r * ld + np];
                let (mut j, mut p) = (0, p0);
                while j < np {
                    let (oy, ox0) = (p / wo, p % wo);
                    let len = (wo - ox0).min(np - j);
                    let seg = &mut row[j..j + len];
                    let iy = (oy * stride + ky).wrapping_sub(pad);
                    if iy < h {
                        let src = &plane[iy * wd..(iy + 1) * wd];
                        if stride == 1 {
                            // ix = ox + kx - pad: a contiguous run of the row, zeros outside.
                            let start = (ox0 + kx) as isize - pad as isize;
                            let lo = (-start).clamp(0, len as isize) as usize;
                            let hi =
                                (wd as isize - start).clamp(lo as isize, len as isize) as usize;
                            seg[..lo].fill(0.0);
                            let s0 = (start + lo as isize) as usize;
                            seg[lo..hi].copy_from_slice(&src[s0..s0 + hi - lo]);
                            seg[hi..].fill(0.0);
                        } else {
                            for (t, v) in seg.iter_mut().enumerate() {
                                let ix = ((ox0 + t) * stride + kx).wrapping_sub(pad);
                                *v = if ix < wd { src[ix] } else { 0.0 };
                            }
                        }
                    } else {
                        seg.fill(0.0);
                    }
                    j += len;
                    p += len;
                }
            }
        }
    }
}

/// Adds the column gradients `dcols` (`nci k k` rows of `np` values, output pixels `p0..`) into
/// the input-gradient planes `dxs` (`[nci, height, width]`); rows of `dcols` are `ld` apart.
#[allow(clippy::too_many_arguments)]
pub(super) fn col2im(
    s: &ConvShape,
    dcols: &[f32],
    ld: usize,
    nci: usize,
    p0: usize,
    np: usize,
    dxs: &mut [f32],
) {
    let (h, wd, k, stride) = (s.height, s.width, s.k, s.stride);
    let (wo, pad) = (s.out_width(), s.pad());
    for ci in 0..nci {
        let plane = &mut dxs[ci * h * wd..(ci + 1) * h * wd];
        for ky in 0..k {
            for kx in 0..k {
                let r = (ci * k + ky) * k + kx;
                let row = &dcols[r * ld..r * ld + np];
                let (mut j, mut p) = (0, p0);
                while j < np {
                    let (oy, ox0) = (p / wo, p % wo);
                    let len = (wo - ox0).min(np - j);
                    let iy = (oy * stride + ky).wrapping_sub(pad);
                    if iy < h {
                        let dst = &mut plane[iy * wd..(iy + 1) * wd];
                        for (t, &v) in row[j..j + len].iter().enumerate() {
                            let ix = ((ox0 + t) * stride + kx).wrapping_sub(pad);
                            if ix < wd {
                                dst[ix] += v;
                            }
                        }
                    }
                    j += len;
                    p += len;
                }
            }
        }
    }
}
