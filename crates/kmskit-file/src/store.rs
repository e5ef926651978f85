//! [`FileStore`]: the [`KeyStore`] over a keystore directory.

use std::fmt;
use std::fs::File;
use std::io;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use kmskit_core::crypto::{AeadEngine, Algorithm, NONCE_LEN, TAG_LEN, default_engine};
use kmskit_core::store::{AliasRecord, KeyRecord, KeyStore, Loaded, MaterialId, SoftwareKeys};
use kmskit_core::{
    AliasName, AsymmetricAlgorithm, Error, KeyId, KeySpec, ProtectionLevel, Result, Zeroizing,
};

use crate::format::{self, Kind};
use crate::fsutil;
use crate::header::{HEADER_FILE, HeaderBody};
use crate::journal::{self, Crypt, Journal, JournalStats, Scanned, TornTail, Tuning};
use crate::lock::LockFile;
use crate::root::{Argon2Params, RootKey};

/// What opening the keystore found and did.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenReport {
    /// The keystore directory.
    pub dir: PathBuf,
    /// Whether this open created the keystore.
    pub created: bool,
    /// The journal segment that was read.
    pub segment: PathBuf,
    /// Intact records read.
    pub records: u64,
    /// Key records loaded (tombstones included).
    pub keys: usize,
    /// Alias records loaded.
    pub aliases: usize,
    /// Records that could not be read (details in [`KeyStore::load`]'s problems, and so in
    /// `Kms::load_problems`).
    pub problems: usize,
    /// The end of an interrupted append, cut off (writable) or ignored (read-only). It was never
    /// acknowledged: an acknowledged write is fsynced before the call returns, so this is normal after a
    /// crash.
    pub torn_tail: Option<TornTail>,
    /// Leftovers of interrupted writes and compactions that were overwritten and removed.
    pub removed_files: Vec<PathBuf>,
}

/// Options for opening a [`FileStore`]; made by [`FileStore::builder`].
#[derive(Debug)]
pub struct FileStoreBuilder {
    dir: PathBuf,
    root: Option<RootKey>,
    read_only: bool,
    create: bool,
    argon2: Argon2Params,
    engine: &'static dyn AeadEngine,
    tuning: Tuning,
}

impl FileStoreBuilder {
    /// The root key (required).
    #[must_use]
    pub fn root_key(mut self, root: RootKey) -> Self {
        self.root = Some(root);
        self
    }

    /// Opens without the writer lock; every mutation fails with [`Error::ReadOnly`]. Many read-only
    /// opens may run beside one writer; each sees the keystore as it was when it opened.
    #[must_use]
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Whether a missing directory or keystore is created (default: yes, unless read-only).
    #[must_use]
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Argon2id cost for a keystore created now with a passphrase (stored in its header; later opens use
    /// the stored values). Default: [`Argon2Params::default`].
    #[must_use]
    pub fn argon2_params(mut self, params: Argon2Params) -> Self {
        self.argon2 = params;
        self
    }

    /// The AEAD engine for key material and records (default: `kmskit_core::crypto::default_engine`).
    #[must_use]
    pub fn engine(mut self, engine: &'static dyn AeadEngine) -> Self {
        self.engine = engine;
        self
    }

    /// Whether the journal compacts itself when more than half of it is dead records (default: yes).
    #[must_use]
    pub fn auto_compact(mut self, on: bool) -> Self {
        self.tuning.auto_compact = on;
        self
    }

    /// Dead bytes below which automatic compaction never runs (default 4 MiB).
    #[must_use]
    pub fn compaction_min_bytes(mut self, bytes: u64) -> Self {
        self.tuning.compact_min_bytes = bytes;
        self
    }

    /// Opens (or creates) the keystore.
    ///
    /// # Errors
    /// - `MissingParameter` without a root key;
    /// - [`Error::AccessDenied`] (`Forbidden.NoPermission`) for a wrong root key;
    /// - [`Error::Locked`] when another writer holds the directory, naming it;
    /// - [`Error::Io`] for a missing directory (when not creating), an unwritable one, or other I/O;
    /// - [`Error::Corrupted`] for a damaged header, [`Error::Unsupported`] for a newer format.
    pub fn open(self) -> Result<FileStore> {
        FileStore::open_with(self)
    }
}

/// A durable, crash-safe keystore in one directory, with key material sealed under a root key.
///
/// See the [crate docs](crate) for the on-disk format and its guarantees.
pub struct FileStore {
    dir: PathBuf,
    read_only: bool,
    keys: SoftwareKeys,
    pub(crate) crypt: Crypt,
    journal: Mutex<Journal>,
    initial: Mutex<Option<Loaded>>,
    report: OpenReport,
    _lock: Option<LockFile>,
}

impl fmt::Debug for FileStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileStore")
            .field("dir", &self.dir)
            .field("read_only", &self.read_only)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |e| Error::io(context, e)
}

