//! User tiers.
//!
//! Tiers are data: a deployment defines them in the cloud's configuration (`[tiers.<name>]`)
//! and may add its own besides the three defaults, so on the wire a tier is just its name.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest tier name accepted.
pub const MAX_TIER_NAME_LEN: usize = 32;

/// The name of a user's plan: 1 to [`MAX_TIER_NAME_LEN`] characters from `a-z`, `0-9`, `_`
/// and `-`. Limits per tier live in the cloud's configuration, not here.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Tier(String);

impl Tier {
    /// The default tier of new users.
    pub const FREE: &'static str = "free";
    pub const PRO: &'static str = "pro";
    /// The default top tier (what `serve`'s development user gets).
    pub const ENTERPRISE: &'static str = "enterprise";
    /// The tiers every deployment has unless its configuration says otherwise.
    pub const DEFAULTS: [&'static str; 3] = [Tier::FREE, Tier::PRO, Tier::ENTERPRISE];

    /// A tier from its name, lower-cased; see the type for what a name may hold.
    pub fn new(name: &str) -> Result<Tier, InvalidTierName> {
        let name = name.trim().to_ascii_lowercase();
        let valid = !name.is_empty()
            && name.len() <= MAX_TIER_NAME_LEN
            && name.bytes().all(|byte| {
                byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_' || byte == b'-'
            });
        if valid {
            Ok(Tier(name))
        } else {
            Err(InvalidTierName(name))
        }
    }

    pub fn free() -> Tier {
        Tier(Tier::FREE.to_owned())
    }

    pub fn pro() -> Tier {
        Tier(Tier::PRO.to_owned())
    }

    pub fn enterprise() -> Tier {
        Tier(Tier::ENTERPRISE.to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Tier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for Tier {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The string cannot be a tier name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidTierName(pub String);

impl fmt::Display for InvalidTierName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}` is not a tier name (1 to {MAX_TIER_NAME_LEN} characters from a-z, 0-9, _ and -)",
            self.0
        )
    }
}

impl std::error::Error for InvalidTierName {}

impl FromStr for Tier {
    type Err = InvalidTierName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tier::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_lowercased_and_checked() {
        for name in Tier::DEFAULTS {
            let tier: Tier = name.parse().unwrap();
            assert_eq!(tier, name);
            assert_eq!(serde_json::to_string(&tier).unwrap(), format!("\"{name}\""));
        }
        assert_eq!("PRO".parse::<Tier>().unwrap(), Tier::pro());
        assert_eq!(Tier::new("team-2").unwrap().as_str(), "team-2");
        for bad in ["", "gold tier", "é", &"x".repeat(MAX_TIER_NAME_LEN + 1)] {
            let error = bad.parse::<Tier>().unwrap_err().to_string();
            assert!(error.contains("not a tier name"), "{error}");
        }
    }

    #[test]
    fn any_name_reads_from_the_wire() {
        let tier: Tier = serde_json::from_str("\"team\"").unwrap();
        assert_eq!(tier.as_str(), "team");
    }
}
