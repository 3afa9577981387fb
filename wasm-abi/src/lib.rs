//! # livemig-wasm-abi
//!
//! `livemig-core` as a WebAssembly module **with no imports** and a small, versioned C ABI,
//! for hosts other than JS (wasmtime, wasmer, WAMR, a browser's bare `WebAssembly.instantiate`
//! with an empty import object). Built by `scripts/build-wasm-abi.sh` for
//! `wasm32-unknown-unknown` with `panic = "abort"` into `target/wasm-abi/livemig_wasm_abi.wasm`.
//!
//! Inputs and outputs are the trace format's JSON (`core/src/trace.rs`): a machine is created
//! from a trace header's `setup`, fed one input (JSON) at a time, and answers the canonical
//! JSON of each action, exactly as [`AnyMachine::step_json`](livemig_core::trace::AnyMachine)
//! does natively, so a trace replays byte for byte through the module.
//!
//! ## ABI version 1 (see `wasm-abi/README.md` for the full contract)
//!
//! Every pointer and length is an `i32` (wasm32; `usize` natively). All exports:
//!
//! | export | signature | |
//! |---|---|---|
//! | `lm_abi_version` | `() -> i32` | [`ABI_VERSION`] |
//! | `lm_alloc` | `(len) -> ptr` | a host-writable buffer of `len` bytes, `0` on failure |
//! | `lm_free` | `(ptr, len) -> status` | release a buffer of `lm_alloc` |
//! | `lm_new` | `(setup_ptr, setup_len) -> i32` | handle `>= 1`, or `-status` |
//! | `lm_step` | `(handle, now: i64, input_ptr, input_len) -> status` | result: action frames |
//! | `lm_poll_timeout` | `(handle) -> status` | result: empty, or 8 bytes LE deadline |
//! | `lm_drop` | `(handle) -> status` | |
//! | `lm_result_ptr` / `lm_result_len` | `() -> i32` | the result buffer of the last call |
//!
//! Every (pointer, length) pair the host passes must lie inside one live buffer returned by
//! `lm_alloc`; anything else is refused with [`Status::BadBuffer`] (never read, never a panic).
//!
//! Action frames: `u32le count`, then per action `u32le len` and `len` bytes of UTF-8
//! canonical JSON. Errors: the status code, and a UTF-8 message in the result buffer.
//!
//! ## Layout
//!
//! * [`Status`], [`Machines`]: the safe logic (handle table, JSON, frames);
//! * [`edge`]: the `extern "C"` exports and the buffer registry, the crate's only `unsafe`;
//! * [`module_check`]: a dependency-free reader of a module's imports and exports, used by
//!   the build script to prove the artifact imports nothing.
#![deny(unsafe_code)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

use std::collections::BTreeMap;

use livemig_core::trace::{AnyMachine, Setup};
use livemig_core::{Machine, Millis};

pub mod edge;
pub mod module_check;

/// The ABI version `lm_abi_version` returns. Bumped on any incompatible change of an export's
/// signature or meaning, of the status codes or of the frame layout.
pub const ABI_VERSION: u32 = 1;

/// The largest buffer `lm_alloc` hands out (1 GiB); larger requests answer `0`.
pub const MAX_BUFFER: usize = 1 << 30;

/// Every export the ABI defines (plus the module's `memory`).
pub const EXPORTS: [&str; 10] = [
    "memory",
    "lm_abi_version",
    "lm_alloc",
    "lm_free",
    "lm_new",
    "lm_step",
    "lm_poll_timeout",
    "lm_drop",
    "lm_result_ptr",
    "lm_result_len",
];

/// The status codes of the ABI (`0` is success). Stable within an [`ABI_VERSION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    /// Success; the result buffer holds the call's output.
    Ok = 0,
    /// A (pointer, length) pair is not inside one live `lm_alloc` buffer, or `lm_free` was
    /// given something other than a live buffer's exact pointer and length.
    BadBuffer = 1,
    /// The bytes are not UTF-8.
    NotUtf8 = 2,
    /// The text is not JSON.
    InvalidJson = 3,
    /// The JSON is not a trace setup (`{"machine":...,"config":...}`) of a known machine.
    InvalidSetup = 4,
    /// The JSON is not an input of this machine.
    InvalidInput = 5,
    /// No live machine has this handle.
    BadHandle = 6,
    /// An output does not fit the ABI's 32-bit lengths.
    TooLarge = 7,
    /// Every handle (`1..=i32::MAX`) has been used.
    Exhausted = 8,
}

impl Status {
    /// Every status, in code order.
    pub const ALL: [Status; 9] = [
        Status::Ok,
        Status::BadBuffer,
        Status::NotUtf8,
        Status::InvalidJson,
        Status::InvalidSetup,
        Status::InvalidInput,
        Status::BadHandle,
        Status::TooLarge,
        Status::Exhausted,
    ];

