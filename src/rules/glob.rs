//! The rules' glob patterns: `*` matches any run of characters (also none),
//! `?` exactly one character, everything else itself; the whole value must
//! match and case is ignored. There are deliberately no character classes,
//! braces or escapes: `[`, `]`, `{`, `}` and `\` are rejected when the rules
//! are loaded, so a pattern written for another glob dialect fails loudly
//! instead of silently matching nothing.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Lit(char),
    One,
    Star,
}

/// A compiled pattern. Compiling folds case once, so that matching needs no
/// allocation.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    source: String,
    toks: Vec<Tok>,
    kind: Kind,
}

/// Shapes that can be matched without the general backtracking loop; most
/// real patterns (`MUG-*`, `*@example.com`, `*express*`) are one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(String),
    AnyValue,
    General,
}

impl PartialEq for Glob {
    fn eq(&self, other: &Self) -> bool {
        self.toks == other.toks
    }
}

impl Eq for Glob {}

/// Why a pattern was rejected, and at which character (an offset in chars
/// into the pattern, for pointing at it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GlobError {
    pub(crate) at: usize,
    pub(crate) message: String,
}

impl Glob {
    pub(crate) fn new(pattern: &str) -> Result<Glob, GlobError> {
        if pattern.is_empty() {
            return Err(GlobError {
                at: 0,
                message: "empty pattern (use \"*\" to match any value)".into(),
            });
        }
        let mut toks = Vec::with_capacity(pattern.len());
        for (i, c) in pattern.chars().enumerate() {
            let tok = match c {
                '*' => Tok::Star,
                '?' => Tok::One,
                '[' | ']' => {
                    return Err(GlobError {
                        at: i,
                        message: format!(
                            "{c:?} in pattern {pattern:?}: character classes are not supported \
                             (list the alternatives instead, e.g. [\"A-1\", \"A-2\"])"
                        ),
                    });
                }
                '{' | '}' => {
                    return Err(GlobError {
                        at: i,
                        message: format!(
                            "{c:?} in pattern {pattern:?}: braces are not supported \
                             (list the alternatives instead, e.g. [\"MUG-RED\", \"MUG-BLUE\"])"
                        ),
                    });
                }
                '\\' => {
                    return Err(GlobError {
                        at: i,
                        message: format!(
                            "'\\\\' in pattern {pattern:?}: escapes are not supported \
                             (only * and ? are special)"
                        ),
                    });
                }
                c => Tok::Lit(fold(c)),
            };
            // `**` means the same as `*`; keeping one makes matching linear
            // in the common cases.
            if !(tok == Tok::Star && toks.last() == Some(&Tok::Star)) {
                toks.push(tok);
            }
        }
        let kind = classify(&toks);
        Ok(Glob {
            source: pattern.to_owned(),
            toks,
            kind,
        })
    }

    /// Whether the pattern matches every value.
    pub(crate) fn is_any(&self) -> bool {
        self.kind == Kind::AnyValue
    }

    pub(crate) fn matches(&self, text: &str) -> bool {
        match &self.kind {
            Kind::Exact(lit) => eq_folded(text, lit),
            Kind::Prefix(lit) => starts_folded(text, lit).is_some(),
            Kind::Suffix(lit) => ends_folded(text, lit),
            Kind::Contains(lit) => contains_folded(text, lit),
            Kind::AnyValue => true,
            Kind::General => general_match(&self.toks, text),
        }
    }

    /// Whether every value this pattern matches is also matched by `wider`.
    /// Exact for literals, `*`, and prefix/suffix patterns; otherwise only
    /// identical patterns count (an under-approximation, which is what the
    /// unreachable-rule warning needs: it must never warn wrongly).
    pub(crate) fn subsumed_by(&self, wider: &Glob) -> bool {
        if wider.is_any() || self == wider {
            return true;
        }
        if let Kind::Exact(lit) = &self.kind {
            return wider.matches(lit);
        }
        let lead: String = self
            .toks
            .iter()
            .map_while(|t| match t {
                Tok::Lit(c) => Some(*c),
                _ => None,
            })
            .collect();
        let mut trail: Vec<char> = self
            .toks
            .iter()
            .rev()
            .map_while(|t| match t {
                Tok::Lit(c) => Some(*c),
                _ => None,
            })
            .collect();
        trail.reverse();
        let trail: String = trail.into_iter().collect();
        match &wider.kind {
            Kind::Prefix(p) => lead.starts_with(p.as_str()),
            Kind::Suffix(s) => trail.ends_with(s.as_str()),
            _ => false,
        }
    }
}

impl fmt::Display for Glob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn classify(toks: &[Tok]) -> Kind {
    let lit = |ts: &[Tok]| -> Option<String> {
        ts.iter()
            .map(|t| match t {
                Tok::Lit(c) => Some(*c),
                _ => None,
            })
            .collect()
    };
    match toks {
        [Tok::Star] => Kind::AnyValue,
        _ => {
            if let Some(s) = lit(toks) {
                return Kind::Exact(s);
            }
            if let [rest @ .., Tok::Star] = toks
                && let Some(s) = lit(rest)
            {
                return Kind::Prefix(s);
            }
            if let [Tok::Star, rest @ ..] = toks
                && let Some(s) = lit(rest)
            {
                return Kind::Suffix(s);
            }
            if let [Tok::Star, mid @ .., Tok::Star] = toks
                && let Some(s) = lit(mid)
            {
                return Kind::Contains(s);
            }
            Kind::General
        }
    }
}

