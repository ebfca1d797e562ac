//! Command-line interface: argument definitions and the `migrate`, `users`, `keys`,
//! `config` and `version` commands (`serve` lives in [`crate::serve`]).
//!
//! Settings precedence: flag > environment variable > config file > default (see
//! [`crate::config::layers`]).

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use serde_json::json;
use tandem_shared::Scope;
use tandem_shared::Tier;

use crate::config::layers::{self, Layers};
use crate::config::{Config, DEFAULT_BIND};
use crate::db::{self, api_keys, users, DbError};
use crate::keys;
use crate::serve::{self, ServeOptions};
use crate::telemetry::{ExportSettings, Telemetry};

/// Name of the key `keys create` makes when `--name` is not given.
pub const DEFAULT_KEY_NAME: &str = "default";

/// What `--version` prints after the name: `0.1.0 (1a2b3c4 2025-06-01)`, the version, the
/// git commit (`-dirty` if the tree had changes, `unknown` outside a checkout) and the UTC
/// build date, from `build.rs`.
pub const VERSION_LINE: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("TANDEM_BUILD_COMMIT"),
    " ",
    env!("TANDEM_BUILD_DATE"),
    ")"
);

/// Tandem's cloud API server and its administration commands.
#[derive(Debug, Parser)]
#[command(name = "tandem-cloud", version = VERSION_LINE, about)]
pub struct Cli {
    /// Configuration file (TOML).
    #[arg(long, global = true, env = "TANDEM_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Database URL (`sqlite://PATH`); default: tandem.sqlite in the platform data directory.
    #[arg(long, global = true, env = "TANDEM_DATABASE_URL", value_name = "URL")]
    pub database_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP API.
    Serve(ServeArgs),
    /// Apply pending database migrations.
    Migrate {
        /// List pending migrations without applying them.
        #[arg(long)]
        dry_run: bool,
    },
    /// Manage users.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Manage API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Show the audit log: sign-ins, key creation and revocation, tier changes and
    /// administrative actions, with who, when and from where.
    Audit(AuditArgs),
    /// Confirm or decline a `tandem login` code on a user's behalf, from the server.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// A user's usage, summed per UTC day or per model.
    Usage {
        /// Email of the user.
        #[arg(long)]
        email: String,
        /// Start: an RFC 3339 time or a YYYY-MM-DD date (default: 30 days before `--to`).
        #[arg(long)]
        from: Option<String>,
        /// End, exclusive: an RFC 3339 time or a YYYY-MM-DD date (default: the end of today, UTC).
        #[arg(long)]
        to: Option<String>,
        /// `day` or `model`.
        #[arg(long, default_value = "day")]
        group_by: String,
    },
    /// Check the configuration, or print it with every layer applied.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print the version, the git commit and the build date.
    Version {
        /// `text` (one line) or `json`.
        #[arg(long, value_enum, default_value_t = VersionFormat::Text)]
        output: VersionFormat,
    },
}

/// `config` subcommands. Both read the same layers as `serve`: defaults, `--config`,
/// `TANDEM_*` variables, flags.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check everything `serve` checks before it opens the database: the keys and values,
    /// and that the variables `*_env` keys name are set and usable (a session secret of at
    /// least 256 bits, for one). Prints `configuration is valid`, or the error and exits 1.
    Validate,
    /// Print the settings of every layer merged, with secrets masked. Keys left out take
    /// their defaults.
    Show {
        /// `toml` or `json`.
        #[arg(long, value_enum, default_value_t = ConfigFormat::Toml)]
        output: ConfigFormat,
    },
}

/// Output format of `config show`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfigFormat {
    Toml,
    Json,
}

/// Output format of `version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum VersionFormat {
    Text,
    Json,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, IP:PORT (port 0 picks a free one); default 127.0.0.1:8787.
    #[arg(long, env = "TANDEM_BIND", value_name = "ADDR")]
    pub bind: Option<SocketAddr>,
}

