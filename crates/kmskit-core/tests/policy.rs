//! Policy documents: parsing errors that name the place, wildcards, Deny precedence, CIDR edges,
//! conditions, and the role × action × resource × condition matrix.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use kmskit_core::policy::{
    Action, Decision, Policy, PolicySet, RequestContext, Role, cidr_contains, parse_cidr, wildcard_match,
};
use kmskit_core::{EncryptionContext, KeyId, Timestamp};

const NOW: u64 = 1_780_000_000; // 2026-05-28

fn key_arn(id: &str) -> Vec<String> {
    vec![format!("acs:kms:cn-hangzhou:123:key/{id}")]
}

fn eval(p: &Policy, action: Action, res: &[String]) -> Decision {
    p.evaluate(&RequestContext::new(
        "alice",
        action,
        res,
        Timestamp::from_unix(NOW),
    ))
}

fn err_of(json: &str) -> String {
    Policy::parse(json).unwrap_err().to_string()
}

#[test]
fn parse_errors_name_the_place() {
    let cases: &[(&str, &str)] = &[
        ("{", "document"),
        (r#"{"Version":"2","Statement":[]}"#, "Version"),
        (r#"{"Version":"1","Statement":[]}"#, "Statement"),
        (
            r#"{"Version":"1","Statement":[],"Extra":1}"#,
            "unknown field `Extra`",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:Encrypt","Resource":"*"},
               {"Effekt":"Allow","Action":"kms:Encrypt","Resource":"*"}]}"#,
            "Statement[1]: unknown field `Effekt`",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Permit","Action":"kms:Encrypt","Resource":"*"}]}"#,
            "Statement[0].Effect",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":["kms:Encrypt","kms:Encrpyt"],"Resource":"*"}]}"#,
            "Statement[0].Action[1]: unknown action",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"ecs:Run","Resource":"*"}]}"#,
            "Statement[0].Action[0]",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":["*", "key/x"]}]}"#,
            "Statement[0].Resource[1]",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":[],"Resource":"*"}]}"#,
            "Statement[0].Action: must not be an empty list",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"IpAdress":{"acs:SourceIp":"10.0.0.0/8"}}}]}"#,
            "Statement[0].Condition.IpAdress: unknown condition operator",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"IpAddress":{"acs:SourceIp":["10.0.0.0/8","10.0.0.0/33"]}}}]}"#,
            "Statement[0].Condition.IpAddress.acs:SourceIp[1]",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"IpAddress":{"acs:CurrentTime":"10.0.0.0/8"}}}]}"#,
            "does not apply",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"DateLessThan":{"acs:CurrentTime":"tomorrow"}}}]}"#,
            "Statement[0].Condition.DateLessThan.acs:CurrentTime[0]",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"StringEquals":{"kms:Colour":"red"}}}]}"#,
            "unknown condition key",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*",
               "Condition":{"Bool":{"acs:SecureTransport":"yes"}}}]}"#,
            "Statement[0].Condition.Bool.acs:SecureTransport[0]",
        ),
        (
            r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Principal":{"AWS":"x"}}]}"#,
            "Statement[0].Principal",
        ),
        (
            r#"{"Version":"1","Statement":[42]}"#,
            "Statement[0]: must be an object",
        ),
    ];
    for (json, want) in cases {
        let e = err_of(json);
        assert!(e.contains(want), "{json}\n  gave {e:?}, wanted {want:?}");
        assert!(e.contains("PolicyDocument"), "{e}");
    }
}

#[test]
fn accepts_single_statement_object_and_string_or_list() {
    let p = Policy::parse(
        r#"{"Version":"1","Statement":{"Effect":"Allow","Action":"kms:Encrypt","Resource":"acs:kms:*:*:key/*"}}"#,
    )
    .unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(eval(&p, Action::Encrypt, &key_arn("k1")), Decision::Allow);
    assert_eq!(eval(&p, Action::Decrypt, &key_arn("k1")), Decision::ImplicitDeny);
}

