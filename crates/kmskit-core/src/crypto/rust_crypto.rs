//! The pure-Rust engine (RustCrypto `aes-gcm`, `chacha20poly1305`).

use std::fmt;

use aes_gcm::Aes256Gcm;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use chacha20poly1305::ChaCha20Poly1305;

use super::{AeadEngine, AeadKey, Algorithm, NONCE_LEN, TAG_LEN, check_key_len, split_sealed, wipe};
use crate::error::{Error, Result};

/// AEAD in pure Rust: portable, constant-time, no C toolchain needed.
#[derive(Clone, Copy, Debug, Default)]
pub struct RustCryptoEngine;

enum Cipher {
    Aes(Box<Aes256Gcm>),
    ChaCha(Box<ChaCha20Poly1305>),
}

struct RustCryptoKey(Cipher);

impl fmt::Debug for RustCryptoKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RustCryptoKey")
            .field("alg", &self.algorithm())
            .finish_non_exhaustive()
    }
}

impl AeadEngine for RustCryptoEngine {
    fn name(&self) -> &'static str {
        "rust-crypto"
    }

    fn new_key(&self, alg: Algorithm, key: &[u8]) -> Result<Box<dyn AeadKey>> {
        check_key_len(alg, key)?;
        let bad = |_| Error::invalid("Key", "rejected by the cipher");
        let c = match alg {
            Algorithm::Aes256Gcm => Cipher::Aes(Box::new(Aes256Gcm::new_from_slice(key).map_err(bad)?)),
            Algorithm::ChaCha20Poly1305 => {
                Cipher::ChaCha(Box::new(ChaCha20Poly1305::new_from_slice(key).map_err(bad)?))
            }
            Algorithm::Sm4Gcm => return super::sm4_key(key),
        };
        Ok(Box::new(RustCryptoKey(c)))
    }
}

impl AeadKey for RustCryptoKey {
    fn algorithm(&self) -> Algorithm {
        match self.0 {
            Cipher::Aes(_) => Algorithm::Aes256Gcm,
            Cipher::ChaCha(_) => Algorithm::ChaCha20Poly1305,
        }
    }

    fn seal_in_place_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let r = match &self.0 {
            Cipher::Aes(c) => c.encrypt_in_place_detached(nonce.into(), aad, buf),
            Cipher::ChaCha(c) => c.encrypt_in_place_detached(nonce.into(), aad, buf),
        };
        let tag = r.map_err(|_| Error::invalid("Plaintext", "too long for one AEAD message"))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&tag);
        Ok(out)
    }

    fn open_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
        let r = match &self.0 {
            Cipher::Aes(c) => c.decrypt_in_place(nonce.into(), aad, buf),
            Cipher::ChaCha(c) => c.decrypt_in_place(nonce.into(), aad, buf),
        };
        r.map_err(|_| {
            wipe(buf);
            Error::DecryptFailed
        })
    }

    fn open_to(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], sealed: &[u8], out: &mut [u8]) -> Result<()> {
        let (ct, tag) = split_sealed(sealed, out)?;
        out.copy_from_slice(ct);
        let r = match &self.0 {
            Cipher::Aes(c) => c.decrypt_in_place_detached(nonce.into(), aad, out, tag.into()),
            Cipher::ChaCha(c) => c.decrypt_in_place_detached(nonce.into(), aad, out, tag.into()),
        };
        r.map_err(|_| {
            zeroize::Zeroize::zeroize(out);
            Error::DecryptFailed
        })
    }
}
