//! `tandem logout`: delete the credentials file.

use std::process::ExitCode;

use crate::credentials;

pub(super) fn run() -> anyhow::Result<ExitCode> {
    let path = credentials::credentials_path()?;
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
