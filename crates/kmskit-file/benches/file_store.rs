//! FileStore benchmarks, reported as ratios against `MemoryKms` measured in the same run:
//!
//! - durable CreateKey and DisableKey/EnableKey ops/s (each fsynced before it returns);
//! - Encrypt ops/s (material is held in memory after open, so the target is within 1.2x of MemoryKms);
//! - open time and resident memory for a keystore of `KMSKIT_BENCH_KEYS` keys (default 100,000; target
//!   under 2 s and 200 MiB), measured in a fresh child process, warm and (when the page cache can be
//!   dropped, i.e. as root) cold.
//!
//! Run with `cargo bench -p kmskit-file --bench file_store`. The 100,000-key keystore is built once per
//! run in a temporary directory (about half a minute of durable creates).
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kmskit_core::{Caller, CreateKey, EncryptionContext, KeyProvider, KeyRef, Kms, block_on};
use kmskit_file::{FileKms, FileKmsExt, FileStore, RootKey};
use kmskit_memory::{MemoryKms, MemoryKmsExt};

fn root() -> RootKey {
    RootKey::from_bytes(&[0x42; 32]).unwrap()
}

/// Ops per second of `f` run `n` times; best of `reps` runs.
fn rate(n: u64, reps: u32, mut f: impl FnMut(u64)) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        for i in 0..n {
            f(i);
        }
        best = best.min(t.elapsed());
    }
    n as f64 / best.as_secs_f64()
}

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn encrypt_rate<S: kmskit_core::KeyStore>(kms: &Kms<S>, key: &KeyRef, n: u64) -> f64 {
    let c = Caller::local();
    let ctx = EncryptionContext::from_pairs([("bench", "1")]).unwrap();
    let pt = [7u8; 64];
    rate(n, 5, |_| {
        block_on(kms.encrypt(&c, key, &pt, &ctx)).unwrap();
    })
}

fn create_rate<S: kmskit_core::KeyStore>(kms: &Kms<S>, n: u64) -> f64 {
    let c = Caller::local();
    rate(n, 1, |_| {
        block_on(kms.create_key(&c, CreateKey::new("bench"))).unwrap();
    })
}

fn toggle_rate<S: kmskit_core::KeyStore>(kms: &Kms<S>, key: &KeyRef, n: u64) -> f64 {
    let c = Caller::local();
    rate(n, 1, |i| {
        if i % 2 == 0 {
            block_on(kms.disable_key(&c, key)).unwrap();
        } else {
            block_on(kms.enable_key(&c, key)).unwrap();
        }
    })
}

/// Child mode: open the keystore in `dir` and report time and memory.
fn open_child(dir: &Path) {
    let rss_before = status_kib("VmRSS:");
    let t = Instant::now();
    let store = FileStore::open(dir, &root()).unwrap();
    let store_secs = t.elapsed().as_secs_f64();
    let store_rss = status_kib("VmRSS:");
    let kms = FileKms::open(store).unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!(
        "  (FileStore::open {store_secs:.3} s, +{:.1} MiB; Kms::open {:.3} s, +{:.1} MiB)",
        (store_rss - rss_before) as f64 / 1024.0,
        secs - store_secs,
        (status_kib("VmRSS:") - store_rss) as f64 / 1024.0
    );
    let rss = status_kib("VmRSS:");
    let hwm = status_kib("VmHWM:");
    assert!(kms.load_problems().is_empty());
    // One Encrypt right after open: no I/O, material is held.
    let c = Caller::local();
    let keys = block_on(kms.list_keys(&c, kmskit_core::ListKeys::default())).unwrap();
    let k = KeyRef::Id(keys.items[0].key_id.clone());
    block_on(kms.encrypt(&c, &k, b"x", &EncryptionContext::new())).unwrap();
    println!(
        "OPEN {secs:.3} {rss_before} {rss} {hwm} {}",
        kms.store().open_report().keys
    );
}

fn run_open_child(dir: &Path) -> (f64, u64, u64, u64, u64) {
    let out = Command::new(std::env::current_exe().unwrap())
        .arg("open-child")
        .arg(dir)
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.starts_with("OPEN "))
        .unwrap_or_else(|| panic!("child failed: {text} {}", String::from_utf8_lossy(&out.stderr)));
    let f: Vec<&str> = line.split_whitespace().collect();
    (
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
        f[4].parse().unwrap(),
        f[5].parse().unwrap(),
    )
}

