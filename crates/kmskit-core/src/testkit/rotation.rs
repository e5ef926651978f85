//! Rotation cases: CreateKeyVersion, rotation policies, due work, ReEncrypt to the primary, version
//! floors. They need the provider's [`Rotator`](crate::rotate::Rotator) ([`Fixture::with_rotator`]).

use std::sync::Arc;

use crate::clock::DAY;
use crate::error::ErrorCode;
use crate::id::KeyVersionId;
use crate::key::{AutomaticRotation, KeyState};
use crate::provider::PageRequest;
use crate::rotate::{RotationPolicy, Rotator};

use super::Fixture;
use super::support::{by_id, create, ctx, describe, err, ok, skip};

fn rotator(fx: &Fixture, case: &str) -> Option<Arc<dyn Rotator>> {
    let r = fx.rotator().cloned();
    if r.is_none() {
        skip(case, "the fixture has no Rotator (Fixture::with_rotator)");
    }
    r
}

/// CreateKeyVersion twice: each makes a new primary version; every generation still decrypts; the
/// versions are listed oldest first; `LastRotationDate` follows; a disabled key refuses to rotate.
///
/// # Panics
/// When the provider does not conform.
pub async fn rotation(fx: &Fixture) {
    let Some(rot) = rotator(fx, "rotation") else {
        return;
    };
    let p = fx.provider();
    let key = create(fx, "rotation").await;
    let k = by_id(&key.key_id);
    let c = ctx([("case", "rotation")]);
    let v1 = key
        .primary_key_version
        .clone()
        .expect("a symmetric key has a primary version");
    let mut blobs = vec![(
        v1.clone(),
        ok(p.encrypt(&fx.caller(), &k, b"gen 1", &c).await, "Encrypt gen 1"),
    )];
    let mut versions = vec![v1];
    for generation in 2..=3u8 {
        let v = ok(
            rot.rotate(&fx.caller(), &k).await,
            format_args!("CreateKeyVersion #{generation}"),
        );
        assert_eq!(v.key_id, key.key_id, "CreateKeyVersion names the key");
        assert!(
            !versions.contains(&v.key_version_id),
            "a rotation makes a new version id"
        );
        let meta = describe(fx, &key.key_id).await;
        assert_eq!(
            meta.primary_key_version.as_ref(),
            Some(&v.key_version_id),
            "the new version is primary"
        );
        assert_eq!(
            meta.last_rotation_date,
            Some(v.creation_date),
            "LastRotationDate is the new version's creation"
        );
        let pt = format!("gen {generation}");
        let enc = ok(
            p.encrypt(&fx.caller(), &k, pt.as_bytes(), &c).await,
            "Encrypt after rotation",
        );
        assert_eq!(
            enc.key_version_id, v.key_version_id,
            "Encrypt uses the new primary version"
        );
        versions.push(v.key_version_id.clone());
        blobs.push((v.key_version_id, enc));
    }
    for (i, (v, enc)) in blobs.iter().enumerate() {
        let d = ok(
            p.decrypt(&fx.caller(), &enc.ciphertext_blob, &c).await,
            format_args!("Decrypt generation {}", i + 1),
        );
        assert_eq!(d.plaintext.as_slice(), format!("gen {}", i + 1).as_bytes());
        assert_eq!(&d.key_version_id, v, "Decrypt reports the version the blob names");
    }
    let listed = ok(
        p.list_key_versions(&fx.caller(), &k, PageRequest::new(1, 100).expect("valid page"))
            .await,
        "ListKeyVersions",
    );
    let ids: Vec<KeyVersionId> = listed.items.into_iter().map(|v| v.key_version_id).collect();
    assert_eq!(ids, versions, "ListKeyVersions lists every version, oldest first");

    ok(p.disable_key(&fx.caller(), &k).await, "DisableKey");
    err(
        rot.rotate(&fx.caller(), &k).await,
        ErrorCode::Disabled,
        "CreateKeyVersion on a disabled key",
    );
    ok(p.enable_key(&fx.caller(), &k).await, "EnableKey");
    let unknown = by_id(&crate::KeyId::generate());
    err(
        rot.rotate(&fx.caller(), &unknown).await,
        ErrorCode::KeyNotFound,
        "CreateKeyVersion on an unknown key",
    );
}

