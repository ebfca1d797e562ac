//! Layered configuration: built-in defaults < config file < `TANDEM_<SECTION>__<KEY>`
//! environment variables < command-line flags.
//!
//! Every layer becomes a TOML tree; the trees are merged key by key and the result is
//! deserialized once into [`Config`], so a section added to `Config` takes environment
//! overrides without code of its own, and the file keeps its exact error messages (with
//! line numbers) because a file that is at fault is read again on its own to report them.
//! A value an override set that serde refuses is traced back to the variable or flag that
//! set it (`serde_path_to_error`, already in the tree through axum), so the message names
//! both the key and where it came from.
//!
//! Environment variables: `TANDEM_LIMITS__MAX_BODY_BYTES=1000` sets `limits.max_body_bytes`
//! (`__` between the levels, names case-insensitive, so map keys such as tier names come
//! out lowercase). Values are read as TOML where they parse as a number, a boolean, an array
//! or a quoted string, as a plain string otherwise, and as the plain string when the key
//! wants a string after all (`TANDEM_AUTH__NEW_USER_TIER=2024` is the tier `"2024"`). Empty
//! values count as unset. Arrays of tables (`[[providers]]`, `[[auth.identity_providers]]`)
//! are file-only. Only `TANDEM_*` names with `__` are configuration; the project's other
//! variables (`TANDEM_LOG`, `TANDEM_SERVER`, ...) never are, nor is a variable a `*_env` key
//! names (it holds a secret, not a setting). A few keys also have a short name of their own
//! ([`ENV_ALIASES`]): `TANDEM_BIND`, `TANDEM_DATABASE_URL` and `TANDEM_REDIS_URL`, the names
//! deployments already use.

use std::fmt;
use std::path::Path;

use toml::{Table, Value};

use super::{Config, ConfigError};

/// Prefix of every configuration variable.
pub const ENV_PREFIX: &str = "TANDEM_";
/// Separator between the levels of a key in a variable name.
pub const ENV_SEPARATOR: &str = "__";
/// Variables with a name of their own, and the dotted key each sets. They are read like
/// any other variable, and when both are set the `__` form of the same key wins.
pub const ENV_ALIASES: [(&str, &str); 3] = [
    ("TANDEM_BIND", "bind"),
    ("TANDEM_DATABASE_URL", "database_url"),
    ("TANDEM_REDIS_URL", "redis.url"),
];

/// Where a setting above the config file came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// An environment variable, by name.
    Environment(String),
    /// A command-line flag, as the user would write it (`--bind`).
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Environment(variable) => write!(formatter, "environment variable {variable}"),
            Origin::Flag(flag) => write!(formatter, "{flag}"),
        }
    }
}

/// One setting of the environment or a flag.
#[derive(Debug, Clone)]
struct Override {
    origin: Origin,
    /// The key, one element per level.
    key: Vec<String>,
    value: Value,
    /// The text the value was read from, while it was read as something other than a
    /// string: the fallback when the key wants a string.
    text: Option<String>,
}

impl Override {
    fn dotted_key(&self) -> String {
        self.key.join(".")
    }
}

/// How an override is at fault for a deserialization error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Blame {
    /// Its value is refused.
    Value,
    /// It names a key that does not exist.
    UnknownKey,
    /// It made a table that is incomplete or should not be a table.
    Table,
}

/// The config file: its name for messages, its text, its tree.
#[derive(Debug, Clone)]
struct FileLayer {
    path: String,
    text: String,
    table: Table,
}

/// The layers of one configuration, lowest first; [`Layers::resolve`] merges them.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    file: Option<FileLayer>,
    /// Environment first, then flags: later ones win.
    overrides: Vec<Override>,
}

impl Layers {
    /// No file, no environment, no flags: the defaults.
    pub fn new() -> Layers {
        Layers::default()
    }

