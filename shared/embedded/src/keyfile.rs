//! The token signing key of the embedded default, generated once and kept in the data dir.

use std::io::Write;
use std::path::Path;

use crate::error::EmbeddedError;

const FILE: &str = "token-signing.key";

/// Reads the hex key from the data directory, creating it from `generate` when absent.
///
/// Creation is atomic and first-writer-wins (write a private temp file, then hard-link it
/// into place), so a CLI and a server starting together agree on one key.
pub fn load_or_create(
    data_dir: &Path,
    generate: impl FnOnce() -> String,
) -> Result<String, EmbeddedError> {
    let path = data_dir.join(FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        return Ok(existing.trim().to_owned());
    }
    let tmp = data_dir.join(format!(".{FILE}.{}", std::process::id()));
    let io = |what: &str, e| EmbeddedError::io(format!("{what} {}", path.display()), e);
    {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&tmp).map_err(|e| io("writing", e))?;
        file.write_all(generate().as_bytes())
            .map_err(|e| io("writing", e))?;
        file.sync_all().map_err(|e| io("syncing", e))?;
    }
    let linked = std::fs::hard_link(&tmp, &path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(io("creating", e)),
    }
    std::fs::read_to_string(&path)
        .map(|k| k.trim().to_owned())
        .map_err(|e| io("reading", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_key_is_kept_across_calls() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create(dir.path(), || "aa".repeat(32)).expect("create");
        let second = load_or_create(dir.path(), || "bb".repeat(32)).expect("load");
        assert_eq!(first, "aa".repeat(32));
        assert_eq!(second, first);
    }

    #[cfg(unix)]
    #[test]
    fn the_key_file_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        load_or_create(dir.path(), || "cc".repeat(32)).expect("create");
        let mode = std::fs::metadata(dir.path().join(FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0);
    }
}
