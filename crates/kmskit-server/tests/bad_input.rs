//! Arbitrary input never gets a 5xx or a panic: every client mistake answers a 4xx with the spec's
//! error body.

#![allow(clippy::unwrap_used)] // test helpers

use std::sync::Arc;

use kmskit_core::KeyProvider;
use kmskit_memory::{MemoryKms, MemoryKmsExt};
use kmskit_server::sign::{self, AccessKeySecret};
use kmskit_server::wire::HttpRequest;
use kmskit_server::{AccessKey, Peer, Server};
use proptest::prelude::*;

fn server() -> Server {
    let provider: Arc<dyn KeyProvider> = Arc::new(MemoryKms::new_memory());
    Server::builder()
        .provider(provider)
        .access_key(AccessKey::new("ak", AccessKeySecret::new("sk"), "p"))
        .build()
        .unwrap()
}

const PEER: Peer = Peer {
    addr: std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
    secure: false,
};

const ACTIONS: &[&str] = &[
    "CreateKey",
    "DescribeKey",
    "ListKeys",
    "EnableKey",
    "DisableKey",
    "ScheduleKeyDeletion",
    "CancelKeyDeletion",
    "UpdateKeyDescription",
    "SetDeletionProtection",
    "CreateAlias",
    "UpdateAlias",
    "DeleteAlias",
    "ListAliases",
    "ListAliasesByKeyId",
    "Encrypt",
    "Decrypt",
    "ReEncrypt",
    "GenerateDataKey",
    "GenerateDataKeyWithoutPlaintext",
    "ListKeyVersions",
    "DescribeKeyVersion",
    "TagResource",
    "UntagResource",
    "ListResourceTags",
    "TagResources",
    "UntagResources",
    "ListTagResources",
    "AsymmetricSign",
    "AsymmetricVerify",
    "AsymmetricEncrypt",
    "AsymmetricDecrypt",
    "GetPublicKey",
    "Nope",
];
const NAMES: &[&str] = &[
    "KeyId",
    "Plaintext",
    "CiphertextBlob",
    "EncryptionContext",
    "AliasName",
    "PageSize",
    "PageNumber",
    "Filters",
    "KeySpec",
    "NumberOfBytes",
    "Tags",
    "TagKeys",
    "PendingWindowInDays",
    "Description",
    "KeyUsage",
    "Origin",
    "ProtectionLevel",
    "DryRun",
    "DestinationKeyId",
    "KeyVersionId",
    "EnableDeletionProtection",
    "ProtectedResourceArn",
    "SourceEncryptionContext",
    "Format",
    "ResourceType",
    "ResourceId.1",
    "Tag.1.Key",
    "Tag.1.Value",
    "TagKey.1",
    "All",
    "NextToken",
    "Algorithm",
    "Digest",
    "Value",
];

