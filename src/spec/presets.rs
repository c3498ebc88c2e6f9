//! `use = ["datasets/animal_mnist_catdog", ...]`: presets are TOML files under the pipeline
//! folder, applied before the file that names them, in order. A preset may use presets itself.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;

use super::error::{did_you_mean, display_path, Diagnostic, Snippet, Source, SpecError};
use super::layer::Layer;

/// The first `pipeline/` folder found walking up from `start`.
pub(super) fn find_pipeline_dir(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .map(|dir| dir.join("pipeline"))
        .find(|dir| dir.is_dir())
}

/// Reads and parses a spec or preset file.
pub(super) fn read_layer(path: &Path) -> Result<Layer, SpecError> {
    Layer::parse(read_source(path)?)
}

/// A file's text as a spec source, or a located error saying why it cannot be read.
pub(super) fn read_source(path: &Path) -> Result<Arc<Source>, SpecError> {
    let bytes = std::fs::read(path).map_err(|source| {
        let diag = Diagnostic::error(format!("cannot read `{}`", display_path(path)))
            .in_file(Source::file(path.to_path_buf(), String::new()))
            .label(source.to_string().to_lowercase());
        SpecError::Read {
            diag: Box::new(diag),
            source,
        }
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => {
            // point at the first bad byte: everything before it is unchanged by the lossy copy
            let at = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            let snippet = Snippet {
                source: Source::file(path.to_path_buf(), text),
                span: at..at + char::REPLACEMENT_CHARACTER.len_utf8(),
            };
            let diag = Diagnostic::error("a spec file must be UTF-8 text")
                .at(Some(snippet))
                .label("not UTF-8");
            return Err(SpecError::Syntax(Box::new(diag)));
        }
    };
    Ok(Source::file(path.to_path_buf(), text))
}

/// The layers a file stands for: its presets (depth first, in order), then the file itself.
pub(super) fn with_presets(
    layer: Layer,
    pipeline: Option<&Path>,
    out: &mut Vec<Layer>,
) -> Result<(), SpecError> {
    let mut stack = Vec::new();
    expand(layer, pipeline, &mut stack, out)
}

fn expand(
    mut layer: Layer,
    pipeline: Option<&Path>,
    stack: &mut Vec<PathBuf>,
    out: &mut Vec<Layer>,
) -> Result<(), SpecError> {
    let path = layer.source.path.clone().unwrap_or_default();
    stack.push(path);
    for name in layer.raw.use_.take().unwrap_or_default() {
        let preset_path = locate(&name, &layer.source, pipeline)?;
        let at = Snippet {
            source: layer.source.clone(),
            span: name.span(),
        };
        if stack.contains(&preset_path) {
            let chain = stack
                .iter()
                .chain([&preset_path])
                .map(|p| display_path(p))
                .collect::<Vec<_>>();
            let diag = Diagnostic::error(format!(
                "presets use each other in a cycle: `{}`",
                name.get_ref()
            ))
            .at(Some(at))
            .label("used again here")
            .note(format!("cycle: {}", chain.join(" -> ")));
            return Err(SpecError::Preset(Box::new(diag)));
        }
        let preset = read_layer(&preset_path)?;
        if preset.raw.sweep.is_some() {
            let at = preset.sites.get("sweep").map(|s| Snippet {
                source: preset.source.clone(),
                span: s.key.clone(),
            });
            let diag = Diagnostic::error("presets cannot sweep")
                .at(at)
                .label("`[sweep]` belongs in an experiment file")
                .note(format!("this preset is used from {}", layer.source.name()));
            return Err(SpecError::Preset(Box::new(diag)));
        }
        expand(preset, pipeline, stack, out)?;
    }
    stack.pop();
    out.push(layer);
    Ok(())
}

/// `datasets/animal_mnist_catdog` → `<pipeline>/datasets/animal_mnist_catdog.toml`, which must exist.
fn locate(
    name: &Spanned<String>,
    user: &Arc<Source>,
    pipeline: Option<&Path>,
) -> Result<PathBuf, SpecError> {
    let at = Snippet {
        source: user.clone(),
        span: name.span(),
    };
    let Some(pipeline) = pipeline else {
        let diag = Diagnostic::error(format!("cannot find preset `{}`", name.get_ref()))
            .at(Some(at))
            .label("no `pipeline/` folder above this file")
            .help("run from inside the project, or pass `--pipeline DIR`");
        return Err(SpecError::Preset(Box::new(diag)));
    };
    let path = pipeline.join(format!("{}.toml", name.get_ref()));
    if path.is_file() {
        return Ok(path);
    }
    let known = available(pipeline);
    let mut diag = Diagnostic::error(format!("cannot find preset `{}`", name.get_ref()))
        .at(Some(at))
        .label(format!("no file {}", display_path(&path)));
    if let Some(best) = did_you_mean(name.get_ref(), known.iter().map(String::as_str)) {
        diag = diag.help(format!("did you mean `{best}`?"));
    } else if !known.is_empty() {
        diag = diag.note(format!("presets: {}", known.join(", ")));
    }
    Err(SpecError::Preset(Box::new(diag)))
}

/// Preset names under the pipeline folder (`<folder>/<name>`), sorted.
fn available(pipeline: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for folder in std::fs::read_dir(pipeline).into_iter().flatten().flatten() {
        let folder_name = folder.file_name().to_string_lossy().into_owned();
        for file in std::fs::read_dir(folder.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "toml") {
                if let Some(stem) = path.file_stem() {
                    names.push(format!("{folder_name}/{}", stem.to_string_lossy()));
                }
            }
        }
    }
    names.sort();
    names
}
