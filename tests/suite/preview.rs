//! `preview` on the tiny cat/dog fixture: a PNG grid of the expected size, not blank, with
//! captions, the same for the same seed.

use crate::common;

use std::path::Path;

use runner::data::{BadImagePolicy, ImageFolder, Transform};
use runner::inspect::preview::{grid_size, preview, TrainingImages, CAPTION, PADDING};

fn folder() -> ImageFolder {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catdog-tiny");
    ImageFolder::open(&root, "train", "val", 0, 0).unwrap()
}

fn train_transform() -> Transform {
    Transform {
        resize: Some(32),
        crop: Some(24),
        random_crop: true,
        hflip: 0.5,
        mean: [0.5; 3],
        std: [0.25; 3],
        augment: Default::default(),
    }
}

fn images<'a>(folder: &'a ImageFolder, transform: &'a Transform) -> TrainingImages<'a> {
    TrainingImages {
        folder,
        transform,
        bad_images: BadImagePolicy::Error,
    }
}

#[test]
fn writes_a_captioned_grid_of_transformed_images() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("preview.png");
    let written = preview(&images(&folder(), &train_transform()), 10, 7, &out).unwrap();
    assert_eq!(written, out);
    if let Ok(keep) = std::env::var("PREVIEW_TEST_KEEP") {
        std::fs::copy(&out, Path::new(&keep).join("preview.png")).unwrap();
    }
    let img = image::open(&out).unwrap().to_rgb8();
    // 24×24 crops scaled ×4, 8 columns, 2 rows
    assert_eq!(img.dimensions(), grid_size(10, (24, 24)));
    assert_eq!(img.dimensions(), (2 + 8 * 98, 2 + 2 * 118));
    let (_, var) = common::luminance(&img);
    assert!(var > 100.0, "blank grid (variance {var})");
    // the first caption strip has text in it (dark pixels on white)
    let strip_y = PADDING + 96..PADDING + 96 + CAPTION;
    let dark = (PADDING..PADDING + 96)
        .flat_map(|x| strip_y.clone().map(move |y| (x, y)))
        .filter(|&(x, y)| img.get_pixel(x, y).0[0] < 100)
        .count();
    assert!(dark > 20, "caption missing ({dark} dark pixels)");
    // the same seed gives the same grid; another seed another sample and augmentation
    let again = dir.path().join("again.png");
    preview(&images(&folder(), &train_transform()), 10, 7, &again).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&again).unwrap());
    let other = dir.path().join("other.png");
    preview(&images(&folder(), &train_transform()), 10, 8, &other).unwrap();
    assert_ne!(std::fs::read(&out).unwrap(), std::fs::read(&other).unwrap());
}

#[test]
fn fewer_images_than_asked_and_a_clear_error_for_zero() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all.png");
    let val_transform = Transform {
        random_crop: false,
        hflip: 0.0,
        ..train_transform()
    };
    preview(&images(&folder(), &val_transform), 100, 0, &out).unwrap();
    // 16 training images: two full rows
    assert_eq!(
        image::open(&out).unwrap().to_rgb8().dimensions(),
        grid_size(16, (24, 24))
    );
    let err = preview(&images(&folder(), &val_transform), 0, 0, &out)
        .unwrap_err()
        .to_string();
    assert_eq!(err, "preview needs at least 1 image (n = 0)");
}
