//! Which files are never sent to the cloud: built-in defaults plus the workspace's `.tandemignore`.
//!
//! Rules use gitignore syntax and git's semantics, matched by the `ignore` crate (the matcher
//! ripgrep uses): a pattern without a slash matches a name at any depth, a leading or middle
//! slash anchors it to the workspace root, a trailing slash matches directories only, `**`
//! spans directories, and `!` re-includes. As in git, a file inside an excluded directory
//! stays excluded whatever a later `!` says about the file itself.
//!
//! The defaults come first and the user's lines after them, so an empty or missing
//! `.tandemignore` keeps every default, while an explicit `!.env.example` can deliberately
//! re-include a template file.

use std::path::{Component, Path, PathBuf};
use std::time::SystemTime;

use ignore::gitignore::{Gitignore, GitignoreBuilder};

/// The name of the per-workspace rules file, read from the workspace root only.
pub(crate) const IGNORE_FILE_NAME: &str = ".tandemignore";

/// Files that hold credentials by convention, excluded in every workspace.
///
/// Each line says why it is here; `docs/PRIVACY.md` repeats the list for users.
pub(crate) const DEFAULT_RULES: &[&str] = &[
    // dotenv files and their per-environment variants (`.env.local`, `.env.production`).
    ".env",
    ".env.*",
    // Private keys and certificates bundled with them.
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "*.ppk",
    "*.keystore",
    "*.jks",
    "*.asc",
    "*.gpg",
    // SSH private keys (and their `.pub` halves, which are harmless but never useful context).
    "id_rsa*",
    "id_dsa*",
    "id_ecdsa*",
    "id_ed25519*",
    // Package-manager and network credentials.
    ".npmrc",
    ".yarnrc.yml",
    ".pypirc",
    ".netrc",
    "_netrc",
    ".pgpass",
    ".git-credentials",
    ".htpasswd",
    // Cloud CLI credentials.
    "credentials",
    "credentials.json",
    "credentials.xml",
    "**/.aws/credentials",
    "**/.aws/config",
    "**/.docker/config.json",
    "**/.kube/config",
    "kubeconfig",
    "service-account*.json",
    // Infrastructure variables and state, which embed secrets in clear text.
    "*.tfvars",
    "*.tfvars.json",
    "*.tfstate",
    "*.tfstate.backup",
    // Files named for what they hold.
    "secrets.*",
    "*.secret",
    "*.secrets",
];

/// What an editor's file may be checked against before any of it leaves the machine.
///
/// Matching is pure string work on the path, with no file-system access, so it is cheap to
/// call per request; [`ExclusionRules::refresh_if_changed`] costs one `stat`.
pub(crate) struct ExclusionRules {
    workspace_root: Option<PathBuf>,
    matcher: Gitignore,
    /// The `.tandemignore` as last read, to notice edits without a file watcher.
    ignore_file_stamp: Option<FileStamp>,
}

/// Enough of a file's metadata to notice that it changed: the modification time alone can
/// repeat within a coarse timestamp tick, so the length is compared too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
}

impl ExclusionRules {
    /// Builds the rules for a workspace: the defaults, then `<root>/.tandemignore` if present.
    ///
    /// Without a root (a single file opened outside any folder) only the defaults apply.
    /// Unreadable files and invalid lines are logged and skipped, never fatal: a broken
    /// `.tandemignore` must not stop completions, and the defaults always stay in force.
    pub(crate) fn load(workspace_root: Option<&Path>) -> ExclusionRules {
        let workspace_root = workspace_root.map(normalize);
        let ignore_file_stamp = workspace_root
            .as_deref()
            .and_then(|root| stamp(&root.join(IGNORE_FILE_NAME)));
        let matcher = build_matcher(workspace_root.as_deref(), ignore_file_stamp.is_some());
        ExclusionRules {
            workspace_root,
            matcher,
            ignore_file_stamp,
        }
    }

