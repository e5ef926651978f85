//! Concurrent use and `Debug` redaction.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::blob::CiphertextBlob;
use crate::context::EncryptionContext;
use crate::error::ErrorCode;
use crate::id::{AliasName, KeyId};
use crate::key::DataKeySpec;
use crate::provider::{Caller, KeyProvider};
use crate::secret::{DataKey, SecretBytes};

use super::Fixture;
use super::support::{by_id, create, ctx, err, list_all_aliases, list_all_keys, ok, unique_alias};

/// Concurrent tasks.
const TASKS: usize = 32;
/// Iterations per task.
const ITERATIONS: usize = 4;

/// What one task made, to check afterwards.
#[derive(Default)]
struct Made {
    keys: Vec<KeyId>,
    aliases: Vec<(AliasName, KeyId)>,
    blobs: Vec<(CiphertextBlob, EncryptionContext, Vec<u8>)>,
    data_keys: Vec<(CiphertextBlob, EncryptionContext, DataKey)>,
}

struct Worker {
    p: Arc<dyn KeyProvider>,
    caller: Caller,
    shared: KeyId,
    enforces: bool,
    aliases: bool,
}

impl Worker {
    fn cl(&self) -> Caller {
        self.caller.clone().with_request_id(KeyId::generate().to_string())
    }

    async fn run(self, task: usize) -> Made {
        let mut m = Made::default();
        let p = &self.p;
        for it in 0..ITERATIONS {
            let w = format!("task {task} iteration {it}");
            let c = ok(
                EncryptionContext::from_pairs([("task", task.to_string()), ("it", it.to_string())]),
                "context",
            );
            let key = ok(
                p.create_key(&self.cl(), crate::CreateKey::new(format!("kmskit testkit: {w}")))
                    .await,
                format_args!("{w}: CreateKey"),
            )
            .key_id;
            m.keys.push(key.clone());
            let id = by_id(&key);
            let pt = w.clone().into_bytes();
            let enc = ok(
                p.encrypt(&self.cl(), &id, &pt, &c).await,
                format_args!("{w}: Encrypt"),
            );
            assert_eq!(enc.key_id, key);
            let dec = ok(
                p.decrypt(&self.cl(), &enc.ciphertext_blob, &c).await,
                format_args!("{w}: Decrypt"),
            );
            assert!(dec.plaintext[..] == pt[..], "{w}: Decrypt returns the plaintext");
            m.blobs.push((enc.ciphertext_blob, c.clone(), pt.clone()));

            ok(
                p.disable_key(&self.cl(), &id).await,
                format_args!("{w}: DisableKey"),
            );
            if self.enforces {
                err(
                    p.encrypt(&self.cl(), &id, &pt, &c).await,
                    ErrorCode::Disabled,
                    format_args!("{w}: Encrypt while disabled"),
                );
            }
            ok(
                p.enable_key(&self.cl(), &id).await,
                format_args!("{w}: EnableKey"),
            );
            let again = ok(
                p.encrypt(&self.cl(), &id, &pt, &c).await,
                format_args!("{w}: Encrypt after EnableKey"),
            );
            m.blobs.push((again.ciphertext_blob, c.clone(), pt.clone()));

            // The shared key is used by every task at once, never disabled.
            let shared = by_id(&self.shared);
            let enc = ok(
                p.encrypt(&self.cl(), &shared, &pt, &c).await,
                format_args!("{w}: Encrypt under the shared key"),
            );
            m.blobs.push((enc.ciphertext_blob, c.clone(), pt.clone()));
            let g = ok(
                p.generate_data_key(&self.cl(), &shared, DataKeySpec::Aes256.into(), &c)
                    .await,
                format_args!("{w}: GenerateDataKey"),
            );
            m.data_keys.push((g.ciphertext_blob, c.clone(), g.plaintext));

            if self.aliases && it == 0 {
                let a = unique_alias(&format!("task-{task}"));
                ok(
                    p.create_alias(&self.cl(), &a, &id).await,
                    format_args!("{w}: CreateAlias"),
                );
                m.aliases.push((a, key.clone()));
            }
        }
        m
    }
}

