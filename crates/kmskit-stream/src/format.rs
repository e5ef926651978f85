//! The byte layout, key schedule and chunk primitives (see `docs/stream-format.md`).

use std::fmt;
use std::io::Read;

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use kmskit_core::crypto::{AeadEngine, AeadKey, Algorithm, NONCE_LEN, TAG_LEN};
use kmskit_core::{Caller, CiphertextBlob, DataKey, EncryptionContext, KeyProvider};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::error::{Result, StreamError};

/// The stream magic, `KMKS`.
pub const MAGIC: [u8; 4] = *b"KMKS";
/// The format version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Length of the random per-stream salt.
pub const SALT_LEN: usize = 32;
/// Length of the encryption context digest (SHA-256).
pub const CONTEXT_DIGEST_LEN: usize = 32;
/// Length of the key commitment.
pub const COMMITMENT_LEN: usize = 32;
/// Length of the header MAC (HMAC-SHA256).
pub const MAC_LEN: usize = 32;
/// Smallest chunk size (4 KiB), as a power of two.
pub(crate) const MIN_CHUNK_LOG2: u8 = 12;
/// Largest chunk size (16 MiB), as a power of two.
pub(crate) const MAX_CHUNK_LOG2: u8 = 24;
/// Default chunk size (64 KiB), as a power of two.
pub(crate) const DEFAULT_CHUNK_LOG2: u8 = 16;
/// Smallest chunk size in bytes (4 KiB).
pub const MIN_CHUNK_SIZE: usize = 1 << MIN_CHUNK_LOG2;
/// Largest chunk size in bytes (16 MiB).
pub const MAX_CHUNK_SIZE: usize = 1 << MAX_CHUNK_LOG2;
/// Default chunk size in bytes (64 KiB).
pub const DEFAULT_CHUNK_SIZE: usize = 1 << DEFAULT_CHUNK_LOG2;
/// Largest wrapped-key slot (and wrapped key) in bytes.
pub const MAX_SLOT_LEN: usize = 8192;
/// Most chunks in one stream (the counter must stay below 2^32).
pub const MAX_CHUNKS: u64 = 1 << 32;
/// Shortest accepted data key in bytes.
pub const MIN_DATA_KEY_LEN: usize = 16;

/// Bytes of the fixed part before the wrapped key: magic .. wrapped key length.
pub(crate) const FIXED_LEN: usize = 108;
/// Bytes of the immutable part (magic .. commitment) that every chunk's AAD binds.
pub(crate) const IMMUTABLE_LEN: usize = 104;
/// Granularity of the wrapped-key slot; the writer leaves at least this much headroom for rewrap.
const SLOT_ROUND: usize = 64;

const LABEL_CHUNK: &[u8] = b"kmskit-stream/v1 chunk key";
const LABEL_MAC: &[u8] = b"kmskit-stream/v1 header mac key";
const LABEL_COMMIT: &[u8] = b"kmskit-stream/v1 key commitment";
const LABEL_CONTEXT: &[u8] = b"kmskit-stream/v1 context";

/// SHA-256 over the domain label and the canonical encryption context.
pub fn context_digest(ctx: &EncryptionContext) -> [u8; CONTEXT_DIGEST_LEN] {
    let mut h = Sha256::new();
    h.update(LABEL_CONTEXT);
    h.update(ctx.canonical());
    h.finalize().into()
}

/// The slot size the writer reserves for a wrapped key of `len` bytes: `len` plus at least 64 bytes of
/// headroom, rounded up to 64, at most [`MAX_SLOT_LEN`].
pub(crate) fn slot_for(len: usize) -> usize {
    let want = (len + SLOT_ROUND).div_ceil(SLOT_ROUND) * SLOT_ROUND;
    want.min(MAX_SLOT_LEN).max(len)
}

