//! Where the server URL and API key come from, and the credentials file.
//!
//! Each of the two values is taken from the first source that has it: editor settings
//! (initializationOptions or `workspace/didChangeConfiguration`), then the environment
//! (`TANDEM_SERVER`, `TANDEM_API_KEY`), then `credentials.json` written by
//! `tandem login`. The key is wrapped in [`ApiKey`] so it cannot reach a log by
//! accident: its `Debug` and `Display` print a masked form.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Used when no source names a server: the default bind address of `tandem-cloud serve`.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8787";

/// Name of the credentials file inside the config directory.
pub const CREDENTIALS_FILE_NAME: &str = "credentials.json";

/// Overrides the config directory (tests and unusual setups).
pub const CONFIG_DIR_ENV: &str = "TANDEM_CONFIG_DIR";
pub const SERVER_ENV: &str = "TANDEM_SERVER";
pub const API_KEY_ENV: &str = "TANDEM_API_KEY";

/// An API key. Printing it shows only a masked form.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// Wraps a key; blank strings are no key.
    pub fn new(key: &str) -> Option<ApiKey> {
        let key = key.trim();
        (!key.is_empty()).then(|| ApiKey(key.to_owned()))
    }

    /// The key itself, for the `Authorization` header and the credentials file only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// `tdm_…wxyz`: enough for a person to tell keys apart, useless to an attacker.
    pub fn masked(&self) -> String {
        let chars: Vec<char> = self.0.chars().collect();
        if chars.len() < 12 {
            return "…".to_owned();
        }
        let prefix: String = chars[..4].iter().collect();
        let suffix: String = chars[chars.len() - 4..].iter().collect();
        format!("{prefix}…{suffix}")
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.masked())
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

/// Where a resolved value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Editor settings: initializationOptions or `didChangeConfiguration`.
    EditorSettings,
    /// `TANDEM_SERVER` / `TANDEM_API_KEY`.
    Environment,
    /// The credentials file.
    File,
    /// Nothing named a value; the built-in default applies.
    Default,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::EditorSettings => "editor settings",
            Source::Environment => "environment",
            Source::File => "credentials file",
            Source::Default => "default",
        })
    }
}

/// What one source says; either value may be missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PartialCredentials {
    pub server: Option<String>,
    pub api_key: Option<ApiKey>,
}

impl PartialCredentials {
    pub fn new(server: Option<&str>, api_key: Option<&str>) -> Self {
        PartialCredentials {
            server: server.and_then(normalize_server),
            api_key: api_key.and_then(ApiKey::new),
        }
    }
}

/// Every source, highest priority first.
#[derive(Debug, Clone, Default)]
pub struct CredentialSources {
    pub editor_settings: PartialCredentials,
    pub environment: PartialCredentials,
    pub file: PartialCredentials,
}

/// The values to use, and where each came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub server: String,
    pub server_source: Source,
    pub api_key: Option<ApiKey>,
    pub api_key_source: Source,
}

/// Picks each value from the first source that has it.
pub fn resolve(sources: &CredentialSources) -> Credentials {
    let ordered = [
        (&sources.editor_settings, Source::EditorSettings),
        (&sources.environment, Source::Environment),
        (&sources.file, Source::File),
    ];
    let (server, server_source) = ordered
        .iter()
        .find_map(|(partial, source)| partial.server.clone().map(|server| (server, *source)))
        .unwrap_or_else(|| (DEFAULT_SERVER.to_owned(), Source::Default));
    let (api_key, api_key_source) = ordered
        .iter()
        .find_map(|(partial, source)| partial.api_key.clone().map(|key| (Some(key), *source)))
        .unwrap_or((None, Source::Default));
    Credentials {
        server,
        server_source,
        api_key,
        api_key_source,
    }
}

/// `TANDEM_SERVER` and `TANDEM_API_KEY`; empty values count as unset.
pub fn from_environment() -> PartialCredentials {
    let server = std::env::var(SERVER_ENV).ok();
    let api_key = std::env::var(API_KEY_ENV).ok();
    PartialCredentials::new(server.as_deref(), api_key.as_deref())
}

/// Trims whitespace and trailing slashes so `{server}/v1/...` is well formed.
pub fn normalize_server(server: &str) -> Option<String> {
    let server = server.trim().trim_end_matches('/');
    (!server.is_empty()).then(|| server.to_owned())
}

/// What went wrong with the credentials file.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// Neither `TANDEM_CONFIG_DIR` nor a home directory is available.
    #[error("no config directory: set {CONFIG_DIR_ENV} or HOME")]
    NoConfigDir,
    /// Reading, writing or removing a file failed.
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not the JSON `tandem login` writes.
    #[error("{path} is not a valid credentials file: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// The on-disk shape of `credentials.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
}

