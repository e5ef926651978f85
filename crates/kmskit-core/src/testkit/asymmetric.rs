//! Asymmetric and SM4 cases: AsymmetricSign/Verify/Encrypt/Decrypt, GetPublicKey, versions of
//! asymmetric keys, the usage rules of spec §6, and `Aliyun_SM4` keys through the symmetric API.
//!
//! These cases check the contract (round trips, refusals, codes); that the bytes are the standard
//! algorithms is checked against Wycheproof, the GB/T examples and independent implementations in
//! kmskit-core's own tests.

use sha2::{Digest as _, Sha256};

use crate::error::ErrorCode;
use crate::id::{KeyRef, KeyVersionId};
use crate::key::{AsymmetricAlgorithm, KeySpec, KeyUsage};
use crate::provider::{CreateKey, PageRequest};

use super::Fixture;
use super::support::{by_id, create_with, ctx, err, not_applicable, ok, skip};

const SIGNING: &[(KeySpec, &[AsymmetricAlgorithm])] = &[
    (
        KeySpec::Rsa2048,
        &[
            AsymmetricAlgorithm::RsaPssSha256,
            AsymmetricAlgorithm::RsaPkcs1Sha256,
        ],
    ),
    (
        KeySpec::Rsa3072,
        &[
            AsymmetricAlgorithm::RsaPssSha256,
            AsymmetricAlgorithm::RsaPkcs1Sha256,
        ],
    ),
    (KeySpec::EcP256, &[AsymmetricAlgorithm::EcdsaSha256]),
    (KeySpec::EcP256K, &[AsymmetricAlgorithm::EcdsaSha256]),
    (KeySpec::EcSm2, &[AsymmetricAlgorithm::Sm2Dsa]),
];

const ENCRYPTING: &[(KeySpec, &[AsymmetricAlgorithm])] = &[
    (
        KeySpec::Rsa2048,
        &[
            AsymmetricAlgorithm::RsaesOaepSha256,
            AsymmetricAlgorithm::RsaesOaepSha1,
        ],
    ),
    (
        KeySpec::Rsa3072,
        &[
            AsymmetricAlgorithm::RsaesOaepSha256,
            AsymmetricAlgorithm::RsaesOaepSha1,
        ],
    ),
    (KeySpec::EcSm2, &[AsymmetricAlgorithm::Sm2Pke]),
];

/// The most plaintext one AsymmetricEncrypt takes (spec §6).
fn max_plaintext(spec: KeySpec, alg: AsymmetricAlgorithm) -> usize {
    match (spec, alg) {
        (KeySpec::Rsa2048, AsymmetricAlgorithm::RsaesOaepSha256) => 190,
        (KeySpec::Rsa3072, AsymmetricAlgorithm::RsaesOaepSha256) => 318,
        (KeySpec::Rsa2048, AsymmetricAlgorithm::RsaesOaepSha1) => 214,
        (KeySpec::Rsa3072, AsymmetricAlgorithm::RsaesOaepSha1) => 342,
        _ => 6047,
    }
}

/// Creates a key of `spec` and `usage` and returns it with its one version; `None` when the fixture
/// says the provider does not hold the spec, after checking that CreateKey refuses it with
/// `Rejected.UnsupportedOperation`.
async fn asym_key(
    fx: &Fixture,
    case: &str,
    spec: KeySpec,
    usage: KeyUsage,
) -> Option<(KeyRef, KeyVersionId)> {
    let req = CreateKey::new(format!("kmskit testkit: {case} {spec}"))
        .key_spec(spec)
        .key_usage(usage);
    if !fx.capabilities().asymmetric_specs.contains(&spec) {
        let r = fx.provider().create_key(&fx.caller(), req).await;
        err(
            r,
            ErrorCode::UnsupportedOperation,
            format_args!("CreateKey {spec}, which the provider does not hold"),
        );
        not_applicable(case, &format!("the provider refuses {spec} keys, as it should"));
        return None;
    }
    let meta = create_with(fx, req, case).await;
    assert_eq!(meta.key_spec, spec, "KeySpec of the new key");
    assert_eq!(meta.key_usage, usage, "KeyUsage of the new key");
    assert_eq!(
        meta.primary_key_version, None,
        "asymmetric keys have no primary version"
    );
    let k = by_id(&meta.key_id);
    let versions = ok(
        fx.provider()
            .list_key_versions(&fx.caller(), &k, PageRequest::default())
            .await,
        "ListKeyVersions of an asymmetric key",
    );
    assert_eq!(versions.items.len(), 1, "a new asymmetric key has one version");
    Some((k, versions.items[0].key_version_id.clone()))
}

