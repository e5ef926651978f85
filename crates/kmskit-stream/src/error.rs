//! [`StreamError`]: typed, stable errors of the stream format.

use std::fmt;
use std::io;

/// What went wrong while writing, reading, seeking or rewrapping a stream.
///
/// Every variant has a stable code ([`StreamError::code`]). Cryptographic failures carry no detail that
/// helps an attacker beyond which check failed (and, for chunks, the chunk index). No plaintext of a
/// chunk that failed authentication is ever released.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The input does not start with the stream magic.
    #[error("not a kmskit stream (bad magic)")]
    NotAStream,
    /// The header names a format version this build does not read.
    #[error("unsupported stream format version {0}")]
    UnsupportedVersion(u8),
    /// The header names an algorithm suite this build does not know.
    #[error("unsupported stream suite {0}")]
    UnsupportedSuite(u8),
    /// The header is malformed (a field out of range, non-zero reserved bits, a short header).
    #[error("bad stream header: {0}")]
    BadHeader(&'static str),
    /// The data key does not match the header's key commitment (wrong key, or an edited salt or
    /// parameter field).
    #[error("the data key does not match the stream's key commitment")]
    KeyCommitmentMismatch,
    /// The header MAC does not verify (an edited header, e.g. a replaced wrapped key).
    #[error("stream header authentication failed")]
    HeaderAuthFailed,
    /// The encryption context given differs from the one the stream was written with.
    #[error("encryption context does not match the stream")]
    ContextMismatch,
    /// A chunk failed authentication (tampering, reordering, duplication, a header from another
    /// stream, or a damaged final chunk).
    #[error("chunk {chunk} failed authentication")]
    ChunkAuthFailed {
        /// The zero-based chunk index.
        chunk: u64,
    },
    /// The stream ended before a valid final chunk.
    #[error("stream truncated: no valid final chunk")]
    Truncated,
    /// Bytes follow the final chunk.
    #[error("unexpected data after the final chunk")]
    TrailingData,
    /// The stream would exceed the format's limits (2^32 chunks).
    #[error("stream limit exceeded: {0}")]
    LimitExceeded(&'static str),
    /// A bad argument (chunk size, worker count, range, key length).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The stream was finished, or failed earlier, and cannot be used any more.
    #[error("stream is closed after an earlier error or finish")]
    Closed,
    /// The key provider failed (GenerateDataKey, Decrypt, ReEncrypt).
    #[error("key provider: {0}")]
    Kms(#[source] kmskit_core::Error),
    /// An I/O error of the underlying reader or writer.
    #[error("stream I/O: {0}")]
    Io(#[source] io::Error),
}

/// The result type of this crate.
pub type Result<T, E = StreamError> = std::result::Result<T, E>;

impl StreamError {
    /// The stable code of this error, e.g. `Stream.Truncated`. Provider errors return the provider's
    /// wire code (e.g. `Forbidden.KeyNotFound`).
    pub fn code(&self) -> &'static str {
        match self {
            StreamError::NotAStream => "Stream.NotAStream",
            StreamError::UnsupportedVersion(_) => "Stream.UnsupportedVersion",
            StreamError::UnsupportedSuite(_) => "Stream.UnsupportedSuite",
            StreamError::BadHeader(_) => "Stream.BadHeader",
            StreamError::KeyCommitmentMismatch => "Stream.KeyCommitmentMismatch",
            StreamError::HeaderAuthFailed => "Stream.HeaderAuthFailed",
            StreamError::ContextMismatch => "Stream.ContextMismatch",
            StreamError::ChunkAuthFailed { .. } => "Stream.ChunkAuthFailed",
            StreamError::Truncated => "Stream.Truncated",
            StreamError::TrailingData => "Stream.TrailingData",
            StreamError::LimitExceeded(_) => "Stream.LimitExceeded",
            StreamError::InvalidArgument(_) => "Stream.InvalidArgument",
            StreamError::Closed => "Stream.Closed",
            StreamError::Kms(e) => e.code().as_str(),
            StreamError::Io(_) => "Stream.Io",
        }
    }

    /// Recovers the stream error carried by an [`io::Error`] returned from this crate's `Read`/`Write`
    /// implementations; other I/O errors become [`StreamError::Io`].
    pub fn from_io(e: io::Error) -> StreamError {
        if e.get_ref().is_some_and(|inner| inner.is::<StreamError>()) {
            match e.into_inner().map(|b| b.downcast::<StreamError>()) {
                Some(Ok(s)) => *s,
                Some(Err(other)) => StreamError::Io(io::Error::other(other)),
                None => StreamError::Closed,
            }
        } else {
            StreamError::Io(e)
        }
    }

    /// Whether this is an integrity failure of the ciphertext (as opposed to I/O, provider or argument
    /// errors).
    pub fn is_integrity_failure(&self) -> bool {
        matches!(
            self,
            StreamError::NotAStream
                | StreamError::BadHeader(_)
                | StreamError::KeyCommitmentMismatch
                | StreamError::HeaderAuthFailed
                | StreamError::ContextMismatch
                | StreamError::ChunkAuthFailed { .. }
                | StreamError::Truncated
                | StreamError::TrailingData
        )
    }
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> Self {
        StreamError::from_io(e)
    }
}

impl From<kmskit_core::Error> for StreamError {
    fn from(e: kmskit_core::Error) -> Self {
        StreamError::Kms(e)
    }
}

impl From<StreamError> for io::Error {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Io(e) => e,
            StreamError::InvalidArgument(_) => io::Error::new(io::ErrorKind::InvalidInput, e),
            other => io::Error::new(io::ErrorKind::InvalidData, other),
        }
    }
}

