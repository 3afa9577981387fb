//! The ABI edge: the `extern "C"` exports and the registry of host-visible buffers.
//!
//! This is the crate's only `unsafe` code, needed for exactly three things:
//! 1. `#[unsafe(no_mangle)]` on the exports (the symbol names are the ABI);
//! 2. reading (and, for native hosts, writing) the bytes of a buffer `lm_alloc` handed out;
//! 3. releasing such a buffer in `lm_free`.
//!
//! Soundness rests on one rule: **a (pointer, length) pair from the host is only ever
//! dereferenced after [`Edge::locate`] found it inside one live buffer of the registry.**
//! Each buffer is a `Box<[u8]>` leaked with `Box::into_raw` (so no Rust reference to it exists
//! while the host owns it), zero-initialised, and remembered with its raw pointer (so every
//! access uses that allocation's own provenance, never a pointer made from an integer). A
//! range that is not inside one live buffer (a wild pointer, a length running past the end,
//! an overflowing sum, a freed buffer) is refused with [`Status::BadBuffer`] without being
//! read. Nothing here can panic on host input.
//!
//! State lives in a thread-local: a wasm instance has one thread; natively (unit tests)
//! each thread has its own handles and buffers.
#![allow(unsafe_code)]

use std::cell::RefCell;
use std::collections::BTreeMap;

use crate::{Failure, Machines, Status, ABI_VERSION, MAX_BUFFER};

/// One buffer handed to the host by `lm_alloc`.
#[derive(Debug)]
struct Buffer {
    /// From `Box::into_raw`; `max(len, 1)` bytes (zero-length requests get one byte so that
    /// every live buffer has a distinct address).
    raw: *mut [u8],
    /// The length the host asked for: the accessible range.
    len: usize,
}

#[derive(Debug, Default)]
struct Edge {
    /// Live buffers by start address.
    buffers: BTreeMap<usize, Buffer>,
    machines: Machines,
    /// The result buffer of the last call (`lm_result_ptr` / `lm_result_len`).
    result: Vec<u8>,
}

impl Drop for Edge {
    fn drop(&mut self) {
        for (_, b) in std::mem::take(&mut self.buffers) {
            // SAFETY: `b.raw` came from `Box::into_raw` in `lm_alloc` and was removed from
            // the registry here, so it is released exactly once.
            drop(unsafe { Box::from_raw(b.raw) });
        }
    }
}

thread_local! {
    static EDGE: RefCell<Edge> = RefCell::new(Edge::default());
}

impl Edge {
    /// The start of `ptr..ptr + len` if that range lies inside one live buffer (`len > 0`).
    fn locate(&self, ptr: usize, len: usize) -> Option<*mut u8> {
        let (&start, buf) = self.buffers.range(..=ptr).next_back()?;
        let offset = ptr - start; // start <= ptr by the range query
        let end = offset.checked_add(len)?;
        (end <= buf.len).then(|| buf.raw.cast::<u8>().wrapping_add(offset))
    }

    /// A copy of the host's bytes at `ptr..ptr + len`.
    fn read(&self, ptr: usize, len: usize) -> Result<Vec<u8>, Failure> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let p = self.locate(ptr, len).ok_or_else(|| bad_buffer(ptr, len))?;
        // SAFETY: `locate` proved `p..p + len` lies inside a live, initialised allocation
        // that no Rust reference points to; the slice lives only for this copy, during
        // which the host (single-threaded, blocked in this call) cannot write to it.
        let bytes = unsafe { std::slice::from_raw_parts(p, len) };
        Ok(bytes.to_vec())
    }

    /// Set the result buffer from a call's outcome; the status code.
    fn finish(&mut self, outcome: Result<(), Failure>) -> u32 {
        match outcome {
            Ok(()) => Status::Ok.code(),
            Err(f) => {
                self.result.clear();
                self.result.extend_from_slice(f.message.as_bytes());
                f.status.code()
            }
        }
    }
}

fn bad_buffer(ptr: usize, len: usize) -> Failure {
    Failure::new(
        Status::BadBuffer,
        format!("{len} bytes at {ptr:#x} are not inside one live lm_alloc buffer"),
    )
}

