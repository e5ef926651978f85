//! The audit trail: an [`AuditEvent`] per API call (allowed, denied or failed) and per state change the
//! engine makes by itself, hash-chained with SHA-256 and handed to sinks.
//!
//! An event carries time, action, principal, source address, request id, key and version ids, the
//! outcome and its code, and the *names* of the encryption-context keys — never plaintext, key material
//! or context values. Each event's `Hash` is SHA-256 over a length-prefixed encoding of its fields and
//! the previous event's hash (`PrevHash`), and `Seq` counts from 1, so [`verify`] catches a deleted,
//! inserted, edited or reordered event and names the first bad one. Retention trims whole old segments
//! and keeps an *anchor* (the last trimmed event's sequence number and hash), so what remains still
//! verifies as complete and unedited. The chain is not keyed: someone who can rewrite every later line
//! can forge a consistent chain, so pin [`AuditLog::head`] somewhere else when that matters.
//!
//! Sinks: [`MemorySink`] (a bounded ring), [`FileSink`] (append-only JSON lines in daily segments with
//! group commit: one fsync per batch) and, with feature `tracing`, [`TracingSink`].
//!
//! An audited call borrows its event's fields, encodes them once (the hash input) and hashes that; a
//! sink gets the [`Chained`] event and either takes the encoding as is (the file sink: its writer thread
//! decodes it and writes the JSON line) or an owned [`AuditEvent`] built once for all sinks that want
//! one. So with the file sink an audited call allocates nothing for its event.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::{Deserialize, Serialize};

use crate::clock::{DAY, Timestamp};
use crate::error::{Error, Result};

mod encode;
mod file;
pub use encode::Chained;
pub(crate) use encode::{EventRef, Keys};
pub use file::{FileSink, FileSinkOptions};

/// The principal the engine's own state changes (purges, scheduled rotations) are audited under.
pub const SCHEDULER_PRINCIPAL: &str = "kmskit:scheduler";

/// The default retention: 180 days.
pub const DEFAULT_RETENTION_DAYS: u64 = 180;

/// How a call ended.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// Authorized and succeeded.
    Success,
    /// Refused by policy (or dual control: self-approval).
    Denied,
    /// Authorized but failed (the code says why).
    Failed,
    /// Held for a second principal's approval (dual control).
    PendingApproval,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "Success",
            Outcome::Denied => "Denied",
            Outcome::Failed => "Failed",
            Outcome::PendingApproval => "PendingApproval",
        }
    }
}

/// One audit event, as stored (one JSON line in a file).
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
pub struct AuditEvent {
    /// Position in the chain, from 1.
    pub seq: u64,
    /// When it happened.
    pub time: Timestamp,
    /// The API action (`Encrypt`, …) or engine action (`PurgeKey`).
    pub action: Cow<'static, str>,
    /// Who called (`kmskit:scheduler` for the engine's own changes).
    pub principal: String,
    /// Where the call came from.
    pub source_ip: Option<IpAddr>,
    /// The caller's request id.
    pub request_id: String,
    /// The key acted on (the real id), when there is one.
    pub key_id: Option<String>,
    /// The key version used, when there is one.
    pub key_version_id: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// `OK` or the error code.
    pub code: Cow<'static, str>,
    /// The names of the encryption-context entries (never their values).
    pub context_keys: Vec<String>,
    /// Extra facts without secrets (an approval id, who approved, an alias name).
    pub detail: Option<String>,
    /// The previous event's hash (hex in JSON).
    #[serde(with = "hex32")]
    pub prev_hash: [u8; 32],
    /// This event's hash (hex in JSON).
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

/// An event before it is chained: what the engine fills in.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NewEvent {
    /// When.
    pub time: Option<Timestamp>,
    /// The action.
    pub action: &'static str,
    /// Who.
    pub principal: String,
    /// From where.
    pub source_ip: Option<IpAddr>,
    /// Request id.
    pub request_id: String,
    /// Key id.
    pub key_id: Option<String>,
    /// Version id.
    pub key_version_id: Option<String>,
    /// Outcome (default `Success`).
    pub outcome: Option<Outcome>,
    /// `OK` or the error code.
    pub code: &'static str,
    /// Context key names.
    pub context_keys: Vec<String>,
    /// Detail.
    pub detail: Option<String>,
}

/// A position in the chain: a sequence number and the hash of that event.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainLink {
    /// The sequence number.
    pub seq: u64,
    /// Its hash.
    #[serde(with = "hex32")]
    pub hash: [u8; 32],
}

