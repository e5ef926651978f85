//! The journal: an append-only segment file of checksummed, sealed records, its scan on open, and its
//! compaction into a new segment.

use std::collections::{HashMap, HashSet};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use kmskit_core::crypto::{AeadEngine, AeadKey, Algorithm, KEY_LEN};
use kmskit_core::store::{AliasRecord, KeyRecord, MaterialId};
use kmskit_core::{AliasName, Error, KeyId, KeySpec, KeyState, KeyVersionId, Result, SecretBytes};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::format::{self, BodyState, Header, HeaderInfo, Kind};
use crate::fsutil;
use crate::root::Derived;

const SEGMENT_PREFIX: &str = "journal-";
const SEGMENT_SUFFIX: &str = ".log";
const READ_CHUNK: usize = 1 << 20;

/// File name of segment `generation`.
pub(crate) fn segment_name(generation: u64) -> String {
    format!("{SEGMENT_PREFIX}{generation:010}{SEGMENT_SUFFIX}")
}

fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix(SEGMENT_PREFIX)?.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Every segment in `dir`, oldest first.
pub(crate) fn list_segments(dir: &Path) -> io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if let Some(g) = entry.file_name().to_str().and_then(parse_segment_name) {
            out.push((g, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Leftover temporary files (`*.tmp`) from an interrupted write.
pub(crate) fn list_temp_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.ends_with(".tmp")
            && (name.starts_with(SEGMENT_PREFIX) || name.starts_with(crate::header::HEADER_FILE))
        {
            out.push(entry.path());
        }
    }
    Ok(out)
}

/// The AEAD keys sealing records.
pub(crate) struct Crypt {
    record: Box<dyn AeadKey>,
    material: Box<dyn AeadKey>,
}

impl Crypt {
    pub(crate) fn new(engine: &'static dyn AeadEngine, d: &Derived) -> Result<Self> {
        Ok(Self {
            record: engine.new_key(Algorithm::Aes256Gcm, &d.record_key[..])?,
            material: engine.new_key(Algorithm::Aes256Gcm, &d.material_key[..])?,
        })
    }

    pub(crate) fn key_for(&self, kind: Kind) -> &dyn AeadKey {
        if kind == Kind::Material {
            &*self.material
        } else {
            &*self.record
        }
    }
}

/// Where a record lies in the segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Span {
    pub(crate) off: u64,
    pub(crate) len: u32,
}

impl Span {
    fn end(self) -> u64 {
        self.off + u64::from(self.len)
    }
}

/// A material record in the index.
#[derive(Debug)]
struct MatEntry {
    version: KeyVersionId,
    span: Span,
    /// Offset of the body within the record (what a wipe overwrites from).
    body_rel: u32,
    /// Whether the key's latest record names it (only live material survives compaction).
    live: bool,
    /// Whether the record was intact when indexed (a damaged one is indexed only to be wiped).
    intact: bool,
    /// The material read at open, until its first use expands it into an AEAD key.
    cold: Option<Cold>,
}

/// Raw material read at open and not yet used (zeroized on drop, redacted in `Debug`): 32 bytes for a
/// symmetric key, PKCS#8 DER for an asymmetric one.
struct Cold(Zeroizing<Vec<u8>>);

/// The largest material record accepted (a PKCS#8 RSA 3072 key is about 1.8 KiB).
const MAX_MATERIAL_LEN: usize = 16 << 10;

impl std::fmt::Debug for Cold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cold([REDACTED])")
    }
}

#[derive(Debug, Default)]
struct KeyEntry {
    record: Option<Span>,
    /// While scanning: where the key's record is in the scan's record list.
    slot: Option<u32>,
    /// The key's spec (from its latest record), for expanding cold material.
    spec: Option<KeySpec>,
    materials: Vec<MatEntry>,
}

/// The segment header record's payload.
#[derive(Serialize, Deserialize)]
struct SegmentInfo {
    generation: u64,
}

/// A torn tail found (and, when writable, cut off) at open: the end of an interrupted append.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Where the valid records end.
    pub offset: u64,
    /// How many bytes followed them.
    pub bytes: u64,
    /// The name of the first record in the tail, when its header was intact.
    pub record: Option<String>,
}

/// What a scan found.
pub(crate) struct Scanned {
    pub(crate) keys: Vec<KeyRecord>,
    pub(crate) aliases: Vec<AliasRecord>,
    pub(crate) problems: Vec<Error>,
    pub(crate) records: u64,
    pub(crate) torn_tail: Option<TornTail>,
    pub(crate) good_end: u64,
    index: Index,
}

#[derive(Default)]
struct Index {
    keys: HashMap<KeyId, KeyEntry>,
    aliases: HashMap<AliasName, Span>,
    live: u64,
}

/// Sequential reader with a sliding window, for scanning.
struct Reader {
    file: File,
    buf: Vec<u8>,
    pos: usize,
    base: u64,
    eof: bool,
}

