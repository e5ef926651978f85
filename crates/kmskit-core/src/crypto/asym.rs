//! Software asymmetric cryptography (feature `asymmetric`): RSA, ECDSA, SM2 and SM3.
//!
//! Every signature operation takes a **pre-hashed 32-byte digest**, as the model service's
//! AsymmetricSign/AsymmetricVerify do: SHA-256 of the message for the RSA and ECDSA algorithms, and
//! `e = SM3(Z(A) ‖ M)` for SM2DSA (see [`sm2_digest`]). Keys travel as PKCS#8 DER (private) and DER
//! SubjectPublicKeyInfo (public); [`spki_to_pem`] gives the PEM that GetPublicKey returns.
//!
//! # Which crate does what, and why
//!
//! | Spec | Algorithms | Crate |
//! |---|---|---|
//! | `RSA_2048`, `RSA_3072` | `RSA_PSS_SHA_256` (MGF1-SHA-256, salt 32), `RSA_PKCS1_SHA_256`, `RSAES_OAEP_SHA_256`, `RSAES_OAEP_SHA_1` | aws-lc-rs |
//! | `EC_P256`, `EC_P256K` | `ECDSA_SHA_256` (DER signatures) | aws-lc-rs |
//! | `EC_SM2` | `SM2DSA`, `SM2PKE` (DER C1C3C2 ciphertext, GM/T 0009) | RustCrypto `sm2` (+ `sm3`) |
//!
//! - **aws-lc-rs** (already the AEAD engine's backend) signs and verifies a caller-supplied digest
//!   (`RsaKeyPair::sign_digest`, `EcdsaKeyPair::sign_digest`, `verify_digest` over a
//!   `Digest::import_less_safe`), covers secp256k1 as well as P-256, and its RSA (AWS-LC: constant-time
//!   and blinded) decrypts OAEP without the Marvin timing side channel that the pure-Rust `rsa` crate
//!   still has (RUSTSEC-2023-0071). The `rsa` crate is therefore not used at all; neither are `p256`,
//!   `k256` or `ecdsa`.
//! - **aws-lc-rs has neither SM2 nor SM3**, so `EC_SM2` uses RustCrypto `sm2` 0.14 (curve arithmetic,
//!   PKCS#8/SPKI with the `1.2.156.10197.1.301` curve OID, the DER ciphertext codec, and the verifier and
//!   encryptor, which handle public data only) and `sm3`. Signing and decryption with the *private* key
//!   are written here on `sm2`'s field and point arithmetic (GB/T 32918.2 §6.1, GB/T 32918.4 §7.1):
//!   `sm2`'s `SigningKey`/`DecryptingKey` do not zeroize their scalar on drop, whereas the
//!   `sm2::SecretKey` kept here does, and our decryption zeroizes a plaintext that fails its C3 check.
//!   The GB/T 32918.5 examples (fixed k) pin both paths in the tests.
//!
//! Signatures: DER `SEQUENCE { r, s }` for ECDSA and SM2DSA, raw `k`-byte strings for RSA.

use std::fmt;

use aws_lc_rs::digest::{Digest, SHA256};
use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::{
    KeySize, OAEP_SHA1_MGF1SHA1, OAEP_SHA256_MGF1SHA256, OaepAlgorithm, OaepPrivateDecryptingKey,
    OaepPublicEncryptingKey, PrivateDecryptingKey, PublicEncryptingKey,
};
use aws_lc_rs::signature::{
    self as awssig, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P256K1_SHA256_ASN1,
    ECDSA_P256K1_SHA256_ASN1_SIGNING, EcdsaKeyPair, EcdsaSigningAlgorithm, KeyPair as _,
    RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, RSA_PSS_2048_8192_SHA256, RSA_PSS_SHA256, RsaKeyPair,
    UnparsedPublicKey, VerificationAlgorithm,
};
use base64::Engine as _;
use sm2::elliptic_curve::common::getrandom::SysRng;
use sm2::elliptic_curve::ops::Reduce;
use sm2::elliptic_curve::point::AffineCoordinates;
use sm2::elliptic_curve::{Generate, Group};
use sm2::pkcs8::der::Decode as _;
use sm2::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use sm3::Digest as _;
use subtle::ConstantTimeEq;
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};
use crate::key::{AsymmetricAlgorithm, KeySpec, KeyUsage};
use crate::secret::SecretBytes;

/// The SM2 signer id used when none is given (GM/T 0009 / GB/T 35276 default).
pub const SM2_DEFAULT_ID: &[u8] = b"1234567812345678";

