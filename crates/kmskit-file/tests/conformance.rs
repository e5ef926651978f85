//! The provider conformance suite (`kmskit_core::testkit`) on `FileKms`: every case on a fresh keystore
//! directory, which lives as long as the case (the fixture's guard).
//!
//! A second mount runs every case on a keystore that has been through a write, a close and a reopen
//! (and whose first key is then scheduled for deletion), so the suite also covers a store whose state
//! came from the journal rather than only from this process.

use std::sync::Arc;

use kmskit_core::testkit::{Capabilities, Fixture};
use kmskit_core::{Caller, CreateKey, KeyProvider, KeyRef, block_on};
use kmskit_file::{FileKms, FileKmsExt, RootKey};

fn root() -> RootKey {
    RootKey::from_bytes(&[0x3c; 32]).expect("32 bytes")
}

/// A fresh, empty keystore in a temporary directory.
async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    let kms = Arc::new(FileKms::open_dir(dir.path(), &root()).expect("a new keystore opens"));
    Fixture::new(kms.clone())
        .with_rotator(kms)
        .with_guard(dir)
        .with_capabilities(Capabilities::default())
}

kmskit_core::conformance_tests!(fixture);

/// A keystore written by one `FileKms`, closed, and reopened by another before the case runs.
async fn reopened_fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temporary directory");
    {
        let first = FileKms::open_dir(dir.path(), &root()).expect("a new keystore opens");
        let caller = Caller::local();
        let k =
            block_on(first.create_key(&caller, CreateKey::new("written before the reopen"))).expect("create");
        block_on(first.schedule_key_deletion(&caller, &KeyRef::Id(k.key_id), 7)).expect("schedule");
    }
    let kms = Arc::new(FileKms::open_dir(dir.path(), &root()).expect("the keystore reopens"));
    Fixture::new(kms.clone())
        .with_rotator(kms)
        .with_guard(dir)
        .with_capabilities(Capabilities::default())
}

kmskit_core::conformance_tests!(reopened_fixture, conformance_reopened);
