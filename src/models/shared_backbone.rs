//! A frozen backbone stored once per experiment, not once per run.
//!
//! A run that trains only a head on a frozen backbone keeps, in its `model.safetensors`, the
//! head's tensors and two metadata entries naming the backbone: its file in the experiment's
//! store of frozen backbones and that file's checksum. The stored file holds the backbone's
//! tensors under the same PyTorch names, so the two joined are the whole classifier, tensor for
//! tensor what a run kept in one file before (`setup::kept_model` joins them for every reader).

use std::collections::HashMap;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::weights::{torch_entries, write_entries, WeightsError};
use super::{Backbone, Classifier};
use crate::durable::tensor_file;

/// Metadata key of a run's model file: the file name of its backbone in the store.
pub(crate) const BACKBONE_FILE: &str = "shared_backbone";
/// Metadata key of a run's model file: the checksum of that file (its own `sha256` entry).
pub(crate) const BACKBONE_SHA256: &str = "shared_backbone_sha256";

/// The store's file name of a frozen `arch` backbone whose values come from `source` (the
/// SHA-256 of the weights file it was loaded from, or the seed of its random initialisation):
/// a hash of what decides every value in it, so runs that share it find it without building it.
pub fn file_name(arch: &str, source: &str) -> String {
    let key = format!(
        "{:x}",
        Sha256::digest(format!("frozen backbone v1\n{arch}\n{source}"))
    );
    format!("{arch}-{}.safetensors", &key[..16])
}

/// Whether a tensor of the classifier's state dict belongs to the head (hidden layers and last
/// layer, all under `<HEAD>.`), not to the backbone.
fn in_head<B: Backbone>(name: &str) -> bool {
    name.strip_prefix(B::HEAD)
        .is_some_and(|rest| rest.starts_with('.'))
}

/// Writes `model`'s backbone to `path` in the store unless a file is already there (runs of
/// one experiment, in one process or several, write the same bytes: the write is atomic and
/// the last one wins), and returns the stored file's checksum.
pub(crate) fn store_backbone<B: Backbone>(
    model: &Classifier<B>,
    path: &Path,
) -> Result<String, WeightsError> {
    if let Some(sha) = stored_checksum(path) {
        return Ok(sha);
    }
    let backbone: Vec<_> = torch_entries(model)
        .into_iter()
        .filter(|(name, _, _)| !in_head::<B>(name))
        .collect();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| WeightsError::Write {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let meta = HashMap::from([("backbone".to_string(), B::NAME.to_string())]);
    write_entries(path, &backbone, meta)?;
    stored_checksum(path).ok_or_else(|| WeightsError::Format {
        path: path.to_path_buf(),
        message: "the backbone just written has no checksum".into(),
    })
}

/// The checksum of a stored backbone, read from its header alone; `None` when there is no
/// readable file.
pub(crate) fn stored_checksum(path: &Path) -> Option<String> {
    tensor_file::read_checksum(path).ok().flatten()
}

/// Writes `model`'s head to `path` (a run's model file), naming the stored backbone `file`
/// whose checksum is `sha256`.
pub(crate) fn save_head<B: Backbone>(
    model: &Classifier<B>,
    path: &Path,
    file: &str,
    sha256: &str,
) -> Result<(), WeightsError> {
    let head: Vec<_> = torch_entries(model)
        .into_iter()
        .filter(|(name, _, _)| in_head::<B>(name))
        .collect();
    let meta = HashMap::from([
        (BACKBONE_FILE.to_string(), file.to_string()),
        (BACKBONE_SHA256.to_string(), sha256.to_string()),
    ]);
    write_entries(path, &head, meta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::durable::tensor_file::TensorFile;
    use crate::models::ResNet18;
    use crate::train::Dev;

    #[test]
    fn head_and_stored_backbone_join_into_the_whole_classifier() {
        let dir = tempfile::tempdir().unwrap();
        let model = Classifier::<ResNet18>::new(&Dev::seed_from_u64(1), 3);
        let whole = dir.path().join("whole.safetensors");
        crate::models::save_torchvision_weights(&model, &whole).unwrap();
        let stored = dir.path().join("store").join(file_name("resnet18", "abc"));
        let sha = store_backbone(&model, &stored).unwrap();
        assert_eq!(
            store_backbone(&model, &stored).unwrap(),
            sha,
            "written once"
        );
        let head = dir.path().join("head.safetensors");
        save_head(&model, &head, "x", &sha).unwrap();

        let head = TensorFile::read(&head).unwrap();
        assert_eq!(head.names(), ["fc.bias", "fc.weight"]);
        assert_eq!(head.metadata()[BACKBONE_SHA256], sha);
        let joined = head.joined(TensorFile::read(&stored).unwrap()).unwrap();
        let whole = TensorFile::read(&whole).unwrap();
        assert_eq!(joined.names(), whole.names());
        for name in whole.names() {
            assert_eq!(
                joined.f32(name).unwrap(),
                whole.f32(name).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn the_file_name_depends_on_the_architecture_and_the_source() {
        let a = file_name("resnet18", "abc");
        assert!(
            a.starts_with("resnet18-") && a.ends_with(".safetensors"),
            "{a}"
        );
        assert_eq!(a, file_name("resnet18", "abc"));
        assert_ne!(a, file_name("resnet34", "abc"));
        assert_ne!(a, file_name("resnet18", "abd"));
    }
}
