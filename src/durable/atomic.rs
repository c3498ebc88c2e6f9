//! Whole files or none: every file is written to a temporary sibling, synced and renamed into
//! place, so a reader (or a runner killed at any instant) only ever sees complete files.

use std::io::Write;
use std::path::Path;

use polars::prelude::*;

use super::error::StoreError;
use super::exit_guard::ExitGuard;
use super::host::hostname;

/// Writes `text` to `path` atomically.
pub fn write_text(path: &Path, text: &str) -> Result<(), StoreError> {
    write_atomic(path, |f| f.write_all(text.as_bytes()))
}

/// Tables up to this many cells are encoded on the calling thread.
const SERIAL_CELLS: usize = 4096;

/// Writes a table to `path` atomically.
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<(), StoreError> {
    // Encoded in memory first (a run's tables are small): writing straight to the file,
    // polars' writer turns a full disk into "Invalid thrift: transport error".
    let mut bytes = Vec::new();
    // Uncompressed: a run's table is a few kB, which compression hardly shrinks, while
    // every reader of it pays for a decompression context per column (zstd's set-up was a
    // quarter of `compare`'s time over 10,000 runs).
    // Serial below a few thousand cells (a run's tables, rewritten every epoch): polars'
    // parallel column encoding wakes its thread pool for each write, which costs more than
    // encoding a few hundred values (measured: the main job's recording, see performance.md).
    let parallel = df.height() * df.width() > SERIAL_CELLS;
    ParquetWriter::new(&mut bytes)
        .with_compression(ParquetCompression::Uncompressed)
        .set_parallel(parallel)
        .finish(df)
        .map_err(|source| StoreError::Polars {
            path: path.to_path_buf(),
            source,
        })?;
    write_atomic(path, |f| f.write_all(&bytes))
}

/// Writes a file the user named (`report -o`, `preview -o`, an export): its missing folders
/// are created first, as every command does for the files it writes; then [`write_atomic`].
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                e.kind(),
                format!("cannot create its folder {}: {e}", dir.display()),
            ),
        })?;
    }
    write_atomic(path, |f| f.write_all(bytes))
}

/// Writes through a temporary file in the same folder, syncs it, then renames it over `path`.
/// On any error the temporary file is removed and `path` keeps its previous content.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // unique across the hosts sharing the folder (pids repeat from one node to the next)
    let tmp = dir.join(format!(".{name}.tmp{}.{}", std::process::id(), hostname()));
    let _whole = ExitGuard::hold();
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        write(&mut f)?;
        f.sync_all()?;
        crate::fault::point_for("before-rename", &name);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_files_and_cleans_up_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, |f| f.write_all(b"one")).unwrap();
        let err = write_atomic(&p, |f| {
            f.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(err.unwrap_err().to_string().contains("disk full"));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "one");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }
}