impl fmt::Debug for ChainLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ChainLink({}, {})", self.seq, hex(&self.hash))
    }
}

impl ChainLink {
    /// Before the first event: sequence 0, hash all zeros.
    pub const GENESIS: ChainLink = ChainLink {
        seq: 0,
        hash: [0; 32],
    };
}

mod hex32 {
    use serde::{Deserialize, Deserializer, Serializer};
    pub(super) fn serialize<S: Serializer>(h: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::hex(h))
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
        let s = String::deserialize(d)?;
        super::unhex32(&s).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

pub(crate) fn hex(b: &[u8]) -> String {
    const D: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        s.push(D[(x >> 4) as usize] as char);
        s.push(D[(x & 15) as usize] as char);
    }
    s
}

pub(crate) fn unhex32(s: &str) -> Option<[u8; 32]> {
    let b = s.as_bytes();
    if b.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        let v = |c: u8| match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        };
        *o = (v(b[2 * i])? << 4) | v(b[2 * i + 1])?;
    }
    Some(out)
}

impl AuditEvent {
    /// The hash of this event's fields chained to `prev` (what `hash` must hold).
    pub fn compute_hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut b = encode::Buf::new();
        encode::encode(&mut b, prev, self.seq, &EventRef::of(self));
        encode::hash(b.as_slice())
    }

    /// The event as one JSON line (without the newline).
    pub fn to_json_line(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    fn link(&self) -> ChainLink {
        ChainLink {
            seq: self.seq,
            hash: self.hash,
        }
    }
}

/// Where a stored event sits (for error messages): a file and line, or a ring position.
pub type Location = String;

/// What a sink holds, for lookup and verification.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct Records {
    /// The last event trimmed by retention (the chain continues from it), if any was.
    pub anchor: Option<ChainLink>,
    /// Each stored event in order, or why its line could not be read.
    pub events: Vec<(Location, std::result::Result<AuditEvent, String>)>,
}

/// The first bad event [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChainBreak {
    /// Where it is.
    pub location: Location,
    /// Its sequence number, when readable.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.seq {
            Some(s) => write!(
                f,
                "audit chain broken at {} (event {s}): {}",
                self.location, self.reason
            ),
            None => write!(f, "audit chain broken at {}: {}", self.location, self.reason),
        }
    }
}

/// What [`verify`] proved.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Events checked.
    pub events: u64,
    /// The first and last sequence numbers checked.
    pub range: Option<(u64, u64)>,
    /// The last link (pin it elsewhere to also detect truncation of the tail).
    pub head: ChainLink,
}

/// Checks a chain: every line parses, sequence numbers follow on from the anchor without gaps, each
/// `PrevHash` is the previous `Hash`, and each `Hash` is right.
///
/// # Errors
/// The first bad event.
pub fn verify(records: &Records) -> std::result::Result<VerifyReport, ChainBreak> {
    let mut prev = records.anchor.unwrap_or(ChainLink::GENESIS);
    let mut first = None;
    let mut n = 0u64;
    for (loc, ev) in &records.events {
        let brk = |seq: Option<u64>, reason: String| ChainBreak {
            location: loc.clone(),
            seq,
            reason,
        };
        let ev = ev
            .as_ref()
            .map_err(|e| brk(None, format!("unreadable event: {e}")))?;
        let expect = prev.seq + 1;
        if ev.seq != expect {
            let reason = if ev.seq > expect {
                format!(
                    "expected event {expect}: events {expect}..{} are missing",
                    ev.seq - 1
                )
            } else {
                format!(
                    "expected event {expect}: event {} is out of place (inserted or reordered)",
                    ev.seq
                )
            };
            return Err(brk(Some(ev.seq), reason));
        }
        if ev.prev_hash != prev.hash {
            return Err(brk(
                Some(ev.seq),
                "PrevHash does not match the previous event (an event before it was changed or replaced)"
                    .into(),
            ));
        }
        let h = ev.compute_hash(&prev.hash);
        if ev.hash != h {
            return Err(brk(
                Some(ev.seq),
                "Hash does not match the event's fields (edited)".into(),
            ));
        }
        first.get_or_insert(ev.seq);
        prev = ChainLink { seq: ev.seq, hash: h };
        n += 1;
    }
    Ok(VerifyReport {
        events: n,
        range: first.map(|f| (f, prev.seq)),
        head: prev,
    })
}

