//! The root key: where it comes from (a passphrase, a key file, the environment) and the keys derived
//! from it.
//!
//! The 32-byte root key is either given directly ([`RootKey::from_bytes`], [`RootKey::from_key_file`],
//! [`RootKey::from_env`]) or derived from a passphrase with Argon2id, whose parameters and salt are stored
//! in the keystore header ([`Argon2Params`]). From the root key, HKDF-SHA256 (salted with the keystore's
//! random header salt) derives three independent 32-byte values:
//!
//! | HKDF info                       | use                                                        |
//! |---------------------------------|------------------------------------------------------------|
//! | `kmskit-file/v1/verifier`       | stored in the header; a wrong root key fails to match it   |
//! | `kmskit-file/v1/record-key`     | AES-256-GCM key sealing key and alias records              |
//! | `kmskit-file/v1/material-key`   | AES-256-GCM key sealing key material                       |
//!
//! The verifier is compared in constant time (`subtle`), so a wrong root key is refused at open with
//! [`Error::AccessDenied`] (`Forbidden.NoPermission`), never discovered later as garbage.

use std::fmt;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hkdf::Hkdf;
use kmskit_core::crypto::KEY_LEN;
use kmskit_core::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use zeroize::Zeroizing;

/// The environment variable [`RootKey::from_env`] reads: the Base64 of 32 bytes.
pub const ROOT_KEY_ENV: &str = "KMSKIT_ROOT_KEY";

/// Where the keystore's root key comes from. Secret: zeroized on drop, redacted in `Debug`.
pub struct RootKey(Source);

enum Source {
    Raw(Zeroizing<[u8; KEY_LEN]>),
    Passphrase(Zeroizing<String>),
}

impl fmt::Debug for RootKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Source::Raw(_) => f.write_str("RootKey::Raw([REDACTED])"),
            Source::Passphrase(_) => f.write_str("RootKey::Passphrase([REDACTED])"),
        }
    }
}

impl RootKey {
    /// A raw 32-byte root key.
    ///
    /// # Errors
    /// `InvalidParameter` when `bytes` is not exactly 32 bytes long.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let arr: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            Error::invalid(
                "RootKey",
                format!("a root key is {KEY_LEN} bytes, got {}", bytes.len()),
            )
        })?;
        Ok(Self(Source::Raw(Zeroizing::new(arr))))
    }

    /// A root key given as the Base64 (standard alphabet, padded) of 32 bytes.
    ///
    /// # Errors
    /// `InvalidParameter` when it is not Base64 of exactly 32 bytes (the message never repeats the input).
    pub fn from_base64(text: &str) -> Result<Self> {
        Self::from_base64_named("RootKey", text)
    }

    fn from_base64_named(name: &'static str, text: &str) -> Result<Self> {
        let bytes = Zeroizing::new(
            B64.decode(text.trim())
                .map_err(|_| Error::invalid(name, format!("not Base64 of {KEY_LEN} bytes")))?,
        );
        if bytes.len() != KEY_LEN {
            return Err(Error::invalid(
                name,
                format!("Base64 of {} bytes, not {KEY_LEN}", bytes.len()),
            ));
        }
        Self::from_bytes(&bytes)
    }

    /// Reads a key file: either exactly 32 raw bytes, or the Base64 of 32 bytes (surrounding whitespace
    /// ignored). Keep the file readable by its owner only.
    ///
    /// # Errors
    /// [`Error::Io`] when the file cannot be read; `InvalidParameter` when it holds neither form.
    pub fn from_key_file(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let bytes = Zeroizing::new(
            std::fs::read(path)
                .map_err(|e| Error::io(format!("cannot read root key file {}", path.display()), e))?,
        );
        if bytes.len() == KEY_LEN {
            return Self::from_bytes(&bytes);
        }
        match std::str::from_utf8(&bytes) {
            Ok(text) => Self::from_base64_named("RootKeyFile", text),
            Err(_) => Err(Error::invalid(
                "RootKeyFile",
                format!("expected {KEY_LEN} raw bytes or their Base64"),
            )),
        }
    }

    /// Reads the root key from the environment variable `KMSKIT_ROOT_KEY` ([`ROOT_KEY_ENV`]): the
    /// Base64 of 32 bytes.
    ///
    /// # Errors
    /// `MissingParameter` when the variable is unset; `InvalidParameter` when it is not Base64 of 32 bytes.
    pub fn from_env() -> Result<Self> {
        let value =
            Zeroizing::new(std::env::var(ROOT_KEY_ENV).map_err(|_| Error::MissingParameter(ROOT_KEY_ENV))?);
        Self::from_base64_named(ROOT_KEY_ENV, &value)
    }

    /// A passphrase; the root key is derived from it with Argon2id using the parameters stored in the
    /// keystore header (chosen with [`FileStoreBuilder::argon2_params`](crate::FileStoreBuilder::argon2_params)
    /// when the keystore is created).
    pub fn passphrase(passphrase: impl Into<String>) -> Self {
        Self(Source::Passphrase(Zeroizing::new(passphrase.into())))
    }

    /// A fresh random raw root key (for tests and for generating a key file).
    pub fn generate() -> Self {
        let mut k = Zeroizing::new([0u8; KEY_LEN]);
        kmskit_core::rand::fill(&mut k[..]);
        Self(Source::Raw(k))
    }

    /// The Base64 of a raw root key, e.g. to store it in a key file or in `KMSKIT_ROOT_KEY`; `None` for a
    /// passphrase. Handle the result as the secret it is.
    pub fn expose_base64(&self) -> Option<Zeroizing<String>> {
        match &self.0 {
            Source::Raw(k) => Some(Zeroizing::new(B64.encode(&k[..]))),
            Source::Passphrase(_) => None,
        }
    }

    /// An explicit copy (secrets are not `Clone`).
    pub fn duplicate(&self) -> Self {
        match &self.0 {
            Source::Raw(k) => Self(Source::Raw(k.clone())),
            Source::Passphrase(p) => Self(Source::Passphrase(p.clone())),
        }
    }

    pub(crate) fn is_passphrase(&self) -> bool {
        matches!(self.0, Source::Passphrase(_))
    }

    /// The 32-byte root key for a keystore whose header says `kdf`.
    pub(crate) fn derive(&self, kdf: Option<&KdfParams>, dir: &Path) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        match (&self.0, kdf) {
            (Source::Raw(k), None) => Ok(k.clone()),
            (Source::Passphrase(p), Some(kdf)) => kdf.derive(p.as_bytes()),
            (Source::Raw(_), Some(_)) => Err(Error::AccessDenied {
                reason: format!(
                    "keystore {} is protected by a passphrase, but a raw root key was given",
                    dir.display()
                ),
                source: None,
            }),
            (Source::Passphrase(_), None) => Err(Error::AccessDenied {
                reason: format!(
                    "keystore {} uses a raw root key (key file or {ROOT_KEY_ENV}), but a passphrase was given",
                    dir.display()
                ),
                source: None,
            }),
        }
    }
}

