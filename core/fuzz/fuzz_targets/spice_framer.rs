//! Fuzz target for the SPICE framer (spec/spice-migration.md §1.2): the same bytes cut into
//! arbitrary chunks must give the same frames (and the same error, at the same place) as
//! one whole-buffer pass, for both header kinds and small or default body limits.
//!
//! Input: byte 0 = options (bit 0 full header, bit 1 small limit), byte 1 = chunking seed,
//! the rest is the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livemig_core::spice::wire::{FrameBuf, Framer, HeaderKind};

fuzz_target!(|data: &[u8]| {
    let [opts, seed, stream @ ..] = data else {
        return;
    };
    let kind = if opts & 1 == 0 {
        HeaderKind::Mini
    } else {
        HeaderKind::Full
    };
    let mut framer = Framer::new(kind);
    if opts & 2 != 0 {
        framer = framer.with_max_body(u32::from(opts >> 2));
    }

    // Reference: one pass over the whole buffer.
    let mut want = Vec::new();
    let mut want_err = None;
    let mut it = framer.frames(stream);
    for f in it.by_ref() {
        match f {
            Ok(f) => {
                assert!(f.body.len() as u64 <= u64::from(framer.max_body()));
                want.push((f.msg_type, f.serial, f.body.to_vec()));
            }
            Err(e) => want_err = Some(e),
        }
    }
    let consumed = it.consumed();

    // Chunked through FrameBuf.
    let mut rx = FrameBuf::new(framer);
    let mut got = Vec::new();
    let mut got_err = None;
    let mut state = u32::from(*seed) | 1;
    let mut rest = stream;
    while !rest.is_empty() && got_err.is_none() {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        let n = 1 + (state >> 16) as usize % 97;
        let (chunk, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        rx.push(chunk);
        loop {
            match rx.next_frame() {
                Ok(Some(f)) => got.push((f.msg_type, f.serial, f.body.to_vec())),
                Ok(None) => break,
                Err(e) => {
                    got_err = Some(e);
                    break;
                }
            }
        }
    }
    assert_eq!(got, want);
    assert_eq!(got_err, want_err);
    if want_err.is_none() {
        assert_eq!(rx.pending(), &stream[consumed..]);
        assert!(rx.needed().is_ok());
    }
});