    /// Adds the config file at `path`.
    pub fn with_file(self, path: &Path) -> Result<Layers, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        self.with_file_text(&path.display().to_string(), text)
    }

    /// Adds config text as the file layer, `path` naming it in messages.
    pub fn with_file_text(mut self, path: &str, text: String) -> Result<Layers, ConfigError> {
        let table = toml::from_str::<Table>(&text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            message: located_message(&text, &error),
        })?;
        self.file = Some(FileLayer {
            path: path.to_owned(),
            text,
            table,
        });
        Ok(self)
    }

    /// Adds the configuration variables among `variables` (the process environment, or a
    /// test's). Call it after [`Layers::with_file`]: variables the file's `*_env` keys name
    /// are left out.
    pub fn with_environment(
        mut self,
        variables: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Layers, ConfigError> {
        let mut found = Vec::new();
        for (variable, text) in variables {
            if text.trim().is_empty() {
                continue;
            }
            let key = if let Some((_, key)) = ENV_ALIASES
                .iter()
                .find(|(name, _)| *name == variable.as_str())
            {
                key.split('.').map(str::to_owned).collect()
            } else {
                match variable.strip_prefix(ENV_PREFIX) {
                    Some(rest) if rest.contains(ENV_SEPARATOR) => {
                        let key: Vec<String> = rest
                            .split(ENV_SEPARATOR)
                            .map(str::to_ascii_lowercase)
                            .collect();
                        if key.iter().any(String::is_empty) {
                            return Err(ConfigError::UnknownKey {
                                origin: Origin::Environment(variable),
                                key: key.join("."),
                                message: "a level of the key is empty (`___` or a `__` at \
                                          either end)"
                                    .to_owned(),
                            });
                        }
                        key
                    }
                    _ => continue,
                }
            };
            let (value, parsed_from) = parse_env_value(&text);
            found.push(Override {
                origin: Origin::Environment(variable),
                key,
                value,
                text: parsed_from,
            });
        }
        // Deterministic whatever the environment's order.
        found.sort_by_key(|setting| setting.origin.to_string());
        // A variable a `*_env` key names holds a secret; it is never a setting, even when its
        // name looks like one. The names may come from the file or from the environment.
        let mut secret_variables = Vec::new();
        if let Some(file) = &self.file {
            collect_env_names(&Value::Table(file.table.clone()), "", &mut secret_variables);
        }
        for setting in &found {
            let last = setting.key.last().map_or("", String::as_str);
            collect_env_names(&setting.value, last, &mut secret_variables);
        }
        found.retain(|setting| match &setting.origin {
            Origin::Environment(variable) => !secret_variables.contains(variable),
            Origin::Flag(_) => true,
        });
        self.overrides.extend(found);
        self.merged()?;
        Ok(self)
    }

    /// Adds a flag's value for `key` (dotted, like `database_url`). `flag` names it in
    /// messages, e.g. `--database-url`.
    pub fn with_flag(mut self, flag: &str, key: &str, value: Value) -> Result<Layers, ConfigError> {
        self.overrides.push(Override {
            origin: Origin::Flag(flag.to_owned()),
            key: key.split('.').map(str::to_owned).collect(),
            value,
            text: None,
        });
        self.merged()?;
        Ok(self)
    }

    /// The merged tree of every layer: what was set, and by the highest layer setting it.
    /// Keys no layer sets are absent (they take their defaults).
    pub fn merged(&self) -> Result<Table, ConfigError> {
        let mut table = self
            .file
            .as_ref()
            .map(|file| file.table.clone())
            .unwrap_or_default();
        for setting in &self.overrides {
            insert(&mut table, setting)?;
        }
        Ok(table)
    }

    /// Merges the layers into a validated configuration.
    pub fn resolve(&self) -> Result<Config, ConfigError> {
        let config = self.deserialize()?;
        config.validate().map_err(|error| self.annotate(error))?;
        Ok(config)
    }

    /// Deserializes the merged tree, falling back to strings for values read from text that
    /// are refused where a string is wanted.
    fn deserialize(&self) -> Result<Config, ConfigError> {
        if self.overrides.is_empty() {
            if let Some(file) = &self.file {
                // The file alone: its own text, for line numbers in the messages.
                return toml::from_str::<Config>(&file.text).map_err(|error| ConfigError::Parse {
                    path: file.path.clone(),
                    message: located_message(&file.text, &error),
                });
            }
        }
        let mut layers = self.clone();
        // What serde said of a value read as TOML, before it was tried as a string.
        let mut typed_errors: Vec<Option<String>> = vec![None; layers.overrides.len()];
        // Each round succeeds, fails, or turns one more value into a string.
        loop {
            let merged = layers.merged()?;
            let error = match serde_path_to_error::deserialize(Value::Table(merged)) {
                Ok(config) => return Ok(config),
                Err(error) => error,
            };
            let at: Vec<String> = error
                .path()
                .iter()
                .filter_map(|segment| match segment {
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                    serde_path_to_error::Segment::Enum { variant } => Some(variant.clone()),
                    serde_path_to_error::Segment::Unknown => None,
                })
                .collect();
            let message = error.into_inner().message().to_owned();
            let Some((index, blame)) = layers.culprit(&at, &message) else {
                return Err(layers.unattributed_error(&at, message));
            };
            let setting = &mut layers.overrides[index];
            match blame {
                Blame::Value => {
                    if let Some(text) = setting.text.take() {
                        typed_errors[index] = Some(message);
                        setting.value = Value::String(text);
                        continue;
                    }
                    return Err(ConfigError::Override {
                        key: setting.dotted_key(),
                        origin: setting.origin.clone(),
                        message: typed_errors[index].take().unwrap_or(message),
                    });
                }
                Blame::UnknownKey => {
                    return Err(ConfigError::UnknownKey {
                        key: setting.dotted_key(),
                        origin: setting.origin.clone(),
                        message,
                    })
                }
                Blame::Table => {
                    let mut message = message;
                    if message.contains("sequence") {
                        message.push_str(
                            "; arrays of tables such as [[providers]] can only be set in the \
                             config file",
                        );
                    }
                    return Err(ConfigError::Override {
                        key: at.join("."),
                        origin: setting.origin.clone(),
                        message,
                    });
                }
            }
        }
    }

    /// The override a deserialization error at `at` is about, and how: the one that set
    /// that very key, or named an unknown key under it, or made the table it is in.
    fn culprit(&self, at: &[String], message: &str) -> Option<(usize, Blame)> {
        let last = |matches: &dyn Fn(&Override) -> bool| self.overrides.iter().rposition(matches);
        if let Some(field) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            // The path ends at the unknown key or at the table holding it.
            let mut key = at.to_vec();
            if key.last().map(String::as_str) != Some(field) {
                key.push(field.to_owned());
            }
            if let Some(index) = last(&|setting| setting.key.starts_with(&key)) {
                return Some((index, Blame::UnknownKey));
            }
        }
        if let Some(index) = last(&|setting| setting.key == at) {
            return Some((index, Blame::Value));
        }
        // A table the file does not have, made by an override: its other keys are missing,
        // or it should not be a table at all (`TANDEM_PROVIDERS__0__NAME`).
        let in_file = self
            .file
            .as_ref()
            .is_some_and(|file| lookup(&file.table, at).is_some());
        if at.is_empty() || in_file {
            return None;
        }
        last(&|setting| setting.key.starts_with(at)).map(|index| (index, Blame::Table))
    }

    /// An error no override explains: the file's (reported from its own text, with a line
    /// number) or the tree's as a whole.
    fn unattributed_error(&self, at: &[String], message: String) -> ConfigError {
        if let Some(file) = &self.file {
            if let Err(error) = toml::from_str::<Config>(&file.text) {
                return ConfigError::Parse {
                    path: file.path.clone(),
                    message: located_message(&file.text, &error),
                };
            }
        }
        let key = at.join(".");
        let message = if key.is_empty() {
            message
        } else {
            format!("{key}: {message}")
        };
        ConfigError::Invalid(message)
    }

    /// Adds to a validation message which variable or flag set the key it is about.
    fn annotate(&self, error: ConfigError) -> ConfigError {
        let ConfigError::Invalid(message) = error else {
            return error;
        };
        // The highest override of each key mentioned: the one whose value was used.
        let mut keys = Vec::new();
        let mut origins = Vec::new();
        for setting in self.overrides.iter().rev() {
            let key = setting.dotted_key();
            if mentions_key(&message, &key) && !keys.contains(&key) {
                origins.push(setting.origin.to_string());
                keys.push(key);
            }
        }
        if origins.is_empty() {
            ConfigError::Invalid(message)
        } else {
            ConfigError::Invalid(format!("{message} (set by {})", origins.join(", ")))
        }
    }
}

