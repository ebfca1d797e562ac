//! `tandem login [--server URL]`: sign in through the browser with the OAuth 2.0 Device
//! Authorization Grant (RFC 8628) and save the API key the server issues for this device;
//! or `tandem login --api-key KEY`: verify a key made elsewhere, then save it.

use std::io::BufRead;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tandem_shared::API_KEY_PREFIX;

use crate::cloud::{CloudClient, CloudError, CloudTarget, DevicePoll};
use crate::credentials::{self, ApiKey, StoredCredentials};

/// Timeout of each HTTP request of the login.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// What `slow_down` adds between polls (RFC 8628 §3.5).
const SLOW_DOWN: Duration = Duration::from_secs(5);

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
    let deadline = Instant::now() + Duration::from_secs(grant.expires_in);
    let mut interval = Duration::from_secs(grant.interval);
    loop {
        tokio::time::sleep(interval).await;
        if Instant::now() > deadline {
            bail!("the code expired before it was confirmed; run `tandem login` again");
        }
        let polled = client
            .poll_device_token(server, &grant.device_code, REQUEST_TIMEOUT)
            .await;
        match polled {
            Ok(DevicePoll::Granted(key)) => {
                return ApiKey::new(&key).context("the server issued an empty key");
            }
            Ok(DevicePoll::Pending) => {}
            Ok(DevicePoll::SlowDown) => interval += SLOW_DOWN,
            Ok(DevicePoll::Denied) => bail!("the sign-in was declined"),
            Ok(DevicePoll::Expired) => {
                bail!("the code expired before it was confirmed; run `tandem login` again")
            }
            // A network hiccup while the user is in the browser is not the end: the
            // code is still good until it expires.
            Err(CloudError::Unreachable { reason, .. }) => {
                eprintln!("note: {server} did not answer ({reason}); still waiting");
            }
            Err(error) => {
                return Err(error).context(format!("signing in with {server} failed"));
            }
        }
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
    let server = server.to_owned();
    let target = CloudTarget {
        server: server.clone(),
        api_key: api_key.clone(),
        timeout: REQUEST_TIMEOUT,
    };
    let me = match client.me(&target).await {
        Ok(me) => me,
        Err(CloudError::Unauthorized) => {
            bail!("{server} rejected this API key (unknown or revoked)")
        }
        Err(error) => return Err(error).context(format!("cannot verify the key with {server}")),
    };

    credentials::save(
        path,
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
