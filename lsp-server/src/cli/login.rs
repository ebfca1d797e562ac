//! `tandem login [--server URL]`: sign in through the browser with the OAuth 2.0 Device
//! Authorization Grant (RFC 8628) and save the API key the server issues for this device;
//! or `tandem login --api-key KEY`: verify a key made elsewhere, then save it.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use tandem_shared::API_KEY_PREFIX;

use crate::cloud::CloudClient;
use crate::credentials::{self, ApiKey};
use crate::device_login::{self, DeviceLoginError, REQUEST_TIMEOUT};

#[derive(Debug, clap::Args)]
pub struct LoginArgs {
    /// Save this API key (`tdm_…`) instead of signing in through the browser; `-` reads
    /// it from stdin, which keeps it out of shell history.
    #[arg(long, value_name = "KEY")]
    api_key: Option<String>,
    /// The Tandem server; defaults to TANDEM_SERVER, then the saved server, then
    /// http://127.0.0.1:8787.
    #[arg(long, value_name = "URL")]
    server: Option<String>,
    /// Print the sign-in address without trying to open a browser.
    #[arg(long)]
    no_browser: bool,
}

pub(super) fn run(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let path = credentials::credentials_path()?;
    let server = chosen_server(args.server.as_deref(), &path);
    let given = args.api_key.map(given_key).transpose()?;
    let client = CloudClient::new()?;
    // One runtime for the whole login: the client's pooled connections belong to it.
    super::block_on(async {
        let api_key = match given {
            Some(key) => key,
            None => sign_in(&client, &server, args.no_browser).await?,
        };
        save_verified(&client, &server, api_key, &path).await
    })?
}

/// The key given with `--api-key`, or read from stdin for `-`.
fn given_key(key: String) -> anyhow::Result<ApiKey> {
    let key_text = if key == "-" {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the key from stdin")?;
        line
    } else {
        key
    };
    let Some(api_key) = ApiKey::new(&key_text) else {
        bail!("the API key is empty");
    };
    if !api_key.expose().starts_with(API_KEY_PREFIX) {
        bail!("that is not a Tandem API key (they start with `{API_KEY_PREFIX}`)");
    }
    Ok(api_key)
}

/// The device flow: show the code, open the browser, poll until the server issues the
/// key (or says no).
async fn sign_in(client: &CloudClient, server: &str, no_browser: bool) -> anyhow::Result<ApiKey> {
    let grant = client
        .start_device_authorization(server, REQUEST_TIMEOUT)
        .await
        .with_context(|| format!("cannot start signing in with {server}"))?;
    let open = grant
        .verification_uri_complete
        .clone()
        .unwrap_or_else(|| grant.verification_uri.clone());
    println!(
        "To sign in, open {} and enter the code:",
        grant.verification_uri
    );
    println!();
    println!("    {}", grant.user_code);
    println!();
    if !no_browser && webbrowser::open(&open).is_ok() {
        println!("(A browser window was opened for you.)");
    }
    println!("Waiting for the code to be confirmed…");
    let on_unreachable =
        |reason: &str| eprintln!("note: {server} did not answer ({reason}); still waiting");
    match device_login::wait_for_key(client, server, &grant, on_unreachable).await {
        Ok(key) => Ok(key),
        Err(DeviceLoginError::Expired) => {
            bail!("the code expired before it was confirmed; run `tandem login` again")
        }
        Err(error) => Err(error.into()),
    }
}

/// The server to use: the flag, TANDEM_SERVER, the saved one, or the default.
fn chosen_server(flag: Option<&str>, path: &std::path::Path) -> String {
    let saved = credentials::load(path).ok().flatten().unwrap_or_default();
    flag.and_then(credentials::normalize_server)
        .or_else(|| credentials::from_environment().server)
        .or_else(|| {
            saved
                .server
                .as_deref()
                .and_then(credentials::normalize_server)
        })
        .unwrap_or_else(|| credentials::DEFAULT_SERVER.to_owned())
}

/// Checks the key with the server, then saves it with the server's address.
async fn save_verified(
    client: &CloudClient,
    server: &str,
    api_key: ApiKey,
    path: &std::path::Path,
) -> anyhow::Result<ExitCode> {
    let me = device_login::verify_and_save(client, server, api_key, path).await?;
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
