//! Tamper tests through `MemoryKms`: every single-bit flip of a blob, every truncation and every one-byte
//! extension is rejected with a typed error (never a panic, never plaintext), and afterwards the original
//! blob still decrypts and nothing stored has changed. Run for a small and a ~1 KiB plaintext, on every
//! AEAD engine.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};

use kmskit_core::blob::ParsedBlob;
use kmskit_core::crypto::{AeadEngine, all_engines};
use kmskit_core::store::KeyStore;
use kmskit_core::{
    Caller, CiphertextBlob, CreateKey, EncryptionContext, Error, ErrorCode, KeyId, KeyProvider, KeyRef, Kms,
    KmsConfig, block_on,
};
use kmskit_memory::{MemoryKms, MemoryStore};

fn kms_on(engine: &'static dyn AeadEngine) -> MemoryKms {
    Kms::with_config(MemoryStore::with_engine(engine), KmsConfig::default()).unwrap()
}

/// Everything the store holds, in a comparable form.
fn snapshot(kms: &MemoryKms) -> String {
    let l = kms.store().load().unwrap();
    assert!(l.problems.is_empty());
    let keys: BTreeMap<_, _> = l
        .keys
        .iter()
        .map(|k| (k.key_id.clone(), format!("{k:?}")))
        .collect();
    let aliases: BTreeMap<_, _> = l
        .aliases
        .iter()
        .map(|a| (a.name.clone(), format!("{a:?}")))
        .collect();
    format!("{keys:?}\n{aliases:?}")
}

/// Decrypts `blob`, turning a panic into a test failure naming `what`.
fn try_decrypt(
    kms: &MemoryKms,
    blob: &[u8],
    ctx: &EncryptionContext,
    what: &str,
) -> kmskit_core::Result<Vec<u8>> {
    let caller = Caller::local();
    let blob = CiphertextBlob::from_bytes(blob.to_vec());
    catch_unwind(AssertUnwindSafe(|| block_on(kms.decrypt(&caller, &blob, ctx))))
        .unwrap_or_else(|_| panic!("{what}: decrypt panicked"))
        .map(|d| d.plaintext.to_vec())
}

/// The codes a tampered blob may answer: a malformed blob or a failed decryption (`InvalidParameter`),
/// or a header edit that names a key or version that does not exist.
fn allowed(e: &Error) -> bool {
    matches!(
        e.code(),
        ErrorCode::InvalidParameter | ErrorCode::KeyNotFound | ErrorCode::KeyVersionNotFound
    )
}

#[derive(Debug, Default)]
struct Tally {
    flips: usize,
    truncations: usize,
    extensions: usize,
}

fn tamper_all(kms: &MemoryKms, key: &KeyId, plaintext: &[u8], ctx: &EncryptionContext) -> Tally {
    let caller = Caller::local();
    let enc = block_on(kms.encrypt(&caller, &KeyRef::Id(key.clone()), plaintext, ctx)).unwrap();
    let blob = enc.ciphertext_blob.as_bytes().to_vec();
    let header_len = ParsedBlob::parse(&blob).unwrap().header.len();
    assert_eq!(blob.len(), header_len + plaintext.len() + 16);
    let before = snapshot(kms);
    let mut t = Tally::default();

    for bit in 0..blob.len() * 8 {
        let mut bad = blob.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        let what = format!("flip of bit {bit} (byte {})", bit / 8);
        match try_decrypt(kms, &bad, ctx, &what) {
            Ok(_) => panic!("{what}: a tampered blob decrypted"),
            // Past the ids, the header still names the right key: the AEAD must be what refuses.
            Err(e) if bit / 8 >= header_len - 12 => {
                assert!(matches!(e, Error::DecryptFailed), "{what}: {e:?}");
            }
            Err(e) => assert!(allowed(&e), "{what}: unexpected error {e:?}"),
        }
        t.flips += 1;
    }
    for n in 0..blob.len() {
        let what = format!("truncation to {n} bytes");
        match try_decrypt(kms, &blob[..n], ctx, &what) {
            Ok(_) => panic!("{what}: a truncated blob decrypted"),
            Err(e) => assert!(allowed(&e), "{what}: unexpected error {e:?}"),
        }
        t.truncations += 1;
    }
    for extra in [0x00u8, 0x01, 0x80, 0xFF] {
        let mut long = blob.clone();
        long.push(extra);
        let what = format!("extension by {extra:#04x}");
        let r = try_decrypt(kms, &long, ctx, &what);
        assert!(matches!(r, Err(Error::DecryptFailed)), "{what}: {r:?}");
        t.extensions += 1;
    }
    // Another context never opens it either.
    let mut other: Vec<(String, String)> = ctx.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
    other.push(("extra".into(), "1".into()));
    let other = EncryptionContext::from_pairs(other).unwrap();
    let r = try_decrypt(kms, &blob, &other, "other context");
    assert!(matches!(r, Err(Error::DecryptFailed)), "{r:?}");

    // Nothing stored changed, and the original still decrypts.
    assert_eq!(snapshot(kms), before, "the store changed during tampering");
    let dec = try_decrypt(kms, &blob, ctx, "original").unwrap();
    assert_eq!(dec, plaintext);
    t
}

