//! AEAD engines behind one small trait.
//!
//! Two implementations produce identical bytes for the same key, nonce, AAD and plaintext: a pure-Rust
//! one ([`RustCryptoEngine`], feature `rust-crypto`, on `aes-gcm` and `chacha20poly1305`) and
//! [`AwsLcEngine`] (feature `aws-lc`, on `aws-lc-rs`, several times faster on CPUs with AES
//! instructions). [`default_engine`] picks aws-lc-rs when it is compiled in.
//!
//! Asymmetric keys (RSA, ECDSA, SM2) and SM3 live in [`asym`] (feature `asymmetric`).
//!
//! Pure crypto stays synchronous, layered like RustCrypto's `aead`: one in-place method each way.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

#[cfg(feature = "asymmetric")]
pub mod asym;
#[cfg(feature = "aws-lc")]
mod aws_lc;
#[cfg(feature = "rust-crypto")]
mod rust_crypto;
mod sm4_gcm;

/// Without the `asymmetric` feature: the public-key operations the engine calls, refusing with
/// `Rejected.UnsupportedOperation` (stores with asymmetric custody, such as an HSM, need the feature).
#[cfg(not(feature = "asymmetric"))]
#[path = "asym_off.rs"]
pub mod asym;

#[cfg(feature = "aws-lc")]
pub use aws_lc::AwsLcEngine;
#[cfg(feature = "rust-crypto")]
pub use rust_crypto::RustCryptoEngine;

#[cfg(not(any(feature = "aws-lc", feature = "rust-crypto")))]
compile_error!("kmskit-core needs at least one AEAD engine: enable feature `aws-lc` or `rust-crypto`");

/// Nonce length of every supported AEAD, in bytes.
pub const NONCE_LEN: usize = 12;
/// Tag length of every supported AEAD, in bytes.
pub const TAG_LEN: usize = 16;
/// Key length of the 256-bit AEADs (AES-256-GCM, ChaCha20-Poly1305), in bytes; see
/// [`Algorithm::key_len`] for each algorithm's.
pub const KEY_LEN: usize = 32;

/// An AEAD algorithm. The discriminant is its id in the ciphertext blob and is never reused.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    /// AES-256-GCM, 96-bit nonce, 128-bit tag.
    Aes256Gcm = 1,
    /// ChaCha20-Poly1305 (RFC 8439).
    ChaCha20Poly1305 = 2,
    /// SM4-GCM (GB/T 32907 SM4, 128-bit key, in GCM as RFC 8998), 96-bit nonce, 128-bit tag.
    Sm4Gcm = 3,
}

impl Algorithm {
    /// The blob id.
    pub const fn id(self) -> u8 {
        self as u8
    }

    /// The algorithm with blob id `id`.
    ///
    /// # Errors
    /// `InvalidParameter` for an unknown id.
    pub fn from_id(id: u8) -> Result<Self> {
        match id {
            1 => Ok(Algorithm::Aes256Gcm),
            2 => Ok(Algorithm::ChaCha20Poly1305),
            3 => Ok(Algorithm::Sm4Gcm),
            _ => Err(Error::invalid(
                "CiphertextBlob",
                format!("unknown algorithm id {id}"),
            )),
        }
    }

