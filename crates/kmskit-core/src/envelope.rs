//! Envelope encryption over any [`KeyProvider`]: [`EnvelopeEncryptor`], the [`Envelope`] trait and the
//! [`DataKeyCache`].
//!
//! Sealing asks the provider for a data key (GenerateDataKey), encrypts the bytes locally with an AEAD
//! key derived from it, and writes one self-describing envelope: a versioned header carrying the wrapped
//! data key and a **key commitment**, then the ciphertext. The commitment, an HMAC under a key derived
//! from the data key over the header and the encryption context, is the AEAD's associated data, so
//! nothing in the envelope can be changed, and it opens only with the context it was sealed with. Opening asks the provider to unwrap the data key (Decrypt), checks the commitment,
//! then authenticates and decrypts. Buffers of any size (up to 64 GiB) seal into one envelope; for
//! streams use `kmskit-stream`.
//!
//! Because the commitment is keyed by the data key, one envelope can only ever be opened under one data
//! key (no "invisible salamander" ciphertexts that decrypt to different plaintexts under
//! two keys). The exact layout, key schedule and test vectors are in `docs/envelope-format.md`.
//!
//! With a [`DataKeyCache`], one data key seals many envelopes within the limits you set, and unwrapped
//! keys are reused to open envelopes that carry the same wrapped key, saving provider calls.
//!
//! ```
//! use std::sync::Arc;
//! use kmskit_core::envelope::{CacheLimits, DataKeyCache, EnvelopeEncryptor};
//! use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef};
//! # use kmskit_core::store::{KeyStore, Loaded, MaterialId, SoftwareKeys, AliasRecord, KeyRecord};
//! # use kmskit_core::{Result, KeyId, AliasName, key::{KeySpec, ProtectionLevel}, crypto::{Algorithm, NONCE_LEN, TAG_LEN}};
//! # #[derive(Debug)]
//! # struct Tiny(SoftwareKeys);
//! # impl KeyStore for Tiny {
//! #     fn protection_level(&self) -> ProtectionLevel { ProtectionLevel::Software }
//! #     fn load(&self) -> Result<Loaded> { Ok(Loaded::default()) }
//! #     fn generate(&self, id: &MaterialId, spec: KeySpec) -> Result<()> {
//! #         self.0.insert(id.clone(), spec, SoftwareKeys::new_material(spec)?)
//! #     }
//! #     fn seal(&self, id: &MaterialId, a: Algorithm, n: &[u8; NONCE_LEN], aad: &[u8], b: &mut [u8]) -> Result<[u8; TAG_LEN]> { self.0.seal(id, a, n, aad, b) }
//! #     fn open(&self, id: &MaterialId, a: Algorithm, n: &[u8; NONCE_LEN], aad: &[u8], b: &mut Vec<u8>) -> Result<()> { self.0.open(id, a, n, aad, b) }
//! #     fn destroy(&self, key: &KeyId) -> Result<()> { self.0.remove_key(key); Ok(()) }
//! #     fn save_key(&self, _: &KeyRecord) -> Result<()> { Ok(()) }
//! #     fn save_alias(&self, _: &AliasRecord) -> Result<()> { Ok(()) }
//! #     fn delete_alias(&self, _: &AliasName) -> Result<()> { Ok(()) }
//! # }
//! # fn main() -> Result<()> { kmskit_core::block_on(async {
//! # let kms = Arc::new(kmskit_core::Kms::open(Tiny(SoftwareKeys::new(kmskit_core::crypto::default_engine())))?);
//! // `kms` is any KeyProvider: MemoryKms, FileKms, a remote client, ...
//! let caller = Caller::local();
//! let key = KeyRef::Id(kms.create_key(&caller, CreateKey::new("blobs")).await?.key_id);
//! let cache = Arc::new(DataKeyCache::new(CacheLimits::new().max_messages(1000)));
//! let env = EnvelopeEncryptor::new(kms).with_cache(cache.clone());
//! let ctx = EncryptionContext::from_pairs([("bucket", "invoices")])?;
//!
//! let big = vec![7u8; 1 << 20];
//! let sealed = env.seal(&caller, &key, &big, &ctx).await?;
//! assert_eq!(&env.open(&caller, &sealed, &ctx).await?[..], &big[..]);
//! let again = env.seal(&caller, &key, b"small", &ctx).await?; // the cached data key: no provider call
//! assert_eq!(cache.stats().encrypt_hits, 1);
//! assert!(env.open(&caller, &again, &EncryptionContext::new()).await.is_err()); // wrong context
//! # Ok(()) }) }
//! ```

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::blob::CiphertextBlob;
use crate::context::EncryptionContext;
use crate::crypto::{AeadEngine, Algorithm, NONCE_LEN, default_engine};
use crate::error::{Error, Result};
use crate::id::KeyRef;
use crate::key::DataKeySpec;
use crate::provider::{Caller, DataKeyLength, KeyProvider};