    /// Whether nothing of `path` may be sent, neither as the document nor as a snippet.
    ///
    /// `path` may be absolute (inside or outside the workspace) or relative to the workspace
    /// root. Paths outside the workspace are matched as if rooted at the file-system root, so
    /// the defaults and the user's unanchored patterns (`*.secret`) still apply to them while
    /// anchored ones (`/config/prod.yml`) cannot match by accident. Paths are compared as
    /// written: symbolic links are not resolved, which would cost a system call per request.
    pub(crate) fn is_excluded(&self, path: &Path) -> bool {
        let relative = self.relative_path(path);
        let mut components = relative.components().peekable();
        let mut prefix = PathBuf::new();
        while let Some(component) = components.next() {
            prefix.push(component);
            let is_last = components.peek().is_none();
            // Each directory on the way is checked first, as git does: once a directory is
            // excluded nothing below it can be re-included.
            if self.matcher.matched(&prefix, !is_last).is_ignore() {
                return true;
            }
        }
        false
    }

    /// Re-reads `.tandemignore` if it appeared, disappeared or changed since it was last read.
    ///
    /// Returns whether the rules were rebuilt. Call it before a request, or when the editor
    /// reports that the file was saved; an unchanged file costs one `stat`.
    pub(crate) fn refresh_if_changed(&mut self) -> bool {
        if !self.is_stale() {
            return false;
        }
        let fresh = ExclusionRules::load(self.workspace_root.as_deref());
        *self = fresh;
        true
    }

    /// Whether `.tandemignore` changed since it was read, without rebuilding anything, so a
    /// caller holding the rules behind a lock can check under a read lock first.
    pub(crate) fn is_stale(&self) -> bool {
        let Some(root) = &self.workspace_root else {
            return false;
        };
        stamp(&root.join(IGNORE_FILE_NAME)) != self.ignore_file_stamp
    }

    /// `path` relative to the workspace root, without `.`, `..` or a root component.
    fn relative_path(&self, path: &Path) -> PathBuf {
        let path = normalize(path);
        if path.has_root() {
            if let Some(root) = &self.workspace_root {
                if let Ok(inside) = path.strip_prefix(root) {
                    return inside.to_path_buf();
                }
            }
        }
        path.components()
            .filter(|component| matches!(component, Component::Normal(_)))
            .collect()
    }
}

impl std::fmt::Debug for ExclusionRules {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("ExclusionRules")
            .field("workspace_root", &self.workspace_root)
            .field("rules", &self.matcher.len())
            .finish()
    }
}

fn build_matcher(workspace_root: Option<&Path>, has_ignore_file: bool) -> Gitignore {
    // The matcher sees only relative paths (see `relative_path`), so its own root is empty:
    // the crate strips a root textually, which must never eat part of a relative path.
    let mut builder = GitignoreBuilder::new("");
    // Case-insensitive where the usual file systems are, so `.ENV` is `.env` there.
    if let Err(error) = builder.case_insensitive(cfg!(any(windows, target_os = "macos"))) {
        tracing::warn!(%error, "cannot make exclusion rules case-insensitive");
    }
    for rule in DEFAULT_RULES {
        if let Err(error) = builder.add_line(None, rule) {
            // Only reachable if a default above is mistyped; the test suite builds them all.
            tracing::warn!(%error, rule, "invalid built-in exclusion rule");
        }
    }
    if let (Some(root), true) = (workspace_root, has_ignore_file) {
        let file = root.join(IGNORE_FILE_NAME);
        match std::fs::read(&file) {
            Ok(bytes) => add_user_rules(&mut builder, &file, &String::from_utf8_lossy(&bytes)),
            Err(error) => {
                tracing::warn!(%error, file = %file.display(), "cannot read exclusion rules")
            }
        }
    }
    match builder.build() {
        Ok(matcher) => matcher,
        Err(error) => {
            // Every line was validated as it was added, so this means a bug in the crate;
            // keep the defaults rather than excluding nothing.
            tracing::warn!(%error, "cannot build exclusion rules; using the defaults only");
            defaults_only()
        }
    }
}

fn add_user_rules(builder: &mut GitignoreBuilder, file: &Path, contents: &str) {
    for (index, line) in contents.lines().enumerate() {
        // A line that does not compile (e.g. `[z-a]`) is skipped alone: one typo must not
        // drop the rules around it.
        if let Err(error) = builder.add_line(Some(file.to_path_buf()), line) {
            tracing::warn!(
                %error,
                file = %file.display(),
                line = index + 1,
                "skipping invalid exclusion rule",
            );
        }
    }
}

fn defaults_only() -> Gitignore {
    let mut builder = GitignoreBuilder::new("");
    for rule in DEFAULT_RULES {
        // Errors were logged when the full set was built.
        let _ = builder.add_line(None, rule);
    }
    builder.build().unwrap_or_else(|_| Gitignore::empty())
}