/// `lm_abi_version() -> i32`: [`ABI_VERSION`].
#[unsafe(no_mangle)]
pub extern "C" fn lm_abi_version() -> u32 {
    ABI_VERSION
}

/// `lm_alloc(len) -> ptr`: a zeroed buffer of `len` bytes for the host to write into, or `0`
/// when `len` exceeds [`MAX_BUFFER`] or memory is short. Release it with `lm_free`.
#[unsafe(no_mangle)]
pub extern "C" fn lm_alloc(len: usize) -> usize {
    if len > MAX_BUFFER {
        return 0;
    }
    let size = len.max(1);
    let mut v: Vec<u8> = Vec::new();
    if v.try_reserve_exact(size).is_err() {
        return 0;
    }
    v.resize(size, 0);
    let raw = Box::into_raw(v.into_boxed_slice());
    // The address leaves Rust for the host: expose it.
    let addr = raw.cast::<u8>().expose_provenance();
    EDGE.with_borrow_mut(|e| e.buffers.insert(addr, Buffer { raw, len }));
    addr
}

/// `lm_free(ptr, len) -> status`: release a buffer of `lm_alloc`, given its exact pointer
/// and length ([`Status::BadBuffer`] otherwise: nothing is released twice). Leaves the
/// result buffer alone, so a host may free its input before reading the result.
#[unsafe(no_mangle)]
pub extern "C" fn lm_free(ptr: usize, len: usize) -> u32 {
    EDGE.with_borrow_mut(|e| match e.buffers.get(&ptr) {
        Some(b) if b.len == len => {
            if let Some(b) = e.buffers.remove(&ptr) {
                // SAFETY: `b.raw` came from `Box::into_raw` in `lm_alloc` and has just left
                // the registry, so it is released exactly once.
                drop(unsafe { Box::from_raw(b.raw) });
            }
            Status::Ok.code()
        }
        _ => Status::BadBuffer.code(),
    })
}

/// `lm_new(setup_ptr, setup_len) -> i32`: a machine for a trace setup's JSON
/// (`{"machine":...,"config":...}`); its handle (`>= 1`), or minus a status code.
#[unsafe(no_mangle)]
pub extern "C" fn lm_new(setup_ptr: usize, setup_len: usize) -> i32 {
    EDGE.with_borrow_mut(|e| {
        let created = e
            .read(setup_ptr, setup_len)
            .and_then(|setup| e.machines.create(&setup));
        match created {
            // Handles never exceed i32::MAX (`Machines::create`).
            Ok(h) => {
                e.result.clear();
                i32::try_from(h).unwrap_or(-(Status::Exhausted.code() as i32))
            }
            Err(f) => -(e.finish(Err(f)) as i32),
        }
    })
}

/// `lm_step(handle, now, input_ptr, input_len) -> status`: feed one input (JSON) at `now`
/// (milliseconds); on success the result buffer holds the action frames.
#[unsafe(no_mangle)]
pub extern "C" fn lm_step(handle: u32, now: u64, input_ptr: usize, input_len: usize) -> u32 {
    EDGE.with_borrow_mut(|e| {
        let outcome = e.read(input_ptr, input_len).and_then(|input| {
            let Edge {
                machines, result, ..
            } = e;
            machines.step(handle, now, &input, result)
        });
        e.finish(outcome)
    })
}

/// `lm_poll_timeout(handle) -> status`: on success the result buffer holds the machine's
/// next deadline as 8 bytes little-endian, or nothing when it waits on nothing time-bound.
#[unsafe(no_mangle)]
pub extern "C" fn lm_poll_timeout(handle: u32) -> u32 {
    EDGE.with_borrow_mut(|e| {
        let outcome = e.machines.poll_timeout(handle).map(|t| {
            e.result.clear();
            if let Some(t) = t {
                e.result.extend_from_slice(&t.to_le_bytes());
            }
        });
        e.finish(outcome)
    })
}

