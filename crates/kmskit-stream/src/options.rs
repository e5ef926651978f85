//! [`Options`]: suite, chunk size, AEAD engine and worker count.

use std::fmt;

use kmskit_core::crypto::{AeadEngine, Algorithm, default_engine};

use crate::error::{Result, StreamError};
use crate::format::{DEFAULT_CHUNK_LOG2, MAX_CHUNK_LOG2, MIN_CHUNK_LOG2, SALT_LEN};

/// How to write (and, for the engine and workers, read) a stream.
///
/// Defaults: AES-256-GCM, 64 KiB chunks, the default AEAD engine, one worker per available core.
/// Decryption takes suite and chunk size from the header and ignores them here.
#[derive(Clone, Copy)]
pub struct Options {
    pub(crate) algorithm: Algorithm,
    pub(crate) chunk_log2: u8,
    pub(crate) engine: &'static dyn AeadEngine,
    pub(crate) workers: usize,
    pub(crate) fixed_salt: Option<[u8; SALT_LEN]>,
}

impl fmt::Debug for Options {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Options")
            .field("algorithm", &self.algorithm)
            .field("chunk_size", &self.chunk_size_bytes())
            .field("engine", &self.engine.name())
            .field("workers", &self.workers)
            .field("fixed_salt", &self.fixed_salt.is_some())
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Self {
            algorithm: Algorithm::Aes256Gcm,
            chunk_log2: DEFAULT_CHUNK_LOG2,
            engine: default_engine(),
            workers: default_workers(),
            fixed_salt: None,
        }
    }
}

/// The number of available cores (at least 1).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

impl Options {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the AEAD suite (AES-256-GCM or ChaCha20-Poly1305).
    #[must_use]
    pub fn algorithm(mut self, algorithm: Algorithm) -> Self {
        self.algorithm = algorithm;
        self
    }

    /// Sets the chunk size: a power of two from 4 KiB to 16 MiB.
    ///
    /// # Errors
    /// [`StreamError::InvalidArgument`] for any other size.
    pub fn chunk_size(mut self, bytes: usize) -> Result<Self> {
        if !bytes.is_power_of_two() {
            return Err(StreamError::InvalidArgument(
                "chunk size must be a power of two".into(),
            ));
        }
        let log2 = bytes.trailing_zeros();
        if !(u32::from(MIN_CHUNK_LOG2)..=u32::from(MAX_CHUNK_LOG2)).contains(&log2) {
            return Err(StreamError::InvalidArgument(
                "chunk size must be from 4 KiB to 16 MiB".into(),
            ));
        }
        self.chunk_log2 = log2 as u8;
        Ok(self)
    }

    /// Sets the AEAD engine (all engines produce identical bytes).
    #[must_use]
    pub fn engine(mut self, engine: &'static dyn AeadEngine) -> Self {
        self.engine = engine;
        self
    }

    /// Sets the number of worker threads for the parallel paths (at least 1; 1 means serial).
    #[must_use]
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Uses a fixed salt instead of a random one. **Hazmat**: reusing a salt with the same data key
    /// reuses nonces. For reproducible test vectors only.
    #[cfg(feature = "hazmat")]
    #[must_use]
    pub fn fixed_salt_for_test_vectors(mut self, salt: [u8; SALT_LEN]) -> Self {
        self.fixed_salt = Some(salt);
        self
    }

    /// The configured chunk size in bytes.
    pub fn chunk_size_bytes(&self) -> usize {
        1 << self.chunk_log2
    }

    /// The configured worker count.
    pub fn worker_count(&self) -> usize {
        self.workers
    }

    pub(crate) fn salt(&self) -> [u8; SALT_LEN] {
        self.fixed_salt.unwrap_or_else(|| {
            let mut s = [0u8; SALT_LEN];
            kmskit_core::rand::fill(&mut s);
            s
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_size_limits() {
        assert!(Options::new().chunk_size(4096).is_ok());
        assert!(Options::new().chunk_size(16 << 20).is_ok());
        assert!(Options::new().chunk_size(2048).is_err());
        assert!(Options::new().chunk_size(32 << 20).is_err());
        assert!(Options::new().chunk_size(5000).is_err());
        assert_eq!(Options::new().chunk_size_bytes(), 65536);
        assert_eq!(Options::new().workers(0).worker_count(), 1);
    }
}