fn digest_of(msg: &[u8]) -> [u8; 32] {
    Sha256::digest(msg).into()
}

/// Every signing spec × algorithm: sign, verify, a flipped digest or signature verifies `false`, a
/// short digest is `InvalidParameter`, GetPublicKey is a PEM SubjectPublicKeyInfo, and the usage rules
/// (`Rejected.UnsupportedOperation` for encryption algorithms, another spec's algorithm, symmetric
/// Encrypt on the key, an unknown version).
///
/// # Panics
/// When the provider does not conform.
pub async fn asymmetric_sign_verify(fx: &Fixture) {
    let p = fx.provider();
    for (spec, algs) in SIGNING {
        let Some((k, v)) = asym_key(fx, "asymmetric_sign_verify", *spec, KeyUsage::SignVerify).await else {
            continue;
        };
        let pem = ok(
            p.get_public_key(&fx.caller(), &k, &v).await,
            format_args!("GetPublicKey {spec}"),
        );
        assert!(
            pem.pem.starts_with("-----BEGIN PUBLIC KEY-----\n")
                && pem.pem.trim_end().ends_with("-----END PUBLIC KEY-----"),
            "GetPublicKey returns a PEM SubjectPublicKeyInfo: {}",
            pem.pem
        );
        for alg in *algs {
            let what = format!("{spec} {alg}");
            let digest = digest_of(what.as_bytes());
            let s = ok(
                p.asymmetric_sign(&fx.caller(), &k, &v, *alg, &digest).await,
                format_args!("AsymmetricSign {what}"),
            );
            assert_eq!(s.key_version_id, v, "AsymmetricSign names the version");
            let check = |d: Vec<u8>, sig: Vec<u8>| {
                let (k, v) = (k.clone(), v.clone());
                async move {
                    ok(
                        p.asymmetric_verify(&fx.caller(), &k, &v, *alg, &d, &sig).await,
                        format_args!("AsymmetricVerify {spec} {alg}"),
                    )
                    .valid
                }
            };
            assert!(
                check(digest.to_vec(), s.signature.clone()).await,
                "{what}: verifies"
            );
            let mut d2 = digest;
            d2[0] ^= 1;
            assert!(
                !check(d2.to_vec(), s.signature.clone()).await,
                "{what}: other digest"
            );
            let mut s2 = s.signature.clone();
            let last = s2.len() - 1;
            s2[last] ^= 0x40;
            assert!(!check(digest.to_vec(), s2).await, "{what}: flipped signature");
            assert!(
                !check(digest.to_vec(), b"not a signature".to_vec()).await,
                "{what}: garbage"
            );
            err(
                p.asymmetric_sign(&fx.caller(), &k, &v, *alg, &digest[..31]).await,
                ErrorCode::InvalidParameter,
                format_args!("{what}: a 31-byte digest"),
            );
        }
        for wrong in [
            AsymmetricAlgorithm::RsaesOaepSha256,
            AsymmetricAlgorithm::Sm2Pke,
            if matches!(spec, KeySpec::Rsa2048 | KeySpec::Rsa3072) {
                AsymmetricAlgorithm::EcdsaSha256
            } else {
                AsymmetricAlgorithm::RsaPssSha256
            },
        ] {
            err(
                p.asymmetric_sign(&fx.caller(), &k, &v, wrong, &[7; 32]).await,
                ErrorCode::UnsupportedOperation,
                format_args!("AsymmetricSign {wrong} with a {spec} SIGN/VERIFY key"),
            );
        }
        err(
            p.asymmetric_encrypt(&fx.caller(), &k, &v, AsymmetricAlgorithm::RsaesOaepSha256, b"x")
                .await,
            ErrorCode::UnsupportedOperation,
            format_args!("AsymmetricEncrypt with a {spec} SIGN/VERIFY key"),
        );
        err(
            p.encrypt(&fx.caller(), &k, b"x", &ctx([])).await,
            ErrorCode::UnsupportedOperation,
            format_args!("Encrypt with an asymmetric {spec} key"),
        );
        let unknown = KeyVersionId::generate();
        err(
            p.asymmetric_sign(&fx.caller(), &k, &unknown, algs[0], &[7; 32])
                .await,
            ErrorCode::KeyVersionNotFound,
            format_args!("AsymmetricSign {spec} with an unknown version"),
        );
    }
}

