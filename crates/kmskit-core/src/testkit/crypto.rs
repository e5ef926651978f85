//! Data keys, ReEncrypt, tamper resistance.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::blob::CiphertextBlob;
use crate::context::EncryptionContext;
use crate::error::ErrorCode;
use crate::id::KeyRef;
use crate::key::DataKeySpec;
use crate::provider::DataKeyLength;

use super::Fixture;
use super::support::{by_id, create, ctx, err, ok, skip, unique_alias};

/// GenerateDataKey: `AES_256` gives 32 bytes, `AES_128` 16, `NumberOfBytes` 1 and 1024 that many; 0 and
/// 1025 are `InvalidParameter` (WithoutPlaintext too). `decrypt_data_key` returns the same bytes and
/// Decrypt the Base64 text of them (the model service's convention); the context is bound; a
/// WithoutPlaintext blob decrypts the same way; a blob holding no data key is refused by
/// `decrypt_data_key`.
///
/// # Panics
/// When the provider does not conform.
pub async fn data_keys(fx: &Fixture) {
    let p = fx.provider();
    let key = create(fx, "data_keys").await;
    let id = by_id(&key.key_id);
    let primary = key.primary_key_version.clone();
    let c = ctx([("case", "data_keys")]);
    let lengths: [(DataKeyLength, usize); 5] = [
        (DataKeyLength::default(), 32),
        (DataKeySpec::Aes256.into(), 32),
        (DataKeySpec::Aes128.into(), 16),
        (DataKeyLength::Bytes(1), 1),
        (DataKeyLength::Bytes(1024), 1024),
    ];
    for (len, n) in lengths {
        let g = ok(
            p.generate_data_key(&fx.caller(), &id, len, &c).await,
            format_args!("GenerateDataKey {len:?}"),
        );
        assert_eq!(g.plaintext.len(), n, "GenerateDataKey {len:?} gives {n} bytes");
        assert_eq!(g.key_id, key.key_id, "GenerateDataKey names the real key id");
        assert_eq!(
            Some(&g.key_version_id),
            primary.as_ref(),
            "… and the primary version"
        );
        let back = ok(
            p.decrypt_data_key(&fx.caller(), &g.ciphertext_blob, &c).await,
            "decrypt_data_key",
        );
        assert!(
            back == g.plaintext,
            "decrypt_data_key returns the generated key ({len:?})"
        );
        let raw = ok(
            p.decrypt(&fx.caller(), &g.ciphertext_blob, &c).await,
            "Decrypt a data key",
        );
        assert_eq!(raw.key_id, key.key_id);
        if fx.capabilities().data_key_base64 {
            assert!(
                raw.plaintext[..] == *STANDARD.encode(g.plaintext.expose_secret()).as_bytes(),
                "Decrypt of a data-key blob returns the Base64 text of the key ({len:?})"
            );
        } else {
            assert!(raw.plaintext[..] == *g.plaintext.expose_secret());
        }
        err(
            p.decrypt_data_key(&fx.caller(), &g.ciphertext_blob, &EncryptionContext::new())
                .await,
            ErrorCode::InvalidParameter,
            "decrypt_data_key without the context",
        );

        let w = ok(
            p.generate_data_key_without_plaintext(&fx.caller(), &id, len, &c)
                .await,
            format_args!("GenerateDataKeyWithoutPlaintext {len:?}"),
        );
        assert_eq!(w.key_id, key.key_id);
        assert_eq!(Some(&w.key_version_id), primary.as_ref());
        let k = ok(
            p.decrypt_data_key(&fx.caller(), &w.ciphertext_blob, &c).await,
            "decrypt_data_key of a WithoutPlaintext blob",
        );
        assert_eq!(
            k.len(),
            n,
            "GenerateDataKeyWithoutPlaintext {len:?} wraps {n} bytes"
        );
    }
    let a = ok(
        p.generate_data_key(&fx.caller(), &id, DataKeyLength::default(), &c)
            .await,
        "GenerateDataKey",
    );
    let b = ok(
        p.generate_data_key(&fx.caller(), &id, DataKeyLength::default(), &c)
            .await,
        "GenerateDataKey",
    );
    assert!(a.plaintext != b.plaintext, "data keys are random");
    for n in [0u16, 1025, u16::MAX] {
        err(
            p.generate_data_key(&fx.caller(), &id, DataKeyLength::Bytes(n), &c)
                .await,
            ErrorCode::InvalidParameter,
            format_args!("GenerateDataKey NumberOfBytes {n}"),
        );
        err(
            p.generate_data_key_without_plaintext(&fx.caller(), &id, DataKeyLength::Bytes(n), &c)
                .await,
            ErrorCode::InvalidParameter,
            format_args!("GenerateDataKeyWithoutPlaintext NumberOfBytes {n}"),
        );
    }
    if fx.capabilities().data_key_base64 {
        let not_a_key = ok(
            p.encrypt(&fx.caller(), &id, b"not base64 at all!", &c).await,
            "Encrypt",
        );
        err(
            p.decrypt_data_key(&fx.caller(), &not_a_key.ciphertext_blob, &c)
                .await,
            ErrorCode::InvalidParameter,
            "decrypt_data_key of a blob holding no data key",
        );
    } else {
        skip(
            "data_keys/not_a_key",
            "the provider returns raw data keys from Decrypt",
        );
    }
}

