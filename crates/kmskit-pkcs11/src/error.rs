//! The one place where PKCS#11 failures become kmskit errors.

use cryptoki::context::Function;
use cryptoki::error::{Error as CkError, RvError};
use kmskit_core::Error;

/// Maps a cryptoki failure to a kmskit [`Error`]. `subject` names what the call was about (a key or
/// material id, a token) and appears in `KeyNotFound` and in messages; never a secret.
///
/// | PKCS#11 | kmskit |
/// |---|---|
/// | `CKR_KEY_HANDLE_INVALID`, `CKR_OBJECT_HANDLE_INVALID` | [`Error::KeyNotFound`] naming `subject` |
/// | `CKR_ENCRYPTED_DATA_INVALID`, `CKR_ENCRYPTED_DATA_LEN_RANGE`, and `CKR_GENERAL_ERROR` from `C_Decrypt` (SoftHSM's answer to a bad tag or AAD, bad OAEP padding, an RSA ciphertext not below the modulus) | [`Error::DecryptFailed`], opaque |
/// | `CKR_PIN_*`, `CKR_USER_NOT_LOGGED_IN`, `CKR_USER_PIN_NOT_INITIALIZED`, `CKR_KEY_FUNCTION_NOT_PERMITTED` | [`Error::AccessDenied`] |
/// | `CKR_DEVICE_REMOVED`, `CKR_TOKEN_NOT_PRESENT`, `CKR_SESSION_*` (lost, closed, count), `CKR_DEVICE_ERROR`, `CKR_CRYPTOKI_NOT_INITIALIZED`, … | retryable [`Error::Unavailable`]; the pool reconnects |
/// | the module cannot be loaded | non-retryable [`Error::Unavailable`] |
/// | anything else | [`Error::Internal`] with the `(function, return value)` pair |
///
/// One refinement happens before this mapping, where the session is at hand
/// ([`Lease::fail`](crate::pool::Lease::fail)): a missing handle or `CKR_USER_NOT_LOGGED_IN` on a
/// session that shows the process logged out is a lost login, reported as retryable.
pub(crate) fn map_err(err: CkError, subject: &str) -> Error {
    let (rv, func) = match err {
        CkError::Pkcs11(rv, func) => (rv, func),
        CkError::LibraryLoading(e) => {
            return Error::Unavailable {
                message: format!("cannot load the PKCS#11 module: {e}"),
                retryable: false,
                source: Some(Box::new(e)),
            };
        }
        other => return Error::Internal(format!("PKCS#11 ({subject}): {other}")),
    };
    let call = format!("{}: {rv:?}", c_name(func));
    match rv {
        RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid => Error::KeyNotFound(subject.to_owned()),
        RvError::EncryptedDataInvalid | RvError::EncryptedDataLenRange => Error::DecryptFailed,
        RvError::GeneralError if matches!(func, Function::Decrypt | Function::DecryptFinal) => {
            Error::DecryptFailed
        }
        RvError::PinIncorrect
        | RvError::PinInvalid
        | RvError::PinLenRange
        | RvError::PinExpired
        | RvError::PinLocked => Error::AccessDenied {
            reason: format!("the token {subject} refused the user PIN ({call})"),
            source: None,
        },
        RvError::UserNotLoggedIn
        | RvError::UserPinNotInitialized
        | RvError::UserAnotherAlreadyLoggedIn
        | RvError::KeyFunctionNotPermitted => Error::AccessDenied {
            reason: format!("the token refused the operation on {subject} ({call})"),
            source: None,
        },
        RvError::DeviceRemoved
        | RvError::DeviceError
        | RvError::DeviceMemory
        | RvError::TokenNotPresent
        | RvError::TokenNotRecognized
        | RvError::SessionCount
        | RvError::SessionHandleInvalid
        | RvError::SessionClosed
        | RvError::CryptokiNotInitialized
        | RvError::FunctionCanceled
        | RvError::HostMemory
        | RvError::CantLock => Error::Unavailable {
            message: format!("the PKCS#11 token is unavailable ({call}) while working on {subject}"),
            retryable: true,
            source: None,
        },
        _ => Error::Internal(format!("PKCS#11 {call} while working on {subject}")),
    }
}

