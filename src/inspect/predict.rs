//! `runner predict`: top-k classes of images under a classifier, either pretrained ImageNet
//! weights (`--model NAME --weights FILE`) or a trained run (`--run DIR`).

use std::path::{Path, PathBuf};

use comfy_table::{presets, Table};
use dfdx::prelude::*;

use crate::data::{load_image, Transform, IMAGENET_MEAN, IMAGENET_STD};
use crate::models::{
    imagenet_class_name, load_torchvision_file, Arch, ArchVisitor, Backbone, Classifier,
};
use crate::results::layout::RunDir;
use crate::setup::{FinishedRun, Opening, ProjectFrom};
use crate::train::Dev;

/// One image's top classes: (class index, class name, probability).
#[derive(Debug, Clone)]
pub struct Prediction {
    pub image: PathBuf,
    pub top: Vec<(usize, String, f32)>,
}

/// What to predict with.
pub struct Predictor {
    pub arch: Arch,
    pub weights: PathBuf,
    /// Class names by index; `None` for ImageNet's 1000 classes.
    pub classes: Option<Vec<String>>,
    pub transform: Transform,
    /// The head the weights were trained with (a linear head for pretrained weights).
    pub head: crate::models::HeadConfig,
}

impl Predictor {
    /// Pretrained weights with ImageNet preprocessing (Resize 256, CenterCrop 224, mean/std).
    pub fn pretrained(arch: Arch, weights: PathBuf) -> Self {
        let transform = Transform {
            resize: Some(256),
            crop: Some(224),
            random_crop: false,
            hflip: 0.0,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            augment: Default::default(),
        };
        Self {
            arch,
            weights,
            classes: None,
            transform,
            head: crate::models::HeadConfig::default(),
        }
    }

    /// A trained run: its backbone and validation transforms from `spec.toml`, its classes from
    /// `manifest.json`, its weights from `model.safetensors`.
    pub fn from_run(dir: &Path) -> Result<Self, String> {
        let how = Opening {
            project: ProjectFrom::Run,
            needs_model: false,
        };
        let run = FinishedRun::open(&RunDir::at(dir), how).map_err(|e| e.brief())?;
        let spec_path = run.dir.spec();
        let weights = run.weights();
        let FinishedRun {
            manifest,
            experiment,
            ..
        } = run;
        let spec = experiment.base;
        let arch = spec.backbone.name.arch().ok_or_else(|| {
            format!(
                "{}: the run's backbone is a pixel model (linear or mlp); predict needs a convolutional backbone",
                spec_path.display()
            )
        })?;
        // validation-side transforms: resize and center crop, no random parts
        let transform = crate::setup::transform(&spec).deterministic();
        if !weights.exists() {
            return Err(format!(
                "{} has no trained weights (status {})",
                dir.display(),
                manifest.status
            ));
        }
        Ok(Self {
            arch,
            weights,
            classes: Some(manifest.classes),
            transform,
            head: crate::setup::head_config(&spec.head, 0),
        })
    }

    pub fn predict(&self, images: &[PathBuf], k: usize) -> Result<Vec<Prediction>, String> {
        self.arch.dispatch(Predict { p: self, images, k })
    }
}

struct Predict<'a> {
    p: &'a Predictor,
    images: &'a [PathBuf],
    k: usize,
}

impl ArchVisitor for Predict<'_> {
    type Output = Result<Vec<Prediction>, String>;

    fn visit<B: Backbone>(self) -> Self::Output {
        let dev = Dev::default();
        let (classes, names) = match &self.p.classes {
            Some(c) => (c.len(), Names::Given(c.clone())),
            None => {
                let n = head_classes(&self.p.weights, B::HEAD)?;
                (n, Names::for_head(&self.p.weights, n))
            }
        };
        let mut model = Classifier::<B>::to_load(&dev, classes, &self.p.head);
        let file = crate::setup::kept_model::read(&self.p.weights).map_err(|e| e.to_string())?;
        load_torchvision_file(&mut model, &self.p.weights, &file, false)
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        for path in self.images {
            let img = load_image(path).map_err(|e| e.to_string())?;
            let (h, w) = self.p.transform.output_size(img.width(), img.height());
            let mut x = vec![0.0; 3 * h as usize * w as usize];
            // deterministic transforms: the generator is never drawn from
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
            self.p
                .transform
                .apply(&img, &mut rng, &mut x)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let t = dev.tensor_from_vec(x, (1usize, Const::<3>, h as usize, w as usize));
            let probs = model.forward_eval(t).softmax::<Axis<1>>().as_vec();
            let mut order: Vec<usize> = (0..probs.len()).collect();
            order.sort_by(|&a, &b| probs[b].total_cmp(&probs[a]));
            let name = |i: usize| names.name(i);
            out.push(Prediction {
                image: path.clone(),
                top: order
                    .iter()
                    .take(self.k)
                    .map(|&i| (i, name(i), probs[i]))
                    .collect(),
            });
        }
        Ok(out)
    }
}

