//! The rotation scheduler on a manual clock: it rotates a key when (and only when) the clock passes its
//! `NextRotationDate`, purges keys whose deletion window ended, skips suspended keys, and stops.
#![cfg(feature = "scheduler")]
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use kmskit_core::key::AutomaticRotation;
use kmskit_core::rotate::{RotationPolicy, Rotator, RunReport, Scheduler};
use kmskit_core::{Caller, CreateKey, ErrorCode, KeyProvider, KeyRef};
use tokio::sync::mpsc;

const DAY: u64 = 86_400;

#[tokio::test(start_paused = true)]
async fn scheduler_rotates_and_purges_on_a_manual_clock() {
    let clock = manual_clock();
    let kms = kms_with_clock(clock.clone());
    let caller = Caller::local();
    let key = kms
        .create_key(&caller, CreateKey::new("scheduled"))
        .await
        .unwrap();
    let k = KeyRef::Id(key.key_id.clone());
    kms.set_rotation_policy(&caller, &k, RotationPolicy::every_days(7).unwrap())
        .await
        .unwrap();
    let doomed = kms.create_key(&caller, CreateKey::new("doomed")).await.unwrap();
    let d = KeyRef::Id(doomed.key_id.clone());
    kms.schedule_key_deletion(&caller, &d, 10).await.unwrap();

    let (tx, mut rx) = mpsc::unbounded_channel::<RunReport>();
    let sched = Scheduler::builder(kms.clone(), clock.clone())
        .interval(Duration::from_secs(3600))
        .on_report(move |r| {
            let _ = tx.send(r.unwrap());
        })
        .spawn();

    // One tick while nothing is due.
    tokio::time::advance(Duration::from_secs(3600)).await;
    let r = rx.recv().await.unwrap();
    assert!(r.rotated.is_empty() && r.purged.is_empty(), "{r:?}");

    // The clock reaches the due date minus one second: still nothing.
    clock.advance(7 * DAY - 1);
    tokio::time::advance(Duration::from_secs(3600)).await;
    let r = rx.recv().await.unwrap();
    assert!(r.rotated.is_empty(), "{r:?}");

    // At the due date: rotated once.
    clock.advance(1);
    tokio::time::advance(Duration::from_secs(3600)).await;
    let r = rx.recv().await.unwrap();
    assert_eq!(r.rotated.len(), 1, "{r:?}");
    assert_eq!(r.rotated[0].key_id, key.key_id);
    let m = kms.describe_key(&caller, &k).await.unwrap();
    assert_eq!(m.primary_key_version, Some(r.rotated[0].key_version_id.clone()));
    assert_eq!(m.next_rotation_date, Some(clock_now(&clock).plus_secs(7 * DAY)));

    // Disabled: suspended, not rotated even when due; the deletion falls due and is purged.
    kms.disable_key(&caller, &k).await.unwrap();
    assert_eq!(
        kms.describe_key(&caller, &k).await.unwrap().automatic_rotation,
        AutomaticRotation::Suspended
    );
    clock.advance(8 * DAY);
    sched.wake();
    let r = rx.recv().await.unwrap();
    assert!(r.rotated.is_empty(), "a suspended key is not rotated: {r:?}");
    assert_eq!(r.purged, vec![doomed.key_id.clone()]);
    assert_eq!(
        kms.describe_key(&caller, &d).await.unwrap_err().code(),
        ErrorCode::KeyNotFound
    );

    // Enabled again: overdue, so the next tick rotates it.
    kms.enable_key(&caller, &k).await.unwrap();
    let r = sched.run_now().await.unwrap();
    assert_eq!(r.rotated.len(), 1, "{r:?}");
    sched.shutdown().await;
    assert_eq!(kms.due(clock_now(&clock)).await.unwrap().rotations.len(), 0);
}

fn clock_now(c: &Arc<kmskit_core::ManualClock>) -> kmskit_core::Timestamp {
    kmskit_core::Clock::now(c.as_ref())
}
