//! Fuzz target for the SPICE link stage (spec/spice-migration.md §1.1): the server's link
//! reply and the client's link message. Whatever decodes must re-encode to bytes that decode
//! to the same value, and every proper prefix of those bytes must ask for more.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livemig_core::spice::wire::link::decode_link_result;
use livemig_core::spice::wire::{LinkMess, LinkReply};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((reply, used))) = LinkReply::decode(data) {
        assert!(used <= data.len());
        let mut wire = Vec::new();
        reply.encode(&mut wire).expect("a decoded reply fits");
        assert_eq!(LinkReply::decode(&wire), Ok(Some((reply, wire.len()))));
        assert_eq!(LinkReply::decode(&wire[..wire.len() - 1]), Ok(None));
        let _ = decode_link_result(&data[used..]);
    }
    if let Ok(Some((mess, used))) = LinkMess::decode(data) {
        assert!(used <= data.len());
        let mut wire = Vec::new();
        mess.encode(&mut wire).expect("a decoded message fits");
        assert_eq!(LinkMess::decode(&wire), Ok(Some((mess, wire.len()))));
    }
});