impl FileStore {
    /// Options for opening the keystore in `dir`.
    pub fn builder(dir: impl AsRef<Path>) -> FileStoreBuilder {
        FileStoreBuilder {
            dir: dir.as_ref().to_path_buf(),
            root: None,
            read_only: false,
            create: true,
            argon2: Argon2Params::default(),
            engine: default_engine(),
            tuning: Tuning {
                auto_compact: true,
                compact_min_bytes: 4 << 20,
            },
        }
    }

    /// Opens the keystore in `dir` for reading and writing, creating the directory and the keystore
    /// when they do not exist.
    ///
    /// # Errors
    /// As [`FileStoreBuilder::open`].
    pub fn open(dir: impl AsRef<Path>, root: &RootKey) -> Result<Self> {
        Self::builder(dir).root_key(root.duplicate()).open()
    }

    /// Opens an existing keystore read-only: no lock, nothing written, mutations fail with
    /// [`Error::ReadOnly`]. Works beside a writer and on read-only media.
    ///
    /// # Errors
    /// As [`FileStoreBuilder::open`]; a missing keystore is an [`Error::Io`] (not found).
    pub fn open_read_only(dir: impl AsRef<Path>, root: &RootKey) -> Result<Self> {
        Self::builder(dir)
            .root_key(root.duplicate())
            .read_only(true)
            .create(false)
            .open()
    }

    /// The keystore directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether it was opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// What opening found: records, problems, a torn tail cut off, leftovers removed.
    pub fn open_report(&self) -> &OpenReport {
        &self.report
    }

    /// Sizes of the journal.
    pub fn stats(&self) -> JournalStats {
        self.journal().stats()
    }

    /// Rewrites the journal with only its live records (the journal also does this by itself when more
    /// than half of it is dead), then overwrites and removes the old segment.
    ///
    /// Records that could not be read at open are **not** copied: after load problems, copy the
    /// directory away first if you want to keep them for inspection. Automatic compaction never runs
    /// while such problems exist; this call is how you accept losing them.
    ///
    /// # Errors
    /// [`Error::ReadOnly`]; I/O errors (the old segment then stays in use).
    pub fn compact(&self) -> Result<()> {
        self.check_writable()?;
        let old = self.journal().compact(&self.crypt)?;
        let _ = fsutil::wipe_and_remove(&self.dir, &old);
        Ok(())
    }

    fn journal(&self) -> MutexGuard<'_, Journal> {
        // Journal updates leave it consistent at every step that can panic, so a poisoned lock is usable.
        self.journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn check_writable(&self) -> Result<()> {
        if self.read_only {
            Err(Error::ReadOnly)
        } else {
            Ok(())
        }
    }