/// UpdateRotationPolicy: interval bounds (7–365 days, exactly at the edges), what DescribeKey shows
/// (`AutomaticRotation`, `RotationInterval`, `NextRotationDate`), `Suspended` while disabled or pending
/// deletion, and switching it off.
///
/// # Panics
/// When the provider does not conform.
pub async fn rotation_policy(fx: &Fixture) {
    let Some(rot) = rotator(fx, "rotation_policy") else {
        return;
    };
    let p = fx.provider();
    let key = create(fx, "rotation_policy").await;
    let k = by_id(&key.key_id);
    assert_eq!(
        key.automatic_rotation,
        AutomaticRotation::Disabled,
        "a new key does not rotate"
    );
    assert_eq!(key.next_rotation_date, None);
    assert_eq!(key.rotation_interval, None);

    for bad in [0u64, 7 * DAY - 1, 365 * DAY + 1] {
        err(
            RotationPolicy::every_secs(bad),
            ErrorCode::InvalidParameter,
            format_args!("interval {bad}s"),
        );
    }
    for bad in ["6d", "366d", "", "7", "d", "7w", "-7d", "7.5d"] {
        err(
            RotationPolicy::parse_interval(bad),
            ErrorCode::InvalidParameter,
            format_args!("RotationInterval {bad:?}"),
        );
    }
    assert_eq!(
        ok(RotationPolicy::parse_interval("7d"), "7d"),
        ok(RotationPolicy::parse_interval("604800s"), "604800s")
    );
    assert_eq!(
        ok(RotationPolicy::parse_interval("8760h"), "8760h").interval_secs(),
        Some(365 * DAY)
    );

    for days in [7u32, 365, 30] {
        let policy = ok(RotationPolicy::every_days(days), format_args!("{days} days"));
        ok(
            rot.set_rotation_policy(&fx.caller(), &k, policy).await,
            format_args!("UpdateRotationPolicy {days}d"),
        );
        let meta = describe(fx, &key.key_id).await;
        assert_eq!(meta.automatic_rotation, AutomaticRotation::Enabled);
        assert_eq!(
            meta.rotation_interval,
            Some(format!("{}s", u64::from(days) * DAY))
        );
        let last = meta.last_rotation_date.unwrap_or(meta.creation_date);
        assert_eq!(
            meta.next_rotation_date,
            Some(last.plus_secs(u64::from(days) * DAY)),
            "NextRotationDate = LastRotationDate + interval"
        );
    }

    ok(p.disable_key(&fx.caller(), &k).await, "DisableKey");
    assert_eq!(
        describe(fx, &key.key_id).await.automatic_rotation,
        AutomaticRotation::Suspended
    );
    ok(p.enable_key(&fx.caller(), &k).await, "EnableKey");
    assert_eq!(
        describe(fx, &key.key_id).await.automatic_rotation,
        AutomaticRotation::Enabled
    );
    ok(
        p.schedule_key_deletion(&fx.caller(), &k, 7).await,
        "ScheduleKeyDeletion",
    );
    let meta = describe(fx, &key.key_id).await;
    assert_eq!(meta.automatic_rotation, AutomaticRotation::Suspended);
    assert!(
        meta.next_rotation_date.is_some(),
        "a suspended policy keeps its NextRotationDate"
    );
    err(
        rot.set_rotation_policy(&fx.caller(), &k, RotationPolicy::disabled())
            .await,
        ErrorCode::PendingDeletion,
        "UpdateRotationPolicy on a key pending deletion",
    );
    ok(p.cancel_key_deletion(&fx.caller(), &k).await, "CancelKeyDeletion");

    ok(
        rot.set_rotation_policy(&fx.caller(), &k, RotationPolicy::disabled())
            .await,
        "disable rotation",
    );
    let meta = describe(fx, &key.key_id).await;
    assert_eq!(meta.automatic_rotation, AutomaticRotation::Disabled);
    assert_eq!(meta.next_rotation_date, None);
    assert_eq!(meta.rotation_interval, None);
    err(
        rot.set_rotation_policy(
            &fx.caller(),
            &by_id(&crate::KeyId::generate()),
            RotationPolicy::disabled(),
        )
        .await,
        ErrorCode::KeyNotFound,
        "UpdateRotationPolicy on an unknown key",
    );
}

