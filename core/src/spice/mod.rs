//! The client side of SPICE seamless migration (spec/spice-migration.md,
//! spec/qemu-spice-interop.md).
//!
//! * [`wire`]: the sans-IO wire codec: link stage, data headers, the framer and the typed
//!   messages migration needs (§1-§3).

pub mod session;
pub mod wire;
