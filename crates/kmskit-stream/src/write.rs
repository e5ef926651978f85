//! [`Encryptor`]: a `std::io::Write` that seals chunks as they fill.

use std::fmt;
use std::io::{self, Write};

use kmskit_core::crypto::TAG_LEN;
use kmskit_core::{Caller, DataKey, EncryptionContext, KeyProvider, KeyRef};
use zeroize::Zeroizing;

use crate::error::{Result, StreamError};
use crate::format::{Header, Session};
use crate::keys::Sealer;
use crate::options::Options;

/// Encrypts what is written to it into a stream on the inner writer.
///
/// The header is written when the encryptor is created. A full chunk is sealed only when more data
/// follows, so the last chunk always carries the final flag. **Call [`Encryptor::finish`]**: without
/// it no final chunk is written and the stream will not decrypt (it reads as truncated).
pub struct Encryptor<W: Write> {
    inner: W,
    session: Session,
    buf: Zeroizing<Vec<u8>>,
    index: u64,
    poisoned: bool,
}

impl<W: Write> fmt::Debug for Encryptor<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Encryptor")
            .field("header", self.session.header())
            .field("chunks_written", &self.index)
            .field("buffered", &crate::error::Redacted(self.buf.len()))
            .finish_non_exhaustive()
    }
}

impl<W: Write> Encryptor<W> {
    /// An encryptor under an already generated data key and its wrapped form.
    ///
    /// # Errors
    /// As [`Sealer::new`], and I/O errors writing the header.
    pub fn new(
        inner: W,
        data_key: &DataKey,
        wrapped_key: &[u8],
        ctx: &EncryptionContext,
        opts: &Options,
    ) -> Result<Self> {
        Sealer::new(data_key, wrapped_key, ctx, opts)?.encryptor(inner)
    }

    /// An encryptor under a fresh data key from `provider.generate_data_key(key, ctx)`. Only the data
    /// key generation is async; the returned encryptor is a plain `Write`.
    ///
    /// # Errors
    /// [`StreamError::Kms`] when the provider refuses; I/O errors writing the header.
    pub async fn with_provider<P: KeyProvider + ?Sized>(
        inner: W,
        provider: &P,
        caller: &Caller,
        key: &KeyRef,
        ctx: &EncryptionContext,
        opts: &Options,
    ) -> Result<Self> {
        Sealer::generate(provider, caller, key, ctx, opts)
            .await?
            .encryptor(inner)
    }

    pub(crate) fn from_sealer(sealer: Sealer, mut inner: W) -> Result<Self> {
        let session = sealer.session;
        inner.write_all(&session.header().to_bytes())?;
        let cap = session.chunk_size() + TAG_LEN;
        Ok(Self {
            inner,
            session,
            buf: Zeroizing::new(Vec::with_capacity(cap)),
            index: 0,
            poisoned: false,
        })
    }

    /// The stream's header.
    pub fn header(&self) -> &Header {
        self.session.header()
    }

    fn seal_buffered(&mut self, last: bool) -> Result<()> {
        let tag = self.session.seal(self.index, last, &mut self.buf[..])?;
        self.buf.extend_from_slice(&tag);
        self.inner.write_all(&self.buf)?;
        self.buf.clear();
        self.index += 1;
        Ok(())
    }

    fn write_inner(&mut self, data: &[u8]) -> Result<usize> {
        if self.poisoned {
            return Err(StreamError::Closed);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let c = self.session.chunk_size();
        if self.buf.len() == c {
            if let Err(e) = self.seal_buffered(false) {
                self.poisoned = true;
                return Err(e);
            }
        }
        let n = (c - self.buf.len()).min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        Ok(n)
    }

    /// Seals the final chunk, flushes and returns the inner writer.
    ///
    /// # Errors
    /// [`StreamError::Closed`] after an earlier write error; I/O errors.
    pub fn finish(mut self) -> Result<W> {
        if self.poisoned {
            return Err(StreamError::Closed);
        }
        self.seal_buffered(true)?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for Encryptor<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_inner(data).map_err(io::Error::from)
    }

    /// Flushes the inner writer. Buffered plaintext (less than a chunk) stays buffered: only
    /// [`Encryptor::finish`] can seal the last chunk.
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