/// Arguments of `audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only what this user did or had done to them (or their keys).
    #[arg(long)]
    pub email: Option<String>,
    /// How many entries, newest first.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Approve the code `tandem login` shows; its key is issued to that user.
    Approve {
        /// The code, as shown (`BCDF-GHJK`; case and dashes do not matter).
        #[arg(long)]
        code: String,
        /// The user the key is for.
        #[arg(long)]
        email: String,
    },
    /// Decline the code; the waiting `tandem login` stops with `access_denied`.
    Deny {
        #[arg(long)]
        code: String,
        #[arg(long)]
        email: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a user.
    Create {
        /// The user's email; unique.
        #[arg(long)]
        email: String,
        /// A tier of the configuration (by default free, pro or enterprise).
        #[arg(long, default_value = "free")]
        tier: String,
    },
    /// Move a user to another tier. Running servers apply it within a quarter of a
    /// second (they watch the database for tier changes and revocations).
    SetTier {
        /// The user's email.
        #[arg(long)]
        email: String,
        /// A tier of the configuration.
        #[arg(long)]
        tier: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an API key for a user; the key is the last line printed.
    Create {
        /// Email of the key's owner.
        #[arg(long)]
        email: String,
        /// A label to tell keys apart.
        #[arg(long)]
        name: Option<String>,
        /// What the key may be used for, comma-separated: completions, chat, admin.
        #[arg(long, value_delimiter = ',', default_value = "completions,chat")]
        scopes: Vec<Scope>,
        /// Days until the key stops working; never by default.
        #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=3650))]
        expires_in_days: Option<u32>,
    },
    /// List a user's keys (never the keys themselves).
    List {
        /// Email of the keys' owner.
        #[arg(long)]
        email: String,
    },
    /// Revoke a key by id (as shown by `keys list`).
    Revoke {
        /// The key's id.
        id: String,
    },
}

/// `name` as a tier the configuration defines.
fn configured_tier(config: &Config, name: &str) -> anyhow::Result<Tier> {
    let tier: Tier = name.parse()?;
    let tiers = config.tiers()?;
    if tiers.get(&tier).is_none() {
        let known: Vec<&str> = tiers.all().map(|policy| policy.name.as_str()).collect();
        anyhow::bail!(
            "unknown tier `{tier}`: the configuration defines {}",
            known.join(", ")
        );
    }
    Ok(tier)
}

/// The flags that set config keys, as `(flag, key, value)`. A value that only repeats its
/// environment variable (clap reads `TANDEM_BIND` and `TANDEM_DATABASE_URL` into the flags)
/// is left to the environment layer, so messages name where a value really came from.
fn config_flags(cli: &Cli) -> Vec<(&'static str, &'static str, toml::Value)> {
    let from_environment = |variable: &str, value: &str| {
        std::env::var(variable).is_ok_and(|environment| environment == value)
    };
    let mut flags = Vec::new();
    if let Some(url) = cli.database_url.as_deref() {
        if !url.trim().is_empty() && !from_environment("TANDEM_DATABASE_URL", url) {
            flags.push((
                "--database-url",
                "database_url",
                toml::Value::String(url.to_owned()),
            ));
        }
    }
    if let Command::Serve(ServeArgs { bind: Some(bind) }) = &cli.command {
        let bind = bind.to_string();
        if !from_environment("TANDEM_BIND", &bind) {
            flags.push(("--bind", "bind", toml::Value::String(bind)));
        }
    }
    flags
}

/// Runs a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Version { output } = cli.command {
        return print_version(output);
    }
    // Only `serve` binds (and `config` shows what it would use): the other commands must
    // not fail on a listen address they never use.
    let ignored: &[&str] = match cli.command {
        Command::Serve(_) | Command::Config(_) => &[],
        _ => &["TANDEM_BIND"],
    };
    let (config, layers) =
        Config::load_layered(cli.config.as_deref(), ignored, &config_flags(&cli))?;
    // Only the server exports traces; the other commands are short and only log.
    let telemetry = match cli.command {
        Command::Serve(_) => Telemetry::from_config(&config.telemetry)?,
        _ => None,
    };
    crate::init_logging(config.logging.format, telemetry.as_ref());
    match cli.command {
        Command::Config(ConfigCommand::Validate) => {
            check_environment(config)?;
            writeln!(std::io::stdout().lock(), "configuration is valid")?;
            return Ok(());
        }
        Command::Config(ConfigCommand::Show { output }) => return print_config(&layers, output),
        _ => {}
    }
    let database = database_options(&config)?;
    match cli.command {
        Command::Config(_) | Command::Version { .. } => Ok(()),
        Command::Serve(_) => {
            let bind = match config.bind {
                Some(bind) => bind,
                None => DEFAULT_BIND
                    .parse()
                    .context("parse the default bind address")?,
            };
            serve::serve(ServeOptions {
                config,
                bind,
                database,
                telemetry,
            })
            .await
        }
        Command::Migrate { dry_run } => {
            let pool = open(database).await?;
            run_migrate(&pool, dry_run).await
        }
        Command::Users(UsersCommand::Create { email, tier }) => {
            let tier = configured_tier(&config, &tier)?;
            validate_email(&email)?;
            let pool = open_migrated(database).await?;
            let user = users::create(&pool, &email, tier).await?;
            audit_cli(
                &pool,
                "user.create",
                &format!("user:{}", user.id),
                json!({"email": user.email, "tier": user.tier.as_str()}),
            )
            .await?;
            let mut stdout = std::io::stdout().lock();
            writeln!(
                stdout,
                "created user {} (tier {}, id {})",
                user.email, user.tier, user.id
            )?;
            Ok(())
        }
        Command::Users(UsersCommand::SetTier { email, tier }) => {
            let tier = configured_tier(&config, &tier)?;
            let pool = open_migrated(database).await?;
            let before = users::get_by_email(&pool, &email).await?;
            let user = users::set_tier(&pool, &email, &tier).await?;
            audit_cli(
                &pool,
                "user.set_tier",
                &format!("user:{}", user.id),
                json!({"from": before.tier.as_str(), "to": user.tier.as_str()}),
            )
            .await?;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "user {} is now on tier {}", user.email, user.tier)?;
            Ok(())
        }
        Command::Usage {
            email,
            from,
            to,
            group_by,
        } => {
            let mut params = std::collections::BTreeMap::new();
            params.insert("group_by".to_owned(), group_by);
            if let Some(from) = from {
                params.insert("from".to_owned(), from);
            }
            if let Some(to) = to {
                params.insert("to".to_owned(), to);
            }
            let query = crate::http::usage::UsageQuery::parse(&params, chrono::Utc::now())
                .map_err(anyhow::Error::msg)?;
            let pool = open_migrated(database).await?;
            let user = users::get_by_email(&pool, &email).await?;
            let groups =
                crate::db::usage::summary(&pool, &user.id, query.from, query.to, query.group_by)
                    .await?;
            let report = crate::http::usage::response(&query, groups);
            let mut stdout = std::io::stdout().lock();
            writeln!(
                stdout,
                "usage of {} from {} to {}",
                user.email, report.from, report.to
            )?;
            writeln!(
                stdout,
                "{:<24}  {:>9}  {:>7}  {:>13}  {:>17}  {:>10}",
                report.group_by.to_uppercase(),
                "REQUESTS",
                "ERRORS",
                "PROMPT TOKENS",
                "COMPLETION TOKENS",
                "COST USD"
            )?;
            for group in report.groups.iter().chain(std::iter::once(&report.total)) {
                writeln!(
                    stdout,
                    "{:<24}  {:>9}  {:>7}  {:>13}  {:>17}  {:>10.4}",
                    group.key,
                    group.requests,
                    group.errors,
                    group.prompt_tokens,
                    group.completion_tokens,
                    group.cost_usd
                )?;
            }
            Ok(())
        }
        Command::Keys(KeysCommand::Create {
            email,
            name,
            scopes,
            expires_in_days,
        }) => {
            let pool = open_migrated(database).await?;
            let user = users::get_by_email(&pool, &email).await?;
            let grant = api_keys::KeyGrant {
                name: name.unwrap_or_else(|| DEFAULT_KEY_NAME.to_owned()),
                scopes,
                expires_at: expires_in_days
                    .map(|days| chrono::Utc::now() + chrono::Duration::days(i64::from(days))),
            };
            let key = keys::generate();
            let stored = api_keys::insert_granted(&pool, &user, &grant, &key).await?;
            audit_cli(&pool, "key.create", &format!("key:{}", stored.id), json!({"name": stored.name, "scopes": stored.scopes, "expires_at": stored.expires_at})).await?;
            let mut stdout = std::io::stdout().lock();
            writeln!(
                stdout,
                "created key {} (\"{}\") for {}",
                stored.id, stored.name, user.email
            )?;
            writeln!(stdout, "the key is shown only this once; store it now:")?;
            writeln!(stdout, "{}", key.secret)?;
            Ok(())
        }
        Command::Keys(KeysCommand::List { email }) => {
            let pool = open_migrated(database).await?;
            let user = users::get_by_email(&pool, &email).await?;
            let keys = api_keys::list_for_user(&pool, &user).await?;
            let mut stdout = std::io::stdout().lock();
            if keys.is_empty() {
                writeln!(stdout, "no keys for {}", user.email)?;
                return Ok(());
            }
            writeln!(
                stdout,
                "{:<36}  {:<16}  {:<10}  {:<20}  {:<20}  SCOPES AND STATUS",
                "ID", "NAME", "PREFIX", "CREATED", "LAST USED"
            )?;
            let time = |t: chrono::DateTime<chrono::Utc>| {
                t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            };
            for key in keys {
                let scopes = api_keys::format_scopes(&key.scopes).replace(' ', ",");
                let status = match (key.revoked_at, key.expires_at) {
                    (Some(at), _) => format!("{scopes} revoked {}", time(at)),
                    (None, Some(at)) if at <= chrono::Utc::now() => {
                        format!("{scopes} expired {}", time(at))
                    }
                    (None, Some(at)) => format!("{scopes} expires {} active", time(at)),
                    (None, None) => format!("{scopes} active"),
                };
                writeln!(
                    stdout,
                    "{:<36}  {:<16}  {:<10}  {:<20}  {:<20}  {}",
                    key.id,
                    key.name,
                    key.key_prefix,
                    time(key.created_at),
                    key.last_used_at.map_or_else(|| "never".to_owned(), time),
                    status
                )?;
            }
            Ok(())
        }
        Command::Audit(AuditArgs { email, limit }) => {
            let pool = open_migrated(database).await?;
            let user = match email {
                Some(email) => Some(users::get_by_email(&pool, &email).await?),
                None => None,
            };
            let entries =
                crate::db::audit::recent(&pool, user.as_ref().map(|user| user.id.as_str()), limit)
                    .await?;
            let mut stdout = std::io::stdout().lock();
            if entries.is_empty() {
                writeln!(stdout, "no audit entries")?;
                return Ok(());
            }
            writeln!(
                stdout,
                "{:<20}  {:<14}  {:<42}  {:<42}  {:<15}  DETAIL",
                "AT", "ACTION", "ACTOR", "TARGET", "SOURCE"
            )?;
            for entry in entries {
                writeln!(
                    stdout,
                    "{:<20}  {:<14}  {:<42}  {:<42}  {:<15}  {}",
                    entry.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    entry.action,
                    entry.actor,
                    entry.target.as_deref().unwrap_or("-"),
                    entry.source,
                    entry.detail
                )?;
            }
            Ok(())
        }
        Command::Device(command) => {
            let (code, email, approve) = match command {
                DeviceCommand::Approve { code, email } => (code, email, true),
                DeviceCommand::Deny { code, email } => (code, email, false),
            };
            let Some(user_code) = crate::http::oauth::normalize_user_code(&code) else {
                anyhow::bail!("`{code}` is not a login code (eight letters, like BCDF-GHJK)");
            };
            let pool = open_migrated(database).await?;
            let user = users::get_by_email(&pool, &email).await?;
            let decided = crate::db::device_codes::decide_audited(
                &pool,
                &user_code,
                &user,
                approve,
                &crate::db::audit::Actor::Cli,
                "cli",
                chrono::Utc::now(),
            )
            .await?;
            if !decided {
                anyhow::bail!(
                    "no pending login code {user_code} (expired, already decided, or mistyped)"
                );
            }
            let mut stdout = std::io::stdout().lock();
            let verb = if approve { "approved" } else { "declined" };
            writeln!(stdout, "{verb} login code {user_code} for {}", user.email)?;
            Ok(())
        }
        Command::Keys(KeysCommand::Revoke { id }) => {
            let pool = open_migrated(database).await?;
            let outcome = api_keys::revoke(&pool, &id).await?;
            if outcome == api_keys::RevokeOutcome::Revoked {
                audit_cli(&pool, "key.revoke", &format!("key:{id}"), json!({})).await?;
            }
            let mut stdout = std::io::stdout().lock();
            match outcome {
                api_keys::RevokeOutcome::Revoked => writeln!(stdout, "revoked key {id}")?,
                api_keys::RevokeOutcome::AlreadyRevoked => {
                    writeln!(stdout, "key {id} was already revoked")?
                }
            }
            Ok(())
        }
    }
}