/// Argon2id cost parameters for deriving the root key from a passphrase. Stored in the keystore header
/// when it is created, so later opens use the same ones.
///
/// The default follows RFC 9106's second recommended option: 64 MiB of memory, 3 passes, 4 lanes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Argon2Params {
    m_cost_kib: u32,
    t_cost: u32,
    p_cost: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self {
            m_cost_kib: 64 * 1024,
            t_cost: 3,
            p_cost: 4,
        }
    }
}

impl Argon2Params {
    /// The most memory a header may ask for (4 GiB), so a damaged or hostile header cannot exhaust memory.
    pub const MAX_M_COST_KIB: u32 = 4 * 1024 * 1024;
    /// The most passes a header may ask for.
    pub const MAX_T_COST: u32 = 64;
    /// The most lanes a header may ask for.
    pub const MAX_P_COST: u32 = 64;

    /// Parameters: memory in KiB, passes, lanes. Small values are for tests only.
    ///
    /// # Errors
    /// `InvalidParameter` when outside what Argon2 allows (`m_cost_kib >= 8 * p_cost`, `t_cost >= 1`,
    /// `p_cost >= 1`) or above the limits above.
    pub fn new(m_cost_kib: u32, t_cost: u32, p_cost: u32) -> Result<Self> {
        let p = Self {
            m_cost_kib,
            t_cost,
            p_cost,
        };
        p.validate()?;
        Ok(p)
    }

    /// Memory cost in KiB.
    pub fn m_cost_kib(&self) -> u32 {
        self.m_cost_kib
    }

    /// Passes.
    pub fn t_cost(&self) -> u32 {
        self.t_cost
    }

    /// Lanes.
    pub fn p_cost(&self) -> u32 {
        self.p_cost
    }

    fn validate(&self) -> Result<()> {
        let bad = |why: String| Err(Error::invalid("Argon2Params", why));
        if self.t_cost == 0 || self.t_cost > Self::MAX_T_COST {
            return bad(format!("t_cost must be 1..={}", Self::MAX_T_COST));
        }
        if self.p_cost == 0 || self.p_cost > Self::MAX_P_COST {
            return bad(format!("p_cost must be 1..={}", Self::MAX_P_COST));
        }
        if self.m_cost_kib < 8 * self.p_cost || self.m_cost_kib > Self::MAX_M_COST_KIB {
            return bad(format!(
                "m_cost_kib must be 8 * p_cost ..= {}",
                Self::MAX_M_COST_KIB
            ));
        }
        Ok(())
    }
}

/// The KDF section of the header.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KdfParams {
    /// Always `argon2id` in format version 1.
    pub(crate) algorithm: String,
    /// Argon2 version (0x13 = 19).
    pub(crate) version: u32,
    #[serde(flatten)]
    pub(crate) params: Argon2Params,
    /// Base64 of the 16-byte random salt.
    pub(crate) salt: String,
}

impl KdfParams {
    pub(crate) const ARGON2ID: &'static str = "argon2id";

    pub(crate) fn new(params: Argon2Params) -> Self {
        let salt: [u8; 16] = random_array();
        Self {
            algorithm: Self::ARGON2ID.to_owned(),
            version: 0x13,
            params,
            salt: B64.encode(salt),
        }
    }

