//! The provider conformance suite (feature `testkit`). Being written; see `conformance_tests!`.
