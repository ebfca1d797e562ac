//! `tandem logout`: revoke the saved key on the server, then delete the credentials
//! file. The file goes even when the server cannot be reached (the user asked to be
//! logged out of this machine); they are told the key may still be valid.

use std::process::ExitCode;
use std::time::Duration;

use crate::cloud::{CloudClient, CloudError, CloudTarget};
use crate::credentials::{self, ApiKey};

pub(super) fn run() -> anyhow::Result<ExitCode> {
    let path = credentials::credentials_path()?;
    let saved = credentials::load(&path).ok().flatten().unwrap_or_default();
    let server = saved
        .server
        .as_deref()
        .and_then(credentials::normalize_server)
        .unwrap_or_else(|| credentials::DEFAULT_SERVER.to_owned());
    if let Some(api_key) = saved.api_key.as_deref().and_then(ApiKey::new) {
        let target = CloudTarget {
            server: server.clone(),
            api_key,
            timeout: Duration::from_secs(10),
        };
        let client = CloudClient::new()?;
        match super::block_on(client.revoke_current_key(&target))? {
            Ok(()) => println!("Revoked the key on {server}."),
            // Already revoked, or never valid there: nothing left to revoke.
            Err(CloudError::Unauthorized) => {
                println!("The key was no longer valid on {server}.");
            }
            Err(error) => eprintln!(
                "warning: could not revoke the key on {server} ({error}); it stays valid \
                 until revoked there (`tandem-cloud keys revoke`, or DELETE /v1/keys/ID)"
            ),
        }
    }
    if credentials::delete(&path)? {
        println!("Logged out: removed {}", path.display());
    } else {
        println!("Not logged in: no credentials at {}", path.display());
    }
    if std::env::var_os(credentials::API_KEY_ENV).is_some() {
        eprintln!(
            "note: {} is still set and will keep being used",
            credentials::API_KEY_ENV
        );
    }
    Ok(ExitCode::SUCCESS)
}