/// `due(now)` lists a key exactly from its `NextRotationDate` on, never while suspended; `run_due(now)`
/// rotates it once, dated `now`, and purges keys whose deletion window ended, exactly at `DeleteDate`.
///
/// # Panics
/// When the provider does not conform.
pub async fn rotation_due_work(fx: &Fixture) {
    let Some(rot) = rotator(fx, "rotation_due_work") else {
        return;
    };
    let p = fx.provider();
    let key = create(fx, "rotation_due_work").await;
    let k = by_id(&key.key_id);
    let c = ctx([("case", "due")]);
    let old = ok(p.encrypt(&fx.caller(), &k, b"before", &c).await, "Encrypt");
    ok(
        rot.set_rotation_policy(&fx.caller(), &k, ok(RotationPolicy::every_days(7), "7d"))
            .await,
        "UpdateRotationPolicy 7d",
    );
    let next = describe(fx, &key.key_id)
        .await
        .next_rotation_date
        .expect("NextRotationDate");
    let before = crate::Timestamp::from_unix(next.unix() - 1);
    assert!(
        !ok(rot.due(before).await, "due").rotations.contains(&key.key_id),
        "not due one second before NextRotationDate"
    );
    assert!(
        ok(rot.due(next).await, "due").rotations.contains(&key.key_id),
        "due at NextRotationDate"
    );

    // Suspended while disabled: not due, not rotated.
    ok(p.disable_key(&fx.caller(), &k).await, "DisableKey");
    assert!(
        !ok(rot.due(next).await, "due").rotations.contains(&key.key_id),
        "a disabled key is not due"
    );
    let report = ok(rot.run_due(next).await, "run_due");
    assert!(
        report.rotated.iter().all(|v| v.key_id != key.key_id),
        "a disabled key is not rotated"
    );
    ok(p.enable_key(&fx.caller(), &k).await, "EnableKey");

    let report = ok(rot.run_due(next).await, "run_due");
    let rotated: Vec<_> = report.rotated.iter().filter(|v| v.key_id == key.key_id).collect();
    assert_eq!(rotated.len(), 1, "run_due rotates a due key once: {report:?}");
    assert_eq!(rotated[0].creation_date, next, "the new version is dated `now`");
    let meta = describe(fx, &key.key_id).await;
    assert_eq!(
        meta.primary_key_version.as_ref(),
        Some(&rotated[0].key_version_id)
    );
    assert_eq!(meta.last_rotation_date, Some(next));
    assert_eq!(meta.next_rotation_date, Some(next.plus_secs(7 * DAY)));
    let again = ok(rot.run_due(next).await, "run_due again");
    assert!(
        again.rotated.iter().all(|v| v.key_id != key.key_id),
        "not rotated twice"
    );
    let d = ok(
        p.decrypt(&fx.caller(), &old.ciphertext_blob, &c).await,
        "Decrypt the pre-rotation blob",
    );
    assert_eq!(&d.plaintext[..], b"before");

    // Purges.
    let doomed = create(fx, "rotation_due_work purge").await;
    ok(
        p.schedule_key_deletion(&fx.caller(), &by_id(&doomed.key_id), 7)
            .await,
        "ScheduleKeyDeletion",
    );
    let at = describe(fx, &doomed.key_id)
        .await
        .delete_date
        .expect("DeleteDate");
    let early = crate::Timestamp::from_unix(at.unix() - 1);
    assert!(!ok(rot.due(early).await, "due").purges.contains(&doomed.key_id));
    let r = ok(rot.run_due(early).await, "run_due before DeleteDate");
    assert!(!r.purged.contains(&doomed.key_id), "not purged before DeleteDate");
    assert_eq!(
        describe(fx, &doomed.key_id).await.key_state,
        KeyState::PendingDeletion
    );
    assert!(ok(rot.due(at).await, "due").purges.contains(&doomed.key_id));
    let r = ok(rot.run_due(at).await, "run_due at DeleteDate");
    assert!(r.purged.contains(&doomed.key_id), "purged at DeleteDate: {r:?}");
    err(
        p.describe_key(&fx.caller(), &by_id(&doomed.key_id)).await,
        ErrorCode::KeyNotFound,
        "DescribeKey after the purge",
    );
}

/// ReEncrypt moves a ciphertext of an old version to the newest one (same key, same context), and to
/// another key with new source and destination contexts.
///
/// # Panics
/// When the provider does not conform.
pub async fn re_encrypt_to_primary(fx: &Fixture) {
    let Some(rot) = rotator(fx, "re_encrypt_to_primary") else {
        return;
    };
    let p = fx.provider();
    let key = create(fx, "re_encrypt_to_primary").await;
    let other = create(fx, "re_encrypt_to_primary other").await;
    let k = by_id(&key.key_id);
    let c = ctx([("row", "17")]);
    let old = ok(
        p.encrypt(&fx.caller(), &k, b"old generation", &c).await,
        "Encrypt",
    );
    ok(rot.rotate(&fx.caller(), &k).await, "rotate");
    let v3 = ok(rot.rotate(&fx.caller(), &k).await, "rotate");
    let moved = ok(
        rot.re_encrypt_to_primary(&fx.caller(), &old.ciphertext_blob, &c)
            .await,
        "ReEncrypt to the primary",
    );
    assert_eq!(moved.key_id, key.key_id);
    assert_eq!(
        moved.key_version_id, v3.key_version_id,
        "moved to the newest version"
    );
    let d = ok(
        p.decrypt(&fx.caller(), &moved.ciphertext_blob, &c).await,
        "Decrypt moved",
    );
    assert_eq!(&d.plaintext[..], b"old generation");
    err(
        rot.re_encrypt_to_primary(&fx.caller(), &old.ciphertext_blob, &ctx([("row", "18")]))
            .await,
        ErrorCode::InvalidParameter,
        "ReEncrypt to the primary with a wrong context",
    );
    let c2 = ctx([("row", "17"), ("table", "archive")]);
    let elsewhere = ok(
        p.re_encrypt(&fx.caller(), &old.ciphertext_blob, &c, &by_id(&other.key_id), &c2)
            .await,
        "ReEncrypt to another key",
    );
    assert_eq!(elsewhere.key_id, other.key_id);
    let d = ok(
        p.decrypt(&fx.caller(), &elsewhere.ciphertext_blob, &c2).await,
        "Decrypt under the other key",
    );
    assert_eq!(&d.plaintext[..], b"old generation");
}

