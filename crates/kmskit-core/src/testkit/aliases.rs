//! Aliases.

use crate::context::EncryptionContext;
use crate::error::ErrorCode;
use crate::id::{AliasName, KeyRef};
use crate::provider::PageRequest;

use super::Fixture;
use super::support::{by_id, create, err, list_all_aliases, ok, skip};

/// Aliases: create; a duplicate is `AliasAlreadyExists`; encrypt and describe through the alias and its
/// ARN name the real key; UpdateAlias re-points it; ListAliases is in name order and pages correctly;
/// ListAliasesByKeyId; DeleteAlias, after which the alias is `Forbidden.AliasNotFound` and its name free;
/// the reserved `alias/acs` names are `Unsupported.Alias`.
///
/// # Panics
/// When the provider does not conform.
pub async fn aliases(fx: &Fixture) {
    if !fx.capabilities().aliases {
        skip("aliases", "the provider has no aliases");
        return;
    }
    let p = fx.provider();
    let c = EncryptionContext::new();
    let a = create(fx, "aliases A").await;
    let b = create(fx, "aliases B").await;
    let prefix = format!("alias/kmskit-testkit/{}", crate::KeyId::generate());
    let name = |n: &str| ok(AliasName::new(format!("{prefix}/{n}")), "build an alias name");
    let (x, y, z) = (name("x"), name("y"), name("z"));

    // Made out of name order, so the listing's order is the provider's doing.
    for (alias, key) in [(&y, &b), (&z, &a), (&x, &a)] {
        ok(
            p.create_alias(&fx.caller(), alias, &by_id(&key.key_id)).await,
            format_args!("CreateAlias {alias}"),
        );
    }
    err(
        p.create_alias(&fx.caller(), &x, &by_id(&b.key_id)).await,
        ErrorCode::AliasAlreadyExists,
        "CreateAlias with a taken name",
    );

    let via = KeyRef::Alias(x.clone());
    let enc = ok(
        p.encrypt(&fx.caller(), &via, b"via alias", &c).await,
        "Encrypt by alias",
    );
    assert_eq!(
        enc.key_id, a.key_id,
        "the duplicate CreateAlias did not move the alias; results name the real key id"
    );
    let seen = ok(p.describe_key(&fx.caller(), &via).await, "DescribeKey by alias");
    assert_eq!(seen.key_id, a.key_id);

    let all = list_all_aliases(fx, PageRequest::MAX_PAGE_SIZE).await;
    let ours: Vec<_> = all
        .iter()
        .filter(|i| i.alias_name.as_str().starts_with(&prefix))
        .map(|i| (i.alias_name.clone(), i.key_id.clone()))
        .collect();
    assert_eq!(
        ours,
        vec![
            (x.clone(), a.key_id.clone()),
            (y.clone(), b.key_id.clone()),
            (z.clone(), a.key_id.clone())
        ],
        "ListAliases shows each alias once, with its key, in name order"
    );
    for w in all.windows(2) {
        assert!(
            w[0].alias_name < w[1].alias_name,
            "ListAliases is in strict name order: {} before {}",
            w[0].alias_name,
            w[1].alias_name
        );
    }
    let info = all
        .iter()
        .find(|i| i.alias_name == x)
        .expect("the alias is listed");
    assert!(
        info.alias_arn.ends_with(x.as_str()),
        "AliasArn {:?} names the alias",
        info.alias_arn
    );
    if fx.capabilities().arn_refs {
        let arn = ok(KeyRef::parse(&info.alias_arn), "parse the AliasArn");
        let enc = ok(
            p.encrypt(&fx.caller(), &arn, b"via arn", &c).await,
            "Encrypt by alias ARN",
        );
        assert_eq!(enc.key_id, a.key_id, "Encrypt by alias ARN names the real key id");
    } else {
        skip("aliases/arn", "the provider does not take acs ARNs");
    }

    // Small pages give the same listing.
    let paged = list_all_aliases(fx, 2).await;
    assert_eq!(
        paged, all,
        "ListAliases with PageSize 2 pages through the same listing"
    );
    let beyond = ok(
        p.list_aliases(
            &fx.caller(),
            PageRequest {
                page_number: (all.len() / 2 + 2) as u32,
                page_size: 2,
            },
        )
        .await,
        "ListAliases beyond the end",
    );
    assert!(beyond.items.is_empty(), "a page beyond the end is empty");
    assert_eq!(beyond.total_count, all.len() as u64, "TotalCount beyond the end");
    for (page_number, page_size) in [(1, 0), (1, 101), (0, 10)] {
        err(
            p.list_aliases(
                &fx.caller(),
                PageRequest {
                    page_number,
                    page_size,
                },
            )
            .await,
            ErrorCode::InvalidParameter,
            format_args!("ListAliases PageNumber {page_number} PageSize {page_size}"),
        );
    }

    // By key id, in name order, paged.
    let of_a = ok(
        p.list_aliases_by_key_id(&fx.caller(), &by_id(&a.key_id), PageRequest::default())
            .await,
        "ListAliasesByKeyId A",
    );
    let names: Vec<_> = of_a.items.iter().map(|i| i.alias_name.clone()).collect();
    assert_eq!(
        names,
        vec![x.clone(), z.clone()],
        "ListAliasesByKeyId lists the key's aliases in order"
    );
    assert_eq!(of_a.total_count, 2);
    assert!(of_a.items.iter().all(|i| i.key_id == a.key_id));
    let second = ok(
        p.list_aliases_by_key_id(
            &fx.caller(),
            &KeyRef::Alias(z.clone()),
            PageRequest {
                page_number: 2,
                page_size: 1,
            },
        )
        .await,
        "ListAliasesByKeyId by alias, page 2 of size 1",
    );
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.items[0].alias_name, z);
    assert_eq!(second.total_count, 2);
    err(
        p.list_aliases_by_key_id(
            &fx.caller(),
            &by_id(&a.key_id),
            PageRequest {
                page_number: 1,
                page_size: 0,
            },
        )
        .await,
        ErrorCode::InvalidParameter,
        "ListAliasesByKeyId PageSize 0",
    );

    // UpdateAlias re-points; blobs made through the old target still decrypt (the blob names its key).
    ok(
        p.update_alias(&fx.caller(), &x, &by_id(&b.key_id)).await,
        "UpdateAlias",
    );
    let moved = ok(
        p.encrypt(&fx.caller(), &via, b"moved", &c).await,
        "Encrypt by the moved alias",
    );
    assert_eq!(moved.key_id, b.key_id, "the alias now names B");
    let d = ok(
        p.decrypt(&fx.caller(), &enc.ciphertext_blob, &c).await,
        "Decrypt an older blob",
    );
    assert_eq!(d.key_id, a.key_id);
    let of_b = ok(
        p.list_aliases_by_key_id(&fx.caller(), &by_id(&b.key_id), PageRequest::default())
            .await,
        "ListAliasesByKeyId B",
    );
    let names: Vec<_> = of_b.items.iter().map(|i| i.alias_name.clone()).collect();
    assert_eq!(names, vec![x.clone(), y.clone()]);

    // DeleteAlias.
    ok(p.delete_alias(&fx.caller(), &x).await, "DeleteAlias");
    err(
        p.encrypt(&fx.caller(), &via, b"gone", &c).await,
        ErrorCode::AliasNotFound,
        "Encrypt by a deleted alias",
    );
    err(
        p.describe_key(&fx.caller(), &via).await,
        ErrorCode::AliasNotFound,
        "DescribeKey by a deleted alias",
    );
    err(
        p.delete_alias(&fx.caller(), &x).await,
        ErrorCode::AliasNotFound,
        "DeleteAlias twice",
    );
    err(
        p.update_alias(&fx.caller(), &x, &by_id(&a.key_id)).await,
        ErrorCode::AliasNotFound,
        "UpdateAlias of a deleted alias",
    );
    let left = list_all_aliases(fx, PageRequest::MAX_PAGE_SIZE).await;
    assert!(
        !left.iter().any(|i| i.alias_name == x),
        "a deleted alias is not listed"
    );
    assert_eq!(left.len() + 1, all.len(), "DeleteAlias removed exactly one alias");
    ok(
        p.create_alias(&fx.caller(), &x, &by_id(&a.key_id)).await,
        "CreateAlias reusing a deleted name",
    );
    assert_eq!(
        ok(
            p.describe_key(&fx.caller(), &via).await,
            "DescribeKey by the recreated alias"
        )
        .key_id,
        a.key_id
    );

    // Reserved names.
    for reserved in ["alias/acs", "alias/acs/kms"] {
        err(
            AliasName::new(reserved),
            ErrorCode::UnsupportedAlias,
            format_args!("AliasName::new({reserved:?})"),
        );
    }
}
