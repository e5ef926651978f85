//! The engine under governance: roles through the real API, audit completeness (allowed, denied and
//! failed calls), no secrets in audit lines, dual control, quotas, usage and cost, scheduler events.
#![allow(clippy::unwrap_used, missing_docs)]

use std::net::IpAddr;
use std::sync::Arc;

use base64::Engine as _;
use kmskit_core::audit::{AuditLog, AuditQuery, AuditSink, FileSink, MemorySink, Outcome};
use kmskit_core::clock::DAY;
use kmskit_core::governance::{DualControl, Governance, Prices, Quotas};
use kmskit_core::policy::{Action, Policy, PolicySet, Role};
use kmskit_core::store::SoftwareKeys;
use kmskit_core::{
    AliasName, Caller, CreateKey, DataKeyLength, EncryptionContext, ErrorCode, KeyId, KeyProvider, KeyRef,
    KeyState, Kms, KmsConfig, ManualClock, Result, Timestamp, block_on,
};

mod common;
use common::Tiny;

const T0: u64 = 1_780_000_000;

struct Env {
    kms: Kms<Tiny>,
    clock: ManualClock,
    ring: Arc<MemorySink>,
    admin: Caller,
    admin2: Caller,
    app: Caller,
    auditor: Caller,
}

fn env(gov: impl FnOnce(Governance) -> Governance) -> Env {
    let clock = ManualClock::new(Timestamp::from_unix(T0));
    let ring = Arc::new(MemorySink::new(100_000));
    let log = Arc::new(AuditLog::new(vec![ring.clone() as Arc<dyn AuditSink>]).unwrap());
    let set = Arc::new(PolicySet::new());
    set.attach("admin", "role", Role::SecurityAdmin.policy(&[]).unwrap());
    set.attach("admin2", "role", Role::SecurityAdmin.policy(&[]).unwrap());
    set.attach("auditor", "role", Role::Auditor.policy(&[]).unwrap());
    let g = gov(Governance::new().policies(set).audit(log));
    let config = KmsConfig::new()
        .region("cn-hangzhou")
        .unwrap()
        .account("123")
        .unwrap()
        .clock(Arc::new(clock.clone()))
        .governance(Arc::new(g));
    let kms = Kms::with_config(
        Tiny(SoftwareKeys::new(kmskit_core::crypto::default_engine())),
        config,
    )
    .unwrap();
    Env {
        kms,
        clock,
        ring,
        admin: Caller::new("admin"),
        admin2: Caller::new("admin2"),
        app: Caller::new("app"),
        auditor: Caller::new("auditor"),
    }
}

fn code<T>(r: Result<T>) -> ErrorCode {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.code(),
    }
}

impl Env {
    /// A key for `app` as CryptoUser.
    fn app_key(&self) -> KeyId {
        let k = block_on(self.kms.create_key(&self.admin, CreateKey::new("app key")))
            .unwrap()
            .key_id;
        self.kms.governance().policy_set().attach(
            "app",
            "role",
            Role::CryptoUser
                .policy(&[k.as_str(), "acs:kms:*:*:alias/app-*"])
                .unwrap(),
        );
        k
    }
}

