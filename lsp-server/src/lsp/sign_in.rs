//! The `tandem.signIn` command: `tandem login`'s device flow run by the language server,
//! for editors whose users never open a terminal. The command answers at once with the
//! code; the address opens in the browser (`window/showDocument`) and the code is shown
//! (`window/showMessage`); a background task polls, saves the key to the credentials
//! file (always the file, never the OS keyring: no unlock prompt can pop up from the
//! editor), which every later request reads, and says who is signed in.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tower_lsp::lsp_types::{MessageType, ShowDocumentParams, Url};
use tower_lsp::Client;

use tandem_shared::MeResponse;

use crate::cloud::{CloudClient, CloudError, DeviceAuthorization};
use crate::credentials::{self, ApiKey, StoreChoice};
use crate::device_login::{self, DeviceLoginError, REQUEST_TIMEOUT};
use crate::status::StatusTracker;

/// What `tandem.signIn` answers: enough for a plugin to show the code its own way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignInStarted {
    pub(crate) user_code: String,
    pub(crate) verification_uri: String,
    pub(crate) verification_uri_complete: Option<String>,
    pub(crate) expires_in: u64,
}

/// The optional argument of `tandem.signIn`.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SignInArgument {
    /// The client shows the code and opens the page itself (a plugin with its own
    /// prompt), so the server neither shows them nor reports a failure to start.
    #[serde(default)]
    pub(crate) client_shows_code: bool,
}

/// Why sign-in could not start.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SignInError {
    #[error("a sign-in is already waiting for its code to be confirmed")]
    InProgress,
    #[error("there is no place to keep credentials on this machine (no config directory)")]
    NoCredentialsFile,
    #[error("cannot start signing in with {server}: {source}")]
    Start {
        server: String,
        #[source]
        source: CloudError,
    },
}

impl SignInError {
    /// The `data.reason` of the error answer, for plugins to act on.
    pub(crate) fn reason(&self) -> &'static str {
        match self {
            SignInError::InProgress => "inProgress",
            SignInError::NoCredentialsFile => "noCredentialsFile",
            SignInError::Start { .. } => "cannotStart",
        }
    }
}

/// Starts the device flow against `server`, shows the code and the address (unless the
/// client does), and leaves a task polling for the key.
pub(crate) async fn start(
    server: &super::TandemServer,
    cloud_server: String,
    client_shows_code: bool,
) -> Result<SignInStarted, SignInError> {
    let path = server
        .credentials_path()
        .ok_or(SignInError::NoCredentialsFile)?;
    if server.signing_in.swap(true, Ordering::SeqCst) {
        return Err(SignInError::InProgress);
    }
    server.status.set_signing_in(true);
    let grant = match server
        .cloud
        .start_device_authorization(&cloud_server, REQUEST_TIMEOUT)
        .await
    {
        Ok(grant) => grant,
        Err(source) => {
            server.signing_in.store(false, Ordering::SeqCst);
            server.status.set_signing_in(false);
            return Err(SignInError::Start {
                server: cloud_server,
                source,
            });
        }
    };
    let started = SignInStarted {
        user_code: grant.user_code.clone(),
        verification_uri: grant.verification_uri.clone(),
        verification_uri_complete: grant.verification_uri_complete.clone(),
        expires_in: grant.expires_in,
    };
    let client = server.client.clone();
    if !client_shows_code {
        show_code(server, &client, &grant).await;
    }
    let poller = Poller {
        client,
        cloud: server.cloud.clone(),
        server: cloud_server,
        path,
        grant,
        signing_in: server.signing_in.clone(),
        status: server.status.clone(),
    };
    tokio::spawn(poller.run());
    Ok(started)
}

/// Shows the code and opens the page when the client can open one.
async fn show_code(server: &super::TandemServer, client: &Client, grant: &DeviceAuthorization) {
    client
        .show_message(
            MessageType::INFO,
            format!(
                "Tandem: to sign in, enter the code {} at {}",
                grant.user_code, grant.verification_uri
            ),
        )
        .await;
    if server.request_config().client.show_document {
        let address = grant
            .verification_uri_complete
            .as_deref()
            .unwrap_or(&grant.verification_uri);
        if let Ok(uri) = Url::parse(address) {
            let shown = client
                .show_document(ShowDocumentParams {
                    uri,
                    external: Some(true),
                    take_focus: Some(true),
                    selection: None,
                })
                .await;
            if !matches!(shown, Ok(true)) {
                tracing::debug!("the client did not open the sign-in page");
            }
        }
    }
}

/// Polls one grant to its end.
struct Poller {
    client: Client,
    cloud: Arc<CloudClient>,
    server: String,
    path: PathBuf,
    grant: DeviceAuthorization,
    signing_in: Arc<std::sync::atomic::AtomicBool>,
    status: Arc<StatusTracker>,
}

impl Poller {
    async fn run(self) {
        let outcome = self.sign_in().await;
        self.signing_in.store(false, Ordering::SeqCst);
        match &outcome {
            Ok((api_key, me)) => {
                self.status.signed_in(&self.server, api_key, &me.user.email);
                self.status.record_me(&self.server, api_key, me);
            }
            Err(_) => self.status.set_signing_in(false),
        }
        let (kind, message) = match outcome.map(|(_, me)| me.user.email) {
            Ok(email) => (
                MessageType::INFO,
                format!("Tandem: signed in to {} as {email}", self.server),
            ),
            Err(reason) => (
                MessageType::WARNING,
                format!("Tandem: sign-in failed: {reason}"),
            ),
        };
        self.client.show_message(kind, message).await;
    }

    /// The new key and what `/v1/me` says about it, once the key is saved.
    async fn sign_in(&self) -> Result<(ApiKey, MeResponse), DeviceLoginError> {
        let on_unreachable =
            |reason: &str| tracing::warn!(%reason, "sign-in poll failed; still waiting");
        let key =
            device_login::wait_for_key(&self.cloud, &self.server, &self.grant, on_unreachable)
                .await?;
        // Always the file, which needs no keyring prompt while the user is in the editor
        // (`tandem login` is the way to keep the key in the OS keyring).
        let (me, _) = device_login::verify_and_save(
            &self.cloud,
            &self.server,
            key.clone(),
            &self.path,
            StoreChoice::File,
            credentials::OsKeyring::shared(),
        )
        .await?;
        tracing::info!(server = %self.server, "signed in; credentials saved");
        Ok((key, me))
    }
}