/// Whether `message` names `key` as a whole word (`limits.max_body_bytes`, not a longer key
/// that starts the same).
fn mentions_key(message: &str, key: &str) -> bool {
    let is_key_char = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '.';
    message.match_indices(key).any(|(start, _)| {
        let before = message[..start].chars().next_back();
        let after = message[start + key.len()..].chars().next();
        !before.is_some_and(is_key_char)
            && !after.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// Reads a variable's value: TOML where it is a number, boolean, quoted string or array of
/// those, else the text itself. The second item is the text when the value is not a string.
fn parse_env_value(text: &str) -> (Value, Option<String>) {
    let parsed = toml::from_str::<Table>(&format!("value = {text}"))
        .ok()
        .filter(|table| table.len() == 1)
        .and_then(|mut table| table.remove("value"));
    match parsed {
        Some(Value::String(string)) => (Value::String(string), None),
        Some(value) if is_plain(&value) => (value, Some(text.to_owned())),
        _ => (Value::String(text.to_owned()), None),
    }
}

/// Numbers, booleans, strings and arrays of them; not dates or tables.
fn is_plain(value: &Value) -> bool {
    match value {
        Value::String(_) | Value::Integer(_) | Value::Float(_) | Value::Boolean(_) => true,
        Value::Array(items) => items.iter().all(is_plain),
        Value::Datetime(_) | Value::Table(_) => false,
    }
}

/// Sets `setting` in `table`, making the tables on the way.
fn insert(table: &mut Table, setting: &Override) -> Result<(), ConfigError> {
    let (last, parents) = setting.key.split_last().expect("keys have a level");
    let mut current = table;
    for (depth, level) in parents.iter().enumerate() {
        let entry = current
            .entry(level.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        current = match entry {
            Value::Table(inner) => inner,
            Value::Array(items) if items.iter().any(Value::is_table) => {
                return Err(ConfigError::UnknownKey {
                    origin: setting.origin.clone(),
                    key: setting.dotted_key(),
                    message: format!(
                        "`{}` is an array of tables, which can only be set in the config file",
                        setting.key[..=depth].join(".")
                    ),
                })
            }
            _ => {
                return Err(ConfigError::UnknownKey {
                    origin: setting.origin.clone(),
                    key: setting.dotted_key(),
                    message: format!(
                        "`{}` is a value, not a table",
                        setting.key[..=depth].join(".")
                    ),
                })
            }
        };
    }
    current.insert(last.clone(), setting.value.clone());
    Ok(())
}

fn lookup<'a>(table: &'a Table, key: &[String]) -> Option<&'a Value> {
    let (first, rest) = key.split_first()?;
    let value = table.get(first)?;
    if rest.is_empty() {
        return Some(value);
    }
    match value {
        Value::Table(inner) => lookup(inner, rest),
        _ => None,
    }
}

/// The string values of every `*_env` key in `value`: names of variables holding secrets.
fn collect_env_names(value: &Value, key: &str, names: &mut Vec<String>) {
    match value {
        Value::Table(table) => {
            for (key, value) in table {
                collect_env_names(value, key, names);
            }
        }
        Value::Array(items) => {
            for item in items {
                collect_env_names(item, key, names);
            }
        }
        Value::String(name) if key.ends_with("_env") => names.push(name.clone()),
        _ => {}
    }
}

/// A TOML error as `line N: message`, the way config file errors have always read.
pub(super) fn located_message(text: &str, error: &toml::de::Error) -> String {
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {}", error.message())
        }
        None => error.message().to_owned(),
    }
}

