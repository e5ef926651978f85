//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};

use kmskit_core::{
    Caller, CiphertextBlob, CreateKey, EncryptionContext, KeyId, KeyProvider, KeyRef, KmsConfig, ManualClock,
    Timestamp,
};
use kmskit_file::{FileKms, FileKmsExt, FileStore, RootKey};

pub fn caller() -> Caller {
    Caller::local()
}

pub fn ctx() -> EncryptionContext {
    EncryptionContext::from_pairs([("purpose", "test")]).unwrap()
}

/// A root key that is the same across calls within one test.
pub fn root() -> RootKey {
    RootKey::from_bytes(&[0x5a; 32]).unwrap()
}

pub fn open(dir: &Path) -> FileKms {
    FileKms::open_dir(dir, &root()).unwrap()
}

pub fn open_with_clock(dir: &Path, clock: std::sync::Arc<ManualClock>) -> FileKms {
    let store = FileStore::open(dir, &root()).unwrap();
    FileKms::with_store_config(store, KmsConfig::new().clock(clock)).unwrap()
}

pub fn clock() -> std::sync::Arc<ManualClock> {
    std::sync::Arc::new(ManualClock::new(Timestamp::from_unix(1_700_000_000)))
}

/// Creates a key and encrypts `pt` under it.
pub fn key_with_blob(kms: &FileKms, pt: &[u8]) -> (KeyId, CiphertextBlob) {
    kmskit_core::block_on(async {
        let k = kms
            .create_key(&caller(), CreateKey::new("test key"))
            .await
            .unwrap();
        let enc = kms
            .encrypt(&caller(), &KeyRef::Id(k.key_id.clone()), pt, &ctx())
            .await
            .unwrap();
        (k.key_id, enc.ciphertext_blob)
    })
}

pub fn decrypt(kms: &FileKms, blob: &CiphertextBlob) -> kmskit_core::Result<Vec<u8>> {
    kmskit_core::block_on(kms.decrypt(&caller(), blob, &ctx())).map(|d| d.plaintext.to_vec())
}

/// The journal segment currently in `dir` (the newest).
pub fn segment(dir: &Path) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with("journal-") && n.ends_with(".log")
        })
        .collect();
    v.sort();
    v.pop().expect("a journal segment")
}

/// A record as found by scanning raw bytes for the framing (test-side parser, independent of the crate).
#[derive(Debug, Clone)]
pub struct RawRecord {
    pub off: usize,
    pub version: u16,
    pub kind: u8,
    pub name: String,
    pub name_len: usize,
    pub body_len: usize,
    pub total: usize,
}

impl RawRecord {
    pub fn body_start(&self) -> usize {
        self.off + 14 + self.name_len + 4
    }
}

pub const KIND_SEGMENT: u8 = 2;
pub const KIND_MATERIAL: u8 = 3;
pub const KIND_KEY: u8 = 4;
pub const KIND_ALIAS: u8 = 5;

/// Walks the records of a well-formed segment.
pub fn records(bytes: &[u8]) -> Vec<RawRecord> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 14 <= bytes.len() {
        assert_eq!(&bytes[off..off + 4], b"KMSR", "record at {off}");
        let version = u16::from_le_bytes([bytes[off + 4], bytes[off + 5]]);
        let kind = bytes[off + 6];
        let name_len = u16::from_le_bytes([bytes[off + 8], bytes[off + 9]]) as usize;
        let body_len = u32::from_le_bytes(bytes[off + 10..off + 14].try_into().unwrap()) as usize;
        let name = String::from_utf8(bytes[off + 14..off + 14 + name_len].to_vec()).unwrap();
        let total = 14 + name_len + 4 + body_len + 4;
        out.push(RawRecord {
            off,
            version,
            kind,
            name,
            name_len,
            body_len,
            total,
        });
        off += total;
    }
    out
}

pub fn crc32c(bytes: &[u8]) -> u32 {
    // Bitwise CRC32C (Castagnoli), so tests do not share the crate's implementation.
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
