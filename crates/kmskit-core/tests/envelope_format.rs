//! The envelope format: known-answer vectors (`tests/data/envelope_vectors.json`, also printed in
//! `docs/envelope-format.md`), the commitment, tampering, parsing edge cases and a property round trip.
//!
//! Regenerate the vectors after a deliberate format change with
//! `KMSKIT_WRITE_VECTORS=1 cargo test -p kmskit-core --test envelope_format`.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use kmskit_core::crypto::{Algorithm, all_engines, default_engine};
use kmskit_core::envelope::format::seal_with_data_key_and_nonce;
use kmskit_core::envelope::{ParsedEnvelope, open_with_data_key};
use kmskit_core::{DataKey, EncryptionContext, ErrorCode, SecretBytes};
use proptest::prelude::*;
use serde_json::{Value, json};

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/envelope_vectors.json");

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn dk(b: &[u8]) -> DataKey {
    DataKey::new(SecretBytes::from_slice(b))
}

struct Input {
    name: &'static str,
    alg: Algorithm,
    data_key: Vec<u8>,
    wrapped: Vec<u8>,
    nonce: [u8; 12],
    ctx: &'static str,
    plaintext: Vec<u8>,
}

fn inputs() -> Vec<Input> {
    let k32: Vec<u8> = (0..32u8).collect();
    vec![
        Input {
            name: "aes256gcm_empty",
            alg: Algorithm::Aes256Gcm,
            data_key: k32.clone(),
            wrapped: b"wrapped-key-blob".to_vec(),
            nonce: [0; 12],
            ctx: "{}",
            plaintext: vec![],
        },
        Input {
            name: "aes256gcm_context",
            alg: Algorithm::Aes256Gcm,
            data_key: k32.clone(),
            wrapped: (0..100u8).collect(),
            nonce: [0x11; 12],
            ctx: r#"{"table":"users","column":"phone"}"#,
            plaintext: b"+86 138 0013 8000".to_vec(),
        },
        Input {
            name: "chacha20poly1305_context",
            alg: Algorithm::ChaCha20Poly1305,
            data_key: k32,
            wrapped: vec![0xAB],
            nonce: [0xFE; 12],
            ctx: r#"{"a":"b"}"#,
            plaintext: (0..=255u8).collect(),
        },
        Input {
            name: "aes256gcm_16_byte_data_key",
            alg: Algorithm::Aes256Gcm,
            data_key: vec![0x42; 16],
            wrapped: b"w".repeat(300),
            nonce: [0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 7],
            ctx: "{}",
            plaintext: b"Hello KMS".to_vec(),
        },
    ]
}

fn make_vectors() -> Value {
    let mut pass = Vec::new();
    for i in inputs() {
        let ctx = EncryptionContext::from_json(i.ctx).unwrap();
        let env = seal_with_data_key_and_nonce(
            default_engine(),
            i.alg,
            &dk(&i.data_key),
            &i.wrapped,
            &i.nonce,
            &i.plaintext,
            &ctx,
        )
        .unwrap();
        pass.push(json!({
            "name": i.name, "algorithm": i.alg.name(), "data_key": hex(&i.data_key),
            "wrapped_key": hex(&i.wrapped), "nonce": hex(&i.nonce), "context": i.ctx,
            "plaintext": hex(&i.plaintext), "envelope": hex(&env),
        }));
    }
    // Failing vectors derived from the second passing one.
    let base = &pass[1];
    let env = unhex(base["envelope"].as_str().unwrap());
    let w = 100;
    let mut fails = Vec::new();
    let mut push = |name: &str, bytes: Vec<u8>, ctx: &str, code: &str| {
        fails.push(json!({
            "name": name, "data_key": base["data_key"], "context": ctx,
            "envelope": hex(&bytes), "code": code,
        }));
    };
    let c = base["context"].as_str().unwrap();
    let mut b = env.clone();
    b[8 + w] ^= 1;
    push("fail_commitment_flipped", b, c, "InvalidParameter");
    let mut b = env.clone();
    b[0] = b'X';
    push("fail_bad_magic", b, c, "InvalidParameter");
    let mut b = env.clone();
    b[4] = 2;
    push("fail_unknown_version", b, c, "InvalidParameter");
    let mut b = env.clone();
    b[5] = 9;
    push("fail_unknown_algorithm", b, c, "InvalidParameter");
    let mut b = env.clone();
    b[5] = 2;
    push("fail_algorithm_swapped", b, c, "InvalidParameter");
    let mut b = env.clone();
    let last = b.len() - 1;
    b[last] ^= 0x80;
    push("fail_tag_flipped", b, c, "InvalidParameter");
    push(
        "fail_truncated_tag",
        env[..env.len() - 1].to_vec(),
        c,
        "InvalidParameter",
    );
    push(
        "fail_wrong_context",
        env.clone(),
        r#"{"table":"users","column":"email"}"#,
        "InvalidParameter",
    );
    push("fail_empty", Vec::new(), c, "InvalidParameter");
    let mut b = env.clone();
    b[6] = 0;
    b[7] = 0;
    push("fail_zero_wrapped_key_length", b, c, "InvalidParameter");
    json!({ "format": "kmskit envelope v1", "pass": pass, "fail": fails })
}

