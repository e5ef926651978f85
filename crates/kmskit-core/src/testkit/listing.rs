//! ListKeys paging and filters, key versions, tags.

use crate::error::ErrorCode;
use crate::id::{KeyId, KeyVersionId};
use crate::key::{KeySpec, KeyState, KeyUsage, Origin, Tag};
use crate::provider::{CreateKey, FilterKey, KeyFilter, ListKeys, PageRequest};

use super::Fixture;
use super::support::{by_id, create, create_with, describe, err, list_all_keys, ok, skip};

/// ListKeys: paging through the whole listing with small pages gives every key once, with a stable
/// `TotalCount` and full pages; the keys made by the case appear (in creation order where the provider
/// promises it); a page beyond the end is empty; PageNumber 0, PageSize 0 and 101 are `InvalidParameter`.
///
/// # Panics
/// When the provider does not conform.
pub async fn list_keys_paging(fx: &Fixture) {
    let p = fx.provider();
    let mut made = Vec::new();
    for i in 0..5 {
        made.push(create(fx, &format!("list_keys_paging {i}")).await.key_id);
    }
    let size = 2u32;
    let first = ok(
        p.list_keys(
            &fx.caller(),
            ListKeys::new(PageRequest {
                page_number: 1,
                page_size: size,
            }),
        )
        .await,
        "ListKeys page 1",
    );
    let total = first.total_count;
    assert!(total >= 5, "TotalCount {total} counts the 5 keys made here");
    let mut all: Vec<KeyId> = Vec::new();
    let pages = total.div_ceil(u64::from(size)) as u32;
    for page_number in 1..=pages {
        let page = ok(
            p.list_keys(
                &fx.caller(),
                ListKeys::new(PageRequest {
                    page_number,
                    page_size: size,
                }),
            )
            .await,
            format_args!("ListKeys page {page_number}"),
        );
        assert_eq!(page.total_count, total, "TotalCount is the same on every page");
        assert_eq!(page.page_number, page_number, "ListKeys echoes PageNumber");
        assert_eq!(page.page_size, size, "ListKeys echoes PageSize");
        let want = (total - u64::from(page_number - 1) * u64::from(size)).min(u64::from(size));
        assert_eq!(
            page.items.len() as u64,
            want,
            "page {page_number} of {pages} holds {want} keys"
        );
        assert!(
            page.items
                .iter()
                .all(|k| k.key_arn.ends_with(&format!("key/{}", k.key_id))),
            "every KeyArn names its key"
        );
        all.extend(page.items.into_iter().map(|k| k.key_id));
    }
    let mut unique = all.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), all.len(), "no key appears twice in the listing");
    let positions: Vec<usize> = made
        .iter()
        .map(|id| {
            all.iter()
                .position(|k| k == id)
                .unwrap_or_else(|| panic!("ListKeys does not list key {id}"))
        })
        .collect();
    if fx.capabilities().ordered_key_listing {
        assert!(
            positions.windows(2).all(|w| w[0] < w[1]),
            "ListKeys lists keys in creation order: positions {positions:?}"
        );
    } else {
        skip(
            "list_keys_paging/order",
            "the provider does not list keys in creation order",
        );
    }
    let big = ok(
        p.list_keys(
            &fx.caller(),
            ListKeys::new(PageRequest {
                page_number: 1,
                page_size: 100,
            }),
        )
        .await,
        "ListKeys PageSize 100",
    );
    assert_eq!(big.items.len() as u64, total.min(100));
    let dflt = ok(
        p.list_keys(&fx.caller(), ListKeys::default()).await,
        "ListKeys with defaults",
    );
    assert_eq!(
        (dflt.page_number, dflt.page_size),
        (1, 10),
        "the default page is 1 of size 10"
    );
    assert_eq!(dflt.items.len() as u64, total.min(10));
    let beyond = ok(
        p.list_keys(
            &fx.caller(),
            ListKeys::new(PageRequest {
                page_number: pages + 3,
                page_size: size,
            }),
        )
        .await,
        "ListKeys beyond the end",
    );
    assert!(beyond.items.is_empty(), "a page beyond the end is empty");
    assert_eq!(beyond.total_count, total, "TotalCount beyond the end");
    for (page_number, page_size) in [(1, 0), (1, 101), (0, 10), (0, 0)] {
        err(
            p.list_keys(
                &fx.caller(),
                ListKeys::new(PageRequest {
                    page_number,
                    page_size,
                }),
            )
            .await,
            ErrorCode::InvalidParameter,
            format_args!("ListKeys PageNumber {page_number} PageSize {page_size}"),
        );
    }
}

