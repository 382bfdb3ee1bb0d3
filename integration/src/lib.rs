//! Helpers shared by the integration tests live in the tests themselves; this crate has no code of its own.