/// Length of every digest the signature algorithms sign (SHA-256 or SM3).
pub const DIGEST_LEN: usize = 32;

/// The most SM2PKE encrypts in one call (the model service's limit).
pub const SM2_MAX_PLAINTEXT: usize = 6047;

/// Fresh private key for an asymmetric spec, as PKCS#8 DER.
///
/// # Errors
/// `Rejected.UnsupportedOperation` for symmetric specs; `InternalFailure` if the backend fails.
pub fn generate(spec: KeySpec) -> Result<SecretBytes> {
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            let size = if spec == KeySpec::Rsa2048 {
                KeySize::Rsa2048
            } else {
                KeySize::Rsa3072
            };
            let kp = RsaKeyPair::generate(size).map_err(|_| internal("RSA key generation"))?;
            let der = kp.as_der().map_err(|_| internal("RSA PKCS#8 encoding"))?;
            Ok(SecretBytes::from_slice(der.as_ref()))
        }
        KeySpec::EcP256 | KeySpec::EcP256K => {
            let kp = EcdsaKeyPair::generate(ec_signing(spec)?).map_err(|_| internal("EC key generation"))?;
            let doc = kp.to_pkcs8v1().map_err(|_| internal("EC PKCS#8 encoding"))?;
            Ok(SecretBytes::from_slice(doc.as_ref()))
        }
        KeySpec::EcSm2 => {
            let sk = sm2::SecretKey::try_generate().map_err(|_| internal("SM2 key generation"))?;
            let doc = sk.to_pkcs8_der().map_err(|_| internal("SM2 PKCS#8 encoding"))?;
            Ok(SecretBytes::from_slice(doc.as_bytes()))
        }
        other => Err(not_asymmetric(other)),
    }
}

enum Inner {
    Rsa {
        sign: RsaKeyPair,
        decrypt: OaepPrivateDecryptingKey,
    },
    Ec(EcdsaKeyPair),
    Sm2(sm2::SecretKey),
}

/// A parsed private key: Debug redacted, `Send + Sync`, secret state zeroized on drop (aws-lc frees
/// key memory with `OPENSSL_cleanse`; `sm2::SecretKey` zeroizes itself).
pub struct PrivateKey {
    spec: KeySpec,
    inner: Inner,
    spki: Vec<u8>,
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("spec", &self.spec)
            .finish_non_exhaustive()
    }
}

