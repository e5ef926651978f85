//! The aws-lc-rs engine.

use std::fmt;

use aws_lc_rs::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};

use super::{
    AeadEngine, AeadKey, Algorithm, NONCE_LEN, TAG_LEN, check_key_len, split_sealed, split_sealed_mut, wipe,
};
use crate::error::{Error, Result};

/// AEAD on aws-lc-rs (AWS-LC, with AES-NI/VAES and AVX code paths).
#[derive(Clone, Copy, Debug, Default)]
pub struct AwsLcEngine;

struct AwsLcKey {
    alg: Algorithm,
    key: LessSafeKey,
}

impl fmt::Debug for AwsLcKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsLcKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl AeadEngine for AwsLcEngine {
    fn name(&self) -> &'static str {
        "aws-lc-rs"
    }

    fn new_key(&self, alg: Algorithm, key: &[u8]) -> Result<Box<dyn AeadKey>> {
        check_key_len(alg, key)?;
        let a = match alg {
            Algorithm::Aes256Gcm => &aead::AES_256_GCM,
            Algorithm::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
            Algorithm::Sm4Gcm => return super::sm4_key(key),
        };
        let unbound = UnboundKey::new(a, key).map_err(|_| Error::invalid("Key", "rejected by aws-lc-rs"))?;
        Ok(Box::new(AwsLcKey {
            alg,
            key: LessSafeKey::new(unbound),
        }))
    }
}

impl AeadKey for AwsLcKey {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }

    fn seal_in_place_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let tag = self
            .key
            .seal_in_place_separate_tag(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
            .map_err(|_| Error::invalid("Plaintext", "too long for one AEAD message"))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(tag.as_ref());
        Ok(out)
    }

    fn open_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
        match self
            .key
            .open_in_place(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), buf)
        {
            Ok(pt) => {
                let n = pt.len();
                buf.truncate(n);
                Ok(())
            }
            Err(_) => {
                wipe(buf);
                Err(Error::DecryptFailed)
            }
        }
    }

    fn seal_to(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], src: &[u8], out: &mut [u8]) -> Result<()> {
        split_sealed_mut(out, src.len())?;
        // `extra_in` is encrypted into `extra_out_and_tag` (ciphertext ‖ tag): one pass, src → out.
        self.key
            .seal_in_place_scatter(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                &mut [],
                src,
                out,
            )
            .map_err(|_| Error::invalid("Plaintext", "too long for one AEAD message"))
    }

    fn open_to(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], sealed: &[u8], out: &mut [u8]) -> Result<()> {
        let (ct, tag) = split_sealed(sealed, out)?;
        self.key
            .open_separate_gather(Nonce::assume_unique_for_key(*nonce), Aad::from(aad), ct, tag, out)
            .map_err(|_| {
                zeroize::Zeroize::zeroize(out);
                Error::DecryptFailed
            })
    }
}
