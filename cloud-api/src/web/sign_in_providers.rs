//! The configured sign-in providers (`[[auth.identity_providers]]`) and the two halves
//! of the authorization code flow with each: the URL to send the browser to (with PKCE,
//! `state` and, for OpenID Connect, `nonce`), and turning the code it brings back into a
//! verified identity.
//!
//! OpenID Connect issuers (Google, Microsoft, any by discovery) go through the
//! `openidconnect` crate, which verifies the ID token's signature, issuer, audience,
//! expiry and nonce. GitHub speaks plain OAuth 2.0 (`oauth2` crate): the identity is its
//! numeric user id and the verified primary email from its API.

use std::sync::Arc;
use std::time::{Duration, Instant};

use oauth2::basic::BasicClient;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessToken, AuthUrl, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
    TokenUrl,
};
use serde::Deserialize;

use crate::config::{Config, IdentityProviderConfig, IdentityProviderKind};
use crate::db::identities::VerifiedIdentity;

/// How long discovered provider metadata (endpoints and signing keys) is trusted before
/// it is read again; signing keys rotate.
const METADATA_TTL: Duration = Duration::from_secs(10 * 60);
/// The longest any call to a provider may take.
const PROVIDER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the sign-in providers cannot be set up at start-up.
#[derive(Debug, thiserror::Error)]
pub enum SignInSetupError {
    /// The client secret's environment variable is not set.
    #[error(
        "environment variable `{variable}` (client_secret_env of sign-in provider `{provider}`) \
         is not set"
    )]
    MissingSecret { provider: String, variable: String },
    /// A URL made from the configuration is not valid.
    #[error("sign-in provider `{provider}`: {message}")]
    Invalid { provider: String, message: String },
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client for sign-in providers: {0}")]
    Http(String),
}

/// Why a sign-in with a provider failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SignInFailure {
    /// The provider has no verified email for the account.
    #[error("no verified email")]
    NoVerifiedEmail,
    /// The provider could not be reached, refused the code, or answered something that
    /// does not verify.
    #[error("{0}")]
    Provider(String),
}

/// Where to send the browser, and what to remember until it comes back.
pub(crate) struct Authorization {
    pub url: url::Url,
    pub state: String,
    pub pkce_verifier: String,
    pub nonce: String,
}

/// Every configured provider, in configuration order.
pub(crate) struct SignInProviders {
    http: reqwest::Client,
    providers: Vec<SignInProvider>,
}

impl std::fmt::Debug for SignInProviders {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.providers.iter().map(|provider| &provider.config.name))
            .finish()
    }
}

/// One provider, with its secret and (for OpenID Connect) its discovered metadata.
pub(crate) struct SignInProvider {
    pub config: IdentityProviderConfig,
    client_secret: Option<String>,
    redirect_url: RedirectUrl,
    discovered: tokio::sync::Mutex<Option<(Arc<CoreProviderMetadata>, Instant)>>,
}

