//! Who may sign in and how: `[sessions]` (browser sessions), `[[auth.identity_providers]]`
//! (OAuth/OIDC sign-in on the account pages) and `[enterprise]` (bearer JWTs from the
//! organisation's own identity provider).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use serde::Deserialize;
use url::Url;

use super::ConfigError;
use crate::tiers::Tiers;

/// Default lifetime of a browser session's access token, in seconds.
pub const DEFAULT_ACCESS_TTL_SECS: u64 = 15 * 60;
/// Default time a browser session can be refreshed for, in days.
pub const DEFAULT_REFRESH_TTL_DAYS: u32 = 30;
/// Default least time between two fetches of an enterprise JWKS, in seconds.
pub const DEFAULT_JWKS_MIN_REFRESH_SECS: u64 = 30;

/// The algorithm that signs browser sessions.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum SessionAlgorithm {
    /// HMAC with SHA-256 and a shared secret of at least 256 bits.
    #[default]
    HS256,
    /// RSA PKCS#1 v1.5 with SHA-256; the public key is served at `/.well-known/jwks.json`.
    RS256,
    /// ECDSA on P-256 with SHA-256; the public key is served at `/.well-known/jwks.json`.
    ES256,
}

/// `[sessions]`: how browser sessions are signed.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct SessionsConfig {
    /// `HS256` (default), `RS256` or `ES256`. Tokens naming any other algorithm are refused.
    #[serde(default)]
    pub algorithm: SessionAlgorithm,
    /// HS256: name of an environment variable holding the secret that signs session
    /// tokens: at least 32 bytes (256 bits) of random data, shared by every instance.
    /// The server refuses to start with a shorter one. Without it (and without a key
    /// pair), no browser sessions.
    #[serde(default)]
    pub jwt_secret_env: Option<String>,
    /// RS256/ES256: name of an environment variable holding the PKCS#8 PEM private key.
    #[serde(default)]
    pub private_key_env: Option<String>,
    /// RS256/ES256: path of a PKCS#8 PEM private key file (instead of `private_key_env`).
    #[serde(default)]
    pub private_key_file: Option<PathBuf>,
    /// Lifetime of an access token (the session cookie), in seconds. Default 900.
    #[serde(default = "default_access_ttl_secs")]
    pub access_ttl_secs: u64,
    /// How long a session can be kept alive by refreshing, in days. Default 30.
    #[serde(default = "default_refresh_ttl_days")]
    pub refresh_ttl_days: u32,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            algorithm: SessionAlgorithm::default(),
            jwt_secret_env: None,
            private_key_env: None,
            private_key_file: None,
            access_ttl_secs: DEFAULT_ACCESS_TTL_SECS,
            refresh_ttl_days: DEFAULT_REFRESH_TTL_DAYS,
        }
    }
}

fn default_access_ttl_secs() -> u64 {
    DEFAULT_ACCESS_TTL_SECS
}

fn default_refresh_ttl_days() -> u32 {
    DEFAULT_REFRESH_TTL_DAYS
}

impl SessionsConfig {
    /// Whether browser sessions are configured at all.
    pub fn enabled(&self) -> bool {
        self.jwt_secret_env.is_some()
            || self.private_key_env.is_some()
            || self.private_key_file.is_some()
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |message: &str| Err(ConfigError::Invalid(format!("sessions: {message}")));
        let has_key = self.private_key_env.is_some() || self.private_key_file.is_some();
        if self.private_key_env.is_some() && self.private_key_file.is_some() {
            return invalid("set private_key_env or private_key_file, not both");
        }
        match self.algorithm {
            SessionAlgorithm::HS256 if has_key => {
                return invalid(
                    "algorithm HS256 signs with jwt_secret_env; a private key needs \
                     algorithm = \"RS256\" or \"ES256\"",
                )
            }
            SessionAlgorithm::RS256 | SessionAlgorithm::ES256 if !has_key => {
                return invalid(&format!(
                    "algorithm {:?} needs private_key_env or private_key_file",
                    self.algorithm
                ))
            }
            SessionAlgorithm::RS256 | SessionAlgorithm::ES256 if self.jwt_secret_env.is_some() => {
                return invalid(&format!(
                    "jwt_secret_env is for HS256; algorithm {:?} signs with the private key",
                    self.algorithm
                ))
            }
            _ => {}
        }
        if self.access_ttl_secs < 30 || self.access_ttl_secs > 24 * 3600 {
            return invalid("access_ttl_secs must be between 30 and 86400");
        }
        if self.refresh_ttl_days == 0 || self.refresh_ttl_days > 365 {
            return invalid("refresh_ttl_days must be between 1 and 365");
        }
        Ok(())
    }
}

