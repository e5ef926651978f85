//! AliyunKms retries against a scripted HTTP server on 127.0.0.1: a 503 is retried and the 200 that
//! follows answers; a `Throttling` 400 is retried; any other 400 is answered once; a dead port is a
//! retryable transport failure.
#![cfg(feature = "aliyun")]
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use kmskit_core::{Caller, ErrorCode, KeyId, KeyProvider, KeyRef};
use kmskit_remote::{AliyunKms, RetryPolicy};

mod support;
use support::scripted;

const KEY: &str = "0b1c2d3e-4f50-4a6b-8c7d-8e9fa0b1c2d3";

fn describe_ok() -> String {
    format!(
        r#"{{"RequestId":"r","KeyMetadata":{{"KeyId":"{KEY}","Arn":"acs:kms:cn-hangzhou:123:key/{KEY}","AutomaticRotation":"Disabled","CreationDate":"2026-11-29T00:00:00Z","Creator":"123","DKMSInstanceId":"","DeleteDate":"","Description":"","KeySpec":"Aliyun_AES_256","KeyState":"Enabled","KeyUsage":"ENCRYPT/DECRYPT","LastRotationDate":"","MaterialExpireTime":"","NextRotationDate":"","Origin":"Aliyun_KMS","PrimaryKeyVersion":"v1","ProtectionLevel":"SOFTWARE","DeletionProtection":"Disabled","DeletionProtectionDescription":""}}}}"#
    )
}

fn client(url: &str, attempts: u32) -> AliyunKms {
    AliyunKms::builder()
        .endpoint(url)
        .credentials("ak", "secret")
        .retry(RetryPolicy::new(attempts).with_backoff(Duration::from_millis(5), Duration::from_millis(20)))
        .connect_timeout(Duration::from_secs(2))
        .read_timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

fn key() -> KeyRef {
    KeyRef::Id(KeyId::new(KEY).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_503_is_retried_then_the_200_answers() {
    let busy = r#"{"Code":"ServiceUnavailableTemporary","Message":"busy"}"#.to_owned();
    let (url, count) = scripted(vec![(503, busy), (200, describe_ok())]).await;
    let meta = client(&url, 4)
        .describe_key(&Caller::local(), &key())
        .await
        .unwrap();
    assert_eq!(meta.key_id.as_str(), KEY);
    assert_eq!(count.load(Ordering::SeqCst), 2, "one 503, one retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried() {
    let throttled = r#"{"Code":"Throttling","Message":"slow down"}"#.to_owned();
    let (url, count) = scripted(vec![(400, throttled), (200, describe_ok())]).await;
    client(&url, 4)
        .describe_key(&Caller::local(), &key())
        .await
        .unwrap();
    assert_eq!(count.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_400_is_not_retried() {
    let bad = r#"{"Code":"Forbidden.KeyNotFound","Message":"no such key"}"#.to_owned();
    let (url, count) = scripted(vec![(404, bad.clone()), (200, describe_ok())]).await;
    let err = client(&url, 4)
        .describe_key(&Caller::local(), &key())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::KeyNotFound);
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "a 4xx is answered once, never retried"
    );
    let invalid = r#"{"Code":"InvalidParameter","Message":"bad"}"#.to_owned();
    let (url, count) = scripted(vec![(400, invalid), (200, describe_ok())]).await;
    let err = client(&url, 4)
        .describe_key(&Caller::local(), &key())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InvalidParameter);
    assert!(err.to_string().contains("InvalidParameter (HTTP 400)"), "{err}");
    assert_eq!(count.load(Ordering::SeqCst), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_5xx_gives_up_after_max_attempts() {
    let (url, count) = scripted(vec![(
        500,
        r#"{"Code":"InternalFailure","Message":"x"}"#.to_owned(),
    )])
    .await;
    let err = client(&url, 3)
        .describe_key(&Caller::local(), &key())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::InternalFailure);
    assert_eq!(count.load(Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_endpoint_is_a_retryable_unavailable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = client(&format!("http://127.0.0.1:{port}"), 2)
        .describe_key(&Caller::local(), &key())
        .await
        .unwrap_err();
    assert_eq!(err.code(), ErrorCode::ServiceUnavailableTemporary, "{err}");
    assert!(err.is_retryable());
}

#[test]
fn endpoint_from_region_and_debug_redacts() {
    let kms = AliyunKms::builder()
        .region("cn-hangzhou")
        .credentials("LTAIexample", "very-secret")
        .security_token("sts-secret")
        .build()
        .unwrap();
    assert_eq!(kms.endpoint(), "https://kms.cn-hangzhou.aliyuncs.com");
    let s = format!("{kms:?}");
    assert!(
        s.contains("LTAIexample") && !s.contains("very-secret") && !s.contains("sts-secret"),
        "{s}"
    );
    assert!(
        AliyunKms::builder()
            .endpoint("ftp://x")
            .credentials("a", "b")
            .build()
            .is_err()
    );
}
