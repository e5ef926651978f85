//! Asymmetric custody in the MemoryStore, through the `KeyStore` methods (the engine wiring is tested
//! where it lives): every asymmetric spec signs or decrypts in custody and hands out its public key; a
//! symmetric version refuses, and an asymmetric one cannot seal.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kmskit_core::crypto::{Algorithm, asym};
use kmskit_core::store::{KeyStore, MaterialId};
use kmskit_core::{AsymmetricAlgorithm as Alg, KeyId, KeySpec, KeyVersionId};
use kmskit_memory::MemoryStore;

fn id(k: &str) -> MaterialId {
    MaterialId::new(KeyId::new(k).unwrap(), KeyVersionId::new("v1").unwrap())
}

#[test]
fn asymmetric_custody() {
    let store = MemoryStore::new();
    let digest = [9u8; 32];
    for (k, spec, alg) in [
        ("rsa", KeySpec::Rsa2048, Alg::RsaPkcs1Sha256),
        ("p256", KeySpec::EcP256, Alg::EcdsaSha256),
        ("k256", KeySpec::EcP256K, Alg::EcdsaSha256),
        ("sm2", KeySpec::EcSm2, Alg::Sm2Dsa),
    ] {
        store.generate(&id(k), spec).unwrap();
        let spki = store.public_key(&id(k), spec).unwrap();
        let sig = store.sign_digest(&id(k), spec, alg, &digest).unwrap();
        assert!(
            asym::verify_digest(spec, &spki, alg, &digest, &sig).unwrap(),
            "{spec}"
        );
        let mut buf = vec![0u8; 4];
        let e = store
            .seal(&id(k), Algorithm::Aes256Gcm, &[0u8; 12], b"", &mut buf)
            .unwrap_err();
        assert_eq!(e.code().as_str(), "Rejected.UnsupportedOperation");
    }
    store.generate(&id("sm2-enc"), KeySpec::EcSm2).unwrap();
    let spki = store.public_key(&id("sm2-enc"), KeySpec::EcSm2).unwrap();
    let ct = asym::encrypt(KeySpec::EcSm2, &spki, Alg::Sm2Pke, b"in custody").unwrap();
    let pt = store
        .asymmetric_decrypt(&id("sm2-enc"), KeySpec::EcSm2, Alg::Sm2Pke, &ct)
        .unwrap();
    assert_eq!(&pt[..], b"in custody");

    store.generate(&id("aes"), KeySpec::Aes256).unwrap();
    let e = store
        .sign_digest(&id("aes"), KeySpec::Aes256, Alg::EcdsaSha256, &digest)
        .unwrap_err();
    assert_eq!(e.code().as_str(), "Rejected.UnsupportedOperation");
    assert_eq!(
        store
            .public_key(&id("missing"), KeySpec::EcP256)
            .unwrap_err()
            .code()
            .as_str(),
        "Forbidden.KeyVersionNotFound"
    );
}
