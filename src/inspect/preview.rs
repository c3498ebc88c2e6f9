//! `runner preview`: a PNG grid of transformed training images, un-normalised for display and
//! captioned with their class, like torchvision's `make_grid` with labels.
//!
//! Images go through `data::Loader` exactly as in training (same seeded shuffle and random
//! crops / flips as epoch 1 of a run with this seed), one image per call so that images of
//! different sizes (no crop in the spec) still fit: each sits top-left in a cell sized for the
//! largest. Small images (MNIST's 28×28) are scaled up by a whole factor, nearest neighbour, so
//! pixels stay visible and captions fit.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use plotters::prelude::*;

use crate::data::{BadImagePolicy, ImageFolder, Loader, Transform};
use crate::draw::{encode_png, font};
use crate::durable;
use crate::setup::ResolvedRun;

/// Why the grid cannot be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    #[error("{0}")]
    Draw(String),
    #[error(transparent)]
    Write(#[from] durable::StoreError),
}

/// Grid columns at most (torchvision's `nrow` default).
pub(crate) const COLUMNS: usize = 8;
/// Pixels between images and around the grid (torchvision's `padding` default).
pub const PADDING: u32 = 2;
/// Height of the caption strip under each image.
pub const CAPTION: u32 = 20;
/// Images whose longer side is smaller than this are scaled up by a whole factor.
pub(crate) const MIN_SIDE: u32 = 96;

/// What a run's training loader reads: its images, its train transforms and what it does with
/// an image it cannot decode.
#[derive(Debug, Clone, Copy)]
pub struct TrainingImages<'a> {
    pub folder: &'a ImageFolder,
    pub transform: &'a Transform,
    pub bad_images: BadImagePolicy,
}

impl<'a> TrainingImages<'a> {
    /// Exactly what the run's training reads.
    pub fn of(run: &'a ResolvedRun) -> Self {
        TrainingImages {
            folder: &run.dataset.folder,
            transform: &run.transform,
            bad_images: run.bad_images,
        }
    }
}

/// Writes the grid of the first `n` images (fewer if the split is smaller) of epoch 1's order
/// to `out` (atomically) and returns its path.
pub fn preview(
    images: &TrainingImages,
    n: usize,
    seed: u64,
    out: &Path,
) -> Result<PathBuf, PreviewError> {
    let png = preview_png(images, n, seed)?;
    durable::write_file(out, &png)?;
    Ok(out.to_path_buf())
}

/// The PNG bytes of the grid [`preview`] writes. An image the run's policy skips in training is
/// skipped here too.
pub fn preview_png(images: &TrainingImages, n: usize, seed: u64) -> Result<Vec<u8>, PreviewError> {
    let (folder, transform) = (images.folder, images.transform);
    if n == 0 {
        return Err(PreviewError::Draw(
            "preview needs at least 1 image (n = 0)".into(),
        ));
    }
    if folder.train.is_empty() {
        return Err(PreviewError::Draw(format!(
            "no training images under {}",
            folder.root.display()
        )));
    }
    let loader = Loader::new(
        folder.train.clone(),
        transform.clone(),
        1,
        seed,
        true,
        images.bad_images,
    );
    let mut shown = Vec::new();
    for &i in loader.order(1).iter() {
        if shown.len() == n {
            break;
        }
        let b = loader
            .batch(1, &[i])
            .map_err(|e| PreviewError::Draw(e.to_string()))?;
        if b.n == 0 {
            continue; // undecodable, and skipped as training skips it
        }
        let class = folder
            .classes
            .get(b.labels[0])
            .cloned()
            .unwrap_or_else(|| b.labels[0].to_string());
        shown.push((to_rgb(&b.x, b.height, b.width, transform), class));
    }
    if shown.is_empty() {
        return Err(PreviewError::Draw(format!(
            "no training image under {} could be decoded",
            folder.root.display()
        )));
    }
    let grid = make_grid(&shown)?;
    let (w, h) = grid.dimensions();
    encode_png(grid.into_raw(), (w, h))
        .map_err(|e| PreviewError::Draw(format!("cannot encode the preview grid: {e}")))
}

/// CHW normalised values back to 8-bit RGB: v·std + mean, clamped to [0, 1].
pub(crate) fn to_rgb(chw: &[f32], height: usize, width: usize, t: &Transform) -> RgbImage {
    let plane = height * width;
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let i = y as usize * width + x as usize;
        Rgb(std::array::from_fn(|c| {
            ((chw[c * plane + i] * t.std[c] + t.mean[c]).clamp(0.0, 1.0) * 255.0).round() as u8
        }))
    })
}

