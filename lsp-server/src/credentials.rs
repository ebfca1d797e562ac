//! Where the server URL and API key come from, and the credentials file.
//!
//! Each of the two values is taken from the first source that has it: editor settings
//! (initializationOptions or `workspace/didChangeConfiguration`), then the environment
//! (`TANDEM_SERVER`, `TANDEM_API_KEY`), then `credentials.json` written by
//! `tandem login`. The key is wrapped in [`ApiKey`] so it cannot reach a log by
//! accident: its `Debug` and `Display` print a masked form.
//!
//! `tandem login` keeps the key itself either in that file (mode 0600) or in the OS
//! keyring ([`SecretStore`]; service `tandem`, account the server's URL). In the second
//! case the file still exists, with the server and `"api_key_in_keyring": true` instead
//! of the key, so a running language server notices every login by the file changing,
//! and `status`/`logout` know where to look. Keyring calls can hang (a D-Bus session
//! with no Secret Service behind it, a prompt to unlock the keyring), so each runs on a
//! thread of its own and is waited for a bounded time only.

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Used when no source names a server: the default bind address of `tandem-cloud serve`.
pub const DEFAULT_SERVER: &str = "http://127.0.0.1:8787";

/// Name of the credentials file inside the config directory.
pub const CREDENTIALS_FILE_NAME: &str = "credentials.json";

/// Overrides the config directory (tests and unusual setups).
pub const CONFIG_DIR_ENV: &str = "TANDEM_CONFIG_DIR";
pub const SERVER_ENV: &str = "TANDEM_SERVER";
pub const API_KEY_ENV: &str = "TANDEM_API_KEY";
/// Default of `tandem login --store`.
pub const CREDENTIAL_STORE_ENV: &str = "TANDEM_CREDENTIAL_STORE";

/// Service of the OS keyring entry; its account is the server's URL.
pub const KEYRING_SERVICE: &str = "tandem";
/// An account no entry is ever saved under: looking it up tells whether a keyring
/// answers, without touching (or asking to unlock) anything.
const KEYRING_PROBE_ACCOUNT: &str = "tandem-keyring-probe";
/// How long `--store auto` waits for a keyring to answer before using the file.
pub const KEYRING_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a keyring read, write or removal may take: it may wait for the user to
/// unlock the keyring.
pub const KEYRING_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the language server waits for the keyring before going on without the key
/// (it picks it up once the keyring answers).
const KEYRING_LSP_WAIT: Duration = Duration::from_secs(2);
/// When a keyring read failed, the language server tries again after this long.
const KEYRING_RETRY: Duration = Duration::from_secs(30);

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
    /// `--store keyring`, and no keyring answers.
    #[error("no OS keyring is available ({0}); use `--store file` to keep the key in the credentials file")]
    KeyringUnavailable(KeyringError),
    /// The keyring answered but did not take the key.
    #[error("cannot store the API key in the OS keyring: {0}")]
    KeyringWrite(KeyringError),
    /// The file says the key is in the keyring, which cannot be read.
    #[error("cannot read the API key from the OS keyring ({0}); run `tandem login` again")]
    KeyringRead(KeyringError),
    /// The file says the key is in the keyring, which has no such entry.
    #[error(
        "the API key is not in the OS keyring (service {KEYRING_SERVICE}, account {account}); \
         run `tandem login` again"
    )]
    KeyringEntryMissing { account: String },
}

/// Why the OS keyring did not do what was asked. Never holds a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    /// Nothing answered in time (a D-Bus session without a Secret Service, an unlock
    /// prompt nobody answered).
    #[error("the OS keyring did not answer within {} s", .0.as_secs_f32())]
    Timeout(Duration),
    /// This platform has no keyring the binary can use.
    #[error("this platform has no supported OS keyring")]
    NoKeyring,
    /// The keyring answered with an error.
    #[error("{0}")]
    Failed(String),
}

/// Where `tandem login` puts the key: `auto` is the keyring when one answers, else the
/// file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum StoreChoice {
    #[default]
    Auto,
    Keyring,
    File,
}

/// Where a saved key is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyLocation {
    /// In `credentials.json` itself.
    File,
    /// In the OS keyring; the file names the server and says so.
    Keyring,
}

/// The keyring entry of `account`, for people.
pub fn keyring_entry(account: &str) -> String {
    format!("OS keyring (service {KEYRING_SERVICE}, account {account})")
}

