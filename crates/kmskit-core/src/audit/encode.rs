//! The `kmskit-audit-v1` encoding of an event: what its chain hash covers, and what the engine hands a
//! sink that does not need an owned [`AuditEvent`] (the file sink copies it to its writer thread, which
//! decodes it and writes JSON there, so an audited call allocates nothing for its event).
//!
//! Layout: `"kmskit-audit-v1\0"`, the previous hash (32 bytes), seq and time (u64 BE), then action,
//! principal, source address (tag 0, 4 + 4 bytes or 6 + 16 bytes), request id, key id?, version id?,
//! outcome, code, the context key count (u32 BE) and keys, detail?; a string is a u32 BE length and its
//! bytes, an optional one a 0 byte or a 1 byte and the string.

use std::borrow::Cow;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, OnceLock};

use sha2::{Digest, Sha256};

use super::{AuditEvent, Outcome};
use crate::clock::Timestamp;
use crate::context::EncryptionContext;
use crate::error::{Error, Result};

const MAGIC: &[u8; 16] = b"kmskit-audit-v1\0";

/// The names of an event's encryption-context entries, borrowed from where they are.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Keys<'a> {
    List(&'a [String]),
    Context(&'a EncryptionContext),
}

impl Keys<'_> {
    fn len(&self) -> usize {
        match self {
            Keys::List(l) => l.len(),
            Keys::Context(c) => c.len(),
        }
    }

    fn for_each(&self, mut f: impl FnMut(&str)) {
        match self {
            Keys::List(l) => l.iter().for_each(|k| f(k)),
            Keys::Context(c) => c.iter().for_each(|(k, _)| f(k)),
        }
    }
}

/// An event's fields, borrowed from the call that caused it (nothing is copied to build one).
#[derive(Clone, Copy, Debug)]
pub(crate) struct EventRef<'a> {
    pub(crate) time: Timestamp,
    pub(crate) action: &'a str,
    pub(crate) principal: &'a str,
    pub(crate) source_ip: Option<IpAddr>,
    pub(crate) request_id: &'a str,
    pub(crate) key_id: Option<&'a str>,
    pub(crate) key_version_id: Option<&'a str>,
    pub(crate) outcome: Outcome,
    pub(crate) code: &'a str,
    pub(crate) context_keys: Keys<'a>,
    pub(crate) detail: Option<&'a str>,
}

impl<'a> EventRef<'a> {
    pub(crate) fn of(e: &'a AuditEvent) -> Self {
        Self {
            time: e.time,
            action: &e.action,
            principal: &e.principal,
            source_ip: e.source_ip,
            request_id: &e.request_id,
            key_id: e.key_id.as_deref(),
            key_version_id: e.key_version_id.as_deref(),
            outcome: e.outcome,
            code: &e.code,
            context_keys: Keys::List(&e.context_keys),
            detail: e.detail.as_deref(),
        }
    }

    fn to_event(self, seq: u64, prev_hash: [u8; 32], hash: [u8; 32]) -> AuditEvent {
        let mut context_keys = Vec::with_capacity(self.context_keys.len());
        self.context_keys.for_each(|k| context_keys.push(k.to_owned()));
        AuditEvent {
            seq,
            time: self.time,
            action: Cow::Owned(self.action.to_owned()),
            principal: self.principal.to_owned(),
            source_ip: self.source_ip,
            request_id: self.request_id.to_owned(),
            key_id: self.key_id.map(str::to_owned),
            key_version_id: self.key_version_id.map(str::to_owned),
            outcome: self.outcome,
            code: Cow::Owned(self.code.to_owned()),
            context_keys,
            detail: self.detail.map(str::to_owned),
            prev_hash,
            hash,
        }
    }
}

/// A byte buffer on the stack that moves to the heap only for an unusually large event.
pub(crate) struct Buf {
    stack: [u8; 512],
    len: usize,
    heap: Vec<u8>,
}

impl Buf {
    pub(crate) fn new() -> Self {
        Self {
            stack: [0; 512],
            len: 0,
            heap: Vec::new(),
        }
    }

