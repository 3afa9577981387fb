//! Fuzz target for the SPICE message decoders (spec/spice-migration.md §3): every typed
//! server and client message. Whatever decodes must re-encode to a body that decodes to the
//! same value; MIGRATE_DATA checks must not panic either.
//!
//! Input: byte 0 = channel type, bytes 1-2 = message type (LE), the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use livemig_core::spice::wire::msg::MigrateDataHeader;
use livemig_core::spice::wire::{ChannelType, ClientMsg, ServerMsg, WireMsg};

fuzz_target!(|data: &[u8]| {
    let [channel, t0, t1, body @ ..] = data else {
        return;
    };
    let channel = ChannelType::from_raw(*channel);
    let msg_type = u16::from_le_bytes([*t0, *t1]);
    if let Ok(m) = ServerMsg::decode(channel, msg_type, body) {
        assert_eq!(m.msg_type(), msg_type);
        let mut out = Vec::new();
        m.encode_body(&mut out)
            .expect("a decoded message re-encodes");
        assert_eq!(ServerMsg::decode(channel, msg_type, &out), Ok(m));
    }
    if let Ok(m) = ClientMsg::decode(channel, msg_type, body) {
        assert_eq!(m.msg_type(), msg_type);
        let mut out = Vec::new();
        m.encode_body(&mut out)
            .expect("a decoded message re-encodes");
        assert_eq!(ClientMsg::decode(channel, msg_type, &out), Ok(m));
    }
    let _ = MigrateDataHeader::peek(body);
    let _ = MigrateDataHeader::validate_for(channel, body);
});