fn filter(key: FilterKey, values: &[&str]) -> KeyFilter {
    KeyFilter::new(key, values.iter().copied())
}

/// ListKeys filters: by KeyState (one or several values), KeySpec, KeyUsage and ProtectionLevel, several
/// filters combined with AND; TotalCount counts the filtered listing; malformed filters are
/// `InvalidParameter`.
///
/// # Panics
/// When the provider does not conform.
pub async fn list_keys_filters(fx: &Fixture) {
    if !fx.capabilities().key_filters {
        skip("list_keys_filters", "the provider has no ListKeys filters");
        return;
    }
    let p = fx.provider();
    let enabled = create(fx, "list_keys_filters enabled").await;
    let disabled = create(fx, "list_keys_filters disabled").await.key_id;
    ok(p.disable_key(&fx.caller(), &by_id(&disabled)).await, "DisableKey");
    let pending = create(fx, "list_keys_filters pending").await.key_id;
    ok(
        p.schedule_key_deletion(&fx.caller(), &by_id(&pending), 7).await,
        "ScheduleKeyDeletion",
    );
    let import = if fx.capabilities().external_origin {
        Some(
            create_with(
                fx,
                CreateKey::new("kmskit testkit: list_keys_filters import").origin(Origin::External),
                "EXTERNAL key",
            )
            .await
            .key_id,
        )
    } else {
        None
    };
    let mut ours = vec![enabled.key_id.clone(), disabled.clone(), pending.clone()];
    ours.extend(import.clone());

    let only = |listed: &[KeyId], want: &[&KeyId], what: &str| {
        let mine: Vec<&KeyId> = ours.iter().filter(|k| listed.contains(k)).collect();
        assert_eq!(
            mine, want,
            "ListKeys filtered by {what} lists exactly these of the case's keys"
        );
    };
    let st = |s: KeyState| s.as_str();
    let listed = list_all_keys(fx, &[filter(FilterKey::KeyState, &[st(KeyState::Enabled)])]).await;
    only(&listed, &[&enabled.key_id], "KeyState=Enabled");
    let listed = list_all_keys(fx, &[filter(FilterKey::KeyState, &[st(KeyState::Disabled)])]).await;
    only(&listed, &[&disabled], "KeyState=Disabled");
    let listed = list_all_keys(
        fx,
        &[filter(FilterKey::KeyState, &[st(KeyState::PendingDeletion)])],
    )
    .await;
    only(&listed, &[&pending], "KeyState=PendingDeletion");
    if let Some(import) = &import {
        let listed = list_all_keys(fx, &[filter(FilterKey::KeyState, &[st(KeyState::PendingImport)])]).await;
        only(&listed, &[import], "KeyState=PendingImport");
    }
    let listed = list_all_keys(
        fx,
        &[filter(
            FilterKey::KeyState,
            &[st(KeyState::Enabled), st(KeyState::Disabled)],
        )],
    )
    .await;
    only(
        &listed,
        &[&enabled.key_id, &disabled],
        "KeyState=Enabled|Disabled",
    );
    let everything: Vec<&KeyId> = ours.iter().collect();
    let listed = list_all_keys(fx, &[filter(FilterKey::KeySpec, &[KeySpec::Aes256.as_str()])]).await;
    only(&listed, &everything, "KeySpec=Aliyun_AES_256");
    let listed = list_all_keys(fx, &[filter(FilterKey::KeySpec, &[KeySpec::Rsa2048.as_str()])]).await;
    only(&listed, &[], "KeySpec=RSA_2048");
    let listed = list_all_keys(
        fx,
        &[filter(FilterKey::KeyUsage, &[KeyUsage::EncryptDecrypt.as_str()])],
    )
    .await;
    only(&listed, &everything, "KeyUsage=ENCRYPT/DECRYPT");
    let listed = list_all_keys(
        fx,
        &[filter(
            FilterKey::ProtectionLevel,
            &[enabled.protection_level.as_str()],
        )],
    )
    .await;
    only(&listed, &everything, "ProtectionLevel");
    let listed = list_all_keys(
        fx,
        &[
            filter(FilterKey::KeySpec, &[KeySpec::Aes256.as_str()]),
            filter(
                FilterKey::KeyState,
                &[st(KeyState::Disabled), st(KeyState::PendingDeletion)],
            ),
        ],
    )
    .await;
    only(&listed, &[&disabled, &pending], "KeySpec AND KeyState");
    let listed = list_all_keys(
        fx,
        &[
            filter(FilterKey::KeyState, &[st(KeyState::Enabled)]),
            filter(FilterKey::KeyState, &[st(KeyState::Disabled)]),
        ],
    )
    .await;
    only(&listed, &[], "KeyState=Enabled AND KeyState=Disabled");

    let empty = KeyFilter::new(FilterKey::KeyState, Vec::<String>::new());
    err(
        p.list_keys(&fx.caller(), ListKeys::default().filter(empty)).await,
        ErrorCode::InvalidParameter,
        "a filter without values",
    );
    err(
        p.list_keys(
            &fx.caller(),
            ListKeys::default().filter(filter(FilterKey::KeyState, &["enabled"])),
        )
        .await,
        ErrorCode::InvalidParameter,
        "a filter with an unknown value",
    );
    let mut eleven = ListKeys::default();
    for _ in 0..11 {
        eleven = eleven.filter(filter(FilterKey::KeyState, &["Enabled"]));
    }
    err(
        p.list_keys(&fx.caller(), eleven).await,
        ErrorCode::InvalidParameter,
        "11 filters",
    );
}

