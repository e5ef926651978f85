//! `crypto::asym` sign and verify against the underlying crate's own call, measured in the same run.
//!
//! For each spec, ops/s of
//! - `asym::PrivateKey::sign_digest` vs the raw call: aws-lc-rs `RsaKeyPair::sign_digest` (PSS) /
//!   `EcdsaKeyPair::sign_digest` with a pre-parsed key, and for SM2 RustCrypto `sm2::dsa::SigningKey`'s
//!   `sign_prehash` (kmskit signs SM2 with its own zeroizing code on `sm2`'s arithmetic);
//! - `asym::verify_digest` (parses the SubjectPublicKeyInfo on every call; for RSA also checks the
//!   modulus size, for SM2 computes Z(A)) vs the raw call on the same SPKI: aws-lc-rs
//!   `UnparsedPublicKey::verify_digest`, and `sm2::dsa::VerifyingKey::verify_prehash` on a key built once.
//!
//! - and the whole KMS call: `MemoryKms` (the `Kms<S>` engine over `SoftwareKeys`, governance off)
//!   `KeyProvider::asymmetric_sign` / `asymmetric_verify` on a key of the same spec — key lookup, state
//!   and usage checks, custody — against the same raw call.
//!
//! Rounds are interleaved (ours, raw, ours, raw, …) so load from other processes hits both alike; each
//! side's cost is its fastest batch, and the printed ratio is time per call, ours ÷ raw (1.00 = no
//! overhead, above 1 = kmskit slower).
//!
//! `cargo bench -p kmskit-benches --bench asym` (about 30 s).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::median_ns;

use std::hint::black_box;
use std::time::Instant;

use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256K1_SHA256_ASN1,
    ECDSA_P256K1_SHA256_ASN1_SIGNING, EcdsaKeyPair, RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256, RsaKeyPair,
    UnparsedPublicKey,
};
use kmskit_core::crypto::asym::{self, PrivateKey};
use kmskit_core::key::KeyUsage;
use kmskit_core::{
    AsymmetricAlgorithm as Alg, Caller, CreateKey, KeyProvider, KeyRef, KeySpec, PageRequest, block_on,
};
use kmskit_memory::{MemoryKms, MemoryKmsExt};
use sm2::dsa::signature::hazmat::{PrehashSigner, PrehashVerifier};
use sm2::pkcs8::{DecodePrivateKey, DecodePublicKey};

const ROUNDS: usize = 9;

/// The raw calls for one key, on keys parsed once from the same PKCS#8 / SPKI.
enum Raw {
    Rsa(RsaKeyPair),
    Ec(
        EcdsaKeyPair,
        &'static aws_lc_rs::signature::EcdsaVerificationAlgorithm,
    ),
    Sm2(Box<(sm2::dsa::SigningKey, sm2::dsa::VerifyingKey)>),
}

impl Raw {
    fn new(spec: KeySpec, pkcs8: &[u8], spki: &[u8]) -> Self {
        match spec {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 => Raw::Rsa(RsaKeyPair::from_pkcs8(pkcs8).unwrap()),
            KeySpec::EcP256 => Raw::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8).unwrap(),
                &ECDSA_P256_SHA256_ASN1,
            ),
            KeySpec::EcP256K => Raw::Ec(
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256K1_SHA256_ASN1_SIGNING, pkcs8).unwrap(),
                &ECDSA_P256K1_SHA256_ASN1,
            ),
            KeySpec::EcSm2 => {
                let id = std::str::from_utf8(asym::SM2_DEFAULT_ID).unwrap();
                let sk = sm2::SecretKey::from_pkcs8_der(pkcs8).unwrap();
                let pk = sm2::PublicKey::from_public_key_der(spki).unwrap();
                Raw::Sm2(Box::new((
                    sm2::dsa::SigningKey::new(id, &sk).unwrap(),
                    sm2::dsa::VerifyingKey::new(id, pk).unwrap(),
                )))
            }
            other => panic!("{other} is not asymmetric"),
        }
    }

    fn sign(&self, digest: &[u8]) -> Vec<u8> {
        match self {
            Raw::Rsa(kp) => {
                let d = Digest::import_less_safe(digest, &SHA256).unwrap();
                let mut sig = vec![0u8; kp.public_modulus_len()];
                kp.sign_digest(&RSA_PSS_SHA256, &d, &mut sig).unwrap();
                sig
            }
            Raw::Ec(kp, _) => {
                let d = Digest::import_less_safe(digest, &SHA256).unwrap();
                kp.sign_digest(&d).unwrap().as_ref().to_vec()
            }
            Raw::Sm2(keys) => {
                let sig: sm2::dsa::Signature = keys.0.sign_prehash(digest).unwrap();
                sig.to_der().to_vec()
            }
        }
    }

    fn verify(&self, spki: &[u8], digest: &[u8], sig: &[u8]) -> bool {
        match self {
            Raw::Rsa(_) => {
                let d = Digest::import_less_safe(digest, &SHA256).unwrap();
                UnparsedPublicKey::new(&RSA_PSS_2048_8192_SHA256, spki)
                    .verify_digest(&d, sig)
                    .is_ok()
            }
            Raw::Ec(_, alg) => {
                let d = Digest::import_less_safe(digest, &SHA256).unwrap();
                UnparsedPublicKey::new(*alg, spki).verify_digest(&d, sig).is_ok()
            }
            Raw::Sm2(keys) => {
                let sig = sm2::dsa::Signature::from_der(sig).unwrap();
                keys.1.verify_prehash(digest, &sig).is_ok()
            }
        }
    }
}