/// Prints `VERSION_LINE` with the binary's name, or the same as JSON.
fn print_version(output: VersionFormat) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match output {
        VersionFormat::Text => writeln!(stdout, "tandem-cloud {VERSION_LINE}")?,
        VersionFormat::Json => writeln!(
            stdout,
            "{}",
            json!({
                "version": env!("CARGO_PKG_VERSION"),
                "commit": env!("TANDEM_BUILD_COMMIT"),
                "build_date": env!("TANDEM_BUILD_DATE"),
            })
        )?,
    }
    Ok(())
}

/// Checks what `serve` checks of the environment once the configuration is valid: every
/// variable a `*_env` key names is set, the session secret or key can sign, the sign-in
/// providers can be set up.
fn check_environment(config: Config) -> anyhow::Result<()> {
    // The very constructor `serve` calls, so `config validate` and a start cannot disagree.
    // It wants a pool: one that is never used for anything but the state's background
    // tasks, in memory, so no database file is opened or created.
    // What `Telemetry::from_config` reads, without starting an exporter.
    ExportSettings::resolve(&config.telemetry, &|name| std::env::var(name).ok())?;
    crate::state::AppState::new(config, db::Pool::unused())?;
    Ok(())
}

/// `config show`: the merged layers, secrets masked.
fn print_config(layers: &Layers, output: ConfigFormat) -> anyhow::Result<()> {
    let table = layers::masked(&layers.merged()?);
    let mut stdout = std::io::stdout().lock();
    match output {
        ConfigFormat::Toml => {
            writeln!(
                stdout,
                "# Defaults < config file < TANDEM_* environment < flags; keys left out take \
                 their defaults. Secrets are masked."
            )?;
            write!(
                stdout,
                "{}",
                toml::to_string_pretty(&table).context("cannot print the configuration")?
            )?;
        }
        ConfigFormat::Json => writeln!(stdout, "{}", serde_json::to_string_pretty(&table)?)?,
    }
    Ok(())
}