/// ListKeyVersions lists the primary version; DescribeKeyVersion of it agrees; an unknown version, or
/// another key's version, is `Forbidden.KeyVersionNotFound`; a key without material has no versions.
///
/// # Panics
/// When the provider does not conform.
pub async fn key_versions(fx: &Fixture) {
    if !fx.capabilities().key_versions {
        skip("key_versions", "the provider has no key versions");
        return;
    }
    let p = fx.provider();
    let key = create(fx, "key_versions").await;
    let other = create(fx, "key_versions other").await;
    let id = by_id(&key.key_id);
    let primary = key.primary_key_version.clone().expect("a primary version");
    let page = ok(
        p.list_key_versions(&fx.caller(), &id, PageRequest::default())
            .await,
        "ListKeyVersions",
    );
    assert!(page.total_count >= 1, "a key has at least one version");
    assert_eq!(page.items.len() as u64, page.total_count.min(10));
    assert!(
        page.items.iter().all(|v| v.key_id == key.key_id),
        "versions name their key"
    );
    let listed = page
        .items
        .iter()
        .find(|v| v.key_version_id == primary)
        .expect("ListKeyVersions lists the primary version");
    let described = ok(
        p.describe_key_version(&fx.caller(), &id, &primary).await,
        "DescribeKeyVersion of the primary",
    );
    assert_eq!(
        &described, listed,
        "DescribeKeyVersion agrees with ListKeyVersions"
    );
    err(
        p.describe_key_version(&fx.caller(), &id, &KeyVersionId::generate())
            .await,
        ErrorCode::KeyVersionNotFound,
        "DescribeKeyVersion of an unknown version",
    );
    let theirs = other.primary_key_version.clone().expect("a primary version");
    err(
        p.describe_key_version(&fx.caller(), &id, &theirs).await,
        ErrorCode::KeyVersionNotFound,
        "DescribeKeyVersion of another key's version",
    );
    err(
        p.list_key_versions(
            &fx.caller(),
            &id,
            PageRequest {
                page_number: 1,
                page_size: 0,
            },
        )
        .await,
        ErrorCode::InvalidParameter,
        "ListKeyVersions PageSize 0",
    );
    let enc = ok(
        p.encrypt(&fx.caller(), &id, b"v", &Default::default()).await,
        "Encrypt",
    );
    assert_eq!(
        enc.key_version_id, primary,
        "Encrypt uses the listed primary version"
    );
    if fx.capabilities().external_origin {
        let ext = create_with(
            fx,
            CreateKey::new("kmskit testkit: key_versions external").origin(Origin::External),
            "EXTERNAL key",
        )
        .await;
        let page = ok(
            p.list_key_versions(&fx.caller(), &by_id(&ext.key_id), PageRequest::default())
                .await,
            "ListKeyVersions of a key without material",
        );
        assert_eq!(page.total_count, 0, "a PendingImport key has no versions");
        assert!(page.items.is_empty());
    }
}

