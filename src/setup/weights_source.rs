//! Where `backbone.weights` points on disk: a file path as written, or one of the names of the
//! caches other tools download into, looked up offline:
//! - `"torchvision"`: the file torchvision caches its `IMAGENET1K_V1` weights as
//!   (`resnet18-f37072fd.pth`, …) in torch's hub folder, its SHA-256 prefix checked;
//! - `"hf:<org>/<model>"`: `model.safetensors` of the Hugging Face hub cache's snapshot that
//!   `refs/main` names.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::models::weights_check::Unfit;
use crate::models::Arch;
use crate::spec::{HF_WEIGHTS_PREFIX, TORCHVISION_WEIGHTS};

/// The torchvision file of a backbone's ImageNet weights, and torchvision's name for them.
fn torchvision_file(arch: Arch) -> Option<(&'static str, &'static str)> {
    match arch {
        Arch::ResNet18 => Some(("resnet18-f37072fd.pth", "ResNet18_Weights.IMAGENET1K_V1")),
        Arch::ResNet34 => Some(("resnet34-b627a593.pth", "ResNet34_Weights.IMAGENET1K_V1")),
        Arch::ResNet50 => Some(("resnet50-0676ba61.pth", "ResNet50_Weights.IMAGENET1K_V1")),
        Arch::EfficientNetLite0 | Arch::SmallCnn => None,
    }
}

/// A variable's value, unless unset or empty.
fn var(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home_cache() -> PathBuf {
    var("XDG_CACHE_HOME").unwrap_or_else(|| var("HOME").unwrap_or_default().join(".cache"))
}

/// torch.hub's folder of downloaded checkpoints: `$TORCH_HOME/hub/checkpoints`, else
/// `$XDG_CACHE_HOME/torch/hub/checkpoints`, else `~/.cache/torch/hub/checkpoints`.
pub(crate) fn torch_checkpoints() -> PathBuf {
    var("TORCH_HOME")
        .unwrap_or_else(|| home_cache().join("torch"))
        .join("hub/checkpoints")
}

/// The Hugging Face hub cache: `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else
/// `$XDG_CACHE_HOME/huggingface/hub`, else `~/.cache/huggingface/hub`.
pub(crate) fn hf_hub_cache() -> PathBuf {
    var("HF_HUB_CACHE").unwrap_or_else(|| {
        var("HF_HOME")
            .unwrap_or_else(|| home_cache().join("huggingface"))
            .join("hub")
    })
}

/// The file `weights` names for a run of `arch` (`None` for the pixel models); the error says
/// what was looked for, where, and how to get it.
pub(crate) fn locate(weights: &Path, arch: Option<Arch>) -> Result<PathBuf, Unfit> {
    let text = weights.to_string_lossy();
    if text == TORCHVISION_WEIGHTS {
        return torchvision(arch);
    }
    if let Some(repo) = text.strip_prefix(HF_WEIGHTS_PREFIX) {
        return hugging_face(repo);
    }
    Ok(weights.to_path_buf())
}

fn torchvision(arch: Option<Arch>) -> Result<PathBuf, Unfit> {
    let Some((file, enum_name)) = arch.and_then(torchvision_file) else {
        return Err(plain(format!(
            "expected a backbone torchvision publishes ImageNet weights for (resnet18, resnet34, resnet50) \
             with backbone.weights = \"{TORCHVISION_WEIGHTS}\", found {}",
            arch.map_or("a pixel model", Arch::name)
        )));
    };
    let dir = torch_checkpoints();
    let path = dir.join(file);
    if !path.is_file() {
        let model = file.split('-').next().unwrap_or(file);
        return Err(Unfit {
            summary: format!(
                "expected torchvision's {enum_name} weights, found no file {}",
                path.display()
            ),
            details: vec![
                format!(
                    "{file} is looked for in $TORCH_HOME/hub/checkpoints, else \
                     $XDG_CACHE_HOME/torch/hub/checkpoints, else ~/.cache/torch/hub/checkpoints"
                ),
                format!(
                    "on a machine with internet, `python -c \"import torchvision; \
                     torchvision.models.{model}(weights='IMAGENET1K_V1')\"` downloads it into \
                     that machine's torch cache (or download \
                     https://download.pytorch.org/models/{file})"
                ),
                format!("then copy {file} to {} here", dir.display()),
            ],
        });
    }
    let bytes =
        std::fs::read(&path).map_err(|e| plain(format!("cannot read {}: {e}", path.display())))?;
    let prefix = file
        .trim_end_matches(".pth")
        .rsplit('-')
        .next()
        .unwrap_or("");
    let digest = format!("{:x}", Sha256::digest(&bytes));
    if !digest.starts_with(prefix) {
        return Err(plain(format!(
            "expected {} to have a SHA-256 starting with {prefix}, as its name says, found \
             {} (a partial or different download: delete it and download it again)",
            path.display(),
            &digest[..prefix.len().min(digest.len())]
        )));
    }
    Ok(path)
}

fn hugging_face(repo: &str) -> Result<PathBuf, Unfit> {
    let parts: Vec<&str> = repo.split('/').collect();
    if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(plain(format!(
            "expected `{HF_WEIGHTS_PREFIX}<org>/<model>` (e.g. {HF_WEIGHTS_PREFIX}timm/resnet34.tv_in1k), found `{HF_WEIGHTS_PREFIX}{repo}`"
        )));
    }
    let cache = hf_hub_cache();
    let folder = format!("models--{}--{}", parts[0], parts[1]);
    let how = vec![
        "the hub cache is $HF_HUB_CACHE, else $HF_HOME/hub, else \
         $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub"
            .to_string(),
        format!(
            "on a machine with internet, `hf download {repo} model.safetensors` (or \
             `huggingface-cli download {repo} model.safetensors`) puts it in that machine's cache"
        ),
        format!("then copy its {folder} folder to {} here", cache.display()),
    ];
    let folder = cache.join(folder);
    let refs = folder.join("refs/main");
    let Ok(revision) = std::fs::read_to_string(&refs) else {
        return Err(Unfit {
            summary: format!(
                "expected {repo} in the Hugging Face hub cache, found no {}",
                refs.display()
            ),
            details: how,
        });
    };
    let path = folder
        .join("snapshots")
        .join(revision.trim())
        .join("model.safetensors");
    if !path.is_file() {
        return Err(Unfit {
            summary: format!(
                "expected {repo}'s model.safetensors of the revision refs/main names, found no \
                 file {}",
                path.display()
            ),
            details: how,
        });
    }
    Ok(path)
}

fn plain(summary: String) -> Unfit {
    Unfit {
        summary,
        details: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plain_path_is_itself() {
        let p = Path::new("/w/x.pth");
        assert_eq!(locate(p, Some(Arch::ResNet18)).unwrap(), p);
    }

    #[test]
    fn torchvision_weights_exist_for_resnets_only() {
        let err = locate(Path::new("torchvision"), Some(Arch::EfficientNetLite0))
            .unwrap_err()
            .summary;
        assert!(err.contains("resnet18, resnet34"), "{err}");
        assert!(err.contains("efficientnet_lite0"), "{err}");
    }

    #[test]
    fn a_malformed_hub_name_says_the_form() {
        let err = locate(Path::new("hf:resnet34"), Some(Arch::ResNet34))
            .unwrap_err()
            .summary;
        assert!(err.contains("hf:<org>/<model>"), "{err}");
    }
}