/// How the classes of a head are named.
enum Names {
    /// A trained run's classes, by index.
    Given(Vec<String>),
    /// A 1000-class head: ImageNet's.
    ImageNet,
    /// Any other head: its class indices.
    Indices,
}

impl Names {
    /// A weights file's head: the classes in the `manifest.json` next to it when it is a run's
    /// `model.safetensors` with as many classes, ImageNet's for exactly 1000 outputs, else
    /// indices (a 2-class head has nothing to do with ImageNet's first two classes).
    fn for_head(weights: &Path, classes: usize) -> Names {
        let run = RunDir::at(weights.parent().unwrap_or(Path::new("")));
        if let Ok(m) = run.read_manifest() {
            if m.classes.len() == classes {
                return Names::Given(m.classes);
            }
        }
        if classes == crate::models::IMAGENET_CLASSES {
            Names::ImageNet
        } else {
            Names::Indices
        }
    }

    fn name(&self, i: usize) -> String {
        match self {
            Names::Given(c) => c[i].clone(),
            Names::ImageNet => imagenet_class_name(i).to_string(),
            Names::Indices => format!("class {i}"),
        }
    }
}

/// The class count of a weights file's head (`fc.weight` / `_fc.weight` rows), safetensors or
/// a PyTorch checkpoint.
fn head_classes(path: &Path, head: &str) -> Result<usize, String> {
    let bytes = std::fs::read(path)
        .map_err(|e| format!("cannot read weights file {}: {e}", path.display()))?;
    let file = crate::models::weights_file::parse_weights(bytes)
        .map_err(|e| format!("weights file {}: {e}", path.display()))?;
    let t = file
        .tensors
        .tensor(&format!("{head}.weight"))
        .map_err(|_| {
            format!(
                "weights file {} has no head `{head}.weight`",
                path.display()
            )
        })?;
    Ok(t.shape()[0])
}

/// One table: image, rank, class index, class name, probability.
pub fn render(preds: &[Prediction]) -> String {
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    t.set_header(vec!["image", "rank", "class", "name", "probability"]);
    for p in preds {
        let file = p
            .image
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        for (rank, (i, name, prob)) in p.top.iter().enumerate() {
            let image = if rank == 0 {
                file.clone()
            } else {
                String::new()
            };
            t.add_row(vec![
                image,
                (rank + 1).to_string(),
                i.to_string(),
                name.clone(),
                format!("{prob:.4}"),
            ]);
        }
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::{save_torchvision_weights, SmallCnn};

    #[test]
    fn heads_of_other_than_1000_classes_predict_class_indices() {
        let dir = tempfile::tempdir().unwrap();
        let img = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/catdog-tiny/val/cat/cat_02800.png");
        for classes in [2, 1001] {
            let path = dir.path().join(format!("head{classes}.safetensors"));
            let model = Classifier::<SmallCnn>::new(&Dev::default(), classes);
            save_torchvision_weights(&model, &path).unwrap();
            let mut p = Predictor::pretrained(Arch::SmallCnn, path);
            p.transform.resize = Some(28);
            p.transform.crop = Some(28);
            let preds = p.predict(std::slice::from_ref(&img), classes).unwrap();
            let top = &preds[0].top;
            assert_eq!(top.len(), classes);
            for (i, name, _) in top {
                assert_eq!(name, &format!("class {i}"));
            }
        }
    }
}
