//! The public [`KeyProvider`] of `Kms<S>`: every call is authorized against the policies, held for
//! approval when dual control applies, checked against quotas, run by the engine's raw implementation
//! ([`RawProvider`], in `engine.rs`), counted, and audited — allowed, denied or failed.
//!
//! Authorization happens before the key is looked up for the call itself, so a caller without
//! permission learns `Forbidden.NoPermission`, never whether the key exists. A resource is named by the
//! key's ARN (with its real id) and, when the caller named it by alias, also by the alias ARN; account
//! level calls use `acs:kms:<region>:<account>:key` (CreateKey, ListKeys), `…:alias` (ListAliases),
//! `…:audit`, `…:usage`, and `…:principal/<name>` for policy attachment.

use super::*;

use crate::audit::{
    AuditEvent, AuditQuery, ChainBreak, EventRef, Keys, Outcome, SCHEDULER_PRINCIPAL, VerifyReport,
};
use crate::governance::{Governance, PendingApproval, PendingOp, QuotaKind, UsageReport};
use std::future::Future;

use crate::key::AsymmetricAlgorithm;
use crate::policy::{Action, Decision, Policy, RequestContext};
use crate::provider::{AsymmetricEncrypted, PublicKey, Signed, Verified};

/// The engine's operations without governance; `Kms<S>` implements it in `engine.rs`.
#[async_trait]
pub(crate) trait RawProvider: Send + Sync {
    async fn create_key(&self, caller: &Caller, req: CreateKey) -> Result<KeyMetadata>;
    async fn describe_key(&self, caller: &Caller, key: &KeyRef) -> Result<KeyMetadata>;
    async fn list_keys(&self, caller: &Caller, req: ListKeys) -> Result<Page<KeySummary>>;
    async fn enable_key(&self, caller: &Caller, key: &KeyRef) -> Result<()>;
    async fn disable_key(&self, caller: &Caller, key: &KeyRef) -> Result<()>;
    async fn schedule_key_deletion(&self, caller: &Caller, key: &KeyRef, days: u32) -> Result<()>;
    async fn cancel_key_deletion(&self, caller: &Caller, key: &KeyRef) -> Result<()>;
    async fn update_key_description(&self, caller: &Caller, key: &KeyRef, description: &str) -> Result<()>;
    async fn set_deletion_protection(
        &self,
        caller: &Caller,
        key: &KeyRef,
        enabled: bool,
        description: &str,
    ) -> Result<()>;
    async fn create_alias(&self, caller: &Caller, alias: &AliasName, key: &KeyRef) -> Result<()>;
    async fn update_alias(&self, caller: &Caller, alias: &AliasName, key: &KeyRef) -> Result<()>;
    async fn delete_alias(&self, caller: &Caller, alias: &AliasName) -> Result<()>;
    async fn list_aliases(&self, caller: &Caller, page: PageRequest) -> Result<Page<AliasInfo>>;
    async fn list_aliases_by_key_id(
        &self,
        caller: &Caller,
        key: &KeyRef,
        page: PageRequest,
    ) -> Result<Page<AliasInfo>>;
    async fn encrypt(
        &self,
        caller: &Caller,
        key: &KeyRef,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Encrypted>;
    async fn decrypt(
        &self,
        caller: &Caller,
        blob: &CiphertextBlob,
        ctx: &EncryptionContext,
    ) -> Result<Decrypted>;
    async fn re_encrypt(
        &self,
        caller: &Caller,
        blob: &CiphertextBlob,
        source_ctx: &EncryptionContext,
        dest_key: &KeyRef,
        dest_ctx: &EncryptionContext,
    ) -> Result<Encrypted>;
    async fn generate_data_key(
        &self,
        caller: &Caller,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey>;
    async fn generate_data_key_without_plaintext(
        &self,
        caller: &Caller,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<Encrypted>;
    async fn list_key_versions(
        &self,
        caller: &Caller,
        key: &KeyRef,
        page: PageRequest,
    ) -> Result<Page<KeyVersion>>;
    async fn describe_key_version(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
    ) -> Result<KeyVersion>;
    async fn tag_resource(&self, caller: &Caller, key: &KeyRef, tags: &[Tag]) -> Result<()>;
    async fn untag_resource(&self, caller: &Caller, key: &KeyRef, tag_keys: &[String]) -> Result<()>;
    async fn list_resource_tags(&self, caller: &Caller, key: &KeyRef) -> Result<Vec<Tag>>;
}

/// A resource as policies see it.
#[derive(Debug, Default)]
pub(super) struct Target {
    names: Vec<String>,
    pub(super) key: Option<KeyId>,
    tags: Option<BTreeMap<String, String>>,
}

impl<S: KeyStore> Kms<S> {
    /// What this engine enforces and records.
    pub fn governance(&self) -> &Arc<Governance> {
        &self.config.governance
    }

    pub(super) fn gov(&self) -> &Governance {
        &self.config.governance
    }

    fn account_target(&self, kind: &str) -> Target {
        Target {
            names: vec![format!(
                "acs:kms:{}:{}:{kind}",
                self.config.region, self.config.account
            )],
            ..Target::default()
        }
    }

    /// Names a key reference for policy evaluation, resolving what can be resolved without failing.
    pub(super) fn key_target(&self, key: &KeyRef) -> Target {
        let g = self.gov();
        if !g.enforce && g.audit.is_none() {
            // Nothing to evaluate or record: only the key id for the usage counters, when at hand.
            return Target {
                key: match key {
                    KeyRef::Id(id) => Some(id.clone()),
                    _ => None,
                },
                ..Target::default()
            };
        }
        let (r, a) = (&self.config.region, &self.config.account);
        let st = self.read();
        let resolve_alias = |al: &AliasName| st.aliases.get(al).map(|x| x.key_id.clone());
        let (id, alias) = match key {
            KeyRef::Id(id) => (Some(id.clone()), None),
            KeyRef::Alias(al) => (resolve_alias(al), Some(al)),
            KeyRef::Arn(arn) if arn.region == *r && arn.account == *a => match &arn.resource {
                ArnResource::Key(id) => (Some(id.clone()), None),
                ArnResource::Alias(al) => (resolve_alias(al), Some(al)),
            },
            KeyRef::Arn(_) => {
                return Target {
                    names: vec![key.to_string()],
                    ..Target::default()
                };
            }
        };
        // Names are only needed to evaluate policies.
        let mut names = Vec::new();
        if self.gov().enforce {
            names.reserve(2);
            if let Some(id) = &id {
                // As Arn::key, without the formatting machinery (this is on every call's path).
                let mut n = String::with_capacity(13 + r.len() + a.len() + id.as_str().len());
                for part in ["acs:kms:", r, ":", a, ":key/", id.as_str()] {
                    n.push_str(part);
                }
                names.push(n);
            }
            if let Some(al) = alias {
                names.push(Arn::alias(r, a, al));
            }
        }
        let tags = match (&id, self.gov().enforce) {
            (Some(id), true) => st
                .keys
                .get(id)
                .filter(|k| !k.purged && !k.tags.is_empty())
                .map(|k| k.tags.clone()),
            _ => None,
        };
        Target { names, key: id, tags }
    }

    fn alias_target(&self, alias: &AliasName) -> Target {
        Target {
            names: vec![Arn::alias(&self.config.region, &self.config.account, alias)],
            ..Target::default()
        }
    }

    pub(super) fn blob_target(&self, blob: &CiphertextBlob) -> Target {
        match ParsedBlob::parse(blob.as_bytes()) {
            Ok(p) => self.key_target(&KeyRef::Id(p.key_id)),
            // Unparsable: authorized against every key of the account; the engine then refuses it.
            Err(_) => Target {
                names: vec![format!(
                    "acs:kms:{}:{}:key/*",
                    self.config.region, self.config.account
                )],
                ..Target::default()
            },
        }
    }

    fn op_targets(&self, op: &PendingOp) -> Vec<Target> {
        match op {
            PendingOp::EnableKey(k)
            | PendingOp::DisableKey(k)
            | PendingOp::ScheduleKeyDeletion(k, _)
            | PendingOp::CancelKeyDeletion(k)
            | PendingOp::UpdateKeyDescription(k, _)
            | PendingOp::SetDeletionProtection { key: k, .. }
            | PendingOp::TagResource(k, _)
            | PendingOp::UntagResource(k, _)
            | PendingOp::PutKeyPolicy(k, _) => vec![self.key_target(k)],
            PendingOp::CreateAlias(al, k) | PendingOp::UpdateAlias(al, k) => {
                vec![self.alias_target(al), self.key_target(k)]
            }
            PendingOp::DeleteAlias(al) => vec![self.alias_target(al)],
            PendingOp::AttachPolicy(p, ..) | PendingOp::DetachPolicy(p, _) => {
                vec![self.account_target(&format!("principal/{p}"))]
            }
        }
    }

    /// Records one audit event (when auditing). A sink failure makes later calls fail closed.
    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        caller: &Caller,
        action: Action,
        key: Option<&KeyId>,
        version: Option<&KeyVersionId>,
        ctx: Option<&EncryptionContext>,
        outcome: Outcome,
        code: &'static str,
        detail: Option<String>,
    ) {
        let g = self.gov();
        let Some(log) = &g.audit else { return };
        let now = self.now();
        let ev = EventRef {
            time: now,
            action: action.name(),
            principal: &caller.principal,
            source_ip: caller.source_ip,
            request_id: &caller.request_id,
            key_id: key.map(KeyId::as_str),
            key_version_id: version.map(KeyVersionId::as_str),
            outcome,
            code,
            // Context keys only: values may be sensitive.
            context_keys: match ctx {
                Some(c) => Keys::Context(c),
                None => Keys::List(&[]),
            },
            detail: detail.as_deref(),
        };
        if log.record_ref(&ev, now).is_err() {
            g.audit_failed.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Records a state change the engine made by itself (a purge; rotations by the scheduler).
    pub(crate) fn audit_state_change(&self, action: Action, key: &KeyId) {
        if self.gov().audit.is_none() {
            return;
        }
        let caller = Caller::new(SCHEDULER_PRINCIPAL);
        self.record(
            &caller,
            action,
            Some(key),
            None,
            None,
            Outcome::Success,
            "OK",
            None,
        );
    }

    /// Authorizes `caller` for `action` on every target (each with its encryption context); records a
    /// denial. Also refuses every call while the audit trail cannot be written.
    pub(super) fn authorize(
        &self,
        caller: &Caller,
        action: Action,
        targets: &[(&Target, Option<&EncryptionContext>)],
    ) -> Result<()> {
        let g = self.gov();
        if g.audit.is_some() && g.audit_failed() {
            return Err(Error::Unavailable {
                message: "the audit trail cannot be written; calls are refused until it can".into(),
                retryable: true,
                source: None,
            });
        }
        if !g.enforce || (g.trust_local && caller.principal == "local") {
            return Ok(());
        }
        let now = self.now();
        for (t, ctx) in targets {
            let req = RequestContext::new(&caller.principal, action, &t.names, now)
                .source_ip(caller.source_ip)
                .secure_transport(caller.secure_transport)
                .encryption_context(*ctx)
                .tags(t.tags.as_ref());
            let d = g.policies.evaluate(&req, t.key.as_ref());
            if d != Decision::Allow {
                let why = if d == Decision::ExplicitDeny {
                    "an explicit Deny applies"
                } else {
                    "no policy allows it"
                };
                let e = Error::AccessDenied {
                    reason: format!(
                        "{} may not {} on {} ({why})",
                        caller.principal,
                        action.policy_name(),
                        t.names.first().map_or("*", String::as_str)
                    ),
                    source: None,
                };
                self.record(
                    caller,
                    action,
                    t.key.as_ref(),
                    None,
                    *ctx,
                    Outcome::Denied,
                    e.code().as_str(),
                    None,
                );
                return Err(e);
            }
        }
        Ok(())
    }

    /// Counts and audits the end of an authorized call.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn finish<T>(
        &self,
        caller: &Caller,
        action: Action,
        key: Option<&KeyId>,
        ctx: Option<&EncryptionContext>,
        r: Result<T>,
        ids: impl FnOnce(&T) -> Option<(&KeyId, &KeyVersionId)>,
        detail: Option<String>,
    ) -> Result<T> {
        let g = self.gov();
        let (key, version, outcome, code) = match &r {
            Ok(v) => match ids(v) {
                Some((k, ver)) => (Some(k), Some(ver), Outcome::Success, "OK"),
                None => (key, None, Outcome::Success, "OK"),
            },
            Err(e) => (key, None, Outcome::Failed, e.code().as_str()),
        };
        g.count(key, action);
        self.record(caller, action, key, version, ctx, outcome, code, detail);
        r
    }

    /// A cryptographic or read call on one key: authorize `caller` for `action` on it (with the call's
    /// encryption context), run `run`, then count and audit the outcome with the key, the version `ids`
    /// names in the result, and `detail`. `run` is a future, so nothing of it runs before authorization.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn keyed_call<T>(
        &self,
        caller: &Caller,
        action: Action,
        key: &KeyRef,
        ctx: Option<&EncryptionContext>,
        detail: Option<&str>,
        run: impl Future<Output = Result<T>>,
        ids: impl FnOnce(&T) -> Option<(&KeyId, &KeyVersionId)>,
    ) -> Result<T> {
        let t = self.key_target(key);
        self.authorize(caller, action, &[(&t, ctx)])?;
        let r = run.await;
        self.finish(
            caller,
            action,
            t.key.as_ref(),
            ctx,
            r,
            ids,
            detail.map(str::to_owned),
        )
    }

    /// A management call: authorize, hold for approval when dual control applies, run, audit.
    async fn managed(&self, caller: &Caller, op: PendingOp) -> Result<()> {
        let action = op.action();
        let targets = self.op_targets(&op);
        let refs: Vec<_> = targets.iter().map(|t| (t, None)).collect();
        self.authorize(caller, action, &refs)?;
        let key = targets.iter().find_map(|t| t.key.clone());
        if let Some(p) = self.gov().hold(op.clone(), caller, self.now()) {
            let e = Error::ApprovalRequired {
                approval_id: p.id.clone(),
                action: action.name().to_owned(),
            };
            self.record(
                caller,
                action,
                key.as_ref(),
                None,
                None,
                Outcome::PendingApproval,
                e.code().as_str(),
                Some(p.id),
            );
            return Err(e);
        }
        let r = self.execute(caller, &op).await;
        self.finish(caller, action, key.as_ref(), None, r, |_| None, None)
    }

    /// Runs a management operation without governance.
    async fn execute(&self, caller: &Caller, op: &PendingOp) -> Result<()> {
        match op {
            PendingOp::EnableKey(k) => RawProvider::enable_key(self, caller, k).await,
            PendingOp::DisableKey(k) => RawProvider::disable_key(self, caller, k).await,
            PendingOp::ScheduleKeyDeletion(k, d) => {
                RawProvider::schedule_key_deletion(self, caller, k, *d).await
            }
            PendingOp::CancelKeyDeletion(k) => RawProvider::cancel_key_deletion(self, caller, k).await,
            PendingOp::UpdateKeyDescription(k, d) => {
                RawProvider::update_key_description(self, caller, k, d).await
            }
            PendingOp::SetDeletionProtection {
                key,
                enabled,
                description,
            } => RawProvider::set_deletion_protection(self, caller, key, *enabled, description).await,
            PendingOp::CreateAlias(al, k) => {
                let _r = self
                    .gov()
                    .reserve(QuotaKind::Aliases, || self.read().aliases.len() as u64)?;
                RawProvider::create_alias(self, caller, al, k).await
            }
            PendingOp::UpdateAlias(al, k) => RawProvider::update_alias(self, caller, al, k).await,
            PendingOp::DeleteAlias(al) => RawProvider::delete_alias(self, caller, al).await,
            PendingOp::TagResource(k, t) => RawProvider::tag_resource(self, caller, k, t).await,
            PendingOp::UntagResource(k, t) => RawProvider::untag_resource(self, caller, k, t).await,
            PendingOp::PutKeyPolicy(k, p) => {
                let rec = self.lookup(k)?;
                self.gov().policies.set_key_policy(&rec.key_id, p.clone());
                Ok(())
            }
            PendingOp::AttachPolicy(principal, name, p) => {
                if principal.is_empty() || name.is_empty() {
                    return Err(Error::invalid(
                        "PolicyName",
                        "principal and policy name must not be empty",
                    ));
                }
                self.gov().policies.attach(principal, name, p.clone());
                Ok(())
            }
            PendingOp::DetachPolicy(principal, name) => {
                if self.gov().policies.detach(principal, name) {
                    Ok(())
                } else {
                    Err(Error::invalid(
                        "PolicyName",
                        format!("{name} is not attached to {principal}"),
                    ))
                }
            }
        }
    }

    /// Sets (or with `None` removes) the key policy of `key`. Dual control applies by default.
    ///
    /// # Errors
    /// `Forbidden.NoPermission`, `Rejected.ApprovalRequired`, `Forbidden.KeyNotFound`.
    pub async fn put_key_policy(&self, caller: &Caller, key: &KeyRef, policy: Option<Policy>) -> Result<()> {
        self.managed(caller, PendingOp::PutKeyPolicy(key.clone(), policy))
            .await
    }

    /// Attaches `policy` to `principal` under `name`. Dual control applies by default.
    ///
    /// # Errors
    /// `Forbidden.NoPermission`, `Rejected.ApprovalRequired`, `InvalidParameter`.
    pub async fn attach_policy(
        &self,
        caller: &Caller,
        principal: &str,
        name: &str,
        policy: Policy,
    ) -> Result<()> {
        self.managed(
            caller,
            PendingOp::AttachPolicy(principal.to_owned(), name.to_owned(), policy),
        )
        .await
    }

    /// Detaches policy `name` from `principal`. Dual control applies by default.
    ///
    /// # Errors
    /// `Forbidden.NoPermission`, `Rejected.ApprovalRequired`, `InvalidParameter` when not attached.
    pub async fn detach_policy(&self, caller: &Caller, principal: &str, name: &str) -> Result<()> {
        self.managed(
            caller,
            PendingOp::DetachPolicy(principal.to_owned(), name.to_owned()),
        )
        .await
    }

    /// Requests waiting for approval.
    pub fn pending_approvals(&self) -> Vec<PendingApproval> {
        self.gov().pending_approvals(self.now())
    }

    /// Approves a held request as `approver` and runs it (as its requester). The approver must be a
    /// different principal, allowed `kms:ApproveRequest` and the held action on its resources, and act
    /// before the request expires. The approval and the operation are both audited.
    ///
    /// # Errors
    /// `Forbidden.NoPermission` (self-approval, or the approver lacks permission; the request stays
    /// pending), `InvalidParameter` (unknown or expired id), or the operation's own error.
    pub async fn approve(&self, approver: &Caller, approval_id: &str) -> Result<()> {
        let g = self.gov();
        let now = self.now();
        let Some(p) = g.take_pending(approval_id) else {
            let e = Error::invalid("ApprovalId", format!("no pending request {approval_id}"));
            self.record(
                approver,
                Action::ApproveRequest,
                None,
                None,
                None,
                Outcome::Failed,
                e.code().as_str(),
                Some(approval_id.to_owned()),
            );
            return Err(e);
        };
        let action = p.op.action();
        let targets = self.op_targets(&p.op);
        let key = targets.iter().find_map(|t| t.key.clone());
        let detail = format!("{} {} requested by {}", p.id, action, p.requester.principal);
        if now > p.expires_at {
            let e = Error::invalid(
                "ApprovalId",
                format!("request {} expired at {}", p.id, p.expires_at),
            );
            self.record(
                approver,
                Action::ApproveRequest,
                key.as_ref(),
                None,
                None,
                Outcome::Failed,
                e.code().as_str(),
                Some(detail),
            );
            return Err(e);
        }
        if approver.principal == p.requester.principal {
            let e = Error::AccessDenied {
                reason: format!("{} cannot approve its own request {}", approver.principal, p.id),
                source: None,
            };
            g.put_back(p);
            self.record(
                approver,
                Action::ApproveRequest,
                key.as_ref(),
                None,
                None,
                Outcome::Denied,
                e.code().as_str(),
                Some(detail),
            );
            return Err(e);
        }
        let refs: Vec<_> = targets.iter().map(|t| (t, None)).collect();
        let allowed = self
            .authorize(approver, Action::ApproveRequest, &refs)
            .and_then(|()| self.authorize(approver, action, &refs));
        if let Err(e) = allowed {
            g.put_back(p);
            return Err(e);
        }
        self.record(
            approver,
            Action::ApproveRequest,
            key.as_ref(),
            None,
            None,
            Outcome::Success,
            "OK",
            Some(detail),
        );
        let r = self.execute(&p.requester, &p.op).await;
        self.finish(
            &p.requester,
            action,
            key.as_ref(),
            None,
            r,
            |_| None,
            Some(format!("{} approved by {}", p.id, approver.principal)),
        )
    }

    /// Audit events matching `q` (needs `kms:LookupAuditEvents`; the lookup is itself audited).
    ///
    /// # Errors
    /// `Forbidden.NoPermission`; `Rejected.UnsupportedOperation` without an audit log; read errors.
    pub fn audit_lookup(&self, caller: &Caller, q: &AuditQuery) -> Result<Vec<AuditEvent>> {
        let t = self.account_target("audit");
        self.authorize(caller, Action::LookupAuditEvents, &[(&t, None)])?;
        let r = match &self.gov().audit {
            Some(log) => log.lookup(q),
            None => Err(Error::Unsupported("no audit log is configured".into())),
        };
        self.finish(caller, Action::LookupAuditEvents, None, None, r, |_| None, None)
    }

    /// Verifies the audit hash chain (needs `kms:VerifyAuditTrail`). `Ok(Err(break))` names the first
    /// bad event.
    ///
    /// # Errors
    /// `Forbidden.NoPermission`; `Rejected.UnsupportedOperation` without an audit log; read errors.
    pub fn audit_verify(&self, caller: &Caller) -> Result<std::result::Result<VerifyReport, ChainBreak>> {
        let t = self.account_target("audit");
        self.authorize(caller, Action::VerifyAuditTrail, &[(&t, None)])?;
        let r = match &self.gov().audit {
            Some(log) => log.verify(),
            None => Err(Error::Unsupported("no audit log is configured".into())),
        };
        self.finish(caller, Action::VerifyAuditTrail, None, None, r, |_| None, None)
    }

    /// Usage counters (since the engine started) and the cost of `[from, to]`: calls at the price per
    /// 10,000 and key-months (each key from creation to purge) at the price per key-month. Needs
    /// `kms:GetUsageReport`.
    ///
    /// # Errors
    /// `Forbidden.NoPermission`.
    pub fn usage_report(&self, caller: &Caller, from: Timestamp, to: Timestamp) -> Result<UsageReport> {
        let t = self.account_target("usage");
        self.authorize(caller, Action::GetUsageReport, &[(&t, None)])?;
        let rows = self.gov().usage_rows();
        let total_calls = rows.iter().map(|r| r.calls).sum();
        let mut secs = 0u64;
        for k in self.read().keys.values() {
            let start = k.creation_date.max(from);
            let end = if k.purged { k.delete_date.unwrap_or(to) } else { to }.min(to);
            secs += end.unix().saturating_sub(start.unix());
        }
        let key_months = secs as f64 / (30 * DAY) as f64;
        let (calls_cost, keys_cost) = self.gov().cost(total_calls, key_months);
        let r = Ok(UsageReport {
            from,
            to,
            rows,
            total_calls,
            key_months,
            calls_cost,
            keys_cost,
            prices: self.gov().prices,
        });
        self.finish(caller, Action::GetUsageReport, None, None, r, |_| None, None)
    }

    /// Whether a key may get another version under the versions-per-key quota (for rotation).
    ///
    /// # Errors
    /// `Rejected.LimitExceeded`, `Forbidden.KeyNotFound`.
    pub fn check_version_quota(&self, key: &KeyRef) -> Result<()> {
        let rec = self.lookup(key)?;
        self.gov().quotas.check_versions(rec.versions.len() as u64)
    }
}

fn key_of(m: &KeyMetadata) -> Option<(&KeyId, &KeyVersionId)> {
    m.primary_key_version.as_ref().map(|v| (&m.key_id, v))
}

#[async_trait]
impl<S: KeyStore> KeyProvider for Kms<S> {
    async fn create_key(&self, caller: &Caller, req: CreateKey) -> Result<KeyMetadata> {
        let t = self.account_target("key");
        self.authorize(caller, Action::CreateKey, &[(&t, None)])?;
        let r = match self
            .gov()
            .reserve(QuotaKind::Keys, || self.read().order.len() as u64)
        {
            Ok(_r) => RawProvider::create_key(self, caller, req).await,
            Err(e) => Err(e),
        };
        let key = r.as_ref().ok().map(|m| m.key_id.clone());
        self.finish(caller, Action::CreateKey, key.as_ref(), None, r, key_of, None)
    }

    async fn describe_key(&self, caller: &Caller, key: &KeyRef) -> Result<KeyMetadata> {
        let t = self.key_target(key);
        self.authorize(caller, Action::DescribeKey, &[(&t, None)])?;
        let r = RawProvider::describe_key(self, caller, key).await;
        let k = r.as_ref().ok().map(|m| m.key_id.clone()).or(t.key);
        self.finish(caller, Action::DescribeKey, k.as_ref(), None, r, |_| None, None)
    }

    async fn list_keys(&self, caller: &Caller, req: ListKeys) -> Result<Page<KeySummary>> {
        let t = self.account_target("key");
        self.authorize(caller, Action::ListKeys, &[(&t, None)])?;
        let r = RawProvider::list_keys(self, caller, req).await;
        self.finish(caller, Action::ListKeys, None, None, r, |_| None, None)
    }

    async fn enable_key(&self, caller: &Caller, key: &KeyRef) -> Result<()> {
        self.managed(caller, PendingOp::EnableKey(key.clone())).await
    }

    async fn disable_key(&self, caller: &Caller, key: &KeyRef) -> Result<()> {
        self.managed(caller, PendingOp::DisableKey(key.clone())).await
    }

    async fn schedule_key_deletion(&self, caller: &Caller, key: &KeyRef, days: u32) -> Result<()> {
        self.managed(caller, PendingOp::ScheduleKeyDeletion(key.clone(), days))
            .await
    }

    async fn cancel_key_deletion(&self, caller: &Caller, key: &KeyRef) -> Result<()> {
        self.managed(caller, PendingOp::CancelKeyDeletion(key.clone()))
            .await
    }

    async fn update_key_description(&self, caller: &Caller, key: &KeyRef, description: &str) -> Result<()> {
        self.managed(
            caller,
            PendingOp::UpdateKeyDescription(key.clone(), description.to_owned()),
        )
        .await
    }

    async fn set_deletion_protection(
        &self,
        caller: &Caller,
        key: &KeyRef,
        enabled: bool,
        description: &str,
    ) -> Result<()> {
        self.managed(
            caller,
            PendingOp::SetDeletionProtection {
                key: key.clone(),
                enabled,
                description: description.to_owned(),
            },
        )
        .await
    }

    async fn create_alias(&self, caller: &Caller, alias: &AliasName, key: &KeyRef) -> Result<()> {
        self.managed(caller, PendingOp::CreateAlias(alias.clone(), key.clone()))
            .await
    }

    async fn update_alias(&self, caller: &Caller, alias: &AliasName, key: &KeyRef) -> Result<()> {
        self.managed(caller, PendingOp::UpdateAlias(alias.clone(), key.clone()))
            .await
    }

    async fn delete_alias(&self, caller: &Caller, alias: &AliasName) -> Result<()> {
        self.managed(caller, PendingOp::DeleteAlias(alias.clone())).await
    }

    async fn list_aliases(&self, caller: &Caller, page: PageRequest) -> Result<Page<AliasInfo>> {
        let t = self.account_target("alias");
        self.authorize(caller, Action::ListAliases, &[(&t, None)])?;
        let r = RawProvider::list_aliases(self, caller, page).await;
        self.finish(caller, Action::ListAliases, None, None, r, |_| None, None)
    }

    async fn list_aliases_by_key_id(
        &self,
        caller: &Caller,
        key: &KeyRef,
        page: PageRequest,
    ) -> Result<Page<AliasInfo>> {
        self.keyed_call(
            caller,
            Action::ListAliasesByKeyId,
            key,
            None,
            None,
            RawProvider::list_aliases_by_key_id(self, caller, key, page),
            |_| None,
        )
        .await
    }

    async fn encrypt(
        &self,
        caller: &Caller,
        key: &KeyRef,
        plaintext: &[u8],
        ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        self.keyed_call(
            caller,
            Action::Encrypt,
            key,
            Some(ctx),
            None,
            RawProvider::encrypt(self, caller, key, plaintext, ctx),
            |e| Some((&e.key_id, &e.key_version_id)),
        )
        .await
    }

    async fn decrypt(
        &self,
        caller: &Caller,
        blob: &CiphertextBlob,
        ctx: &EncryptionContext,
    ) -> Result<Decrypted> {
        let t = self.blob_target(blob);
        self.authorize(caller, Action::Decrypt, &[(&t, Some(ctx))])?;
        let r = RawProvider::decrypt(self, caller, blob, ctx).await;
        self.finish(
            caller,
            Action::Decrypt,
            t.key.as_ref(),
            Some(ctx),
            r,
            |d| Some((&d.key_id, &d.key_version_id)),
            None,
        )
    }

    async fn re_encrypt(
        &self,
        caller: &Caller,
        blob: &CiphertextBlob,
        source_ctx: &EncryptionContext,
        dest_key: &KeyRef,
        dest_ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        let src = self.blob_target(blob);
        let dst = self.key_target(dest_key);
        self.authorize(
            caller,
            Action::ReEncrypt,
            &[(&src, Some(source_ctx)), (&dst, Some(dest_ctx))],
        )?;
        let r = RawProvider::re_encrypt(self, caller, blob, source_ctx, dest_key, dest_ctx).await;
        let detail = src.key.as_ref().map(|k| format!("source key {k}"));
        self.finish(
            caller,
            Action::ReEncrypt,
            dst.key.as_ref(),
            Some(dest_ctx),
            r,
            |e| Some((&e.key_id, &e.key_version_id)),
            detail,
        )
    }

    async fn generate_data_key(
        &self,
        caller: &Caller,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<GeneratedDataKey> {
        self.keyed_call(
            caller,
            Action::GenerateDataKey,
            key,
            Some(ctx),
            None,
            RawProvider::generate_data_key(self, caller, key, len, ctx),
            |g| Some((&g.key_id, &g.key_version_id)),
        )
        .await
    }

    async fn generate_data_key_without_plaintext(
        &self,
        caller: &Caller,
        key: &KeyRef,
        len: DataKeyLength,
        ctx: &EncryptionContext,
    ) -> Result<Encrypted> {
        self.keyed_call(
            caller,
            Action::GenerateDataKeyWithoutPlaintext,
            key,
            Some(ctx),
            None,
            RawProvider::generate_data_key_without_plaintext(self, caller, key, len, ctx),
            |e| Some((&e.key_id, &e.key_version_id)),
        )
        .await
    }

    async fn list_key_versions(
        &self,
        caller: &Caller,
        key: &KeyRef,
        page: PageRequest,
    ) -> Result<Page<KeyVersion>> {
        self.keyed_call(
            caller,
            Action::ListKeyVersions,
            key,
            None,
            None,
            RawProvider::list_key_versions(self, caller, key, page),
            |_| None,
        )
        .await
    }

    async fn describe_key_version(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
    ) -> Result<KeyVersion> {
        self.keyed_call(
            caller,
            Action::DescribeKeyVersion,
            key,
            None,
            None,
            RawProvider::describe_key_version(self, caller, key, version),
            |v| Some((&v.key_id, &v.key_version_id)),
        )
        .await
    }

    async fn tag_resource(&self, caller: &Caller, key: &KeyRef, tags: &[Tag]) -> Result<()> {
        self.managed(caller, PendingOp::TagResource(key.clone(), tags.to_vec()))
            .await
    }

    async fn untag_resource(&self, caller: &Caller, key: &KeyRef, tag_keys: &[String]) -> Result<()> {
        self.managed(caller, PendingOp::UntagResource(key.clone(), tag_keys.to_vec()))
            .await
    }

    async fn list_resource_tags(&self, caller: &Caller, key: &KeyRef) -> Result<Vec<Tag>> {
        self.keyed_call(
            caller,
            Action::ListResourceTags,
            key,
            None,
            None,
            RawProvider::list_resource_tags(self, caller, key),
            |_| None,
        )
        .await
    }

    async fn asymmetric_sign(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        digest: &[u8],
    ) -> Result<Signed> {
        self.keyed_call(
            caller,
            Action::AsymmetricSign,
            key,
            None,
            Some(algorithm.as_str()),
            async { self.raw_asymmetric_sign(key, version, algorithm, digest) },
            |s| Some((&s.key_id, &s.key_version_id)),
        )
        .await
    }

    async fn asymmetric_verify(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        digest: &[u8],
        signature: &[u8],
    ) -> Result<Verified> {
        self.keyed_call(
            caller,
            Action::AsymmetricVerify,
            key,
            None,
            Some(algorithm.as_str()),
            async { self.raw_asymmetric_verify(key, version, algorithm, digest, signature) },
            |v| Some((&v.key_id, &v.key_version_id)),
        )
        .await
    }

    async fn asymmetric_encrypt(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        plaintext: &[u8],
    ) -> Result<AsymmetricEncrypted> {
        self.keyed_call(
            caller,
            Action::AsymmetricEncrypt,
            key,
            None,
            Some(algorithm.as_str()),
            async { self.raw_asymmetric_encrypt(key, version, algorithm, plaintext) },
            |e| Some((&e.key_id, &e.key_version_id)),
        )
        .await
    }

    async fn asymmetric_decrypt(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
        algorithm: AsymmetricAlgorithm,
        ciphertext: &[u8],
    ) -> Result<Decrypted> {
        self.keyed_call(
            caller,
            Action::AsymmetricDecrypt,
            key,
            None,
            Some(algorithm.as_str()),
            async { self.raw_asymmetric_decrypt(key, version, algorithm, ciphertext) },
            |d| Some((&d.key_id, &d.key_version_id)),
        )
        .await
    }

    async fn get_public_key(
        &self,
        caller: &Caller,
        key: &KeyRef,
        version: &KeyVersionId,
    ) -> Result<PublicKey> {
        self.keyed_call(
            caller,
            Action::GetPublicKey,
            key,
            None,
            None,
            async { self.raw_get_public_key(key, version) },
            |p| Some((&p.key_id, &p.key_version_id)),
        )
        .await
    }
}
