//! Crash test: a child process (this test binary, re-executed in child mode) creates keys, encrypts,
//! changes key states, schedules and cancels deletions, lets keys be purged, and creates and deletes
//! aliases, printing a line after each acknowledged operation. The parent SIGKILLs it after a random
//! number of lines, many times, and after each kill reopens the keystore and checks that every
//! acknowledged key still decrypts its ciphertexts, every acknowledged state change is there (the one
//! operation in flight may or may not be), and nothing is reported corrupt. The child compacts its
//! journal often, so kills also land in compactions.
//!
//! Rotation is not covered: the engine has no key rotation yet.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc, clippy::too_many_lines)]

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;

use common::*;
use kmskit_core::blob::ParsedBlob;
use kmskit_core::store::{KeyRecord, KeyStore, MaterialId};
use kmskit_core::{
    AliasName, CiphertextBlob, CreateKey, KeyId, KeyProvider, KeyRef, KeyState, KmsConfig, ListKeys,
    ManualClock, PageRequest, Timestamp,
};
use kmskit_file::{FileKms, FileKmsExt, FileStore};

const ROUNDS: u64 = 30;
const T0: u64 = 1_700_000_000;
const DAY: u64 = 86_400;
const ROUND_SPAN: u64 = 20 * DAY;
const STEP: u64 = 4 * 3600;
const MAX_OPS: u64 = 100;

/// The journal generation the last verification saw (how many compactions ran).
static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn round_start(round: u64) -> u64 {
    T0 + round * ROUND_SPAN
}