/// A parsed stream header. Parsing checks the structure only; authenticity is checked once the data
/// key is known (commitment, then MAC, then context).
#[derive(Clone, PartialEq, Eq)]
pub struct Header {
    algorithm: Algorithm,
    chunk_log2: u8,
    salt: [u8; SALT_LEN],
    context_digest: [u8; CONTEXT_DIGEST_LEN],
    commitment: [u8; COMMITMENT_LEN],
    slot_len: usize,
    wrapped_key: Vec<u8>,
    mac: [u8; MAC_LEN],
}

impl fmt::Debug for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Header")
            .field("algorithm", &self.algorithm)
            .field("chunk_size", &self.chunk_size())
            .field("slot_len", &self.slot_len)
            .field("wrapped_key_len", &self.wrapped_key.len())
            .finish_non_exhaustive()
    }
}

fn suite_from_id(id: u8) -> Result<Algorithm> {
    match id {
        1 => Ok(Algorithm::Aes256Gcm),
        2 => Ok(Algorithm::ChaCha20Poly1305),
        other => Err(StreamError::UnsupportedSuite(other)),
    }
}

fn arr<const N: usize>(b: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[..N]);
    a
}

impl Header {
    /// Parses the fixed 108-byte part and returns the header length it announces.
    pub(crate) fn parse_fixed(b: &[u8]) -> Result<(Algorithm, u8, usize, usize)> {
        if b.len() < FIXED_LEN {
            if b.len() >= 4 && b[..4] != MAGIC {
                return Err(StreamError::NotAStream);
            }
            return Err(StreamError::Truncated);
        }
        if b[..4] != MAGIC {
            return Err(StreamError::NotAStream);
        }
        if b[4] != VERSION {
            return Err(StreamError::UnsupportedVersion(b[4]));
        }
        let algorithm = suite_from_id(b[5])?;
        let log2 = b[6];
        if !(MIN_CHUNK_LOG2..=MAX_CHUNK_LOG2).contains(&log2) {
            return Err(StreamError::BadHeader("chunk size out of range"));
        }
        if b[7] != 0 {
            return Err(StreamError::BadHeader("reserved flags set"));
        }
        let slot = u16::from_be_bytes([b[104], b[105]]) as usize;
        let n = u16::from_be_bytes([b[106], b[107]]) as usize;
        if slot > MAX_SLOT_LEN {
            return Err(StreamError::BadHeader("wrapped key slot too large"));
        }
        if n == 0 || n > slot {
            return Err(StreamError::BadHeader("wrapped key length out of range"));
        }
        Ok((algorithm, log2, slot, n))
    }

    /// Parses a header from the start of `bytes` and returns it with its encoded length (where the
    /// body starts).
    ///
    /// # Errors
    /// [`StreamError::NotAStream`], [`StreamError::UnsupportedVersion`],
    /// [`StreamError::UnsupportedSuite`], [`StreamError::BadHeader`], or [`StreamError::Truncated`]
    /// when `bytes` is shorter than the header.
    pub fn parse(bytes: &[u8]) -> Result<(Header, usize)> {
        let (algorithm, chunk_log2, slot_len, n) = Self::parse_fixed(bytes)?;
        let total = FIXED_LEN + slot_len + MAC_LEN;
        if bytes.len() < total {
            return Err(StreamError::Truncated);
        }
        let slot = &bytes[FIXED_LEN..FIXED_LEN + slot_len];
        if slot[n..].iter().any(|&x| x != 0) {
            return Err(StreamError::BadHeader("non-zero wrapped key padding"));
        }
        let h = Header {
            algorithm,
            chunk_log2,
            salt: arr(&bytes[8..40]),
            context_digest: arr(&bytes[40..72]),
            commitment: arr(&bytes[72..104]),
            slot_len,
            wrapped_key: slot[..n].to_vec(),
            mac: arr(&bytes[FIXED_LEN + slot_len..total]),
        };
        Ok((h, total))
    }

