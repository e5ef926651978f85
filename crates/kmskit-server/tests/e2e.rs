//! End to end over 127.0.0.1: a real server on an ephemeral port, requests signed with V2 and V3.

#![allow(clippy::unwrap_used)] // test helpers

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use kmskit_core::KeyProvider;
use kmskit_memory::{MemoryKms, MemoryKmsExt};
use kmskit_server::client::{Client, SignatureVersion};
use kmskit_server::sign::{self, AccessKeySecret};
use kmskit_server::{AccessKey, RunningServer, Server};

const AK: &str = "ak-test";
const SECRET: &str = "secret-test";

async fn start() -> (RunningServer, SocketAddr) {
    let provider: Arc<dyn KeyProvider> = Arc::new(MemoryKms::new_memory());
    let server = Server::builder()
        .provider(provider)
        .access_key(AccessKey::new(AK, AccessKeySecret::new(SECRET), "admin"))
        .access_key(
            AccessKey::new("ak-reader", AccessKeySecret::new("reader-secret"), "reader")
                .allow_actions(["DescribeKey", "ListKeys"]),
        )
        .max_body(4096)
        .build()
        .unwrap();
    let running = server.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = running.local_addr().unwrap();
    (running, addr)
}

async fn client(addr: SocketAddr, v: SignatureVersion) -> Client {
    Client::connect(addr, AK, AccessKeySecret::new(SECRET), v)
        .await
        .unwrap()
}

