//! Independent check of `crypto::asym` against Python `cryptography` (OpenSSL): signatures made by
//! kmskit (ECDSA P-256, ECDSA secp256k1, RSA-PSS, RSA PKCS#1 v1.5) verify there from the PEM kmskit
//! exports, tampered ones do not, and RSA-OAEP ciphertexts made there decrypt here.
//!
//! Runs when `KMSKIT_PYTHON` names a Python with `cryptography` (scripts/test.sh sets it). Without it
//! the test is skipped, except under `CI`, where a missing checker is a failure.
#![cfg(feature = "asymmetric")]
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::fmt::Write as _;
use std::process::Command;

use kmskit_core::crypto::asym::{self, PrivateKey};
use kmskit_core::{AsymmetricAlgorithm as Alg, KeySpec};
use sha2::{Digest as _, Sha256};

const SCRIPT: &str = r#"
import sys, pathlib
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils
from cryptography.exceptions import InvalidSignature

d = pathlib.Path(sys.argv[1])
pre = utils.Prehashed(hashes.SHA256())
checked = 0
for line in (d / "sign.txt").read_text().split("\n"):
    if not line:
        continue
    name, kind, pem, digest, sig, expect = line.split(" ")
    key = serialization.load_pem_public_key((d / pem).read_bytes())
    digest, sig = bytes.fromhex(digest), bytes.fromhex(sig)
    try:
        if kind == "ecdsa":
            key.verify(sig, digest, ec.ECDSA(pre))
        elif kind == "pss":
            key.verify(sig, digest, padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32), pre)
        elif kind == "pkcs1":
            key.verify(sig, digest, padding.PKCS1v15(), pre)
        else:
            raise SystemExit(f"unknown kind {kind}")
        ok = True
    except InvalidSignature:
        ok = False
    if ok != (expect == "valid"):
        raise SystemExit(f"{name}: verified={ok}, expected {expect}")
    checked += 1

out = []
for line in (d / "encrypt.txt").read_text().split("\n"):
    if not line:
        continue
    name, hash_name, pem, msg = line.split(" ")
    key = serialization.load_pem_public_key((d / pem).read_bytes())
    h = hashes.SHA256() if hash_name == "sha256" else hashes.SHA1()
    ct = key.encrypt(bytes.fromhex(msg), padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None))
    out.append(f"{name} {ct.hex()}")
    checked += 1
(d / "encrypted.txt").write_text("\n".join(out) + "\n")
print(f"checked {checked}")
"#;

fn hexs(b: &[u8]) -> String {
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn python() -> Option<String> {
    match std::env::var("KMSKIT_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
            assert!(
                !ci,
                "CI is set but KMSKIT_PYTHON is not: the Python `cryptography` cross-check must run in CI"
            );
            eprintln!("skipping: set KMSKIT_PYTHON to a Python with `cryptography` to run this check");
            None
        }
    }
}

#[test]
fn python_cryptography_verifies_our_signatures_and_we_decrypt_its_oaep() {
    let Some(py) = python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut sign = String::new();
    let cases = [
        ("p256", KeySpec::EcP256, Alg::EcdsaSha256, "ecdsa"),
        ("k256", KeySpec::EcP256K, Alg::EcdsaSha256, "ecdsa"),
        ("rsa2048-pss", KeySpec::Rsa2048, Alg::RsaPssSha256, "pss"),
        ("rsa2048-pkcs1", KeySpec::Rsa2048, Alg::RsaPkcs1Sha256, "pkcs1"),
        ("rsa3072-pss", KeySpec::Rsa3072, Alg::RsaPssSha256, "pss"),
        ("rsa3072-pkcs1", KeySpec::Rsa3072, Alg::RsaPkcs1Sha256, "pkcs1"),
    ];
    let mut rsa: Vec<(KeySpec, Vec<u8>)> = Vec::new();
    for (i, (name, spec, alg, kind)) in cases.iter().enumerate() {
        // The RSA cases reuse one key per size (PSS and PKCS#1 on the same key, as a SIGN/VERIFY key).
        let k = match spec {
            KeySpec::Rsa2048 | KeySpec::Rsa3072 => {
                if let Some((_, k)) = rsa.iter().find(|(s, _)| s == spec) {
                    PrivateKey::from_pkcs8(*spec, k).unwrap()
                } else {
                    let der = asym::generate(*spec).unwrap();
                    rsa.push((*spec, der.expose_secret().to_vec()));
                    PrivateKey::from_pkcs8(*spec, der.expose_secret()).unwrap()
                }
            }
            _ => PrivateKey::from_pkcs8(*spec, asym::generate(*spec).unwrap().expose_secret()).unwrap(),
        };
        let pem = format!("{name}.pem");
        std::fs::write(d.join(&pem), asym::spki_to_pem(k.public_key_der())).unwrap();
        for j in 0..3u8 {
            let digest = Sha256::digest([i as u8, j, b'm']).to_vec();
            let sig = k.sign_digest(*alg, &digest).unwrap();
            writeln!(
                sign,
                "{name}-{j} {kind} {pem} {} {} valid",
                hexs(&digest),
                hexs(&sig)
            )
            .unwrap();
            let mut bad = sig.clone();
            let mid = bad.len() / 2;
            bad[mid] ^= 1;
            writeln!(
                sign,
                "{name}-{j}-bad {kind} {pem} {} {} invalid",
                hexs(&digest),
                hexs(&bad)
            )
            .unwrap();
        }
    }
    std::fs::write(d.join("sign.txt"), sign).unwrap();

    let mut enc = String::new();
    let mut oaep = Vec::new();
    for (name, spec, alg, h) in [
        ("oaep2048-256", KeySpec::Rsa2048, Alg::RsaesOaepSha256, "sha256"),
        ("oaep2048-1", KeySpec::Rsa2048, Alg::RsaesOaepSha1, "sha1"),
        ("oaep3072-256", KeySpec::Rsa3072, Alg::RsaesOaepSha256, "sha256"),
        ("oaep3072-1", KeySpec::Rsa3072, Alg::RsaesOaepSha1, "sha1"),
    ] {
        let (_, der) = rsa.iter().find(|(s, _)| *s == spec).unwrap();
        let k = PrivateKey::from_pkcs8(spec, der).unwrap();
        let pem = format!("{name}.pem");
        std::fs::write(d.join(&pem), asym::spki_to_pem(k.public_key_der())).unwrap();
        let max = asym::max_plaintext(spec, alg).unwrap();
        let msg: Vec<u8> = (0..max).map(|i| (i * 13 + 1) as u8).collect();
        writeln!(enc, "{name} {h} {pem} {}", hexs(&msg)).unwrap();
        oaep.push((name, k, alg, msg));
    }
    std::fs::write(d.join("encrypt.txt"), enc).unwrap();
    std::fs::write(d.join("check.py"), SCRIPT).unwrap();

    let out = Command::new(&py)
        .arg(d.join("check.py"))
        .arg(d)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {py}: {e}"));
    assert!(
        out.status.success(),
        "python check failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("checked 40"),
        "{out:?}"
    );

    let encrypted = std::fs::read_to_string(d.join("encrypted.txt")).unwrap();
    let mut n = 0;
    for line in encrypted.lines().filter(|l| !l.is_empty()) {
        let (name, ct) = line.split_once(' ').unwrap();
        let (_, k, alg, msg) = oaep.iter().find(|(n, ..)| *n == name).unwrap();
        assert_eq!(&k.decrypt(*alg, &unhex(ct)).unwrap()[..], &msg[..], "{name}");
        n += 1;
    }
    assert_eq!(n, 4);
}
