//! The `kmskit-server` binary with access control and the audit trail from its configuration: a
//! CryptoUser key may Encrypt but is denied CreateKey and DisableKey with `Forbidden.NoPermission`; each
//! denial is in the audit file (flushed at graceful shutdown) under the response's `RequestId`, and the
//! hash chain verifies. Config errors in the access-control entries name file and line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use kmskit_core::audit::{AuditEvent, FileSink, Outcome, verify};
use kmskit_server::client::{Client, SignatureVersion};
use kmskit_server::sign::AccessKeySecret;

const BIN: &str = env!("CARGO_BIN_EXE_kmskit-server");

fn start(cfg: &Path, dir: &Path) -> (Child, u16) {
    let port_file = dir.join("port");
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(cfg)
        .arg("--port-file")
        .arg(&port_file)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let port = loop {
        if let Ok(s) = std::fs::read_to_string(&port_file) {
            if let Ok(p) = s.trim().parse() {
                break p;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no port file");
        if child.try_wait().unwrap().is_some() {
            panic!(
                "server exited: {}",
                std::fs::read_to_string(dir.join("log")).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (child, port)
}

fn stop(mut child: Child) {
    let status = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
    let start = Instant::now();
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}

fn write_config(dir: &Path, app_entry: &str) -> std::path::PathBuf {
    std::fs::write(
        dir.join("root.key"),
        base64::engine::general_purpose::STANDARD.encode([7u8; 32]),
    )
    .unwrap();
    std::fs::write(dir.join("admin.secret"), "admin-secret\n").unwrap();
    std::fs::write(dir.join("app.secret"), "app-secret\n").unwrap();
    let cfg = dir.join("server.toml");
    std::fs::write(
        &cfg,
        format!(
            "bind = \"127.0.0.1:0\"\n\n[keystore]\ndir = {ks:?}\nroot_key_file = {rk:?}\n\n\
             [[access_keys]]\nid = \"LTAIadmin\"\nsecret_file = {adm:?}\nprincipal = \"admin\"\n\n\
             [[access_keys]]\nid = \"LTAIapp\"\nsecret_file = {app:?}\nprincipal = \"app\"\n{app_entry}",
            ks = dir.join("keystore").display().to_string(),
            rk = dir.join("root.key").display().to_string(),
            adm = dir.join("admin.secret").display().to_string(),
            app = dir.join("app.secret").display().to_string(),
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn crypto_user_is_denied_management_and_the_denial_is_audited() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "roles = [\"CryptoUser\"]\nkeys = [\"*\"]\n");
    let (child, port) = start(&cfg, dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (denied_ids, ok_id) = rt.block_on(async {
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut admin = Client::connect(
            addr,
            "LTAIadmin",
            AccessKeySecret::new("admin-secret"),
            SignatureVersion::V3,
        )
        .await
        .unwrap();
        let mut app = Client::connect(
            addr,
            "LTAIapp",
            AccessKeySecret::new("app-secret"),
            SignatureVersion::V2,
        )
        .await
        .unwrap();
        let r = admin
            .call("CreateKey", &[("Description", "orders")])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let key_id = r.body["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
        let r = app
            .call("Encrypt", &[("KeyId", &key_id), ("Plaintext", "SGVsbG8gS01T")])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let ok_id = r.str("RequestId").to_owned();
        let mut denied = Vec::new();
        for (action, params) in [
            ("CreateKey", vec![("Description", "nope")]),
            ("DisableKey", vec![("KeyId", key_id.as_str())]),
        ] {
            let r = app.call(action, &params).await.unwrap();
            assert_eq!(r.status, 403, "{action}: {r:?}");
            assert_eq!(r.code(), Some("Forbidden.NoPermission"), "{action}: {r:?}");
            denied.push((action, r.str("RequestId").to_owned()));
        }
        // The admin (no restriction in its entry) may still do everything.
        let r = admin.call("DisableKey", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        (denied, ok_id)
    });
    stop(child);

    let records = FileSink::read_dir(dir.path().join("keystore").join("audit")).unwrap();
    let report = verify(&records).expect("the audit chain verifies");
    let events: Vec<AuditEvent> = records.events.into_iter().map(|(_, e)| e.unwrap()).collect();
    assert_eq!(report.events as usize, events.len());
    for (action, rid) in &denied_ids {
        let e = events
            .iter()
            .find(|e| &e.request_id == rid)
            .unwrap_or_else(|| panic!("{action} {rid} not audited: {events:#?}"));
        assert_eq!(e.action, *action);
        assert_eq!(e.principal, "app");
        assert_eq!(e.outcome, Outcome::Denied);
        assert_eq!(e.code, "Forbidden.NoPermission");
        assert_eq!(e.source_ip, Some("127.0.0.1".parse().unwrap()));
    }
    let e = events
        .iter()
        .find(|e| e.request_id == ok_id)
        .expect("Encrypt audited");
    assert_eq!((e.action.as_ref(), e.outcome), ("Encrypt", Outcome::Success));
    assert_eq!(events.len(), 5, "{events:#?}");
}

/// A verifier's key (`actions` from the configuration) may read public keys and verify, but signing
/// is denied, and audited as a denied AsymmetricSign.
#[test]
fn a_verifier_may_verify_but_not_sign() {
    use base64::engine::general_purpose::STANDARD as B64;
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "actions = [\"GetPublicKey\", \"AsymmetricVerify\", \"ListKeyVersions\"]\n",
    );
    let (child, port) = start(&cfg, dir.path());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let denied = rt.block_on(async {
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut admin = Client::connect(
            addr,
            "LTAIadmin",
            AccessKeySecret::new("admin-secret"),
            SignatureVersion::V3,
        )
        .await
        .unwrap();
        let mut app = Client::connect(
            addr,
            "LTAIapp",
            AccessKeySecret::new("app-secret"),
            SignatureVersion::V2,
        )
        .await
        .unwrap();
        let r = admin
            .call(
                "CreateKey",
                &[("KeySpec", "EC_P256"), ("KeyUsage", "SIGN/VERIFY")],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let key = r.body["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
        let r = app.call("ListKeyVersions", &[("KeyId", &key)]).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let ver = r.body["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
            .as_str()
            .unwrap()
            .to_owned();
        let digest = B64.encode([0x42u8; 32]);
        let sign = [
            ("KeyId", key.as_str()),
            ("KeyVersionId", ver.as_str()),
            ("Algorithm", "ECDSA_SHA_256"),
            ("Digest", digest.as_str()),
        ];
        let r = admin.call("AsymmetricSign", &sign).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let sig = r.str("Value").to_owned();
        let r = app
            .call("GetPublicKey", &[("KeyId", &key), ("KeyVersionId", &ver)])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let mut verify = sign.to_vec();
        verify.push(("Value", sig.as_str()));
        let r = app.call("AsymmetricVerify", &verify).await.unwrap();
        assert_eq!(
            (r.status, &r.body["Value"]),
            (200, &serde_json::Value::Bool(true)),
            "{r:?}"
        );
        let r = app.call("AsymmetricSign", &sign).await.unwrap();
        assert_eq!(
            (r.status, r.code()),
            (403, Some("Forbidden.NoPermission")),
            "{r:?}"
        );
        r.str("RequestId").to_owned()
    });
    stop(child);
    let records = FileSink::read_dir(dir.path().join("keystore").join("audit")).unwrap();
    verify(&records).expect("the audit chain verifies");
    let e = records
        .events
        .into_iter()
        .map(|(_, e)| e.unwrap())
        .find(|e| e.request_id == denied)
        .expect("the denied AsymmetricSign is audited");
    assert_eq!(
        (e.action.as_ref(), e.principal.as_str(), e.outcome),
        ("AsymmetricSign", "app", Outcome::Denied)
    );
}

#[test]
fn access_control_config_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for (entry, needle) in [
        ("roles = [\"Janitor\"]\n", "unknown role"),
        ("roles = [\"CryptoUser\"]\n", "needs `keys`"),
        ("policies = [\"missing.json\"]\n", "cannot be read"),
    ] {
        let cfg = write_config(dir.path(), entry);
        let out = Command::new(BIN).arg("--config").arg(&cfg).output().unwrap();
        assert!(!out.status.success(), "{entry}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(&format!("{}:12:", cfg.display())), "{entry}: {err}");
        assert!(err.contains(needle), "{entry}: {err}");
    }
}

#[test]
fn dev_mode_is_all_powerful_and_audited() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let port_file = dir.path().join("port");
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let child = Command::new(BIN)
        .args(["--dev", "--bind", "127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .arg("--data-dir")
        .arg(&data)
        .env("KMSKIT_DEV_ACCESS_KEY_ID", "dev-ak")
        .env("KMSKIT_DEV_ACCESS_KEY_SECRET", "dev-secret")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let start = Instant::now();
    let port: u16 = loop {
        if let Ok(s) = std::fs::read_to_string(&port_file) {
            if let Ok(p) = s.trim().parse() {
                break p;
            }
        }
        assert!(start.elapsed() < Duration::from_secs(30), "no port file");
        std::thread::sleep(Duration::from_millis(20));
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let rid = rt.block_on(async {
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut c = Client::connect(
            addr,
            "dev-ak",
            AccessKeySecret::new("dev-secret"),
            SignatureVersion::V3,
        )
        .await
        .unwrap();
        let r = c.call("CreateKey", &[("Description", "dev")]).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let key_id = r.body["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
        let r = c.call("DisableKey", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        r.str("RequestId").to_owned()
    });
    stop(child);
    let records = FileSink::read_dir(data.join("audit")).unwrap();
    verify(&records).expect("the audit chain verifies");
    let events: Vec<AuditEvent> = records.events.into_iter().map(|(_, e)| e.unwrap()).collect();
    assert_eq!(events.len(), 2, "{events:#?}");
    let e = &events[1];
    assert_eq!(
        (e.action.as_ref(), e.principal.as_str(), e.outcome),
        ("DisableKey", "dev-admin", Outcome::Success)
    );
    assert_eq!(e.request_id, rid);
}