impl Reader {
    fn new(file: File) -> Self {
        Self {
            file,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            base: 0,
            eof: false,
        }
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.pos..]
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    fn advance(&mut self, n: usize) {
        self.pos += n;
    }

    /// Makes at least `need` bytes available; `false` when the file ends first.
    fn fill(&mut self, need: usize) -> io::Result<bool> {
        while self.buf.len() - self.pos < need {
            if self.eof {
                return Ok(false);
            }
            if self.pos > 0 {
                self.buf.drain(..self.pos);
                self.base += self.pos as u64;
                self.pos = 0;
            }
            let want = (need - self.buf.len()).max(READ_CHUNK);
            let old = self.buf.len();
            self.buf.resize(old + want, 0);
            let n = loop {
                match self.file.read(&mut self.buf[old..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        self.buf.truncate(old);
                        return Err(e);
                    }
                }
            };
            self.buf.truncate(old + n);
            if n == 0 {
                self.eof = true;
            }
        }
        Ok(true)
    }

    /// Moves to the next occurrence of the record magic (or the end).
    fn skip_to_magic(&mut self) -> io::Result<()> {
        loop {
            let a = self.avail();
            if let Some(i) = a.windows(4).position(|w| w == format::MAGIC) {
                self.advance(i);
                return Ok(());
            }
            let keep = a.len().min(3);
            let skip = a.len() - keep;
            self.advance(skip);
            if !self.fill(keep + 1)? {
                let rest = self.avail().len();
                self.advance(rest);
                return Ok(());
            }
        }
    }
}

/// What the scan of one record found, before the tail is known.
enum Damage {
    Key(KeyId),
    Alias(AliasName),
}

struct Scanner<'a> {
    path: &'a Path,
    generation: u64,
    crypt: &'a Crypt,
    /// One entry per key: its latest record's span and slot, and its material records.
    index: HashMap<KeyId, KeyEntry>,
    /// The latest record of each key (superseded ones are overwritten in place).
    key_records: Vec<KeyRecord>,
    aliases: HashMap<AliasName, Option<(AliasRecord, Span)>>,
    problems: Vec<(u64, Error)>,
    damage: Vec<(u64, Damage)>,
    records: u64,
    seen_segment_header: bool,
    /// A segment header record was found, readable or not.
    segment_record: bool,
}