    /// Reads exactly one header from `r`, leaving `r` at the first body byte.
    ///
    /// # Errors
    /// As [`Header::parse`]; [`StreamError::Io`] for read failures.
    pub fn read_from<R: Read + ?Sized>(r: &mut R) -> Result<Header> {
        let mut buf = vec![0u8; FIXED_LEN];
        let got = read_full(r, &mut buf)?;
        buf.truncate(got);
        Self::parse_fixed(&buf)?;
        let slot = u16::from_be_bytes([buf[104], buf[105]]) as usize;
        let total = FIXED_LEN + slot + MAC_LEN;
        buf.resize(total, 0);
        let got = read_full(r, &mut buf[FIXED_LEN..])?;
        if got < total - FIXED_LEN {
            return Err(StreamError::Truncated);
        }
        Ok(Self::parse(&buf)?.0)
    }

    /// The encoded header, MAC included.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = self.mac_input();
        v.extend_from_slice(&self.mac);
        v
    }

    /// The encoded length of the header (the body's offset).
    pub fn len(&self) -> usize {
        FIXED_LEN + self.slot_len + MAC_LEN
    }

    /// Always false: a header is never empty.
    pub fn is_empty(&self) -> bool {
        false
    }

    fn prefix(&self) -> [u8; 8] {
        let mut p = [0u8; 8];
        p[..4].copy_from_slice(&MAGIC);
        p[4] = VERSION;
        p[5] = self.algorithm.id();
        p[6] = self.chunk_log2;
        p[7] = 0;
        p
    }

    /// The immutable part that every chunk's AAD binds: magic .. commitment.
    pub(crate) fn immutable(&self) -> [u8; IMMUTABLE_LEN] {
        let mut a = [0u8; IMMUTABLE_LEN];
        a[..8].copy_from_slice(&self.prefix());
        a[8..40].copy_from_slice(&self.salt);
        a[40..72].copy_from_slice(&self.context_digest);
        a[72..104].copy_from_slice(&self.commitment);
        a
    }

    fn mac_input(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        v.extend_from_slice(&self.immutable());
        v.extend_from_slice(&(self.slot_len as u16).to_be_bytes());
        v.extend_from_slice(&(self.wrapped_key.len() as u16).to_be_bytes());
        v.extend_from_slice(&self.wrapped_key);
        v.resize(FIXED_LEN + self.slot_len, 0);
        v
    }

    /// The AEAD suite.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The chunk size in bytes (plaintext per chunk).
    pub fn chunk_size(&self) -> usize {
        1 << self.chunk_log2
    }

    /// The wrapped data key, as the key provider returned it.
    pub fn wrapped_key(&self) -> &[u8] {
        &self.wrapped_key
    }

    /// The wrapped data key as a ciphertext blob.
    pub fn wrapped_blob(&self) -> CiphertextBlob {
        CiphertextBlob::from_bytes(self.wrapped_key.clone())
    }

    /// The size of the wrapped-key slot (wrapped key plus zero padding reserved for rewrap).
    pub fn slot_len(&self) -> usize {
        self.slot_len
    }

    /// The random per-stream salt.
    pub fn salt(&self) -> &[u8; SALT_LEN] {
        &self.salt
    }

    /// Whether `ctx` is the context this stream was written with (digest comparison; not an
    /// authenticity check on its own).
    pub fn context_matches(&self, ctx: &EncryptionContext) -> bool {
        bool::from(context_digest(ctx).ct_eq(&self.context_digest))
    }

    /// Unwraps the data key through `provider` (`decrypt_data_key`) with `ctx`.
    ///
    /// # Errors
    /// [`StreamError::Kms`] with the provider's error.
    pub async fn unwrap_key<P: KeyProvider + ?Sized>(
        &self,
        provider: &P,
        caller: &Caller,
        ctx: &EncryptionContext,
    ) -> Result<DataKey> {
        Ok(provider
            .decrypt_data_key(caller, &self.wrapped_blob(), ctx)
            .await?)
    }

    /// The plaintext length of a body of `body_len` bytes, if that length is well formed.
    pub(crate) fn plaintext_len(&self, body_len: u64) -> Result<u64> {
        let c = self.chunk_size() as u64;
        let full = c + TAG_LEN as u64;
        if body_len < TAG_LEN as u64 {
            return Err(StreamError::Truncated);
        }
        let n = body_len.div_ceil(full);
        let last = body_len - (n - 1) * full;
        if last < TAG_LEN as u64 {
            // A fragment too short to be a chunk: the stream was cut in a tag.
            return Err(StreamError::Truncated);
        }
        if n > MAX_CHUNKS {
            return Err(StreamError::LimitExceeded("more than 2^32 chunks"));
        }
        Ok(body_len - n * TAG_LEN as u64)
    }
}

