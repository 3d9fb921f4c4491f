//! The one TOML syntax error worth showing. After a syntax error the parser
//! recovers and goes on, and every later line then looks wrong too: one
//! missing `}` in a rules file gave 55 "invalid TOML" lines with the real
//! cause last. Config and rules loading both show only the first error, and
//! when that error sits inside a `{` or `[` that an earlier line opened and
//! never closed, the error is placed at that opening, where the fix goes.
//! Part of `crate::diag`: lines come from its line index.

use std::ops::Range;

use super::LineIndex;

/// One syntax error to report: where (a byte offset into the text) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    pub offset: usize,
    pub message: String,
}

/// The error to report among the parser's `errors` (empty: none). Messages
/// start with `invalid TOML:`.
pub fn first_error(text: &str, errors: &[toml::de::Error]) -> Option<SyntaxError> {
    let first = errors
        .iter()
        .min_by_key(|e| e.span().map_or(usize::MAX, |s| s.start))?;
    let span = first.span().unwrap_or(0..0);
    if let Some(open) = unclosed_before(text, span.start) {
        let error_line = line_of(text, span.start);
        if line_of(text, open.at) < error_line {
            let (what, close) = match open.bracket {
                b'{' => ("inline table", '}'),
                _ => ("array", ']'),
            };
            return Some(SyntaxError {
                offset: open.at,
                message: format!(
                    "invalid TOML: this {what} is not closed: add `{close}` \
                     (the parser read on to line {error_line} as part of it)"
                ),
            });
        }
    }
    Some(SyntaxError {
        offset: span.start,
        message: message(first.message(), text.get(span)),
    })
}

fn message(parser: &str, at: Option<&str>) -> String {
    match at {
        Some(key) if parser == "duplicate key" && !key.is_empty() => format!(
            "invalid TOML: duplicate key {:?}",
            key.trim_matches(['"', '\''])
        ),
        _ => format!("invalid TOML: {parser}"),
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    LineIndex::new(text).position(offset).0
}

/// An opening bracket of a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Open {
    at: usize,
    bracket: u8,
}

/// The innermost `{` or value `[` still open at `end`, skipping strings,
/// comments and table headers (`[x]`, `[[x]]` at the start of a line).
fn unclosed_before(text: &str, end: usize) -> Option<Open> {
    let bytes = &text.as_bytes()[..end.min(text.len())];
    let mut stack: Vec<Open> = Vec::new();
    let mut i = 0;
    let mut line_start = true;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'\n' => {
                line_start = true;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => i = skip_to_line_end(bytes, i),
            b'"' | b'\'' => i = skip_string(bytes, i).end,
            b'[' if line_start && stack.is_empty() => i = skip_to_line_end(bytes, i),
            b'{' | b'[' => {
                stack.push(Open { at: i, bracket: b });
                i += 1;
            }
            b'}' | b']' => {
                let opener = if b == b'}' { b'{' } else { b'[' };
                if stack.last().is_some_and(|o| o.bracket == opener) {
                    stack.pop();
                }
                i += 1;
            }
            _ => i += 1,
        }
        line_start = false;
    }
    stack.last().copied()
}

fn skip_to_line_end(bytes: &[u8], from: usize) -> usize {
    bytes[from..]
        .iter()
        .position(|b| *b == b'\n')
        .map_or(bytes.len(), |n| from + n)
}

/// The span of the string starting at `from` (one of the four TOML string
/// kinds); an unterminated one runs to the end of its line (single-line) or
/// of the text (multi-line).
fn skip_string(bytes: &[u8], from: usize) -> Range<usize> {
    let quote = bytes[from];
    let triple = bytes.get(from..from + 3) == Some(&[quote, quote, quote][..]);
    let basic = quote == b'"';
    let mut i = from + if triple { 3 } else { 1 };
    while i < bytes.len() {
        let b = bytes[i];
        if basic && b == b'\\' {
            i += 2;
            continue;
        }
        if !triple && b == b'\n' {
            return from..i;
        }
        if b == quote {
            if !triple {
                return from..i + 1;
            }
            if bytes.get(i..i + 3) == Some(&[quote, quote, quote][..]) {
                return from..i + 3;
            }
        }
        i += 1;
    }
    from..bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(text: &str) -> Option<(usize, String)> {
        let (_, errors) = toml::de::DeTable::parse_recoverable(text);
        first_error(text, &errors).map(|e| (line_of(text, e.offset), e.message))
    }

    #[test]
    fn an_unclosed_inline_table_is_reported_once_where_it_opens() {
        let text = "a = 1\n\n[[rule]]\nthen = { hold = \"x\", tag = \"y\"\n\n# }\n[[rule]]\nname = \"b\"\nthen = { tag = \"z\" }\n";
        let (line, message) = report(text).unwrap();
        assert_eq!(line, 4, "{message}");
        assert!(
            message.contains("inline table is not closed: add `}`"),
            "{message}"
        );
        assert!(message.contains("to line 7"), "{message}");
    }

    #[test]
    fn brackets_in_strings_comments_and_headers_do_not_count() {
        let text = "x = \"{[\" # {\n[t]\ny = '''{\n'''\nz = [1, 2\n";
        let (line, message) = report(text).unwrap();
        assert_eq!(line, 5, "{message}");
        assert!(message.starts_with("invalid TOML: "), "{message}");
    }

    #[test]
    fn an_error_on_its_own_line_keeps_the_parser_message() {
        let text = "a = 1\nb = = 2\nc = 3\n";
        let (line, message) = report(text).unwrap();
        assert_eq!(line, 2);
        assert!(message.starts_with("invalid TOML: "), "{message}");
        assert!(!message.contains("not closed"), "{message}");
        let dup = report("a = 1\na = 2\n").unwrap();
        assert_eq!(dup, (2, "invalid TOML: duplicate key \"a\"".to_owned()));
        assert_eq!(report("a = 1\n"), None);
    }
}