async fn raw(addr: SocketAddr, req: hyper::Request<Full<Bytes>>) -> (u16, serde_json::Value) {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut s, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = s.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_with_both_signatures() {
    let (running, addr) = start().await;
    for v in [SignatureVersion::V2, SignatureVersion::V3] {
        let mut c = client(addr, v).await;
        let r = c
            .call("CreateKey", &[("Description", "orders key")])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{v:?} {r:?}");
        let key_id = r.body["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
        assert_eq!(r.body["KeyMetadata"]["Description"], "orders key");
        assert_eq!(r.body["KeyMetadata"]["KeyState"], "Enabled");
        assert!(!r.str("RequestId").is_empty());

        let alias = format!("alias/orders-{v:?}");
        let r = c
            .call("CreateAlias", &[("AliasName", &alias), ("KeyId", &key_id)])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let r = c
            .call("CreateAlias", &[("AliasName", &alias), ("KeyId", &key_id)])
            .await
            .unwrap();
        assert_eq!((r.status, r.code()), (400, Some("AliasAlreadyExists")));

        let ctx = r#"{"table": "orders", "id": "7"}"#;
        let r = c
            .call(
                "Encrypt",
                &[
                    ("KeyId", &alias),
                    ("Plaintext", "Hello KMS"),
                    ("EncryptionContext", ctx),
                ],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.str("KeyId"), key_id);
        let blob = r.str("CiphertextBlob").to_owned();
        // Same context in another order and spacing.
        let r = c
            .call(
                "Decrypt",
                &[
                    ("CiphertextBlob", &blob),
                    ("EncryptionContext", r#"{"id":"7","table":"orders"}"#),
                ],
            )
            .await
            .unwrap();
        assert_eq!((r.status, r.str("Plaintext")), (200, "Hello KMS"), "{r:?}");
        let r = c.call("Decrypt", &[("CiphertextBlob", &blob)]).await.unwrap();
        assert_eq!((r.status, r.code()), (400, Some("InvalidParameter")));

        let r = c
            .call(
                "GenerateDataKey",
                &[("KeyId", &key_id), ("EncryptionContext", ctx)],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let dk = r.str("Plaintext").to_owned();
        assert_eq!(base64_len(&dk), 32);
        let r2 = c
            .call(
                "Decrypt",
                &[
                    ("CiphertextBlob", r.str("CiphertextBlob")),
                    ("EncryptionContext", ctx),
                ],
            )
            .await
            .unwrap();
        assert_eq!(r2.str("Plaintext"), dk);
        let r = c
            .call(
                "GenerateDataKey",
                &[("KeyId", &key_id), ("NumberOfBytes", "2000")],
            )
            .await
            .unwrap();
        assert_eq!((r.status, r.code()), (400, Some("InvalidParameter")));

        let r = c.call("DescribeKey", &[("KeyId", &alias)]).await.unwrap();
        assert_eq!(r.body["KeyMetadata"]["KeyId"], key_id.as_str());
        let r = c.call("ListAliasesByKeyId", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.body["Aliases"]["Alias"][0]["AliasName"], alias.as_str());
        assert_eq!(r.body["TotalCount"], 1);
        let r = c.call("ListKeys", &[("PageSize", "100")]).await.unwrap();
        assert!(
            r.body["Keys"]["Key"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["KeyId"] == key_id.as_str())
        );
        let r = c.call("ListKeyVersions", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.body["KeyVersions"]["KeyVersion"].as_array().unwrap().len(), 1);

        let r = c.call("DisableKey", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.status, 200);
        let r = c
            .call("Encrypt", &[("KeyId", &key_id), ("Plaintext", "x")])
            .await
            .unwrap();
        assert_eq!((r.status, r.code()), (409, Some("Rejected.Disabled")));
        let r = c.call("EnableKey", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.status, 200);
        let r = c
            .call(
                "ScheduleKeyDeletion",
                &[("KeyId", &key_id), ("PendingWindowInDays", "7")],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        let r = c
            .call("Encrypt", &[("KeyId", &key_id), ("Plaintext", "x")])
            .await
            .unwrap();
        assert_eq!((r.status, r.code()), (409, Some("Rejected.PendingDeletion")));
        let r = c.call("CancelKeyDeletion", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.status, 200);

        let r = c.call("DescribeKey", &[("KeyId", "no-such-key")]).await.unwrap();
        assert_eq!((r.status, r.code()), (404, Some("Forbidden.KeyNotFound")));
        let r = c.call("Encrypt", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!((r.status, r.code()), (400, Some("MissingParameter")));
        // An action of the model service this server does not serve (BYOK import).
        let r = c
            .call("GetParametersForImport", &[("KeyId", &key_id)])
            .await
            .unwrap();
        assert_eq!((r.status, r.code()), (404, Some("InvalidAction.NotFound")));
        // AsymmetricSign is served: a missing parameter, not an unknown action.
        let r = c.call("AsymmetricSign", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!((r.status, r.code()), (400, Some("MissingParameter")));
        let r = c
            .call(
                "Encrypt",
                &[("KeyId", &key_id), ("Plaintext", "x"), ("DryRun", "true")],
            )
            .await
            .unwrap();
        assert_eq!(r.code(), Some("DryRunOperationError"));
        let r = c.call("ListKeys", &[("PageSize", "abc")]).await.unwrap();
        assert_eq!((r.status, r.code()), (400, Some("InvalidParameter")));
    }
    running.shutdown().await;
}

fn base64_len(s: &str) -> usize {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_failures() {
    let (running, addr) = start().await;
    for v in [SignatureVersion::V2, SignatureVersion::V3] {
        let mut bad = Client::connect(addr, AK, AccessKeySecret::new("wrong"), v)
            .await
            .unwrap();
        let r = bad.call("ListKeys", &[]).await.unwrap();
        assert_eq!(
            (r.status, r.code()),
            (400, Some("SignatureDoesNotMatch")),
            "{v:?}"
        );
        assert!(r.str("Message").contains("server string to sign is:"));

        let mut unknown = Client::connect(addr, "nobody", AccessKeySecret::new("x"), v)
            .await
            .unwrap();
        let r = unknown.call("ListKeys", &[]).await.unwrap();
        assert_eq!((r.status, r.code()), (404, Some("InvalidAccessKeyId.NotFound")));

        // Replay: the same signed request twice.
        let mut c = client(addr, v).await;
        let nonce = format!("fixed-nonce-for-replay-{v:?}");
        let req1 = c.build("ListKeys", &[], &nonce).unwrap();
        let req2 = c.build("ListKeys", &[], &nonce).unwrap();
        let r = c.send(req1).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let r = c.send(req2).await.unwrap();
        assert_eq!((r.status, r.code()), (400, Some("SignatureNonceUsed")), "{v:?}");

        // Skew: 16 minutes off either way is refused, 14 accepted.
        for (off, ok) in [(-16 * 60, false), (16 * 60, false), (14 * 60, true)] {
            c.clock_offset_secs = off;
            let r = c.call("ListKeys", &[]).await.unwrap();
            if ok {
                assert_eq!(r.status, 200);
            } else {
                assert_eq!((r.status, r.code()), (400, Some("InvalidTimeStamp.Expired")));
            }
        }

        // Denied action for a restricted key.
        let mut reader = Client::connect(addr, "ak-reader", AccessKeySecret::new("reader-secret"), v)
            .await
            .unwrap();
        assert_eq!(reader.call("ListKeys", &[]).await.unwrap().status, 200);
        let r = reader.call("CreateKey", &[]).await.unwrap();
        assert_eq!((r.status, r.code()), (403, Some("Forbidden.NoPermission")));
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transport_level_errors() {
    let (running, addr) = start().await;
    let (s, b) = raw(
        addr,
        hyper::Request::get("/healthz")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["Status"].as_str()), (200, Some("OK")));

    let (s, b) = raw(
        addr,
        hyper::Request::post("/?Action=ListKeys")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["Code"].as_str()), (400, Some("IncompleteSignature")));
    assert!(!b["RequestId"].as_str().unwrap().is_empty());
    assert!(b["HostId"].is_string());

    let (s, b) = raw(
        addr,
        hyper::Request::post("/?a=%ZZ")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, b["Code"].as_str()),
        (400, Some("ParseRequestParameterException"))
    );

    let (s, b) = raw(
        addr,
        hyper::Request::delete("/").body(Full::new(Bytes::new())).unwrap(),
    )
    .await;
    assert_eq!((s, b["Code"].as_str()), (403, Some("UnsupportedHTTPMethod")));

    let (s, b) = raw(
        addr,
        hyper::Request::post("/")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(vec![b'a'; 10_000])))
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["Code"].as_str()), (400, Some("InvalidParameter")));

    let (s, b) = raw(
        addr,
        hyper::Request::get("/other")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await;
    assert_eq!((s, b["Code"].as_str()), (404, Some("InvalidAction.NotFound")));

    // Form-body parameters are merged with the query and signed (V2 over POST body).
    let mut params = vec![("Description".to_owned(), "from body".to_owned())];
    let now = kmskit_core::Timestamp::from_system(std::time::SystemTime::now()).to_string();
    sign::sign_v2(
        "POST",
        "CreateKey",
        &mut params,
        AK,
        &AccessKeySecret::new(SECRET),
        &sign::new_nonce(),
        &now,
    );
    let body = sign::encode_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let (s, b) = raw(
        addr,
        hyper::Request::post("/")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap(),
    )
    .await;
    assert_eq!(
        (s, b["KeyMetadata"]["Description"].as_str()),
        (200, Some("from body")),
        "{b}"
    );

    // XML on request.
    let mut params = vec![("Format".to_owned(), "XML".to_owned())];
    sign::sign_v2(
        "GET",
        "ListKeys",
        &mut params,
        AK,
        &AccessKeySecret::new(SECRET),
        &sign::new_nonce(),
        &now,
    );
    params.retain(|(k, v)| !(k == "Format" && v == "JSON"));
    // sign_v2 added Format=JSON after ours: rebuild with XML only and re-sign.
    let mut params = vec![];
    let mut signed = vec![("Format".to_owned(), "XML".to_owned())];
    signed.push(("Action".to_owned(), "ListKeys".to_owned()));
    for (k, v) in [
        ("Version", sign::API_VERSION),
        ("AccessKeyId", AK),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("Timestamp", now.as_str()),
    ] {
        signed.push((k.to_owned(), v.to_owned()));
    }
    signed.push(("SignatureNonce".to_owned(), sign::new_nonce()));
    let sts = sign::v2_string_to_sign("GET", signed.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let sig = sign::v2_signature(&AccessKeySecret::new(SECRET), &sts);
    params.extend(signed);
    params.push(("Signature".to_owned(), sig));
    let q = sign::encode_pairs(params.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            hyper::Request::get(format!("/?{q}"))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    let text = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8(text.to_vec()).unwrap();
    assert!(
        text.starts_with("<?xml") && text.contains("<ListKeysResponse>"),
        "{text}"
    );

    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_stops_accepting() {
    let (running, addr) = start().await;
    let mut c = client(addr, SignatureVersion::V3).await;
    assert_eq!(c.call("ListKeys", &[]).await.unwrap().status, 200);
    running.shutdown().await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_per_principal() {
    let provider: Arc<dyn KeyProvider> = Arc::new(MemoryKms::new_memory());
    let server = Server::builder()
        .provider(provider)
        .access_key(AccessKey::new(AK, AccessKeySecret::new(SECRET), "admin"))
        .rate_limit(0.001, 3.0)
        .build()
        .unwrap();
    let running = server.bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut c = client(running.local_addr().unwrap(), SignatureVersion::V2).await;
    for _ in 0..3 {
        assert_eq!(c.call("ListKeys", &[]).await.unwrap().status, 200);
    }
    let r = c.call("ListKeys", &[]).await.unwrap();
    assert_eq!((r.status, r.code()), (400, Some("Throttling")));
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_old_and_new_style() {
    let (running, addr) = start().await;
    let mut c = client(addr, SignatureVersion::V3).await;
    let key = c.call("CreateKey", &[]).await.unwrap().body["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = c
        .call(
            "TagResource",
            &[
                ("KeyId", &key),
                ("Tags", r#"[{"TagKey":"env","TagValue":"prod"}]"#),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let r = c
        .call(
            "TagResources",
            &[
                ("RegionId", "cn-hangzhou"),
                ("ResourceType", "key"),
                ("ResourceId.1", &key),
                ("Tag.1.Key", "team"),
                ("Tag.1.Value", "payments"),
                ("Tag.2.Key", "tier"),
                ("Tag.2.Value", "1"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let r = c.call("ListResourceTags", &[("KeyId", &key)]).await.unwrap();
    assert_eq!(r.body["Tags"]["Tag"].as_array().unwrap().len(), 3, "{r:?}");
    let r = c
        .call(
            "ListTagResources",
            &[
                ("ResourceType", "key"),
                ("ResourceId.1", &key),
                ("Tag.1.Key", "team"),
            ],
        )
        .await
        .unwrap();
    let rows = r.body["TagResources"]["TagResource"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{r:?}");
    assert_eq!(rows[0]["TagValue"], "payments");
    assert_eq!(rows[0]["ResourceId"], key.as_str());
    assert_eq!(r.str("NextToken"), "");
    let r = c
        .call(
            "UntagResources",
            &[
                ("ResourceType", "key"),
                ("ResourceId.1", &key),
                ("TagKey.1", "tier"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let r = c
        .call("ListTagResources", &[("ResourceType", "key")])
        .await
        .unwrap();
    assert_eq!(
        r.body["TagResources"]["TagResource"].as_array().unwrap().len(),
        2,
        "{r:?}"
    );
    let r = c
        .call(
            "UntagResources",
            &[("ResourceType", "key"), ("ResourceId.1", &key), ("All", "true")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{r:?}");
    let r = c.call("ListResourceTags", &[("KeyId", &key)]).await.unwrap();
    assert_eq!(r.body["Tags"]["Tag"].as_array().unwrap().len(), 0, "{r:?}");
    let r = c
        .call(
            "TagResources",
            &[("ResourceType", "secret"), ("ResourceId.1", "s")],
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (400, Some("Rejected.UnsupportedOperation")));
    let r = c
        .call("TagResources", &[("ResourceType", "key"), ("Tag.1.Key", "a")])
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (400, Some("MissingParameter")));
    let r = c
        .call(
            "TagResources",
            &[
                ("ResourceType", "key"),
                ("ResourceId.x", &key),
                ("Tag.1.Key", "a"),
            ],
        )
        .await
        .unwrap();
    assert_eq!((r.status, r.code()), (400, Some("InvalidParameter")));
    running.shutdown().await;
}
