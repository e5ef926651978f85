//! Blob parser robustness: `ParsedBlob::parse` never panics on arbitrary bytes, and whatever it accepts
//! is consistent (the header re-serialises to the same bytes, header ‖ sealed is the whole input, the
//! sealed part holds at least a tag).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kmskit_core::blob::{FORMAT_VERSION, MAGIC, MAX_BLOB_LEN, ParsedBlob, write_header};
use kmskit_core::crypto::{Algorithm, NONCE_LEN, TAG_LEN};
use kmskit_core::{KeyId, KeyVersionId};
use proptest::prelude::*;

fn check_consistent(bytes: &[u8]) {
    let Ok(p) = ParsedBlob::parse(bytes) else {
        return;
    };
    assert!(bytes.len() <= MAX_BLOB_LEN);
    assert_eq!(p.header.len() + p.sealed.len(), bytes.len());
    assert_eq!(&bytes[..p.header.len()], p.header);
    assert!(p.sealed.len() >= TAG_LEN);
    let mut again = Vec::new();
    let n = write_header(&mut again, p.algorithm, &p.key_id, &p.version_id, &p.nonce);
    assert_eq!(n, p.header.len());
    assert_eq!(again, p.header, "the header does not re-serialise to itself");
}

fn valid_header(alg: Algorithm, key: &str, version: &str, nonce: [u8; NONCE_LEN]) -> Vec<u8> {
    let mut v = Vec::new();
    write_header(
        &mut v,
        alg,
        &KeyId::new(key).unwrap(),
        &KeyVersionId::new(version).unwrap(),
        &nonce,
    );
    v
}

#[test]
fn oversized_and_empty_inputs_are_rejected() {
    assert!(ParsedBlob::parse(&[]).is_err());
    let mut big = valid_header(Algorithm::Aes256Gcm, "key-1", "v-1", [0; NONCE_LEN]);
    big.resize(MAX_BLOB_LEN + 1, 0);
    assert!(ParsedBlob::parse(&big).is_err());
    big.truncate(MAX_BLOB_LEN);
    assert!(ParsedBlob::parse(&big).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check_consistent(&bytes);
    }

    /// Arbitrary bytes behind the magic and version, so the id and nonce paths are reached.
    #[test]
    fn arbitrary_bytes_after_magic_never_panic(
        alg in 0u8..4,
        rest in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut bytes = MAGIC.to_vec();
        bytes.push(FORMAT_VERSION);
        bytes.push(alg);
        bytes.extend_from_slice(&rest);
        check_consistent(&bytes);
    }

    /// A valid header with arbitrary edits: overwritten bytes, then truncation or extension.
    #[test]
    fn mutated_valid_blobs_never_panic(
        chacha in any::<bool>(),
        key in "[a-z0-9-]{1,40}",
        version in "[a-z0-9-]{1,40}",
        nonce in prop::array::uniform12(any::<u8>()),
        body in prop::collection::vec(any::<u8>(), 0..64),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let alg = if chacha { Algorithm::ChaCha20Poly1305 } else { Algorithm::Aes256Gcm };
        let mut bytes = valid_header(alg, &key, &version, nonce);
        bytes.extend_from_slice(&body);
        for (at, b) in &edits {
            let i = at.index(bytes.len());
            bytes[i] = *b;
        }
        if truncate {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        check_consistent(&bytes);
        if edits.is_empty() && !truncate && body.len() >= TAG_LEN {
            let p = ParsedBlob::parse(&bytes).unwrap();
            prop_assert_eq!(p.key_id.as_str(), key.as_str());
            prop_assert_eq!(p.version_id.as_str(), version.as_str());
            prop_assert_eq!(p.nonce, nonce);
            prop_assert_eq!(p.algorithm, alg);
            prop_assert_eq!(p.sealed, &body[..]);
        }
    }
}