/// 32 tokio tasks × 4 iterations at once, each creating a key, encrypting, decrypting, disabling,
/// enabling and encrypting again, plus encrypting and generating data keys under one shared key (and
/// creating an alias). Afterwards every key made is listed, every alias too, and every ciphertext and data
/// key still decrypts.
///
/// # Panics
/// When the provider does not conform, or a task panicked (its panic is re-raised).
pub async fn concurrency(fx: &Fixture) {
    let shared = create(fx, "concurrency shared").await.key_id;
    let handles: Vec<_> = (0..TASKS)
        .map(|task| {
            let w = Worker {
                p: Arc::clone(fx.provider()),
                caller: fx.caller(),
                shared: shared.clone(),
                enforces: fx.capabilities().enforces_key_states,
                aliases: fx.capabilities().aliases,
            };
            tokio::spawn(w.run(task))
        })
        .collect();
    let mut all = Made::default();
    for h in handles {
        match h.await {
            Ok(m) => {
                all.keys.extend(m.keys);
                all.aliases.extend(m.aliases);
                all.blobs.extend(m.blobs);
                all.data_keys.extend(m.data_keys);
            }
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => panic!("a task did not finish: {e}"),
        }
    }
    assert_eq!(all.keys.len(), TASKS * ITERATIONS);

    let p = fx.provider();
    for k in &all.keys {
        ok(p.enable_key(&fx.caller(), &by_id(k)).await, "EnableKey");
    }
    let listed = list_all_keys(fx, &[]).await;
    let missing: Vec<_> = all.keys.iter().filter(|k| !listed.contains(k)).collect();
    assert!(
        missing.is_empty(),
        "ListKeys misses keys made concurrently: {missing:?}"
    );
    let mut unique = listed.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), listed.len(), "ListKeys lists no key twice");
    if !all.aliases.is_empty() {
        let aliases = list_all_aliases(fx, 100).await;
        for (a, k) in &all.aliases {
            assert!(
                aliases.iter().any(|i| &i.alias_name == a && &i.key_id == k),
                "ListAliases misses {a} made concurrently"
            );
        }
    }
    for (blob, c, pt) in &all.blobs {
        let d = ok(p.decrypt(&fx.caller(), blob, c).await, "Decrypt afterwards");
        assert!(
            d.plaintext[..] == pt[..],
            "a ciphertext made concurrently decrypts"
        );
    }
    for (blob, c, dk) in &all.data_keys {
        let k = ok(
            p.decrypt_data_key(&fx.caller(), blob, c).await,
            "decrypt_data_key afterwards",
        );
        assert!(&k == dk, "a data key made concurrently decrypts");
    }
}

/// Renderings of `secret` that must not appear in a `Debug` output: the text, hex (both cases), Base64,
/// and the decimal list `Debug` gives a byte slice — each also for every 4-byte window.
fn renderings(secret: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(s) = std::str::from_utf8(secret) {
        if secret.len() >= 4 {
            out.push(s.to_owned());
        }
    }
    if secret.len() >= 3 {
        out.push(STANDARD.encode(secret).trim_end_matches('=').to_owned());
    }
    for w in secret.windows(4) {
        let hex: String = w.iter().map(|b| format!("{b:02x}")).collect();
        out.push(hex.to_uppercase());
        out.push(hex);
        out.push(w.iter().map(|b| b.to_string()).collect::<Vec<_>>().join(","));
    }
    out
}

/// Fails when `debug` (with whitespace removed, so `{:#?}` lists are caught too) shows any rendering of
/// any of `secrets`.
fn assert_redacted(what: &str, debug: &str, secrets: &[&[u8]]) {
    let squeezed: String = debug.chars().filter(|c| !c.is_whitespace()).collect();
    for secret in secrets {
        for r in renderings(secret) {
            assert!(
                !debug.contains(&r) && !squeezed.contains(&r),
                "{what}: Debug output shows secret bytes ({r:?}): {debug}"
            );
        }
    }
}