/// The child: runs only when the parent sets `KMSKIT_CRASH_DIR`.
#[test]
fn crash_child() {
    let Some(dir) = std::env::var_os("KMSKIT_CRASH_DIR") else {
        return;
    };
    let round: u64 = std::env::var("KMSKIT_CRASH_ROUND").unwrap().parse().unwrap();
    let seed: u64 = std::env::var("KMSKIT_CRASH_SEED").unwrap().parse().unwrap();
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let clock = Arc::new(ManualClock::new(Timestamp::from_unix(round_start(round))));
    // A small compaction threshold, so kills also land in compactions.
    let store = FileStore::builder(Path::new(&dir))
        .root_key(root())
        .compaction_min_bytes(16 * 1024)
        .open()
        .unwrap();
    let kms = FileKms::with_store_config(store, KmsConfig::new().clock(clock.clone())).unwrap();
    assert!(kms.load_problems().is_empty(), "{:?}", kms.load_problems());
    let c = caller();
    let out = |s: String| println!("{s}");
    kmskit_core::block_on(async {
        let mut keys: Vec<(KeyId, KeyState)> = Vec::new();
        let listed = kms
            .list_keys(&c, ListKeys::new(PageRequest::new(1, 100).unwrap()))
            .await
            .unwrap();
        let mut page = 1;
        let mut ids: Vec<KeyId> = listed.items.iter().map(|k| k.key_id.clone()).collect();
        while (ids.len() as u64) < listed.total_count {
            page += 1;
            let more = kms
                .list_keys(&c, ListKeys::new(PageRequest::new(page, 100).unwrap()))
                .await
                .unwrap();
            ids.extend(more.items.iter().map(|k| k.key_id.clone()));
        }
        for id in ids {
            let m = kms.describe_key(&c, &KeyRef::Id(id.clone())).await.unwrap();
            keys.push((id, m.key_state));
        }
        let mut aliases: Vec<AliasName> = kms
            .list_aliases(&c, PageRequest::new(1, 100).unwrap())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|a| a.alias_name)
            .collect();
        out("READY".into());
        for op in 0..MAX_OPS {
            clock.advance(STEP);
            for k in kms.purge_due().unwrap() {
                keys.retain(|(id, _)| id != &k);
                out(format!("ACK purged {k}"));
            }
            let pick = rng.below(100);
            let usable: Vec<usize> = (0..keys.len())
                .filter(|i| keys[*i].1 != KeyState::PendingDeletion)
                .collect();
            if pick < 35 || usable.is_empty() {
                out("BEGIN create".into());
                let m = kms.create_key(&c, CreateKey::new("crash")).await.unwrap();
                let pt = rng.next().to_le_bytes();
                let enc = kms
                    .encrypt(&c, &KeyRef::Id(m.key_id.clone()), &pt, &ctx())
                    .await
                    .unwrap();
                keys.push((m.key_id.clone(), KeyState::Enabled));
                out(format!(
                    "ACK create {} {} {}",
                    m.key_id,
                    enc.ciphertext_blob.to_base64(),
                    hex(&pt)
                ));
                continue;
            }
            let i = usable[rng.below(usable.len() as u64) as usize];
            let (id, state) = keys[i].clone();
            let r = KeyRef::Id(id.clone());
            match pick {
                35..=49 if state == KeyState::Enabled => {
                    let pt = rng.next().to_le_bytes();
                    let enc = kms.encrypt(&c, &r, &pt, &ctx()).await.unwrap();
                    out(format!(
                        "ACK encrypt {id} {} {}",
                        enc.ciphertext_blob.to_base64(),
                        hex(&pt)
                    ));
                }
                35..=69 => {
                    let to = if state == KeyState::Enabled {
                        KeyState::Disabled
                    } else {
                        KeyState::Enabled
                    };
                    out(format!("BEGIN state {id} {to}"));
                    if to == KeyState::Enabled {
                        kms.enable_key(&c, &r).await.unwrap();
                    } else {
                        kms.disable_key(&c, &r).await.unwrap();
                    }
                    keys[i].1 = to;
                    out(format!("ACK state {id} {to}"));
                }
                70..=81 => {
                    out(format!("BEGIN schedule {id}"));
                    kms.schedule_key_deletion(&c, &r, 7).await.unwrap();
                    let m = kms.describe_key(&c, &r).await.unwrap();
                    keys[i].1 = KeyState::PendingDeletion;
                    out(format!("ACK schedule {id} {}", m.delete_date.unwrap().unix()));
                }
                82..=89 => {
                    // Cancel a pending deletion, if there is one.
                    let Some(j) = (0..keys.len()).find(|j| keys[*j].1 == KeyState::PendingDeletion) else {
                        continue;
                    };
                    let pid = keys[j].0.clone();
                    out(format!("BEGIN cancel {pid}"));
                    kms.cancel_key_deletion(&c, &KeyRef::Id(pid.clone()))
                        .await
                        .unwrap();
                    keys[j].1 = KeyState::Enabled;
                    out(format!("ACK cancel {pid}"));
                }
                _ => {
                    if !aliases.is_empty() && rng.below(2) == 0 {
                        let a = aliases.swap_remove(rng.below(aliases.len() as u64) as usize);
                        out(format!("BEGIN alias-delete {a}"));
                        match kms.delete_alias(&c, &a).await {
                            Ok(()) => out(format!("ACK alias-delete {a}")),
                            // Purged with its key.
                            Err(e) if e.code().as_str() == "Forbidden.AliasNotFound" => {
                                out(format!("ACK alias-gone {a}"));
                            }
                            Err(e) => panic!("{e}"),
                        }
                    } else {
                        let a = AliasName::new(format!("alias/r{round}-{op}")).unwrap();
                        out(format!("BEGIN alias-create {a} {id}"));
                        kms.create_alias(&c, &a, &r).await.unwrap();
                        aliases.push(a.clone());
                        out(format!("ACK alias-create {a} {id}"));
                    }
                }
            }
        }
        out("DONE".into());
    });
    // Wait to be killed, so the parent's line count alone decides when.
    let mut s = String::new();
    let _ = std::io::stdin().read_line(&mut s);
}

#[derive(Clone, Debug, PartialEq)]
enum Expect {
    Live(KeyState),
    Pending(u64),
    Purged,
}

/// A key's expected state and its acknowledged ciphertexts with their plaintexts.
type KeyModel = (Expect, Vec<(CiphertextBlob, Vec<u8>)>);

#[derive(Default)]
struct Model {
    keys: HashMap<KeyId, KeyModel>,
    aliases: HashMap<AliasName, KeyId>,
}

