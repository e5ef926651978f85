//! What a [`Pkcs11Store`](crate::Pkcs11Store) needs: the module, the token, the user PIN, the pool size.

use std::fmt;
use std::path::{Path, PathBuf};

use cryptoki::types::AuthPin;
use kmskit_core::{Error, Result};
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

/// The environment variable naming the PKCS#11 module (a shared library such as
/// `/usr/lib/softhsm/libsofthsm2.so`).
pub const MODULE_ENV: &str = "KMSKIT_PKCS11_MODULE";
/// The environment variable naming the token label.
pub const TOKEN_ENV: &str = "KMSKIT_PKCS11_TOKEN";
/// The environment variable holding the user PIN.
pub const PIN_ENV: &str = "KMSKIT_PKCS11_PIN";
/// The environment variable holding the session pool size (optional).
pub const POOL_SIZE_ENV: &str = "KMSKIT_PKCS11_POOL_SIZE";

/// The default number of sessions in the pool.
pub const DEFAULT_POOL_SIZE: usize = 4;

/// A PKCS#11 PIN (user or security officer). Zeroized on drop; `Debug` prints `Pin(..)`; there is no
/// `Display`, `Serialize` or `Clone`.
pub struct Pin(AuthPin);

impl Pin {
    /// Takes ownership of `pin`.
    pub fn new(pin: impl Into<String>) -> Self {
        Self(AuthPin::from(pin.into()))
    }

    /// Reads the PIN from the environment variable `var`.
    ///
    /// # Errors
    /// [`Error::MissingParameter`] when `var` is unset or not valid UTF-8.
    pub fn from_env(var: &'static str) -> Result<Self> {
        std::env::var(var)
            .map(Self::new)
            .map_err(|_| Error::MissingParameter(var))
    }

    pub(crate) fn auth(&self) -> &AuthPin {
        &self.0
    }

    /// Constant-time comparison (the length is not secret).
    pub(crate) fn matches(&self, other: &Pin) -> bool {
        let (a, b) = (
            self.0.expose_secret().as_bytes(),
            other.0.expose_secret().as_bytes(),
        );
        a.ct_eq(b).into()
    }

    pub(crate) fn duplicate(&self) -> Pin {
        Pin::new(self.0.expose_secret().to_owned())
    }
}

impl fmt::Debug for Pin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Pin(..)")
    }
}

/// Where the keys live: the PKCS#11 module, the token (found by label: modules such as SoftHSM
/// reassign slot ids), the user PIN and how many sessions to keep open.
///
/// ```
/// use kmskit_pkcs11::{Pin, Pkcs11Config};
///
/// let config = Pkcs11Config::new("/usr/lib/softhsm/libsofthsm2.so", "kmskit", Pin::new("1234"))
///     .with_pool_size(8);
/// assert_eq!(config.token_label(), "kmskit");
/// assert_eq!(config.pool_size(), 8);
/// assert!(!format!("{config:?}").contains("1234"));
/// ```
pub struct Pkcs11Config {
    module: PathBuf,
    token_label: String,
    pin: Pin,
    pool_size: usize,
}

impl Pkcs11Config {
    /// A configuration with [`DEFAULT_POOL_SIZE`] sessions.
    pub fn new(module: impl Into<PathBuf>, token_label: impl Into<String>, pin: Pin) -> Self {
        Self {
            module: module.into(),
            token_label: token_label.into(),
            pin,
            pool_size: DEFAULT_POOL_SIZE,
        }
    }

    /// Reads [`MODULE_ENV`], [`TOKEN_ENV`], [`PIN_ENV`] and, when set, [`POOL_SIZE_ENV`].
    ///
    /// # Errors
    /// [`Error::MissingParameter`] naming the first variable that is unset;
    /// [`Error::InvalidParameter`] for a pool size that is not a positive number.
    pub fn from_env() -> Result<Self> {
        let var = |name: &'static str| std::env::var(name).map_err(|_| Error::MissingParameter(name));
        let mut config = Self::new(var(MODULE_ENV)?, var(TOKEN_ENV)?, Pin::from_env(PIN_ENV)?);
        if let Ok(n) = std::env::var(POOL_SIZE_ENV) {
            let n: usize = n.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                Error::invalid("PoolSize", format!("{POOL_SIZE_ENV} must be a positive number"))
            })?;
            config = config.with_pool_size(n);
        }
        Ok(config)
    }

    /// Sets how many sessions the pool keeps open at most (at least 1). Each concurrent Encrypt or
    /// Decrypt holds one session for the duration of its token call; more callers wait for a session.
    #[must_use]
    pub fn with_pool_size(mut self, sessions: usize) -> Self {
        self.pool_size = sessions.max(1);
        self
    }

    /// The module path.
    pub fn module(&self) -> &Path {
        &self.module
    }

    /// The token label.
    pub fn token_label(&self) -> &str {
        &self.token_label
    }

    /// The pool size.
    pub fn pool_size(&self) -> usize {
        self.pool_size
    }

    pub(crate) fn pin(&self) -> &Pin {
        &self.pin
    }
}

impl fmt::Debug for Pkcs11Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Config")
            .field("module", &self.module)
            .field("token_label", &self.token_label)
            .field("pin", &self.pin)
            .field("pool_size", &self.pool_size)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_debug_is_redacted_and_comparison_works() {
        let p = Pin::new("s3cr3t-pin");
        assert_eq!(format!("{p:?}"), "Pin(..)");
        assert!(p.matches(&Pin::new("s3cr3t-pin")));
        assert!(!p.matches(&Pin::new("s3cr3t-pio")));
        assert!(!p.matches(&Pin::new("s3cr3t")));
        assert!(p.duplicate().matches(&p));
    }

    #[test]
    fn config_debug_hides_the_pin_and_pool_size_is_at_least_one() {
        let c = Pkcs11Config::new("/m.so", "tok", Pin::new("987654")).with_pool_size(0);
        assert_eq!(c.pool_size(), 1);
        let d = format!("{c:?}");
        assert!(!d.contains("987654"), "{d}");
        assert!(d.contains("tok"), "{d}");
    }
}
