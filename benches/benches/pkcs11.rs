//! `Pkcs11Kms::encrypt` of 1 KiB against direct cryptoki `C_EncryptInit` + `C_Encrypt` (CKM_AES_GCM)
//! calls on the same token, with 1 and 2 workers, measured in the same run.
//!
//! Both sides use an AES-256 key generated in the token with the same template (token object, private,
//! sensitive, not extractable), a fresh 96-bit nonce per call and AAD of the size kmskit sends (blob
//! header plus encryption context). The direct side gives each worker a session of its own; the
//! `Pkcs11Kms` side shares one engine whose pool has as many sessions as workers.
//!
//! Criterion group `pkcs11_encrypt_1KiB` (`Throughput::Bytes`), then the ratios
//! `Pkcs11Kms throughput ÷ direct cryptoki throughput` for 1 and 2 workers (target ≥ 0.8×), timed by a
//! bounded loop in this process (median of several batches, the two sides interleaved).
//!
//! Needs a module: `KMSKIT_PKCS11_MODULE` (and for SoftHSM2 a `SOFTHSM2_CONF` with a writable token
//! directory; scripts/test.sh shows the set-up). It uses `KMSKIT_PKCS11_TOKEN`/`KMSKIT_PKCS11_PIN` when
//! set, else initialises a token of its own. Without a module it says so and exits.
//!
//! Then EC_P256 signing: `Pkcs11Store::sign_digest` (`KeyStore` level: session lease, handle cache,
//! `CKM_ECDSA`, r ‖ s to DER) against a direct `C_SignInit` + `C_Sign` (`CKM_ECDSA`) with a key pair made
//! with the same templates, over a 32-byte digest, one worker: criterion group `pkcs11_sign_ec_p256`
//! and the ratio `store ÷ direct` (target ≥ 0.8×).
//!
//! `cargo bench -p kmskit-benches --bench pkcs11` (about 40 s).
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput};
use kmskit_core::store::{KeyStore, MaterialId};
use kmskit_core::{
    AsymmetricAlgorithm, Caller, CreateKey, EncryptionContext, KeyId, KeyProvider, KeyRef, KeySpec,
    KeyVersionId, block_on,
};
use kmskit_pkcs11::cryptoki::mechanism::Mechanism;
use kmskit_pkcs11::cryptoki::mechanism::aead::GcmParams;
use kmskit_pkcs11::cryptoki::object::{Attribute, KeyType, ObjectClass, ObjectHandle};
use kmskit_pkcs11::cryptoki::session::Session;
use kmskit_pkcs11::{
    Pin, Pkcs11Config, Pkcs11Kms, Pkcs11KmsExt, Pkcs11Store, context, find_slot, init_token,
};

const SIZE: usize = 1024;
/// About what kmskit authenticates: the blob header (ids, nonce) plus the canonical context.
const AAD_LEN: usize = 110;

struct Token {
    module: PathBuf,
    label: String,
    pin: String,
}

fn token() -> Option<Token> {
    let Some(module) = std::env::var_os("KMSKIT_PKCS11_MODULE").map(PathBuf::from) else {
        eprintln!("pkcs11 bench: KMSKIT_PKCS11_MODULE is not set; nothing to measure (see scripts/test.sh)");
        return None;
    };
    if let (Ok(label), Ok(pin)) = (
        std::env::var("KMSKIT_PKCS11_TOKEN"),
        std::env::var("KMSKIT_PKCS11_PIN"),
    ) {
        return Some(Token { module, label, pin });
    }
    let label = format!("kb-{}", &kmskit_core::KeyId::generate().as_str()[..23]);
    let pin = "bench-user-pin".to_owned();
    init_token(&module, &label, &Pin::new("bench-so-pin"), &Pin::new(pin.clone())).expect("init a token");
    Some(Token { module, label, pin })
}

/// Direct cryptoki: one session per worker (in an uncontended mutex: a `Session` is not `Sync`), one
/// key, a counter nonce.
struct Direct {
    sessions: Vec<Mutex<Session>>,
    key: ObjectHandle,
    counter: AtomicU64,
    aad: Vec<u8>,
}

impl Direct {
    fn new(t: &Token, workers: usize) -> Self {
        let ctx = context(&t.module).unwrap();
        let slot = find_slot(&ctx, &t.label).unwrap();
        // The Pkcs11Kms opened first has logged the application in.
        let sessions: Vec<Session> = (0..workers).map(|_| ctx.open_rw_session(slot).unwrap()).collect();
        let key = sessions[0]
            .generate_key(
                &Mechanism::AesKeyGen,
                &[
                    Attribute::Class(ObjectClass::SECRET_KEY),
                    Attribute::KeyType(KeyType::AES),
                    Attribute::ValueLen(32u64.into()),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Encrypt(true),
                    Attribute::Decrypt(true),
                    Attribute::Label(b"kmskit-bench-direct".to_vec()),
                ],
            )
            .unwrap();
        Self {
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            key,
            counter: AtomicU64::new(1),
            aad: vec![0x5a; AAD_LEN],
        }
    }

