//! `Kms<S>`: the one engine every local backend runs — the state machine, aliases, versions, deletion
//! windows and the ciphertext blob format over a [`KeyStore`].
//!
//! Concurrency: the in-memory view sits behind an `RwLock` held only for lookups and for applying a
//! change; mutations are serialised by a separate writer mutex held across the store's (possibly slow,
//! fsyncing) write, so Encrypt and Decrypt never wait for a disk. A mutation is validated first, then
//! persisted, then applied: if the store fails, nothing changes in memory or on disk.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use async_trait::async_trait;
use zeroize::Zeroizing;

use crate::blob::{self, CiphertextBlob, ParsedBlob};
use crate::clock::{Clock, DAY, SystemClock, Timestamp};
use crate::context::EncryptionContext;
use crate::crypto::{Algorithm, NONCE_LEN, TAG_LEN};
use crate::error::{Error, Result};
use crate::id::{AliasName, Arn, ArnResource, KeyId, KeyRef, KeyVersionId};
use crate::key::{AutomaticRotation, KeyMetadata, KeySpec, KeyState, KeyVersion, Origin, Tag};
use crate::provider::{
    AliasInfo, Caller, CreateKey, DataKeyLength, Decrypted, Encrypted, FilterKey, GeneratedDataKey,
    KeyProvider, KeySummary, ListKeys, Page, PageRequest, data_key_to_wire, validate_filters,
};
use crate::secret::{DataKey, SecretBytes};
use crate::store::{AliasRecord, KeyRecord, KeyStore, MaterialId, VersionRecord, algorithm_for};

mod asymmetric;
mod governed;
mod rotation;

/// The most plaintext one Encrypt call takes (6 KiB, as the model service).
pub const MAX_PLAINTEXT: usize = 6 * 1024;
/// The shortest deletion window, in days.
pub const MIN_PENDING_WINDOW_DAYS: u32 = 7;
/// The longest deletion window, in days.
pub const MAX_PENDING_WINDOW_DAYS: u32 = 366;
/// The longest key description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 8192;

/// Engine settings.
#[derive(Clone)]
pub struct KmsConfig {
    region: String,
    account: String,
    clock: Arc<dyn Clock>,
    governance: Arc<crate::governance::Governance>,
}

impl fmt::Debug for KmsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KmsConfig")
            .field("region", &self.region)
            .field("account", &self.account)
            .field("clock", &self.clock)
            .field("governance", &self.governance)
            .finish()
    }
}

impl Default for KmsConfig {
    fn default() -> Self {
        Self {
            region: "local".to_owned(),
            account: "0".to_owned(),
            clock: Arc::new(SystemClock),
            governance: Arc::default(),
        }
    }
}

impl KmsConfig {
    /// Region `local`, account `0`, the system clock.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the region used in ARNs (`acs:kms:<region>:…`).
    ///
    /// # Errors
    /// `InvalidParameter` when it is not 1–64 of `A-Z a-z 0-9 - _`.
    pub fn region(mut self, region: impl Into<String>) -> Result<Self> {
        let r = region.into();
        check_arn_field("RegionId", &r)?;
        self.region = r;
        Ok(self)
    }

    /// Sets the account used in ARNs.
    ///
    /// # Errors
    /// `InvalidParameter` when it is not 1–64 of `A-Z a-z 0-9 - _`.
    pub fn account(mut self, account: impl Into<String>) -> Result<Self> {
        let a = account.into();
        check_arn_field("Account", &a)?;
        self.account = a;
        Ok(self)
    }

    /// Sets the clock (tests pass a [`ManualClock`](crate::clock::ManualClock)).
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets what the engine enforces and records around every call: policies, audit, quotas, dual
    /// control, usage prices (see [`Governance`](crate::governance::Governance)).
    #[must_use]
    pub fn governance(mut self, governance: Arc<crate::governance::Governance>) -> Self {
        self.governance = governance;
        self
    }
}

fn check_arn_field(name: &'static str, s: &str) -> Result<()> {
    if s.is_empty()
        || s.len() > 64
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::invalid(name, "must be 1 to 64 of A-Z a-z 0-9 - _"));
    }
    Ok(())
}