#[test]
fn roles_through_the_engine() {
    let e = env(|g| g);
    let k = e.app_key();
    let key = KeyRef::Id(k.clone());
    let ctx = EncryptionContext::from_pairs([("table", "orders")]).unwrap();
    // The app encrypts and decrypts its key, by id and by an alias matching its policy.
    let enc = block_on(e.kms.encrypt(&e.app, &key, b"hello", &ctx)).unwrap();
    block_on(e.kms.decrypt(&e.app, &enc.ciphertext_blob, &ctx)).unwrap();
    block_on(
        e.kms
            .create_alias(&e.admin, &AliasName::new("alias/app-main").unwrap(), &key),
    )
    .unwrap();
    let by_alias = KeyRef::parse("alias/app-main").unwrap();
    block_on(e.kms.encrypt(&e.app, &by_alias, b"hello", &ctx)).unwrap();
    // …but cannot manage it.
    assert_eq!(
        code(block_on(e.kms.disable_key(&e.app, &key))),
        ErrorCode::NoPermission
    );
    assert_eq!(
        code(block_on(e.kms.create_key(&e.app, CreateKey::new("x")))),
        ErrorCode::NoPermission
    );
    // The admin manages, but cannot use it.
    assert_eq!(
        code(block_on(e.kms.encrypt(&e.admin, &key, b"x", &ctx))),
        ErrorCode::NoPermission
    );
    assert_eq!(
        code(block_on(e.kms.decrypt(&e.admin, &enc.ciphertext_blob, &ctx))),
        ErrorCode::NoPermission
    );
    block_on(e.kms.update_key_description(&e.admin, &key, "new")).unwrap();
    // Another key is out of the app's reach.
    let other = block_on(e.kms.create_key(&e.admin, CreateKey::new("other")))
        .unwrap()
        .key_id;
    assert_eq!(
        code(block_on(e.kms.encrypt(&e.app, &KeyRef::Id(other), b"x", &ctx))),
        ErrorCode::NoPermission
    );
    // Denied before lookup: an unknown key answers NoPermission, not KeyNotFound.
    let ghost = KeyRef::Id(KeyId::new("ghost").unwrap());
    assert_eq!(
        code(block_on(e.kms.describe_key(&e.app, &ghost))),
        ErrorCode::NoPermission
    );
    assert_eq!(
        code(block_on(e.kms.describe_key(&e.admin, &ghost))),
        ErrorCode::KeyNotFound
    );
    // The auditor reads the trail; nobody else does.
    assert!(
        !e.kms
            .audit_lookup(&e.auditor, &AuditQuery::new())
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        code(e.kms.audit_lookup(&e.app, &AuditQuery::new())),
        ErrorCode::NoPermission
    );
    assert_eq!(
        code(e.kms.audit_lookup(&e.admin, &AuditQuery::new())),
        ErrorCode::NoPermission
    );
    assert!(e.kms.audit_verify(&e.auditor).unwrap().is_ok());
    // The trusted local caller has no special rights unless configured.
    assert_eq!(
        code(block_on(e.kms.list_keys(&Caller::local(), Default::default()))),
        ErrorCode::NoPermission
    );
}

#[test]
fn trusted_local_and_open_mode() {
    let e = env(|g| g.trust_local(true));
    block_on(e.kms.create_key(&Caller::local(), CreateKey::new("x"))).unwrap();
    let open = env(|g| g.enforce(false));
    block_on(open.kms.create_key(&Caller::new("anyone"), CreateKey::new("x"))).unwrap();
    // Still audited.
    assert_eq!(open.ring.events().len(), 1);
}

#[test]
fn source_ip_condition_through_the_engine() {
    let e = env(|g| g);
    let k = e.app_key();
    e.kms.governance().policy_set().attach(
        "app",
        "net",
        Policy::parse(
            r#"{"Version":"1","Statement":[{"Effect":"Deny","Action":"kms:*","Resource":"*",
                "Condition":{"NotIpAddress":{"acs:SourceIp":["10.0.0.0/8","fd00::/8"]}}}]}"#,
        )
        .unwrap(),
    );
    let ctx = EncryptionContext::new();
    let key = KeyRef::Id(k);
    let from = |ip: &str| e.app.clone().with_source_ip(ip.parse::<IpAddr>().unwrap());
    block_on(e.kms.encrypt(&from("10.9.8.7"), &key, b"x", &ctx)).unwrap();
    block_on(e.kms.encrypt(&from("fd12::1"), &key, b"x", &ctx)).unwrap();
    assert_eq!(
        code(block_on(e.kms.encrypt(&from("11.0.0.1"), &key, b"x", &ctx))),
        ErrorCode::NoPermission
    );
    assert_eq!(
        code(block_on(e.kms.encrypt(&e.app, &key, b"x", &ctx))),
        ErrorCode::NoPermission
    );
    let denied = e
        .ring
        .events()
        .into_iter()
        .filter(|ev| ev.outcome == Outcome::Denied)
        .count();
    assert_eq!(denied, 2);
}

