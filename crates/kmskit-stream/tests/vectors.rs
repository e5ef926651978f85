//! Known-answer vectors in `tests/vectors/*.json`, checked both ways: encrypting the inputs (fixed
//! salt) must give the stream bytes on every engine, and decrypting the stream must give the
//! plaintext; `fail_*` vectors must be rejected with their error code.
//!
//! Regenerate (only when the format changes on purpose): `KMSKIT_REGEN_VECTORS=1 cargo test -p
//! kmskit-stream --test vectors`.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::path::PathBuf;

use kmskit_core::crypto::{Algorithm, all_engines};
use kmskit_core::{DataKey, EncryptionContext, SecretBytes};
use kmskit_stream::{Options, Sealer};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone)]
struct PassVector {
    name: String,
    suite: String,
    chunk_size: usize,
    data_key: String,
    salt: String,
    context: BTreeMap<String, String>,
    wrapped_key: String,
    plaintext: String,
    stream: String,
}

#[derive(Serialize, Deserialize, Clone)]
struct FailVector {
    name: String,
    comment: String,
    data_key: String,
    context: BTreeMap<String, String>,
    stream: String,
    error: String,
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn suite(name: &str) -> Algorithm {
    match name {
        "AES-256-GCM" => Algorithm::Aes256Gcm,
        "ChaCha20-Poly1305" => Algorithm::ChaCha20Poly1305,
        other => panic!("unknown suite {other}"),
    }
}

fn ctx(m: &BTreeMap<String, String>) -> EncryptionContext {
    EncryptionContext::from_pairs(m.clone()).unwrap()
}

fn key(h: &str) -> DataKey {
    DataKey::new(SecretBytes::new(unhex(h)))
}

fn encrypt(v: &PassVector, opts: Options) -> Vec<u8> {
    let salt: [u8; 32] = unhex(&v.salt).try_into().unwrap();
    let o = opts
        .algorithm(suite(&v.suite))
        .chunk_size(v.chunk_size)
        .unwrap()
        .fixed_salt_for_test_vectors(salt);
    Sealer::new(&key(&v.data_key), &unhex(&v.wrapped_key), &ctx(&v.context), &o)
        .unwrap()
        .encrypt_to_vec(&unhex(&v.plaintext))
        .unwrap()
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

fn generate() -> (Vec<PassVector>, Vec<FailVector>) {
    let mut ctx1 = BTreeMap::new();
    ctx1.insert("bucket".to_owned(), "reports".to_owned());
    ctx1.insert("object".to_owned(), "2024/q1.csv".to_owned());
    let mut pass = Vec::new();
    let cases: &[(&str, &str, usize, usize)] = &[
        ("aes_empty", "AES-256-GCM", 4096, 0),
        ("aes_one_byte", "AES-256-GCM", 4096, 1),
        ("aes_chunk_minus_one", "AES-256-GCM", 4096, 4095),
        ("aes_exact_chunk", "AES-256-GCM", 4096, 4096),
        ("aes_chunk_plus_one", "AES-256-GCM", 4096, 4097),
        ("aes_three_chunks", "AES-256-GCM", 4096, 2 * 4096 + 100),
        ("chacha_empty", "ChaCha20-Poly1305", 4096, 0),
        ("chacha_two_chunks", "ChaCha20-Poly1305", 4096, 4096 + 10),
        ("aes_8k_chunks", "AES-256-GCM", 8192, 100),
    ];
    for (i, &(name, s, c, len)) in cases.iter().enumerate() {
        let mut v = PassVector {
            name: name.to_owned(),
            suite: s.to_owned(),
            chunk_size: c,
            data_key: hex(&[(0x10 + i as u8); 32]),
            salt: hex(&(0..32u8).map(|b| b ^ (i as u8 * 17)).collect::<Vec<_>>()),
            context: if i % 2 == 0 { ctx1.clone() } else { BTreeMap::new() },
            wrapped_key: hex(format!("wrapped data key #{i}").as_bytes()),
            plaintext: hex(&pattern(len)),
            stream: String::new(),
        };
        v.stream = hex(&encrypt(&v, Options::new().workers(1)));
        pass.push(v);
    }

    let base = pass
        .iter()
        .find(|v| v.name == "aes_three_chunks")
        .unwrap()
        .clone();
    let s = unhex(&base.stream);
    let (_, hl) = kmskit_stream::Header::parse(&s).unwrap();
    let full = 4096 + 16;
    let chunks: Vec<&[u8]> = s[hl..].chunks(full).collect();
    let join = |order: &[usize]| {
        let mut v = s[..hl].to_vec();
        for &i in order {
            v.extend_from_slice(chunks[i]);
        }
        v
    };
    let fail = |name: &str, comment: &str, stream: Vec<u8>, error: &str| FailVector {
        name: name.to_owned(),
        comment: comment.to_owned(),
        data_key: base.data_key.clone(),
        context: base.context.clone(),
        stream: hex(&stream),
        error: error.to_owned(),
    };
    let flip = |at: usize| {
        let mut v = s.clone();
        v[at] ^= 0x01;
        v
    };
    let other = pass.iter().find(|v| v.name == "aes_exact_chunk").unwrap();
    let mut fails = vec![
        fail(
            "fail_truncated_at_chunk_boundary",
            "body cut after chunk 1 (its flag says not final)",
            join(&[0, 1]),
            "Stream.Truncated",
        ),
        fail(
            "fail_truncated_mid_chunk",
            "body cut 50 bytes into the final chunk",
            s[..hl + 2 * full + 50].to_vec(),
            "Stream.ChunkAuthFailed",
        ),
        fail(
            "fail_truncated_in_tag",
            "only 10 bytes of the last chunk's tag",
            s[..hl + 2 * full + 10].to_vec(),
            "Stream.Truncated",
        ),
        fail(
            "fail_empty_body",
            "header only",
            s[..hl].to_vec(),
            "Stream.Truncated",
        ),
        fail(
            "fail_truncated_header",
            "cut inside the header",
            s[..hl - 1].to_vec(),
            "Stream.Truncated",
        ),
        fail(
            "fail_reordered_chunks",
            "chunks 0 and 1 swapped",
            join(&[1, 0, 2]),
            "Stream.ChunkAuthFailed",
        ),
        fail(
            "fail_duplicated_chunk",
            "chunk 1 twice",
            join(&[0, 1, 1, 2]),
            "Stream.ChunkAuthFailed",
        ),
        fail(
            "fail_final_chunk_first",
            "the final chunk moved to the front",
            join(&[2, 0, 1]),
            "Stream.ChunkAuthFailed",
        ),
        fail(
            "fail_body_bit_flip",
            "one bit of chunk 1 flipped",
            flip(hl + full + 7),
            "Stream.ChunkAuthFailed",
        ),
        fail(
            "fail_tag_bit_flip",
            "one bit of the final tag flipped",
            flip(s.len() - 1),
            "Stream.ChunkAuthFailed",
        ),
        fail(
            "fail_header_mac_flip",
            "one bit of the header MAC flipped",
            flip(hl - 1),
            "Stream.HeaderAuthFailed",
        ),
        fail(
            "fail_wrapped_key_edit",
            "one bit of the wrapped key flipped",
            flip(108),
            "Stream.HeaderAuthFailed",
        ),
        fail(
            "fail_context_digest_edit",
            "one bit of the context digest flipped",
            flip(40),
            "Stream.HeaderAuthFailed",
        ),
        fail(
            "fail_salt_edit",
            "one bit of the salt flipped",
            flip(8),
            "Stream.KeyCommitmentMismatch",
        ),
        fail(
            "fail_commitment_edit",
            "one bit of the commitment flipped",
            flip(72),
            "Stream.KeyCommitmentMismatch",
        ),
        fail(
            "fail_suite_swapped",
            "suite byte changed to ChaCha20-Poly1305",
            {
                let mut v = s.clone();
                v[5] = 2;
                v
            },
            "Stream.KeyCommitmentMismatch",
        ),
        fail("fail_bad_magic", "magic changed", flip(0), "Stream.NotAStream"),
        fail(
            "fail_unknown_version",
            "version 2",
            {
                let mut v = s.clone();
                v[4] = 2;
                v
            },
            "Stream.UnsupportedVersion",
        ),
        fail(
            "fail_unknown_suite",
            "suite 9",
            {
                let mut v = s.clone();
                v[5] = 9;
                v
            },
            "Stream.UnsupportedSuite",
        ),
        fail(
            "fail_chunk_size_out_of_range",
            "chunk size 2^11",
            {
                let mut v = s.clone();
                v[6] = 11;
                v
            },
            "Stream.BadHeader",
        ),
        fail(
            "fail_reserved_flags",
            "reserved byte set",
            flip(7),
            "Stream.BadHeader",
        ),
        fail(
            "fail_slot_padding",
            "non-zero wrapped key padding",
            flip(hl - 33),
            "Stream.BadHeader",
        ),
        fail(
            "fail_trailing_chunk",
            "a copy of chunk 0 appended after the final chunk of an exact-chunk stream",
            {
                let o = unhex(&other.stream);
                let (_, ohl) = kmskit_stream::Header::parse(&o).unwrap();
                let mut v = o.clone();
                v.extend_from_slice(&o[ohl..]);
                v
            },
            "Stream.TrailingData",
        ),
        fail(
            "fail_header_from_other_stream",
            "the header of another stream under the same data key",
            {
                let mut b = base.clone();
                b.salt = hex(&[0xEE; 32]);
                let s2 = encrypt(&b, Options::new().workers(1));
                let mut v = s2[..hl].to_vec();
                v.extend_from_slice(&s[hl..]);
                v
            },
            "Stream.ChunkAuthFailed",
        ),
    ];
    // Wrong key / wrong context vectors reuse the base stream with other inputs.
    let mut wk = fail(
        "fail_wrong_data_key",
        "another data key",
        s.clone(),
        "Stream.KeyCommitmentMismatch",
    );
    wk.data_key = hex(&[0x77; 32]);
    fails.push(wk);
    let mut wc = fail(
        "fail_wrong_context",
        "another encryption context",
        s.clone(),
        "Stream.ContextMismatch",
    );
    wc.context.insert("object".to_owned(), "2024/q2.csv".to_owned());
    fails.push(wc);
    let other_trailing = fails
        .iter_mut()
        .find(|f| f.name == "fail_trailing_chunk")
        .unwrap();
    other_trailing.data_key = other.data_key.clone();
    other_trailing.context = other.context.clone();
    (pass, fails)
}

#[test]
fn vectors_both_ways() {
    let pass_path = dir().join("pass.json");
    let fail_path = dir().join("fail.json");
    if std::env::var_os("KMSKIT_REGEN_VECTORS").is_some() {
        let (p, f) = generate();
        std::fs::write(&pass_path, serde_json::to_string_pretty(&p).unwrap() + "\n").unwrap();
        std::fs::write(&fail_path, serde_json::to_string_pretty(&f).unwrap() + "\n").unwrap();
    }
    let pass: Vec<PassVector> = serde_json::from_str(&std::fs::read_to_string(&pass_path).unwrap()).unwrap();
    let fail: Vec<FailVector> = serde_json::from_str(&std::fs::read_to_string(&fail_path).unwrap()).unwrap();
    assert!(pass.len() >= 9 && fail.len() >= 20);
    for v in &pass {
        let stream = unhex(&v.stream);
        for e in all_engines() {
            for w in [1, 3] {
                assert_eq!(
                    hex(&encrypt(v, Options::new().engine(e).workers(w))),
                    v.stream,
                    "{} on {}",
                    v.name,
                    e.name()
                );
            }
            let pt = kmskit_stream::decrypt_to_vec(
                &stream,
                &key(&v.data_key),
                &ctx(&v.context),
                &Options::new().engine(e),
            )
            .unwrap();
            assert_eq!(hex(&pt), v.plaintext, "{}", v.name);
        }
    }
    for v in &fail {
        assert!(v.name.starts_with("fail_"));
        let r = kmskit_stream::decrypt_to_vec(
            &unhex(&v.stream),
            &key(&v.data_key),
            &ctx(&v.context),
            &Options::new(),
        );
        match r {
            Ok(_) => panic!("{} decrypted", v.name),
            Err(e) => assert_eq!(e.code(), v.error, "{}: {e:?}", v.name),
        }
        // The streaming decryptor rejects it too.
        let mut out = Vec::new();
        let r = kmskit_stream::Decryptor::new(
            &unhex(&v.stream)[..],
            &key(&v.data_key),
            &ctx(&v.context),
            &Options::new(),
        )
        .and_then(|mut d| std::io::copy(&mut d, &mut out).map_err(kmskit_stream::StreamError::from_io));
        assert!(r.is_err(), "{} decrypted by the stream path", v.name);
    }
}
