//! Finds secrets in text about to leave the machine and replaces them with readable placeholders.
//!
//! Three families of detectors, cheapest to most heuristic:
//! - shapes that are secrets wherever they appear: PEM private key blocks and the token
//!   formats of well-known vendors (AWS key ids, GitHub, GitLab, Slack, Stripe, Google,
//!   OpenAI, Anthropic, npm, Tandem's own `tdm_` keys, JWTs);
//! - credentials inside text: the password of `scheme://user:password@host`, the token of
//!   `Bearer <token>`;
//! - literals assigned to a name that says "secret" (`password`, `api_key`, `client_secret`,
//!   …) in the assignment styles of code, JSON, YAML, TOML, dotenv, INI and XML, if the value
//!   is neither a placeholder nor a reference to something else and is random enough.
//!
//! Only the secret is replaced, by `<redacted:KIND>`, so the code around it (quotes, commas,
//! the name) stays intact and the model can still read the line.
//!
//! Every regex is compiled once and run by the `regex` crate, whose matching is linear in the
//! input: no input can trigger catastrophic backtracking. The hand-written scans around
//! private key blocks are linear too, and bounded by [`PEM_WINDOW`].

use std::sync::LazyLock;

use regex::Regex;

/// Every placeholder starts with this, so a suggestion that echoes one can be cut.
pub(crate) const PLACEHOLDER_PREFIX: &str = "<redacted:";
const PLACEHOLDER_SUFFIX: &str = ">";

/// How far from its `BEGIN` line a private key block's `END` line is looked for. An 8192-bit
/// RSA key is about 6.5 KB and armored PGP key blocks rarely pass 16 KB.
const PEM_WINDOW: usize = 64 * 1024;

/// What a redacted span held; its name is what the model sees in the placeholder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum SecretKind {
    /// A PEM or PGP private key block, or what is left of one.
    PrivateKey,
    /// An AWS access key id (`AKIA…`, `ASIA…`).
    AwsAccessKey,
    /// An AWS secret access key, recognised by the name it is assigned to.
    AwsSecretKey,
    /// A GitHub token (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_`, `github_pat_`).
    GithubToken,
    /// A GitLab personal access token (`glpat-`).
    GitlabToken,
    /// A Slack token (`xoxb-`, `xoxp-`, …) or app token (`xapp-`).
    SlackToken,
    /// A Slack incoming-webhook URL, which is itself the credential.
    SlackWebhook,
    /// A Stripe secret, restricted or webhook-signing key.
    StripeKey,
    /// A Google API key (`AIza…`).
    GoogleApiKey,
    /// An OpenAI-style key (`sk-…`), also used by many compatible providers.
    OpenAiKey,
    /// An Anthropic key (`sk-ant-…`).
    AnthropicKey,
    /// A Tandem API key (`tdm_…`).
    TandemKey,
    /// An npm access token (`npm_…`).
    NpmToken,
    /// A JSON Web Token.
    Jwt,
    /// The password part of a URL's user information.
    UrlPassword,
    /// The credential after `Bearer`, `Basic` or `token` in an authorization header.
    BearerToken,
    /// A literal assigned to a password-like name.
    Password,
    /// A random-looking literal assigned to a secret-like name.
    Secret,
}

impl SecretKind {
    /// Every kind, for tests and documentation.
    pub(crate) const ALL: [SecretKind; 18] = [
        SecretKind::PrivateKey,
        SecretKind::AwsAccessKey,
        SecretKind::AwsSecretKey,
        SecretKind::GithubToken,
        SecretKind::GitlabToken,
        SecretKind::SlackToken,
        SecretKind::SlackWebhook,
        SecretKind::StripeKey,
        SecretKind::GoogleApiKey,
        SecretKind::OpenAiKey,
        SecretKind::AnthropicKey,
        SecretKind::TandemKey,
        SecretKind::NpmToken,
        SecretKind::Jwt,
        SecretKind::UrlPassword,
        SecretKind::BearerToken,
        SecretKind::Password,
        SecretKind::Secret,
    ];

    /// The name inside the placeholder: lowercase, hyphenated, stable (the model and the
    /// cloud may see it; it is part of the prompt format).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            SecretKind::PrivateKey => "private-key",
            SecretKind::AwsAccessKey => "aws-access-key",
            SecretKind::AwsSecretKey => "aws-secret-key",
            SecretKind::GithubToken => "github-token",
            SecretKind::GitlabToken => "gitlab-token",
            SecretKind::SlackToken => "slack-token",
            SecretKind::SlackWebhook => "slack-webhook",
            SecretKind::StripeKey => "stripe-key",
            SecretKind::GoogleApiKey => "google-api-key",
            SecretKind::OpenAiKey => "openai-key",
            SecretKind::AnthropicKey => "anthropic-key",
            SecretKind::TandemKey => "tandem-key",
            SecretKind::NpmToken => "npm-token",
            SecretKind::Jwt => "jwt",
            SecretKind::UrlPassword => "url-password",
            SecretKind::BearerToken => "bearer-token",
            SecretKind::Password => "password",
            SecretKind::Secret => "secret",
        }
    }

    /// The placeholder that replaces a secret of this kind, e.g. `<redacted:jwt>`.
    pub(crate) fn placeholder(self) -> String {
        format!("{PLACEHOLDER_PREFIX}{}{PLACEHOLDER_SUFFIX}", self.as_str())
    }
}

/// Text with its secrets replaced.
#[derive(Debug, Clone, PartialEq, Eq)]
// Used for snippets from other documents once cross-file context is sent (issue 3).
pub(crate) struct Redacted {
    /// The input with each secret replaced by its placeholder; everything else byte-identical.
    pub(crate) text: String,
    /// How many spans were replaced.
    pub(crate) count: usize,
    /// The distinct kinds replaced, in order of first appearance (for logs and metrics).
    pub(crate) kinds: Vec<SecretKind>,
}

/// Replaces every secret found in `text` by a placeholder naming its kind.
pub(crate) fn redact(text: &str) -> Redacted {
    let spans = find_secrets(text);
    let kinds = distinct_kinds(&spans);
    Redacted {
        text: replace_spans(text, &spans, 0..text.len()),
        count: spans.len(),
        kinds,
    }
}

/// Redacts the text before and after the cursor as one text, so a secret that straddles the
/// cursor is still found, and splits the result at the cursor again.
///
/// A placeholder that replaces a span containing the cursor goes wholly to the prefix and
/// the suffix resumes after the span: the model then completes after the placeholder rather
/// than inside a secret. Returns `(prefix, suffix, number of spans replaced)`.
pub(crate) fn redact_around_cursor(prefix: &str, suffix: &str) -> (String, String, usize) {
    let mut text = String::with_capacity(prefix.len() + suffix.len());
    text.push_str(prefix);
    text.push_str(suffix);
    let cursor = prefix.len();
    let spans = find_secrets(&text);
    // The first span not wholly before the cursor and starting before it straddles it.
    let split = spans
        .iter()
        .find(|span| span.start < cursor && cursor < span.end)
        .map_or(cursor, |span| span.end);
    let redacted_prefix = replace_spans(&text, &spans, 0..split);
    let redacted_suffix = replace_spans(&text, &spans, split..text.len());
    (redacted_prefix, redacted_suffix, spans.len())
}