impl Scanner<'_> {
    fn problem(&mut self, off: u64, record: impl Into<String>, reason: impl Into<String>) {
        self.problems.push((
            off,
            Error::Corrupted {
                path: self.path.display().to_string(),
                record: record.into(),
                reason: reason.into(),
            },
        ));
    }

    /// Attributes a damaged or unreadable record to the key or alias it names, so a stale earlier
    /// revision is not silently taken for the latest.
    fn attribute(&mut self, off: u64, kind: Option<Kind>, name: Option<&str>, span: Span, info: &HeaderInfo) {
        let Some(name) = name else { return };
        match kind {
            Some(Kind::Key) => {
                if let Ok(k) = KeyId::new(name) {
                    self.damage.push((off, Damage::Key(k)));
                }
            }
            Some(Kind::Alias | Kind::AliasDeleted) => {
                if let Ok(a) = AliasName::new(name) {
                    self.damage.push((off, Damage::Alias(a)));
                }
            }
            Some(Kind::Material) => {
                // Indexed without material, so destroying the key still wipes it.
                if let Some((k, v)) = parse_material_name(name) {
                    let entry = MatEntry {
                        version: v,
                        span,
                        body_rel: info.body_start() as u32,
                        live: false,
                        intact: false,
                        cold: None,
                    };
                    self.index.entry(k).or_default().materials.push(entry);
                }
            }
            _ => {}
        }
    }

    /// Handles one complete record; returns whether it counts as intact (for finding the torn tail).
    fn record(&mut self, off: u64, info: &HeaderInfo, rec: &[u8]) -> bool {
        let span = Span {
            off,
            len: rec.len() as u32,
        };
        let name = format::name_of(info, rec);
        let label = name.map_or_else(|| format!("record at byte {off}"), str::to_owned);
        let kind = Kind::from_u8(info.kind);
        let kind_name = kind.map_or("unknown", Kind::name);
        if kind == Some(Kind::Segment) {
            self.segment_record = true;
        }
        match format::check_body(info, rec) {
            BodyState::Ok => {}
            BodyState::Wiped if kind == Some(Kind::Material) => return true,
            BodyState::Wiped | BodyState::Damaged => {
                self.problem(
                    off,
                    label,
                    format!(
                        "{kind_name} record at byte {off}: checksum mismatch (damaged, truncated or edited)"
                    ),
                );
                self.attribute(off, kind, name, span, info);
                return false;
            }
        }
        self.records += 1;
        if let Err(why) = format::check_version(info.version, kind) {
            self.problem(off, label, format!("{kind_name} record at byte {off}: {why}"));
            self.attribute(off, kind, name, span, info);
            return true;
        }
        let Some(kind) = kind else {
            self.problem(
                off,
                label,
                format!(
                    "record at byte {off}: unknown record kind {} (written by a newer kmskit?)",
                    info.kind
                ),
            );
            return true;
        };
        let Some(name) = name else {
            self.problem(
                off,
                label,
                format!("{kind_name} record at byte {off}: name is not UTF-8"),
            );
            return true;
        };
        if kind == Kind::Header {
            self.problem(
                off,
                label,
                format!("record at byte {off}: a header record inside a journal"),
            );
            return true;
        }
        let body = &rec[info.body_start()..info.body_start() + info.body_len];
        let Some(payload) = format::open_sealed(body, &rec[..info.aad_len()], self.crypt.key_for(kind))
        else {
            self.problem(
                off,
                name,
                format!(
                    "{kind_name} record at byte {off}: does not authenticate under this keystore's root key \
                     (edited, or copied from another keystore)"
                ),
            );
            self.attribute(off, Some(kind), Some(name), span, info);
            return true;
        };
        match kind {
            Kind::Header => {}
            Kind::Segment => match serde_json::from_slice::<SegmentInfo>(&payload) {
                Ok(s) if s.generation == self.generation => self.seen_segment_header = true,
                Ok(s) => self.problem(
                    off,
                    name,
                    format!(
                        "segment header says generation {}, but the file is generation {}",
                        s.generation, self.generation
                    ),
                ),
                Err(e) => self.problem(off, name, format!("unreadable segment header: {e}")),
            },
            Kind::Material => {
                let Some((k, v)) = parse_material_name(name) else {
                    self.problem(off, name, "material record with a malformed name");
                    return true;
                };
                // The length is checked against the key's spec once its record is known (below).
                if payload.is_empty() || payload.len() > MAX_MATERIAL_LEN {
                    self.problem(off, name, format!("material of {} bytes", payload.len()));
                    self.attribute(off, Some(kind), Some(name), span, info);
                    return true;
                }
                let raw = Zeroizing::new(payload.to_vec());
                let entry = MatEntry {
                    version: v,
                    span,
                    body_rel: info.body_start() as u32,
                    live: false,
                    intact: true,
                    cold: Some(Cold(raw)),
                };
                self.index.entry(k).or_default().materials.push(entry);
            }
            Kind::Key => match serde_json::from_slice::<KeyRecord>(&payload) {
                Ok(r) if r.key_id.as_str() == name => {
                    let e = self.index.entry(r.key_id.clone()).or_default();
                    e.record = Some(span);
                    match e.slot {
                        Some(i) => self.key_records[i as usize] = r,
                        None => {
                            e.slot = Some(self.key_records.len() as u32);
                            self.key_records.push(r);
                        }
                    }
                }
                Ok(r) => {
                    self.problem(
                        off,
                        name,
                        format!("holds the record of another key, {}", r.key_id),
                    );
                    self.attribute(off, Some(kind), Some(name), span, info);
                }
                Err(e) => {
                    self.problem(off, name, format!("unreadable key record: {e}"));
                    self.attribute(off, Some(kind), Some(name), span, info);
                }
            },
            Kind::Alias => match serde_json::from_slice::<AliasRecord>(&payload) {
                Ok(a) if a.name.as_str() == name => {
                    self.aliases.insert(a.name.clone(), Some((a, span)));
                }
                Ok(a) => {
                    self.problem(
                        off,
                        name,
                        format!("holds the record of another alias, {}", a.name),
                    );
                    self.attribute(off, Some(kind), Some(name), span, info);
                }
                Err(e) => {
                    self.problem(off, name, format!("unreadable alias record: {e}"));
                    self.attribute(off, Some(kind), Some(name), span, info);
                }
            },
            Kind::AliasDeleted => match AliasName::new(name) {
                Ok(a) => {
                    self.aliases.insert(a, None);
                }
                Err(_) => self.problem(off, name, "alias deletion with a malformed alias name"),
            },
        }
        true
    }
}

fn parse_material_name(name: &str) -> Option<(KeyId, KeyVersionId)> {
    let (k, v) = name.split_once('/')?;
    Some((KeyId::new(k).ok()?, KeyVersionId::new(v).ok()?))
}

/// The name of a material record.
pub(crate) fn material_name(id: &MaterialId) -> String {
    format!("{}/{}", id.key_id, id.version_id)
}