/// `lm_drop(handle) -> status`: release a machine.
#[unsafe(no_mangle)]
pub extern "C" fn lm_drop(handle: u32) -> u32 {
    EDGE.with_borrow_mut(|e| {
        let outcome = e.machines.remove(handle).map(|()| e.result.clear());
        e.finish(outcome)
    })
}

/// `lm_result_ptr() -> ptr`: where the result (output or error message) of the last
/// `lm_new`, `lm_step`, `lm_poll_timeout` or `lm_drop` starts; valid until the next of those.
#[unsafe(no_mangle)]
pub extern "C" fn lm_result_ptr() -> usize {
    EDGE.with_borrow(|e| e.result.as_ptr().expose_provenance())
}

/// `lm_result_len() -> len`: the length of the last call's result.
#[unsafe(no_mangle)]
pub extern "C" fn lm_result_len() -> usize {
    EDGE.with_borrow(|e| e.result.len())
}

/// For native callers of the C ABI (tests, benchmarks): copy `bytes` into `ptr..`, as a wasm
/// host writes into the module's memory. `false` (nothing written) unless the range lies
/// inside one live `lm_alloc` buffer.
pub fn host_write(ptr: usize, bytes: &[u8]) -> bool {
    if bytes.is_empty() {
        return true;
    }
    EDGE.with_borrow(|e| match e.locate(ptr, bytes.len()) {
        Some(p) => {
            // SAFETY: `locate` proved `p..p + len` lies inside a live allocation that no
            // Rust reference points to; `bytes` is a different allocation (the host's).
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len()) };
            true
        }
        None => false,
    })
}

