//! Tiers as data: what each plan may do and how much, resolved once from the `[tiers.*]`
//! tables of the configuration over the built-in defaults.
//!
//! A table named like a default tier (`free`, `pro`, `enterprise`) overrides the keys it
//! sets and keeps the defaults for the rest; a table with a new name adds a tier and must
//! set every key, so nothing about a paying plan is left to a guess.

use std::collections::BTreeMap;
use std::fmt;

use tandem_shared::Tier;

use crate::config::{ConfigError, ProviderConfig, ProviderKind, TierConfig};

/// What a request uses, as a tier's `features` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Feature {
    InlineCompletion,
    Chat,
    Explanation,
    CodeActions,
}

impl Feature {
    pub const ALL: [Feature; 4] = [
        Feature::InlineCompletion,
        Feature::Chat,
        Feature::Explanation,
        Feature::CodeActions,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Feature::InlineCompletion => "inline_completion",
            Feature::Chat => "chat",
            Feature::Explanation => "explanation",
            Feature::CodeActions => "code_actions",
        }
    }

    fn parse(name: &str) -> Option<Feature> {
        Feature::ALL
            .into_iter()
            .find(|feature| feature.as_str() == name)
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tier's limits and permissions with the defaults applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierPolicy {
    pub name: Tier,
    /// Requests per clock hour (UTC); 0 refuses every request.
    pub requests_per_hour: u32,
    /// Requests per day (UTC).
    pub requests_per_day: u32,
    /// Requests per minute at the fastest, as a burst limit (GCRA); 0 = no burst limit.
    pub burst_per_minute: u32,
    /// Prompt plus completion tokens per day (UTC).
    pub tokens_per_day: u64,
    /// Largest document a request may be about, in MiB.
    pub max_file_size_mb: u32,
    /// Most context a completion request may carry, in estimated tokens.
    pub max_context_tokens: u32,
    /// `[[providers]]` names or provider kinds; `["*"]` allows all.
    pub providers: Vec<String>,
    /// Features; `["*"]` allows all.
    pub features: Vec<String>,
}

impl TierPolicy {
    /// Whether this tier may use `feature`.
    pub fn allows_feature(&self, feature: Feature) -> bool {
        self.features
            .iter()
            .any(|allowed| allowed == "*" || allowed == feature.as_str())
    }

    /// Whether this tier may use the provider configured as `provider`, by its name or
    /// its kind.
    pub fn allows_provider(&self, name: &str, kind: &str) -> bool {
        self.providers
            .iter()
            .any(|allowed| allowed == "*" || allowed == name || allowed == kind)
    }

    /// The largest document size allowed, in bytes.
    pub fn max_file_size_bytes(&self) -> u64 {
        u64::from(self.max_file_size_mb) * 1024 * 1024
    }
}

/// Every tier of the deployment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiers {
    policies: BTreeMap<Tier, TierPolicy>,
}

impl Default for Tiers {
    fn default() -> Self {
        Tiers::resolve(&BTreeMap::new(), &[]).unwrap_or_else(|_| Tiers {
            policies: BTreeMap::new(),
        })
    }
}

impl Tiers {
    /// The built-in tiers with `tables` (`[tiers.<name>]`) applied; `providers` are the
    /// configured `[[providers]]`, which a tier's `providers` list may name.
    pub fn resolve(
        tables: &BTreeMap<String, TierConfig>,
        providers: &[ProviderConfig],
    ) -> Result<Tiers, ConfigError> {
        let mut policies = BTreeMap::new();
        for name in Tier::DEFAULTS {
            let tier = Tier::new(name).map_err(|error| ConfigError::Invalid(error.to_string()))?;
            policies.insert(tier.clone(), default_policy(tier));
        }
        for (name, table) in tables {
            let tier = Tier::new(name)
                .map_err(|error| ConfigError::Invalid(format!("[tiers.{name}]: {error}")))?;
            let policy = match policies.remove(&tier) {
                Some(defaults) => apply(defaults, table),
                None => new_policy(&tier, table)?,
            };
            check(&policy, providers)?;
            policies.insert(tier, policy);
        }
        Ok(Tiers { policies })
    }

    /// The policy of `tier`, if the deployment has that tier.
    pub fn get(&self, tier: &Tier) -> Option<&TierPolicy> {
        self.policies.get(tier)
    }

    /// Every tier, by name.
    pub fn all(&self) -> impl Iterator<Item = &TierPolicy> {
        self.policies.values()
    }

