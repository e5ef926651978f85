//! Retries against a scripted HTTP server on 127.0.0.1: a 503 is retried and the 200 that follows
//! answers the call; a 400 is returned at once, after one request; a dead port is a retryable
//! transport failure.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use kmskit_core::{Caller, ErrorCode, KeyId, KeyProvider, KeyRef};
use kmskit_remote::{AwsKms, RetryPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const KEY: &str = "0b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3";

fn describe_ok() -> String {
    format!(
        r#"{{"KeyMetadata":{{"KeyId":"{KEY}","Arn":"arn:aws:kms:us-east-1:111122223333:key/{KEY}","AWSAccountId":"111122223333","CreationDate":1700000000.0,"Enabled":true,"Description":"","KeyUsage":"ENCRYPT_DECRYPT","KeyState":"Enabled","Origin":"AWS_KMS","KeyManager":"CUSTOMER","KeySpec":"SYMMETRIC_DEFAULT"}}}}"#
    )
}

/// Serves `script` (status, body) one answer per request, then keeps answering the last one; counts
/// requests.
async fn scripted(script: Vec<(u16, String)>) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let served = count.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let served = served.clone();
            let script = script.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    // Read one request: headers, then Content-Length bytes of body.
                    let (head_end, len) = loop {
                        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                            let len = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            break (p + 4, len);
                        }
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    };
                    while buf.len() < head_end + len {
                        match sock.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    buf.drain(..head_end + len);
                    let i = served.fetch_add(1, Ordering::SeqCst);
                    let (status, body) = &script[i.min(script.len() - 1)];
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if sock.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, count)
}

async fn client(url: &str, attempts: u32) -> AwsKms {
    AwsKms::builder()
        .endpoint_url(url)
        .region("us-east-1")
        .credentials("testing", "testing", None)
        .retry(RetryPolicy::new(attempts).with_backoff(Duration::from_millis(5), Duration::from_millis(20)))
        .connect_timeout(Duration::from_secs(2))
        .read_timeout(Duration::from_secs(5))
        .build()
        .await
}

fn key() -> KeyRef {
    KeyRef::Id(KeyId::new(KEY).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_then_the_200_answers() {
    let busy = r#"{"__type":"ServiceUnavailableException","message":"busy"}"#.to_owned();
    let (url, count) = scripted(vec![(503, busy), (200, describe_ok())]).await;
    let kms = client(&url, 4).await;
    let meta = kms.describe_key(&Caller::local(), &key()).await.unwrap();
    assert_eq!(meta.key_id.as_str(), KEY);
    assert_eq!(count.load(Ordering::SeqCst), 2, "one 503, one retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried() {
    let throttled = r#"{"__type":"ThrottlingException","message":"slow down"}"#.to_owned();
    let (url, count) = scripted(vec![
        (400, throttled.clone()),
        (400, throttled),
        (200, describe_ok()),
    ])
    .await;
    let kms = client(&url, 4).await;
    kms.describe_key(&Caller::local(), &key()).await.unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_not_retried() {
    let bad = r#"{"__type":"ValidationException","message":"bad request"}"#.to_owned();
    let (url, count) = scripted(vec![(400, bad), (200, describe_ok())]).await;
    let kms = client(&url, 4).await;
    let err = kms.describe_key(&Caller::local(), &key()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidParameter);
    let msg = err.to_string();
    assert!(
        msg.contains("ValidationException") && msg.contains("400"),
        "{msg}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "a 4xx is answered once, never retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_5xx_gives_up_after_max_attempts() {
    let busy = r#"{"__type":"KMSInternalException","message":"down"}"#.to_owned();
    let (url, count) = scripted(vec![(500, busy)]).await;
    let kms = client(&url, 3).await;
    let err = kms.describe_key(&Caller::local(), &key()).await.unwrap_err();
    assert!(err.to_string().contains("KMSInternalException"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_a_retryable_unavailable() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let kms = client(&format!("http://127.0.0.1:{port}"), 2).await;
    let err = kms.describe_key(&Caller::local(), &key()).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::ServiceUnavailableTemporary, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_shows_no_secret() {
    let b = AwsKms::builder().credentials("AKIDEXAMPLE", "super-secret-value", Some("tok-secret".into()));
    let s = format!("{b:?}");
    assert!(
        s.contains("AKIDEXAMPLE") && !s.contains("super-secret") && !s.contains("tok-secret"),
        "{s}"
    );
    let kms = b.region("us-east-1").build().await;
    assert!(!format!("{kms:?}").contains("super-secret"));
}