impl Model {
    fn apply(&mut self, line: &str) {
        let w: Vec<&str> = line.split(' ').collect();
        match w.as_slice() {
            ["ACK", "create", id, blob, pt] => {
                let id = KeyId::new(*id).unwrap();
                let b = CiphertextBlob::from_base64(blob).unwrap();
                self.keys
                    .insert(id, (Expect::Live(KeyState::Enabled), vec![(b, unhex(pt))]));
            }
            ["ACK", "encrypt", id, blob, pt] => {
                let b = CiphertextBlob::from_base64(blob).unwrap();
                let e = self.keys.get_mut(&KeyId::new(*id).unwrap()).unwrap();
                e.1.push((b, unhex(pt)));
            }
            ["ACK", "state", id, to] => {
                let to = if *to == "Enabled" {
                    KeyState::Enabled
                } else {
                    KeyState::Disabled
                };
                self.keys.get_mut(&KeyId::new(*id).unwrap()).unwrap().0 = Expect::Live(to);
            }
            ["ACK", "schedule", id, date] => {
                self.keys.get_mut(&KeyId::new(*id).unwrap()).unwrap().0 =
                    Expect::Pending(date.parse().unwrap());
            }
            ["ACK", "cancel", id] => {
                self.keys.get_mut(&KeyId::new(*id).unwrap()).unwrap().0 = Expect::Live(KeyState::Enabled);
            }
            ["ACK", "purged", id] => {
                let id = KeyId::new(*id).unwrap();
                self.keys.get_mut(&id).unwrap().0 = Expect::Purged;
                self.aliases.retain(|_, k| k != &id);
            }
            ["ACK", "alias-create", a, id] => {
                self.aliases
                    .insert(AliasName::new(*a).unwrap(), KeyId::new(*id).unwrap());
            }
            ["ACK", "alias-delete" | "alias-gone", a] => {
                self.aliases.remove(&AliasName::new(*a).unwrap());
            }
            _ => {}
        }
    }
}

/// Opens `blob` directly through the store (any key state), as the engine would.
fn store_decrypt(store: &FileStore, blob: &CiphertextBlob) -> kmskit_core::Result<Vec<u8>> {
    let p = ParsedBlob::parse(blob.as_bytes())?;
    let mut aad = p.header.to_vec();
    ctx().write_canonical(&mut aad);
    let mut buf = p.sealed.to_vec();
    store.open(
        &MaterialId::new(p.key_id.clone(), p.version_id.clone()),
        p.algorithm,
        &p.nonce,
        &aad,
        &mut buf,
    )?;
    Ok(buf)
}

/// Checks the reopened keystore against the model (allowing the in-flight operation either way), then
/// makes the model match what was found.
fn verify(
    dir: &Path,
    model: &mut Model,
    in_flight: Option<&str>,
    round: u64,
    unknown_budget: &mut u64,
) -> bool {
    let store = FileStore::open_read_only(dir, &root()).unwrap();
    let torn = store.open_report().torn_tail.is_some();
    GENERATION.store(store.stats().generation, std::sync::atomic::Ordering::Relaxed);
    let loaded = store.load().unwrap();
    assert!(loaded.problems.is_empty(), "round {round}: {:?}", loaded.problems);
    let records: HashMap<KeyId, KeyRecord> = loaded.keys.into_iter().map(|k| (k.key_id.clone(), k)).collect();
    let due_by = round_start(round) + MAX_OPS * STEP + STEP;
    let flight: Vec<&str> = in_flight.map(|l| l.split(' ').collect()).unwrap_or_default();
    let flight_on = |id: &KeyId| flight.len() >= 3 && flight[2] == id.as_str();
    for (id, (expect, blobs)) in &mut model.keys {
        let rec = records
            .get(id)
            .unwrap_or_else(|| panic!("round {round}: acknowledged key {id} is missing"));
        let found = if rec.purged {
            Expect::Purged
        } else if rec.state == KeyState::PendingDeletion {
            Expect::Pending(rec.delete_date.unwrap().unix())
        } else {
            Expect::Live(rec.state)
        };
        let ok = match (&*expect, &found) {
            (a, b) if a == b => true,
            // A purge may have happened (or be half done) once the window ended.
            (Expect::Pending(d), Expect::Purged) => *d <= due_by,
            (_, _) if flight_on(id) => matches!(
                (flight[1], &found),
                ("state", Expect::Live(_))
                    | ("schedule", Expect::Pending(_))
                    | ("cancel", Expect::Live(KeyState::Enabled))
            ),
            _ => false,
        };
        assert!(
            ok,
            "round {round}: key {id}: expected {expect:?}, found {found:?} (in flight: {in_flight:?})"
        );
        let maybe_half_purged = matches!(found, Expect::Pending(d) if d <= due_by);
        if found != Expect::Purged {
            for (b, pt) in blobs.iter() {
                match store_decrypt(&store, b) {
                    Ok(got) => assert_eq!(&got, pt, "round {round}: key {id}"),
                    Err(e) if maybe_half_purged && e.code().as_str() == "Forbidden.KeyVersionNotFound" => {}
                    Err(e) => panic!("round {round}: key {id} does not decrypt its ciphertext: {e}"),
                }
            }
        } else {
            blobs.clear();
        }
        *expect = found;
    }
    // Keys the model does not know: only a create in flight when the child was killed.
    for (id, rec) in &records {
        if !model.keys.contains_key(id) {
            assert!(*unknown_budget > 0, "round {round}: unexpected key {id}");
            *unknown_budget -= 1;
            let e = if rec.purged {
                Expect::Purged
            } else if rec.state == KeyState::PendingDeletion {
                Expect::Pending(rec.delete_date.unwrap().unix())
            } else {
                Expect::Live(rec.state)
            };
            model.keys.insert(id.clone(), (e, Vec::new()));
        }
    }
    let found: HashMap<AliasName, KeyId> = loaded.aliases.into_iter().map(|a| (a.name, a.key_id)).collect();
    let alias_in_flight =
        |a: &AliasName| flight.len() >= 3 && flight[1].starts_with("alias") && flight[2] == a.as_str();
    for (a, k) in &model.aliases {
        match found.get(a) {
            Some(f) => assert_eq!(f, k, "round {round}: alias {a}"),
            None => assert!(
                alias_in_flight(a)
                    || matches!(model.keys.get(k), Some((Expect::Purged | Expect::Pending(_), _))),
                "round {round}: alias {a} lost"
            ),
        }
    }
    for a in found.keys() {
        assert!(
            model.aliases.contains_key(a) || alias_in_flight(a),
            "round {round}: unexpected alias {a}"
        );
    }
    model.aliases = found;
    // Ids of purged keys are never reused and their tombstones stay.
    let purged: HashSet<&KeyId> = records.values().filter(|r| r.purged).map(|r| &r.key_id).collect();
    for id in purged {
        assert!(records[id].versions.is_empty());
    }
    torn
}

