//! `tandem logout`: revoke the saved key on the server, then delete it locally: the OS
//! keyring entry (when the key is kept there) and the credentials file. Both go even
//! when the server cannot be reached (the user asked to be logged out of this machine);
//! they are told the key may still be valid.

use std::process::ExitCode;

use crate::cloud::{CloudClient, CloudError};
use crate::credentials;
use crate::device_login::{self, RevokeError};

pub(super) fn run() -> anyhow::Result<ExitCode> {
    let path = credentials::credentials_path()?;
    let saved = credentials::load(&path).ok().flatten().unwrap_or_default();
    let client = CloudClient::new()?;
    match super::block_on(device_login::revoke_saved(&client, &saved))? {
        None => {}
        Some((server, Ok(()))) => println!("Revoked the key on {server}."),
        // Already revoked, or never valid there: nothing left to revoke.
        Some((server, Err(RevokeError::Cloud(CloudError::Unauthorized)))) => {
            println!("The key was no longer valid on {server}.");
        }
        Some((server, Err(error))) => eprintln!(
            "warning: could not revoke the key on {server} ({error}); it stays valid \
             until revoked there (`tandem-cloud keys revoke`, or DELETE /v1/keys/ID)"
        ),
    }
    let deleted = credentials::delete_login(&path, &credentials::OsKeyring::shared())?;
    let entry = credentials::keyring_entry(&saved.keyring_account());
    match deleted.keyring {
        None => {}
        Some(Ok(true)) => println!("Removed the key from the {entry}."),
        Some(Ok(false)) => println!("The {entry} held no key."),
        Some(Err(error)) => eprintln!(
            "warning: could not remove the key from the {entry} ({error}); remove it with \
             the keyring's own tools"
        ),
    }
    if deleted.file {
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
