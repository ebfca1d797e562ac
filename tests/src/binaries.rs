//! Finds the built `tandem` and `tandem-cloud` executables next to the running test.
//!
//! `cargo test -p tandem-e2e` does not build the binaries of other packages, so the first
//! look-up in a test process runs `cargo build -p tandem-lsp -p tandem-cloud` once, with the
//! same profile and target directory as the test itself. Building even when the files
//! exist keeps a test run from silently exercising stale binaries; it is a no-op when they
//! are fresh. Set `TANDEM_E2E_SKIP_BUILD=1` to use whatever is already built.

use std::env;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{bail, Context};

/// File name of the language server binary (package `tandem-lsp`).
pub const TANDEM: &str = "tandem";
/// File name of the cloud API binary (package `tandem-cloud`).
pub const TANDEM_CLOUD: &str = "tandem-cloud";

/// Path of the built `tandem` language server.
pub fn tandem() -> anyhow::Result<PathBuf> {
    locate(TANDEM)
}

/// Path of the built `tandem-cloud` API server.
pub fn tandem_cloud() -> anyhow::Result<PathBuf> {
    locate(TANDEM_CLOUD)
}

/// The build runs at most once per test process; every test shares its outcome.
static BUILD_OUTCOME: OnceLock<Result<(), String>> = OnceLock::new();

fn locate(name: &str) -> anyhow::Result<PathBuf> {
    let profile_dir = profile_dir()?;
    let path = profile_dir.join(format!("{name}{}", env::consts::EXE_SUFFIX));
    let skip_build = env::var_os("TANDEM_E2E_SKIP_BUILD").is_some_and(|value| value != "0");
    if !skip_build || !path.is_file() {
        let outcome =
            BUILD_OUTCOME.get_or_init(|| build(&profile_dir).map_err(|e| format!("{e:#}")));
        if let Err(message) = outcome {
            bail!("could not build the binaries under test: {message}");
        }
    }
    if !path.is_file() {
        bail!(
            "`{}` does not exist even after `cargo build -p tandem-lsp -p tandem-cloud`",
            path.display()
        );
    }
    Ok(path)
}

/// `target/<profile>/`: the test executable lives in `target/<profile>/deps/`, an
/// example (the workload benchmark) in `target/<profile>/examples/`.
fn profile_dir() -> anyhow::Result<PathBuf> {
    let exe = env::current_exe().context("cannot find the running test executable")?;
    let mut dir = exe
        .parent()
        .context("the test executable has no parent directory")?;
    if dir
        .file_name()
        .is_some_and(|name| name == "deps" || name == "examples")
    {
        dir = dir
            .parent()
            .context("the deps or examples directory has no parent directory")?;
    }
    Ok(dir.to_path_buf())
}

fn build(profile_dir: &Path) -> anyhow::Result<()> {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let workspace_manifest = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("the e2e crate has no parent directory")?
        .join("Cargo.toml");
    let target_dir = profile_dir
        .parent()
        .context("the profile directory has no parent directory")?;
    let mut command = Command::new(&cargo);
    command
        .arg("build")
        .arg("--manifest-path")
        .arg(&workspace_manifest)
        .args(["-p", "tandem-lsp", "-p", "tandem-cloud"])
        .env("CARGO_TARGET_DIR", target_dir);
    // `cargo test` puts test executables of the `test` and `dev` profiles under `debug/`,
    // and `bench`/`release` under `release/`; any other directory is a custom profile.
    match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => {}
        Some("release") => {
            command.arg("--release");
        }
        Some(custom) => {
            command.args(["--profile", custom]);
        }
    }
    let output = command.output().with_context(|| {
        format!(
            "cannot run `{} build` (set CARGO to the cargo executable)",
            cargo.to_string_lossy()
        )
    })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let tail: Vec<&str> = stderr.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "`cargo build -p tandem-lsp -p tandem-cloud` failed ({}):\n{}",
            output.status,
            tail.join("\n")
        );
    }
    Ok(())
}
