//! Asymmetric key versions in a FileStore: the PKCS#8 private material (variable length, unlike the
//! 32-byte symmetric material) is sealed to the journal and survives a reopen. Called through the
//! `KeyStore` methods directly (the engine wiring is tested where it lives).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use common::root;
use kmskit_core::clock::Timestamp;
use kmskit_core::crypto::asym;
use kmskit_core::store::{KeyRecord, KeyStore, MaterialId, VersionRecord};
use kmskit_core::{AsymmetricAlgorithm as Alg, KeyId, KeySpec, KeyUsage, KeyVersionId};
use kmskit_file::FileStore;

fn record(key: &str, version: &str, spec: KeySpec, usage: KeyUsage) -> (KeyRecord, MaterialId) {
    let t = Timestamp::from_unix(1_700_000_000);
    let key_id = KeyId::new(key).unwrap();
    let version_id = KeyVersionId::new(version).unwrap();
    let mut rec = KeyRecord::new(key_id.clone(), spec, usage, t);
    rec.versions.push(VersionRecord::new(version_id.clone(), t));
    (rec, MaterialId::new(key_id, version_id))
}

#[test]
fn asymmetric_private_material_survives_reopen_and_compaction() {
    let t = tempfile::tempdir().unwrap();
    let digest = asym::sm3(b"not the point; any 32 bytes");
    let cases = [
        ("k-ec", KeySpec::EcP256, Alg::EcdsaSha256, KeyUsage::SignVerify),
        ("k-rsa", KeySpec::Rsa2048, Alg::RsaPssSha256, KeyUsage::SignVerify),
        ("k-sm2", KeySpec::EcSm2, Alg::Sm2Dsa, KeyUsage::SignVerify),
    ];
    let mut before = Vec::new();
    let (rsa_enc, rsa_enc_id) = record("k-oaep", "v1", KeySpec::Rsa3072, KeyUsage::EncryptDecrypt);
    let oaep_ct;
    {
        let store = FileStore::open(t.path(), &root()).unwrap();
        for (key, spec, alg, usage) in cases {
            let (rec, id) = record(key, "v1", spec, usage);
            store.generate(&id, spec).unwrap();
            store.save_key(&rec).unwrap();
            let spki = store.public_key(&id, spec).unwrap();
            let sig = store.sign_digest(&id, spec, alg, &digest).unwrap();
            assert!(asym::verify_digest(spec, &spki, alg, &digest, &sig).unwrap());
            before.push((id, spec, alg, spki, sig));
        }
        store.generate(&rsa_enc_id, KeySpec::Rsa3072).unwrap();
        store.save_key(&rsa_enc).unwrap();
        let spki = store.public_key(&rsa_enc_id, KeySpec::Rsa3072).unwrap();
        oaep_ct = asym::encrypt(
            KeySpec::Rsa3072,
            &spki,
            Alg::RsaesOaepSha256,
            b"kept across reopen",
        )
        .unwrap();
    }
    // Compaction copies the (longer) material records into a new segment.
    FileStore::open(t.path(), &root()).unwrap().compact().unwrap();
    let store = FileStore::open(t.path(), &root()).unwrap();
    let loaded = store.load().unwrap();
    assert!(loaded.problems.is_empty(), "{:?}", loaded.problems);
    assert_eq!(loaded.keys.len(), 4);
    for (id, spec, alg, spki, old_sig) in before {
        // The same private key: the public key is unchanged, and a fresh signature verifies under the
        // public key taken before the reopen.
        assert_eq!(store.public_key(&id, spec).unwrap(), spki, "{spec}");
        let sig = store.sign_digest(&id, spec, alg, &digest).unwrap();
        assert!(
            asym::verify_digest(spec, &spki, alg, &digest, &sig).unwrap(),
            "{spec}"
        );
        assert!(
            asym::verify_digest(spec, &spki, alg, &digest, &old_sig).unwrap(),
            "{spec}"
        );
    }
    let pt = store
        .asymmetric_decrypt(&rsa_enc_id, KeySpec::Rsa3072, Alg::RsaesOaepSha256, &oaep_ct)
        .unwrap();
    assert_eq!(&pt[..], b"kept across reopen");
    // Custody refuses what a version is not.
    let e = store
        .sign_digest(&rsa_enc_id, KeySpec::EcP256, Alg::EcdsaSha256, &digest)
        .unwrap_err();
    assert_eq!(e.code().as_str(), "Rejected.UnsupportedOperation");
}