/// What kind of identity provider a `[[auth.identity_providers]]` entry is.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum IdentityProviderKind {
    /// GitHub (OAuth 2.0; the verified primary email comes from its API).
    Github,
    /// Google (OpenID Connect, issuer `https://accounts.google.com`).
    Google,
    /// Microsoft Entra ID (OpenID Connect, issuer per `tenant`).
    Microsoft,
    /// Any OpenID Connect issuer, found by discovery from `issuer_url`.
    Oidc,
}

/// One `[[auth.identity_providers]]` entry: a way to sign in on the account pages.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct IdentityProviderConfig {
    /// Short name used in URLs (`/auth/<name>/start`) and the identities table.
    pub name: String,
    /// `github`, `google`, `microsoft` or `oidc`.
    pub kind: IdentityProviderKind,
    /// The client id registered with the provider.
    pub client_id: String,
    /// Name of an environment variable holding the client secret. Public clients (PKCE
    /// only) leave it out.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// `oidc`: the issuer, whose `/.well-known/openid-configuration` is read at start-up.
    /// `google` and `microsoft` know theirs.
    #[serde(default)]
    pub issuer_url: Option<String>,
    /// `microsoft`: the tenant id or domain (the multi-tenant `common` endpoint has no
    /// single issuer, so it cannot be verified).
    #[serde(default)]
    pub tenant: Option<String>,
    /// The button's label. Default: the provider's usual name.
    #[serde(default)]
    pub display_name: Option<String>,
    /// Scopes asked for besides `openid email` (or GitHub's `read:user user:email`).
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Accept an email the provider does not mark verified. Only for a provider that
    /// vouches for every address it issues (a single-organisation tenant); default false.
    #[serde(default)]
    pub trust_unverified_email: bool,
    /// `github`: the base of GitHub Enterprise Server (`https://github.example.com`).
    /// Default github.com.
    #[serde(default)]
    pub github_url: Option<String>,
}

impl IdentityProviderConfig {
    /// The label of the sign-in button.
    pub fn label(&self) -> String {
        if let Some(name) = &self.display_name {
            return name.clone();
        }
        match self.kind {
            IdentityProviderKind::Github => "GitHub".to_owned(),
            IdentityProviderKind::Google => "Google".to_owned(),
            IdentityProviderKind::Microsoft => "Microsoft".to_owned(),
            IdentityProviderKind::Oidc => self.name.clone(),
        }
    }

    /// The issuer to discover, for the OpenID Connect kinds.
    pub fn issuer(&self) -> Option<String> {
        match self.kind {
            IdentityProviderKind::Github => None,
            IdentityProviderKind::Google => Some(
                self.issuer_url
                    .clone()
                    .unwrap_or_else(|| "https://accounts.google.com".to_owned()),
            ),
            IdentityProviderKind::Microsoft => Some(self.issuer_url.clone().unwrap_or_else(|| {
                format!(
                    "https://login.microsoftonline.com/{}/v2.0",
                    self.tenant.as_deref().unwrap_or("common")
                )
            })),
            IdentityProviderKind::Oidc => self.issuer_url.clone(),
        }
    }
}

/// Checks the identity providers: unique URL-safe names, the settings each kind needs.
pub(super) fn validate_identity_providers(
    providers: &[IdentityProviderConfig],
    public_url: Option<&str>,
) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (index, provider) in providers.iter().enumerate() {
        let at = format!("auth.identity_providers[{index}]");
        let invalid = |message: String| Err(ConfigError::Invalid(format!("{at}: {message}")));
        let name = provider.name.as_str();
        let url_safe = !name.is_empty()
            && name.len() <= 32
            && name
                .bytes()
                .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'-');
        if !url_safe {
            return invalid(format!(
                "name `{name}` must be 1 to 32 lowercase letters, digits or dashes"
            ));
        }
        if name == "enterprise" {
            return invalid(
                "name `enterprise` is reserved for the tokens of [enterprise]; choose another"
                    .to_owned(),
            );
        }
        if !names.insert(name) {
            return invalid(format!("name `{name}` is used more than once"));
        }
        if provider.client_id.trim().is_empty() {
            return invalid("client_id must not be empty".to_owned());
        }
        match provider.kind {
            IdentityProviderKind::Oidc if provider.issuer_url.is_none() => {
                return invalid("kind `oidc` needs issuer_url".to_owned())
            }
            IdentityProviderKind::Microsoft
                if provider.tenant.is_none() && provider.issuer_url.is_none() =>
            {
                return invalid(
                    "kind `microsoft` needs tenant (your directory's id or domain)".to_owned(),
                )
            }
            IdentityProviderKind::Github if provider.issuer_url.is_some() => {
                return invalid(
                    "kind `github` has no issuer_url; use github_url for GitHub Enterprise Server"
                        .to_owned(),
                )
            }
            _ => {}
        }
        for (key, url) in [
            ("issuer_url", &provider.issuer_url),
            ("github_url", &provider.github_url),
        ] {
            if let Some(url) = url {
                check_http_url(&format!("{at}.{key}"), url)?;
            }
        }
    }
    if !providers.is_empty() && public_url.is_none() {
        return Err(ConfigError::Invalid(
            "auth.identity_providers need auth.public_url: the address browsers reach this \
             server at, from which the redirect URLs registered with each provider are made \
             (<public_url>/auth/<name>/callback)"
                .to_owned(),
        ));
    }
    Ok(())
}

