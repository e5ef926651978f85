//! Key states: the §9 matrix, disable/enable, deletion windows, deletion protection.

use crate::blob::CiphertextBlob;
use crate::context::EncryptionContext;
use crate::error::{ErrorCode, Result};
use crate::id::{AliasName, KeyId};
use crate::key::{DataKeySpec, KeyMetadata, KeyState, Origin};
use crate::provider::{CreateKey, FilterKey, KeyFilter, PageRequest};

use super::Fixture;
use super::support::{
    by_id, create, create_with, ctx, describe, err, list_all_aliases, list_all_keys, mismatch,
    not_applicable, ok, skip, state_of, unique_alias,
};

/// The operations of the §9 matrix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Encrypt,
    Decrypt,
    GenerateDataKey,
    GenerateDataKeyWithoutPlaintext,
    /// ReEncrypt of a blob made under the key, to another (enabled) key.
    ReEncryptSource,
    /// ReEncrypt of another key's blob to the key.
    ReEncryptDestination,
    DescribeKey,
    ListKeys,
    ListAliases,
    DeleteAlias,
    EnableKey,
    DisableKey,
    ScheduleKeyDeletion,
    CancelKeyDeletion,
    CreateAlias,
    /// UpdateAlias pointing an alias of another key at this key (only the target's state matters).
    UpdateAlias,
}

const OPS: [Op; 16] = [
    Op::Encrypt,
    Op::Decrypt,
    Op::GenerateDataKey,
    Op::GenerateDataKeyWithoutPlaintext,
    Op::ReEncryptSource,
    Op::ReEncryptDestination,
    Op::DescribeKey,
    Op::ListKeys,
    Op::ListAliases,
    Op::DeleteAlias,
    Op::EnableKey,
    Op::DisableKey,
    Op::ScheduleKeyDeletion,
    Op::CancelKeyDeletion,
    Op::CreateAlias,
    Op::UpdateAlias,
];

impl Op {
    fn uses_aliases(self) -> bool {
        matches!(
            self,
            Op::ListAliases | Op::DeleteAlias | Op::CreateAlias | Op::UpdateAlias
        )
    }

    /// Whether the cell needs a blob made while the key was enabled.
    fn needs_blob(self) -> bool {
        matches!(self, Op::Decrypt | Op::ReEncryptSource)
    }
}

/// The §9 cell: `Ok(state after)` or the refusal code.
fn expected(op: Op, state: KeyState) -> std::result::Result<KeyState, ErrorCode> {
    use KeyState::{Disabled, Enabled, PendingDeletion, PendingImport};
    let usable = |s: KeyState| match s {
        Enabled => Ok(Enabled),
        Disabled => Err(ErrorCode::Disabled),
        PendingDeletion => Err(ErrorCode::PendingDeletion),
        PendingImport => Err(ErrorCode::PendingImport),
    };
    let smf = Err(ErrorCode::StateModifiedFailed);
    match op {
        Op::Encrypt
        | Op::Decrypt
        | Op::GenerateDataKey
        | Op::GenerateDataKeyWithoutPlaintext
        | Op::ReEncryptSource
        | Op::ReEncryptDestination => usable(state),
        Op::DescribeKey | Op::ListKeys | Op::ListAliases | Op::DeleteAlias => Ok(state),
        Op::EnableKey => match state {
            Enabled | Disabled => Ok(Enabled),
            _ => smf,
        },
        Op::DisableKey => match state {
            Enabled | Disabled => Ok(Disabled),
            _ => smf,
        },
        Op::ScheduleKeyDeletion => match state {
            PendingDeletion => smf,
            _ => Ok(PendingDeletion),
        },
        Op::CancelKeyDeletion => match state {
            PendingDeletion => Ok(Enabled),
            _ => smf,
        },
        Op::CreateAlias => match state {
            PendingDeletion => smf,
            s => Ok(s),
        },
        Op::UpdateAlias => match state {
            PendingDeletion => Err(ErrorCode::PendingDeletion),
            s => Ok(s),
        },
    }
}