/// Fails when `debug` holds something shaped like key material: 32+ hex digits in a row, 43+ Base64
/// characters in a row, or a list of 16+ byte values.
fn assert_no_material(what: &str, debug: &str) {
    let run = |pred: fn(char) -> bool| {
        let (mut best, mut cur) = (0, 0);
        for c in debug.chars() {
            cur = if pred(c) { cur + 1 } else { 0 };
            best = best.max(cur);
        }
        best
    };
    let hex = run(|c| c.is_ascii_hexdigit());
    assert!(
        hex < 32,
        "{what}: Debug output has {hex} hex digits in a row: {debug}"
    );
    let b64 = run(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/');
    assert!(
        b64 < 43,
        "{what}: Debug output has {b64} Base64 characters in a row: {debug}"
    );
    let squeezed: String = debug.chars().filter(|c| !c.is_whitespace()).collect();
    let (mut best, mut cur) = (0, 0);
    for tok in squeezed.split(',') {
        let t = tok.trim_start_matches('[');
        cur = if !t.is_empty() && t.len() <= 3 && t.bytes().all(|b| b.is_ascii_digit()) {
            cur + 1
        } else {
            0
        };
        best = best.max(cur);
    }
    assert!(
        best < 16,
        "{what}: Debug output has a list of {best} small numbers: {debug}"
    );
}

/// `Debug` of `Decrypted`, `GeneratedDataKey`, `DataKey` and `SecretBytes` shows no plaintext or key
/// bytes (checked as text, hex, Base64 and decimal lists, in `{:?}` and `{:#?}`), and neither does the
/// provider's `Debug` after use — which also holds nothing shaped like key material.
///
/// # Panics
/// When a `Debug` output leaks.
pub async fn debug_redaction(fx: &Fixture) {
    let p = fx.provider();
    let key = create(fx, "debug redaction").await;
    let id = by_id(&key.key_id);
    let c = ctx([("case", "debug")]);
    let text: &[u8] = b"kmskit-testkit plaintext: Tr0ub4dor&3 correct horse battery staple";
    let binary: Vec<u8> = (0u8..48).map(|i| i.wrapping_mul(73).wrapping_add(0xA5)).collect();
    let mut secrets: Vec<Vec<u8>> = vec![text.to_vec(), binary.clone()];

    for pt in [text, &binary[..]] {
        let enc = ok(p.encrypt(&fx.caller(), &id, pt, &c).await, "Encrypt");
        let dec = ok(p.decrypt(&fx.caller(), &enc.ciphertext_blob, &c).await, "Decrypt");
        for d in [format!("{dec:?}"), format!("{dec:#?}")] {
            assert_redacted("Decrypted", &d, &[pt]);
        }
        assert!(dec.plaintext[..] == *pt);
    }

    let g = ok(
        p.generate_data_key(&fx.caller(), &id, DataKeySpec::Aes256.into(), &c)
            .await,
        "GenerateDataKey",
    );
    let dk = g.plaintext.expose_secret().to_vec();
    let dk_text = STANDARD.encode(&dk).into_bytes();
    for d in [format!("{g:?}"), format!("{g:#?}")] {
        assert_redacted("GeneratedDataKey", &d, &[&dk, &dk_text]);
    }
    for d in [format!("{:?}", g.plaintext), format!("{:#?}", g.plaintext)] {
        assert_redacted("DataKey", &d, &[&dk, &dk_text]);
    }
    let back = ok(
        p.decrypt_data_key(&fx.caller(), &g.ciphertext_blob, &c).await,
        "decrypt_data_key",
    );
    assert_redacted(
        "DataKey from decrypt_data_key",
        &format!("{back:?}"),
        &[&dk, &dk_text],
    );
    let raw = ok(
        p.decrypt(&fx.caller(), &g.ciphertext_blob, &c).await,
        "Decrypt a data key",
    );
    assert_redacted("Decrypted data key", &format!("{raw:?}"), &[&dk, &dk_text]);
    let s = SecretBytes::from_slice(&dk);
    for d in [format!("{s:?}"), format!("{s:#?}")] {
        assert_redacted("SecretBytes", &d, &[&dk, &dk_text]);
    }
    let wrapped = DataKey::new(SecretBytes::from_slice(&binary));
    assert_redacted("DataKey", &format!("{wrapped:#?}"), &[&binary]);
    secrets.push(dk);
    secrets.push(dk_text);

    let refs: Vec<&[u8]> = secrets.iter().map(Vec::as_slice).collect();
    for d in [format!("{p:?}"), format!("{p:#?}")] {
        assert_redacted("the provider", &d, &refs);
        assert_no_material("the provider", &d);
    }
    assert_no_material("the fixture", &format!("{fx:?}"));
}