/// Text sent for an edit, with its secrets masked, remembering them so the edited text
/// the model sends back can get them back where it kept their placeholders.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Masked {
    /// The text with each secret replaced by its placeholder.
    pub(crate) text: String,
    /// Each secret's kind and text, in order.
    secrets: Vec<(SecretKind, String)>,
}

impl std::fmt::Debug for Masked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masked")
            .field("text", &self.text)
            .field("secrets", &self.secrets.len())
            .finish()
    }
}

/// Why an edited text cannot get its secrets back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum UnmaskError {
    /// Placeholders were dropped, added or duplicated: which secret goes where is unknown.
    #[error("the answer changed the redacted secrets (`{placeholder}` {found} times instead of {expected})")]
    PlaceholdersChanged {
        placeholder: String,
        expected: usize,
        found: usize,
    },
    /// The answer holds a credential of its own, which must never be typed into code.
    #[error("the answer contains what looks like a credential ({kind})")]
    NewSecret { kind: &'static str },
}

/// Masks the secrets of `text` for an edit ([`Masked::unmask`] puts them back).
pub(crate) fn mask(text: &str) -> Masked {
    let spans = find_secrets(text);
    Masked {
        text: replace_spans(text, &spans, 0..text.len()),
        secrets: spans
            .iter()
            .map(|span| (span.kind, text[span.start..span.end].to_owned()))
            .collect(),
    }
}

impl Masked {
    /// How many secrets were masked.
    pub(crate) fn count(&self) -> usize {
        self.secrets.len()
    }

    /// `answer` (an edited version of the masked text) with each placeholder replaced by
    /// the secret it stood for, in order, per kind. Refused when the placeholders of a
    /// kind are not exactly those sent, or the answer brings a credential of its own.
    pub(crate) fn unmask(&self, answer: &str) -> Result<String, UnmaskError> {
        if let Some(span) = find_secrets(answer).first() {
            return Err(UnmaskError::NewSecret {
                kind: span.kind.as_str(),
            });
        }
        let mut kinds: Vec<SecretKind> = Vec::new();
        for (kind, _) in &self.secrets {
            if !kinds.contains(kind) {
                kinds.push(*kind);
            }
        }
        let mut restored = answer.to_owned();
        for kind in kinds {
            let placeholder = kind.placeholder();
            let originals: Vec<&str> = self
                .secrets
                .iter()
                .filter(|(secret_kind, _)| *secret_kind == kind)
                .map(|(_, secret)| secret.as_str())
                .collect();
            let found = restored.matches(&placeholder).count();
            if found != originals.len() {
                return Err(UnmaskError::PlaceholdersChanged {
                    placeholder,
                    expected: originals.len(),
                    found,
                });
            }
            let mut pieces = restored.split(&placeholder);
            let mut next = pieces.next().unwrap_or_default().to_owned();
            for (piece, original) in pieces.zip(originals) {
                next.push_str(original);
                next.push_str(piece);
            }
            restored = next;
        }
        if let Some(stray) = restored.find(PLACEHOLDER_PREFIX) {
            // A placeholder of a kind that was never sent.
            let end = restored[stray..]
                .find(PLACEHOLDER_SUFFIX)
                .map_or(restored.len(), |end| stray + end + 1);
            return Err(UnmaskError::PlaceholdersChanged {
                placeholder: restored[stray..end].to_owned(),
                expected: 0,
                found: 1,
            });
        }
        Ok(restored)
    }
}

/// Cuts a model's suggestion before anything that would put a placeholder or a secret into
/// the user's code; `None` if nothing worth showing is left.
///
/// The model only ever saw placeholders, so the only way it can "re-insert" a redacted
/// secret is by echoing a placeholder (whole, or its start at the end of a truncated answer,
/// or without its `<`). Text of a known secret shape (a key it memorised or invented) is cut
/// too: a completion must never type a credential for the user.
pub(crate) fn scrub_suggestion(suggestion: &str) -> Option<String> {
    let mut cut = suggestion.len();
    if let Some(found) = suggestion.find(PLACEHOLDER_PREFIX) {
        cut = cut.min(found);
    }
    if let Some(found) = PLACEHOLDER_ECHO.find(suggestion) {
        cut = cut.min(found.start());
    }
    // An answer cut off by the token limit can end with the start of a placeholder.
    for length in (4..PLACEHOLDER_PREFIX.len()).rev() {
        if suggestion.ends_with(&PLACEHOLDER_PREFIX[..length]) {
            cut = cut.min(suggestion.len() - length);
            break;
        }
    }
    if let Some(first) = find_secrets(suggestion).first() {
        cut = cut.min(first.start);
    }
    let kept = &suggestion[..cut];
    if kept.trim().is_empty() {
        None
    } else {
        Some(kept.to_owned())
    }
}

/// A placeholder the model echoed without its `<`, e.g. `redacted:secret>`.
static PLACEHOLDER_ECHO: LazyLock<Regex> = LazyLock::new(|| {
    let kinds: Vec<&str> = SecretKind::ALL.iter().map(|kind| kind.as_str()).collect();
    compile(&format!(r"(?i)redacted:(?:{})", kinds.join("|")))
});

/// A byte range of the input to replace, and what it held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Span {
    start: usize,
    end: usize,
    kind: SecretKind,
}

/// All secrets in `text`: sorted, non-overlapping, on character boundaries.
fn find_secrets(text: &str) -> Vec<Span> {
    // Detectors run from the most to the least certain; when spans overlap, the union is
    // replaced and the kind of the earliest-starting (then the most certain) one is kept.
    let mut candidates = Vec::new();
    find_private_keys(text, &mut candidates);
    find_vendor_tokens(text, &mut candidates);
    find_url_passwords(text, &mut candidates);
    find_authorization_tokens(text, &mut candidates);
    find_assigned_secrets(text, &mut candidates);
    merge(candidates)
}