#[derive(Default)]
struct State {
    keys: HashMap<KeyId, KeyRecord>,
    /// Live (non-purged) keys in creation order, for ListKeys.
    order: Vec<KeyId>,
    aliases: BTreeMap<AliasName, AliasRecord>,
    /// Keys pending deletion, by purge time.
    deletions: BTreeSet<(Timestamp, KeyId)>,
}

impl State {
    fn insert(&mut self, rec: KeyRecord) {
        if let Some(old) = self.keys.get(&rec.key_id) {
            if let Some(d) = old.delete_date {
                self.deletions.remove(&(d, old.key_id.clone()));
            }
            if !old.purged && rec.purged {
                self.order.retain(|k| k != &rec.key_id);
            }
        } else if !rec.purged {
            self.order.push(rec.key_id.clone());
        }
        if rec.state == KeyState::PendingDeletion && !rec.purged {
            if let Some(d) = rec.delete_date {
                self.deletions.insert((d, rec.key_id.clone()));
            }
        }
        self.keys.insert(rec.key_id.clone(), rec);
    }

    fn next_purge(&self) -> Option<Timestamp> {
        self.deletions.first().map(|(t, _)| *t)
    }
}

/// The local KMS engine over a [`KeyStore`]. `MemoryKms`, `FileKms` and `Pkcs11Kms` are this type.
pub struct Kms<S: KeyStore> {
    store: S,
    config: KmsConfig,
    state: RwLock<State>,
    writer: Mutex<()>,
    problems: Vec<Error>,
}

impl<S: KeyStore> fmt::Debug for Kms<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys = self.state.read().map(|s| s.order.len()).unwrap_or(0);
        f.debug_struct("Kms")
            .field("store", &self.store)
            .field("region", &self.config.region)
            .field("keys", &keys)
            .field("load_problems", &self.problems.len())
            .finish()
    }
}

impl<S: KeyStore> Kms<S> {
    /// Opens the engine on `store` with default settings, loading every record.
    ///
    /// # Errors
    /// When the store cannot be read at all.
    pub fn open(store: S) -> Result<Self> {
        Self::with_config(store, KmsConfig::default())
    }

    /// Opens the engine on `store` with `config`.
    ///
    /// # Errors
    /// When the store cannot be read at all. Unreadable individual records are reported by
    /// [`Kms::load_problems`] instead.
    pub fn with_config(store: S, config: KmsConfig) -> Result<Self> {
        let loaded = store.load()?;
        let mut state = State::default();
        let mut keys = loaded.keys;
        keys.sort_by(|a, b| (a.creation_date, &a.key_id).cmp(&(b.creation_date, &b.key_id)));
        for k in keys {
            state.insert(k);
        }
        let mut problems = loaded.problems;
        for a in loaded.aliases {
            if state.keys.get(&a.key_id).is_some_and(|k| !k.purged) {
                state.aliases.insert(a.name.clone(), a);
            } else {
                problems.push(Error::Corrupted {
                    path: String::new(),
                    record: a.name.to_string(),
                    reason: format!("alias points to unknown key {}", a.key_id),
                });
            }
        }
        let kms = Self {
            store,
            config,
            state: RwLock::new(state),
            writer: Mutex::new(()),
            problems,
        };
        // Purges that fell due while closed happen now (best effort: a read-only store keeps them).
        let _ = kms.purge_due();
        Ok(kms)
    }

    /// The store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// The settings.
    pub fn config(&self) -> &KmsConfig {
        &self.config
    }

    /// Records the store could not read when the engine opened.
    pub fn load_problems(&self) -> &[Error] {
        &self.problems
    }