#[test]
fn encryption_context_condition_through_the_engine() {
    let e = env(|g| g);
    let k = block_on(e.kms.create_key(&e.admin, CreateKey::new("ctx")))
        .unwrap()
        .key_id;
    e.kms.governance().policy_set().attach(
        "svc",
        "ctx",
        Policy::parse(
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Decrypt"],"Resource":"*",
                "Condition":{"StringEquals":{"kms:EncryptionContext.tenant":"acme"}}}]}"#,
        )
        .unwrap(),
    );
    let svc = Caller::new("svc");
    let key = KeyRef::Id(k);
    let good = EncryptionContext::from_pairs([("tenant", "acme")]).unwrap();
    let bad = EncryptionContext::from_pairs([("tenant", "evil")]).unwrap();
    let enc = block_on(e.kms.encrypt(&svc, &key, b"x", &good)).unwrap();
    block_on(e.kms.decrypt(&svc, &enc.ciphertext_blob, &good)).unwrap();
    assert_eq!(
        code(block_on(e.kms.encrypt(&svc, &key, b"x", &bad))),
        ErrorCode::NoPermission
    );
    assert_eq!(
        code(block_on(e.kms.decrypt(&svc, &enc.ciphertext_blob, &bad))),
        ErrorCode::NoPermission
    );
}

/// N calls give N events, with the right outcome each, denied and failed ones included.
#[test]
fn audit_is_complete() {
    let e = env(|g| g);
    let k = e.app_key(); // 1 event: CreateKey
    let key = KeyRef::Id(k.clone());
    let ctx = EncryptionContext::from_pairs([("table", "t")]).unwrap();
    let before = e.ring.events().len();
    assert_eq!(before, 1);
    let mut expected = Vec::new();
    for i in 0..30u32 {
        match i % 5 {
            0 => {
                block_on(e.kms.encrypt(&e.app, &key, b"x", &ctx)).unwrap();
                expected.push(("Encrypt", Outcome::Success, "OK"));
            }
            1 => {
                code(block_on(e.kms.encrypt(&e.admin, &key, b"x", &ctx)));
                expected.push(("Encrypt", Outcome::Denied, "Forbidden.NoPermission"));
            }
            2 => {
                // Authorized but fails: plaintext too large.
                code(block_on(e.kms.encrypt(&e.app, &key, &[0u8; 7000], &ctx)));
                expected.push(("Encrypt", Outcome::Failed, "InvalidParameter"));
            }
            3 => {
                block_on(e.kms.describe_key(&e.admin, &key)).unwrap();
                expected.push(("DescribeKey", Outcome::Success, "OK"));
            }
            _ => {
                block_on(
                    e.kms
                        .generate_data_key(&e.app, &key, DataKeyLength::default(), &ctx),
                )
                .unwrap();
                expected.push(("GenerateDataKey", Outcome::Success, "OK"));
            }
        }
    }
    let evs = e.ring.events();
    assert_eq!(evs.len() - before, expected.len());
    for (ev, (action, outcome, code)) in evs[before..].iter().zip(&expected) {
        assert_eq!((&*ev.action, ev.outcome, &*ev.code), (*action, *outcome, *code));
        assert_eq!(ev.key_id.as_deref(), Some(k.as_str()));
        assert!(!ev.request_id.is_empty());
        if ev.action != "DescribeKey" {
            assert_eq!(ev.context_keys, vec!["table".to_owned()]);
        }
        if ev.outcome == Outcome::Success && ev.action != "DescribeKey" {
            assert!(ev.key_version_id.is_some());
        }
    }
    // Lookup by action and time window, as an auditor.
    let enc = e
        .kms
        .audit_lookup(
            &e.auditor,
            &AuditQuery::new()
                .actions(["Encrypt"])
                .between(Timestamp::from_unix(T0 - DAY), Timestamp::from_unix(T0 + DAY)),
        )
        .unwrap();
    assert_eq!(enc.len(), 18);
    assert!(e.kms.audit_verify(&e.auditor).unwrap().is_ok());
}

