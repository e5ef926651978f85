//! Load test: V3-signed `Encrypt` of 32 bytes over loopback against an in-process kmskit-server on a
//! file keystore, bounded in time and count.
//!
//! ```text
//! cargo bench -p kmskit-server --bench load
//! KMSKIT_LOAD_SECS=5 KMSKIT_LOAD_CONNS=64 cargo bench -p kmskit-server --bench load
//! ```
//!
//! Prints requests/s, p50/p99 latency and errors for two phases, without and with the access log
//! written to a file (one line per request; every line is counted afterwards, so a lost line shows), the
//! in-process baseline (`FileKms::encrypt` on one thread, no HTTP) measured in the same run, and the ratio
//! to the issue's target of 50,000 requests/s. Client and server share this machine's cores.
//!
//! The served keystore audits every call to a file trail (hash-chained JSON lines, group commit), as the
//! `kmskit-server` binary does; after shutdown the trail is flushed, read back and verified, and its
//! event count must equal the calls made (a lost event fails the run). `KMSKIT_LOAD_AUDIT=0` turns the
//! audit trail off, for comparison.

use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kmskit_core::audit::{AuditLog, AuditSink, Durability, FileSink};
use kmskit_core::governance::Governance;
use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef, KmsConfig};
use kmskit_file::{FileKms, FileKmsExt, FileStore, RootKey};
use kmskit_server::sign::{self, AccessKeySecret};
use kmskit_server::{AccessKey, Server};

const TARGET: f64 = 50_000.0;
const AK: &str = "bench-ak";
const SK: &str = "bench-secret";

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct PhaseResult {
    ok: u64,
    errors: u64,
    secs: f64,
    latencies_us: Vec<u32>,
}

fn percentile(sorted: &[u32], p: f64) -> u32 {
    if sorted.is_empty() {
        return 0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn signed_requests(n: usize, key_id: &str, host: &str) -> Vec<hyper::Request<Full<Bytes>>> {
    let secret = AccessKeySecret::new(SK);
    let now = kmskit_core::Timestamp::from_system(std::time::SystemTime::now()).to_string();
    let plaintext = "0123456789abcdef0123456789abcdef"; // 32 bytes
    (0..n)
        .map(|_| {
            let q = vec![
                ("KeyId".to_owned(), key_id.to_owned()),
                ("Plaintext".to_owned(), plaintext.to_owned()),
            ];
            let headers = sign::sign_v3(
                "POST",
                host,
                "Encrypt",
                &q,
                b"",
                AK,
                &secret,
                &sign::new_nonce(),
                &now,
            );
            let query = sign::encode_pairs(q.iter().map(|(k, v)| (k.as_str(), v.as_str())));
            let mut b = hyper::Request::post(format!("/?{query}"));
            for (k, v) in &headers {
                b = b.header(k.as_str(), v.as_str());
            }
            b.body(Full::new(Bytes::new())).unwrap_or_default()
        })
        .collect()
}

async fn run_phase(
    addr: SocketAddr,
    key_id: &str,
    conns: usize,
    secs: u64,
    max_requests: usize,
) -> PhaseResult {
    let per_conn = max_requests / conns;
    let host = addr.to_string();
    let mut batches: Vec<Vec<hyper::Request<Full<Bytes>>>> = Vec::with_capacity(conns);
    for _ in 0..conns {
        batches.push(signed_requests(per_conn, key_id, &host));
    }
    let deadline = Instant::now() + Duration::from_secs(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for batch in batches {
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(batch.len());
            let (mut ok, mut errors) = (0u64, 0u64);
            let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                return (0, batch.len() as u64, lat);
            };
            let _ = stream.set_nodelay(true);
            let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
            else {
                return (0, batch.len() as u64, lat);
            };
            tokio::spawn(conn);
            for req in batch {
                if Instant::now() >= deadline {
                    break;
                }
                let t = Instant::now();
                if sender.ready().await.is_err() {
                    errors += 1;
                    break;
                }
                match sender.send_request(req).await {
                    Ok(resp) => {
                        let status = resp.status();
                        let body = resp.into_body().collect().await;
                        if status == 200 && body.is_ok() {
                            ok += 1;
                        } else {
                            errors += 1;
                        }
                    }
                    Err(_) => errors += 1,
                }
                lat.push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
            }
            (ok, errors, lat)
        }));
    }
    let mut r = PhaseResult {
        ok: 0,
        errors: 0,
        secs: 0.0,
        latencies_us: Vec::new(),
    };
    for t in tasks {
        if let Ok((ok, errors, lat)) = t.await {
            r.ok += ok;
            r.errors += errors;
            r.latencies_us.extend(lat);
        }
    }
    r.secs = start.elapsed().as_secs_f64();
    r.latencies_us.sort_unstable();
    r
}

fn report(name: &str, r: &PhaseResult) -> f64 {
    let rps = r.ok as f64 / r.secs;
    println!(
        "{name:<44} {rps:>9.0} req/s  p50 {:>5} us  p99 {:>6} us  ok {:>8}  errors {}  ({:.1} s)  ratio to target {:.2}",
        percentile(&r.latencies_us, 0.50),
        percentile(&r.latencies_us, 0.99),
        r.ok,
        r.errors,
        r.secs,
        rps / TARGET
    );
    rps
}

/// A log file writer shared with the tracing subscriber.
#[derive(Clone)]
struct LogFile(Arc<std::sync::Mutex<std::io::BufWriter<std::fs::File>>>);

