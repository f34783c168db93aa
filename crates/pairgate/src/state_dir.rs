//! The state directory is the gateway's alone: 0700, every file in it 0600.
//!
//! It holds the journal (mutation bodies, some sealed), the session store
//! (sessions, sealed passwords) and the keys that seal them. Nothing in it is
//! anyone else's business, so:
//! - the gateway sets its umask to 0o077 when it starts ([`restrict_umask`]),
//!   before it opens anything: whatever it or SQLite creates (`-wal`, `-shm`)
//!   is then private from creation;
//! - the directory is created 0700 ([`ensure_private_dir`]), and an existing one
//!   with a wider mode is tightened (and said so in the log);
//! - files a gateway made before this rule existed are tightened to 0600 on
//!   start ([`tighten_files`]) — except key files, which the sealer refuses
//!   rather than tightens (others may already have read a readable key).

use std::fs::{self, DirBuilder};
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

/// Sets the process umask to 0o077 (files 0600, directories 0700 at most) and
/// returns the previous one. Process-wide: the gateway calls it once at start.
pub fn restrict_umask() -> u32 {
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077)).as_raw_mode()
}

/// Creates `dir` (and missing parents) with mode 0700; if it exists with a
/// wider mode, makes it 0700 and logs a warning.
pub fn ensure_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = fs::metadata(dir)?.permissions().mode() & 0o777;
    if mode != 0o700 {
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
        tracing::warn!(dir = %dir.display(), "the state directory was {mode:04o}; made it 0700 (only the gateway's user may enter it)");
    }
    Ok(())
}

/// Makes the regular files named `names` in `dir` 0600 where they are wider,
/// logging each; files that do not exist are skipped.
pub fn tighten_files(dir: &Path, names: &[&str]) -> io::Result<()> {
    for name in names {
        let path = dir.join(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !meta.is_file() {
            continue;
        }
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))?;
            tracing::warn!(file = %path.display(), "was {mode:04o}; made it 0600");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).map(|m| m.permissions().mode() & 0o777).unwrap_or(0)
    }

    #[test]
    fn creates_0700_and_tightens_what_is_wider() {
        let tmp = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dir = tmp.path().join("a/b/state");
        ensure_private_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&dir), 0o700);
        let _ = fs::set_permissions(&dir, fs::Permissions::from_mode(0o755));
        ensure_private_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&dir), 0o700);

        let wide = dir.join("journal.sqlite");
        let _ = fs::write(&wide, b"x");
        let _ = fs::set_permissions(&wide, fs::Permissions::from_mode(0o644));
        let other = dir.join("other");
        let _ = fs::write(&other, b"x");
        let _ = fs::set_permissions(&other, fs::Permissions::from_mode(0o644));
        tighten_files(&dir, &["journal.sqlite", "missing"]).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(mode(&wide), 0o600);
        assert_eq!(mode(&other), 0o644, "only the named files");
    }
}
