//! CreateKeyVersion and UpdateRotationPolicy over 127.0.0.1, with and without a rotator.

#![allow(clippy::unwrap_used)] // test helpers

use std::net::SocketAddr;
use std::sync::Arc;

use kmskit_core::{KeyProvider, Rotator};
use kmskit_memory::{MemoryKms, MemoryKmsExt};
use kmskit_server::client::{Client, SignatureVersion};
use kmskit_server::sign::AccessKeySecret;
use kmskit_server::{AccessKey, RunningServer, Server};

const AK: &str = "ak-rot";
const SECRET: &str = "secret-rot";

async fn start(with_rotator: bool) -> (RunningServer, SocketAddr) {
    let kms = Arc::new(MemoryKms::new_memory());
    let mut b = Server::builder()
        .provider(kms.clone() as Arc<dyn KeyProvider>)
        .access_key(AccessKey::new(AK, AccessKeySecret::new(SECRET), "admin"));
    if with_rotator {
        b = b.rotator(kms as Arc<dyn Rotator>);
    }
    let running = b
        .build()
        .unwrap()
        .bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let addr = running.local_addr().unwrap();
    (running, addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_actions_with_a_rotator() {
    let (running, addr) = start(true).await;
    for v in [SignatureVersion::V2, SignatureVersion::V3] {
        let mut c = Client::connect(addr, AK, AccessKeySecret::new(SECRET), v)
            .await
            .unwrap();
        let r = c.call("CreateKey", &[("Description", "rot")]).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let key_id = r.body["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
        let v1 = r.body["KeyMetadata"]["PrimaryKeyVersion"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(r.body["KeyMetadata"]["AutomaticRotation"], "Disabled");
        assert!(r.body["KeyMetadata"].get("RotationInterval").is_none(), "{r:?}");

        let r = c
            .call("Encrypt", &[("KeyId", &key_id), ("Plaintext", "old secret")])
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let old_blob = r.str("CiphertextBlob").to_owned();
        assert_eq!(r.str("KeyVersionId"), v1);

        // CreateKeyVersion: a new primary version.
        let r = c.call("CreateKeyVersion", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["KeyVersion"]["KeyId"], key_id.as_str());
        let v2 = r.body["KeyVersion"]["KeyVersionId"].as_str().unwrap().to_owned();
        assert_ne!(v1, v2);
        assert!(r.body["KeyVersion"]["CreationDate"].is_string());

        let r = c.call("DescribeKey", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.body["KeyMetadata"]["PrimaryKeyVersion"], v2.as_str());
        assert!(r.body["KeyMetadata"]["LastRotationDate"].is_string(), "{r:?}");

        let r = c.call("ListKeyVersions", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.body["TotalCount"], 2, "{r:?}");

        // The old ciphertext still decrypts (under v1); new ones use v2.
        let r = c.call("Decrypt", &[("CiphertextBlob", &old_blob)]).await.unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.str("Plaintext"), "old secret");
        assert_eq!(r.str("KeyVersionId"), v1);
        let r = c
            .call("Encrypt", &[("KeyId", &key_id), ("Plaintext", "new")])
            .await
            .unwrap();
        assert_eq!(r.str("KeyVersionId"), v2);

        // UpdateRotationPolicy: 7d is 604800s; DescribeKey shows the policy.
        let r = c
            .call(
                "UpdateRotationPolicy",
                &[
                    ("KeyId", &key_id),
                    ("EnableAutomaticRotation", "true"),
                    ("RotationInterval", "7d"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let r = c.call("DescribeKey", &[("KeyId", &key_id)]).await.unwrap();
        let m = &r.body["KeyMetadata"];
        assert_eq!(m["AutomaticRotation"], "Enabled", "{r:?}");
        assert_eq!(m["RotationInterval"], "604800s");
        assert!(!m["NextRotationDate"].as_str().unwrap().is_empty(), "{r:?}");
        assert!(m["LastRotationDate"].is_string());

        let r = c
            .call(
                "UpdateRotationPolicy",
                &[
                    ("KeyId", &key_id),
                    ("EnableAutomaticRotation", "true"),
                    ("RotationInterval", "2592000s"),
                ],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let r = c.call("DescribeKey", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.body["KeyMetadata"]["RotationInterval"], "2592000s");

        // Errors: too short, malformed, missing interval, missing flag.
        for (interval, code) in [
            (Some("1d"), "InvalidParameter"),
            (Some("7x"), "InvalidParameter"),
            (None, "MissingParameter"),
        ] {
            let mut params = vec![("KeyId", key_id.as_str()), ("EnableAutomaticRotation", "true")];
            if let Some(i) = interval {
                params.push(("RotationInterval", i));
            }
            let r = c.call("UpdateRotationPolicy", &params).await.unwrap();
            assert_eq!(r.status, 400, "{interval:?} {r:?}");
            assert!(r.str("Code").starts_with(code), "{interval:?} {r:?}");
        }
        let r = c
            .call("UpdateRotationPolicy", &[("KeyId", &key_id)])
            .await
            .unwrap();
        assert_eq!(r.status, 400, "{r:?}");

        // Disable: the interval and next date go away.
        let r = c
            .call(
                "UpdateRotationPolicy",
                &[("KeyId", &key_id), ("EnableAutomaticRotation", "false")],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        let r = c.call("DescribeKey", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.body["KeyMetadata"]["AutomaticRotation"], "Disabled");
        assert!(r.body["KeyMetadata"].get("NextRotationDate").is_none(), "{r:?}");
        assert!(r.body["KeyMetadata"].get("RotationInterval").is_none(), "{r:?}");

        // Unknown key; disabled key.
        let r = c
            .call("CreateKeyVersion", &[("KeyId", "alias/nope")])
            .await
            .unwrap();
        assert_eq!(r.status, 404, "{r:?}");
        assert_eq!(r.str("Code"), "Forbidden.AliasNotFound");
        let r = c.call("DisableKey", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.status, 200);
        let r = c.call("CreateKeyVersion", &[("KeyId", &key_id)]).await.unwrap();
        assert_eq!(r.status, 409, "{r:?}");
        assert_eq!(r.str("Code"), "Rejected.Disabled");

        // CreateKey with EnableAutomaticRotation.
        let r = c
            .call(
                "CreateKey",
                &[("EnableAutomaticRotation", "true"), ("RotationInterval", "30d")],
            )
            .await
            .unwrap();
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(r.body["KeyMetadata"]["AutomaticRotation"], "Enabled");
        assert_eq!(r.body["KeyMetadata"]["RotationInterval"], "2592000s");
        assert!(r.body["KeyMetadata"]["NextRotationDate"].is_string());
    }
    running.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotation_actions_without_a_rotator_are_unknown() {
    let (running, addr) = start(false).await;
    let mut c = Client::connect(addr, AK, AccessKeySecret::new(SECRET), SignatureVersion::V3)
        .await
        .unwrap();
    let r = c.call("CreateKey", &[]).await.unwrap();
    let key_id = r.body["KeyMetadata"]["KeyId"].as_str().unwrap().to_owned();
    for (action, extra) in [
        ("CreateKeyVersion", None),
        ("UpdateRotationPolicy", Some(("EnableAutomaticRotation", "false"))),
    ] {
        let mut params = vec![("KeyId", key_id.as_str())];
        params.extend(extra);
        let r = c.call(action, &params).await.unwrap();
        assert_eq!(r.status, 404, "{action} {r:?}");
        assert_eq!(r.str("Code"), "InvalidAction.NotFound");
    }
    let r = c
        .call(
            "CreateKey",
            &[("EnableAutomaticRotation", "true"), ("RotationInterval", "7d")],
        )
        .await
        .unwrap();
    assert_eq!(r.status, 400, "{r:?}");
    running.shutdown().await;
}