    fn now(&self) -> Timestamp {
        self.config.clock.now()
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        // State is only changed by whole-record inserts, so a poisoned lock holds a consistent view.
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write_state(&self) -> RwLockWriteGuard<'_, State> {
        self.state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_writer(&self) -> MutexGuard<'_, ()> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Purges every key whose deletion window has ended: destroys its material, keeps a tombstone, drops
    /// its aliases. Runs by itself on open and before each call; callers with their own timer may call it.
    /// Returns the purged key ids.
    ///
    /// # Errors
    /// Storage errors (the key then stays pending and is purged on a later call).
    pub fn purge_due(&self) -> Result<Vec<KeyId>> {
        self.purge_due_at(self.now())
    }

    /// [`Kms::purge_due`] as of `now` instead of the clock's time (for [`Rotator::run_due`]).
    ///
    /// # Errors
    /// Storage errors (the key then stays pending and is purged on a later call).
    ///
    /// [`Rotator::run_due`]: crate::rotate::Rotator::run_due
    pub fn purge_due_at(&self, now: Timestamp) -> Result<Vec<KeyId>> {
        if self.read().next_purge().is_none_or(|t| t > now) {
            return Ok(Vec::new());
        }
        let _w = self.lock_writer();
        let due: Vec<KeyId> = self
            .read()
            .deletions
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, k)| k.clone())
            .collect();
        let mut purged = Vec::new();
        for key_id in due {
            let (mut rec, aliases) = {
                let st = self.read();
                let Some(rec) = st.keys.get(&key_id).cloned() else {
                    continue;
                };
                let aliases: Vec<AliasName> = st
                    .aliases
                    .values()
                    .filter(|a| a.key_id == key_id)
                    .map(|a| a.name.clone())
                    .collect();
                (rec, aliases)
            };
            // Material first: a crash after this leaves a pending key with no material, purged again
            // on the next open; never a tombstone whose material survived.
            self.store.destroy(&key_id)?;
            for name in &aliases {
                self.store.delete_alias(name)?;
                self.write_state().aliases.remove(name);
            }
            rec.purged = true;
            rec.primary_version = None;
            rec.versions.clear();
            rec.revision += 1;
            self.store.save_key(&rec)?;
            self.write_state().insert(rec);
            self.audit_state_change(crate::policy::Action::PurgeKey, &key_id);
            purged.push(key_id);
        }
        Ok(purged)
    }

    fn maybe_purge(&self) {
        let due = self.read().next_purge().is_some_and(|t| t <= self.now());
        if due {
            // A failed purge is retried on the next call; the key is treated as gone meanwhile.
            let _ = self.purge_due();
        }
    }

    /// Resolves a reference to a live key id.
    fn resolve(&self, st: &State, key: &KeyRef) -> Result<KeyId> {
        let id = match key {
            KeyRef::Id(id) => id.clone(),
            KeyRef::Alias(a) => st
                .aliases
                .get(a)
                .map(|r| r.key_id.clone())
                .ok_or_else(|| Error::AliasNotFound(a.to_string()))?,
            KeyRef::Arn(arn) => {
                if arn.region != self.config.region || arn.account != self.config.account {
                    return Err(Error::KeyNotFound(key.to_string()));
                }
                match &arn.resource {
                    ArnResource::Key(id) => id.clone(),
                    ArnResource::Alias(a) => st
                        .aliases
                        .get(a)
                        .map(|r| r.key_id.clone())
                        .ok_or_else(|| Error::AliasNotFound(a.to_string()))?,
                }
            }
        };
        self.live(st, &id)?;
        Ok(id)
    }

    fn live<'a>(&self, st: &'a State, id: &KeyId) -> Result<&'a KeyRecord> {
        match st.keys.get(id) {
            Some(r) if !r.purged && !self.is_expired(r) => Ok(r),
            _ => Err(Error::KeyNotFound(id.to_string())),
        }
    }

    fn is_expired(&self, r: &KeyRecord) -> bool {
        r.state == KeyState::PendingDeletion && r.delete_date.is_some_and(|d| d <= self.now())
    }

    fn lookup(&self, key: &KeyRef) -> Result<KeyRecord> {
        self.maybe_purge();
        let st = self.read();
        let id = self.resolve(&st, key)?;
        self.live(&st, &id).cloned()
    }

    /// Runs a validated change to one key record: `f` edits a copy; the copy is saved, then applied.
    fn mutate_key(
        &self,
        key: &KeyRef,
        f: impl FnOnce(&mut KeyRecord, Timestamp) -> Result<()>,
    ) -> Result<KeyRecord> {
        self.mutate_key_at(key, self.now(), f)
    }

    /// [`Self::mutate_key`] with `now` given by the caller.
    fn mutate_key_at(
        &self,
        key: &KeyRef,
        now: Timestamp,
        f: impl FnOnce(&mut KeyRecord, Timestamp) -> Result<()>,
    ) -> Result<KeyRecord> {
        self.maybe_purge();
        let _w = self.lock_writer();
        let mut rec = {
            let st = self.read();
            let id = self.resolve(&st, key)?;
            self.live(&st, &id)?.clone()
        };
        f(&mut rec, now)?;
        rec.revision += 1;
        self.store.save_key(&rec)?;
        self.write_state().insert(rec.clone());
        Ok(rec)
    }

    fn metadata(&self, r: &KeyRecord) -> KeyMetadata {
        let rotation = if !r.automatic_rotation {
            AutomaticRotation::Disabled
        } else if r.state == KeyState::Enabled {
            AutomaticRotation::Enabled
        } else {
            AutomaticRotation::Suspended
        };
        let rotating = rotation != AutomaticRotation::Disabled;
        KeyMetadata {
            key_id: r.key_id.clone(),
            arn: Arn::key(&self.config.region, &self.config.account, &r.key_id),
            automatic_rotation: rotation,
            creation_date: r.creation_date,
            creator: r.creator.clone(),
            dkms_instance_id: String::new(),
            delete_date: if r.state == KeyState::PendingDeletion {
                r.delete_date
            } else {
                None
            },
            description: r.description.clone(),
            key_spec: r.key_spec,
            key_state: r.state,
            key_usage: r.key_usage,
            last_rotation_date: r.last_rotation_date,
            material_expire_time: None,
            next_rotation_date: if rotating { r.next_rotation_date() } else { None },
            origin: r.origin,
            primary_key_version: r.primary_version.clone(),
            protection_level: r.protection_level,
            rotation_interval: match (rotating, r.rotation_interval_secs) {
                (true, Some(i)) => Some(format!("{i}s")),
                _ => None,
            },
            deletion_protection: if r.deletion_protection {
                "Enabled"
            } else {
                "Disabled"
            }
            .to_owned(),
            deletion_protection_description: r.deletion_protection_description.clone(),
        }
    }

    fn alias_info(&self, a: &AliasRecord) -> AliasInfo {
        AliasInfo::new(
            a.name.clone(),
            Arn::alias(&self.config.region, &self.config.account, &a.name),
            a.key_id.clone(),
        )
    }

    /// Seals `plaintext` under the primary version of an enabled key into a blob.
    fn seal_blob(&self, rec: &KeyRecord, plaintext: &[u8], ctx: &EncryptionContext) -> Result<Encrypted> {
        let (id, alg) = primary_material(rec)?;
        self.seal_material(id, alg, plaintext, ctx)
    }

    /// [`Self::lookup`] then [`primary_material`], copying only the ids out under one read lock instead
    /// of cloning the whole record (Encrypt and GenerateDataKey are the hot paths).
    fn lookup_primary(&self, key: &KeyRef) -> Result<(MaterialId, Algorithm)> {
        self.maybe_purge();
        let st = self.read();
        let rec = match key {
            KeyRef::Id(id) => self.live(&st, id)?,
            _ => {
                let id = self.resolve(&st, key)?;
                self.live(&st, &id)?
            }
        };
        primary_material(rec)
    }

    /// Seals `plaintext` under material `id` into a blob with a fresh random nonce.
    fn seal_material(
        &self,
        id: MaterialId,
        alg: Algorithm,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        let nonce: [u8; NONCE_LEN] = crate::rand::array();
        let mut out = Vec::with_capacity(8 + 2 * 64 + NONCE_LEN + plaintext.len() + TAG_LEN);
        let header_len = blob::write_header(&mut out, alg, &id.key_id, &id.version_id, &nonce);
        let mut aad = Vec::with_capacity(header_len + 64);
        aad.extend_from_slice(&out);
        ctx.write_canonical(&mut aad);
        out.extend_from_slice(plaintext);
        let tag = self.store.seal(&id, alg, &nonce, &aad, &mut out[header_len..])?;
        out.extend_from_slice(&tag);
        let MaterialId { key_id, version_id } = id;
        Ok(Encrypted::new(
            key_id,
            version_id,
            CiphertextBlob::from_bytes(out),
        ))
    }

    /// Parses, checks and opens a blob.
    fn open_blob(
        &self,
        blob: &CiphertextBlob,
        ctx: &EncryptionContext,
    ) -> Result<(KeyRecord, KeyVersionId, Zeroizing<Vec<u8>>)> {
        let p = ParsedBlob::parse(blob.as_bytes())?;
        let rec = self.lookup(&KeyRef::Id(p.key_id.clone()))?;
        require_usable(&rec)?;
        if rec.version_index(&p.version_id).is_none() {
            return Err(Error::KeyVersionNotFound(p.version_id.to_string()));
        }
        if rec.is_version_retired(&p.version_id) {
            return Err(Error::KeyVersionRetired {
                key: rec.key_id.to_string(),
                version: p.version_id.to_string(),
            });
        }
        if algorithm_for(rec.key_spec)? != p.algorithm {
            return Err(Error::DecryptFailed);
        }
        let mut aad = Vec::with_capacity(p.header.len() + 64);
        aad.extend_from_slice(p.header);
        ctx.write_canonical(&mut aad);
        let mut buf = Zeroizing::new(p.sealed.to_vec());
        let id = MaterialId::new(rec.key_id.clone(), p.version_id.clone());
        self.store.open(&id, p.algorithm, &p.nonce, &aad, &mut buf)?;
        Ok((rec, p.version_id, buf))
    }

    fn new_data_key(
        &self,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<(SecretBytes, Encrypted)> {
        let n = len.bytes()?;
        let (id, alg) = self.lookup_primary(key)?;
        let dk = SecretBytes::random(n);
        let enc = self.seal_material(id, alg, &data_key_to_wire(&dk), ctx)?;
        Ok((dk, enc))
    }
}