/// A keyring: one secret per account under [`KEYRING_SERVICE`]. Calls may block for
/// long; callers go through the bounded functions of this module.
pub trait SecretStore: Send + Sync {
    /// The secret of `account`; `Ok(None)` when there is none.
    fn get(&self, account: &str) -> Result<Option<String>, KeyringError>;
    /// Saves (or replaces) the secret of `account`.
    fn set(&self, account: &str, secret: &str) -> Result<(), KeyringError>;
    /// Removes the secret of `account`; `Ok(false)` when there was none.
    fn delete(&self, account: &str) -> Result<bool, KeyringError>;
}

/// The platform's keyring through the `keyring` crate: the Secret Service (D-Bus) on
/// Linux and the BSDs, the Keychain on macOS, the Credential Manager on Windows.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsKeyring;

impl OsKeyring {
    /// The shared instance, as a [`SecretStore`].
    pub fn shared() -> Arc<dyn SecretStore> {
        Arc::new(OsKeyring)
    }

    fn entry(account: &str) -> Result<keyring::Entry, KeyringError> {
        // Elsewhere the crate falls back to an in-memory mock: no keyring at all.
        let persistent = matches!(
            keyring::default::default_credential_builder().persistence(),
            keyring::credential::CredentialPersistence::UntilDelete
        );
        if !persistent {
            return Err(KeyringError::NoKeyring);
        }
        keyring::Entry::new(KEYRING_SERVICE, account).map_err(keyring_failure)
    }
}

/// The crate's error, without anything secret (a badly encoded entry is not shown).
fn keyring_failure(error: keyring::Error) -> KeyringError {
    match error {
        keyring::Error::BadEncoding(_) => {
            KeyringError::Failed("the keyring entry is not UTF-8".to_owned())
        }
        keyring::Error::Ambiguous(items) => KeyringError::Failed(format!(
            "{} keyring entries match; remove them and log in again",
            items.len()
        )),
        error => KeyringError::Failed(error.to_string()),
    }
}

impl SecretStore for OsKeyring {
    fn get(&self, account: &str) -> Result<Option<String>, KeyringError> {
        match OsKeyring::entry(account)?.get_password() {
            Ok(secret) => Ok(Some(secret)),
            Err(keyring::Error::NoEntry) => Ok(None),
            Err(error) => Err(keyring_failure(error)),
        }
    }

    fn set(&self, account: &str, secret: &str) -> Result<(), KeyringError> {
        OsKeyring::entry(account)?
            .set_password(secret)
            .map_err(keyring_failure)
    }

    fn delete(&self, account: &str) -> Result<bool, KeyringError> {
        match OsKeyring::entry(account)?.delete_credential() {
            Ok(()) => Ok(true),
            Err(keyring::Error::NoEntry) => Ok(false),
            Err(error) => Err(keyring_failure(error)),
        }
    }
}

/// Runs `op` on a thread of its own (keyring backends may run an async runtime of their
/// own, which cannot start inside ours, and may hang): its result if it comes within
/// `wait`, else the receiver it will arrive on.
fn off_thread<T: Send + 'static>(
    op: impl FnOnce() -> T + Send + 'static,
    wait: Duration,
) -> Result<T, mpsc::Receiver<T>> {
    let (sender, receiver) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("tandem-keyring".to_owned())
        .spawn(move || {
            let _ = sender.send(op());
        });
    if spawned.is_err() {
        return Err(receiver);
    }
    blocking_section(|| match receiver.recv_timeout(wait) {
        Ok(value) => Ok(value),
        Err(_) => Err(receiver),
    })
}

/// Runs `f`, which blocks, letting a multi-threaded Tokio runtime (the language
/// server's) move its other tasks elsewhere meanwhile.
fn blocking_section<T>(f: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// `op` against `store`, given up on after `timeout`.
fn bounded<T: Send + 'static>(
    store: &Arc<dyn SecretStore>,
    timeout: Duration,
    op: impl FnOnce(&dyn SecretStore) -> Result<T, KeyringError> + Send + 'static,
) -> Result<T, KeyringError> {
    let store = store.clone();
    off_thread(move || op(&*store), timeout).unwrap_or(Err(KeyringError::Timeout(timeout)))
}

/// Whether a keyring answers within `timeout`; looks up an entry that never exists.
pub fn probe_keyring(store: &Arc<dyn SecretStore>, timeout: Duration) -> Result<(), KeyringError> {
    bounded(store, timeout, |store| {
        store.get(KEYRING_PROBE_ACCOUNT).map(|_| ())
    })
}