#[test]
fn sigkill_at_random_points_loses_nothing_acknowledged() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("ks");
    let seed = std::env::var("KMSKIT_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test seed {seed} (set KMSKIT_CRASH_SEED to replay)");
    let mut rng = Rng(seed | 1);
    let mut model = Model::default();
    let mut unknown_budget = 0;
    let mut acked_total = 0;
    let mut torn_tails = 0;
    for round in 0..ROUNDS {
        let kill_after = rng.below(60);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1", "-q"])
            .env("KMSKIT_CRASH_DIR", &dir)
            .env("KMSKIT_CRASH_ROUND", round.to_string())
            .env("KMSKIT_CRASH_SEED", rng.next().to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut in_flight: Option<String> = None;
        let mut lines = 0;
        let mut killed = kill_after == 0;
        if killed {
            child.kill().unwrap();
        }
        let mut line = String::new();
        loop {
            line.clear();
            if out.read_line(&mut line).unwrap() == 0 {
                break;
            }
            // A line cut short by the kill was never acknowledged.
            let Some(l) = line.strip_suffix('\n') else { break };
            if l.starts_with("BEGIN ") {
                in_flight = Some(l.to_owned());
            } else if l.starts_with("ACK ") {
                model.apply(l);
                acked_total += 1;
                if !l.starts_with("ACK purged") && !l.starts_with("ACK encrypt") {
                    in_flight = None;
                }
            }
            lines += 1;
            if !killed && lines >= kill_after {
                child.kill().unwrap();
                killed = true;
            }
        }
        let status = child.wait().unwrap();
        if !killed || status.success() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("round {round}: child ended by itself ({status}): {err}");
        }
        if in_flight.as_deref() == Some("BEGIN create") {
            unknown_budget += 1;
        }
        if !dir.join("keystore.header").exists() {
            continue; // killed before the keystore existed
        }
        if verify(&dir, &mut model, in_flight.as_deref(), round, &mut unknown_budget) {
            torn_tails += 1;
        }
    }
    let live = model
        .keys
        .values()
        .filter(|(e, _)| matches!(e, Expect::Live(_)))
        .count();
    let purged = model.keys.values().filter(|(e, _)| *e == Expect::Purged).count();
    println!(
        "crash test: {ROUNDS} kills, {acked_total} acknowledged operations, {} keys ({live} live, {purged} \
         purged), {torn_tails} torn tails repaired, journal generation {}",
        model.keys.len(),
        GENERATION.load(std::sync::atomic::Ordering::Relaxed)
    );
    assert!(
        acked_total > 100,
        "too few operations to mean anything: {acked_total}"
    );
    // Finally, through the engine: every enabled key decrypts all its ciphertexts.
    let kms = FileKms::open_dir(&dir, &root()).unwrap();
    assert!(kms.load_problems().is_empty());
    for (e, blobs) in model.keys.values() {
        if *e == Expect::Live(KeyState::Enabled) {
            for (b, pt) in blobs {
                assert_eq!(&decrypt(&kms, b).unwrap(), pt);
            }
        }
    }
}