impl PrivateKey {
    /// Parses a PKCS#8 private key of `spec`.
    ///
    /// # Errors
    /// `InvalidParameter` when `der` is not a PKCS#8 key of that spec (wrong algorithm, curve or
    /// modulus size, or garbage); `Rejected.UnsupportedOperation` for symmetric specs.
    pub fn from_pkcs8(spec: KeySpec, der: &[u8]) -> Result<Self> {
        let bad = |what: &str| Error::invalid("PrivateKey", format!("not a {spec} PKCS#8 key: {what}"));
        match spec {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
                let sign = RsaKeyPair::from_pkcs8(der).map_err(|e| bad(&e.to_string()))?;
                let bits = rsa_bits(spec);
                if sign.public_modulus_len() * 8 != bits {
                    return Err(bad("wrong modulus size"));
                }
                let dk = PrivateDecryptingKey::from_pkcs8(der).map_err(|e| bad(&e.to_string()))?;
                let decrypt = OaepPrivateDecryptingKey::new(dk).map_err(|_| bad("OAEP"))?;
                let spki = der_of(sign.public_key().as_der())?;
                Ok(Self {
                    spec,
                    inner: Inner::Rsa { sign, decrypt },
                    spki,
                })
            }
            KeySpec::EcP256 | KeySpec::EcP256K => {
                let kp = EcdsaKeyPair::from_pkcs8(ec_signing(spec)?, der).map_err(|e| bad(&e.to_string()))?;
                let spki = der_of(kp.public_key().as_der())?;
                Ok(Self {
                    spec,
                    inner: Inner::Ec(kp),
                    spki,
                })
            }
            KeySpec::EcSm2 => {
                let sk = sm2::SecretKey::from_pkcs8_der(der).map_err(|e| bad(&e.to_string()))?;
                let spki = sk
                    .public_key()
                    .to_public_key_der()
                    .map_err(|_| internal("SM2 SPKI encoding"))?
                    .into_vec();
                Ok(Self {
                    spec,
                    inner: Inner::Sm2(sk),
                    spki,
                })
            }
            other => Err(not_asymmetric(other)),
        }
    }

    /// The key spec.
    pub fn spec(&self) -> KeySpec {
        self.spec
    }

    /// The public key as DER SubjectPublicKeyInfo.
    pub fn public_key_der(&self) -> &[u8] {
        &self.spki
    }

    /// Signs a 32-byte digest. ECDSA and SM2DSA signatures are DER, RSA ones raw.
    ///
    /// # Errors
    /// `Rejected.UnsupportedOperation` when `alg` is not a signature algorithm of this key's spec;
    /// `InvalidParameter` (`Digest`) for a digest that is not 32 bytes.
    pub fn sign_digest(&self, alg: AsymmetricAlgorithm, digest: &[u8]) -> Result<Vec<u8>> {
        check_alg(self.spec, alg, KeyUsage::SignVerify)?;
        check_digest(digest)?;
        match (&self.inner, alg) {
            (
                Inner::Rsa { sign, .. },
                AsymmetricAlgorithm::RsaPssSha256 | AsymmetricAlgorithm::RsaPkcs1Sha256,
            ) => {
                let padding: &'static dyn awssig::RsaEncoding = if alg == AsymmetricAlgorithm::RsaPssSha256 {
                    &RSA_PSS_SHA256
                } else {
                    &RSA_PKCS1_SHA256
                };
                let d = import_digest(digest)?;
                let mut sig = vec![0u8; sign.public_modulus_len()];
                sign.sign_digest(padding, &d, &mut sig)
                    .map_err(|_| internal("RSA signing"))?;
                Ok(sig)
            }
            (Inner::Ec(kp), AsymmetricAlgorithm::EcdsaSha256) => {
                let d = import_digest(digest)?;
                let sig = kp.sign_digest(&d).map_err(|_| internal("ECDSA signing"))?;
                Ok(sig.as_ref().to_vec())
            }
            (Inner::Sm2(sk), AsymmetricAlgorithm::Sm2Dsa) => sm2_sign(sk, digest),
            _ => Err(unsupported(self.spec, alg)),
        }
    }

    /// Decrypts a public-key ciphertext.
    ///
    /// # Errors
    /// [`Error::DecryptFailed`] when it does not decrypt (any malformed or tampered input);
    /// `Rejected.UnsupportedOperation` when `alg` is not an encryption algorithm of this key's spec.
    pub fn decrypt(&self, alg: AsymmetricAlgorithm, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
        check_alg(self.spec, alg, KeyUsage::EncryptDecrypt)?;
        match (&self.inner, alg) {
            (
                Inner::Rsa { decrypt, .. },
                AsymmetricAlgorithm::RsaesOaepSha256 | AsymmetricAlgorithm::RsaesOaepSha1,
            ) => {
                if ct.len() != decrypt.key_size_bytes() {
                    return Err(Error::DecryptFailed);
                }
                let mut out = Zeroizing::new(vec![0u8; decrypt.min_output_size()]);
                let n = decrypt
                    .decrypt(oaep(alg)?, ct, &mut out, None)
                    .map_err(|_| Error::DecryptFailed)?
                    .len();
                out.truncate(n);
                Ok(out)
            }
            (Inner::Sm2(sk), AsymmetricAlgorithm::Sm2Pke) => sm2_decrypt(sk, ct),
            _ => Err(unsupported(self.spec, alg)),
        }
    }
}

/// Verifies `sig` over a 32-byte `digest` with a DER SubjectPublicKeyInfo of `spec`.
///
/// `Ok(false)` for any signature that does not verify, malformed ones included.
///
/// # Errors
/// `Rejected.UnsupportedOperation` when `alg` is not a signature algorithm of `spec`;
/// `InvalidParameter` for a digest that is not 32 bytes (`Digest`) or a public key that is not a
/// `spec` SubjectPublicKeyInfo (`PublicKey`).
pub fn verify_digest(
    spec: KeySpec,
    spki_der: &[u8],
    alg: AsymmetricAlgorithm,
    digest: &[u8],
    sig: &[u8],
) -> Result<bool> {
    check_alg(spec, alg, KeyUsage::SignVerify)?;
    check_digest(digest)?;
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            rsa_public(spec, spki_der)?;
            let valg: &'static dyn VerificationAlgorithm = if alg == AsymmetricAlgorithm::RsaPssSha256 {
                &RSA_PSS_2048_8192_SHA256
            } else {
                &RSA_PKCS1_2048_8192_SHA256
            };
            let d = import_digest(digest)?;
            Ok(UnparsedPublicKey::new(valg, spki_der)
                .verify_digest(&d, sig)
                .is_ok())
        }
        KeySpec::EcP256 | KeySpec::EcP256K => {
            let valg = if spec == KeySpec::EcP256 {
                &ECDSA_P256_SHA256_ASN1
            } else {
                &ECDSA_P256K1_SHA256_ASN1
            };
            if spki_der.first() != Some(&0x30) {
                return Err(bad_public_key(spec));
            }
            let key = awssig::ParsedPublicKey::new(valg, spki_der).map_err(|_| bad_public_key(spec))?;
            let d = import_digest(digest)?;
            Ok(key.verify_digest_sig(&d, sig).is_ok())
        }
        KeySpec::EcSm2 => {
            use sm2::dsa::signature::hazmat::PrehashVerifier;
            let pk = sm2_public(spki_der)?;
            let id = std::str::from_utf8(SM2_DEFAULT_ID).map_err(|_| internal("SM2 id"))?;
            let vk = sm2::dsa::VerifyingKey::new(id, pk).map_err(|_| bad_public_key(spec))?;
            let Ok(sig) = sm2::dsa::Signature::from_der(sig) else {
                return Ok(false);
            };
            Ok(vk.verify_prehash(digest, &sig).is_ok())
        }
        other => Err(not_asymmetric(other)),
    }
}

