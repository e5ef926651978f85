//! [`Rotator`] for the engine: CreateKeyVersion, UpdateRotationPolicy, version floors, ReEncrypt to the
//! primary, and due work.

use async_trait::async_trait;

use super::{Kms, require_usable};
use crate::blob::CiphertextBlob;
use crate::clock::Timestamp;
use crate::context::EncryptionContext;
use crate::error::{Error, Result};
use crate::id::{KeyId, KeyRef, KeyVersionId};
use crate::key::{KeyState, KeyVersion, Origin};
use crate::provider::{Caller, Encrypted};
use crate::rotate::{Due, RotationPolicy, Rotator, RunReport};
use crate::store::{KeyRecord, KeyStore, MaterialId, VersionRecord};

/// Refuses keys that cannot get a new version (CreateKeyVersion): imported material, a disabled key, a
/// symmetric key without material. Asymmetric keys get versions too (they have no primary: callers name
/// the version), but no automatic rotation.
fn check_rotatable(r: &KeyRecord) -> Result<()> {
    require_usable(r)?;
    check_kms_origin(r)?;
    if r.key_spec.is_symmetric() && r.primary_version.is_none() {
        return Err(Error::Unsupported(format!(
            "key {} has no primary version",
            r.key_id
        )));
    }
    Ok(())
}

/// Keys with imported material get no new versions.
fn check_kms_origin(r: &KeyRecord) -> Result<()> {
    if r.origin == Origin::External {
        return Err(Error::Unsupported(format!(
            "key {} has imported (EXTERNAL) material and cannot be rotated",
            r.key_id
        )));
    }
    Ok(())
}

/// Only symmetric keys with KMS-made material rotate automatically (spec: UpdateRotationPolicy).
fn check_rotation_kind(r: &KeyRecord) -> Result<()> {
    check_kms_origin(r)?;
    if !r.key_spec.is_symmetric() {
        return Err(Error::Unsupported(format!(
            "key {} is asymmetric ({}); only symmetric keys rotate",
            r.key_id, r.key_spec
        )));
    }
    Ok(())
}

fn is_rotation_due(r: &KeyRecord, now: Timestamp) -> bool {
    !r.purged && r.state == KeyState::Enabled && r.next_rotation_date().is_some_and(|d| d <= now)
}

use crate::policy::Action;

impl<S: KeyStore> Kms<S> {
    /// Makes a new primary version dated `now`. With `only_if_due`, does nothing (returns `None`) unless
    /// the key's rotation policy says a rotation is due at `now` — checked again under the writer lock, so
    /// concurrent runs rotate a key once.
    fn rotate_at(&self, key: &KeyRef, now: Timestamp, only_if_due: bool) -> Result<Option<KeyVersion>> {
        let rec = self.lookup(key)?;
        check_rotatable(&rec)?;
        if only_if_due && !is_rotation_due(&rec, now) {
            return Ok(None);
        }
        self.governance()
            .quota_limits()
            .check_versions(rec.versions.len() as u64)?;
        let version = KeyVersionId::generate();
        // New material is made outside the engine's locks. If the record is not saved below, the
        // material is named by no record and the store may discard it at its next open.
        self.store.generate(
            &MaterialId::new(rec.key_id.clone(), version.clone()),
            rec.key_spec,
        )?;
        let mut skipped = false;
        let rec = self.mutate_key_at(&KeyRef::Id(rec.key_id), now, |r, now| {
            check_rotatable(r)?;
            if only_if_due && !is_rotation_due(r, now) {
                skipped = true;
                return Ok(());
            }
            r.versions.push(VersionRecord::new(version.clone(), now));
            if r.key_spec.is_symmetric() {
                r.primary_version = Some(version.clone());
            }
            r.last_rotation_date = Some(now);
            Ok(())
        })?;
        if skipped {
            return Ok(None);
        }
        Ok(Some(KeyVersion::new(rec.key_id, version, now)))
    }
}

#[async_trait]
impl<S: KeyStore> Rotator for Kms<S> {
    async fn rotate(&self, caller: &Caller, key: &KeyRef) -> Result<KeyVersion> {
        self.keyed_call(
            caller,
            Action::CreateKeyVersion,
            key,
            None,
            None,
            async {
                self.rotate_at(key, self.now(), false)
                    .and_then(|v| v.ok_or_else(|| Error::Internal("rotation skipped".into())))
            },
            |v| Some((&v.key_id, &v.key_version_id)),
        )
        .await
    }

    async fn set_rotation_policy(&self, caller: &Caller, key: &KeyRef, policy: RotationPolicy) -> Result<()> {
        let run = async {
            self.mutate_key(key, |r, _| {
                check_rotation_kind(r)?;
                if r.state == KeyState::PendingDeletion {
                    return Err(Error::KeyNotUsable {
                        key: r.key_id.to_string(),
                        state: r.state,
                    });
                }
                r.automatic_rotation = policy.is_enabled();
                r.rotation_interval_secs = policy.interval_secs();
                Ok(())
            })
            .map(drop)
        };
        self.keyed_call(caller, Action::UpdateRotationPolicy, key, None, None, run, |_| {
            None
        })
        .await
    }

    async fn set_min_decryption_version(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: Option<KeyVersionId>,
    ) -> Result<()> {
        let run = async {
            self.mutate_key(key, |r, _| {
                if let Some(v) = &version {
                    if r.version_index(v).is_none() {
                        return Err(Error::KeyVersionNotFound(v.to_string()));
                    }
                }
                r.min_decryption_version = version;
                Ok(())
            })
            .map(drop)
        };
        self.keyed_call(
            caller,
            Action::SetMinDecryptionVersion,
            key,
            None,
            None,
            run,
            |_| None,
        )
        .await
    }

    async fn re_encrypt_to_primary(
        &self,
        caller: &Caller,
        blob: &CiphertextBlob,
        ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        let t = self.blob_target(blob);
        self.authorize(caller, Action::ReEncrypt, &[(&t, Some(ctx))])?;
        let r = self
            .open_blob(blob, ctx)
            .and_then(|(rec, _, pt)| self.seal_blob(&rec, &pt, ctx));
        self.finish(
            caller,
            Action::ReEncrypt,
            t.key.as_ref(),
            Some(ctx),
            r,
            |e| Some((&e.key_id, &e.key_version_id)),
            None,
        )
    }

    async fn due(&self, now: Timestamp) -> Result<Due> {
        let st = self.read();
        let mut rotations: Vec<(Timestamp, KeyId)> = st
            .keys
            .values()
            .filter(|r| is_rotation_due(r, now))
            .filter_map(|r| r.next_rotation_date().map(|d| (d, r.key_id.clone())))
            .collect();
        rotations.sort();
        let purges = st
            .deletions
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, k)| k.clone())
            .collect();
        Ok(Due {
            rotations: rotations.into_iter().map(|(_, k)| k).collect(),
            purges,
        })
    }

    async fn run_due(&self, now: Timestamp) -> Result<RunReport> {
        let due = self.due(now).await?;
        let mut report = RunReport::default();
        for key_id in due.rotations {
            match self.rotate_at(&KeyRef::Id(key_id.clone()), now, true) {
                Ok(Some(v)) => {
                    self.audit_state_change(Action::CreateKeyVersion, &key_id);
                    report.rotated.push(v);
                }
                Ok(None) => {}
                Err(e) => report.failed.push((key_id, e)),
            }
        }
        if let Some(first) = due.purges.first().cloned() {
            match self.purge_due_at(now) {
                Ok(purged) => report.purged = purged,
                Err(e) => report.failed.push((first, e)),
            }
        }
        Ok(report)
    }
}