/// The material and algorithm that seal under `rec`'s primary version; refuses a key that is not enabled.
fn primary_material(rec: &KeyRecord) -> Result<(MaterialId, Algorithm)> {
    require_usable(rec)?;
    if !rec.key_spec.is_symmetric() {
        return Err(Error::Unsupported(format!(
            "key {} is an asymmetric {} key: use AsymmetricEncrypt/AsymmetricSign with a KeyVersionId",
            rec.key_id, rec.key_spec
        )));
    }
    let version = rec
        .primary_version
        .clone()
        .ok_or_else(|| Error::Unsupported("the key has no primary version".into()))?;
    Ok((
        MaterialId::new(rec.key_id.clone(), version),
        algorithm_for(rec.key_spec)?,
    ))
}

fn require_usable(rec: &KeyRecord) -> Result<()> {
    if rec.state != KeyState::Enabled {
        return Err(Error::KeyNotUsable {
            key: rec.key_id.to_string(),
            state: rec.state,
        });
    }
    Ok(())
}

fn state_change_failed(rec: &KeyRecord) -> Error {
    Error::StateModifiedFailed {
        key: rec.key_id.to_string(),
        state: rec.state,
    }
}

fn check_description(d: &str) -> Result<()> {
    if d.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(Error::invalid(
            "Description",
            format!("longer than {MAX_DESCRIPTION_CHARS} characters"),
        ));
    }
    Ok(())
}