/// For native callers: a copy of the result buffer (what a wasm host reads at
/// `lm_result_ptr()..+lm_result_len()`).
pub fn host_result() -> Vec<u8> {
    EDGE.with_borrow(|e| e.result.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode_frames;

    /// Put `bytes` into a fresh buffer, as a host does.
    fn put(bytes: &[u8]) -> (usize, usize) {
        let ptr = lm_alloc(bytes.len());
        assert_ne!(ptr, 0);
        assert!(host_write(ptr, bytes));
        (ptr, bytes.len())
    }

    fn message() -> String {
        String::from_utf8(host_result()).unwrap()
    }

    fn new_machine(setup: &str) -> i32 {
        let (p, l) = put(setup.as_bytes());
        let h = lm_new(p, l);
        assert_eq!(lm_free(p, l), 0);
        h
    }

    fn step(h: u32, now: u64, input: &str) -> Result<Vec<String>, (u32, String)> {
        let (p, l) = put(input.as_bytes());
        let status = lm_step(h, now, p, l);
        let out = host_result();
        assert_eq!(lm_result_len(), out.len());
        assert_eq!(lm_free(p, l), 0);
        match status {
            0 => Ok(decode_frames(&out).expect("well-formed frames")),
            s => Err((s, String::from_utf8(out).unwrap())),
        }
    }

    fn traces() -> Vec<std::path::PathBuf> {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/traces");
        let mut out = Vec::new();
        for dir in std::fs::read_dir(root).unwrap() {
            for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
                let p = f.unwrap().path();
                if p.extension().is_some_and(|e| e == "jsonl") {
                    out.push(p);
                }
            }
        }
        out.sort();
        out
    }

    #[test]
    fn version() {
        assert_eq!(lm_abi_version(), 1);
    }

    /// Every corpus trace through the C ABI gives byte for byte what `step_json` gives.
    #[test]
    fn corpus_replays_through_the_c_abi() {
        let files = traces();
        assert!(files.len() > 50, "corpus not found");
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap();
            let header = livemig_core::trace::read_header(&text).unwrap();
            let setup = livemig_core::trace::canonical(&header.setup);
            let mut native = header.setup.machine();
            let h = new_machine(&setup);
            assert!(h >= 1, "{}: {}", file.display(), message());
            let h = h as u32;
            let done = livemig_core::trace::replay_with(
                &text,
                |_| Ok(()),
                |_, now, input| {
                    let got = step(h, now, input).map_err(|(s, m)| format!("{s}: {m}"))?;
                    assert_eq!(got, native.step_json(now, input)?);
                    Ok(got)
                },
            );
            assert!(done.is_ok(), "{}: {done:?}", file.display());
            assert_eq!(lm_poll_timeout(h), 0);
            assert!(matches!(host_result().len(), 0 | 8));
            assert_eq!(lm_drop(h), 0);
        }
    }

    #[test]
    fn host_ranges_are_bounds_checked() {
        let (p, l) = put(b"{\"type\":\"start\"}");
        let h = new_machine(
            r#"{"machine":"spice_session","config":{"server":{"host":"a","port":1,"tls_port":null,"cert_subject":null},"password":"","prefer_tls":false,"channel_types":[],"migrate_connect_timeout_ms":1,"max_buffered":1024,"display_init":{"pixmap_cache_id":1,"pixmap_cache_size":0,"glz_dictionary_id":1,"glz_dictionary_window_size":1}}}"#,
        );
        assert!(h >= 1, "{}", message());
        let h = h as u32;
        let bad = Status::BadBuffer.code();
        // Past the end, straddling, wild, null, overflowing.
        assert_eq!(lm_step(h, 0, p, l + 1), bad);
        assert!(message().contains("lm_alloc"));
        assert_eq!(lm_step(h, 0, p + 1, l), bad);
        assert_eq!(lm_step(h, 0, p.wrapping_sub(1), 2), bad);
        assert_eq!(lm_step(h, 0, 0, 5), bad);
        assert_eq!(lm_step(h, 0, 8, usize::MAX), bad);
        assert_eq!(lm_step(h, 0, p + 1, usize::MAX), bad);
        assert_eq!(lm_step(h, 0, usize::MAX, 1), bad);
        assert_eq!(lm_new(p, l + 1), -(bad as i32));
        assert!(!host_write(p, &[0; 17]));
        assert!(!host_write(0, b"x"));
        // Inside: a sub-range is fine (here: not an input, but read).
        assert_eq!(lm_step(h, 0, p, 1), Status::InvalidJson.code());
        assert_eq!(lm_step(h, 0, p, l), 0);
        // Free needs the exact pointer and length, once.
        assert_eq!(lm_free(p + 1, l - 1), bad);
        assert_eq!(lm_free(p, l - 1), bad);
        assert_eq!(lm_free(p, l), 0);
        assert_eq!(lm_free(p, l), bad);
        // Use after free.
        assert_eq!(lm_step(h, 0, p, l), bad);
        assert!(!host_write(p, b"x"));
        // Empty ranges read nothing (whatever the pointer).
        assert_eq!(lm_step(h, 0, 0, 0), Status::InvalidJson.code());
        assert_eq!(lm_drop(h), 0);
        assert_eq!(lm_drop(h), Status::BadHandle.code());
        assert_eq!(lm_step(h, 0, 0, 0), Status::BadHandle.code());
    }

    #[test]
    fn alloc_limits() {
        assert_eq!(lm_alloc(MAX_BUFFER + 1), 0);
        assert_eq!(lm_alloc(usize::MAX), 0);
        let a = lm_alloc(0);
        let b = lm_alloc(0);
        assert!(a != 0 && b != 0 && a != b);
        assert!(host_write(a, b""));
        assert!(!host_write(a, b"x"));
        assert_eq!(lm_free(a, 1), Status::BadBuffer.code());
        assert_eq!(lm_free(a, 0), 0);
        assert_eq!(lm_free(b, 0), 0);
    }

    #[test]
    fn errors_carry_status_and_message() {
        let h = new_machine("{\"machine\":\"toaster\"}");
        assert_eq!(h, -(Status::InvalidSetup.code() as i32));
        assert!(message().contains("toaster"), "{}", message());
        assert_eq!(lm_result_len(), host_result().len());
        let h = new_machine("not json");
        assert_eq!(h, -(Status::InvalidJson.code() as i32));
        assert_eq!(lm_poll_timeout(77), Status::BadHandle.code());
        assert_eq!(message(), "no machine 77");
        assert!(lm_result_ptr() != 0);
    }
}