/// Every encrypting spec × algorithm: round trips at 1 byte and the maximum, one byte more refused,
/// a flipped ciphertext refused, each encryption randomised, signing refused on the key.
///
/// # Panics
/// When the provider does not conform.
pub async fn asymmetric_encrypt_decrypt(fx: &Fixture) {
    let p = fx.provider();
    for (spec, algs) in ENCRYPTING {
        let Some((k, v)) = asym_key(fx, "asymmetric_encrypt_decrypt", *spec, KeyUsage::EncryptDecrypt).await
        else {
            continue;
        };
        for alg in *algs {
            let max = max_plaintext(*spec, *alg);
            for len in [1, max] {
                let pt = super::support::pattern(len, len as u8);
                let what = format!("{spec} {alg} {len} bytes");
                let e = ok(
                    p.asymmetric_encrypt(&fx.caller(), &k, &v, *alg, &pt).await,
                    format_args!("AsymmetricEncrypt {what}"),
                );
                let e2 = ok(
                    p.asymmetric_encrypt(&fx.caller(), &k, &v, *alg, &pt).await,
                    format_args!("AsymmetricEncrypt {what} again"),
                );
                assert_ne!(e.ciphertext, e2.ciphertext, "{what}: encryption is randomised");
                let d = ok(
                    p.asymmetric_decrypt(&fx.caller(), &k, &v, *alg, &e.ciphertext)
                        .await,
                    format_args!("AsymmetricDecrypt {what}"),
                );
                assert_eq!(&d.plaintext[..], &pt[..], "{what}: round trip");
                let mut bad = e.ciphertext.clone();
                let mid = bad.len() / 2;
                bad[mid] ^= 1;
                let r = p.asymmetric_decrypt(&fx.caller(), &k, &v, *alg, &bad).await;
                assert!(r.is_err(), "{what}: a flipped ciphertext must not decrypt");
            }
            err(
                p.asymmetric_encrypt(&fx.caller(), &k, &v, *alg, &vec![0; max + 1])
                    .await,
                ErrorCode::InvalidParameter,
                format_args!("AsymmetricEncrypt {spec} {alg}: {} bytes", max + 1),
            );
        }
        let sign_alg = if *spec == KeySpec::EcSm2 {
            AsymmetricAlgorithm::Sm2Dsa
        } else {
            AsymmetricAlgorithm::RsaPssSha256
        };
        err(
            p.asymmetric_sign(&fx.caller(), &k, &v, sign_alg, &[7; 32]).await,
            ErrorCode::UnsupportedOperation,
            format_args!("AsymmetricSign with a {spec} ENCRYPT/DECRYPT key"),
        );
    }
}