fn merge(mut candidates: Vec<(Span, usize)>) -> Vec<Span> {
    candidates.sort_by_key(|(span, priority)| (span.start, *priority));
    let mut merged: Vec<Span> = Vec::with_capacity(candidates.len());
    for (span, _) in candidates {
        if span.start >= span.end {
            continue;
        }
        match merged.last_mut() {
            Some(last) if span.start < last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

#[cfg_attr(not(test), allow(dead_code))]
fn distinct_kinds(spans: &[Span]) -> Vec<SecretKind> {
    let mut kinds = Vec::new();
    for span in spans {
        if !kinds.contains(&span.kind) {
            kinds.push(span.kind);
        }
    }
    kinds
}

/// `text[range]` with the spans inside it replaced. Spans straddling the range's ends are
/// never passed here (see `redact_around_cursor`).
fn replace_spans(text: &str, spans: &[Span], range: std::ops::Range<usize>) -> String {
    let mut output = String::with_capacity(range.len());
    let mut position = range.start;
    for span in spans {
        if span.end <= range.start || span.start >= range.end {
            continue;
        }
        output.push_str(&text[position..span.start]);
        output.push_str(&span.kind.placeholder());
        position = span.end;
    }
    if position < range.end {
        output.push_str(&text[position..range.end]);
    }
    output
}

fn compile(pattern: &str) -> Regex {
    // The patterns are constants checked by the test suite; a failure here is a bug in this
    // file, caught by the first test that redacts anything.
    Regex::new(pattern).expect("redaction patterns are valid")
}

// ---------------------------------------------------------------------------------------
// Private keys

const PRIORITY_PRIVATE_KEY: usize = 0;

static PEM_BEGIN: LazyLock<Regex> =
    LazyLock::new(|| compile(r"-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"));
static PEM_END: LazyLock<Regex> =
    LazyLock::new(|| compile(r"-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----"));

/// Whole blocks, blocks whose end was cut off (a budgeted suffix, a half-pasted key), and
/// block ends whose start was cut off (a budgeted prefix that starts inside the key).
fn find_private_keys(text: &str, spans: &mut Vec<(Span, usize)>) {
    let ends: Vec<(usize, usize)> = PEM_END
        .find_iter(text)
        .map(|found| (found.start(), found.end()))
        .collect();
    let mut covered_until = 0;
    let mut push = |start: usize, end: usize, covered_until: &mut usize| {
        spans.push((
            Span {
                start,
                end,
                kind: SecretKind::PrivateKey,
            },
            PRIORITY_PRIVATE_KEY,
        ));
        *covered_until = end;
    };
    let begins: Vec<(usize, usize)> = PEM_BEGIN
        .find_iter(text)
        .map(|found| (found.start(), found.end()))
        .collect();
    let mut next_end = 0;
    for (index, &(begin_start, begin_end)) in begins.iter().enumerate() {
        if begin_start < covered_until {
            continue;
        }
        // Ends before this block have no begin: their key material starts before the text.
        while let Some(&(end_start, end_end)) = ends.get(next_end) {
            if end_start >= begin_start {
                break;
            }
            if end_start >= covered_until {
                let start = headless_key_start(text, end_start, covered_until);
                push(start, end_end, &mut covered_until);
            }
            next_end += 1;
        }
        let next_begin = begins.get(index + 1).map_or(text.len(), |next| next.0);
        match ends.get(next_end) {
            Some(&(end_start, end_end))
                if end_start < next_begin && end_start.saturating_sub(begin_end) <= PEM_WINDOW =>
            {
                // In a string literal the key's final line break is an escape; it goes too,
                // so the literal reads `"<redacted:private-key>"`.
                let mut end = end_end;
                for escape in ["\\r\\n", "\\n"] {
                    if text[end..].starts_with(escape) {
                        end += escape.len();
                        break;
                    }
                }
                push(begin_start, end, &mut covered_until);
                next_end += 1;
            }
            _ => {
                let end = truncated_key_end(text, begin_end);
                push(begin_start, end, &mut covered_until);
            }
        }
    }
    for &(end_start, end_end) in &ends[next_end.min(ends.len())..] {
        if end_start >= covered_until {
            let start = headless_key_start(text, end_start, covered_until);
            push(start, end_end, &mut covered_until);
        }
    }
}

/// Where the body of a block without an `END` line stops: after the base64 lines, the
/// `Proc-Type:`/`DEK-Info:` headers and `\n` escapes of a key inside a string literal, at the
/// first character that cannot be part of one (a quote, a bracket, a second `-----`).
fn truncated_key_end(text: &str, body_start: usize) -> usize {
    let bytes = text.as_bytes();
    let limit = text.len().min(body_start.saturating_add(PEM_WINDOW));
    let mut position = body_start;
    while position < limit {
        let byte = bytes[position];
        let next = bytes.get(position + 1).copied().unwrap_or(b' ');
        let part_of_body = byte.is_ascii_alphanumeric()
            || matches!(
                byte,
                b'+' | b'/' | b'=' | b':' | b',' | b'.' | b' ' | b'\t' | b'\r' | b'\n'
            )
            || (byte == b'\\' && matches!(next, b'n' | b'r'))
            || (byte == b'-' && next.is_ascii_alphanumeric());
        if !part_of_body {
            break;
        }
        position += if byte == b'\\' { 2 } else { 1 };
    }
    // Trailing whitespace and line breaks belong to the code after the key.
    let mut end = position.min(limit);
    while end > body_start && bytes[end - 1].is_ascii_whitespace() {
        end -= 1;
    }
    end
}

/// Where the key material before an `END` line without a `BEGIN` starts: the base64 run on
/// the `END` line itself (a key in a one-line string literal), else the whole lines made only
/// of base64 just above it; never before `floor`.
fn headless_key_start(text: &str, end_start: usize, floor: usize) -> usize {
    let bytes = text.as_bytes();
    let mut floor = floor.max(end_start.saturating_sub(PEM_WINDOW));
    while !text.is_char_boundary(floor) {
        floor += 1;
    }
    let is_base64 = |byte: u8| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'=');
    let mut start = end_start;
    while start > floor && (is_base64(bytes[start - 1]) || bytes[start - 1] == b'\\') {
        start -= 1;
    }
    if start < end_start {
        return start;
    }
    let line_start_of = |end: usize| {
        bytes[floor..end]
            .iter()
            .rposition(|&byte| byte == b'\n')
            .map_or(floor, |index| floor + index + 1)
    };
    let end_line_start = line_start_of(end_start);
    if !text[end_line_start..end_start].trim().is_empty() {
        // Code before the END marker on its line: the key material is not on lines above.
        return end_start;
    }
    let mut line_start = end_line_start;
    while line_start > floor {
        let previous_end = line_start - 1;
        let previous_start = line_start_of(previous_end);
        let line = text[previous_start..previous_end].trim_end_matches('\r');
        let content = line.trim_start();
        if content.is_empty() || !content.bytes().all(is_base64) {
            break;
        }
        start = previous_start + (line.len() - content.len());
        line_start = previous_start;
    }
    start
}

// ---------------------------------------------------------------------------------------
// Vendor token shapes

const PRIORITY_VENDOR_TOKEN: usize = 1;

/// One alternation for every fixed token shape, so the text is scanned once; the kind is
/// decided afterwards from the prefix of what matched. `(?-u:\b)` is an ASCII word boundary:
/// tokens are ASCII, and the ASCII form keeps the fast DFA engines usable on non-ASCII text.
static VENDOR_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"(?-u:\b)(?:",
        r"(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}(?-u:\b)",
        r"|gh[pousr]_[A-Za-z0-9]{36,255}",
        r"|github_pat_[A-Za-z0-9_]{22,255}",
        r"|glpat-[A-Za-z0-9_\-]{20,}",
        r"|xox[baprs]-[A-Za-z0-9\-]{10,}",
        r"|xapp-[0-9]-[A-Za-z0-9\-]{10,}",
        r"|(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}",
        r"|whsec_[A-Za-z0-9+/=]{24,}",
        r"|AIza[0-9A-Za-z_\-]{35}",
        r"|sk-[A-Za-z0-9_\-]{20,}",
        r"|tdm_[A-Za-z0-9]{32,}",
        r"|npm_[A-Za-z0-9]{36}(?-u:\b)",
        r"|eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*",
        r"|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_\-]{16,}",
        // A PEM block encoded in base64 as a whole, as in a kubeconfig's `client-key-data`.
        r"|LS0tLS1CRUdJTi[A-Za-z0-9+/]{20,}={0,2}",
        r")",
    ))
});