    fn encrypt(&self, worker: usize, pt: &[u8]) -> Vec<u8> {
        let mut iv = [0u8; 12];
        iv[4..].copy_from_slice(&self.counter.fetch_add(1, Ordering::Relaxed).to_be_bytes());
        let params = GcmParams::new(&mut iv, &self.aad, 128u64.into()).unwrap();
        self.sessions[worker]
            .lock()
            .unwrap()
            .encrypt(&Mechanism::AesGcm(params), self.key, pt)
            .unwrap()
    }
}

struct Kms {
    kms: Pkcs11Kms,
    key: KeyRef,
    caller: Caller,
    ctx: EncryptionContext,
}

impl Kms {
    fn new(t: &Token, workers: usize) -> Self {
        let config = Pkcs11Config::new(&t.module, &t.label, Pin::new(t.pin.clone())).with_pool_size(workers);
        let kms = Pkcs11Kms::open_pkcs11(&config).unwrap();
        let caller = Caller::local();
        let key = block_on(kms.create_key(&caller, CreateKey::new("bench"))).unwrap();
        Self {
            kms,
            key: KeyRef::Id(key.key_id),
            caller,
            ctx: EncryptionContext::from_pairs([("bench", "pkcs11")]).unwrap(),
        }
    }

    fn encrypt(&self, pt: &[u8]) -> usize {
        block_on(self.kms.encrypt(&self.caller, &self.key, pt, &self.ctx))
            .unwrap()
            .ciphertext_blob
            .as_bytes()
            .len()
    }
}

/// Wall time of `iters` calls split over `workers` threads; `f(worker)` makes one call.
fn run_workers(workers: usize, iters: u64, f: &(dyn Fn(usize) + Sync)) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for w in 0..workers {
            let n = iters / workers as u64 + u64::from((w as u64) < iters % workers as u64);
            s.spawn(move || {
                for _ in 0..n {
                    f(w);
                }
            });
        }
    });
    start.elapsed()
}

fn criterion_groups(c: &mut Criterion, kms: &Kms, direct: &Direct) {
    let pt = vec![7u8; SIZE];
    let mut g = c.benchmark_group("pkcs11_encrypt_1KiB");
    g.throughput(Throughput::Bytes(SIZE as u64));
    for workers in [1usize, 2] {
        g.bench_function(BenchmarkId::new("Pkcs11Kms", format!("{workers}w")), |b| {
            b.iter_custom(|iters| {
                run_workers(workers, iters, &|_| {
                    black_box(kms.encrypt(black_box(&pt)));
                })
            })
        });
        g.bench_function(BenchmarkId::new("cryptoki_direct", format!("{workers}w")), |b| {
            b.iter_custom(|iters| {
                run_workers(workers, iters, &|w| {
                    black_box(direct.encrypt(w, black_box(&pt)));
                })
            })
        });
    }
    g.finish();
}

/// Median over `batches` of calls per second, each batch `iters` calls over `workers` threads.
fn median_rate(batches: usize, iters: u64, workers: usize, f: &(dyn Fn(usize) + Sync)) -> f64 {
    let mut rates: Vec<f64> = (0..batches)
        .map(|_| iters as f64 / run_workers(workers, iters, f).as_secs_f64())
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[batches / 2]
}

fn ratios(kms: &Kms, direct: &Direct) {
    const BATCHES: usize = 15;
    const ITERS: u64 = 400;
    let pt = vec![7u8; SIZE];
    println!();
    println!("Encrypt 1 KiB on the token (median of {BATCHES} batches of {ITERS} calls, same process):");
    for workers in [1usize, 2] {
        let direct_f = |w: usize| {
            black_box(direct.encrypt(w, black_box(&pt)));
        };
        let kms_f = |_: usize| {
            black_box(kms.encrypt(black_box(&pt)));
        };
        // Interleave so drift affects both sides alike; keep each side's best median.
        let d1 = median_rate(BATCHES, ITERS, workers, &direct_f);
        let k1 = median_rate(BATCHES, ITERS, workers, &kms_f);
        let d2 = median_rate(BATCHES, ITERS, workers, &direct_f);
        let k2 = median_rate(BATCHES, ITERS, workers, &kms_f);
        let (d, k) = (d1.max(d2), k1.max(k2));
        let r = k / d;
        println!(
            "  {workers} worker(s): cryptoki direct {d:8.0}/s ({:6.1} MiB/s) | Pkcs11Kms::encrypt {k:8.0}/s \
             ({:6.1} MiB/s) | Pkcs11Kms / direct = {r:.2}x (target >= 0.8x: {})",
            d * SIZE as f64 / 1048576.0,
            k * SIZE as f64 / 1048576.0,
            if r >= 0.8 { "met" } else { "NOT met" }
        );
    }
}

