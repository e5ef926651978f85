//! [`FileSink`]: append-only JSON lines in segment files, written by one thread with group commit.
//!
//! Layout of the directory: `audit-<first seq, 20 digits>.jsonl` segments (a new one each UTC day and
//! when a segment reaches its event limit) and `anchor.json`, the last event trimmed by retention.
//! The writer thread takes every queued event, writes them and calls `fsync` once for the batch, at most
//! once per [`FileSinkOptions::commit_interval`] (2 ms by default), so under load many events share one
//! fsync and an event waits at most for the interval, the batch in progress and its own. A line left
//! half-written by a crash is cut off when the directory is reopened (it was never reported durable).
//!
//! An appending call only copies the event's `kmskit-audit-v1` encoding and hash into the queue (one
//! reused buffer, no allocation); the writer thread decodes it and writes the JSON line, so the
//! formatting runs beside the caller, and memory is never freed on a thread other than the one that
//! allocated it (which makes the allocator's locks bounce between threads).

use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::{AuditEvent, AuditSink, ChainLink, Chained, EventRef, Records, encode};
use crate::clock::{DAY, Timestamp};
use crate::error::{Error, Result};

const ANCHOR: &str = "anchor.json";

/// Events queued for the writer at most; appends wait beyond this.
const MAX_PENDING: usize = 65_536;

/// Bytes of queue buffer kept between batches (a burst's larger buffer is given back).
const SPARE_KEEP: usize = 1 << 20;

/// Settings of a [`FileSink`].
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileSinkOptions {
    /// Start a new segment after this many events (default 1,000,000).
    pub segment_events: u64,
    /// Start a new segment when the UTC day changes (default true), so retention trims by day.
    pub daily_segments: bool,
    /// Call fsync after each batch (default true; false only for tests and benchmarks of the rest).
    pub fsync: bool,
    /// The shortest time between two group commits (default 2 ms). Events arriving meanwhile join the
    /// next batch, so a busy trail costs at most one write + fsync per interval instead of one per
    /// handful of events, and an event still becomes durable within the interval plus one commit.
    pub commit_interval: std::time::Duration,
}

impl Default for FileSinkOptions {
    fn default() -> Self {
        Self {
            segment_events: 1_000_000,
            daily_segments: true,
            fsync: true,
            commit_interval: std::time::Duration::from_millis(2),
        }
    }
}

impl FileSinkOptions {
    /// Sets the events per segment (at least 1).
    #[must_use]
    pub fn segment_events(mut self, n: u64) -> Self {
        self.segment_events = n.max(1);
        self
    }

    /// Sets whether batches are fsynced.
    #[must_use]
    pub fn fsync(mut self, on: bool) -> Self {
        self.fsync = on;
        self
    }

    /// Sets the shortest time between two group commits (zero: commit as soon as events arrive).
    #[must_use]
    pub fn commit_interval(mut self, d: std::time::Duration) -> Self {
        self.commit_interval = d;
        self
    }
}

/// Queued events: each one's encoding followed by its hash, back to back in `bytes`.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Per event: sequence number, UTC day, end offset in `bytes`.
    events: Vec<(u64, u64, usize)>,
}

impl Batch {
    fn push(&mut self, seq: u64, time: Timestamp, encoded: &[u8], hash: &[u8; 32]) {
        self.bytes.extend_from_slice(encoded);
        self.bytes.extend_from_slice(hash);
        self.events.push((seq, time.unix() / DAY, self.bytes.len()));
    }

    fn clear(&mut self) {
        self.bytes.clear();
        self.events.clear();
    }

    /// Each event: sequence number, day, encoding, hash.
    fn iter(&self) -> impl Iterator<Item = (u64, u64, &[u8], [u8; 32])> {
        let mut start = 0;
        self.events.iter().map(move |&(seq, day, end)| {
            let rec = &self.bytes[start..end];
            start = end;
            let (enc, h) = rec.split_at(rec.len() - 32);
            let mut hash = [0u8; 32];
            hash.copy_from_slice(h);
            (seq, day, enc, hash)
        })
    }
}

#[derive(Debug, Default)]
struct Queue {
    pending: Batch,
    /// An empty batch with capacity, swapped in when the writer takes `pending` (so neither side
    /// allocates once both have grown).
    spare: Batch,
    enqueued: u64,
    durable: u64,
    error: Option<String>,
    closed: bool,
    batches: u64,
    /// The writer is waiting for work (so an append must wake it).
    idle: bool,
}

