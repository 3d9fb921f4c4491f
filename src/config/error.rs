//! Config errors: where each one is (file, line, column, or the environment
//! variable it came from) and how they print (`FILE:LINE:COLUMN: message`,
//! one per line). Positions and suggestions come from `crate::diag`.

use std::fmt;
use std::path::PathBuf;

/// One problem in the config, with its place.
///
/// `line` and `column` are 1-based. They are 0 when the problem has no place
/// in the file: an unreadable file, or a value set in the environment (then
/// `env_var` names the variable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// The `SWITCHYARD__...` variable the problem comes from, when it comes
    /// from the environment rather than the file.
    pub env_var: Option<String>,
    /// Lowercase, no trailing period; names the offending thing and never
    /// contains a secret value.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.env_var {
            Some(var) => write!(f, "environment variable {var}: {}", self.message),
            None if self.line == 0 => write!(f, "{}: {}", self.file.display(), self.message),
            None => write!(
                f,
                "{}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            ),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one load, file errors in file order, then
/// environment errors. Never empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub errors: Vec<ConfigError>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl From<ConfigError> for ConfigErrors {
    fn from(error: ConfigError) -> Self {
        ConfigErrors {
            errors: vec![error],
        }
    }
}