/// Every audit line is free of the plaintexts, data keys and context values the test used.
#[test]
fn audit_lines_hold_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let sink = Arc::new(FileSink::open(dir.path()).unwrap());
    let log = Arc::new(AuditLog::new(vec![sink.clone() as Arc<dyn AuditSink>]).unwrap());
    let config = KmsConfig::new().governance(Arc::new(Governance::new().audit(log.clone())));
    let kms = Kms::with_config(
        Tiny(SoftwareKeys::new(kmskit_core::crypto::default_engine())),
        config,
    )
    .unwrap();
    let c = Caller::local();
    let key = KeyRef::Id(block_on(kms.create_key(&c, CreateKey::new("k"))).unwrap().key_id);
    let plaintext = b"PLAINTEXT-4f1c9a-do-not-log";
    let ctx = EncryptionContext::from_pairs([("tenant-name", "CTXVALUE-77a1e3")]).unwrap();
    let mut secrets: Vec<Vec<u8>> = vec![plaintext.to_vec(), b"CTXVALUE-77a1e3".to_vec()];
    for _ in 0..5 {
        let enc = block_on(kms.encrypt(&c, &key, plaintext, &ctx)).unwrap();
        let dec = block_on(kms.decrypt(&c, &enc.ciphertext_blob, &ctx)).unwrap();
        assert_eq!(&dec.plaintext[..], plaintext);
        let dk = block_on(kms.generate_data_key(&c, &key, DataKeyLength::default(), &ctx)).unwrap();
        let raw = dk.plaintext.expose_secret().to_vec();
        secrets.push(
            base64::engine::general_purpose::STANDARD
                .encode(&raw)
                .into_bytes(),
        );
        secrets.push(
            raw.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>()
                .into_bytes(),
        );
        secrets.push(raw);
        // The ciphertext is not secret, but the audit has no reason to carry it either.
        secrets.push(enc.ciphertext_blob.to_base64().into_bytes());
    }
    // A failed decrypt under a wrong context value must not log the value either.
    let wrong = EncryptionContext::from_pairs([("tenant-name", "CTXVALUE-WRONG-5d2")]).unwrap();
    let enc = block_on(kms.encrypt(&c, &key, plaintext, &ctx)).unwrap();
    assert!(block_on(kms.decrypt(&c, &enc.ciphertext_blob, &wrong)).is_err());
    secrets.push(b"CTXVALUE-WRONG-5d2".to_vec());
    log.flush().unwrap();
    let mut all = Vec::new();
    for p in sink.segment_paths().unwrap() {
        all.extend(std::fs::read(p).unwrap());
    }
    let text = String::from_utf8(all.clone()).unwrap();
    assert_eq!(text.lines().count(), 1 + 5 * 3 + 2);
    assert!(text.contains("tenant-name"), "context keys are recorded");
    for s in &secrets {
        assert!(!s.is_empty());
        assert!(
            !all.windows(s.len()).any(|w| w == &s[..]),
            "audit holds a secret: {:?}",
            String::from_utf8_lossy(s)
        );
    }
}