/// Encrypts `pt` to a DER SubjectPublicKeyInfo of `spec`.
///
/// # Errors
/// `Rejected.UnsupportedOperation` when `alg` is not an encryption algorithm of `spec`;
/// `InvalidParameter` for a plaintext over [`max_plaintext`] (or empty, for SM2PKE) (`Plaintext`) or a
/// bad public key (`PublicKey`).
pub fn encrypt(spec: KeySpec, spki_der: &[u8], alg: AsymmetricAlgorithm, pt: &[u8]) -> Result<Vec<u8>> {
    check_alg(spec, alg, KeyUsage::EncryptDecrypt)?;
    let max = max_plaintext(spec, alg).ok_or_else(|| unsupported(spec, alg))?;
    if pt.len() > max {
        return Err(Error::invalid(
            "Plaintext",
            format!(
                "{alg} with a {spec} key encrypts at most {max} bytes, got {}",
                pt.len()
            ),
        ));
    }
    match spec {
        KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
            let key = OaepPublicEncryptingKey::new(rsa_public(spec, spki_der)?)
                .map_err(|_| bad_public_key(spec))?;
            let mut out = vec![0u8; key.ciphertext_size()];
            let n = key
                .encrypt(oaep(alg)?, pt, &mut out, None)
                .map_err(|_| internal("RSA-OAEP encryption"))?
                .len();
            out.truncate(n);
            Ok(out)
        }
        KeySpec::EcSm2 => {
            if pt.is_empty() {
                return Err(Error::invalid(
                    "Plaintext",
                    "SM2PKE cannot encrypt an empty plaintext",
                ));
            }
            let key = sm2::pke::EncryptingKey::new(sm2_public(spki_der)?);
            key.encrypt_der(&mut SysRng, pt)
                .map_err(|_| internal("SM2 encryption"))
        }
        other => Err(not_asymmetric(other)),
    }
}

/// The largest plaintext `alg` encrypts under a `spec` key: RSA-OAEP `k − 2·hLen − 2` (190/318 bytes
/// with SHA-256, 214/342 with SHA-1 for RSA 2048/3072), SM2PKE 6047; `None` for anything else.
pub fn max_plaintext(spec: KeySpec, alg: AsymmetricAlgorithm) -> Option<usize> {
    let k = match spec {
        KeySpec::Rsa2048 => 256,
        KeySpec::Rsa3072 => 384,
        KeySpec::EcSm2 if alg == AsymmetricAlgorithm::Sm2Pke => return Some(SM2_MAX_PLAINTEXT),
        _ => return None,
    };
    match alg {
        AsymmetricAlgorithm::RsaesOaepSha256 => Some(k - 2 * 32 - 2),
        AsymmetricAlgorithm::RsaesOaepSha1 => Some(k - 2 * 20 - 2),
        _ => None,
    }
}

