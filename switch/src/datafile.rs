//! The error of the CSV data files the switch loads (BIN table, merchants, terminals,
//! limits): one shape, so configuration errors read the same whatever the file.

use std::fmt;
use std::path::PathBuf;

/// A data file (BIN table, merchants, terminals, limits) was rejected: which file, where in
/// it, and why. Display: `<file>: line 14 column mcc: <reason>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataFileError {
    /// The file being read.
    pub file: PathBuf,
    /// 1-based line number, when the error is about a particular line.
    pub line: Option<u64>,
    /// CSV column name, when known.
    pub column: Option<&'static str>,
    /// What is wrong.
    pub reason: String,
}

impl DataFileError {
    /// The location inside the file, e.g. `line 14 column mcc`, or `""` for whole-file errors.
    #[must_use]
    pub fn location(&self) -> String {
        match (self.line, self.column) {
            (Some(line), Some(col)) => format!("line {line} column {col}"),
            (Some(line), None) => format!("line {line}"),
            (None, Some(col)) => format!("column {col}"),
            (None, None) => String::new(),
        }
    }
}

impl std::error::Error for DataFileError {}

impl fmt::Display for DataFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let location = self.location();
        if location.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.reason)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), location, self.reason)
        }
    }
}