/// The per-stream keys and parameters; one per stream.
pub(crate) struct Session {
    aead: Box<dyn AeadKey>,
    aad: [u8; IMMUTABLE_LEN],
    chunk_size: usize,
    header: Header,
    mac_key: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

struct Derived {
    chunk: Zeroizing<[u8; 32]>,
    mac: Zeroizing<[u8; 32]>,
    commitment: [u8; 32],
}

fn derive(data_key: &[u8], salt: &[u8; SALT_LEN], prefix: &[u8; 8]) -> Result<Derived> {
    if data_key.len() < MIN_DATA_KEY_LEN {
        return Err(StreamError::InvalidArgument(format!(
            "data key must be at least {MIN_DATA_KEY_LEN} bytes"
        )));
    }
    let hk = Hkdf::<Sha256>::new(Some(salt), data_key);
    let mut out = Derived {
        chunk: Zeroizing::new([0u8; 32]),
        mac: Zeroizing::new([0u8; 32]),
        commitment: [0u8; 32],
    };
    let expand = |label: &[u8], okm: &mut [u8]| {
        let mut info = Vec::with_capacity(label.len() + 8);
        info.extend_from_slice(label);
        info.extend_from_slice(prefix);
        hk.expand(&info, okm)
            .map_err(|_| StreamError::InvalidArgument("HKDF output length".into()))
    };
    expand(LABEL_CHUNK, &mut out.chunk[..])?;
    expand(LABEL_MAC, &mut out.mac[..])?;
    expand(LABEL_COMMIT, &mut out.commitment)?;
    Ok(out)
}

fn hmac(key: &[u8; 32], data: &[u8]) -> [u8; MAC_LEN] {
    // HMAC accepts keys of any length.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
    m.update(data);
    m.finalize().into_bytes().into()
}

/// The nonce of chunk `index`: an 11-byte big-endian counter, then the last-chunk flag.
pub(crate) fn nonce(index: u64, last: bool) -> [u8; NONCE_LEN] {
    let mut n = [0u8; NONCE_LEN];
    n[3..11].copy_from_slice(&index.to_be_bytes());
    n[11] = u8::from(last);
    n
}

impl Session {
    /// A new stream: derives keys from `data_key` and `salt` and builds the authenticated header.
    pub(crate) fn create(
        engine: &dyn AeadEngine,
        algorithm: Algorithm,
        chunk_log2: u8,
        data_key: &DataKey,
        wrapped_key: &[u8],
        ctx: &EncryptionContext,
        salt: [u8; SALT_LEN],
    ) -> Result<Session> {
        suite_from_id(algorithm.id())?;
        if !(MIN_CHUNK_LOG2..=MAX_CHUNK_LOG2).contains(&chunk_log2) {
            return Err(StreamError::InvalidArgument(
                "chunk size must be a power of two from 4 KiB to 16 MiB".into(),
            ));
        }
        if wrapped_key.is_empty() || wrapped_key.len() > MAX_SLOT_LEN {
            return Err(StreamError::InvalidArgument(format!(
                "wrapped key must be 1 to {MAX_SLOT_LEN} bytes"
            )));
        }
        let mut header = Header {
            algorithm,
            chunk_log2,
            salt,
            context_digest: context_digest(ctx),
            commitment: [0u8; 32],
            slot_len: slot_for(wrapped_key.len()),
            wrapped_key: wrapped_key.to_vec(),
            mac: [0u8; 32],
        };
        let d = derive(data_key.expose_secret(), &header.salt, &header.prefix())?;
        header.commitment = d.commitment;
        header.mac = hmac(&d.mac, &header.mac_input());
        let aead = engine.new_key(algorithm, &d.chunk[..])?;
        Ok(Session {
            aead,
            aad: header.immutable(),
            chunk_size: header.chunk_size(),
            header,
            mac_key: d.mac,
        })
    }

