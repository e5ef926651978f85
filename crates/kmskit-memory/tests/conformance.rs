//! The provider conformance suite (`kmskit_core::testkit`) on `MemoryKms`, which supports everything:
//! once on the default AEAD engine and once on every engine built in.

use std::sync::Arc;

use kmskit_core::crypto::{AeadEngine, all_engines};
use kmskit_core::testkit::{Capabilities, Fixture};
use kmskit_core::{Kms, KmsConfig};
use kmskit_memory::{MemoryKms, MemoryKmsExt, MemoryStore};

/// A fresh `MemoryKms` on the default engine, with every capability.
async fn fixture() -> Fixture {
    let kms = Arc::new(MemoryKms::new_memory());
    Fixture::new(kms.clone())
        .with_rotator(kms)
        .with_capabilities(Capabilities::default())
}

kmskit_core::conformance_tests!(fixture);

/// A fresh `MemoryKms` on the engine that is not the default, so both engines pass the suite.
async fn other_engine_fixture() -> Fixture {
    let default = kmskit_core::crypto::default_engine().name();
    let engine: &'static dyn AeadEngine = all_engines()
        .into_iter()
        .find(|e| e.name() != default)
        .unwrap_or_else(kmskit_core::crypto::default_engine);
    let kms = Kms::with_config(MemoryStore::with_engine(engine), KmsConfig::default())
        .expect("an empty memory store opens");
    let kms = Arc::new(kms);
    Fixture::new(kms.clone()).with_rotator(kms)
}

kmskit_core::conformance_tests!(other_engine_fixture, conformance_other_engine);