fn drop_caches() -> bool {
    let _ = Command::new("sync").status();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("open-child") {
        open_child(Path::new(&args[2]));
        return;
    }
    let n_keys: u64 = std::env::var("KMSKIT_BENCH_KEYS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    let base = std::env::var_os("KMSKIT_BENCH_DIR").map_or_else(std::env::temp_dir, Into::into);
    let tmp = tempfile::tempdir_in(base).unwrap();
    println!("kmskit-file benchmarks (keystore under {})", tmp.path().display());
    // KMSKIT_BENCH_OPEN_ONLY=DIR: only the open measurement, on a keystore kept in DIR between runs.
    if let Some(dir) = std::env::var_os("KMSKIT_BENCH_OPEN_ONLY") {
        let dir = Path::new(&dir);
        if !dir.exists() {
            build(dir, n_keys);
        }
        report_open(dir, n_keys);
        return;
    }

    // Encrypt: FileKms vs MemoryKms, interleaved so both see the same machine state.
    let c = Caller::local();
    let mem = MemoryKms::new_memory();
    let mk = KeyRef::Id(block_on(mem.create_key(&c, CreateKey::new("m"))).unwrap().key_id);
    let fdir = tmp.path().join("small");
    let file = FileKms::open_dir(&fdir, &root()).unwrap();
    let fk = KeyRef::Id(block_on(file.create_key(&c, CreateKey::new("f"))).unwrap().key_id);
    let (mut m_enc, mut f_enc) = (0f64, 0f64);
    for _ in 0..3 {
        m_enc = m_enc.max(encrypt_rate(&mem, &mk, 100_000));
        f_enc = f_enc.max(encrypt_rate(&file, &fk, 100_000));
    }
    println!(
        "Encrypt (64 B):        MemoryKms {m_enc:>10.0} ops/s   FileKms {f_enc:>10.0} ops/s   \
         FileKms/MemoryKms time per op {:.3} (target <= 1.2)",
        m_enc / f_enc
    );

    // Durable mutations.
    let m_create = create_rate(&mem, 2_000);
    let f_create = create_rate(&file, 2_000);
    println!(
        "CreateKey (durable):   MemoryKms {m_create:>10.0} ops/s   FileKms {f_create:>10.0} ops/s   \
         FileKms is {:.1}x slower (two fdatasyncs per create: material, record)",
        m_create / f_create
    );
    let m_toggle = toggle_rate(&mem, &mk, 2_000);
    let f_toggle = toggle_rate(&file, &fk, 2_000);
    println!(
        "Disable/EnableKey:     MemoryKms {m_toggle:>10.0} ops/s   FileKms {f_toggle:>10.0} ops/s   \
         FileKms is {:.1}x slower (one fdatasync)",
        m_toggle / f_toggle
    );
    // Concurrent creates from 8 threads (material fsyncs overlap; record appends are serialised).
    let shared = Arc::new(file);
    let t = Instant::now();
    let per = 250;
    std::thread::scope(|s| {
        for _ in 0..8 {
            let k = Arc::clone(&shared);
            s.spawn(move || {
                let c = Caller::local();
                for _ in 0..per {
                    block_on(k.create_key(&c, CreateKey::new("par"))).unwrap();
                }
            });
        }
    });
    println!(
        "CreateKey, 8 threads:  FileKms {:>10.0} ops/s",
        f64::from(8 * per) / t.elapsed().as_secs_f64()
    );
    drop(shared);

    // Open time and memory for a large keystore.
    let big = tmp.path().join("big");
    build(&big, n_keys);
    report_open(&big, n_keys);
}

fn build(big: &Path, n_keys: u64) {
    let t = Instant::now();
    {
        let kms = Arc::new(FileKms::open_dir(big, &root()).unwrap());
        std::thread::scope(|s| {
            for w in 0..4 {
                let k = Arc::clone(&kms);
                s.spawn(move || {
                    let c = Caller::local();
                    for i in (w..n_keys).step_by(4) {
                        block_on(k.create_key(&c, CreateKey::new(format!("key number {i}")))).unwrap();
                    }
                });
            }
        });
    }
    let build = t.elapsed().as_secs_f64();
    let journal = std::fs::read_dir(big)
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.file_name().to_string_lossy().starts_with("journal-"))
        .map(|e| e.metadata().unwrap().len())
        .sum::<u64>();
    println!(
        "built {n_keys} keys in {build:.1} s ({:.0} creates/s, 4 threads); journal {:.1} MiB",
        n_keys as f64 / build,
        journal as f64 / (1024.0 * 1024.0)
    );
}

fn report_open(big: &Path, n_keys: u64) {
    let (secs, before, rss, hwm, keys) = run_open_child(big);
    assert_eq!(keys, n_keys);
    println!(
        "open {keys} keys (warm cache): {secs:.3} s (target < 2 s); VmRSS {:.1} MiB (+{:.1} MiB for the \
         keystore), VmHWM {:.1} MiB (target < 200 MiB)",
        rss as f64 / 1024.0,
        (rss - before) as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    if drop_caches() {
        let (secs, _, rss, hwm, _) = run_open_child(big);
        println!(
            "open {keys} keys (cold cache): {secs:.3} s; VmRSS {:.1} MiB, VmHWM {:.1} MiB",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0
        );
    } else {
        println!("open (cold cache): skipped, cannot drop the page cache (needs root)");
    }
}