/// PEM (`-----BEGIN PUBLIC KEY-----`, 64-column base64) of a DER SubjectPublicKeyInfo.
pub fn spki_to_pem(der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = String::with_capacity(b64.len() + b64.len() / 64 + 64);
    pem.push_str("-----BEGIN PUBLIC KEY-----\n");
    for line in b64.as_bytes().chunks(64) {
        // base64 output is ASCII.
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END PUBLIC KEY-----\n");
    pem
}

/// The DER SubjectPublicKeyInfo inside a `PUBLIC KEY` PEM.
///
/// # Errors
/// `InvalidParameter` (`PublicKey`) when there is no `PUBLIC KEY` block, the base64 is bad, or the
/// content is not one DER SEQUENCE.
pub fn pem_to_spki(pem: &str) -> Result<Vec<u8>> {
    const BEGIN: &str = "-----BEGIN PUBLIC KEY-----";
    const END: &str = "-----END PUBLIC KEY-----";
    let bad = |why: &str| Error::invalid("PublicKey", format!("not a PUBLIC KEY PEM: {why}"));
    let start = pem.find(BEGIN).ok_or_else(|| bad("no BEGIN line"))? + BEGIN.len();
    let len = pem[start..].find(END).ok_or_else(|| bad("no END line"))?;
    let body: String = pem[start..start + len]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body)
        .map_err(|_| bad("bad base64"))?;
    if der_sequence_len(&der) != Some(der.len()) {
        return Err(bad("not a DER SEQUENCE"));
    }
    Ok(der)
}

/// Converts a fixed-width `r ‖ s` ECDSA/SM2 signature (PKCS#11 `CKM_ECDSA`, IEEE P1363) to DER.
///
/// # Errors
/// `InvalidParameter` (`Signature`) unless `raw` is exactly 64 bytes; `Rejected.UnsupportedOperation`
/// for specs without such signatures.
pub fn ecdsa_p1363_to_der(spec: KeySpec, raw: &[u8]) -> Result<Vec<u8>> {
    if !matches!(spec, KeySpec::EcP256 | KeySpec::EcP256K | KeySpec::EcSm2) {
        return Err(Error::Unsupported(format!("{spec} keys have no r||s signatures")));
    }
    if raw.len() != 64 {
        return Err(Error::invalid(
            "Signature",
            format!("expected 64 bytes (r||s), got {}", raw.len()),
        ));
    }
    let (r, s) = raw.split_at(32);
    Ok(der_rs(r, s))
}

/// SM3 (GB/T 32905) of `data`.
pub fn sm3(data: &[u8]) -> [u8; 32] {
    sm3::Sm3::digest(data).into()
}

/// `SM3(Z(A) ‖ M)`: the digest SM2DSA signs (GB/T 32918.2 §6.1 A1–A2), where
/// `Z(A) = SM3(ENTL(A) ‖ ID(A) ‖ a ‖ b ‖ x(G) ‖ y(G) ‖ x(A) ‖ y(A))` for signer id `id`
/// (normally [`SM2_DEFAULT_ID`]) and the SM2 public key in `spki_der`.
///
/// # Errors
/// `InvalidParameter` for a public key that is not an SM2 SubjectPublicKeyInfo (`PublicKey`) or an id
/// of 8192 bytes or more (`Id`).
pub fn sm2_digest(spki_der: &[u8], id: &[u8], message: &[u8]) -> Result<[u8; 32]> {
    let pk = sm2_public(spki_der)?;
    let z = sm2_z(&pk, id)?;
    let mut h = sm3::Sm3::new();
    h.update(z);
    h.update(message);
    Ok(h.finalize().into())
}

/// `Z(A)` of GB/T 32918.2 §5.5 for public key `pk` and signer id `id`.
fn sm2_z(pk: &sm2::PublicKey, id: &[u8]) -> Result<[u8; 32]> {
    const A: [u8; 32] = hex32("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC");
    const B: [u8; 32] = hex32("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93");
    const GX: [u8; 32] = hex32("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7");
    const GY: [u8; 32] = hex32("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0");
    let entl = u16::try_from(id.len() * 8)
        .map_err(|_| Error::invalid("Id", "the SM2 signer id must be shorter than 8192 bytes"))?;
    let p = pk.as_affine();
    let mut h = sm3::Sm3::new();
    h.update(entl.to_be_bytes());
    h.update(id);
    h.update(A);
    h.update(B);
    h.update(GX);
    h.update(GY);
    h.update(p.x());
    h.update(p.y());
    Ok(h.finalize().into())
}

/// SM2 signature (GB/T 32918.2 §6.1 A3–A7) of `e` with a fresh random `k`.
fn sm2_sign(sk: &sm2::SecretKey, e: &[u8]) -> Result<Vec<u8>> {
    let d = Zeroizing::new(*sk.to_nonzero_scalar());
    let e = sm2_scalar_of(e)?;
    for _ in 0..64 {
        let k = sm2::NonZeroScalar::try_generate_from_rng(&mut SysRng).map_err(|_| internal("random k"))?;
        let mut k = Zeroizing::new(*k);
        let sig = sm2_sign_with_k(&d, &e, &k);
        k.zeroize();
        if let Some(sig) = sig {
            return Ok(sig);
        }
    }
    Err(internal("SM2 signing found no valid k"))
}