/// Where events go. [`append_chained`](Self::append_chained) (by default: `append`) is called in
/// chain order under the log's lock, so it must be quick.
pub trait AuditSink: Send + Sync + fmt::Debug {
    /// Takes one chained event.
    ///
    /// # Errors
    /// When the sink has failed (a file sink whose writes fail): the engine then refuses calls.
    fn append(&self, event: &Arc<AuditEvent>) -> Result<()>;

    /// Takes one chained event as [`AuditLog`] produces it (called instead of
    /// [`append`](Self::append)). The default hands [`Chained::to_event`] to `append`; a sink that
    /// needs only the event's encoding overrides it and spares the call building an owned event (the
    /// file sink copies the encoding to its writer thread).
    ///
    /// # Errors
    /// As [`append`](Self::append).
    fn append_chained(&self, event: &Chained<'_>) -> Result<()> {
        self.append(&event.to_event())
    }

    /// Waits until every event up to `seq` is durable (default: at once).
    ///
    /// # Errors
    /// When writing failed.
    fn sync_to(&self, _seq: u64) -> Result<()> {
        Ok(())
    }

    /// The last event the sink already holds (so a reopened log continues the chain).
    ///
    /// # Errors
    /// When the stored events cannot be read.
    fn head(&self) -> Result<Option<ChainLink>> {
        Ok(None)
    }

    /// The events held, for lookup and verification; `None` for write-only sinks.
    fn records(&self) -> Option<Result<Records>> {
        None
    }

    /// Drops events older than `before` (whole segments), keeping an anchor. Returns how many went.
    ///
    /// # Errors
    /// Storage errors.
    fn trim(&self, _before: Timestamp) -> Result<u64> {
        Ok(0)
    }
}

/// A bounded in-memory ring of events. When full, the oldest event becomes the anchor.
#[derive(Debug)]
pub struct MemorySink {
    capacity: usize,
    inner: Mutex<Ring>,
}

#[derive(Debug, Default)]
struct Ring {
    events: VecDeque<Arc<AuditEvent>>,
    anchor: Option<ChainLink>,
}

impl MemorySink {
    /// A ring holding at most `capacity` events (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            inner: Mutex::new(Ring::default()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Ring> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The events held, oldest first.
    pub fn events(&self) -> Vec<Arc<AuditEvent>> {
        self.lock().events.iter().cloned().collect()
    }
}

impl AuditSink for MemorySink {
    fn append(&self, event: &Arc<AuditEvent>) -> Result<()> {
        let mut r = self.lock();
        if r.events.is_empty() && r.anchor.is_none() && event.seq > 1 {
            // Joined a chain already under way.
            r.anchor = Some(ChainLink {
                seq: event.seq - 1,
                hash: event.prev_hash,
            });
        }
        if r.events.len() == self.capacity {
            if let Some(old) = r.events.pop_front() {
                r.anchor = Some(old.link());
            }
        }
        r.events.push_back(event.clone());
        Ok(())
    }

    fn head(&self) -> Result<Option<ChainLink>> {
        let r = self.lock();
        Ok(r.events.back().map(|e| e.link()).or(r.anchor))
    }

    fn records(&self) -> Option<Result<Records>> {
        let r = self.lock();
        Some(Ok(Records {
            anchor: r.anchor,
            events: r
                .events
                .iter()
                .enumerate()
                .map(|(i, e)| (format!("memory[{i}]"), Ok((**e).clone())))
                .collect(),
        }))
    }

    fn trim(&self, before: Timestamp) -> Result<u64> {
        let mut r = self.lock();
        let mut n = 0;
        while r.events.len() > 1 && r.events.front().is_some_and(|e| e.time < before) {
            if let Some(old) = r.events.pop_front() {
                r.anchor = Some(old.link());
                n += 1;
            }
        }
        Ok(n)
    }
}

/// Sends each event to `tracing` (target `kmskit::audit`, level INFO) as structured fields.
#[cfg(feature = "tracing")]
#[derive(Debug, Default, Clone, Copy)]
pub struct TracingSink;

#[cfg(feature = "tracing")]
impl AuditSink for TracingSink {
    fn append(&self, e: &Arc<AuditEvent>) -> Result<()> {
        tracing::info!(
            target: "kmskit::audit",
            seq = e.seq,
            time = %e.time,
            action = %e.action,
            principal = %e.principal,
            source_ip = ?e.source_ip,
            request_id = %e.request_id,
            key_id = e.key_id.as_deref().unwrap_or(""),
            key_version_id = e.key_version_id.as_deref().unwrap_or(""),
            outcome = e.outcome.as_str(),
            code = %e.code,
            context_keys = ?e.context_keys,
            hash = %hex(&e.hash),
            "kms audit event"
        );
        Ok(())
    }
}

