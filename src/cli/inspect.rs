//! `runner predict`, `summary` and `preview`: commands that build a model or run the loader on a
//! spec or on weights, without training.

use std::path::PathBuf;

use clap::Args;

use super::sweep::{load, resolve, SpecArgs};
use super::values::{parse_chw, parse_freeze, parse_padding};
use super::Failure;
use crate::inspect::preview::TrainingImages;
use crate::spec;

/// `runner preview`: what the spec's training loader yields, as a captioned grid.
#[derive(Debug, Args)]
pub(super) struct PreviewArgs {
    /// The experiment spec (TOML).
    spec: PathBuf,
    /// Number of images.
    #[arg(short = 'n', long, default_value_t = 32)]
    n: usize,
    /// Seed of the sample and of the random transforms (default: the spec's seed).
    #[arg(long)]
    seed: Option<u64>,
    /// Output PNG (default: next to the experiment's results).
    #[arg(short, long)]
    out: Option<PathBuf>,
    /// Override a key of the spec: `--set transforms.hflip=1` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Where results go (the grid is written to `<DIR>/<experiment>/preview.png` by default).
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  runner summary experiments/resnet.toml\n  \
    runner summary --model resnet18 --input 3,224,224 --classes 1000\n  \
    runner summary --layer conv --in 10,48,64 --out-channels 20 --kernel 3")]
pub(super) struct SummaryArgs {
    /// An experiment spec: its backbone, input size (transforms' crop/resize), class count and
    /// `backbone.freeze`.
    #[arg(conflicts_with_all = ["model", "layer"])]
    spec: Option<PathBuf>,
    /// Override a key of the spec: `--set backbone.name=resnet34` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "spec")]
    overrides: Vec<String>,
    /// The folder of presets named in `use` (default: the nearest `pipeline/` above the spec).
    #[arg(long, value_name = "DIR", requires = "spec")]
    pipeline: Option<PathBuf>,
    /// A backbone instead of a spec: resnet18, resnet34, resnet50, efficientnet_lite0, small_cnn.
    #[arg(long, conflicts_with = "layer")]
    model: Option<String>,
    /// Input size for `--model`.
    #[arg(long, value_name = "C,H,W", default_value = "3,224,224", value_parser = parse_chw)]
    input: crate::nn::describe::Chw,
    /// Classes of the head for `--model`.
    #[arg(long, default_value_t = 1000)]
    classes: usize,
    /// Frozen part for `--model`, as in a spec: false, true or until:<block>.
    #[arg(long, default_value = "false", value_parser = parse_freeze)]
    freeze: spec::Freeze,
    /// One layer on its own instead of a model.
    #[arg(long, value_enum, requires_all = ["layer_in", "out_channels", "kernel"])]
    layer: Option<LayerKind>,
    /// Input of `--layer`.
    #[arg(long = "in", value_name = "C,H,W", value_parser = parse_chw, requires = "layer")]
    layer_in: Option<crate::nn::describe::Chw>,
    #[arg(long, requires = "layer")]
    out_channels: Option<usize>,
    #[arg(long, requires = "layer")]
    kernel: Option<usize>,
    #[arg(long, default_value_t = 1, requires = "layer")]
    stride: usize,
    /// Zeros on each side, or `same` (TensorFlow's SAME).
    #[arg(long, default_value = "0", value_parser = parse_padding, requires = "layer")]
    padding: crate::ops::Padding,
    #[arg(long, default_value_t = 1, requires = "layer")]
    groups: usize,
    /// A convolution without bias (the backbones' convolutions have none: BatchNorm follows).
    #[arg(long, requires = "layer")]
    no_bias: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LayerKind {
    Conv,
}

#[derive(Debug, Args)]
pub(super) struct PredictArgs {
    /// Images (JPEG or PNG).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Architecture of `--weights`: resnet18, resnet34, resnet50, efficientnet_lite0, small_cnn.
    #[arg(long, requires = "weights", conflicts_with = "run")]
    model: Option<String>,
    /// Safetensors weights with torchvision / efficientnet_pytorch names (a 1000-class head
    /// predicts ImageNet classes).
    #[arg(long, requires = "model")]
    weights: Option<PathBuf>,
    /// A trained run's folder instead: its backbone, transforms, classes and weights.
    #[arg(long, value_name = "DIR")]
    run: Option<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
}

pub(super) fn cmd_predict(a: PredictArgs) -> Result<(), Failure> {
    use super::failure::given;
    if let Some(run) = &a.run {
        super::failure::given_folder(run, "run folder")?;
    }
    if let Some(weights) = &a.weights {
        given(weights, "weights file")?;
    }
    for image in &a.images {
        given(image, "image")?;
    }
    let predictor = match (&a.run, &a.model, &a.weights) {
        (Some(run), _, _) => crate::inspect::predict::Predictor::from_run(run),
        (None, Some(model), Some(weights)) => crate::models::Arch::from_name(model)
            .map(|arch| crate::inspect::predict::Predictor::pretrained(arch, weights.clone()))
            .map_err(|e| e.to_string()),
        _ => Err("give --model and --weights, or --run".to_string()),
    };
    let preds = predictor
        .and_then(|p| p.predict(&a.images, a.top))
        .map_err(Failure::failed)?;
    println!("{}", crate::inspect::predict::render(&preds));
    Ok(())
}

pub(super) fn cmd_summary(a: SummaryArgs) -> Result<(), Failure> {
    use crate::inspect::summary::{explain_conv, for_runs, ModelSummary};
    let text = if let Some(LayerKind::Conv) = a.layer {
        let layer = crate::nn::describe::ConvLayer {
            input: a.layer_in.expect("clap requires --in"),
            out_channels: a.out_channels.expect("clap requires --out-channels"),
            kernel: a.kernel.expect("clap requires --kernel"),
            stride: a.stride,
            padding: a.padding,
            groups: a.groups,
            bias: !a.no_bias,
        };
        explain_conv(&layer)
    } else if let Some(model) = &a.model {
        crate::models::Arch::from_name(model)
            .map_err(|e| e.to_string())
            .and_then(|arch| ModelSummary::of(arch, a.input, a.classes, &a.freeze))
            .map(|s| s.render())
    } else if let Some(path) = &a.spec {
        let exp = load(&SpecArgs {
            spec: path.clone(),
            overrides: a.overrides.clone(),
            pipeline: a.pipeline.clone(),
        })?;
        for_runs(&resolve(&exp)?).map(|all| {
            let many = all.len() > 1;
            all.iter()
                .map(|(runs, s)| {
                    let runs: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
                    let head = if many {
                        format!(
                            "run{} {}: ",
                            if runs.len() > 1 { "s" } else { "" },
                            runs.join(", ")
                        )
                    } else {
                        String::new()
                    };
                    format!("{head}{}", s.render())
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
    } else {
        Err("give a spec, --model NAME, or --layer conv".to_string())
    };
    print!(
        "{}",
        text.map_err(|e| Failure::Spec(format!("error: {e}")))?
    );
    Ok(())
}

pub(super) fn cmd_preview(a: PreviewArgs) -> Result<(), Failure> {
    let p = &a;
    let spec_args = SpecArgs {
        spec: p.spec.clone(),
        overrides: a.overrides.clone(),
        pipeline: None,
    };
    let exp = load(&spec_args)?;
    let resolved = resolve(&exp)?;
    // what the sweep's first run trains on
    let run = &resolved.runs[0];
    let out = p.out.clone().unwrap_or_else(|| {
        crate::results::layout::ResultsRoot::new(&a.results)
            .experiment(&exp.name)
            .preview_png()
    });
    let seed = p.seed.unwrap_or(run.spec().experiment.seed);
    let images = TrainingImages::of(run);
    let path =
        crate::inspect::preview::preview(&images, p.n, seed, &out).map_err(Failure::failed)?;
    println!("{}", path.display());
    Ok(())
}
