//! `tandem status`: which server and key would be used, and whether they work.
//!
//! Editor settings are not visible from a terminal, so this resolves environment and
//! credentials file (with the key in the OS keyring it points to, if so) only. Exit code
//! 0 when the key is accepted, 1 otherwise.

use std::process::ExitCode;
use std::time::Duration;

use crate::cloud::{CloudClient, CloudError, CloudTarget};
use crate::credentials::{self, CredentialSources, KeyLocation};

pub(super) fn run() -> anyhow::Result<ExitCode> {
    let path = credentials::credentials_path()?;
    let stored = match credentials::load(&path) {
        Ok(stored) => stored,
        Err(error) => {
            eprintln!("warning: {error}");
            None
        }
    };
    let file = match &stored {
        None => Default::default(),
        Some(stored) => stored
            .with_key(
                &credentials::OsKeyring::shared(),
                credentials::KEYRING_TIMEOUT,
            )
            .unwrap_or_else(|error| {
                eprintln!("warning: {error}");
                stored.to_partial()
            }),
    };
    let resolved = credentials::resolve(&CredentialSources {
        editor_settings: Default::default(),
        environment: credentials::from_environment(),
        file,
    });
    println!(
        "Server:           {} (from {})",
        resolved.server, resolved.server_source
    );
    println!("Credentials file: {}", path.display());
    if let Some(stored) = stored
        .as_ref()
        .filter(|stored| stored.api_key.is_some() || stored.api_key_in_keyring)
    {
        let location = match stored.key_location() {
            KeyLocation::File => "the credentials file".to_owned(),
            KeyLocation::Keyring => credentials::keyring_entry(&stored.keyring_account()),
        };
        println!("Key stored in:    {location}");
    }
    let Some(api_key) = resolved.api_key else {
        println!("API key:          none (run `tandem login`)");
        return Ok(ExitCode::FAILURE);
    };
    println!(
        "API key:          {api_key} (from {})",
        resolved.api_key_source
    );

    let target = CloudTarget {
        server: resolved.server.clone(),
        api_key,
        timeout: Duration::from_secs(10),
    };
    let client = CloudClient::new()?;
    match super::block_on(client.me(&target))? {
        Ok(me) => {
            println!("Account:          {} ({} tier)", me.user.email, me.tier);
            let windows = [
                ("Requests (hour):", &me.requests_this_hour, "requests"),
                ("Requests (day):", &me.requests_today, "requests"),
                ("Tokens (day):", &me.tokens_today, "tokens"),
            ];
            for (label, quota, unit) in windows {
                if let Some(quota) = quota {
                    println!(
                        "{label:<18}{} of {} {unit} left, resets {}",
                        quota.remaining, quota.limit, quota.resets_at
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(CloudError::Unauthorized) => {
            println!("Account:          key rejected by the server (run `tandem login`)");
            Ok(ExitCode::FAILURE)
        }
        Err(error) => {
            println!("Account:          unknown ({error})");
            Ok(ExitCode::FAILURE)
        }
    }
}