fn check(reply: &kmskit_server::Reply) {
    assert!(
        reply.status < 500,
        "status {} body {}",
        reply.status,
        String::from_utf8_lossy(&reply.body)
    );
    if reply.status != 200 {
        assert!(reply.code.is_some());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Raw bytes as query and body, unsigned: parse errors only.
    #[test]
    fn raw_bytes(query in proptest::collection::vec(any::<u8>(), 0..200),
                 body in proptest::collection::vec(any::<u8>(), 0..200),
                 get in any::<bool>()) {
        let s = server();
        let query = String::from_utf8_lossy(&query).into_owned();
        let req = HttpRequest { method: if get { "GET" } else { "POST" }, path: "/", query: &query,
                                headers: &[("content-type", b"application/x-www-form-urlencoded")], body: &body };
        let reply = kmskit_core::block_on(s.handle(&req, PEER));
        check(&reply);
    }

    /// Correctly signed requests with arbitrary parameter values reach every action: still never a 5xx.
    #[test]
    fn signed_garbage(action in proptest::sample::select(ACTIONS),
                      params in proptest::collection::vec((proptest::sample::select(NAMES), ".{0,40}"), 0..6)) {
        let s = server();
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in params {
            if !pairs.iter().any(|(k2, _)| k2 == k) && k != "Format" {
                pairs.push((k.to_owned(), v));
            }
        }
        let now = kmskit_core::Timestamp::from_system(std::time::SystemTime::now()).to_string();
        sign::sign_v2("POST", action, &mut pairs, "ak", &AccessKeySecret::new("sk"), &sign::new_nonce(), &now);
        let q = sign::encode_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        let req = HttpRequest { method: "POST", path: "/", query: &q, headers: &[], body: b"" };
        let reply = kmskit_core::block_on(s.handle(&req, PEER));
        check(&reply);
        prop_assert_ne!(reply.code.as_deref(), Some("SignatureDoesNotMatch"));
    }
}

#[test]
fn fuzz_helper_survives_samples() {
    for d in [
        &b""[..],
        b"\0\0\0\0",
        b"POST\0/\0a=%\0authorization:ACS3-HMAC-SHA256 x\0",
        b"\xff\xfe",
    ] {
        kmskit_server::internal::fuzz_request(d);
    }
}

#[test]
fn huge_parameter_lists_are_linear() {
    let s = server();
    let query: String = (0..60_000).map(|i| format!("p{i}=v&")).collect();
    let t = std::time::Instant::now();
    let req = HttpRequest {
        method: "POST",
        path: "/",
        query: &query,
        headers: &[],
        body: b"",
    };
    let reply = kmskit_core::block_on(s.handle(&req, PEER));
    assert_eq!(reply.code.as_deref(), Some("IncompleteSignature"));
    let dup = format!("{query}p7=x");
    let req = HttpRequest {
        method: "POST",
        path: "/",
        query: &dup,
        headers: &[],
        body: b"",
    };
    let reply = kmskit_core::block_on(s.handle(&req, PEER));
    assert_eq!(reply.code.as_deref(), Some("InvalidParameter"));
    assert!(
        t.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        t.elapsed()
    );
}

#[test]
fn non_utf8_and_odd_headers() {
    let s = server();
    let cases: &[&[(&str, &[u8])]] = &[
        &[("authorization", b"\xff\xfe")],
        &[("authorization", b"ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host,Signature=00")],
        &[("authorization", b"ACS3-HMAC-SHA256 Credential=ak,SignedHeaders=host;x-acs-date;x-acs-signature-nonce,Signature=00"),
          ("x-acs-date", b"yesterday"), ("x-acs-version", b"2016-01-20"), ("x-acs-signature-nonce", b"n"), ("host", b"h")],
        &[("authorization", b"ACS3-HMAC-SM3 Credential=ak,SignedHeaders=host,Signature=00")],
        &[("authorization", b"Basic Zm9vOmJhcg==")], // no Signature parameter either
        &[("content-type", b"\xff")],
    ];
    for headers in cases {
        let req = HttpRequest {
            method: "POST",
            path: "/",
            query: "",
            headers,
            body: b"",
        };
        let reply = kmskit_core::block_on(s.handle(&req, PEER));
        assert_eq!(
            reply.status,
            400,
            "{headers:?}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
}

#[test]
fn v2_with_a_foreign_authorization_header_is_verified() {
    let s = server();
    let mut pairs = Vec::new();
    let now = kmskit_core::Timestamp::from_system(std::time::SystemTime::now()).to_string();
    sign::sign_v2(
        "POST",
        "ListKeys",
        &mut pairs,
        "ak",
        &AccessKeySecret::new("sk"),
        &sign::new_nonce(),
        &now,
    );
    let q = sign::encode_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let headers: &[(&str, &[u8])] = &[("authorization", b"Basic Zm9vOmJhcg==")];
    let req = HttpRequest {
        method: "POST",
        path: "/",
        query: &q,
        headers,
        body: b"",
    };
    let reply = kmskit_core::block_on(s.handle(&req, PEER));
    assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
}
