//! Output sizes and padding of 2D windows (convolution and pooling share them).

/// How a 2D window op pads its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    /// The same number of zeros on every side.
    Symmetric(usize),
    /// TensorFlow's "SAME": output size `ceil(in / stride)`; the total padding
    /// `max((ceil(in/s) - 1)·s + k − in, 0)` is split with the smaller half on top/left, so a
    /// stride-2 layer pads asymmetrically (EfficientNet's weights were trained that way).
    Same,
}

/// Output length and leading padding along one spatial axis.
pub fn window_1d(input: usize, kernel: usize, stride: usize, padding: Padding) -> (usize, usize) {
    assert!(
        stride >= 1 && kernel >= 1,
        "kernel and stride must be at least 1"
    );
    match padding {
        Padding::Symmetric(p) => {
            assert!(
                input + 2 * p >= kernel,
                "window of {kernel} does not fit input {input} padded by {p}"
            );
            ((input + 2 * p - kernel) / stride + 1, p)
        }
        Padding::Same => {
            let out = input.div_ceil(stride);
            let total = ((out - 1) * stride + kernel).saturating_sub(input);
            (out, total / 2)
        }
    }
}

/// Range `[lo, hi)` of output positions `o` whose input position `o·stride + offset`
/// lies in `[0, input)`: everything outside reads padding.
#[inline]
pub fn valid_range(out: usize, input: usize, stride: usize, offset: isize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if offset >= 0 {
        0
    } else {
        ((-offset) + s - 1) / s
    };
    let last = input as isize - 1 - offset;
    let hi = if last < 0 {
        0
    } else {
        (last / s + 1).min(out as isize)
    };
    let lo = (lo as usize).min(out);
    (lo, (hi as usize).max(lo))
}

/// Everything the kernels need to know about one convolution call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub groups: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Conv2dGeom {
    #[expect(
        clippy::too_many_arguments,
        reason = "one argument per dimension of a convolution"
    )]
    pub fn new(
        batch: usize,
        c_in: usize,
        h: usize,
        w: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: Padding,
        groups: usize,
    ) -> Self {
        assert!(
            groups >= 1 && c_in.is_multiple_of(groups) && c_out.is_multiple_of(groups),
            "channels {c_in}->{c_out} not divisible by {groups} groups"
        );
        let (oh, pad_top) = window_1d(h, k, stride, padding);
        let (ow, pad_left) = window_1d(w, k, stride, padding);
        Conv2dGeom {
            batch,
            c_in,
            h,
            w,
            c_out,
            k,
            stride,
            groups,
            pad_top,
            pad_left,
            oh,
            ow,
        }
    }
    pub fn cin_g(&self) -> usize {
        self.c_in / self.groups
    }
    pub fn cout_g(&self) -> usize {
        self.c_out / self.groups
    }
    /// Rows of the column matrix of one group: `cin_g · k · k`.
    pub(crate) fn col_rows(&self) -> usize {
        self.cin_g() * self.k * self.k
    }
    pub(crate) fn in_img(&self) -> usize {
        self.c_in * self.h * self.w
    }
    pub(crate) fn out_plane(&self) -> usize {
        self.oh * self.ow
    }
    pub(crate) fn out_img(&self) -> usize {
        self.c_out * self.out_plane()
    }
    pub fn weight_len(&self) -> usize {
        self.c_out * self.col_rows()
    }
    /// 1×1, stride 1, unpadded, ungrouped, on planes big enough for a gemm per image: each
    /// image already is its own column matrix, so packing would only copy (EfficientNet's
    /// expand/project convs).
    pub(crate) fn is_pointwise(&self) -> bool {
        self.k == 1
            && self.stride == 1
            && self.pad_top == 0
            && self.pad_left == 0
            && self.groups == 1
            && self.out_plane() >= 48
    }
    pub(crate) fn is_depthwise(&self) -> bool {
        self.groups == self.c_in && self.groups == self.c_out
    }
    /// Multiply-adds of the forward pass (for throughput reports).
    pub fn macs(&self) -> usize {
        self.batch * self.out_img() * self.col_rows()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_padding_matches_tensorflow() {
        // 224 -> 112 with k3 s2: total pad 1, top 0 (bottom 1).
        assert_eq!(window_1d(224, 3, 2, Padding::Same), (112, 0));
        // k5 s2 on 28: total 3, top 1.
        assert_eq!(window_1d(28, 5, 2, Padding::Same), (14, 1));
        // k3 s1: total 2, top 1.
        assert_eq!(window_1d(7, 3, 1, Padding::Same), (7, 1));
        assert_eq!(window_1d(64, 7, 2, Padding::Symmetric(3)), (32, 3));
    }

    #[test]
    fn valid_range_brute_force() {
        for input in 1..7 {
            for stride in 1..4 {
                for offset in -3isize..4 {
                    let out = 6;
                    let (lo, hi) = valid_range(out, input, stride, offset);
                    for o in 0..out {
                        let i = o as isize * stride as isize + offset;
                        let inside = i >= 0 && i < input as isize;
                        assert_eq!(inside, o >= lo && o < hi, "{input} {stride} {offset} {o}");
                    }
                }
            }
        }
    }
}