/// Calls per batch so that one batch takes about 20 ms.
fn calibrate(mut f: impl FnMut()) -> u32 {
    let t = Instant::now();
    let mut n = 0u32;
    while t.elapsed().as_millis() < 20 {
        f();
        n += 1;
    }
    n.max(3)
}

/// Fastest-batch ns per call of `ours` and `raw`, interleaved over `ROUNDS` rounds.
fn compare(mut ours: impl FnMut(), mut raw: impl FnMut()) -> (f64, f64) {
    let iters = calibrate(&mut ours);
    let (mut a, mut b) = (f64::MAX, f64::MAX);
    for _ in 0..ROUNDS {
        a = a.min(median_ns(1, iters, &mut ours));
        b = b.min(median_ns(1, iters, &mut raw));
    }
    (a, b)
}

fn main() {
    let digest = [0x5au8; 32];
    println!(
        "crypto::asym vs the underlying crate (ops/s, fastest of {ROUNDS} interleaved batches of ~20 ms)"
    );
    println!(
        "{:<9} {:<16} {:>12} {:>12} {:>7}   {:>12} {:>12} {:>7}",
        "spec", "alg", "sign ours", "sign raw", "t o/r", "verify ours", "verify raw", "t o/r"
    );
    let kms = MemoryKms::new_memory();
    let caller = Caller::local();
    let mut engine_rows = Vec::new();
    for (spec, alg) in [
        (KeySpec::Rsa2048, Alg::RsaPssSha256),
        (KeySpec::Rsa3072, Alg::RsaPssSha256),
        (KeySpec::EcP256, Alg::EcdsaSha256),
        (KeySpec::EcP256K, Alg::EcdsaSha256),
        (KeySpec::EcSm2, Alg::Sm2Dsa),
    ] {
        let pkcs8 = asym::generate(spec).unwrap();
        let key = PrivateKey::from_pkcs8(spec, pkcs8.expose_secret()).unwrap();
        let spki = key.public_key_der().to_vec();
        let raw = Raw::new(spec, pkcs8.expose_secret(), &spki);
        let sig = key.sign_digest(alg, &digest).unwrap();
        assert!(raw.verify(&spki, &digest, &sig), "{spec}: raw rejects ours");
        assert!(asym::verify_digest(spec, &spki, alg, &digest, &raw.sign(&digest)).unwrap());

        let (sign_ours, sign_raw) = compare(
            || {
                black_box(key.sign_digest(alg, black_box(&digest)).unwrap());
            },
            || {
                black_box(raw.sign(black_box(&digest)));
            },
        );
        let (ver_ours, ver_raw) = compare(
            || {
                assert!(asym::verify_digest(spec, &spki, alg, black_box(&digest), black_box(&sig)).unwrap());
            },
            || {
                assert!(raw.verify(&spki, black_box(&digest), black_box(&sig)));
            },
        );
        // The same spec through the engine (a key of its own; the raw side is the same raw call).
        let meta = block_on(
            kms.create_key(
                &caller,
                CreateKey::new("bench")
                    .key_spec(spec)
                    .key_usage(KeyUsage::SignVerify),
            ),
        )
        .unwrap();
        let k = KeyRef::Id(meta.key_id);
        let v = block_on(kms.list_key_versions(&caller, &k, PageRequest::default()))
            .unwrap()
            .items[0]
            .key_version_id
            .clone();
        let esig = block_on(kms.asymmetric_sign(&caller, &k, &v, alg, &digest))
            .unwrap()
            .signature;
        let (esign, esign_raw) = compare(
            || {
                black_box(block_on(kms.asymmetric_sign(&caller, &k, &v, alg, black_box(&digest))).unwrap());
            },
            || {
                black_box(raw.sign(black_box(&digest)));
            },
        );
        let (ever, ever_raw) = compare(
            || {
                let r = block_on(kms.asymmetric_verify(&caller, &k, &v, alg, black_box(&digest), &esig));
                assert!(r.unwrap().valid);
            },
            || {
                assert!(raw.verify(&spki, black_box(&digest), black_box(&sig)));
            },
        );
        engine_rows.push((spec, alg, esign, esign_raw, ever, ever_raw));
        let ops = |ns: f64| 1e9 / ns;
        println!(
            "{:<9} {:<16} {:>12.0} {:>12.0} {:>6.2}x   {:>12.0} {:>12.0} {:>6.2}x",
            spec.as_str(),
            alg.as_str(),
            ops(sign_ours),
            ops(sign_raw),
            sign_ours / sign_raw,
            ops(ver_ours),
            ops(ver_raw),
            ver_ours / ver_raw,
        );
    }
    println!();
    println!("MemoryKms (KeyProvider, governance off) vs the raw call, same run");
    println!(
        "{:<9} {:<16} {:>12} {:>12} {:>7}   {:>12} {:>12} {:>7}",
        "spec", "alg", "sign kms", "sign raw", "t k/r", "verify kms", "verify raw", "t k/r"
    );
    for (spec, alg, es, esr, ev, evr) in engine_rows {
        let ops = |ns: f64| 1e9 / ns;
        println!(
            "{:<9} {:<16} {:>12.0} {:>12.0} {:>6.2}x   {:>12.0} {:>12.0} {:>6.2}x",
            spec.as_str(),
            alg.as_str(),
            ops(es),
            ops(esr),
            es / esr,
            ops(ev),
            ops(evr),
            ev / evr,
        );
    }
}
