//! Where the workspace's binaries are: next to the running executable.
//!
//! A test or bench executable lives in `target/<profile>/deps/`, the `chaos`
//! binary in `target/<profile>/`; `chassis-sim` and `pairgate` are in
//! `target/<profile>/` in both cases. Nothing is built from here: the caller
//! says how to build.

use std::path::{Path, PathBuf};

/// How the end-to-end tests' binaries are built (the README's test command
/// builds them before it runs the tests).
pub const TEST_BUILD: &str = "cargo build --workspace";

/// The two binaries a campaign runs.
#[derive(Clone, Debug)]
pub struct Bins {
    pub chassis_sim: PathBuf,
    pub pairgate: PathBuf,
}

impl Bins {
    /// Find both binaries beside the current executable (or one folder up,
    /// for a test executable in `deps/`). The error names what is missing
    /// and the command that builds it (`build_hint`).
    pub fn beside_current_exe(build_hint: &str) -> Result<Bins, String> {
        Ok(Bins { chassis_sim: find("chassis-sim", build_hint)?, pairgate: find("pairgate", build_hint)? })
    }
}

/// The workspace binary `name` beside the current executable (or one folder
/// up, for an executable in `deps/`); the error names the folders looked in
/// and `build_hint`, the command that builds it.
pub fn find(name: &str, build_hint: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot tell where this executable is: {e}"))?;
    let dir = exe.parent().ok_or("the executable has no parent folder")?;
    let mut candidates = vec![dir.to_path_buf()];
    if dir.file_name().is_some_and(|n| n == "deps") {
        if let Some(up) = dir.parent() {
            candidates.insert(0, up.to_path_buf());
        }
    }
    candidates
        .iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("`{name}` is missing in {}: run `{build_hint}` first", display_list(&candidates)))
}

/// [`find`] for an end-to-end test: panics (naming the build command) if
/// the binary is missing.
pub fn bin_path(name: &str) -> PathBuf {
    find(name, TEST_BUILD).unwrap_or_else(|e| panic!("{e} (the README's test command builds it before the tests)"))
}

fn display_list(dirs: &[PathBuf]) -> String {
    dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" or ")
}

/// The repository root (the shipped `gateway.toml` lives there).
pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Folder for things a test run leaves for a human (screenshots, logs).
pub fn artifacts_dir() -> PathBuf {
    let dir = repo_root().join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("create test-artifacts");
    dir
}
