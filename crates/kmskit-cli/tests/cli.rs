//! Drives the real `kmskit` binary through a temporary data directory: zero set-up, the whole key
//! lifecycle, aliases, Encrypt/Decrypt, data keys, file encryption of 100 MiB, tampering, and the
//! scripting contract (JSON field names, `--fields`, error lines and exit statuses).

use std::path::Path;

use assert_cmd::Command;
use serde_json::Value;

/// A command with its own data directory and no root key from the environment.
fn kmskit(data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kmskit"));
    c.env("KMSKIT_DATA_DIR", data)
        .env_remove("KMSKIT_ROOT_KEY")
        .env_remove("KMSKIT_ROOT_KEY_FILE")
        .env_remove("KMSKIT_KEYSTORE");
    c
}

fn json(data: &Path, args: &[&str]) -> Value {
    let out = kmskit(data)
        .args(args)
        .args(["--output", "json"])
        .assert()
        .success();
    serde_json::from_slice(&out.get_output().stdout).expect("JSON output")
}

/// Runs a command that must fail; returns its stderr.
fn fails(data: &Path, args: &[&str], code: i32) -> String {
    let out = kmskit(data).args(args).assert().code(code);
    String::from_utf8_lossy(&out.get_output().stderr).into_owned()
}

fn state(data: &Path, key: &str) -> String {
    json(data, &["key", "describe", key])["KeyState"]
        .as_str()
        .expect("KeyState")
        .to_owned()
}

#[test]
fn first_run_generates_a_private_root_key_and_says_where() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let out = kmskit(&data).args(["key", "list"]).assert().success();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    let key_file = data.join("root.key");
    assert!(err.contains(&key_file.display().to_string()), "{err}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Later runs use it silently and see the same keystore.
    let k = json(&data, &["key", "create", "--description", "kept"]);
    let out = kmskit(&data)
        .args(["key", "list", "-o", "json"])
        .assert()
        .success();
    assert!(out.get_output().stderr.is_empty());
    let list: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    assert_eq!(list[0]["KeyId"], k["KeyId"]);
}