/// ReEncrypt to another key and to the same key, changing the context: the result names the
/// destination and its primary version, decrypts under the new context only, and the source blob stays
/// valid; a wrong source context is `InvalidParameter`; data keys survive ReEncrypt; the destination may
/// be named by alias.
///
/// # Panics
/// When the provider does not conform.
pub async fn re_encrypt(fx: &Fixture) {
    let p = fx.provider();
    let a = create(fx, "re_encrypt A").await;
    let b = create(fx, "re_encrypt B").await;
    let (c1, c2, c3) = (
        ctx([("stage", "one")]),
        ctx([("stage", "two"), ("extra", "x")]),
        ctx([("stage", "three")]),
    );
    let src = ok(
        p.encrypt(&fx.caller(), &by_id(&a.key_id), b"move me", &c1).await,
        "Encrypt",
    );
    for (dest, dc) in [(&b, &c2), (&a, &c3)] {
        let what = if dest.key_id == a.key_id {
            "the same key"
        } else {
            "another key"
        };
        let moved = ok(
            p.re_encrypt(&fx.caller(), &src.ciphertext_blob, &c1, &by_id(&dest.key_id), dc)
                .await,
            format_args!("ReEncrypt to {what}"),
        );
        assert_eq!(
            moved.key_id, dest.key_id,
            "ReEncrypt to {what} names the destination"
        );
        assert_eq!(
            Some(&moved.key_version_id),
            dest.primary_key_version.as_ref(),
            "ReEncrypt to {what} uses the destination's primary version"
        );
        assert_ne!(
            moved.ciphertext_blob, src.ciphertext_blob,
            "ReEncrypt makes a new blob"
        );
        let d = ok(
            p.decrypt(&fx.caller(), &moved.ciphertext_blob, dc).await,
            format_args!("Decrypt after ReEncrypt to {what}"),
        );
        assert_eq!(&d.plaintext[..], b"move me");
        assert_eq!(d.key_id, dest.key_id);
        err(
            p.decrypt(&fx.caller(), &moved.ciphertext_blob, &c1).await,
            ErrorCode::InvalidParameter,
            format_args!("the old context on the blob re-encrypted to {what}"),
        );
    }
    let d = ok(
        p.decrypt(&fx.caller(), &src.ciphertext_blob, &c1).await,
        "Decrypt the source blob after ReEncrypt",
    );
    assert_eq!(&d.plaintext[..], b"move me");
    err(
        p.re_encrypt(&fx.caller(), &src.ciphertext_blob, &c2, &by_id(&b.key_id), &c2)
            .await,
        ErrorCode::InvalidParameter,
        "ReEncrypt with a wrong source context",
    );

    let g = ok(
        p.generate_data_key(&fx.caller(), &by_id(&a.key_id), DataKeySpec::Aes256.into(), &c1)
            .await,
        "GenerateDataKey",
    );
    let moved = ok(
        p.re_encrypt(&fx.caller(), &g.ciphertext_blob, &c1, &by_id(&b.key_id), &c2)
            .await,
        "ReEncrypt a data key",
    );
    let k = ok(
        p.decrypt_data_key(&fx.caller(), &moved.ciphertext_blob, &c2)
            .await,
        "decrypt_data_key after ReEncrypt",
    );
    assert!(k == g.plaintext, "the data key survives ReEncrypt");

    if fx.capabilities().aliases {
        let alias = unique_alias("re-encrypt");
        ok(
            p.create_alias(&fx.caller(), &alias, &by_id(&b.key_id)).await,
            "CreateAlias",
        );
        let moved = ok(
            p.re_encrypt(
                &fx.caller(),
                &src.ciphertext_blob,
                &c1,
                &KeyRef::Alias(alias),
                &c3,
            )
            .await,
            "ReEncrypt to an alias",
        );
        assert_eq!(
            moved.key_id, b.key_id,
            "ReEncrypt to an alias names the real key id"
        );
    } else {
        skip("re_encrypt/alias", "the provider has no aliases");
    }
}