#[test]
fn known_answer_vectors() {
    let made = make_vectors();
    if std::env::var_os("KMSKIT_WRITE_VECTORS").is_some() {
        std::fs::write(VECTORS, serde_json::to_string_pretty(&made).unwrap() + "\n").unwrap();
    }
    let stored: Value = serde_json::from_str(&std::fs::read_to_string(VECTORS).unwrap()).unwrap();
    assert_eq!(
        made, stored,
        "the envelope format changed: the vectors no longer match"
    );
    for v in stored["pass"].as_array().unwrap() {
        let ctx = EncryptionContext::from_json(v["context"].as_str().unwrap()).unwrap();
        let env = unhex(v["envelope"].as_str().unwrap());
        for engine in all_engines() {
            let pt =
                open_with_data_key(engine, &dk(&unhex(v["data_key"].as_str().unwrap())), &env, &ctx).unwrap();
            assert_eq!(
                hex(&pt),
                v["plaintext"].as_str().unwrap(),
                "{} on {}",
                v["name"],
                engine.name()
            );
        }
        let p = ParsedEnvelope::parse(&env).unwrap();
        assert_eq!(hex(p.wrapped_key), v["wrapped_key"].as_str().unwrap());
        assert_eq!(hex(&p.nonce), v["nonce"].as_str().unwrap());
    }
    for v in stored["fail"].as_array().unwrap() {
        let ctx = EncryptionContext::from_json(v["context"].as_str().unwrap()).unwrap();
        let env = unhex(v["envelope"].as_str().unwrap());
        let e = open_with_data_key(
            default_engine(),
            &dk(&unhex(v["data_key"].as_str().unwrap())),
            &env,
            &ctx,
        )
        .unwrap_err();
        assert_eq!(e.code().as_str(), v["code"].as_str().unwrap(), "{}", v["name"]);
    }
}

#[test]
fn the_commitment_binds_the_data_key() {
    // The same envelope under another data key fails at the commitment, before any AEAD work.
    let ctx = EncryptionContext::new();
    let env = seal_with_data_key_and_nonce(
        default_engine(),
        Algorithm::Aes256Gcm,
        &dk(&[1; 32]),
        b"w",
        &[0; 12],
        b"x",
        &ctx,
    )
    .unwrap();
    let e = open_with_data_key(default_engine(), &dk(&[2; 32]), &env, &ctx).unwrap_err();
    assert_eq!(e.code(), ErrorCode::InvalidParameter);
    assert!(matches!(e, kmskit_core::Error::DecryptFailed));
    // Data keys outside 16..=1024 bytes are refused.
    for n in [0usize, 15, 1025] {
        assert!(
            seal_with_data_key_and_nonce(
                default_engine(),
                Algorithm::Aes256Gcm,
                &dk(&vec![1; n]),
                b"w",
                &[0; 12],
                b"",
                &ctx
            )
            .is_err()
        );
    }
}

#[test]
fn every_bit_flip_and_truncation_is_refused() {
    let ctx = EncryptionContext::from_pairs([("k", "v")]).unwrap();
    let key = dk(&[9; 32]);
    let env = seal_with_data_key_and_nonce(
        default_engine(),
        Algorithm::Aes256Gcm,
        &key,
        b"some wrapped key",
        &[3; 12],
        b"sixteen bytes!!!",
        &ctx,
    )
    .unwrap();
    for bit in 0..env.len() * 8 {
        let mut b = env.clone();
        b[bit / 8] ^= 1 << (bit % 8);
        assert!(
            open_with_data_key(default_engine(), &key, &b, &ctx).is_err(),
            "bit {bit}"
        );
    }
    for cut in 0..env.len() {
        assert!(
            open_with_data_key(default_engine(), &key, &env[..cut], &ctx).is_err(),
            "cut {cut}"
        );
    }
    let mut longer = env.clone();
    longer.push(0);
    assert!(open_with_data_key(default_engine(), &key, &longer, &ctx).is_err());
}

proptest! {
    #[test]
    fn round_trip(pt in proptest::collection::vec(any::<u8>(), 0..2000),
                  wrapped in proptest::collection::vec(any::<u8>(), 1..300),
                  k in proptest::collection::vec(any::<u8>(), 16..64),
                  nonce in any::<[u8; 12]>(),
                  chacha in any::<bool>(),
                  v in "[a-z]{0,8}") {
        let alg = if chacha { Algorithm::ChaCha20Poly1305 } else { Algorithm::Aes256Gcm };
        let ctx = EncryptionContext::from_pairs([("v", v.as_str())]).unwrap();
        let env = seal_with_data_key_and_nonce(default_engine(), alg, &dk(&k), &wrapped, &nonce, &pt, &ctx).unwrap();
        for e in all_engines() {
            prop_assert_eq!(&open_with_data_key(e, &dk(&k), &env, &ctx).unwrap()[..], &pt[..]);
        }
        prop_assert_eq!(ParsedEnvelope::parse(&env).unwrap().wrapped_key, &wrapped[..]);
    }

    #[test]
    fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = ParsedEnvelope::parse(&bytes);
        let _ = open_with_data_key(default_engine(), &dk(&[0; 32]), &bytes, &EncryptionContext::new());
    }
}