    #[inline(always)]
    fn raw(&mut self, b: &[u8]) {
        let end = self.len + b.len();
        if self.heap.is_empty() && end <= self.stack.len() {
            self.stack[self.len..end].copy_from_slice(b);
            self.len = end;
        } else {
            if self.heap.is_empty() {
                self.heap.reserve(end.max(1024));
                self.heap.extend_from_slice(&self.stack[..self.len]);
            }
            self.heap.extend_from_slice(b);
            self.len = end;
        }
    }

    #[inline(always)]
    fn put(&mut self, field: &[u8]) {
        // Fields are bounded far below 4 GiB (names, ids, codes).
        self.raw(&(field.len() as u32).to_be_bytes());
        self.raw(field);
    }

    #[inline(always)]
    fn put_opt(&mut self, field: Option<&str>) {
        match field {
            None => self.raw(&[0]),
            Some(s) => {
                self.raw(&[1]);
                self.put(s.as_bytes());
            }
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        if self.heap.is_empty() {
            &self.stack[..self.len]
        } else {
            &self.heap
        }
    }
}

/// Encodes event `seq` chained to `prev` into `b`.
pub(crate) fn encode(b: &mut Buf, prev: &[u8; 32], seq: u64, e: &EventRef<'_>) {
    b.raw(MAGIC);
    b.raw(prev);
    b.raw(&seq.to_be_bytes());
    b.raw(&e.time.unix().to_be_bytes());
    b.put(e.action.as_bytes());
    b.put(e.principal.as_bytes());
    match e.source_ip {
        None => b.raw(&[0]),
        Some(IpAddr::V4(a)) => {
            b.raw(&[4]);
            b.raw(&a.octets());
        }
        Some(IpAddr::V6(a)) => {
            b.raw(&[6]);
            b.raw(&a.octets());
        }
    }
    b.put(e.request_id.as_bytes());
    b.put_opt(e.key_id);
    b.put_opt(e.key_version_id);
    b.put(e.outcome.as_str().as_bytes());
    b.put(e.code.as_bytes());
    b.raw(&(e.context_keys.len() as u32).to_be_bytes());
    e.context_keys.for_each(|k| b.put(k.as_bytes()));
    b.put_opt(e.detail);
}

/// SHA-256 of an encoding: the chain hash.
pub(crate) fn hash(encoded: &[u8]) -> [u8; 32] {
    Sha256::digest(encoded).into()
}

/// Reads an encoding back into an event with hash `hash`.
///
/// # Errors
/// `Internal` when `encoded` is not a `kmskit-audit-v1` encoding.
pub(crate) fn decode(encoded: &[u8], hash: [u8; 32]) -> Result<AuditEvent> {
    let bad = || Error::Internal("malformed kmskit-audit-v1 event encoding".into());
    let mut r = Reader(encoded);
    if r.take(16).ok_or_else(bad)? != MAGIC {
        return Err(bad());
    }
    let prev_hash: [u8; 32] = r.array().ok_or_else(bad)?;
    let seq = u64::from_be_bytes(r.array().ok_or_else(bad)?);
    let time = Timestamp::from_unix(u64::from_be_bytes(r.array().ok_or_else(bad)?));
    let action = r.string().ok_or_else(bad)?;
    let principal = r.string().ok_or_else(bad)?;
    let source_ip = match r.take(1).ok_or_else(bad)? {
        [0] => None,
        [4] => Some(IpAddr::V4(Ipv4Addr::from(r.array::<4>().ok_or_else(bad)?))),
        [6] => Some(IpAddr::V6(Ipv6Addr::from(r.array::<16>().ok_or_else(bad)?))),
        _ => return Err(bad()),
    };
    let request_id = r.string().ok_or_else(bad)?;
    let key_id = r.opt_string().ok_or_else(bad)?;
    let key_version_id = r.opt_string().ok_or_else(bad)?;
    let outcome = match r.string().ok_or_else(bad)?.as_str() {
        "Success" => Outcome::Success,
        "Denied" => Outcome::Denied,
        "Failed" => Outcome::Failed,
        "PendingApproval" => Outcome::PendingApproval,
        _ => return Err(bad()),
    };
    let code = r.string().ok_or_else(bad)?;
    let n = u32::from_be_bytes(r.array().ok_or_else(bad)?) as usize;
    let mut context_keys = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        context_keys.push(r.string().ok_or_else(bad)?);
    }
    let detail = r.opt_string().ok_or_else(bad)?;
    if !r.0.is_empty() {
        return Err(bad());
    }
    Ok(AuditEvent {
        seq,
        time,
        action: Cow::Owned(action),
        principal,
        source_ip,
        request_id,
        key_id,
        key_version_id,
        outcome,
        code: Cow::Owned(code),
        context_keys,
        detail,
        prev_hash,
        hash,
    })
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Some(a)
    }

    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    fn string(&mut self) -> Option<String> {
        let n = u32::from_be_bytes(self.array()?) as usize;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }

    fn opt_string(&mut self) -> Option<Option<String>> {
        match self.take(1)? {
            [0] => Some(None),
            [1] => self.string().map(Some),
            _ => None,
        }
    }
}

