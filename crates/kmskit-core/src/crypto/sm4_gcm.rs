//! SM4-GCM (GB/T 32907 block cipher in GCM mode, as RFC 8998 uses it): RustCrypto `sm4` under
//! `aes-gcm`'s generic GCM. Both AEAD engines hand `Aliyun_SM4` keys here — aws-lc-rs has no SM4 — so
//! the bytes are the same whichever engine is chosen.

use std::fmt;

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U12;
use aes_gcm::aead::{AeadInPlace, KeyInit};
use sm4::Sm4;

use super::{AeadKey, Algorithm, NONCE_LEN, TAG_LEN, split_sealed, wipe};
use crate::error::{Error, Result};

type Sm4Gcm = AesGcm<Sm4, U12>;

/// An expanded SM4-GCM key; the SM4 round keys are zeroized on drop (`sm4`'s `zeroize` feature).
pub(super) struct Sm4GcmKey(Box<Sm4Gcm>);

impl fmt::Debug for Sm4GcmKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sm4GcmKey").finish_non_exhaustive()
    }
}

/// Expands a 16-byte SM4 key.
pub(super) fn new_key(key: &[u8]) -> Result<Box<dyn AeadKey>> {
    super::check_key_len(Algorithm::Sm4Gcm, key)?;
    let c = Sm4Gcm::new_from_slice(key).map_err(|_| Error::invalid("Key", "rejected by SM4"))?;
    Ok(Box::new(Sm4GcmKey(Box::new(c))))
}

impl AeadKey for Sm4GcmKey {
    fn algorithm(&self) -> Algorithm {
        Algorithm::Sm4Gcm
    }

    fn seal_in_place_detached(
        &self,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        let tag = self
            .0
            .encrypt_in_place_detached(nonce.into(), aad, buf)
            .map_err(|_| Error::invalid("Plaintext", "too long for one AEAD message"))?;
        let mut out = [0u8; TAG_LEN];
        out.copy_from_slice(&tag);
        Ok(out)
    }

    fn open_in_place(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], buf: &mut Vec<u8>) -> Result<()> {
        self.0.decrypt_in_place(nonce.into(), aad, buf).map_err(|_| {
            wipe(buf);
            Error::DecryptFailed
        })
    }

    fn open_to(&self, nonce: &[u8; NONCE_LEN], aad: &[u8], sealed: &[u8], out: &mut [u8]) -> Result<()> {
        let (ct, tag) = split_sealed(sealed, out)?;
        out.copy_from_slice(ct);
        self.0
            .decrypt_in_place_detached(nonce.into(), aad, out, tag.into())
            .map_err(|_| {
                zeroize::Zeroize::zeroize(out);
                Error::DecryptFailed
            })
    }
}