/// Asymmetric keys and the key lifecycle: a new version (CreateKeyVersion) is a new key pair and the
/// old one still works; a disabled key refuses every asymmetric action with `Rejected.Disabled`;
/// automatic rotation is refused; EC_P256 cannot be ENCRYPT/DECRYPT; symmetric keys refuse the
/// asymmetric actions.
///
/// # Panics
/// When the provider does not conform.
pub async fn asymmetric_lifecycle(fx: &Fixture) {
    let p = fx.provider();
    let spec = fx
        .capabilities()
        .asymmetric_specs
        .iter()
        .copied()
        .find(|s| s.allowed_usages().contains(&KeyUsage::SignVerify));
    let Some(spec) = spec else {
        skip("asymmetric_lifecycle", "the provider holds no signing specs");
        return;
    };
    let alg = SIGNING
        .iter()
        .find(|(s, _)| *s == spec)
        .map(|(_, a)| a[0])
        .expect("a signing algorithm");
    let Some((k, v1)) = asym_key(fx, "asymmetric_lifecycle", spec, KeyUsage::SignVerify).await else {
        return;
    };
    let digest = digest_of(b"lifecycle");
    let s1 = ok(
        p.asymmetric_sign(&fx.caller(), &k, &v1, alg, &digest).await,
        "sign with version 1",
    );
    if let Some(rot) = fx.rotator() {
        let v2 = ok(
            rot.rotate(&fx.caller(), &k).await,
            "CreateKeyVersion of an asymmetric key",
        )
        .key_version_id;
        assert_ne!(v1, v2, "a new version id");
        let pk1 = ok(p.get_public_key(&fx.caller(), &k, &v1).await, "GetPublicKey v1").pem;
        let pk2 = ok(p.get_public_key(&fx.caller(), &k, &v2).await, "GetPublicKey v2").pem;
        assert_ne!(pk1, pk2, "a new version is a new key pair");
        let on_v2 = ok(
            p.asymmetric_verify(&fx.caller(), &k, &v2, alg, &digest, &s1.signature)
                .await,
            "verify a v1 signature under v2",
        );
        assert!(!on_v2.valid, "a v1 signature does not verify under v2");
        let on_v1 = ok(
            p.asymmetric_verify(&fx.caller(), &k, &v1, alg, &digest, &s1.signature)
                .await,
            "verify a v1 signature under v1 after a new version",
        );
        assert!(on_v1.valid, "old versions keep working");
        let meta = ok(p.describe_key(&fx.caller(), &k).await, "DescribeKey");
        assert_eq!(meta.primary_key_version, None, "still no primary version");
        err(
            rot.set_rotation_policy(
                &fx.caller(),
                &k,
                crate::RotationPolicy::every_days(30).expect("30 days"),
            )
            .await,
            ErrorCode::UnsupportedOperation,
            "UpdateRotationPolicy on an asymmetric key",
        );
    } else {
        skip("asymmetric_lifecycle", "no Rotator: CreateKeyVersion not checked");
    }
    if fx.capabilities().enforces_key_states {
        ok(p.disable_key(&fx.caller(), &k).await, "DisableKey");
        err(
            p.asymmetric_sign(&fx.caller(), &k, &v1, alg, &digest).await,
            ErrorCode::Disabled,
            "AsymmetricSign on a disabled key",
        );
        err(
            p.asymmetric_verify(&fx.caller(), &k, &v1, alg, &digest, &s1.signature)
                .await,
            ErrorCode::Disabled,
            "AsymmetricVerify on a disabled key",
        );
        err(
            p.get_public_key(&fx.caller(), &k, &v1).await,
            ErrorCode::Disabled,
            "GetPublicKey on a disabled key",
        );
        ok(p.enable_key(&fx.caller(), &k).await, "EnableKey");
        ok(
            p.asymmetric_sign(&fx.caller(), &k, &v1, alg, &digest).await,
            "sign again once enabled",
        );
    }
    let r = p
        .create_key(
            &fx.caller(),
            CreateKey::new("kmskit testkit: EC_P256 cannot encrypt")
                .key_spec(KeySpec::EcP256)
                .key_usage(KeyUsage::EncryptDecrypt),
        )
        .await;
    assert!(r.is_err(), "EC_P256 with ENCRYPT/DECRYPT must be refused");
    let aes = create_with(fx, CreateKey::new("kmskit testkit: AES vs asymmetric"), "aes").await;
    let aes_ref = by_id(&aes.key_id);
    let aes_v = aes.primary_key_version.clone().expect("a primary version");
    err(
        p.get_public_key(&fx.caller(), &aes_ref, &aes_v).await,
        ErrorCode::UnsupportedOperation,
        "GetPublicKey of a symmetric key",
    );
    err(
        p.asymmetric_encrypt(
            &fx.caller(),
            &aes_ref,
            &aes_v,
            AsymmetricAlgorithm::RsaesOaepSha256,
            b"x",
        )
        .await,
        ErrorCode::UnsupportedOperation,
        "AsymmetricEncrypt with a symmetric key",
    );
}

