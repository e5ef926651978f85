//! The retry policy every remote provider shares: jittered exponential backoff on throttling, 5xx and
//! transport failures, never on a 4xx answer; and the bound on requests in flight.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use kmskit_core::Error;
use rand_core::{OsRng, RngCore};
use tokio::sync::Semaphore;

/// How a remote provider retries a failed call.
///
/// Attempt `n` (from 1) that fails with a retryable error waits a random time in
/// `[0, min(max_backoff, initial_backoff · 2^(n-1))]` ("full jitter") before attempt `n + 1`. Only
/// throttling answers, 5xx answers and transport failures (connect errors, timeouts) are retried; a 4xx
/// answer is returned at once.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, including the first (at least 1).
    pub max_attempts: u32,
    /// The backoff cap for the first retry.
    pub initial_backoff: Duration,
    /// The largest backoff.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl RetryPolicy {
    /// A policy with `max_attempts` attempts (at least 1) and the default backoff.
    pub fn new(max_attempts: u32) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            ..Self::default()
        }
    }

    /// No retries: one attempt.
    pub fn none() -> Self {
        Self::new(1)
    }

    /// Sets the backoff bounds.
    #[must_use]
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// The jittered wait after failed attempt `attempt` (from 1).
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let cap = self
            .initial_backoff
            .saturating_mul(1u32 << exp)
            .min(self.max_backoff);
        let cap_us = u64::try_from(cap.as_micros()).unwrap_or(u64::MAX);
        if cap_us == 0 {
            return Duration::ZERO;
        }
        Duration::from_micros(OsRng.next_u64() % (cap_us + 1))
    }
}

/// One failed attempt: the error, and whether the same call may be tried again.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) error: Error,
    pub(crate) retryable: bool,
}

impl Failure {
    /// A failure that is not retried.
    pub(crate) fn fatal(error: Error) -> Self {
        Self {
            error,
            retryable: false,
        }
    }
}

/// Retries and the in-flight bound, shared by the clones of one provider.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    pub(crate) policy: RetryPolicy,
    permits: Arc<Semaphore>,
}

impl Transport {
    pub(crate) fn new(policy: RetryPolicy, max_in_flight: usize) -> Self {
        Self {
            policy,
            permits: Arc::new(Semaphore::new(max_in_flight.max(1))),
        }
    }

    /// Runs `call` under the in-flight bound, retrying per the policy.
    pub(crate) async fn run<T, F, Fut>(&self, mut call: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Failure>>,
    {
        let mut attempt = 1;
        loop {
            let result = {
                let _permit = self
                    .permits
                    .acquire()
                    .await
                    .map_err(|_| Error::Internal("the connection bound was closed".into()))?;
                call().await
            };
            match result {
                Ok(v) => return Ok(v),
                Err(f) if f.retryable && attempt < self.policy.max_attempts => {
                    tokio::time::sleep(self.policy.backoff(attempt)).await;
                    attempt += 1;
                }
                Err(f) => return Err(f.error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_bounded_and_grows() {
        let p = RetryPolicy::new(5).with_backoff(Duration::from_millis(10), Duration::from_millis(35));
        for _ in 0..100 {
            assert!(p.backoff(1) <= Duration::from_millis(10));
            assert!(p.backoff(2) <= Duration::from_millis(20));
            assert!(p.backoff(3) <= Duration::from_millis(35));
            assert!(p.backoff(30) <= Duration::from_millis(35));
        }
        assert_eq!(RetryPolicy::new(0).max_attempts, 1);
    }
}
