//! The `kmskit-server` binary: dev mode on an ephemeral port, the port file, `/healthz`, a signed call
//! with the dev key, the loud warning, and a clean exit on SIGTERM. Config errors name file and line.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use kmskit_server::client::{Client, SignatureVersion};
use kmskit_server::sign::AccessKeySecret;

const BIN: &str = env!("CARGO_BIN_EXE_kmskit-server");

#[test]
fn dev_mode_serves_and_shuts_down_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port_file = dir.path().join("port");
    let log = std::fs::File::create(dir.path().join("log")).unwrap();
    let mut child = Command::new(BIN)
        .args(["--dev", "--bind", "127.0.0.1:0", "--port-file"])
        .arg(&port_file)
        .env("KMSKIT_DEV_ACCESS_KEY_ID", "dev-test-ak")
        .env("KMSKIT_DEV_ACCESS_KEY_SECRET", "dev-test-secret")
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
        assert!(child.try_wait().unwrap().is_none(), "server exited");
        std::thread::sleep(Duration::from_millis(20));
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let addr = format!("127.0.0.1:{port}").parse().unwrap();
        let mut c = Client::connect(
            addr,
            "dev-test-ak",
            AccessKeySecret::new("dev-test-secret"),
            SignatureVersion::V3,
        )
        .await
        .unwrap();
        let r = c.call("CreateKey", &[("Description", "dev")]).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
    });
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
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap();
    assert!(log.contains("NOT FOR PRODUCTION"), "{log}");
    assert!(
        log.contains("action=\"CreateKey\" principal=\"dev-admin\" status=200"),
        "{log}"
    );
    assert!(
        !log.contains("dev-test-secret"),
        "the secret from the environment must not be logged"
    );
}

#[test]
fn config_errors_name_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("server.toml");
    std::fs::write(
        &cfg,
        "bind = \"127.0.0.1:0\"\n\n[[access_keys]]\nid = \"a\"\nsecret = \"inline\"\nprincipal = \"p\"\n",
    )
    .unwrap();
    let out = Command::new(BIN).arg("--config").arg(&cfg).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:3:", cfg.display())), "{err}");
    assert!(!err.contains("inline\""), "{err}");
}
