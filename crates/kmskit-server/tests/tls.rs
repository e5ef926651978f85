//! TLS: the server configured from PEM files answers a V3-signed request over rustls on 127.0.0.1.

#![allow(clippy::unwrap_used)] // test helpers

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kmskit_core::KeyProvider;
use kmskit_memory::{MemoryKms, MemoryKmsExt};
use kmskit_server::config::Config;
use kmskit_server::sign::{self, AccessKeySecret};
use kmskit_server::{AccessKey, Server};
use rustls_pki_types::pem::PemObject;
use tokio_rustls::rustls;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tls_from_pem_config() {
    let text = format!(
        "[tls]\ncert = {:?}\nkey = {:?}\n",
        data("test-server.pem").display().to_string(),
        data("test-server.key").display().to_string()
    );
    let cfg = Config::parse(&text, "tls.toml").unwrap();
    let tls = cfg.tls_config().unwrap().unwrap();
    let provider: Arc<dyn KeyProvider> = Arc::new(MemoryKms::new_memory());
    let server = Server::builder()
        .provider(provider)
        .access_key(AccessKey::new("ak", AccessKeySecret::new("sk"), "p"))
        .tls(tls)
        .build()
        .unwrap();
    let running = server.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = running.local_addr().unwrap();

    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls_pki_types::CertificateDer::from_pem_file(data("test-ca.pem")).unwrap())
        .unwrap();
    let client_cfg =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client_cfg));
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls_stream = connector.connect(name, tcp).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls_stream))
        .await
        .unwrap();
    tokio::spawn(conn);

    let now = kmskit_core::Timestamp::from_system(std::time::SystemTime::now()).to_string();
    let headers = sign::sign_v3(
        "POST",
        &addr.to_string(),
        "CreateKey",
        &[("Description".to_owned(), "over tls".to_owned())],
        b"",
        "ak",
        &AccessKeySecret::new("sk"),
        &sign::new_nonce(),
        &now,
    );
    let mut b = hyper::Request::post("/?Description=over%20tls");
    for (k, v) in &headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let resp = sender
        .send_request(b.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: serde_json::Value =
        serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body["KeyMetadata"]["Description"], "over tls");

    // A plain-HTTP client on the TLS port gets no API answer.
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut plain, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(conn);
    let r = plain
        .send_request(
            hyper::Request::get("/healthz")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await;
    assert!(r.is_err() || r.unwrap().status() != 200);
    running.shutdown().await;
}

#[test]
fn bad_pem_is_a_config_error_with_line() {
    let text = format!(
        "bind = \"127.0.0.1:0\"\n[tls]\ncert = {:?}\nkey = {:?}\n",
        data("README.md").display().to_string(),
        data("test-server.key").display().to_string()
    );
    let cfg = Config::parse(&text, "tls.toml").unwrap();
    let err = cfg.tls_config().unwrap_err();
    assert_eq!(err.line, Some(2), "{err}");
}
