//! The located configuration error: the file, the line, and a message naming the field and the
//! bad value and saying what would be valid.

use std::{fmt, ops::Range as ByteRange};

/// A configuration error: where, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file, line, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// The text being parsed and the name it goes by in messages: turns a byte span into a located
/// error or a line number.
#[derive(Clone, Copy)]
pub(super) struct Source<'a> {
    pub text: &'a str,
    pub file: &'a str,
}

impl Source<'_> {
    /// An error at the line where `span` starts.
    pub fn at(&self, span: ByteRange<usize>, message: String) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: Some(self.line(span.start)),
            message,
        }
    }

    /// 1-based line of a byte offset.
    pub fn line(&self, offset: usize) -> usize {
        line_of(self.text, offset)
    }

    /// The TOML parser's error (syntax, unknown field, wrong type), located the same way.
    pub fn toml(&self, e: toml::de::Error) -> ConfigError {
        ConfigError {
            file: self.file.to_string(),
            line: e.span().map(|s| self.line(s.start)),
            message: e.message().trim_end().to_string() + hint_for(e.message()),
        }
    }
}

fn hint_for(message: &str) -> &'static str {
    if message.contains("unknown field") {
        "; check the spelling against deploy/config.example.toml"
    } else {
        ""
    }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}
