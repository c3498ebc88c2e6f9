//! What identifies a run beyond its spec: the dataset's content and the weights' hash,
//! computed once per sweep.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::data::{fingerprint, DataError, ImageFolder};
use crate::spec::expand;
use crate::spec::RunSpec;

/// Identity inputs that are expensive to compute, shared by the runs of a sweep.
/// What a dataset's identity depends on: root, train and val folders, per-class limits.
type DatasetKey = (PathBuf, String, String, usize, usize);

#[derive(Default)]
pub struct Identities {
    datasets: HashMap<DatasetKey, (ImageFolder, String)>,
    weights: HashMap<PathBuf, String>,
}

impl Identities {
    /// The run's dataset (scanned) and its content fingerprint.
    pub fn dataset(&mut self, spec: &RunSpec) -> Result<(ImageFolder, String), DataError> {
        let d = &spec.dataset;
        let k = (
            d.root.clone(),
            d.train_dir.clone(),
            d.val_dir.clone(),
            d.train_per_class,
            d.val_per_class,
        );
        if let Some(v) = self.datasets.get(&k) {
            return Ok(v.clone());
        }
        let folder = ImageFolder::open(
            &d.root,
            &d.train_dir,
            &d.val_dir,
            d.train_per_class,
            d.val_per_class,
        )?;
        let fp = fingerprint(&folder)?;
        self.datasets.insert(k, (folder.clone(), fp.clone()));
        Ok((folder, fp))
    }

    /// SHA-256 of the pretrained weights file, if the run has one.
    pub fn weights(&mut self, spec: &RunSpec) -> Result<Option<String>, DataError> {
        let Some(path) = &spec.backbone.weights else {
            return Ok(None);
        };
        if let Some(h) = self.weights.get(path) {
            return Ok(Some(h.clone()));
        }
        let bytes = std::fs::read(path).map_err(|source| DataError::Io {
            path: path.clone(),
            source,
        })?;
        use sha2::Digest;
        let h = crate::data::hex_digest(&sha2::Sha256::digest(&bytes));
        self.weights.insert(path.clone(), h.clone());
        Ok(Some(h))
    }

    /// The run id: a hash of the resolved spec, the dataset's content and the weights' hash.
    pub fn run_id(&mut self, spec: &RunSpec) -> Result<String, DataError> {
        let (_, fp) = self.dataset(spec)?;
        let wh = self.weights(spec)?.unwrap_or_default();
        Ok(expand::run_id(spec, &format!("dataset={fp}\nweights={wh}")))
    }
}