/// `Aliyun_SM4` keys through the symmetric API: Encrypt/Decrypt, GenerateDataKey, ReEncrypt to and
/// from AES, context binding, a flipped blob refused. A provider without SM4 (per its capabilities)
/// must refuse CreateKey with `Rejected.UnsupportedOperation`.
///
/// # Panics
/// When the provider does not conform.
pub async fn sm4_keys(fx: &Fixture) {
    let p = fx.provider();
    let req = CreateKey::new("kmskit testkit: SM4").key_spec(KeySpec::Sm4);
    if !fx.capabilities().sm4 {
        err(
            p.create_key(&fx.caller(), req).await,
            ErrorCode::UnsupportedOperation,
            "CreateKey Aliyun_SM4 where the provider has no SM4",
        );
        not_applicable("sm4_keys", "the provider refuses SM4 keys, as it should");
        return;
    }
    let key = create_with(fx, req, "sm4_keys").await;
    assert_eq!(key.key_spec, KeySpec::Sm4);
    assert_eq!(key.key_usage, KeyUsage::EncryptDecrypt);
    assert!(
        key.primary_key_version.is_some(),
        "SM4 keys have a primary version"
    );
    let k = by_id(&key.key_id);
    let c = ctx([("case", "sm4")]);
    for len in [0usize, 1, 16, 1000, fx.capabilities().max_plaintext] {
        let pt = super::support::pattern(len, 3);
        let e = ok(p.encrypt(&fx.caller(), &k, &pt, &c).await, "Encrypt SM4");
        let d = ok(
            p.decrypt(&fx.caller(), &e.ciphertext_blob, &c).await,
            "Decrypt SM4",
        );
        assert_eq!(&d.plaintext[..], &pt[..], "SM4 round trip of {len} bytes");
        err(
            p.decrypt(&fx.caller(), &e.ciphertext_blob, &ctx([("case", "other")]))
                .await,
            ErrorCode::InvalidParameter,
            "SM4 Decrypt under another context",
        );
    }
    let e = ok(p.encrypt(&fx.caller(), &k, b"flip me", &c).await, "Encrypt SM4");
    let mut raw = e.ciphertext_blob.as_bytes().to_vec();
    let last = raw.len() - 1;
    raw[last] ^= 1;
    let flipped = crate::CiphertextBlob::from_bytes(raw);
    assert!(
        p.decrypt(&fx.caller(), &flipped, &c).await.is_err(),
        "a flipped SM4 blob must not decrypt"
    );
    let dk = ok(
        p.generate_data_key(&fx.caller(), &k, crate::DataKeyLength::default(), &c)
            .await,
        "GenerateDataKey under SM4",
    );
    let back = ok(
        p.decrypt_data_key(&fx.caller(), &dk.ciphertext_blob, &c).await,
        "decrypt an SM4-wrapped data key",
    );
    assert_eq!(
        back.expose_secret(),
        dk.plaintext.expose_secret(),
        "data key round trip"
    );
    let aes = create_with(fx, CreateKey::new("kmskit testkit: AES for SM4"), "aes").await;
    let moved = ok(
        p.re_encrypt(&fx.caller(), &e.ciphertext_blob, &c, &by_id(&aes.key_id), &c)
            .await,
        "ReEncrypt SM4 -> AES",
    );
    let home = ok(
        p.re_encrypt(&fx.caller(), &moved.ciphertext_blob, &c, &k, &c)
            .await,
        "ReEncrypt AES -> SM4",
    );
    let d = ok(
        p.decrypt(&fx.caller(), &home.ciphertext_blob, &c).await,
        "Decrypt",
    );
    assert_eq!(&d.plaintext[..], b"flip me");
}
