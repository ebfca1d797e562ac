//! The machine's own services (PostgreSQL, Redis) that some tests need, named by
//! environment variables.

use std::io::Write;

/// Set to `1` (CI does) to make a missing service a failure instead of a skip.
pub const REQUIRE_SERVICES: &str = "TANDEM_REQUIRE_SERVICES";
/// The PostgreSQL server tests may create schemas on.
pub const POSTGRES_URL: &str = "TANDEM_TEST_POSTGRES_URL";
/// The Redis tests may use, under key prefixes of their own.
pub const REDIS_URL: &str = "TANDEM_TEST_REDIS_URL";

/// The URL in `variable`; `None`, after a note, when it is unset and `test` should
/// skip. Panics when it is unset and [`REQUIRE_SERVICES`] is `1`.
pub fn service_url(variable: &str, test: &str) -> Option<String> {
    match std::env::var(variable) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if std::env::var(REQUIRE_SERVICES).as_deref() == Ok("1") => {
            panic!("{test}: {REQUIRE_SERVICES}=1 but {variable} is not set")
        }
        _ => {
            // Straight to stderr: the test harness would swallow `eprintln!` of a pass.
            let _ = writeln!(
                std::io::stderr(),
                "note: {test} skipped: {variable} is not set"
            );
            None
        }
    }
}
