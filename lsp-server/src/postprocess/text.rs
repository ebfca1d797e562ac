//! Line arithmetic on plain text shared by the post-processing steps.

/// The part of the cursor's line before the cursor.
pub(super) fn line_before_cursor(prefix: &str) -> &str {
    prefix
        .rfind('\n')
        .and_then(|newline| prefix.get(newline + 1..))
        .unwrap_or(prefix)
}

/// The part of the cursor's line after the cursor, without its line break.
pub(super) fn rest_of_line(suffix: &str) -> &str {
    let line = suffix.split('\n').next().unwrap_or_default();
    line.strip_suffix('\r').unwrap_or(line)
}

/// Bytes of leading spaces and tabs.
pub(super) fn indent_of(line: &str) -> usize {
    line.bytes()
        .take_while(|byte| matches!(byte, b' ' | b'\t'))
        .count()
}

/// Whether `byte` can be part of an identifier or number.
pub(super) fn is_word_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || byte == b'_' || !byte.is_ascii()
}

/// The byte offsets at which the lines of `text` start, the first one included.
pub(super) fn line_starts(text: &str) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(text.match_indices('\n').map(|(newline, _)| newline + 1))
}
