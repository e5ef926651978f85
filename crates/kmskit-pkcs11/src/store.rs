//! [`Pkcs11Store`]: key material and records kept in a PKCS#11 token.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use cryptoki::error::{Error as CkError, RvError};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::aead::GcmParams;
use cryptoki::object::{Attribute, AttributeType, KeyType, ObjectClass, ObjectHandle};
use cryptoki::session::Session;
use kmskit_core::crypto::{Algorithm, KEY_LEN, NONCE_LEN, TAG_LEN};
use kmskit_core::store::{AliasRecord, KeyRecord, KeyStore, Loaded, MaterialId, algorithm_for};
use kmskit_core::{AliasName, Error, KeyId, KeySpec, KeyVersionId, ProtectionLevel, Result};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::config::Pkcs11Config;
use crate::pool::{Lease, Pool};

/// `CKA_APPLICATION` of every data object kmskit writes.
pub const APPLICATION: &str = "kmskit";
/// `CKA_LABEL` prefix of key material objects: `kmskit/material/<key id>/<version id>`.
pub const MATERIAL_LABEL_PREFIX: &str = "kmskit/material/";
/// `CKA_LABEL` prefix of key record data objects: `kmskit/key/<key id>`.
pub const KEY_LABEL_PREFIX: &str = "kmskit/key/";
/// `CKA_LABEL` prefix of alias record data objects: `kmskit/alias/<alias name>`.
pub const ALIAS_LABEL_PREFIX: &str = "kmskit/alias/";

/// The version of the JSON envelope in a record data object's `CKA_VALUE`.
const RECORD_FORMAT: u32 = 1;
const TAG_BITS: u64 = (TAG_LEN * 8) as u64;

/// What a record data object holds: the record plus a sequence number, so that when a crash left two
/// objects for one record (the new one is created before the old one is destroyed), the newer wins.
#[derive(Serialize, Deserialize)]
struct Envelope<T> {
    format: u32,
    seq: u64,
    record: T,
}

#[derive(Default)]
struct Handles {
    /// The pool epoch these handles belong to: a reconnect may invalidate every handle.
    epoch: u64,
    map: HashMap<MaterialId, ObjectHandle>,
}

/// A [`KeyStore`] whose key material is generated and used inside a PKCS#11 token and never leaves
/// it, and whose key and alias records are token data objects. See the [crate docs](crate).
pub struct Pkcs11Store {
    pool: Pool,
    handles: RwLock<Handles>,
    seq: AtomicU64,
    /// Serialises token-object writes (generate, create, destroy). SoftHSM2 answers concurrent
    /// token-object creation on one token with an occasional `CKR_GENERAL_ERROR`, and these calls are
    /// rare next to Encrypt and Decrypt, which never take this lock. Always taken before a session is
    /// leased, never while one is held, so it cannot deadlock with the pool.
    writes: Mutex<()>,
}

impl fmt::Debug for Pkcs11Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self
            .handles
            .read()
            .map(|h| h.map.len())
            .unwrap_or_else(|p| p.into_inner().map.len());
        f.debug_struct("Pkcs11Store")
            .field("pool", &self.pool)
            .field("cached_handles", &cached)
            .finish()
    }
}

/// The `CKA_LABEL` of the material object of `id`.
pub fn material_label(id: &MaterialId) -> String {
    format!("{MATERIAL_LABEL_PREFIX}{}/{}", id.key_id, id.version_id)
}

fn key_label(id: &KeyId) -> String {
    format!("{KEY_LABEL_PREFIX}{id}")
}

fn alias_label(name: &AliasName) -> String {
    format!("{ALIAS_LABEL_PREFIX}{name}")
}

fn parse_material_label(label: &str) -> Option<MaterialId> {
    let rest = label.strip_prefix(MATERIAL_LABEL_PREFIX)?;
    let (key, version) = rest.split_once('/')?;
    Some(MaterialId::new(
        KeyId::new(key).ok()?,
        KeyVersionId::new(version).ok()?,
    ))
}

