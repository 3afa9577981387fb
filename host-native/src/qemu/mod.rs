//! Real QEMU peers for tests: a SPICE migration source and destination on this machine.
//!
//! * [`qmp::Qmp`]: a blocking QMP client over a unix socket (replies matched by id, events
//!   queued with QEMU's timestamps).
//! * [`pair::QemuPair`]: starts a source and a destination QEMU (TCG, no guest image) with
//!   SPICE on per-run loopback ports, QMP and migration on unix sockets in a per-run
//!   directory, and tears everything down on drop, even when a test panics.
//! * [`tls::TlsDir`]: a CA and a server certificate in the layout spice-server reads
//!   (`x509-dir`), with the `cert-subject` string spice clients check.
//!
//! QEMU must be installed (`apt-get install -y --no-install-recommends qemu-system-x86`,
//! done by `scripts/setup.sh`); [`QemuPair::start`] fails with
//! [`PairError::QemuMissing`] otherwise. See `shared/spec/qemu-spice-interop.md` for the
//! observed SPICE/QMP behaviour this module is built on.
//!
//! ```no_run
//! use std::time::Duration;
//! use livemig_host::qemu::{PairOptions, QemuPair, Side};
//!
//! let mut pair = QemuPair::start(PairOptions::default())?;
//! let dest = pair.dest_spice();
//! pair.client_migrate_info(&dest)?;
//! pair.migrate()?;
//! let stats = pair.wait_migration_completed(Duration::from_secs(10))?;
//! pair.wait_spice_migrate_completed(Duration::from_secs(1))?;
//! assert_eq!(pair.query_status(Side::Destination)?, "running");
//! println!("downtime {} ms", stats.downtime_ms);
//! # Ok::<(), livemig_host::qemu::PairError>(())
//! ```

pub mod binary;
pub mod pair;
pub mod qmp;
pub mod serve;
pub mod tls;

pub use binary::{PasswordSupport, QemuBinary};
pub use pair::{
    MigrationStats, PairError, PairOptions, QemuPair, Side, SpiceAddr, SpiceChannelInfo, Vga,
};
pub use qmp::{Event, Qmp, QmpError};
pub use tls::{TlsDir, TlsError};
