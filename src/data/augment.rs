//! torchvision's RandomResizedCrop and ColorJitter, train only. Every random draw comes from the
//! sample's own generator (seeded from (seed, epoch, sample) by the loader), so batches do not
//! depend on threads and a resumed or reproduced run sees the same images.

use image::{imageops, imageops::FilterType, RgbImage};
use rand::seq::SliceRandom;
use rand::Rng;

/// The random augmentations beyond crop and flip; `Default` = none.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Augment {
    pub random_resized_crop: Option<RandomResizedCrop>,
    pub color_jitter: Option<ColorJitter>,
}

impl Augment {
    pub fn is_none(&self) -> bool {
        self.random_resized_crop.is_none() && self.color_jitter.is_none()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct RandomResizedCrop {
    pub scale: [f64; 2],
    pub ratio: [f64; 2],
}

/// A crop box: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropBox {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
}

impl RandomResizedCrop {
    /// torchvision's `RandomResizedCrop.get_params`: up to 10 tries of a random area fraction
    /// and log-uniform aspect ratio that fit the image, else the central crop with the image's
    /// ratio clamped to `ratio`. Python's `round` rounds half to even, as here.
    pub fn params(&self, width: u32, height: u32, rng: &mut impl Rng) -> CropBox {
        let area = (width as f64) * (height as f64);
        let (log_lo, log_hi) = (self.ratio[0].ln(), self.ratio[1].ln());
        for _ in 0..10 {
            let target = area * uniform(rng, self.scale[0], self.scale[1]);
            let aspect = uniform(rng, log_lo, log_hi).exp();
            let w = (target * aspect).sqrt().round_ties_even() as i64;
            let h = (target / aspect).sqrt().round_ties_even() as i64;
            if 0 < w && w <= width as i64 && 0 < h && h <= height as i64 {
                let (w, h) = (w as u32, h as u32);
                let y = rng.gen_range(0..=height - h);
                let x = rng.gen_range(0..=width - w);
                return CropBox { x, y, w, h };
            }
        }
        let in_ratio = width as f64 / height as f64;
        let (lo, hi) = (
            self.ratio[0].min(self.ratio[1]),
            self.ratio[0].max(self.ratio[1]),
        );
        let (w, h) = if in_ratio < lo {
            (
                width,
                ((width as f64 / lo).round_ties_even() as u32).clamp(1, height),
            )
        } else if in_ratio > hi {
            (
                ((height as f64 * hi).round_ties_even() as u32).clamp(1, width),
                height,
            )
        } else {
            (width, height)
        };
        CropBox {
            x: (width - w) / 2,
            y: (height - h) / 2,
            w,
            h,
        }
    }

