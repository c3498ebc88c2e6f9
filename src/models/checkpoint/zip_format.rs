//! The zip format `torch.save` writes since PyTorch 1.6: `<name>/data.pkl` (the object, whose
//! persistent ids name storages), `<name>/data/<key>` (each storage's raw elements, stored
//! uncompressed), `<name>/byteorder` (since PyTorch 2.1) and `<name>/version`.

use std::collections::HashMap;
use std::io::{Cursor, Read};

use super::pickle::{unpickle, Unpickled};
use super::CheckpointError;

pub(super) struct ZipCheckpoint {
    pub pickle: Unpickled,
    /// Each storage's raw elements, by key.
    storages: HashMap<String, Vec<u8>>,
}

impl ZipCheckpoint {
    pub(super) fn storage(&self, key: &str) -> Result<&[u8], CheckpointError> {
        self.storages.get(key).map(Vec::as_slice).ok_or_else(|| {
            CheckpointError::Container(format!("its storage `data/{key}` is not in the zip"))
        })
    }
}

fn unreadable(why: impl std::fmt::Display) -> CheckpointError {
    CheckpointError::Container(format!(
        "it is a zip file but not a readable PyTorch checkpoint ({why}); a truncated download?"
    ))
}

pub(super) fn open(bytes: &[u8]) -> Result<ZipCheckpoint, CheckpointError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes)).map_err(unreadable)?;
    let names: Vec<String> = archive.file_names().map(str::to_string).collect();
    // the record's folder: `archive/` from torch.save, the file's stem from older writers
    let prefix = names
        .iter()
        .filter_map(|n| n.strip_suffix("data.pkl"))
        .find(|p| p.is_empty() || (p.ends_with('/') && p.matches('/').count() == 1))
        .map(str::to_string)
        .ok_or_else(|| {
            CheckpointError::Container(format!(
                "it is a zip file without the `data.pkl` of a torch.save checkpoint (it holds {})",
                names.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
            ))
        })?;
    let mut read = |name: &str| -> Result<Vec<u8>, CheckpointError> {
        let mut entry = archive.by_name(name).map_err(|e| match e {
            zip::result::ZipError::UnsupportedArchive(why) => CheckpointError::Container(format!(
                "its zip entry {name} is not stored as torch.save stores it ({why}): \
                         a file re-zipped with compression; save the state dict again with \
                         torch.save"
            )),
            other => unreadable(format!("{name}: {other}")),
        })?;
        // the entry's own size, but never more than the file: its header may lie
        let mut out = Vec::with_capacity((entry.size() as usize).min(bytes.len()));
        entry
            .read_to_end(&mut out)
            .map_err(|e| unreadable(format!("{name}: {e}")))?;
        Ok(out)
    };
    if names.iter().any(|n| *n == format!("{prefix}byteorder")) {
        let order = read(&format!("{prefix}byteorder"))?;
        if order.trim_ascii() != b"little" {
            return Err(CheckpointError::Container(format!(
                "its byte order is `{}`; only little-endian checkpoints are read",
                String::from_utf8_lossy(&order)
            )));
        }
    }
    let pkl = read(&format!("{prefix}data.pkl"))?;
    let (pickle, _) = unpickle(&pkl)?;
    let data = format!("{prefix}data/");
    let mut storages = HashMap::new();
    for name in names.iter().filter(|n| n.starts_with(&data)) {
        let key = &name[data.len()..];
        if !key.is_empty() && !key.contains('/') {
            storages.insert(key.to_string(), read(name)?);
        }
    }
    Ok(ZipCheckpoint { pickle, storages })
}
