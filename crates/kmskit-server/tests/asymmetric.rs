//! The asymmetric actions over 127.0.0.1 (spec §8, "Asymmetric cryptography"): AsymmetricSign,
//! AsymmetricVerify, AsymmetricEncrypt, AsymmetricDecrypt and GetPublicKey, with V2 and V3 signatures,
//! plus CreateKeyVersion of an asymmetric key through the rotator.
//!
//! The parameter checks (missing or malformed Base64, unknown algorithm, no KeyVersionId) happen in the
//! server before the engine is called; the round trips need the engine's asymmetric keys.

#![allow(clippy::unwrap_used)] // test helpers

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use kmskit_core::{KeyProvider, Rotator};
use kmskit_memory::{MemoryKms, MemoryKmsExt};
use kmskit_server::client::{Answer, Client, SignatureVersion};
use kmskit_server::sign::AccessKeySecret;
use kmskit_server::{AccessKey, RunningServer, Server};
use sha2::Digest as _;

const AK: &str = "ak-asym";
const SECRET: &str = "secret-asym";

async fn start() -> (RunningServer, SocketAddr) {
    let kms = Arc::new(MemoryKms::new_memory());
    let running = Server::builder()
        .provider(kms.clone() as Arc<dyn KeyProvider>)
        .rotator(kms as Arc<dyn Rotator>)
        .access_key(AccessKey::new(AK, AccessKeySecret::new(SECRET), "admin"))
        .build()
        .unwrap()
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = running.local_addr().unwrap();
    (running, addr)
}

/// An action, its parameters and the error code it must get.
type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);

async fn ok(c: &mut Client, action: &str, params: &[(&str, &str)]) -> Answer {
    let r = c.call(action, params).await.unwrap();
    assert_eq!(r.status, 200, "{action} {params:?}: {r:?}");
    r
}

async fn code(c: &mut Client, action: &str, params: &[(&str, &str)]) -> (u16, String) {
    let r = c.call(action, params).await.unwrap();
    (r.status, r.code().unwrap_or("").to_owned())
}

/// Creates a key of `spec`/`usage`; returns its id and its one version.
async fn asym_key(c: &mut Client, spec: &str, usage: &str) -> (String, String) {
    let r = ok(
        c,
        "CreateKey",
        &[("KeySpec", spec), ("KeyUsage", usage), ("Description", spec)],
    )
    .await;
    let meta = &r.body["KeyMetadata"];
    assert_eq!(meta["KeySpec"], spec, "{r:?}");
    assert_eq!(meta["KeyUsage"], usage, "{r:?}");
    let id = meta["KeyId"].as_str().unwrap().to_owned();
    let r = ok(c, "ListKeyVersions", &[("KeyId", &id)]).await;
    let versions = r.body["KeyVersions"]["KeyVersion"].as_array().unwrap();
    assert_eq!(versions.len(), 1, "{r:?}");
    let v = versions[0]["KeyVersionId"].as_str().unwrap().to_owned();
    (id, v)
}

async fn verify(c: &mut Client, key: &str, version: &str, digest: &str, sig: &str) -> Answer {
    ok(
        c,
        "AsymmetricVerify",
        &[
            ("KeyId", key),
            ("KeyVersionId", version),
            ("Algorithm", "ECDSA_SHA_256"),
            ("Digest", digest),
            ("Value", sig),
        ],
    )
    .await
}