/// Reads and checks every record of the segment at `path`.
pub(crate) fn scan(path: &Path, generation: u64, crypt: &Crypt) -> Result<Scanned> {
    let file = File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let io_err = |e| Error::io(format!("cannot read {}", path.display()), e);
    // A key takes at least ~750 bytes of journal (material and key records), and compaction keeps dead
    // records below half: sizing for that avoids regrowing (and fragmenting) the tables on big stores.
    let file_len = file.metadata().map_err(io_err)?.len();
    let estimate = usize::try_from(file_len / 1024).unwrap_or(0).min(1 << 22);
    let mut r = Reader::new(file);
    let mut s = Scanner {
        path,
        generation,
        crypt,
        index: HashMap::with_capacity(estimate),
        key_records: Vec::with_capacity(estimate),
        aliases: HashMap::new(),
        problems: Vec::new(),
        damage: Vec::new(),
        records: 0,
        seen_segment_header: false,
        segment_record: false,
    };
    let mut good_end = 0u64;
    let mut garbage_start: Option<u64> = None;
    let mut tail_name: Option<(u64, String)> = None;
    loop {
        let off = r.offset();
        if !r.fill(1).map_err(io_err)? {
            break;
        }
        match format::parse_header(r.avail()) {
            Header::NeedMore(n) => {
                if !r.fill(n).map_err(io_err)? {
                    break;
                }
            }
            Header::Bad => {
                garbage_start.get_or_insert(off);
                r.advance(1);
                r.skip_to_magic().map_err(io_err)?;
            }
            Header::Ok(info) => {
                let total = info.total_len();
                if !r.fill(total).map_err(io_err)? {
                    let name = format::name_of(&info, r.avail()).map(str::to_owned);
                    if let Some(n) = name {
                        tail_name.get_or_insert((off, n));
                    }
                    break;
                }
                if let Some(gs) = garbage_start.take() {
                    s.problem(
                        gs,
                        format!("bytes {gs}..{off}"),
                        format!(
                            "{} unreadable bytes at byte {gs} (damaged record header, or foreign data); \
                             the records after them were read",
                            off - gs
                        ),
                    );
                }
                let rec = &r.avail()[..total];
                let intact = s.record(off, &info, rec);
                if intact {
                    good_end = off + total as u64;
                } else if let Some(n) = format::name_of(&info, rec) {
                    tail_name.get_or_insert((off, n.to_owned()));
                }
                r.advance(total);
            }
        }
        if let Some((o, _)) = &tail_name {
            if *o < good_end {
                tail_name = None;
            }
        }
    }
    // Every exit from the loop above follows a `fill` that hit the end of the file.
    let file_len = file_len.max(r.base + r.buf.len() as u64);
    // Whatever follows the last intact record is the torn end of an interrupted append: it was never
    // acknowledged (an acknowledged append was fsynced before the call returned, and nothing intact
    // follows this one), so it is not a problem.
    s.problems.retain(|(o, _)| *o < good_end);
    s.damage.retain(|(o, _)| *o < good_end);
    for e in s.index.values_mut() {
        e.materials.retain(|m| m.span.off < good_end);
    }
    let torn_tail = (file_len > good_end).then(|| TornTail {
        offset: good_end,
        bytes: file_len - good_end,
        record: tail_name.map(|(_, n)| n),
    });
    if !s.segment_record && good_end > 0 {
        s.problem(
            0,
            segment_name(generation),
            "the segment header record is missing or unreadable",
        );
    }
    finish(s, good_end, torn_tail)
}

