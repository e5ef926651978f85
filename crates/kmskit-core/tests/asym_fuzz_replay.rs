//! The `asym` fuzz target's logic on a fixed, bounded set of inputs (every selector byte with random and
//! structured tails), so the fuzzing entry point itself is exercised by `cargo test`, and a crash the
//! fuzzer finds can be pasted here as a regression input.
#![cfg(feature = "asymmetric")]
#![allow(missing_docs, clippy::unwrap_used)]

use kmskit_core::crypto::asym::{self, PrivateKey};
use kmskit_core::{AsymmetricAlgorithm, KeySpec};

fn xorshift(state: &mut u64) -> u8 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    (*state >> 24) as u8
}

#[test]
fn fuzz_entry_point_never_panics_on_a_bounded_corpus() {
    let mut s = 0x9e37_79b9_7f4a_7c15u64;
    asym::fuzz_one(&[]);
    for sel in 0..=255u8 {
        for len in [0usize, 1, 33, 70, 300] {
            let mut input = vec![sel];
            input.extend((0..len).map(|_| xorshift(&mut s)));
            asym::fuzz_one(&input);
        }
    }
    // Structured tails: a real SPKI, a real SM2 ciphertext and a real PKCS#8, each with one byte flipped.
    let m = asym::generate(KeySpec::EcSm2).unwrap();
    let k = PrivateKey::from_pkcs8(KeySpec::EcSm2, m.expose_secret()).unwrap();
    let ct = asym::encrypt(
        KeySpec::EcSm2,
        k.public_key_der(),
        AsymmetricAlgorithm::Sm2Pke,
        b"fuzz",
    )
    .unwrap();
    for base in [k.public_key_der().to_vec(), ct, m.expose_secret().to_vec()] {
        for i in 0..base.len() {
            let mut t = base.clone();
            t[i] ^= 0x80;
            for sel in [4u8, 39, 74, 107, 108, 109] {
                let mut input = vec![sel];
                input.extend_from_slice(&t);
                asym::fuzz_one(&input);
            }
        }
    }
}