/// A key brought into the state under test, with what the cells need.
struct Subject {
    key: KeyId,
    /// A blob made while the key was enabled (none for `PendingImport`: it never had material).
    blob: Option<CiphertextBlob>,
    /// An alias of the key, made before the state change.
    alias: Option<AliasName>,
}

const PLAINTEXT: &[u8] = b"state matrix";

fn matrix_ctx() -> EncryptionContext {
    ctx([("case", "state_matrix")])
}

async fn subject(fx: &Fixture, state: KeyState, op: Op) -> Subject {
    let p = fx.provider();
    let aliases = fx.capabilities().aliases;
    let what = format!("state matrix {state} {op:?}");
    let key = if state == KeyState::PendingImport {
        create_with(
            fx,
            CreateKey::new(format!("kmskit testkit: {what}")).origin(Origin::External),
            &what,
        )
        .await
    } else {
        create(fx, &what).await
    };
    let id = by_id(&key.key_id);
    let blob = if state == KeyState::PendingImport {
        None
    } else {
        Some(
            ok(
                p.encrypt(&fx.caller(), &id, PLAINTEXT, &matrix_ctx()).await,
                format_args!("{what}: Encrypt while enabled"),
            )
            .ciphertext_blob,
        )
    };
    let alias = if aliases {
        let a = unique_alias("state-matrix");
        ok(
            p.create_alias(&fx.caller(), &a, &id).await,
            format_args!("{what}: CreateAlias"),
        );
        Some(a)
    } else {
        None
    };
    match state {
        KeyState::Disabled => ok(
            p.disable_key(&fx.caller(), &id).await,
            format_args!("{what}: DisableKey"),
        ),
        KeyState::PendingDeletion => ok(
            p.schedule_key_deletion(&fx.caller(), &id, 7).await,
            format_args!("{what}: ScheduleKeyDeletion"),
        ),
        _ => {}
    }
    assert_eq!(
        state_of(fx, &key.key_id).await,
        state,
        "{what}: setting up the key"
    );
    Subject {
        key: key.key_id,
        blob,
        alias,
    }
}

