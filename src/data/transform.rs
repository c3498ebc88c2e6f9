//! torchvision-style transforms on one image: Resize(short side) → Center/RandomCrop (or, for
//! training, RandomResizedCrop) → RandomHorizontalFlip → ToTensor → ColorJitter → Normalize.

use image::{imageops, imageops::FilterType, RgbImage};
use rand::Rng;

use super::augment::Augment;

pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// One split's transform pipeline. Train and val differ only in the random parts.
#[derive(Debug, Clone, PartialEq)]
pub struct Transform {
    /// Short side after resizing (bilinear, antialiased when shrinking, like PIL); `None` keeps it.
    pub resize: Option<u32>,
    /// Square crop side; `None` keeps the whole image.
    pub crop: Option<u32>,
    /// Crop at a random place instead of the centre.
    pub random_crop: bool,
    /// Probability of a horizontal flip.
    pub hflip: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// RandomResizedCrop (to `crop`×`crop`) and ColorJitter.
    pub augment: Augment,
}

impl Transform {
    /// The same pipeline with its random parts removed, as used for validation.
    pub fn deterministic(&self) -> Self {
        Self {
            random_crop: false,
            hflip: 0.0,
            augment: Augment::default(),
            ..self.clone()
        }
    }

    pub(crate) fn is_deterministic(&self) -> bool {
        self.random_parts().is_empty()
    }