    /// A readable name.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::Aes256Gcm => "AES-256-GCM",
            Algorithm::ChaCha20Poly1305 => "ChaCha20-Poly1305",
            Algorithm::Sm4Gcm => "SM4-GCM",
        }
    }

    /// The key length in bytes (32, or 16 for SM4).
    pub const fn key_len(self) -> usize {
        match self {
            Algorithm::Aes256Gcm | Algorithm::ChaCha20Poly1305 => KEY_LEN,
            Algorithm::Sm4Gcm => 16,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Makes ready-to-use keys for an AEAD implementation.
pub trait AeadEngine: Send + Sync + fmt::Debug {
    /// The engine's name (`aws-lc-rs`, `rust-crypto`).
    fn name(&self) -> &'static str;

    /// Expands `key` (32 bytes) for `alg`. The engine keeps no copy beyond the returned key.
    ///
    /// # Errors
    /// `InvalidParameter` for a key of the wrong length.
    fn new_key(&self, alg: Algorithm, key: &[u8]) -> Result<Box<dyn AeadKey>>;
}

/// An expanded AEAD key. Implementations zeroize their key schedule on drop.
pub trait AeadKey: Send + Sync + fmt::Debug {
    /// Its algorithm.
    fn algorithm(&self) -> Algorithm;

    /// Encrypts `buf` in place and returns the tag.
    ///
    /// # Errors
    /// Only if the input exceeds the algorithm's limits (about 64 GiB).
    fn seal_in_place_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]>;

    /// Encrypts `buf` in place and appends the tag.
    ///
    /// # Errors
    /// Only if the input exceeds the algorithm's limits (about 64 GiB).
    fn seal_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
        let tag = self.seal_in_place_detached(nonce, aad, buf)?;
        buf.extend_from_slice(&tag);
        Ok(())
    }

    /// Checks and strips the tag, then decrypts `buf` in place. On failure `buf` holds no plaintext.
    ///
    /// # Errors
    /// [`Error::DecryptFailed`] when the tag does not verify (wrong key, nonce, AAD, or tampering).
    fn open_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) -> Result<()>;

    /// Encrypts `src` into `out` as ciphertext ‖ tag; `out` must be exactly `src.len() + TAG_LEN` long.
    ///
    /// The bytes equal those of [`seal_in_place_detached`](Self::seal_in_place_detached) followed by the
    /// tag. Engines that can read `src` and write `out` in one pass (aws-lc-rs) do so; the default copies
    /// `src` into `out` first. Streaming formats use this to avoid the extra pass over memory.
    ///
    /// # Errors
    /// `InvalidParameter` when `out` has the wrong length, or the input exceeds the algorithm's limits.
    fn seal_to(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], src: &[u8], out: &mut [u8]) -> Result<()> {
        let (ct, tag) = split_sealed_mut(out, src.len())?;
        ct.copy_from_slice(src);
        let t = self.seal_in_place_detached(nonce, aad, ct)?;
        tag.copy_from_slice(&t);
        Ok(())
    }

    /// Checks the tag of `sealed` (ciphertext ‖ tag) and decrypts it into `out`, which must be exactly
    /// `sealed.len() - TAG_LEN` long. On failure `out` is zeroed: no unauthenticated plaintext escapes.
    ///
    /// Engines that can decrypt from one buffer into another in one pass (aws-lc-rs) do so.
    ///
    /// # Errors
    /// [`Error::DecryptFailed`] when the tag does not verify or `sealed` is shorter than a tag;
    /// `InvalidParameter` when `out` has the wrong length.
    fn open_to(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], sealed: &[u8], out: &mut [u8]) -> Result<()>;
}

/// Splits `out` into a `len`-byte ciphertext part and the tag, checking its length.
fn split_sealed_mut(out: &mut [u8], len: usize) -> Result<(&mut [u8], &mut [u8])> {
    if len.checked_add(TAG_LEN) != Some(out.len()) {
        return Err(Error::invalid(
            "Output",
            format!(
                "expected {} bytes for ciphertext and tag, got {}",
                len.saturating_add(TAG_LEN),
                out.len()
            ),
        ));
    }
    Ok(out.split_at_mut(len))
}

/// Splits `sealed` into ciphertext and tag and checks `out` fits the ciphertext.
fn split_sealed<'a>(sealed: &'a [u8], out: &[u8]) -> Result<(&'a [u8], &'a [u8; TAG_LEN])> {
    let Some(ct_len) = sealed.len().checked_sub(TAG_LEN) else {
        return Err(Error::DecryptFailed);
    };
    if out.len() != ct_len {
        return Err(Error::invalid(
            "Output",
            format!("expected {ct_len} bytes for the plaintext, got {}", out.len()),
        ));
    }
    let (ct, tag) = sealed.split_at(ct_len);
    let tag: &[u8; TAG_LEN] = tag.try_into().map_err(|_| Error::DecryptFailed)?;
    Ok((ct, tag))
}

/// The engine used when none is chosen: aws-lc-rs when compiled in, else pure Rust.
pub fn default_engine() -> &'static dyn AeadEngine {
    #[cfg(feature = "aws-lc")]
    {
        &AwsLcEngine
    }
    #[cfg(not(feature = "aws-lc"))]
    {
        &RustCryptoEngine
    }
}

/// Every engine compiled into this build (for differential tests and benchmarks).
pub fn all_engines() -> Vec<&'static dyn AeadEngine> {
    vec![
        #[cfg(feature = "aws-lc")]
        &AwsLcEngine,
        #[cfg(feature = "rust-crypto")]
        &RustCryptoEngine,
    ]
}

