//! TOML errors as one log line that says where: `line 4, column 1: unknown
//! field `timeout`, …`. toml's own rendering spans several lines (a source
//! excerpt with a caret), which logs and one-sentence errors cannot carry.

/// The error's message, prefixed with its line and column when toml knows them.
pub fn describe(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let (line, column) = position(text, span.start);
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

/// 1-based line and column (in characters) of a byte offset.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .count()
        + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)] // only deserialized, to provoke errors
    struct Entry {
        name: String,
    }

    #[test]
    fn errors_say_line_and_column() {
        let text = "name = \"a\"\n  colour = \"é\"\n";
        let error = toml::from_str::<Entry>(text).unwrap_err();
        let described = describe(text, &error);
        assert!(
            described.starts_with("line 2, column 3: unknown field `colour`"),
            "{described}"
        );
        assert!(!described.contains('\n'), "{described}");
        assert_eq!(position("é\nab", 4), (2, 2));
    }
}
