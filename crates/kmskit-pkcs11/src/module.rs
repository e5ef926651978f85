//! One initialised cryptoki context per module per process, tokens found by label, and the
//! per-process record of which token this process logged in to with which PIN.
//!
//! `C_Initialize` may be called once per process and module: a second call answers
//! `CKR_CRYPTOKI_ALREADY_INITIALIZED`, and `C_Finalize` would pull the library from under every other
//! user. So every [`Pkcs11Store`](crate::Pkcs11Store) (and any code of yours that needs the same
//! module, see [`context`]) shares one context per module path, initialised on first use and never
//! finalised.
//!
//! Login is per application and token, not per session: once one session logs in, every session of
//! the process on that token is logged in, and `C_Login` answers `CKR_USER_ALREADY_LOGGED_IN`. So a
//! second store opened on a token this process is already logged in to could not have its PIN checked
//! by the token; this module remembers the PIN that logged in and compares (in constant time), so a
//! wrong PIN is refused either way.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::{Error as CkError, RvError};
use cryptoki::session::{Session, SessionState, UserType};
use cryptoki::slot::Slot;
use kmskit_core::{Error, Result};

use crate::config::Pin;
use crate::error::map_err;

/// The longest token label PKCS#11 allows (32 bytes, blank-padded by the token).
pub const MAX_LABEL_LEN: usize = 32;

struct Registry {
    contexts: HashMap<PathBuf, Pkcs11>,
    /// (module, token label) → the PIN this process logged in with.
    logins: HashMap<(PathBuf, String), Pin>,
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(|| {
    Mutex::new(Registry {
        contexts: HashMap::new(),
        logins: HashMap::new(),
    })
});

fn registry() -> MutexGuard<'static, Registry> {
    // Every update is a single map insert, so a poisoned registry is still consistent.
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The process-wide, initialised cryptoki context for `module`: loaded and `C_Initialize`d (with
/// `CKF_OS_LOCKING_OK`) on first use, then shared.
///
/// Use it for any other PKCS#11 work in a process that also runs a [`Pkcs11Store`](crate::Pkcs11Store)
/// on the same module, instead of `Pkcs11::new` + `initialize` (which would fail with
/// `CKR_CRYPTOKI_ALREADY_INITIALIZED`), and never call `finalize` on it.
///
/// # Errors
/// Non-retryable [`Error::Unavailable`] when the module cannot be loaded or initialised.
pub fn context(module: &Path) -> Result<Pkcs11> {
    let mut reg = registry();
    if let Some(ctx) = reg.contexts.get(module) {
        return Ok(ctx.clone());
    }
    let subject = format!("module {}", module.display());
    let ctx = Pkcs11::new(module).map_err(|e| map_err(e, &subject))?;
    initialize(&ctx, &subject)?;
    reg.contexts.insert(module.to_owned(), ctx.clone());
    Ok(ctx)
}

/// `C_Initialize`, accepting a library that is already initialised in this process.
pub(crate) fn initialize(ctx: &Pkcs11, subject: &str) -> Result<()> {
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) | Err(CkError::Pkcs11(RvError::CryptokiAlreadyInitialized, _)) => Ok(()),
        Err(e) => Err(match map_err(e, subject) {
            Error::Unavailable { message, source, .. } => Error::Unavailable {
                message,
                retryable: false,
                source,
            },
            other => other,
        }),
    }
}

/// The slot holding the initialised token labelled `label`.
///
/// # Errors
/// Retryable [`Error::Unavailable`] when no such token is present (it may be plugged in later), naming
/// the labels that are; [`Error::InvalidParameter`] for a label longer than 32 bytes; module errors.
pub fn find_slot(ctx: &Pkcs11, label: &str) -> Result<Slot> {
    check_label(label)?;
    let subject = format!("token {label:?}");
    let slots = ctx.get_slots_with_token().map_err(|e| map_err(e, &subject))?;
    let mut seen = Vec::new();
    for slot in slots {
        let info = match ctx.get_token_info(slot) {
            Ok(info) => info,
            // A token removed between the two calls is simply not there.
            Err(CkError::Pkcs11(RvError::TokenNotPresent | RvError::SlotIdInvalid, _)) => continue,
            Err(e) => return Err(map_err(e, &subject)),
        };
        if !info.token_initialized() {
            continue;
        }
        let found = info.label().trim_end_matches([' ', '\0']);
        if found == label {
            return Ok(slot);
        }
        seen.push(found.to_owned());
    }
    Err(Error::Unavailable {
        message: format!("no initialised token labelled {label:?} (tokens present: {seen:?})"),
        retryable: true,
        source: None,
    })
}