/// The bit positions to flip in a blob of `len` bytes: all of them for blobs up to 256 bytes, else all
/// bits of the first and last 128 bytes and one bit of every byte between.
fn flip_positions(len: usize) -> Vec<usize> {
    if len <= 256 {
        return (0..len * 8).collect();
    }
    let mut v: Vec<usize> = (0..128 * 8).collect();
    v.extend((128..len - 128).map(|byte| byte * 8 + byte % 8));
    v.extend((len - 128) * 8..len * 8);
    v
}

/// Decrypts every variant, requiring a client error (4xx) for each; returns how many there were.
async fn all_refused(
    fx: &Fixture,
    what: &str,
    c: &EncryptionContext,
    variants: impl Iterator<Item = (String, Vec<u8>)>,
) -> usize {
    let p = fx.provider();
    let mut n = 0;
    let mut problems = Vec::new();
    for (name, bytes) in variants {
        n += 1;
        match p
            .decrypt(&fx.caller(), &CiphertextBlob::from_bytes(bytes), c)
            .await
        {
            Ok(_) => problems.push(format!("{name}: decrypted")),
            Err(e) if !(400..500).contains(&e.http_status()) => {
                problems.push(format!("{name}: {} ({e}), not a client error", e.code()));
            }
            Err(_) => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{what}: {} of {n} tampered blobs were not refused:\n{}",
        problems.len(),
        problems.join("\n")
    );
    n
}

/// Every single-bit flip and every truncation of a blob (an Encrypt blob and a data-key blob), and a
/// one-byte extension, is refused with a client (4xx) error — never decrypted, never a panic; the
/// original still decrypts afterwards.
///
/// # Panics
/// When the provider does not conform.
pub async fn tamper(fx: &Fixture) {
    let p = fx.provider();
    let key = create(fx, "tamper").await;
    let id = by_id(&key.key_id);
    let c = ctx([("case", "tamper")]);
    let short = ok(p.encrypt(&fx.caller(), &id, b"x", &c).await, "Encrypt").ciphertext_blob;
    let wrapped = ok(
        p.generate_data_key_without_plaintext(&fx.caller(), &id, DataKeySpec::Aes128.into(), &c)
            .await,
        "GenerateDataKeyWithoutPlaintext",
    )
    .ciphertext_blob;
    for (what, blob) in [("an Encrypt blob", &short), ("a data-key blob", &wrapped)] {
        let bytes = blob.as_bytes().to_vec();
        let flips = flip_positions(bytes.len()).into_iter().map(|bit| {
            let mut v = bytes.clone();
            v[bit / 8] ^= 1 << (bit % 8);
            (format!("bit {bit} flipped"), v)
        });
        all_refused(fx, what, &c, flips).await;
        let cuts = (0..bytes.len()).map(|n| (format!("truncated to {n} bytes"), bytes[..n].to_vec()));
        all_refused(fx, what, &c, cuts).await;
        let longer = [0u8, 0xff].into_iter().map(|b| {
            let mut v = bytes.clone();
            v.push(b);
            (format!("extended by {b:#04x}"), v)
        });
        all_refused(fx, what, &c, longer).await;
        ok(
            p.decrypt(&fx.caller(), blob, &c).await,
            format_args!("Decrypt {what} after the tampering"),
        );
    }
}