#[test]
fn whole_lifecycle_through_the_binary() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let meta = json(
        d,
        &["key", "create", "--description", "orders db", "--tag", "team=pay"],
    );
    // The DescribeKey field names of the API spec.
    for f in [
        "KeyId",
        "Arn",
        "KeyState",
        "KeySpec",
        "KeyUsage",
        "Creator",
        "CreationDate",
        "Description",
        "DeleteDate",
        "Origin",
        "ProtectionLevel",
        "PrimaryKeyVersion",
    ] {
        assert!(meta.get(f).is_some(), "missing {f} in {meta}");
    }
    assert_eq!(meta["Description"], "orders db");
    assert_eq!(meta["KeyState"], "Enabled");
    let id = meta["KeyId"].as_str().unwrap().to_owned();

    // --fields selects exactly those fields.
    let sel = json(d, &["key", "describe", &id, "--fields", "KeyState,Creator"]);
    let mut keys: Vec<&str> = sel.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["Creator", "KeyState"]);
    assert_eq!(sel["KeyState"], "Enabled");
    let err = fails(d, &["key", "describe", &id, "--fields", "KeyState,Nope"], 2);
    assert!(
        err.starts_with("error: Cli.Usage: unknown field \"Nope\""),
        "{err}"
    );

    // Aliases.
    json(d, &["alias", "create", "alias/orders", &id]);
    let aliases = json(d, &["alias", "list"]);
    assert_eq!(aliases[0]["AliasName"], "alias/orders");
    assert_eq!(aliases[0]["KeyId"], id.as_str());
    let other = json(d, &["key", "create"])["KeyId"].as_str().unwrap().to_owned();
    json(d, &["alias", "update", "alias/orders", &other]);
    assert_eq!(
        json(d, &["key", "describe", "alias/orders"])["KeyId"],
        other.as_str()
    );
    json(d, &["alias", "update", "alias/orders", &id]);

    // Disable: Encrypt fails with the API's code; enable again.
    assert_eq!(
        json(d, &["key", "disable", "alias/orders"])["KeyState"],
        "Disabled"
    );
    let err = String::from_utf8_lossy(
        &kmskit(d)
            .args(["encrypt", "--key", "alias/orders"])
            .write_stdin("x")
            .assert()
            .code(1)
            .get_output()
            .stderr,
    )
    .into_owned();
    assert!(err.starts_with("error: Rejected.Disabled: "), "{err}");
    json(d, &["key", "enable", &id]);
    assert_eq!(state(d, &id), "Enabled");

    // Deletion window and cancel.
    let err = fails(
        d,
        &["key", "schedule-deletion", &id, "--pending-window-days", "3"],
        1,
    );
    assert!(err.starts_with("error: InvalidParameter"), "{err}");
    let s = json(
        d,
        &["key", "schedule-deletion", &id, "--pending-window-days", "7"],
    );
    assert_eq!(s["KeyState"], "PendingDeletion");
    assert!(!s["DeleteDate"].as_str().unwrap().is_empty());
    json(d, &["key", "cancel-deletion", &id]);
    assert_eq!(state(d, &id), "Enabled");

    // List shows both keys; alias delete.
    let list = json(d, &["key", "list", "--fields", "KeyId,KeyState"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    json(d, &["alias", "delete", "alias/orders"]);
    assert_eq!(json(d, &["alias", "list"]).as_array().unwrap().len(), 0);
    let err = fails(d, &["key", "describe", "alias/orders"], 1);
    assert!(err.starts_with("error: Forbidden.AliasNotFound: "), "{err}");
    let err = fails(d, &["key", "describe", "not a key ref!"], 1);
    assert!(err.starts_with("error: InvalidParameter"), "{err}");
}

#[test]
fn encrypt_decrypt_and_data_keys() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let id = json(d, &["key", "create"])["KeyId"].as_str().unwrap().to_owned();
    let ctx = r#"{"order":"42"}"#;
    let out = kmskit(d)
        .args(["encrypt", "--key", &id, "--context", ctx])
        .write_stdin("Hello KMS")
        .assert()
        .success();
    let blob = out.get_output().stdout.clone();
    let out = kmskit(d)
        .args(["decrypt", "--context", ctx])
        .write_stdin(blob.clone())
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, b"Hello KMS");
    // The wrong context is refused; so is a flipped blob.
    let err = String::from_utf8_lossy(
        &kmskit(d)
            .args(["decrypt", "--context", r#"{"order":"43"}"#])
            .write_stdin(blob.clone())
            .assert()
            .code(1)
            .get_output()
            .stderr,
    )
    .into_owned();
    assert!(err.starts_with("error: InvalidParameter"), "{err}");
    // Files in and out, raw blobs.
    let pt = t.path().join("pt");
    let ct = t.path().join("ct");
    let back = t.path().join("back");
    std::fs::write(&pt, vec![7u8; 6144]).unwrap();
    kmskit(d)
        .args(["encrypt", "--key", &id, "--raw", "--in"])
        .arg(&pt)
        .arg("--out")
        .arg(&ct)
        .assert()
        .success();
    kmskit(d)
        .args(["decrypt", "--raw", "--in"])
        .arg(&ct)
        .arg("--out")
        .arg(&back)
        .assert()
        .success();
    assert_eq!(std::fs::read(&back).unwrap(), vec![7u8; 6144]);
    // One byte over the 6 KiB limit.
    std::fs::write(&pt, vec![7u8; 6145]).unwrap();
    let err = String::from_utf8_lossy(
        &kmskit(d)
            .args(["encrypt", "--key", &id, "--in"])
            .arg(&pt)
            .assert()
            .code(1)
            .get_output()
            .stderr,
    )
    .into_owned();
    assert!(err.starts_with("error: InvalidParameter"), "{err}");

    // A data key: its blob decrypts to the Base64 of the plaintext (the model service's convention).
    let dk = json(d, &["data-key", "generate", "--key", &id, "--context", ctx]);
    let plain = dk["Plaintext"].as_str().unwrap();
    let out = kmskit(d)
        .args(["decrypt", "--context", ctx])
        .write_stdin(dk["CiphertextBlob"].as_str().unwrap())
        .assert()
        .success();
    assert_eq!(String::from_utf8_lossy(&out.get_output().stdout), plain);
    let dk = json(
        d,
        &[
            "data-key",
            "generate",
            "--key",
            &id,
            "--number-of-bytes",
            "16",
            "--without-plaintext",
        ],
    );
    assert!(dk.get("Plaintext").is_none());
    assert!(dk["CiphertextBlob"].as_str().is_some());
}

/// Deterministic, incompressible-looking bytes.
fn pseudo_random(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    v
}

#[test]
fn file_encrypt_100_mib_round_trips_and_tampering_leaves_no_output() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let id = json(d, &["key", "create"])["KeyId"].as_str().unwrap().to_owned();
    json(d, &["alias", "create", "alias/files", &id]);
    let input = t.path().join("big.bin");
    let enc = t.path().join("big.bin.kms");
    let out = t.path().join("big.out");
    let data = pseudo_random(100 << 20);
    std::fs::write(&input, &data).unwrap();
    let r = json(
        d,
        &[
            "file",
            "encrypt",
            "--key",
            "alias/files",
            input.to_str().unwrap(),
            enc.to_str().unwrap(),
        ],
    );
    assert_eq!(r["Bytes"], 100u64 << 20);
    // Decrypt in a later process: the key comes from the header.
    kmskit(d)
        .args(["file", "decrypt"])
        .arg(&enc)
        .arg(&out)
        .assert()
        .success();
    assert!(std::fs::read(&out).unwrap() == data, "decrypted file differs");
    std::fs::remove_file(&out).unwrap();

    // Rewrap moves the data key to another key; the body is untouched and still decrypts.
    let other = json(d, &["key", "create"])["KeyId"].as_str().unwrap().to_owned();
    let before = std::fs::read(&enc).unwrap();
    json(d, &["file", "rewrap", enc.to_str().unwrap(), "--key", &other]);
    let after = std::fs::read(&enc).unwrap();
    assert_eq!(before.len(), after.len());
    assert_ne!(before, after);
    json(d, &["key", "disable", &id]);
    kmskit(d)
        .args(["file", "decrypt"])
        .arg(&enc)
        .arg(&out)
        .assert()
        .success();
    std::fs::remove_file(&out).unwrap();

    // One flipped byte in the body: non-zero exit, no output file, no temporary left behind.
    let mut bad = after;
    let at = bad.len() / 2;
    bad[at] ^= 0x01;
    std::fs::write(&enc, &bad).unwrap();
    let err = fails(
        d,
        &["file", "decrypt", enc.to_str().unwrap(), out.to_str().unwrap()],
        1,
    );
    assert!(err.starts_with("error: Stream.ChunkAuthFailed"), "{err}");
    assert!(!out.exists());
    let leftovers: Vec<_> = std::fs::read_dir(t.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains("kmskit-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Encrypting under a missing key also leaves nothing.
    let enc2 = t.path().join("never.kms");
    let err = fails(
        d,
        &[
            "file",
            "encrypt",
            "--key",
            "alias/missing",
            input.to_str().unwrap(),
            enc2.to_str().unwrap(),
        ],
        1,
    );
    assert!(err.starts_with("error: Forbidden.AliasNotFound"), "{err}");
    assert!(!enc2.exists());
}

#[test]
fn root_key_sources_and_failures() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path().join("data");
    let ks = t.path().join("ks");
    let key = "QUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUE="; // Base64 of 32 × 'A'
    let create = |env_key: &str| {
        let mut c = kmskit(&d);
        c.env("KMSKIT_ROOT_KEY", env_key).arg("--keystore").arg(&ks);
        c
    };
    create(key)
        .args(["key", "create", "-o", "json"])
        .assert()
        .success();
    // The environment key was used: no root.key was generated.
    assert!(!d.join("root.key").exists());
    // A wrong root key is an access error with its code.
    let other = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";
    let out = create(other).args(["key", "list"]).assert().code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.starts_with("error: Forbidden.NoPermission: "), "{err}");
    // The same key from a file works.
    let f = t.path().join("k");
    std::fs::write(&f, key).unwrap();
    kmskit(&d)
        .arg("--keystore")
        .arg(&ks)
        .arg("--root-key-file")
        .arg(&f)
        .args(["key", "list", "-o", "json"])
        .assert()
        .success();
    // An existing keystore, no key anywhere, no terminal: a clear error, not a new key.
    let out = kmskit(&d)
        .arg("--keystore")
        .arg(&ks)
        .args(["key", "list"])
        .assert()
        .code(1);
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.starts_with("error: Cli.NoRootKey: "), "{err}");
    assert!(!d.join("root.key").exists());
    // Usage errors exit 2.
    kmskit(&d).args(["key", "frobnicate"]).assert().code(2);
}

