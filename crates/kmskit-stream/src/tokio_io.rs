//! tokio adapters (feature `tokio`): [`AsyncEncryptor`] over `AsyncWrite`, [`AsyncDecryptor`] over
//! `AsyncRead`. Same bytes, same checks as the sync types; the chunk crypto runs inline (a chunk is
//! microseconds of work).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use kmskit_core::crypto::TAG_LEN;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use zeroize::Zeroizing;

use crate::error::{Redacted, Result, StreamError};
use crate::format::{FIXED_LEN, Header, MAC_LEN, Session};
use crate::keys::{Opener, Sealer};

/// Encrypts what is written to it into a stream on an `AsyncWrite`. Call `shutdown()` (e.g.
/// `AsyncWriteExt::shutdown`) to seal the final chunk; without it the stream reads as truncated.
pub struct AsyncEncryptor<W> {
    inner: W,
    session: Session,
    buf: Zeroizing<Vec<u8>>,
    out: Zeroizing<Vec<u8>>,
    out_pos: usize,
    index: u64,
    final_sealed: bool,
}

impl<W> fmt::Debug for AsyncEncryptor<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncEncryptor")
            .field("header", self.session.header())
            .field("chunks_written", &self.index)
            .field("buffered", &Redacted(self.buf.len()))
            .finish_non_exhaustive()
    }
}

impl<W: AsyncWrite + Unpin> AsyncEncryptor<W> {
    /// An encryptor for `sealer`'s stream on `inner`; the header goes out with the first write or
    /// flush.
    pub fn new(sealer: Sealer, inner: W) -> Self {
        let session = sealer.session;
        let cap = session.chunk_size() + TAG_LEN;
        let out = Zeroizing::new(session.header().to_bytes());
        Self {
            inner,
            session,
            buf: Zeroizing::new(Vec::with_capacity(cap)),
            out,
            out_pos: 0,
            index: 0,
            final_sealed: false,
        }
    }

    /// Returns the inner writer (after `shutdown`, a complete stream).
    pub fn into_inner(self) -> W {
        self.inner
    }

    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.out_pos < self.out.len() {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &self.out[self.out_pos..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        Poll::Ready(Ok(()))
    }

    fn seal(&mut self, last: bool) -> Result<()> {
        let tag = self.session.seal(self.index, last, &mut self.buf[..])?;
        self.buf.extend_from_slice(&tag);
        std::mem::swap(&mut self.buf, &mut self.out);
        self.buf.clear();
        self.out_pos = 0;
        self.index += 1;
        Ok(())
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for AsyncEncryptor<W> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.final_sealed {
            return Poll::Ready(Err(StreamError::Closed.into()));
        }
        ready!(this.poll_drain(cx))?;
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let c = this.session.chunk_size();
        if this.buf.len() == c {
            this.seal(false)?;
        }
        let n = (c - this.buf.len()).min(data.len());
        this.buf.extend_from_slice(&data[..n]);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        if !this.final_sealed {
            this.seal(true)?;
            this.final_sealed = true;
            ready!(this.poll_drain(cx))?;
        }
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

/// Decrypts a stream body from an `AsyncRead` (positioned right after the header; see
/// [`read_header_async`]), releasing each chunk only after it authenticated.
pub struct AsyncDecryptor<R> {
    inner: R,
    session: Session,
    buf: Zeroizing<Vec<u8>>,
    filled: usize,
    filling: bool,
    eof: bool,
    pos: usize,
    end: usize,
    index: u64,
    lookahead: Option<u8>,
    done: bool,
    poisoned: bool,
}

impl<R> fmt::Debug for AsyncDecryptor<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncDecryptor")
            .field("header", self.session.header())
            .field("chunk", &self.index)
            .field("buffered", &Redacted(self.end - self.pos))
            .finish_non_exhaustive()
    }
}

impl<R: AsyncRead + Unpin> AsyncDecryptor<R> {
    /// A decryptor for `opener`'s stream whose body `inner` yields.
    pub fn new(opener: Opener, inner: R) -> Self {
        let cap = opener.session.chunk_size() + TAG_LEN;
        Self {
            inner,
            session: opener.session,
            buf: Zeroizing::new(Vec::with_capacity(cap)),
            filled: 0,
            filling: false,
            eof: false,
            pos: 0,
            end: 0,
            index: 0,
            lookahead: None,
            done: false,
            poisoned: false,
        }
    }

