//! Redaction of realistic files, false-positive checks on ordinary code, and property tests.
//!
//! Fixtures hold markers such as `«stripe-live»` where a secret goes, and the secrets are
//! generated when the test runs: the repository never contains a string of a real secret's
//! shape, so secret scanners on the hosting side have nothing to flag, and every expectation
//! can be written as "the fixture with each marker replaced by its placeholder", which
//! asserts that everything except the secrets is byte-identical.

use super::redaction::{redact, redact_around_cursor, scrub_suggestion, SecretKind};
use proptest::prelude::*;

const BASE62: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const UPPER_DIGITS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const DIGITS: &[u8] = b"0123456789";
const DJANGO: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789!@#$%^&*(-_=+)";

/// Deterministic random characters (splitmix64 seeded by the marker name), so a failure
/// reproduces exactly.
struct Generator(u64);

impl Generator {
    fn new(seed: &str) -> Generator {
        // FNV-1a of the seed.
        let hash = seed.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
        });
        Generator(hash)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chars(&mut self, alphabet: &[u8], count: usize) -> String {
        (0..count)
            .map(|_| char::from(alphabet[(self.next() % alphabet.len() as u64) as usize]))
            .collect()
    }
}

/// The generated secret for a marker name; the same name always gives the same secret.
pub(super) fn secret_for(name: &str) -> String {
    let mut generator = Generator::new(name);
    let mut g = |alphabet: &[u8], count: usize| generator.chars(alphabet, count);
    match name {
        "aws-id" | "aws-id-2" => format!("AKIA{}", g(UPPER_DIGITS, 16)),
        "aws-session-id" => format!("ASIA{}", g(UPPER_DIGITS, 16)),
        "aws-secret" | "aws-secret-2" => g(BASE64, 40),
        "github" | "github-2" => format!("ghp_{}", g(BASE62, 36)),
        "github-actions" => format!("ghs_{}", g(BASE62, 36)),
        "github-pat" => format!("github_pat_{}_{}", g(BASE62, 22), g(BASE62, 59)),
        "gitlab" => format!("glpat-{}", g(BASE62, 20)),
        "slack" => format!("xoxb-{}-{}-{}", g(DIGITS, 12), g(DIGITS, 13), g(BASE62, 24)),
        "slack-webhook" => format!(
            "https://hooks.slack.com/services/T{}/B{}/{}",
            g(UPPER_DIGITS, 8),
            g(UPPER_DIGITS, 10),
            g(BASE62, 24)
        ),
        "stripe-live" => format!("sk_live_{}", g(BASE62, 24)),
        "stripe-test" => format!("sk_test_{}", g(BASE62, 24)),
        "stripe-restricted" => format!("rk_live_{}", g(BASE62, 24)),
        "stripe-webhook" => format!("whsec_{}", g(BASE62, 32)),
        "google" => format!("AIza{}", g(BASE64URL, 35)),
        "openai" => format!("sk-proj-{}7{}", g(BASE64URL, 60), g(BASE62, 20)),
        "openai-legacy" => format!("sk-{}4{}", g(BASE62, 20), g(BASE62, 27)),
        "anthropic" => format!("sk-ant-api03-{}AA", g(BASE64URL, 93)),
        "tandem" => format!("tdm_{}", g(BASE62, 43)),
        "npm" => format!("npm_{}", g(BASE62, 36)),
        "jwt" | "jwt-2" => format!(
            // A real header and the well-known sample payload; the signature is random.
            "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}",
            "eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ",
            g(BASE64URL, 43)
        ),
        "pem-rsa" => pem_block("RSA PRIVATE KEY", &mut generator, 25),
        "pem-pkcs8" => pem_block("PRIVATE KEY", &mut generator, 16),
        "pem-openssh" => pem_block("OPENSSH PRIVATE KEY", &mut generator, 6),
        "pem-in-string" => {
            // A PKCS#8 key as Google service-account JSON stores it: one line, `\n` escaped.
            let body: Vec<String> = (0..12).map(|_| generator.chars(BASE64, 64)).collect();
            format!(
                "-----BEGIN PRIVATE KEY-----\\n{}\\n-----END PRIVATE KEY-----\\n",
                body.join("\\n")
            )
        }
        "kube-client-key" => {
            base64_encode(pem_block("RSA PRIVATE KEY", &mut generator, 8).as_bytes())
        }
        "kube-token" => format!(
            "eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.{}.{}",
            g(BASE64URL, 180),
            g(BASE64URL, 342)
        ),
        "django" => format!("django-insecure-{}", g(DJANGO, 50)),
        "db-password" => format!("Pg{}!9", g(BASE62, 14)),
        "random-32" | "random-32-2" | "random-32-3" => g(BASE62, 32),
        "hex-64" => g(b"0123456789abcdef", 64),
        "mail-password" => "Tr0ub4dor&3".to_owned(),
        other => panic!("unknown secret marker «{other}»"),
    }
}

