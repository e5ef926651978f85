//! The ciphertext blob: what Encrypt and GenerateDataKey return and Decrypt takes.
//!
//! Layout (format version 1), all lengths checked on parse:
//!
//! ```text
//! offset  size  field
//! 0       3     magic "KMK"
//! 3       1     format version = 0x01
//! 4       1     algorithm id (1 = AES-256-GCM, 2 = ChaCha20-Poly1305)
//! 5       1     key id length n (1..=128)
//! 6       n     key id (ASCII)
//! 6+n     1     version id length m (1..=128)
//! 7+n     m     version id (ASCII)
//! 7+n+m   12    nonce (random)
//! 19+n+m  ≥16   ciphertext ‖ tag
//! ```
//!
//! The header (bytes `0 .. 19+n+m`, nonce included) is authenticated: the AEAD's AAD is the header
//! followed by the canonical encryption context, so changing any byte of the blob, or presenting another
//! context, fails decryption. The text form is padded standard Base64.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::crypto::{Algorithm, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::id::{KeyId, KeyVersionId};

/// The blob magic.
pub const MAGIC: &[u8; 3] = b"KMK";
/// The current blob format version.
pub const FORMAT_VERSION: u8 = 1;
/// The largest blob accepted by [`ParsedBlob::parse`] (6 KiB of plaintext plus a generous header).
pub const MAX_BLOB_LEN: usize = 64 * 1024;

/// An opaque ciphertext blob. Every provider returns and accepts these; only the provider that made one
/// knows its layout (for local engines: the layout above).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CiphertextBlob(Vec<u8>);

impl CiphertextBlob {
    /// Wraps raw blob bytes.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    /// Decodes the padded standard Base64 text form.
    ///
    /// # Errors
    /// `InvalidParameter` (`CiphertextBlob`) for invalid Base64.
    pub fn from_base64(s: &str) -> Result<Self> {
        STANDARD
            .decode(s.trim())
            .map(Self)
            .map_err(|_| Error::invalid("CiphertextBlob", "not valid Base64"))
    }

    /// The padded standard Base64 text form.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(&self.0)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Consumes the blob into its raw bytes.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }
}

impl fmt::Debug for CiphertextBlob {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CiphertextBlob({} bytes)", self.0.len())
    }
}

impl fmt::Display for CiphertextBlob {
    /// The Base64 text form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// A parsed version-1 blob, borrowing the bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedBlob<'a> {
    /// The AEAD algorithm.
    pub algorithm: Algorithm,
    /// The key that sealed it.
    pub key_id: KeyId,
    /// The key version that sealed it.
    pub version_id: KeyVersionId,
    /// The nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The authenticated header bytes (AAD prefix).
    pub header: &'a [u8],
    /// Ciphertext ‖ tag.
    pub sealed: &'a [u8],
}

fn bad(reason: &str) -> Error {
    Error::invalid("CiphertextBlob", reason.to_owned())
}

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| bad(what))?;
        let s = self
            .buf
            .get(self.pos..end)
            .ok_or_else(|| bad(&format!("truncated in {what}")))?;
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self, what: &str) -> Result<u8> {
        Ok(self.take(1, what)?[0])
    }

    fn id(&mut self, what: &str) -> Result<&'a str> {
        let n = self.byte(what)? as usize;
        if n == 0 {
            return Err(bad(&format!("empty {what}")));
        }
        let raw = self.take(n, what)?;
        std::str::from_utf8(raw).map_err(|_| bad(&format!("{what} is not text")))
    }
}

impl<'a> ParsedBlob<'a> {
    /// Parses a blob, checking every length. Never panics.
    ///
    /// # Errors
    /// `InvalidParameter` (`CiphertextBlob`) for a foreign, truncated or malformed blob.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() > MAX_BLOB_LEN {
            return Err(bad("too long"));
        }
        let mut r = Reader { buf: bytes, pos: 0 };
        if r.take(MAGIC.len(), "magic")? != MAGIC {
            return Err(bad("not a kmskit ciphertext"));
        }
        let version = r.byte("version")?;
        if version != FORMAT_VERSION {
            return Err(bad(&format!("unsupported format version {version}")));
        }
        let algorithm = Algorithm::from_id(r.byte("algorithm")?)?;
        let key_id = KeyId::new(r.id("key id")?).map_err(|_| bad("malformed key id"))?;
        let version_id = KeyVersionId::new(r.id("version id")?).map_err(|_| bad("malformed version id"))?;
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(r.take(NONCE_LEN, "nonce")?);
        let header_len = r.pos;
        let sealed = &bytes[header_len..];
        if sealed.len() < TAG_LEN {
            return Err(bad("truncated: shorter than the tag"));
        }
        Ok(ParsedBlob {
            algorithm,
            key_id,
            version_id,
            nonce,
            header: &bytes[..header_len],
            sealed,
        })
    }
}

/// Writes a version-1 header into `out` and returns its length.
pub fn write_header(
    out: &mut Vec<u8>,
    algorithm: Algorithm,
    key_id: &KeyId,
    version_id: &KeyVersionId,
    nonce: &[u8; NONCE_LEN],
) -> usize {
    let start = out.len();
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(algorithm.id());
    // Ids are validated to at most 128 ASCII bytes, so their lengths fit in one byte.
    for id in [key_id.as_str(), version_id.as_str()] {
        out.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
        out.extend_from_slice(id.as_bytes());
    }
    out.extend_from_slice(nonce);
    out.len() - start
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<u8> {
        let mut v = Vec::new();
        let k = KeyId::new("key-1").unwrap();
        let ver = KeyVersionId::new("v-1").unwrap();
        let n = write_header(&mut v, Algorithm::Aes256Gcm, &k, &ver, &[5u8; 12]);
        assert_eq!(n, 3 + 1 + 1 + 1 + 5 + 1 + 3 + 12);
        v.extend_from_slice(&[0xEE; 20]);
        v
    }

    #[test]
    fn parses_what_it_writes() {
        let v = sample();
        let p = ParsedBlob::parse(&v).unwrap();
        assert_eq!(p.key_id.as_str(), "key-1");
        assert_eq!(p.version_id.as_str(), "v-1");
        assert_eq!(p.nonce, [5u8; 12]);
        assert_eq!(p.sealed.len(), 20);
        assert_eq!(p.algorithm, Algorithm::Aes256Gcm);
    }

    #[test]
    fn every_truncation_is_rejected_without_panic() {
        let v = sample();
        let header = ParsedBlob::parse(&v).unwrap().header.len();
        for n in 0..header + TAG_LEN {
            assert!(ParsedBlob::parse(&v[..n]).is_err(), "len {n}");
        }
    }

    #[test]
    fn base64_round_trip() {
        let b = CiphertextBlob::from_bytes(sample());
        assert_eq!(CiphertextBlob::from_base64(&b.to_base64()).unwrap(), b);
        assert!(CiphertextBlob::from_base64("not base64!").is_err());
        assert!(format!("{b:?}").contains("bytes"));
    }

    #[test]
    fn foreign_blobs() {
        let mut v = sample();
        v[3] = 2;
        assert!(ParsedBlob::parse(&v).is_err());
        let mut v = sample();
        v[4] = 9;
        assert!(ParsedBlob::parse(&v).is_err());
        let mut v = sample();
        v[5] = 0;
        assert!(ParsedBlob::parse(&v).is_err());
        let mut v = sample();
        v[6] = b' ';
        assert!(ParsedBlob::parse(&v).is_err());
    }
}