impl StoredCredentials {
    pub fn to_partial(&self) -> PartialCredentials {
        PartialCredentials::new(self.server.as_deref(), self.api_key.as_deref())
    }
}

/// The config directory: `TANDEM_CONFIG_DIR` when set and not empty, otherwise the
/// platform's (`~/.config/tandem` on Linux).
pub fn config_dir() -> Result<PathBuf, CredentialsError> {
    config_dir_from(std::env::var_os(CONFIG_DIR_ENV).map(PathBuf::from))
}

fn config_dir_from(override_dir: Option<PathBuf>) -> Result<PathBuf, CredentialsError> {
    match override_dir {
        Some(dir) if !dir.as_os_str().is_empty() => Ok(dir),
        _ => directories::ProjectDirs::from("dev", "tandem", "tandem")
            .map(|dirs| dirs.config_dir().to_path_buf())
            .ok_or(CredentialsError::NoConfigDir),
    }
}

/// Path of `credentials.json` in [`config_dir`].
pub fn credentials_path() -> Result<PathBuf, CredentialsError> {
    Ok(config_dir()?.join(CREDENTIALS_FILE_NAME))
}

/// Reads the credentials file; a missing file is `Ok(None)`.
pub fn load(path: &Path) -> Result<Option<StoredCredentials>, CredentialsError> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CredentialsError::Io {
                action: "cannot read",
                path: path.to_owned(),
                source,
            })
        }
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|source| CredentialsError::Parse {
            path: path.to_owned(),
            source,
        })
}

/// Writes the credentials file readable by its owner only, atomically: a temporary
/// file in the same directory, created with mode 0600 (so the key is never readable by
/// others, not even briefly), then renamed over the old one.
pub fn save(path: &Path, credentials: &StoredCredentials) -> Result<(), CredentialsError> {
    let io_error = |action: &'static str, path: &Path| {
        let path = path.to_owned();
        move |source| CredentialsError::Io {
            action,
            path,
            source,
        }
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    create_private_dir(dir).map_err(io_error("cannot create", dir))?;
    let temporary = dir.join(format!(
        ".{CREDENTIALS_FILE_NAME}.{}.tmp",
        std::process::id()
    ));
    let json =
        serde_json::to_vec_pretty(credentials).map_err(|source| CredentialsError::Parse {
            path: path.to_owned(),
            source,
        })?;
    let write = || -> std::io::Result<()> {
        // A leftover temporary file would keep its old mode bits; start from none.
        let _ = fs::remove_file(&temporary);
        let mut file = open_private(&temporary)?;
        file.write_all(&json)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        fs::rename(&temporary, path)
    };
    write().map_err(|source| {
        let _ = fs::remove_file(&temporary);
        CredentialsError::Io {
            action: "cannot write",
            path: path.to_owned(),
            source,
        }
    })
}

/// Removes the credentials file; `Ok(false)` when there was none.
pub fn delete(path: &Path) -> Result<bool, CredentialsError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(true),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(CredentialsError::Io {
            action: "cannot remove",
            path: path.to_owned(),
            source,
        }),
    }
}

/// The credentials file as last read, re-read when its modification time changes, so
/// a `tandem login` in a terminal takes effect in a running language server.
#[derive(Debug, Default)]
pub struct CredentialsFileCache {
    path: Option<PathBuf>,
    modified: Option<std::time::SystemTime>,
    exists: bool,
    cached: PartialCredentials,
}

impl CredentialsFileCache {
    pub fn new(path: Option<PathBuf>) -> Self {
        CredentialsFileCache {
            path,
            ..Self::default()
        }
    }

    /// Where the file is, if there is a config directory.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The file's credentials; one `stat` per call, a read only when it changed.
    pub fn current(&mut self) -> PartialCredentials {
        let Some(path) = &self.path else {
            return PartialCredentials::default();
        };
        let metadata = fs::metadata(path).ok();
        let exists = metadata.is_some();
        let modified = metadata.and_then(|metadata| metadata.modified().ok());
        if exists != self.exists || modified != self.modified || (exists && modified.is_none()) {
            self.exists = exists;
            self.modified = modified;
            self.cached = match load(path) {
                Ok(stored) => stored.map(|stored| stored.to_partial()).unwrap_or_default(),
                Err(error) => {
                    tracing::warn!(%error, "ignoring the credentials file");
                    PartialCredentials::default()
                }
            };
        }
        self.cached.clone()
    }
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<fs::File> {
    // Windows has no mode bits; the profile directory's ACL keeps the file private.
    fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
}

#[cfg(unix)]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

#[cfg(not(unix))]
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partial(server: Option<&str>, api_key: Option<&str>) -> PartialCredentials {
        PartialCredentials::new(server, api_key)
    }