    /// Opens an existing stream's header with `data_key`: checks the key commitment, the header MAC
    /// and the context, in that order.
    pub(crate) fn open(
        engine: &dyn AeadEngine,
        header: Header,
        data_key: &DataKey,
        ctx: &EncryptionContext,
    ) -> Result<Session> {
        let d = derive(data_key.expose_secret(), &header.salt, &header.prefix())?;
        if !bool::from(d.commitment.ct_eq(&header.commitment)) {
            return Err(StreamError::KeyCommitmentMismatch);
        }
        let mac = hmac(&d.mac, &header.mac_input());
        if !bool::from(mac.ct_eq(&header.mac)) {
            return Err(StreamError::HeaderAuthFailed);
        }
        if !header.context_matches(ctx) {
            return Err(StreamError::ContextMismatch);
        }
        let aead = engine.new_key(header.algorithm, &d.chunk[..])?;
        Ok(Session {
            aead,
            aad: header.immutable(),
            chunk_size: header.chunk_size(),
            header,
            mac_key: d.mac,
        })
    }

    /// A copy of this session's header with another wrapped key, re-MACed. The slot grows only when the
    /// new key does not fit (the caller then has to rewrite the body's offset).
    pub(crate) fn rewrapped_header(&self, wrapped_key: &[u8]) -> Result<Header> {
        if wrapped_key.is_empty() || wrapped_key.len() > MAX_SLOT_LEN {
            return Err(StreamError::InvalidArgument(format!(
                "wrapped key must be 1 to {MAX_SLOT_LEN} bytes"
            )));
        }
        let mut h = self.header.clone();
        h.wrapped_key = wrapped_key.to_vec();
        if h.slot_len < wrapped_key.len() {
            h.slot_len = slot_for(wrapped_key.len());
        }
        h.mac = hmac(&self.mac_key, &h.mac_input());
        Ok(h)
    }

    pub(crate) fn header(&self) -> &Header {
        &self.header
    }