fn pem_block(label: &str, generator: &mut Generator, lines: usize) -> String {
    let mut block = format!("-----BEGIN {label}-----\n");
    for _ in 0..lines {
        block.push_str(&generator.chars(BASE64, 64));
        block.push('\n');
    }
    block.push_str(&generator.chars(BASE64, 24));
    block.push_str("==\n");
    block.push_str(&format!("-----END {label}-----"));
    block
}

fn base64_encode(bytes: &[u8]) -> String {
    let mut encoded = String::new();
    for chunk in bytes.chunks(3) {
        let buffer = chunk
            .iter()
            .enumerate()
            .fold(0u32, |buffer, (index, &byte)| {
                buffer | u32::from(byte) << (16 - 8 * index)
            });
        for index in 0..4 {
            if index <= chunk.len() {
                encoded.push(char::from(
                    BASE64[((buffer >> (18 - 6 * index)) & 63) as usize],
                ));
            } else {
                encoded.push('=');
            }
        }
    }
    encoded
}

/// Replaces every `«name»` marker with its generated secret; returns the text and the
/// markers found, in order.
pub(super) fn materialize(fixture: &str) -> (String, Vec<String>) {
    let mut text = String::with_capacity(fixture.len());
    let mut markers = Vec::new();
    let mut rest = fixture;
    while let Some(open) = rest.find('«') {
        text.push_str(&rest[..open]);
        let after = &rest[open + '«'.len_utf8()..];
        let close = after.find('»').expect("unclosed marker");
        let name = &after[..close];
        text.push_str(&secret_for(name));
        markers.push(name.to_owned());
        rest = &after[close + '»'.len_utf8()..];
    }
    text.push_str(rest);
    (text, markers)
}

/// Redacts the materialized fixture and checks that the result is the fixture with each
/// marker replaced by the placeholder of the kind given for it, and that no secret is left.
#[track_caller]
fn check_fixture(fixture: &str, kinds: &[(&str, SecretKind)]) {
    let (text, markers) = materialize(fixture);
    let redacted = redact(&text);
    let mut expected = fixture.to_owned();
    for marker in &markers {
        let kind = kinds
            .iter()
            .find(|(name, _)| name == marker)
            .map(|(_, kind)| *kind)
            .unwrap_or_else(|| panic!("no expected kind for «{marker}»"));
        expected = expected.replace(&format!("«{marker}»"), &kind.placeholder());
    }
    for marker in &markers {
        let secret = secret_for(marker);
        assert!(
            !redacted.text.contains(&secret),
            "«{marker}» survived redaction:\n{}",
            redacted.text
        );
    }
    assert_eq!(
        redacted.text, expected,
        "redacted text differs from the expectation"
    );
    assert_eq!(redacted.count, markers.len(), "one span per secret");
    // Redacting twice changes nothing: placeholders are never mistaken for secrets.
    assert_eq!(redact(&redacted.text).count, 0, "redaction is idempotent");
}