/// Simple case folding: a character whose lower case is one character maps
/// to it; the rare ones that expand (e.g. 'İ') stay as they are. Applied to
/// both sides, so equal strings always match.
#[inline]
pub(crate) fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

/// Case-insensitive equality without allocating.
#[inline]
pub(crate) fn eq_folded(text: &str, folded: &str) -> bool {
    if text.is_ascii() && folded.is_ascii() {
        return text.eq_ignore_ascii_case(folded);
    }
    text.chars().map(fold).eq(folded.chars())
}

/// Case-insensitive equality of two unfolded strings.
#[inline]
pub(crate) fn eq_ci(a: &str, b: &str) -> bool {
    if a.len() == b.len() && a.eq_ignore_ascii_case(b) {
        return true;
    }
    if a.is_ascii() && b.is_ascii() {
        return false;
    }
    a.chars().map(fold).eq(b.chars().map(fold))
}

/// If `text` starts with `folded` (ignoring case), the byte length of the
/// matched part of `text`.
fn starts_folded(text: &str, folded: &str) -> Option<usize> {
    if text.is_ascii() && folded.is_ascii() {
        let n = folded.len();
        return (text.len() >= n && text.as_bytes()[..n].eq_ignore_ascii_case(folded.as_bytes()))
            .then_some(n);
    }
    let mut it = text.char_indices();
    for want in folded.chars() {
        match it.next() {
            Some((_, c)) if fold(c) == want => {}
            _ => return None,
        }
    }
    Some(it.next().map_or(text.len(), |(i, _)| i))
}

fn ends_folded(text: &str, folded: &str) -> bool {
    if text.is_ascii() && folded.is_ascii() {
        let (t, f) = (text.as_bytes(), folded.as_bytes());
        return t.len() >= f.len() && t[t.len() - f.len()..].eq_ignore_ascii_case(f);
    }
    let mut t = text.chars().rev();
    folded
        .chars()
        .rev()
        .all(|want| t.next().is_some_and(|c| fold(c) == want))
}

fn contains_folded(text: &str, folded: &str) -> bool {
    if folded.is_empty() {
        return true;
    }
    if text.is_ascii() && folded.is_ascii() {
        let f = folded.as_bytes();
        return text
            .as_bytes()
            .windows(f.len())
            .any(|w| w.eq_ignore_ascii_case(f));
    }
    text.char_indices()
        .any(|(i, _)| starts_folded(&text[i..], folded).is_some())
}

/// The classic single-star backtracking matcher: on a mismatch, retry from
/// one character further after the most recent `*`. Worst case O(n·m), no
/// allocation.
fn general_match(toks: &[Tok], text: &str) -> bool {
    let mut p = 0;
    let mut t = 0;
    let mut star: Option<(usize, usize)> = None;
    loop {
        if p < toks.len() {
            match toks[p] {
                Tok::Star => {
                    p += 1;
                    star = Some((p, t));
                    continue;
                }
                Tok::One => {
                    if let Some(c) = text[t..].chars().next() {
                        t += c.len_utf8();
                        p += 1;
                        continue;
                    }
                }
                Tok::Lit(want) => {
                    if let Some(c) = text[t..].chars().next()
                        && fold(c) == want
                    {
                        t += c.len_utf8();
                        p += 1;
                        continue;
                    }
                }
            }
        } else if t == text.len() {
            return true;
        }
        match star {
            Some((sp, st)) => match text[st..].chars().next() {
                Some(c) => {
                    let next = st + c.len_utf8();
                    star = Some((sp, next));
                    p = sp;
                    t = next;
                }
                None => return false,
            },
            None => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, t: &str) -> bool {
        Glob::new(p).unwrap().matches(t)
    }

    #[test]
    fn whole_value_case_insensitive() {
        assert!(m("MUG-*", "mug-red"));
        assert!(!m("MUG-*", "big-mug-red"));
        assert!(m("*@Example.com", "ada@EXAMPLE.COM"));
        assert!(m("*express*", "UPS Express Saver"));
        assert!(m("100??", "10012"));
        assert!(!m("100??", "1001"));
        assert!(m("a*b?c*d", "aXXbYcZZd"));
        assert!(!m("a*b?c*d", "aXXbcZZd"));
        assert!(m("*", ""));
        assert!(!m("?", ""));
        assert!(m("ÉTÉ-*", "été-2026"));
        assert!(m("*-été", "X-ÉTÉ"));
        assert!(m("*é*", "caFÉ au lait"));
        assert!(m("é?*x", "ÉabX"));
    }

    #[test]
    fn rejects_other_dialects() {
        assert_eq!(Glob::new("MUG-[RB]").unwrap_err().at, 4);
        assert_eq!(Glob::new("{a,b}").unwrap_err().at, 0);
        assert_eq!(Glob::new("a\\*").unwrap_err().at, 1);
        assert!(Glob::new("").is_err());
    }

    #[test]
    fn subsumption() {
        let g = |p: &str| Glob::new(p).unwrap();
        assert!(g("MUG-RED").subsumed_by(&g("mug-*")));
        assert!(g("MUG-RED-*").subsumed_by(&g("MUG-*")));
        assert!(g("*.co.uk").subsumed_by(&g("*.uk")));
        assert!(g("a?b").subsumed_by(&g("*")));
        assert!(!g("MUG-*").subsumed_by(&g("MUG-RED-*")));
        assert!(!g("*a*").subsumed_by(&g("*b*")));
    }
}