/// Runs `op` on the subject. `other` is an enabled key (ReEncrypt's other side); `other_alias` an alias
/// of `other` (for UpdateAlias); `fresh` an unused alias name (for CreateAlias).
async fn run(
    fx: &Fixture,
    op: Op,
    s: &Subject,
    other: &KeyId,
    other_alias: &AliasName,
    fresh: &AliasName,
) -> Result<()> {
    let p = fx.provider();
    let cl = fx.caller();
    let id = by_id(&s.key);
    let c = matrix_ctx();
    match op {
        Op::Encrypt => p.encrypt(&cl, &id, PLAINTEXT, &c).await.map(drop),
        Op::Decrypt => {
            let blob = s.blob.as_ref().expect("a blob");
            let d = p.decrypt(&cl, blob, &c).await?;
            assert_eq!(&d.plaintext[..], PLAINTEXT, "Decrypt returns the plaintext");
            Ok(())
        }
        Op::GenerateDataKey => p
            .generate_data_key(&cl, &id, DataKeySpec::Aes256.into(), &c)
            .await
            .map(drop),
        Op::GenerateDataKeyWithoutPlaintext => p
            .generate_data_key_without_plaintext(&cl, &id, DataKeySpec::Aes256.into(), &c)
            .await
            .map(drop),
        Op::ReEncryptSource => {
            let blob = s.blob.as_ref().expect("a blob");
            let e = p.re_encrypt(&cl, blob, &c, &by_id(other), &c).await?;
            assert_eq!(&e.key_id, other, "ReEncrypt names the destination key");
            Ok(())
        }
        Op::ReEncryptDestination => {
            let blob = ok(
                p.encrypt(&cl, &by_id(other), PLAINTEXT, &c).await,
                "Encrypt under the other key",
            )
            .ciphertext_blob;
            let e = p.re_encrypt(&cl, &blob, &c, &id, &c).await?;
            assert_eq!(e.key_id, s.key, "ReEncrypt names the destination key");
            let d = ok(
                p.decrypt(&cl, &e.ciphertext_blob, &c).await,
                "Decrypt the re-encrypted blob",
            );
            assert_eq!(&d.plaintext[..], PLAINTEXT);
            Ok(())
        }
        Op::DescribeKey => p.describe_key(&cl, &id).await.map(drop),
        Op::ListKeys => {
            p.list_keys(&cl, Default::default()).await?;
            let filters = if fx.capabilities().key_filters {
                let st = state_of(fx, &s.key).await;
                vec![KeyFilter::new(FilterKey::KeyState, [st.as_str()])]
            } else {
                Vec::new()
            };
            assert!(
                list_all_keys(fx, &filters).await.contains(&s.key),
                "ListKeys lists the key"
            );
            Ok(())
        }
        Op::ListAliases => {
            p.list_aliases(&cl, PageRequest::default()).await?;
            let alias = s.alias.as_ref().expect("an alias");
            let all = list_all_aliases(fx, PageRequest::MAX_PAGE_SIZE).await;
            assert!(
                all.iter().any(|a| &a.alias_name == alias && a.key_id == s.key),
                "ListAliases lists the key's alias"
            );
            Ok(())
        }
        Op::DeleteAlias => {
            let alias = s.alias.as_ref().expect("an alias");
            p.delete_alias(&cl, alias).await?;
            err(
                p.describe_key(&cl, &crate::KeyRef::Alias(alias.clone())).await,
                ErrorCode::AliasNotFound,
                "the deleted alias",
            );
            Ok(())
        }
        Op::EnableKey => p.enable_key(&cl, &id).await,
        Op::DisableKey => p.disable_key(&cl, &id).await,
        Op::ScheduleKeyDeletion => p.schedule_key_deletion(&cl, &id, 7).await,
        Op::CancelKeyDeletion => p.cancel_key_deletion(&cl, &id).await,
        Op::CreateAlias => {
            p.create_alias(&cl, fresh, &id).await?;
            let seen = ok(
                p.describe_key(&cl, &crate::KeyRef::Alias(fresh.clone())).await,
                "DescribeKey by the new alias",
            );
            assert_eq!(seen.key_id, s.key, "the new alias names the key");
            Ok(())
        }
        Op::UpdateAlias => {
            p.update_alias(&cl, other_alias, &id).await?;
            let seen = ok(
                p.describe_key(&cl, &crate::KeyRef::Alias(other_alias.clone()))
                    .await,
                "DescribeKey by the updated alias",
            );
            assert_eq!(seen.key_id, s.key, "the updated alias names the key");
            Ok(())
        }
    }
}

/// Where the alias names of a refused alias call point now (for the "nothing changed" check).
async fn alias_target(fx: &Fixture, alias: &AliasName) -> Option<KeyId> {
    fx.provider()
        .describe_key(&fx.caller(), &crate::KeyRef::Alias(alias.clone()))
        .await
        .ok()
        .map(|m| m.key_id)
}