#[test]
fn dotenv_file() {
    check_fixture(
        include_str!("fixtures/dotenv"),
        &[
            ("django", SecretKind::Secret),
            ("db-password", SecretKind::UrlPassword),
            ("stripe-live", SecretKind::StripeKey),
            ("stripe-webhook", SecretKind::StripeKey),
            ("aws-id", SecretKind::AwsAccessKey),
            ("aws-secret", SecretKind::AwsSecretKey),
            ("openai", SecretKind::OpenAiKey),
            ("anthropic", SecretKind::AnthropicKey),
            ("tandem", SecretKind::TandemKey),
            ("random-32", SecretKind::Secret),
            ("mail-password", SecretKind::Password),
            ("slack-webhook", SecretKind::SlackWebhook),
        ],
    );
}

#[test]
fn django_settings_module() {
    check_fixture(
        include_str!("fixtures/settings.py"),
        &[
            ("django", SecretKind::Secret),
            ("db-password", SecretKind::Password),
            ("mail-password", SecretKind::Password),
            ("google", SecretKind::GoogleApiKey),
            ("random-32", SecretKind::Secret),
        ],
    );
}

#[test]
fn node_config_with_stripe_keys() {
    check_fixture(
        include_str!("fixtures/config.js"),
        &[
            ("stripe-live", SecretKind::StripeKey),
            ("stripe-restricted", SecretKind::StripeKey),
            ("stripe-webhook", SecretKind::StripeKey),
            ("db-password", SecretKind::UrlPassword),
            ("random-32", SecretKind::Secret),
            ("npm", SecretKind::NpmToken),
        ],
    );
}

#[test]
fn ci_workflow_with_github_token() {
    check_fixture(
        include_str!("fixtures/ci.yml"),
        &[
            ("github", SecretKind::GithubToken),
            ("github-pat", SecretKind::GithubToken),
            ("slack", SecretKind::SlackToken),
            ("gitlab", SecretKind::GitlabToken),
        ],
    );
}

#[test]
fn rust_file_with_hard_coded_jwt() {
    check_fixture(
        include_str!("fixtures/auth.rs"),
        &[
            ("jwt", SecretKind::Jwt),
            ("random-32", SecretKind::Secret),
            ("tandem", SecretKind::TandemKey),
            ("jwt-2", SecretKind::Jwt),
        ],
    );
}

#[test]
fn go_file_with_aws_key_pair() {
    check_fixture(
        include_str!("fixtures/aws.go"),
        &[
            ("aws-id", SecretKind::AwsAccessKey),
            ("aws-secret", SecretKind::AwsSecretKey),
            ("aws-session-id", SecretKind::AwsAccessKey),
            ("aws-secret-2", SecretKind::AwsSecretKey),
            ("random-32", SecretKind::Secret),
        ],
    );
}

#[test]
fn pem_private_keys() {
    check_fixture(
        include_str!("fixtures/keys.txt"),
        &[
            ("pem-rsa", SecretKind::PrivateKey),
            ("pem-openssh", SecretKind::PrivateKey),
            ("pem-in-string", SecretKind::PrivateKey),
        ],
    );
}

#[test]
fn kubeconfig() {
    check_fixture(
        include_str!("fixtures/kubeconfig.yaml"),
        &[
            ("kube-client-key", SecretKind::PrivateKey),
            ("kube-token", SecretKind::Jwt),
            ("db-password", SecretKind::Password),
        ],
    );
}

#[test]
fn ordinary_code_is_left_alone() {
    // Real-world code full of secret-ish words, hashes, ids and blobs. The trade-off: only
    // literals assigned to secret-like names, and known token shapes, are ever redacted, so
    // git SHAs, UUIDs, checksums and base64 images pass through untouched even though they
    // look random; a random-looking literal under an unrelated name is let through.
    for (name, source) in [
        ("ordinary.py", include_str!("fixtures/ordinary.py")),
        ("ordinary.ts", include_str!("fixtures/ordinary.ts")),
        ("ordinary.rs", include_str!("fixtures/ordinary.rs")),
    ] {
        let redacted = redact(source);
        assert_eq!(redacted.text, source, "{name} was changed");
        assert_eq!(redacted.count, 0, "{name}");
    }
}