    /// The numeric code.
    pub const fn code(self) -> u32 {
        self as u32
    }

    /// The status of a code, if it is one.
    pub fn from_code(code: u32) -> Option<Status> {
        Status::ALL.into_iter().find(|s| s.code() == code)
    }

    /// A stable lowercase name.
    pub const fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::BadBuffer => "bad_buffer",
            Status::NotUtf8 => "not_utf8",
            Status::InvalidJson => "invalid_json",
            Status::InvalidSetup => "invalid_setup",
            Status::InvalidInput => "invalid_input",
            Status::BadHandle => "bad_handle",
            Status::TooLarge => "too_large",
            Status::Exhausted => "exhausted",
        }
    }
}

/// A failed call: its status and the message the result buffer carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Never [`Status::Ok`].
    pub status: Status,
    /// Human-readable detail (UTF-8).
    pub message: String,
}

impl Failure {
    fn new(status: Status, message: impl std::fmt::Display) -> Failure {
        Failure {
            status,
            message: message.to_string(),
        }
    }
}

/// The live machines of one module instance, by handle. Handles start at 1 and are never
/// reused, so a stale handle answers [`Status::BadHandle`] instead of reaching another
/// machine.
#[derive(Debug)]
pub struct Machines {
    table: BTreeMap<u32, AnyMachine>,
    next: u32,
}

impl Default for Machines {
    fn default() -> Self {
        Machines {
            table: BTreeMap::new(),
            next: 1,
        }
    }
}

fn text(bytes: &[u8]) -> Result<&str, Failure> {
    let t = std::str::from_utf8(bytes).map_err(|e| Failure::new(Status::NotUtf8, e))?;
    // Tell malformed text from a well-formed value of the wrong shape.
    serde_json::from_str::<serde::de::IgnoredAny>(t)
        .map_err(|e| Failure::new(Status::InvalidJson, e))?;
    Ok(t)
}

impl Machines {
    /// A fresh machine for a trace setup's JSON; its handle.
    pub fn create(&mut self, setup: &[u8]) -> Result<u32, Failure> {
        let setup: Setup = serde_json::from_str(text(setup)?)
            .map_err(|e| Failure::new(Status::InvalidSetup, e))?;
        let handle = self.next;
        if handle > i32::MAX as u32 {
            return Err(Failure::new(Status::Exhausted, "no handle left"));
        }
        self.next += 1;
        self.table.insert(handle, setup.machine());
        Ok(handle)
    }

    fn get(&mut self, handle: u32) -> Result<&mut AnyMachine, Failure> {
        self.table
            .get_mut(&handle)
            .ok_or_else(|| Failure::new(Status::BadHandle, format!("no machine {handle}")))
    }

    /// Feed one input (JSON) at `now`; write the action frames into `out` (cleared first).
    pub fn step(
        &mut self,
        handle: u32,
        now: Millis,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), Failure> {
        let machine = self.get(handle)?;
        let input = text(input)?;
        let actions = machine
            .step_json(now, input)
            .map_err(|m| Failure::new(Status::InvalidInput, m))?;
        encode_frames(&actions, out)
    }

    /// The machine's next deadline.
    pub fn poll_timeout(&mut self, handle: u32) -> Result<Option<Millis>, Failure> {
        Ok(match self.get(handle)? {
            AnyMachine::Orchestrator(m) => m.poll_timeout(),
            AnyMachine::SourceHost(m) => m.poll_timeout(),
            AnyMachine::DestinationHost(m) => m.poll_timeout(),
            AnyMachine::SpiceSession(m) => m.poll_timeout(),
        })
    }

    /// Drop a machine.
    pub fn remove(&mut self, handle: u32) -> Result<(), Failure> {
        self.table
            .remove(&handle)
            .map(|_| ())
            .ok_or_else(|| Failure::new(Status::BadHandle, format!("no machine {handle}")))
    }

    /// How many machines are live.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no machine is live.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }
}

fn len_u32(len: usize) -> Result<[u8; 4], Failure> {
    u32::try_from(len)
        .map(u32::to_le_bytes)
        .map_err(|_| Failure::new(Status::TooLarge, format!("{len} bytes")))
}

/// Encode action strings as frames: `u32le count`, then per action `u32le len` + bytes.
pub fn encode_frames(actions: &[String], out: &mut Vec<u8>) -> Result<(), Failure> {
    out.clear();
    out.extend_from_slice(&len_u32(actions.len())?);
    for a in actions {
        out.extend_from_slice(&len_u32(a.len())?);
        out.extend_from_slice(a.as_bytes());
    }
    Ok(())
}

