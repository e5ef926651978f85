//! Wycheproof known-answer tests for every AEAD engine compiled in (`all_engines()`).
//!
//! For each group with a 256-bit key, a 96-bit nonce and a 128-bit tag (the only sizes kmskit uses):
//! valid vectors must seal to exactly `ct ‖ tag` (through `seal_in_place`,
//! `seal_in_place_detached` and the out-of-place `seal_to`; `open_to` is checked beside `open_in_place`) and open back to the message; invalid vectors must fail to open with
//! `DecryptFailed` and leave no plaintext behind. Groups of other sizes are skipped and counted; the
//! number of vectors run is asserted so the test cannot pass vacuously.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kmskit_core::Error;
use kmskit_core::crypto::{AeadEngine, Algorithm, KEY_LEN, NONCE_LEN, TAG_LEN, all_engines};
use wycheproof::TestResult;
use wycheproof::aead::{TestName, TestSet};

#[derive(Debug, Default)]
struct Counts {
    valid: usize,
    invalid: usize,
    acceptable: usize,
    skipped_groups: usize,
    groups: usize,
}

fn run(engine: &dyn AeadEngine, alg: Algorithm, name: TestName) -> Counts {
    let set = TestSet::load(name).unwrap();
    let mut c = Counts::default();
    for group in &set.test_groups {
        if group.key_size != KEY_LEN * 8 || group.nonce_size != NONCE_LEN * 8 || group.tag_size != TAG_LEN * 8
        {
            c.skipped_groups += 1;
            continue;
        }
        c.groups += 1;
        for t in &group.tests {
            let id = format!("{} {alg} tcId {} ({})", engine.name(), t.tc_id, t.comment);
            let key = engine.new_key(alg, &t.key).unwrap();
            let nonce: [u8; NONCE_LEN] = t.nonce.as_slice().try_into().unwrap();
            let mut sealed = t.ct.to_vec();
            sealed.extend_from_slice(&t.tag);
            let mut opened = sealed.clone();
            let open = key.open_in_place(&nonce, &t.aad, &mut opened);
            // The out-of-place open must agree with the in-place one, and zero its output on failure.
            let mut out_of_place = vec![0xAAu8; t.ct.len()];
            let open_to = key.open_to(&nonce, &t.aad, &sealed, &mut out_of_place);
            assert_eq!(
                open.is_ok(),
                open_to.is_ok(),
                "{id}: open_to disagrees with open_in_place"
            );
            if open_to.is_ok() {
                assert_eq!(out_of_place, *t.pt, "{id}: open_to");
            } else {
                assert!(
                    out_of_place.iter().all(|&b| b == 0),
                    "{id}: open_to left bytes after a failure"
                );
            }
            match t.result {
                TestResult::Valid => {
                    c.valid += 1;
                    let mut buf = t.pt.to_vec();
                    key.seal_in_place(&nonce, &t.aad, &mut buf).unwrap();
                    assert_eq!(buf, sealed, "{id}: seal");
                    let mut detached = t.pt.to_vec();
                    let tag = key.seal_in_place_detached(&nonce, &t.aad, &mut detached).unwrap();
                    assert_eq!(detached, *t.ct, "{id}: detached ciphertext");
                    assert_eq!(tag.as_slice(), t.tag.as_slice(), "{id}: detached tag");
                    let mut to = vec![0u8; sealed.len()];
                    key.seal_to(&nonce, &t.aad, &t.pt, &mut to).unwrap();
                    assert_eq!(to, sealed, "{id}: seal_to");
                    open.unwrap_or_else(|e| panic!("{id}: open failed: {e}"));
                    assert_eq!(opened, *t.pt, "{id}: open");
                }
                TestResult::Invalid => {
                    c.invalid += 1;
                    assert!(
                        matches!(open, Err(Error::DecryptFailed)),
                        "{id}: an invalid vector opened: {open:?}"
                    );
                    assert!(opened.is_empty(), "{id}: plaintext left after a failed open");
                }
                TestResult::Acceptable => {
                    // Allowed either way; if it opens, it must give the message.
                    c.acceptable += 1;
                    if open.is_ok() {
                        assert_eq!(opened, *t.pt, "{id}: acceptable vector opened to something else");
                    }
                }
            }
        }
    }
    c
}

/// Runs `name` on every engine and asserts exactly `expected` = (valid, invalid) vectors ran on each.
fn check(alg: Algorithm, name: TestName, expected: (usize, usize)) {
    let engines = all_engines();
    assert!(!engines.is_empty());
    for e in engines {
        let c = run(e, alg, name);
        println!(
            "{alg} on {}: {} vectors run ({} valid, {} invalid, {} acceptable) in {} groups; {} groups skipped \
             for unsupported key/nonce/tag sizes",
            e.name(),
            c.valid + c.invalid + c.acceptable,
            c.valid,
            c.invalid,
            c.acceptable,
            c.groups,
            c.skipped_groups
        );
        assert_eq!(
            (c.valid, c.invalid),
            expected,
            "{alg} on {}: (valid, invalid) vectors run",
            e.name()
        );
        assert_eq!(c.groups, 1, "{alg} on {}: groups run", e.name());
    }
}

#[test]
fn aes_256_gcm() {
    // wycheproof 0.6: 39 valid and 27 invalid AES-256-GCM vectors with 96-bit nonces and 128-bit tags
    // (44 groups of other key/nonce/tag sizes are skipped).
    check(Algorithm::Aes256Gcm, TestName::AesGcm, (39, 27));
}

#[test]
fn chacha20_poly1305() {
    // wycheproof 0.6: 256 valid and 60 invalid ChaCha20-Poly1305 vectors with 96-bit nonces (9 groups
    // of other nonce sizes are skipped).
    check(Algorithm::ChaCha20Poly1305, TestName::ChaCha20Poly1305, (256, 60));
}