async fn matrix_row(fx: &Fixture, state: KeyState) {
    let case = format!("state_matrix_{state}");
    let caps = fx.capabilities().clone();
    if state == KeyState::PendingImport && !caps.external_origin {
        skip(
            &case,
            "the provider has no EXTERNAL origin, so no key is ever PendingImport",
        );
        return;
    }
    let p = fx.provider();
    let other = create(fx, "state matrix: the other key").await.key_id;
    let mut problems = Vec::new();
    for op in OPS {
        let cell = format!("{state} × {op:?}");
        let want = expected(op, state);
        if op.uses_aliases() && !caps.aliases {
            skip(&format!("{case}/{op:?}"), "the provider has no aliases");
            continue;
        }
        if want.is_err() && !caps.enforces_key_states {
            skip(
                &format!("{case}/{op:?}"),
                "the provider does not enforce key states",
            );
            continue;
        }
        if op.needs_blob() && state == KeyState::PendingImport {
            not_applicable(
                &format!("{case}/{op:?}"),
                "a PendingImport key never had material, so no blob of it exists",
            );
            continue;
        }
        let s = subject(fx, state, op).await;
        let (other_alias, fresh) = (unique_alias("other"), unique_alias("fresh"));
        if op == Op::UpdateAlias {
            ok(
                p.create_alias(&fx.caller(), &other_alias, &by_id(&other)).await,
                "CreateAlias for the other key",
            );
        }
        let before: KeyMetadata = describe(fx, &s.key).await;
        let got = run(fx, op, &s, &other, &other_alias, &fresh).await;
        if let Some(m) = mismatch(&got, want.err()) {
            problems.push(format!("{cell}: {m}"));
            continue;
        }
        let after = describe(fx, &s.key).await;
        match want {
            Ok(next) => {
                if after.key_state != next {
                    problems.push(format!(
                        "{cell}: succeeded, but the key is {} instead of {next}",
                        after.key_state
                    ));
                }
            }
            Err(_) => {
                if after != before {
                    problems.push(format!(
                        "{cell}: refused, but DescribeKey changed:\n  before {before:?}\n  after  {after:?}"
                    ));
                }
                if op == Op::CreateAlias && alias_target(fx, &fresh).await.is_some() {
                    problems.push(format!("{cell}: refused, but the alias was created"));
                }
                if op == Op::UpdateAlias && alias_target(fx, &other_alias).await.as_ref() != Some(&other) {
                    problems.push(format!("{cell}: refused, but the alias was moved"));
                }
            }
        }
        match (
            after.key_state == KeyState::PendingDeletion,
            after.delete_date.is_some(),
        ) {
            (true, false) => problems.push(format!("{cell}: PendingDeletion without a DeleteDate")),
            (false, true) => problems.push(format!("{cell}: {} key with a DeleteDate", after.key_state)),
            _ => {}
        }
    }
    assert!(
        problems.is_empty(),
        "{case}: {} cell(s) of the state matrix are wrong:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// Every operation of spec §9 on an `Enabled` key succeeds, with the resulting state checked.
///
/// # Panics
/// When the provider does not conform; the message lists every wrong cell.
pub async fn state_matrix_enabled(fx: &Fixture) {
    matrix_row(fx, KeyState::Enabled).await;
}

/// Every operation of spec §9 on a `Disabled` key: cryptography answers `Rejected.Disabled` and changes
/// nothing; the rest succeeds.
///
/// # Panics
/// When the provider does not conform; the message lists every wrong cell.
pub async fn state_matrix_disabled(fx: &Fixture) {
    matrix_row(fx, KeyState::Disabled).await;
}

/// Every operation of spec §9 on a `PendingDeletion` key: cryptography and UpdateAlias answer
/// `Rejected.PendingDeletion`; Enable, Disable, Schedule and CreateAlias answer
/// `Rejected.StateModifiedFailed`; refused calls change nothing.
///
/// # Panics
/// When the provider does not conform; the message lists every wrong cell.
pub async fn state_matrix_pending_deletion(fx: &Fixture) {
    matrix_row(fx, KeyState::PendingDeletion).await;
}

/// Every operation of spec §9 on a `PendingImport` key (origin `EXTERNAL`): cryptography answers
/// `Rejected.PendingImport`, Enable/Disable/Cancel `Rejected.StateModifiedFailed`; ScheduleKeyDeletion,
/// CreateAlias and UpdateAlias succeed. Decrypt cells are not applicable (no blob can exist).
///
/// # Panics
/// When the provider does not conform; the message lists every wrong cell.
pub async fn state_matrix_pending_import(fx: &Fixture) {
    matrix_row(fx, KeyState::PendingImport).await;
}

/// Disable → cryptography refused with `Rejected.Disabled` (old blobs included) → Enable → everything
/// works again, old blobs included.
///
/// # Panics
/// When the provider does not conform.
pub async fn disable_enable(fx: &Fixture) {
    let p = fx.provider();
    let key = create(fx, "disable_enable").await;
    let id = by_id(&key.key_id);
    let c = ctx([("case", "disable_enable")]);
    let blob = ok(p.encrypt(&fx.caller(), &id, b"before", &c).await, "Encrypt").ciphertext_blob;
    ok(p.disable_key(&fx.caller(), &id).await, "DisableKey");
    assert_eq!(state_of(fx, &key.key_id).await, KeyState::Disabled);
    if fx.capabilities().enforces_key_states {
        let d = ErrorCode::Disabled;
        err(
            p.encrypt(&fx.caller(), &id, b"x", &c).await,
            d,
            "Encrypt while disabled",
        );
        err(
            p.decrypt(&fx.caller(), &blob, &c).await,
            d,
            "Decrypt while disabled",
        );
        err(
            p.generate_data_key(&fx.caller(), &id, DataKeySpec::Aes256.into(), &c)
                .await,
            d,
            "GenerateDataKey while disabled",
        );
    } else {
        skip(
            "disable_enable/refusals",
            "the provider does not enforce key states",
        );
    }
    ok(
        p.disable_key(&fx.caller(), &id).await,
        "DisableKey again (idempotent)",
    );
    ok(p.enable_key(&fx.caller(), &id).await, "EnableKey");
    assert_eq!(state_of(fx, &key.key_id).await, KeyState::Enabled);
    ok(
        p.enable_key(&fx.caller(), &id).await,
        "EnableKey again (idempotent)",
    );
    let fresh = ok(
        p.encrypt(&fx.caller(), &id, b"after", &c).await,
        "Encrypt after enabling",
    );
    let d = ok(
        p.decrypt(&fx.caller(), &fresh.ciphertext_blob, &c).await,
        "Decrypt after enabling",
    );
    assert_eq!(&d.plaintext[..], b"after");
    let d = ok(
        p.decrypt(&fx.caller(), &blob, &c).await,
        "Decrypt an old blob after enabling",
    );
    assert_eq!(&d.plaintext[..], b"before");
}

/// Checks that `meta` is pending deletion with a DeleteDate about `days` after its creation.
fn assert_pending(meta: &KeyMetadata, days: u32, what: &str) {
    assert_eq!(meta.key_state, KeyState::PendingDeletion, "{what}: the state");
    let Some(d) = meta.delete_date else {
        panic!("{what}: PendingDeletion without a DeleteDate");
    };
    let day = crate::clock::DAY;
    let lo = meta.creation_date.unix() + (u64::from(days) - 1) * day;
    let hi = meta.creation_date.unix() + (u64::from(days) + 1) * day;
    assert!(
        (lo..=hi).contains(&d.unix()),
        "{what}: DeleteDate {d} is not about {days} days after the creation {}",
        meta.creation_date
    );
}

/// ScheduleKeyDeletion takes windows of 7 to the maximum days (6 and max + 1 are `InvalidParameter` and
/// change nothing); DeleteDate is set only while `PendingDeletion`; scheduling twice is refused;
/// CancelKeyDeletion returns the key to `Enabled` (even one that was disabled) and clears DeleteDate.
///
/// # Panics
/// When the provider does not conform.
pub async fn deletion_window(fx: &Fixture) {
    let p = fx.provider();
    let max = fx.capabilities().max_pending_window_days;
    let enforces = fx.capabilities().enforces_key_states;
    let key = create(fx, "deletion_window").await;
    let id = by_id(&key.key_id);
    let before = describe(fx, &key.key_id).await;
    assert_eq!(before.delete_date, None, "no DeleteDate while Enabled");
    for days in [0, 6, max + 1, u32::MAX] {
        err(
            p.schedule_key_deletion(&fx.caller(), &id, days).await,
            ErrorCode::InvalidParameter,
            format_args!("ScheduleKeyDeletion with {days} days"),
        );
        assert_eq!(
            describe(fx, &key.key_id).await,
            before,
            "a refused schedule changes nothing"
        );
    }
    for days in [7, max] {
        ok(
            p.schedule_key_deletion(&fx.caller(), &id, days).await,
            format_args!("ScheduleKeyDeletion with {days} days"),
        );
        let pending = describe(fx, &key.key_id).await;
        assert_pending(&pending, days, &format!("after scheduling {days} days"));
        if enforces {
            err(
                p.schedule_key_deletion(&fx.caller(), &id, days).await,
                ErrorCode::StateModifiedFailed,
                "ScheduleKeyDeletion of a key already pending deletion",
            );
            err(
                p.encrypt(&fx.caller(), &id, b"x", &EncryptionContext::new())
                    .await,
                ErrorCode::PendingDeletion,
                "Encrypt while pending deletion",
            );
            assert_eq!(
                describe(fx, &key.key_id).await,
                pending,
                "refusals change nothing"
            );
        }
        ok(
            p.cancel_key_deletion(&fx.caller(), &id).await,
            "CancelKeyDeletion",
        );
        let back = describe(fx, &key.key_id).await;
        assert_eq!(back.key_state, KeyState::Enabled, "cancel returns to Enabled");
        assert_eq!(back.delete_date, None, "cancel clears DeleteDate");
        ok(
            p.encrypt(&fx.caller(), &id, b"x", &EncryptionContext::new())
                .await,
            "Encrypt after cancelling",
        );
    }
    if !enforces {
        skip(
            "deletion_window/refusals",
            "the provider does not enforce key states",
        );
    }

    // A disabled key can be scheduled; cancelling makes it Enabled (spec: PendingDeletion → Enabled).
    ok(p.disable_key(&fx.caller(), &id).await, "DisableKey");
    assert_eq!(
        describe(fx, &key.key_id).await.delete_date,
        None,
        "no DeleteDate while Disabled"
    );
    ok(
        p.schedule_key_deletion(&fx.caller(), &id, 7).await,
        "ScheduleKeyDeletion of a disabled key",
    );
    assert_pending(&describe(fx, &key.key_id).await, 7, "a disabled key scheduled");
    ok(
        p.cancel_key_deletion(&fx.caller(), &id).await,
        "CancelKeyDeletion",
    );
    assert_eq!(state_of(fx, &key.key_id).await, KeyState::Enabled);
    if enforces {
        err(
            p.cancel_key_deletion(&fx.caller(), &id).await,
            ErrorCode::StateModifiedFailed,
            "CancelKeyDeletion of an Enabled key",
        );
    }
}

/// Deletion protection: DescribeKey shows `DeletionProtection` `Enabled` (with its description) or
/// `Disabled`; while on, ScheduleKeyDeletion is refused with `Rejected.UnsupportedOperation` and changes
/// nothing; turned off, scheduling works.
///
/// # Panics
/// When the provider does not conform.
pub async fn deletion_protection(fx: &Fixture) {
    if !fx.capabilities().deletion_protection {
        skip("deletion_protection", "the provider has no deletion protection");
        return;
    }
    let p = fx.provider();
    let key = create(fx, "deletion_protection").await;
    let id = by_id(&key.key_id);
    assert_eq!(describe(fx, &key.key_id).await.deletion_protection, "Disabled");
    ok(
        p.set_deletion_protection(&fx.caller(), &id, true, "keep me")
            .await,
        "SetDeletionProtection on",
    );
    let on = describe(fx, &key.key_id).await;
    assert_eq!(
        on.deletion_protection, "Enabled",
        "DescribeKey shows protection on"
    );
    assert_eq!(on.deletion_protection_description, "keep me");
    err(
        p.schedule_key_deletion(&fx.caller(), &id, 7).await,
        ErrorCode::UnsupportedOperation,
        "ScheduleKeyDeletion of a protected key",
    );
    assert_eq!(
        describe(fx, &key.key_id).await,
        on,
        "a refused schedule changes nothing"
    );
    // Protection also holds for a disabled key.
    ok(p.disable_key(&fx.caller(), &id).await, "DisableKey");
    err(
        p.schedule_key_deletion(&fx.caller(), &id, 30).await,
        ErrorCode::UnsupportedOperation,
        "ScheduleKeyDeletion of a protected, disabled key",
    );
    assert_eq!(state_of(fx, &key.key_id).await, KeyState::Disabled);
    ok(p.enable_key(&fx.caller(), &id).await, "EnableKey");
    ok(
        p.set_deletion_protection(&fx.caller(), &id, false, "").await,
        "SetDeletionProtection off",
    );
    assert_eq!(describe(fx, &key.key_id).await.deletion_protection, "Disabled");
    ok(
        p.schedule_key_deletion(&fx.caller(), &id, 7).await,
        "ScheduleKeyDeletion once protection is off",
    );
    assert_pending(
        &describe(fx, &key.key_id).await,
        7,
        "after protection was turned off",
    );
    ok(
        p.cancel_key_deletion(&fx.caller(), &id).await,
        "CancelKeyDeletion",
    );
}