#[async_trait]
impl<S: KeyStore> governed::RawProvider for Kms<S> {
    async fn create_key(&self, caller: &Caller, req: CreateKey) -> Result<KeyMetadata> {
        check_description(&req.description)?;
        let spec = req.key_spec.unwrap_or(KeySpec::Aes256);
        let usage = req.key_usage.unwrap_or_else(|| spec.default_usage());
        if !spec.allowed_usages().contains(&usage) {
            return Err(Error::invalid(
                "KeyUsage",
                format!("{usage} is not allowed for {spec}"),
            ));
        }
        let origin = req.origin.unwrap_or(Origin::Kms);
        if spec.is_symmetric() {
            algorithm_for(spec)?;
        } else if origin == Origin::External {
            return Err(Error::UnsupportedOrigin(format!(
                "{spec} keys cannot have imported (EXTERNAL) material"
            )));
        }
        let level = self.store.protection_level();
        if let Some(asked) = req.protection_level {
            if asked != level {
                return Err(Error::UnsupportedProtectionLevel(format!(
                    "this keystore offers {level}, not {asked}"
                )));
            }
        }
        if req.tags.len() > Tag::MAX_PER_KEY {
            return Err(Error::invalid(
                "Tags",
                format!("at most {} tags", Tag::MAX_PER_KEY),
            ));
        }
        for t in &req.tags {
            t.validate()?;
        }
        self.maybe_purge();
        let now = self.now();
        let key_id = KeyId::generate();
        let mut rec = KeyRecord::new(key_id.clone(), spec, usage, now);
        rec.origin = origin;
        rec.protection_level = level;
        rec.description = req.description;
        rec.creator = caller.principal.clone();
        rec.tags = req.tags.into_iter().map(|t| (t.tag_key, t.tag_value)).collect();
        rec.revision = 1;
        if origin == Origin::External {
            rec.state = KeyState::PendingImport;
        } else {
            let version = KeyVersionId::generate();
            // New material is made outside the engine's locks.
            self.store
                .generate(&MaterialId::new(key_id.clone(), version.clone()), spec)?;
            rec.versions.push(VersionRecord::new(version.clone(), now));
            // Asymmetric keys have no primary version: every call names its version (spec §8).
            if spec.is_symmetric() {
                rec.primary_version = Some(version);
            }
            rec.last_rotation_date = Some(now);
        }
        let _w = self.lock_writer();
        if let Err(e) = self.store.save_key(&rec) {
            let _ = self.store.destroy(&key_id);
            return Err(e);
        }
        self.write_state().insert(rec.clone());
        Ok(self.metadata(&rec))
    }

