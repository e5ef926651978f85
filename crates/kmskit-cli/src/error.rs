//! One error type for the tool: a stable code, a message, an exit status.

use std::fmt;
use std::path::Path;

/// An error as the tool reports it: `error: <Code>: <message>` on stderr.
#[derive(Debug)]
pub(crate) struct CliError {
    /// The stable code: the API's (`Forbidden.KeyNotFound`), the stream format's (`Stream.Truncated`),
    /// or the tool's own (`Cli.*`).
    pub(crate) code: String,
    pub(crate) message: String,
    /// 1 for failures, 2 for usage errors.
    pub(crate) exit: u8,
}

impl CliError {
    pub(crate) fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            code: code.to_owned(),
            message: message.into(),
            exit: 1,
        }
    }

    /// A usage error (exit status 2).
    pub(crate) fn usage(message: impl Into<String>) -> Self {
        Self {
            exit: 2,
            ..Self::new("Cli.Usage", message)
        }
    }

    pub(crate) fn io(path: &Path, e: std::io::Error) -> Self {
        Self::new("Cli.Io", format!("{}: {e}", path.display()))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message.replace('\n', " "))
    }
}

impl From<kmskit::Error> for CliError {
    fn from(e: kmskit::Error) -> Self {
        Self::new(e.code().as_str(), e.to_string())
    }
}

impl From<kmskit::stream::StreamError> for CliError {
    fn from(e: kmskit::stream::StreamError) -> Self {
        Self::new(e.code(), e.to_string())
    }
}
