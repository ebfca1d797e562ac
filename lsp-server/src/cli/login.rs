//! `tandem login --api-key KEY [--server URL]`: verify the key, then save it.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context as _};
use tandem_shared::API_KEY_PREFIX;

use crate::cloud::{CloudClient, CloudError, CloudTarget};
use crate::credentials::{self, ApiKey, StoredCredentials};

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// The API key (`tdm_…`); `-` reads it from stdin, which keeps it out of shell history.
    #[arg(long, value_name = "KEY")]
    api_key: String,
    /// The Tandem server; defaults to TANDEM_SERVER, then the saved server, then
    /// http://127.0.0.1:8787.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
}

pub(super) fn run(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let key_text = if args.api_key == "-" {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the key from stdin")?;
        line
    } else {
        args.api_key
    };
    let Some(api_key) = ApiKey::new(&key_text) else {
        bail!("the API key is empty");
    };
    if !api_key.expose().starts_with(API_KEY_PREFIX) {
        bail!("that is not a Tandem API key (they start with `{API_KEY_PREFIX}`)");
    }
    let path = credentials::credentials_path()?;
    let saved = credentials::load(&path).ok().flatten().unwrap_or_default();
    let server = args
        .server
        .as_deref()
        .and_then(credentials::normalize_server)
        .or_else(|| credentials::from_environment().server)
        .or_else(|| {
            saved
                .server
                .as_deref()
                .and_then(credentials::normalize_server)
        })
        .unwrap_or_else(|| credentials::DEFAULT_SERVER.to_owned());

    let target = CloudTarget {
        server: server.clone(),
        api_key: api_key.clone(),
        timeout: Duration::from_secs(15),
    };
    let client = CloudClient::new()?;
    let me = match super::block_on(client.me(&target))? {
        Ok(me) => me,
        Err(CloudError::Unauthorized) => {
            bail!("{server} rejected this API key (unknown or revoked)")
        }
        Err(error) => return Err(error).context(format!("cannot verify the key with {server}")),
    };

    credentials::save(
        &path,
        &StoredCredentials {
            server: Some(server.clone()),
            api_key: Some(api_key.expose().to_owned()),
        },
    )?;
    println!(
        "Logged in to {server} as {} ({} tier).",
        me.user.email, me.tier
    );
    println!("Credentials saved to {}", path.display());
    if std::env::var_os(credentials::API_KEY_ENV).is_some() {
        eprintln!(
            "note: {} is set and takes precedence over the saved key",
            credentials::API_KEY_ENV
        );
    }
    Ok(ExitCode::SUCCESS)
}