fn finish(mut s: Scanner<'_>, good_end: u64, torn_tail: Option<TornTail>) -> Result<Scanned> {
    let path = s.path.display().to_string();
    let corrupted = |record: String, reason: String| Error::Corrupted {
        path: path.clone(),
        record,
        reason,
    };
    let mut extra = Vec::new();
    // A damaged record that was a key's or alias's latest: fail closed.
    for (doff, d) in std::mem::take(&mut s.damage) {
        match d {
            Damage::Key(k) => match s.index.get(&k).and_then(|e| Some((e.slot?, e.record?))) {
                Some((slot, span)) if span.off < doff => {
                    let rec = &mut s.key_records[slot as usize];
                    let before = rec.state;
                    if rec.state == KeyState::Enabled {
                        rec.state = KeyState::Disabled;
                    }
                    extra.push(corrupted(
                        k.to_string(),
                        format!(
                            "the key's latest record (at byte {doff}) is unreadable; its previous revision \
                             {} was loaded{}",
                            rec.revision,
                            if before == KeyState::Enabled {
                                " and the key is Disabled until an administrator re-enables it"
                            } else {
                                ""
                            }
                        ),
                    ));
                }
                Some(_) => {}
                None => extra.push(corrupted(
                    k.to_string(),
                    format!(
                        "no readable record of this key (damaged record at byte {doff}); it is not loaded"
                    ),
                )),
            },
            Damage::Alias(a) => {
                if let Some(Some((_, span))) = s.aliases.get(&a) {
                    if span.off < doff {
                        s.aliases.remove(&a);
                        extra.push(corrupted(
                            a.to_string(),
                            format!(
                                "the alias's latest record (at byte {doff}) is unreadable; the alias is not \
                                 loaded rather than pointing at a possibly stale key"
                            ),
                        ));
                    }
                }
            }
        }
    }
    let mut problems: Vec<(u64, Error)> = std::mem::take(&mut s.problems);
    problems.sort_by_key(|(o, _)| *o);
    let mut problems: Vec<Error> = problems.into_iter().map(|(_, e)| e).collect();
    problems.extend(extra);

    let mut index = Index::default();
    let records = std::mem::take(&mut s.key_records);
    for (id, entry) in &mut s.index {
        let Some(slot) = entry.slot.take() else {
            // Material no saved key record names (an interrupted CreateKey): kept in the index only so
            // that a destroy or compaction still wipes it.
            for m in &mut entry.materials {
                m.cold = None;
            }
            continue;
        };
        let rec = &records[slot as usize];
        entry.spec = Some(rec.key_spec);
        if let Some(span) = entry.record {
            index.live += u64::from(span.len);
        }
        let found = &mut entry.materials;
        // AES-256 material is exactly one 32-byte key; asymmetric material is PKCS#8, parsed (and so
        // checked) on first use. Other symmetric specs are checked by their AEAD key setup on first use.
        if rec.key_spec == KeySpec::Aes256 {
            for m in found.iter_mut() {
                if let Some(c) = m.cold.as_ref().filter(|c| c.0.len() != KEY_LEN) {
                    problems.push(corrupted(
                        format!("{}/{}", id, m.version),
                        format!("material of {} bytes, not {KEY_LEN}", c.0.len()),
                    ));
                    m.cold = None;
                    m.intact = false;
                }
            }
        }
        for v in rec.versions.iter().filter(|_| !rec.purged) {
            // The last intact copy of a version's material is the live one.
            let pos = found.iter().rposition(|m| m.version == v.version_id && m.intact);
            match pos {
                Some(p) => {
                    found[p].live = true;
                    index.live += u64::from(found[p].span.len);
                }
                None if rec.state == KeyState::PendingDeletion => {
                    // A purge destroyed the material and stopped before saving the tombstone; the
                    // engine purges the key again.
                }
                None => problems.push(corrupted(
                    format!("{}/{}", id, v.version_id),
                    "key material missing (its record was damaged or lost); this version cannot encrypt \
                     or decrypt"
                        .to_owned(),
                )),
            }
        }
        // Only live material is kept in memory.
        for m in found.iter_mut().filter(|m| !m.live) {
            m.cold = None;
        }
    }
    index.keys = std::mem::take(&mut s.index);
    let keys = records;
    let mut aliases = Vec::new();
    for (name, a) in s.aliases {
        if let Some((rec, span)) = a {
            index.live += u64::from(span.len);
            index.aliases.insert(name, span);
            aliases.push(rec);
        }
    }
    Ok(Scanned {
        keys,
        aliases,
        problems,
        records: s.records,
        torn_tail,
        good_end,
        index,
    })
}

/// Opens one record at `span` (for re-reading after open).
fn read_record(
    file: &File,
    span: Span,
    crypt: &Crypt,
) -> Option<(Kind, String, zeroize::Zeroizing<Vec<u8>>)> {
    let mut rec = vec![0u8; span.len as usize];
    file.read_exact_at(&mut rec, span.off).ok()?;
    let Header::Ok(info) = format::parse_header(&rec) else {
        return None;
    };
    if info.total_len() != rec.len() || format::check_body(&info, &rec) != BodyState::Ok {
        return None;
    }
    let kind = Kind::from_u8(info.kind)?;
    let name = format::name_of(&info, &rec)?.to_owned();
    let body = &rec[info.body_start()..info.body_start() + info.body_len];
    let payload = format::open_sealed(body, &rec[..info.aad_len()], crypt.key_for(kind))?;
    Some((kind, name, payload))
}

/// Writes a new segment file atomically (temp file, fsync, rename, directory fsync) holding its header
/// record followed by `copy`'s output; returns its length.
fn write_segment(
    dir: &Path,
    generation: u64,
    crypt: &Crypt,
    copy: impl FnOnce(&mut BufWriter<&File>, &mut u64) -> io::Result<()>,
) -> Result<PathBuf> {
    let path = dir.join(segment_name(generation));
    let tmp = fsutil::tmp_path(&path);
    let result = (|| -> Result<()> {
        let mut head = Vec::new();
        let info = serde_json::to_vec(&SegmentInfo { generation })
            .map_err(|e| Error::Internal(format!("segment header: {e}")))?;
        format::encode_sealed(
            &mut head,
            Kind::Segment,
            &segment_name(generation),
            &info,
            crypt.key_for(Kind::Segment),
        )?;
        let io = |e| Error::io(format!("cannot write {}", tmp.display()), e);
        let f = fsutil::create_private(&tmp).map_err(io)?;
        let mut w = BufWriter::with_capacity(1 << 20, &f);
        w.write_all(&head).map_err(io)?;
        let mut off = head.len() as u64;
        copy(&mut w, &mut off).map_err(io)?;
        w.flush().map_err(io)?;
        drop(w);
        f.sync_all().map_err(io)?;
        drop(f);
        std::fs::rename(&tmp, &path).map_err(io)?;
        fsutil::sync_dir(dir).map_err(io)
    })();
    if let Err(e) = result {
        let _ = fsutil::wipe_and_remove(dir, &tmp);
        return Err(e);
    }
    Ok(path)
}

