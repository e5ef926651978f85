//! Access control: three principals with the model service's three role templates — SecurityAdmin,
//! CryptoUser (on one named key) and Auditor — each try every action through the real API, and the
//! allow/deny matrix is printed. Then dual control: a DisableKey by one admin waits until a second,
//! distinct admin approves it.
//!
//! Run with `cargo run --example access_control`.

use std::sync::Arc;

use kmskit::audit::{AuditLog, AuditQuery};
use kmskit::governance::{DualControl, Governance};
use kmskit::policy::{Policy, PolicySet, Role};
use kmskit::{
    AliasName, Caller, CreateKey, DataKeyLength, EncryptionContext, Error, ErrorCode, KeyProvider, KeyRef,
    KmsConfig, MemoryKms, MemoryKmsExt, Tag,
};

fn main() -> Result<(), Error> {
    kmskit::block_on(run())
}

/// `allow` when the call got past authorization (it may still fail for another reason, e.g. a
/// state rule), `deny` on `Forbidden.NoPermission`.
fn verdict<T>(r: Result<T, Error>) -> &'static str {
    match r {
        Err(e) if e.code() == ErrorCode::NoPermission => "deny",
        _ => "allow",
    }
}

async fn run() -> Result<(), Error> {
    let policies = Arc::new(PolicySet::new());
    // A setup principal that may do everything, to make the key and a ciphertext.
    policies.attach(
        "setup",
        "all",
        Policy::parse(r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#)?,
    );
    let audit = Arc::new(AuditLog::memory(10_000));
    let gov = Governance::new().policies(policies.clone()).audit(audit);
    let kms = MemoryKms::with_memory_config(KmsConfig::new().governance(Arc::new(gov)));

    let setup = Caller::new("setup");
    let key = kms.create_key(&setup, CreateKey::new("orders")).await?.key_id;
    let target = KeyRef::Id(key.clone());
    let ctx = EncryptionContext::from_pairs([("table", "orders")])?;
    let blob = kms
        .encrypt(&setup, &target, b"order #1", &ctx)
        .await?
        .ciphertext_blob;

    policies.attach("sec-admin", "role", Role::SecurityAdmin.policy(&[])?);
    policies.attach("app", "role", Role::CryptoUser.policy(&[key.as_str()])?);
    policies.attach("auditor", "role", Role::Auditor.policy(&[])?);
    let principals = [
        ("SecurityAdmin", Caller::new("sec-admin")),
        ("CryptoUser", Caller::new("app")),
        ("Auditor", Caller::new("auditor")),
    ];

    let actions = [
        "CreateKey",
        "DescribeKey",
        "ListKeys",
        "Encrypt",
        "Decrypt",
        "ReEncrypt",
        "GenerateDataKey",
        "DisableKey",
        "EnableKey",
        "ScheduleKeyDeletion",
        "CancelKeyDeletion",
        "CreateAlias",
        "TagResource",
        "LookupAuditEvents",
        "VerifyAuditTrail",
    ];
    let mut matrix: Vec<Vec<&'static str>> = vec![Vec::new(); actions.len()];
    for (n, (_, c)) in principals.iter().enumerate() {
        for (i, action) in actions.iter().enumerate() {
            let v = match *action {
                "CreateKey" => verdict(kms.create_key(c, CreateKey::new("extra")).await),
                "DescribeKey" => verdict(kms.describe_key(c, &target).await),
                "ListKeys" => verdict(kms.list_keys(c, Default::default()).await),
                "Encrypt" => verdict(kms.encrypt(c, &target, b"x", &ctx).await),
                "Decrypt" => verdict(kms.decrypt(c, &blob, &ctx).await),
                "ReEncrypt" => verdict(kms.re_encrypt(c, &blob, &ctx, &target, &ctx).await),
                "GenerateDataKey" => verdict(
                    kms.generate_data_key(c, &target, DataKeyLength::default(), &ctx)
                        .await,
                ),
                "DisableKey" => verdict(kms.disable_key(c, &target).await),
                "EnableKey" => verdict(kms.enable_key(c, &target).await),
                "ScheduleKeyDeletion" => verdict(kms.schedule_key_deletion(c, &target, 7).await),
                "CancelKeyDeletion" => verdict(kms.cancel_key_deletion(c, &target).await),
                "CreateAlias" => {
                    let alias = AliasName::new(format!("alias/orders-{n}"))?;
                    verdict(kms.create_alias(c, &alias, &target).await)
                }
                "TagResource" => verdict(kms.tag_resource(c, &target, &[Tag::new("team", "orders")?]).await),
                "LookupAuditEvents" => verdict(kms.audit_lookup(c, &AuditQuery::new())),
                "VerifyAuditTrail" => verdict(kms.audit_verify(c)),
                _ => unreachable!(),
            };
            matrix[i].push(v);
        }
    }

    println!(
        "{:<22}{:<15}{:<12}{}",
        "action", principals[0].0, principals[1].0, principals[2].0
    );
    for (action, row) in actions.iter().zip(&matrix) {
        println!("{action:<22}{:<15}{:<12}{}", row[0], row[1], row[2]);
    }
    println!(
        "matrix: {} principals x {} actions, {} allowed",
        principals.len(),
        actions.len(),
        matrix.iter().flatten().filter(|v| **v == "allow").count()
    );

    // Dual control: one admin asks, another approves.
    let policies = Arc::new(PolicySet::new());
    policies.attach("alice", "role", Role::SecurityAdmin.policy(&[])?);
    policies.attach("bob", "role", Role::SecurityAdmin.policy(&[])?);
    let gov = Governance::new()
        .policies(policies)
        .dual_control(DualControl::default());
    let kms = MemoryKms::with_memory_config(KmsConfig::new().governance(Arc::new(gov)));
    let (alice, bob) = (Caller::new("alice"), Caller::new("bob"));
    let key = KeyRef::Id(kms.create_key(&alice, CreateKey::new("payroll")).await?.key_id);
    let id = match kms.disable_key(&alice, &key).await {
        Err(Error::ApprovalRequired { approval_id, .. }) => approval_id,
        other => {
            return Err(Error::Internal(format!(
                "expected a pending approval, got {other:?}"
            )));
        }
    };
    println!(
        "dual control: alice DisableKey -> {} ({id})",
        ErrorCode::ApprovalRequired
    );
    match kms.approve(&alice, &id).await {
        Err(e) => println!("dual control: alice approves her own request -> {}", e.code()),
        Ok(()) => return Err(Error::Internal("self-approval went through".into())),
    }
    kms.approve(&bob, &id).await?;
    let state = kms.describe_key(&bob, &key).await?.key_state;
    println!("dual control: bob approves -> key is {state}");
    Ok(())
}