/// The on-disk shape of `credentials.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredCredentials {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    /// The key is in the OS keyring under the server's URL, not in this file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub api_key_in_keyring: bool,
}

impl StoredCredentials {
    /// What the file itself says: the key only when it is in the file.
    pub fn to_partial(&self) -> PartialCredentials {
        PartialCredentials::new(self.server.as_deref(), self.api_key.as_deref())
    }

    /// Where the key is.
    pub fn key_location(&self) -> KeyLocation {
        if self.api_key_in_keyring {
            KeyLocation::Keyring
        } else {
            KeyLocation::File
        }
    }

    /// The keyring account of the key: the server's URL (the default server's when the
    /// file names none).
    pub fn keyring_account(&self) -> String {
        self.server
            .as_deref()
            .and_then(normalize_server)
            .unwrap_or_else(|| DEFAULT_SERVER.to_owned())
    }

    /// The server and the key, fetching the key from `store` when it is kept there.
    /// Blocks up to `timeout` for the keyring.
    pub fn with_key(
        &self,
        store: &Arc<dyn SecretStore>,
        timeout: Duration,
    ) -> Result<PartialCredentials, CredentialsError> {
        if !self.api_key_in_keyring {
            return Ok(self.to_partial());
        }
        let account = self.keyring_account();
        let lookup = account.clone();
        let secret = bounded(store, timeout, move |store| store.get(&lookup))
            .map_err(CredentialsError::KeyringRead)?;
        self.with_keyring_secret(secret, account)
    }