/// Creates segment `generation` holding only its header record.
pub(crate) fn create_segment(dir: &Path, generation: u64, crypt: &Crypt) -> Result<PathBuf> {
    write_segment(dir, generation, crypt, |_, _| Ok(()))
}

/// Open-time settings of the journal.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tuning {
    pub(crate) auto_compact: bool,
    pub(crate) compact_min_bytes: u64,
}

/// The open segment and the index of its live records. Guarded by the store's mutex.
#[derive(Debug)]
pub(crate) struct Journal {
    dir: PathBuf,
    path: PathBuf,
    generation: u64,
    file: Arc<File>,
    len: u64,
    live: u64,
    keys: HashMap<KeyId, KeyEntry>,
    aliases: HashMap<AliasName, Span>,
    /// Material generated in this process that no saved key record names yet.
    pending: HashSet<MaterialId>,
    /// The segment had problems at open: automatic compaction, which drops unreadable records, waits
    /// for an explicit [`FileStore::compact`](crate::FileStore::compact).
    damaged: bool,
    /// Why appends are refused until the store is reopened (a failed fsync or undo).
    broken: Option<String>,
    tuning: Tuning,
}

/// Counters describing the journal.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalStats {
    /// The current segment's generation (bumped by each compaction).
    pub generation: u64,
    /// The segment's path.
    pub path: PathBuf,
    /// Bytes in the segment.
    pub total_bytes: u64,
    /// Bytes of records still needed (the rest is reclaimed by compaction).
    pub live_bytes: u64,
}