fn stamp(file: &Path) -> Option<FileStamp> {
    let metadata = std::fs::metadata(file).ok()?;
    Some(FileStamp {
        modified: metadata.modified().ok(),
        len: metadata.len(),
    })
}

/// Removes `.` components and resolves `..` lexically, so `/ws/./src/../.env` and
/// `/ws/.env` compare equal without touching the file system.
fn normalize(path: &Path) -> PathBuf {
    let mut normalized = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                // Popping past the root or the start of a relative path keeps what is left;
                // the leaf name, which the defaults match, survives either way.
                normalized.pop();
            }
            other => normalized.push(other),
        }
    }
    normalized
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::time::Duration;

    /// A workspace in a temporary directory with the given `.tandemignore` (none if `None`).
    fn workspace(ignore_file: Option<&str>) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temporary directory");
        if let Some(contents) = ignore_file {
            fs::write(dir.path().join(IGNORE_FILE_NAME), contents).expect("write .tandemignore");
        }
        dir
    }

    /// Checks each `(relative path, excluded?)` both as given and as an absolute path.
    #[track_caller]
    fn check(ignore_file: Option<&str>, expectations: &[(&str, bool)]) {
        let dir = workspace(ignore_file);
        let rules = ExclusionRules::load(Some(dir.path()));
        for (path, expected) in expectations {
            assert_eq!(
                rules.is_excluded(Path::new(path)),
                *expected,
                "relative path {path:?}"
            );
            assert_eq!(
                rules.is_excluded(&dir.path().join(path)),
                *expected,
                "absolute path {path:?}"
            );
        }
    }

    #[test]
    fn defaults_apply_without_a_file() {
        check(
            None,
            &[
                (".env", true),
                (".env.local", true),
                ("services/api/.env.production", true),
                ("certs/server.pem", true),
                ("tls/server.key", true),
                ("deploy/id_rsa", true),
                ("deploy/id_ed25519.pub", true),
                ("store.p12", true),
                ("android/app/release.keystore", true),
                (".npmrc", true),
                (".pypirc", true),
                ("home/.netrc", true),
                (".git-credentials", true),
                ("credentials", true),
                ("config/credentials.json", true),
                ("home/user/.aws/credentials", true),
                (".aws/credentials", true),
                ("infra/prod.tfvars", true),
                ("config/secrets.yaml", true),
                ("ops/.kube/config", true),
                // Ordinary source files stay available as context.
                ("src/main.rs", false),
                ("src/env.rs", false),
                ("src/environment.py", false),
                ("src/keys.rs", false),
                ("src/credentials_form.tsx", false),
                ("docs/secrets-management.md", false),
                ("config/settings.py", false),
                ("keyboard.key.rs", false),
                ("README.md", false),
            ],
        );
    }

    #[test]
    fn an_empty_file_keeps_the_defaults() {
        check(
            Some(""),
            &[
                (".env", true),
                ("a/b/server.pem", true),
                ("src/lib.rs", false),
            ],
        );
    }

    #[test]
    fn user_rules_with_negation_directories_and_double_star() {
        let rules = "\
# Generated and vendored code is noise; fixtures hold customer data.
/generated/
vendor/
**/fixtures/**/*.json
*.sql
!schema.sql
# A template without secrets may be sent.
!.env.example
# Git: a file inside an excluded directory cannot be re-included.
!vendor/allowed.rs
";
        check(
            Some(rules),
            &[
                ("generated/api.rs", true),
                ("src/generated/api.rs", false),
                ("vendor/lib.rs", true),
                ("third_party/vendor/lib.rs", true),
                ("vendor/allowed.rs", true),
                ("tests/fixtures/users.json", true),
                ("tests/fixtures/nested/orders.json", true),
                ("tests/fixtures/users.yaml", false),
                ("db/dump.sql", true),
                ("db/schema.sql", false),
                (".env.example", false),
                (".env", true),
                (".env.local", true),
                ("src/main.rs", false),
            ],
        );
    }

    #[test]
    fn invalid_lines_are_skipped_and_the_rest_apply() {
        check(
            Some("*.log\n[z-a].txt\nprivate/\n"),
            &[
                ("app.log", true),
                ("private/notes.md", true),
                (".env", true),
                ("z.txt", false),
            ],
        );
    }

    #[test]
    fn crlf_lines_and_comments() {
        check(
            Some("# comment\r\n*.dump\r\n\r\n!keep.dump\r\n"),
            &[("a.dump", true), ("keep.dump", false), ("# comment", false)],
        );
    }

    #[test]
    fn paths_outside_the_workspace_get_the_defaults_and_unanchored_rules() {
        let dir = workspace(Some("*.secret-notes\n/config/prod.yml\n"));
        let rules = ExclusionRules::load(Some(dir.path()));
        let outside = tempfile::tempdir().expect("temporary directory");
        assert!(rules.is_excluded(&outside.path().join(".ssh/id_rsa")));
        assert!(rules.is_excluded(&outside.path().join(".aws/credentials")));
        assert!(rules.is_excluded(&outside.path().join("a.secret-notes")));
        assert!(!rules.is_excluded(&outside.path().join("config/prod.yml")));
        assert!(!rules.is_excluded(&outside.path().join("src/main.rs")));
        assert!(rules.is_excluded(&dir.path().join("config/prod.yml")));
    }

    #[test]
    fn no_workspace_root_means_defaults_only() {
        let rules = ExclusionRules::load(None);
        assert!(rules.is_excluded(Path::new("/home/me/project/.env")));
        assert!(rules.is_excluded(Path::new("id_rsa")));
        assert!(!rules.is_excluded(Path::new("/home/me/project/main.go")));
        assert!(!rules.is_stale());
    }

    #[test]
    fn dot_and_dot_dot_components_are_resolved() {
        let dir = workspace(Some("/private/\n"));
        let rules = ExclusionRules::load(Some(dir.path()));
        assert!(rules.is_excluded(&dir.path().join("src/../private/a.rs")));
        assert!(rules.is_excluded(&dir.path().join("./private/./a.rs")));
        assert!(rules.is_excluded(Path::new("./private/a.rs")));
        assert!(!rules.is_excluded(&dir.path().join("private/../src/a.rs")));
    }

    #[test]
    fn editing_the_file_takes_effect_after_refresh() {
        let dir = workspace(Some("*.log\n"));
        let file = dir.path().join(IGNORE_FILE_NAME);
        let mut rules = ExclusionRules::load(Some(dir.path()));
        assert!(rules.is_excluded(Path::new("app.log")));
        assert!(!rules.is_excluded(Path::new("notes.txt")));
        assert!(!rules.refresh_if_changed(), "nothing changed yet");

        // Same length, so only the modification time tells the versions apart; it is set
        // explicitly because a fast test can rewrite the file within one timestamp tick.
        fs::write(&file, "*.txt\n").expect("rewrite .tandemignore");
        let later = SystemTime::now() + Duration::from_secs(5);
        fs::File::options()
            .write(true)
            .open(&file)
            .and_then(|handle| handle.set_modified(later))
            .expect("set modification time");
        assert!(rules.is_stale());
        assert!(rules.refresh_if_changed());
        assert!(!rules.is_excluded(Path::new("app.log")));
        assert!(rules.is_excluded(Path::new("notes.txt")));
        assert!(!rules.refresh_if_changed());

        // Deleting the file falls back to the defaults; creating it again is noticed too.
        fs::remove_file(&file).expect("remove .tandemignore");
        assert!(rules.refresh_if_changed());
        assert!(!rules.is_excluded(Path::new("notes.txt")));
        assert!(rules.is_excluded(Path::new(".env")));
        fs::write(&file, "notes.txt\n").expect("recreate .tandemignore");
        assert!(rules.refresh_if_changed());
        assert!(rules.is_excluded(Path::new("notes.txt")));
    }

    #[test]
    fn a_file_that_appears_later_is_picked_up() {
        let dir = workspace(None);
        let mut rules = ExclusionRules::load(Some(dir.path()));
        assert!(!rules.is_excluded(Path::new("build/out.js")));
        fs::write(dir.path().join(IGNORE_FILE_NAME), "build/\n").expect("write");
        assert!(rules.refresh_if_changed());
        assert!(rules.is_excluded(Path::new("build/out.js")));
    }

    #[test]
    fn every_default_rule_compiles() {
        for rule in DEFAULT_RULES {
            let mut builder = GitignoreBuilder::new("");
            assert!(builder.add_line(None, rule).is_ok(), "{rule}");
        }
    }
}
