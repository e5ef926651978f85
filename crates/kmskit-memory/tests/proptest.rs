//! Property tests through `MemoryKms`, on every AEAD engine:
//!
//! - Encrypt/Decrypt round trips for arbitrary plaintext (0..=6144 bytes) and arbitrary encryption
//!   contexts; the context is order-insensitive and any other context is refused;
//! - plaintext over the 6 KiB cap is refused;
//! - arbitrary bytes given to `ParsedBlob::parse` and to `MemoryKms::decrypt` (raw, as Base64, behind a
//!   valid header, and as contexts) never panic and get typed errors (the same helper the `blob` fuzz
//!   target runs);
//! - randomly edited real blobs never decrypt.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use kmskit_core::blob::ParsedBlob;
use kmskit_core::crypto::all_engines;
use kmskit_core::{
    Caller, CiphertextBlob, CreateKey, EncryptionContext, Error, KeyId, KeyProvider, KeyRef, Kms, KmsConfig,
    MAX_PLAINTEXT, block_on,
};
use kmskit_memory::internal::fuzzing;
use kmskit_memory::{MemoryKms, MemoryStore};
use proptest::prelude::*;

/// One MemoryKms per engine, each with one key.
fn kmses() -> &'static [(MemoryKms, KeyId)] {
    static K: OnceLock<Vec<(MemoryKms, KeyId)>> = OnceLock::new();
    K.get_or_init(|| {
        all_engines()
            .into_iter()
            .map(|e| {
                let kms = Kms::with_config(MemoryStore::with_engine(e), KmsConfig::default()).unwrap();
                let key = block_on(kms.create_key(&Caller::local(), CreateKey::new("proptest")))
                    .unwrap()
                    .key_id;
                (kms, key)
            })
            .collect()
    })
}

fn context_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(".{0,16}", ".{0,64}", 0..8)
}

fn decrypt(kms: &MemoryKms, blob: &CiphertextBlob, ctx: &EncryptionContext) -> kmskit_core::Result<Vec<u8>> {
    block_on(kms.decrypt(&Caller::local(), blob, ctx)).map(|d| d.plaintext.to_vec())
}

#[test]
fn two_engines() {
    assert_eq!(kmses().len(), 2);
}