fn find_vendor_tokens(text: &str, spans: &mut Vec<(Span, usize)>) {
    for found in VENDOR_TOKEN.find_iter(text) {
        let token = found.as_str();
        let Some(kind) = vendor_token_kind(token) else {
            continue;
        };
        spans.push((
            Span {
                start: found.start(),
                end: found.end(),
                kind,
            },
            PRIORITY_VENDOR_TOKEN,
        ));
    }
}

fn vendor_token_kind(token: &str) -> Option<SecretKind> {
    let kind = if token.starts_with("gh") || token.starts_with("github_pat_") {
        SecretKind::GithubToken
    } else if token.starts_with("glpat-") {
        SecretKind::GitlabToken
    } else if token.starts_with("xox") || token.starts_with("xapp-") {
        SecretKind::SlackToken
    } else if token.starts_with("https://hooks.slack.com/") {
        SecretKind::SlackWebhook
    } else if token.starts_with("sk_") || token.starts_with("rk_") || token.starts_with("whsec_") {
        SecretKind::StripeKey
    } else if token.starts_with("AIza") {
        SecretKind::GoogleApiKey
    } else if let Some(body) = token.strip_prefix("sk-") {
        // `sk-` also starts kebab-case names (`sk-button-primary-large`): real keys mix
        // letters and digits and look random.
        let has_digit = body.bytes().any(|byte| byte.is_ascii_digit());
        let has_letter = body.bytes().any(|byte| byte.is_ascii_alphabetic());
        if !(has_digit && has_letter && shannon_entropy(body) >= 3.5) {
            return None;
        }
        if body.starts_with("ant-") {
            SecretKind::AnthropicKey
        } else {
            SecretKind::OpenAiKey
        }
    } else if token.starts_with("tdm_") {
        SecretKind::TandemKey
    } else if token.starts_with("npm_") {
        SecretKind::NpmToken
    } else if token.starts_with("LS0tLS1CRUdJTi") {
        // Certificates are public (and useful context); only encoded private keys go.
        let header = decode_base64_prefix(token, 64);
        if !header.windows(11).any(|window| window == b"PRIVATE KEY") {
            return None;
        }
        SecretKind::PrivateKey
    } else if token.starts_with("eyJ") {
        SecretKind::Jwt
    } else {
        SecretKind::AwsAccessKey
    };
    Some(kind)
}

/// Decodes up to `max_chars` leading characters of standard base64, enough to read the
/// header line of an encoded PEM block; stops at the first character outside the alphabet.
fn decode_base64_prefix(encoded: &str, max_chars: usize) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(max_chars / 4 * 3);
    let mut buffer = 0u32;
    let mut bits = 0;
    for byte in encoded.bytes().take(max_chars) {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => break,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            decoded.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    decoded
}

// ---------------------------------------------------------------------------------------
// Credentials inside text

const PRIORITY_IN_TEXT: usize = 2;

/// `scheme://user:password@`: the user and the host stay readable, only the password goes.
static URL_PASSWORD: LazyLock<Regex> = LazyLock::new(|| {
    compile(r#"(?-u:\b)[A-Za-z][A-Za-z0-9+.\-]{1,30}://[^\s:/?#@"'`<>\[\]]+:([^\s/?#@"'`<>]+)@"#)
});

fn find_url_passwords(text: &str, spans: &mut Vec<(Span, usize)>) {
    for captures in URL_PASSWORD.captures_iter(text) {
        let Some(password) = captures.get(1) else {
            continue;
        };
        if is_placeholder(password.as_str()) {
            continue;
        }
        spans.push((
            Span {
                start: password.start(),
                end: password.end(),
                kind: SecretKind::UrlPassword,
            },
            PRIORITY_IN_TEXT,
        ));
    }
}

/// The credential of an HTTP authorization header, written out in code or configuration.
static AUTHORIZATION_TOKEN: LazyLock<Regex> =
    LazyLock::new(|| compile(r"(?-u:\b)(?i:bearer|basic|token)[ \t]+([A-Za-z0-9\-._~+/]{16,}=*)"));

fn find_authorization_tokens(text: &str, spans: &mut Vec<(Span, usize)>) {
    for captures in AUTHORIZATION_TOKEN.captures_iter(text) {
        let Some(token) = captures.get(1) else {
            continue;
        };
        let value = token.as_str();
        // Prose ("Bearer authentication is …") has no digits; tokens do.
        let has_digit = value.bytes().any(|byte| byte.is_ascii_digit());
        if !has_digit || shannon_entropy(value) < 3.0 || is_placeholder(value) {
            continue;
        }
        spans.push((
            Span {
                start: token.start(),
                end: token.end(),
                kind: SecretKind::BearerToken,
            },
            PRIORITY_IN_TEXT,
        ));
    }
}

// ---------------------------------------------------------------------------------------
// Literals assigned to secret-like names

const PRIORITY_ASSIGNED: usize = 3;

/// `name <operator> value` in the styles of most languages and configuration formats.
///
/// - the name may be quoted or bracketed (`"api_key":`, `['password'] =`, `config["token"] =`)
///   and dotted or dashed (`spring.datasource.password=`, `--db-password=`);
/// - between the name and `=` there may be a type (`API_KEY: &str =`, `password: str =`,
///   Go's `apiKey string =`), or the name may follow a keyword or type (`let`, `String`): in
///   both cases the second identifier is captured as `other`, and whichever of the two is a
///   secret-like name counts;
/// - the operators are `=`, `:`, `:=`, `=>`, `?=`, `||=`;
/// - the value is a quoted string (with an optional `r`/`b`/`f`/`u`/`@` prefix), or an
///   unquoted word that ends the line or is followed by `,`, `;`, `#`, `}` or `]` (dotenv,
///   INI, YAML, properties).
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r#"(?m)(?-u:\b)(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)["'\]]*"#,
        r#"(?:"#,
        r#"[ \t]*:[ \t]*&?(?:'static[ \t]+)?(?:mut[ \t]+)?[A-Za-z_\[][A-Za-z0-9_:<>\[\]&]*[ \t]*(?P<typed_op>:?=)"#,
        r#"|[ \t]+(?P<other>[A-Za-z_][A-Za-z0-9_]*)[ \t]*(?P<other_op>:?=)"#,
        r#"|[ \t]*(?P<op>=>|:=|\?=|\|\|=|=|:)"#,
        r#")[ \t]*"#,
        r#"(?:[rRbBuUfF]{1,2}|@)?"#,
        r#"(?:"(?P<double>(?:[^"\\\n]|\\.)*)""#,
        r#"|'(?P<single>(?:[^'\\\n]|\\.)*)'"#,
        r#"|`(?P<backtick>[^`\n]*)`"#,
        r#"|(?P<bare>[^\s"'`,;#(){}\[\]<>=|&!][^\s"'`,;(){}\[\]<>]*)[ \t\r]*(?:$|[,;#}\]]|//))"#,
    ))
});