fn tag(k: &str, v: &str) -> Tag {
    Tag {
        tag_key: k.to_owned(),
        tag_value: v.to_owned(),
    }
}

/// Tags: set at creation and by TagResource, overwritten, listed in key order, removed by UntagResource
/// (absent keys ignored); more than 20 is `Rejected.LimitExceeded`; reserved (`aliyun…`, `acs:…`) or
/// over-long keys and values are `InvalidParameter`; refused calls change nothing.
///
/// # Panics
/// When the provider does not conform.
pub async fn tags(fx: &Fixture) {
    if !fx.capabilities().tags {
        skip("tags", "the provider has no tags");
        return;
    }
    let p = fx.provider();
    let key = create_with(
        fx,
        CreateKey::new("kmskit testkit: tags").tag(tag("env", "test")),
        "a tagged key",
    )
    .await;
    let id = by_id(&key.key_id);
    let list = || async { ok(p.list_resource_tags(&fx.caller(), &id).await, "ListResourceTags") };
    assert_eq!(list().await, vec![tag("env", "test")], "tags given at creation");

    ok(
        p.tag_resource(&fx.caller(), &id, &[tag("b", "2"), tag("a", "1")])
            .await,
        "TagResource",
    );
    assert_eq!(
        list().await,
        vec![tag("a", "1"), tag("b", "2"), tag("env", "test")],
        "ListResourceTags is in key order"
    );
    ok(
        p.tag_resource(&fx.caller(), &id, &[tag("a", "9")]).await,
        "TagResource overwrite",
    );
    assert_eq!(
        list().await,
        vec![tag("a", "9"), tag("b", "2"), tag("env", "test")]
    );
    ok(
        p.untag_resource(&fx.caller(), &id, &["a".to_owned(), "absent".to_owned()])
            .await,
        "UntagResource",
    );
    assert_eq!(list().await, vec![tag("b", "2"), tag("env", "test")]);

    // Up to 20 tags; the 21st is refused and nothing changes.
    let more: Vec<Tag> = (0..18).map(|i| tag(&format!("k{i:02}"), "v")).collect();
    ok(
        p.tag_resource(&fx.caller(), &id, &more).await,
        "TagResource up to 20 tags",
    );
    let full = list().await;
    assert_eq!(full.len(), 20);
    err(
        p.tag_resource(&fx.caller(), &id, &[tag("one-too-many", "v")])
            .await,
        ErrorCode::LimitExceeded,
        "a 21st tag",
    );
    err(
        p.tag_resource(&fx.caller(), &id, &[tag("b", "3"), tag("one-too-many", "v")])
            .await,
        ErrorCode::LimitExceeded,
        "an overwrite together with a 21st tag",
    );
    assert_eq!(list().await, full, "refused TagResource changes nothing");
    ok(
        p.tag_resource(&fx.caller(), &id, &[tag("b", "3")]).await,
        "overwriting at the limit",
    );

    let before = list().await;
    let reserved = ["aliyun", "aliyun-x", "ALIYUNx", "acs:x", "ACS:rds"];
    for k in reserved {
        err(
            p.tag_resource(&fx.caller(), &id, &[tag(k, "v")]).await,
            ErrorCode::InvalidParameter,
            format_args!("the reserved tag key {k:?}"),
        );
    }
    for (k, v, what) in [
        ("", "v", "an empty tag key"),
        (&*"k".repeat(129), "v", "a 129-character tag key"),
        ("long", &*"v".repeat(129), "a 129-character tag value"),
    ] {
        err(
            p.tag_resource(&fx.caller(), &id, &[tag(k, v)]).await,
            ErrorCode::InvalidParameter,
            what,
        );
    }
    err(
        p.tag_resource(&fx.caller(), &id, &[]).await,
        ErrorCode::MissingParameter,
        "TagResource without tags",
    );
    err(
        p.untag_resource(&fx.caller(), &id, &[]).await,
        ErrorCode::MissingParameter,
        "UntagResource without keys",
    );
    assert_eq!(list().await, before, "refused calls change nothing");
    err(
        p.create_key(
            &fx.caller(),
            CreateKey::new("kmskit testkit: reserved tag").tag(tag("acs:x", "v")),
        )
        .await,
        ErrorCode::InvalidParameter,
        "CreateKey with a reserved tag key",
    );
    assert_eq!(describe(fx, &key.key_id).await.key_id, key.key_id);
}
