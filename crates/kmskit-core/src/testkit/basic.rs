//! Basic cases: CreateKey/DescribeKey, round trips, encryption context, unknown keys, malformed refs.

use crate::blob::CiphertextBlob;
use crate::context::EncryptionContext;
use crate::error::ErrorCode;
use crate::id::{AliasName, KeyId, KeyRef, KeyVersionId};
use crate::key::{DataKeySpec, KeySpec, KeyState, KeyUsage, Origin, Tag};
use crate::provider::{CreateKey, PageRequest};

use super::Fixture;
use super::support::{arn_scope, by_id, create, create_with, ctx, describe, err, ok, pattern, skip};

/// CreateKey makes an `Enabled` AES-256 key with a primary version, and DescribeKey (by id and by ARN)
/// agrees with it; UpdateKeyDescription changes the description and refuses one over 8192 characters.
///
/// # Panics
/// When the provider does not conform.
pub async fn create_and_describe(fx: &Fixture) {
    let p = fx.provider();
    let caps = fx.capabilities();
    let made = create(fx, "create_and_describe").await;
    assert_eq!(made.key_state, KeyState::Enabled, "a new key is Enabled");
    assert_eq!(
        made.key_spec,
        KeySpec::Aes256,
        "the default spec is Aliyun_AES_256"
    );
    assert_eq!(made.key_usage, KeyUsage::EncryptDecrypt, "the default usage");
    assert_eq!(made.origin, Origin::Kms, "the default origin is Aliyun_KMS");
    assert!(
        made.primary_key_version.is_some(),
        "a symmetric key has a primary version"
    );
    assert_eq!(made.delete_date, None, "no DeleteDate unless PendingDeletion");
    assert!(
        made.arn.ends_with(&format!("key/{}", made.key_id)),
        "the Arn {:?} names the key",
        made.arn
    );
    assert_eq!(made.description, "kmskit testkit: create_and_describe");

    let seen = describe(fx, &made.key_id).await;
    assert_eq!(seen.key_id, made.key_id);
    assert_eq!(seen.arn, made.arn);
    assert_eq!(seen.creation_date, made.creation_date);
    assert_eq!(seen.description, made.description);
    assert_eq!(seen.key_spec, made.key_spec);
    assert_eq!(seen.key_state, made.key_state);
    assert_eq!(seen.key_usage, made.key_usage);
    assert_eq!(seen.origin, made.origin);
    assert_eq!(seen.primary_key_version, made.primary_key_version);
    if caps.deletion_protection {
        assert_eq!(
            seen.deletion_protection, "Disabled",
            "deletion protection starts off"
        );
    }

    let other = create(fx, "create_and_describe (second key)").await;
    assert_ne!(other.key_id, made.key_id, "every key gets its own id");

    if caps.arn_refs {
        let by_arn = ok(KeyRef::parse(&made.arn), "parse the key's Arn");
        let seen = ok(p.describe_key(&fx.caller(), &by_arn).await, "DescribeKey by ARN");
        assert_eq!(
            seen.key_id, made.key_id,
            "DescribeKey by ARN names the real key id"
        );
    } else {
        skip("create_and_describe/arn", "the provider does not take acs ARNs");
    }

    ok(
        p.update_key_description(&fx.caller(), &by_id(&made.key_id), "new words")
            .await,
        "UpdateKeyDescription",
    );
    assert_eq!(describe(fx, &made.key_id).await.description, "new words");
    let before = describe(fx, &made.key_id).await;
    err(
        p.update_key_description(&fx.caller(), &by_id(&made.key_id), &"d".repeat(8193))
            .await,
        ErrorCode::InvalidParameter,
        "UpdateKeyDescription with 8193 characters",
    );
    assert_eq!(
        describe(fx, &made.key_id).await,
        before,
        "a refused update changes nothing"
    );
    err(
        p.create_key(&fx.caller(), CreateKey::new("d".repeat(8193))).await,
        ErrorCode::InvalidParameter,
        "CreateKey with an 8193-character description",
    );

    if caps.external_origin {
        let ext = create_with(
            fx,
            CreateKey::new("kmskit testkit: external").origin(Origin::External),
            "origin EXTERNAL",
        )
        .await;
        assert_eq!(
            ext.key_state,
            KeyState::PendingImport,
            "EXTERNAL keys wait for material"
        );
        assert_eq!(ext.origin, Origin::External);
        assert_eq!(ext.primary_key_version, None, "no material, no primary version");
        assert_eq!(describe(fx, &ext.key_id).await.key_state, KeyState::PendingImport);
    } else {
        skip(
            "create_and_describe/external",
            "the provider has no EXTERNAL origin",
        );
    }
}

