//! # kmskit
//!
//! A key management service your program embeds: keys with a lifecycle (enable, disable, scheduled
//! deletion with a window, deletion protection), aliases, Encrypt/Decrypt/ReEncrypt with an encryption
//! context, data keys for envelope encryption, and a versioned, self-describing ciphertext format — the
//! API of a cloud KMS (Alibaba Cloud KMS is the model), running in your process over the backend you
//! pick.
//!
//! This crate is the facade: it re-exports [`kmskit_core`] (the contracts and the engine) and the
//! backends. Backends beyond memory arrive as features.
//!
//! ```
//! use kmskit::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef, MemoryKms, MemoryKmsExt};
//!
//! # fn main() -> kmskit::Result<()> {
//! let kms = MemoryKms::new_memory();
//! let caller = Caller::local();
//! kmskit::block_on(async {
//!     let key = kms.create_key(&caller, CreateKey::new("my first key")).await?;
//!     let ctx = EncryptionContext::new();
//!     let enc = kms.encrypt(&caller, &KeyRef::Id(key.key_id), b"Hello KMS", &ctx).await?;
//!     println!("{}", enc.ciphertext_blob.to_base64());
//!     let dec = kms.decrypt(&caller, &enc.ciphertext_blob, &ctx).await?;
//!     assert_eq!(&dec.plaintext[..], b"Hello KMS");
//!     Ok(())
//! })
//! # }
//! ```
//!
//! ## Crate features
//! - `aws-lc` (default): the aws-lc-rs AEAD engine, the default engine when enabled.
//! - `rust-crypto` (default): the pure-Rust AEAD engine.
//! - `stream`: [`kmskit-stream`](https://docs.rs/kmskit-stream) as `kmskit::stream`.
//! - `file`: [`kmskit-file`](https://docs.rs/kmskit-file), the durable keystore directory: `FileKms`,
//!   `FileStore`, `RootKey`.
//! - `pkcs11`: [`kmskit-pkcs11`](https://docs.rs/kmskit-pkcs11), keys that never leave a hardware
//!   security module: `Pkcs11Kms`, `Pkcs11Store`, `Pkcs11Config`, `Pin` (and the whole crate as
//!   `kmskit::pkcs11`).
//! - `aliyun`: [`kmskit-remote`](https://docs.rs/kmskit-remote)'s `AliyunKms`, keys in Alibaba Cloud KMS
//!   or a kmskit-server (the whole crate as `kmskit::remote`).
//! - `aws`: [`kmskit-remote`](https://docs.rs/kmskit-remote)'s `AwsKms`, keys in AWS KMS through
//!   aws-sdk-kms.
//! - `scheduler`: `kmskit::rotate::Scheduler`, a tokio task performing due rotations and purges.
//! - `tracing`: `audit::TracingSink`, which sends audit events to `tracing`.
//!
//! Envelope encryption with a data-key cache is in [`envelope`]; key rotation (CreateKeyVersion,
//! rotation policies, version floors, ReEncrypt to the primary) in [`rotate`].

#![forbid(unsafe_code)]
#![deny(rustdoc::broken_intra_doc_links)]

pub use kmskit_core::*;
/// The file keystore (feature `file`): see [`kmskit_file`].
#[cfg(feature = "file")]
pub use kmskit_file::{
    Argon2Params, FileKms, FileKmsExt, FileStore, FileStoreBuilder, JournalStats, OpenReport, ROOT_KEY_ENV,
    RootKey, TornTail,
};
pub use kmskit_memory::{MemoryKms, MemoryKmsExt, MemoryStore};
/// The PKCS#11 backend (feature `pkcs11`): see [`kmskit_pkcs11`].
#[cfg(feature = "pkcs11")]
pub use kmskit_pkcs11 as pkcs11;
/// The PKCS#11 keystore (feature `pkcs11`): see [`kmskit_pkcs11`].
#[cfg(feature = "pkcs11")]
pub use kmskit_pkcs11::{Pin, Pkcs11Config, Pkcs11Kms, Pkcs11KmsExt, Pkcs11Store};
/// Stream encryption for files and large data (feature `stream`): see [`kmskit_stream`].
#[cfg(feature = "stream")]
pub use kmskit_stream as stream;

/// Remote providers (kmskit-remote): keys in a real KMS behind the same `KeyProvider` trait.
#[cfg(any(feature = "aws", feature = "aliyun"))]
pub use kmskit_remote as remote;

#[cfg(any(feature = "aws", feature = "aliyun"))]
pub use kmskit_remote::RetryPolicy;

#[cfg(feature = "aws")]
pub use kmskit_remote::{AwsKms, AwsKmsBuilder};

#[cfg(feature = "aliyun")]
pub use kmskit_remote::{AliyunKms, AliyunKmsBuilder};

/// The README's Rust examples, compiled and run as doctests so they cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