impl Journal {
    /// Opens the scanned segment for appending (or just for re-reading, when `writable` is false).
    pub(crate) fn new(
        dir: &Path,
        path: PathBuf,
        generation: u64,
        scanned: &mut Scanned,
        writable: bool,
        tuning: Tuning,
    ) -> Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(writable)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        let index = std::mem::take(&mut scanned.index);
        let mut j = Self {
            dir: dir.to_path_buf(),
            path,
            generation,
            file: Arc::new(file),
            len: scanned.good_end,
            live: index.live,
            keys: index.keys,
            aliases: index.aliases,
            pending: HashSet::new(),
            damaged: !scanned.problems.is_empty(),
            broken: None,
            tuning,
        };
        // The segment header (first record) is always live.
        if j.len > 0 {
            j.live += j.first_record_len();
        }
        Ok(j)
    }

    /// Cuts a torn tail off (writable stores only), and makes sure the segment starts with its header.
    pub(crate) fn repair_tail(&mut self, crypt: &Crypt) -> Result<()> {
        let path = self.path.clone();
        let io = |e| Error::io(format!("cannot repair the end of {}", path.display()), e);
        let actual = self.file.metadata().map_err(io)?.len();
        if actual > self.len {
            self.file.set_len(self.len).map_err(io)?;
            self.file.sync_data().map_err(io)?;
        }
        if self.len == 0 {
            let mut head = Vec::new();
            let info = serde_json::to_vec(&SegmentInfo {
                generation: self.generation,
            })
            .map_err(|e| Error::Internal(format!("segment header: {e}")))?;
            format::encode_sealed(
                &mut head,
                Kind::Segment,
                &segment_name(self.generation),
                &info,
                crypt.key_for(Kind::Segment),
            )?;
            self.append(&head)?;
            self.live += head.len() as u64;
            self.file.sync_data().map_err(io)?;
        }
        Ok(())
    }

    fn first_record_len(&self) -> u64 {
        let mut head = vec![0u8; format::FIXED_LEN + format::MAX_NAME_LEN + 4];
        let n = self.file.read_at(&mut head, 0).unwrap_or(0);
        match format::parse_header(&head[..n]) {
            Header::Ok(info) if info.kind == Kind::Segment as u8 => info.total_len() as u64,
            _ => 0,
        }
    }

    pub(crate) fn stats(&self) -> JournalStats {
        JournalStats {
            generation: self.generation,
            path: self.path.clone(),
            total_bytes: self.len,
            live_bytes: self.live,
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn file(&self) -> Arc<File> {
        Arc::clone(&self.file)
    }

    pub(crate) fn check_writable(&self) -> Result<()> {
        match &self.broken {
            None => Ok(()),
            Some(why) => Err(Error::io(
                format!(
                    "keystore journal {} refuses writes until it is reopened: {why}",
                    self.path.display()
                ),
                io::Error::other("an earlier write failed"),
            )),
        }
    }

    /// Marks the journal unusable for writes (after a failed fsync: the page cache may hold data the
    /// disk does not).
    pub(crate) fn set_broken(&mut self, why: String) {
        self.broken.get_or_insert(why);
    }

    /// Appends `bytes` at the end of the segment (not yet synced); returns their offset. A failed write
    /// is undone so the segment never keeps half a record.
    pub(crate) fn append(&mut self, bytes: &[u8]) -> Result<u64> {
        self.check_writable()?;
        let off = self.len;
        match self.file.write_all_at(bytes, off) {
            Ok(()) => {
                self.len += bytes.len() as u64;
                Ok(off)
            }
            Err(e) => {
                if let Err(undo) = self.file.set_len(off).and_then(|()| self.file.sync_data()) {
                    self.set_broken(format!("could not undo a failed append: {undo}"));
                }
                Err(Error::io(
                    format!("cannot append to the keystore journal {}", self.path.display()),
                    e,
                ))
            }
        }
    }

    /// Notes a material record appended at `off`.
    pub(crate) fn note_material(&mut self, id: &MaterialId, off: u64, len: usize, body_rel: usize) {
        let entry = self.keys.entry(id.key_id.clone()).or_default();
        entry.materials.push(MatEntry {
            version: id.version_id.clone(),
            span: Span { off, len: len as u32 },
            body_rel: body_rel as u32,
            live: false,
            intact: true,
            cold: None,
        });
        self.pending.insert(id.clone());
    }

    /// Whether durable material for `id` is in this segment.
    pub(crate) fn has_material(&self, id: &MaterialId) -> bool {
        self.keys
            .get(&id.key_id)
            .is_some_and(|e| e.materials.iter().any(|m| m.intact && m.version == id.version_id))
    }

    /// Notes a key record appended at `off`, and which material it keeps live.
    pub(crate) fn note_key(&mut self, rec: &KeyRecord, off: u64, len: usize) {
        let entry = self.keys.entry(rec.key_id.clone()).or_default();
        entry.spec = Some(rec.key_spec);
        if let Some(old) = entry.record.replace(Span { off, len: len as u32 }) {
            self.live -= u64::from(old.len);
        }
        self.live += len as u64;
        // For each version the record names, the last intact copy of its material is the live one.
        let n = entry.materials.len();
        for i in 0..n {
            let m = &entry.materials[i];
            let named = !rec.purged
                && m.intact
                && rec.versions.iter().any(|v| v.version_id == m.version)
                && !entry.materials[i + 1..]
                    .iter()
                    .any(|later| later.intact && later.version == m.version);
            let m = &mut entry.materials[i];
            if named != m.live {
                if named {
                    self.live += u64::from(m.span.len);
                } else {
                    self.live -= u64::from(m.span.len);
                }
                m.live = named;
            }
            if named {
                self.pending
                    .remove(&MaterialId::new(rec.key_id.clone(), m.version.clone()));
            }
        }
    }

    /// Notes an alias record (or, with `None`, an alias deletion) appended at `off`.
    pub(crate) fn note_alias(&mut self, name: &AliasName, span: Option<(u64, usize)>) {
        let new = span.map(|(off, len)| Span { off, len: len as u32 });
        let old = match new {
            Some(s) => self.aliases.insert(name.clone(), s),
            None => self.aliases.remove(name),
        };
        if let Some(old) = old {
            self.live -= u64::from(old.len);
        }
        if let Some(s) = new {
            self.live += u64::from(s.len);
        }
    }

    /// Overwrites every material record of `key` with zeros and fsyncs. Idempotent.
    pub(crate) fn wipe_key(&mut self, key: &KeyId) -> Result<()> {
        let Some(entry) = self.keys.get_mut(key) else {
            return Ok(());
        };
        if entry.materials.is_empty() {
            return Ok(());
        }
        for m in &mut entry.materials {
            m.cold = None;
        }
        let zeros = [0u8; 256];
        for m in &entry.materials {
            let start = m.span.off + u64::from(m.body_rel);
            let mut at = start;
            while at < m.span.end() {
                let n = (m.span.end() - at).min(zeros.len() as u64) as usize;
                self.file.write_all_at(&zeros[..n], at).map_err(|e| {
                    Error::io(
                        format!("cannot overwrite key material in {}", self.path.display()),
                        e,
                    )
                })?;
                at += n as u64;
            }
        }
        self.file.sync_data().map_err(|e| {
            Error::io(
                format!("cannot sync {} after overwriting material", self.path.display()),
                e,
            )
        })?;
        for m in entry.materials.drain(..) {
            if m.live {
                self.live -= u64::from(m.span.len);
            }
            self.pending.remove(&MaterialId::new(key.clone(), m.version));
        }
        if entry.record.is_none() {
            self.keys.remove(key);
        }
        Ok(())
    }

    /// Takes the cold (read at open, not yet used) material of `id`, with its key's spec.
    pub(crate) fn take_cold(&mut self, id: &MaterialId) -> Option<(KeySpec, SecretBytes)> {
        let entry = self.keys.get_mut(&id.key_id)?;
        let spec = entry.spec?;
        let m = entry
            .materials
            .iter_mut()
            .rev()
            .find(|m| m.live && m.version == id.version_id)?;
        let cold = m.cold.take()?;
        Some((spec, SecretBytes::from(cold.0)))
    }

    /// Whether automatic compaction is due.
    pub(crate) fn compaction_due(&self) -> bool {
        let dead = self.len.saturating_sub(self.live);
        self.tuning.auto_compact
            && !self.damaged
            && self.broken.is_none()
            && dead > self.live.max(self.tuning.compact_min_bytes)
    }

    /// Copies every live record into a new segment, switches to it, and returns the old segment's path
    /// (for the caller to wipe and remove once the lock is released).
    pub(crate) fn compact(&mut self, crypt: &Crypt) -> Result<PathBuf> {
        self.check_writable()?;
        let generation = self.generation + 1;
        let old = Arc::clone(&self.file);
        let pending = &self.pending;
        let mut new_keys: HashMap<KeyId, KeyEntry> = HashMap::with_capacity(self.keys.len());
        let mut new_aliases: HashMap<AliasName, Span> = HashMap::with_capacity(self.aliases.len());
        let keys = &self.keys;
        let aliases = &self.aliases;
        let new_path = write_segment(&self.dir, generation, crypt, |w, off| {
            let mut buf = Vec::new();
            let mut copy = |span: Span, w: &mut BufWriter<&File>, off: &mut u64| -> io::Result<Span> {
                buf.resize(span.len as usize, 0);
                old.read_exact_at(&mut buf, span.off)?;
                w.write_all(&buf)?;
                let s = Span {
                    off: *off,
                    len: span.len,
                };
                *off += u64::from(span.len);
                Ok(s)
            };
            for (id, entry) in keys {
                let mut ne = KeyEntry {
                    spec: entry.spec,
                    ..KeyEntry::default()
                };
                for m in &entry.materials {
                    let keep = m.intact
                        && (m.live || pending.contains(&MaterialId::new(id.clone(), m.version.clone())));
                    if keep {
                        ne.materials.push(MatEntry {
                            version: m.version.clone(),
                            span: copy(m.span, w, off)?,
                            body_rel: m.body_rel,
                            live: m.live,
                            intact: true,
                            cold: m.cold.as_ref().map(|c| Cold(c.0.clone())),
                        });
                    }
                }
                if let Some(r) = entry.record {
                    ne.record = Some(copy(r, w, off)?);
                }
                if ne.record.is_some() || !ne.materials.is_empty() {
                    new_keys.insert(id.clone(), ne);
                }
            }
            for (name, span) in aliases {
                new_aliases.insert(name.clone(), copy(*span, w, off)?);
            }
            Ok(())
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&new_path)
            .map_err(|e| Error::io(format!("cannot open {}", new_path.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot stat {}", new_path.display()), e))?
            .len();
        let old_path = std::mem::replace(&mut self.path, new_path);
        self.file = Arc::new(file);
        self.generation = generation;
        self.len = len;
        self.keys = new_keys;
        self.aliases = new_aliases;
        self.damaged = false;
        self.live = len
            - self
                .keys
                .values()
                .flat_map(|e| e.materials.iter())
                .filter(|m| !m.live)
                .map(|m| u64::from(m.span.len))
                .sum::<u64>();
        Ok(old_path)
    }

    /// Re-reads every live key and alias record (for a second [`KeyStore::load`](kmskit_core::KeyStore::load)).
    pub(crate) fn reread(&self, crypt: &Crypt) -> (Vec<KeyRecord>, Vec<AliasRecord>, Vec<Error>) {
        let mut keys = Vec::new();
        let mut aliases = Vec::new();
        let mut problems = Vec::new();
        let bad = |name: String| Error::Corrupted {
            path: self.path.display().to_string(),
            record: name,
            reason: "no longer readable".to_owned(),
        };
        for (id, e) in &self.keys {
            if let Some(span) = e.record {
                match read_record(&self.file, span, crypt)
                    .and_then(|(_, _, p)| serde_json::from_slice::<KeyRecord>(&p).ok())
                {
                    Some(r) => keys.push(r),
                    None => problems.push(bad(id.to_string())),
                }
            }
        }
        for (name, span) in &self.aliases {
            match read_record(&self.file, *span, crypt)
                .and_then(|(_, _, p)| serde_json::from_slice::<AliasRecord>(&p).ok())
            {
                Some(a) => aliases.push(a),
                None => problems.push(bad(name.to_string())),
            }
        }
        (keys, aliases, problems)
    }
}