    async fn describe_key(&self, _caller: &Caller, key: &KeyRef) -> Result<KeyMetadata> {
        Ok(self.metadata(&self.lookup(key)?))
    }

    async fn list_keys(&self, _caller: &Caller, req: ListKeys) -> Result<Page<KeySummary>> {
        req.page.validate()?;
        validate_filters(&req.filters)?;
        self.maybe_purge();
        let st = self.read();
        let rows: Vec<KeySummary> = st
            .order
            .iter()
            .filter_map(|id| self.live(&st, id).ok())
            .filter(|r| {
                req.filters.iter().all(|f| {
                    let v = match f.key {
                        FilterKey::KeyState => r.state.as_str(),
                        FilterKey::KeySpec => r.key_spec.as_str(),
                        FilterKey::KeyUsage => r.key_usage.as_str(),
                        FilterKey::ProtectionLevel => r.protection_level.as_str(),
                        FilterKey::CreatorType => "User",
                    };
                    f.values.iter().any(|x| x == v)
                })
            })
            .map(|r| {
                KeySummary::new(
                    r.key_id.clone(),
                    Arn::key(&self.config.region, &self.config.account, &r.key_id),
                )
            })
            .collect();
        Ok(req.page.slice(&rows))
    }

    async fn enable_key(&self, _caller: &Caller, key: &KeyRef) -> Result<()> {
        self.mutate_key(key, |r, _| match r.state {
            KeyState::Enabled | KeyState::Disabled => {
                r.state = KeyState::Enabled;
                Ok(())
            }
            _ => Err(state_change_failed(r)),
        })
        .map(drop)
    }

    async fn disable_key(&self, _caller: &Caller, key: &KeyRef) -> Result<()> {
        self.mutate_key(key, |r, _| match r.state {
            KeyState::Enabled | KeyState::Disabled => {
                r.state = KeyState::Disabled;
                Ok(())
            }
            _ => Err(state_change_failed(r)),
        })
        .map(drop)
    }

