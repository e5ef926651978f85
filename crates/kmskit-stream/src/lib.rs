//! # kmskit-stream
//!
//! Chunked, committing, seekable, parallel authenticated encryption for files and streams, whose
//! header carries a data key wrapped by any [`KeyProvider`](kmskit_core::KeyProvider).
//!
//! A stream is a header (magic, version, suite, chunk size, salt, wrapped data key, context digest,
//! key commitment, header MAC) followed by chunks sealed with AES-256-GCM or ChaCha20-Poly1305 under a
//! per-stream key derived with HKDF-SHA256. Chunk nonces are a counter plus a last-chunk flag (the
//! STREAM construction), so truncation, reordering, duplication, extension and header splicing all
//! fail with a typed [`StreamError`]. No plaintext of a chunk is released before its tag verified.
//! The exact layout is in `docs/stream-format.md`.
//!
//! ```
//! use std::io::{Read, Write};
//! use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef};
//! use kmskit_memory::{MemoryKms, MemoryKmsExt};
//! use kmskit_stream::{Decryptor, Encryptor, Options};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let kms = MemoryKms::new_memory();
//! let caller = Caller::local();
//! let ctx = EncryptionContext::from_pairs([("file", "report.csv")])?;
//! let opts = Options::default();
//! let key = kmskit_core::block_on(kms.create_key(&caller, CreateKey::new("files")))?;
//! let key = KeyRef::Id(key.key_id);
//!
//! // GenerateDataKey under the hood; the encryptor itself is a plain `std::io::Write`.
//! let mut enc = kmskit_core::block_on(Encryptor::with_provider(
//!     Vec::new(), &kms, &caller, &key, &ctx, &opts,
//! ))?;
//! enc.write_all(b"hello, chunked world")?;
//! let stream = enc.finish()?; // seals the final chunk
//!
//! // Decrypt: the header's wrapped key is unwrapped through the provider.
//! let mut dec = kmskit_core::block_on(Decryptor::with_provider(
//!     &stream[..], &kms, &caller, &ctx, &opts,
//! ))?;
//! let mut plaintext = Vec::new();
//! dec.read_to_end(&mut plaintext)?;
//! assert_eq!(plaintext, b"hello, chunked world");
//! # Ok(())
//! # }
//! ```
//!
//! ## What is here
//! - [`Encryptor`] / [`Decryptor`]: `std::io::Write` / `Read`, from a provider (async constructors
//!   that call GenerateDataKey / Decrypt, then return the sync type) or from an unwrapped data key.
//! - [`DecryptingReader`]: `Read + Seek`, and [`DecryptingReader::decrypt_range`], touching only the
//!   chunks needed.
//! - [`Sealer::encrypt_to_vec`], [`Opener::decrypt_body`], [`Sealer::encrypt_stream`],
//!   [`Opener::decrypt_stream`]: parallel over N worker threads (default: available cores), byte
//!   identical to the serial path, memory bounded by about two chunks per worker.
//! - [`rewrap_header`] / [`rewrap_in_place`]: move a stream to a new key version or another key by
//!   rewriting only the header.
//! - `tokio` feature: `AsyncEncryptor` and `AsyncDecryptor` over `AsyncWrite` / `AsyncRead`.
//!
//! ## Crate features
//! - `aws-lc` (default), `rust-crypto` (default): the AEAD engines of `kmskit-core` (identical bytes).
//! - `tokio`: async adapters.
//! - `hazmat`: a fixed salt for reproducible test vectors. Never in production.

#![forbid(unsafe_code)]
#![deny(rustdoc::broken_intra_doc_links)]
#![doc(test(attr(deny(warnings))))]

mod error;
mod format;
mod keys;
mod options;
mod parallel;
mod read;
mod rewrap;
#[cfg(feature = "tokio")]
mod tokio_io;
mod write;

pub use error::{Result, StreamError};
pub use format::{
    COMMITMENT_LEN, CONTEXT_DIGEST_LEN, DEFAULT_CHUNK_SIZE, Header, MAC_LEN, MAGIC, MAX_CHUNK_SIZE,
    MAX_CHUNKS, MAX_SLOT_LEN, MIN_CHUNK_SIZE, MIN_DATA_KEY_LEN, SALT_LEN, VERSION, context_digest,
};
pub use keys::{Opener, Sealer, decrypt_to_vec, encrypt_to_vec};
pub use options::{Options, default_workers};
pub use read::{DecryptingReader, Decryptor};
pub use rewrap::{rewrap_header, rewrap_in_place};
#[cfg(feature = "tokio")]
pub use tokio_io::{AsyncDecryptor, AsyncEncryptor, read_header_async};
pub use write::Encryptor;