    fn derive(&self, passphrase: &[u8]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        let unsupported = |what: String| Error::Unsupported(format!("keystore header: {what}"));
        if self.algorithm != Self::ARGON2ID {
            return Err(unsupported(format!("unknown KDF {:?}", self.algorithm)));
        }
        if self.version != 0x13 {
            return Err(unsupported(format!("unknown Argon2 version {}", self.version)));
        }
        self.params.validate()?;
        let salt = B64
            .decode(&self.salt)
            .map_err(|_| unsupported("KDF salt is not Base64".into()))?;
        let params = argon2::Params::new(
            self.params.m_cost_kib,
            self.params.t_cost,
            self.params.p_cost,
            Some(KEY_LEN),
        )
        .map_err(|e| unsupported(format!("Argon2 parameters: {e}")))?;
        let a = argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        a.hash_password_into(passphrase, &salt, &mut out[..])
            .map_err(|e| unsupported(format!("Argon2: {e}")))?;
        Ok(out)
    }
}

/// The values HKDF derives from the root key.
pub(crate) struct Derived {
    pub(crate) verifier: [u8; 32],
    pub(crate) record_key: Zeroizing<[u8; KEY_LEN]>,
    pub(crate) material_key: Zeroizing<[u8; KEY_LEN]>,
}

pub(crate) fn derive_keys(root: &[u8; KEY_LEN], salt: &[u8]) -> Derived {
    let hk = Hkdf::<Sha256>::new(Some(salt), root);
    let mut verifier = [0u8; 32];
    let mut record_key = Zeroizing::new([0u8; KEY_LEN]);
    let mut material_key = Zeroizing::new([0u8; KEY_LEN]);
    // 32-byte outputs are far below HKDF-SHA256's 8160-byte limit, so expand cannot fail.
    let ok = hk.expand(b"kmskit-file/v1/verifier", &mut verifier).is_ok()
        && hk
            .expand(b"kmskit-file/v1/record-key", &mut record_key[..])
            .is_ok()
        && hk
            .expand(b"kmskit-file/v1/material-key", &mut material_key[..])
            .is_ok();
    debug_assert!(ok);
    Derived {
        verifier,
        record_key,
        material_key,
    }
}

pub(crate) fn random_array<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    kmskit_core::rand::fill(&mut b);
    b
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let k = RootKey::from_bytes(&[0xAB; 32]).unwrap();
        let d = format!("{k:?}");
        assert!(!d.to_lowercase().contains("ab,") && !d.contains("171"), "{d}");
        assert!(d.contains("REDACTED"));
        let p = RootKey::passphrase("hunter2");
        assert!(!format!("{p:?}").contains("hunter2"));
    }

    #[test]
    fn base64_forms() {
        let k = RootKey::generate();
        let b = k.expose_base64().unwrap();
        let k2 = RootKey::from_base64(&format!("  {}\n", b.as_str())).unwrap();
        assert_eq!(k2.expose_base64().unwrap().as_str(), b.as_str());
        let err = RootKey::from_base64("c2hvcnQ=").unwrap_err();
        assert_eq!(err.code().as_str(), "InvalidParameter");
        assert!(!err.to_string().contains("c2hvcnQ"), "{err}");
        assert!(RootKey::from_base64("not base64!").is_err());
        assert!(RootKey::from_bytes(&[1; 31]).is_err());
        assert!(RootKey::passphrase("x").expose_base64().is_none());
    }

    #[test]
    fn argon2_params_are_checked() {
        assert!(Argon2Params::new(8, 1, 1).is_ok());
        assert!(Argon2Params::new(7, 1, 1).is_err());
        assert!(Argon2Params::new(64, 0, 1).is_err());
        assert!(Argon2Params::new(64, 1, 0).is_err());
        assert!(Argon2Params::new(Argon2Params::MAX_M_COST_KIB + 1, 1, 1).is_err());
        let d = Argon2Params::default();
        assert!(d.m_cost_kib() >= 64 * 1024 && d.t_cost() >= 3);
    }

    #[test]
    fn passphrase_derivation_is_deterministic_and_salted() {
        let kdf = KdfParams::new(Argon2Params::new(64, 1, 1).unwrap());
        let a = kdf.derive(b"pw").unwrap();
        let b = kdf.derive(b"pw").unwrap();
        let c = kdf.derive(b"pw2").unwrap();
        assert_eq!(*a, *b);
        assert_ne!(*a, *c);
        let kdf2 = KdfParams::new(Argon2Params::new(64, 1, 1).unwrap());
        assert_ne!(*a, *kdf2.derive(b"pw").unwrap());
    }

    #[test]
    fn hkdf_outputs_are_independent() {
        let d = derive_keys(&[7; 32], b"salt");
        assert_ne!(d.verifier, *d.record_key);
        assert_ne!(*d.record_key, *d.material_key);
        let d2 = derive_keys(&[7; 32], b"salt2");
        assert_ne!(d.verifier, d2.verifier);
    }
}