#[test]
fn a_secret_straddling_the_cursor_in_a_real_file() {
    let (text, _) = materialize(include_str!("fixtures/config.js"));
    let secret = secret_for("stripe-live");
    let start = text.find(&secret).expect("fixture holds the key");
    for cursor in [
        start,
        start + 3,
        start + 10,
        start + secret.len() - 1,
        start + secret.len(),
    ] {
        let (prefix, suffix, count) = redact_around_cursor(&text[..cursor], &text[cursor..]);
        assert_eq!(
            count, 6,
            "cursor {cursor}: every secret of the file counted"
        );
        let joined = format!("{prefix}{suffix}");
        assert!(!joined.contains(&secret), "cursor {cursor}");
        assert!(
            !prefix.contains("sk_live_") && !suffix.contains("sk_live_"),
            "cursor {cursor}"
        );
        assert_eq!(
            joined,
            redact(&text).text,
            "cursor {cursor}: same text as a whole"
        );
        if cursor > start && cursor < start + secret.len() {
            assert!(prefix.ends_with("<redacted:stripe-key>"), "cursor {cursor}");
        }
    }
}

#[test]
fn huge_inputs_finish() {
    // Shapes that would make a backtracking engine explode, at a size the editor could send.
    let inputs = [
        "-----BEGIN RSA PRIVATE KEY-----".repeat(20_000),
        "password=".repeat(50_000),
        format!("token = \"{}", "a\\".repeat(100_000)),
        "-----END PRIVATE KEY-----\n".repeat(20_000),
        format!("{}\n-----END PRIVATE KEY-----", "QUJD\n".repeat(100_000)),
        "eyJ".repeat(100_000),
        "a:b@".repeat(100_000),
        "https://u:".repeat(50_000),
    ];
    for input in &inputs {
        let redacted = redact(input);
        assert!(!redacted.text.is_empty());
    }
}

#[test]
fn scrub_cuts_echoed_placeholders_in_suggestions() {
    let cases: &[(&str, Option<&str>)] = &[
        ("\"<redacted:stripe-key>\"\n", Some("\"")),
        ("<redacted:stripe-key>\"\n", None),
        (
            "process.env.STRIPE_KEY ?? \"<redacted:stripe-key>\"",
            Some("process.env.STRIPE_KEY ?? \""),
        ),
        ("headers(token)\n<redac", Some("headers(token)\n")),
        ("redacted:secret>\"", None),
        ("fn main() {}", Some("fn main() {}")),
        ("if a < b { x }", Some("if a < b { x }")),
        ("   ", None),
        ("", None),
    ];
    for (suggestion, expected) in cases {
        assert_eq!(
            scrub_suggestion(suggestion).as_deref(),
            *expected,
            "suggestion {suggestion:?}"
        );
    }
    // A secret the model produced itself (memorised or invented) is never typed either.
    let (suggestion, _) = materialize("key: \"«github»\",\n");
    assert_eq!(scrub_suggestion(&suggestion).as_deref(), Some("key: \""));
}