fn sha256_b64(msg: &[u8]) -> String {
    B64.encode(sha2::Sha256::digest(msg))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_are_checked_before_the_engine() {
    let (running, addr) = start().await;
    let mut c = Client::connect(addr, AK, AccessKeySecret::new(SECRET), SignatureVersion::V2)
        .await
        .unwrap();
    let key = "00000000-0000-4000-8000-000000000000";
    let ver = "11111111-0000-4000-8000-000000000000";
    let digest = sha256_b64(b"m");
    // Served: none of them is InvalidAction.NotFound.
    for action in [
        "AsymmetricSign",
        "AsymmetricVerify",
        "AsymmetricEncrypt",
        "AsymmetricDecrypt",
        "GetPublicKey",
    ] {
        let (status, code) = code(&mut c, action, &[("KeyId", key)]).await;
        assert_eq!((status, code.as_str()), (400, "MissingParameter"), "{action}");
    }
    let cases: &[Case<'_>] = &[
        (
            "AsymmetricSign",
            &[
                ("KeyId", key),
                ("Algorithm", "ECDSA_SHA_256"),
                ("Digest", &digest),
            ],
            "MissingParameter", // KeyVersionId
        ),
        (
            "AsymmetricSign",
            &[("KeyId", key), ("KeyVersionId", ver), ("Digest", &digest)],
            "MissingParameter", // Algorithm
        ),
        (
            "AsymmetricSign",
            &[
                ("KeyId", key),
                ("KeyVersionId", ver),
                ("Algorithm", "ECDSA_SHA_256"),
            ],
            "MissingParameter", // Digest
        ),
        (
            "AsymmetricSign",
            &[
                ("KeyId", key),
                ("KeyVersionId", ver),
                ("Algorithm", "ECDSA_SHA_256"),
                ("Digest", "not base64!"),
            ],
            "InvalidParameter",
        ),
        (
            "AsymmetricSign",
            &[
                ("KeyId", key),
                ("KeyVersionId", ver),
                ("Algorithm", "ECDSA_SHA_512"),
                ("Digest", &digest),
            ],
            "InvalidParameter", // not one of the spec's algorithms
        ),
        (
            "AsymmetricVerify",
            &[
                ("KeyId", key),
                ("KeyVersionId", ver),
                ("Algorithm", "ECDSA_SHA_256"),
                ("Digest", &digest),
            ],
            "MissingParameter", // Value
        ),
        (
            "AsymmetricVerify",
            &[
                ("KeyId", key),
                ("KeyVersionId", ver),
                ("Algorithm", "ECDSA_SHA_256"),
                ("Digest", &digest),
                ("Value", "%%%"),
            ],
            "InvalidParameter",
        ),
        (
            "AsymmetricEncrypt",
            &[
                ("KeyId", key),
                ("KeyVersionId", ver),
                ("Algorithm", "RSAES_OAEP_SHA_256"),
            ],
            "MissingParameter", // Plaintext
        ),
        (
            "AsymmetricEncrypt",
            &[
                ("KeyId", key),
                ("KeyVersionId", ver),
                ("Algorithm", "RSAES_OAEP_SHA_256"),
                ("Plaintext", "Hello KMS"), // text, not Base64
            ],
            "InvalidParameter",
        ),
        (
            "AsymmetricDecrypt",
            &[
                ("KeyId", key),
                ("KeyVersionId", ver),
                ("Algorithm", "RSAES_OAEP_SHA_256"),
                ("CiphertextBlob", "a b"),
            ],
            "InvalidParameter",
        ),
        ("GetPublicKey", &[("KeyId", key)], "MissingParameter"),
    ];
    for (action, params, want) in cases {
        let (_, got) = code(&mut c, action, params).await;
        assert_eq!(&got, want, "{action} {params:?}");
    }
    drop(running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_verify_encrypt_decrypt_and_public_keys() {
    let (running, addr) = start().await;
    for sv in [SignatureVersion::V2, SignatureVersion::V3] {
        let mut c = Client::connect(addr, AK, AccessKeySecret::new(SECRET), sv)
            .await
            .unwrap();

        // EC_P256, SIGN/VERIFY: sign a SHA-256 digest, verify true and false (JSON booleans).
        let (ec, ec_v) = asym_key(&mut c, "EC_P256", "SIGN/VERIFY").await;
        let digest = sha256_b64(b"the message");
        let r = ok(
            &mut c,
            "AsymmetricSign",
            &[
                ("KeyId", &ec),
                ("KeyVersionId", &ec_v),
                ("Algorithm", "ECDSA_SHA_256"),
                ("Digest", &digest),
            ],
        )
        .await;
        assert_eq!(
            (r.str("KeyId"), r.str("KeyVersionId")),
            (ec.as_str(), ec_v.as_str())
        );
        let sig = r.str("Value").to_owned();
        let der = B64.decode(&sig).unwrap();
        assert_eq!(der[0], 0x30, "an ECDSA signature is a DER SEQUENCE");
        let r = verify(&mut c, &ec, &ec_v, &digest, &sig).await;
        assert_eq!(r.body["Value"], serde_json::Value::Bool(true), "{r:?}");
        assert_eq!(r.str("KeyVersionId"), ec_v);
        let r = verify(&mut c, &ec, &ec_v, &sha256_b64(b"another message"), &sig).await;
        assert_eq!(r.body["Value"], serde_json::Value::Bool(false), "{r:?}");
        // A malformed signature is `false`, not an error.
        let r = verify(&mut c, &ec, &ec_v, &digest, &B64.encode(b"junk")).await;
        assert_eq!(r.body["Value"], serde_json::Value::Bool(false), "{r:?}");

        // GetPublicKey: a PEM SubjectPublicKeyInfo.
        let r = ok(&mut c, "GetPublicKey", &[("KeyId", &ec), ("KeyVersionId", &ec_v)]).await;
        let pem = r.str("PublicKey");
        assert!(
            pem.starts_with("-----BEGIN PUBLIC KEY-----\n")
                && pem.trim_end().ends_with("-----END PUBLIC KEY-----"),
            "{pem}"
        );
        assert_eq!(r.str("KeyVersionId"), ec_v);

        // Wrong algorithm or usage: Rejected.UnsupportedOperation; a digest of the wrong length:
        // InvalidParameter; an unknown version: Forbidden.KeyVersionNotFound.
        let (status, code_) = code(
            &mut c,
            "AsymmetricSign",
            &[
                ("KeyId", &ec),
                ("KeyVersionId", &ec_v),
                ("Algorithm", "RSA_PSS_SHA_256"),
                ("Digest", &digest),
            ],
        )
        .await;
        assert_eq!((status, code_.as_str()), (400, "Rejected.UnsupportedOperation"));
        let (_, code_) = code(
            &mut c,
            "AsymmetricEncrypt",
            &[
                ("KeyId", &ec),
                ("KeyVersionId", &ec_v),
                ("Algorithm", "RSAES_OAEP_SHA_256"),
                ("Plaintext", &B64.encode(b"x")),
            ],
        )
        .await;
        assert_eq!(code_, "Rejected.UnsupportedOperation");
        let (_, code_) = code(
            &mut c,
            "AsymmetricSign",
            &[
                ("KeyId", &ec),
                ("KeyVersionId", &ec_v),
                ("Algorithm", "ECDSA_SHA_256"),
                ("Digest", &B64.encode([7u8; 20])),
            ],
        )
        .await;
        assert_eq!(code_, "InvalidParameter");
        let (status, code_) = code(
            &mut c,
            "GetPublicKey",
            &[
                ("KeyId", &ec),
                ("KeyVersionId", "00000000-0000-4000-8000-000000000000"),
            ],
        )
        .await;
        assert_eq!((status, code_.as_str()), (404, "Forbidden.KeyVersionNotFound"));

        // An unknown key.
        let (status, code_) = code(
            &mut c,
            "GetPublicKey",
            &[
                ("KeyId", "00000000-0000-4000-8000-000000000000"),
                ("KeyVersionId", &ec_v),
            ],
        )
        .await;
        assert_eq!((status, code_.as_str()), (404, "Forbidden.KeyNotFound"));

        // RSA_2048, ENCRYPT/DECRYPT: OAEP round trips with both hashes.
        let (rsa, rsa_v) = asym_key(&mut c, "RSA_2048", "ENCRYPT/DECRYPT").await;
        for alg in ["RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1"] {
            let pt = B64.encode(b"Hello asymmetric KMS");
            let r = ok(
                &mut c,
                "AsymmetricEncrypt",
                &[
                    ("KeyId", &rsa),
                    ("KeyVersionId", &rsa_v),
                    ("Algorithm", alg),
                    ("Plaintext", &pt),
                ],
            )
            .await;
            let ct = r.str("CiphertextBlob").to_owned();
            assert_eq!(B64.decode(&ct).unwrap().len(), 256, "{alg}: one RSA-2048 block");
            let r = ok(
                &mut c,
                "AsymmetricDecrypt",
                &[
                    ("KeyId", &rsa),
                    ("KeyVersionId", &rsa_v),
                    ("Algorithm", alg),
                    ("CiphertextBlob", &ct),
                ],
            )
            .await;
            assert_eq!(r.str("Plaintext"), pt, "{alg}");
            assert_eq!(
                (r.str("KeyId"), r.str("KeyVersionId")),
                (rsa.as_str(), rsa_v.as_str())
            );
        }
        // Over the limit (190 bytes for OAEP-SHA-256 on RSA-2048): InvalidParameter.
        let (_, code_) = code(
            &mut c,
            "AsymmetricEncrypt",
            &[
                ("KeyId", &rsa),
                ("KeyVersionId", &rsa_v),
                ("Algorithm", "RSAES_OAEP_SHA_256"),
                ("Plaintext", &B64.encode([1u8; 191])),
            ],
        )
        .await;
        assert_eq!(code_, "InvalidParameter");
        // Signing with an ENCRYPT/DECRYPT key: Rejected.UnsupportedOperation.
        let (_, code_) = code(
            &mut c,
            "AsymmetricSign",
            &[
                ("KeyId", &rsa),
                ("KeyVersionId", &rsa_v),
                ("Algorithm", "RSA_PSS_SHA_256"),
                ("Digest", &digest),
            ],
        )
        .await;
        assert_eq!(code_, "Rejected.UnsupportedOperation");

        // CreateKeyVersion of an asymmetric key: a second version with its own key pair; both sign.
        let r = ok(&mut c, "CreateKeyVersion", &[("KeyId", &ec)]).await;
        let ec_v2 = r.body["KeyVersion"]["KeyVersionId"].as_str().unwrap().to_owned();
        assert_ne!(ec_v2, ec_v);
        let r = ok(&mut c, "ListKeyVersions", &[("KeyId", &ec)]).await;
        assert_eq!(r.body["TotalCount"], 2, "{r:?}");
        let pem1 = ok(&mut c, "GetPublicKey", &[("KeyId", &ec), ("KeyVersionId", &ec_v)])
            .await
            .str("PublicKey")
            .to_owned();
        let pem2 = ok(
            &mut c,
            "GetPublicKey",
            &[("KeyId", &ec), ("KeyVersionId", &ec_v2)],
        )
        .await
        .str("PublicKey")
        .to_owned();
        assert_ne!(pem1, pem2, "a new version is a new key pair");
        let r = ok(
            &mut c,
            "AsymmetricSign",
            &[
                ("KeyId", &ec),
                ("KeyVersionId", &ec_v2),
                ("Algorithm", "ECDSA_SHA_256"),
                ("Digest", &digest),
            ],
        )
        .await;
        let sig2 = r.str("Value").to_owned();
        // The old version's signature still verifies under the old version, not under the new one.
        let r = verify(&mut c, &ec, &ec_v, &digest, &sig).await;
        assert_eq!(r.body["Value"], serde_json::Value::Bool(true));
        let r = verify(&mut c, &ec, &ec_v2, &digest, &sig).await;
        assert_eq!(r.body["Value"], serde_json::Value::Bool(false));
        let r = verify(&mut c, &ec, &ec_v2, &digest, &sig2).await;
        assert_eq!(r.body["Value"], serde_json::Value::Bool(true));

        // Disabled: the state matrix applies (Rejected.Disabled, 409).
        ok(&mut c, "DisableKey", &[("KeyId", &ec)]).await;
        let (status, code_) = code(
            &mut c,
            "AsymmetricSign",
            &[
                ("KeyId", &ec),
                ("KeyVersionId", &ec_v),
                ("Algorithm", "ECDSA_SHA_256"),
                ("Digest", &digest),
            ],
        )
        .await;
        assert_eq!((status, code_.as_str()), (409, "Rejected.Disabled"));
    }
    drop(running);
}
