//! API keys on the wire: scopes, and the bodies of `GET/POST /v1/keys` and
//! `DELETE /v1/keys/{id}`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// `POST /v1/completions`.
    Completions,
    /// `POST /v1/chat`: explanations, code actions, questions.
    Chat,
    /// The administration endpoints.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Completions, Scope::Chat, Scope::Admin];

    /// What a key gets when nobody says otherwise: everything but administration.
    pub const DEFAULT: [Scope; 2] = [Scope::Completions, Scope::Chat];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Completions => "completions",
            Scope::Chat => "chat",
            Scope::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(name: &str) -> Result<Scope, String> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == name)
            .ok_or_else(|| {
                format!("unknown scope `{name}`; the scopes are completions, chat and admin")
            })
    }
}

/// A key as its owner sees it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyInfo {
    pub id: String,
    pub name: String,
    /// The first characters of the key (`tdm_AbC123`), to tell keys apart.
    pub prefix: String,
    pub scopes: Vec<Scope>,
    /// RFC 3339, UTC.
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<String>,
    /// This is the key the request was made with.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub current: bool,
}

/// Answer of `GET /v1/keys`: the caller's keys, oldest first, revoked ones included.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeysResponse {
    pub keys: Vec<KeyInfo>,
}

/// Body of `POST /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateKeyRequest {
    /// What the key is for (`laptop`, `CI`), up to 100 characters.
    pub name: String,
    /// At most the scopes of the key making the request; [`Scope::DEFAULT`] (narrowed to
    /// those) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<Scope>>,
    /// Days until the key stops working; never when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in_days: Option<u32>,
}

/// Answer of `POST /v1/keys` (201): the key, shown this once, and its details.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedKey {
    /// The whole key (`tdm_…`). It is stored only as a hash: it cannot be shown again.
    pub key: String,
    #[serde(flatten)]
    pub info: KeyInfo,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_parse_and_print_as_on_the_wire() {
        for scope in Scope::ALL {
            assert_eq!(scope.as_str().parse::<Scope>(), Ok(scope));
            assert_eq!(
                serde_json::to_string(&scope).unwrap(),
                format!("\"{scope}\"")
            );
        }
        assert!("root"
            .parse::<Scope>()
            .unwrap_err()
            .contains("unknown scope `root`"));
    }

    #[test]
    fn a_created_key_is_flat_on_the_wire() {
        let created = CreatedKey {
            key: "tdm_x".into(),
            info: KeyInfo {
                id: "k1".into(),
                name: "laptop".into(),
                prefix: "tdm_x".into(),
                scopes: vec![Scope::Completions],
                created_at: "2026-12-04T00:00:00Z".into(),
                last_used_at: None,
                expires_at: None,
                revoked_at: None,
                current: false,
            },
        };
        let value = serde_json::to_value(&created).unwrap();
        assert_eq!(value["key"], "tdm_x");
        assert_eq!(value["id"], "k1");
        assert_eq!(value["scopes"], serde_json::json!(["completions"]));
        assert!(value.get("current").is_none());
    }
}