fn now_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Pkcs11Store {
    /// Opens the token: loads and initialises the module (once per process), finds the token by label,
    /// opens a session and logs in with the user PIN.
    ///
    /// # Errors
    /// [`Error::AccessDenied`] (`Forbidden.NoPermission`) for a wrong PIN; retryable
    /// [`Error::Unavailable`] when no token has the label; non-retryable [`Error::Unavailable`] when the
    /// module cannot be loaded; [`Error::InvalidParameter`] for a label longer than 32 bytes.
    pub fn open(config: &Pkcs11Config) -> Result<Self> {
        Ok(Self {
            pool: Pool::connect(config)?,
            handles: RwLock::new(Handles::default()),
            seq: AtomicU64::new(now_nanos()),
            writes: Mutex::new(()),
        })
    }

    /// The token label.
    pub fn token_label(&self) -> &str {
        self.pool.label()
    }

    /// The module path.
    pub fn module(&self) -> &std::path::Path {
        self.pool.module()
    }

    fn subject_token(&self) -> String {
        format!("token {:?}", self.pool.label())
    }

    /// Runs `f` on a leased session, mapping failures (and reconnecting on a lost connection).
    fn call<T>(
        &self,
        subject: &str,
        f: impl FnOnce(&Session) -> std::result::Result<T, CkError>,
    ) -> Result<T> {
        let lease = self.pool.get()?;
        match f(&lease) {
            Ok(v) => Ok(v),
            Err(e) => Err(lease.fail(e, subject)),
        }
    }

    fn write_lock(&self) -> MutexGuard<'_, ()> {
        self.writes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn next_seq(&self) -> u64 {
        // Later than anything loaded and than any earlier save, even across processes (wall clock).
        self.seq.fetch_max(now_nanos(), Ordering::SeqCst);
        self.seq.fetch_add(1, Ordering::SeqCst) + 1
    }

    fn cached_handle(&self, id: &MaterialId, epoch: u64) -> Option<ObjectHandle> {
        let h = self.handles.read().unwrap_or_else(PoisonError::into_inner);
        if h.epoch != epoch {
            return None;
        }
        h.map.get(id).copied()
    }

    fn cache_handle(&self, id: &MaterialId, handle: ObjectHandle, epoch: u64) {
        let mut h = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        if epoch < h.epoch {
            return; // a session of an earlier epoch: its handles may be dead already
        }
        if epoch > h.epoch {
            h.map.clear();
            h.epoch = epoch;
        }
        h.map.insert(id.clone(), handle);
    }

    fn forget_handle(&self, id: &MaterialId) {
        let mut h = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        h.map.remove(id);
    }

    fn forget_key_handles(&self, key: &KeyId) {
        let mut h = self.handles.write().unwrap_or_else(PoisonError::into_inner);
        h.map.retain(|id, _| &id.key_id != key);
    }

    /// Finds the material object of `id` on `session`; `None` when the token holds none.
    fn find_material(
        session: &Session,
        id: &MaterialId,
    ) -> std::result::Result<Option<ObjectHandle>, CkError> {
        let found = session.find_objects(&[
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::Token(true),
            Attribute::Label(material_label(id).into_bytes()),
        ])?;
        Ok(found.first().copied())
    }

    /// Runs a cryptographic call `f` with the material of `id`, looking its handle up (and caching it)
    /// when needed. A cached handle the token no longer knows is looked up once more by label, so an
    /// object destroyed behind our back is reported as `KeyNotFound` naming the key and version.
    fn with_material<T>(
        &self,
        id: &MaterialId,
        mut f: impl FnMut(&Session, ObjectHandle) -> std::result::Result<T, CkError>,
    ) -> Result<T> {
        let subject = id.to_string();
        let lease: Lease<'_> = self.pool.get()?;
        let epoch = lease.epoch();
        let find = |lease: &Lease<'_>| match Self::find_material(lease, id) {
            Ok(Some(h)) => {
                self.cache_handle(id, h, epoch);
                Ok(h)
            }
            Ok(None) => Err(None),
            Err(e) => Err(Some(e)),
        };
        let mut from_cache = true;
        let mut handle = match self.cached_handle(id, epoch) {
            Some(h) => h,
            None => {
                from_cache = false;
                match find(&lease) {
                    Ok(h) => h,
                    Err(None) => return Err(Self::missing(lease, id)),
                    Err(Some(e)) => return Err(lease.fail(e, &subject)),
                }
            }
        };
        loop {
            match f(&lease, handle) {
                Ok(v) => return Ok(v),
                Err(CkError::Pkcs11(RvError::KeyHandleInvalid | RvError::ObjectHandleInvalid, _)) => {
                    self.forget_handle(id);
                    if !from_cache {
                        return Err(Self::missing(lease, id));
                    }
                    // The cached handle went stale: look the object up once more.
                    from_cache = false;
                    handle = match find(&lease) {
                        Ok(h) => h,
                        Err(None) => return Err(Self::missing(lease, id)),
                        Err(Some(e)) => return Err(lease.fail(e, &subject)),
                    };
                }
                Err(e) => return Err(lease.fail(e, &subject)),
            }
        }
    }

    /// The token holds no material for `id`, or the process was logged out (private objects are then
    /// invisible): `KeyNotFound` naming the key and version, or a retryable lost login.
    fn missing(lease: Lease<'_>, id: &MaterialId) -> Error {
        if lease.logged_out() {
            return lease.lost_login(&id.to_string());
        }
        missing_material(id)
    }

    /// Finds the record data objects labelled `label`.
    fn find_records(session: &Session, label: &str) -> std::result::Result<Vec<ObjectHandle>, CkError> {
        session.find_objects(&[
            Attribute::Class(ObjectClass::DATA),
            Attribute::Token(true),
            Attribute::Application(APPLICATION.as_bytes().to_vec()),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
    }

    /// Writes a record atomically: a new data object first, then the old ones are destroyed. A crash
    /// in between leaves two objects, and [`KeyStore::load`] keeps the one with the higher sequence.
    fn put_record<T: Serialize>(&self, label: &str, record: &T) -> Result<()> {
        let value = serde_json::to_vec(&Envelope {
            format: RECORD_FORMAT,
            seq: self.next_seq(),
            record,
        })
        .map_err(|e| Error::Internal(format!("cannot encode record {label}: {e}")))?;
        let _w = self.write_lock();
        self.call(label, |s| {
            let old = Self::find_records(s, label)?;
            s.create_object(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Private(true),
                Attribute::Modifiable(false),
                Attribute::Application(APPLICATION.as_bytes().to_vec()),
                Attribute::Label(label.as_bytes().to_vec()),
                Attribute::Value(value),
            ])?;
            // The new record is durable; a stale copy left by a failure here loses at the next load.
            for h in old {
                let _ = s.destroy_object(h);
            }
            Ok(())
        })
    }

    fn delete_records(&self, label: &str) -> Result<()> {
        let _w = self.write_lock();
        self.call(label, |s| {
            for h in Self::find_records(s, label)? {
                s.destroy_object(h)?;
            }
            Ok(())
        })
    }

    /// Reads every kmskit object of the token: material handles (cached), and record objects.
    fn scan(&self) -> Result<Scan> {
        let token = self.subject_token();
        let lease = self.pool.get()?;
        let epoch = lease.epoch();
        let scanned = (|| -> std::result::Result<Scan, CkError> {
            let mut scan = Scan::default();
            let keys =
                lease.find_objects(&[Attribute::Class(ObjectClass::SECRET_KEY), Attribute::Token(true)])?;
            for h in keys {
                let attrs = lease.get_attributes(h, &[AttributeType::Label])?;
                if let Some(Attribute::Label(l)) = attrs.first() {
                    if let Some(id) = std::str::from_utf8(l).ok().and_then(parse_material_label) {
                        scan.material.push((id, h));
                    }
                }
            }
            let records = lease.find_objects(&[
                Attribute::Class(ObjectClass::DATA),
                Attribute::Token(true),
                Attribute::Application(APPLICATION.as_bytes().to_vec()),
            ])?;
            for h in records {
                let attrs = lease.get_attributes(h, &[AttributeType::Label, AttributeType::Value])?;
                let mut label = None;
                let mut value = None;
                for a in attrs {
                    match a {
                        Attribute::Label(l) => label = Some(String::from_utf8_lossy(&l).into_owned()),
                        Attribute::Value(v) => value = Some(v),
                        _ => {}
                    }
                }
                scan.records
                    .push((h, label.unwrap_or_default(), value.unwrap_or_default()));
            }
            Ok(scan)
        })();
        match scanned {
            Ok(scan) => {
                let mut h = self.handles.write().unwrap_or_else(PoisonError::into_inner);
                h.epoch = epoch;
                h.map = scan.material.iter().cloned().collect();
                Ok(scan)
            }
            Err(e) => Err(lease.fail(e, &token)),
        }
    }
}

