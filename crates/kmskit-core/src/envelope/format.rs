//! The envelope byte format (version 1) and its key schedule. See `docs/envelope-format.md`.
//!
//! ```text
//! offset   size  field
//! 0        4     magic "KMSE"
//! 4        1     format version = 0x01
//! 5        1     algorithm id (1 = AES-256-GCM, 2 = ChaCha20-Poly1305)
//! 6        2     wrapped-key length w (u16, big endian), 1..=65535
//! 8        w     wrapped data key (the provider's GenerateDataKey ciphertext blob)
//! 8+w      32    key commitment
//! 40+w     12    nonce
//! 52+w     ≥16   ciphertext ‖ tag
//! ```
//!
//! Key schedule, with `DK` the data key (16 to 1024 bytes) and `a` the algorithm id byte:
//!
//! ```text
//! PRK        = HKDF-Extract(salt = "kmskit-envelope-v1", IKM = DK)           (SHA-256)
//! key        = HKDF-Expand(PRK, "kmskit-envelope-v1 key" ‖ a, 32)
//! CK         = HKDF-Expand(PRK, "kmskit-envelope-v1 commitment key" ‖ a, 32)
//! commitment = HMAC-SHA256(CK, header bytes 0 .. 8+w ‖ canonical(encryption context))
//! body       = AEAD-Seal(key, nonce, AAD = commitment, plaintext)
//! ```

use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::context::EncryptionContext;
use crate::crypto::{AeadEngine, AeadKey, Algorithm, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};

/// The envelope magic.
pub const MAGIC: &[u8; 4] = b"KMSE";
/// The envelope format version this build writes and reads.
pub const FORMAT_VERSION: u8 = 1;
/// Length of the key commitment.
pub const COMMITMENT_LEN: usize = 32;
/// The longest wrapped data key an envelope carries.
pub const MAX_WRAPPED_KEY_LEN: usize = u16::MAX as usize;
/// The most plaintext one envelope holds (the AES-GCM limit for one nonce, 2^36 − 32 bytes).
pub const MAX_PLAINTEXT_LEN: u64 = (1 << 36) - 32;
/// The shortest and longest data keys accepted.
pub const DATA_KEY_LEN_RANGE: std::ops::RangeInclusive<usize> = 16..=1024;

const SALT: &[u8] = b"kmskit-envelope-v1";
const INFO_KEY: &[u8] = b"kmskit-envelope-v1 key";
const INFO_COMMIT: &[u8] = b"kmskit-envelope-v1 commitment key";
/// Bytes of the header before the wrapped key.
const FIXED_PREFIX: usize = 8;

fn bad(reason: &str) -> Error {
    Error::invalid("Envelope", reason.to_owned())
}

/// An envelope's header fields and body, borrowing the bytes. Parsing checks every length and never
/// panics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedEnvelope<'a> {
    /// The AEAD algorithm.
    pub algorithm: Algorithm,
    /// The wrapped data key.
    pub wrapped_key: &'a [u8],
    /// The key commitment.
    pub commitment: &'a [u8; COMMITMENT_LEN],
    /// The nonce.
    pub nonce: [u8; NONCE_LEN],
    /// The whole header.
    pub header: &'a [u8],
    /// Ciphertext ‖ tag.
    pub sealed: &'a [u8],
}

