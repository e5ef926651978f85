//! `kmskit audit lookup|verify` and `kmskit usage`: read the keystore's hash-chained audit trail.
//!
//! Every command that opens the keystore records its calls in `<keystore>/audit` (see
//! [`keystore::open_audited`](crate::keystore::open_audited)). Reading the trail needs no root key: an
//! auditor can check it without being able to use a single key.

use std::collections::BTreeMap;
use std::path::Path;

use kmskit::audit::{AuditEvent, AuditQuery, FileSink, Outcome, verify};
use kmskit::clock::DAY;
use kmskit::{
    Caller, Clock, FileKms, KeyProvider, KeyRef, ListKeys, PageRequest, SystemClock, Timestamp, block_on,
};
use serde_json::{Value, json};

use crate::cli::{AuditCommand, UsageArgs};
use crate::error::CliError;
use crate::keystore::AUDIT_DIR;
use crate::output::Printer;

/// Seconds in the 30-day month the model service bills keys by.
const MONTH: f64 = 30.0 * DAY as f64;
/// Keys read at most for the usage report (100 pages of 100).
const MAX_KEY_PAGES: u32 = 100;

/// Runs `kmskit audit …` on the trail of the keystore in `keystore`.
pub(crate) fn audit(keystore: &Path, c: &AuditCommand, printer: &Printer) -> Result<(), CliError> {
    let dir = keystore.join(AUDIT_DIR);
    match c {
        AuditCommand::Lookup {
            actions,
            since,
            key,
            principal,
            limit,
        } => {
            let mut q = AuditQuery::new().actions(actions.iter().map(|a| a.trim().to_owned()));
            if let Some(s) = since {
                let now = SystemClock.now();
                q = q.between(
                    Timestamp::from_unix(now.unix().saturating_sub(parse_age(s)?)),
                    now,
                );
            }
            if let Some(k) = key {
                q = q.key(k.clone());
            }
            if let Some(p) = principal {
                q = q.principal(p.clone());
            }
            let mut found: Vec<AuditEvent> =
                read_events(&dir)?.into_iter().filter(|e| q.matches(e)).collect();
            let skip = found.len().saturating_sub(*limit);
            let items = found
                .drain(skip..)
                .map(|e| serde_json::to_value(&e).map_err(|e| CliError::new("Cli.Internal", e.to_string())))
                .collect::<Result<Vec<Value>, _>>()?;
            printer.list(
                items,
                &["Seq", "Time", "Action", "Principal", "KeyId", "Outcome", "Code"],
            )
        }
        AuditCommand::Verify => {
            let records = FileSink::read_dir(&dir)?;
            match verify(&records) {
                Ok(report) => {
                    let (first, last) = report.range.unwrap_or((0, 0));
                    printer.object(json!({
                        "Verified": true,
                        "Events": report.events,
                        "FirstSeq": first,
                        "LastSeq": last,
                        "HeadHash": hex(&report.head.hash),
                    }))
                }
                Err(broken) => Err(CliError::new("Audit.ChainBroken", broken.to_string())),
            }
        }
    }
}

/// Runs `kmskit usage`: calls per key and action from the trail, key-months from the keystore's keys.
pub(crate) fn usage(
    kms: &FileKms,
    keystore: &Path,
    a: &UsageArgs,
    printer: &Printer,
) -> Result<(), CliError> {
    for (name, p) in [
        ("--price-per-10k-calls", a.price_per_10k_calls),
        ("--price-per-key-month", a.price_per_key_month),
    ] {
        if !p.is_finite() || p < 0.0 {
            return Err(CliError::usage(format!(
                "{name} {p}: expected a price of 0 or more"
            )));
        }
    }
    let now = SystemClock.now();
    let period = parse_age(&a.since)?;
    let from = Timestamp::from_unix(now.unix().saturating_sub(period));

    // Billable calls: authorized ones (succeeded or failed), not the engine's own work.
    let mut calls: BTreeMap<(String, String), u64> = BTreeMap::new();
    for e in read_events(&keystore.join(AUDIT_DIR))? {
        if e.time < from || e.time > now || !matches!(e.outcome, Outcome::Success | Outcome::Failed) {
            continue;
        }
        if e.principal.starts_with("kmskit:") {
            continue;
        }
        let k = e.key_id.clone().unwrap_or_else(|| "-".to_owned());
        *calls.entry((k, e.action.to_string())).or_default() += 1;
    }
    let total_calls: u64 = calls.values().sum();

    // Key-months: each key from max(creation, from) to now.
    let caller = Caller::local();
    let mut key_secs = 0u64;
    let mut keys = 0u64;
    for page in 1..=MAX_KEY_PAGES {
        let p = block_on(kms.list_keys(&caller, ListKeys::new(PageRequest::new(page, 100)?)))?;
        let n = p.items.len();
        for k in p.items {
            let meta = block_on(kms.describe_key(&caller, &KeyRef::Id(k.key_id)))?;
            let start = meta.creation_date.max(from);
            key_secs += now.unix().saturating_sub(start.unix());
            keys += 1;
        }
        if n < 100 || keys >= p.total_count {
            break;
        }
    }
    let key_months = key_secs as f64 / MONTH;
    let calls_cost = total_calls as f64 / 10_000.0 * a.price_per_10k_calls;
    let keys_cost = key_months * a.price_per_key_month;
    let total = calls_cost + keys_cost;
    let per_month = if period == 0 {
        0.0
    } else {
        total * MONTH / period as f64
    };

    let rows: Vec<Value> = calls
        .into_iter()
        .map(|((k, action), n)| json!({"KeyId": k, "Action": action, "Calls": n}))
        .collect();
    printer.object(json!({
        "From": from.to_string(),
        "To": now.to_string(),
        "Calls": rows,
        "TotalCalls": total_calls,
        "Keys": keys,
        "KeyMonths": round(key_months, 4),
        "CallsCost": round(calls_cost, 4),
        "KeysCost": round(keys_cost, 2),
        "TotalCost": round(total, 2),
        "EstimatedMonthlyCost": round(per_month, 2),
        "Currency": "CNY",
    }))
}

/// The readable events of the trail in `dir` (an unreadable line is reported by `audit verify`).
fn read_events(dir: &Path) -> Result<Vec<AuditEvent>, CliError> {
    if !dir.exists() {
        return Ok(Vec::new());
    }
    Ok(FileSink::read_dir(dir)?
        .events
        .into_iter()
        .filter_map(|(_, e)| e.ok())
        .collect())
}

/// `<number><w|d|h|m|s>` as seconds.
fn parse_age(s: &str) -> Result<u64, CliError> {
    let bad = || CliError::usage(format!("{s:?}: expected an age such as 30d, 12h, 2w, 90m or 45s"));
    let s = s.trim();
    let unit = s.chars().last().ok_or_else(bad)?;
    let mult = match unit {
        'w' => 7 * DAY,
        'd' => DAY,
        'h' => 3600,
        'm' => 60,
        's' => 1,
        _ => return Err(bad()),
    };
    let num = &s[..s.len() - 1];
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(bad)
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("1d").unwrap(), DAY);
        assert_eq!(parse_age("2w").unwrap(), 14 * DAY);
        assert_eq!(parse_age("90m").unwrap(), 5400);
        for bad in ["", "d", "1", "1y", "-1d", "1.5d", "99999999999999999999d"] {
            assert!(parse_age(bad).is_err(), "{bad}");
        }
    }
}