    #[test]
    fn editor_settings_beat_environment_beat_file() {
        let sources = CredentialSources {
            editor_settings: partial(Some("http://editor"), Some("tdm_editor_key_0000")),
            environment: partial(Some("http://env"), Some("tdm_env_key_000000")),
            file: partial(Some("http://file"), Some("tdm_file_key_00000")),
        };
        let credentials = resolve(&sources);
        assert_eq!(credentials.server, "http://editor");
        assert_eq!(credentials.server_source, Source::EditorSettings);
        assert_eq!(credentials.api_key.unwrap().expose(), "tdm_editor_key_0000");
    }

    #[test]
    fn each_value_comes_from_the_first_source_that_has_it() {
        let sources = CredentialSources {
            editor_settings: partial(None, Some("   ")),
            environment: partial(Some("http://env/"), None),
            file: partial(Some("http://file"), Some("tdm_file_key_00000")),
        };
        let credentials = resolve(&sources);
        assert_eq!(credentials.server, "http://env", "trailing slash trimmed");
        assert_eq!(credentials.server_source, Source::Environment);
        assert_eq!(credentials.api_key.unwrap().expose(), "tdm_file_key_00000");
        assert_eq!(credentials.api_key_source, Source::File);
    }

    #[test]
    fn nothing_anywhere_means_default_server_and_no_key() {
        let credentials = resolve(&CredentialSources::default());
        assert_eq!(credentials.server, DEFAULT_SERVER);
        assert_eq!(credentials.server_source, Source::Default);
        assert_eq!(credentials.api_key, None);
    }

    #[test]
    fn keys_never_print_in_full() {
        let key = ApiKey::new("tdm_0123456789abcdefSECRET").unwrap();
        assert_eq!(format!("{key}"), "tdm_…CRET");
        assert_eq!(format!("{key:?}"), "ApiKey(tdm_…CRET)");
        assert!(!format!(
            "{:?}",
            PartialCredentials {
                server: None,
                api_key: Some(key)
            }
        )
        .contains("0123"));
        assert_eq!(ApiKey::new("short").unwrap().masked(), "…");
    }

    #[test]
    fn config_dir_override_wins_unless_empty() {
        assert_eq!(
            config_dir_from(Some(PathBuf::from("/custom"))).unwrap(),
            PathBuf::from("/custom")
        );
        // An empty override falls back to the platform directory (when there is a home).
        if let Ok(dir) = config_dir_from(Some(PathBuf::new())) {
            assert!(dir.ends_with("tandem"), "{}", dir.display());
        }
    }

    #[test]
    fn save_load_delete_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested").join(CREDENTIALS_FILE_NAME);
        assert_eq!(load(&path).unwrap(), None);
        let stored = StoredCredentials {
            server: Some("http://127.0.0.1:9".into()),
            api_key: Some("tdm_abc".into()),
        };
        save(&path, &stored).unwrap();
        assert_eq!(load(&path).unwrap(), Some(stored.clone()));
        // Overwriting keeps working and leaves no temporary files behind.
        save(&path, &stored).unwrap();
        let names: Vec<_> = fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(CREDENTIALS_FILE_NAME)]);
        assert!(delete(&path).unwrap());
        assert!(!delete(&path).unwrap());
    }

    #[cfg(unix)]
    #[test]
    fn credentials_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config").join(CREDENTIALS_FILE_NAME);
        save(&path, &StoredCredentials::default()).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let dir_mode = fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(dir_mode & 0o777, 0o700);
    }

    #[test]
    fn the_file_cache_notices_login_and_logout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        let mut cache = CredentialsFileCache::new(Some(path.clone()));
        assert_eq!(cache.current(), PartialCredentials::default());
        let stored = StoredCredentials {
            server: None,
            api_key: Some("tdm_cached_key_0001".into()),
        };
        save(&path, &stored).unwrap();
        assert_eq!(cache.current(), stored.to_partial());
        delete(&path).unwrap();
        assert_eq!(cache.current(), PartialCredentials::default());
    }

    #[test]
    fn a_corrupt_file_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        fs::write(&path, "not json").unwrap();
        let error = load(&path).unwrap_err().to_string();
        assert!(error.contains("is not a valid credentials file"), "{error}");
    }
}
