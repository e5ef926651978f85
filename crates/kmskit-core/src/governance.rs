//! [`Governance`]: what the engine enforces and records around every call — the policies, the audit
//! log, quotas, dual control and usage counters — bundled so `Kms<S>` carries one value
//! ([`KmsConfig::governance`](crate::KmsConfig::governance)).
//!
//! The default bundle changes nothing: no policy is enforced (every caller may do everything, as a
//! single-tenant embedding expects), nothing is audited, no quota applies, nothing waits for approval.
//! Usage is always counted.
//!
//! ```
//! use std::sync::Arc;
//! use kmskit_core::governance::{Governance, Quotas, DualControl};
//! use kmskit_core::policy::{PolicySet, Role};
//! use kmskit_core::audit::AuditLog;
//!
//! let policies = Arc::new(PolicySet::new());
//! policies.attach("alice", "admin", Role::SecurityAdmin.policy(&[]).unwrap());
//! let gov = Governance::new()
//!     .policies(policies)                       // from now on: no Allow, no call
//!     .audit(Arc::new(AuditLog::memory(10_000)))
//!     .quotas(Quotas::new().max_keys(100))
//!     .dual_control(DualControl::default());    // DisableKey etc. need a second principal
//! # let _ = gov;
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::audit::AuditLog;
use crate::clock::{DAY, Timestamp};
use crate::error::{Error, Result};
use crate::id::{AliasName, KeyId, KeyRef};
use crate::key::Tag;
use crate::policy::{Action, Policy, PolicySet};
use crate::provider::Caller;

/// Resource limits; `None` is unlimited.
///
/// Creations running at the same time hold a place each, so concurrent calls never overshoot a limit;
/// right at the limit a call racing with another creation may be refused a moment early.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Quotas {
    /// Live keys (not yet purged).
    pub max_keys: Option<u64>,
    /// Versions of one key.
    pub max_versions_per_key: Option<u64>,
    /// Aliases.
    pub max_aliases: Option<u64>,
}

impl Quotas {
    /// No limits.
    pub fn new() -> Self {
        Self::default()
    }

    /// Limits the number of live keys.
    #[must_use]
    pub fn max_keys(mut self, n: u64) -> Self {
        self.max_keys = Some(n);
        self
    }

    /// Limits versions per key.
    #[must_use]
    pub fn max_versions_per_key(mut self, n: u64) -> Self {
        self.max_versions_per_key = Some(n);
        self
    }

    /// Limits aliases.
    #[must_use]
    pub fn max_aliases(mut self, n: u64) -> Self {
        self.max_aliases = Some(n);
        self
    }

    fn check(limit: Option<u64>, have: u64, what: &str) -> Result<()> {
        match limit {
            Some(max) if have >= max => Err(Error::LimitExceeded(format!(
                "the {what} quota is {max} and {have} exist"
            ))),
            _ => Ok(()),
        }
    }

    /// Whether one more key fits next to `existing`.
    ///
    /// # Errors
    /// `Rejected.LimitExceeded`.
    pub fn check_keys(&self, existing: u64) -> Result<()> {
        Self::check(self.max_keys, existing, "key")
    }

    /// Whether one more version fits on a key that has `existing`.
    ///
    /// # Errors
    /// `Rejected.LimitExceeded`.
    pub fn check_versions(&self, existing: u64) -> Result<()> {
        Self::check(self.max_versions_per_key, existing, "versions-per-key")
    }

    /// Whether one more alias fits next to `existing`.
    ///
    /// # Errors
    /// `Rejected.LimitExceeded`.
    pub fn check_aliases(&self, existing: u64) -> Result<()> {
        Self::check(self.max_aliases, existing, "alias")
    }
}

/// Which actions need a second principal's approval, and for how long a request waits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DualControl {
    actions: BTreeSet<Action>,
    expiry_secs: u64,
}