/// Encrypt/Decrypt round trips at 0, 1, 17 and the maximum number of bytes; one byte more is
/// `InvalidParameter`; results name the real key id and the primary version; the Base64 text form of the
/// blob round-trips; two encryptions of one plaintext differ.
///
/// # Panics
/// When the provider does not conform.
pub async fn round_trip(fx: &Fixture) {
    let p = fx.provider();
    let max = fx.capabilities().max_plaintext;
    let key = create(fx, "round_trip").await;
    let id = by_id(&key.key_id);
    let primary = key.primary_key_version.clone();
    let c = ctx([("purpose", "round_trip")]);
    for len in [0, 1, 17, max] {
        let pt = pattern(len, 7);
        let enc = ok(
            p.encrypt(&fx.caller(), &id, &pt, &c).await,
            format_args!("Encrypt {len} bytes"),
        );
        assert_eq!(enc.key_id, key.key_id, "Encrypt names the real key id");
        assert_eq!(
            Some(&enc.key_version_id),
            primary.as_ref(),
            "Encrypt uses the primary version"
        );
        assert!(
            !enc.ciphertext_blob.as_bytes().is_empty(),
            "the blob is not empty"
        );
        let dec = ok(
            p.decrypt(&fx.caller(), &enc.ciphertext_blob, &c).await,
            format_args!("Decrypt {len} bytes"),
        );
        assert!(
            dec.plaintext[..] == pt[..],
            "Decrypt of {len} bytes returns the plaintext"
        );
        assert_eq!(dec.key_id, key.key_id, "Decrypt names the key");
        assert_eq!(
            dec.key_version_id, enc.key_version_id,
            "Decrypt names the version"
        );

        let text = enc.ciphertext_blob.to_base64();
        assert_eq!(text.len() % 4, 0, "the text form is padded Base64");
        assert!(
            text.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'='),
            "the text form is standard Base64"
        );
        assert_eq!(
            enc.ciphertext_blob.to_string(),
            text,
            "Display is the Base64 form"
        );
        let back = ok(CiphertextBlob::from_base64(&text), "parse the Base64 form");
        assert_eq!(back, enc.ciphertext_blob);
        let dec = ok(
            p.decrypt(&fx.caller(), &back, &c).await,
            "Decrypt the Base64 round trip",
        );
        assert!(dec.plaintext[..] == pt[..]);
    }
    err(
        p.encrypt(&fx.caller(), &id, &pattern(max + 1, 7), &c).await,
        ErrorCode::InvalidParameter,
        format_args!("Encrypt {} bytes", max + 1),
    );

    let a = ok(p.encrypt(&fx.caller(), &id, b"same", &c).await, "Encrypt");
    let b = ok(p.encrypt(&fx.caller(), &id, b"same", &c).await, "Encrypt");
    assert_ne!(a.ciphertext_blob, b.ciphertext_blob, "ciphertexts are randomized");

    if fx.capabilities().arn_refs {
        let arn = ok(KeyRef::parse(&key.arn), "parse the key's Arn");
        let enc = ok(
            p.encrypt(&fx.caller(), &arn, b"by arn", &c).await,
            "Encrypt by ARN",
        );
        assert_eq!(enc.key_id, key.key_id, "Encrypt by ARN names the real key id");
    } else {
        skip("round_trip/arn", "the provider does not take acs ARNs");
    }
}