#[test]
fn plaintext_cap_is_exact() {
    for (kms, key) in kmses() {
        let c = Caller::local();
        let ctx = EncryptionContext::new();
        let at_cap = vec![1u8; MAX_PLAINTEXT];
        let enc = block_on(kms.encrypt(&c, &KeyRef::Id(key.clone()), &at_cap, &ctx)).unwrap();
        assert_eq!(decrypt(kms, &enc.ciphertext_blob, &ctx).unwrap(), at_cap);
        let over = vec![1u8; MAX_PLAINTEXT + 1];
        let r = block_on(kms.encrypt(&c, &KeyRef::Id(key.clone()), &over, &ctx));
        assert!(matches!(r, Err(Error::InvalidParameter { .. })), "{r:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn round_trip(
        engine in 0usize..2,
        plaintext in prop::collection::vec(any::<u8>(), 0..=MAX_PLAINTEXT),
        map in context_map(),
        extra_key in ".{0,8}",
    ) {
        let (kms, key) = &kmses()[engine];
        let c = Caller::local();
        let ctx = EncryptionContext::from_pairs(map.clone()).unwrap();
        let enc = block_on(kms.encrypt(&c, &KeyRef::Id(key.clone()), &plaintext, &ctx)).unwrap();
        prop_assert_eq!(&enc.key_id, key);
        let blob = &enc.ciphertext_blob;
        let p = ParsedBlob::parse(blob.as_bytes()).unwrap();
        prop_assert_eq!(p.sealed.len(), plaintext.len() + 16);
        prop_assert_eq!(decrypt(kms, blob, &ctx).unwrap(), plaintext.clone());
        // The Base64 text form round-trips too.
        let text = CiphertextBlob::from_base64(&blob.to_base64()).unwrap();
        prop_assert_eq!(decrypt(kms, &text, &ctx).unwrap(), plaintext);
        // Order-insensitive: the same pairs given in reverse order.
        let reversed = EncryptionContext::from_pairs(map.clone().into_iter().rev()).unwrap();
        prop_assert!(decrypt(kms, blob, &reversed).is_ok());
        // Any other context is refused: one entry more, or one value changed.
        let mut more = map.clone();
        if let std::collections::btree_map::Entry::Vacant(e) = more.entry(extra_key) {
            e.insert(String::new());
            let more = EncryptionContext::from_pairs(more).unwrap();
            prop_assert!(matches!(decrypt(kms, blob, &more), Err(Error::DecryptFailed)));
        }
        if let Some((k, v)) = map.iter().next() {
            let mut changed = map.clone();
            changed.insert(k.clone(), format!("{v}!"));
            let changed = EncryptionContext::from_pairs(changed).unwrap();
            prop_assert!(matches!(decrypt(kms, blob, &changed), Err(Error::DecryptFailed)));
        }
    }

    #[test]
    fn over_the_cap_is_refused(len in (MAX_PLAINTEXT + 1)..=(2 * MAX_PLAINTEXT)) {
        let (kms, key) = &kmses()[0];
        let r = block_on(kms.encrypt(&Caller::local(), &KeyRef::Id(key.clone()), &vec![0u8; len],
            &EncryptionContext::new()));
        prop_assert!(matches!(r, Err(Error::InvalidParameter { .. })), "{:?}", r);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    /// The blob fuzz target's body, on arbitrary bytes.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..1024)) {
        fuzzing::check_parse(&bytes);
        fuzzing::blob_decrypt(&bytes);
    }

    /// Arbitrary bytes behind a valid header for the fixed key reach the AEAD and are refused.
    #[test]
    fn arbitrary_sealed_parts_are_refused(
        body in prop::collection::vec(any::<u8>(), 0..256),
        ctx_bytes in prop::collection::vec(any::<u8>(), 0..64),
    ) {
        let kms = fuzzing::fixed_kms();
        let mut blob = fuzzing::fixed_header();
        blob.extend_from_slice(&body);
        for ctx in fuzzing::contexts_from(&ctx_bytes) {
            let r = decrypt(&kms, &CiphertextBlob::from_bytes(blob.clone()), &ctx);
            prop_assert!(r.as_ref().is_err_and(fuzzing::is_blob_rejection), "{:?}", r);
        }
    }

    /// Real blobs with random edits (overwritten bytes, truncation, appended bytes) never decrypt and
    /// always get a typed rejection.
    #[test]
    fn edited_blobs_are_refused(
        engine in 0usize..2,
        plaintext in prop::collection::vec(any::<u8>(), 0..128),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
        cut in prop::option::of(any::<prop::sample::Index>()),
        tail in prop::collection::vec(any::<u8>(), 0..4),
    ) {
        let (kms, key) = &kmses()[engine];
        let ctx = EncryptionContext::new();
        let enc = block_on(kms.encrypt(&Caller::local(), &KeyRef::Id(key.clone()), &plaintext, &ctx))
            .unwrap();
        let original = enc.ciphertext_blob.into_bytes();
        let mut blob = original.clone();
        // One non-zero XOR per distinct position, so edits never cancel out.
        let mut at: BTreeMap<usize, u8> = BTreeMap::new();
        for (i, x) in &edits {
            at.entry(i.index(blob.len())).or_insert(*x);
        }
        for (i, x) in at {
            blob[i] ^= x;
        }
        if let Some(cut) = cut {
            blob.truncate(cut.index(blob.len()));
        }
        blob.extend_from_slice(&tail);
        let unchanged = blob == original;
        let r = decrypt(kms, &CiphertextBlob::from_bytes(blob), &ctx);
        if unchanged {
            // Truncation and the tail happened to restore the original bytes.
            prop_assert_eq!(r.unwrap(), plaintext);
        } else {
            prop_assert!(r.as_ref().is_err_and(fuzzing::is_blob_rejection), "{:?}", r);
        }
    }
}