impl Default for DualControl {
    /// ScheduleKeyDeletion, DisableKey, SetDeletionProtection when it turns protection off, and the
    /// policy changes (PutKeyPolicy, AttachPolicy, DetachPolicy); requests expire after 24 hours.
    fn default() -> Self {
        Self {
            actions: [
                Action::ScheduleKeyDeletion,
                Action::DisableKey,
                Action::SetDeletionProtection,
                Action::PutKeyPolicy,
                Action::AttachPolicy,
                Action::DetachPolicy,
            ]
            .into_iter()
            .collect(),
            expiry_secs: DAY,
        }
    }
}

/// The actions that can be held for approval (they carry no secrets to keep meanwhile).
pub const DUAL_CONTROL_ACTIONS: &[Action] = &[
    Action::EnableKey,
    Action::DisableKey,
    Action::ScheduleKeyDeletion,
    Action::CancelKeyDeletion,
    Action::UpdateKeyDescription,
    Action::SetDeletionProtection,
    Action::CreateAlias,
    Action::UpdateAlias,
    Action::DeleteAlias,
    Action::TagResource,
    Action::UntagResource,
    Action::PutKeyPolicy,
    Action::AttachPolicy,
    Action::DetachPolicy,
];

impl DualControl {
    /// No action held.
    pub fn none() -> Self {
        Self {
            actions: BTreeSet::new(),
            expiry_secs: DAY,
        }
    }

    /// Also holds `action`.
    ///
    /// # Errors
    /// `Rejected.UnsupportedOperation` for an action that cannot be held (one carrying plaintext).
    pub fn require(mut self, action: Action) -> Result<Self> {
        if !DUAL_CONTROL_ACTIONS.contains(&action) {
            return Err(Error::Unsupported(format!(
                "{action} cannot be put under dual control"
            )));
        }
        self.actions.insert(action);
        Ok(self)
    }

    /// Sets how long a request waits for approval (at least 1 second).
    #[must_use]
    pub fn expiry_secs(mut self, secs: u64) -> Self {
        self.expiry_secs = secs.max(1);
        self
    }

    /// Whether `op` must wait for approval.
    pub fn holds(&self, op: &PendingOp) -> bool {
        let a = op.action();
        self.actions.contains(&a) && !matches!(op, PendingOp::SetDeletionProtection { enabled: true, .. })
    }

    /// The expiry in seconds.
    pub fn expiry(&self) -> u64 {
        self.expiry_secs
    }
}

/// A request held for approval, with everything needed to run it later.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PendingOp {
    /// EnableKey.
    EnableKey(KeyRef),
    /// DisableKey.
    DisableKey(KeyRef),
    /// ScheduleKeyDeletion.
    ScheduleKeyDeletion(KeyRef, u32),
    /// CancelKeyDeletion.
    CancelKeyDeletion(KeyRef),
    /// UpdateKeyDescription.
    UpdateKeyDescription(KeyRef, String),
    /// SetDeletionProtection.
    SetDeletionProtection {
        /// The key.
        key: KeyRef,
        /// On or off.
        enabled: bool,
        /// The description.
        description: String,
    },
    /// CreateAlias.
    CreateAlias(AliasName, KeyRef),
    /// UpdateAlias.
    UpdateAlias(AliasName, KeyRef),
    /// DeleteAlias.
    DeleteAlias(AliasName),
    /// TagResource.
    TagResource(KeyRef, Vec<Tag>),
    /// UntagResource.
    UntagResource(KeyRef, Vec<String>),
    /// PutKeyPolicy (`None` removes it).
    PutKeyPolicy(KeyRef, Option<Policy>),
    /// AttachPolicy: principal, policy name, document.
    AttachPolicy(String, String, Policy),
    /// DetachPolicy: principal, policy name.
    DetachPolicy(String, String),
}