/// The encryption context is bound to the ciphertext: an equal map in any order decrypts; a wrong value,
/// a missing, extra or renamed entry, or the same text split differently, fails with `InvalidParameter`.
///
/// # Panics
/// When the provider does not conform.
pub async fn encryption_context(fx: &Fixture) {
    let p = fx.provider();
    let key = create(fx, "encryption_context").await;
    let id = by_id(&key.key_id);
    let c = ctx([("b", "2"), ("a", "1")]);
    let same = ok(
        EncryptionContext::from_json(r#"{ "a": "1",  "b":"2" }"#),
        "parse a context",
    );
    assert_eq!(c, same, "contexts compare order-insensitively");
    let enc = ok(p.encrypt(&fx.caller(), &id, b"bound", &c).await, "Encrypt");
    let dec = ok(
        p.decrypt(&fx.caller(), &enc.ciphertext_blob, &same).await,
        "Decrypt with the context in another order",
    );
    assert_eq!(&dec.plaintext[..], b"bound");

    let wrong: [(&str, EncryptionContext); 6] = [
        ("a wrong value", ctx([("a", "1"), ("b", "3")])),
        ("no context", EncryptionContext::new()),
        ("an extra entry", ctx([("a", "1"), ("b", "2"), ("c", "3")])),
        ("a missing entry", ctx([("a", "1")])),
        ("a renamed entry", ctx([("a", "1"), ("B", "2")])),
        ("swapped values", ctx([("a", "2"), ("b", "1")])),
    ];
    for (what, w) in &wrong {
        err(
            p.decrypt(&fx.caller(), &enc.ciphertext_blob, w).await,
            ErrorCode::InvalidParameter,
            format_args!("Decrypt with {what}"),
        );
    }

    // Binding is injective: {"a":"bc"} and {"ab":"c"} are different contexts.
    let split = ctx([("a", "bc")]);
    let enc2 = ok(p.encrypt(&fx.caller(), &id, b"split", &split).await, "Encrypt");
    err(
        p.decrypt(&fx.caller(), &enc2.ciphertext_blob, &ctx([("ab", "c")]))
            .await,
        ErrorCode::InvalidParameter,
        "Decrypt with the context text split differently",
    );
    // No context at encryption means none at decryption.
    let bare = ok(
        p.encrypt(&fx.caller(), &id, b"bare", &EncryptionContext::new())
            .await,
        "Encrypt without context",
    );
    err(
        p.decrypt(&fx.caller(), &bare.ciphertext_blob, &ctx([("a", "1")]))
            .await,
        ErrorCode::InvalidParameter,
        "Decrypt with a context the blob was not made with",
    );
    ok(
        p.decrypt(&fx.caller(), &bare.ciphertext_blob, &EncryptionContext::new())
            .await,
        "Decrypt without context",
    );
    // Failed attempts leave the blob usable.
    let dec = ok(
        p.decrypt(&fx.caller(), &enc.ciphertext_blob, &c).await,
        "Decrypt after failed attempts",
    );
    assert_eq!(&dec.plaintext[..], b"bound");
}

/// A valid but nonexistent key id answers `Forbidden.KeyNotFound` from every call that names a key; a
/// nonexistent alias answers `Forbidden.AliasNotFound`.
///
/// # Panics
/// When the provider does not conform.
pub async fn unknown_key(fx: &Fixture) {
    let p = fx.provider();
    let caps = fx.capabilities();
    let c = EncryptionContext::new();
    let missing = KeyId::generate();
    let k = by_id(&missing);
    let nf = ErrorCode::KeyNotFound;
    let real = create(fx, "unknown_key").await;
    let blob = ok(
        p.encrypt(&fx.caller(), &by_id(&real.key_id), b"x", &c).await,
        "Encrypt",
    )
    .ciphertext_blob;
    let page = PageRequest::default();
    let cl = fx.caller();

    err(p.describe_key(&cl, &k).await, nf, "DescribeKey");
    err(p.encrypt(&cl, &k, b"x", &c).await, nf, "Encrypt");
    err(p.enable_key(&cl, &k).await, nf, "EnableKey");
    err(p.disable_key(&cl, &k).await, nf, "DisableKey");
    err(
        p.schedule_key_deletion(&cl, &k, 7).await,
        nf,
        "ScheduleKeyDeletion",
    );
    err(p.cancel_key_deletion(&cl, &k).await, nf, "CancelKeyDeletion");
    err(
        p.update_key_description(&cl, &k, "x").await,
        nf,
        "UpdateKeyDescription",
    );
    err(
        p.generate_data_key(&cl, &k, DataKeySpec::Aes256.into(), &c).await,
        nf,
        "GenerateDataKey",
    );
    err(
        p.generate_data_key_without_plaintext(&cl, &k, DataKeySpec::Aes256.into(), &c)
            .await,
        nf,
        "GenerateDataKeyWithoutPlaintext",
    );
    err(
        p.re_encrypt(&cl, &blob, &c, &k, &c).await,
        nf,
        "ReEncrypt to an unknown key",
    );
    if caps.deletion_protection {
        err(
            p.set_deletion_protection(&cl, &k, true, "x").await,
            nf,
            "SetDeletionProtection",
        );
    }
    if caps.key_versions {
        err(p.list_key_versions(&cl, &k, page).await, nf, "ListKeyVersions");
        err(
            p.describe_key_version(&cl, &k, &KeyVersionId::generate()).await,
            nf,
            "DescribeKeyVersion",
        );
    }
    if caps.tags {
        let tag = ok(Tag::new("k", "v"), "build a tag");
        err(p.tag_resource(&cl, &k, &[tag]).await, nf, "TagResource");
        err(
            p.untag_resource(&cl, &k, &["k".to_owned()]).await,
            nf,
            "UntagResource",
        );
        err(p.list_resource_tags(&cl, &k).await, nf, "ListResourceTags");
    }
    if caps.arn_refs {
        let (region, account) = arn_scope(&real);
        let arn = ok(
            KeyRef::parse(&format!("acs:kms:{region}:{account}:key/{missing}")),
            "build an ARN",
        );
        err(p.describe_key(&cl, &arn).await, nf, "DescribeKey by ARN");
        err(p.encrypt(&cl, &arn, b"x", &c).await, nf, "Encrypt by ARN");
    }

    if !caps.aliases {
        skip("unknown_key/aliases", "the provider has no aliases");
        return;
    }
    err(
        p.list_aliases_by_key_id(&cl, &k, page).await,
        nf,
        "ListAliasesByKeyId",
    );
    let fresh = super::support::unique_alias("unknown-key");
    err(
        p.create_alias(&cl, &fresh, &k).await,
        nf,
        "CreateAlias to an unknown key",
    );
    ok(
        p.create_alias(&cl, &fresh, &by_id(&real.key_id)).await,
        "CreateAlias",
    );
    err(
        p.update_alias(&cl, &fresh, &k).await,
        nf,
        "UpdateAlias to an unknown key",
    );

    let anf = ErrorCode::AliasNotFound;
    let gone: AliasName = super::support::unique_alias("missing");
    let a = KeyRef::Alias(gone.clone());
    err(p.describe_key(&cl, &a).await, anf, "DescribeKey by unknown alias");
    err(
        p.encrypt(&cl, &a, b"x", &c).await,
        anf,
        "Encrypt by unknown alias",
    );
    err(
        p.generate_data_key(&cl, &a, DataKeySpec::Aes256.into(), &c).await,
        anf,
        "GenerateDataKey by unknown alias",
    );
    err(
        p.delete_alias(&cl, &gone).await,
        anf,
        "DeleteAlias of an unknown alias",
    );
    err(
        p.update_alias(&cl, &gone, &by_id(&real.key_id)).await,
        anf,
        "UpdateAlias of an unknown alias",
    );
    err(
        p.re_encrypt(&cl, &blob, &c, &a, &c).await,
        anf,
        "ReEncrypt to an unknown alias",
    );
    if caps.arn_refs {
        let (region, account) = arn_scope(&real);
        let arn = ok(
            KeyRef::parse(&format!("acs:kms:{region}:{account}:{gone}")),
            "build an alias ARN",
        );
        err(
            p.encrypt(&cl, &arn, b"x", &c).await,
            anf,
            "Encrypt by unknown alias ARN",
        );
    }
}

/// [`KeyRef::parse`] accepts ids, aliases and ARNs and rejects everything else with `InvalidParameter`
/// (`MissingParameter` for the empty string, `Unsupported.Alias` for the reserved `alias/acs`). Needs no
/// provider; it is in the suite so every backend's run shows the parser it relies on.
///
/// # Panics
/// When the parser does not conform.
pub async fn malformed_key_refs(fx: &Fixture) {
    let _ = fx;
    for good in [
        "1234abcd-12ab-34cd-56ef-1234567890ab",
        "key-hzz630494463ejqjx4jxc",
        "alias/app",
        "alias/app/prod-1",
        "acs:kms:cn-hangzhou:123456:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "acs:kms:cn-hangzhou:123456:alias/app",
    ] {
        ok(KeyRef::parse(good), format_args!("KeyRef::parse({good:?})"));
    }
    let long_id = "k".repeat(129);
    let long_alias = format!("alias/{}", "a".repeat(256));
    for bad in [
        "has space",
        "key/abc",
        "alias/",
        "alias/bad name",
        "alias/semi;colon",
        "acs:kms:cn:1:key/",
        "acs:kms:cn:1:secret/x",
        "acs:ecs:cn:1:key/abc",
        "acs:kms::1:key/abc",
        "acs:kms:cn:1",
        "arn:aws:kms:us-east-1:1:key/abc",
        "k\u{e9}y",
        "../etc/passwd",
        "nul\0byte",
        long_id.as_str(),
        long_alias.as_str(),
    ] {
        err(
            KeyRef::parse(bad),
            ErrorCode::InvalidParameter,
            format_args!("KeyRef::parse({bad:?})"),
        );
    }
    err(
        KeyRef::parse(""),
        ErrorCode::MissingParameter,
        "KeyRef::parse(\"\")",
    );
    for reserved in ["alias/acs", "alias/acs/rds", "acs:kms:cn:1:alias/acs/x"] {
        err(
            KeyRef::parse(reserved),
            ErrorCode::UnsupportedAlias,
            format_args!("KeyRef::parse({reserved:?})"),
        );
    }
    err(
        AliasName::new("app"),
        ErrorCode::InvalidParameter,
        "AliasName::new without the alias/ prefix",
    );
    err(KeyId::new(""), ErrorCode::InvalidParameter, "KeyId::new(\"\")");
}