#[derive(Default)]
struct Scan {
    material: Vec<(MaterialId, ObjectHandle)>,
    records: Vec<(ObjectHandle, String, Vec<u8>)>,
}

fn missing_material(id: &MaterialId) -> Error {
    Error::KeyNotFound(format!(
        "{} (the token holds no material for version {}: destroyed outside kmskit?)",
        id.key_id, id.version_id
    ))
}

fn unsupported(alg: Algorithm) -> Error {
    Error::Unsupported(format!(
        "the PKCS#11 store seals with AES-256-GCM only, not {alg:?}"
    ))
}

/// One record found in the token, newest per label.
struct Found<T> {
    seq: u64,
    handle: ObjectHandle,
    record: T,
}

fn decode<T: for<'de> Deserialize<'de>>(value: &[u8]) -> std::result::Result<(u64, T), String> {
    let env: Envelope<T> = serde_json::from_slice(value).map_err(|e| format!("not a kmskit record: {e}"))?;
    if env.format != RECORD_FORMAT {
        return Err(format!(
            "record format {} is not supported (expected {RECORD_FORMAT})",
            env.format
        ));
    }
    Ok((env.seq, env.record))
}

fn keep_newest<T>(
    map: &mut BTreeMap<String, Found<T>>,
    stale: &mut Vec<ObjectHandle>,
    label: String,
    f: Found<T>,
) {
    match map.get(&label) {
        Some(existing) if existing.seq >= f.seq => stale.push(f.handle),
        Some(existing) => {
            stale.push(existing.handle);
            map.insert(label, f);
        }
        None => {
            map.insert(label, f);
        }
    }
}

