//! [`Sealer`] and [`Opener`]: a stream's derived keys and header, for writing and for reading.

use std::fmt;
use std::io::{Read, Seek, Write};

use kmskit_core::{Caller, DataKey, DataKeyLength, DataKeySpec, EncryptionContext, KeyProvider, KeyRef};

use crate::error::Result;
use crate::format::{Header, Session};
use crate::options::Options;
use crate::read::{DecryptingReader, Decryptor};
use crate::write::Encryptor;

/// The keys and header of one new stream. It is consumed by whatever writes the stream, so a salt (and
/// with it the nonce sequence) is never used twice.
pub struct Sealer {
    pub(crate) session: Session,
    pub(crate) workers: usize,
}

impl fmt::Debug for Sealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealer")
            .field("header", self.session.header())
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A new stream under an already generated data key; `wrapped_key` is the provider's blob for it
    /// (stored in the header).
    ///
    /// # Errors
    /// [`crate::StreamError::InvalidArgument`] for a data key under 16 bytes or a wrapped key outside
    /// 1–8192 bytes.
    pub fn new(
        data_key: &DataKey,
        wrapped_key: &[u8],
        ctx: &EncryptionContext,
        opts: &Options,
    ) -> Result<Sealer> {
        let session = Session::create(
            opts.engine,
            opts.algorithm,
            opts.chunk_log2,
            data_key,
            wrapped_key,
            ctx,
            opts.salt(),
        )?;
        Ok(Sealer {
            session,
            workers: opts.workers,
        })
    }

    /// A new stream under a fresh 32-byte data key from `provider.generate_data_key(key, ctx)`.
    ///
    /// # Errors
    /// [`crate::StreamError::Kms`] when the provider refuses.
    pub async fn generate<P: KeyProvider + ?Sized>(
        provider: &P,
        caller: &Caller,
        key: &KeyRef,
        ctx: &EncryptionContext,
        opts: &Options,
    ) -> Result<Sealer> {
        let dk = provider
            .generate_data_key(caller, key, DataKeyLength::Spec(DataKeySpec::Aes256), ctx)
            .await?;
        Sealer::new(&dk.plaintext, dk.ciphertext_blob.as_bytes(), ctx, opts)
    }

    /// The header this stream will carry.
    pub fn header(&self) -> &Header {
        self.session.header()
    }

    /// A streaming encryptor writing to `w` (the header is written immediately).
    ///
    /// # Errors
    /// [`crate::StreamError::Io`] when the header cannot be written.
    pub fn encryptor<W: Write>(self, w: W) -> Result<Encryptor<W>> {
        Encryptor::from_sealer(self, w)
    }

    /// Encrypts a whole buffer (header ‖ body) with the configured number of workers. The bytes are the
    /// same as the streaming encryptor's.
    ///
    /// # Errors
    /// [`crate::StreamError::LimitExceeded`] beyond 2^32 chunks.
    pub fn encrypt_to_vec(self, plaintext: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        crate::parallel::seal_into(&self.session, plaintext, self.workers, &mut out)?;
        Ok(out)
    }

    /// As [`Sealer::encrypt_to_vec`], into `out` (its contents are replaced; its allocation is reused,
    /// so encrypting many buffers through one `Vec` avoids allocating and zero-filling each time).
    ///
    /// # Errors
    /// [`crate::StreamError::LimitExceeded`] beyond 2^32 chunks.
    pub fn encrypt_into(self, plaintext: &[u8], out: &mut Vec<u8>) -> Result<()> {
        crate::parallel::seal_into(&self.session, plaintext, self.workers, out)
    }

    /// Encrypts everything `r` yields into `w` (header ‖ body) with the configured number of worker
    /// threads, memory bounded by about two chunks per worker. Returns the plaintext length.
    ///
    /// # Errors
    /// [`crate::StreamError::Io`] for I/O failures, [`crate::StreamError::LimitExceeded`] beyond 2^32
    /// chunks. On error `w` holds an incomplete stream that will not decrypt.
    pub fn encrypt_stream<R: Read + Send, W: Write>(self, r: R, w: W) -> Result<u64> {
        crate::parallel::seal_stream(&self.session, r, w, self.workers)
    }
}

/// The keys of an existing stream whose header has been authenticated; decrypts its body.
pub struct Opener {
    pub(crate) session: Session,
    pub(crate) workers: usize,
}

