//! The state every handler shares: configuration, database pool, providers, key cache.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache;
use sqlx::SqlitePool;

use crate::config::Config;
use crate::extract::AuthUser;
use crate::keys::KeyHash;
use crate::providers::{Provider, ProviderRegistry, ProviderSetupError};
use crate::rate_limit::RateLimiter;
use crate::routing::ProviderRouter;
use crate::tiers::{TierPolicy, Tiers};
use crate::usage::UsageRecorder;

/// Most keys remembered by the auth cache.
const KEY_CACHE_CAPACITY: u64 = 10_000;

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The database pool.
    pub db: SqlitePool,
    /// The model providers; requests go to the first.
    pub providers: Arc<ProviderRegistry>,
    /// Successful key checks by key hash, for `auth.key_cache_ttl_secs`; `None` when 0.
    pub(crate) key_cache: Option<Cache<KeyHash, AuthUser>>,
    /// The deployment's tiers, resolved from the configuration.
    pub tiers: Arc<Tiers>,
    /// Rate limits and quotas of this instance.
    pub limiter: Arc<RateLimiter>,
    /// Usage records, committed in batches (group commit).
    pub usage: UsageRecorder,
    /// Which providers answer which tier and task, with fallback and circuit breakers.
    pub router: Arc<ProviderRouter>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("config", &self.config)
            .field("providers", &self.providers)
            .field("key_cache", &self.key_cache.is_some())
            .finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state, reading provider keys from the process environment.
    pub fn new(config: Config, db: SqlitePool) -> Result<AppState, ProviderSetupError> {
        AppState::with_env(config, db, &|name| std::env::var(name).ok())
    }

    /// Builds the state, reading provider keys through `env`.
    pub fn with_env(
        config: Config,
        db: SqlitePool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AppState, ProviderSetupError> {
        let providers = ProviderRegistry::from_config(&config, env)?;
        Ok(AppState::with_providers(config, db, providers))
    }

    /// Builds the state around providers made elsewhere. Starts the usage writer, so it
    /// needs a Tokio runtime.
    pub fn with_providers(config: Config, db: SqlitePool, providers: ProviderRegistry) -> AppState {
        let ttl = config.auth.key_cache_ttl_secs;
        let key_cache = (ttl > 0).then(|| {
            Cache::builder()
                .max_capacity(KEY_CACHE_CAPACITY)
                .time_to_live(Duration::from_secs(ttl))
                .build()
        });
        // `Config::load` validated the tiers already; a configuration built in code that
        // was not validated gets the defaults, loudly.
        let tiers = config.tiers().unwrap_or_else(|error| {
            tracing::error!(%error, "invalid [tiers] configuration; using the default tiers");
            Tiers::default()
        });
        let limiter = RateLimiter::new(&tiers);
        let usage = UsageRecorder::spawn(db.clone());
        let router = ProviderRouter::from_config(&config, &providers);
        AppState {
            config: Arc::new(config),
            db,
            providers: Arc::new(providers),
            key_cache,
            tiers: Arc::new(tiers),
            limiter: Arc::new(limiter),
            usage,
            router: Arc::new(router),
        }
    }

    /// The policy of `tier`. A user whose tier the configuration no longer defines may
    /// do nothing until an admin moves them (`tandem-cloud users set-tier`).
    pub fn policy(
        &self,
        tier: &tandem_shared::Tier,
    ) -> Result<&TierPolicy, crate::error::AppError> {
        self.tiers
            .get(tier)
            .ok_or_else(|| crate::error::AppError::UnknownTier(tier.clone()))
    }

    /// The kind (`ollama`, `openai`, ...) of the provider named `name`.
    pub fn provider_kind(&self, name: &str) -> &str {
        self.config
            .providers
            .iter()
            .find(|provider| provider.name == name)
            .map_or("local", |provider| provider.kind.as_str())
    }

    /// The providers `policy` allows, in configuration order.
    pub fn allowed_providers<'a>(
        &'a self,
        policy: &'a TierPolicy,
    ) -> impl Iterator<Item = &'a Arc<dyn Provider>> + 'a {
        self.providers.iter().filter(move |provider| {
            policy.allows_provider(provider.name(), self.provider_kind(provider.name()))
        })
    }
}