/// `[enterprise]`: accept bearer JWTs issued by the organisation's identity provider.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EnterpriseConfig {
    /// Where the provider publishes its signing keys (JWKS).
    pub jwks_url: String,
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must carry.
    pub audience: String,
    /// The claim holding the user's roles (a string or an array of strings). Default
    /// `roles`.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// The claim holding the user's email. Default `email`.
    #[serde(default = "default_email_claim")]
    pub email_claim: String,
    /// Role → what it grants: a tier name, or `admin` (the admin scope). A user gets the
    /// highest tier among their roles', ranked by daily request quota, then daily tokens,
    /// then hourly requests, then name.
    #[serde(default)]
    pub roles: BTreeMap<String, String>,
    /// The tier of a token with no mapped tier role. Without it such tokens are refused.
    #[serde(default)]
    pub default_tier: Option<String>,
    /// Least time between two fetches of the JWKS, in seconds, however many unknown
    /// `kid`s arrive. Default 30.
    #[serde(default = "default_jwks_min_refresh_secs")]
    pub jwks_min_refresh_secs: u64,
}

fn default_roles_claim() -> String {
    "roles".to_owned()
}

fn default_email_claim() -> String {
    "email".to_owned()
}

fn default_jwks_min_refresh_secs() -> u64 {
    DEFAULT_JWKS_MIN_REFRESH_SECS
}

/// What a role of `[enterprise.roles]` grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RoleGrant {
    Admin,
    Tier(tandem_shared::Tier),
}

impl EnterpriseConfig {
    /// What `role` grants, if it is mapped.
    pub fn grant(&self, role: &str) -> Option<RoleGrant> {
        let target = self.roles.get(role)?;
        if target == "admin" {
            return Some(RoleGrant::Admin);
        }
        tandem_shared::Tier::new(target).ok().map(RoleGrant::Tier)
    }

    pub(super) fn validate(&self, tiers: &Tiers) -> Result<(), ConfigError> {
        let invalid = |message: String| Err(ConfigError::Invalid(format!("enterprise: {message}")));
        check_http_url("enterprise.jwks_url", &self.jwks_url)?;
        if self.issuer.trim().is_empty() || self.audience.trim().is_empty() {
            return invalid("issuer and audience must not be empty".to_owned());
        }
        if self.roles_claim.trim().is_empty() || self.email_claim.trim().is_empty() {
            return invalid("roles_claim and email_claim must not be empty".to_owned());
        }
        let known = |name: &str| {
            tandem_shared::Tier::new(name)
                .ok()
                .is_some_and(|tier| tiers.get(&tier).is_some())
        };
        for (role, target) in &self.roles {
            if target != "admin" && !known(target) {
                return invalid(format!(
                    "roles.\"{role}\" = \"{target}\" is neither `admin` nor a tier"
                ));
            }
        }
        if let Some(tier) = &self.default_tier {
            if !known(tier) {
                return invalid(format!("default_tier `{tier}` is not a tier"));
            }
        }
        if self.jwks_min_refresh_secs == 0 {
            return invalid("jwks_min_refresh_secs must be at least 1".to_owned());
        }
        Ok(())
    }
}

