//! Engine-vs-engine differential tests: for random keys, nonces, AAD and message lengths (0..=4096), every
//! engine in `all_engines()` seals to byte-identical output, every engine opens every other engine's
//! output, and a flipped bit is rejected by all of them.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kmskit_core::Error;
use kmskit_core::crypto::{AeadKey, Algorithm, KEY_LEN, NONCE_LEN, TAG_LEN, all_engines};
use proptest::prelude::*;

const ALGS: [Algorithm; 2] = [Algorithm::Aes256Gcm, Algorithm::ChaCha20Poly1305];

/// Seals with every engine, checks the outputs agree and that every engine opens every output.
/// Returns the common sealed bytes.
fn seal_all_and_cross_open(
    alg: Algorithm,
    key: &[u8],
    nonce: &[u8; NONCE_LEN],
    aad: &[u8],
    pt: &[u8],
) -> Vec<u8> {
    let engines = all_engines();
    let keys: Vec<(&str, Box<dyn AeadKey>)> = engines
        .iter()
        .map(|e| (e.name(), e.new_key(alg, key).unwrap()))
        .collect();
    let mut outputs: Vec<(&str, Vec<u8>)> = Vec::new();
    for (name, k) in &keys {
        let mut buf = pt.to_vec();
        k.seal_in_place(nonce, aad, &mut buf).unwrap();
        assert_eq!(buf.len(), pt.len() + TAG_LEN, "{alg} {name}");
        // The detached form gives the same bytes.
        let mut detached = pt.to_vec();
        let tag = k.seal_in_place_detached(nonce, aad, &mut detached).unwrap();
        detached.extend_from_slice(&tag);
        assert_eq!(detached, buf, "{alg} {name}: detached differs");
        outputs.push((name, buf));
    }
    let (first_name, first) = &outputs[0];
    for (name, out) in &outputs[1..] {
        assert_eq!(
            out,
            first,
            "{alg}: {name} and {first_name} differ (len {})",
            pt.len()
        );
    }
    for (sealer, out) in &outputs {
        for (opener, k) in &keys {
            let mut buf = out.clone();
            k.open_in_place(nonce, aad, &mut buf)
                .unwrap_or_else(|e| panic!("{alg}: {opener} cannot open {sealer}'s output: {e}"));
            assert_eq!(buf, pt, "{alg}: {opener} opening {sealer}'s output");
        }
    }
    first.clone()
}

fn all_reject(alg: Algorithm, key: &[u8], nonce: &[u8; NONCE_LEN], aad: &[u8], sealed: &[u8]) {
    for e in all_engines() {
        let k = e.new_key(alg, key).unwrap();
        let mut buf = sealed.to_vec();
        let r = k.open_in_place(nonce, aad, &mut buf);
        assert!(
            matches!(r, Err(Error::DecryptFailed)),
            "{alg} {}: {r:?}",
            e.name()
        );
        assert!(
            buf.is_empty(),
            "{alg} {}: plaintext left after a failed open",
            e.name()
        );
    }
}

#[test]
fn every_enabled_engine_is_compiled_in() {
    // The differential tests are only meaningful with both engines (the default features); this catches
    // a feature wiring mistake that would silently leave one out.
    let expected = usize::from(cfg!(feature = "aws-lc")) + usize::from(cfg!(feature = "rust-crypto"));
    assert_eq!(all_engines().len(), expected, "{:?}", all_engines());
}

#[test]
fn edge_lengths_agree() {
    let key: Vec<u8> = (0..KEY_LEN as u8).collect();
    let aad_lens = [0usize, 1, 15, 16, 17, 64, 300];
    let lens = [
        0usize, 1, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 1023, 1024, 4095, 4096,
    ];
    let mut n = 0u32;
    for alg in ALGS {
        for (i, &len) in lens.iter().enumerate() {
            let aad = vec![0xA5u8; aad_lens[i % aad_lens.len()]];
            let pt: Vec<u8> = (0..len).map(|j| (j * 31 + i) as u8).collect();
            let mut nonce = [0u8; NONCE_LEN];
            nonce[0] = i as u8;
            seal_all_and_cross_open(alg, &key, &nonce, &aad, &pt);
            n += 1;
        }
    }
    assert_eq!(n as usize, 2 * lens.len());
}

fn alg() -> impl Strategy<Value = Algorithm> {
    prop_oneof![Just(Algorithm::Aes256Gcm), Just(Algorithm::ChaCha20Poly1305)]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(192))]

    #[test]
    fn random_inputs_agree_and_cross_open(
        alg in alg(),
        key in prop::array::uniform32(any::<u8>()),
        nonce in prop::array::uniform12(any::<u8>()),
        aad in prop::collection::vec(any::<u8>(), 0..=256),
        pt in prop::collection::vec(any::<u8>(), 0..=4096),
        flip in any::<prop::sample::Index>(),
    ) {
        let sealed = seal_all_and_cross_open(alg, &key, &nonce, &aad, &pt);
        // A flipped bit anywhere in ciphertext ‖ tag fails on every engine.
        let mut bad = sealed.clone();
        let bit = flip.index(bad.len() * 8);
        bad[bit / 8] ^= 1 << (bit % 8);
        all_reject(alg, &key, &nonce, &aad, &bad);
        // So do another nonce and other AAD.
        let mut other_nonce = nonce;
        other_nonce[0] ^= 0x80;
        all_reject(alg, &key, &other_nonce, &aad, &sealed);
        let mut other_aad = aad.clone();
        other_aad.push(0);
        all_reject(alg, &key, &nonce, &other_aad, &sealed);
    }
}
