//! The asymmetric calls of `AliyunKms` (AsymmetricSign/Verify/Encrypt/Decrypt, GetPublicKey):
//! - against a scripted server, how the answers are read (Base64 fields, Verify's JSON boolean);
//! - against a kmskit-server over a file keystore on 127.0.0.1, the round trips (these need the
//!   engine's asymmetric keys).
#![cfg(feature = "aliyun")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kmskit_core::key::{AsymmetricAlgorithm, KeySpec, KeyUsage};
use kmskit_core::{
    Caller, CreateKey, ErrorCode, KeyId, KeyProvider, KeyRef, KeyVersionId, PageRequest, Rotator,
};
use kmskit_file::{FileKms, FileKmsExt, RootKey};
use kmskit_remote::{AliyunKms, RetryPolicy};
use kmskit_server::sign::AccessKeySecret;
use kmskit_server::{AccessKey, Server};
use sha2::Digest as _;

mod support;
use support::scripted;

const KEY: &str = "0b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3";
const VER: &str = "5a6b7c8d-0000-4000-8000-000000000001";

fn client(url: &str) -> AliyunKms {
    AliyunKms::builder()
        .endpoint(url)
        .credentials("ak", "secret")
        .retry(RetryPolicy::new(1))
        .build()
        .unwrap()
}

