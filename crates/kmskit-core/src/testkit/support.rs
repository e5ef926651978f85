//! Helpers shared by the cases.

use std::fmt;

use crate::context::EncryptionContext;
use crate::error::{ErrorCode, Result};
use crate::id::{AliasName, Arn, KeyId, KeyRef};
use crate::key::{KeyMetadata, KeyState};
use crate::provider::{AliasInfo, CreateKey, KeyFilter, ListKeys, PageRequest};

use super::{Fixture, NO_SKIP_ENV};

/// Reports a case (or a part of one) that the provider cannot run. Never silent.
pub(super) fn skip(case: &str, why: &str) {
    eprintln!("kmskit testkit: SKIPPED {case}: {why}");
    if std::env::var_os(NO_SKIP_ENV).is_some() {
        panic!("{case} was skipped ({why}) and {NO_SKIP_ENV} is set");
    }
}

/// Reports a check that cannot be expressed through the `KeyProvider` API at all (not a skip).
pub(super) fn not_applicable(case: &str, why: &str) {
    eprintln!("kmskit testkit: NOT APPLICABLE {case}: {why}");
}

/// A reference by id.
pub(super) fn by_id(id: &KeyId) -> KeyRef {
    KeyRef::Id(id.clone())
}

/// Unwraps `r`, failing with `what` and the error's code.
#[track_caller]
pub(super) fn ok<T>(r: Result<T>, what: impl fmt::Display) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("{what}: expected success, got {} ({e})", e.code()),
    }
}

/// Asserts that `r` failed with `code`.
#[track_caller]
pub(super) fn err<T>(r: Result<T>, code: ErrorCode, what: impl fmt::Display) {
    if let Some(problem) = mismatch(&r, Some(code)) {
        panic!("{what}: {problem}");
    }
}

/// Describes how `r` differs from the expectation (`None`: success), or `None` when it matches.
pub(super) fn mismatch<T>(r: &Result<T>, want: Option<ErrorCode>) -> Option<String> {
    match (r, want) {
        (Ok(_), None) => None,
        (Err(e), Some(code)) if e.code() == code => None,
        (Ok(_), Some(code)) => Some(format!("expected {code}, got success")),
        (Err(e), Some(code)) => Some(format!("expected {code}, got {} ({e})", e.code())),
        (Err(e), None) => Some(format!("expected success, got {} ({e})", e.code())),
    }
}

/// A context from pairs.
pub(super) fn ctx<const N: usize>(pairs: [(&str, &str); N]) -> EncryptionContext {
    ok(
        EncryptionContext::from_pairs(pairs),
        "build an encryption context",
    )
}

/// Creates a default AES-256 key described as `what`.
pub(super) async fn create(fx: &Fixture, what: &str) -> KeyMetadata {
    create_with(fx, CreateKey::new(format!("kmskit testkit: {what}")), what).await
}

/// Creates a key from `req`.
pub(super) async fn create_with(fx: &Fixture, req: CreateKey, what: &str) -> KeyMetadata {
    ok(
        fx.provider().create_key(&fx.caller(), req).await,
        format_args!("CreateKey ({what})"),
    )
}

/// DescribeKey by id.
pub(super) async fn describe(fx: &Fixture, id: &KeyId) -> KeyMetadata {
    ok(
        fx.provider().describe_key(&fx.caller(), &by_id(id)).await,
        format_args!("DescribeKey {id}"),
    )
}

/// The state DescribeKey reports.
pub(super) async fn state_of(fx: &Fixture, id: &KeyId) -> KeyState {
    describe(fx, id).await.key_state
}

/// A fresh alias name under a per-call random prefix, so cases never collide on a shared provider.
pub(super) fn unique_alias(what: &str) -> AliasName {
    ok(
        AliasName::new(format!("alias/kmskit-testkit/{}/{what}", KeyId::generate())),
        "build an alias name",
    )
}

/// The most pages a full listing may take: enough for `total` items, plus slack for growth.
fn page_budget(total: u64, size: u32) -> u64 {
    total / u64::from(size) + 3
}

/// Every key id ListKeys returns under `filters`, paging with the largest page size; checks that
/// `TotalCount` matches what the pages held.
pub(super) async fn list_all_keys(fx: &Fixture, filters: &[KeyFilter]) -> Vec<KeyId> {
    let mut out = Vec::new();
    let mut page_number = 1u32;
    let mut budget = 3u64;
    let mut total = 0;
    while u64::from(page_number) <= budget {
        let mut req = ListKeys::new(PageRequest {
            page_number,
            page_size: PageRequest::MAX_PAGE_SIZE,
        });
        for f in filters {
            req = req.filter(f.clone());
        }
        let page = ok(
            fx.provider().list_keys(&fx.caller(), req).await,
            format_args!("ListKeys page {page_number} {filters:?}"),
        );
        total = page.total_count;
        budget = page_budget(total, PageRequest::MAX_PAGE_SIZE);
        if page.items.is_empty() {
            break;
        }
        out.extend(page.items.into_iter().map(|k| k.key_id));
        page_number += 1;
    }
    assert_eq!(
        out.len() as u64,
        total,
        "ListKeys {filters:?}: the pages held {} keys but TotalCount is {total}",
        out.len()
    );
    out
}

/// Every alias ListAliases returns, paging with `page_size`, checking page sizes and a stable
/// `TotalCount`.
pub(super) async fn list_all_aliases(fx: &Fixture, page_size: u32) -> Vec<AliasInfo> {
    let mut out = Vec::new();
    let mut page_number = 1u32;
    let mut budget = 3u64;
    let mut total = None;
    while u64::from(page_number) <= budget {
        let page = ok(
            fx.provider()
                .list_aliases(
                    &fx.caller(),
                    PageRequest {
                        page_number,
                        page_size,
                    },
                )
                .await,
            format_args!("ListAliases page {page_number} size {page_size}"),
        );
        assert_eq!(page.page_number, page_number, "ListAliases echoes PageNumber");
        assert_eq!(page.page_size, page_size, "ListAliases echoes PageSize");
        assert!(
            page.items.len() <= page_size as usize,
            "ListAliases page {page_number}: {} items, more than PageSize {page_size}",
            page.items.len()
        );
        if let Some(t) = total {
            assert_eq!(
                page.total_count, t,
                "ListAliases TotalCount changed between pages"
            );
        }
        total = Some(page.total_count);
        budget = page_budget(page.total_count, page_size);
        if page.items.is_empty() {
            break;
        }
        out.extend(page.items);
        page_number += 1;
    }
    assert_eq!(
        Some(out.len() as u64),
        total,
        "ListAliases: the pages held {} aliases but TotalCount is {total:?}",
        out.len()
    );
    out
}

/// The region and account of the provider's ARNs, read from a key's `Arn`.
pub(super) fn arn_scope(meta: &KeyMetadata) -> (String, String) {
    match ok(
        KeyRef::parse(&meta.arn),
        format_args!("parse the key's Arn {:?}", meta.arn),
    ) {
        KeyRef::Arn(Arn { region, account, .. }) => (region, account),
        other => panic!("DescribeKey's Arn {:?} parsed as {other:?}, not an ARN", meta.arn),
    }
}

/// Deterministic non-trivial bytes.
pub(super) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}