#[test]
fn dual_control_needs_a_distinct_permitted_approver_in_time() {
    let e = env(|g| g.dual_control(DualControl::default().expiry_secs(3600)));
    let k = e.app_key();
    let key = KeyRef::Id(k.clone());
    let err = block_on(e.kms.disable_key(&e.admin, &key)).unwrap_err();
    assert_eq!(err.code(), ErrorCode::ApprovalRequired);
    let kmskit_core::Error::ApprovalRequired { approval_id: id, .. } = err else {
        panic!()
    };
    // Nothing happened yet.
    assert_eq!(
        block_on(e.kms.describe_key(&e.admin, &key)).unwrap().key_state,
        KeyState::Enabled
    );
    assert_eq!(e.kms.pending_approvals().len(), 1);
    // The requester cannot approve; a principal without the permission cannot either.
    assert_eq!(
        code(block_on(e.kms.approve(&e.admin, &id))),
        ErrorCode::NoPermission
    );
    assert_eq!(
        code(block_on(e.kms.approve(&e.app, &id))),
        ErrorCode::NoPermission
    );
    assert_eq!(e.kms.pending_approvals().len(), 1, "still pending");
    // A second admin approves: it runs.
    block_on(e.kms.approve(&e.admin2, &id)).unwrap();
    assert_eq!(
        block_on(e.kms.describe_key(&e.admin, &key)).unwrap().key_state,
        KeyState::Disabled
    );
    assert!(e.kms.pending_approvals().is_empty());
    assert_eq!(
        code(block_on(e.kms.approve(&e.admin2, &id))),
        ErrorCode::InvalidParameter
    );
    // Both sides are audited.
    let evs = e.ring.events();
    let pending = evs
        .iter()
        .find(|ev| ev.outcome == Outcome::PendingApproval)
        .unwrap();
    assert_eq!(
        (&*pending.action, pending.principal.as_str()),
        ("DisableKey", "admin")
    );
    assert_eq!(pending.detail.as_deref(), Some(id.as_str()));
    let approvals: Vec<_> = evs.iter().filter(|ev| ev.action == "ApproveRequest").collect();
    assert_eq!(
        approvals
            .iter()
            .map(|ev| (ev.principal.as_str(), ev.outcome))
            .collect::<Vec<_>>(),
        vec![
            ("admin", Outcome::Denied),
            ("app", Outcome::Denied),
            ("admin2", Outcome::Success),
            ("admin2", Outcome::Failed)
        ]
    );
    let done = evs
        .iter()
        .find(|ev| ev.action == "DisableKey" && ev.outcome == Outcome::Success)
        .unwrap();
    assert_eq!(done.principal, "admin");
    assert!(done.detail.as_deref().unwrap().contains("approved by admin2"));

    // Expiry: a request not approved in time cannot run.
    block_on(e.kms.enable_key(&e.admin, &key)).unwrap(); // not held
    let err = block_on(e.kms.schedule_key_deletion(&e.admin, &key, 7)).unwrap_err();
    let kmskit_core::Error::ApprovalRequired { approval_id: id, .. } = err else {
        panic!()
    };
    e.clock.advance(3601);
    assert_eq!(
        code(block_on(e.kms.approve(&e.admin2, &id))),
        ErrorCode::InvalidParameter
    );
    assert_eq!(
        block_on(e.kms.describe_key(&e.admin, &key)).unwrap().key_state,
        KeyState::Enabled
    );
    // Turning deletion protection on is not held; turning it off is.
    block_on(e.kms.set_deletion_protection(&e.admin, &key, true, "keep")).unwrap();
    assert_eq!(
        code(block_on(e.kms.set_deletion_protection(&e.admin, &key, false, ""))),
        ErrorCode::ApprovalRequired
    );
    // Policy changes are held too.
    let p = Role::Auditor.policy(&[]).unwrap();
    assert_eq!(
        code(block_on(e.kms.attach_policy(&e.admin, "bob", "r", p))),
        ErrorCode::ApprovalRequired
    );
    // Plaintext-carrying actions cannot be held.
    assert!(DualControl::none().require(Action::Encrypt).is_err());
}

#[test]
fn quotas() {
    let e = env(|g| g.quotas(Quotas::new().max_keys(2).max_aliases(1).max_versions_per_key(1)));
    let k1 = block_on(e.kms.create_key(&e.admin, CreateKey::new("1")))
        .unwrap()
        .key_id;
    block_on(e.kms.create_key(&e.admin, CreateKey::new("2"))).unwrap();
    let err = block_on(e.kms.create_key(&e.admin, CreateKey::new("3"))).unwrap_err();
    assert_eq!(err.code().as_str(), "Rejected.LimitExceeded");
    let a1 = AliasName::new("alias/one").unwrap();
    let a2 = AliasName::new("alias/two").unwrap();
    block_on(e.kms.create_alias(&e.admin, &a1, &KeyRef::Id(k1.clone()))).unwrap();
    assert_eq!(
        code(block_on(e.kms.create_alias(
            &e.admin,
            &a2,
            &KeyRef::Id(k1.clone())
        ))),
        ErrorCode::LimitExceeded
    );
    assert_eq!(
        code(e.kms.check_version_quota(&KeyRef::Id(k1))),
        ErrorCode::LimitExceeded
    );
    // Still full.
    let k2 = block_on(e.kms.create_key(&e.admin, CreateKey::new("x"))).err();
    assert!(k2.is_some());
    let failed = e
        .ring
        .events()
        .into_iter()
        .filter(|ev| ev.code == "Rejected.LimitExceeded")
        .count();
    assert_eq!(failed, 3);
}