mod cache;
pub mod format;

pub use cache::{CacheLimits, CacheStats, DataKeyCache, MAX_MESSAGES_PER_KEY};
pub use format::{ParsedEnvelope, open_with_data_key};

use cache::Use;
use format::EnvelopeKeys;

/// Envelope encryption: seal bytes under a key through a data key, open them again.
#[async_trait]
pub trait Envelope: Send + Sync + fmt::Debug {
    /// Seals `plaintext` under `key` (through a fresh or cached data key) bound to `ctx`.
    ///
    /// # Errors
    /// The provider's errors (`Forbidden.KeyNotFound`, `Rejected.Disabled`, …); `InvalidParameter` for
    /// plaintexts over 64 GiB.
    async fn seal(
        &self,
        caller: &Caller,
        key: &KeyRef,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>>;

    /// Opens an envelope sealed with `ctx`.
    ///
    /// # Errors
    /// `InvalidParameter` (`Envelope`) for malformed bytes; [`Error::DecryptFailed`] for a wrong context
    /// or any tampering; the provider's errors from unwrapping the data key.
    async fn open(
        &self,
        caller: &Caller,
        envelope: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>>;
}

/// A cached seal-side data key: its derived keys, the header up to the nonce (with the commitment,
/// which covers the context, so one entry serves one context) and a random nonce prefix. Nonces are
/// that prefix and the message index, which the cache hands out under its lock: unique per data key.
pub(crate) struct EncryptEntry {
    keys: EnvelopeKeys,
    header_prefix: Vec<u8>,
    commitment: [u8; format::COMMITMENT_LEN],
    nonce_prefix: [u8; 4],
}

impl EncryptEntry {
    fn nonce(&self, index: u64) -> [u8; NONCE_LEN] {
        let mut n = [0u8; NONCE_LEN];
        n[..4].copy_from_slice(&self.nonce_prefix);
        n[4..].copy_from_slice(&index.to_be_bytes());
        n
    }

    fn seal(&self, index: u64, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        format::seal_append(
            &self.keys,
            &self.header_prefix,
            &self.commitment,
            &self.nonce(index),
            plaintext,
            out,
        )
    }
}

/// A cached open-side key, with the commitment envelopes of its partition (wrapped key, algorithm,
/// context) must carry.
pub(crate) struct DecryptEntry {
    keys: EnvelopeKeys,
    commitment: [u8; format::COMMITMENT_LEN],
}

/// Envelope encryption over a [`KeyProvider`], optionally with a [`DataKeyCache`].
///
/// Without a cache every seal makes one GenerateDataKey call and every open one Decrypt call. The
/// default algorithm is AES-256-GCM on the default AEAD engine.
pub struct EnvelopeEncryptor<P: KeyProvider + ?Sized> {
    provider: Arc<P>,
    algorithm: Algorithm,
    engine: &'static dyn AeadEngine,
    cache: Option<Arc<DataKeyCache>>,
}

impl<P: KeyProvider + ?Sized> fmt::Debug for EnvelopeEncryptor<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvelopeEncryptor")
            .field("provider", &self.provider)
            .field("algorithm", &self.algorithm)
            .field("engine", &self.engine.name())
            .field("cache", &self.cache)
            .finish()
    }
}

impl<P: KeyProvider + ?Sized> Clone for EnvelopeEncryptor<P> {
    fn clone(&self) -> Self {
        Self {
            provider: self.provider.clone(),
            algorithm: self.algorithm,
            engine: self.engine,
            cache: self.cache.clone(),
        }
    }
}

impl<P: KeyProvider + ?Sized> EnvelopeEncryptor<P> {
    /// An encryptor over `provider`, AES-256-GCM, no cache.
    pub fn new(provider: Arc<P>) -> Self {
        Self {
            provider,
            algorithm: Algorithm::Aes256Gcm,
            engine: default_engine(),
            cache: None,
        }
    }