impl KeyStore for Pkcs11Store {
    fn protection_level(&self) -> ProtectionLevel {
        ProtectionLevel::Hsm
    }

    fn load(&self) -> Result<Loaded> {
        let token = self.subject_token();
        let scan = self.scan()?;
        let mut problems = Vec::new();
        let mut keys: BTreeMap<String, Found<KeyRecord>> = BTreeMap::new();
        let mut aliases: BTreeMap<String, Found<AliasRecord>> = BTreeMap::new();
        let mut stale = Vec::new();
        let mut max_seq = 0;
        for (handle, label, value) in scan.records {
            let corrupted = |reason: String| Error::Corrupted {
                path: token.clone(),
                record: label.clone(),
                reason,
            };
            if let Some(id) = label.strip_prefix(KEY_LABEL_PREFIX) {
                match decode::<KeyRecord>(&value) {
                    Ok((seq, rec)) if rec.key_id.as_str() == id => {
                        max_seq = max_seq.max(seq);
                        keep_newest(
                            &mut keys,
                            &mut stale,
                            label,
                            Found {
                                seq,
                                handle,
                                record: rec,
                            },
                        );
                    }
                    Ok((_, rec)) => {
                        problems.push(corrupted(format!("holds the record of key {}", rec.key_id)))
                    }
                    Err(reason) => problems.push(corrupted(reason)),
                }
            } else if let Some(name) = label.strip_prefix(ALIAS_LABEL_PREFIX) {
                match decode::<AliasRecord>(&value) {
                    Ok((seq, rec)) if rec.name.as_str() == name => {
                        max_seq = max_seq.max(seq);
                        keep_newest(
                            &mut aliases,
                            &mut stale,
                            label,
                            Found {
                                seq,
                                handle,
                                record: rec,
                            },
                        );
                    }
                    Ok((_, rec)) => {
                        problems.push(corrupted(format!("holds the record of alias {}", rec.name)))
                    }
                    Err(reason) => problems.push(corrupted(reason)),
                }
            } else {
                problems.push(corrupted(
                    "an object of application kmskit with an unknown label".to_owned(),
                ));
            }
        }
        self.seq.fetch_max(max_seq, Ordering::SeqCst);
        // Copies superseded by a newer one (a crash between create and destroy): clean up, best effort.
        if !stale.is_empty() {
            let _w = self.write_lock();
            let _ = self.call(&token, |s| {
                for h in stale {
                    let _ = s.destroy_object(h);
                }
                Ok(())
            });
        }
        let held: std::collections::HashSet<&MaterialId> = scan.material.iter().map(|(id, _)| id).collect();
        let keys: Vec<KeyRecord> = keys.into_values().map(|f| f.record).collect();
        for k in &keys {
            if k.purged {
                continue;
            }
            for id in k.material_ids() {
                if !held.contains(&id) {
                    problems.push(Error::Corrupted {
                        path: token.clone(),
                        record: key_label(&k.key_id),
                        reason: format!(
                            "the token holds no material for key {} version {} (destroyed outside kmskit?)",
                            id.key_id, id.version_id
                        ),
                    });
                }
            }
        }
        Ok(Loaded::new(
            keys,
            aliases.into_values().map(|f| f.record).collect(),
            problems,
        ))
    }

