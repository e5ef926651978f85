//! [`Decryptor`] (sequential `Read`) and [`DecryptingReader`] (`Read + Seek`, range reads).

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom};

use kmskit_core::crypto::TAG_LEN;
use kmskit_core::{Caller, DataKey, EncryptionContext, KeyProvider};
use zeroize::Zeroizing;

use crate::error::{Redacted, Result, StreamError};
use crate::format::{Header, Session, read_full};
use crate::keys::Opener;
use crate::options::Options;

/// Decrypts a stream from a `Read`, releasing each chunk's plaintext only after it authenticated.
///
/// Reaching the end of the input without a valid final chunk is [`StreamError::Truncated`]. Errors
/// come out of `read` as `io::Error`s carrying the [`StreamError`] (recover it with
/// [`StreamError::from_io`]); after an error every further read fails.
pub struct Decryptor<R: Read> {
    inner: R,
    session: Session,
    /// The current chunk's ciphertext ‖ tag, as read (kept intact: a failed open can be diagnosed).
    ct: Vec<u8>,
    /// The current chunk's plaintext, released only after it authenticated.
    buf: Zeroizing<Vec<u8>>,
    pos: usize,
    end: usize,
    index: u64,
    lookahead: Option<u8>,
    done: bool,
    poisoned: bool,
}

impl<R: Read> fmt::Debug for Decryptor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Decryptor")
            .field("header", self.session.header())
            .field("chunk", &self.index)
            .field("buffered", &Redacted(self.end - self.pos))
            .finish_non_exhaustive()
    }
}

impl<R: Read> Decryptor<R> {
    /// Reads the header from `inner` and opens it with an already unwrapped data key.
    ///
    /// # Errors
    /// Header parse errors, and those of [`Opener::new`].
    pub fn new(mut inner: R, data_key: &DataKey, ctx: &EncryptionContext, opts: &Options) -> Result<Self> {
        let header = Header::read_from(&mut inner)?;
        Ok(Opener::new(header, data_key, ctx, opts)?.decryptor(inner))
    }

    /// Reads the header from `inner`, unwraps its data key through `provider` and opens it. The header
    /// read is a (short) blocking read on `inner`; the returned decryptor is a plain `Read`.
    ///
    /// # Errors
    /// Header parse errors, [`StreamError::Kms`], and those of [`Opener::new`].
    pub async fn with_provider<P: KeyProvider + ?Sized>(
        mut inner: R,
        provider: &P,
        caller: &Caller,
        ctx: &EncryptionContext,
        opts: &Options,
    ) -> Result<Self> {
        let header = Header::read_from(&mut inner)?;
        Ok(Opener::unwrap(header, provider, caller, ctx, opts)
            .await?
            .decryptor(inner))
    }

    pub(crate) fn from_opener(opener: Opener, inner: R) -> Self {
        let cap = opener.session.chunk_size() + TAG_LEN;
        Self {
            inner,
            session: opener.session,
            ct: Vec::with_capacity(cap),
            buf: Zeroizing::new(Vec::with_capacity(cap)),
            pos: 0,
            end: 0,
            index: 0,
            lookahead: None,
            done: false,
            poisoned: false,
        }
    }

    /// The authenticated header.
    pub fn header(&self) -> &Header {
        self.session.header()
    }

    /// Returns the inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn next_chunk(&mut self) -> Result<()> {
        let cap = self.session.chunk_size() + TAG_LEN;
        // Read one byte past a full chunk in the same call: whether more input follows decides the
        // chunk's final flag, and costs no extra read.
        self.ct.resize(cap + 1, 0);
        let mut filled = 0;
        if let Some(b) = self.lookahead.take() {
            self.ct[0] = b;
            filled = 1;
        }
        filled += read_full(&mut self.inner, &mut self.ct[filled..])?;
        let last = if filled > cap {
            self.lookahead = Some(self.ct[cap]);
            filled = cap;
            false
        } else {
            true
        };
        self.ct.truncate(filled);
        if last && filled < TAG_LEN {
            return Err(StreamError::Truncated);
        }
        // Opened out of place, so the ciphertext stays intact and a failure is diagnosed for free:
        // a full final-looking chunk that opens as non-final is truncation, and a chunk followed by
        // more input that opens as final is trailing data.
        self.buf.resize(filled - TAG_LEN, 0);
        self.session
            .open_to_diagnosed(self.index, last, &self.ct, &mut self.buf)?;
        self.index += 1;
        self.pos = 0;
        self.end = self.buf.len();
        self.done = last;
        Ok(())
    }

    fn read_inner(&mut self, out: &mut [u8]) -> Result<usize> {
        if self.poisoned {
            return Err(StreamError::Closed);
        }
        loop {
            if self.pos < self.end {
                let n = (self.end - self.pos).min(out.len());
                out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.done || out.is_empty() {
                return Ok(0);
            }
            if let Err(e) = self.next_chunk() {
                self.poisoned = true;
                self.buf.clear();
                self.pos = 0;
                self.end = 0;
                return Err(e);
            }
        }
    }
}

impl<R: Read> Read for Decryptor<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        self.read_inner(out).map_err(io::Error::from)
    }
}

/// Random access into a stream over a `Read + Seek` source: reads and decrypts only the chunks a
/// read touches. Opening authenticates the final chunk, so [`DecryptingReader::len`] is the true
/// plaintext length and truncation is found up front.
pub struct DecryptingReader<R: Read + Seek> {
    inner: R,
    session: Session,
    body_start: u64,
    body_len: u64,
    pt_len: u64,
    n_chunks: u64,
    pos: u64,
    cached: Option<u64>,
    buf: Zeroizing<Vec<u8>>,
}