    /// The tier the development user gets: `enterprise` when defined, otherwise the one
    /// with the largest daily quota.
    pub fn top(&self) -> Option<&TierPolicy> {
        self.policies.get(&Tier::enterprise()).or_else(|| {
            self.policies
                .values()
                .max_by_key(|policy| policy.requests_per_day)
        })
    }

    /// The smallest tier (by daily quota) that allows `feature`, to tell a refused user
    /// what to upgrade to.
    pub fn cheapest_with_feature(&self, feature: Feature) -> Option<&TierPolicy> {
        self.policies
            .values()
            .filter(|policy| policy.allows_feature(feature))
            .min_by_key(|policy| policy.requests_per_day)
    }

    /// The smallest tier (by daily quota) that allows the provider `name` of `kind`.
    pub fn cheapest_with_provider(&self, name: &str, kind: &str) -> Option<&TierPolicy> {
        self.policies
            .values()
            .filter(|policy| policy.allows_provider(name, kind))
            .min_by_key(|policy| policy.requests_per_day)
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// The defaults of the table. Burst and token limits are ours: a burst allows a
/// minute of fast typing without letting one client drain an hour's quota in seconds.
fn default_policy(name: Tier) -> TierPolicy {
    match name.as_str() {
        Tier::FREE => TierPolicy {
            name,
            requests_per_hour: 50,
            requests_per_day: 200,
            burst_per_minute: 20,
            tokens_per_day: 400_000,
            max_file_size_mb: 1,
            max_context_tokens: 4_000,
            providers: strings(&["ollama", "local"]),
            features: strings(&["chat", "explanation"]),
        },
        Tier::PRO => TierPolicy {
            name,
            requests_per_hour: 500,
            requests_per_day: 2_000,
            burst_per_minute: 120,
            tokens_per_day: 8_000_000,
            max_file_size_mb: 10,
            max_context_tokens: 16_000,
            providers: strings(&["ollama", "local", "openai", "anthropic", "google"]),
            features: strings(&["chat", "explanation", "code_actions", "inline_completion"]),
        },
        _ => TierPolicy {
            name,
            requests_per_hour: 5_000,
            requests_per_day: 20_000,
            burst_per_minute: 0,
            tokens_per_day: 100_000_000,
            max_file_size_mb: 100,
            max_context_tokens: 32_000,
            providers: strings(&["*"]),
            features: strings(&["*"]),
        },
    }
}

fn apply(defaults: TierPolicy, table: &TierConfig) -> TierPolicy {
    TierPolicy {
        name: defaults.name,
        requests_per_hour: table
            .requests_per_hour
            .unwrap_or(defaults.requests_per_hour),
        requests_per_day: table.requests_per_day.unwrap_or(defaults.requests_per_day),
        burst_per_minute: table.burst_per_minute.unwrap_or(defaults.burst_per_minute),
        tokens_per_day: table.tokens_per_day.unwrap_or(defaults.tokens_per_day),
        max_file_size_mb: table.max_file_size_mb.unwrap_or(defaults.max_file_size_mb),
        max_context_tokens: table
            .max_context_tokens
            .unwrap_or(defaults.max_context_tokens),
        providers: table.providers.clone().unwrap_or(defaults.providers),
        features: table.features.clone().unwrap_or(defaults.features),
    }
}

fn new_policy(tier: &Tier, table: &TierConfig) -> Result<TierPolicy, ConfigError> {
    fn required<T: Clone>(tier: &Tier, key: &str, value: &Option<T>) -> Result<T, ConfigError> {
        value.clone().ok_or_else(|| {
            ConfigError::Invalid(format!(
                "tiers.{tier}.{key} is missing: a tier other than free, pro and enterprise \
                 must set every key"
            ))
        })
    }
    Ok(TierPolicy {
        name: tier.clone(),
        requests_per_hour: required(tier, "requests_per_hour", &table.requests_per_hour)?,
        requests_per_day: required(tier, "requests_per_day", &table.requests_per_day)?,
        burst_per_minute: required(tier, "burst_per_minute", &table.burst_per_minute)?,
        tokens_per_day: required(tier, "tokens_per_day", &table.tokens_per_day)?,
        max_file_size_mb: required(tier, "max_file_size_mb", &table.max_file_size_mb)?,
        max_context_tokens: required(tier, "max_context_tokens", &table.max_context_tokens)?,
        providers: required(tier, "providers", &table.providers)?,
        features: required(tier, "features", &table.features)?,
    })
}

fn check(policy: &TierPolicy, providers: &[ProviderConfig]) -> Result<(), ConfigError> {
    let at = format!("tiers.{}", policy.name);
    let invalid = |message: String| Err(ConfigError::Invalid(message));
    if policy.max_context_tokens == 0 {
        return invalid(format!("{at}.max_context_tokens must be at least 1"));
    }
    if policy.max_file_size_mb == 0 {
        return invalid(format!("{at}.max_file_size_mb must be at least 1"));
    }
    if policy.requests_per_hour > policy.requests_per_day {
        return invalid(format!(
            "{at}: requests_per_hour ({}) is more than requests_per_day ({})",
            policy.requests_per_hour, policy.requests_per_day
        ));
    }
    for feature in &policy.features {
        if feature != "*" && Feature::parse(feature).is_none() {
            return invalid(format!(
                "{at}.features: unknown feature `{feature}` (expected inline_completion, chat, \
                 explanation, code_actions or \"*\")"
            ));
        }
    }
    for provider in &policy.providers {
        let known = provider == "*"
            || ProviderKind::ALL
                .iter()
                .any(|kind| kind.as_str() == provider)
            || providers
                .iter()
                .any(|configured| configured.name == *provider);
        if !known {
            return invalid(format!(
                "{at}.providers: `{provider}` is neither a [[providers]] name nor a provider \
                 kind (ollama, local, openai, anthropic, google, \"*\")"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(toml_text: &str) -> Result<Tiers, ConfigError> {
        let tables: BTreeMap<String, TierConfig> = toml::from_str(toml_text).unwrap();
        Tiers::resolve(&tables, &[])
    }

    #[test]
    fn defaults_follow_the_published_table() {
        let tiers = Tiers::default();
        let free = tiers.get(&Tier::free()).unwrap();
        assert_eq!(
            (
                free.requests_per_hour,
                free.requests_per_day,
                free.max_file_size_mb
            ),
            (50, 200, 1)
        );
        assert!(free.allows_feature(Feature::Chat));
        assert!(!free.allows_feature(Feature::InlineCompletion));
        assert!(free.allows_provider("my-ollama", "ollama"));
        assert!(!free.allows_provider("gpt", "openai"));
        let pro = tiers.get(&Tier::pro()).unwrap();
        assert_eq!(
            (pro.requests_per_hour, pro.max_context_tokens),
            (500, 16_000)
        );
        assert!(pro.allows_feature(Feature::InlineCompletion));
        assert!(pro.allows_provider("claude", "anthropic"));
        let enterprise = tiers.get(&Tier::enterprise()).unwrap();
        assert_eq!(enterprise.max_file_size_bytes(), 100 * 1024 * 1024);
        assert!(enterprise.allows_provider("anything", "vllm"));
        assert_eq!(tiers.top().unwrap().name, Tier::enterprise());
        assert_eq!(
            tiers
                .cheapest_with_feature(Feature::InlineCompletion)
                .unwrap()
                .name,
            Tier::pro()
        );
    }

    #[test]
    fn a_table_overrides_only_what_it_sets_and_new_tiers_set_everything() {
        let tiers = resolve("[free]\nrequests_per_hour = 10\n").unwrap();
        let free = tiers.get(&Tier::free()).unwrap();
        assert_eq!((free.requests_per_hour, free.requests_per_day), (10, 200));

        let team = "[team]\nrequests_per_hour = 100\nrequests_per_day = 1000\n\
                    burst_per_minute = 0\ntokens_per_day = 1000000\nmax_file_size_mb = 5\n\
                    max_context_tokens = 8000\nproviders = [\"*\"]\nfeatures = [\"chat\"]\n";
        let tiers = resolve(team).unwrap();
        assert_eq!(
            tiers
                .get(&Tier::new("team").unwrap())
                .unwrap()
                .max_file_size_mb,
            5
        );
        assert_eq!(tiers.all().count(), 4);

        let error = resolve("[team]\nrequests_per_hour = 1\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("tiers.team.requests_per_day is missing"),
            "{error}"
        );
    }

    #[test]
    fn bad_values_name_the_key() {
        for (text, expected) in [
            (
                "[free]\nfeatures = [\"telepathy\"]\n",
                "unknown feature `telepathy`",
            ),
            (
                "[free]\nproviders = [\"nowhere\"]\n",
                "`nowhere` is neither",
            ),
            (
                "[pro]\nmax_context_tokens = 0\n",
                "tiers.pro.max_context_tokens",
            ),
            (
                "[pro]\nrequests_per_hour = 5000\n",
                "more than requests_per_day",
            ),
            (
                "[\"Gold Tier\"]\nrequests_per_hour = 1\n",
                "not a tier name",
            ),
        ] {
            let error = resolve(text).unwrap_err().to_string();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
