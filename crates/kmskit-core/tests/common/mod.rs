//! A minimal in-memory store for kmskit-core's own integration tests (kmskit-memory depends on core, so
//! core's tests cannot use it).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::sync::Arc;

use kmskit_core::crypto::{Algorithm, NONCE_LEN, TAG_LEN, default_engine};
use kmskit_core::key::{AsymmetricAlgorithm, KeySpec, ProtectionLevel};
use kmskit_core::store::{AliasRecord, KeyRecord, KeyStore, Loaded, MaterialId, SoftwareKeys};
use kmskit_core::{AliasName, Clock, KeyId, Kms, KmsConfig, ManualClock, Result, Timestamp};

#[derive(Debug)]
pub struct Tiny(pub SoftwareKeys);

impl KeyStore for Tiny {
    fn protection_level(&self) -> ProtectionLevel {
        ProtectionLevel::Software
    }
    fn load(&self) -> Result<Loaded> {
        Ok(Loaded::default())
    }
    fn generate(&self, id: &MaterialId, spec: KeySpec) -> Result<()> {
        self.0.insert(id.clone(), spec, SoftwareKeys::new_material(spec)?)
    }
    fn seal(
        &self,
        id: &MaterialId,
        a: Algorithm,
        n: &[u8; NONCE_LEN],
        aad: &[u8],
        b: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        self.0.seal(id, a, n, aad, b)
    }
    fn open(
        &self,
        id: &MaterialId,
        a: Algorithm,
        n: &[u8; NONCE_LEN],
        aad: &[u8],
        b: &mut Vec<u8>,
    ) -> Result<()> {
        self.0.open(id, a, n, aad, b)
    }
    fn sign_digest(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        alg: AsymmetricAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>> {
        self.0.sign_digest(id, spec, alg, digest)
    }
    fn asymmetric_decrypt(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        alg: AsymmetricAlgorithm,
        ciphertext: &[u8],
    ) -> Result<kmskit_core::Zeroizing<Vec<u8>>> {
        self.0.asymmetric_decrypt(id, spec, alg, ciphertext)
    }
    fn public_key(&self, id: &MaterialId, spec: KeySpec) -> Result<Vec<u8>> {
        self.0.public_key(id, spec)
    }
    fn destroy(&self, key: &KeyId) -> Result<()> {
        self.0.remove_key(key);
        Ok(())
    }
    fn save_key(&self, _: &KeyRecord) -> Result<()> {
        Ok(())
    }
    fn save_alias(&self, _: &AliasRecord) -> Result<()> {
        Ok(())
    }
    fn delete_alias(&self, _: &AliasName) -> Result<()> {
        Ok(())
    }
}

pub fn manual_clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(Timestamp::from_unix(1_700_000_000)))
}

pub fn kms_with_clock(clock: Arc<dyn Clock>) -> Arc<Kms<Tiny>> {
    Arc::new(
        Kms::with_config(
            Tiny(SoftwareKeys::new(default_engine())),
            KmsConfig::new().clock(clock),
        )
        .unwrap(),
    )
}

pub fn kms() -> Arc<Kms<Tiny>> {
    kms_with_clock(manual_clock())
}