impl PendingOp {
    /// The action it performs.
    pub fn action(&self) -> Action {
        match self {
            PendingOp::EnableKey(_) => Action::EnableKey,
            PendingOp::DisableKey(_) => Action::DisableKey,
            PendingOp::ScheduleKeyDeletion(..) => Action::ScheduleKeyDeletion,
            PendingOp::CancelKeyDeletion(_) => Action::CancelKeyDeletion,
            PendingOp::UpdateKeyDescription(..) => Action::UpdateKeyDescription,
            PendingOp::SetDeletionProtection { .. } => Action::SetDeletionProtection,
            PendingOp::CreateAlias(..) => Action::CreateAlias,
            PendingOp::UpdateAlias(..) => Action::UpdateAlias,
            PendingOp::DeleteAlias(_) => Action::DeleteAlias,
            PendingOp::TagResource(..) => Action::TagResource,
            PendingOp::UntagResource(..) => Action::UntagResource,
            PendingOp::PutKeyPolicy(..) => Action::PutKeyPolicy,
            PendingOp::AttachPolicy(..) => Action::AttachPolicy,
            PendingOp::DetachPolicy(..) => Action::DetachPolicy,
        }
    }
}

/// A request waiting for approval.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PendingApproval {
    /// Its id (give it to the approver).
    pub id: String,
    /// What it will do.
    pub op: PendingOp,
    /// Who asked.
    pub requester: Caller,
    /// When it was asked.
    pub requested_at: Timestamp,
    /// After this it can no longer be approved.
    pub expires_at: Timestamp,
}

/// Prices for the cost report, in yuan (CNY). Defaults: the model's published ¥0.1 per 10,000 API
/// calls and ¥15 per key per month.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prices {
    /// Yuan per 10,000 calls.
    pub per_10k_calls: f64,
    /// Yuan per key-month (a month is 30 days).
    pub per_key_month: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            per_10k_calls: 0.1,
            per_key_month: 15.0,
        }
    }
}

impl Prices {
    /// Sets both prices.
    pub fn new(per_10k_calls: f64, per_key_month: f64) -> Self {
        Self {
            per_10k_calls,
            per_key_month,
        }
    }
}

/// One row of the usage counters.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageRow {
    /// The key (`None` for account-level calls such as ListKeys).
    pub key_id: Option<String>,
    /// The action.
    pub action: Action,
    /// Calls counted (authorized calls, successful or not).
    pub calls: u64,
}

/// Usage and cost over a period.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq)]
pub struct UsageReport {
    /// From.
    pub from: Timestamp,
    /// To.
    pub to: Timestamp,
    /// Calls per key and action since the engine started, in key then action order.
    pub rows: Vec<UsageRow>,
    /// All calls counted.
    pub total_calls: u64,
    /// Key-months in `[from, to]` (each key from creation to purge, 30-day months).
    pub key_months: f64,
    /// Yuan for the calls.
    pub calls_cost: f64,
    /// Yuan for the key-months.
    pub keys_cost: f64,
    /// The prices used.
    pub prices: Prices,
}

impl UsageReport {
    /// The total in yuan.
    pub fn total_cost(&self) -> f64 {
        self.calls_cost + self.keys_cost
    }
}

impl fmt::Display for UsageReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "usage {} .. {}", self.from, self.to)?;
        for r in &self.rows {
            writeln!(
                f,
                "  {:<38} {:<32} {:>10}",
                r.key_id.as_deref().unwrap_or("-"),
                r.action.name(),
                r.calls
            )?;
        }
        writeln!(
            f,
            "calls: {} (¥{:.4})  key-months: {:.3} (¥{:.2})  total: ¥{:.2}",
            self.total_calls,
            self.calls_cost,
            self.key_months,
            self.keys_cost,
            self.total_cost()
        )
    }
}

const N_ACTIONS: usize = Action::ALL.len();