/// SM2 signature with a given nonce `k`: `None` when `k` must be rejected (r = 0, r + k = n, s = 0).
fn sm2_sign_with_k(d: &sm2::Scalar, e: &sm2::Scalar, k: &sm2::Scalar) -> Option<Vec<u8>> {
    let x1 = sm2::ProjectivePoint::mul_by_generator(k).to_affine().x();
    let r = *e + <sm2::Scalar as Reduce<sm2::FieldBytes>>::reduce(&x1);
    if bool::from(r.is_zero() | (r + k).is_zero()) {
        return None;
    }
    let inv = Option::<sm2::Scalar>::from((sm2::Scalar::ONE + d).invert())?;
    let s = inv * (*k - r * d);
    if bool::from(s.is_zero()) {
        return None;
    }
    Some(der_rs(&r.to_bytes(), &s.to_bytes()))
}

/// SM2 decryption (GB/T 32918.4 §7.1 B1–B7) of a DER C1C3C2 ciphertext (GM/T 0009 `SM2Cipher`).
fn sm2_decrypt(sk: &sm2::SecretKey, ct: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    let cipher = sm2::pke::Cipher::<sm2::Sm2, sm3::Sm3>::from_der(ct).map_err(|_| Error::DecryptFailed)?;
    let c2 = cipher.c2();
    if c2.is_empty() {
        return Err(Error::DecryptFailed);
    }
    let d = Zeroizing::new(*sk.to_nonzero_scalar());
    // C1 is on the curve (checked by the parser) and h = 1, so [h]C1 is not the point at infinity.
    let p2 = (sm2::ProjectivePoint::from(*cipher.c1()) * *d).to_affine();
    let (x2, y2) = (Zeroizing::new(p2.x()), Zeroizing::new(p2.y()));
    let mut out = Zeroizing::new(sm2_kdf(&x2, &y2, c2.len()));
    if bool::from(out.iter().fold(0u8, |a, &b| a | b).ct_eq(&0)) {
        return Err(Error::DecryptFailed);
    }
    out.iter_mut().zip(c2).for_each(|(t, c)| *t ^= c);
    let mut h = sm3::Sm3::new();
    h.update(x2.as_slice());
    h.update(out.as_slice());
    h.update(y2.as_slice());
    let u: [u8; 32] = h.finalize().into();
    if bool::from(u.as_slice().ct_eq(cipher.c3().as_slice())) {
        Ok(out)
    } else {
        Err(Error::DecryptFailed)
    }
}

/// The SM2 key derivation function (GB/T 32918.4 §5.4.3) with SM3.
fn sm2_kdf(x: &[u8], y: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 32);
    let mut ct: u32 = 1;
    while out.len() < len {
        let mut h = sm3::Sm3::new();
        h.update(x);
        h.update(y);
        h.update(ct.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        ct = ct.wrapping_add(1);
    }
    out.truncate(len);
    out
}

fn sm2_scalar_of(e: &[u8]) -> Result<sm2::Scalar> {
    let bytes = sm2::FieldBytes::try_from(e).map_err(|_| digest_error(e.len()))?;
    Ok(<sm2::Scalar as Reduce<sm2::FieldBytes>>::reduce(&bytes))
}

fn sm2_public(spki_der: &[u8]) -> Result<sm2::PublicKey> {
    sm2::PublicKey::from_public_key_der(spki_der).map_err(|_| bad_public_key(KeySpec::EcSm2))
}

fn rsa_public(spec: KeySpec, spki_der: &[u8]) -> Result<PublicEncryptingKey> {
    if spki_der.first() != Some(&0x30) {
        return Err(bad_public_key(spec));
    }
    let key = PublicEncryptingKey::from_der(spki_der).map_err(|_| bad_public_key(spec))?;
    if key.key_size_bits() != rsa_bits(spec) {
        return Err(bad_public_key(spec));
    }
    Ok(key)
}

fn rsa_bits(spec: KeySpec) -> usize {
    if spec == KeySpec::Rsa3072 { 3072 } else { 2048 }
}

fn ec_signing(spec: KeySpec) -> Result<&'static EcdsaSigningAlgorithm> {
    match spec {
        KeySpec::EcP256 => Ok(&ECDSA_P256_SHA256_ASN1_SIGNING),
        KeySpec::EcP256K => Ok(&ECDSA_P256K1_SHA256_ASN1_SIGNING),
        other => Err(not_asymmetric(other)),
    }
}

