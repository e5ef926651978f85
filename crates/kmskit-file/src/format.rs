//! The record framing shared by the header file and the journal segments.
//!
//! ```text
//! offset  size      field
//! 0       4         magic "KMSR"
//! 4       2         format version (u16 LE): 1, or 2 for a key record with a version floor
//! 6       1         kind (1 header, 2 segment, 3 material, 4 key, 5 alias, 6 alias deleted)
//! 7       1         flags (0)
//! 8       2         name length N (u16 LE, at most 1024)
//! 10      4         body length B (u32 LE, at most 16 MiB)
//! 14      N         name (UTF-8): the record's identity (key id, `key-id/version-id`, alias name)
//! 14+N    4         header CRC32C over bytes 0 .. 14+N
//! 18+N    B         body
//! 18+N+B  4         body CRC32C over the body
//! ```
//!
//! The header CRC makes the name trustworthy even when the body is damaged, so a damaged record can
//! still be reported by name, and lets a reader resynchronise after unreadable bytes by looking for the
//! next magic whose header CRC matches. Except in the header file, the body is
//! `nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16)` under a root-derived key with bytes `0 .. 14+N` as
//! associated data: the kind, the format version and the name (for material: key id and version id) are
//! bound to the sealed payload, so records cannot be edited, swapped or copied from another keystore.
//!
//! A wiped material record keeps its header and has its body and body CRC overwritten with zeros.

use kmskit_core::Result;
use kmskit_core::crypto::{AeadKey, NONCE_LEN, TAG_LEN};
use zeroize::Zeroizing;

/// Magic at the start of every record.
pub(crate) const MAGIC: [u8; 4] = *b"KMSR";
/// The format version this build writes (for every record but a key record with a version floor).
pub const FORMAT_VERSION: u16 = 1;
/// The format version of a key record that sets a minimum decryption version (a version floor).
///
/// The record body is the same JSON with one more field; the version is raised so a build that does
/// not know floors refuses that record (a load problem naming it) instead of silently ignoring the
/// floor, and can never rewrite the record without it.
pub const KEY_FLOOR_FORMAT_VERSION: u16 = 2;
/// Fixed part of the header before the name.
pub(crate) const FIXED_LEN: usize = 14;
/// Longest record name.
pub(crate) const MAX_NAME_LEN: usize = 1024;
/// Largest body.
pub(crate) const MAX_BODY_LEN: usize = 16 << 20;

/// Record kinds. The numbers are part of the format and never reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The keystore header (file `keystore.header`); JSON body, not sealed.
    Header = 1,
    /// First record of a journal segment: its generation.
    Segment = 2,
    /// Sealed key material of one key version.
    Material = 3,
    /// A key record (JSON).
    Key = 4,
    /// An alias record (JSON).
    Alias = 5,
    /// An alias was deleted (empty payload).
    AliasDeleted = 6,
}

impl Kind {
    pub(crate) fn from_u8(b: u8) -> Option<Kind> {
        Some(match b {
            1 => Kind::Header,
            2 => Kind::Segment,
            3 => Kind::Material,
            4 => Kind::Key,
            5 => Kind::Alias,
            6 => Kind::AliasDeleted,
            _ => return None,
        })
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Header => "header",
            Kind::Segment => "segment",
            Kind::Material => "material",
            Kind::Key => "key",
            Kind::Alias => "alias",
            Kind::AliasDeleted => "alias deletion",
        }
    }
}

fn crc(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// Total record length for a name and body length.
pub(crate) fn record_len(name_len: usize, body_len: usize) -> usize {
    FIXED_LEN + name_len + 4 + body_len + 4
}

fn write_header(out: &mut Vec<u8>, version: u16, kind: Kind, name: &str, body_len: usize) -> usize {
    debug_assert!(name.len() <= MAX_NAME_LEN && body_len <= MAX_BODY_LEN);
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&version.to_le_bytes());
    out.push(kind as u8);
    out.push(0);
    out.extend_from_slice(&(name.len() as u16).to_le_bytes());
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    out.extend_from_slice(name.as_bytes());
    let c = crc(&out[start..]);
    out.extend_from_slice(&c.to_le_bytes());
    start
}