/// `#define NAME "value"` in C and C++.
static DEFINE: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r#"(?m)^[ \t]*#[ \t]*define[ \t]+(?P<name>[A-Za-z_][A-Za-z0-9_]*)[ \t]+(?:L|u8|u|U)?"(?P<double>(?:[^"\\\n]|\\.)*)""#,
    )
});

/// `<password>value</password>` in XML configuration (Maven's settings.xml, .NET configs).
static XML_ELEMENT: LazyLock<Regex> = LazyLock::new(|| {
    compile(
        r"<(?P<name>[A-Za-z_][A-Za-z0-9_.:\-]*)>(?P<bare>[^<>\n]+)</(?P<close>[A-Za-z_][A-Za-z0-9_.:\-]*)>",
    )
});

/// A dotenv or shell line, `NAME=value` or `export NAME=value`: there even an unquoted word
/// without digits is a literal, not a reference to a variable.
static ENV_LINE: LazyLock<Regex> =
    LazyLock::new(|| compile(r"^[ \t]*(?:export[ \t]+)?[A-Za-z_][A-Za-z0-9_.\-]*=[^ \t=]"));

/// What a name says about the literal assigned to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NameClass {
    /// `password`, `passwd`, `pwd`, `pass`, `passphrase`: any non-placeholder literal is
    /// taken for a real password, since human-chosen passwords are short and not random.
    Password,
    /// `token`, `secret`, `api_key`, …: only a random-looking literal is redacted, because
    /// such names also hold ordinary words (`token = "Bearer"`).
    Secret,
    /// `aws_secret_access_key` and relatives.
    AwsSecret,
}

fn find_assigned_secrets(text: &str, spans: &mut Vec<(Span, usize)>) {
    for captures in ASSIGNMENT.captures_iter(text) {
        let name = captures.name("name").map_or("", |name| name.as_str());
        let other = captures.name("other").map_or("", |other| other.as_str());
        let Some(class) = classify_name(name).or_else(|| classify_name(other)) else {
            continue;
        };
        let quoted = ["double", "single", "backtick"]
            .iter()
            .find_map(|group| captures.name(group));
        let (value, is_quoted) = match (quoted, captures.name("bare")) {
            (Some(value), _) => (value, true),
            (None, Some(value)) => (value, false),
            (None, None) => continue,
        };
        let is_env_line = !is_quoted && {
            let line_start = text[..value.start()].rfind('\n').map_or(0, |i| i + 1);
            ENV_LINE.is_match(&text[line_start..value.end()])
        };
        if !looks_like_secret(class, name, value.as_str(), is_quoted, is_env_line) {
            continue;
        }
        push_assigned(spans, class, value.start(), value.end());
    }
    for captures in DEFINE.captures_iter(text) {
        let (Some(name), Some(value)) = (captures.name("name"), captures.name("double")) else {
            continue;
        };
        if let Some(class) = classify_name(name.as_str()) {
            if looks_like_secret(class, name.as_str(), value.as_str(), true, false) {
                push_assigned(spans, class, value.start(), value.end());
            }
        }
    }
    for captures in XML_ELEMENT.captures_iter(text) {
        let (Some(name), Some(value), Some(close)) = (
            captures.name("name"),
            captures.name("bare"),
            captures.name("close"),
        ) else {
            continue;
        };
        if name.as_str() != close.as_str() {
            continue;
        }
        if let Some(class) = classify_name(name.as_str()) {
            // Element text is always a literal, like a quoted string.
            if looks_like_secret(class, name.as_str(), value.as_str().trim(), true, false) {
                push_assigned(spans, class, value.start(), value.end());
            }
        }
    }
}

fn push_assigned(spans: &mut Vec<(Span, usize)>, class: NameClass, start: usize, end: usize) {
    let kind = match class {
        NameClass::Password => SecretKind::Password,
        NameClass::Secret => SecretKind::Secret,
        NameClass::AwsSecret => SecretKind::AwsSecretKey,
    };
    spans.push((Span { start, end, kind }, PRIORITY_ASSIGNED));
}

/// Whether a name says its value is a credential. Judged by the name's last words, so that
/// `db_password` and `stripeSecretKey` count while `password_hash`, `token_type`,
/// `secret_name` and `auth_url` (names *about* a secret) do not.
fn classify_name(name: &str) -> Option<NameClass> {
    let words = split_words(name);
    let last = words.last()?.as_str();
    let before_last = words
        .len()
        .checked_sub(2)
        .map(|index| words[index].as_str());
    let class = match last {
        "password" | "passwd" | "pwd" | "pass" | "passphrase" | "passcode" => NameClass::Password,
        "secret" | "token" | "apikey" | "auth" | "credential" | "credentials" | "pat" => {
            NameClass::Secret
        }
        "key" | "keys" => match before_last {
            Some(
                "api" | "access" | "private" | "secret" | "signing" | "encryption" | "master"
                | "client" | "auth" | "app" | "account" | "service" | "subscription" | "license"
                | "session" | "hmac" | "jwt",
            ) => NameClass::Secret,
            _ => return None,
        },
        _ => return None,
    };
    let has = |wanted: &str| words.iter().any(|word| word == wanted);
    // "Secret access key" is AWS's own term, so it counts even without an `aws` prefix.
    if class == NameClass::Secret && has("secret") && (has("aws") || has("access")) {
        return Some(NameClass::AwsSecret);
    }
    Some(class)
}

/// `stripeSecretKey`, `STRIPE_SECRET_KEY`, `stripe-secret.key` → `[stripe, secret, key]`.
fn split_words(name: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut previous_lowercase = false;
    for character in name.chars() {
        if !character.is_ascii_alphanumeric() {
            if !current.is_empty() {
                words.push(std::mem::take(&mut current));
            }
            previous_lowercase = false;
            continue;
        }
        if character.is_ascii_uppercase() && previous_lowercase && !current.is_empty() {
            words.push(std::mem::take(&mut current));
        }
        previous_lowercase = character.is_ascii_lowercase() || character.is_ascii_digit();
        current.push(character.to_ascii_lowercase());
    }
    if !current.is_empty() {
        words.push(current);
    }
    words
}