#[test]
fn rotation_keeps_old_ciphertexts_and_sets_the_policy() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let id = json(d, &["key", "create"])["KeyId"].as_str().unwrap().to_owned();
    let encrypt = |d: &Path| {
        kmskit(d)
            .args(["encrypt", "--key", &id])
            .write_stdin("generation")
            .assert()
            .success()
            .get_output()
            .stdout
            .clone()
    };
    let old = encrypt(d);
    let v2 = json(d, &["key", "rotate", &id]);
    assert_eq!(v2["KeyId"], id.as_str());
    let v2_id = v2["KeyVersionId"].as_str().expect("KeyVersionId").to_owned();
    let new = encrypt(d);
    for blob in [old, new] {
        let out = kmskit(d).arg("decrypt").write_stdin(blob).assert().success();
        assert_eq!(out.get_output().stdout, b"generation");
    }
    let meta = json(d, &["key", "describe", &id]);
    assert_eq!(meta["PrimaryKeyVersion"], v2_id.as_str(), "{meta}");

    let p = json(d, &["key", "set-rotation", &id, "--interval", "30d"]);
    assert_eq!(p["AutomaticRotation"], "Enabled", "{p}");
    assert_eq!(p["RotationInterval"], "2592000s", "{p}");
    assert!(
        p["NextRotationDate"].as_str().is_some_and(|s| !s.is_empty()),
        "{p}"
    );
    let p = json(d, &["key", "set-rotation", &id, "--disable"]);
    assert_eq!(p["AutomaticRotation"], "Disabled", "{p}");

    let err = fails(d, &["key", "set-rotation", &id, "--interval", "3d"], 1);
    assert!(err.starts_with("error: InvalidParameter"), "{err}");
    let err = fails(d, &["key", "set-rotation", &id], 2);
    assert!(err.contains("--interval"), "{err}");
}