/// Whether events wait for their sink's fsync before the call returns.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// The call returns once its event is queued; the file sink makes it durable with the next group
    /// commit (bounded by one write and fsync of the batch in progress plus its own).
    #[default]
    GroupCommit,
    /// The call returns only after its event is durable (still one fsync per batch across callers).
    Sync,
}

/// A filter for [`AuditLog::lookup`]. Empty fields match everything.
#[non_exhaustive]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Action names (any of).
    pub actions: Vec<String>,
    /// From this time (inclusive).
    pub from: Option<Timestamp>,
    /// Until this time (inclusive).
    pub to: Option<Timestamp>,
    /// Key id.
    pub key_id: Option<String>,
    /// Principal.
    pub principal: Option<String>,
    /// At most this many (the newest), when set.
    pub limit: Option<usize>,
}

impl AuditQuery {
    /// Matches everything.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only these actions.
    #[must_use]
    pub fn actions<I: IntoIterator<Item = S>, S: Into<String>>(mut self, actions: I) -> Self {
        self.actions = actions.into_iter().map(Into::into).collect();
        self
    }

    /// Only events in `[from, to]`.
    #[must_use]
    pub fn between(mut self, from: Timestamp, to: Timestamp) -> Self {
        self.from = Some(from);
        self.to = Some(to);
        self
    }

    /// Only events on this key.
    #[must_use]
    pub fn key(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = Some(key_id.into());
        self
    }

    /// Only events by this principal.
    #[must_use]
    pub fn principal(mut self, principal: impl Into<String>) -> Self {
        self.principal = Some(principal.into());
        self
    }

    /// At most `n` events (the newest).
    #[must_use]
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = Some(n);
        self
    }

    /// Whether `e` matches.
    pub fn matches(&self, e: &AuditEvent) -> bool {
        (self.actions.is_empty() || self.actions.iter().any(|a| a.eq_ignore_ascii_case(&e.action)))
            && self.from.is_none_or(|f| e.time >= f)
            && self.to.is_none_or(|t| e.time <= t)
            && self.key_id.as_ref().is_none_or(|k| e.key_id.as_ref() == Some(k))
            && self.principal.as_ref().is_none_or(|p| &e.principal == p)
    }
}

/// The audit log: chains events and hands them to its sinks.
pub struct AuditLog {
    head: Mutex<ChainLink>,
    /// The UTC day retention last ran for (it runs by itself once a day, on the first event of the day).
    retention_day: std::sync::atomic::AtomicU64,
    sinks: Vec<Arc<dyn AuditSink>>,
    durability: Durability,
    retention_secs: u64,
}

impl fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditLog")
            .field("head", &self.head())
            .field("sinks", &self.sinks)
            .field("durability", &self.durability)
            .field("retention_secs", &self.retention_secs)
            .finish()
    }
}

impl AuditLog {
    /// A log over `sinks` with group commit and 180-day retention. The chain continues from the
    /// furthest head any sink already holds.
    ///
    /// # Errors
    /// When a sink's stored events cannot be read.
    pub fn new(sinks: Vec<Arc<dyn AuditSink>>) -> Result<Self> {
        let mut head = ChainLink::GENESIS;
        for s in &sinks {
            if let Some(h) = s.head()? {
                if h.seq > head.seq {
                    head = h;
                }
            }
        }
        Ok(Self {
            head: Mutex::new(head),
            retention_day: Default::default(),
            sinks,
            durability: Durability::default(),
            retention_secs: DEFAULT_RETENTION_DAYS * DAY,
        })
    }

    /// A log with one [`MemorySink`] of `capacity` events.
    pub fn memory(capacity: usize) -> Self {
        Self {
            head: Mutex::new(ChainLink::GENESIS),
            retention_day: Default::default(),
            sinks: vec![Arc::new(MemorySink::new(capacity))],
            durability: Durability::default(),
            retention_secs: DEFAULT_RETENTION_DAYS * DAY,
        }
    }