#[test]
fn usage_and_cost_and_scheduler_events() {
    let e = env(|g| g.prices(Prices::new(0.1, 15.0)));
    let k = e.app_key();
    let key = KeyRef::Id(k.clone());
    let ctx = EncryptionContext::new();
    for _ in 0..20 {
        block_on(e.kms.encrypt(&e.app, &key, b"x", &ctx)).unwrap();
    }
    let _ = block_on(e.kms.encrypt(&e.admin, &key, b"x", &ctx)); // denied: not counted
    e.clock.advance(30 * DAY);
    let r = e
        .kms
        .usage_report(
            &e.auditor,
            Timestamp::from_unix(T0),
            Timestamp::from_unix(T0 + 30 * DAY),
        )
        .unwrap();
    let enc = r.rows.iter().find(|r| r.action == Action::Encrypt).unwrap();
    assert_eq!((enc.key_id.as_deref(), enc.calls), (Some(k.as_str()), 20));
    assert_eq!(r.total_calls, 21); // + CreateKey
    assert!((r.key_months - 1.0).abs() < 1e-9);
    assert!((r.keys_cost - 15.0).abs() < 1e-9);
    assert!((r.calls_cost - 21.0 / 10_000.0 * 0.1).abs() < 1e-12);
    assert!(r.to_string().contains("key-months: 1.000"));
    assert_eq!(
        code(
            e.kms
                .usage_report(&e.app, Timestamp::from_unix(T0), Timestamp::from_unix(T0))
        ),
        ErrorCode::NoPermission
    );

    // The purge at the end of a deletion window is audited as the scheduler's.
    block_on(e.kms.schedule_key_deletion(&e.admin, &key, 7)).unwrap();
    e.clock.advance(8 * DAY);
    assert_eq!(e.kms.purge_due().unwrap(), vec![k.clone()]);
    let purge = e
        .ring
        .events()
        .into_iter()
        .find(|ev| ev.action == "PurgeKey")
        .unwrap();
    assert_eq!(purge.principal, kmskit_core::audit::SCHEDULER_PRINCIPAL);
    assert_eq!(purge.key_id.as_deref(), Some(k.as_str()));
}

#[test]
fn key_policy_through_the_engine() {
    let e = env(|g| g);
    let k = block_on(e.kms.create_key(&e.admin, CreateKey::new("shared")))
        .unwrap()
        .key_id;
    let key = KeyRef::Id(k.clone());
    let ctx = EncryptionContext::new();
    let svc = Caller::new("svc-billing");
    assert_eq!(
        code(block_on(e.kms.encrypt(&svc, &key, b"x", &ctx))),
        ErrorCode::NoPermission
    );
    let p = Policy::parse(
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*","Principal":{"RAM":["svc-*"]}}]}"#,
    )
    .unwrap();
    block_on(e.kms.put_key_policy(&e.admin, &key, Some(p))).unwrap();
    block_on(e.kms.encrypt(&svc, &key, b"x", &ctx)).unwrap();
    // The key policy applies to this key only.
    let other = block_on(e.kms.create_key(&e.admin, CreateKey::new("other")))
        .unwrap()
        .key_id;
    assert_eq!(
        code(block_on(e.kms.encrypt(&svc, &KeyRef::Id(other), b"x", &ctx))),
        ErrorCode::NoPermission
    );
    block_on(e.kms.put_key_policy(&e.admin, &key, None)).unwrap();
    assert_eq!(
        code(block_on(e.kms.encrypt(&svc, &key, b"x", &ctx))),
        ErrorCode::NoPermission
    );
}