/// Whether a literal assigned to a secret-like name is a real secret.
///
/// The trade-off: for password names, anything that is not a placeholder or reference is
/// redacted (a short human password is still a password; losing `"test1234"` from the
/// prompt costs the model nothing). For other names the literal must look random: at least
/// 8 characters, no whitespace, Shannon entropy ≥ 3.0 bits per character.
fn looks_like_secret(
    class: NameClass,
    name: &str,
    value: &str,
    is_quoted: bool,
    is_env_line: bool,
) -> bool {
    let value = value.trim();
    if value.contains(PLACEHOLDER_PREFIX) || is_placeholder(value) {
        return false;
    }
    if value.eq_ignore_ascii_case(name) || split_words(name).iter().any(|word| word == value) {
        return false;
    }
    if !is_quoted && !is_env_line && is_code_reference(value) {
        return false;
    }
    // URLs and paths are about where a secret is; a password inside a URL has its detector.
    if value.contains("://") || ["./", "../", "~/"].iter().any(|p| value.starts_with(p)) {
        return false;
    }
    let length = value.chars().count();
    match class {
        NameClass::Password => length >= 6 && shannon_entropy(value) >= 2.0,
        NameClass::Secret | NameClass::AwsSecret => {
            length >= 8 && !value.chars().any(char::is_whitespace) && shannon_entropy(value) >= 3.0
        }
    }
}

/// An unquoted value that names something instead of being a literal: `os.environ`,
/// `settings.SECRET_KEY`, `None`, `string` (a type annotation), `self.token`.
fn is_code_reference(value: &str) -> bool {
    let segments: Vec<&str> = value
        .trim_end_matches("()")
        .split(['.', ':'])
        .filter(|segment| !segment.is_empty())
        .collect();
    let is_identifier = |segment: &&str| {
        let mut characters = segment.chars();
        characters
            .next()
            .is_some_and(|first| first.is_ascii_alphabetic() || first == '_' || first == '$')
            && characters.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    if segments.is_empty() || !segments.iter().all(is_identifier) {
        return false;
    }
    // A dotted path is member access; a single word is a variable, keyword or type unless it
    // has digits (then it is as likely a hex or base62 literal in an INI or YAML file).
    segments.len() > 1 || !value.bytes().any(|byte| byte.is_ascii_digit())
}

/// Values that stand for a secret without being one: empty, masked, templated, a variable
/// reference, or an obvious placeholder word.
fn is_placeholder(value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() {
        return true;
    }
    // Masks: `xxxxxxxx`, `********`, `••••`, `...`.
    if value
        .chars()
        .all(|c| matches!(c, '*' | 'x' | 'X' | '.' | '#' | '-' | '_' | '•' | '0'))
    {
        return true;
    }
    let first = value.chars().next().unwrap_or(' ');
    if value.chars().all(|c| c == first) {
        return true;
    }
    // Templates and references: `${DB_PASSWORD}`, `{{ .Values.token }}`, `#{secret}`,
    // `%(password)s`, `<%= ENV["X"] %>`, `<your-token>`, `$DB_PASSWORD`, `%APPDATA%`, `env:X`.
    // Matched as whole constructs: random secrets contain `$(` or `%(` by chance.
    let templated = TEMPLATE.is_match(value);
    let bracketed = (value.starts_with('<') && value.ends_with('>'))
        || (value.starts_with('[') && value.ends_with(']'))
        || (value.starts_with('{') && value.ends_with('}'))
        || (value.starts_with('%') && value.ends_with('%') && value.len() > 2);
    let shell_variable = value.strip_prefix('$').is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
    });
    if templated || bracketed || shell_variable {
        return true;
    }
    let lowercase = value.to_ascii_lowercase();
    const CONTAINS: &[&str] = &[
        "changeme",
        "change_me",
        "change-me",
        "changethis",
        "change_this",
        "placeholder",
        "example",
        "dummy",
        "your_",
        "your-",
        "yourpassword",
        "yoursecret",
        "yourtoken",
        "replace_me",
        "replace-me",
        "replaceme",
        "redacted",
        "_here",
        "-here",
        "notasecret",
        "not-a-secret",
        "not_a_secret",
        "insecure-default",
    ];
    const STARTS: &[&str] = &[
        "test", "fake", "mock", "sample", "foo", "my-", "my_", "todo",
    ];
    const EQUALS: &[&str] = &[
        "password",
        "passwd",
        "secret",
        "token",
        "pass",
        "admin",
        "root",
        "user",
        "guest",
        "default",
        "none",
        "null",
        "nil",
        "undefined",
        "true",
        "false",
        "empty",
        "string",
        "api_key",
        "apikey",
        "key",
        "required",
        "optional",
        "hidden",
        "masked",
    ];
    CONTAINS.iter().any(|marker| lowercase.contains(marker))
        || STARTS.iter().any(|marker| lowercase.starts_with(marker))
        || EQUALS.contains(&lowercase.as_str())
}

/// Template and interpolation syntaxes of shells, CI systems, Helm, Jinja, ERB and Python.
static TEMPLATE: LazyLock<Regex> = LazyLock::new(|| {
    compile(concat!(
        r"\$\{[A-Za-z_][^}]*\}|\{\{.*\}\}|\{%.*%\}|#\{[A-Za-z_][^}]*\}",
        r"|%\([A-Za-z_][A-Za-z0-9_]*\)[sdr]|<%.*%>|\A\$\(.*\)\z",
    ))
});