#[derive(Debug)]
struct Shared {
    q: Mutex<Queue>,
    work: Condvar,
    done: Condvar,
    /// Held while segment files are created or deleted.
    dir_lock: Mutex<()>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.q.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The append-only JSON-lines file sink.
#[derive(Debug)]
pub struct FileSink {
    dir: PathBuf,
    shared: Arc<Shared>,
    head: Option<ChainLink>,
    thread: Option<JoinHandle<()>>,
}

fn io(ctx: String) -> impl FnOnce(std::io::Error) -> Error {
    move |e| Error::io(ctx, e)
}

fn segment_name(first_seq: u64) -> String {
    format!("audit-{first_seq:020}.jsonl")
}

/// The segment files of `dir`, in chain order.
fn segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io(format!("reading {}", dir.display())))? {
        let entry = entry.map_err(io(format!("reading {}", dir.display())))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(n) = name.strip_prefix("audit-").and_then(|s| s.strip_suffix(".jsonl")) {
            if let Ok(seq) = n.parse::<u64>() {
                out.push((seq, entry.path()));
            }
        }
    }
    out.sort();
    Ok(out)
}

fn read_anchor(dir: &Path) -> Result<Option<ChainLink>> {
    let p = dir.join(ANCHOR);
    match fs::read_to_string(&p) {
        Ok(s) => serde_json::from_str(&s).map(Some).map_err(|e| Error::Corrupted {
            path: p.display().to_string(),
            record: ANCHOR.into(),
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(format!("reading {}", p.display()), e)),
    }
}

fn write_atomic(dir: &Path, name: &str, data: &[u8]) -> Result<()> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let dst = dir.join(name);
    let mut f = File::create(&tmp).map_err(io(format!("creating {}", tmp.display())))?;
    f.write_all(data)
        .map_err(io(format!("writing {}", tmp.display())))?;
    f.sync_all().map_err(io(format!("syncing {}", tmp.display())))?;
    fs::rename(&tmp, &dst).map_err(io(format!("renaming to {}", dst.display())))?;
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing {}", dir.display())))
}

/// Complete lines of a segment (a final line without its newline is ignored: it was being written).
fn read_lines(path: &Path) -> Result<Vec<String>> {
    let mut s = String::new();
    File::open(path)
        .and_then(|mut f| f.read_to_string(&mut s))
        .map_err(io(format!("reading {}", path.display())))?;
    let complete = s.rfind('\n').map_or(0, |i| i + 1);
    Ok(s[..complete].lines().map(str::to_owned).collect())
}

struct Writer {
    dir: PathBuf,
    opts: FileSinkOptions,
    file: Option<File>,
    seg_events: u64,
    seg_day: u64,
}

impl Writer {
    fn write_batch(&mut self, batch: &Batch, shared: &Shared) -> Result<()> {
        // Every line of the batch goes into one buffer, written with one call (per segment).
        let mut buf = Vec::with_capacity(batch.events.len() * 480);
        for (seq, day, encoded, hash) in batch.iter() {
            let rotate = self.file.is_none()
                || self.seg_events >= self.opts.segment_events
                || (self.opts.daily_segments && day != self.seg_day);
            if rotate {
                self.flush_buf(&mut buf)?;
                self.open_segment(seq, day, shared)?;
            }
            let e = encode::decode(encoded, hash)?;
            serde_json::to_writer(&mut buf, &e)
                .map_err(|err| Error::Internal(format!("serialising audit event {seq}: {err}")))?;
            buf.push(b'\n');
            self.seg_events += 1;
        }
        self.flush_buf(&mut buf)?;
        if self.opts.fsync {
            if let Some(f) = &self.file {
                f.sync_data()
                    .map_err(io(format!("syncing {}", self.dir.display())))?;
            }
        }
        Ok(())
    }

    fn flush_buf(&mut self, buf: &mut Vec<u8>) -> Result<()> {
        if let (Some(f), false) = (&mut self.file, buf.is_empty()) {
            f.write_all(buf)
                .map_err(io(format!("appending to {}", self.dir.display())))?;
            buf.clear();
        }
        Ok(())
    }

    fn open_segment(&mut self, first_seq: u64, day: u64, shared: &Shared) -> Result<()> {
        if let Some(f) = self.file.take() {
            if self.opts.fsync {
                f.sync_data()
                    .map_err(io(format!("syncing {}", self.dir.display())))?;
            }
        }
        let _d = shared
            .dir_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let p = self.dir.join(segment_name(first_seq));
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .map_err(io(format!("creating {}", p.display())))?;
        if self.opts.fsync {
            sync_dir(&self.dir)?;
        }
        self.file = Some(f);
        self.seg_events = 0;
        self.seg_day = day;
        Ok(())
    }
}