fn check_http_url(at: &str, url: &str) -> Result<(), ConfigError> {
    let parsed = Url::parse(url)
        .map_err(|error| ConfigError::Invalid(format!("{at}: `{url}` is not a URL: {error}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ConfigError::Invalid(format!(
            "{at}: `{url}` must be an http or https URL"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use crate::config::test_support::refused;

    const SIGN_IN: &str = r#"
        [auth]
        public_url = "https://tandem.example"
        [[auth.identity_providers]]
        name = "github"
        kind = "github"
        client_id = "abc"
        client_secret_env = "GITHUB_SECRET"
        [[auth.identity_providers]]
        name = "corp"
        kind = "microsoft"
        tenant = "contoso.example"
        client_id = "def"
        [sessions]
        jwt_secret_env = "SESSION_SECRET"
    "#;

    #[test]
    fn sign_in_providers_parse_with_their_defaults() {
        let config = Config::parse_str(SIGN_IN).unwrap();
        let providers = &config.auth.identity_providers;
        assert_eq!(providers.len(), 2);
        assert_eq!(providers[0].label(), "GitHub");
        assert_eq!(providers[0].issuer(), None);
        assert_eq!(
            providers[1].issuer().as_deref(),
            Some("https://login.microsoftonline.com/contoso.example/v2.0")
        );
        assert_eq!(config.auth.new_user_tier, "free");
        assert_eq!(config.sessions.access_ttl_secs, 900);
    }

    #[test]
    fn sign_in_settings_are_checked() {
        let without_public_url = SIGN_IN.replace("public_url = \"https://tandem.example\"", "");
        assert!(refused(&without_public_url).contains("need auth.public_url"));
        let without_sessions = SIGN_IN.replace("jwt_secret_env = \"SESSION_SECRET\"", "");
        assert!(refused(&without_sessions).contains("need [sessions]"));
        let duplicate = SIGN_IN.replace("name = \"corp\"", "name = \"github\"");
        assert!(refused(&duplicate).contains("name `github` is used more than once"));
        let reserved = SIGN_IN.replace("name = \"corp\"", "name = \"enterprise\"");
        assert!(refused(&reserved).contains("reserved"));
        let bad_name = SIGN_IN.replace("name = \"corp\"", "name = \"Corp SSO\"");
        assert!(refused(&bad_name).contains("lowercase letters, digits or dashes"));
        let no_tenant = SIGN_IN.replace("tenant = \"contoso.example\"", "");
        assert!(refused(&no_tenant).contains("needs tenant"));
        let oidc = SIGN_IN.replace("kind = \"microsoft\"", "kind = \"oidc\"");
        assert!(refused(&oidc).contains("kind `oidc` needs issuer_url"));
        let bad_url = SIGN_IN.replace(
            "tenant = \"contoso.example\"",
            "issuer_url = \"ftp://idp.example\"",
        );
        assert!(refused(&bad_url).contains("must be an http or https URL"));
        let tier = format!("{SIGN_IN}\n").replace(
            "[[auth.identity_providers]]\nname = \"github\"",
            "new_user_tier = \"gold\"\n[[auth.identity_providers]]\nname = \"github\"",
        );
        let tier = tier.replace(
            "public_url = \"https://tandem.example\"",
            "public_url = \"https://tandem.example\"\nnew_user_tier = \"gold\"",
        );
        assert!(refused(&tier).contains("auth.new_user_tier `gold` is not a tier"));
    }

    #[test]
    fn session_algorithms_need_their_own_key_material() {
        assert!(refused("[sessions]\nalgorithm = \"RS256\"\n").contains("needs private_key_env"));
        assert!(
            refused("[sessions]\nalgorithm = \"HS256\"\nprivate_key_env = \"K\"\n")
                .contains("a private key needs algorithm")
        );
        assert!(refused(
            "[sessions]\nalgorithm = \"ES256\"\nprivate_key_env = \"K\"\njwt_secret_env = \"S\"\n"
        )
        .contains("jwt_secret_env is for HS256"));
        assert!(refused("[sessions]\nalgorithm = \"none\"\n").contains("unknown variant"));
        assert!(refused("[sessions]\naccess_ttl_secs = 5\n").contains("access_ttl_secs"));
        Config::parse_str("[sessions]\nalgorithm = \"ES256\"\nprivate_key_file = \"key.pem\"\n")
            .unwrap();
    }

    #[test]
    fn enterprise_roles_map_to_tiers_or_admin() {
        let config = Config::parse_str(
            r#"
            [enterprise]
            jwks_url = "https://idp.example/jwks"
            issuer = "https://idp.example"
            audience = "tandem"
            roles = { "eng" = "pro", "platform" = "admin" }
            "#,
        )
        .unwrap();
        let enterprise = config.enterprise.unwrap();
        assert_eq!(enterprise.roles_claim, "roles");
        assert_eq!(
            enterprise.grant("eng"),
            Some(super::RoleGrant::Tier(tandem_shared::Tier::pro()))
        );
        assert_eq!(enterprise.grant("platform"), Some(super::RoleGrant::Admin));
        assert_eq!(enterprise.grant("sales"), None);
        assert!(refused(
            "[enterprise]\njwks_url = \"https://i/j\"\nissuer = \"i\"\naudience = \"a\"\nroles = { x = \"gold\" }\n"
        )
        .contains("neither `admin` nor a tier"));
    }
}
