//! wasm-bindgen facade over `livemig-core`.
//!
//! **Skeleton.** The bindings (wasm-bindgen, serde-wasm-bindgen) arrive with the browser and
//! Node package; until then this crate only re-exports the core so the workspace layout is
//! fixed.
#![forbid(unsafe_code)]

pub use livemig_core as core;