impl fmt::Debug for Opener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Opener")
            .field("header", self.session.header())
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// Checks `header` against the unwrapped `data_key` and `ctx`: the key commitment, then the header
    /// MAC, then the context digest.
    ///
    /// # Errors
    /// [`crate::StreamError::KeyCommitmentMismatch`], [`crate::StreamError::HeaderAuthFailed`],
    /// [`crate::StreamError::ContextMismatch`].
    pub fn new(
        header: Header,
        data_key: &DataKey,
        ctx: &EncryptionContext,
        opts: &Options,
    ) -> Result<Opener> {
        Ok(Opener {
            session: Session::open(opts.engine, header, data_key, ctx)?,
            workers: opts.workers,
        })
    }

    /// Unwraps the header's data key through `provider` and checks the header as [`Opener::new`] does.
    ///
    /// # Errors
    /// [`crate::StreamError::Kms`] when the provider refuses (wrong context, key disabled, …), and the
    /// errors of [`Opener::new`].
    pub async fn unwrap<P: KeyProvider + ?Sized>(
        header: Header,
        provider: &P,
        caller: &Caller,
        ctx: &EncryptionContext,
        opts: &Options,
    ) -> Result<Opener> {
        let key = header.unwrap_key(provider, caller, ctx).await?;
        Opener::new(header, &key, ctx, opts)
    }

    /// The authenticated header.
    pub fn header(&self) -> &Header {
        self.session.header()
    }

    /// A streaming decryptor over `r`, which must be positioned at the first body byte (right after
    /// the header).
    pub fn decryptor<R: Read>(self, r: R) -> Decryptor<R> {
        Decryptor::from_opener(self, r)
    }

    /// A random-access reader over `r`, which holds the whole stream (header at offset 0). Opening
    /// authenticates the final chunk, so the length it reports is the true plaintext length.
    ///
    /// # Errors
    /// [`crate::StreamError::Truncated`], [`crate::StreamError::ChunkAuthFailed`] and I/O errors.
    pub fn reader<R: Read + Seek>(self, r: R) -> Result<DecryptingReader<R>> {
        DecryptingReader::from_opener(self, r)
    }

    /// Decrypts a whole body (the bytes after the header) with the configured number of workers.
    ///
    /// # Errors
    /// Any integrity error; no plaintext is returned on error.
    pub fn decrypt_body(&self, body: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        crate::parallel::open_into(&self.session, body, self.workers, &mut out)?;
        Ok(out)
    }

    /// As [`Opener::decrypt_body`], into `out` (contents replaced, allocation reused). On error `out`
    /// is wiped and left empty.
    ///
    /// # Errors
    /// Any integrity error.
    pub fn decrypt_body_into(&self, body: &[u8], out: &mut Vec<u8>) -> Result<()> {
        crate::parallel::open_into(&self.session, body, self.workers, out)
    }

    /// Decrypts the body `r` yields (positioned right after the header) into `w` with the configured
    /// number of worker threads. Returns the plaintext length. Only authenticated chunks are written,
    /// in order; on error `w` may hold a verified prefix, which the caller should discard.
    ///
    /// # Errors
    /// Any integrity error, and I/O errors.
    pub fn decrypt_stream<R: Read + Send, W: Write>(&self, r: R, w: W) -> Result<u64> {
        crate::parallel::open_stream(&self.session, r, w, self.workers)
    }
}

/// Encrypts `plaintext` into a complete stream (header ‖ body) under an already generated data key.
///
/// # Errors
/// As [`Sealer::new`] and [`Sealer::encrypt_to_vec`].
pub fn encrypt_to_vec(
    plaintext: &[u8],
    data_key: &DataKey,
    wrapped_key: &[u8],
    ctx: &EncryptionContext,
    opts: &Options,
) -> Result<Vec<u8>> {
    Sealer::new(data_key, wrapped_key, ctx, opts)?.encrypt_to_vec(plaintext)
}

/// Decrypts a complete stream (header ‖ body) held in memory with an already unwrapped data key.
///
/// # Errors
/// Any header or integrity error of the stream; no plaintext is returned on error.
pub fn decrypt_to_vec(
    stream: &[u8],
    data_key: &DataKey,
    ctx: &EncryptionContext,
    opts: &Options,
) -> Result<Vec<u8>> {
    let (header, at) = Header::parse(stream)?;
    Opener::new(header, data_key, ctx, opts)?.decrypt_body(&stream[at..])
}
