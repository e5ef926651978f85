//! The envelope case: [`EnvelopeEncryptor`](crate::envelope::EnvelopeEncryptor) over the provider.

use std::sync::Arc;

use crate::envelope::{CacheLimits, DataKeyCache, EnvelopeEncryptor};
use crate::error::ErrorCode;

use super::Fixture;
use super::support::{by_id, create, ctx, err, ok, pattern};

/// Seal and open through the provider at several sizes (empty, one byte, over the Encrypt limit, 1 MiB);
/// a wrong context, a flipped bit anywhere and truncation are refused; with a cache, one data key
/// serves several envelopes of one context but never another context; envelopes still open after the
/// key is rotated (when the fixture has a rotator).
///
/// # Panics
/// When the provider does not conform.
pub async fn envelope(fx: &Fixture) {
    let p = fx.provider().clone();
    let key = create(fx, "envelope").await;
    let k = by_id(&key.key_id);
    let c = ctx([("case", "envelope")]);
    let plain = EnvelopeEncryptor::new(p.clone());
    for len in [0usize, 1, fx.capabilities().max_plaintext + 1, 1 << 20] {
        let pt = pattern(len, 3);
        let sealed = ok(
            plain.seal(&fx.caller(), &k, &pt, &c).await,
            format_args!("seal {len} bytes"),
        );
        let back = ok(
            plain.open(&fx.caller(), &sealed, &c).await,
            format_args!("open {len} bytes"),
        );
        assert!(back[..] == pt[..], "envelope round trip of {len} bytes");
    }
    let sealed = ok(
        plain.seal(&fx.caller(), &k, b"bound to a context", &c).await,
        "seal",
    );
    err(
        plain.open(&fx.caller(), &sealed, &ctx([("case", "other")])).await,
        ErrorCode::InvalidParameter,
        "open with a wrong context",
    );
    // Every bit of the header, and some of the body, flipped; every truncation.
    let header_len = sealed.len() - b"bound to a context".len() - crate::crypto::TAG_LEN;
    for bit in (0..header_len * 8)
        .chain(header_len * 8..sealed.len() * 8)
        .step_by(7)
    {
        let mut bad = sealed.clone();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            plain.open(&fx.caller(), &bad, &c).await.is_err(),
            "bit {bit} flipped was accepted"
        );
    }
    for cut in 0..sealed.len() {
        assert!(
            plain.open(&fx.caller(), &sealed[..cut], &c).await.is_err(),
            "truncated to {cut} accepted"
        );
    }

    let cache = Arc::new(DataKeyCache::new(CacheLimits::new().max_messages(3)));
    let cached = EnvelopeEncryptor::new(p.clone()).with_cache(cache.clone());
    let mut envs = Vec::new();
    for i in 0..4u8 {
        envs.push(ok(
            cached.seal(&fx.caller(), &k, &[i; 10], &c).await,
            "cached seal",
        ));
    }
    let other = ctx([("case", "envelope"), ("tenant", "b")]);
    envs.push(ok(
        cached.seal(&fx.caller(), &k, &[9; 10], &other).await,
        "cached seal, another context",
    ));
    let s = cache.stats();
    assert_eq!(
        (s.encrypt_hits, s.encrypt_misses),
        (2, 3),
        "3 messages per data key; a new context misses: {s:?}"
    );
    for (i, e) in envs.iter().enumerate().take(4) {
        let back = ok(cached.open(&fx.caller(), e, &c).await, "cached open");
        assert_eq!(&back[..], &[i as u8; 10]);
    }
    err(
        cached.open(&fx.caller(), &envs[4], &c).await,
        ErrorCode::InvalidParameter,
        "cached open, wrong context",
    );
    assert_eq!(
        &ok(cached.open(&fx.caller(), &envs[4], &other).await, "open")[..],
        &[9u8; 10]
    );

    if let Some(rot) = fx.rotator() {
        ok(rot.rotate(&fx.caller(), &k).await, "rotate");
        let back = ok(plain.open(&fx.caller(), &sealed, &c).await, "open after rotation");
        assert_eq!(&back[..], b"bound to a context");
    }
}
