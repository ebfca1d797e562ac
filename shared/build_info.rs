//! Build metadata for `version` and `--version`: the git commit and the build date, handed
//! to a crate as the compile-time variables `TANDEM_BUILD_COMMIT` and `TANDEM_BUILD_DATE`.
//!
//! Not part of the `tandem-shared` library: the build scripts of `tandem-cloud` and
//! `tandem-lsp` include this file (`#[path]`), so both binaries describe themselves the
//! same way. It needs nothing but `std` and, when there is one, `git`.
//!
//! - Commit: the short hash of `HEAD`, with `-dirty` when tracked files differ from it.
//!   `unknown` outside a git checkout (a source tarball, a Docker context without `.git`),
//!   unless `TANDEM_BUILD_COMMIT` is set in the build's environment, which wins.
//! - Build date: the UTC date (RFC 3339 `full-date`) of `SOURCE_DATE_EPOCH` when it is set,
//!   for reproducible builds (<https://reproducible-builds.org/specs/source-date-epoch/>),
//!   else of the time the build script last ran.
//!
//! The script reruns only when `HEAD`, the branch it points to, the packed refs, the
//! crate's own sources or the two variables change, never on every cargo invocation: a path
//! given to `rerun-if-changed` that does not exist makes cargo rerun every time, so only
//! existing paths are named.

use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

/// Prints the `cargo:` lines; call it from `main` of a build script.
pub fn emit() {
    println!("cargo:rerun-if-env-changed=TANDEM_BUILD_COMMIT");
    println!("cargo:rerun-if-env-changed=SOURCE_DATE_EPOCH");
    // Edits to the crate's sources may change whether the tree is dirty; cargo recompiles
    // the crate for them anyway, so rerunning this script then costs one `git status`.
    // (A change to the build script itself reruns it without being named here.)
    for path in ["Cargo.toml", "src"] {
        rerun_if_exists(path);
    }
    let commit = match std::env::var("TANDEM_BUILD_COMMIT") {
        Ok(commit) if !commit.trim().is_empty() => {
            let commit = commit.trim();
            let printable = commit
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '+'));
            assert!(
                printable,
                "TANDEM_BUILD_COMMIT must be a commit name (letters, digits, `.-_+`), got {commit:?}"
            );
            commit.to_owned()
        }
        _ => git_commit().unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=TANDEM_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=TANDEM_BUILD_DATE={}", build_date());
}

/// The short hash of `HEAD`, `-dirty` appended when tracked files were changed; `None`
/// when this crate is not part of a git checkout or git cannot be run.
fn git_commit() -> Option<String> {
    // A tarball unpacked inside some other repository (a home directory under git) would
    // otherwise report that repository's commit.
    git(&["ls-files", "--error-unmatch", "--", "Cargo.toml"])?;
    for file in ["HEAD", "packed-refs"] {
        rerun_if_exists(&git(&["rev-parse", "--git-path", file])?);
    }
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        rerun_if_exists(&git(&["rev-parse", "--git-path", &branch])?);
    }
    let hash = git(&["rev-parse", "--short", "HEAD"])?;
    let changes = git(&["status", "--porcelain", "--untracked-files=no"])?;
    Some(if changes.is_empty() {
        hash
    } else {
        format!("{hash}-dirty")
    })
}

/// Runs git in the crate's directory; its trimmed output if it succeeded.
fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        // `git status` would otherwise refresh and rewrite the index as a side effect,
        // racing with whatever else runs git in the same checkout.
        .env("GIT_OPTIONAL_LOCKS", "0")
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    Some(String::from_utf8(output.stdout).ok()?.trim().to_owned())
}

fn rerun_if_exists(path: &str) {
    if Path::new(path).exists() {
        println!("cargo:rerun-if-changed={path}");
    }
}

/// `YYYY-MM-DD` of `SOURCE_DATE_EPOCH`, or of now, in UTC.
fn build_date() -> String {
    let seconds = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value
            .trim()
            .parse::<i64>()
            .unwrap_or_else(|_| panic!("SOURCE_DATE_EPOCH must be whole seconds, got {value:?}")),
        Err(_) => SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs() as i64),
    };
    let (year, month, day) = civil_from_days(seconds.div_euclid(86_400));
    format!("{year:04}-{month:02}-{day:02}")
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, <https://howardhinnant.github.io/date_algorithms.html>).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_index + 2) / 5 + 1) as u32;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}