    fn open_with(b: FileStoreBuilder) -> Result<Self> {
        let root = b.root.ok_or(Error::MissingParameter("RootKey"))?;
        let dir = b.dir;
        let can_create = b.create && !b.read_only;
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(Error::io(
                    format!("keystore path {} is not a directory", dir.display()),
                    io::Error::new(io::ErrorKind::InvalidInput, "not a directory"),
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && can_create => {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(io_err(format!(
                        "cannot create keystore directory {}",
                        dir.display()
                    )))?;
                if let Some(parent) = dir.parent() {
                    let _ = fsutil::sync_dir(parent);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(Error::io(
                    format!("keystore directory {} does not exist", dir.display()),
                    e,
                ));
            }
            Err(e) => {
                return Err(Error::io(format!("cannot access {}", dir.display()), e));
            }
        }
        let lock = if b.read_only {
            None
        } else {
            Some(LockFile::acquire(&dir)?)
        };

        let header_path = dir.join(HEADER_FILE);
        let mut created = false;
        let derived = match std::fs::read(&header_path) {
            Ok(bytes) => {
                let h = HeaderBody::decode(&bytes, &header_path)?;
                h.unlock(&root, &dir, &header_path)?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let segments =
                    journal::list_segments(&dir).map_err(io_err(format!("cannot list {}", dir.display())))?;
                if !segments.is_empty() {
                    return Err(Error::Corrupted {
                        path: header_path.display().to_string(),
                        record: "header".to_owned(),
                        reason:
                            "missing, but journal segments exist: refusing to create a new keystore over \
                                 existing data (restore the header from a backup)"
                                .to_owned(),
                    });
                }
                if !can_create {
                    return Err(Error::io(
                        format!("no keystore in {}", dir.display()),
                        io::Error::new(io::ErrorKind::NotFound, "keystore.header not found"),
                    ));
                }
                let (h, derived) = HeaderBody::create(&root, b.argon2, &dir)?;
                fsutil::write_atomic(&dir, &header_path, &h.encode()?)
                    .map_err(io_err(format!("cannot write {}", header_path.display())))?;
                created = true;
                derived
            }
            Err(e) => return Err(Error::io(format!("cannot read {}", header_path.display()), e)),
        };
        drop(root);
        let crypt = Crypt::new(b.engine, &derived)?;
        drop(derived);

        let mut removed_files = Vec::new();
        if !b.read_only {
            for tmp in
                journal::list_temp_files(&dir).map_err(io_err(format!("cannot list {}", dir.display())))?
            {
                fsutil::wipe_and_remove(&dir, &tmp)
                    .map_err(io_err(format!("cannot remove {}", tmp.display())))?;
                removed_files.push(tmp);
            }
        }

        let (generation, path, mut scanned) = if b.read_only {
            Self::scan_read_only(&dir, &crypt)?
        } else {
            let mut segments =
                journal::list_segments(&dir).map_err(io_err(format!("cannot list {}", dir.display())))?;
            let (generation, path) = match segments.pop() {
                Some(last) => last,
                None => (1, journal::create_segment(&dir, 1, &crypt)?),
            };
            // Older segments were fully copied into the newest before it was renamed into place.
            for (_, old) in segments {
                fsutil::wipe_and_remove(&dir, &old)
                    .map_err(io_err(format!("cannot remove {}", old.display())))?;
                removed_files.push(old);
            }
            let scanned = journal::scan(&path, generation, &crypt)?;
            (generation, path, scanned)
        };

        let tuning = b.tuning;
        let mut journal = Journal::new(&dir, path.clone(), generation, &mut scanned, !b.read_only, tuning)?;
        if !b.read_only {
            journal.repair_tail(&crypt)?;
        }
        // Material stays raw in the journal index until its first use expands it (see `warm`): opening
        // does no AEAD key setup, and unused keys cost 32 bytes, not an expanded key schedule.
        let keys = SoftwareKeys::new(b.engine);
        let problems = scanned.problems;
        let report = OpenReport {
            dir: dir.clone(),
            created,
            segment: path,
            records: scanned.records,
            keys: scanned.keys.len(),
            aliases: scanned.aliases.len(),
            problems: problems.len(),
            torn_tail: scanned.torn_tail.clone(),
            removed_files,
        };
        let loaded = Loaded::new(scanned.keys, scanned.aliases, problems);
        Ok(Self {
            dir,
            read_only: b.read_only,
            keys,
            crypt,
            journal: Mutex::new(journal),
            initial: Mutex::new(Some(loaded)),
            report,
            _lock: lock,
        })
    }

    /// Scans the newest segment without writing anything. A writer may compact meanwhile; when a newer
    /// segment appears during the scan, the scan starts over on it.
    fn scan_read_only(dir: &Path, crypt: &Crypt) -> Result<(u64, PathBuf, Scanned)> {
        let mut last_err = None;
        for _ in 0..5 {
            let segments =
                journal::list_segments(dir).map_err(io_err(format!("cannot list {}", dir.display())))?;
            let Some((generation, path)) = segments.last().cloned() else {
                // A keystore whose first segment was never made holds nothing yet.
                return Err(Error::io(
                    format!("keystore {} has no journal segment", dir.display()),
                    io::Error::new(io::ErrorKind::NotFound, "no journal segment"),
                ));
            };
            match journal::scan(&path, generation, crypt) {
                Ok(s) => {
                    let now = journal::list_segments(dir)
                        .map_err(io_err(format!("cannot list {}", dir.display())))?;
                    if now.last().map(|(g, _)| *g) == Some(generation) {
                        return Ok((generation, path, s));
                    }
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::Unavailable {
            message: format!("keystore {} is being compacted; retry", dir.display()),
            retryable: true,
            source: None,
        }))
    }

    /// Syncs after an append made under `j`: compacts first when due, releases the lock, then fsyncs
    /// (so other appends can proceed) and overwrites a replaced segment.
    fn commit(&self, mut j: MutexGuard<'_, Journal>) -> Result<()> {
        let mut old_segment = None;
        if j.compaction_due() {
            // A failed compaction leaves the current segment in use; the append itself stands.
            if let Ok(old) = j.compact(&self.crypt) {
                old_segment = Some(old);
            }
        }
        let file: Arc<File> = j.file();
        let path = j.path().to_path_buf();
        drop(j);
        if old_segment.is_none() {
            if let Err(e) = file.sync_data() {
                self.journal().set_broken(format!("fsync failed: {e}"));
                return Err(Error::io(format!("cannot sync {}", path.display()), e));
            }
        }
        if let Some(old) = old_segment {
            let _ = fsutil::wipe_and_remove(&self.dir, &old);
        }
        Ok(())
    }

    /// Expands material read at open into `keys` on its first use. Whether `id` is now held.
    fn warm(&self, id: &MaterialId) -> bool {
        let mut j = self.journal();
        if self.keys.contains(id) {
            return true;
        }
        match j.take_cold(id) {
            // Inserted under the journal lock, so a concurrent first use finds it held.
            Some((spec, material)) => self.keys.insert(id.clone(), spec, material).is_ok(),
            None => false,
        }
    }

    fn encode_material(&self, id: &MaterialId, material: &[u8]) -> Result<(Vec<u8>, usize)> {
        let name = journal::material_name(id);
        let mut out = Vec::with_capacity(format::record_len(
            name.len(),
            NONCE_LEN + material.len() + TAG_LEN,
        ));
        format::encode_sealed(
            &mut out,
            Kind::Material,
            &name,
            material,
            self.crypt.key_for(Kind::Material),
        )?;
        let body_rel = format::FIXED_LEN + name.len() + 4;
        Ok((out, body_rel))
    }
}

impl KeyStore for FileStore {
    fn protection_level(&self) -> ProtectionLevel {
        ProtectionLevel::Software
    }

    fn load(&self) -> Result<Loaded> {
        let first = self
            .initial
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(l) = first {
            return Ok(l);
        }
        let (keys, aliases, problems) = self.journal().reread(&self.crypt);
        Ok(Loaded::new(keys, aliases, problems))
    }

    fn generate(&self, id: &MaterialId, spec: KeySpec) -> Result<()> {
        self.check_writable()?;
        let material = SoftwareKeys::new_material(spec)?;
        let (bytes, body_rel) = self.encode_material(id, material.expose_secret())?;
        let mut j = self.journal();
        let off = j.append(&bytes)?;
        j.note_material(id, off, bytes.len(), body_rel);
        // Durable before the key record that names it is written (see `save_key`).
        self.commit(j)?;
        self.keys.insert(id.clone(), spec, material)
    }

    fn seal(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut [u8],
    ) -> Result<[u8; TAG_LEN]> {
        match self.keys.seal(id, alg, nonce, aad, buf) {
            Err(Error::KeyVersionNotFound(_)) if self.warm(id) => self.keys.seal(id, alg, nonce, aad, buf),
            r => r,
        }
    }

    fn open(
        &self,
        id: &MaterialId,
        alg: Algorithm,
        nonce: &[u8; NONCE_LEN],
        aad: &[u8],
        buf: &mut Vec<u8>,
    ) -> Result<()> {
        match self.keys.open(id, alg, nonce, aad, buf) {
            Err(Error::KeyVersionNotFound(_)) if self.warm(id) => self.keys.open(id, alg, nonce, aad, buf),
            r => r,
        }
    }

    fn sign_digest(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        alg: AsymmetricAlgorithm,
        digest: &[u8],
    ) -> Result<Vec<u8>> {
        match self.keys.sign_digest(id, spec, alg, digest) {
            Err(Error::KeyVersionNotFound(_)) if self.warm(id) => {
                self.keys.sign_digest(id, spec, alg, digest)
            }
            r => r,
        }
    }

    fn asymmetric_decrypt(
        &self,
        id: &MaterialId,
        spec: KeySpec,
        alg: AsymmetricAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>> {
        match self.keys.asymmetric_decrypt(id, spec, alg, ciphertext) {
            Err(Error::KeyVersionNotFound(_)) if self.warm(id) => {
                self.keys.asymmetric_decrypt(id, spec, alg, ciphertext)
            }
            r => r,
        }
    }

    fn public_key(&self, id: &MaterialId, spec: KeySpec) -> Result<Vec<u8>> {
        match self.keys.public_key(id, spec) {
            Err(Error::KeyVersionNotFound(_)) if self.warm(id) => self.keys.public_key(id, spec),
            r => r,
        }
    }

    fn destroy(&self, key: &KeyId) -> Result<()> {
        self.check_writable()?;
        let mut j = self.journal();
        // Memory first (under the journal lock, so no first use re-expands it): whatever happens on
        // disk, the material is no longer usable.
        self.keys.remove_key(key);
        j.wipe_key(key)
    }

    fn save_key(&self, record: &KeyRecord) -> Result<()> {
        self.check_writable()?;
        let json =
            serde_json::to_vec(record).map_err(|e| Error::Internal(format!("key record encoding: {e}")))?;
        let mut rec = Vec::with_capacity(json.len() + 128);
        // A record with a version floor is written in the key-floor format, so builds that do not
        // know floors refuse it rather than ignore the floor.
        let version = if record.min_decryption_version.is_some() {
            format::KEY_FLOOR_FORMAT_VERSION
        } else {
            format::FORMAT_VERSION
        };
        format::encode_sealed_version(
            &mut rec,
            version,
            Kind::Key,
            record.key_id.as_str(),
            &json,
            self.crypt.key_for(Kind::Key),
        )?;
        let mut j = self.journal();
        j.check_writable()?;
        // Material is made durable by `generate`; material held only in memory (never the case through
        // the engine) is written in the same append, ahead of the record naming it.
        let mut batch = Vec::new();
        let mut mats = Vec::new();
        if !record.purged {
            for id in record.material_ids() {
                if j.has_material(&id) {
                    continue;
                }
                let enc = self
                    .keys
                    .with_material(&id, |m| self.encode_material(&id, m.expose_secret()));
                if let Some(enc) = enc {
                    let (bytes, body_rel) = enc?;
                    mats.push((id, batch.len(), bytes.len(), body_rel));
                    batch.extend_from_slice(&bytes);
                }
            }
        }
        let rec_at = batch.len();
        batch.extend_from_slice(&rec);
        let off = j.append(&batch)?;
        for (id, at, len, body_rel) in mats {
            j.note_material(&id, off + at as u64, len, body_rel);
        }
        j.note_key(record, off + rec_at as u64, rec.len());
        self.commit(j)
    }

    fn save_alias(&self, alias: &AliasRecord) -> Result<()> {
        self.check_writable()?;
        let json =
            serde_json::to_vec(alias).map_err(|e| Error::Internal(format!("alias record encoding: {e}")))?;
        let mut rec = Vec::new();
        format::encode_sealed(
            &mut rec,
            Kind::Alias,
            alias.name.as_str(),
            &json,
            self.crypt.key_for(Kind::Alias),
        )?;
        let mut j = self.journal();
        let off = j.append(&rec)?;
        j.note_alias(&alias.name, Some((off, rec.len())));
        self.commit(j)
    }

    fn delete_alias(&self, name: &AliasName) -> Result<()> {
        self.check_writable()?;
        let mut rec = Vec::new();
        format::encode_sealed(
            &mut rec,
            Kind::AliasDeleted,
            name.as_str(),
            &[],
            self.crypt.key_for(Kind::AliasDeleted),
        )?;
        let mut j = self.journal();
        j.append(&rec)?;
        j.note_alias(name, None);
        self.commit(j)
    }
}
