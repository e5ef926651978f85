//! # kmskit-core
//!
//! The contracts of kmskit, a key management service that runs inside your process: identifiers and key
//! metadata, the [`KeyProvider`] API (the Alibaba Cloud KMS operations, every call carrying a
//! [`Caller`]), the [`KeyStore`] SPI a local backend implements, the engine [`Kms<S>`] that implements the
//! key lifecycle once for every store, the AEAD engines, the ciphertext blob format and the encryption
//! context; envelope encryption with a data-key cache ([`envelope`]) and key rotation ([`rotate`]).
//!
//! Most users depend on the `kmskit` facade instead, which re-exports this crate with the backends.
//!
//! ```
//! use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef, Kms};
//! use kmskit_core::store::{KeyStore, Loaded, MaterialId, SoftwareKeys, AliasRecord, KeyRecord};
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
//! # fn main() -> Result<()> {
//! # let store = Tiny(SoftwareKeys::new(kmskit_core::crypto::default_engine()));
//! // `store` is any KeyStore: kmskit-memory's MemoryStore, kmskit-file's FileStore, ...
//! let kms = Kms::open(store)?;
//! let caller = Caller::local();
//! # kmskit_core::block_on(async {
//! let key = kms.create_key(&caller, CreateKey::new("orders")).await?;
//! let ctx = EncryptionContext::from_pairs([("table", "orders")])?;
//! let enc = kms.encrypt(&caller, &KeyRef::Id(key.key_id), b"Hello KMS", &ctx).await?;
//! let dec = kms.decrypt(&caller, &enc.ciphertext_blob, &ctx).await?;
//! assert_eq!(&dec.plaintext[..], b"Hello KMS");
//! # Ok::<(), kmskit_core::Error>(())
//! # })?;
//! # Ok(())
//! # }
//! ```
//!
//! ## Crate features
//! - `aws-lc` (default): the aws-lc-rs AEAD engine, used by default when present.
//! - `rust-crypto` (default): the pure-Rust AEAD engine (aes-gcm, chacha20poly1305).
//! - `asymmetric` (default, needs `aws-lc`): RSA, ECDSA P-256/secp256k1 and SM2 keys and SM3,
//!   [`crypto::asym`], held by the software stores.
//! - `testkit`: the provider conformance suite, [`testkit`], for backend crates' tests.
//! - `scheduler`: [`rotate::Scheduler`], a tokio task that performs due rotations and purges.
//! - `tracing`: [`audit::TracingSink`], which sends audit events to `tracing`.

#![forbid(unsafe_code)]
#![deny(rustdoc::broken_intra_doc_links)]
#![doc(test(attr(deny(warnings))))]

pub mod audit;
pub mod blob;
pub mod clock;
pub mod context;
pub mod crypto;
mod engine;
pub mod envelope;
pub mod error;
pub mod governance;
pub mod id;
pub mod key;
pub mod policy;
pub mod provider;
pub mod rand;
pub mod rotate;
pub mod secret;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit;

pub use blob::CiphertextBlob;
pub use clock::{Clock, ManualClock, SystemClock, Timestamp};
pub use context::EncryptionContext;
pub use engine::{
    Kms, KmsConfig, MAX_DESCRIPTION_CHARS, MAX_PENDING_WINDOW_DAYS, MAX_PLAINTEXT, MIN_PENDING_WINDOW_DAYS,
};
pub use envelope::{CacheLimits, CacheStats, DataKeyCache, Envelope, EnvelopeEncryptor};
pub use error::{Error, ErrorCode, Result};
pub use id::{AliasName, KeyId, KeyRef, KeyVersionId};
pub use key::{
    AsymmetricAlgorithm, DataKeySpec, KeyMetadata, KeySpec, KeyState, KeyUsage, KeyVersion, Origin,
    ProtectionLevel, Tag,
};
pub use provider::{
    AliasInfo, AsymmetricEncrypted, Caller, CreateKey, DataKeyLength, Decrypted, Encrypted, GeneratedDataKey,
    KeyFilter, KeyProvider, KeySummary, ListKeys, Page, PageRequest, PublicKey, Signed, Verified,
};
pub use rotate::{Due, RotationPolicy, Rotator, RunReport};
pub use secret::{DataKey, SecretBytes};
pub use store::KeyStore;
pub use zeroize::Zeroizing;

/// Drives a future that never waits on I/O to completion on the current thread.
///
/// The local engine's futures complete without suspending, so synchronous programs (and doc examples)
/// can call them with this. For providers that do network I/O use a real runtime such as tokio: this
/// function parks the thread between polls and is woken by the future's waker, so it is correct for any
/// future, just not an efficient executor.
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake, Waker};
    struct ThreadWaker(std::thread::Thread);
    impl Wake for ThreadWaker {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    fn new_waker() -> Waker {
        Waker::from(Arc::new(ThreadWaker(std::thread::current())))
    }
    thread_local! {
        // One waker per thread, made once: the local engine's calls are short, so a fresh Arc per call
        // would be a noticeable part of their cost.
        static WAKER: Waker = new_waker();
    }
    let mut fut = std::pin::pin!(fut);
    let mut run = |waker: &Waker| {
        let mut cx = Context::from_waker(waker);
        loop {
            match fut.as_mut().poll(&mut cx) {
                Poll::Ready(v) => return v,
                Poll::Pending => std::thread::park(),
            }
        }
    };
    // Borrow the thread's waker rather than cloning it (no reference-count traffic per call). A nested
    // `block_on` borrows it too, which is fine: it is shared, never mutated. `try_with` fails only
    // while the thread's locals are being destroyed; then a fresh waker serves.
    match WAKER.try_with(|w| run(w)) {
        Ok(v) => v,
        Err(_) => run(&new_waker()),
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Context, Poll};

    /// Pending on its first poll; a second thread sets the flag and wakes the waker it was given.
    struct WokenFromElsewhere {
        ready: Arc<AtomicBool>,
        spawned: Option<std::thread::JoinHandle<()>>,
    }

    impl Future for WokenFromElsewhere {
        type Output = u32;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u32> {
            if self.ready.load(Ordering::Acquire) {
                if let Some(h) = self.spawned.take() {
                    h.join().expect("waker thread");
                }
                return Poll::Ready(7);
            }
            if self.spawned.is_none() {
                let (ready, waker) = (self.ready.clone(), cx.waker().clone());
                self.spawned = Some(std::thread::spawn(move || {
                    ready.store(true, Ordering::Release);
                    waker.wake();
                }));
            }
            Poll::Pending
        }
    }

    fn woken() -> WokenFromElsewhere {
        WokenFromElsewhere {
            ready: Arc::new(AtomicBool::new(false)),
            spawned: None,
        }
    }

    #[test]
    fn block_on_is_woken_by_another_thread_repeatedly_and_nested() {
        // The per-thread cached waker serves call after call, and a block_on inside a future.
        for _ in 0..20 {
            assert_eq!(super::block_on(woken()), 7);
        }
        assert_eq!(super::block_on(async { super::block_on(woken()) + 1 }), 8);
        // And on other threads, each with its own waker.
        let hs: Vec<_> = (0..4)
            .map(|_| std::thread::spawn(|| super::block_on(woken())))
            .collect();
        for h in hs {
            assert_eq!(h.join().expect("thread"), 7);
        }
    }
}