fn check_key_len(alg: Algorithm, key: &[u8]) -> Result<()> {
    if key.len() != alg.key_len() {
        return Err(Error::invalid(
            "Key",
            format!("{alg} takes {} bytes, got {}", alg.key_len(), key.len()),
        ));
    }
    Ok(())
}

/// Expands an SM4-GCM key, for both engines.
fn sm4_key(key: &[u8]) -> Result<Box<dyn AeadKey>> {
    sm4_gcm::new_key(key)
}

/// Wipes a buffer whose authentication failed so no unauthenticated plaintext escapes.
fn wipe(buf: &mut Vec<u8>) {
    use zeroize::Zeroize;
    buf.zeroize();
    buf.clear();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engines_agree_and_reject_tampering() {
        let key = [7u8; 32];
        let nonce = [9u8; 12];
        for alg in [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305] {
            let mut outs = Vec::new();
            for e in all_engines() {
                let k = e.new_key(alg, &key).unwrap();
                let mut buf = b"hello world".to_vec();
                k.seal_in_place(&nonce, b"aad", &mut buf).unwrap();
                assert_eq!(buf.len(), 11 + TAG_LEN);
                let mut bad = buf.clone();
                bad[0] ^= 1;
                assert!(matches!(
                    k.open_in_place(&nonce, b"aad", &mut bad),
                    Err(Error::DecryptFailed)
                ));
                assert!(bad.is_empty());
                let mut ok = buf.clone();
                k.open_in_place(&nonce, b"aad", &mut ok).unwrap();
                assert_eq!(ok, b"hello world");
                outs.push(buf);
            }
            assert!(outs.windows(2).all(|w| w[0] == w[1]), "{alg}: engines differ");
        }
    }

    #[test]
    fn out_of_place_matches_in_place_at_edge_lengths() {
        let key = [3u8; 32];
        let nonce = [5u8; 12];
        for alg in [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305] {
            for e in all_engines() {
                let k = e.new_key(alg, &key).unwrap();
                for len in [0usize, 1, 15, 16, 17, 63, 64, 65, 255, 4096, 65_537] {
                    let pt: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
                    let mut in_place = pt.clone();
                    k.seal_in_place(&nonce, b"ad", &mut in_place).unwrap();
                    let mut out = vec![0xEEu8; len + TAG_LEN];
                    k.seal_to(&nonce, b"ad", &pt, &mut out).unwrap();
                    assert_eq!(out, in_place, "{} {alg} len {len}: seal_to", e.name());
                    let mut back = vec![0xEEu8; len];
                    k.open_to(&nonce, b"ad", &out, &mut back).unwrap();
                    assert_eq!(back, pt, "{} {alg} len {len}: open_to", e.name());
                    // Tampering anywhere (ciphertext or tag) fails and leaves zeros.
                    let bit = (len * 8 + 7) % (out.len() * 8);
                    out[bit / 8] ^= 1 << (bit % 8);
                    let mut junk = vec![0xEEu8; len];
                    assert!(matches!(
                        k.open_to(&nonce, b"ad", &out, &mut junk),
                        Err(Error::DecryptFailed)
                    ));
                    assert!(junk.iter().all(|&b| b == 0), "{} {alg} len {len}", e.name());
                }
            }
        }
    }

    #[test]
    fn out_of_place_length_checks() {
        for e in all_engines() {
            let k = e.new_key(Algorithm::Aes256Gcm, &[1u8; 32]).unwrap();
            let n = [0u8; 12];
            let mut short = [0u8; 4 + TAG_LEN - 1];
            assert_eq!(
                k.seal_to(&n, b"", b"abcd", &mut short).unwrap_err().code(),
                crate::ErrorCode::InvalidParameter
            );
            let mut out = [0u8; 4];
            assert!(matches!(
                k.open_to(&n, b"", &[0u8; TAG_LEN - 1], &mut out),
                Err(Error::DecryptFailed)
            ));
            assert_eq!(
                k.open_to(&n, b"", &[0u8; TAG_LEN + 5], &mut out)
                    .unwrap_err()
                    .code(),
                crate::ErrorCode::InvalidParameter
            );
        }
    }

    #[test]
    fn wrong_key_length() {
        for e in all_engines() {
            assert!(e.new_key(Algorithm::Aes256Gcm, &[0u8; 16]).is_err());
        }
    }
}
