//! libvirt's domain migration protocol (spec/libvirt-migration.md).
//!
//! * [`orchestrator`]: the client-side (managed) and source-daemon (peer-to-peer) drivers of
//!   Begin → Prepare → Perform → Finish → Confirm, and the v2 fallback (§1-§4.1).
//! * [`source`] and [`destination`]: each host's step logic as actions to an abstract
//!   hypervisor (§4.2-§4.6, §7).
//! * [`phase`]: job phases, the monotonic check and restart recovery (§8).
//! * [`cookie`]: the `<qemu-migration>` cookie model and XML codec (§6).
//! * [`flags`] and [`error`]: `VIR_MIGRATE_*`, features, typed params and wire errors (§5, §9).

pub mod cookie;
pub mod destination;
pub mod error;
pub mod flags;
pub mod orchestrator;
pub mod phase;
pub mod source;

pub use error::RemoteError;
pub use flags::{Feature, FeatureSet, MigrateFlags, ParamValue, Params, TypedParam};