#[test]
fn audit_trail_lookup_verify_and_usage() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let id = json(d, &["key", "create"])["KeyId"].as_str().unwrap().to_owned();
    let mut blobs = Vec::new();
    for _ in 0..3 {
        let out = kmskit(d)
            .args([
                "encrypt",
                "--key",
                &id,
                "--context",
                r#"{"order":"secret-value-42"}"#,
            ])
            .write_stdin("audited plaintext")
            .assert()
            .success();
        blobs.push(out.get_output().stdout.clone());
    }
    let out = kmskit(d)
        .args(["decrypt", "--context", r#"{"order":"secret-value-42"}"#])
        .write_stdin(blobs[0].clone())
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, b"audited plaintext");
    // A failed call is audited too.
    fails(d, &["encrypt", "--key", "alias/missing"], 1);

    let ev = json(
        d,
        &["audit", "lookup", "--action", "Encrypt,Decrypt", "--since", "1d"],
    );
    let ev = ev.as_array().unwrap();
    assert_eq!(ev.len(), 5, "{ev:?}");
    let outcomes: Vec<&str> = ev.iter().map(|e| e["Outcome"].as_str().unwrap()).collect();
    assert_eq!(outcomes, ["Success", "Success", "Success", "Success", "Failed"]);
    assert_eq!(ev[0]["KeyId"], id.as_str());
    assert_eq!(ev[0]["ContextKeys"][0], "order");
    let only_key = json(d, &["audit", "lookup", "--key", &id, "--action", "Decrypt"]);
    assert_eq!(only_key.as_array().unwrap().len(), 1);

    // Neither plaintext nor context values reach the trail.
    let audit_dir = d.join("keystore").join("audit");
    let mut text = String::new();
    for f in std::fs::read_dir(&audit_dir).unwrap() {
        text += &std::fs::read_to_string(f.unwrap().path()).unwrap_or_default();
    }
    assert!(!text.is_empty());
    assert!(!text.contains("audited plaintext") && !text.contains("secret-value-42"));

    let v = json(d, &["audit", "verify"]);
    assert_eq!(v["Verified"], true);
    let events = v["Events"].as_u64().unwrap();
    assert!(events >= 6, "{v}");

    let u = json(d, &["usage", "--since", "1d"]);
    assert_eq!(u["Keys"], 1);
    assert!(u["TotalCalls"].as_u64().unwrap() >= 5, "{u}");
    let rows = u["Calls"].as_array().unwrap();
    assert!(
        rows.iter()
            .any(|r| r["KeyId"] == id.as_str() && r["Action"] == "Encrypt" && r["Calls"] == 3),
        "{u}"
    );

    // Edit one event: verify names it and fails.
    let seg = std::fs::read_dir(&audit_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read_to_string(p).is_ok_and(|s| s.contains("\"Encrypt\"")))
        .expect("a segment with Encrypt events");
    let s = std::fs::read_to_string(&seg).unwrap();
    std::fs::write(&seg, s.replacen("\"Encrypt\"", "\"Decrypt\"", 1)).unwrap();
    let err = fails(d, &["audit", "verify"], 1);
    assert!(err.starts_with("error: Audit.ChainBroken: "), "{err}");
}