    fn with_keyring_secret(
        &self,
        secret: Option<String>,
        account: String,
    ) -> Result<PartialCredentials, CredentialsError> {
        match secret.as_deref().and_then(ApiKey::new) {
            Some(key) => Ok(PartialCredentials {
                server: self.server.as_deref().and_then(normalize_server),
                api_key: Some(key),
            }),
            None => Err(CredentialsError::KeyringEntryMissing { account }),
        }
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

/// Removes the credentials file, and the OS keyring entry it points to if any
/// ([`delete_login`] with the OS keyring); `Ok(false)` when there was no file.
pub fn delete(path: &Path) -> Result<bool, CredentialsError> {
    let deleted = delete_login(path, &OsKeyring::shared())?;
    if let Some(Err(error)) = &deleted.keyring {
        tracing::warn!(%error, "cannot remove the key from the OS keyring");
    }
    Ok(deleted.file)
}

/// Removes the credentials file only.
fn delete_file(path: &Path) -> Result<bool, CredentialsError> {
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

/// What [`save_login`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedLogin {
    pub location: KeyLocation,
    /// With `auto`: why the keyring was not used.
    pub keyring_skipped: Option<KeyringError>,
}

/// Saves a login: the key in the keyring or the file as `choice` says, and the file
/// (mode 0600) either way — written last, so a running language server that notices it
/// finds the key in place. Nothing is written when `--store keyring` finds no keyring.
/// A key of an earlier login left in the keyring, and no longer pointed to, is removed.
pub fn save_login(
    path: &Path,
    server: &str,
    api_key: &ApiKey,
    choice: StoreChoice,
    store: &Arc<dyn SecretStore>,
) -> Result<SavedLogin, CredentialsError> {
    let previous = load(path).ok().flatten();
    let in_keyring = |store: &Arc<dyn SecretStore>| {
        probe_keyring(store, KEYRING_PROBE_TIMEOUT)?;
        let (account, secret) = (server.to_owned(), api_key.expose().to_owned());
        bounded(store, KEYRING_TIMEOUT, move |store| {
            store.set(&account, &secret)
        })
    };
    let (location, keyring_skipped) = match choice {
        StoreChoice::File => (KeyLocation::File, None),
        StoreChoice::Keyring => {
            probe_keyring(store, KEYRING_PROBE_TIMEOUT)
                .map_err(CredentialsError::KeyringUnavailable)?;
            in_keyring(store).map_err(CredentialsError::KeyringWrite)?;
            (KeyLocation::Keyring, None)
        }
        StoreChoice::Auto => match in_keyring(store) {
            Ok(()) => (KeyLocation::Keyring, None),
            Err(error) => (KeyLocation::File, Some(error)),
        },
    };
    let stored = match location {
        KeyLocation::File => StoredCredentials {
            server: Some(server.to_owned()),
            api_key: Some(api_key.expose().to_owned()),
            api_key_in_keyring: false,
        },
        KeyLocation::Keyring => StoredCredentials {
            server: Some(server.to_owned()),
            api_key: None,
            api_key_in_keyring: true,
        },
    };
    // The keyring entry the old file points to, if any.
    let previous_entry = previous
        .filter(|previous| previous.api_key_in_keyring)
        .map(|previous| previous.keyring_account());
    if let Err(error) = save(path, &stored) {
        // The new entry is of no use without the file, unless the old file (still there)
        // points to it.
        if location == KeyLocation::Keyring && previous_entry.as_deref() != Some(server) {
            forget_in_keyring(store, server);
        }
        return Err(error);
    }
    if let Some(account) = previous_entry {
        if location == KeyLocation::File || account != server {
            forget_in_keyring(store, &account);
        }
    }
    Ok(SavedLogin {
        location,
        keyring_skipped,
    })
}

/// Best-effort removal of a keyring entry nothing points to any more.
fn forget_in_keyring(store: &Arc<dyn SecretStore>, account: &str) {
    let account = account.to_owned();
    if let Err(error) = bounded(store, KEYRING_TIMEOUT, move |store| store.delete(&account)) {
        tracing::warn!(%error, "cannot remove an old key from the OS keyring");
    }
}

/// What [`delete_login`] removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedLogin {
    /// There was a credentials file (now gone).
    pub file: bool,
    /// When the file pointed to the keyring: whether an entry was removed, or why not.
    pub keyring: Option<Result<bool, KeyringError>>,
}

/// Removes a saved login: the keyring entry the file points to, if any, then the file.
/// The file goes even when the keyring entry cannot be removed.
pub fn delete_login(
    path: &Path,
    store: &Arc<dyn SecretStore>,
) -> Result<DeletedLogin, CredentialsError> {
    let previous = load(path).ok().flatten();
    let keyring = previous
        .filter(|previous| previous.api_key_in_keyring)
        .map(|previous| {
            let account = previous.keyring_account();
            bounded(store, KEYRING_TIMEOUT, move |store| store.delete(&account))
        });
    let file = delete_file(path)?;
    Ok(DeletedLogin { file, keyring })
}

/// The credentials file as last read, re-read when its modification time changes, so
/// a `tandem login` in a terminal takes effect in a running language server. When the
/// key is in the OS keyring it is fetched once per change of the file, off the caller's
/// thread: a keyring slower than a moment (waiting to be unlocked) hands the key over on
/// a later call, and one that failed is asked again a little later.
pub struct CredentialsFileCache {
    path: Option<PathBuf>,
    modified: Option<std::time::SystemTime>,
    exists: bool,
    cached: PartialCredentials,
    store: Arc<dyn SecretStore>,
    keyring: Option<KeyringFetch>,
}

/// A keyring read the cache still waits for, or will try again.
enum KeyringFetch {
    Pending {
        stored: StoredCredentials,
        receiver: mpsc::Receiver<Result<Option<String>, KeyringError>>,
    },
    RetryAt {
        stored: StoredCredentials,
        at: Instant,
    },
}

impl fmt::Debug for CredentialsFileCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CredentialsFileCache")
            .field("path", &self.path)
            .field("modified", &self.modified)
            .field("exists", &self.exists)
            .field("cached", &self.cached)
            .field("keyring_pending", &self.keyring.is_some())
            .finish()
    }
}

impl Default for CredentialsFileCache {
    fn default() -> Self {
        CredentialsFileCache::new(None)
    }
}

impl CredentialsFileCache {
    pub fn new(path: Option<PathBuf>) -> Self {
        CredentialsFileCache::with_store(path, OsKeyring::shared())
    }

    /// A cache that fetches keys kept in a keyring from `store`.
    pub fn with_store(path: Option<PathBuf>, store: Arc<dyn SecretStore>) -> Self {
        CredentialsFileCache {
            path,
            modified: None,
            exists: false,
            cached: PartialCredentials::default(),
            store,
            keyring: None,
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
            self.keyring = None;
            self.cached = match load(path) {
                Ok(Some(stored)) if stored.api_key_in_keyring => self.fetch_from_keyring(stored),
                Ok(stored) => stored.map(|stored| stored.to_partial()).unwrap_or_default(),
                Err(error) => {
                    tracing::warn!(%error, "ignoring the credentials file");
                    PartialCredentials::default()
                }
            };
        } else {
            match self.keyring.take() {
                Some(KeyringFetch::Pending { stored, receiver }) => match receiver.try_recv() {
                    Ok(secret) => self.cached = self.fetched(&stored, secret),
                    Err(mpsc::TryRecvError::Empty) => {
                        self.keyring = Some(KeyringFetch::Pending { stored, receiver });
                    }
                    Err(mpsc::TryRecvError::Disconnected) => {
                        let failed = Err(KeyringError::Failed("the keyring read stopped".into()));
                        self.cached = self.fetched(&stored, failed);
                    }
                },
                Some(KeyringFetch::RetryAt { stored, at }) if Instant::now() >= at => {
                    self.cached = self.fetch_from_keyring(stored);
                }
                other => self.keyring = other,
            }
        }
        self.cached.clone()
    }

