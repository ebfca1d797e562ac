//! `tandem login [--server URL]`: sign in through the browser with the OAuth 2.0 Device
//! Authorization Grant (RFC 8628) and save the API key the server issues for this device;
//! or `tandem login --api-key KEY`: verify a key made elsewhere, then save it — in the OS
//! keyring when one answers, else in the credentials file (`--store`).

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use tandem_shared::API_KEY_PREFIX;

use crate::cloud::CloudClient;
use crate::credentials::{self, ApiKey, KeyLocation, SavedLogin, StoreChoice};
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
    /// Where to keep the key: `auto` is the OS keyring when one answers, else the
    /// credentials file (mode 0600); `keyring` fails when there is none.
    #[arg(
        long,
        value_enum,
        value_name = "WHERE",
        env = credentials::CREDENTIAL_STORE_ENV,
        default_value_t = StoreChoice::Auto
    )]
    store: StoreChoice,
}

pub(super) fn run(args: LoginArgs) -> anyhow::Result<ExitCode> {
    let path = credentials::credentials_path()?;
    let server = chosen_server(args.server.as_deref(), &path);
    let given = args.api_key.map(given_key).transpose()?;
    if args.store == StoreChoice::Keyring {
        // Before the browser, not after: without a keyring the login would be wasted.
        credentials::probe_keyring(
            &credentials::OsKeyring::shared(),
            credentials::KEYRING_PROBE_TIMEOUT,
        )
        .map_err(credentials::CredentialsError::KeyringUnavailable)?;
    }
    let client = CloudClient::new()?;
    // One runtime for the whole login: the client's pooled connections belong to it.
    super::block_on(async {
        let api_key = match given {
            Some(key) => key,
            None => sign_in(&client, &server, args.no_browser).await?,
        };
        save_verified(&client, &server, api_key, &path, args.store).await
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
    store: StoreChoice,
) -> anyhow::Result<ExitCode> {
    let (me, saved) = device_login::verify_and_save(
        client,
        server,
        api_key,
        path,
        store,
        credentials::OsKeyring::shared(),
    )
    .await?;
    println!(
        "Logged in to {server} as {} ({} tier).",
        me.user.email, me.tier
    );
    for line in saved_lines(&saved, server, path) {
        println!("{line}");
    }
    if let Some(reason) = &saved.keyring_skipped {
        eprintln!("note: not using the OS keyring ({reason}); the key is in the credentials file");
    }
    if std::env::var_os(credentials::API_KEY_ENV).is_some() {
        eprintln!(
            "note: {} is set and takes precedence over the saved key",
            credentials::API_KEY_ENV
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the login went, for people. Never the key.
fn saved_lines(saved: &SavedLogin, server: &str, path: &std::path::Path) -> Vec<String> {
    match saved.location {
        KeyLocation::File => vec![format!("Credentials saved to {}", path.display())],
        KeyLocation::Keyring => vec![
            format!(
                "API key saved in the {}.",
                credentials::keyring_entry(server)
            ),
            format!(
                "Credentials saved to {} (the server, and that the key is in the keyring)",
                path.display()
            ),
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        login: LoginArgs,
    }

    fn parse(args: &[&str]) -> Result<LoginArgs, clap::Error> {
        let argv = std::iter::once("login").chain(args.iter().copied());
        Wrapper::try_parse_from(argv).map(|wrapper| wrapper.login)
    }

    #[test]
    fn store_flag_takes_auto_keyring_or_file() {
        for (value, choice) in [
            ("auto", StoreChoice::Auto),
            ("keyring", StoreChoice::Keyring),
            ("file", StoreChoice::File),
        ] {
            let args = parse(&["--store", value, "--no-browser"]).unwrap();
            assert_eq!(args.store, choice);
            assert!(args.no_browser);
        }
        let error = parse(&["--store", "vault"]).unwrap_err().to_string();
        assert!(
            error.contains("auto") && error.contains("keyring"),
            "{error}"
        );
        // Without the flag: `auto`, unless TANDEM_CREDENTIAL_STORE says otherwise.
        if std::env::var_os(credentials::CREDENTIAL_STORE_ENV).is_none() {
            assert_eq!(parse(&[]).unwrap().store, StoreChoice::Auto);
        }
    }

    #[test]
    fn saved_lines_say_where_the_key_went_and_never_show_it() {
        let path = std::path::Path::new("config/credentials.json");
        let file = SavedLogin {
            location: KeyLocation::File,
            keyring_skipped: None,
        };
        assert_eq!(
            saved_lines(&file, "http://127.0.0.1:9", path),
            vec![format!("Credentials saved to {}", path.display())]
        );
        let keyring = SavedLogin {
            location: KeyLocation::Keyring,
            keyring_skipped: None,
        };
        let lines = saved_lines(&keyring, "http://127.0.0.1:9", path).join("\n");
        assert!(
            lines.contains("OS keyring (service tandem, account http://127.0.0.1:9)"),
            "{lines}"
        );
        assert!(lines.contains("Credentials saved to"), "{lines}");
    }
}
