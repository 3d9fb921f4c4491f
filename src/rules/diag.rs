//! Diagnostics for the rules file: `FILE:LINE:COLUMN: message` lines, placed
//! with `crate::diag`'s line index.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use crate::diag::LineIndex;

/// How bad a diagnostic is: errors reject the file, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about the rules file, with a 1-based line and column
/// (columns count characters, not bytes). A line of 0 means the finding is
/// about the file as a whole (it could not be read): Display then omits the
/// position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub message: String,
}

impl Diagnostic {
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.file.display())?;
        if self.line > 0 {
            write!(f, "{}:{}:", self.line, self.column)?;
        }
        if self.severity == Severity::Warning {
            f.write_str(" warning:")?;
        }
        write!(f, " {}", self.message)
    }
}

/// Every diagnostic of a rejected rules file, so that callers can use `?`
/// and still print all of them, one per line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.0))]
pub struct RuleErrors(pub Vec<Diagnostic>);

fn render(diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Collects diagnostics for one file.
pub(crate) struct Sink<'s> {
    pub(crate) file: PathBuf,
    pub(crate) index: LineIndex<'s>,
    pub(crate) diags: Vec<Diagnostic>,
}

impl<'s> Sink<'s> {
    pub(crate) fn new(file: PathBuf, text: &'s str) -> Self {
        Sink {
            file,
            index: LineIndex::new(text),
            diags: Vec::new(),
        }
    }

    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, Severity::Error, message.into());
    }

    pub(crate) fn warning(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.push(span, Severity::Warning, message.into());
    }

    fn push(&mut self, span: Range<usize>, severity: Severity, message: String) {
        let (line, column) = self.index.position(span.start);
        self.diags.push(Diagnostic {
            file: self.file.clone(),
            line,
            column,
            severity,
            message,
        });
    }

    pub(crate) fn has_errors(&self) -> bool {
        self.diags.iter().any(Diagnostic::is_error)
    }

    /// File order, so that `check` prints findings as one reads the file.
    pub(crate) fn into_sorted(mut self) -> Vec<Diagnostic> {
        self.diags.sort_by_key(|d| (d.line, d.column, d.severity));
        self.diags.dedup();
        self.diags
    }
}