    /// The random crop of `img`, resized (bilinear, antialiased like PIL) to `side`×`side`.
    pub(crate) fn apply(&self, img: &RgbImage, side: u32, rng: &mut impl Rng) -> RgbImage {
        let b = self.params(img.width(), img.height(), rng);
        let crop = imageops::crop_imm(img, b.x, b.y, b.w, b.h).to_image();
        imageops::resize(&crop, side, side, FilterType::Triangle)
    }
}

/// A float uniform in [lo, hi), like `torch.empty(1).uniform_(lo, hi)`.
fn uniform(rng: &mut impl Rng, lo: f64, hi: f64) -> f64 {
    lo + (hi - lo) * rng.gen::<f64>()
}

/// Strengths x of torchvision's ColorJitter: each factor is uniform in [max(0, 1 − x), 1 + x];
/// 0 leaves that adjustment out.
#[derive(Debug, Clone, PartialEq)]
pub struct ColorJitter {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
}

/// ITU-R 601-2 luma, as torchvision's `rgb_to_grayscale`.
fn gray(r: f32, g: f32, b: f32) -> f32 {
    0.2989 * r + 0.587 * g + 0.114 * b
}

impl ColorJitter {
    /// Adjusts a CHW image of [0, 1] values in place: the adjustments in a random order (as
    /// torchvision's `torch.randperm`), each with its random factor, as on float tensors:
    /// brightness blends with black, contrast with the image's mean gray, saturation with each
    /// pixel's gray, every result clamped to [0, 1].
    pub(crate) fn apply(&self, chw: &mut [f32], rng: &mut impl Rng) {
        let factor = |x: f64, rng: &mut dyn rand::RngCore| -> Option<f32> {
            (x > 0.0).then(|| {
                let lo = (1.0 - x).max(0.0);
                (lo + (1.0 + x - lo) * rng.gen::<f64>()) as f32
            })
        };
        let mut order = [0usize, 1, 2];
        order.shuffle(rng);
        // torchvision draws the order first, then every factor
        let b = factor(self.brightness, rng);
        let c = factor(self.contrast, rng);
        let s = factor(self.saturation, rng);
        adjust(chw, order, [b, c, s]);
    }
}

/// The deterministic part of ColorJitter: adjustment `order[i]` (0 brightness, 1 contrast,
/// 2 saturation) with its factor, `None` = left out. torchvision's `adjust_*` on float tensors.
fn adjust(chw: &mut [f32], order: [usize; 3], factors: [Option<f32>; 3]) {
    let plane = chw.len() / 3;
    for which in order {
        let Some(f) = factors[which] else {
            continue;
        };
        match which {
            0 => chw.iter_mut().for_each(|v| *v = (*v * f).clamp(0.0, 1.0)),
            1 => {
                let (r, g, b) = (&chw[..plane], &chw[plane..2 * plane], &chw[2 * plane..]);
                let mean =
                    (0..plane).map(|i| gray(r[i], g[i], b[i])).sum::<f32>() / plane.max(1) as f32;
                chw.iter_mut()
                    .for_each(|v| *v = (f * *v + (1.0 - f) * mean).clamp(0.0, 1.0));
            }
            _ => {
                for i in 0..plane {
                    let y = gray(chw[i], chw[plane + i], chw[2 * plane + i]);
                    for c in 0..3 {
                        let v = &mut chw[c * plane + i];
                        *v = (f * *v + (1.0 - f) * y).clamp(0.0, 1.0);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn random_resized_crop_boxes_fit_and_follow_scale_and_ratio() {
        let rrc = RandomResizedCrop {
            scale: [0.08, 1.0],
            ratio: [0.75, 4.0 / 3.0],
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for _ in 0..200 {
            let b = rrc.params(64, 48, &mut rng);
            assert!(
                b.x + b.w <= 64 && b.y + b.h <= 48 && b.w > 0 && b.h > 0,
                "{b:?}"
            );
            let frac = (b.w * b.h) as f64 / (64.0 * 48.0);
            assert!(frac <= 1.0 + 1e-9, "{b:?}");
        }
        // nothing of scale [1, 1] and ratio [3, 3] fits a square image: the fallback is the
        // central crop with the ratio clamped, h = round(w / 3)
        let wide = RandomResizedCrop {
            scale: [1.0, 1.0],
            ratio: [3.0, 3.0],
        };
        assert_eq!(
            wide.params(30, 30, &mut rng),
            CropBox {
                x: 0,
                y: 10,
                w: 30,
                h: 10
            }
        );
        // a whole-image crop: scale 1 and the image's own ratio
        let whole = RandomResizedCrop {
            scale: [1.0, 1.0],
            ratio: [1.0, 1.0],
        };
        assert_eq!(
            whole.params(20, 20, &mut rng),
            CropBox {
                x: 0,
                y: 0,
                w: 20,
                h: 20
            }
        );
    }

    /// torchvision.transforms.functional's adjust_saturation(1.3), adjust_brightness(0.8),
    /// adjust_contrast(1.2) on a float image (tests/golden/torch_reference.py prints them).
    #[test]
    fn adjustments_match_torchvision() {
        let mut img: Vec<f32> = JITTER_IN.iter().map(|&v| v as f32).collect();
        adjust(&mut img, [2, 0, 1], [Some(0.8), Some(1.2), Some(1.3)]);
        for (a, b) in img.iter().zip(JITTER_SAT_BRI_CON) {
            assert!(
                (*a as f64 - b).abs() < 1e-6,
                "{img:?} vs {JITTER_SAT_BRI_CON:?}"
            );
        }
    }

    // torchvision 0.29.2
    const JITTER_IN: [f64; 12] = [
        0.10000000149011612,
        0.5,
        0.8999999761581421,
        0.30000001192092896,
        0.20000000298023224,
        0.699999988079071,
        0.4000000059604645,
        0.0,
        0.800000011920929,
        0.6000000238418579,
        0.05000000074505806,
        1.0,
    ];
    const JITTER_SAT_BRI_CON: [f64; 12] = [
        0.0,
        0.3791603744029999,
        0.8962404727935791,
        0.25198352336883545,
        0.11715531349182129,
        0.6287604570388794,
        0.2887015640735626,
        0.0,
        0.8659552931785583,
        0.5039604902267456,
        0.0,
        0.8962404727935791,
    ];

    #[test]
    fn color_jitter_factors_stay_in_range_and_gray_stays_gray() {
        // brightness only: every value is scaled by one factor in [0.5, 1.5]
        let j = ColorJitter {
            brightness: 0.5,
            contrast: 0.0,
            saturation: 0.0,
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..50 {
            let mut px = vec![0.4f32; 12];
            j.apply(&mut px, &mut rng);
            let f = px[0] / 0.4;
            assert!((0.5..=1.5).contains(&f), "{f}");
            assert!(px.iter().all(|v| (v - px[0]).abs() < 1e-6));
        }
        // saturation and contrast leave a uniform gray image as it is
        let j = ColorJitter {
            brightness: 0.0,
            contrast: 0.9,
            saturation: 0.9,
        };
        let mut px = vec![0.3f32; 12];
        j.apply(&mut px, &mut rng);
        assert!(px.iter().all(|v| (v - 0.3).abs() < 1e-4), "{px:?}");
    }
}
