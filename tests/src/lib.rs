//! Shared pieces of livemig's cross-target tests: the simulated libvirt daemons that answer
//! the orchestrator (fault injection, never the only proof: the real-daemon tests are), and
//! the scenario corpus written to `tests/traces/`.

pub mod engines;
pub mod host_scenarios;
pub mod libvirt_sim;
pub mod scenarios;
pub mod spice_scenarios;
pub mod spice_sim;

/// The folder holding the committed trace corpus.
pub fn traces_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("traces")
}
