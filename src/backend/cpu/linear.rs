//! The CPU backend's `linear` family (`shaders/linear.wgsl`).

use super::*;

impl LinearOps for CpuBackend {
    fn gemm(
        &mut self,
        g: &Gemm,
        a: &CpuBuf,
        b: &CpuBuf,
        bias: Option<&CpuBuf>,
        c: &CpuBuf,
    ) -> BResult<()> {
        if !check::gemm(g, a.len, b.len, bias.map(|b| b.len), c.len)? {
            return Ok(());
        }
        let (ag, bg) = (rd("gemm A", a)?, rd("gemm B", b)?);
        let biasg = match g.bias {
            BiasMode::None => None,
            _ => rd_opt("gemm bias", bias)?,
        };
        let mut cg = wr("gemm C", c)?;
        self.gemm_f32(g, &ag, &bg, biasg.as_deref().map(|v| v.as_slice()), &mut cg)?;
        if let Some((alpha, gain)) = g.act {
            let f = |v: &mut f32| *v = if *v > 0.0 { *v } else { alpha * *v } * gain;
            let (m, n) = (g.m, g.n);
            if g.c.sj == 1 && g.c.si == n && (g.batch == 1 || g.c.sb == m * n) {
                // One contiguous block (the layers' [batch, c_out, pixels]).
                let len = g.batch * m * n;
                self.rows(&mut cg[..len], n.max(1), len, |_, row| {
                    row.iter_mut().for_each(f)
                });
            } else {
                for bt in 0..g.batch {
                    for i in 0..m {
                        for j in 0..n {
                            f(&mut cg[bt * g.c.sb + i * g.c.si + j * g.c.sj]);
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

impl CpuBackend {
    /// [`Gemm`] on checked operands (`bias` only when the mode uses one).
    pub(super) fn gemm_f32(
        &self,
        g: &Gemm,
        a: &[f32],
        b: &[f32],
        bias: Option<&[f32]>,
        c: &mut [f32],
    ) -> BResult<()> {
        let (m, n, k, batch) = (g.m, g.n, g.k, g.batch);
        if !injective(m, n, g.c.si, g.c.sj) {
            // C's elements alias: the plain loop gives the sequential meaning.
            r::linear::gemm(g, a, b, bias, c);
            return Ok(());
        }
        let single = (m - 1) * g.c.si + (n - 1) * g.c.sj + 1;
        let disjoint = batch == 1 || g.c.sb >= single;
        let (mt, nt) = (m.div_ceil(GEMM_MB), n.div_ceil(GEMM_NB));
        let tiles = mt * nt;
        let work = batch * m * n * k.max(1);
        if batch * tiles < KSPLIT_MAX_TILES && k >= 2 * KSPLIT_BIN {
            let cap = (PARTIAL_CAP / (batch * m * n)).max(1);
            let bins = k.div_ceil(KSPLIT_BIN).min(cap).min(64);
            if bins >= 2 {
                return self.gemm_ksplit(g, a, b, bias, c, bins, disjoint);
            }
        }
        let beta = if g.accumulate { 1.0 } else { 0.0 };
        let cp = Ptr(c.as_mut_ptr());
        let (ap, bp) = (a, b);
        let tile = |_: &mut (), t: usize| {
            let bt = t / tiles;
            let (mi, ni) = ((t % tiles) / nt, (t % tiles) % nt);
            let (m0, n0) = (mi * GEMM_MB, ni * GEMM_NB);
            let (mc, nc) = (GEMM_MB.min(m - m0), GEMM_NB.min(n - n0));
            let co = bt * g.c.sb + m0 * g.c.si + n0 * g.c.sj;
            // SAFETY: the checks bound every element by the operands' lengths; tiles of one
            // product write disjoint elements of C (injective), and products of different batch
            // entries run concurrently only when their C ranges are disjoint.
            unsafe {
                sgemm(
                    mc,
                    k,
                    nc,
                    g.alpha,
                    ap.as_ptr().add(bt * g.a.sb + m0 * g.a.si),
                    st(g.a.si, m),
                    st(g.a.sj, k),
                    bp.as_ptr().add(bt * g.b.sb + n0 * g.b.sj),
                    st(g.b.si, k),
                    st(g.b.sj, n),
                    beta,
                    cp.at(co),
                    st(g.c.si, m),
                    st(g.c.sj, n),
                );
                if let Some(bias) = bias {
                    let bg = g.bias_gain;
                    for i in 0..mc {
                        let row = co + i * g.c.si;
                        if g.c.sj == 1 || nc == 1 {
                            // A contiguous row of the tile: no other task touches it.
                            let row = std::slice::from_raw_parts_mut(cp.at(row), nc);
                            match g.bias {
                                BiasMode::PerRow => {
                                    let bv = bg * bias[m0 + i];
                                    row.iter_mut().for_each(|v| *v += bv);
                                }
                                _ => {
                                    for (v, &bv) in row.iter_mut().zip(&bias[n0..n0 + nc]) {
                                        *v += bg * bv;
                                    }
                                }
                            }
                        } else {
                            for j in 0..nc {
                                let bv = match g.bias {
                                    BiasMode::PerRow => bias[m0 + i],
                                    _ => bias[n0 + j],
                                };
                                *cp.at(row + j * g.c.sj) += bg * bv;
                            }
                        }
                    }
                }
            }
        };
        if disjoint {
            self.tasks((0..batch * tiles).collect(), work, || (), tile);
        } else {
            for bt in 0..batch {
                self.tasks(
                    (bt * tiles..(bt + 1) * tiles).collect(),
                    work / batch,
                    || (),
                    tile,
                );
            }
        }
        Ok(())
    }

    /// [`Gemm`] with K cut into `bins` fixed bins: partial products in parallel, then summed in
    /// bin order (plus bias and the old C).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn gemm_ksplit(
        &self,
        g: &Gemm,
        a: &[f32],
        b: &[f32],
        bias: Option<&[f32]>,
        c: &mut [f32],
        bins: usize,
        disjoint: bool,
    ) -> BResult<()> {
        let (m, n, k, batch) = (g.m, g.n, g.k, g.batch);
        let kb = k.div_ceil(bins);
        let bins = k.div_ceil(kb);
        let mn = m * n;
        // Every block is overwritten (beta 0).
        let mut part = self.partials(batch * bins * mn, "gemm partial sums")?;
        let tasks: Vec<(usize, &mut [f32])> = part.chunks_mut(mn).enumerate().collect();
        self.tasks(
            tasks,
            batch * mn * k,
            || (),
            |_, (t, p)| {
                let (bt, bin) = (t / bins, t % bins);
                let k0 = bin * kb;
                let kc = kb.min(k - k0);
                // SAFETY: A and B offsets stay within the checked extents; `p` is this task's own
                // contiguous m x n block.
                unsafe {
                    sgemm(
                        m,
                        kc,
                        n,
                        g.alpha,
                        a.as_ptr().add(bt * g.a.sb + k0 * g.a.sj),
                        st(g.a.si, m),
                        st(g.a.sj, k),
                        b.as_ptr().add(bt * g.b.sb + k0 * g.b.si),
                        st(g.b.si, k),
                        st(g.b.sj, n),
                        0.0,
                        p.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            },
        );
        let sums = &part;
        let cp = Ptr(c.as_mut_ptr());
        let reduce = |_: &mut (), t: usize| {
            let (bt, i) = (t / m, t % m);
            for j in 0..n {
                let mut v = 0f32;
                for bin in 0..bins {
                    v += sums[((bt * bins + bin) * m + i) * n + j];
                }
                match (g.bias, bias) {
                    (BiasMode::PerRow, Some(bb)) => v += g.bias_gain * bb[i],
                    (BiasMode::PerCol, Some(bb)) => v += g.bias_gain * bb[j],
                    _ => {}
                }
                let ci = bt * g.c.sb + i * g.c.si + j * g.c.sj;
                // SAFETY: `ci` is within C's checked extent; rows of one product are disjoint
                // (injective) and different batch entries run together only when disjoint.
                unsafe {
                    let p = cp.at(ci);
                    if g.accumulate {
                        v += *p;
                    }
                    *p = v;
                }
            }
        };
        if disjoint {
            self.tasks((0..batch * m).collect(), batch * mn * bins, || (), reduce);
        } else {
            for bt in 0..batch {
                self.tasks((bt * m..(bt + 1) * m).collect(), mn * bins, || (), reduce);
            }
        }
        self.recycle(part);
        Ok(())
    }
}
