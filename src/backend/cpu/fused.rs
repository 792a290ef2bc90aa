//! The CPU backend's `fused` family (`shaders/fused.wgsl`).

use super::*;

impl FusedOps for CpuBackend {
    fn has_fused(&self) -> bool {
        self.fused
    }

    fn fused_fits(&self, s: &FusedShape) -> bool {
        // Any width: the tile's buffers are sized to the block.
        self.fused && !s.layers.is_empty() && s.c_in > 0 && s.layers.iter().all(|l| l.0 > 0)
    }

    fn fused_level_forward(
        &mut self,
        s: &FusedShape,
        input: FusedInput<'_, CpuBuf>,
        w: &CpuBuf,
        bias: &CpuBuf,
        rgbw: &CpuBuf,
        rgbb: &CpuBuf,
        img: &CpuBuf,
        out: Option<&CpuBuf>,
    ) -> BResult<()> {
        if !check::fused(s, &input, |b: &CpuBuf| b.len, w, bias, rgbw, rgbb, img, out)? {
            return Ok(());
        }
        let (x, asm) = match input {
            FusedInput::Dense(x) => (Some(x), None),
            FusedInput::Assembled { a, feat, geom } => {
                let geo = a.parse(&rd("fused geometry", geom)?).map_err(shape_err)?;
                (feat, Some((a, geo)))
            }
        };
        let xg = match x {
            Some(x) => Some(rd("fused x", x)?),
            None => None,
        };
        let (wg, bg, rwg, rbg) = (
            rd("fused weights", w)?,
            rd("fused bias", bias)?,
            rd("fused rgb weights", rgbw)?,
            rd("fused rgb bias", rgbb)?,
        );
        let mut ig = wr("fused img", img)?;
        let mut og = match out {
            Some(o) => Some(wr("fused out", o)?),
            None => None,
        };
        self.fused_f32(
            s,
            xg.as_deref().map(|v| &v[..]),
            asm.as_ref().map(|(a, g)| (*a, g)),
            &wg,
            &bg,
            &rwg,
            &rbg,
            &mut ig,
            og.as_deref_mut().map(|v| &mut v[..]),
        );
        Ok(())
    }
}