/// The grid's size in pixels for `n` images of at most `(width, height)` before scaling.
pub fn grid_size(n: usize, (width, height): (u32, u32)) -> (u32, u32) {
    let s = scale(width.max(height));
    let cols = n.min(COLUMNS) as u32;
    let rows = n.div_ceil(COLUMNS) as u32;
    (
        PADDING + cols * (width * s + PADDING),
        PADDING + rows * (height * s + CAPTION + PADDING),
    )
}

fn scale(side: u32) -> u32 {
    if side == 0 {
        1
    } else {
        MIN_SIDE.div_ceil(side).max(1)
    }
}

fn make_grid(images: &[(RgbImage, String)]) -> Result<RgbImage, PreviewError> {
    let max_w = images.iter().map(|(im, _)| im.width()).max().unwrap_or(1);
    let max_h = images.iter().map(|(im, _)| im.height()).max().unwrap_or(1);
    let s = scale(max_w.max(max_h));
    let (gw, gh) = grid_size(images.len(), (max_w, max_h));
    let (cell_w, cell_h) = (max_w * s + PADDING, max_h * s + CAPTION + PADDING);
    let mut grid = RgbImage::from_pixel(gw, gh, Rgb([255, 255, 255]));
    let origin = |k: usize| {
        (
            PADDING + (k % COLUMNS) as u32 * cell_w,
            PADDING + (k / COLUMNS) as u32 * cell_h,
        )
    };
    for (k, (im, _)) in images.iter().enumerate() {
        let (ox, oy) = origin(k);
        for (x, y, p) in im.enumerate_pixels() {
            for dy in 0..s {
                for dx in 0..s {
                    grid.put_pixel(ox + x * s + dx, oy + y * s + dy, *p);
                }
            }
        }
    }
    // captions, drawn with the bundled font over the same pixels
    font::register();
    let mut raw = grid.into_raw();
    {
        let area = BitMapBackend::with_buffer(&mut raw, (gw, gh)).into_drawing_area();
        let style = TextStyle::from((font::FAMILY, 14).into_font()).color(&BLACK);
        let err =
            |e: DrawingAreaErrorKind<_>| PreviewError::Draw(format!("cannot draw captions: {e}"));
        for (k, (_, class)) in images.iter().enumerate() {
            let (ox, oy) = origin(k);
            let text = fit(class, max_w * s);
            area.draw(&Text::new(
                text,
                (ox as i32 + 2, (oy + max_h * s + 3) as i32),
                style.clone(),
            ))
            .map_err(err)?;
        }
        area.present().map_err(err)?;
    }
    Ok(RgbImage::from_raw(gw, gh, raw).expect("same size"))
}

/// Shortens a caption to about the cell width (≈ 8 px per character at 14 px).
fn fit(text: &str, width: u32) -> String {
    let max = (width / 8).max(3) as usize;
    if text.chars().count() <= max {
        text.to_string()
    } else {
        text.chars().take(max - 1).collect::<String>() + "…"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{IMAGENET_MEAN, IMAGENET_STD};

    #[test]
    fn un_normalises_back_to_the_original_pixels() {
        let t = Transform {
            resize: None,
            crop: None,
            random_crop: false,
            hflip: 0.0,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            augment: Default::default(),
        };
        let px = [200u8, 100, 0];
        let chw: Vec<f32> = (0..3)
            .map(|c| (px[c] as f32 / 255.0 - t.mean[c]) / t.std[c])
            .collect();
        assert_eq!(to_rgb(&chw, 1, 1, &t).get_pixel(0, 0).0, px);
    }

    #[test]
    fn grid_is_sized_like_make_grid_with_caption_strips() {
        // 28×28 → ×4 = 112; 8 columns, 2 rows for 10 images
        assert_eq!(
            grid_size(10, (28, 28)),
            (2 + 8 * 114, 2 + 2 * (112 + 20 + 2))
        );
        assert_eq!(grid_size(3, (224, 224)), (2 + 3 * 226, 2 + 246));
        assert_eq!(fit("a_very_long_class_name", 40), "a_ve…");
        assert_eq!(fit("cat", 40), "cat");
    }
}