impl Write for LogFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self.0.lock() {
            Ok(mut w) => w.write(buf),
            Err(p) => p.into_inner().write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self.0.lock() {
            Ok(mut w) => w.flush(),
            Err(p) => p.into_inner().flush(),
        }
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo test --benches` runs this with --bench absent; keep that a smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let secs = env_u64("KMSKIT_LOAD_SECS", if smoke { 1 } else { 5 });
    let conns = env_u64("KMSKIT_LOAD_CONNS", 64) as usize;
    let max_requests = env_u64("KMSKIT_LOAD_MAX_REQUESTS", if smoke { 20_000 } else { 600_000 }) as usize;

    let dir = tempfile::tempdir()?;
    let kms = Arc::new(FileKms::open_dir(
        dir.path().join("baseline"),
        &RootKey::generate(),
    )?);
    let caller = Caller::local();
    let key_id = kmskit_core::block_on(kms.create_key(&caller, CreateKey::new("bench")))?.key_id;

    // The served keystore: every call audited to a file trail (group commit).
    let audit_dir = dir.path().join("audit");
    let file_sink = Arc::new(FileSink::open(&audit_dir)?);
    let sink: Arc<dyn AuditSink> = file_sink.clone();
    let audit = Arc::new(AuditLog::new(vec![sink])?.durability(Durability::GroupCommit));
    let audited = env_u64("KMSKIT_LOAD_AUDIT", 1) != 0;
    let gov = if audited {
        Governance::new().audit(audit.clone())
    } else {
        Governance::new()
    };
    let served = Arc::new(FileKms::with_store_config(
        FileStore::open(dir.path().join("keystore"), &RootKey::generate())?,
        KmsConfig::new().governance(Arc::new(gov)),
    )?);
    let served_key = kmskit_core::block_on(served.create_key(&caller, CreateKey::new("bench")))?.key_id;

    // Baseline: the provider alone, one thread, same 32 bytes.
    let ctx = EncryptionContext::new();
    let key_ref = KeyRef::Id(key_id.clone());
    let n = if smoke { 20_000 } else { 300_000 };
    let t = Instant::now();
    for _ in 0..n {
        kmskit_core::block_on(kms.encrypt(&caller, &key_ref, b"0123456789abcdef0123456789abcdef", &ctx))?;
    }
    let baseline = n as f64 / t.elapsed().as_secs_f64();
    println!("baseline: in-process FileKms::encrypt(32 B), 1 thread, no HTTP: {baseline:.0} op/s");

    drop(kms);
    let provider: Arc<dyn KeyProvider> = served;
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("server")
        .enable_all()
        .build()?;
    let server = Server::builder()
        .provider(provider)
        .access_key(AccessKey::new(AK, AccessKeySecret::new(SK), "bench"))
        .build()?;
    let running = server_rt.block_on(server.bind("127.0.0.1:0".parse()?))?;
    let addr = running.local_addr().ok_or("no address")?;

    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("client")
        .enable_all()
        .build()?;
    let kid = served_key.to_string();
    println!(
        "load: Encrypt(32 B), V3-signed, {conns} keep-alive connections on 127.0.0.1, {secs} s per phase \
         (at most {max_requests} requests), target {TARGET:.0} req/s"
    );
    let warm = client_rt.block_on(run_phase(addr, &kid, conns, 1, conns * 200));
    if warm.errors > 0 {
        return Err(format!("warm-up: {} errors", warm.errors).into());
    }
    let r1 = client_rt.block_on(run_phase(addr, &kid, conns, secs, max_requests));
    report("HTTP, no access log", &r1);

    // Phase 2: the access log (one line per request) to a file.
    let log_path = dir.path().join("access.log");
    let file = LogFile(Arc::new(std::sync::Mutex::new(
        std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&log_path)?),
    )));
    let writer = file.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_env_filter(tracing_subscriber::EnvFilter::new("kmskit_server::access=info"))
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber)?;
    let r2 = client_rt.block_on(run_phase(addr, &kid, conns, secs, max_requests));
    report("HTTP, access log to a file", &r2);
    server_rt.block_on(running.shutdown());
    let mut f = file.clone();
    f.flush()?;
    let lines = std::io::BufReader::new(std::fs::File::open(&log_path)?)
        .lines()
        .count() as u64;
    let sent = r2.ok + r2.errors;
    println!(
        "access log: {lines} lines for {sent} requests ({})",
        if lines == sent { "none lost" } else { "MISMATCH" }
    );
    audit.flush()?;
    let records = FileSink::read_dir(&audit_dir)?;
    let events = records.events.len() as u64;
    let calls = if audited {
        1 + warm.ok + warm.errors + r1.ok + r1.errors + sent
    } else {
        0
    };
    let t = Instant::now();
    let verified = kmskit_core::audit::verify(&records).map_err(|b| b.to_string())?;
    println!(
        "audit trail ({}): {events} events for {calls} calls ({}), chain verified ({} events) in {:.1} s",
        if audited { "on" } else { "off" },
        if events == calls { "none lost" } else { "MISMATCH" },
        verified.events,
        t.elapsed().as_secs_f64()
    );
    if audited {
        let b = file_sink.batches().max(1);
        println!(
            "audit group commits: {b} batches (write + fsync each), {:.0} events per batch",
            events as f64 / b as f64
        );
    }
    if r1.errors + r2.errors > 0 || lines != sent || events != calls {
        return Err("errors, lost log lines or lost audit events".into());
    }
    Ok(())
}