#[test]
fn wildcards() {
    assert!(wildcard_match("kms:Gen*", "kms:GenerateDataKey", true));
    assert!(wildcard_match("kms:gen*", "kms:GenerateDataKey", true));
    assert!(!wildcard_match("kms:gen*", "kms:GenerateDataKey", false));
    assert!(wildcard_match("acs:kms:*:*:key/k?", "acs:kms:r:a:key/k1", false));
    assert!(!wildcard_match(
        "acs:kms:*:*:key/k?",
        "acs:kms:r:a:key/k12",
        false
    ));
    assert!(wildcard_match("a*b*c", "aXXbYYc", false));
    assert!(!wildcard_match("a*b*c", "aXXbYY", false));
    assert!(wildcard_match("*", "", false));
    assert!(!wildcard_match("?", "", false));
    assert!(wildcard_match("日?", "日本", false));
    // Hostile pattern: stays fast.
    let s = "a".repeat(5000);
    assert!(!wildcard_match(&format!("{}b", "*a".repeat(200)), &s, false));

    let p = Policy::parse(
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:Generate*","Resource":"acs:kms:*:*:key/team-?"}]}"#,
    )
    .unwrap();
    assert_eq!(
        eval(&p, Action::GenerateDataKey, &key_arn("team-a")),
        Decision::Allow
    );
    assert_eq!(
        eval(&p, Action::GenerateDataKeyWithoutPlaintext, &key_arn("team-b")),
        Decision::Allow
    );
    assert_eq!(
        eval(&p, Action::GenerateDataKey, &key_arn("team-ab")),
        Decision::ImplicitDeny
    );
    assert_eq!(
        eval(&p, Action::Encrypt, &key_arn("team-a")),
        Decision::ImplicitDeny
    );
}