/// A chained event as [`AuditLog`](super::AuditLog) hands it to its sinks: sequence number, time, hash
/// and the `kmskit-audit-v1` encoding, with the fields still borrowed from the call. A sink that keeps
/// events takes [`to_event`](Self::to_event) (built once, shared by every sink that asks).
pub struct Chained<'a> {
    pub(crate) seq: u64,
    pub(crate) prev_hash: [u8; 32],
    pub(crate) hash: [u8; 32],
    pub(crate) encoded: &'a [u8],
    pub(crate) fields: &'a EventRef<'a>,
    pub(crate) owned: OnceLock<Arc<AuditEvent>>,
}

impl std::fmt::Debug for Chained<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chained")
            .field("seq", &self.seq)
            .field("action", &self.fields.action)
            .finish_non_exhaustive()
    }
}

impl Chained<'_> {
    /// Its sequence number.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// When it happened.
    pub fn time(&self) -> Timestamp {
        self.fields.time
    }

    /// Its chain hash.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The `kmskit-audit-v1` encoding its hash covers (it holds every field but the hash itself).
    pub fn encoded(&self) -> &[u8] {
        self.encoded
    }

    /// The event as stored, built on first use.
    pub fn to_event(&self) -> Arc<AuditEvent> {
        self.owned
            .get_or_init(|| Arc::new(self.fields.to_event(self.seq, self.prev_hash, self.hash)))
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decode_reverses_encode_and_rejects_damage() {
        let ctx = EncryptionContext::from_pairs([("table", "orders"), ("tenant", "t-1")]).expect("ctx");
        let long = "d".repeat(900);
        for (ip, detail) in [
            (None, None),
            (Some("10.1.2.3".parse().expect("ip")), Some("approved by bob")),
            (Some("2001:db8::1".parse().expect("ip")), Some(long.as_str())),
        ] {
            let e = EventRef {
                time: Timestamp::from_unix(1_780_000_000),
                action: "Encrypt",
                principal: "app",
                source_ip: ip,
                request_id: "req-1",
                key_id: Some("k-1"),
                key_version_id: None,
                outcome: Outcome::Denied,
                code: "Forbidden.NoPermission",
                context_keys: Keys::Context(&ctx),
                detail,
            };
            let mut b = Buf::new();
            encode(&mut b, &[7; 32], 42, &e);
            let h = hash(b.as_slice());
            let back = decode(b.as_slice(), h).expect("decodes");
            assert_eq!(back, e.to_event(42, [7; 32], h));
            assert_eq!(back.compute_hash(&[7; 32]), h);
            assert_eq!(back.context_keys, ["table", "tenant"]);
            // Every truncation and a trailing byte are refused, never a panic.
            let enc = b.as_slice();
            for n in 0..enc.len() {
                assert!(decode(&enc[..n], h).is_err(), "truncated to {n}");
            }
            let mut more = enc.to_vec();
            more.push(0);
            assert!(decode(&more, h).is_err());
        }
    }
}
