//! Secret types: zeroized on drop, redacted in `Debug`, read only through `expose_secret()`.

use std::fmt;

use subtle::ConstantTimeEq;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

/// Secret bytes (key material, a plaintext data key). Zeroized on drop; `Debug` prints only the length.
///
/// There is no `Display`, `Serialize` or `Clone`: copies of secrets are made on purpose with
/// [`SecretBytes::duplicate`], which grep finds.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct SecretBytes(Vec<u8>);

impl SecretBytes {
    /// Takes ownership of `bytes`.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Copies `bytes` into a new secret. The caller remains responsible for its own copy.
    pub fn from_slice(bytes: &[u8]) -> Self {
        Self(bytes.to_vec())
    }

    /// `len` fresh random bytes from the OS RNG.
    pub fn random(len: usize) -> Self {
        let mut v = vec![0u8; len];
        crate::rand::fill(&mut v);
        Self(v)
    }

    /// Reveals the secret.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// The length in bytes (not secret).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// An explicit copy of the secret.
    pub fn duplicate(&self) -> Self {
        Self(self.0.clone())
    }

    /// Converts into a zeroizing vector.
    pub fn into_zeroizing(mut self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(std::mem::take(&mut self.0))
    }
}

impl From<Zeroizing<Vec<u8>>> for SecretBytes {
    fn from(mut z: Zeroizing<Vec<u8>>) -> Self {
        Self(std::mem::take(&mut *z))
    }
}

impl PartialEq for SecretBytes {
    /// Constant-time comparison (the length is not secret).
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl Eq for SecretBytes {}

impl fmt::Debug for SecretBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretBytes([REDACTED; {}])", self.0.len())
    }
}

/// A plaintext data key from `GenerateDataKey`. Zeroized on drop; `Debug` shows nothing.
#[derive(PartialEq, Eq)]
pub struct DataKey(SecretBytes);

impl DataKey {
    /// Wraps secret bytes as a data key.
    pub fn new(bytes: SecretBytes) -> Self {
        Self(bytes)
    }

    /// Reveals the key bytes.
    pub fn expose_secret(&self) -> &[u8] {
        self.0.expose_secret()
    }

    /// The key length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the key is empty (never, for keys made by kmskit).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The key bytes as [`SecretBytes`].
    pub fn into_secret(self) -> SecretBytes {
        self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts() {
        let s = SecretBytes::new(vec![0xAB; 32]);
        let d = format!("{s:?}");
        assert!(!d.to_lowercase().contains("ab"), "{d}");
        assert!(!d.contains("171"), "{d}");
        assert!(d.contains("REDACTED"));
        let k = DataKey::new(SecretBytes::new(vec![0x42; 32]));
        let d = format!("{k:?}");
        assert_eq!(d, "DataKey { .. }");
    }

    #[test]
    fn constant_time_eq() {
        assert_eq!(SecretBytes::from_slice(b"abc"), SecretBytes::from_slice(b"abc"));
        assert_ne!(SecretBytes::from_slice(b"abc"), SecretBytes::from_slice(b"abd"));
        assert_ne!(SecretBytes::from_slice(b"abc"), SecretBytes::from_slice(b"ab"));
    }

    #[test]
    fn random_is_random() {
        assert_ne!(SecretBytes::random(32), SecretBytes::random(32));
        assert_eq!(SecretBytes::random(7).len(), 7);
    }
}
