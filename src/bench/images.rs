//! Image loading throughput: decode + resize (short side 256) + centre crop 224 + normalise,
//! on the committed images, in parallel over files (what the loader does per batch).

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::busy::timed;
use super::Measure;
use crate::data::{load_image, Transform, IMAGENET_MEAN, IMAGENET_STD, IMAGE_EXTENSIONS};

/// Image files under `dir`, recursively, sorted (the PyTorch script walks the same tree).
pub(super) fn image_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            let ext = p
                .extension()
                .and_then(|x| x.to_str())
                .map(str::to_ascii_lowercase);
            if p.is_dir() {
                stack.push(p);
            } else if ext.is_some_and(|x| IMAGE_EXTENSIONS.contains(&x.as_str())) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Images per second over all files in `dir`, or `None` when it holds none.
pub(super) fn load_throughput(dir: &Path, iters: usize) -> Option<Measure> {
    let files = image_files(dir);
    if files.is_empty() {
        return None;
    }
    let tf = Transform {
        resize: Some(256),
        crop: Some(224),
        random_crop: false,
        hflip: 0.0,
        mean: IMAGENET_MEAN,
        std: IMAGENET_STD,
        augment: Default::default(),
    };
    let mut bufs = vec![vec![0.0f32; 3 * 224 * 224]; files.len()];
    let (s, busy) = timed(1, iters, || {
        files
            .par_iter()
            .zip(bufs.par_iter_mut())
            .for_each(|(p, buf)| {
                let img = load_image(p).expect("benchmark image decodes");
                let mut rng = ChaCha8Rng::seed_from_u64(0);
                tf.apply(&img, &mut rng, buf).expect("transform applies");
            });
    });
    Some(Measure::new(files.len() as f64 / s, busy))
}
