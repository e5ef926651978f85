//! Asymmetric keys: sign a release with EC_P256 and check it with nothing but the public key, encrypt
//! to an RSA key, and sign with the Chinese national algorithm SM2 — all on the embedded default.
//!
//! Asymmetric keys have no primary version: each call names its `KeyVersionId`, and a new version
//! (CreateKeyVersion) is a new key pair whose predecessors keep verifying.
//!
//! Run with `cargo run --example asymmetric`.

use kmskit::crypto::asym;
use kmskit::key::{AsymmetricAlgorithm, KeySpec, KeyUsage};
use kmskit::{Caller, CreateKey, Error, KeyProvider, KeyRef, MemoryKms, MemoryKmsExt, PageRequest};
use sha2::{Digest as _, Sha256};

fn main() -> Result<(), Error> {
    kmskit::block_on(run())
}

async fn first_version(
    kms: &MemoryKms,
    caller: &Caller,
    key: &KeyRef,
) -> Result<kmskit::KeyVersionId, Error> {
    let page = kms.list_key_versions(caller, key, PageRequest::default()).await?;
    page.items
        .first()
        .map(|v| v.key_version_id.clone())
        .ok_or_else(|| Error::Internal("a new key has a version".into()))
}

async fn run() -> Result<(), Error> {
    let kms = MemoryKms::new_memory();
    let caller = Caller::local();

    // 1. ECDSA P-256: sign the SHA-256 digest of a release; anyone with the PEM can verify it.
    let signer = kms
        .create_key(
            &caller,
            CreateKey::new("release signing").key_spec(KeySpec::EcP256),
        )
        .await?;
    let key = KeyRef::Id(signer.key_id.clone());
    let v = first_version(&kms, &caller, &key).await?;
    let release = b"kmskit-1.0.0.tar.gz contents";
    let digest = Sha256::digest(release);
    let sig = kms
        .asymmetric_sign(&caller, &key, &v, AsymmetricAlgorithm::EcdsaSha256, &digest)
        .await?;
    let pem = kms.get_public_key(&caller, &key, &v).await?.pem;
    println!(
        "EC_P256 {} signed {} bytes: {}-byte DER signature",
        signer.key_usage,
        release.len(),
        sig.signature.len()
    );
    print!("{pem}");
    // Offline verification: only the public key, no KMS.
    let spki = asym::pem_to_spki(&pem)?;
    let offline = asym::verify_digest(
        KeySpec::EcP256,
        &spki,
        AsymmetricAlgorithm::EcdsaSha256,
        &digest,
        &sig.signature,
    )?;
    let tampered = asym::verify_digest(
        KeySpec::EcP256,
        &spki,
        AsymmetricAlgorithm::EcdsaSha256,
        &Sha256::digest(b"tampered"),
        &sig.signature,
    )?;
    println!("verified offline with the PEM: {offline}; a tampered release: {tampered}");

    // 2. RSA-OAEP: encrypt a small secret to a key whose private half never leaves the KMS.
    let rsa = kms
        .create_key(
            &caller,
            CreateKey::new("inbox")
                .key_spec(KeySpec::Rsa2048)
                .key_usage(KeyUsage::EncryptDecrypt),
        )
        .await?;
    let rkey = KeyRef::Id(rsa.key_id.clone());
    let rv = first_version(&kms, &caller, &rkey).await?;
    let ct = kms
        .asymmetric_encrypt(
            &caller,
            &rkey,
            &rv,
            AsymmetricAlgorithm::RsaesOaepSha256,
            b"wire-transfer PIN 4711",
        )
        .await?;
    let pt = kms
        .asymmetric_decrypt(
            &caller,
            &rkey,
            &rv,
            AsymmetricAlgorithm::RsaesOaepSha256,
            &ct.ciphertext,
        )
        .await?;
    println!(
        "RSA_2048 OAEP-SHA256: {}-byte ciphertext, decrypted: {}",
        ct.ciphertext.len(),
        String::from_utf8_lossy(&pt.plaintext)
    );
    match kms
        .asymmetric_sign(&caller, &rkey, &rv, AsymmetricAlgorithm::RsaPssSha256, &digest)
        .await
    {
        Err(e) => println!("signing with an ENCRYPT/DECRYPT key -> {}", e.code()),
        Ok(_) => return Err(Error::Internal("an encryption key signed".into())),
    }

    // 3. SM2 (GB/T 32918): the digest is SM3(Z(A) ‖ M) for the signer's id.
    let sm2 = kms
        .create_key(
            &caller,
            CreateKey::new("SM2 signing")
                .key_spec(KeySpec::EcSm2)
                .key_usage(KeyUsage::SignVerify),
        )
        .await?;
    let skey = KeyRef::Id(sm2.key_id.clone());
    let sv = first_version(&kms, &caller, &skey).await?;
    let sm2_spki = asym::pem_to_spki(&kms.get_public_key(&caller, &skey, &sv).await?.pem)?;
    let e = asym::sm2_digest(&sm2_spki, asym::SM2_DEFAULT_ID, b"contract #42")?;
    let s = kms
        .asymmetric_sign(&caller, &skey, &sv, AsymmetricAlgorithm::Sm2Dsa, &e)
        .await?;
    let ok = kms
        .asymmetric_verify(&caller, &skey, &sv, AsymmetricAlgorithm::Sm2Dsa, &e, &s.signature)
        .await?;
    println!("EC_SM2 SM2DSA over SM3(Z(A)||M): verified {}", ok.valid);
    Ok(())
}
