//! Known-answer and negative tests of `crypto::asym`: Wycheproof (ECDSA P-256 and secp256k1, DER and
//! P1363; RSA-PSS; RSA PKCS#1 v1.5; RSA-OAEP), the GB/T 32905 (SM3) and GB/T 32918.5 (SM2) examples,
//! and round trips and refusals for every spec × algorithm.
#![cfg(feature = "asymmetric")]
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::sync::OnceLock;

use kmskit_core::crypto::asym::{self, PrivateKey};
use kmskit_core::{AsymmetricAlgorithm as Alg, Error, ErrorCode, KeySpec};
use sha2::{Digest as _, Sha256};
use wycheproof::TestResult;

fn sha256(m: &[u8]) -> Vec<u8> {
    Sha256::digest(m).to_vec()
}

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

const ASYM_SPECS: [KeySpec; 5] = [
    KeySpec::Rsa2048,
    KeySpec::Rsa3072,
    KeySpec::EcP256,
    KeySpec::EcP256K,
    KeySpec::EcSm2,
];

/// One generated key per spec, shared (RSA key generation is slow in debug builds).
fn key(spec: KeySpec) -> &'static PrivateKey {
    static KEYS: OnceLock<Vec<PrivateKey>> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        ASYM_SPECS
            .iter()
            .map(|&s| PrivateKey::from_pkcs8(s, asym::generate(s).unwrap().expose_secret()).unwrap())
            .collect()
    });
    let i = ASYM_SPECS.iter().position(|&s| s == spec).unwrap();
    &keys[i]
}

/// Checks a verdict against a Wycheproof result: valid must verify, invalid must not, acceptable may
/// go either way.
fn judge(set: &str, tc: usize, result: TestResult, verified: bool, comment: &str) {
    match result {
        TestResult::Valid => assert!(verified, "{set} tc {tc} ({comment}): valid, not accepted"),
        TestResult::Invalid => assert!(!verified, "{set} tc {tc} ({comment}): invalid, accepted"),
        TestResult::Acceptable => {}
    }
}

fn ecdsa_set(name: wycheproof::ecdsa::TestName, spec: KeySpec, p1363: bool) -> usize {
    let set = wycheproof::ecdsa::TestSet::load(name).unwrap();
    let mut n = 0;
    for g in &set.test_groups {
        for t in &g.tests {
            let digest = sha256(&t.msg);
            let sig = if p1363 {
                // Malformed r||s (wrong length) is refused before verification.
                match asym::ecdsa_p1363_to_der(spec, &t.sig) {
                    Ok(der) => der,
                    Err(e) => {
                        assert_eq!(e.code(), ErrorCode::InvalidParameter);
                        judge(&format!("{name:?}"), t.tc_id, t.result, false, &t.comment);
                        n += 1;
                        continue;
                    }
                }
            } else {
                t.sig.to_vec()
            };
            // A public key aws-lc refuses counts as "does not verify".
            let ok = asym::verify_digest(spec, &g.der, Alg::EcdsaSha256, &digest, &sig).unwrap_or(false);
            judge(&format!("{name:?}"), t.tc_id, t.result, ok, &t.comment);
            n += 1;
        }
    }
    n
}

#[test]
fn wycheproof_ecdsa_p256_and_secp256k1() {
    use wycheproof::ecdsa::TestName::*;
    let mut n = 0;
    n += ecdsa_set(EcdsaSecp256r1Sha256, KeySpec::EcP256, false);
    n += ecdsa_set(EcdsaSecp256r1Sha256P1363, KeySpec::EcP256, true);
    n += ecdsa_set(EcdsaSecp256k1Sha256, KeySpec::EcP256K, false);
    n += ecdsa_set(EcdsaSecp256k1Sha256P1363, KeySpec::EcP256K, true);
    assert!(n > 1000, "only {n} ECDSA cases ran");
}

#[test]
fn wycheproof_rsa_pss_sha256_salt32() {
    use wycheproof::rsa_pss_verify::{TestName, TestSet};
    let mut n = 0;
    for (name, spec) in [
        (TestName::RsaPss2048Sha256Mgf1SaltLen32, KeySpec::Rsa2048),
        (TestName::RsaPss3072Sha256Mgf1SaltLen32, KeySpec::Rsa3072),
    ] {
        let set = TestSet::load(name).unwrap();
        for g in &set.test_groups {
            assert_eq!(g.salt_size, 32);
            for t in &g.tests {
                let ok =
                    asym::verify_digest(spec, &g.der, Alg::RsaPssSha256, &sha256(&t.msg), &t.sig).unwrap();
                judge(&format!("{name:?}"), t.tc_id, t.result, ok, &t.comment);
                n += 1;
            }
        }
    }
    assert!(n > 100, "only {n} PSS cases ran");
}