    pub(crate) fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Seals `buf` (one chunk's plaintext) in place and returns the tag.
    pub(crate) fn seal(&self, index: u64, last: bool, buf: &mut [u8]) -> Result<[u8; TAG_LEN]> {
        if index >= MAX_CHUNKS {
            return Err(StreamError::LimitExceeded("more than 2^32 chunks"));
        }
        Ok(self
            .aead
            .seal_in_place_detached(&nonce(index, last), &self.aad, buf)?)
    }

    /// Seals `pt` (one chunk's plaintext) into `out` (exactly `pt.len() + TAG_LEN` bytes) as
    /// ciphertext ‖ tag, in one pass over memory where the engine can.
    pub(crate) fn seal_to(&self, index: u64, last: bool, pt: &[u8], out: &mut [u8]) -> Result<()> {
        if index >= MAX_CHUNKS {
            return Err(StreamError::LimitExceeded("more than 2^32 chunks"));
        }
        Ok(self.aead.seal_to(&nonce(index, last), &self.aad, pt, out)?)
    }

    /// Opens `sealed` (chunk `index`'s ciphertext ‖ tag) into `out` (exactly `sealed.len() - TAG_LEN`
    /// bytes). When it fails, tells truncation and trailing data from tampering as
    /// [`open_diagnosed`](Self::open_diagnosed) does; the input is left intact, so that costs no copy.
    /// On failure `out` holds no plaintext.
    pub(crate) fn open_to_diagnosed(
        &self,
        index: u64,
        last: bool,
        sealed: &[u8],
        out: &mut [u8],
    ) -> Result<()> {
        if index >= MAX_CHUNKS {
            return Err(StreamError::LimitExceeded("more than 2^32 chunks"));
        }
        if self
            .aead
            .open_to(&nonce(index, last), &self.aad, sealed, out)
            .is_ok()
        {
            return Ok(());
        }
        if self
            .aead
            .open_to(&nonce(index, !last), &self.aad, sealed, out)
            .is_ok()
        {
            zeroize::Zeroize::zeroize(out);
            return Err(if last {
                StreamError::Truncated
            } else {
                StreamError::TrailingData
            });
        }
        Err(StreamError::ChunkAuthFailed { chunk: index })
    }

    /// Opens `buf` (ciphertext ‖ tag) in place; on failure `buf` holds no plaintext.
    pub(crate) fn open_chunk(&self, index: u64, last: bool, buf: &mut Vec<u8>) -> Result<()> {
        if index >= MAX_CHUNKS {
            return Err(StreamError::LimitExceeded("more than 2^32 chunks"));
        }
        self.aead
            .open_in_place(&nonce(index, last), &self.aad, buf)
            .map_err(|_| StreamError::ChunkAuthFailed { chunk: index })
    }

    /// Opens a chunk; when it fails, tells truncation (a non-final chunk where the final one was
    /// expected) or trailing data (a final chunk where more was expected) from tampering by trying the
    /// other flag on `retry`, a copy of the ciphertext.
    pub(crate) fn open_diagnosed(
        &self,
        index: u64,
        last: bool,
        buf: &mut Vec<u8>,
        retry: Option<&[u8]>,
    ) -> Result<()> {
        match self.open_chunk(index, last, buf) {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Some(copy) = retry {
                    let mut tmp = Zeroizing::new(copy.to_vec());
                    if self.open_chunk(index, !last, &mut tmp).is_ok() {
                        return Err(if last {
                            StreamError::Truncated
                        } else {
                            StreamError::TrailingData
                        });
                    }
                }
                Err(e)
            }
        }
    }
}

/// Reads until `buf` is full or the reader is at end of input; returns the bytes read.
pub(crate) fn read_full<R: Read + ?Sized>(r: &mut R, buf: &mut [u8]) -> Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(StreamError::from_io(e)),
        }
    }
    Ok(filled)
}

/// The body length of a plaintext of `pt_len` bytes at chunk size `c`.
pub(crate) fn body_len(pt_len: u64, c: u64) -> u64 {
    let n = pt_len.div_ceil(c).max(1);
    pt_len + n * TAG_LEN as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_layout() {
        let n = nonce(0x0102_0304_0506_0708, true);
        assert_eq!(n, [0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 1]);
        assert_eq!(nonce(0, false), [0u8; 12]);
    }

    #[test]
    fn slot_has_headroom() {
        assert_eq!(slot_for(1), 128);
        assert_eq!(slot_for(100), 192);
        assert_eq!(slot_for(MAX_SLOT_LEN), MAX_SLOT_LEN);
        assert!(slot_for(8000) >= 8000);
    }

    #[test]
    fn body_lengths() {
        assert_eq!(body_len(0, 4096), 16);
        assert_eq!(body_len(1, 4096), 17);
        assert_eq!(body_len(4096, 4096), 4112);
        assert_eq!(body_len(4097, 4096), 4097 + 32);
    }
}