/// Concurrent creations never overshoot a quota; once they are done, the quota fills exactly.
#[test]
fn quotas_hold_under_concurrency() {
    let e = Arc::new(env(|g| g.quotas(Quotas::new().max_keys(10))));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let e = e.clone();
            std::thread::spawn(move || {
                (0..5)
                    .filter(|i| {
                        block_on(e.kms.create_key(&e.admin, CreateKey::new(format!("{t}-{i}")))).is_ok()
                    })
                    .count()
            })
        })
        .collect();
    let made: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(made <= 10, "{made} keys under a quota of 10");
    let mut more = 0;
    while block_on(e.kms.create_key(&e.admin, CreateKey::new("fill"))).is_ok() {
        more += 1;
    }
    assert_eq!(made + more, 10);
    let listed = block_on(e.kms.list_keys(
        &e.admin,
        kmskit_core::ListKeys::new(kmskit_core::PageRequest::new(1, 100).unwrap()),
    ))
    .unwrap();
    assert_eq!(listed.total_count, 10);
}

/// Rotation goes through governance too: only a SecurityAdmin rotates, the versions-per-key quota
/// holds, and the scheduler's rotations are audited as its own.
#[test]
fn rotation_is_governed_and_audited() {
    use kmskit_core::rotate::{RotationPolicy, Rotator};
    let e = env(|g| g.quotas(Quotas::new().max_versions_per_key(2)));
    let k = e.app_key();
    let key = KeyRef::Id(k.clone());
    assert_eq!(
        code(block_on(e.kms.rotate(&e.app, &key))),
        ErrorCode::NoPermission
    );
    assert_eq!(
        code(block_on(e.kms.rotate(&e.auditor, &key))),
        ErrorCode::NoPermission
    );
    let v2 = block_on(e.kms.rotate(&e.admin, &key)).unwrap();
    assert_eq!(
        code(block_on(e.kms.rotate(&e.admin, &key))),
        ErrorCode::LimitExceeded
    );
    assert_eq!(
        code(block_on(e.kms.set_rotation_policy(
            &e.app,
            &key,
            RotationPolicy::every_days(7).unwrap()
        ))),
        ErrorCode::NoPermission
    );
    // The app may re-encrypt its own ciphertexts to the primary version.
    let ctx = EncryptionContext::new();
    let enc = block_on(e.kms.encrypt(&e.app, &key, b"x", &ctx)).unwrap();
    let re = block_on(e.kms.re_encrypt_to_primary(&e.app, &enc.ciphertext_blob, &ctx)).unwrap();
    assert_eq!(re.key_version_id, v2.key_version_id);
    let evs = e.ring.events();
    let rot: Vec<_> = evs.iter().filter(|ev| ev.action == "CreateKeyVersion").collect();
    assert_eq!(
        rot.iter()
            .map(|ev| (ev.principal.as_str(), ev.outcome))
            .collect::<Vec<_>>(),
        vec![
            ("app", Outcome::Denied),
            ("auditor", Outcome::Denied),
            ("admin", Outcome::Success),
            ("admin", Outcome::Failed)
        ]
    );
    // A scheduled rotation is the scheduler's event.
    let e = env(|g| g);
    let k = e.app_key();
    let key = KeyRef::Id(k.clone());
    block_on(
        e.kms
            .set_rotation_policy(&e.admin, &key, RotationPolicy::every_days(7).unwrap()),
    )
    .unwrap();
    e.clock.advance(8 * DAY);
    let report = block_on(e.kms.run_due(Timestamp::from_unix(T0 + 8 * DAY))).unwrap();
    assert_eq!(report.rotated.len(), 1);
    let ev = e
        .ring
        .events()
        .into_iter()
        .rev()
        .find(|ev| ev.action == "CreateKeyVersion")
        .unwrap();
    assert_eq!(ev.principal, kmskit_core::audit::SCHEDULER_PRINCIPAL);
    assert_eq!(ev.key_id.as_deref(), Some(k.as_str()));
}

