//! The state every handler shares: configuration, database pool, providers, key cache.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::db::Pool;
use moka::future::Cache;

use crate::config::Config;
use crate::extract::CachedKey;
use crate::keys::KeyHash;
use crate::metrics::Metrics;
use crate::providers::{Provider, ProviderRegistry, ProviderSetupError};
use crate::rate_limit::Limits;
use crate::routing::ProviderRouter;
use crate::tiers::{TierPolicy, Tiers};
use crate::usage::UsageRecorder;

/// Most keys remembered by the auth cache.
const KEY_CACHE_CAPACITY: u64 = 10_000;
/// How often the database is asked whether a tier changed or a key was revoked.
pub const AUTH_EPOCH_POLL: Duration = Duration::from_millis(250);

/// Cheap to clone: everything inside is shared.
#[derive(Clone)]
pub struct AppState {
    /// The validated configuration.
    pub config: Arc<Config>,
    /// The database pool.
    pub db: Pool,
    /// The model providers; requests go to the first.
    pub providers: Arc<ProviderRegistry>,
    /// Successful key checks by key hash, for `auth.key_cache_ttl_secs`; `None` when 0.
    pub(crate) key_cache: Option<Arc<Cache<KeyHash, CachedKey>>>,
    /// The deployment's tiers, resolved from the configuration.
    pub tiers: Arc<Tiers>,
    /// Rate limits and quotas: in Redis with `[redis] url`, of this instance without.
    pub limits: Arc<Limits>,
    /// Usage records, committed in batches (group commit).
    pub usage: UsageRecorder,
    /// Which providers answer which tier and task, with fallback and circuit breakers.
    pub router: Arc<ProviderRouter>,
    /// Prometheus metrics of this instance.
    pub metrics: Arc<Metrics>,
    /// The bearer token `GET /metrics` requires (`metrics.token_env`); never logged.
    pub(crate) metrics_token: Option<Arc<str>>,
    /// Sign-in codes handed out per client address, which anyone may ask for.
    pub(crate) device_code_limiter: Arc<PerAddressLimit>,
    /// Browser sign-ins started per client address (each stores an attempt).
    pub(crate) sign_in_limiter: Arc<PerAddressLimit>,
    /// Signs browser sessions; `None` when `[sessions]` names no secret or key.
    pub sessions: Option<Arc<crate::sessions::SessionSigner>>,
    /// The sign-in providers of the account pages (`[[auth.identity_providers]]`).
    pub(crate) sign_in: Arc<crate::web::sign_in_providers::SignInProviders>,
    /// Checks bearer JWTs of the organisation's identity provider; `None` without
    /// `[enterprise]`.
    pub(crate) enterprise: Option<Arc<crate::enterprise::EnterpriseVerifier>>,
}

/// Sign-in codes one address may ask for per minute (a burst of as many): plenty for
/// people, a wall for a script filling the table.
pub const DEVICE_CODES_PER_MINUTE: u32 = 10;
/// Browser sign-ins one address may start per minute: a person retrying, or a classroom
/// behind one address, stays well below; a script filling `sign_in_attempts` does not.
pub const SIGN_INS_PER_MINUTE: u32 = 30;

/// A limit on what anyone may ask for without signing in, per client address (GCRA,
/// `governor`), with a burst of a minute's worth.
pub struct PerAddressLimit(governor::DefaultKeyedRateLimiter<String>);

impl PerAddressLimit {
    pub fn per_minute(count: u32) -> PerAddressLimit {
        let count = std::num::NonZeroU32::new(count).unwrap_or(std::num::NonZeroU32::MIN);
        PerAddressLimit(governor::DefaultKeyedRateLimiter::keyed(
            governor::Quota::per_minute(count),
        ))
    }

    /// Whether `address` may have one more now.
    pub fn allow(&self, address: &str) -> bool {
        if self.0.len() > 10_000 {
            // Addresses seen once long ago need no state.
            self.0.retain_recent();
        }
        self.0.check_key(&address.to_owned()).is_ok()
    }
}

