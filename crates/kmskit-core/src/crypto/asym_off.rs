//! Asymmetric keys are not built in (kmskit-core feature `asymmetric` is off): public-key operations
//! refuse with `Rejected.UnsupportedOperation`.

use crate::error::{Error, Result};
use crate::key::{AsymmetricAlgorithm, KeySpec};

fn off() -> Error {
    Error::Unsupported("asymmetric keys are not built in (kmskit-core feature `asymmetric`)".into())
}

/// Verifies a signature over a digest with a SubjectPublicKeyInfo.
///
/// # Errors
/// Always, in this build.
pub fn verify_digest(
    _spec: KeySpec,
    _spki_der: &[u8],
    _alg: AsymmetricAlgorithm,
    _digest: &[u8],
    _sig: &[u8],
) -> Result<bool> {
    Err(off())
}

/// Encrypts with a SubjectPublicKeyInfo.
///
/// # Errors
/// Always, in this build.
pub fn encrypt(_spec: KeySpec, _spki_der: &[u8], _alg: AsymmetricAlgorithm, _pt: &[u8]) -> Result<Vec<u8>> {
    Err(off())
}

/// PEM of a SubjectPublicKeyInfo.
pub fn spki_to_pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b = base64::engine::general_purpose::STANDARD.encode(der);
    let mut s = String::from("-----BEGIN PUBLIC KEY-----\n");
    for chunk in b.as_bytes().chunks(64) {
        s.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        s.push('\n');
    }
    s.push_str("-----END PUBLIC KEY-----\n");
    s
}