/// Shown instead of a secret by [`masked`].
pub const MASK: &str = "***";

/// `table` with every secret replaced by [`MASK`]: values of keys ending in `_token`,
/// `_secret`, `_key` or `password`, and the password of any URL
/// (`postgres://user:***@host/db`). `*_env` keys hold variable names and stay as they are.
pub fn masked(table: &Table) -> Table {
    let mut value = Value::Table(table.clone());
    mask(&mut value, "");
    match value {
        Value::Table(table) => table,
        _ => unreachable!("a table stays a table"),
    }
}

fn mask(value: &mut Value, key: &str) {
    match value {
        Value::Table(table) => {
            for (key, value) in table.iter_mut() {
                mask(value, key);
            }
        }
        Value::Array(items) => {
            for item in items {
                mask(item, key);
            }
        }
        _ if is_secret_key(key) => *value = Value::String(MASK.to_owned()),
        Value::String(text) => {
            if let Some(masked) = mask_url_password(text) {
                *text = masked;
            }
        }
        _ => {}
    }
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    if key.ends_with("_env") {
        return false;
    }
    ["token", "secret", "key", "password"]
        .iter()
        .any(|word| key == *word || key.ends_with(&format!("_{word}")))
        || key.ends_with("password")
}

/// `scheme://user:***@host/...` for a URL with a password; `None` for anything else.
/// Done on the text rather than through `url::Url`, which would normalise the rest.
pub(crate) fn mask_url_password(text: &str) -> Option<String> {
    let scheme_end = text.find("://")? + 3;
    let authority_end = text[scheme_end..]
        .find(['/', '?', '#'])
        .map_or(text.len(), |offset| scheme_end + offset);
    let authority = &text[scheme_end..authority_end];
    let at = authority.rfind('@')?;
    let colon = authority[..at].find(':')?;
    Some(format!(
        "{}{}{MASK}{}",
        &text[..scheme_end],
        &authority[..=colon],
        &text[scheme_end + at..]
    ))
}