#[test]
fn deny_wins_over_allow_in_any_order_and_across_documents() {
    let allow = r#"{"Effect":"Allow","Action":"kms:*","Resource":"*"}"#;
    let deny = r#"{"Effect":"Deny","Action":"kms:Decrypt","Resource":"acs:kms:*:*:key/secret*"}"#;
    for stmts in [format!("[{allow},{deny}]"), format!("[{deny},{allow}]")] {
        let p = Policy::parse(&format!(r#"{{"Version":"1","Statement":{stmts}}}"#)).unwrap();
        assert_eq!(
            eval(&p, Action::Decrypt, &key_arn("secret-1")),
            Decision::ExplicitDeny
        );
        assert_eq!(eval(&p, Action::Decrypt, &key_arn("public-1")), Decision::Allow);
        assert_eq!(eval(&p, Action::Encrypt, &key_arn("secret-1")), Decision::Allow);
    }
    // Across documents: a user policy allows, the key policy denies.
    let set = PolicySet::new();
    set.attach(
        "alice",
        "all",
        Policy::parse(&format!(r#"{{"Version":"1","Statement":[{allow}]}}"#)).unwrap(),
    );
    let k = KeyId::new("k1").unwrap();
    set.set_key_policy(
        &k,
        Some(
            Policy::parse(
                r#"{"Version":"1","Statement":[{"Effect":"Deny","Action":"kms:Encrypt","Resource":"*","Principal":{"RAM":["alice"]}}]}"#,
            )
            .unwrap(),
        ),
    );
    let res = key_arn("k1");
    let req = |p: &'static str, a| RequestContext::new(p, a, &res, Timestamp::from_unix(NOW));
    assert_eq!(
        set.evaluate(&req("alice", Action::Encrypt), Some(&k)),
        Decision::ExplicitDeny
    );
    assert_eq!(
        set.evaluate(&req("alice", Action::Decrypt), Some(&k)),
        Decision::Allow
    );
    // The key policy's Deny names alice only; bob has no policy at all.
    assert_eq!(
        set.evaluate(&req("bob", Action::Encrypt), Some(&k)),
        Decision::ImplicitDeny
    );
    // No Allow means deny.
    assert_eq!(
        PolicySet::new().evaluate(&req("alice", Action::Encrypt), Some(&k)),
        Decision::ImplicitDeny
    );
}

#[test]
fn key_policy_can_grant_a_principal() {
    let set = PolicySet::new();
    let k = KeyId::new("k9").unwrap();
    set.set_key_policy(
        &k,
        Some(
            Policy::parse(
                r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:Decrypt","Resource":"*","Principal":"svc-*"}]}"#,
            )
            .unwrap(),
        ),
    );
    let res = key_arn("k9");
    let t = Timestamp::from_unix(NOW);
    assert_eq!(
        set.evaluate(
            &RequestContext::new("svc-orders", Action::Decrypt, &res, t),
            Some(&k)
        ),
        Decision::Allow
    );
    assert_eq!(
        set.evaluate(&RequestContext::new("alice", Action::Decrypt, &res, t), Some(&k)),
        Decision::ImplicitDeny
    );
    // Another key's policy does not apply.
    let other = KeyId::new("k8").unwrap();
    assert_eq!(
        set.evaluate(
            &RequestContext::new("svc-orders", Action::Decrypt, &res, t),
            Some(&other)
        ),
        Decision::ImplicitDeny
    );
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn cidr_edges() {
    let (n, l) = parse_cidr("10.0.0.0/8").unwrap();
    assert!(cidr_contains(n, l, ip("10.0.0.0")));
    assert!(cidr_contains(n, l, ip("10.255.255.255")));
    assert!(!cidr_contains(n, l, ip("11.0.0.0")));
    assert!(!cidr_contains(n, l, ip("9.255.255.255")));
    // /0 matches everything of its family only.
    let (n, l) = parse_cidr("0.0.0.0/0").unwrap();
    assert!(cidr_contains(n, l, ip("255.255.255.255")));
    assert!(!cidr_contains(n, l, ip("::1")));
    // /32 and a bare address are the same.
    assert_eq!(
        parse_cidr("192.168.1.7").unwrap(),
        parse_cidr("192.168.1.7/32").unwrap()
    );
    let (n, l) = parse_cidr("192.168.1.7/32").unwrap();
    assert!(cidr_contains(n, l, ip("192.168.1.7")));
    assert!(!cidr_contains(n, l, ip("192.168.1.6")));
    // Host bits set in the network are ignored.
    let (n, l) = parse_cidr("192.168.1.77/24").unwrap();
    assert!(cidr_contains(n, l, ip("192.168.1.1")));
    // /31 boundary.
    let (n, l) = parse_cidr("10.0.0.2/31").unwrap();
    assert!(cidr_contains(n, l, ip("10.0.0.3")));
    assert!(!cidr_contains(n, l, ip("10.0.0.4")));
    // IPv6.
    let (n, l) = parse_cidr("2001:db8::/32").unwrap();
    assert!(cidr_contains(n, l, ip("2001:db8:ffff::1")));
    assert!(!cidr_contains(n, l, ip("2001:db9::1")));
    assert!(!cidr_contains(n, l, ip("10.0.0.1")));
    let (n, l) = parse_cidr("::/0").unwrap();
    assert!(cidr_contains(n, l, ip("ffff::1")));
    let (n, l) = parse_cidr("::1/128").unwrap();
    assert!(cidr_contains(n, l, ip("::1")));
    assert!(!cidr_contains(n, l, ip("::2")));
    // IPv4-mapped IPv6 callers match IPv4 networks.
    let (n, l) = parse_cidr("10.0.0.0/8").unwrap();
    assert!(cidr_contains(n, l, ip("::ffff:10.1.2.3")));
    for bad in [
        "10.0.0.0/33",
        "::/129",
        "10.0.0.0/",
        "10.0.0/8",
        "10.0.0.0/-1",
        "x",
        "10.0.0.0/8/8",
        "",
    ] {
        assert!(parse_cidr(bad).is_err(), "{bad}");
    }
}

#[test]
fn ip_conditions_and_missing_source() {
    let p = Policy::parse(
        r#"{"Version":"1","Statement":[
            {"Effect":"Allow","Action":"kms:Encrypt","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":["10.0.0.0/8","2001:db8::/32"]}}},
            {"Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"NotIpAddress":{"acs:SourceIp":["10.0.0.0/8","2001:db8::/32","192.0.2.0/24"]}}}]}"#,
    )
    .unwrap();
    let res = key_arn("k");
    let at = |src: Option<&str>| {
        p.evaluate(
            &RequestContext::new("a", Action::Encrypt, &res, Timestamp::from_unix(NOW))
                .source_ip(src.map(ip)),
        )
    };
    assert_eq!(at(Some("10.1.1.1")), Decision::Allow);
    assert_eq!(at(Some("2001:db8::5")), Decision::Allow);
    assert_eq!(at(Some("192.0.2.1")), Decision::ImplicitDeny);
    assert_eq!(at(Some("11.0.0.1")), Decision::ExplicitDeny);
    // An in-process call has no source address: IpAddress fails, NotIpAddress holds.
    assert_eq!(at(None), Decision::ExplicitDeny);
}

#[test]
fn context_tag_time_and_transport_conditions() {
    let p = Policy::parse(
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{
            "StringEquals":{"kms:EncryptionContext.table":["orders","users"]},
            "StringLike":{"kms:tag/team":"pay*"},
            "DateLessThan":{"acs:CurrentTime":"2027-01-01T00:00:00Z"},
            "DateGreaterThan":{"acs:CurrentTime":"2026-01-01T00:00:00Z"},
            "Bool":{"acs:SecureTransport":true}}}]}"#,
    )
    .unwrap();
    let res = key_arn("k");
    let mut tags = BTreeMap::new();
    tags.insert("team".to_owned(), "payments".to_owned());
    let good = EncryptionContext::from_pairs([("table", "orders")]).unwrap();
    let bad = EncryptionContext::from_pairs([("table", "audit")]).unwrap();
    let check =
        |ctx: Option<&EncryptionContext>, tags: Option<&BTreeMap<String, String>>, now: u64, tls: bool| {
            p.evaluate(
                &RequestContext::new("a", Action::Encrypt, &res, Timestamp::from_unix(now))
                    .encryption_context(ctx)
                    .tags(tags)
                    .secure_transport(tls),
            )
        };
    assert_eq!(check(Some(&good), Some(&tags), NOW, true), Decision::Allow);
    assert_eq!(check(Some(&bad), Some(&tags), NOW, true), Decision::ImplicitDeny);
    assert_eq!(check(None, Some(&tags), NOW, true), Decision::ImplicitDeny);
    assert_eq!(check(Some(&good), None, NOW, true), Decision::ImplicitDeny);
    assert_eq!(
        check(Some(&good), Some(&tags), NOW, false),
        Decision::ImplicitDeny
    );
    let y2028 = Timestamp::parse("2028-01-01T00:00:00Z").unwrap().unix();
    assert_eq!(
        check(Some(&good), Some(&tags), y2028, true),
        Decision::ImplicitDeny
    );
    let y2025 = Timestamp::parse("2025-01-01T00:00:00Z").unwrap().unix();
    assert_eq!(
        check(Some(&good), Some(&tags), y2025, true),
        Decision::ImplicitDeny
    );
    let mut other = BTreeMap::new();
    other.insert("team".to_owned(), "ops".to_owned());
    assert_eq!(
        check(Some(&good), Some(&other), NOW, true),
        Decision::ImplicitDeny
    );
}

/// Role × action × resource × condition.
#[test]
fn role_matrix() {
    let set = PolicySet::new();
    set.attach("admin", "role", Role::SecurityAdmin.policy(&[]).unwrap());
    set.attach("app", "role", Role::CryptoUser.policy(&["k-app"]).unwrap());
    set.attach("auditor", "role", Role::Auditor.policy(&[]).unwrap());
    // A condition on top: the app may only use its key from 10.0.0.0/8.
    set.attach(
        "app",
        "network",
        Policy::parse(
            r#"{"Version":"1","Statement":[{"Effect":"Deny","Action":"kms:*","Resource":"*","Condition":{"NotIpAddress":{"acs:SourceIp":"10.0.0.0/8"}}}]}"#,
        )
        .unwrap(),
    );
    let crypto = [
        Action::Encrypt,
        Action::Decrypt,
        Action::ReEncrypt,
        Action::GenerateDataKey,
        Action::GenerateDataKeyWithoutPlaintext,
        Action::AsymmetricSign,
        Action::AsymmetricVerify,
        Action::AsymmetricEncrypt,
        Action::AsymmetricDecrypt,
    ];
    let manage = [
        Action::CreateKey,
        Action::EnableKey,
        Action::DisableKey,
        Action::ScheduleKeyDeletion,
        Action::CancelKeyDeletion,
        Action::CreateKeyVersion,
        Action::UpdateRotationPolicy,
        Action::SetDeletionProtection,
        Action::CreateAlias,
        Action::TagResource,
    ];
    let audit = [Action::LookupAuditEvents, Action::VerifyAuditTrail];
    let t = Timestamp::from_unix(NOW);
    let inside = Some(ip("10.2.3.4"));
    let outside = Some(ip("172.16.0.1"));
    for key in ["k-app", "k-other"] {
        let res = key_arn(key);
        for &a in crypto.iter().chain(&manage).chain(&audit) {
            for src in [inside, outside] {
                let d = |p: &str| set.evaluate(&RequestContext::new(p, a, &res, t).source_ip(src), None);
                let want_admin = manage.contains(&a);
                assert_eq!(d("admin") == Decision::Allow, want_admin, "admin {a} {key}");
                if crypto.contains(&a) {
                    assert_eq!(
                        d("admin"),
                        Decision::ExplicitDeny,
                        "admin {a} must be explicitly denied"
                    );
                }
                let want_app = crypto.contains(&a) && key == "k-app" && src == inside;
                assert_eq!(d("app") == Decision::Allow, want_app, "app {a} {key} {src:?}");
                assert_eq!(d("auditor") == Decision::Allow, audit.contains(&a), "auditor {a}");
                assert_eq!(d("nobody"), Decision::ImplicitDeny);
            }
        }
    }
    assert!(Role::CryptoUser.policy(&[]).is_err());
}

#[test]
fn every_action_name_round_trips() {
    for a in Action::ALL {
        assert_eq!(Action::from_name(a.name()), Some(*a));
        assert_eq!(a.policy_name(), format!("kms:{}", a.name()));
        let doc = format!(
            r#"{{"Version":"1","Statement":[{{"Effect":"Allow","Action":"{}","Resource":"*"}}]}}"#,
            a.policy_name()
        );
        assert!(Policy::parse(&doc).is_ok(), "{a}");
    }
}

#[test]
fn fuzz_entry_point_survives_odd_inputs() {
    for s in [
        "",
        "{}",
        "null",
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*"}]}"#,
        r#"{"Version":"1","Statement":[{"Effect":"Allow","Action":"kms:*","Resource":"*","Condition":{"IpAddress":{"acs:SourceIp":"::ffff:1.2.3.4/200"}}}]}"#,
    ] {
        kmskit_core::policy::fuzz_parse(s.as_bytes());
    }
    kmskit_core::policy::fuzz_parse(&[0xff, 0xfe]);
}

#[test]
fn principals_inherit_the_policies_of_their_roles() {
    let set = PolicySet::new();
    set.attach("role/crypto", "p", Role::CryptoUser.policy(&["k1"]).unwrap());
    set.attach(
        "carol",
        "own",
        Policy::parse(
            r#"{"Version":"1","Statement":[{"Effect":"Deny","Action":"kms:Decrypt","Resource":"*"}]}"#,
        )
        .unwrap(),
    );
    let res = key_arn("k1");
    let t = Timestamp::from_unix(NOW);
    let d = |p: &'static str, a| set.evaluate(&RequestContext::new(p, a, &res, t), None);
    assert_eq!(d("carol", Action::Encrypt), Decision::ImplicitDeny);
    set.assign_role("carol", "role/crypto");
    assert_eq!(d("carol", Action::Encrypt), Decision::Allow);
    // Her own Deny still wins over the role's Allow.
    assert_eq!(d("carol", Action::Decrypt), Decision::ExplicitDeny);
    assert!(set.revoke_role("carol", "role/crypto"));
    assert!(!set.revoke_role("carol", "role/crypto"));
    assert_eq!(d("carol", Action::Encrypt), Decision::ImplicitDeny);
}