impl<'a> ParsedEnvelope<'a> {
    /// Parses an envelope.
    ///
    /// # Errors
    /// `InvalidParameter` (`Envelope`) for a wrong magic, an unknown version or algorithm, a zero
    /// wrapped-key length, or bytes too short for the header and a tag.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let fixed = bytes
            .get(..FIXED_PREFIX)
            .ok_or_else(|| bad("too short for a header"))?;
        if &fixed[..4] != MAGIC {
            return Err(bad("not a kmskit envelope (bad magic)"));
        }
        if fixed[4] != FORMAT_VERSION {
            return Err(bad("unsupported envelope format version"));
        }
        let algorithm = Algorithm::from_id(fixed[5]).map_err(|_| bad("unknown algorithm id"))?;
        let w = usize::from(u16::from_be_bytes([fixed[6], fixed[7]]));
        if w == 0 {
            return Err(bad("empty wrapped key"));
        }
        let header_len = FIXED_PREFIX + w + COMMITMENT_LEN + NONCE_LEN;
        let header = bytes.get(..header_len).ok_or_else(|| bad("truncated header"))?;
        let sealed = &bytes[header_len..];
        if sealed.len() < TAG_LEN {
            return Err(bad("truncated body (shorter than a tag)"));
        }
        let wrapped_key = &header[FIXED_PREFIX..FIXED_PREFIX + w];
        let commitment: &[u8; COMMITMENT_LEN] = header[FIXED_PREFIX + w..FIXED_PREFIX + w + COMMITMENT_LEN]
            .try_into()
            .map_err(|_| bad("truncated header"))?;
        let nonce: [u8; NONCE_LEN] = header[header_len - NONCE_LEN..]
            .try_into()
            .map_err(|_| bad("truncated header"))?;
        Ok(Self {
            algorithm,
            wrapped_key,
            commitment,
            nonce,
            header,
            sealed,
        })
    }

    /// The header bytes the commitment covers (magic to wrapped key, `0 .. 8+w`).
    pub fn bound_header(&self) -> &'a [u8] {
        &self.header[..FIXED_PREFIX + self.wrapped_key.len()]
    }

    /// The plaintext length this envelope decrypts to.
    pub fn plaintext_len(&self) -> usize {
        self.sealed.len() - TAG_LEN
    }
}

/// The keys derived from one data key: the expanded AEAD key and the commitment key. Zeroized on drop
/// (the commitment key here, the AEAD key schedule by the engine); `Debug` shows only the algorithm.
pub(crate) struct EnvelopeKeys {
    pub(crate) aead: Box<dyn AeadKey>,
    commit_key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for EnvelopeKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvelopeKeys")
            .field("algorithm", &self.aead.algorithm())
            .finish_non_exhaustive()
    }
}

impl EnvelopeKeys {
    /// Derives the AEAD key and the commitment key from `data_key`.
    pub(crate) fn derive(engine: &dyn AeadEngine, alg: Algorithm, data_key: &[u8]) -> Result<Self> {
        if !DATA_KEY_LEN_RANGE.contains(&data_key.len()) {
            return Err(Error::invalid(
                "DataKey",
                format!(
                    "{} bytes; an envelope needs a data key of 16 to 1024 bytes",
                    data_key.len()
                ),
            ));
        }
        let hk = Hkdf::<Sha256>::new(Some(SALT), data_key);
        let a = [alg.id()];
        let mut key = Zeroizing::new([0u8; 32]);
        let mut commit_key = Zeroizing::new([0u8; 32]);
        hk.expand_multi_info(&[INFO_KEY, &a], &mut key[..])
            .map_err(|_| Error::Internal("HKDF output length".into()))?;
        hk.expand_multi_info(&[INFO_COMMIT, &a], &mut commit_key[..])
            .map_err(|_| Error::Internal("HKDF output length".into()))?;
        Ok(Self {
            aead: engine.new_key(alg, &key[..])?,
            commit_key,
        })
    }

    /// The commitment to this data key, the header bytes `0 .. 8+w` and the context.
    pub(crate) fn commitment(&self, bound_header: &[u8], ctx_canonical: &[u8]) -> [u8; COMMITMENT_LEN] {
        #[allow(clippy::expect_used)]
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.commit_key[..])
            .expect("HMAC accepts keys of any length");
        mac.update(bound_header);
        mac.update(ctx_canonical);
        mac.finalize().into_bytes().into()
    }
}

