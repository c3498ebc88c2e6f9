//! `runner export onnx RUN_DIR --to model.onnx`: a finished run's kept model as an ONNX graph
//! (opset 17, input `input` of shape (batch, 3, H, W) at the run's crop size with a dynamic
//! batch, output `logits`), with the class names and the preprocessing in the model's metadata;
//! `--with-preprocessing` puts the normalisation in the graph (the input is then RGB in [0, 1]).

mod archs;
mod graph;

use std::path::PathBuf;

use onnx_protobuf::Message;

use crate::durable;
use crate::results::layout::RunDir;
use crate::setup::{FinishedRun, Opening};
use crate::spec::display_path;

/// What to export.
#[derive(Debug, Clone)]
pub(crate) struct OnnxOptions {
    pub run: PathBuf,
    pub to: PathBuf,
    /// The (x − mean) / std normalisation as the graph's first nodes.
    pub with_preprocessing: bool,
}

/// What was written.
#[derive(Debug, Clone)]
pub(crate) struct Exported {
    pub path: PathBuf,
    pub nodes: usize,
    pub input: (usize, usize),
    pub classes: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum OnnxError {
    /// The run folder is not one that can be exported; nothing was written.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Write(#[from] durable::StoreError),
}

pub(crate) fn export(opts: &OnnxOptions) -> Result<Exported, OnnxError> {
    let input = OnnxError::Input;
    let run = &opts.run;
    let finished =
        FinishedRun::open(&RunDir::at(run), Opening::FINISHED).map_err(|e| input(e.explain()))?;
    let weights_path = finished.weights();
    let (manifest, spec) = (finished.manifest, finished.experiment.base);
    let size = input_size(&spec).map_err(input)?;
    let weights =
        crate::setup::kept_model::read(&weights_path).map_err(|e| input(e.to_string()))?;
    let head = crate::setup::head_config(&spec.head, spec.experiment.seed);
    let mut g = graph::Graph::new(&weights);
    let t = &spec.transforms;
    let first = if opts.with_preprocessing {
        let mean = g.constant("preprocess_mean", &[1, 3, 1, 1], t.mean.to_vec());
        let std = g.constant("preprocess_std", &[1, 3, 1, 1], t.std.to_vec());
        let centred = g.node("Sub", &["input", &mean], vec![]);
        g.node("Div", &[&centred, &std], vec![])
    } else {
        "input".to_string()
    };
    let last = archs::build(&mut g, spec.backbone.name, &head, &first, size)
        .map_err(|e| input(format!("{}: {e}", display_path(&weights_path))))?;
    let classes = manifest.classes.clone();
    let list = |v: &[f32]| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let metadata = vec![
        (
            "classes".to_string(),
            serde_json::to_string(&classes).expect("strings serialise"),
        ),
        ("runner.run_id".into(), manifest.run_id.clone()),
        ("runner.experiment".into(), manifest.experiment.clone()),
        (
            "runner.backbone".into(),
            format!("{:?}", spec.backbone.name),
        ),
        (
            "preprocessing".into(),
            format!(
                "RGB scaled to [0, 1], resize {} (short side; 0 = none), center crop {} (0 = none), {}",
                t.resize,
                t.crop,
                if opts.with_preprocessing {
                    "then normalised in the graph".to_string()
                } else {
                    format!(
                        "then (x - mean) / std with mean [{}], std [{}]",
                        list(&t.mean),
                        list(&t.std)
                    )
                }
            ),
        ),
        ("mean".into(), list(&t.mean)),
        ("std".into(), list(&t.std)),
        (
            "input_normalised".into(),
            (!opts.with_preprocessing).to_string(),
        ),
    ];
    let model = g.finish(&last, size, classes.len(), metadata);
    let nodes = model.graph.node.len();
    let bytes = model
        .write_to_bytes()
        .map_err(|e| input(format!("encoding the ONNX model: {e}")))?;
    durable::write_file(&opts.to, &bytes)?;
    Ok(Exported {
        path: opts.to.clone(),
        nodes,
        input: size,
        classes,
    })
}

/// (height, width) of the model's input: the crop, else the first training image after the
/// resize (the size the run trained on, as its training loop found it).
fn input_size(spec: &crate::spec::RunSpec) -> Result<(usize, usize), String> {
    let crop = spec.transforms.crop as usize;
    if crop > 0 {
        return Ok((crop, crop));
    }
    let train = spec.dataset.root.join(&spec.dataset.train_dir);
    let first = crate::data::scan_classes(&train)
        .map_err(|e| e.to_string())?
        .into_iter()
        .flat_map(|c| c.images)
        .next()
        .ok_or_else(|| {
            format!(
                "no training image in {} to take the input size from (set transforms.crop)",
                display_path(&train)
            )
        })?;
    let img = crate::data::load_image(&first).map_err(|e| e.to_string())?;
    let (h, w) = crate::setup::transform(spec).output_size(img.width(), img.height());
    Ok((h as usize, w as usize))
}