#[test]
fn wycheproof_rsa_pkcs1_sha256() {
    use wycheproof::rsa_pkcs1_verify::{TestName, TestSet};
    let mut n = 0;
    for (name, spec) in [
        (TestName::Rsa2048Sha256, KeySpec::Rsa2048),
        (TestName::Rsa3072Sha256, KeySpec::Rsa3072),
    ] {
        let set = TestSet::load(name).unwrap();
        for g in &set.test_groups {
            for t in &g.tests {
                let ok =
                    asym::verify_digest(spec, &g.der, Alg::RsaPkcs1Sha256, &sha256(&t.msg), &t.sig).unwrap();
                judge(&format!("{name:?}"), t.tc_id, t.result, ok, &t.comment);
                n += 1;
            }
        }
    }
    assert!(n > 100, "only {n} PKCS#1 cases ran");
}

#[test]
fn wycheproof_rsa_oaep_decrypt() {
    use wycheproof::rsa_oaep::{TestName, TestSet};
    let mut n = 0;
    for (name, spec, alg) in [
        (
            TestName::Rsa2048Sha256Mgf1Sha256,
            KeySpec::Rsa2048,
            Alg::RsaesOaepSha256,
        ),
        (
            TestName::Rsa2048Sha1Mgf1Sha1,
            KeySpec::Rsa2048,
            Alg::RsaesOaepSha1,
        ),
        (
            TestName::Rsa3072Sha256Mgf1Sha256,
            KeySpec::Rsa3072,
            Alg::RsaesOaepSha256,
        ),
    ] {
        let set = TestSet::load(name).unwrap();
        for g in &set.test_groups {
            let k = PrivateKey::from_pkcs8(spec, &g.pkcs8).unwrap();
            for t in &g.tests {
                // The API has no OAEP label: a labelled ciphertext must not decrypt.
                let expect_ok = t.label.is_empty() && t.result == TestResult::Valid;
                match k.decrypt(alg, &t.ct) {
                    Ok(pt) => {
                        assert!(
                            t.result != TestResult::Invalid && t.label.is_empty(),
                            "{name:?} tc {} ({}): decrypted",
                            t.tc_id,
                            t.comment
                        );
                        assert_eq!(&pt[..], &t.pt[..], "{name:?} tc {}", t.tc_id);
                    }
                    Err(e) => {
                        assert!(matches!(e, Error::DecryptFailed), "{name:?} tc {}: {e}", t.tc_id);
                        assert!(
                            !expect_ok,
                            "{name:?} tc {} ({}): did not decrypt",
                            t.tc_id, t.comment
                        );
                    }
                }
                n += 1;
            }
        }
    }
    assert!(n > 50, "only {n} OAEP cases ran");
}

/// GB/T 32905-2016 appendix A.
#[test]
fn sm3_gbt_32905_examples() {
    assert_eq!(
        asym::sm3(b"abc").to_vec(),
        hex("66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0")
    );
    assert_eq!(
        asym::sm3("abcd".repeat(16).as_bytes()).to_vec(),
        hex("debe9ff92275b8a138604889c18e5a4d6fdb70e5387e5765293dcba39c0c5732")
    );
}

/// The GB/T 32918.5 key on the recommended curve: d = 3945208F…, P = (09F9DF31…, CCEA490C…).
const GBT_D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
const GBT_X: &str = "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020";
const GBT_Y: &str = "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13";

fn gbt_spki() -> Vec<u8> {
    // SEQUENCE { SEQUENCE { id-ecPublicKey, sm2p256v1 }, BIT STRING 04 || x || y }
    let mut der = hex("3059301306072a8648ce3d020106082a811ccf5501822d03420004");
    der.extend(hex(GBT_X));
    der.extend(hex(GBT_Y));
    der
}

fn gbt_private() -> PrivateKey {
    // PKCS#8 { version 0, { id-ecPublicKey, sm2p256v1 }, OCTET STRING ECPrivateKey { 1, d } }
    let mut der = hex("3041020100301306072a8648ce3d020106082a811ccf5501822d042730250201010420");
    der.extend(hex(GBT_D));
    PrivateKey::from_pkcs8(KeySpec::EcSm2, &der).unwrap()
}

