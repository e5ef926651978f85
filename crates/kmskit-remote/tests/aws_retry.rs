//! Retries against a scripted HTTP server on 127.0.0.1: a 503 is retried and the 200 that follows
//! answers the call; a 400 is returned at once, after one request; a dead port is a retryable
//! transport failure.
#![cfg(feature = "aws")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use kmskit_core::{Caller, ErrorCode, KeyId, KeyProvider, KeyRef};
use kmskit_remote::{AwsKms, RetryPolicy};

mod support;
use support::scripted;

const KEY: &str = "0b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3";

fn describe_ok() -> String {
    format!(
        r#"{{"KeyMetadata":{{"KeyId":"{KEY}","Arn":"arn:aws:kms:us-east-1:111122223333:key/{KEY}","AWSAccountId":"111122223333","CreationDate":1700000000.0,"Enabled":true,"Description":"","KeyUsage":"ENCRYPT_DECRYPT","KeyState":"Enabled","Origin":"AWS_KMS","KeyManager":"CUSTOMER","KeySpec":"SYMMETRIC_DEFAULT"}}}}"#
    )
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