    /// Returns the inner reader.
    pub fn into_inner(self) -> R {
        self.inner
    }

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let cap = self.session.chunk_size() + TAG_LEN;
        if !self.filling {
            self.buf.resize(cap, 0);
            self.filled = 0;
            self.eof = false;
            if let Some(b) = self.lookahead.take() {
                self.buf[0] = b;
                self.filled = 1;
            }
            self.filling = true;
        }
        while self.filled < cap && !self.eof {
            let mut rb = ReadBuf::new(&mut self.buf[self.filled..cap]);
            ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb)).map_err(StreamError::from_io)?;
            let n = rb.filled().len();
            if n == 0 {
                self.eof = true;
            }
            self.filled += n;
        }
        let last = if self.eof {
            true
        } else {
            let mut one = [0u8; 1];
            let mut rb = ReadBuf::new(&mut one);
            ready!(Pin::new(&mut self.inner).poll_read(cx, &mut rb)).map_err(StreamError::from_io)?;
            if rb.filled().is_empty() {
                true
            } else {
                self.lookahead = Some(one[0]);
                false
            }
        };
        self.filling = false;
        let filled = self.filled;
        self.buf.truncate(filled);
        if last && filled < TAG_LEN {
            return Poll::Ready(Err(StreamError::Truncated));
        }
        let retry = (last && filled == cap).then(|| Zeroizing::new(self.buf.to_vec()));
        self.session
            .open_diagnosed(self.index, last, &mut self.buf, retry.as_deref().map(|v| &v[..]))?;
        self.index += 1;
        self.pos = 0;
        self.end = self.buf.len();
        self.done = last;
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for AsyncDecryptor<R> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, out: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.poisoned {
                return Poll::Ready(Err(StreamError::Closed.into()));
            }
            if this.pos < this.end {
                let n = (this.end - this.pos).min(out.remaining());
                out.put_slice(&this.buf[this.pos..this.pos + n]);
                this.pos += n;
                return Poll::Ready(Ok(()));
            }
            if this.done || out.remaining() == 0 {
                return Poll::Ready(Ok(()));
            }
            if let Err(e) = ready!(this.poll_chunk(cx)) {
                this.poisoned = true;
                this.buf.clear();
                this.pos = 0;
                this.end = 0;
                return Poll::Ready(Err(e.into()));
            }
        }
    }
}

/// Reads one stream header from an `AsyncRead`, leaving it at the first body byte.
///
/// # Errors
/// As [`Header::parse`]; [`StreamError::Io`] for read failures.
pub async fn read_header_async<R: AsyncRead + Unpin + ?Sized>(r: &mut R) -> Result<Header> {
    async fn fill<R: AsyncRead + Unpin + ?Sized>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            let n = r.read(&mut buf[filled..]).await.map_err(StreamError::from_io)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(filled)
    }
    let mut buf = vec![0u8; FIXED_LEN];
    let got = fill(r, &mut buf).await?;
    buf.truncate(got);
    Header::parse_fixed(&buf)?;
    let slot = u16::from_be_bytes([buf[104], buf[105]]) as usize;
    let total = FIXED_LEN + slot + MAC_LEN;
    buf.resize(total, 0);
    if fill(r, &mut buf[FIXED_LEN..]).await? < total - FIXED_LEN {
        return Err(StreamError::Truncated);
    }
    Ok(Header::parse(&buf)?.0)
}