/// GB/T 32918.5-2017 annex A (= GM/T 0003.5): Z(A) and e for the default id, and the published
/// signature (r, s) of "message digest" verifies.
#[test]
fn sm2_gbt_32918_signature_example() {
    let spki = gbt_spki();
    // The same key in the PEM a reference implementation (Tongsuo's self test) publishes.
    let pem = "-----BEGIN PUBLIC KEY-----\n\
        MFkwEwYHKoZIzj0CAQYIKoEcz1UBgi0DQgAECfnfMR5UIaFQ3X0WHkvFxnIXn60Y\n\
        M/wHa7CP81bzUCDM6kkM4md1pS3G6nGMwapgCu0F+/NeCEpmMvYHLamtEw==\n\
        -----END PUBLIC KEY-----\n";
    assert_eq!(asym::pem_to_spki(pem).unwrap(), spki);
    assert_eq!(gbt_private().public_key_der(), &spki[..]);
    let e = asym::sm2_digest(&spki, asym::SM2_DEFAULT_ID, b"message digest").unwrap();
    assert_eq!(
        e.to_vec(),
        hex("F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640")
    );
    let rs = hex("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3\
         B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA");
    let sig = asym::ecdsa_p1363_to_der(KeySpec::EcSm2, &rs).unwrap();
    assert!(asym::verify_digest(KeySpec::EcSm2, &spki, Alg::Sm2Dsa, &e, &sig).unwrap());
    // Another message, or another id, does not.
    let e2 = asym::sm2_digest(&spki, b"ALICE123@YAHOO.COM", b"message digest").unwrap();
    assert!(!asym::verify_digest(KeySpec::EcSm2, &spki, Alg::Sm2Dsa, &e2, &sig).unwrap());
    // Our own signatures of e verify, and are fresh each time (random k).
    let k = gbt_private();
    let s1 = k.sign_digest(Alg::Sm2Dsa, &e).unwrap();
    let s2 = k.sign_digest(Alg::Sm2Dsa, &e).unwrap();
    assert_ne!(s1, s2);
    assert!(asym::verify_digest(KeySpec::EcSm2, &spki, Alg::Sm2Dsa, &e, &s1).unwrap());
}

/// GB/T 32918.5-2017 annex C (= GM/T 0003.5): the published ciphertext of "encryption standard"
/// (fixed k), in the GM/T 0009 DER C1C3C2 form, decrypts.
#[test]
fn sm2_gbt_32918_encryption_example() {
    let ct = hex(
        "307C0220 04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73
         022100 E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0
         0420 59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766
         0413 21886CA989CA9C7D58087307CA93092D651EFA",
    );
    let k = gbt_private();
    assert_eq!(&k.decrypt(Alg::Sm2Pke, &ct).unwrap()[..], b"encryption standard");
    // Any flipped bit (C1 coordinates, C3, C2, or the DER framing) fails opaquely.
    for i in 0..ct.len() {
        let mut bad = ct.clone();
        bad[i] ^= 0x01;
        assert!(
            matches!(k.decrypt(Alg::Sm2Pke, &bad), Err(Error::DecryptFailed)),
            "byte {i}"
        );
    }
    // Truncated or extended.
    assert!(matches!(
        k.decrypt(Alg::Sm2Pke, &ct[..ct.len() - 1]),
        Err(Error::DecryptFailed)
    ));
    let mut long = ct.clone();
    long.push(0);
    assert!(matches!(k.decrypt(Alg::Sm2Pke, &long), Err(Error::DecryptFailed)));
}

fn sign_algs(spec: KeySpec) -> Vec<Alg> {
    Alg::ALL
        .iter()
        .copied()
        .filter(|a| a.fits(spec) && a.digest_len().is_some())
        .collect()
}

fn enc_algs(spec: KeySpec) -> Vec<Alg> {
    Alg::ALL
        .iter()
        .copied()
        .filter(|a| a.fits(spec) && a.digest_len().is_none())
        .collect()
}

