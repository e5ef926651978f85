//! Remote [`KeyProvider`](kmskit_core::KeyProvider)s for kmskit: keys in a real KMS behind the same
//! trait as the local engines, so `Envelope`, the data-key cache and the stream crate work unchanged.
//!
//! - [`AliyunKms`] (feature `aliyun`): Alibaba Cloud KMS, or a kmskit-server, over the RPC API with V2
//!   (HMAC-SHA1) signatures from kmskit-server's shared `sign` module.
//! - [`AwsKms`] (feature `aws`): AWS KMS through the official `aws-sdk-kms` crate.
//!
//! Every provider retries throttling, 5xx answers and transport failures with jittered exponential
//! backoff ([`RetryPolicy`]), never a 4xx; bounds its requests in flight (and so its pooled
//! connections); has connect and read timeouts; and maps the service's errors to kmskit's codes,
//! keeping the remote code in the message ([`kmskit_core::Error::Remote`]).
//!
//! ```no_run
//! # #[cfg(feature = "aws")]
//! # async fn demo() -> kmskit_core::Result<()> {
//! use std::time::Duration;
//!
//! use kmskit_core::{Caller, CreateKey, EncryptionContext, Envelope, KeyProvider, KeyRef};
//! use kmskit_remote::{AwsKms, RetryPolicy};
//!
//! let kms = AwsKms::builder()
//!     .region("us-east-1")
//!     .read_timeout(Duration::from_secs(10))
//!     .retry(RetryPolicy::new(5))
//!     .build()
//!     .await;
//! let key = kms.create_key(&Caller::local(), CreateKey::new("files")).await?;
//! let blob = kms
//!     .encrypt(&Caller::local(), &KeyRef::Id(key.key_id), b"hello", &EncryptionContext::new())
//!     .await?;
//! # let _ = blob; Ok(()) }
//! ```

#![forbid(unsafe_code)]

#[cfg(feature = "aliyun")]
mod aliyun;
#[cfg(feature = "aws")]
mod aws;
mod retry;

#[cfg(feature = "aws")]
pub use aws::{AWS_MAX_PENDING_WINDOW_DAYS, AWS_MAX_PLAINTEXT, AwsKms, AwsKmsBuilder};
pub use retry::RetryPolicy;

#[cfg(feature = "aliyun")]
pub use aliyun::{AliyunKms, AliyunKmsBuilder, ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_SECURITY_TOKEN};