fn oaep(alg: AsymmetricAlgorithm) -> Result<&'static OaepAlgorithm> {
    match alg {
        AsymmetricAlgorithm::RsaesOaepSha256 => Ok(&OAEP_SHA256_MGF1SHA256),
        AsymmetricAlgorithm::RsaesOaepSha1 => Ok(&OAEP_SHA1_MGF1SHA1),
        other => Err(Error::Unsupported(format!("{other} is not RSA-OAEP"))),
    }
}

fn import_digest(digest: &[u8]) -> Result<Digest> {
    Digest::import_less_safe(digest, &SHA256).map_err(|_| digest_error(digest.len()))
}

fn check_digest(digest: &[u8]) -> Result<()> {
    if digest.len() != DIGEST_LEN {
        return Err(digest_error(digest.len()));
    }
    Ok(())
}

fn digest_error(len: usize) -> Error {
    Error::invalid(
        "Digest",
        format!("expected a {DIGEST_LEN}-byte digest, got {len} bytes"),
    )
}

fn check_alg(spec: KeySpec, alg: AsymmetricAlgorithm, usage: KeyUsage) -> Result<()> {
    if spec.is_symmetric() {
        return Err(not_asymmetric(spec));
    }
    if !alg.fits(spec) || alg.usage() != usage {
        return Err(unsupported(spec, alg));
    }
    Ok(())
}

fn unsupported(spec: KeySpec, alg: AsymmetricAlgorithm) -> Error {
    Error::Unsupported(format!("algorithm {alg} cannot be used here with a {spec} key"))
}

fn not_asymmetric(spec: KeySpec) -> Error {
    Error::Unsupported(format!("{spec} is not an asymmetric key spec"))
}

fn bad_public_key(spec: KeySpec) -> Error {
    Error::invalid("PublicKey", format!("not a {spec} SubjectPublicKeyInfo"))
}

fn internal(what: &str) -> Error {
    Error::Internal(format!("{what} failed"))
}

