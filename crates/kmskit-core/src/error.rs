//! One error type with stable wire codes.
//!
//! [`Error`] names the condition; [`ErrorCode`] is the stable, public code string that goes on the wire
//! (the model service's code where it has one, see `specs/alibaba-kms-api.md` §10) with its HTTP status.
//! Many conditions may share one wire code (a failed decryption answers `InvalidParameter`, as the model
//! service does), but each [`ErrorCode`] has exactly one string and one status, pinned by a test.
//! Codes are a public contract: they are added, never renamed or reused.

use std::fmt;

use crate::key::KeyState;

/// A boxed error source, for transport and storage failures only.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of every kmskit operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

macro_rules! error_codes {
    ($( $(#[$doc:meta])* $variant:ident => ($code:literal, $status:literal), )*) => {
        /// A stable wire code with its HTTP status.
        #[non_exhaustive]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum ErrorCode {
            $( $(#[$doc])* $variant, )*
        }

        impl ErrorCode {
            /// Every code, in table order.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant,)*];

            /// The code string, e.g. `Forbidden.KeyNotFound`.
            pub const fn as_str(self) -> &'static str {
                match self { $( ErrorCode::$variant => $code, )* }
            }

            /// The HTTP status a server answers with.
            pub const fn http_status(self) -> u16 {
                match self { $( ErrorCode::$variant => $status, )* }
            }

            /// Looks a code up by its string.
            pub fn from_code_str(s: &str) -> Option<ErrorCode> {
                match s { $( $code => Some(ErrorCode::$variant), )* _ => None }
            }
        }
    };
}

error_codes! {
    /// A required parameter is absent.
    MissingParameter => ("MissingParameter", 400),
    /// A parameter has a bad value (also: a ciphertext that does not decrypt).
    InvalidParameter => ("InvalidParameter", 400),
    /// The request parameters cannot be parsed.
    ParseRequestParameterException => ("ParseRequestParameterException", 400),
    /// Signature parameters are malformed.
    IncompleteSignature => ("IncompleteSignature", 400),
    /// The request timestamp is missing or malformed.
    IllegalTimestamp => ("IllegalTimestamp", 400),
    /// A rate limit was hit.
    Throttling => ("Throttling", 400),
    /// A resource quota was exceeded.
    LimitExceeded => ("Rejected.LimitExceeded", 400),
    /// The alias name is taken.
    AliasAlreadyExists => ("AliasAlreadyExists", 400),
    /// The key origin is not valid here.
    UnsupportedOrigin => ("Unsupported.Origin", 400),
    /// The alias is not valid here (for example a reserved name).
    UnsupportedAlias => ("Unsupported.Alias", 400),
    /// The protection level is not valid here.
    UnsupportedProtectionLevel => ("Unsupported.ProtectionLevel", 400),
    /// The operation is not supported for this key (usage, spec, backend).
    UnsupportedOperation => ("Rejected.UnsupportedOperation", 400),
    /// The request signature does not match.
    SignatureDoesNotMatch => ("SignatureDoesNotMatch", 400),
    /// The request timestamp is outside the allowed skew.
    TimestampExpired => ("InvalidTimeStamp.Expired", 400),
    /// The signature nonce was seen before.
    SignatureNonceUsed => ("SignatureNonceUsed", 400),
    /// The API version is not valid.
    InvalidVersion => ("InvalidVersion", 400),
    /// Policy or RAM denies the call.
    NoPermission => ("Forbidden.NoPermission", 403),
    /// The access key is disabled.
    ForbiddenAccessKey => ("Forbidden.AccessKey", 403),
    /// The HTTP method is not allowed.
    UnsupportedHttpMethod => ("UnsupportedHTTPMethod", 403),
    /// The access key id is unknown.
    InvalidAccessKeyIdNotFound => ("InvalidAccessKeyId.NotFound", 404),
    /// The action is unknown.
    InvalidActionNotFound => ("InvalidAction.NotFound", 404),
    /// The key does not exist.
    KeyNotFound => ("Forbidden.KeyNotFound", 404),
    /// The alias does not exist.
    AliasNotFound => ("Forbidden.AliasNotFound", 404),
    /// The key version does not exist.
    KeyVersionNotFound => ("Forbidden.KeyVersionNotFound", 404),
    /// The key is disabled.
    Disabled => ("Rejected.Disabled", 409),
    /// The key is pending deletion.
    PendingDeletion => ("Rejected.PendingDeletion", 409),
    /// The key waits for imported material.
    PendingImport => ("Rejected.PendingImport", 409),
    /// The state transition is not allowed from the key's current state.
    StateModifiedFailed => ("Rejected.StateModifiedFailed", 409),
    /// The keystore is held by another process.
    StoreLocked => ("Rejected.StoreLocked", 409),
    /// The keystore was opened read-only.
    ReadOnly => ("Rejected.ReadOnly", 409),
    /// Stored data failed its integrity check (kmskit's own code).
    StoreCorrupted => ("InternalFailure.StoreCorrupted", 500),
    /// An internal failure.
    InternalFailure => ("InternalFailure", 500),
    /// The backend is temporarily unavailable; retry.
    ServiceUnavailableTemporary => ("ServiceUnavailableTemporary", 503),
    /// The ciphertext's key version is below the key's minimum decryption version (kmskit's own code).
    KeyVersionRetired => ("Rejected.KeyVersionRetired", 409),
    /// The call is held for dual control until a second principal approves it (kmskit's own code).
    ApprovalRequired => ("Rejected.ApprovalRequired", 409),
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every failure kmskit reports.
///
/// Display may name a key id or a parameter, never key bytes or plaintext. Cryptographic failures are
/// opaque: [`Error::DecryptFailed`] carries nothing that helps an attacker.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A required parameter is absent.
    #[error("The parameter \"{0}\" is needed but not provided.")]
    MissingParameter(&'static str),
    /// A parameter has a bad value.
    #[error("The specified parameter \"{name}\" is not valid: {reason}")]
    InvalidParameter {
        /// The parameter's name (API spelling, e.g. `KeyId`).
        name: &'static str,
        /// Why it is not valid.
        reason: String,
    },
    /// The ciphertext did not authenticate under its key and the given encryption context.
    #[error("The specified parameter \"CiphertextBlob\" is not valid: decryption failed")]
    DecryptFailed,
    /// The key does not exist (or was purged).
    #[error("The specified Key is not found: {0}")]
    KeyNotFound(String),
    /// The alias does not exist.
    #[error("The specified Alias is not found: {0}")]
    AliasNotFound(String),
    /// The key version does not exist.
    #[error("The specified Key version is not found: {0}")]
    KeyVersionNotFound(String),
    /// The alias name is taken.
    #[error("The alias already exists: {0}")]
    AliasAlreadyExists(String),
    /// The alias name is reserved or otherwise not allowed.
    #[error("The alias is not supported: {0}")]
    UnsupportedAlias(String),
    /// The origin is not allowed for this key (e.g. `EXTERNAL` for an asymmetric spec).
    #[error("The origin is not supported: {0}")]
    UnsupportedOrigin(String),
    /// The key's state forbids this operation.
    #[error("The request was rejected because the key state is {state}: {key}")]
    KeyNotUsable {
        /// The key id.
        key: String,
        /// The state that forbids it.
        state: KeyState,
    },
    /// The state transition is not allowed.
    #[error("Keystate modified failed: key {key} is {state}")]
    StateModifiedFailed {
        /// The key id.
        key: String,
        /// The key's current state.
        state: KeyState,
    },
    /// The operation is not supported (for this key, spec, usage or backend).
    #[error("Unsupported operation: {0}")]
    Unsupported(String),
    /// The protection level asked for is not what this backend offers.
    #[error("Unsupported protection level: {0}")]
    UnsupportedProtectionLevel(String),
    /// A quota was exceeded.
    #[error("Limit exceeded: {0}")]
    LimitExceeded(String),
    /// Access denied (policy, wrong root key, bad PIN, …).
    #[error("access denied: {reason}")]
    AccessDenied {
        /// What was denied, without secrets.
        reason: String,
        /// The underlying failure, where there is one that may be shown.
        #[source]
        source: Option<BoxError>,
    },
    /// The keystore is locked by another process.
    #[error("keystore {path} is locked by another process ({holder})")]
    Locked {
        /// The keystore path.
        path: String,
        /// What is known about the holder (pid, host).
        holder: String,
    },
    /// The keystore was opened read-only and the call would change it.
    #[error("keystore is open read-only")]
    ReadOnly,
    /// Stored data failed an integrity check. The rest of the store stays usable.
    #[error("corrupted record {record} in {path}: {reason}")]
    Corrupted {
        /// The file (or object) holding the record.
        path: String,
        /// The record's name.
        record: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A storage I/O failure.
    #[error("storage failure: {context}")]
    Io {
        /// What was being done (may name a path).
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The backend is temporarily unavailable.
    #[error("backend unavailable: {message}")]
    Unavailable {
        /// What failed.
        message: String,
        /// Whether a retry may succeed.
        retryable: bool,
        /// The underlying failure.
        #[source]
        source: Option<BoxError>,
    },
    /// A remote service answered with an error code of its own.
    #[error("remote error {code}: {message}")]
    Remote {
        /// Our code the remote error maps to.
        code: ErrorCode,
        /// The remote service's message, including its own code.
        message: String,
    },
    /// An internal failure (a bug, or a backend failing in an unexpected way).
    #[error("internal failure: {0}")]
    Internal(String),
    /// The ciphertext was sealed under a key version older than the key's minimum decryption version
    /// (a version floor retired it on purpose). Raising the floor is reversible: lowering it again makes
    /// the version decrypt once more.
    #[error("key version {version} of key {key} is retired (below the minimum decryption version)")]
    KeyVersionRetired {
        /// The key id.
        key: String,
        /// The retired version.
        version: String,
    },
    /// The call is held for dual control: a second, distinct principal must approve it.
    #[error("{action} is held for approval by a second principal (approval id {approval_id})")]
    ApprovalRequired {
        /// The id to approve it with.
        approval_id: String,
        /// The action held.
        action: String,
    },
}

impl Error {
    /// Builds an [`Error::InvalidParameter`].
    pub fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::Io`] with context.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    /// The stable wire code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::MissingParameter(_) => ErrorCode::MissingParameter,
            Error::InvalidParameter { .. } | Error::DecryptFailed => ErrorCode::InvalidParameter,
            Error::KeyNotFound(_) => ErrorCode::KeyNotFound,
            Error::AliasNotFound(_) => ErrorCode::AliasNotFound,
            Error::KeyVersionNotFound(_) => ErrorCode::KeyVersionNotFound,
            Error::AliasAlreadyExists(_) => ErrorCode::AliasAlreadyExists,
            Error::UnsupportedAlias(_) => ErrorCode::UnsupportedAlias,
            Error::UnsupportedOrigin(_) => ErrorCode::UnsupportedOrigin,
            Error::KeyNotUsable { state, .. } => match state {
                KeyState::Disabled => ErrorCode::Disabled,
                KeyState::PendingDeletion => ErrorCode::PendingDeletion,
                KeyState::PendingImport => ErrorCode::PendingImport,
                KeyState::Enabled => ErrorCode::InternalFailure,
            },
            Error::StateModifiedFailed { .. } => ErrorCode::StateModifiedFailed,
            Error::Unsupported(_) => ErrorCode::UnsupportedOperation,
            Error::UnsupportedProtectionLevel(_) => ErrorCode::UnsupportedProtectionLevel,
            Error::LimitExceeded(_) => ErrorCode::LimitExceeded,
            Error::AccessDenied { .. } => ErrorCode::NoPermission,
            Error::Locked { .. } => ErrorCode::StoreLocked,
            Error::ReadOnly => ErrorCode::ReadOnly,
            Error::Corrupted { .. } => ErrorCode::StoreCorrupted,
            Error::Io { .. } | Error::Internal(_) => ErrorCode::InternalFailure,
            Error::Unavailable { .. } => ErrorCode::ServiceUnavailableTemporary,
            Error::Remote { code, .. } => *code,
            Error::KeyVersionRetired { .. } => ErrorCode::KeyVersionRetired,
            Error::ApprovalRequired { .. } => ErrorCode::ApprovalRequired,
        }
    }

    /// The HTTP status of [`Error::code`].
    pub fn http_status(&self) -> u16 {
        self.code().http_status()
    }

    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable { retryable, .. } => *retryable,
            Error::Remote { code, .. } => matches!(
                code,
                ErrorCode::Throttling | ErrorCode::ServiceUnavailableTemporary
            ),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The code table is a public contract: this pins every row.
    #[test]
    fn code_table_is_pinned() {
        let expected: &[(&str, u16)] = &[
            ("MissingParameter", 400),
            ("InvalidParameter", 400),
            ("ParseRequestParameterException", 400),
            ("IncompleteSignature", 400),
            ("IllegalTimestamp", 400),
            ("Throttling", 400),
            ("Rejected.LimitExceeded", 400),
            ("AliasAlreadyExists", 400),
            ("Unsupported.Origin", 400),
            ("Unsupported.Alias", 400),
            ("Unsupported.ProtectionLevel", 400),
            ("Rejected.UnsupportedOperation", 400),
            ("SignatureDoesNotMatch", 400),
            ("InvalidTimeStamp.Expired", 400),
            ("SignatureNonceUsed", 400),
            ("InvalidVersion", 400),
            ("Forbidden.NoPermission", 403),
            ("Forbidden.AccessKey", 403),
            ("UnsupportedHTTPMethod", 403),
            ("InvalidAccessKeyId.NotFound", 404),
            ("InvalidAction.NotFound", 404),
            ("Forbidden.KeyNotFound", 404),
            ("Forbidden.AliasNotFound", 404),
            ("Forbidden.KeyVersionNotFound", 404),
            ("Rejected.Disabled", 409),
            ("Rejected.PendingDeletion", 409),
            ("Rejected.PendingImport", 409),
            ("Rejected.StateModifiedFailed", 409),
            ("Rejected.StoreLocked", 409),
            ("Rejected.ReadOnly", 409),
            ("InternalFailure.StoreCorrupted", 500),
            ("InternalFailure", 500),
            ("ServiceUnavailableTemporary", 503),
            ("Rejected.KeyVersionRetired", 409),
            ("Rejected.ApprovalRequired", 409),
        ];
        let actual: Vec<(&str, u16)> = ErrorCode::ALL
            .iter()
            .map(|c| (c.as_str(), c.http_status()))
            .collect();
        assert_eq!(actual, expected);
        let unique: HashSet<&str> = actual.iter().map(|(c, _)| *c).collect();
        assert_eq!(unique.len(), actual.len(), "codes must be unique");
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_code_str(c.as_str()), Some(*c));
        }
    }

    #[test]
    fn errors_map_to_codes() {
        let cases: Vec<(Error, &str, u16)> = vec![
            (Error::MissingParameter("KeyId"), "MissingParameter", 400),
            (Error::invalid("KeyId", "x"), "InvalidParameter", 400),
            (Error::DecryptFailed, "InvalidParameter", 400),
            (Error::KeyNotFound("k".into()), "Forbidden.KeyNotFound", 404),
            (Error::AliasNotFound("a".into()), "Forbidden.AliasNotFound", 404),
            (
                Error::KeyVersionNotFound("v".into()),
                "Forbidden.KeyVersionNotFound",
                404,
            ),
            (Error::AliasAlreadyExists("a".into()), "AliasAlreadyExists", 400),
            (
                Error::KeyNotUsable {
                    key: "k".into(),
                    state: KeyState::Disabled,
                },
                "Rejected.Disabled",
                409,
            ),
            (
                Error::KeyNotUsable {
                    key: "k".into(),
                    state: KeyState::PendingDeletion,
                },
                "Rejected.PendingDeletion",
                409,
            ),
            (
                Error::KeyNotUsable {
                    key: "k".into(),
                    state: KeyState::PendingImport,
                },
                "Rejected.PendingImport",
                409,
            ),
            (
                Error::StateModifiedFailed {
                    key: "k".into(),
                    state: KeyState::Enabled,
                },
                "Rejected.StateModifiedFailed",
                409,
            ),
            (
                Error::Unsupported("x".into()),
                "Rejected.UnsupportedOperation",
                400,
            ),
            (Error::LimitExceeded("x".into()), "Rejected.LimitExceeded", 400),
            (
                Error::AccessDenied {
                    reason: "x".into(),
                    source: None,
                },
                "Forbidden.NoPermission",
                403,
            ),
            (Error::ReadOnly, "Rejected.ReadOnly", 409),
            (Error::Internal("x".into()), "InternalFailure", 500),
            (
                Error::KeyVersionRetired {
                    key: "k".into(),
                    version: "v".into(),
                },
                "Rejected.KeyVersionRetired",
                409,
            ),
        ];
        for (err, code, status) in cases {
            assert_eq!(err.code().as_str(), code, "{err}");
            assert_eq!(err.http_status(), status, "{err}");
        }
    }

    #[test]
    fn decrypt_failure_is_opaque() {
        let msg = Error::DecryptFailed.to_string();
        assert!(!msg.contains("tag"));
        assert!(!msg.contains("context"));
    }
}
