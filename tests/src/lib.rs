//! Scenario corpus helpers (in progress).