fn der_of(
    d: std::result::Result<PublicKeyX509Der<'static>, aws_lc_rs::error::Unspecified>,
) -> Result<Vec<u8>> {
    d.map(|d| d.as_ref().to_vec())
        .map_err(|_| internal("public key encoding"))
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }` from big-endian unsigned `r` and `s`.
fn der_rs(r: &[u8], s: &[u8]) -> Vec<u8> {
    let (r, s) = (der_uint(r), der_uint(s));
    let mut out = Vec::with_capacity(r.len() + s.len() + 4);
    out.push(0x30);
    der_len(&mut out, r.len() + s.len());
    out.extend_from_slice(&r);
    out.extend_from_slice(&s);
    out
}

fn der_uint(v: &[u8]) -> Vec<u8> {
    let start = v
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(v.len().saturating_sub(1));
    let v = if v.is_empty() { &[0u8][..] } else { &v[start..] };
    let pad = v.first().is_some_and(|&b| b & 0x80 != 0);
    let len = v.len() + usize::from(pad);
    let mut out = Vec::with_capacity(len + 3);
    out.push(0x02);
    der_len(&mut out, len);
    if pad {
        out.push(0);
    }
    out.extend_from_slice(v);
    out
}

fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
}

/// The total length (header + content) of the DER SEQUENCE at the start of `der`, if it is one.
fn der_sequence_len(der: &[u8]) -> Option<usize> {
    if *der.first()? != 0x30 {
        return None;
    }
    let first = *der.get(1)? as usize;
    if first < 0x80 {
        return Some(2 + first);
    }
    let n = first & 0x7f;
    if n == 0 || n > 4 {
        return None;
    }
    let mut len = 0usize;
    for i in 0..n {
        len = (len << 8) | *der.get(2 + i)? as usize;
    }
    (2 + n).checked_add(len)
}

const fn hex32(s: &str) -> [u8; 32] {
    const fn nib(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            b'A'..=b'F' => c - b'A' + 10,
            _ => panic!("not hex"),
        }
    }
    let b = s.as_bytes();
    assert!(b.len() == 64, "expected 64 hex digits");
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = (nib(b[2 * i]) << 4) | nib(b[2 * i + 1]);
        i += 1;
    }
    out
}

/// Fuzzing entry point: arbitrary bytes as the untrusted inputs of this module — PKCS#8 private keys,
/// SubjectPublicKeyInfos, signatures, P1363 signatures, PEM, and ciphertexts for RSA-OAEP and SM2PKE
/// decryption under fixed keys. Nothing may panic; a ciphertext that decrypts must re-encrypt to
/// something that decrypts to the same plaintext. Lives here so a crash replays as a unit test.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    use std::sync::OnceLock;
    const SPECS: [KeySpec; 5] = [
        KeySpec::Rsa2048,
        KeySpec::Rsa3072,
        KeySpec::EcP256,
        KeySpec::EcP256K,
        KeySpec::EcSm2,
    ];
    // Fixed decryption keys, generated once per process (RSA generation is slow).
    static KEYS: OnceLock<Option<[PrivateKey; 2]>> = OnceLock::new();
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let spec = SPECS[usize::from(sel % 5)];
    let alg = AsymmetricAlgorithm::ALL[usize::from((sel / 5) % 7)];
    let split = rest.first().map_or(0, |b| usize::from(*b)).min(rest.len());
    let (a, b) = rest.split_at(split);
    match sel / 35 {
        0 => {
            if let Ok(k) = PrivateKey::from_pkcs8(spec, rest) {
                let _ = k.public_key_der();
                let _ = k.sign_digest(alg, &[7; DIGEST_LEN]);
            }
        }
        1 => {
            let digest = [sel; DIGEST_LEN];
            let _ = verify_digest(spec, a, alg, &digest, b);
            let _ = encrypt(spec, a, alg, b);
            let _ = sm2_digest(a, SM2_DEFAULT_ID, b);
        }
        2 => {
            let _ = ecdsa_p1363_to_der(spec, rest);
            let _ = pem_to_spki(&String::from_utf8_lossy(rest));
        }
        _ => {
            let keys = KEYS.get_or_init(|| {
                let make = |s: KeySpec| {
                    generate(s)
                        .and_then(|m| PrivateKey::from_pkcs8(s, m.expose_secret()))
                        .ok()
                };
                Some([make(KeySpec::Rsa2048)?, make(KeySpec::EcSm2)?])
            });
            let Some([rsa, sm2]) = keys else { return };
            let (key, alg) = match sel % 3 {
                0 => (rsa, AsymmetricAlgorithm::RsaesOaepSha256),
                1 => (rsa, AsymmetricAlgorithm::RsaesOaepSha1),
                _ => (sm2, AsymmetricAlgorithm::Sm2Pke),
            };
            if let Ok(pt) = key.decrypt(alg, rest) {
                // Only a well-formed ciphertext decrypts; its plaintext must survive a round trip.
                if let Ok(ct) = encrypt(key.spec(), key.public_key_der(), alg, &pt) {
                    let back = key.decrypt(alg, &ct);
                    assert!(
                        back.is_ok_and(|v| v[..] == pt[..]),
                        "a decrypted plaintext did not round-trip"
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    const GBT_D: &str = "3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8";
    const GBT_K: &str = "59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21";

    fn gbt_key() -> sm2::SecretKey {
        sm2::SecretKey::from_slice(&hex(GBT_D)).unwrap()
    }

    /// GB/T 32918.5 annex A: the signature example with its fixed k reproduces r and s exactly.
    #[test]
    fn sm2_sign_matches_gbt_32918_5_with_fixed_k() {
        let sk = gbt_key();
        let spki = sk.public_key().to_public_key_der().unwrap().into_vec();
        let e = sm2_digest(&spki, SM2_DEFAULT_ID, b"message digest").unwrap();
        assert_eq!(
            e.to_vec(),
            hex("F0B43E94BA45ACCAACE692ED534382EB17E6AB5A19CE7B31F4486FDFC0D28640")
        );
        let k = sm2_scalar_of(&hex(GBT_K)).unwrap();
        let d = *sk.to_nonzero_scalar();
        let sig = sm2_sign_with_k(&d, &sm2_scalar_of(&e).unwrap(), &k).unwrap();
        let want = ecdsa_p1363_to_der(
            KeySpec::EcSm2,
            &hex("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA"),
        )
        .unwrap();
        assert_eq!(sig, want);
    }

    #[test]
    fn der_integers_are_minimal() {
        assert_eq!(der_uint(&[0, 0, 1]), vec![2, 1, 1]);
        assert_eq!(der_uint(&[0x80]), vec![2, 2, 0, 0x80]);
        assert_eq!(der_uint(&[0, 0]), vec![2, 1, 0]);
        assert_eq!(der_sequence_len(&[0x30, 0x81, 0x80]), Some(0x83));
        assert_eq!(der_sequence_len(&[0x31, 0]), None);
    }

    #[test]
    fn private_key_debug_redacts_and_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PrivateKey>();
        let der = generate(KeySpec::EcP256).unwrap();
        let k = PrivateKey::from_pkcs8(KeySpec::EcP256, der.expose_secret()).unwrap();
        assert_eq!(format!("{k:?}"), "PrivateKey { spec: EcP256, .. }");
    }
}