fn run_writer(mut w: Writer, shared: Arc<Shared>) {
    let mut last_commit: Option<std::time::Instant> = None;
    loop {
        let mut batch = {
            let mut q = shared.lock();
            while q.pending.events.is_empty() && !q.closed {
                q.idle = true;
                q = shared
                    .work
                    .wait(q)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
            }
            q.idle = false;
            if q.pending.events.is_empty() {
                return;
            }
            // Group commit with a floor on the interval: let more events join this batch when the last
            // commit was recent (not while closing: shutdown flushes at once). Appenders do not wake
            // the writer meanwhile (it is not idle); `close` does.
            if let Some(since) = last_commit.map(|t| t.elapsed()) {
                if since < w.opts.commit_interval && !q.closed {
                    q = shared
                        .work
                        .wait_timeout(q, w.opts.commit_interval - since)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|p| p.into_inner().0);
                }
            }
            let spare = std::mem::take(&mut q.spare);
            std::mem::replace(&mut q.pending, spare)
        };
        let last = batch.events.last().map_or(0, |e| e.0);
        let r = if shared.lock().error.is_some() {
            Ok(())
        } else {
            w.write_batch(&batch, &shared)
        };
        last_commit = Some(std::time::Instant::now());
        batch.clear();
        // Keep the buffer for the next batch, but not the peak of a burst (up to MAX_PENDING events).
        if batch.bytes.capacity() > SPARE_KEEP {
            batch.bytes.shrink_to(SPARE_KEEP);
            batch.events.shrink_to(SPARE_KEEP / 256);
        }
        let mut q = shared.lock();
        q.spare = batch;
        match r {
            Ok(()) if q.error.is_none() => q.durable = last,
            Ok(()) => {}
            Err(e) => q.error = Some(e.to_string()),
        }
        q.batches += 1;
        shared.done.notify_all();
    }
}