fn ids() -> (KeyRef, KeyVersionId) {
    (
        KeyRef::Id(KeyId::new(KEY).unwrap()),
        KeyVersionId::new(VER).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_are_read_as_the_spec_writes_them() {
    let c = Caller::local();
    let (k, v) = ids();
    let answer =
        |fields: &str| format!(r#"{{"RequestId":"r","KeyId":"{KEY}","KeyVersionId":"{VER}",{fields}}}"#);
    let (url, _) = scripted(vec![
        (200, answer(&format!(r#""Value":"{}""#, B64.encode([0x30, 1, 2])))),
        (200, answer(r#""Value":true"#)),
        (200, answer(r#""Value":false"#)),
        (200, answer(r#""Value":"true""#)),
        (
            200,
            answer(&format!(r#""CiphertextBlob":"{}""#, B64.encode([9u8; 256]))),
        ),
        (
            200,
            answer(&format!(r#""Plaintext":"{}""#, B64.encode(b"\x00\xffbytes"))),
        ),
        (
            200,
            answer(r#""PublicKey":"-----BEGIN PUBLIC KEY-----\nMFkw\n-----END PUBLIC KEY-----\n""#),
        ),
        (200, answer(r#""Value":"maybe""#)),
        (
            400,
            r#"{"Code":"Rejected.UnsupportedOperation","Message":"Unsupported operation."}"#.to_owned(),
        ),
    ])
    .await;
    let kms = client(&url);
    let d = [7u8; 32];
    let s = kms
        .asymmetric_sign(&c, &k, &v, AsymmetricAlgorithm::EcdsaSha256, &d)
        .await
        .unwrap();
    assert_eq!((s.key_id.as_str(), s.key_version_id.as_str()), (KEY, VER));
    assert_eq!(s.signature, [0x30, 1, 2]);
    for want in [true, false, true] {
        let r = kms
            .asymmetric_verify(&c, &k, &v, AsymmetricAlgorithm::EcdsaSha256, &d, &s.signature)
            .await
            .unwrap();
        assert_eq!(r.valid, want);
    }
    let e = kms
        .asymmetric_encrypt(&c, &k, &v, AsymmetricAlgorithm::RsaesOaepSha256, b"x")
        .await
        .unwrap();
    assert_eq!(e.ciphertext, [9u8; 256]);
    let p = kms
        .asymmetric_decrypt(&c, &k, &v, AsymmetricAlgorithm::RsaesOaepSha256, &e.ciphertext)
        .await
        .unwrap();
    assert_eq!(
        &p.plaintext[..],
        b"\x00\xffbytes",
        "binary plaintexts travel as Base64"
    );
    let pk = kms.get_public_key(&c, &k, &v).await.unwrap();
    assert!(pk.pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
    // Not a boolean: an internal failure, never a guess.
    let e = kms
        .asymmetric_verify(&c, &k, &v, AsymmetricAlgorithm::EcdsaSha256, &d, b"s")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::InternalFailure);
    let e = kms
        .asymmetric_sign(&c, &k, &v, AsymmetricAlgorithm::RsaPssSha256, &d)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedOperation);
}

/// A kmskit-server over a file keystore on 127.0.0.1 and an `AliyunKms` on it, plus the backend (the
/// rotator) and the guards.
async fn served() -> (
    AliyunKms,
    Arc<FileKms>,
    kmskit_server::RunningServer,
    tempfile::TempDir,
) {
    let dir = tempfile::tempdir().unwrap();
    let root = RootKey::from_bytes(&[0x5b; 32]).unwrap();
    let backend = Arc::new(FileKms::open_dir(dir.path(), &root).unwrap());
    let running = Server::builder()
        .provider(backend.clone() as Arc<dyn KeyProvider>)
        .rotator(backend.clone() as Arc<dyn Rotator>)
        .access_key(AccessKey::new("ak", AccessKeySecret::new("secret"), "admin"))
        .build()
        .unwrap()
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let kms = client(&format!("http://{}", running.local_addr().unwrap()));
    (kms, backend, running, dir)
}

async fn key(kms: &AliyunKms, spec: KeySpec, usage: KeyUsage) -> (KeyRef, KeyVersionId) {
    let c = Caller::local();
    let meta = kms
        .create_key(&c, CreateKey::new("asym").key_spec(spec).key_usage(usage))
        .await
        .unwrap();
    assert_eq!((meta.key_spec, meta.key_usage), (spec, usage));
    let k = KeyRef::Id(meta.key_id);
    let versions = kms
        .list_key_versions(&c, &k, PageRequest::new(1, 10).unwrap())
        .await
        .unwrap();
    assert_eq!(versions.items.len(), 1);
    (k, versions.items[0].key_version_id.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_through_kmskit_server() {
    let (kms, backend, _running, _dir) = served().await;
    let c = Caller::local();
    let digest = sha2::Sha256::digest(b"the message").to_vec();

    for (spec, alg) in [
        (KeySpec::EcP256, AsymmetricAlgorithm::EcdsaSha256),
        (KeySpec::EcP256K, AsymmetricAlgorithm::EcdsaSha256),
        (KeySpec::Rsa2048, AsymmetricAlgorithm::RsaPssSha256),
        (KeySpec::Rsa2048, AsymmetricAlgorithm::RsaPkcs1Sha256),
    ] {
        let (k, v) = key(&kms, spec, KeyUsage::SignVerify).await;
        let s = kms.asymmetric_sign(&c, &k, &v, alg, &digest).await.unwrap();
        assert_eq!(s.key_version_id, v);
        assert!(
            kms.asymmetric_verify(&c, &k, &v, alg, &digest, &s.signature)
                .await
                .unwrap()
                .valid,
            "{spec} {alg}"
        );
        let other = sha2::Sha256::digest(b"other").to_vec();
        assert!(
            !kms.asymmetric_verify(&c, &k, &v, alg, &other, &s.signature)
                .await
                .unwrap()
                .valid,
            "{spec} {alg}"
        );
        let pk = kms.get_public_key(&c, &k, &v).await.unwrap();
        assert!(pk.pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{}", pk.pem);
    }

    let (k, v) = key(&kms, KeySpec::Rsa2048, KeyUsage::EncryptDecrypt).await;
    for alg in [
        AsymmetricAlgorithm::RsaesOaepSha256,
        AsymmetricAlgorithm::RsaesOaepSha1,
    ] {
        let pt = [0u8, 0xff, 1, 2, 3]; // binary: the RPC API carries it as Base64
        let e = kms.asymmetric_encrypt(&c, &k, &v, alg, &pt).await.unwrap();
        assert_eq!(e.ciphertext.len(), 256);
        let d = kms
            .asymmetric_decrypt(&c, &k, &v, alg, &e.ciphertext)
            .await
            .unwrap();
        assert_eq!(&d.plaintext[..], &pt, "{alg}");
    }
    // Wrong algorithm for the key, wrong usage: Rejected.UnsupportedOperation through the client.
    let e = kms
        .asymmetric_sign(&c, &k, &v, AsymmetricAlgorithm::RsaPssSha256, &digest)
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedOperation);
    let e = kms
        .asymmetric_encrypt(&c, &k, &v, AsymmetricAlgorithm::Sm2Pke, b"x")
        .await
        .unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedOperation);

    // A second version (CreateKeyVersion in the backend): each version decrypts its own ciphertexts.
    let v2 = backend.rotate(&c, &k).await.unwrap().key_version_id;
    assert_ne!(v2, v);
    let e = kms
        .asymmetric_encrypt(&c, &k, &v2, AsymmetricAlgorithm::RsaesOaepSha256, b"v2")
        .await
        .unwrap();
    let d = kms
        .asymmetric_decrypt(&c, &k, &v2, AsymmetricAlgorithm::RsaesOaepSha256, &e.ciphertext)
        .await
        .unwrap();
    assert_eq!((&d.plaintext[..], &d.key_version_id), (&b"v2"[..], &v2));
    let e = kms
        .asymmetric_decrypt(&c, &k, &v, AsymmetricAlgorithm::RsaesOaepSha256, &e.ciphertext)
        .await
        .unwrap_err();
    assert_eq!(
        e.code(),
        ErrorCode::InvalidParameter,
        "another version's ciphertext"
    );
}