/// The asymmetric actions are governed and audited like the symmetric ones: a CryptoUser signs and
/// verifies with its key and reads the public key; a SecurityAdmin creates the key but may not sign;
/// another principal is refused; every call is in the trail with the action, the version and the
/// algorithm, and never the digest or the signature.
#[cfg(feature = "asymmetric")]
#[test]
fn asymmetric_actions_are_governed_and_audited() {
    use kmskit_core::PageRequest;
    use kmskit_core::key::{AsymmetricAlgorithm, KeySpec, KeyUsage};
    let e = env(|g| g);
    let k = block_on(
        e.kms.create_key(
            &e.admin,
            CreateKey::new("signing")
                .key_spec(KeySpec::EcP256)
                .key_usage(KeyUsage::SignVerify),
        ),
    )
    .unwrap()
    .key_id;
    e.kms
        .governance()
        .policy_set()
        .attach("app", "role", Role::CryptoUser.policy(&[k.as_str()]).unwrap());
    let key = KeyRef::Id(k.clone());
    let v = block_on(e.kms.list_key_versions(&e.app, &key, PageRequest::default()))
        .unwrap()
        .items[0]
        .key_version_id
        .clone();
    let digest = [0x11u8; 32];
    let alg = AsymmetricAlgorithm::EcdsaSha256;
    let sig = block_on(e.kms.asymmetric_sign(&e.app, &key, &v, alg, &digest)).unwrap();
    assert!(
        block_on(
            e.kms
                .asymmetric_verify(&e.app, &key, &v, alg, &digest, &sig.signature)
        )
        .unwrap()
        .valid
    );
    block_on(e.kms.get_public_key(&e.app, &key, &v)).unwrap();
    block_on(e.kms.get_public_key(&e.admin, &key, &v)).unwrap();
    assert_eq!(
        code(block_on(e.kms.asymmetric_sign(&e.admin, &key, &v, alg, &digest))),
        ErrorCode::NoPermission,
        "a SecurityAdmin may not sign"
    );
    assert_eq!(
        code(block_on(e.kms.asymmetric_verify(
            &Caller::new("mallory"),
            &key,
            &v,
            alg,
            &digest,
            &sig.signature
        ))),
        ErrorCode::NoPermission
    );
    // A failed call (a digest of the wrong length) is audited as failed.
    assert_eq!(
        code(block_on(e.kms.asymmetric_sign(
            &e.app,
            &key,
            &v,
            alg,
            &digest[..20]
        ))),
        ErrorCode::InvalidParameter
    );
    let events = e.ring.events();
    let signs: Vec<_> = events.iter().filter(|ev| ev.action == "AsymmetricSign").collect();
    assert_eq!(
        signs.len(),
        3,
        "allowed, denied and failed signs are all recorded"
    );
    let ok = signs.iter().find(|ev| ev.outcome == Outcome::Success).unwrap();
    assert_eq!(ok.principal, "app");
    assert_eq!(ok.key_id.as_deref(), Some(k.as_str()));
    assert_eq!(ok.key_version_id.as_deref(), Some(v.as_str()));
    assert_eq!(ok.detail.as_deref(), Some("ECDSA_SHA_256"));
    assert!(
        signs
            .iter()
            .any(|ev| ev.outcome == Outcome::Denied && ev.principal == "admin")
    );
    assert!(
        signs
            .iter()
            .any(|ev| ev.outcome == Outcome::Failed && ev.code == "InvalidParameter")
    );
    assert!(
        events
            .iter()
            .any(|ev| ev.action == "AsymmetricVerify" && ev.outcome == Outcome::Denied)
    );
    assert_eq!(events.iter().filter(|ev| ev.action == "GetPublicKey").count(), 2);
    // Neither the digest nor the signature is in any line.
    let sig_b64 = base64::engine::general_purpose::STANDARD.encode(&sig.signature);
    for ev in &events {
        let line = ev.to_json_line();
        assert!(!line.contains(&sig_b64) && !line.contains("1111111111"), "{line}");
    }
}