    /// Uses `cache` for data keys (seal side) and unwrapped keys (open side).
    #[must_use]
    pub fn with_cache(mut self, cache: Arc<DataKeyCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Seals with `alg` (opening reads the algorithm from the envelope).
    #[must_use]
    pub fn with_algorithm(mut self, alg: Algorithm) -> Self {
        self.algorithm = alg;
        self
    }

    /// Uses `engine` for the local AEAD.
    #[must_use]
    pub fn with_engine(mut self, engine: &'static dyn AeadEngine) -> Self {
        self.engine = engine;
        self
    }

    /// The provider.
    pub fn provider(&self) -> &Arc<P> {
        &self.provider
    }

    /// The cache, if any.
    pub fn cache(&self) -> Option<&Arc<DataKeyCache>> {
        self.cache.as_ref()
    }

    /// Seals `plaintext` under `key`, bound to `ctx`, into a new envelope.
    ///
    /// # Errors
    /// As [`Envelope::seal`].
    pub async fn seal(
        &self,
        caller: &Caller,
        key: &KeyRef,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.seal_into(caller, key, plaintext, ctx, &mut out).await?;
        Ok(out)
    }

    /// As [`EnvelopeEncryptor::seal`], appending the envelope to `out` (reuse one buffer to seal many
    /// messages without allocating). On error `out` is left as it was.
    ///
    /// # Errors
    /// As [`Envelope::seal`].
    pub async fn seal_into(
        &self,
        caller: &Caller,
        key: &KeyRef,
        plaintext: &[u8],
        ctx: &EncryptionContext,
        out: &mut Vec<u8>,
    ) -> Result<()> {
        let u = Use {
            principal: &caller.principal,
            scope: key,
            alg: self.algorithm,
            ctx,
            len: plaintext.len() as u64,
        };
        if let Some(cache) = &self.cache {
            if let Some((e, index)) = cache.get_encrypt(&u) {
                return e.seal(index, plaintext, out);
            }
        }
        let dk = self
            .provider
            .generate_data_key(caller, key, DataKeyLength::Spec(DataKeySpec::Aes256), ctx)
            .await?;
        let keys = EnvelopeKeys::derive(self.engine, self.algorithm, dk.plaintext.expose_secret())?;
        drop(dk.plaintext);
        let (header_prefix, commitment) = format::header_prefix(
            &keys,
            self.algorithm,
            dk.ciphertext_blob.as_bytes(),
            &ctx.canonical(),
        )?;
        let mut nonce_prefix = [0u8; 4];
        crate::rand::fill(&mut nonce_prefix);
        let entry = Arc::new(EncryptEntry {
            keys,
            header_prefix,
            commitment,
            nonce_prefix,
        });
        // This message is the entry's first (index 0); the cache hands out 1, 2, … to later ones.
        if let Some(cache) = &self.cache {
            cache.put_encrypt(&u, entry.clone());
        }
        entry.seal(0, plaintext, out)
    }

    /// Opens an envelope sealed with `ctx`.
    ///
    /// # Errors
    /// As [`Envelope::open`].
    pub async fn open(
        &self,
        caller: &Caller,
        envelope: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>> {
        let env = ParsedEnvelope::parse(envelope)?;
        let u = Use {
            principal: &caller.principal,
            scope: env.wrapped_key,
            alg: env.algorithm,
            ctx,
            len: env.plaintext_len() as u64,
        };
        if let Some(cache) = &self.cache {
            if let Some(e) = cache.get_decrypt(&u) {
                return format::open_parsed(&e.keys, &env, &e.commitment);
            }
        }
        let blob = CiphertextBlob::from_bytes(env.wrapped_key.to_vec());
        let dk = self.provider.decrypt_data_key(caller, &blob, ctx).await?;
        let keys =
            EnvelopeKeys::derive(self.engine, env.algorithm, dk.expose_secret()).map_err(|e| match e {
                // A wrapped "data key" of a length no seal uses: the envelope was not made by a seal.
                Error::InvalidParameter { .. } => Error::DecryptFailed,
                other => other,
            })?;
        drop(dk);
        // Check before caching, so a forged envelope cannot plant anything.
        let commitment = format::expected_commitment(&keys, &env, &ctx.canonical());
        let pt = format::open_parsed(&keys, &env, &commitment)?;
        if let Some(cache) = &self.cache {
            cache.put_decrypt(&u, Arc::new(DecryptEntry { keys, commitment }));
        }
        Ok(pt)
    }
}

#[async_trait]
impl<P: KeyProvider + ?Sized> Envelope for EnvelopeEncryptor<P> {
    async fn seal(
        &self,
        caller: &Caller,
        key: &KeyRef,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Vec<u8>> {
        EnvelopeEncryptor::seal(self, caller, key, plaintext, ctx).await
    }

    async fn open(
        &self,
        caller: &Caller,
        envelope: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Zeroizing<Vec<u8>>> {
        EnvelopeEncryptor::open(self, caller, envelope, ctx).await
    }
}