/// Call counters: one row of per-action counts per key, and one for account-level calls.
#[derive(Debug)]
struct Usage {
    keys: HashMap<KeyId, [u64; N_ACTIONS]>,
    account: [u64; N_ACTIONS],
}

impl Default for Usage {
    fn default() -> Self {
        Self {
            keys: HashMap::new(),
            account: [0; N_ACTIONS],
        }
    }
}

/// The bundle the engine enforces and records around every call. See the module docs.
pub struct Governance {
    pub(crate) policies: Arc<PolicySet>,
    pub(crate) enforce: bool,
    pub(crate) trust_local: bool,
    pub(crate) audit: Option<Arc<AuditLog>>,
    pub(crate) quotas: Quotas,
    pub(crate) dual: Option<DualControl>,
    pub(crate) prices: Prices,
    usage: Mutex<Usage>,
    pending: Mutex<BTreeMap<String, PendingApproval>>,
    quota_lock: Mutex<()>,
    in_flight: [AtomicU64; 2],
    pub(crate) audit_failed: AtomicBool,
}

/// What a quota reservation is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum QuotaKind {
    Keys = 0,
    Aliases = 1,
}

/// A place held under a quota while the creating call runs; released on drop (the created resource
/// then counts by itself).
#[derive(Debug)]
pub(crate) struct Reservation<'a>(Option<&'a AtomicU64>);

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if let Some(n) = self.0 {
            n.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Default for Governance {
    fn default() -> Self {
        Self {
            policies: Arc::new(PolicySet::new()),
            enforce: false,
            trust_local: false,
            audit: None,
            quotas: Quotas::default(),
            dual: None,
            prices: Prices::default(),
            usage: Mutex::new(Usage::default()),
            pending: Mutex::new(BTreeMap::new()),
            quota_lock: Mutex::new(()),
            in_flight: [AtomicU64::new(0), AtomicU64::new(0)],
            audit_failed: AtomicBool::new(false),
        }
    }
}

impl fmt::Debug for Governance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Governance")
            .field("enforce", &self.enforce)
            .field("trust_local", &self.trust_local)
            .field("audit", &self.audit.is_some())
            .field("quotas", &self.quotas)
            .field("dual", &self.dual)
            .field("prices", &self.prices)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Governance {
    /// Nothing enforced, nothing audited.
    pub fn new() -> Self {
        Self::default()
    }

    /// Enforces `policies`: from now on a call needs an `Allow` and no `Deny`.
    #[must_use]
    pub fn policies(mut self, policies: Arc<PolicySet>) -> Self {
        self.policies = policies;
        self.enforce = true;
        self
    }

    /// Turns enforcement on or off (off: every caller may do everything).
    #[must_use]
    pub fn enforce(mut self, on: bool) -> Self {
        self.enforce = on;
        self
    }

    /// While enforcing, lets the trusted local caller ([`Caller::local`], principal `local`) bypass
    /// policies. Off by default: turn it on only where no request can claim that principal.
    #[must_use]
    pub fn trust_local(mut self, on: bool) -> Self {
        self.trust_local = on;
        self
    }

    /// Records every call in `log`.
    #[must_use]
    pub fn audit(mut self, log: Arc<AuditLog>) -> Self {
        self.audit = Some(log);
        self
    }

    /// Applies `quotas`.
    #[must_use]
    pub fn quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = quotas;
        self
    }

    /// Holds the actions of `dual` for approval.
    #[must_use]
    pub fn dual_control(mut self, dual: DualControl) -> Self {
        self.dual = Some(dual);
        self
    }

    /// Sets the prices of the cost report.
    #[must_use]
    pub fn prices(mut self, prices: Prices) -> Self {
        self.prices = prices;
        self
    }

    /// The policies.
    pub fn policy_set(&self) -> &Arc<PolicySet> {
        &self.policies
    }

    /// The audit log, when auditing.
    pub fn audit_log(&self) -> Option<&Arc<AuditLog>> {
        self.audit.as_ref()
    }

    /// The quotas.
    pub fn quota_limits(&self) -> Quotas {
        self.quotas
    }

    /// Whether policies are enforced.
    pub fn is_enforcing(&self) -> bool {
        self.enforce
    }

    pub(crate) fn count(&self, key: Option<&KeyId>, action: Action) {
        let i = action as usize;
        let mut u = lock(&self.usage);
        match key {
            None => u.account[i] += 1,
            Some(k) => match u.keys.get_mut(k) {
                Some(row) => row[i] += 1,
                None => {
                    let mut row = [0; N_ACTIONS];
                    row[i] = 1;
                    u.keys.insert(k.clone(), row);
                }
            },
        }
    }

    pub(crate) fn usage_rows(&self) -> Vec<UsageRow> {
        let u = lock(&self.usage);
        let mut rows = Vec::new();
        let mut push = |key: Option<&KeyId>, row: &[u64; N_ACTIONS]| {
            for (i, n) in row.iter().enumerate() {
                if *n > 0 {
                    rows.push(UsageRow {
                        key_id: key.map(ToString::to_string),
                        action: Action::ALL[i],
                        calls: *n,
                    });
                }
            }
        };
        push(None, &u.account);
        for (k, row) in &u.keys {
            push(Some(k), row);
        }
        rows.sort_by(|a, b| (&a.key_id, a.action).cmp(&(&b.key_id, b.action)));
        rows
    }

    pub(crate) fn hold(&self, op: PendingOp, requester: &Caller, now: Timestamp) -> Option<PendingApproval> {
        let dual = self.dual.as_ref()?;
        if !dual.holds(&op) {
            return None;
        }
        let p = PendingApproval {
            id: format!("approval-{}", KeyId::generate()),
            op,
            requester: requester.clone(),
            requested_at: now,
            expires_at: now.plus_secs(dual.expiry()),
        };
        lock(&self.pending).insert(p.id.clone(), p.clone());
        Some(p)
    }

    pub(crate) fn take_pending(&self, id: &str) -> Option<PendingApproval> {
        lock(&self.pending).remove(id)
    }

    pub(crate) fn put_back(&self, p: PendingApproval) {
        lock(&self.pending).insert(p.id.clone(), p);
    }

    /// Requests waiting for approval (expired ones are dropped first).
    pub fn pending_approvals(&self, now: Timestamp) -> Vec<PendingApproval> {
        let mut m = lock(&self.pending);
        m.retain(|_, p| p.expires_at >= now);
        m.values().cloned().collect()
    }

    pub(crate) fn cost(&self, calls: u64, key_months: f64) -> (f64, f64) {
        (
            calls as f64 / 10_000.0 * self.prices.per_10k_calls,
            key_months * self.prices.per_key_month,
        )
    }

    /// Holds one place under the quota of `kind`, given how many exist now. Creations running at the
    /// same time count too, so concurrent calls cannot overshoot the limit.
    pub(crate) fn reserve(&self, kind: QuotaKind, existing: impl FnOnce() -> u64) -> Result<Reservation<'_>> {
        let limit = match kind {
            QuotaKind::Keys => self.quotas.max_keys,
            QuotaKind::Aliases => self.quotas.max_aliases,
        };
        if limit.is_none() {
            return Ok(Reservation(None));
        }
        let _g = lock(&self.quota_lock);
        let n = &self.in_flight[kind as usize];
        let have = existing() + n.load(Ordering::SeqCst);
        match kind {
            QuotaKind::Keys => self.quotas.check_keys(have)?,
            QuotaKind::Aliases => self.quotas.check_aliases(have)?,
        }
        n.fetch_add(1, Ordering::SeqCst);
        Ok(Reservation(Some(n)))
    }

    pub(crate) fn audit_failed(&self) -> bool {
        self.audit_failed.load(Ordering::Relaxed)
    }
}