    async fn schedule_key_deletion(&self, _caller: &Caller, key: &KeyRef, days: u32) -> Result<()> {
        if !(MIN_PENDING_WINDOW_DAYS..=MAX_PENDING_WINDOW_DAYS).contains(&days) {
            return Err(Error::invalid(
                "PendingWindowInDays",
                format!("must be {MIN_PENDING_WINDOW_DAYS} to {MAX_PENDING_WINDOW_DAYS}"),
            ));
        }
        self.mutate_key(key, |r, now| {
            if r.state == KeyState::PendingDeletion {
                return Err(state_change_failed(r));
            }
            if r.deletion_protection {
                return Err(Error::Unsupported(format!(
                    "key {} has deletion protection enabled",
                    r.key_id
                )));
            }
            r.state = KeyState::PendingDeletion;
            r.delete_date = Some(now.plus_secs(u64::from(days) * DAY));
            Ok(())
        })
        .map(drop)
    }

    async fn cancel_key_deletion(&self, _caller: &Caller, key: &KeyRef) -> Result<()> {
        self.mutate_key(key, |r, _| {
            if r.state != KeyState::PendingDeletion {
                return Err(state_change_failed(r));
            }
            // An imported key that never received material goes back to waiting for it.
            r.state = if r.primary_version.is_none() && r.origin == Origin::External {
                KeyState::PendingImport
            } else {
                KeyState::Enabled
            };
            r.delete_date = None;
            Ok(())
        })
        .map(drop)
    }

    async fn update_key_description(&self, _caller: &Caller, key: &KeyRef, description: &str) -> Result<()> {
        check_description(description)?;
        self.mutate_key(key, |r, _| {
            r.description = description.to_owned();
            Ok(())
        })
        .map(drop)
    }

    async fn set_deletion_protection(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        enabled: bool,
        description: &str,
    ) -> Result<()> {
        check_description(description)?;
        self.mutate_key(key, |r, _| {
            r.deletion_protection = enabled;
            r.deletion_protection_description = if enabled {
                description.to_owned()
            } else {
                String::new()
            };
            Ok(())
        })
        .map(drop)
    }

    async fn create_alias(&self, _caller: &Caller, alias: &AliasName, key: &KeyRef) -> Result<()> {
        self.maybe_purge();
        let _w = self.lock_writer();
        let rec = {
            let st = self.read();
            if st.aliases.contains_key(alias) {
                return Err(Error::AliasAlreadyExists(alias.to_string()));
            }
            let id = self.resolve(&st, key)?;
            self.live(&st, &id)?.clone()
        };
        if rec.state == KeyState::PendingDeletion {
            return Err(state_change_failed(&rec));
        }
        let a = AliasRecord::new(alias.clone(), rec.key_id, self.now());
        self.store.save_alias(&a)?;
        self.write_state().aliases.insert(alias.clone(), a);
        Ok(())
    }

    async fn update_alias(&self, _caller: &Caller, alias: &AliasName, key: &KeyRef) -> Result<()> {
        self.maybe_purge();
        let _w = self.lock_writer();
        let rec = {
            let st = self.read();
            if !st.aliases.contains_key(alias) {
                return Err(Error::AliasNotFound(alias.to_string()));
            }
            let id = self.resolve(&st, key)?;
            self.live(&st, &id)?.clone()
        };
        if rec.state == KeyState::PendingDeletion {
            return Err(Error::KeyNotUsable {
                key: rec.key_id.to_string(),
                state: rec.state,
            });
        }
        let a = AliasRecord::new(alias.clone(), rec.key_id, self.now());
        self.store.save_alias(&a)?;
        self.write_state().aliases.insert(alias.clone(), a);
        Ok(())
    }

    async fn delete_alias(&self, _caller: &Caller, alias: &AliasName) -> Result<()> {
        self.maybe_purge();
        let _w = self.lock_writer();
        if !self.read().aliases.contains_key(alias) {
            return Err(Error::AliasNotFound(alias.to_string()));
        }
        self.store.delete_alias(alias)?;
        self.write_state().aliases.remove(alias);
        Ok(())
    }

    async fn list_aliases(&self, _caller: &Caller, page: PageRequest) -> Result<Page<AliasInfo>> {
        page.validate()?;
        self.maybe_purge();
        let rows: Vec<AliasInfo> = self.read().aliases.values().map(|a| self.alias_info(a)).collect();
        Ok(page.slice(&rows))
    }

