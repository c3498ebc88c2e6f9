//! The zero-padded, stride-phased copy of a plane that both the depthwise loops (`padded`) and
//! their register-blocked kernels (`simd`) read.

/// A plane copied with zero padding into `s` column phases of `pw` floats per row.
pub(super) struct Phased {
    pub data: Vec<f32>,
    /// Rows of the padded plane.
    pub rows: usize,
    /// Floats per row of one phase.
    pub pw: usize,
    pub s: usize,
}

impl Phased {
    /// Room for `out_h × out_w` outputs (out_w already rounded to the lane block) of a k×k
    /// window at stride `s`.
    pub fn new(out_h: usize, out_w: usize, k: usize, s: usize, min_rows: usize) -> Phased {
        let rows = ((out_h.max(1) - 1) * s + k).max(min_rows);
        // Column ox + kx/s of a phase for ox < out_w, kx < k.
        let pw = out_w + k.div_ceil(s);
        Phased {
            data: vec![0.0; s * rows * pw],
            rows,
            pw,
            s,
        }
    }

    /// Clears the buffer and copies the `h × w` plane `src` with its top-left at padded
    /// position (top, left).
    pub fn fill(&mut self, src: &[f32], h: usize, w: usize, top: usize, left: usize) {
        self.data.fill(0.0);
        let s = self.s;
        for y in 0..h {
            let row = &src[y * w..(y + 1) * w];
            let py = y + top;
            if s == 1 {
                let base = py * self.pw + left;
                self.data[base..base + w].copy_from_slice(row);
            } else if s == 2 {
                // Pairs of padded columns (2j, 2j+1) split into the two phases; an odd `left`
                // puts the first input column alone into phase 1.
                let (even, odd) = self.data.split_at_mut(self.rows * self.pw);
                let (even, odd) = (&mut even[py * self.pw..], &mut odd[py * self.pw..]);
                let (first, j0) = if left % 2 == 1 {
                    odd[left / 2] = row[0];
                    (1, left / 2 + 1)
                } else {
                    (0, left / 2)
                };
                let pairs = row[first..].chunks_exact(2);
                let rest = pairs.remainder();
                let n = (row.len() - first) / 2;
                for ((e, o), pair) in even[j0..j0 + n]
                    .iter_mut()
                    .zip(&mut odd[j0..j0 + n])
                    .zip(pairs)
                {
                    *e = pair[0];
                    *o = pair[1];
                }
                if let [last] = rest {
                    even[j0 + n] = *last;
                }
            } else {
                // Phase p holds padded columns j·s + p, i.e. input columns j·s + p − left.
                for p in 0..s {
                    let base = (p * self.rows + py) * self.pw;
                    // First j with j·s + p ≥ left, and the input column it reads.
                    let j0 = (left.saturating_sub(p)).div_ceil(s);
                    let x0 = j0 * s + p - left;
                    for (j, v) in row.iter().skip(x0).step_by(s).enumerate() {
                        self.data[base + j0 + j] = *v;
                    }
                }
            }
        }
    }

    /// Adjoint of [`Phased::fill`]: adds the `h × w` region at padded (top, left) into `dst`.
    pub fn add_region_to(&self, dst: &mut [f32], h: usize, w: usize, top: usize, left: usize) {
        let s = self.s;
        for y in 0..h {
            let row = &mut dst[y * w..(y + 1) * w];
            let py = y + top;
            for p in 0..s {
                let base = (p * self.rows + py) * self.pw;
                let j0 = (left.saturating_sub(p)).div_ceil(s);
                let x0 = j0 * s + p - left;
                for (j, d) in row.iter_mut().skip(x0).step_by(s).enumerate() {
                    *d += self.data[base + j0 + j];
                }
            }
        }
    }

    /// `self[kx % s][oy·s + ky][ox + kx/s] += w[ky·k + kx] · g[oy][ox]` for every tap and
    /// output: the scatter form of a strided layer's input gradient, contiguous along rows.
    pub fn scatter_taps(&mut self, g: &[f32], w: &[f32], k: usize, oh: usize, ow: usize) {
        let s = self.s;
        for oy in 0..oh {
            let grow = &g[oy * ow..(oy + 1) * ow];
            for ky in 0..k {
                for kx in 0..k {
                    let wv = w[ky * k + kx];
                    let at = ((kx % s) * self.rows + oy * s + ky) * self.pw + kx / s;
                    for (d, v) in self.data[at..at + ow].iter_mut().zip(grow) {
                        *d += wv * v;
                    }
                }
            }
        }
    }
}