    /// Sets the durability.
    #[must_use]
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }

    /// Sets the retention in days (at least 1).
    #[must_use]
    pub fn retention_days(mut self, days: u64) -> Self {
        self.retention_secs = days.max(1) * DAY;
        self
    }

    /// The sinks.
    pub fn sinks(&self) -> &[Arc<dyn AuditSink>] {
        &self.sinks
    }

    /// The last event's link.
    pub fn head(&self) -> ChainLink {
        *self
            .head
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Chains and records an event; returns its sequence number.
    ///
    /// # Errors
    /// When a sink fails (the event is still chained; the other sinks have it).
    pub fn record(&self, ev: NewEvent, now: Timestamp) -> Result<u64> {
        self.record_ref(
            &EventRef {
                time: ev.time.unwrap_or(now),
                action: ev.action,
                principal: &ev.principal,
                source_ip: ev.source_ip,
                request_id: &ev.request_id,
                key_id: ev.key_id.as_deref(),
                key_version_id: ev.key_version_id.as_deref(),
                outcome: ev.outcome.unwrap_or(Outcome::Success),
                code: ev.code,
                context_keys: Keys::List(&ev.context_keys),
                detail: ev.detail.as_deref(),
            },
            now,
        )
    }

    /// [`record`](Self::record) of an event borrowed from the call: chaining it allocates nothing, and
    /// sinks that take the encoding (the file sink) never build an owned event.
    pub(crate) fn record_ref(&self, ev: &EventRef<'_>, now: Timestamp) -> Result<u64> {
        let mut first_err = None;
        let mut buf = encode::Buf::new();
        let seq = {
            let mut head = self
                .head
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let seq = head.seq + 1;
            encode::encode(&mut buf, &head.hash, seq, ev);
            let h = encode::hash(buf.as_slice());
            let chained = Chained {
                seq,
                prev_hash: head.hash,
                hash: h,
                encoded: buf.as_slice(),
                fields: ev,
                owned: std::sync::OnceLock::new(),
            };
            *head = ChainLink { seq, hash: h };
            for s in &self.sinks {
                if let Err(e) = s.append_chained(&chained) {
                    first_err.get_or_insert(e);
                }
            }
            seq
        };
        // Retention runs by itself with the first event of each UTC day.
        let day = now.unix() / DAY;
        let last = self.retention_day.load(std::sync::atomic::Ordering::Relaxed);
        if day > last && self.retention_day.swap(day, std::sync::atomic::Ordering::Relaxed) < day {
            if let Err(e) = self.apply_retention(now) {
                first_err.get_or_insert(e);
            }
        }
        if self.durability == Durability::Sync {
            for s in &self.sinks {
                if let Err(e) = s.sync_to(seq) {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(seq),
        }
    }

    /// Waits until every event recorded so far is durable in every sink.
    ///
    /// # Errors
    /// When a sink failed to write.
    pub fn flush(&self) -> Result<()> {
        let seq = self.head().seq;
        for s in &self.sinks {
            s.sync_to(seq)?;
        }
        Ok(())
    }

    fn readable(&self) -> Result<Records> {
        self.flush()?;
        for s in &self.sinks {
            if let Some(r) = s.records() {
                return r;
            }
        }
        Err(Error::Unsupported("no audit sink can be read back".into()))
    }

    /// Events matching `q`, oldest first, from the first readable sink.
    ///
    /// # Errors
    /// When no sink can be read back, or reading fails.
    pub fn lookup(&self, q: &AuditQuery) -> Result<Vec<AuditEvent>> {
        let mut out: Vec<AuditEvent> = self
            .readable()?
            .events
            .into_iter()
            .filter_map(|(_, e)| e.ok())
            .filter(|e| q.matches(e))
            .collect();
        if let Some(n) = q.limit {
            let skip = out.len().saturating_sub(n);
            out.drain(..skip);
        }
        Ok(out)
    }

    /// Verifies every readable sink's chain.
    ///
    /// # Errors
    /// `Ok(Err(break))` names the first bad event; `Err` when reading fails.
    pub fn verify(&self) -> Result<std::result::Result<VerifyReport, ChainBreak>> {
        self.flush()?;
        let mut last = None;
        for s in &self.sinks {
            if let Some(r) = s.records() {
                match verify(&r?) {
                    Ok(rep) => last = Some(rep),
                    Err(b) => return Ok(Err(b)),
                }
            }
        }
        last.map(Ok)
            .ok_or_else(|| Error::Unsupported("no audit sink can be read back".into()))
    }

    /// Applies retention at `now`: drops what is older than the retention period. [`AuditLog::record`]
    /// also does this by itself once per UTC day.
    ///
    /// # Errors
    /// Storage errors.
    pub fn apply_retention(&self, now: Timestamp) -> Result<u64> {
        let before = Timestamp::from_unix(now.unix().saturating_sub(self.retention_secs));
        let mut n = 0;
        for s in &self.sinks {
            n += s.trim(before)?;
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    /// The chain hash as field-by-field SHA-256 updates: what `compute_hash`'s buffered input must equal.
    fn reference_hash(e: &AuditEvent, prev: &[u8; 32]) -> [u8; 32] {
        let mut h = Sha256::new();
        let put = |h: &mut Sha256, f: &[u8]| {
            h.update((f.len() as u32).to_be_bytes());
            h.update(f);
        };
        let put_opt = |h: &mut Sha256, f: Option<&str>| match f {
            None => h.update([0]),
            Some(s) => {
                h.update([1]);
                put(h, s.as_bytes());
            }
        };
        h.update(b"kmskit-audit-v1\0");
        h.update(prev);
        h.update(e.seq.to_be_bytes());
        h.update(e.time.unix().to_be_bytes());
        put(&mut h, e.action.as_bytes());
        put(&mut h, e.principal.as_bytes());
        match e.source_ip {
            None => h.update([0]),
            Some(IpAddr::V4(a)) => {
                h.update([4]);
                h.update(a.octets());
            }
            Some(IpAddr::V6(a)) => {
                h.update([6]);
                h.update(a.octets());
            }
        }
        put(&mut h, e.request_id.as_bytes());
        put_opt(&mut h, e.key_id.as_deref());
        put_opt(&mut h, e.key_version_id.as_deref());
        put(&mut h, e.outcome.as_str().as_bytes());
        put(&mut h, e.code.as_bytes());
        h.update((e.context_keys.len() as u32).to_be_bytes());
        for k in &e.context_keys {
            put(&mut h, k.as_bytes());
        }
        put_opt(&mut h, e.detail.as_deref());
        h.finalize().into()
    }

    #[test]
    fn chain_hash_matches_field_by_field_hashing_at_every_length() {
        // Field lengths that put the buffer's refills at every offset, across several refills.
        for n in (0..1200).step_by(7) {
            let e = AuditEvent {
                seq: n as u64,
                time: Timestamp::from_unix(1_780_000_000 + n as u64),
                action: Cow::Borrowed("Encrypt"),
                principal: "p".repeat(n % 300),
                source_ip: (n % 2 == 0).then(|| "2001:db8::1".parse().expect("ip")),
                request_id: "r".repeat(n / 3),
                key_id: Some("k".repeat(n % 97)),
                key_version_id: (n % 3 == 0).then(|| "v".repeat(n % 41)),
                outcome: Outcome::Failed,
                code: Cow::Borrowed("Rejected.Denied"),
                context_keys: (0..n % 5)
                    .map(|i| format!("key{i}-{}", "x".repeat(n % 130)))
                    .collect(),
                detail: (n % 4 == 1).then(|| "d".repeat(n)),
                prev_hash: [0; 32],
                hash: [0; 32],
            };
            let prev = [n as u8; 32];
            assert_eq!(
                e.compute_hash(&prev),
                reference_hash(&e, &prev),
                "field length {n}"
            );
        }
    }

    /// The chain hash is a stored format: a fixed event hashes to the value every kmskit version computed,
    /// so trails written by older versions keep verifying.
    #[test]
    fn chain_hash_is_pinned() {
        let mut e = AuditEvent {
            seq: 42,
            time: Timestamp::from_unix(1_780_000_000),
            action: Cow::Borrowed("Encrypt"),
            principal: "app".into(),
            source_ip: Some("10.1.2.3".parse().expect("ip")),
            request_id: "req-1".into(),
            key_id: Some("k-1".into()),
            key_version_id: Some("v-1".into()),
            outcome: Outcome::Success,
            code: Cow::Borrowed("OK"),
            context_keys: vec!["table".into(), "tenant".into()],
            detail: None,
            prev_hash: [7; 32],
            hash: [0; 32],
        };
        let h1 = hex(&e.compute_hash(&[7; 32]));
        e.source_ip = Some("2001:db8::1".parse().expect("ip"));
        e.key_version_id = None;
        e.detail = Some("approved by bob".into());
        e.context_keys.clear();
        let h2 = hex(&e.compute_hash(&[9; 32]));
        assert_eq!(
            (h1.as_str(), h2.as_str()),
            (
                "e8f452045c8d491358ff0c238a4434a1329850ca107366548589f5e9166f56be",
                "e1c1dc9d92e75c9af9dc5e307a8e730dceaae423811b1c92444394e6c0577722"
            )
        );
    }
}