impl FileSink {
    /// Opens (creating) the audit directory `dir` with default options.
    ///
    /// # Errors
    /// When the directory cannot be created or read, or its last event is unreadable.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self> {
        Self::with_options(dir, FileSinkOptions::default())
    }

    /// Opens (creating) the audit directory `dir`.
    ///
    /// # Errors
    /// When the directory cannot be created or read, or its last event is unreadable.
    pub fn with_options(dir: impl AsRef<Path>, opts: FileSinkOptions) -> Result<Self> {
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir).map_err(io(format!("creating {}", dir.display())))?;
        let segs = segments(&dir)?;
        let mut head = read_anchor(&dir)?;
        let mut writer = Writer {
            dir: dir.clone(),
            opts,
            file: None,
            seg_events: 0,
            seg_day: 0,
        };
        if let Some((_, last)) = segs.last() {
            // Cut a torn final line, then continue the chain from the last complete event.
            let mut f = OpenOptions::new()
                .read(true)
                .append(true)
                .open(last)
                .map_err(io(format!("opening {}", last.display())))?;
            let mut data = Vec::new();
            f.read_to_end(&mut data)
                .map_err(io(format!("reading {}", last.display())))?;
            let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if complete < data.len() {
                f.set_len(complete as u64)
                    .map_err(io(format!("truncating {}", last.display())))?;
                f.seek(SeekFrom::End(0))
                    .map_err(io(format!("seeking {}", last.display())))?;
            }
            let mut n = 0u64;
            let mut last_line = None;
            for line in BufReader::new(&data[..complete]).lines() {
                let line = line.map_err(io(format!("reading {}", last.display())))?;
                n += 1;
                last_line = Some(line);
            }
            if let Some(line) = last_line {
                let ev: AuditEvent = serde_json::from_str(&line).map_err(|e| Error::Corrupted {
                    path: last.display().to_string(),
                    record: format!("line {n}"),
                    reason: e.to_string(),
                })?;
                head = Some(ev.link());
                writer.seg_day = ev.time.unix() / DAY;
                writer.seg_events = n;
                writer.file = Some(f);
            }
        }
        let shared = Arc::new(Shared {
            q: Mutex::new(Queue {
                enqueued: head.map_or(0, |h| h.seq),
                durable: head.map_or(0, |h| h.seq),
                ..Queue::default()
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            dir_lock: Mutex::new(()),
        });
        let s2 = shared.clone();
        let thread = std::thread::Builder::new()
            .name("kmskit-audit".into())
            .spawn(move || run_writer(writer, s2))
            .map_err(io("starting the audit writer thread".into()))?;
        Ok(Self {
            dir,
            shared,
            head,
            thread: Some(thread),
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// How many batches (fsyncs) the writer has done.
    pub fn batches(&self) -> u64 {
        self.shared.lock().batches
    }

    /// The segment files, in order.
    ///
    /// # Errors
    /// When the directory cannot be read.
    pub fn segment_paths(&self) -> Result<Vec<PathBuf>> {
        Ok(segments(&self.dir)?.into_iter().map(|(_, p)| p).collect())
    }

    /// Reads an audit directory without opening it for writing (for `verify` of a copy).
    ///
    /// # Errors
    /// When the directory or a segment cannot be read.
    pub fn read_dir(dir: impl AsRef<Path>) -> Result<Records> {
        let dir = dir.as_ref();
        let mut events = Vec::new();
        for (_, p) in segments(dir)? {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("?").to_owned();
            for (i, line) in read_lines(&p)?.into_iter().enumerate() {
                let ev = serde_json::from_str::<AuditEvent>(&line).map_err(|e| e.to_string());
                events.push((format!("{name}:{}", i + 1), ev));
            }
        }
        Ok(Records {
            anchor: read_anchor(dir)?,
            events,
        })
    }
}

impl FileSink {
    fn enqueue(&self, seq: u64, time: Timestamp, encoded: &[u8], hash: &[u8; 32]) -> Result<()> {
        let mut q = self.shared.lock();
        if let Some(e) = &q.error {
            return Err(Error::Unavailable {
                message: format!("audit file sink failed: {e}"),
                retryable: false,
                source: None,
            });
        }
        // Backpressure: a writer far behind (a slow disk) holds callers back rather than memory growing.
        while q.pending.events.len() >= MAX_PENDING && q.error.is_none() {
            q = self
                .shared
                .done
                .wait(q)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        q.enqueued = seq;
        q.pending.push(seq, time, encoded, hash);
        // A busy writer picks the event up with its next batch; only an idle one needs waking.
        let wake = std::mem::take(&mut q.idle);
        drop(q);
        if wake {
            self.shared.work.notify_one();
        }
        Ok(())
    }
}

impl AuditSink for FileSink {
    fn append(&self, event: &Arc<AuditEvent>) -> Result<()> {
        let mut b = encode::Buf::new();
        encode::encode(&mut b, &event.prev_hash, event.seq, &EventRef::of(event));
        self.enqueue(event.seq, event.time, b.as_slice(), &event.hash)
    }

    fn append_chained(&self, event: &Chained<'_>) -> Result<()> {
        self.enqueue(event.seq(), event.time(), event.encoded(), &event.hash())
    }

    fn sync_to(&self, seq: u64) -> Result<()> {
        let mut q = self.shared.lock();
        let target = seq.min(q.enqueued);
        while q.durable < target && q.error.is_none() {
            q = self
                .shared
                .done
                .wait(q)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        match &q.error {
            Some(e) => Err(Error::Unavailable {
                message: format!("audit file sink failed: {e}"),
                retryable: false,
                source: None,
            }),
            None => Ok(()),
        }
    }

    fn head(&self) -> Result<Option<ChainLink>> {
        Ok(self.head)
    }

    fn records(&self) -> Option<Result<Records>> {
        Some(Self::read_dir(&self.dir))
    }

    fn trim(&self, before: Timestamp) -> Result<u64> {
        let _d = self
            .shared
            .dir_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let segs = segments(&self.dir)?;
        let mut trimmed = 0;
        // A segment may go when its last event is older than the cut-off; the newest never goes.
        for pair in segs.windows(2) {
            let cur = &pair[0].1;
            let lines = read_lines(cur)?;
            let last: AuditEvent = lines
                .last()
                .and_then(|l| serde_json::from_str(l).ok())
                .ok_or_else(|| Error::Corrupted {
                    path: cur.display().to_string(),
                    record: "last line".into(),
                    reason: "unreadable; not trimming".into(),
                })?;
            if last.time >= before {
                break;
            }
            let link = last.link();
            // The anchor is durable before the segment goes, so the chain always has a start.
            let json = serde_json::to_vec(&link).unwrap_or_default();
            write_atomic(&self.dir, ANCHOR, &json)?;
            fs::remove_file(cur).map_err(io(format!("removing {}", cur.display())))?;
            sync_dir(&self.dir)?;
            trimmed += lines.len() as u64;
        }
        Ok(trimmed)
    }
}

impl Drop for FileSink {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.work.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