    fn generate(&self, id: &MaterialId, spec: KeySpec) -> Result<()> {
        if algorithm_for(spec)? != Algorithm::Aes256Gcm {
            return Err(Error::Unsupported(format!("key spec {spec} in a PKCS#11 token")));
        }
        let subject = id.to_string();
        let _w = self.write_lock();
        let lease = self.pool.get()?;
        let epoch = lease.epoch();
        let template = [
            Attribute::Class(ObjectClass::SECRET_KEY),
            Attribute::KeyType(KeyType::AES),
            Attribute::ValueLen((KEY_LEN as u64).into()),
            Attribute::Token(true),
            Attribute::Private(true),
            Attribute::Sensitive(true),
            Attribute::Extractable(false),
            Attribute::Encrypt(true),
            Attribute::Decrypt(true),
            Attribute::Wrap(false),
            Attribute::Unwrap(false),
            Attribute::Sign(false),
            Attribute::Verify(false),
            Attribute::Derive(false),
            Attribute::Modifiable(false),
            Attribute::Label(material_label(id).into_bytes()),
            Attribute::Id(id.key_id.as_str().as_bytes().to_vec()),
        ];
        match lease.generate_key(&Mechanism::AesKeyGen, &template) {
            Ok(h) => {
                self.cache_handle(id, h, epoch);
                Ok(())
            }
            Err(e) => Err(lease.fail(e, &subject)),
        }
    }

    fn seal(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        if alg != Algorithm::Aes256Gcm {
            return Err(unsupported(alg));
        }
        let out = self.with_material(id, |s, key| {
            let mut iv = *nonce;
            let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())?;
            s.encrypt(&Mechanism::AesGcm(params), key, buf)
        })?;
        let n = buf.len();
        if out.len() != n + TAG_LEN {
            return Err(Error::Internal(format!(
                "C_Encrypt (AES-GCM) returned {} bytes for {n} bytes of plaintext",
                out.len()
            )));
        }
        buf.copy_from_slice(&out[..n]);
        let mut tag = [0u8; TAG_LEN];
        tag.copy_from_slice(&out[n..]);
        Ok(tag)
    }

    fn open(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        if alg != Algorithm::Aes256Gcm || buf.len() < TAG_LEN {
            return Err(Error::DecryptFailed);
        }
        let plain = Zeroizing::new(self.with_material(id, |s, key| {
            let mut iv = *nonce;
            let params = GcmParams::new(&mut iv, aad, TAG_BITS.into())?;
            s.decrypt(&Mechanism::AesGcm(params), key, buf)
        })?);
        if plain.len() != buf.len() - TAG_LEN {
            return Err(Error::DecryptFailed);
        }
        buf.truncate(plain.len());
        buf.copy_from_slice(&plain);
        Ok(())
    }

    fn destroy(&self, key: &KeyId) -> Result<()> {
        let subject = key.to_string();
        let _w = self.write_lock();
        let result = self.call(&subject, |s| {
            let found = s.find_objects(&[
                Attribute::Class(ObjectClass::SECRET_KEY),
                Attribute::Token(true),
                Attribute::Id(key.as_str().as_bytes().to_vec()),
            ])?;
            // Only kmskit's own material objects of this key, whatever else shares the CKA_ID.
            let prefix = format!("{MATERIAL_LABEL_PREFIX}{key}/");
            for h in found {
                let ours = s
                    .get_attributes(h, &[AttributeType::Label])?
                    .iter()
                    .any(|a| matches!(a, Attribute::Label(l) if l.starts_with(prefix.as_bytes())));
                if ours {
                    s.destroy_object(h)?;
                }
            }
            Ok(())
        });
        self.forget_key_handles(key);
        result
    }

    fn save_key(&self, record: &KeyRecord) -> Result<()> {
        self.put_record(&key_label(&record.key_id), record)
    }

    fn save_alias(&self, alias: &AliasRecord) -> Result<()> {
        self.put_record(&alias_label(&alias.name), alias)
    }

    fn delete_alias(&self, name: &AliasName) -> Result<()> {
        self.delete_records(&alias_label(name))
    }
}