impl Config {
    /// Reads the config file at `path` (if any), the `TANDEM_*` configuration variables of
    /// the process environment but `ignored` and `flags` (`(flag, key, value)`), and
    /// merges them.
    pub fn load_layered(
        path: Option<&Path>,
        ignored: &[&str],
        flags: &[(&str, &str, Value)],
    ) -> Result<(Config, Layers), ConfigError> {
        let mut layers = Layers::new();
        if let Some(path) = path {
            layers = layers.with_file(path)?;
        }
        layers = layers.with_environment(
            process_environment().filter(|(name, _)| !ignored.contains(&name.as_str())),
        )?;
        for (flag, key, value) in flags {
            layers = layers.with_flag(flag, key, value.clone())?;
        }
        let config = layers.resolve()?;
        Ok((config, layers))
    }
}

/// The process environment, without the variables that are not UTF-8 (none of ours).
fn process_environment() -> impl Iterator<Item = (String, String)> {
    std::env::vars_os()
        .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect()
    }

    fn layers(file: &str, variables: &[(&str, &str)]) -> Result<Layers, ConfigError> {
        Layers::new()
            .with_file_text("tandem.toml", file.to_owned())?
            .with_environment(env(variables))
    }

    #[track_caller]
    fn resolve(file: &str, variables: &[(&str, &str)]) -> Config {
        layers(file, variables)
            .and_then(|layers| layers.resolve())
            .unwrap_or_else(|error| panic!("{error}"))
    }

    #[track_caller]
    fn refused(file: &str, variables: &[(&str, &str)]) -> String {
        match layers(file, variables).and_then(|layers| layers.resolve()) {
            Ok(config) => panic!("accepted: {config:?}"),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn environment_beats_file_and_flag_beats_environment() {
        let file =
            "bind = \"127.0.0.1:1\"\n[limits]\nmax_body_bytes = 10\nrequest_timeout_ms = 7\n";
        let config = resolve(file, &[]);
        assert_eq!(config.limits.max_body_bytes, 10);
        let config = resolve(file, &[("TANDEM_LIMITS__MAX_BODY_BYTES", "1000")]);
        assert_eq!(config.limits.max_body_bytes, 1000);
        // Keys the environment does not set keep the file's value.
        assert_eq!(config.limits.request_timeout_ms, 7);
        assert_eq!(config.bind, Some("127.0.0.1:1".parse().unwrap()));
        let config = resolve(file, &[("TANDEM_BIND", "127.0.0.1:2")]);
        assert_eq!(config.bind, Some("127.0.0.1:2".parse().unwrap()));
        let config = layers(file, &[("TANDEM_BIND", "127.0.0.1:2")])
            .unwrap()
            .with_flag("--bind", "bind", Value::String("127.0.0.1:3".to_owned()))
            .unwrap()
            .resolve()
            .unwrap();
        assert_eq!(config.bind, Some("127.0.0.1:3".parse().unwrap()));
    }

    #[test]
    fn values_are_read_as_toml_where_they_parse() {
        let config = resolve(
            "",
            &[
                ("TANDEM_METRICS__ENABLED", "false"),
                ("TANDEM_AUTH__PUBLIC_URL", "https://tandem.example.com"),
                ("TANDEM_TIERS__FREE__PROVIDERS", "[\"local\"]"),
                ("TANDEM_PRICES__M__PROMPT_PER_MILLION_USD", "1.5"),
            ],
        );
        assert!(!config.metrics.enabled);
        assert_eq!(
            config.auth.public_url.as_deref(),
            Some("https://tandem.example.com")
        );
        assert_eq!(
            config.tiers["free"].providers,
            Some(vec!["local".to_owned()])
        );
        assert_eq!(config.prices["m"].prompt_per_million_usd, 1.5);
    }

    #[test]
    fn a_number_is_a_string_where_the_key_wants_one() {
        let config = resolve("", &[("TANDEM_METRICS__TOKEN_ENV", "2024")]);
        assert_eq!(config.metrics.token_env.as_deref(), Some("2024"));
    }

    #[test]
    fn unknown_variables_are_refused_with_their_name() {
        let message = refused("", &[("TANDEM_LIMITS__MAX_BODY", "1")]);
        assert!(
            message.contains("TANDEM_LIMITS__MAX_BODY")
                && message.contains("limits.max_body")
                && message.contains("unknown field `max_body`"),
            "{message}"
        );
        let message = refused("", &[("TANDEM_NOPE__X", "1")]);
        assert!(
            message.contains("TANDEM_NOPE__X") && message.contains("unknown field `nope`"),
            "{message}"
        );
        let message = refused("", &[("TANDEM_LIMITS__", "1")]);
        assert!(message.contains("TANDEM_LIMITS__"), "{message}");
    }

    #[test]
    fn mistyped_variables_name_the_variable_and_the_key() {
        let message = refused("", &[("TANDEM_LIMITS__MAX_BODY_BYTES", "-1")]);
        assert_eq!(
            message,
            "invalid config: limits.max_body_bytes from environment variable \
             TANDEM_LIMITS__MAX_BODY_BYTES: invalid value: integer `-1`, expected usize"
        );
        let message = refused("", &[("TANDEM_LIMITS__MAX_BODY_BYTES", "lots")]);
        assert!(
            message.contains("TANDEM_LIMITS__MAX_BODY_BYTES"),
            "{message}"
        );
        // Checks after deserialization name the variable too.
        let message = refused("", &[("TANDEM_LIMITS__MAX_BODY_BYTES", "0")]);
        assert_eq!(
            message,
            "invalid config: limits.max_body_bytes must be at least 1 (set by environment \
             variable TANDEM_LIMITS__MAX_BODY_BYTES)"
        );
    }

    #[test]
    fn arrays_of_tables_are_file_only() {
        let file = "[[providers]]\nname = \"offline\"\nkind = \"local\"\n";
        let message = refused(file, &[("TANDEM_PROVIDERS__0__NAME", "x")]);
        assert!(
            message.contains("TANDEM_PROVIDERS__0__NAME")
                && message.contains("can only be set in the config file"),
            "{message}"
        );
        let message = refused("", &[("TANDEM_PROVIDERS__0__NAME", "x")]);
        assert!(
            message.contains("TANDEM_PROVIDERS__0__NAME")
                && message.contains("can only be set in the config file"),
            "{message}"
        );
    }

    #[test]
    fn other_tandem_variables_are_not_configuration() {
        let config = resolve(
            "[metrics]\ntoken_env = \"TANDEM_METRICS__TOKEN\"\n",
            &[
                ("TANDEM_LOG", "debug"),
                ("TANDEM_SERVER", "http://x"),
                ("TANDEM_API_KEY", "tdm_x"),
                ("TANDEM_CONFIG", "tandem.toml"),
                ("TANDEM_TEST_SESSION_SECRET", "s"),
                ("OTHER__THING", "1"),
                // Named by metrics.token_env: a secret, not the key `metrics.token`.
                ("TANDEM_METRICS__TOKEN", "secret"),
            ],
        );
        assert_eq!(
            config,
            Config::parse_str("[metrics]\ntoken_env = \"TANDEM_METRICS__TOKEN\"\n").unwrap()
        );
        // Named by a `*_env` key the environment sets.
        let config = resolve(
            "",
            &[
                ("TANDEM_SESSIONS__JWT_SECRET_ENV", "TANDEM_SESSIONS__SECRET"),
                ("TANDEM_SESSIONS__SECRET", "not a setting"),
            ],
        );
        assert_eq!(
            config.sessions.jwt_secret_env.as_deref(),
            Some("TANDEM_SESSIONS__SECRET")
        );
        // Empty counts as unset.
        let config = resolve("", &[("TANDEM_LIMITS__MAX_BODY_BYTES", "")]);
        assert_eq!(config.limits, Default::default());
    }

    #[test]
    fn file_errors_keep_their_line_numbers() {
        let message = refused(
            "[auth]\nttl = 1\n",
            &[("TANDEM_LIMITS__MAX_BODY_BYTES", "5")],
        );
        assert_eq!(
            message,
            "invalid config file tandem.toml: line 2: unknown field `ttl`, expected one of \
             `key_cache_ttl_secs`, `public_url`, `device_code_ttl_secs`, \
             `device_poll_interval_secs`, `identity_providers`, `new_user_tier`"
        );
        let message = refused("[limits\n", &[]);
        assert!(message.contains("line 1"), "{message}");
    }

    #[test]
    fn environment_may_complete_a_table_of_the_file() {
        let config = resolve(
            "[enterprise]\njwks_url = \"https://idp.example.com/jwks\"\n\
             issuer = \"https://idp.example.com\"\n",
            &[("TANDEM_ENTERPRISE__AUDIENCE", "tandem")],
        );
        assert_eq!(config.enterprise.unwrap().audience, "tandem");
    }

    #[test]
    fn redis_url_has_a_name_of_its_own() {
        let config = resolve("", &[("TANDEM_REDIS_URL", "redis://cache.internal:6379/0")]);
        assert_eq!(
            config.redis.url.as_deref(),
            Some("redis://cache.internal:6379/0")
        );
        // Over the file, and under the `__` form of the same key.
        let file = "[redis]\nurl = \"redis://file:6379\"\ninstances = 3\n";
        let config = resolve(file, &[("TANDEM_REDIS_URL", "redis://env:6379")]);
        assert_eq!(config.redis.url.as_deref(), Some("redis://env:6379"));
        assert_eq!(config.redis.instances, 3);
        let config = resolve(
            file,
            &[
                ("TANDEM_REDIS_URL", "redis://env:6379"),
                ("TANDEM_REDIS__URL", "redis://sectioned:6379"),
            ],
        );
        assert_eq!(config.redis.url.as_deref(), Some("redis://sectioned:6379"));
        // A refused value names the variable, with the password masked.
        let message = refused("", &[("TANDEM_REDIS_URL", "http://:hunter2@cache:6379")]);
        assert_eq!(
            message,
            "invalid config: redis.url must start with redis://, rediss:// or unix://, got \
             `http://:***@cache:6379` (set by environment variable TANDEM_REDIS_URL)"
        );
    }

    #[test]
    fn the_redis_password_is_masked() {
        let table = layers(
            "",
            &[
                ("TANDEM_REDIS_URL", "redis://:hunter2@cache.internal:6379/0"),
                ("TANDEM_REDIS__INSTANCES", "3"),
            ],
        )
        .unwrap()
        .merged()
        .unwrap();
        let shown = toml::to_string(&masked(&table)).unwrap();
        insta::assert_snapshot!(shown, @r#"
        [redis]
        instances = 3
        url = "redis://:***@cache.internal:6379/0"
        "#);
        let table: Table =
            toml::from_str("[redis]\nurl = \"rediss://default:hunter2@cache:6380\"\n").unwrap();
        let shown = toml::to_string(&masked(&table)).unwrap();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("rediss://default:***@cache:6380"), "{shown}");
    }

    #[test]
    fn secrets_are_masked() {
        let table: Table = toml::from_str(
            "database_url = \"postgres://admin:hunter2@db.internal:5432/tandem?sslmode=require\"\n\
             plain_url = \"https://example.com/a:b@c\"\n\
             [metrics]\ntoken_env = \"METRICS_TOKEN\"\n\
             [x]\nadmin_token = \"t\"\nclient_secret = \"s\"\npassword = \"p\"\n\
             db_password = 5\nsecrets = [\"not masked: the key is a list name\"]\n",
        )
        .unwrap();
        let shown = toml::to_string(&masked(&table)).unwrap();
        insta::assert_snapshot!(shown, @r#"
        database_url = "postgres://admin:***@db.internal:5432/tandem?sslmode=require"
        plain_url = "https://example.com/a:b@c"

        [metrics]
        token_env = "METRICS_TOKEN"

        [x]
        admin_token = "***"
        client_secret = "***"
        db_password = "***"
        password = "***"
        secrets = ["not masked: the key is a list name"]
        "#);
    }
}
