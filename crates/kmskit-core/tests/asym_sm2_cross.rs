//! kmskit's own SM2 signing and decryption (zeroizing code on `sm2`'s curve arithmetic) against
//! RustCrypto's separate SM2DSA and SM2PKE implementations: what kmskit signs, `sm2::dsa` verifies (for
//! the message, through its own Z(A)); what `sm2::pke` encrypts, kmskit's decryption opens. (kmskit's
//! SM2PKE encryption is `sm2::pke`'s own, so the other direction is a smoke check of the DER framing.)
#![cfg(feature = "asymmetric")]
#![allow(missing_docs, clippy::unwrap_used)]

use kmskit_core::crypto::asym::{self, PrivateKey};
use kmskit_core::{AsymmetricAlgorithm as Alg, KeySpec};
use sm2::dsa::signature::Verifier;
use sm2::pkcs8::{DecodePrivateKey, DecodePublicKey};

#[test]
fn kmskit_sm2dsa_signatures_verify_with_rustcrypto_sm2dsa() {
    for round in 0..8u8 {
        let m = asym::generate(KeySpec::EcSm2).unwrap();
        let k = PrivateKey::from_pkcs8(KeySpec::EcSm2, m.expose_secret()).unwrap();
        let pk = sm2::PublicKey::from_public_key_der(k.public_key_der()).unwrap();
        let id = std::str::from_utf8(asym::SM2_DEFAULT_ID).unwrap();
        let vk = sm2::dsa::VerifyingKey::new(id, pk).unwrap();
        let msg = format!("message {round} for SM2DSA");
        let e = asym::sm2_digest(k.public_key_der(), asym::SM2_DEFAULT_ID, msg.as_bytes()).unwrap();
        let der = k.sign_digest(Alg::Sm2Dsa, &e).unwrap();
        let sig = sm2::dsa::Signature::from_der(&der).unwrap();
        // RustCrypto hashes the message itself, with its own Z(A): our digest and signature both hold.
        vk.verify(msg.as_bytes(), &sig).unwrap();
        assert!(vk.verify(b"another message", &sig).is_err());
    }
}

#[test]
fn sm2pke_interoperates_with_rustcrypto_both_ways() {
    let m = asym::generate(KeySpec::EcSm2).unwrap();
    let k = PrivateKey::from_pkcs8(KeySpec::EcSm2, m.expose_secret()).unwrap();
    let sk = sm2::SecretKey::from_pkcs8_der(m.expose_secret()).unwrap();
    let dk = sm2::pke::DecryptingKey::new(sk);
    let ek = dk.encrypting_key().clone();
    for len in [1usize, 31, 32, 33, 1000, asym::SM2_MAX_PLAINTEXT] {
        let pt: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        // RustCrypto encrypts (DER C1C3C2), kmskit decrypts.
        let theirs = ek
            .encrypt_der(&mut sm2::elliptic_curve::common::getrandom::SysRng, &pt)
            .unwrap();
        assert_eq!(
            &k.decrypt(Alg::Sm2Pke, &theirs).unwrap()[..],
            &pt[..],
            "{len} bytes, theirs"
        );
        // kmskit encrypts, RustCrypto decrypts.
        let ours = asym::encrypt(KeySpec::EcSm2, k.public_key_der(), Alg::Sm2Pke, &pt).unwrap();
        assert_eq!(dk.decrypt_der(&ours).unwrap(), pt, "{len} bytes, ours");
    }
}