    /// Reads the key of `stored` from the keyring, waiting a moment at most; until it
    /// comes, the file's server without a key.
    fn fetch_from_keyring(&mut self, stored: StoredCredentials) -> PartialCredentials {
        let store = self.store.clone();
        let account = stored.keyring_account();
        match off_thread(move || store.get(&account), KEYRING_LSP_WAIT) {
            Ok(secret) => self.fetched(&stored, secret),
            Err(receiver) => {
                tracing::info!("waiting for the OS keyring to hand over the API key");
                let partial = stored.to_partial();
                self.keyring = Some(KeyringFetch::Pending { stored, receiver });
                partial
            }
        }
    }

    /// The credentials once the keyring answered.
    fn fetched(
        &mut self,
        stored: &StoredCredentials,
        secret: Result<Option<String>, KeyringError>,
    ) -> PartialCredentials {
        let account = stored.keyring_account();
        let outcome = secret
            .map_err(CredentialsError::KeyringRead)
            .and_then(|secret| stored.with_keyring_secret(secret, account));
        match outcome {
            Ok(partial) => partial,
            Err(error) => {
                tracing::warn!(%error, "no API key from the OS keyring");
                if matches!(error, CredentialsError::KeyringRead(_)) {
                    self.keyring = Some(KeyringFetch::RetryAt {
                        stored: stored.clone(),
                        at: Instant::now() + KEYRING_RETRY,
                    });
                }
                stored.to_partial()
            }
        }
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
            api_key_in_keyring: false,
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
            api_key_in_keyring: false,
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

    /// A keyring in memory.
    #[derive(Default)]
    struct MemoryKeyring(std::sync::Mutex<std::collections::HashMap<String, String>>);

    impl MemoryKeyring {
        fn secret(&self, account: &str) -> Option<String> {
            self.0.lock().unwrap().get(account).cloned()
        }
    }

    impl SecretStore for MemoryKeyring {
        fn get(&self, account: &str) -> Result<Option<String>, KeyringError> {
            Ok(self.secret(account))
        }
        fn set(&self, account: &str, secret: &str) -> Result<(), KeyringError> {
            self.0
                .lock()
                .unwrap()
                .insert(account.to_owned(), secret.to_owned());
            Ok(())
        }
        fn delete(&self, account: &str) -> Result<bool, KeyringError> {
            Ok(self.0.lock().unwrap().remove(account).is_some())
        }
    }

    /// No keyring: every call fails at once, as with no D-Bus session.
    struct NoKeyring;

    impl SecretStore for NoKeyring {
        fn get(&self, _: &str) -> Result<Option<String>, KeyringError> {
            Err(KeyringError::Failed("no D-Bus session".into()))
        }
        fn set(&self, _: &str, _: &str) -> Result<(), KeyringError> {
            Err(KeyringError::Failed("no D-Bus session".into()))
        }
        fn delete(&self, _: &str) -> Result<bool, KeyringError> {
            Err(KeyringError::Failed("no D-Bus session".into()))
        }
    }

    /// A keyring whose reads wait until `release` is sent (or dropped), then answer from
    /// `inner`; writes go through at once.
    struct SlowKeyring {
        inner: MemoryKeyring,
        release: std::sync::Mutex<mpsc::Receiver<()>>,
    }

    impl SecretStore for SlowKeyring {
        fn get(&self, account: &str) -> Result<Option<String>, KeyringError> {
            let _ = self.release.lock().unwrap().recv();
            self.inner.get(account)
        }
        fn set(&self, account: &str, secret: &str) -> Result<(), KeyringError> {
            self.inner.set(account, secret)
        }
        fn delete(&self, account: &str) -> Result<bool, KeyringError> {
            self.inner.delete(account)
        }
    }

    const SERVER: &str = "http://127.0.0.1:9";

    fn key(text: &str) -> ApiKey {
        ApiKey::new(text).unwrap()
    }

    #[test]
    fn a_keyring_marked_file_round_trips_without_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        let stored = StoredCredentials {
            server: Some(SERVER.into()),
            api_key: None,
            api_key_in_keyring: true,
        };
        save(&path, &stored).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"server": SERVER, "api_key_in_keyring": true})
        );
        let loaded = load(&path).unwrap().unwrap();
        assert_eq!(loaded, stored);
        assert_eq!(loaded.key_location(), KeyLocation::Keyring);
        assert_eq!(loaded.keyring_account(), SERVER);
        assert_eq!(loaded.to_partial().api_key, None);
    }

    #[test]
    fn a_file_from_before_the_keyring_still_reads() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        fs::write(
            &path,
            format!(r#"{{"server": "{SERVER}/", "api_key": "tdm_old_file_key_0001"}}"#),
        )
        .unwrap();
        let loaded = load(&path).unwrap().unwrap();
        assert!(!loaded.api_key_in_keyring);
        assert_eq!(loaded.key_location(), KeyLocation::File);
        // The keyring is not asked when the key is in the file.
        let store: Arc<dyn SecretStore> = Arc::new(NoKeyring);
        let partial = loaded.with_key(&store, KEYRING_TIMEOUT).unwrap();
        assert_eq!(partial.server.as_deref(), Some(SERVER));
        assert_eq!(partial.api_key.unwrap().expose(), "tdm_old_file_key_0001");
        // Written back without the marker, as before.
        save(&path, &loaded).unwrap();
        assert!(!fs::read_to_string(&path).unwrap().contains("keyring"));
    }

    #[test]
    fn store_choices_parse_by_name() {
        use clap::ValueEnum as _;
        for (text, choice) in [
            ("auto", StoreChoice::Auto),
            ("keyring", StoreChoice::Keyring),
            ("file", StoreChoice::File),
        ] {
            assert_eq!(StoreChoice::from_str(text, false), Ok(choice));
        }
        assert!(StoreChoice::from_str("vault", false).is_err());
        assert_eq!(StoreChoice::default(), StoreChoice::Auto);
    }

    #[test]
    fn auto_uses_a_keyring_that_answers_and_the_server_reads_from_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        let memory = Arc::new(MemoryKeyring::default());
        let store: Arc<dyn SecretStore> = memory.clone();
        let mut cache = CredentialsFileCache::with_store(Some(path.clone()), store.clone());
        assert_eq!(cache.current(), PartialCredentials::default());

        let saved = save_login(
            &path,
            SERVER,
            &key("tdm_keyring_key_0001"),
            StoreChoice::Auto,
            &store,
        )
        .unwrap();
        assert_eq!(saved.location, KeyLocation::Keyring);
        assert_eq!(saved.keyring_skipped, None);
        assert_eq!(
            memory.secret(SERVER).as_deref(),
            Some("tdm_keyring_key_0001")
        );
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains("tdm_keyring_key_0001"), "{text}");
        let stored = load(&path).unwrap().unwrap();
        assert!(stored.api_key_in_keyring);
        let partial = stored.with_key(&store, KEYRING_TIMEOUT).unwrap();
        assert_eq!(partial.api_key.unwrap().expose(), "tdm_keyring_key_0001");
        // A running server notices the login and takes the key from the keyring.
        let current = cache.current();
        assert_eq!(current.server.as_deref(), Some(SERVER));
        assert_eq!(current.api_key.unwrap().expose(), "tdm_keyring_key_0001");

        // Logging out removes the entry and the file.
        let deleted = delete_login(&path, &store).unwrap();
        assert_eq!(
            deleted,
            DeletedLogin {
                file: true,
                keyring: Some(Ok(true))
            }
        );
        assert_eq!(memory.secret(SERVER), None);
        assert!(!path.exists());
        assert_eq!(cache.current(), PartialCredentials::default());
    }

    #[test]
    fn auto_falls_back_to_the_file_when_no_keyring_answers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        let store: Arc<dyn SecretStore> = Arc::new(NoKeyring);
        let saved = save_login(
            &path,
            SERVER,
            &key("tdm_file_key_000001"),
            StoreChoice::Auto,
            &store,
        )
        .unwrap();
        assert_eq!(saved.location, KeyLocation::File);
        assert!(saved.keyring_skipped.is_some());
        let stored = load(&path).unwrap().unwrap();
        assert_eq!(stored.api_key.as_deref(), Some("tdm_file_key_000001"));
        assert!(!stored.api_key_in_keyring);
        let deleted = delete_login(&path, &store).unwrap();
        assert_eq!(
            deleted,
            DeletedLogin {
                file: true,
                keyring: None
            }
        );
    }

    #[test]
    fn auto_falls_back_to_the_file_when_the_keyring_hangs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        let (_release, receiver) = mpsc::channel();
        let store: Arc<dyn SecretStore> = Arc::new(SlowKeyring {
            inner: MemoryKeyring::default(),
            release: std::sync::Mutex::new(receiver),
        });
        let saved = save_login(
            &path,
            SERVER,
            &key("tdm_file_key_000002"),
            StoreChoice::Auto,
            &store,
        )
        .unwrap();
        assert_eq!(saved.location, KeyLocation::File);
        assert_eq!(
            saved.keyring_skipped,
            Some(KeyringError::Timeout(KEYRING_PROBE_TIMEOUT))
        );
        assert_eq!(
            load(&path).unwrap().unwrap().api_key.as_deref(),
            Some("tdm_file_key_000002")
        );
    }

    #[test]
    fn keyring_without_a_keyring_is_an_error_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        let store: Arc<dyn SecretStore> = Arc::new(NoKeyring);
        let error = save_login(
            &path,
            SERVER,
            &key("tdm_never_saved_0001"),
            StoreChoice::Keyring,
            &store,
        )
        .unwrap_err();
        assert!(matches!(error, CredentialsError::KeyringUnavailable(_)));
        assert!(error.to_string().contains("--store file"), "{error}");
        assert!(!path.exists());
    }

    #[test]
    fn file_choice_never_asks_the_keyring_and_drops_an_old_keyring_entry() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        let memory = Arc::new(MemoryKeyring::default());
        let store: Arc<dyn SecretStore> = memory.clone();
        save_login(
            &path,
            SERVER,
            &key("tdm_in_keyring_0001"),
            StoreChoice::Keyring,
            &store,
        )
        .unwrap();
        assert!(memory.secret(SERVER).is_some());
        let saved = save_login(
            &path,
            SERVER,
            &key("tdm_in_file_000001"),
            StoreChoice::File,
            &store,
        )
        .unwrap();
        assert_eq!(saved.location, KeyLocation::File);
        assert_eq!(memory.secret(SERVER), None, "the old entry is removed");
        assert_eq!(
            load(&path).unwrap().unwrap().api_key.as_deref(),
            Some("tdm_in_file_000001")
        );
        // Logging in to another server moves the entry along.
        save_login(
            &path,
            SERVER,
            &key("tdm_in_keyring_0002"),
            StoreChoice::Keyring,
            &store,
        )
        .unwrap();
        save_login(
            &path,
            "http://127.0.0.1:10",
            &key("tdm_in_keyring_0003"),
            StoreChoice::Keyring,
            &store,
        )
        .unwrap();
        assert_eq!(memory.secret(SERVER), None);
        assert_eq!(
            memory.secret("http://127.0.0.1:10").as_deref(),
            Some("tdm_in_keyring_0003")
        );
    }

    #[test]
    fn a_keyring_that_lost_the_key_says_to_log_in_again() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        let stored = StoredCredentials {
            server: Some(SERVER.into()),
            api_key: None,
            api_key_in_keyring: true,
        };
        save(&path, &stored).unwrap();
        let memory: Arc<dyn SecretStore> = Arc::new(MemoryKeyring::default());
        let error = stored.with_key(&memory, KEYRING_TIMEOUT).unwrap_err();
        assert!(matches!(
            error,
            CredentialsError::KeyringEntryMissing { .. }
        ));
        assert!(
            error.to_string().contains("run `tandem login` again"),
            "{error}"
        );
        let gone: Arc<dyn SecretStore> = Arc::new(NoKeyring);
        let error = stored.with_key(&gone, KEYRING_TIMEOUT).unwrap_err();
        assert!(matches!(error, CredentialsError::KeyringRead(_)));
        assert!(
            error.to_string().contains("run `tandem login` again"),
            "{error}"
        );
        // The language server goes on with the file's server and no key.
        let mut cache = CredentialsFileCache::with_store(Some(path.clone()), gone.clone());
        assert_eq!(cache.current(), stored.to_partial());
        // Logout still removes the file.
        let deleted = delete_login(&path, &gone).unwrap();
        assert!(deleted.file);
        assert!(matches!(deleted.keyring, Some(Err(_))));
        assert!(!path.exists());
    }

    #[test]
    fn the_server_picks_up_a_key_from_a_slow_keyring_later() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        let (release, receiver) = mpsc::channel();
        let slow = Arc::new(SlowKeyring {
            inner: MemoryKeyring::default(),
            release: std::sync::Mutex::new(receiver),
        });
        slow.inner.set(SERVER, "tdm_slow_keyring_001").unwrap();
        let stored = StoredCredentials {
            server: Some(SERVER.into()),
            api_key: None,
            api_key_in_keyring: true,
        };
        save(&path, &stored).unwrap();
        let mut cache = CredentialsFileCache::with_store(Some(path), slow);
        // The keyring does not answer: the server is known, the key not yet.
        assert_eq!(cache.current(), stored.to_partial());
        release.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(key) = cache.current().api_key {
                assert_eq!(key.expose(), "tdm_slow_keyring_001");
                break;
            }
            assert!(Instant::now() < deadline, "the key never arrived");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// On a machine without a Secret Service (no D-Bus session: CI, containers), the OS
    /// keyring does not answer and `auto` keeps the key in the file.
    #[cfg(target_os = "linux")]
    #[test]
    fn without_a_session_bus_auto_uses_the_file() {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_some() {
            // A desktop session: its keyring may answer, and must not be written to.
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        let store = OsKeyring::shared();
        assert!(probe_keyring(&store, KEYRING_PROBE_TIMEOUT).is_err());
        let saved = save_login(
            &path,
            SERVER,
            &key("tdm_no_bus_key_00001"),
            StoreChoice::Auto,
            &store,
        )
        .unwrap();
        assert_eq!(saved.location, KeyLocation::File);
        assert_eq!(
            load(&path).unwrap().unwrap().api_key.as_deref(),
            Some("tdm_no_bus_key_00001")
        );
        let error = save_login(
            &path,
            SERVER,
            &key("tdm_no_bus_key_00002"),
            StoreChoice::Keyring,
            &store,
        )
        .unwrap_err();
        assert!(matches!(error, CredentialsError::KeyringUnavailable(_)));
    }

    /// Against a real Secret Service; only with `TANDEM_TEST_SECRET_SERVICE=1`, run
    /// inside a throwaway D-Bus session with an unlocked keyring daemon, e.g.
    /// `dbus-run-session -- sh -c 'printf pw | gnome-keyring-daemon --unlock
    /// --components=secrets >/dev/null; cargo test ...'`.
    #[test]
    fn the_os_keyring_round_trip() {
        if std::env::var("TANDEM_TEST_SECRET_SERVICE").as_deref() != Ok("1") {
            return;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CREDENTIALS_FILE_NAME);
        let store = OsKeyring::shared();
        probe_keyring(&store, KEYRING_PROBE_TIMEOUT).expect("the Secret Service answers");
        let server = format!("http://127.0.0.1:9/test-{}", std::process::id());
        let mut cache = CredentialsFileCache::new(Some(path.clone()));
        let saved = save_login(
            &path,
            &server,
            &key("tdm_secret_service_01"),
            StoreChoice::Auto,
            &store,
        )
        .unwrap();
        assert_eq!(saved.location, KeyLocation::Keyring, "{saved:?}");
        assert!(!fs::read_to_string(&path).unwrap().contains("tdm_"));
        assert_eq!(
            store.get(&server).unwrap().as_deref(),
            Some("tdm_secret_service_01")
        );
        // Read back as the language server does: from a task of a multi-threaded
        // runtime, through the real keyring (whose client runs a runtime of its own).
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let current = runtime
            .block_on(runtime.spawn(async move { cache.current() }))
            .unwrap();
        assert_eq!(current.server.as_deref(), Some(server.as_str()));
        assert_eq!(current.api_key.unwrap().expose(), "tdm_secret_service_01");
        // A new login replaces the entry.
        save_login(
            &path,
            &server,
            &key("tdm_secret_service_02"),
            StoreChoice::Keyring,
            &store,
        )
        .unwrap();
        let stored = load(&path).unwrap().unwrap();
        let partial = stored.with_key(&store, KEYRING_TIMEOUT).unwrap();
        assert_eq!(partial.api_key.unwrap().expose(), "tdm_secret_service_02");
        // `delete` (what `tandem.signOut` calls) removes the entry and the file.
        assert!(delete(&path).unwrap());
        assert_eq!(store.get(&server).unwrap(), None);
        assert!(!path.exists());
    }
}
