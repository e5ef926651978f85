//! Rotation state persists: versions, the primary, the rotation policy, `LastRotationDate` and the
//! version floor are in the key record, so a reopened keystore enforces and reports all of them.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use common::*;
use kmskit_core::key::AutomaticRotation;
use kmskit_core::rotate::{RotationPolicy, Rotator};
use kmskit_core::{KeyProvider, KeyRef, Timestamp, block_on};

#[test]
fn rotation_policy_versions_and_floor_survive_reopen() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("ks");
    let clock = clock();
    let (key, b1, b2, b3, v2, v3, before) = {
        let kms = open_with_clock(&dir, clock.clone());
        let (key, b1) = key_with_blob(&kms, b"one");
        let k = KeyRef::Id(key.clone());
        block_on(async {
            clock.advance(86_400);
            let v2 = kms.rotate(&caller(), &k).await.unwrap();
            let b2 = kms
                .encrypt(&caller(), &k, b"two", &ctx())
                .await
                .unwrap()
                .ciphertext_blob;
            clock.advance(86_400);
            let v3 = kms.rotate(&caller(), &k).await.unwrap();
            let b3 = kms
                .encrypt(&caller(), &k, b"three", &ctx())
                .await
                .unwrap()
                .ciphertext_blob;
            kms.set_rotation_policy(&caller(), &k, RotationPolicy::every_days(30).unwrap())
                .await
                .unwrap();
            kms.set_min_decryption_version(&caller(), &k, Some(v2.key_version_id.clone()))
                .await
                .unwrap();
            let before = kms.describe_key(&caller(), &k).await.unwrap();
            (key, b1, b2, b3, v2, v3, before)
        })
    };
    let kms = open_with_clock(&dir, clock.clone());
    assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
    let k = KeyRef::Id(key.clone());
    block_on(async {
        let after = kms.describe_key(&caller(), &k).await.unwrap();
        assert_eq!(after, before, "DescribeKey is the same after the reopen");
        assert_eq!(after.automatic_rotation, AutomaticRotation::Enabled);
        assert_eq!(after.rotation_interval.as_deref(), Some("2592000s"));
        assert_eq!(after.last_rotation_date, Some(v3.creation_date));
        assert_eq!(
            after.next_rotation_date,
            Some(v3.creation_date.plus_secs(30 * 86_400))
        );
        assert_eq!(after.primary_key_version, Some(v3.key_version_id.clone()));
    });
    let e = decrypt(&kms, &b1).unwrap_err();
    assert_eq!(e.code().as_str(), "Rejected.KeyVersionRetired");
    assert_eq!(e.http_status(), 409);
    assert_eq!(decrypt(&kms, &b2).unwrap(), b"two");
    assert_eq!(decrypt(&kms, &b3).unwrap(), b"three");
    let _ = v2;

    // The policy still drives due work after the reopen, and its rotation persists too.
    let due_at = Timestamp::from_unix(v3.creation_date.unix() + 30 * 86_400);
    let report = block_on(kms.run_due(due_at)).unwrap();
    assert_eq!(report.rotated.len(), 1, "{report:?}");
    drop(kms);
    let kms = open_with_clock(&dir, clock);
    let m = block_on(kms.describe_key(&caller(), &k)).unwrap();
    assert_eq!(m.last_rotation_date, Some(due_at));
    assert_eq!(
        m.primary_key_version,
        Some(report.rotated[0].key_version_id.clone())
    );
    assert_eq!(decrypt(&kms, &b3).unwrap(), b"three");
}
