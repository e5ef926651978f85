//! The audit trail: hash chain verification catches deletion, insertion, edit and reordering; the file
//! sink groups commits, survives reopen and torn lines; retention keeps the rest verifiable; lookup.
#![allow(clippy::unwrap_used, missing_docs)]

use std::fs;
use std::path::Path;
use std::sync::Arc;

use kmskit_core::Timestamp;
use kmskit_core::audit::{
    AuditLog, AuditQuery, AuditSink, Durability, FileSink, FileSinkOptions, MemorySink, NewEvent, Outcome,
    verify,
};
use kmskit_core::clock::DAY;

const T0: u64 = 1_780_000_000;

fn ev(i: u64) -> NewEvent {
    let mut e = NewEvent::default();
    e.action = if i % 2 == 0 { "Encrypt" } else { "Decrypt" };
    e.principal = format!("user{}", i % 3);
    e.request_id = format!("req-{i}");
    e.key_id = Some(format!("key-{}", i % 2));
    e.code = "OK";
    e.context_keys = vec!["table".into()];
    e
}

fn file_log(dir: &Path) -> (AuditLog, Arc<FileSink>) {
    let sink = Arc::new(FileSink::with_options(dir, FileSinkOptions::default().segment_events(10)).unwrap());
    let log = AuditLog::new(vec![sink.clone() as Arc<dyn AuditSink>]).unwrap();
    (log, sink)
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(path: &Path, ls: &[String]) {
    fs::write(path, ls.iter().map(|l| format!("{l}\n")).collect::<String>()).unwrap();
}

/// Writes 25 events (3 segments of 10, 10, 5) and returns the first segment's path.
fn populated(dir: &Path) -> std::path::PathBuf {
    let (log, sink) = file_log(dir);
    for i in 0..25 {
        log.record(ev(i), Timestamp::from_unix(T0 + i)).unwrap();
    }
    log.flush().unwrap();
    let segs = sink.segment_paths().unwrap();
    assert_eq!(segs.len(), 3);
    let r = verify(&FileSink::read_dir(dir).unwrap()).unwrap();
    assert_eq!(r.events, 25);
    assert_eq!(r.range, Some((1, 25)));
    segs[0].clone()
}

fn broken(dir: &Path) -> kmskit_core::audit::ChainBreak {
    verify(&FileSink::read_dir(dir).unwrap()).unwrap_err()
}

#[test]
fn verify_catches_an_edit() {
    let d = tempfile::tempdir().unwrap();
    let seg = populated(d.path());
    let mut ls = lines(&seg);
    ls[4] = ls[4].replace("\"user1\"", "\"mallory\"");
    write_lines(&seg, &ls);
    let b = broken(d.path());
    assert_eq!(b.seq, Some(5));
    assert!(b.location.ends_with(":5"), "{b}");
    assert!(b.reason.contains("edited"), "{b}");
}

#[test]
fn verify_catches_an_edit_that_recomputed_its_own_hash_at_the_next_event() {
    let d = tempfile::tempdir().unwrap();
    let seg = populated(d.path());
    let mut ls = lines(&seg);
    let mut e: kmskit_core::audit::AuditEvent = serde_json::from_str(&ls[2]).unwrap();
    e.outcome = Outcome::Success;
    e.code = "Forbidden.NoPermission".into();
    let prev: kmskit_core::audit::AuditEvent = serde_json::from_str(&ls[1]).unwrap();
    e.hash = e.compute_hash(&prev.hash);
    ls[2] = serde_json::to_string(&e).unwrap();
    write_lines(&seg, &ls);
    let b = broken(d.path());
    assert_eq!(b.seq, Some(4), "{b}");
    assert!(b.reason.contains("PrevHash"), "{b}");
}

#[test]
fn verify_catches_a_deletion() {
    let d = tempfile::tempdir().unwrap();
    let seg = populated(d.path());
    let mut ls = lines(&seg);
    ls.remove(6);
    write_lines(&seg, &ls);
    let b = broken(d.path());
    assert_eq!(b.seq, Some(8));
    assert!(b.reason.contains("missing"), "{b}");
}

#[test]
fn verify_catches_a_deleted_segment() {
    let d = tempfile::tempdir().unwrap();
    populated(d.path());
    let (_, sink) = {
        let s = FileSink::open(d.path()).unwrap();
        ((), s)
    };
    let segs = sink.segment_paths().unwrap();
    drop(sink);
    fs::remove_file(&segs[1]).unwrap();
    let b = broken(d.path());
    assert_eq!(b.seq, Some(21));
    assert!(b.reason.contains("11..20 are missing"), "{b}");
}

#[test]
fn verify_catches_an_insertion() {
    let d = tempfile::tempdir().unwrap();
    let seg = populated(d.path());
    let mut ls = lines(&seg);
    let dup = ls[1].clone();
    ls.insert(5, dup);
    write_lines(&seg, &ls);
    let b = broken(d.path());
    assert_eq!(b.location.rsplit(':').next(), Some("6"));
    assert!(b.reason.contains("out of place"), "{b}");
}

#[test]
fn verify_catches_reordering() {
    let d = tempfile::tempdir().unwrap();
    let seg = populated(d.path());
    let mut ls = lines(&seg);
    ls.swap(3, 4);
    write_lines(&seg, &ls);
    let b = broken(d.path());
    assert_eq!(b.location.rsplit(':').next(), Some("4"));
    // A garbled line is named too.
    let mut ls = lines(&seg);
    ls.swap(3, 4);
    ls[7] = "{not json".into();
    write_lines(&seg, &ls);
    let b = broken(d.path());
    assert!(
        b.location.ends_with(":8") && b.reason.contains("unreadable"),
        "{b}"
    );
}

#[test]
fn reopen_continues_the_chain_and_cuts_a_torn_line() {
    let d = tempfile::tempdir().unwrap();
    populated(d.path());
    // A crash mid-write leaves half a line at the end.
    let segs = FileSink::open(d.path()).unwrap().segment_paths().unwrap();
    let last = segs.last().unwrap();
    let mut data = fs::read(last).unwrap();
    data.extend_from_slice(b"{\"Seq\":26,\"Ti");
    fs::write(last, data).unwrap();
    let (log, _) = file_log(d.path());
    assert_eq!(log.head().seq, 25);
    for i in 25..30 {
        log.record(ev(i), Timestamp::from_unix(T0 + i)).unwrap();
    }
    let r = log.verify().unwrap().unwrap();
    assert_eq!(r.events, 30);
}

#[test]
fn group_commit_shares_fsyncs_and_sync_durability_waits() {
    let d = tempfile::tempdir().unwrap();
    let sink = Arc::new(FileSink::open(d.path()).unwrap());
    let log = Arc::new(
        AuditLog::new(vec![sink.clone() as Arc<dyn AuditSink>])
            .unwrap()
            .durability(Durability::Sync),
    );
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    log.record(ev(t * 100 + i), Timestamp::from_unix(T0)).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Every event is on disk the moment record returned (Sync), and the chain is whole.
    let recs = FileSink::read_dir(d.path()).unwrap();
    assert_eq!(recs.events.len(), 200);
    assert_eq!(verify(&recs).unwrap().events, 200);
    assert!(sink.batches() <= 200, "one fsync per batch at most");
}

#[test]
fn retention_trims_old_segments_and_the_rest_still_verifies() {
    let d = tempfile::tempdir().unwrap();
    let sink = Arc::new(FileSink::open(d.path()).unwrap()); // daily segments
    let log = AuditLog::new(vec![sink.clone() as Arc<dyn AuditSink>])
        .unwrap()
        .retention_days(180);
    // One event a day for 200 days.
    for day in 0..200 {
        log.record(ev(day), Timestamp::from_unix(T0 + day * DAY)).unwrap();
    }
    log.flush().unwrap();
    let now = Timestamp::from_unix(T0 + 199 * DAY);
    // Retention also ran by itself on each new day; whichever run trimmed what, days 0..=18 are gone.
    log.apply_retention(now).unwrap();
    let recs = FileSink::read_dir(d.path()).unwrap();
    assert_eq!(recs.anchor.unwrap().seq, 19);
    let r = verify(&recs).unwrap();
    assert_eq!(r.range, Some((20, 200)));
    // Deleting the oldest remaining segment is still caught against the anchor.
    let segs = sink.segment_paths().unwrap();
    fs::remove_file(&segs[0]).unwrap();
    let b = broken(d.path());
    assert!(b.reason.contains("20..20 are missing"), "{b}");
}

#[test]
fn memory_ring_keeps_an_anchor_and_verifies() {
    let sink = Arc::new(MemorySink::new(8));
    let log = AuditLog::new(vec![sink.clone() as Arc<dyn AuditSink>]).unwrap();
    for i in 0..20 {
        log.record(ev(i), Timestamp::from_unix(T0 + i)).unwrap();
    }
    let r = log.verify().unwrap().unwrap();
    assert_eq!(r.range, Some((13, 20)));
    assert_eq!(sink.events().len(), 8);
    assert_eq!(log.head().seq, 20);
}

#[test]
fn lookup_filters() {
    let log = AuditLog::memory(1000);
    for i in 0..30 {
        log.record(ev(i), Timestamp::from_unix(T0 + i * 3600)).unwrap();
    }
    let all = log.lookup(&AuditQuery::new()).unwrap();
    assert_eq!(all.len(), 30);
    let enc = log.lookup(&AuditQuery::new().actions(["encrypt"])).unwrap();
    assert_eq!(enc.len(), 15);
    let window = log
        .lookup(&AuditQuery::new().between(
            Timestamp::from_unix(T0 + 3600),
            Timestamp::from_unix(T0 + 5 * 3600),
        ))
        .unwrap();
    assert_eq!(
        window.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![2, 3, 4, 5, 6]
    );
    let k = log
        .lookup(&AuditQuery::new().key("key-1").principal("user0"))
        .unwrap();
    assert!(
        k.iter()
            .all(|e| e.key_id.as_deref() == Some("key-1") && e.principal == "user0")
    );
    assert_eq!(k.len(), 5);
    let last = log.lookup(&AuditQuery::new().limit(2)).unwrap();
    assert_eq!(last.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![29, 30]);
}

#[test]
fn retention_runs_by_itself_once_a_day() {
    let sink = Arc::new(MemorySink::new(100_000));
    let log = AuditLog::new(vec![sink.clone() as Arc<dyn AuditSink>])
        .unwrap()
        .retention_days(30);
    for day in 0..100 {
        for h in 0..3 {
            log.record(ev(day), Timestamp::from_unix(T0 + day * DAY + h * 3600))
                .unwrap();
        }
    }
    // Only the last 30 days (and the day in progress) are kept; the chain still verifies.
    let evs = sink.events();
    assert!(evs.len() <= 31 * 3 && evs.len() >= 30 * 3, "{}", evs.len());
    assert!(evs.first().unwrap().time.unix() >= T0 + 69 * DAY);
    let r = log.verify().unwrap().unwrap();
    assert_eq!(r.range.unwrap().1, 300);
}

#[cfg(feature = "tracing")]
#[test]
fn tracing_bridge_takes_events_beside_a_readable_sink() {
    let log = AuditLog::new(vec![
        Arc::new(kmskit_core::audit::TracingSink) as Arc<dyn AuditSink>,
        Arc::new(MemorySink::new(10)),
    ])
    .unwrap();
    for i in 0..3 {
        log.record(ev(i), Timestamp::from_unix(T0)).unwrap();
    }
    assert_eq!(log.verify().unwrap().unwrap().events, 3);
}

#[test]
fn file_and_memory_sinks_hold_the_same_events_whichever_way_they_are_fed() {
    // One log, both sinks: the file sink takes the chain encoding, the ring an owned event.
    let dir = tempfile::tempdir().unwrap();
    let file = Arc::new(FileSink::open(dir.path().join("a")).unwrap());
    let ring = Arc::new(MemorySink::new(100));
    let log = AuditLog::new(vec![file.clone() as Arc<dyn AuditSink>, ring.clone()]).unwrap();
    for i in 0..30 {
        let mut e = ev(i);
        e.source_ip = Some(
            if i % 2 == 0 { "10.0.0.1" } else { "2001:db8::7" }
                .parse()
                .unwrap(),
        );
        e.detail = (i % 5 == 0).then(|| format!("detail \"{i}\"\n\u{e9}"));
        e.context_keys = (0..i % 4).map(|k| format!("k{k}")).collect();
        e.outcome = Some(if i % 3 == 0 {
            Outcome::Denied
        } else {
            Outcome::Success
        });
        log.record(e, Timestamp::from_unix(T0 + i)).unwrap();
    }
    log.flush().unwrap();
    let from_file: Vec<_> = FileSink::read_dir(dir.path().join("a"))
        .unwrap()
        .events
        .into_iter()
        .map(|(_, e)| e.unwrap())
        .collect();
    let from_ring: Vec<_> = ring.events().iter().map(|e| (**e).clone()).collect();
    assert_eq!(from_file.len(), 30);
    assert_eq!(from_file, from_ring);

    // A second file sink fed the owned events through `append` writes the same lines.
    let copy = FileSink::open(dir.path().join("b")).unwrap();
    for e in ring.events() {
        copy.append(&e).unwrap();
    }
    copy.sync_to(30).unwrap();
    let (a, b) = (file.segment_paths().unwrap(), copy.segment_paths().unwrap());
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(lines(&a[0]), lines(&b[0]));
    assert_eq!(
        verify(&FileSink::read_dir(dir.path().join("b")).unwrap())
            .unwrap()
            .events,
        30
    );
}