/// Shannon entropy of the characters of `value`, in bits per character.
fn shannon_entropy(value: &str) -> f64 {
    let mut counts: std::collections::HashMap<char, u32> = std::collections::HashMap::new();
    let mut total = 0u32;
    for character in value.chars() {
        *counts.entry(character).or_insert(0) += 1;
        total += 1;
    }
    if total == 0 {
        return 0.0;
    }
    let total = f64::from(total);
    counts
        .values()
        .map(|&count| {
            let probability = f64::from(count) / total;
            -probability * probability.log2()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::privacy::tests::materialize;

    /// Redacts `input` (with `«marker»` secrets generated, see `privacy::tests`) and compares
    /// with `expected`.
    #[track_caller]
    fn check(input: &str, expected: &str) {
        let (text, _) = materialize(input);
        assert_eq!(redact(&text).text, expected, "input: {text}");
    }

    /// Checks that `input` comes out unchanged.
    #[track_caller]
    fn check_unchanged(input: &str) {
        let redacted = redact(input);
        assert_eq!(redacted.text, input);
        assert_eq!(redacted.count, 0);
    }

    /// `fixture` has a `$0` cursor; `expected` shows where the cursor lands after redaction.
    #[track_caller]
    fn check_cursor(fixture: &str, expected: &str) {
        let (text, _) = materialize(fixture);
        let cursor = text.find("$0").expect("fixture has a $0 cursor");
        let (prefix, suffix) = (&text[..cursor], &text[cursor + 2..]);
        let (prefix, suffix, _) = redact_around_cursor(prefix, suffix);
        assert_eq!(format!("{prefix}$0{suffix}"), expected);
    }

    #[test]
    fn vendor_tokens_in_any_context() {
        check(
            "let k = \"«aws-id»\";",
            "let k = \"<redacted:aws-access-key>\";",
        );
        check("«aws-session-id»", "<redacted:aws-access-key>");
        check(
            "git clone https://«github»@github.com/o/r",
            "git clone https://<redacted:github-token>@github.com/o/r",
        );
        check("x(«github-actions»)", "x(<redacted:github-token>)");
        check("T=«github-pat»", "T=<redacted:github-token>");
        check(
            "-H 'PRIVATE-TOKEN: «gitlab»'",
            "-H 'PRIVATE-TOKEN: <redacted:gitlab-token>'",
        );
        check("slack(«slack»)", "slack(<redacted:slack-token>)");
        check(
            "post(\"«slack-webhook»\")",
            "post(\"<redacted:slack-webhook>\")",
        );
        check("Stripe(«stripe-live»)", "Stripe(<redacted:stripe-key>)");
        check("Stripe(«stripe-test»)", "Stripe(<redacted:stripe-key>)");
        check(
            "Stripe(«stripe-restricted»)",
            "Stripe(<redacted:stripe-key>)",
        );
        check(
            "maps?key=«google»&q=1",
            "maps?key=<redacted:google-api-key>&q=1",
        );
        check("OpenAI(\"«openai»\")", "OpenAI(\"<redacted:openai-key>\")");
        check(
            "OpenAI(\"«openai-legacy»\")",
            "OpenAI(\"<redacted:openai-key>\")",
        );
        check(
            "Anthropic(«anthropic»)",
            "Anthropic(<redacted:anthropic-key>)",
        );
        check(
            "tandem login --key «tandem»",
            "tandem login --key <redacted:tandem-key>",
        );
        check(
            "//registry/:_authToken=«npm»",
            "//registry/:_authToken=<redacted:npm-token>",
        );
        check("fetch(u, {jwt: «jwt»})", "fetch(u, {jwt: <redacted:jwt>})");
    }

    #[test]
    fn private_key_blocks() {
        check("«pem-rsa»\n", "<redacted:private-key>\n");
        check(
            "key = \"\"\"\n«pem-pkcs8»\n\"\"\"",
            "key = \"\"\"\n<redacted:private-key>\n\"\"\"",
        );
        check(
            r#"{"private_key": "«pem-in-string»"}"#,
            r#"{"private_key": "<redacted:private-key>"}"#,
        );
        // A block cut off by the context budget, at the end or at the start.
        check("-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg4LVWM9nuwNSk3yByxZpYRTBnVJk5oxvWZyDXNFXJoAoGCCqG\nSM49", "<redacted:private-key>");
        check(
            "x = '-----BEGIN PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC'\ny = 1\n",
            "x = '<redacted:private-key>'\ny = 1\n",
        );
        check("MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n  kqhkiG9w0BAQEFAASCBKcwgg==\n-----END PRIVATE KEY-----\nfn main() {}", "<redacted:private-key>\nfn main() {}");
        check(
            "let a = 1;\nQUJD\n-----END RSA PRIVATE KEY-----",
            "let a = 1;\n<redacted:private-key>",
        );
        check("-----BEGIN PGP PRIVATE KEY BLOCK-----\n\nlQOYBF\n=AbCd\n-----END PGP PRIVATE KEY BLOCK-----", "<redacted:private-key>");
        check("-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F1C\n\nabcd\n-----END RSA PRIVATE KEY-----", "<redacted:private-key>");
        // Public material stays: it is useful context and not a secret.
        check_unchanged("-----BEGIN CERTIFICATE-----\nMIIC/jCCAeagAwIBAgIBADANBgkqhkiG9w0BAQsFADAVMRMwEQYDVQQDEwprdWJl\n-----END CERTIFICATE-----\n");
        check_unchanged("-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----");
    }

    #[test]
    fn passwords_in_urls_keep_user_and_host() {
        check(
            "postgres://app:S3cr3tPassw0rd@db:5432/x",
            "postgres://app:<redacted:url-password>@db:5432/x",
        );
        check(
            "\"amqp://guest:h7Gk2pQ9@rabbit//\"",
            "\"amqp://guest:<redacted:url-password>@rabbit//\"",
        );
        check(
            "https://user:p%40ss%3Aword@example.com/",
            "https://user:<redacted:url-password>@example.com/",
        );
        check_unchanged("postgres://app:${DB_PASSWORD}@db/x");
        check_unchanged("postgres://user:password@localhost/test");
        check_unchanged("https://example.com:8443/path?a=b@c");
        check_unchanged("ssh://git@github.com:22/o/r.git");
        check_unchanged("http://localhost:8080/");
    }

    #[test]
    fn authorization_headers() {
        check(
            "curl -H \"Authorization: Bearer 9f8e7d6c5b4a3f2e1d0c9b8a\"",
            "curl -H \"Authorization: Bearer <redacted:bearer-token>\"",
        );
        check(
            "Authorization: Basic YWxhZGRpbjpvcGVuc2VzYW1l",
            "Authorization: Basic <redacted:bearer-token>",
        );
        check_unchanged("// Bearer authentication is described in RFC 6750.");
        check_unchanged("format!(\"Bearer {token}\")");
    }

    #[test]
    fn assignments_in_many_styles() {
        let random = "h2Kq9ZpX7vLw3RtY";
        let cases = [
            ("api_key = \"{random}\"", "api_key = \"<redacted:secret>\""),
            ("API_KEY='{random}'", "API_KEY='<redacted:secret>'"),
            ("apiKey: \"{random}\",", "apiKey: \"<redacted:secret>\","),
            (
                "\"client_secret\": \"{random}\"",
                "\"client_secret\": \"<redacted:secret>\"",
            ),
            (
                "'auth_token' => '{random}',",
                "'auth_token' => '<redacted:secret>',",
            ),
            ("token := \"{random}\"", "token := \"<redacted:secret>\""),
            (
                "var accessToken string = \"{random}\"",
                "var accessToken string = \"<redacted:secret>\"",
            ),
            (
                "const API_TOKEN: &str = \"{random}\";",
                "const API_TOKEN: &str = \"<redacted:secret>\";",
            ),
            (
                "let mut secret = String::from(\"{random}\");",
                "let mut secret = String::from(\"{random}\");",
            ),
            (
                "private static final String CLIENT_SECRET = \"{random}\";",
                "private static final String CLIENT_SECRET = \"<redacted:secret>\";",
            ),
            (
                "val privateKey: String = \"{random}\"",
                "val privateKey: String = \"<redacted:secret>\"",
            ),
            (
                "secret_token: str = r\"{random}\"",
                "secret_token: str = r\"<redacted:secret>\"",
            ),
            (
                "config[\"api_key\"] = \"{random}\"",
                "config[\"api_key\"] = \"<redacted:secret>\"",
            ),
            (
                "export GITHUB_TOKEN={random}",
                "export GITHUB_TOKEN=<redacted:secret>",
            ),
            (
                "access_key = {random}  # prod",
                "access_key = <redacted:secret>  # prod",
            ),
            (
                "spring.datasource.password={random}",
                "spring.datasource.password=<redacted:password>",
            ),
            (
                "  db_password: {random}\r\n",
                "  db_password: <redacted:password>\r\n",
            ),
            (
                "#define API_KEY \"{random}\"",
                "#define API_KEY \"<redacted:secret>\"",
            ),
            (
                "<password>{random}</password>",
                "<password><redacted:password></password>",
            ),
            (
                "login(user, password=\"{random}\")",
                "login(user, password=\"<redacted:password>\")",
            ),
            (
                "aws_secret_access_key = {random}",
                "aws_secret_access_key = <redacted:aws-secret-key>",
            ),
            (
                "$password = \"{random}\";",
                "$password = \"<redacted:password>\";",
            ),
            (
                "ENV['STRIPE_SECRET'] ||= '{random}'",
                "ENV['STRIPE_SECRET'] ||= '<redacted:secret>'",
            ),
            (
                "mysql --password={random} db",
                "mysql --password={random} db",
            ),
        ];
        for (input, expected) in cases {
            check(
                &input.replace("{random}", random),
                &expected.replace("{random}", random),
            );
        }
    }

    #[test]
    fn human_passwords_are_redacted_even_when_short() {
        check(
            "password = \"hunter22\"",
            "password = \"<redacted:password>\"",
        );
        check("DB_PASS=letmein", "DB_PASS=<redacted:password>");
        check(
            "passphrase: \"correct horse battery staple\"",
            "passphrase: \"<redacted:password>\"",
        );
        // Shorter than six characters: too short to be a password anyone would hard-code.
        check_unchanged("password = \"abc\"");
    }

    #[test]
    fn non_secrets_stay() {
        for input in [
            "password = \"\"",
            "token = None",
            "token = nil",
            "password = os.environ[\"X\"]",
            "password = os.getenv(\"DB_PASSWORD\")",
            "secret: string",
            "secret: string;",
            "token?: string",
            "api_key: Option<String>,",
            "pub password: &'a str,",
            "password: ${{ secrets.DB_PASSWORD }}",
            "password: \"{{ .Values.db.password }}\"",
            "password = \"changeme\"",
            "api_key = \"xxxxxxxxxxxxxxxx\"",
            "api_key = \"<your-api-key>\"",
            "API_KEY=your_api_key_here",
            "token = \"********\"",
            "password = \"%(db_password)s\"",
            "SECRET=$SECRET_FROM_VAULT",
            "password: process.env.DB_PASSWORD,",
            "secret = settings.SECRET_KEY",
            "token_type = \"Bearer\"",
            "password_hash = bcrypt(password)",
            "let hash = password_hash(&password, &salt);",
            "if token == \"expired-token-value\" {",
            "tokens = tokenize(source)",
            "auth = \"basic\"",
            "secret_name = \"prod/db/credentials\"",
            "api_key_header = \"X-API-Key\"",
            "private_key_path = \"/etc/ssl/private/server.key\"",
            "token_url = \"https://oauth2.example.com/token\"",
            "commit = \"9fceb02d0ae598e95dc970b74767f19372d61af8\"",
            "id = \"3f2c8a4e-1b7d-4c5e-9a0f-6d8e2b1c4a7f\"",
            "const buttonClass = \"sk-button-primary-large-outlined\";",
            "password = \"test-password-1\"",
            "user.password = make_password(raw)",
            "authorization: true",
            "<password></password>",
            "<token>${TOKEN}</token>",
            "api_key = \"<redacted:secret>\"",
        ] {
            check_unchanged(input);
        }
    }

    #[test]
    fn cursor_inside_a_secret_moves_the_placeholder_to_the_prefix() {
        check_cursor(
            "key = \"«stripe-live»$0\"\n",
            "key = \"<redacted:stripe-key>$0\"\n",
        );
        check_cursor(
            "key = \"sk_live_$0«random-32»\"\n",
            "key = \"<redacted:stripe-key>$0\"\n",
        );
        check_cursor(
            "key = \"$0«stripe-live»\"\n",
            "key = \"$0<redacted:stripe-key>\"\n",
        );
        check_cursor("x = «aws-id» $0y", "x = <redacted:aws-access-key> $0y");
        check_cursor(
            "password = \"hunt$0er22\"",
            "password = \"<redacted:password>$0\"",
        );
        check_cursor("fn main() {$0}", "fn main() {$0}");
        check_cursor("$0", "$0");
    }

    #[test]
    fn counts_and_kinds() {
        let (text, _) =
            materialize("a = «aws-id»\nb = «aws-id-2»\nc = «github»\npassword = \"hunter22\"\n");
        let redacted = redact(&text);
        assert_eq!(redacted.count, 4);
        assert_eq!(
            redacted.kinds,
            vec![
                SecretKind::AwsAccessKey,
                SecretKind::GithubToken,
                SecretKind::Password
            ]
        );
    }

    #[test]
    fn names_are_split_into_words() {
        assert_eq!(split_words("stripeSecretKey"), ["stripe", "secret", "key"]);
        assert_eq!(
            split_words("STRIPE_SECRET_KEY"),
            ["stripe", "secret", "key"]
        );
        assert_eq!(
            split_words("spring.datasource.password"),
            ["spring", "datasource", "password"]
        );
        assert_eq!(split_words("_authToken"), ["auth", "token"]);
        assert_eq!(classify_name("password_hash"), None);
        assert_eq!(classify_name("token_type"), None);
        assert_eq!(classify_name("keyboard_key"), None);
        assert_eq!(classify_name("signingKey"), Some(NameClass::Secret));
        assert_eq!(classify_name("secretAccessKey"), Some(NameClass::AwsSecret));
        assert_eq!(classify_name("DB_PASSWD"), Some(NameClass::Password));
    }

    #[test]
    fn entropy() {
        assert_eq!(shannon_entropy(""), 0.0);
        assert_eq!(shannon_entropy("aaaa"), 0.0);
        assert!((shannon_entropy("abcd") - 2.0).abs() < 1e-9);
        assert!(shannon_entropy("h2Kq9ZpX7vLw3RtY") > 3.9);
    }

    #[test]
    fn every_kind_has_a_distinct_name() {
        let names: std::collections::HashSet<&str> =
            SecretKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(names.len(), SecretKind::ALL.len());
        for kind in SecretKind::ALL {
            assert!(kind.placeholder().starts_with(PLACEHOLDER_PREFIX));
        }
    }
}