#[test]
fn round_trips_for_every_spec_and_algorithm() {
    let digest = sha256(b"round trip");
    for &spec in &ASYM_SPECS {
        let k = key(spec);
        assert_eq!(k.spec(), spec);
        let spki = k.public_key_der();
        for alg in sign_algs(spec) {
            let sig = k.sign_digest(alg, &digest).unwrap();
            assert!(
                asym::verify_digest(spec, spki, alg, &digest, &sig).unwrap(),
                "{spec} {alg}"
            );
            // Another digest does not verify.
            let other = sha256(b"other");
            assert!(
                !asym::verify_digest(spec, spki, alg, &other, &sig).unwrap(),
                "{spec} {alg}"
            );
            // Flipped signatures (every byte, one bit) verify false, never error.
            for i in 0..sig.len() {
                let mut bad = sig.clone();
                bad[i] ^= 0x10;
                assert!(
                    !asym::verify_digest(spec, spki, alg, &digest, &bad).unwrap(),
                    "{spec} {alg} byte {i}"
                );
            }
            assert!(!asym::verify_digest(spec, spki, alg, &digest, &[]).unwrap());
            assert!(!asym::verify_digest(spec, spki, alg, &digest, &sig[..sig.len() - 1]).unwrap());
            // Wrong digest lengths are InvalidParameter, signing and verifying.
            for len in [0usize, 20, 31, 33, 64] {
                let d = vec![7u8; len];
                let e = k.sign_digest(alg, &d).unwrap_err();
                assert_eq!(e.code(), ErrorCode::InvalidParameter, "{spec} {alg} {len}");
                assert!(e.to_string().contains("Digest"), "{e}");
                let e = asym::verify_digest(spec, spki, alg, &d, &sig).unwrap_err();
                assert_eq!(e.code(), ErrorCode::InvalidParameter, "{spec} {alg} {len}");
            }
        }
        for alg in enc_algs(spec) {
            let max = asym::max_plaintext(spec, alg).unwrap();
            for len in [1usize, 2, 31, 32, 33, max.min(100), max] {
                let pt: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let ct = asym::encrypt(spec, spki, alg, &pt).unwrap();
                assert_ne!(ct, pt);
                assert_eq!(&k.decrypt(alg, &ct).unwrap()[..], &pt[..], "{spec} {alg} {len}");
                // Fresh randomness each time.
                assert_ne!(asym::encrypt(spec, spki, alg, &pt).unwrap(), ct);
            }
            let ct = asym::encrypt(spec, spki, alg, b"flip me").unwrap();
            for i in (0..ct.len()).step_by(7) {
                let mut bad = ct.clone();
                bad[i] ^= 0x01;
                assert!(
                    matches!(k.decrypt(alg, &bad), Err(Error::DecryptFailed)),
                    "{spec} {alg} byte {i}"
                );
            }
            assert!(matches!(k.decrypt(alg, &[]), Err(Error::DecryptFailed)));
            assert!(matches!(k.decrypt(alg, &ct[1..]), Err(Error::DecryptFailed)));
            // Over the limit: InvalidParameter naming Plaintext.
            let e = asym::encrypt(spec, spki, alg, &vec![0u8; max + 1]).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidParameter, "{spec} {alg}");
            assert!(e.to_string().contains("Plaintext"), "{e}");
            // Decrypting with the other OAEP hash fails.
            for other in enc_algs(spec).into_iter().filter(|&o| o != alg) {
                assert!(matches!(k.decrypt(other, &ct), Err(Error::DecryptFailed)));
            }
        }
    }
    assert_eq!(
        asym::max_plaintext(KeySpec::Rsa2048, Alg::RsaesOaepSha256),
        Some(190)
    );
    assert_eq!(
        asym::max_plaintext(KeySpec::Rsa3072, Alg::RsaesOaepSha256),
        Some(318)
    );
    assert_eq!(
        asym::max_plaintext(KeySpec::Rsa2048, Alg::RsaesOaepSha1),
        Some(214)
    );
    assert_eq!(
        asym::max_plaintext(KeySpec::Rsa3072, Alg::RsaesOaepSha1),
        Some(342)
    );
    assert_eq!(asym::max_plaintext(KeySpec::EcSm2, Alg::Sm2Pke), Some(6047));
    assert_eq!(asym::max_plaintext(KeySpec::EcP256, Alg::Sm2Pke), None);
}

#[test]
fn wrong_algorithm_is_unsupported_operation() {
    let digest = sha256(b"x");
    for &spec in &ASYM_SPECS {
        let k = key(spec);
        let spki = k.public_key_der();
        for &alg in Alg::ALL {
            let sign_ok = alg.fits(spec) && alg.digest_len().is_some();
            let enc_ok = alg.fits(spec) && alg.digest_len().is_none();
            if !sign_ok {
                let e = k.sign_digest(alg, &digest).unwrap_err();
                assert_eq!(e.code().as_str(), "Rejected.UnsupportedOperation", "{spec} {alg}");
                let e = asym::verify_digest(spec, spki, alg, &digest, b"sig").unwrap_err();
                assert_eq!(e.code().as_str(), "Rejected.UnsupportedOperation", "{spec} {alg}");
            }
            if !enc_ok {
                let e = k.decrypt(alg, b"ciphertext").unwrap_err();
                assert_eq!(e.code().as_str(), "Rejected.UnsupportedOperation", "{spec} {alg}");
                let e = asym::encrypt(spec, spki, alg, b"pt").unwrap_err();
                assert_eq!(e.code().as_str(), "Rejected.UnsupportedOperation", "{spec} {alg}");
            }
        }
    }
    for spec in [KeySpec::Aes256, KeySpec::Sm4] {
        assert_eq!(
            asym::generate(spec).unwrap_err().code(),
            ErrorCode::UnsupportedOperation
        );
        assert_eq!(
            PrivateKey::from_pkcs8(spec, b"x").unwrap_err().code(),
            ErrorCode::UnsupportedOperation
        );
    }
}