/// Appends a record with a plain (unsealed) body.
pub(crate) fn encode_plain(out: &mut Vec<u8>, kind: Kind, name: &str, body: &[u8]) {
    encode_plain_version(out, FORMAT_VERSION, kind, name, body);
}

/// As [`encode_plain`] with an explicit format version (tests write other versions).
pub(crate) fn encode_plain_version(out: &mut Vec<u8>, version: u16, kind: Kind, name: &str, body: &[u8]) {
    write_header(out, version, kind, name, body.len());
    out.extend_from_slice(body);
    out.extend_from_slice(&crc(body).to_le_bytes());
}

/// Appends a record whose body is `payload` sealed under `key` with the header as associated data.
pub(crate) fn encode_sealed(
    out: &mut Vec<u8>,
    kind: Kind,
    name: &str,
    payload: &[u8],
    key: &dyn AeadKey,
) -> Result<()> {
    encode_sealed_version(out, FORMAT_VERSION, kind, name, payload, key)
}

/// As [`encode_sealed`] with an explicit format version (tests write other versions).
pub(crate) fn encode_sealed_version(
    out: &mut Vec<u8>,
    version: u16,
    kind: Kind,
    name: &str,
    payload: &[u8],
    key: &dyn AeadKey,
) -> Result<()> {
    let body_len = NONCE_LEN + payload.len() + TAG_LEN;
    let start = write_header(out, version, kind, name, body_len);
    let aad_end = start + FIXED_LEN + name.len();
    let body_start = out.len();
    let nonce: [u8; NONCE_LEN] = crate::root::random_array();
    out.extend_from_slice(&nonce);
    out.extend_from_slice(payload);
    let (head, body) = out.split_at_mut(body_start);
    let aad = &head[start..aad_end];
    let tag = match key.seal_in_place_detached(&nonce, aad, &mut body[NONCE_LEN..]) {
        Ok(t) => t,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    out.extend_from_slice(&tag);
    let c = crc(&out[body_start..]);
    out.extend_from_slice(&c.to_le_bytes());
    Ok(())
}

/// Opens a sealed body. `None` when it does not authenticate.
pub(crate) fn open_sealed(body: &[u8], aad: &[u8], key: &dyn AeadKey) -> Option<Zeroizing<Vec<u8>>> {
    if body.len() < NONCE_LEN + TAG_LEN {
        return None;
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&body[..NONCE_LEN]);
    let mut buf = Zeroizing::new(body[NONCE_LEN..].to_vec());
    key.open_in_place(&nonce, aad, &mut buf).ok()?;
    Some(buf)
}

/// What the first bytes of a buffer say about a record starting there.
#[derive(Debug)]
pub(crate) enum Header {
    /// More bytes are needed to decide (at least this many in total).
    NeedMore(usize),
    /// Not a record header (bad magic, limits or header CRC).
    Bad,
    /// A valid header.
    Ok(HeaderInfo),
}

/// A header whose CRC matched.
#[derive(Clone, Debug)]
pub(crate) struct HeaderInfo {
    pub(crate) version: u16,
    pub(crate) kind: u8,
    pub(crate) name_len: usize,
    pub(crate) body_len: usize,
}

impl HeaderInfo {
    /// Length of the bytes that are associated data (`0 .. 14+N`).
    pub(crate) fn aad_len(&self) -> usize {
        FIXED_LEN + self.name_len
    }

    /// Offset of the body within the record.
    pub(crate) fn body_start(&self) -> usize {
        FIXED_LEN + self.name_len + 4
    }

    /// Total record length.
    pub(crate) fn total_len(&self) -> usize {
        record_len(self.name_len, self.body_len)
    }
}

/// Checks a header at the start of `buf`.
pub(crate) fn parse_header(buf: &[u8]) -> Header {
    if buf.len() < FIXED_LEN {
        // Reject early on a wrong magic prefix so resynchronisation does not wait for more input.
        let n = buf.len().min(4);
        if buf[..n] != MAGIC[..n] {
            return Header::Bad;
        }
        return Header::NeedMore(FIXED_LEN);
    }
    if buf[..4] != MAGIC {
        return Header::Bad;
    }
    let version = u16::from_le_bytes([buf[4], buf[5]]);
    let kind = buf[6];
    let name_len = usize::from(u16::from_le_bytes([buf[8], buf[9]]));
    let body_len = u32::from_le_bytes([buf[10], buf[11], buf[12], buf[13]]) as usize;
    if name_len > MAX_NAME_LEN || body_len > MAX_BODY_LEN {
        return Header::Bad;
    }
    let head_end = FIXED_LEN + name_len;
    if buf.len() < head_end + 4 {
        return Header::NeedMore(head_end + 4);
    }
    let stored = u32::from_le_bytes([
        buf[head_end],
        buf[head_end + 1],
        buf[head_end + 2],
        buf[head_end + 3],
    ]);
    if stored != crc(&buf[..head_end]) {
        return Header::Bad;
    }
    Header::Ok(HeaderInfo {
        version,
        kind,
        name_len,
        body_len,
    })
}

/// How a complete record's body checks out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BodyState {
    /// The body CRC matches.
    Ok,
    /// Body and body CRC are all zeros: a wiped material record.
    Wiped,
    /// The body CRC does not match.
    Damaged,
}

