//! # livemig-core
//!
//! Pure, sans-IO state machines for live migration of virtual machines:
//!
//! * [`migration`]: libvirt's migration protocol (v3 Begin → Prepare → Perform → Finish →
//!   Confirm, the v2 fallback, managed and peer-to-peer modes, the `<qemu-migration>` cookie,
//!   job phases and restart recovery). Spec: `spec/libvirt-migration.md`.
//! * [`trace`]: the versioned trace format every engine (native, wasm, JS) shares.
//!
//! ## The drive-loop contract
//!
//! Every machine implements [`Machine`] and is driven the same way:
//!
//! ```text
//! machine.handle(now_ms, input);
//! while let Some(action) = machine.poll_action() { host.execute(action) }
//! next_wakeup = machine.poll_timeout();
//! ```
//!
//! * `now_ms` is milliseconds on a clock the host chooses; nothing here reads a clock, a
//!   socket, a thread or a random source.
//! * Inputs and actions are plain serde enums, reused unchanged by wasm, JS and traces.
//! * `handle` is infallible: anything a peer or a host can send is either accepted or turned
//!   into an action carrying a typed error. The core never panics on input.
//! * No hash map is iterated where the order could reach an action, so every engine produces
//!   the same actions for the same inputs.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod bytes;
pub mod migration;
pub mod spice;
pub mod trace;

/// Milliseconds on the host's monotonic clock. Plain `u64`, so it crosses into JSON and JS
/// as a number (hosts keep it below 2^53).
#[cfg_attr(feature = "ts", tsify::declare)]
pub type Millis = u64;

/// The drive-loop contract shared by every state machine in this crate (see the crate docs).
pub trait Machine {
    /// What the host feeds in: results of earlier actions, peer messages, timeouts, user commands.
    type Input;
    /// What the machine asks the host to do.
    type Action;

    /// Feed one input at time `now`. Never fails and never panics: errors become actions.
    fn handle(&mut self, now: Millis, input: Self::Input);

    /// The next pending action, or `None` once drained. Drain after every `handle`.
    fn poll_action(&mut self) -> Option<Self::Action>;

    /// The earliest time at which the machine wants `handle(now, timeout input)` even if
    /// nothing else happens, or `None` when it waits on nothing time-bound.
    fn poll_timeout(&self) -> Option<Millis>;
}