#[test]
fn every_flip_truncation_and_extension_is_rejected() {
    let caller = Caller::local();
    let ctx = EncryptionContext::from_pairs([("purpose", "tamper"), ("tenant", "t-1")]).unwrap();
    let small = b"tiny secret".to_vec();
    let kib: Vec<u8> = (0..1024u32).map(|i| (i * 7 + 3) as u8).collect();
    let mut engines = 0;
    for engine in all_engines() {
        let kms = kms_on(engine);
        // A second key, so some header flips name a key that exists but did not seal the blob.
        let key = block_on(kms.create_key(&caller, CreateKey::new("tamper")))
            .unwrap()
            .key_id;
        block_on(kms.create_key(&caller, CreateKey::new("bystander"))).unwrap();
        for (pt, ctx) in [(&small, &ctx), (&kib, &ctx), (&small, &EncryptionContext::new())] {
            let t = tamper_all(&kms, &key, pt, ctx);
            // A header of 7 + 36 + 36 + 12 bytes (UUID ids), then the ciphertext and the tag.
            let len = 91 + pt.len() + 16;
            assert_eq!(t.flips, len * 8, "{}: {t:?}", engine.name());
            assert_eq!(t.truncations, len, "{}: {t:?}", engine.name());
            assert_eq!(t.extensions, 4);
        }
        engines += 1;
    }
    assert_eq!(engines, 2);
}

/// A blob whose header is rewritten to name the other key (a substitution attack) is refused.
#[test]
fn header_substitution_is_rejected() {
    let caller = Caller::local();
    let kms = kms_on(kmskit_core::crypto::default_engine());
    let a = block_on(kms.create_key(&caller, CreateKey::new("a"))).unwrap();
    let b = block_on(kms.create_key(&caller, CreateKey::new("b"))).unwrap();
    let ctx = EncryptionContext::new();
    let enc = block_on(kms.encrypt(&caller, &KeyRef::Id(a.key_id.clone()), b"data", &ctx)).unwrap();
    let (a_id, b_id) = (a.key_id.as_str().as_bytes(), b.key_id.as_str().as_bytes());
    assert_eq!(a_id.len(), b_id.len());
    let mut blob = enc.ciphertext_blob.into_bytes();
    let at = blob.windows(a_id.len()).position(|w| w == a_id).unwrap();
    blob[at..at + b_id.len()].copy_from_slice(b_id);
    // b's version id differs, so this is either an unknown version or (with it rewritten too) a
    // failed AEAD; both refuse.
    let r = try_decrypt(&kms, &blob, &ctx, "substituted key id");
    assert!(r.is_err_and(|e| allowed(&e)));
    let p = ParsedBlob::parse(&blob).unwrap();
    let b_ver = b.primary_key_version.unwrap();
    let mut spliced = Vec::new();
    kmskit_core::blob::write_header(&mut spliced, p.algorithm, &b.key_id, &b_ver, &p.nonce);
    spliced.extend_from_slice(p.sealed);
    let r = try_decrypt(&kms, &spliced, &ctx, "substituted key and version");
    assert!(matches!(r, Err(Error::DecryptFailed)), "{r:?}");
}