impl CpuBackend {
    /// One fused block (see [`Backend::fused_level_forward`]): each task takes one image's tile
    /// of pixels through every layer with the activations in two small buffers that stay in
    /// cache (the fully fused MLP, with sgemm on the tile), then adds its RGB to `img` and
    /// stores the last features. `x` is the dense input, or the previous features of an
    /// assembly (`asm`: with its parsed geometry).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fused_f32(
        &self,
        s: &FusedShape,
        x: Option<&[f32]>,
        asm: Option<(&Assembly, &r::fused::Geometry)>,
        w: &[f32],
        bias: &[f32],
        rgbw: &[f32],
        rgbb: &[f32],
        img: &mut [f32],
        out: Option<&mut [f32]>,
    ) {
        let np = s.pixels;
        let (woff, wlen) = s.weight_offsets();
        let (boff, _) = s.bias_offsets();
        let (roff, rlen) = s.rgb_offsets();
        let (rboff, _) = s.rgb_bias_offsets();
        let c_last = s.c_last();
        let widest = s.layers.iter().map(|l| l.0).max().unwrap_or(1);
        let tile = ((FUSED_TILE_VALUES / widest.max(s.c_in)).clamp(16, 1024) / 16) * 16;
        let tiles = np.div_ceil(tile);
        let macs: usize = (0..s.layers.len())
            .map(|j| s.layers[j].0 * s.c_in_of(j))
            .sum();
        let imgp = Ptr(img.as_mut_ptr());
        let outp = out.map(|o| Ptr(o.as_mut_ptr()));
        let (alpha, gain) = (s.alpha, s.gain);
        // The embeddings are the same for every image: with a batch, computed once (as the
        // unfused path's `coords_forward`), else per tile.
        let emb = |a: &Assembly, geo: &r::fused::Geometry, f: usize, q: usize| {
            let (r, c) = (q / a.cols, q % a.cols);
            let phi = geo.freqs[2 * f] * geo.xs[c] + geo.freqs[2 * f + 1] * geo.ys[r];
            (phi.sin(), phi.cos())
        };
        let table: Option<Vec<f32>> = match asm {
            Some((a, geo)) if s.batch > 1 && a.n_freq > 0 => {
                let mut t = vec![0f32; 2 * a.n_freq * np];
                let (sin, cos) = t.split_at_mut(a.n_freq * np);
                for f in 0..a.n_freq {
                    for q in 0..np {
                        (sin[f * np + q], cos[f * np + q]) = emb(a, geo, f, q);
                    }
                }
                Some(t)
            }
            _ => None,
        };
        // Per worker: the assembled input, two activation buffers, the tile's RGB.
        let workspace = || <(Scratch, Scratch, Scratch, Scratch)>::default();
        self.tasks(
            (0..s.batch * tiles).collect(),
            s.batch * np * macs,
            workspace,
            |(xin, ha, hb, rgb): &mut (Scratch, Scratch, Scratch, Scratch), t| {
                let (b, t0) = (t / tiles, (t % tiles) * tile);
                let nt = tile.min(np - t0);
                // The tile's input: rows `rsx` apart.
                let (xptr, rsx) = match asm {
                    None => {
                        let x = x.unwrap_or(&[]);
                        let xb = if s.broadcast_input {
                            0
                        } else {
                            b * s.c_in * np
                        };
                        (x[xb + t0..].as_ptr(), np)
                    }
                    Some((a, geo)) => {
                        let xin = scratch(xin, s.c_in * nt);
                        let feat = x.unwrap_or(&[]);
                        let prev_np = a.prev_rows * a.prev_cols;
                        // Per pixel of the tile: its first source cell and (bilinear) weights;
                        // then channel by channel, so each channel's plane is read in order.
                        let (xin_prev, xin_emb) = xin.split_at_mut(a.c_prev * nt);
                        let px: Vec<(usize, f32, f32)> = (t0..t0 + nt)
                            .map(|q| {
                                let (r, c) = (q / a.cols, q % a.cols);
                                let src = geo.rows[r] as usize * a.prev_cols + geo.cols[c] as usize;
                                if a.bilinear {
                                    (src, geo.row_t[r], geo.col_t[c])
                                } else {
                                    (src, 0.0, 0.0)
                                }
                            })
                            .collect();
                        let pc = a.prev_cols;
                        for (i, out) in xin_prev.chunks_exact_mut(nt).enumerate() {
                            let plane = &feat
                                [(b * a.c_prev + i) * prev_np..(b * a.c_prev + i + 1) * prev_np];
                            if a.bilinear {
                                // As the unfused path's gather_bilinear, value for value.
                                for (o, &(src, tr, tc)) in out.iter_mut().zip(&px) {
                                    let (ur, uc) = (1.0 - tr, 1.0 - tc);
                                    let top = uc * plane[src] + tc * plane[src + 1];
                                    let bottom = uc * plane[src + pc] + tc * plane[src + pc + 1];
                                    *o = ur * top + tr * bottom;
                                }
                            } else {
                                for (o, &(src, _, _)) in out.iter_mut().zip(&px) {
                                    *o = plane[src];
                                }
                            }
                        }
                        if table.is_none() {
                            // As the unfused path's embeddings (coords_forward).
                            for tt in 0..nt {
                                for f in 0..a.n_freq {
                                    (xin_emb[f * nt + tt], xin_emb[(a.n_freq + f) * nt + tt]) =
                                        emb(a, geo, f, t0 + tt);
                                }
                            }
                        }
                        if let Some(t) = &table {
                            for (i, row) in xin[a.c_prev * nt..].chunks_exact_mut(nt).enumerate() {
                                row.copy_from_slice(&t[i * np + t0..i * np + t0 + nt]);
                            }
                        }
                        (xin.as_ptr(), nt)
                    }
                };
                let ha = scratch(ha, widest * nt);
                let hb = scratch(hb, widest * nt);
                let rgb = scratch(rgb, 3 * nt);
                rgb.fill(0.0);
                let (mut src, mut rs) = (xptr, rsx);
                let mut cur: &mut [f32] = ha;
                let mut next: &mut [f32] = hb;
                for (j, &(co, has_rgb)) in s.layers.iter().enumerate() {
                    let ci = s.c_in_of(j);
                    // SAFETY: the weights and the input tile lie within their checked lengths;
                    // `cur` is this worker's own and aliases neither.
                    unsafe {
                        sgemm(
                            co,
                            ci,
                            nt,
                            1.0,
                            w[b * wlen + woff[j]..].as_ptr(),
                            ci as isize,
                            1,
                            src,
                            rs as isize,
                            1,
                            0.0,
                            cur.as_mut_ptr(),
                            nt as isize,
                            1,
                        )
                    };
                    for (o, row) in cur[..co * nt].chunks_exact_mut(nt).enumerate() {
                        let bv = bias[boff[j] + o];
                        for v in row {
                            let z = *v + bv;
                            *v = if z > 0.0 { z } else { alpha * z } * gain;
                        }
                    }
                    if has_rgb {
                        // SAFETY: as above; `rgb` is this worker's own.
                        unsafe {
                            sgemm(
                                3,
                                co,
                                nt,
                                1.0,
                                rgbw[b * rlen + roff[j]..].as_ptr(),
                                co as isize,
                                1,
                                cur.as_ptr(),
                                nt as isize,
                                1,
                                1.0,
                                rgb.as_mut_ptr(),
                                nt as isize,
                                1,
                            )
                        };
                        for (c, row) in rgb.chunks_exact_mut(nt).enumerate() {
                            let bv = rgbb[rboff[j] + c];
                            row.iter_mut().for_each(|v| *v += bv);
                        }
                    }
                    (src, rs) = (cur.as_ptr(), nt);
                    std::mem::swap(&mut cur, &mut next);
                }
                // The last layer's output is in `next` now.
                for (c, row) in rgb.chunks_exact(nt).enumerate() {
                    // SAFETY: within img; each task owns (image b, pixels t0..t0 + nt).
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(imgp.at((b * 3 + c) * np + t0), nt)
                    };
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d += v;
                    }
                }
                if let Some(op) = outp {
                    for (o, row) in next[..c_last * nt].chunks_exact(nt).enumerate() {
                        // SAFETY: within out; each task owns (image b, pixels t0..t0 + nt).
                        let dst = unsafe {
                            std::slice::from_raw_parts_mut(op.at((b * c_last + o) * np + t0), nt)
                        };
                        dst.copy_from_slice(row);
                    }
                }
            },
        );
    }
}
