//! Signing in and out, shared by the terminal (`tandem login`, `tandem logout`) and the
//! language server (`tandem.signIn`, `tandem.signOut`): the client side of the Device
//! Authorization Grant (RFC 8628) — wait for the code to be confirmed, check the issued
//! key and save it (in the OS keyring or the credentials file, see
//! [`credentials::save_login`]) — and revoking a saved key. Each caller shows the code
//! and the outcome its own way.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem_shared::MeResponse;

use crate::cloud::{CloudClient, CloudError, CloudTarget, DeviceAuthorization, DevicePoll};
use crate::credentials::{
    self, ApiKey, CredentialsError, SavedLogin, SecretStore, StoreChoice, StoredCredentials,
};

/// Timeout of each HTTP request of a sign-in.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long revoking a key on sign-out may take: the file goes either way.
const REVOKE_TIMEOUT: Duration = Duration::from_secs(10);
/// What `slow_down` adds between polls (RFC 8628 §3.5).
const SLOW_DOWN: Duration = Duration::from_secs(5);

/// Why no key came of a sign-in.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DeviceLoginError {
    #[error("the code expired before it was confirmed")]
    Expired,
    #[error("the sign-in was declined")]
    Denied,
    #[error("the server issued an empty key")]
    EmptyKey,
    #[error("{server} rejected this API key (unknown or revoked)")]
    Rejected { server: String },
    #[error("cannot verify the key with {server}: {source}")]
    Verify {
        server: String,
        #[source]
        source: CloudError,
    },
    #[error("signing in with {server} failed: {source}")]
    Cloud {
        server: String,
        #[source]
        source: CloudError,
    },
    #[error(transparent)]
    Save(#[from] CredentialsError),
}

/// Why a saved key could not be revoked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RevokeError {
    #[error(transparent)]
    Cloud(#[from] CloudError),
    /// The key is in the OS keyring, which did not hand it over.
    #[error(transparent)]
    Keyring(CredentialsError),
}

/// Polls `server` for the key of `grant` at the interval it asks for, until the code is
/// confirmed, declined or expired. A poll that cannot reach the server is not the end
/// (the user may be in the browser while the network hiccups): `on_unreachable` hears of
/// it and polling goes on until the code expires.
pub(crate) async fn wait_for_key(
    client: &CloudClient,
    server: &str,
    grant: &DeviceAuthorization,
    on_unreachable: impl Fn(&str),
) -> Result<ApiKey, DeviceLoginError> {
    let deadline = Instant::now() + Duration::from_secs(grant.expires_in);
    let mut interval = Duration::from_secs(grant.interval);
    loop {
        tokio::time::sleep(interval).await;
        if Instant::now() > deadline {
            return Err(DeviceLoginError::Expired);
        }
        match client
            .poll_device_token(server, &grant.device_code, REQUEST_TIMEOUT)
            .await
        {
            Ok(DevicePoll::Granted(key)) => {
                return ApiKey::new(&key).ok_or(DeviceLoginError::EmptyKey)
            }
            Ok(DevicePoll::Pending) => {}
            Ok(DevicePoll::SlowDown) => interval += SLOW_DOWN,
            Ok(DevicePoll::Denied) => return Err(DeviceLoginError::Denied),
            Ok(DevicePoll::Expired) => return Err(DeviceLoginError::Expired),
            Err(CloudError::Unreachable { reason, .. }) => on_unreachable(&reason),
            Err(source) => {
                return Err(DeviceLoginError::Cloud {
                    server: server.to_owned(),
                    source,
                })
            }
        }
    }
}

/// Checks `api_key` with `server` (`GET /v1/me`), then saves the login at `path` (the
/// key where `choice` says, in `store` or the file); who the key belongs to, and where
/// the key went.
pub(crate) async fn verify_and_save(
    client: &CloudClient,
    server: &str,
    api_key: ApiKey,
    path: &Path,
    choice: StoreChoice,
    store: Arc<dyn SecretStore>,
) -> Result<(MeResponse, SavedLogin), DeviceLoginError> {
    let target = CloudTarget {
        server: server.to_owned(),
        api_key: api_key.clone(),
        timeout: REQUEST_TIMEOUT,
    };
    let me = client.me(&target).await.map_err(|source| match source {
        CloudError::Unauthorized => DeviceLoginError::Rejected {
            server: server.to_owned(),
        },
        source => DeviceLoginError::Verify {
            server: server.to_owned(),
            source,
        },
    })?;
    // The keyring may block for long; never on a runtime thread.
    let (path, server) = (path.to_owned(), server.to_owned());
    let saved = tokio::task::spawn_blocking(move || {
        credentials::save_login(&path, &server, &api_key, choice, &store)
    })
    .await
    .map_err(|error| {
        CredentialsError::KeyringWrite(credentials::KeyringError::Failed(error.to_string()))
    })??;
    Ok((me, saved))
}

/// Revokes the key saved in `stored` (in the file, or in the OS keyring it points to) on
/// its server (the default server when it names none): the server, and how that went;
/// `None` when no key is saved.
pub(crate) async fn revoke_saved(
    client: &CloudClient,
    stored: &StoredCredentials,
) -> Option<(String, Result<(), RevokeError>)> {
    let server = stored
        .server
        .as_deref()
        .and_then(credentials::normalize_server)
        .unwrap_or_else(|| credentials::DEFAULT_SERVER.to_owned());
    let api_key = if stored.api_key_in_keyring {
        let stored = stored.clone();
        let store = credentials::OsKeyring::shared();
        let fetched = tokio::task::spawn_blocking(move || {
            stored.with_key(&store, credentials::KEYRING_TIMEOUT)
        })
        .await
        .unwrap_or_else(|error| {
            Err(CredentialsError::KeyringRead(
                credentials::KeyringError::Failed(error.to_string()),
            ))
        });
        match fetched {
            Ok(partial) => partial.api_key?,
            Err(error) => return Some((server, Err(RevokeError::Keyring(error)))),
        }
    } else {
        stored.api_key.as_deref().and_then(ApiKey::new)?
    };
    let target = CloudTarget {
        server: server.clone(),
        api_key,
        timeout: REVOKE_TIMEOUT,
    };
    let revoked = client.revoke_current_key(&target).await;
    Some((server, revoked.map_err(RevokeError::from)))
}