/// Whether a mapped error means the session (or the token, or the library) is gone: the pool then
/// drops its sessions and reconnects on the next call.
pub(crate) fn is_connection_lost(err: &Error) -> bool {
    matches!(err, Error::Unavailable { retryable: true, .. })
}

/// `C_Decrypt` for `Function::Decrypt`, as the PKCS#11 specification spells it.
fn c_name(func: Function) -> String {
    format!("C_{func:?}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kmskit_core::ErrorCode;

    fn rv(rv: RvError, f: Function) -> Error {
        map_err(CkError::Pkcs11(rv, f), "key-1/v-1")
    }

    #[test]
    fn the_table() {
        let cases = [
            (
                RvError::KeyHandleInvalid,
                Function::EncryptInit,
                ErrorCode::KeyNotFound,
            ),
            (
                RvError::ObjectHandleInvalid,
                Function::DestroyObject,
                ErrorCode::KeyNotFound,
            ),
            (
                RvError::EncryptedDataInvalid,
                Function::Decrypt,
                ErrorCode::InvalidParameter,
            ),
            (
                RvError::EncryptedDataLenRange,
                Function::Decrypt,
                ErrorCode::InvalidParameter,
            ),
            (
                RvError::GeneralError,
                Function::Decrypt,
                ErrorCode::InvalidParameter,
            ),
            (
                RvError::GeneralError,
                Function::Encrypt,
                ErrorCode::InternalFailure,
            ),
            (RvError::PinIncorrect, Function::Login, ErrorCode::NoPermission),
            (
                RvError::UserNotLoggedIn,
                Function::EncryptInit,
                ErrorCode::NoPermission,
            ),
            (
                RvError::KeyFunctionNotPermitted,
                Function::EncryptInit,
                ErrorCode::NoPermission,
            ),
            (
                RvError::DeviceRemoved,
                Function::Encrypt,
                ErrorCode::ServiceUnavailableTemporary,
            ),
            (
                RvError::TokenNotPresent,
                Function::OpenSession,
                ErrorCode::ServiceUnavailableTemporary,
            ),
            (
                RvError::SessionHandleInvalid,
                Function::Encrypt,
                ErrorCode::ServiceUnavailableTemporary,
            ),
            (
                RvError::SessionCount,
                Function::OpenSession,
                ErrorCode::ServiceUnavailableTemporary,
            ),
            (
                RvError::CryptokiNotInitialized,
                Function::Encrypt,
                ErrorCode::ServiceUnavailableTemporary,
            ),
            (
                RvError::MechanismInvalid,
                Function::EncryptInit,
                ErrorCode::InternalFailure,
            ),
        ];
        for (r, f, code) in cases {
            let e = rv(r, f);
            assert_eq!(e.code(), code, "{r:?} from {f:?}: {e}");
            assert_eq!(
                is_connection_lost(&e),
                code == ErrorCode::ServiceUnavailableTemporary,
                "{r:?}"
            );
            assert_eq!(e.is_retryable(), code == ErrorCode::ServiceUnavailableTemporary);
        }
    }

    #[test]
    fn decrypt_failures_are_opaque_and_missing_keys_are_named() {
        assert!(matches!(
            rv(RvError::GeneralError, Function::Decrypt),
            Error::DecryptFailed
        ));
        let e = rv(RvError::KeyHandleInvalid, Function::DecryptInit);
        assert!(e.to_string().contains("key-1/v-1"), "{e}");
        let e = rv(RvError::PinIncorrect, Function::Login);
        assert!(e.to_string().contains("C_Login: PinIncorrect"), "{e}");
    }
}