impl From<StreamError> for kmskit_core::Error {
    fn from(e: StreamError) -> Self {
        match e {
            StreamError::Kms(e) => e,
            StreamError::Io(e) => kmskit_core::Error::io("stream I/O", e),
            StreamError::KeyCommitmentMismatch
            | StreamError::HeaderAuthFailed
            | StreamError::ContextMismatch
            | StreamError::ChunkAuthFailed { .. } => kmskit_core::Error::DecryptFailed,
            StreamError::LimitExceeded(what) => kmskit_core::Error::LimitExceeded(what.to_owned()),
            other => kmskit_core::Error::invalid("Stream", other.to_string()),
        }
    }
}

/// A short display helper used in `Debug` impls.
pub(crate) struct Redacted(pub(crate) usize);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[REDACTED; {}]", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_round_trip_keeps_the_variant() {
        let e: io::Error = StreamError::Truncated.into();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(matches!(StreamError::from_io(e), StreamError::Truncated));
        let e: io::Error = StreamError::Io(io::Error::new(io::ErrorKind::BrokenPipe, "x")).into();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn codes_are_stable_and_unique() {
        let all = [
            StreamError::NotAStream,
            StreamError::UnsupportedVersion(9),
            StreamError::UnsupportedSuite(9),
            StreamError::BadHeader("x"),
            StreamError::KeyCommitmentMismatch,
            StreamError::HeaderAuthFailed,
            StreamError::ContextMismatch,
            StreamError::ChunkAuthFailed { chunk: 1 },
            StreamError::Truncated,
            StreamError::TrailingData,
            StreamError::LimitExceeded("x"),
            StreamError::InvalidArgument("x".into()),
            StreamError::Closed,
            StreamError::Io(io::Error::other("x")),
        ];
        let codes: std::collections::HashSet<&str> = all.iter().map(StreamError::code).collect();
        assert_eq!(codes.len(), all.len());
        assert_eq!(StreamError::Truncated.code(), "Stream.Truncated");
        assert_eq!(
            StreamError::Kms(kmskit_core::Error::KeyNotFound("k".into())).code(),
            "Forbidden.KeyNotFound"
        );
        let core: kmskit_core::Error = StreamError::ChunkAuthFailed { chunk: 3 }.into();
        assert!(matches!(core, kmskit_core::Error::DecryptFailed));
    }
}