    /// The spec keys of the random parts, for messages.
    pub(crate) fn random_parts(&self) -> Vec<&'static str> {
        let mut parts = Vec::new();
        if self.random_crop {
            parts.push("random_crop");
        }
        if self.hflip > 0.0 {
            parts.push("hflip");
        }
        if self.augment.random_resized_crop.is_some() {
            parts.push("random_resized_crop");
        }
        if self.augment.color_jitter.is_some() {
            parts.push("color_jitter");
        }
        parts
    }

    /// Output (height, width) for an input of the given size.
    pub(crate) fn output_size(&self, width: u32, height: u32) -> (u32, u32) {
        if let (Some(c), Some(_)) = (self.crop, &self.augment.random_resized_crop) {
            return (c, c);
        }
        let (w, h) = self.resized_size(width, height);
        match self.crop {
            Some(c) => (c, c),
            None => (h, w),
        }
    }

    fn resized_size(&self, width: u32, height: u32) -> (u32, u32) {
        match self.resize {
            None => (width, height),
            // torchvision: the short side becomes `size`, the long side int(size * long / short)
            Some(s) if width <= height => (s, (s as u64 * height as u64 / width as u64) as u32),
            Some(s) => ((s as u64 * width as u64 / height as u64) as u32, s),
        }
    }

    /// The window `crop` cuts from a `w`×`h` image, as (left, top, width, height): the whole
    /// image without a crop, a random one when the spec asks for it, else the centre.
    fn crop_window(
        &self,
        (w, h): (u32, u32),
        crop: Option<u32>,
        rng: &mut impl Rng,
    ) -> Result<(u32, u32, u32, u32), String> {
        Ok(match crop {
            None => (0, 0, w, h),
            Some(c) if c > w || c > h => {
                return Err(format!("crop {c} is larger than the {w}×{h} image"));
            }
            Some(c) if self.random_crop => {
                (rng.gen_range(0..=w - c), rng.gen_range(0..=h - c), c, c)
            }
            // torchvision: top = int(round((h - c) / 2))
            Some(c) => (
                ((w - c) as f64 / 2.0).round() as u32,
                ((h - c) as f64 / 2.0).round() as u32,
                c,
                c,
            ),
        })
    }

    /// Applies the pipeline and writes the normalised CHW values into `out`
    /// (length 3·H·W for the output size). Errors when the crop is larger than the image.
    pub(crate) fn apply(
        &self,
        img: &RgbImage,
        rng: &mut impl Rng,
        out: &mut [f32],
    ) -> Result<(), String> {
        let (w0, h0) = img.dimensions();
        let resized;
        let (img, (w, h), crop) = match (&self.augment.random_resized_crop, self.crop) {
            // RandomResizedCrop works on the original image and gives the crop×crop output
            (Some(rrc), Some(c)) => {
                resized = rrc.apply(img, c, rng);
                (&resized, (c, c), None)
            }
            _ => {
                let (w, h) = self.resized_size(w0, h0);
                let img = if (w, h) != (w0, h0) {
                    resized = imageops::resize(img, w, h, FilterType::Triangle);
                    &resized
                } else {
                    img
                };
                (img, (w, h), self.crop)
            }
        };
        let (cx, cy, cw, ch) = self.crop_window((w, h), crop, rng)?;
        let flip = self.hflip > 0.0 && rng.gen::<f32>() < self.hflip;
        let plane = (cw * ch) as usize;
        assert_eq!(
            out.len(),
            3 * plane,
            "output buffer does not match the transform's size"
        );
        if let Some(jitter) = &self.augment.color_jitter {
            // jitter works on [0, 1] values: ToTensor, jitter, then Normalize
            for y in 0..ch {
                for x in 0..cw {
                    let sx = if flip { cx + cw - 1 - x } else { cx + x };
                    let p = img.get_pixel(sx, cy + y).0;
                    let i = (y * cw + x) as usize;
                    for c in 0..3 {
                        out[c * plane + i] = p[c] as f32 / 255.0;
                    }
                }
            }
            jitter.apply(out, rng);
            for c in 0..3 {
                let (m, s) = (self.mean[c], self.std[c]);
                out[c * plane..(c + 1) * plane]
                    .iter_mut()
                    .for_each(|v| *v = (*v - m) / s);
            }
            return Ok(());
        }
        // without jitter: straight from bytes to normalised values (the numbers recorded runs
        // were trained on)
        let scale: [f32; 3] = std::array::from_fn(|c| 1.0 / (255.0 * self.std[c]));
        let shift: [f32; 3] = std::array::from_fn(|c| self.mean[c] / self.std[c]);
        for y in 0..ch {
            for x in 0..cw {
                let sx = if flip { cx + cw - 1 - x } else { cx + x };
                let p = img.get_pixel(sx, cy + y).0;
                let i = (y * cw + x) as usize;
                for c in 0..3 {
                    out[c * plane + i] = p[c] as f32 * scale[c] - shift[c];
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn imagenet(resize: u32, crop: u32) -> Transform {
        Transform {
            resize: Some(resize),
            crop: Some(crop),
            random_crop: false,
            hflip: 0.0,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            augment: Augment::default(),
        }
    }

    #[test]
    fn resize_keeps_aspect_like_torchvision() {
        let t = Transform {
            crop: None,
            ..imagenet(256, 224)
        };
        // 768×576 photo: short side 576 → 256, long side int(256·768/576) = 341
        assert_eq!(t.output_size(768, 576), (256, 341));
        assert_eq!(t.output_size(500, 375), (256, 341));
        assert_eq!(imagenet(256, 224).output_size(32, 32), (224, 224));
    }

    #[test]
    fn normalizes_and_flips() {
        let mut img = RgbImage::new(2, 1);
        img.put_pixel(0, 0, image::Rgb([255, 0, 0]));
        img.put_pixel(1, 0, image::Rgb([0, 0, 255]));
        let t = Transform {
            resize: None,
            crop: None,
            random_crop: false,
            hflip: 1.0,
            mean: [0.5; 3],
            std: [0.5; 3],
            augment: Augment::default(),
        };
        let mut out = vec![0.0; 6];
        t.apply(
            &img,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
            &mut out,
        )
        .unwrap();
        // flipped: blue pixel first; (v/255 - 0.5)/0.5 maps 0 → -1 and 255 → 1
        assert_eq!(out, vec![-1.0, 1.0, -1.0, -1.0, 1.0, -1.0]);
    }

    #[test]
    fn crop_larger_than_image_is_an_error() {
        let img = RgbImage::new(10, 10);
        let t = Transform {
            resize: None,
            ..imagenet(0, 16)
        };
        let mut out = vec![0.0; 3 * 16 * 16];
        let err = t.apply(
            &img,
            &mut rand_chacha::ChaCha8Rng::seed_from_u64(0),
            &mut out,
        );
        assert_eq!(err.unwrap_err(), "crop 16 is larger than the 10×10 image");
    }
}