/// Checks the body of a complete record (`rec` holds exactly `info.total_len()` bytes).
pub(crate) fn check_body(info: &HeaderInfo, rec: &[u8]) -> BodyState {
    let body = &rec[info.body_start()..info.body_start() + info.body_len];
    let tail = &rec[info.body_start() + info.body_len..];
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    if stored == crc(body) {
        BodyState::Ok
    } else if stored == 0 && body.iter().all(|b| *b == 0) {
        BodyState::Wiped
    } else {
        BodyState::Damaged
    }
}

/// The record's name, if it is valid UTF-8.
pub(crate) fn name_of<'a>(info: &HeaderInfo, rec: &'a [u8]) -> Option<&'a str> {
    std::str::from_utf8(&rec[FIXED_LEN..FIXED_LEN + info.name_len]).ok()
}

/// The newest format version this build reads for a record of `kind` (`None`: an unknown kind, read at
/// the base version so its refusal names the kind, not the version).
pub(crate) fn newest_readable(kind: Option<Kind>) -> u16 {
    match kind {
        Some(Kind::Key) => KEY_FLOOR_FORMAT_VERSION,
        _ => FORMAT_VERSION,
    }
}

/// The format migration hook: whether a record of `kind` in format `version` is read.
///
/// Version 1 is the base format of every record. Version 2 exists only for key records, whose JSON body
/// may then carry `min_decryption_version`; it reads exactly like version 1 (serde fills absent fields),
/// so no conversion is needed. Any other version is refused with a message saying whether it is older or
/// newer than this build. When a format changes in a way that needs conversion, the old version gets an
/// arm here that reads it with its own rules; compaction then rewrites such records in the new format.
pub(crate) fn check_version(version: u16, kind: Option<Kind>) -> std::result::Result<(), String> {
    let newest = newest_readable(kind);
    match version {
        v if (FORMAT_VERSION..=newest).contains(&v) => Ok(()),
        v if v > newest => Err(format!(
            "format version {v} is newer than this build of kmskit-file reads (up to {newest}); \
             upgrade kmskit to read it"
        )),
        v => Err(format!(
            "format version {v} predates any this build reads (version {FORMAT_VERSION}); no migration \
             exists for it"
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use kmskit_core::crypto::{Algorithm, default_engine};

    fn key() -> Box<dyn AeadKey> {
        default_engine().new_key(Algorithm::Aes256Gcm, &[3; 32]).unwrap()
    }

    #[test]
    fn sealed_round_trip_and_tamper() {
        let k = key();
        let mut out = Vec::new();
        encode_sealed(&mut out, Kind::Key, "abc", b"{\"x\":1}", &*k).unwrap();
        let Header::Ok(info) = parse_header(&out) else {
            panic!("bad header")
        };
        assert_eq!(info.total_len(), out.len());
        assert_eq!(check_body(&info, &out), BodyState::Ok);
        assert_eq!(name_of(&info, &out), Some("abc"));
        let body = &out[info.body_start()..info.body_start() + info.body_len];
        let pt = open_sealed(body, &out[..info.aad_len()], &*k).unwrap();
        assert_eq!(&pt[..], b"{\"x\":1}");
        // The name is bound: the same body under another name does not open.
        let mut aad2 = out[..info.aad_len()].to_vec();
        *aad2.last_mut().unwrap() = b'd';
        assert!(open_sealed(body, &aad2, &*k).is_none());
        // Every single bit flip is caught by a CRC (or, for the body, also by the tag).
        for i in 0..out.len() {
            for bit in 0..8 {
                let mut bad = out.clone();
                bad[i] ^= 1 << bit;
                match parse_header(&bad) {
                    Header::Ok(inf) => {
                        assert!(i >= inf.body_start(), "header flip at {i} accepted");
                        assert_eq!(check_body(&inf, &bad), BodyState::Damaged);
                    }
                    Header::Bad | Header::NeedMore(_) => {}
                }
            }
        }
    }

    #[test]
    fn truncations_need_more() {
        let mut out = Vec::new();
        encode_plain(&mut out, Kind::Header, "header", b"{}");
        for n in 0..out.len() {
            match parse_header(&out[..n]) {
                Header::NeedMore(m) => assert!(m > n),
                Header::Ok(info) => assert!(info.total_len() > n),
                Header::Bad => panic!("prefix of {n} bytes called bad"),
            }
        }
    }

    #[test]
    fn wiped_body_is_recognised() {
        let mut out = Vec::new();
        encode_sealed(&mut out, Kind::Material, "k/v", &[9; 32], &*key()).unwrap();
        let Header::Ok(info) = parse_header(&out) else {
            panic!()
        };
        for b in &mut out[info.body_start()..] {
            *b = 0;
        }
        assert_eq!(check_body(&info, &out), BodyState::Wiped);
    }

    #[test]
    fn versions() {
        for kind in [
            Kind::Header,
            Kind::Segment,
            Kind::Material,
            Kind::Alias,
            Kind::AliasDeleted,
        ] {
            assert!(check_version(1, Some(kind)).is_ok());
            assert!(check_version(0, Some(kind)).unwrap_err().contains("predates"));
            assert!(check_version(2, Some(kind)).unwrap_err().contains("newer"));
        }
        assert!(check_version(1, Some(Kind::Key)).is_ok());
        assert!(check_version(2, Some(Kind::Key)).is_ok());
        assert!(check_version(3, Some(Kind::Key)).unwrap_err().contains("newer"));
        assert!(
            check_version(0, Some(Kind::Key))
                .unwrap_err()
                .contains("predates")
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed = 0x1234_5678_u64;
        for len in 0..300 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let _ = parse_header(&buf);
            let mut with_magic = MAGIC.to_vec();
            with_magic.extend_from_slice(&buf);
            if let Header::Ok(info) = parse_header(&with_magic) {
                if with_magic.len() >= info.total_len() {
                    let _ = check_body(&info, &with_magic[..info.total_len()]);
                }
            }
        }
    }
}