    async fn list_aliases_by_key_id(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        page: PageRequest,
    ) -> Result<Page<AliasInfo>> {
        page.validate()?;
        let rec = self.lookup(key)?;
        let rows: Vec<AliasInfo> = self
            .read()
            .aliases
            .values()
            .filter(|a| a.key_id == rec.key_id)
            .map(|a| self.alias_info(a))
            .collect();
        Ok(page.slice(&rows))
    }

    async fn encrypt(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        if plaintext.len() > MAX_PLAINTEXT {
            return Err(Error::invalid(
                "Plaintext",
                format!("{} bytes, more than the {MAX_PLAINTEXT} allowed", plaintext.len()),
            ));
        }
        let (id, alg) = self.lookup_primary(key)?;
        self.seal_material(id, alg, plaintext, ctx)
    }

    async fn decrypt(
        &self,
        _caller: &Caller,
        blob: &CiphertextBlob,
        ctx: &EncryptionContext,
    ) -> Result<Decrypted> {
        let (rec, version, pt) = self.open_blob(blob, ctx)?;
        Ok(Decrypted::new(rec.key_id, version, pt))
    }

    async fn re_encrypt(
        &self,
        _caller: &Caller,
        blob: &CiphertextBlob,
        source_ctx: &EncryptionContext,
        dest_key: &KeyRef,
        dest_ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        let dest = self.lookup(dest_key)?;
        require_usable(&dest)?;
        let (_, _, pt) = self.open_blob(blob, source_ctx)?;
        self.seal_blob(&dest, &pt, dest_ctx)
    }

    async fn generate_data_key(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey> {
        let (dk, enc) = self.new_data_key(key, len, ctx)?;
        Ok(GeneratedDataKey::new(
            enc.key_id,
            enc.key_version_id,
            DataKey::new(dk),
            enc.ciphertext_blob,
        ))
    }

    async fn generate_data_key_without_plaintext(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        self.new_data_key(key, len, ctx).map(|(_, enc)| enc)
    }

    async fn list_key_versions(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        page: PageRequest,
    ) -> Result<Page<KeyVersion>> {
        page.validate()?;
        let rec = self.lookup(key)?;
        let rows: Vec<KeyVersion> = rec
            .versions
            .iter()
            .map(|v| KeyVersion::new(rec.key_id.clone(), v.version_id.clone(), v.creation_date))
            .collect();
        Ok(page.slice(&rows))
    }

    async fn describe_key_version(
        &self,
        _caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
    ) -> Result<KeyVersion> {
        let rec = self.lookup(key)?;
        rec.versions
            .iter()
            .find(|v| &v.version_id == version)
            .map(|v| KeyVersion::new(rec.key_id.clone(), v.version_id.clone(), v.creation_date))
            .ok_or_else(|| Error::KeyVersionNotFound(version.to_string()))
    }

    async fn tag_resource(&self, _caller: &Caller, key: &KeyRef, tags: &[Tag]) -> Result<()> {
        if tags.is_empty() {
            return Err(Error::MissingParameter("Tags"));
        }
        for t in tags {
            t.validate()?;
        }
        self.mutate_key(key, |r, _| {
            let mut next = r.tags.clone();
            for t in tags {
                next.insert(t.tag_key.clone(), t.tag_value.clone());
            }
            if next.len() > Tag::MAX_PER_KEY {
                return Err(Error::LimitExceeded(format!(
                    "a key has at most {} tags",
                    Tag::MAX_PER_KEY
                )));
            }
            r.tags = next;
            Ok(())
        })
        .map(drop)
    }

    async fn untag_resource(&self, _caller: &Caller, key: &KeyRef, tag_keys: &[String]) -> Result<()> {
        if tag_keys.is_empty() {
            return Err(Error::MissingParameter("TagKeys"));
        }
        self.mutate_key(key, |r, _| {
            for k in tag_keys {
                r.tags.remove(k);
            }
            Ok(())
        })
        .map(drop)
    }

    async fn list_resource_tags(&self, _caller: &Caller, key: &KeyRef) -> Result<Vec<Tag>> {
        let rec = self.lookup(key)?;
        Ok(rec
            .tags
            .iter()
            .map(|(k, v)| Tag {
                tag_key: k.clone(),
                tag_value: v.clone(),
            })
            .collect())
    }
}
