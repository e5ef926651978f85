//! Helpers shared by the SoftHSM tests: find the module, make a fresh token per test.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};

use kmskit_core::{Caller, EncryptionContext, KeyId};
use kmskit_pkcs11::{MODULE_ENV, Pin, Pkcs11Config, init_token};

pub const USER_PIN: &str = "user-pin-1234";
pub const SO_PIN: &str = "so-pin-5678";

pub fn caller() -> Caller {
    Caller::local()
}

pub fn ctx() -> EncryptionContext {
    EncryptionContext::from_pairs([("purpose", "pkcs11 test")]).unwrap()
}

/// The module the tests run on, or `None` (after saying so) when there is none. With `CI` set, a
/// missing module is a failure, never a skip.
pub fn module() -> Option<PathBuf> {
    let why = match std::env::var_os(MODULE_ENV) {
        Some(m) if !m.is_empty() && Path::new(&m).exists() => return Some(PathBuf::from(m)),
        Some(m) if !m.is_empty() => format!("{MODULE_ENV}={} does not exist", Path::new(&m).display()),
        _ => format!("{MODULE_ENV} is not set"),
    };
    missing(&why);
    None
}

/// Reports a missing module: a panic under CI, a visible skip otherwise.
pub fn missing(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!(
            "the PKCS#11 tests need SoftHSM2: {why}. CI is set, so this fails instead of skipping; \
             scripts/test.sh installs softhsm2 and sets {MODULE_ENV}"
        );
    }
    eprintln!("kmskit-pkcs11: SKIPPED: {why} (run scripts/test.sh, or set {MODULE_ENV} and SOFTHSM2_CONF)");
}

/// A token made for one test.
#[derive(Debug, Clone)]
pub struct Token {
    pub module: PathBuf,
    pub label: String,
}

impl Token {
    pub fn config(&self) -> Pkcs11Config {
        Pkcs11Config::new(&self.module, &self.label, Pin::new(USER_PIN))
    }

    pub fn config_with_pin(&self, pin: &str) -> Pkcs11Config {
        Pkcs11Config::new(&self.module, &self.label, Pin::new(pin))
    }
}

/// A freshly initialised token of its own (so tests never share login state or objects), or `None`
/// when there is no module and CI is not set.
pub fn fresh_token() -> Option<Token> {
    let module = module()?;
    if module.to_string_lossy().contains("softhsm") && std::env::var_os("SOFTHSM2_CONF").is_none() {
        panic!(
            "SOFTHSM2_CONF is not set: the tests initialise tokens of their own and must not write to \
             the system token directory; point it at a scratch config (scripts/test.sh does)"
        );
    }
    let id = KeyId::generate();
    let label = format!("kt-{}", &id.as_str()[..23]);
    init_token(&module, &label, &Pin::new(SO_PIN), &Pin::new(USER_PIN)).expect("initialise a test token");
    Some(Token { module, label })
}
