//! The engine's asymmetric actions: AsymmetricSign, AsymmetricVerify, AsymmetricEncrypt,
//! AsymmetricDecrypt and GetPublicKey.
//!
//! Private-key operations (sign, decrypt) run in the store's custody — software, or an HSM that never
//! releases the key. Public-key operations (verify, encrypt) run here, over the SubjectPublicKeyInfo
//! the store returns, with [`crate::crypto::asym`]: the result is the same whoever holds the private key.
//!
//! Asymmetric keys have no primary version: every call names its `KeyVersionId` (spec §8). The order of
//! checks is the model service's: the key's state first (`Rejected.Disabled`, …), then the algorithm
//! against the key's spec and usage (`Rejected.UnsupportedOperation`), then the version, then the input.

use super::*;

use crate::crypto::asym;
use crate::key::{AsymmetricAlgorithm, KeyUsage};
use crate::provider::{AsymmetricEncrypted, PublicKey, Signed, Verified};

impl<S: KeyStore> Kms<S> {
    /// The material of `version` of an enabled asymmetric key, after checking that `op` — an algorithm
    /// and the usage the action needs — fits the key. `op` is `None` for GetPublicKey.
    fn asymmetric_material(
        &self,
        key: &KeyRef,
        version: &KeyVersionId,
        op: Option<(AsymmetricAlgorithm, KeyUsage)>,
    ) -> Result<(MaterialId, KeySpec)> {
        self.maybe_purge();
        let st = self.read();
        let rec = match key {
            KeyRef::Id(id) => self.live(&st, id)?,
            _ => {
                let id = self.resolve(&st, key)?;
                self.live(&st, &id)?
            }
        };
        require_usable(rec)?;
        if rec.key_spec.is_symmetric() {
            return Err(Error::Unsupported(format!(
                "key {} is a symmetric {} key; asymmetric actions need an RSA, EC or SM2 key",
                rec.key_id, rec.key_spec
            )));
        }
        if let Some((alg, needed)) = op {
            if alg.usage() != needed {
                return Err(Error::Unsupported(format!(
                    "{alg} is not a {} algorithm",
                    match needed {
                        KeyUsage::SignVerify => "signature",
                        KeyUsage::EncryptDecrypt => "public-key encryption",
                    }
                )));
            }
            alg.check(rec.key_spec, rec.key_usage)?;
        }
        if rec.version_index(version).is_none() {
            return Err(Error::KeyVersionNotFound(version.to_string()));
        }
        Ok((MaterialId::new(rec.key_id.clone(), version.clone()), rec.key_spec))
    }

    /// AsymmetricSign without governance.
    pub(super) fn raw_asymmetric_sign(
        &self,
        key: &KeyRef,
        version: &KeyVersionId,
        alg: AsymmetricAlgorithm,
        digest: &[u8],
    ) -> Result<Signed> {
        let (id, spec) = self.asymmetric_material(key, version, Some((alg, KeyUsage::SignVerify)))?;
        check_digest(alg, digest)?;
        let signature = self.store.sign_digest(&id, spec, alg, digest)?;
        Ok(Signed::new(id.key_id, id.version_id, signature))
    }

    /// AsymmetricVerify without governance.
    pub(super) fn raw_asymmetric_verify(
        &self,
        key: &KeyRef,
        version: &KeyVersionId,
        alg: AsymmetricAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<Verified> {
        let (id, spec) = self.asymmetric_material(key, version, Some((alg, KeyUsage::SignVerify)))?;
        check_digest(alg, digest)?;
        let spki = self.store.public_key(&id, spec)?;
        let valid = asym::verify_digest(spec, &spki, alg, digest, signature)?;
        Ok(Verified::new(id.key_id, id.version_id, valid))
    }

    /// AsymmetricEncrypt without governance.
    pub(super) fn raw_asymmetric_encrypt(
        &self,
        key: &KeyRef,
        version: &KeyVersionId,
        alg: AsymmetricAlgorithm,
        plaintext: &[u8],
    ) -> Result<AsymmetricEncrypted> {
        let (id, spec) = self.asymmetric_material(key, version, Some((alg, KeyUsage::EncryptDecrypt)))?;
        let spki = self.store.public_key(&id, spec)?;
        let ciphertext = asym::encrypt(spec, &spki, alg, plaintext)?;
        Ok(AsymmetricEncrypted::new(id.key_id, id.version_id, ciphertext))
    }

    /// AsymmetricDecrypt without governance.
    pub(super) fn raw_asymmetric_decrypt(
        &self,
        key: &KeyRef,
        version: &KeyVersionId,
        alg: AsymmetricAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Decrypted> {
        let (id, spec) = self.asymmetric_material(key, version, Some((alg, KeyUsage::EncryptDecrypt)))?;
        if ciphertext.is_empty() {
            return Err(Error::invalid("CiphertextBlob", "empty"));
        }
        let plaintext = self.store.asymmetric_decrypt(&id, spec, alg, ciphertext)?;
        Ok(Decrypted::new(id.key_id, id.version_id, plaintext))
    }

    /// GetPublicKey without governance.
    pub(super) fn raw_get_public_key(&self, key: &KeyRef, version: &KeyVersionId) -> Result<PublicKey> {
        let (id, spec) = self.asymmetric_material(key, version, None)?;
        let spki = self.store.public_key(&id, spec)?;
        Ok(PublicKey::new(id.key_id, id.version_id, asym::spki_to_pem(&spki)))
    }
}

/// Signature algorithms sign a digest of a fixed length (32 bytes: SHA-256 or SM3), never a message.
fn check_digest(alg: AsymmetricAlgorithm, digest: &[u8]) -> Result<()> {
    match alg.digest_len() {
        Some(n) if digest.len() == n => Ok(()),
        Some(n) => Err(Error::invalid(
            "Digest",
            format!(
                "{alg} signs a {n}-byte digest of the message, not {} bytes",
                digest.len()
            ),
        )),
        None => Err(Error::Unsupported(format!("{alg} is not a signature algorithm"))),
    }
}