impl SignInProviders {
    /// The providers of `config`, with their secrets read through `env`. Nothing is
    /// fetched yet: an issuer that is down at start-up only fails its own sign-ins.
    pub fn from_config(
        config: &Config,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<SignInProviders, SignInSetupError> {
        let http = reqwest::Client::builder()
            // Following redirects would let a provider's answer point us anywhere (SSRF).
            .redirect(reqwest::redirect::Policy::none())
            .timeout(PROVIDER_TIMEOUT)
            .user_agent(concat!("tandem-cloud/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| SignInSetupError::Http(error.to_string()))?;
        let public_url = config
            .auth
            .public_url
            .as_deref()
            .unwrap_or("http://127.0.0.1")
            .trim_end_matches('/');
        let providers = config
            .auth
            .identity_providers
            .iter()
            .map(|provider| {
                let client_secret = match &provider.client_secret_env {
                    Some(variable) => Some(
                        env(variable)
                            .filter(|secret| !secret.trim().is_empty())
                            .ok_or_else(|| SignInSetupError::MissingSecret {
                                provider: provider.name.clone(),
                                variable: variable.clone(),
                            })?,
                    ),
                    None => None,
                };
                let redirect_url =
                    RedirectUrl::new(format!("{public_url}/auth/{}/callback", provider.name))
                        .map_err(|error| SignInSetupError::Invalid {
                            provider: provider.name.clone(),
                            message: format!("redirect URL: {error}"),
                        })?;
                Ok(SignInProvider {
                    config: provider.clone(),
                    client_secret,
                    redirect_url,
                    discovered: tokio::sync::Mutex::new(None),
                })
            })
            .collect::<Result<Vec<_>, SignInSetupError>>()?;
        Ok(SignInProviders { http, providers })
    }

    /// No providers: browser sign-in is off. Only the HTTP client is built, which
    /// cannot fail without TLS configuration to load.
    pub fn none() -> SignInProviders {
        SignInProviders {
            http: reqwest::Client::new(),
            providers: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.providers.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &SignInProvider> {
        self.providers.iter()
    }

    pub fn get(&self, name: &str) -> Option<&SignInProvider> {
        self.providers
            .iter()
            .find(|provider| provider.config.name == name)
    }

    /// The URL to send the browser to for signing in with `provider`.
    pub async fn authorize(
        &self,
        provider: &SignInProvider,
    ) -> Result<Authorization, SignInFailure> {
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = match provider.config.kind {
            IdentityProviderKind::Github => {
                let (url, state) = provider
                    .github_client()?
                    .authorize_url(CsrfToken::new_random)
                    .add_scope(Scope::new("read:user".to_owned()))
                    .add_scope(Scope::new("user:email".to_owned()))
                    .add_scopes(provider.extra_scopes())
                    .set_pkce_challenge(challenge)
                    .url();
                // GitHub has no ID token to carry one; kept for a uniform record.
                (url, state, Nonce::new_random())
            }
            _ => {
                let metadata = provider.metadata(&self.http, false).await?;
                provider
                    .oidc_client(&metadata)
                    .authorize_url(
                        CoreAuthenticationFlow::AuthorizationCode,
                        CsrfToken::new_random,
                        Nonce::new_random,
                    )
                    .add_scope(Scope::new("email".to_owned()))
                    .add_scopes(provider.extra_scopes())
                    .set_pkce_challenge(challenge)
                    .url()
            }
        };
        Ok(Authorization {
            url,
            state: state.secret().clone(),
            pkce_verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
        })
    }

    /// Exchanges the code the browser brought back for the identity it proves.
    pub async fn finish(
        &self,
        provider: &SignInProvider,
        code: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<VerifiedIdentity, SignInFailure> {
        let code = AuthorizationCode::new(code.to_owned());
        let verifier = PkceCodeVerifier::new(pkce_verifier.to_owned());
        match provider.config.kind {
            IdentityProviderKind::Github => {
                let token = provider
                    .github_client()?
                    .exchange_code(code)
                    .set_pkce_verifier(verifier)
                    .request_async(&self.http)
                    .await
                    .map_err(|error| failure("the code exchange failed", error))?;
                provider
                    .github_identity(&self.http, token.access_token())
                    .await
            }
            _ => {
                let metadata = provider.metadata(&self.http, false).await?;
                let client = provider.oidc_client(&metadata);
                let token = client
                    .exchange_code(code)
                    .map_err(|error| failure("no token endpoint", error))?
                    .set_pkce_verifier(verifier)
                    .request_async(&self.http)
                    .await
                    .map_err(|error| failure("the code exchange failed", error))?;
                let id_token = token.id_token().ok_or_else(|| {
                    SignInFailure::Provider("the provider sent no ID token".to_owned())
                })?;
                let nonce = Nonce::new(nonce.to_owned());
                let verified = id_token
                    .claims(&client.id_token_verifier(), &nonce)
                    .cloned();
                let claims = match verified {
                    Ok(claims) => claims,
                    // Perhaps the provider rotated its signing keys: read them again once.
                    Err(_) => {
                        let metadata = provider.metadata(&self.http, true).await?;
                        let fresh_client = provider.oidc_client(&metadata);
                        let verifier = fresh_client.id_token_verifier();
                        let claims = id_token
                            .claims(&verifier, &nonce)
                            .map_err(|error| failure("the ID token does not verify", error))?
                            .clone();
                        claims
                    }
                };
                let subject = claims.subject().as_str().to_owned();
                let mut email = claims
                    .email()
                    .map(|email| (email.as_str().to_owned(), claims.email_verified()));
                // Providers may keep the email for the userinfo endpoint.
                if email.is_none() {
                    let info: CoreUserInfoClaims = client
                        .user_info(token.access_token().clone(), Some(claims.subject().clone()))
                        .map_err(|error| failure("no userinfo endpoint", error))?
                        .request_async(&self.http)
                        .await
                        .map_err(|error| failure("the userinfo request failed", error))?;
                    email = info
                        .email()
                        .map(|email| (email.as_str().to_owned(), info.email_verified()));
                }
                let Some((email, verified)) = email else {
                    return Err(SignInFailure::NoVerifiedEmail);
                };
                if verified != Some(true) && !provider.config.trust_unverified_email {
                    return Err(SignInFailure::NoVerifiedEmail);
                }
                Ok(VerifiedIdentity {
                    provider: provider.config.name.clone(),
                    subject,
                    email,
                })
            }
        }
    }
}

fn failure(what: &str, error: impl std::error::Error) -> SignInFailure {
    // The chain says which part failed (network, status, signature); it never holds
    // the code or tokens.
    let mut message = format!("{what}: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    SignInFailure::Provider(message)
}

impl SignInProvider {
    fn extra_scopes(&self) -> Vec<Scope> {
        self.config.scopes.iter().cloned().map(Scope::new).collect()
    }

    /// The issuer's discovered metadata, read at most every [`METADATA_TTL`], or now when
    /// `fresh`.
    async fn metadata(
        &self,
        http: &reqwest::Client,
        fresh: bool,
    ) -> Result<Arc<CoreProviderMetadata>, SignInFailure> {
        let mut discovered = self.discovered.lock().await;
        if let Some((metadata, at)) = discovered.as_ref() {
            if !fresh && at.elapsed() < METADATA_TTL {
                return Ok(metadata.clone());
            }
        }
        let issuer = self.config.issuer().ok_or_else(|| {
            SignInFailure::Provider("this provider has no OpenID Connect issuer".to_owned())
        })?;
        let issuer =
            IssuerUrl::new(issuer).map_err(|error| failure("the issuer URL is invalid", error))?;
        let metadata = CoreProviderMetadata::discover_async(issuer, http)
            .await
            .map_err(|error| failure("discovery failed", error))?;
        let metadata = Arc::new(metadata);
        *discovered = Some((metadata.clone(), Instant::now()));
        Ok(metadata)
    }

    fn oidc_client(
        &self,
        metadata: &CoreProviderMetadata,
    ) -> openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            metadata.clone(),
            ClientId::new(self.config.client_id.clone()),
            self.client_secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect_url.clone())
    }

    fn github_urls(&self) -> (String, String) {
        let base = self
            .config
            .github_url
            .as_deref()
            .unwrap_or("https://github.com")
            .trim_end_matches('/')
            .to_owned();
        let api = if base == "https://github.com" {
            "https://api.github.com".to_owned()
        } else {
            format!("{base}/api/v3")
        };
        (base, api)
    }

    fn github_client(
        &self,
    ) -> Result<
        BasicClient<
            oauth2::EndpointSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointNotSet,
            oauth2::EndpointSet,
        >,
        SignInFailure,
    > {
        let (base, _) = self.github_urls();
        let auth_url = AuthUrl::new(format!("{base}/login/oauth/authorize"))
            .map_err(|error| failure("the authorization URL is invalid", error))?;
        let token_url = TokenUrl::new(format!("{base}/login/oauth/access_token"))
            .map_err(|error| failure("the token URL is invalid", error))?;
        let mut client = BasicClient::new(ClientId::new(self.config.client_id.clone()))
            .set_auth_uri(auth_url)
            .set_token_uri(token_url)
            .set_redirect_uri(self.redirect_url.clone());
        if let Some(secret) = &self.client_secret {
            client = client.set_client_secret(ClientSecret::new(secret.clone()));
        }
        Ok(client)
    }

    /// GitHub's numeric user id and the verified primary email.
    async fn github_identity(
        &self,
        http: &reqwest::Client,
        token: &AccessToken,
    ) -> Result<VerifiedIdentity, SignInFailure> {
        #[derive(Deserialize)]
        struct GithubUser {
            id: u64,
        }
        let (_, api) = self.github_urls();
        let get = |path: &str| {
            http.get(format!("{api}{path}"))
                .bearer_auth(token.secret())
                .header(reqwest::header::ACCEPT, "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .send()
        };
        let user: GithubUser = get("/user")
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| failure("reading the GitHub user failed", error))?
            .json()
            .await
            .map_err(|error| failure("reading the GitHub user failed", error))?;
        let emails: Vec<GithubEmail> = get("/user/emails")
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|error| failure("reading the GitHub emails failed", error))?
            .json()
            .await
            .map_err(|error| failure("reading the GitHub emails failed", error))?;
        let email = github_email(&emails).ok_or(SignInFailure::NoVerifiedEmail)?;
        Ok(VerifiedIdentity {
            provider: self.config.name.clone(),
            subject: user.id.to_string(),
            email,
        })
    }
}

/// One entry of GitHub's `GET /user/emails`.
#[derive(Debug, Clone, Deserialize)]
struct GithubEmail {
    email: String,
    #[serde(default)]
    primary: bool,
    #[serde(default)]
    verified: bool,
}

/// The verified primary address, else the first verified one; never an unverified one.
fn github_email(emails: &[GithubEmail]) -> Option<String> {
    emails
        .iter()
        .filter(|email| email.verified)
        .max_by_key(|email| email.primary)
        .map(|email| email.email.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(address: &str, primary: bool, verified: bool) -> GithubEmail {
        GithubEmail {
            email: address.into(),
            primary,
            verified,
        }
    }

    #[test]
    fn github_email_is_the_verified_primary_or_another_verified_one() {
        assert_eq!(
            github_email(&[
                email("a@x.test", false, true),
                email("b@x.test", true, true),
            ])
            .as_deref(),
            Some("b@x.test")
        );
        assert_eq!(
            github_email(&[
                email("primary@x.test", true, false),
                email("c@x.test", false, true),
            ])
            .as_deref(),
            Some("c@x.test")
        );
        assert_eq!(github_email(&[email("p@x.test", true, false)]), None);
        assert_eq!(github_email(&[]), None);
    }

    #[test]
    fn a_missing_client_secret_refuses_to_start() {
        let config = Config::parse_str(
            r#"
            [auth]
            public_url = "https://tandem.test"
            [[auth.identity_providers]]
            name = "github"
            kind = "github"
            client_id = "abc"
            client_secret_env = "NOT_SET_ANYWHERE"
            [sessions]
            jwt_secret_env = "S"
            "#,
        )
        .unwrap();
        let error = SignInProviders::from_config(&config, &|_| None).unwrap_err();
        assert_eq!(
            error.to_string(),
            "environment variable `NOT_SET_ANYWHERE` (client_secret_env of sign-in provider \
             `github`) is not set"
        );
        let providers =
            SignInProviders::from_config(&config, &|_| Some("secret".to_owned())).unwrap();
        let github = providers.get("github").unwrap();
        assert_eq!(
            github.redirect_url.as_str(),
            "https://tandem.test/auth/github/callback"
        );
    }

    #[tokio::test]
    async fn the_github_authorization_url_carries_pkce_and_state() {
        let config = Config::parse_str(
            r#"
            [auth]
            public_url = "https://tandem.test/"
            [[auth.identity_providers]]
            name = "gh"
            kind = "github"
            client_id = "abc"
            [sessions]
            jwt_secret_env = "S"
            "#,
        )
        .unwrap();
        let providers = SignInProviders::from_config(&config, &|_| None).unwrap();
        let authorization = providers
            .authorize(providers.get("gh").unwrap())
            .await
            .unwrap();
        let url = authorization.url;
        assert_eq!(
            url.as_str().split('?').next(),
            Some("https://github.com/login/oauth/authorize")
        );
        let query: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        assert_eq!(query["client_id"], "abc");
        assert_eq!(query["state"], authorization.state);
        assert_eq!(query["code_challenge_method"], "S256");
        assert_eq!(
            query["redirect_uri"],
            "https://tandem.test/auth/gh/callback"
        );
        assert!(!authorization.pkce_verifier.is_empty());
        assert!(authorization.state.len() >= 16);
    }
}