/// Records an administrative action of the command line in the audit log.
async fn audit_cli(
    pool: &db::Pool,
    action: &str,
    target: &str,
    detail: serde_json::Value,
) -> anyhow::Result<()> {
    crate::db::audit::record(
        pool,
        &crate::db::audit::Actor::Cli,
        action,
        Some(target),
        "cli",
        &detail,
    )
    .await?;
    Ok(())
}

async fn run_migrate(pool: &db::Pool, dry_run: bool) -> anyhow::Result<()> {
    let pending = db::pending_migrations(pool).await?;
    let mut stdout = std::io::stdout().lock();
    if dry_run {
        if pending.is_empty() {
            writeln!(stdout, "no pending migrations")?;
        }
        for migration in &pending {
            writeln!(
                stdout,
                "pending {:04} {}",
                migration.version, migration.description
            )?;
        }
        return Ok(());
    }
    let applied = db::migrate(pool).await?;
    if applied == 0 {
        writeln!(stdout, "database is up to date")?;
    } else {
        for migration in &pending {
            writeln!(
                stdout,
                "applied {:04} {}",
                migration.version, migration.description
            )?;
        }
    }
    Ok(())
}

fn validate_email(email: &str) -> anyhow::Result<()> {
    let email = email.trim();
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        }
        None => false,
    };
    if valid {
        Ok(())
    } else {
        anyhow::bail!("`{email}` is not an email address")
    }
}