#[test]
fn keys_and_public_keys_of_the_wrong_spec_are_refused() {
    let digest = sha256(b"x");
    let pairs = [
        (KeySpec::EcP256, KeySpec::EcP256K),
        (KeySpec::EcP256K, KeySpec::EcP256),
        (KeySpec::EcP256, KeySpec::EcSm2),
        (KeySpec::EcSm2, KeySpec::EcP256),
        (KeySpec::Rsa2048, KeySpec::Rsa3072),
        (KeySpec::Rsa3072, KeySpec::Rsa2048),
        (KeySpec::Rsa2048, KeySpec::EcP256),
    ];
    for (have, claim) in pairs {
        let der = asym::generate(have).unwrap();
        let e = PrivateKey::from_pkcs8(claim, der.expose_secret()).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidParameter, "{have} as {claim}");
        let spki = key(have).public_key_der();
        let alg = sign_algs(claim)[0];
        let sig = key(claim).sign_digest(alg, &digest).unwrap();
        let e = asym::verify_digest(claim, spki, alg, &digest, &sig).unwrap_err();
        assert_eq!(e.code(), ErrorCode::InvalidParameter, "{have} SPKI as {claim}");
    }
    for &spec in &ASYM_SPECS {
        assert_eq!(
            PrivateKey::from_pkcs8(spec, b"\x30\x03\x02\x01\x00")
                .unwrap_err()
                .code(),
            ErrorCode::InvalidParameter
        );
        let alg = sign_algs(spec)[0];
        assert_eq!(
            asym::verify_digest(spec, b"garbage", alg, &digest, b"sig")
                .unwrap_err()
                .code(),
            ErrorCode::InvalidParameter
        );
    }
    assert_eq!(
        asym::encrypt(
            KeySpec::EcSm2,
            key(KeySpec::EcSm2).public_key_der(),
            Alg::Sm2Pke,
            b""
        )
        .unwrap_err()
        .code(),
        ErrorCode::InvalidParameter
    );
}

#[test]
fn pem_round_trip() {
    for &spec in &ASYM_SPECS {
        let der = key(spec).public_key_der();
        let pem = asym::spki_to_pem(der);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        assert!(pem.ends_with("-----END PUBLIC KEY-----\n"));
        assert!(pem.lines().all(|l| l.len() <= 64));
        assert_eq!(asym::pem_to_spki(&pem).unwrap(), der);
        // CRLF line endings and surrounding text are fine.
        let crlf = format!("junk\r\n{}", pem.replace('\n', "\r\n"));
        assert_eq!(asym::pem_to_spki(&crlf).unwrap(), der);
    }
    for bad in [
        "",
        "-----BEGIN PUBLIC KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\n!!!!\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        "-----BEGIN PRIVATE KEY-----\nMAMCAQA=\n-----END PRIVATE KEY-----\n",
    ] {
        assert_eq!(
            asym::pem_to_spki(bad).unwrap_err().code(),
            ErrorCode::InvalidParameter,
            "{bad:?}"
        );
    }
}

#[test]
fn p1363_conversion() {
    let mut raw = [0u8; 64];
    raw[31] = 1;
    raw[32] = 0x80;
    let der = asym::ecdsa_p1363_to_der(KeySpec::EcP256, &raw).unwrap();
    let mut want = hex("3026 020101 022100 80");
    want.extend([0u8; 31]);
    assert_eq!(der, want);
    assert_eq!(
        asym::ecdsa_p1363_to_der(KeySpec::EcP256, &raw[..63])
            .unwrap_err()
            .code(),
        ErrorCode::InvalidParameter
    );
    assert_eq!(
        asym::ecdsa_p1363_to_der(KeySpec::Rsa2048, &raw)
            .unwrap_err()
            .code(),
        ErrorCode::UnsupportedOperation
    );
}