/// Kills the child when dropped, so a failed assertion leaves no server behind.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_dev_answers_a_signed_call_over_the_tools_keystore() {
    use kmskit_server::client::{Client, SignatureVersion};
    use kmskit_server::sign::AccessKeySecret;

    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let port_file = t.path().join("serve.port");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kmskit"))
        .env("KMSKIT_DATA_DIR", &data)
        .env_remove("KMSKIT_ROOT_KEY")
        .env_remove("KMSKIT_ROOT_KEY_FILE")
        .env_remove("KMSKIT_KEYSTORE")
        .env("KMSKIT_DEV_ACCESS_KEY_ID", "LTAIclitest")
        .env("KMSKIT_DEV_ACCESS_KEY_SECRET", "cli-test-secret")
        .args(["serve", "--dev", "--bind", "127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Child(child);
    let mut port = None;
    for _ in 0..300 {
        if let Ok(s) = std::fs::read_to_string(&port_file) {
            port = s.trim().parse::<u16>().ok();
            if port.is_some() {
                break;
            }
        }
        assert!(child.0.try_wait().unwrap().is_none(), "kmskit serve exited early");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let port = port.expect("kmskit serve wrote its port");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let key_id = rt.block_on(async {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut c = Client::connect(
            addr,
            "LTAIclitest",
            AccessKeySecret::new("cli-test-secret"),
            SignatureVersion::V3,
        )
        .await
        .unwrap();
        let r = c
            .call("CreateKey", &[("Description", "made over HTTP")])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        r.body["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned()
    });
    drop(child);

    // The key is in the tool's own keystore.
    let d = json(&data, &["key", "describe", &key_id]);
    assert_eq!(d["Description"], "made over HTTP");
}

#[test]
fn serve_needs_dev_or_a_config_without_a_keystore_table() {
    let t = tempfile::tempdir().unwrap();
    let data = t.path().join("data");
    let err = fails(&data, &["serve"], 2);
    assert!(err.contains("--config"), "{err}");
    let cfg = t.path().join("server.toml");
    std::fs::write(
        &cfg,
        "bind = \"127.0.0.1:0\"\n[keystore]\ndir = \"/nowhere\"\nroot_key_env = \"X\"\n",
    )
    .unwrap();
    let err = fails(&data, &["serve", "--config", cfg.to_str().unwrap()], 2);
    assert!(err.contains("[keystore]"), "{err}");
}

#[test]
fn endpoint_runs_the_same_commands_against_kmskit_serve() {
    let t = tempfile::tempdir().unwrap();
    let server_data = t.path().join("server");
    let client_data = t.path().join("client");
    let port_file = t.path().join("serve.port");
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_kmskit"))
        .env("KMSKIT_DATA_DIR", &server_data)
        .env_remove("KMSKIT_ROOT_KEY")
        .env_remove("KMSKIT_ROOT_KEY_FILE")
        .env_remove("KMSKIT_KEYSTORE")
        .env("KMSKIT_DEV_ACCESS_KEY_ID", "LTAIendpoint")
        .env("KMSKIT_DEV_ACCESS_KEY_SECRET", "endpoint-secret")
        .args(["serve", "--dev", "--bind", "127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Child(child);
    let mut port = None;
    for _ in 0..300 {
        if let Ok(s) = std::fs::read_to_string(&port_file) {
            port = s.trim().parse::<u16>().ok();
            if port.is_some() {
                break;
            }
        }
        assert!(child.0.try_wait().unwrap().is_none(), "kmskit serve exited early");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let endpoint = format!("http://127.0.0.1:{}", port.expect("kmskit serve wrote its port"));
    let remote = |secret: &str| {
        let mut c = kmskit(&client_data);
        c.env("KMSKIT_ENDPOINT", &endpoint)
            .env("ALIBABA_CLOUD_ACCESS_KEY_ID", "LTAIendpoint")
            .env("ALIBABA_CLOUD_ACCESS_KEY_SECRET", secret)
            .env_remove("ALIBABA_CLOUD_SECURITY_TOKEN")
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .env_remove("HTTPS_PROXY")
            .env_remove("https_proxy")
            .args(["--output", "json"]);
        c
    };
    let out = remote("endpoint-secret")
        .args(["key", "create", "--description", "over the wire"])
        .assert()
        .success();
    let meta: Value = serde_json::from_slice(&out.get_output().stdout).unwrap();
    let id = meta["KeyId"].as_str().expect("KeyId").to_owned();
    remote("endpoint-secret")
        .args(["alias", "create", "alias/wire", &id])
        .assert()
        .success();
    let blob = remote("endpoint-secret")
        .args(["encrypt", "--key", "alias/wire", "--context", r#"{"a":"b"}"#])
        .write_stdin("Hello KMS")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let out = remote("endpoint-secret")
        .args(["decrypt", "--context", r#"{"a":"b"}"#])
        .write_stdin(blob)
        .assert()
        .success();
    assert_eq!(out.get_output().stdout, b"Hello KMS");
    // Asymmetric keys through the server: sign, verify, public key.
    let scratch = t.path().join("scratch");
    std::fs::create_dir_all(&scratch).unwrap();
    let over_the_wire = || remote("endpoint-secret");
    let (ec, ec_v) = sign_and_verify(&scratch, &over_the_wire, "EC_P256", "ECDSA_SHA_256");
    let out = remote("endpoint-secret")
        .args(["public-key", "--key", &ec, "--key-version", &ec_v])
        .assert()
        .success();
    assert!(String::from_utf8_lossy(&out.get_output().stdout).starts_with("-----BEGIN PUBLIC KEY-----"));
    // The server's error codes come through; a wrong secret is refused by the server.
    let err = remote("endpoint-secret")
        .args(["key", "schedule-deletion", &id, "--pending-window-days", "3"])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    let err = String::from_utf8_lossy(&err);
    assert!(err.starts_with("error: "), "{err}");
    let err = remote("wrong-secret")
        .args(["key", "describe", &id])
        .assert()
        .code(1)
        .get_output()
        .stderr
        .clone();
    assert!(
        String::from_utf8_lossy(&err).contains("SignatureDoesNotMatch"),
        "{}",
        String::from_utf8_lossy(&err)
    );
    // Local-only commands say so.
    let err = remote("endpoint-secret")
        .args(["usage"])
        .assert()
        .code(2)
        .get_output()
        .stderr
        .clone();
    assert!(String::from_utf8_lossy(&err).contains("local keystore"));
    drop(child);

    // The key lives in the server's keystore, not the client's.
    assert_eq!(
        json(&server_data, &["key", "describe", &id])["Description"],
        "over the wire"
    );
    assert!(
        json(&client_data, &["key", "list"])
            .as_array()
            .unwrap()
            .is_empty()
    );
}

/// SHA-256("abc") (FIPS 180-2 example).
const SHA256_ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

#[test]
fn sign_verify_and_public_key_argument_errors() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let k = [
        "--key",
        "00000000-0000-4000-8000-000000000000",
        "--key-version",
        "v1",
    ];
    let alg = ["--algorithm", "ECDSA_SHA_256"];
    // Neither or both of --digest-hex and --message-file; neither or both signature sources.
    let err = fails(d, &[&["sign"][..], &k, &alg].concat(), 2);
    assert!(
        err.contains("--digest-hex") || err.contains("--message-file"),
        "{err}"
    );
    let err = fails(
        d,
        &[
            &["sign"][..],
            &k,
            &alg,
            &["--digest-hex", SHA256_ABC, "--message-file", "m"],
        ]
        .concat(),
        2,
    );
    assert!(err.contains("cannot be used with"), "{err}");
    let err = fails(
        d,
        &[&["verify"][..], &k, &alg, &["--digest-hex", SHA256_ABC]].concat(),
        2,
    );
    assert!(err.contains("--signature"), "{err}");
    // --key-version is required: asymmetric keys have no primary version.
    let err = fails(d, &["public-key", "--key", "k"], 2);
    assert!(err.contains("--key-version"), "{err}");
    // Bad hex, an encryption algorithm, an unknown algorithm.
    let err = fails(
        d,
        &[&["sign"][..], &k, &alg, &["--digest-hex", "abc"]].concat(),
        1,
    );
    assert!(err.contains("error: InvalidParameter: --digest-hex"), "{err}");
    let err = fails(
        d,
        &[
            &["sign"][..],
            &k,
            &["--algorithm", "RSAES_OAEP_SHA_256", "--digest-hex", SHA256_ABC],
        ]
        .concat(),
        2,
    );
    assert!(err.contains("encrypts"), "{err}");
    let err = fails(
        d,
        &[
            &["sign"][..],
            &k,
            &["--algorithm", "ECDSA_SHA_512", "--digest-hex", SHA256_ABC],
        ]
        .concat(),
        1,
    );
    assert!(err.contains("error: InvalidParameter"), "{err}");
    // A bad key usage at creation.
    let err = fails(
        d,
        &["key", "create", "--key-spec", "EC_P256", "--key-usage", "SIGN"],
        1,
    );
    assert!(err.contains("error: InvalidParameter"), "{err}");
}

/// Signs `abc` with a key of `spec` and `alg` (by message file and by digest), verifies both ways, and
/// checks a wrong message fails; returns the key id and version.
/// `cmd` makes the command (local keystore or `--endpoint`); `d` is a scratch directory.
fn sign_and_verify(d: &Path, cmd: &dyn Fn() -> Command, spec: &str, alg: &str) -> (String, String) {
    let run = |args: &[&str]| {
        let mut c = cmd();
        c.args(args);
        c
    };
    let out = run(&[
        "key",
        "create",
        "--key-spec",
        spec,
        "--key-usage",
        "SIGN/VERIFY",
        "-o",
        "json",
    ])
    .assert()
    .success();
    let meta: Value = serde_json::from_slice(&out.get_output().stdout).expect("sign_and_verify");
    assert_eq!(
        (meta["KeySpec"].as_str(), meta["KeyUsage"].as_str()),
        (Some(spec), Some("SIGN/VERIFY"))
    );
    let id = meta["KeyId"].as_str().expect("sign_and_verify").to_owned();
    let out = run(&["key", "versions", &id, "-o", "json"]).assert().success();
    let versions: Value = serde_json::from_slice(&out.get_output().stdout).expect("sign_and_verify");
    assert_eq!(
        versions.as_array().expect("sign_and_verify").len(),
        1,
        "{versions}"
    );
    let ver = versions[0]["KeyVersionId"]
        .as_str()
        .expect("sign_and_verify")
        .to_owned();
    let kv = [
        "--key",
        id.as_str(),
        "--key-version",
        ver.as_str(),
        "--algorithm",
        alg,
    ];

    let msg = d.join("abc.txt");
    std::fs::write(&msg, "abc").expect("sign_and_verify");
    let other = d.join("abd.txt");
    std::fs::write(&other, "abd").expect("sign_and_verify");
    // Sign the file; verify it by file and by its SHA-256 in hex.
    let out = run(&[
        &["sign"][..],
        &kv,
        &["--message-file", msg.to_str().expect("sign_and_verify")],
    ]
    .concat())
    .assert()
    .success();
    let sig = String::from_utf8(out.get_output().stdout.clone()).expect("sign_and_verify");
    let sig = sig.trim().to_owned();
    // SM2DSA signs SM3(Z(A) ‖ M), not SHA-256(M): for it only the message paths apply.
    let by_message = ["--message-file", msg.to_str().expect("sign_and_verify")];
    let by_digest = if alg == "SM2DSA" {
        by_message
    } else {
        ["--digest-hex", SHA256_ABC]
    };
    for data in [by_message, by_digest] {
        let out = run(&[
            &["verify"][..],
            &kv,
            &data,
            &["--signature-b64", &sig, "-o", "json"],
        ]
        .concat())
        .assert()
        .success();
        let v: Value = serde_json::from_slice(&out.get_output().stdout).expect("sign_and_verify");
        assert_eq!(v["Value"], Value::Bool(true), "{spec} {alg} {data:?}");
        assert_eq!(v["KeyVersionId"], ver.as_str());
    }
    // Sign the digest (SM2DSA: the message) into a file; verify with --signature-file.
    let sig_file = d.join(format!("{spec}-{alg}.sig"));
    run(&[
        &["sign"][..],
        &kv,
        &by_digest,
        &["--out", sig_file.to_str().expect("sign_and_verify")],
    ]
    .concat())
    .assert()
    .success();
    let sig_arg = ["--signature-file", sig_file.to_str().expect("sign_and_verify")];
    run(&[
        &["verify"][..],
        &kv,
        &["--message-file", msg.to_str().expect("sign_and_verify")],
        &sig_arg,
    ]
    .concat())
    .assert()
    .success();
    // Another message: Value false, exit status 1.
    let out = run(&[
        &["verify"][..],
        &kv,
        &["--message-file", other.to_str().expect("sign_and_verify")],
        &sig_arg,
        &["-o", "json"],
    ]
    .concat())
    .assert()
    .code(1);
    let v: Value = serde_json::from_slice(&out.get_output().stdout).expect("sign_and_verify");
    assert_eq!(v["Value"], Value::Bool(false));
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.starts_with("error: Cli.InvalidSignature: "), "{err}");
    (id, ver)
}

#[test]
fn sign_verify_and_public_keys_on_the_local_keystore() {
    let t = tempfile::tempdir().unwrap();
    let d = t.path();
    let local = || kmskit(d);
    let (id, ver) = sign_and_verify(d, &local, "EC_P256", "ECDSA_SHA_256");
    sign_and_verify(d, &local, "EC_P256K", "ECDSA_SHA_256");
    sign_and_verify(d, &local, "RSA_2048", "RSA_PSS_SHA_256");
    sign_and_verify(d, &local, "RSA_2048", "RSA_PKCS1_SHA_256");
    sign_and_verify(d, &local, "RSA_3072", "RSA_PSS_SHA_256");
    sign_and_verify(d, &local, "EC_SM2", "SM2DSA");

    // The public key: PEM to standard output, or into a file.
    let out = kmskit(d)
        .args(["public-key", "--key", &id, "--key-version", &ver])
        .assert()
        .success();
    let pem = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
    let f = d.join("key.pem");
    kmskit(d)
        .args(["public-key", "--key", &id, "--key-version", &ver, "--out"])
        .arg(&f)
        .assert()
        .success();
    assert_eq!(std::fs::read_to_string(&f).unwrap(), pem);

    // The wrong algorithm for the key: the API's code.
    let err = fails(
        d,
        &[
            "sign",
            "--key",
            &id,
            "--key-version",
            &ver,
            "--algorithm",
            "RSA_PSS_SHA_256",
            "--digest-hex",
            SHA256_ABC,
        ],
        1,
    );
    assert!(err.starts_with("error: Rejected.UnsupportedOperation: "), "{err}");
    // A symmetric key has no public key.
    let aes = json(d, &["key", "create"])["KeyId"].as_str().unwrap().to_owned();
    let aes_v = json(d, &["key", "describe", &aes])["PrimaryKeyVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let err = fails(d, &["public-key", "--key", &aes, "--key-version", &aes_v], 1);
    assert!(err.starts_with("error: Rejected.UnsupportedOperation: "), "{err}");
}