impl<R: Read + Seek> fmt::Debug for DecryptingReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DecryptingReader")
            .field("header", self.session.header())
            .field("len", &self.pt_len)
            .field("pos", &self.pos)
            .finish_non_exhaustive()
    }
}

impl<R: Read + Seek> DecryptingReader<R> {
    /// Opens the stream held by `inner` (header at offset 0) with an already unwrapped data key.
    ///
    /// # Errors
    /// Header errors, those of [`Opener::new`], and integrity errors of the final chunk.
    pub fn new(mut inner: R, data_key: &DataKey, ctx: &EncryptionContext, opts: &Options) -> Result<Self> {
        inner.seek(SeekFrom::Start(0))?;
        let header = Header::read_from(&mut inner)?;
        Opener::new(header, data_key, ctx, opts)?.reader(inner)
    }

    /// Opens the stream held by `inner`, unwrapping its data key through `provider`.
    ///
    /// # Errors
    /// As [`DecryptingReader::new`], and [`StreamError::Kms`].
    pub async fn with_provider<P: KeyProvider + ?Sized>(
        mut inner: R,
        provider: &P,
        caller: &Caller,
        ctx: &EncryptionContext,
        opts: &Options,
    ) -> Result<Self> {
        inner.seek(SeekFrom::Start(0))?;
        let header = Header::read_from(&mut inner)?;
        Opener::unwrap(header, provider, caller, ctx, opts)
            .await?
            .reader(inner)
    }

    pub(crate) fn from_opener(opener: Opener, mut inner: R) -> Result<Self> {
        let session = opener.session;
        let body_start = session.header().len() as u64;
        let total = inner.seek(SeekFrom::End(0))?;
        let body_len = total.checked_sub(body_start).ok_or(StreamError::Truncated)?;
        let pt_len = session.header().plaintext_len(body_len)?;
        let full = (session.chunk_size() + TAG_LEN) as u64;
        let n_chunks = body_len.div_ceil(full);
        let mut r = Self {
            inner,
            session,
            body_start,
            body_len,
            pt_len,
            n_chunks,
            pos: 0,
            cached: None,
            buf: Zeroizing::new(Vec::new()),
        };
        r.load(n_chunks - 1)?;
        Ok(r)
    }

    /// The plaintext length (authenticated at open).
    pub fn len(&self) -> u64 {
        self.pt_len
    }

    /// Whether the plaintext is empty.
    pub fn is_empty(&self) -> bool {
        self.pt_len == 0
    }

    /// The authenticated header.
    pub fn header(&self) -> &Header {
        self.session.header()
    }

    /// Returns the inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn load(&mut self, j: u64) -> Result<()> {
        if self.cached == Some(j) {
            return Ok(());
        }
        self.cached = None;
        let full = (self.session.chunk_size() + TAG_LEN) as u64;
        let off = j * full;
        let len = (self.body_len - off).min(full) as usize;
        let last = j + 1 == self.n_chunks;
        self.inner.seek(SeekFrom::Start(self.body_start + off))?;
        self.buf.resize(len, 0);
        if read_full(&mut self.inner, &mut self.buf[..])? != len {
            // The source shrank since open.
            self.buf.clear();
            return Err(StreamError::Truncated);
        }
        let retry = (last && len as u64 == full).then(|| Zeroizing::new(self.buf.to_vec()));
        let res = self
            .session
            .open_diagnosed(j, last, &mut self.buf, retry.as_deref().map(|v| &v[..]));
        if let Err(e) = res {
            self.buf.clear();
            return Err(e);
        }
        self.cached = Some(j);
        Ok(())
    }

    /// Decrypts `len` plaintext bytes from `offset`, reading only the chunks they lie in.
    ///
    /// # Errors
    /// [`StreamError::InvalidArgument`] when the range exceeds the plaintext; integrity and I/O errors
    /// of the chunks read.
    pub fn decrypt_range(&mut self, offset: u64, len: usize) -> Result<Vec<u8>> {
        let end = offset
            .checked_add(len as u64)
            .filter(|&e| e <= self.pt_len)
            .ok_or_else(|| StreamError::InvalidArgument("range beyond the end of the plaintext".into()))?;
        let mut out = Vec::with_capacity(len);
        let c = self.session.chunk_size() as u64;
        let mut at = offset;
        while at < end {
            let j = at / c;
            self.load(j)?;
            let start = (at - j * c) as usize;
            let stop = ((end - j * c).min(c)) as usize;
            out.extend_from_slice(&self.buf[start..stop]);
            at = j * c + stop as u64;
        }
        Ok(out)
    }
}

impl<R: Read + Seek> Read for DecryptingReader<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.pt_len || out.is_empty() {
            return Ok(0);
        }
        let c = self.session.chunk_size() as u64;
        let j = self.pos / c;
        self.load(j).map_err(io::Error::from)?;
        let start = (self.pos - j * c) as usize;
        let n = (self.buf.len() - start).min(out.len());
        out[..n].copy_from_slice(&self.buf[start..start + n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read + Seek> Seek for DecryptingReader<R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let base: i128 = match to {
            SeekFrom::Start(o) => i128::from(o),
            SeekFrom::End(d) => i128::from(self.pt_len) + i128::from(d),
            SeekFrom::Current(d) => i128::from(self.pos) + i128::from(d),
        };
        let new = u64::try_from(base)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "seek to a negative position"))?;
        self.pos = new;
        Ok(new)
    }
}