/// Decode frames (the inverse of [`encode_frames`]); `None` on any malformed length.
pub fn decode_frames(bytes: &[u8]) -> Option<Vec<String>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        if b.len() < n {
            return None;
        }
        let (head, tail) = b.split_at(n);
        *b = tail;
        Some(head)
    }
    fn word(b: &mut &[u8]) -> Option<usize> {
        let w: [u8; 4] = take(b, 4)?.try_into().ok()?;
        usize::try_from(u32::from_le_bytes(w)).ok()
    }
    let mut b = bytes;
    let count = word(&mut b)?;
    // Each frame takes at least 4 bytes: a count above that is malformed (and would
    // otherwise reserve unbounded memory).
    if count > b.len() / 4 {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let n = word(&mut b)?;
        out.push(String::from_utf8(take(&mut b, n)?.to_vec()).ok()?);
    }
    b.is_empty().then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus_setup() -> String {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/traces/migration/managed-v3-success.jsonl"
        ))
        .unwrap_or_default();
        let header: serde_json::Value =
            serde_json::from_str(text.lines().next().unwrap_or("{}")).unwrap_or_default();
        header["setup"].to_string()
    }

    #[test]
    fn status_codes_are_stable() {
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(s.code() as usize, i);
            assert_eq!(Status::from_code(s.code()), Some(*s));
        }
        assert_eq!(Status::from_code(9), None);
    }

    #[test]
    fn frames_round_trip_and_reject_malformed() {
        let actions = vec!["{\"a\":1}".to_owned(), String::new(), "é".to_owned()];
        let mut out = Vec::new();
        encode_frames(&actions, &mut out).unwrap();
        assert_eq!(decode_frames(&out), Some(actions));
        encode_frames(&[], &mut out).unwrap();
        assert_eq!(out, [0, 0, 0, 0]);
        assert_eq!(decode_frames(&out), Some(vec![]));
        assert_eq!(decode_frames(&[1, 0, 0, 0, 5, 0, 0, 0, b'x']), None);
        assert_eq!(decode_frames(&[255, 255, 255, 255]), None);
        assert_eq!(decode_frames(&[0, 0, 0, 0, 0]), None);
        assert_eq!(decode_frames(&[1, 0, 0, 0, 1, 0, 0, 0, 0xff]), None);
    }

    #[test]
    fn machines_create_step_drop() {
        let mut m = Machines::default();
        let setup = corpus_setup();
        let h = m.create(setup.as_bytes()).unwrap();
        assert_eq!(h, 1);
        let h2 = m.create(setup.as_bytes()).unwrap();
        assert_eq!(h2, 2);
        let mut out = Vec::new();
        assert_eq!(
            m.step(h, 0, b"{", &mut out).unwrap_err().status,
            Status::InvalidJson
        );
        assert_eq!(
            m.step(h, 0, b"{\"nope\":1}", &mut out).unwrap_err().status,
            Status::InvalidInput
        );
        assert_eq!(
            m.step(h, 0, &[0xff], &mut out).unwrap_err().status,
            Status::NotUtf8
        );
        assert_eq!(
            m.step(9, 0, b"{}", &mut out).unwrap_err().status,
            Status::BadHandle
        );
        m.remove(h).unwrap();
        assert_eq!(m.remove(h).unwrap_err().status, Status::BadHandle);
        assert_eq!(m.poll_timeout(h).unwrap_err().status, Status::BadHandle);
        assert_eq!(m.len(), 1);
        // Handles are never reused.
        assert_eq!(m.create(setup.as_bytes()).unwrap(), 3);
    }

    #[test]
    fn setup_errors_are_classified() {
        let mut m = Machines::default();
        assert_eq!(m.create(b"").unwrap_err().status, Status::InvalidJson);
        assert_eq!(m.create(&[0xc3]).unwrap_err().status, Status::NotUtf8);
        assert_eq!(
            m.create(br#"{"machine":"toaster","config":{}}"#)
                .unwrap_err()
                .status,
            Status::InvalidSetup
        );
        assert_eq!(
            m.create(br#"{"machine":"spice_session","config":{"bad":1}}"#)
                .unwrap_err()
                .status,
            Status::InvalidSetup
        );
        assert!(m.is_empty());
    }

    #[test]
    fn handles_run_out_cleanly() {
        let mut m = Machines {
            next: i32::MAX as u32,
            ..Machines::default()
        };
        let setup = corpus_setup();
        assert_eq!(m.create(setup.as_bytes()).unwrap(), i32::MAX as u32);
        assert_eq!(
            m.create(setup.as_bytes()).unwrap_err().status,
            Status::Exhausted
        );
    }
}