/// A minimum decryption version retires older versions: their ciphertexts (and ReEncrypt of them) fail
/// with `Rejected.KeyVersionRetired` (409); the floor version and newer still decrypt; Encrypt is
/// unaffected; an unknown floor version is refused; lowering the floor restores decryption.
///
/// # Panics
/// When the provider does not conform.
pub async fn version_floors(fx: &Fixture) {
    let Some(rot) = rotator(fx, "version_floors") else {
        return;
    };
    let p = fx.provider();
    let key = create(fx, "version_floors").await;
    let k = by_id(&key.key_id);
    let c = ctx([("case", "floors")]);
    let b1 = ok(p.encrypt(&fx.caller(), &k, b"one", &c).await, "Encrypt v1");
    let v2 = ok(rot.rotate(&fx.caller(), &k).await, "rotate");
    let b2 = ok(p.encrypt(&fx.caller(), &k, b"two", &c).await, "Encrypt v2");
    let v3 = ok(rot.rotate(&fx.caller(), &k).await, "rotate");
    let b3 = ok(p.encrypt(&fx.caller(), &k, b"three", &c).await, "Encrypt v3");

    ok(
        rot.set_min_decryption_version(&fx.caller(), &k, Some(v2.key_version_id.clone()))
            .await,
        "floor at v2",
    );
    let e = p.decrypt(&fx.caller(), &b1.ciphertext_blob, &c).await;
    err(
        e,
        ErrorCode::KeyVersionRetired,
        "Decrypt of a version below the floor",
    );
    assert_eq!(
        ErrorCode::KeyVersionRetired.as_str(),
        "Rejected.KeyVersionRetired"
    );
    assert_eq!(ErrorCode::KeyVersionRetired.http_status(), 409);
    err(
        rot.re_encrypt_to_primary(&fx.caller(), &b1.ciphertext_blob, &c)
            .await,
        ErrorCode::KeyVersionRetired,
        "ReEncrypt of a retired version",
    );
    err(
        p.re_encrypt(&fx.caller(), &b1.ciphertext_blob, &c, &k, &c).await,
        ErrorCode::KeyVersionRetired,
        "ReEncrypt (KeyProvider) of a retired version",
    );
    for (b, want) in [(&b2, &b"two"[..]), (&b3, &b"three"[..])] {
        let d = ok(
            p.decrypt(&fx.caller(), &b.ciphertext_blob, &c).await,
            "Decrypt at or above the floor",
        );
        assert_eq!(&d.plaintext[..], want);
    }
    let fresh = ok(
        p.encrypt(&fx.caller(), &k, b"new", &c).await,
        "Encrypt with a floor",
    );
    assert_eq!(fresh.key_version_id, v3.key_version_id);

    ok(
        rot.set_min_decryption_version(&fx.caller(), &k, Some(v3.key_version_id.clone()))
            .await,
        "floor at v3",
    );
    err(
        p.decrypt(&fx.caller(), &b2.ciphertext_blob, &c).await,
        ErrorCode::KeyVersionRetired,
        "v2 below v3",
    );
    err(
        rot.set_min_decryption_version(&fx.caller(), &k, Some(KeyVersionId::generate()))
            .await,
        ErrorCode::KeyVersionNotFound,
        "a floor at an unknown version",
    );
    ok(
        rot.set_min_decryption_version(&fx.caller(), &k, None).await,
        "remove the floor",
    );
    let d = ok(
        p.decrypt(&fx.caller(), &b1.ciphertext_blob, &c).await,
        "Decrypt v1 after the floor is removed",
    );
    assert_eq!(&d.plaintext[..], b"one");
}
