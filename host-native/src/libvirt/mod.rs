//! A libvirt remote-protocol client (XDR over TCP, no libvirt code): framing and a
//! blocking connection with keepalive ([`rpc`]), the XDR subset ([`xdr`]), typed procedures
//! ([`calls`]) and the executor of the core orchestrator's calls ([`executor`]).
//!
//! Layouts follow libvirt's `src/remote/remote_protocol.x`, `src/rpc/virnetprotocol.x` and
//! `virkeepaliveprotocol.x`; the wire facts are in `shared/spec/libvirt-real-peer.md` §4, §6.

pub mod calls;
pub mod executor;
pub mod rpc;
pub mod xdr;

pub use executor::{MigrationExecutor, RunOutcome};
pub use rpc::{KeepaliveConfig, Rpc, RpcError};
