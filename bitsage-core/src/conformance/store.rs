//! Conformance suite for [`crate::JobStore`] (being written).