/// The header up to (not including) the nonce for `wrapped_key` and the context, and its commitment.
pub(crate) fn header_prefix(
    keys: &EnvelopeKeys,
    alg: Algorithm,
    wrapped_key: &[u8],
    ctx_canonical: &[u8],
) -> Result<(Vec<u8>, [u8; COMMITMENT_LEN])> {
    let w = u16::try_from(wrapped_key.len())
        .ok()
        .filter(|w| *w > 0)
        .ok_or_else(|| {
            Error::invalid(
                "CiphertextBlob",
                format!(
                    "a wrapped key of {} bytes does not fit an envelope (1 to 65535)",
                    wrapped_key.len()
                ),
            )
        })?;
    let mut out = Vec::with_capacity(FIXED_PREFIX + wrapped_key.len() + COMMITMENT_LEN);
    out.extend_from_slice(MAGIC);
    out.push(FORMAT_VERSION);
    out.push(alg.id());
    out.extend_from_slice(&w.to_be_bytes());
    out.extend_from_slice(wrapped_key);
    let commitment = keys.commitment(&out, ctx_canonical);
    out.extend_from_slice(&commitment);
    Ok((out, commitment))
}

/// Appends one envelope to `out`: `header_prefix` (from [`header_prefix`]), the nonce, then the
/// plaintext sealed with the commitment as its AAD. On error `out` is left as it was.
pub(crate) fn seal_append(
    keys: &EnvelopeKeys,
    header_prefix: &[u8],
    commitment: &[u8; COMMITMENT_LEN],
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
    out: &mut Vec<u8>,
) -> Result<()> {
    if plaintext.len() as u64 > MAX_PLAINTEXT_LEN {
        return Err(Error::invalid(
            "Plaintext",
            format!("more than {MAX_PLAINTEXT_LEN} bytes in one envelope"),
        ));
    }
    let start = out.len();
    out.reserve(header_prefix.len() + NONCE_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(header_prefix);
    out.extend_from_slice(nonce);
    let header_end = out.len();
    out.resize(header_end + plaintext.len() + TAG_LEN, 0);
    let r = keys
        .aead
        .seal_to(nonce, commitment, plaintext, &mut out[header_end..]);
    if r.is_err() {
        out.truncate(start);
    }
    r
}

/// The commitment `env` must carry to open under `keys` and the context.
pub(crate) fn expected_commitment(
    keys: &EnvelopeKeys,
    env: &ParsedEnvelope<'_>,
    ctx_canonical: &[u8],
) -> [u8; COMMITMENT_LEN] {
    keys.commitment(env.bound_header(), ctx_canonical)
}

/// Checks `env`'s commitment against `expected` (constant time), then opens it.
pub(crate) fn open_parsed(
    keys: &EnvelopeKeys,
    env: &ParsedEnvelope<'_>,
    expected: &[u8; COMMITMENT_LEN],
) -> Result<Zeroizing<Vec<u8>>> {
    if keys.aead.algorithm() != env.algorithm || !bool::from(expected.ct_eq(env.commitment)) {
        return Err(Error::DecryptFailed);
    }
    let mut out = Zeroizing::new(vec![0u8; env.plaintext_len()]);
    keys.aead
        .open_to(&env.nonce, env.commitment, env.sealed, &mut out)?;
    Ok(out)
}

/// Opens an envelope with a data key already in hand (no provider call): parse, derive, check the
/// commitment, authenticate and decrypt. The fuzz target and known-answer tests use it.
///
/// # Errors
/// `InvalidParameter` (`Envelope`) for a malformed envelope; [`Error::DecryptFailed`] when the key does
/// not commit to it or it does not authenticate under `ctx`.
pub fn open_with_data_key(
    engine: &dyn AeadEngine,
    data_key: &crate::DataKey,
    envelope: &[u8],
    ctx: &EncryptionContext,
) -> Result<Zeroizing<Vec<u8>>> {
    let env = ParsedEnvelope::parse(envelope)?;
    let keys = EnvelopeKeys::derive(engine, env.algorithm, data_key.expose_secret())?;
    let expected = expected_commitment(&keys, &env, &ctx.canonical());
    open_parsed(&keys, &env, &expected)
}

/// Seals with a caller-chosen data key, wrapped key and nonce: the known-answer vectors are made with
/// it. **Never reuse a nonce under one data key.**
///
/// # Errors
/// `InvalidParameter` for a data key or wrapped key of a bad length, or an oversized plaintext.
#[doc(hidden)]
pub fn seal_with_data_key_and_nonce(
    engine: &dyn AeadEngine,
    alg: Algorithm,
    data_key: &crate::DataKey,
    wrapped_key: &[u8],
    nonce: &[u8; NONCE_LEN],
    plaintext: &[u8],
    ctx: &EncryptionContext,
) -> Result<Vec<u8>> {
    let keys = EnvelopeKeys::derive(engine, alg, data_key.expose_secret())?;
    let (prefix, commitment) = header_prefix(&keys, alg, wrapped_key, &ctx.canonical())?;
    let mut out = Vec::new();
    seal_append(&keys, &prefix, &commitment, nonce, plaintext, &mut out)?;
    Ok(out)
}

/// Not public API: the body of the `envelope_open` fuzz target, here so a crash replays as a unit test.
///
/// Arbitrary bytes are opened as an envelope under a fixed data key (with one of a few contexts chosen
/// by the first byte): it must never panic, and must never succeed on bytes this function did not seal.
/// Then the bytes are sealed as a plaintext, must open again, and must be refused with one bit flipped
/// (a bit chosen by the input) or with another context.
///
/// # Panics
/// On a finding: an accepted forgery or a failed round trip.
#[doc(hidden)]
pub fn fuzz_envelope_open(data: &[u8]) {
    let engine = crate::crypto::default_engine();
    let key = crate::DataKey::new(crate::SecretBytes::from_slice(&[0x42; 32]));
    let sel = data.first().copied().unwrap_or(0);
    let ctx = match sel % 3 {
        0 => EncryptionContext::new(),
        1 => EncryptionContext::from_pairs([("k", "v")]).unwrap_or_default(),
        _ => EncryptionContext::from_pairs([("table", "users"), ("row", "7")]).unwrap_or_default(),
    };
    let body = data.get(1..).unwrap_or_default();
    // A random envelope under a fixed key opens only if it was forged, which HKDF/AEAD make infeasible.
    if let Ok(pt) = open_with_data_key(engine, &key, body, &ctx) {
        panic!(
            "fuzz: arbitrary bytes opened as an envelope ({} bytes of plaintext)",
            pt.len()
        );
    }
    let alg = if sel & 0x80 == 0 {
        Algorithm::Aes256Gcm
    } else {
        Algorithm::ChaCha20Poly1305
    };
    let nonce = [sel; NONCE_LEN];
    let wrapped = body
        .get(..body.len().min(40))
        .filter(|w| !w.is_empty())
        .unwrap_or(b"w");
    let Ok(env) = seal_with_data_key_and_nonce(engine, alg, &key, wrapped, &nonce, body, &ctx) else {
        panic!("fuzz: sealing {} bytes failed", body.len());
    };
    match open_with_data_key(engine, &key, &env, &ctx) {
        Ok(pt) if pt[..] == *body => {}
        _ => panic!("fuzz: round trip failed"),
    }
    let bit = data
        .iter()
        .fold(0usize, |a, b| a.wrapping_mul(31).wrapping_add(usize::from(*b)))
        % (env.len() * 8);
    let mut bad = env.clone();
    bad[bit / 8] ^= 1 << (bit % 8);
    if open_with_data_key(engine, &key, &bad, &ctx).is_ok() {
        panic!("fuzz: bit {bit} flipped was accepted");
    }
    let other = EncryptionContext::from_pairs([("other", "context")]).unwrap_or_default();
    if open_with_data_key(engine, &key, &env, &other).is_ok() {
        panic!("fuzz: opened under another context");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn fuzz_body_on_simple_inputs() {
        for input in [
            &b""[..],
            b"\x00",
            b"\x01KMSE\x01\x01\x00\x01",
            b"\x82hello world",
            &[0xFF; 300],
        ] {
            super::fuzz_envelope_open(input);
        }
    }
}