/// The database to use: `database_url` of the configuration (flag, environment or file),
/// else the file `tandem.sqlite` in the platform data directory (created when missing).
fn database_options(config: &Config) -> anyhow::Result<db::ConnectOptions> {
    if let Some(url) = config.database_url.as_deref() {
        let options = db::options_from_url(url)
            .with_context(|| format!("invalid database URL `{}`", db::mask_url(url)))?;
        // Like the default location, a configured file's directory is created on first
        // use. In-memory databases have no directory.
        let file = match &options {
            db::ConnectOptions::Sqlite(sqlite) => Some(sqlite.get_filename()),
            db::ConnectOptions::Postgres(_) => None,
        };
        if let Some(parent) = file.and_then(std::path::Path::parent) {
            if !parent.as_os_str().is_empty() && !parent.exists() {
                std::fs::create_dir_all(parent).with_context(|| {
                    format!("cannot create database directory {}", parent.display())
                })?;
            }
        }
        return Ok(options);
    }
    let dirs = directories::ProjectDirs::from("dev", "tandem", "tandem")
        .context("cannot find the platform data directory; pass --database-url")?;
    let data_dir = dirs.data_dir();
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    Ok(db::options_for_file(&data_dir.join("tandem.sqlite")))
}

async fn open(options: db::ConnectOptions) -> Result<db::Pool, DbError> {
    db::connect(options).await
}

/// Opens the database and brings its schema up to date, so admin commands work on a
/// fresh file.
async fn open_migrated(options: db::ConnectOptions) -> anyhow::Result<db::Pool> {
    let pool = open(options).await.context("cannot open the database")?;
    db::migrate(&pool)
        .await
        .context("cannot apply database migrations")?;
    Ok(pool)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_checked() {
        validate_email("a@b").unwrap();
        validate_email(" dev@localhost ").unwrap();
        assert!(validate_email("nobody").is_err());
        assert!(validate_email("@b").is_err());
        assert!(validate_email("a@").is_err());
        assert!(validate_email("a b@c").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn global_flags_parse_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "tandem-cloud",
            "keys",
            "list",
            "--email",
            "a@b",
            "--database-url",
            "sqlite://x.sqlite",
        ])
        .unwrap();
        assert_eq!(cli.database_url.as_deref(), Some("sqlite://x.sqlite"));
    }
}