/// Why the state could not be built at start-up.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Provider(#[from] ProviderSetupError),
    /// A sign-in provider cannot be set up (its secret is missing).
    #[error(transparent)]
    SignIn(#[from] crate::web::sign_in_providers::SignInSetupError),
    /// `metrics.token_env` names a variable that is not set (or is empty).
    #[error("environment variable `{variable}` (named by metrics.token_env) is not set")]
    MetricsToken { variable: String },
    /// `[sessions]` points at a secret or key that cannot sign (the message names it).
    #[error("{error}")]
    Sessions {
        /// The setting at fault, such as `sessions.private_key_file`.
        setting: &'static str,
        error: crate::sessions::SessionError,
    },
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
    pub fn new(config: Config, db: Pool) -> Result<AppState, StateError> {
        AppState::with_env(config, db, &|name| std::env::var(name).ok())
    }

    /// Builds the state, reading provider keys through `env`.
    pub fn with_env(
        config: Config,
        db: Pool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<AppState, StateError> {
        let providers = ProviderRegistry::from_config(&config, env)?;
        let metrics_token = match &config.metrics.token_env {
            Some(variable) => match env(variable) {
                Some(token) if !token.trim().is_empty() => Some(Arc::from(token.trim())),
                _ => {
                    return Err(StateError::MetricsToken {
                        variable: variable.clone(),
                    })
                }
            },
            None => None,
        };
        let issuer = config
            .auth
            .public_url
            .clone()
            .unwrap_or_else(|| "tandem-cloud".to_owned());
        let sessions = crate::sessions::SessionSigner::from_config(&config.sessions, &issuer, env)
            .map_err(|error| StateError::Sessions {
                setting: error.setting(),
                error,
            })?
            .map(Arc::new);
        let mut state = AppState::with_providers(config, db, providers);
        state.metrics_token = metrics_token;
        state.sessions = sessions;
        state.sign_in = Arc::new(crate::web::sign_in_providers::SignInProviders::from_config(
            &state.config,
            env,
        )?);
        Ok(state)
    }

    /// Builds the state around providers made elsewhere. Starts the usage writer, so it
    /// needs a Tokio runtime.
    pub fn with_providers(config: Config, db: Pool, providers: ProviderRegistry) -> AppState {
        let ttl = config.auth.key_cache_ttl_secs;
        let key_cache = (ttl > 0).then(|| {
            Arc::new(
                Cache::builder()
                    .max_capacity(KEY_CACHE_CAPACITY)
                    .time_to_live(Duration::from_secs(ttl))
                    .build(),
            )
        });
        // `Config::load` validated the tiers already; a configuration built in code that
        // was not validated gets the defaults, loudly.
        let tiers = config.tiers().unwrap_or_else(|error| {
            tracing::error!(%error, "invalid [tiers] configuration; using the default tiers");
            Tiers::default()
        });
        let enterprise = config.enterprise.clone().map(|enterprise| {
            Arc::new(crate::enterprise::EnterpriseVerifier::from_config(
                enterprise, &tiers,
            ))
        });
        // The caches of who a credential speaks for follow the auth epoch.
        let mut watched: Vec<Weak<dyn AuthCache>> = Vec::new();
        if let Some(cache) = &key_cache {
            watched.push(Arc::downgrade(cache) as Weak<dyn AuthCache>);
        }
        if let Some(verifier) = &enterprise {
            watched.push(Arc::downgrade(verifier) as Weak<dyn AuthCache>);
        }
        if !watched.is_empty() {
            tokio::spawn(watch_auth_epoch(db.clone(), watched));
        }
        let mut metrics = Metrics::new();
        if config.redis.url.is_some() {
            metrics.register_redis();
        }
        let metrics = Arc::new(metrics);
        // `Config::load` validated the URL; one built in code that was not gets limits per
        // instance, loudly, as with the tiers above.
        let limits =
            Limits::from_config(&tiers, &config.redis, metrics.clone()).unwrap_or_else(|error| {
                tracing::error!(%error, "unusable [redis] configuration; limits are per instance");
                Limits::local(&tiers)
            });
        let usage = UsageRecorder::spawn(db.clone(), metrics.clone());
        let router = ProviderRouter::from_config(&config, &providers);
        AppState {
            config: Arc::new(config),
            db,
            providers: Arc::new(providers),
            key_cache,
            tiers: Arc::new(tiers),
            limits: Arc::new(limits),
            usage,
            router: Arc::new(router),
            metrics,
            metrics_token: None,
            sessions: None,
            enterprise,
            sign_in: Arc::new(crate::web::sign_in_providers::SignInProviders::none()),
            device_code_limiter: Arc::new(PerAddressLimit::per_minute(DEVICE_CODES_PER_MINUTE)),
            sign_in_limiter: Arc::new(PerAddressLimit::per_minute(SIGN_INS_PER_MINUTE)),
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

    /// Forgets every cached key check of this instance, after a key was revoked here,
    /// so the revocation holds at once here; other instances follow the auth epoch.
    pub(crate) fn forget_cached_keys(&self) {
        if let Some(cache) = &self.key_cache {
            cache.invalidate_all();
        }
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

/// A cache of who a credential speaks for, emptied when the auth epoch moves.
trait AuthCache: Send + Sync {
    /// Forgets every entry.
    fn forget_all(&self);
}

/// The API-key cache.
impl AuthCache for Cache<KeyHash, CachedKey> {
    fn forget_all(&self) {
        self.invalidate_all();
    }
}

/// The verified identity provider tokens.
impl AuthCache for crate::enterprise::EnterpriseVerifier {
    fn forget_all(&self) {
        self.forget_callers();
    }
}

/// Empties the auth caches (API keys, identity provider tokens) whenever the database's
/// auth epoch moves (a tier changed, a key was revoked, a user was deleted), so those
/// changes apply within [`AUTH_EPOCH_POLL`] rather than the caches' lifetime, whichever
/// process made them. Ends when every cache is gone (the state was dropped). While the
/// database cannot be read, the caches' lifetimes remain the bound.
async fn watch_auth_epoch(db: Pool, caches: Vec<Weak<dyn AuthCache>>) {
    let mut known = None;
    let mut ticks = tokio::time::interval(AUTH_EPOCH_POLL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let live: Vec<Arc<dyn AuthCache>> = caches.iter().filter_map(Weak::upgrade).collect();
        if live.is_empty() {
            return;
        }
        match crate::db::auth_epoch(&db).await {
            Ok(epoch) => {
                // Without a previous reading (the first, or the first after a failure),
                // entries cached meanwhile may predate a change: drop them too.
                if known != Some(epoch) {
                    for cache in &live {
                        cache.forget_all();
                    }
                    tracing::debug!(epoch, "auth epoch moved: auth caches emptied");
                }
                known = Some(epoch);
            }
            Err(error) => {
                known = None;
                tracing::debug!(%error, "cannot read the auth epoch");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Counts how often it was emptied.
    #[derive(Default)]
    struct Counted(AtomicUsize);

    impl AuthCache for Counted {
        fn forget_all(&self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Waits (up to a generous bound: the machine may be busy) until `cache` was emptied
    /// `times` times.
    async fn emptied(cache: &Counted, times: usize) {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while cache.0.load(Ordering::SeqCst) < times {
            assert!(
                tokio::time::Instant::now() < deadline,
                "not emptied {times} times"
            );
            tokio::time::sleep(AUTH_EPOCH_POLL / 5).await;
        }
        assert_eq!(cache.0.load(Ordering::SeqCst), times);
    }

    #[tokio::test]
    async fn one_watcher_empties_every_cache_and_ends_with_them() {
        let (_dir, db) = crate::db::test_support::temp_db().await;
        let (keys, tokens) = (Arc::new(Counted::default()), Arc::new(Counted::default()));
        let watched = vec![
            Arc::downgrade(&keys) as Weak<dyn AuthCache>,
            Arc::downgrade(&tokens) as Weak<dyn AuthCache>,
        ];
        let watcher = tokio::spawn(watch_auth_epoch(db.clone(), watched));
        // The first reading empties both.
        emptied(&keys, 1).await;
        emptied(&tokens, 1).await;
        // A tier change moves the epoch.
        crate::db::users::create(&db, "a@example.com", tandem_shared::Tier::free())
            .await
            .unwrap();
        crate::db::users::set_tier(&db, "a@example.com", &tandem_shared::Tier::pro())
            .await
            .unwrap();
        emptied(&keys, 2).await;
        emptied(&tokens, 2).await;
        // Gone with the caches.
        drop((keys, tokens));
        tokio::time::timeout(std::time::Duration::from_secs(10), watcher)
            .await
            .expect("the watcher ends once the caches are dropped")
            .unwrap();
    }
}