/// Every marker name `secret_for` knows, for the property tests.
const MARKERS: &[&str] = &[
    "aws-id",
    "aws-session-id",
    "github",
    "github-actions",
    "github-pat",
    "gitlab",
    "slack",
    "slack-webhook",
    "stripe-live",
    "stripe-test",
    "stripe-restricted",
    "stripe-webhook",
    "google",
    "openai",
    "openai-legacy",
    "anthropic",
    "tandem",
    "npm",
    "jwt",
    "pem-rsa",
    "pem-pkcs8",
    "pem-openssh",
    "pem-in-string",
    "kube-client-key",
    "kube-token",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn redaction_never_panics_and_is_idempotent(text in "\\PC{0,400}") {
        let redacted = redact(&text);
        prop_assert_eq!(redact(&redacted.text).count, 0);
        if redacted.count == 0 {
            prop_assert_eq!(&redacted.text, &text);
        }
    }

    #[test]
    fn redaction_never_panics_on_secret_like_noise(
        text in "[A-Za-z0-9_+/=\\-:.@\"' \n\\\\]{0,300}",
        cursor in 0usize..301,
    ) {
        let _ = redact(&text);
        let cursor = cursor.min(text.len());
        let (prefix, suffix, _) = redact_around_cursor(&text[..cursor], &text[cursor..]);
        prop_assert_eq!(format!("{prefix}{suffix}"), redact(&text).text);
        let _ = scrub_suggestion(&text);
    }

    #[test]
    fn a_known_secret_never_survives(
        before in "\\PC{0,60}",
        after in "\\PC{0,60}",
        marker in proptest::sample::select(MARKERS),
        separator_before in proptest::sample::select(&[" ", "\n", "\"", "'", "=", "(", ": "][..]),
        separator_after in proptest::sample::select(&[" ", "\n", "\"", "'", ",", ")", ";"][..]),
        cursor_fraction in 0.0f64..=1.0,
    ) {
        let secret = secret_for(marker);
        let text = format!("{before}{separator_before}{secret}{separator_after}{after}");
        let redacted = redact(&text);
        prop_assert!(!redacted.text.contains(&secret), "{}", redacted.text);
        prop_assert!(redacted.text.contains("<redacted:"));

        let mut cursor = (text.len() as f64 * cursor_fraction) as usize;
        while !text.is_char_boundary(cursor) {
            cursor -= 1;
        }
        let (prefix, suffix, count) = redact_around_cursor(&text[..cursor], &text[cursor..]);
        prop_assert!(count >= 1);
        prop_assert!(!prefix.contains(&secret) && !suffix.contains(&secret));
        // No fragment of the secret long enough to matter leaks on either side.
        let fragment = &secret[secret.len() / 2 - 6..secret.len() / 2 + 6];
        prop_assert!(!prefix.contains(fragment) && !suffix.contains(fragment));
    }

    #[test]
    fn suggestions_never_contain_a_placeholder(
        before in "\\PC{0,40}",
        kind in proptest::sample::select(&SecretKind::ALL[..]),
        after in "\\PC{0,40}",
    ) {
        let suggestion = format!("{before}{}{after}", kind.placeholder());
        if let Some(scrubbed) = scrub_suggestion(&suggestion) {
            prop_assert!(!scrubbed.contains("<redacted:"));
            prop_assert!(suggestion.starts_with(&scrubbed));
        }
    }
}

#[test]
fn masked_edits_get_their_secrets_back_in_order() {
    use super::redaction::{mask, UnmaskError};
    let first = secret_for("github");
    let second = secret_for("github-2");
    let aws = secret_for("aws-id");
    let code =
        format!("fn tokens() -> [&str; 3] {{\n    [\"{first}\", \"{second}\", \"{aws}\"]\n}}\n");
    let masked = mask(&code);
    assert_eq!(masked.count(), 3);
    assert!(
        !masked.text.contains(&first) && !masked.text.contains(&aws),
        "{}",
        masked.text
    );
    // The model reformats the code and keeps the placeholders in place.
    let answer = masked.text.replace("fn tokens()", "pub fn tokens()");
    let restored = masked.unmask(&answer).unwrap();
    assert_eq!(restored, code.replace("fn tokens()", "pub fn tokens()"));

    // A dropped placeholder cannot be mapped back.
    let dropped = masked.text.replacen("<redacted:github-token>", "\"\"", 1);
    assert!(matches!(
        masked.unmask(&dropped),
        Err(UnmaskError::PlaceholdersChanged {
            expected: 2,
            found: 1,
            ..
        })
    ));
    // Nor can a placeholder of a kind never sent.
    let invented = format!("{}\n// <redacted:jwt>\n", masked.text);
    assert!(matches!(
        masked.unmask(&invented),
        Err(UnmaskError::PlaceholdersChanged { expected: 0, .. })
    ));
    // A credential the model typed itself is refused.
    let typed = format!(
        "{}\nconst K: &str = \"{}\";\n",
        masked.text,
        secret_for("stripe-live")
    );
    assert!(matches!(
        masked.unmask(&typed),
        Err(UnmaskError::NewSecret { .. })
    ));
    // Text without secrets passes through.
    assert_eq!(
        mask("let x = 1;").unmask("let x = 2;").unwrap(),
        "let x = 2;"
    );
}
