//! # kmskit-memory
//!
//! [`MemoryStore`], a [`KeyStore`] that keeps key material and records in process memory, and
//! [`MemoryKms`] = [`Kms<MemoryStore>`](kmskit_core::Kms): the full kmskit engine (lifecycle, aliases,
//! deletion windows, the blob format) with nothing persisted. For tests, caches and ephemeral keys;
//! everything is gone (and the material zeroized) when it is dropped.
//!
//! ```
//! use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef};
//! use kmskit_memory::{MemoryKms, MemoryKmsExt};
//!
//! # fn main() -> kmskit_core::Result<()> {
//! let kms = MemoryKms::new_memory();
//! let caller = Caller::local();
//! kmskit_core::block_on(async {
//!     let key = kms.create_key(&caller, CreateKey::new("scratch")).await?;
//!     let ctx = EncryptionContext::new();
//!     let enc = kms.encrypt(&caller, &KeyRef::Id(key.key_id), b"Hello KMS", &ctx).await?;
//!     let dec = kms.decrypt(&caller, &enc.ciphertext_blob, &ctx).await?;
//!     assert_eq!(&dec.plaintext[..], b"Hello KMS");
//!     Ok(())
//! })
//! # }
//! ```

#![forbid(unsafe_code)]
#![deny(rustdoc::broken_intra_doc_links)]

use std::collections::BTreeMap;
use std::sync::Mutex;

use kmskit_core::crypto::{AeadEngine, Algorithm, NONCE_LEN, TAG_LEN, default_engine};
use kmskit_core::store::{AliasRecord, KeyRecord, KeyStore, Loaded, MaterialId, SoftwareKeys};
use kmskit_core::{
    AliasName, AsymmetricAlgorithm, KeyId, KeySpec, Kms, KmsConfig, ProtectionLevel, Result, Zeroizing,
};

#[doc(hidden)]
pub mod internal;

/// Key material and records in memory.
#[derive(Debug)]
pub struct MemoryStore {
    keys: SoftwareKeys,
    records: Mutex<Records>,
}

#[derive(Debug, Default)]
struct Records {
    keys: BTreeMap<KeyId, KeyRecord>,
    aliases: BTreeMap<AliasName, AliasRecord>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// An empty store on the default AEAD engine.
    pub fn new() -> Self {
        Self::with_engine(default_engine())
    }

    /// An empty store on `engine`.
    pub fn with_engine(engine: &'static dyn AeadEngine) -> Self {
        Self {
            keys: SoftwareKeys::new(engine),
            records: Mutex::new(Records::default()),
        }
    }

    fn records(&self) -> std::sync::MutexGuard<'_, Records> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl KeyStore for MemoryStore {
    fn protection_level(&self) -> ProtectionLevel {
        ProtectionLevel::Software
    }

    fn load(&self) -> Result<Loaded> {
        let r = self.records();
        Ok(Loaded::new(
            r.keys.values().cloned().collect(),
            r.aliases.values().cloned().collect(),
            Vec::new(),
        ))
    }

    fn generate(&self, id: &MaterialId, spec: KeySpec) -> Result<()> {
        self.keys
            .insert(id.clone(), spec, SoftwareKeys::new_material(spec)?)
    }

    fn seal(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        self.keys.seal(id, alg, nonce, aad, buf)
    }

    fn open(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        self.keys.open(id, alg, nonce, aad, buf)
    }

    fn sign_digest(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        alg: AsymmetricAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>> {
        self.keys.sign_digest(id, spec, alg, digest)
    }

    fn asymmetric_decrypt(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        alg: AsymmetricAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.keys.asymmetric_decrypt(id, spec, alg, ciphertext)
    }

    fn public_key(&self, id: &MaterialId, spec: KeySpec) -> Result<Vec<u8>> {
        self.keys.public_key(id, spec)
    }

    fn destroy(&self, key: &KeyId) -> Result<()> {
        self.keys.remove_key(key);
        Ok(())
    }

    fn save_key(&self, record: &KeyRecord) -> Result<()> {
        self.records().keys.insert(record.key_id.clone(), record.clone());
        Ok(())
    }

    fn save_alias(&self, alias: &AliasRecord) -> Result<()> {
        self.records().aliases.insert(alias.name.clone(), alias.clone());
        Ok(())
    }

    fn delete_alias(&self, name: &AliasName) -> Result<()> {
        self.records().aliases.remove(name);
        Ok(())
    }
}

/// The kmskit engine over [`MemoryStore`].
pub type MemoryKms = Kms<MemoryStore>;

/// Constructors for [`MemoryKms`].
pub trait MemoryKmsExt: Sized {
    /// A fresh, empty in-memory KMS with default settings.
    fn new_memory() -> Self;
    /// A fresh, empty in-memory KMS with `config` (region, account, clock).
    fn with_memory_config(config: KmsConfig) -> Self;
}

impl MemoryKmsExt for MemoryKms {
    fn new_memory() -> Self {
        Self::with_memory_config(KmsConfig::default())
    }

    #[allow(clippy::expect_used)]
    fn with_memory_config(config: KmsConfig) -> Self {
        // An empty MemoryStore always loads.
        Kms::with_config(MemoryStore::new(), config).expect("an empty memory store always opens")
    }
}