/// EC_P256 signing of a digest: through the store, and by hand on a key pair of the same templates.
struct EcSign {
    store: Pkcs11Store,
    id: MaterialId,
    session: Session,
    private: ObjectHandle,
    digest: [u8; 32],
}

impl EcSign {
    fn new(t: &Token) -> Self {
        let config = Pkcs11Config::new(&t.module, &t.label, Pin::new(t.pin.clone())).with_pool_size(1);
        let store = Pkcs11Store::open(&config).unwrap();
        let id = MaterialId::new(KeyId::generate(), KeyVersionId::generate());
        store.generate(&id, KeySpec::EcP256).unwrap();
        let ctx = context(&t.module).unwrap();
        let session = ctx.open_rw_session(find_slot(&ctx, &t.label).unwrap()).unwrap();
        let label = b"kmskit-bench-direct-ec".to_vec();
        let (_, private) = session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::Class(ObjectClass::PUBLIC_KEY),
                    Attribute::KeyType(KeyType::EC),
                    // prime256v1
                    Attribute::EcParams(vec![0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07]),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Verify(true),
                    Attribute::Label(label.clone()),
                ],
                &[
                    Attribute::Class(ObjectClass::PRIVATE_KEY),
                    Attribute::KeyType(KeyType::EC),
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sensitive(true),
                    Attribute::Extractable(false),
                    Attribute::Sign(true),
                    Attribute::Label(label),
                ],
            )
            .unwrap();
        Self {
            store,
            id,
            session,
            private,
            digest: [0x3c; 32],
        }
    }

    fn store_sign(&self) -> usize {
        self.store
            .sign_digest(
                &self.id,
                KeySpec::EcP256,
                AsymmetricAlgorithm::EcdsaSha256,
                &self.digest,
            )
            .unwrap()
            .len()
    }

    fn direct_sign(&self) -> usize {
        self.session
            .sign(&Mechanism::Ecdsa, self.private, &self.digest)
            .unwrap()
            .len()
    }
}

fn ec_sign_criterion(c: &mut Criterion, ec: &EcSign) {
    let mut g = c.benchmark_group("pkcs11_sign_ec_p256");
    g.bench_function("Pkcs11Store::sign_digest", |b| {
        b.iter(|| black_box(ec.store_sign()))
    });
    g.bench_function("cryptoki_direct", |b| b.iter(|| black_box(ec.direct_sign())));
    g.finish();
}

fn ec_sign_ratio(ec: &EcSign) {
    const BATCHES: usize = 15;
    const ITERS: u64 = 300;
    // One worker: the direct session is not Sync, so the closures run on this thread only.
    let rate = |f: &dyn Fn() -> usize| {
        let mut rates: Vec<f64> = (0..BATCHES)
            .map(|_| {
                let start = Instant::now();
                for _ in 0..ITERS {
                    black_box(f());
                }
                ITERS as f64 / start.elapsed().as_secs_f64()
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        rates[BATCHES / 2]
    };
    let (d1, s1) = (rate(&|| ec.direct_sign()), rate(&|| ec.store_sign()));
    let (d2, s2) = (rate(&|| ec.direct_sign()), rate(&|| ec.store_sign()));
    let (d, s) = (d1.max(d2), s1.max(s2));
    let r = s / d;
    println!();
    println!(
        "EC_P256 sign of a 32-byte digest (median of {BATCHES} batches of {ITERS} calls, same process):"
    );
    println!(
        "  1 worker: cryptoki C_Sign {d:8.0}/s | Pkcs11Store::sign_digest {s:8.0}/s | store / direct = {r:.2}x \
         (target >= 0.8x: {})",
        if r >= 0.8 { "met" } else { "NOT met" }
    );
}

fn main() {
    let Some(t) = token() else { return };
    let kms = Kms::new(&t, 2);
    let direct = Direct::new(&t, 2);
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .configure_from_args();
    criterion_groups(&mut c, &kms, &direct);
    let ec = EcSign::new(&t);
    ec_sign_criterion(&mut c, &ec);
    c.final_summary();
    ratios(&kms, &direct);
    ec_sign_ratio(&ec);
}
