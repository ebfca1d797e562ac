//! Reading a verified token's claims: the subject, the verified email, the roles (a claim
//! that may be a dotted path into nested objects) and the expiry.

use serde_json::{Map, Value};

use super::{rejected, EnterpriseError, MAX_ID_BYTES};
use crate::config::EnterpriseConfig;
use crate::db::users;

/// Longest email accepted, in bytes.
const MAX_EMAIL_BYTES: usize = 254;

/// What the verifier needs of a token's claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TokenClaims {
    /// `sub`.
    pub(super) subject: String,
    /// The email claim, normalised (trimmed, lower-case).
    pub(super) email: String,
    /// Every role the roles claim holds.
    pub(super) roles: Vec<String>,
    /// `exp`, in seconds since the Unix epoch.
    pub(super) expires_at: i64,
}

/// Reads the claims `config` names from a verified token's `claims`; refuses a token
/// without a usable `sub` or email, or whose email is said not to be verified.
pub(super) fn read(
    claims: &Map<String, Value>,
    config: &EnterpriseConfig,
) -> Result<TokenClaims, EnterpriseError> {
    let subject = match claims.get("sub") {
        Some(Value::String(sub))
            if !sub.is_empty()
                && sub.len() <= MAX_ID_BYTES
                && !sub.chars().any(char::is_control) =>
        {
            sub.clone()
        }
        _ => {
            return Err(rejected(format!(
                "the token's `sub` claim must be a string of 1 to {MAX_ID_BYTES} bytes \
                 without control characters"
            )))
        }
    };
    let email_claim = &config.email_claim;
    let email = match claim(claims, email_claim) {
        Some(Value::String(email)) if is_email(email) => users::normalize_email(email),
        Some(_) => {
            return Err(rejected(format!(
                "the token's `{email_claim}` claim is not an email address"
            )))
        }
        None => {
            return Err(rejected(format!(
                "the token has no `{email_claim}` claim (the email the account is found by)"
            )))
        }
    };
    let unverified = match claims.get("email_verified") {
        Some(Value::Bool(verified)) => !verified,
        Some(Value::String(verified)) => verified.eq_ignore_ascii_case("false"),
        _ => false,
    };
    if unverified {
        return Err(rejected(
            "the token says its email address is not verified (`email_verified: false`)",
        ));
    }
    let expires_at = claims
        .get("exp")
        .and_then(|exp| exp.as_i64().or_else(|| exp.as_f64().map(|exp| exp as i64)))
        .ok_or_else(|| rejected("the token's `exp` claim is not a number"))?;
    Ok(TokenClaims {
        subject,
        email,
        roles: roles(claim(claims, &config.roles_claim)),
        expires_at,
    })
}

/// The claim named `name`: the top-level claim of that literal name if there is one
/// (namespaced claims such as `https://example.com/roles` hold dots), otherwise the
/// dotted path through nested objects (`realm_access.roles`).
fn claim<'a>(claims: &'a Map<String, Value>, name: &str) -> Option<&'a Value> {
    if let Some(value) = claims.get(name) {
        return Some(value);
    }
    let mut path = name.split('.');
    let mut value = claims.get(path.next()?)?;
    for segment in path {
        value = value.as_object()?.get(segment)?;
    }
    Some(value)
}

/// The roles a roles claim holds: one string, or the strings of an array (other members
/// ignored). Anything else, or no claim, holds none.
fn roles(value: Option<&Value>) -> Vec<String> {
    match value {
        Some(Value::String(role)) => vec![role.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|item| item.as_str().map(str::to_owned))
            .collect(),
        _ => Vec::new(),
    }
}

fn is_email(email: &str) -> bool {
    let email = email.trim();
    email.len() <= MAX_EMAIL_BYTES
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::enterprise::tests::{config, object, strings};

    #[test]
    fn claims_are_found_by_literal_name_first_then_by_dotted_path() {
        let claims = object(json!({
            "realm_access": {"roles": ["dev", "ops"]},
            "https://example.com/roles": "lead",
            "https://example": {"com/roles": "shadowed"},
            "flat": 1,
        }));
        assert_eq!(
            claim(&claims, "realm_access.roles"),
            Some(&json!(["dev", "ops"]))
        );
        assert_eq!(
            claim(&claims, "https://example.com/roles"),
            Some(&json!("lead"))
        );
        assert_eq!(claim(&claims, "flat"), Some(&json!(1)));
        assert_eq!(claim(&claims, "flat.deeper"), None);
        assert_eq!(claim(&claims, "realm_access.missing"), None);
        assert_eq!(claim(&claims, "missing"), None);
        assert_eq!(claim(&claims, ""), None);
        assert_eq!(claim(&claims, "."), None);
    }

    #[test]
    fn a_roles_claim_may_be_a_string_or_an_array_of_strings() {
        assert_eq!(roles(Some(&json!("dev"))), strings(&["dev"]));
        assert_eq!(
            roles(Some(&json!(["dev", 3, null, "ops", {"x": 1}]))),
            strings(&["dev", "ops"])
        );
        assert!(roles(Some(&json!(42))).is_empty());
        assert!(roles(Some(&json!({"dev": true}))).is_empty());
        assert!(roles(None).is_empty());
    }

    #[test]
    fn tokens_need_a_subject_and_a_verified_email() {
        let config = config(&[("dev", "pro")], None);
        let base = json!({
            "sub": "u-1",
            "email": " Ada@Example.com ",
            "exp": 4_102_444_800_i64,
            "realm_access": {"roles": ["dev"]},
        });
        assert_eq!(
            read(&object(base.clone()), &config),
            Ok(TokenClaims {
                subject: "u-1".to_owned(),
                email: "ada@example.com".to_owned(),
                roles: strings(&["dev"]),
                expires_at: 4_102_444_800,
            })
        );

        let with = |key: &str, value: Value| {
            let mut claims = object(base.clone());
            claims.insert(key.to_owned(), value);
            read(&claims, &config)
        };
        let without = |key: &str| {
            let mut claims = object(base.clone());
            claims.remove(key);
            read(&claims, &config)
        };
        for (result, says) in [
            (with("email", json!("not-an-email")), "not an email"),
            (with("email", json!(["a@b.c"])), "not an email"),
            (without("email"), "no `email` claim"),
            (with("email_verified", json!(false)), "not verified"),
            (with("sub", json!("")), "`sub`"),
            (with("sub", json!("a\nb")), "`sub`"),
            (with("sub", json!(7)), "`sub`"),
            (without("sub"), "`sub`"),
        ] {
            match result {
                Err(EnterpriseError::Rejected(message)) => {
                    assert!(message.contains(says), "{message} should say {says}");
                }
                other => panic!("expected a refusal saying {says}, got {other:?}"),
            }
        }
        assert!(with("email_verified", json!(true)).is_ok());
    }
}