fn check_label(label: &str) -> Result<()> {
    if label.is_empty() || label.len() > MAX_LABEL_LEN {
        return Err(Error::invalid(
            "TokenLabel",
            format!("a token label is 1 to {MAX_LABEL_LEN} bytes"),
        ));
    }
    Ok(())
}

/// Makes sure the application is logged in to the token of `session` as the user, with `pin`.
///
/// Calls `C_Login` unless the session already shows a user login. When the token answers that the
/// user is already logged in, the PIN is compared with the one this process logged in with.
pub(crate) fn ensure_login(session: &Session, module: &Path, label: &str, pin: &Pin) -> Result<()> {
    let subject = format!("{label:?}");
    let state = session
        .get_session_info()
        .map_err(|e| map_err(e, &subject))?
        .session_state();
    let key = (module.to_owned(), label.to_owned());
    if matches!(state, SessionState::RwUser | SessionState::RoUser) {
        return check_remembered(&key, pin, &subject);
    }
    match session.login(UserType::User, Some(pin.auth())) {
        Ok(()) => {
            registry().logins.insert(key, pin.duplicate());
            Ok(())
        }
        Err(CkError::Pkcs11(RvError::UserAlreadyLoggedIn, _)) => check_remembered(&key, pin, &subject),
        Err(e) => Err(map_err(e, &subject)),
    }
}

/// Compares `pin` with the PIN this process logged in to the token with. When the login was made
/// outside kmskit (nothing remembered), the token's word is all there is and the PIN is accepted.
fn check_remembered(key: &(PathBuf, String), pin: &Pin, subject: &str) -> Result<()> {
    match registry().logins.get(key) {
        Some(known) if !known.matches(pin) => Err(Error::AccessDenied {
            reason: format!(
                "the user PIN for token {subject} differs from the one this process is logged in with"
            ),
            source: None,
        }),
        _ => Ok(()),
    }
}

/// Initialises a new token labelled `label` in a free slot (one whose token is not initialised yet)
/// and sets its user PIN: what `softhsm2-util --init-token --free` does. Returns the slot.
///
/// For set-up and tests on SoftHSM (which always offers one free slot and adds another once it is
/// used); production HSMs are provisioned with their vendor's tools.
///
/// # Errors
/// [`Error::InvalidParameter`] for a bad label or when a token with this label exists already;
/// retryable [`Error::Unavailable`] when no free slot is left; module errors.
pub fn init_token(module: &Path, label: &str, so_pin: &Pin, user_pin: &Pin) -> Result<Slot> {
    check_label(label)?;
    let ctx = context(module)?;
    // Slot lists change under concurrent initialisation: one at a time per process.
    static INIT: Mutex<()> = Mutex::new(());
    let _one = INIT.lock().unwrap_or_else(PoisonError::into_inner);
    if find_slot(&ctx, label).is_ok() {
        return Err(Error::invalid(
            "TokenLabel",
            format!("a token labelled {label:?} exists already"),
        ));
    }
    let subject = format!("token {label:?}");
    let mut free = None;
    for slot in ctx.get_slots_with_token().map_err(|e| map_err(e, &subject))? {
        let info = ctx.get_token_info(slot).map_err(|e| map_err(e, &subject))?;
        if !info.token_initialized() {
            free = Some(slot);
            break;
        }
    }
    let slot = free.ok_or_else(|| Error::Unavailable {
        message: "no free slot to initialise a token in".to_owned(),
        retryable: true,
        source: None,
    })?;
    ctx.init_token(slot, so_pin.auth(), label)
        .map_err(|e| map_err(e, &subject))?;
    // SoftHSM moves an initialised token to a new slot id.
    let slot = find_slot(&ctx, label)?;
    let session = ctx.open_rw_session(slot).map_err(|e| map_err(e, &subject))?;
    session
        .login(UserType::So, Some(so_pin.auth()))
        .map_err(|e| map_err(e, &subject))?;
    session
        .init_pin(user_pin.auth())
        .map_err(|e| map_err(e, &subject))?;
    session.logout().map_err(|e| map_err(e, &subject))?;
    Ok(slot)
}
