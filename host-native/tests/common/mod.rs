//! Shared pieces of the real-QEMU SPICE tests.
#![allow(dead_code)]

use std::time::Duration;

use livemig_core::spice::session::{
    ChannelRef, Endpoint, MigrationKind, SessionConfig, SessionEvent,
};
use livemig_core::spice::wire::consts::{msg, msgc, ChannelType};
use livemig_host::qemu::pair::{MigrationStats, PairOptions, QemuPair, Side, SpiceAddr};
use livemig_host::qemu::qmp::Event;
use livemig_host::spice::client::{spawn, ClientHandle, ClientOptions};

pub const T: Duration = Duration::from_secs(10);

pub const INPUTS: ChannelRef = ChannelRef {
    kind: ChannelType::Inputs,
    id: 0,
};

pub fn endpoint(a: &SpiceAddr, tls: bool) -> Endpoint {
    Endpoint {
        host: a.host.clone(),
        port: Some(a.port),
        tls_port: if tls { a.tls_port } else { None },
        cert_subject: if tls { a.cert_subject.clone() } else { None },
    }
}

pub fn start(opts: PairOptions) -> QemuPair {
    QemuPair::start(opts).unwrap_or_else(|e| panic!("QEMU pair: {e}"))
}

/// Link a client to the source and wait until main and every listed channel are ready.
pub fn link(
    pair: &QemuPair,
    cfg_edit: impl FnOnce(&mut SessionConfig),
    opts: ClientOptions,
) -> (ClientHandle, u32, Vec<ChannelRef>) {
    let mut cfg = SessionConfig::new(endpoint(&pair.source_spice(), false));
    cfg_edit(&mut cfg);
    let cfg_types = cfg.channel_types.clone();
    let mut c = spawn(cfg, opts);
    let sid = match c
        .wait_event(T, "main ready", |e| {
            matches!(e, SessionEvent::ChannelReady { channel, .. } if *channel == ChannelRef::MAIN)
        })
        .unwrap()
        .event
    {
        SessionEvent::ChannelReady { session_id: Some(s), .. } => s,
        e => panic!("{e:?}"),
    };
    let list = c
        .wait_event(T, "CHANNELS_LIST", |e| {
            matches!(e, SessionEvent::Message { channel, msg_type, .. }
                if *channel == ChannelRef::MAIN && *msg_type == msg::main::CHANNELS_LIST)
        })
        .unwrap();
    let SessionEvent::Message { body, .. } = list.event else {
        unreachable!()
    };
    let b = body.as_slice();
    let n = u32::from_le_bytes(b[0..4].try_into().unwrap()) as usize;
    let wanted = cfg_types;
    let channels: Vec<ChannelRef> = (0..n)
        .map(|i| ChannelRef {
            kind: ChannelType::from_raw(b[4 + 2 * i]),
            id: b[5 + 2 * i],
        })
        .filter(|c| wanted.is_empty() || wanted.contains(&c.kind))
        .collect();
    for ch in &channels {
        let ch = *ch;
        if let Err(e) = c.wait_event(
            T,
            "channel ready",
            |e| matches!(e, SessionEvent::ChannelReady { channel, .. } if *channel == ch),
        ) {
            c.drain();
            panic!("{ch:?}: {e}; seen: {:#?}", c.seen());
        }
    }
    (c, sid, channels)
}

pub fn motion() -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&1i32.to_le_bytes());
    b.extend_from_slice(&1i32.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b
}

pub fn send_motions(c: &ClientHandle, n: usize) {
    for _ in 0..n {
        c.send(INPUTS, msgc::inputs::MOUSE_MOTION, motion());
    }
}

pub fn is_motion_ack(e: &SessionEvent) -> bool {
    matches!(e, SessionEvent::Message { channel, msg_type, .. }
        if *channel == INPUTS && *msg_type == msg::inputs::MOUSE_MOTION_ACK)
}

pub fn count(c: &ClientHandle, pred: impl Fn(&SessionEvent) -> bool) -> usize {
    c.seen().iter().filter(|e| pred(&e.event)).count()
}

/// The client answers on `INPUTS` (4 motions → 1 ack).
pub fn still_answers(c: &mut ClientHandle) {
    send_motions(c, 4);
    c.wait_event(T, "a motion ack", is_motion_ack).unwrap();
}

pub fn migrated(kind: MigrationKind) -> impl FnMut(&SessionEvent) -> bool {
    move |e| matches!(e, SessionEvent::Migrated { kind: k } if *k == kind)
}

/// client_migrate_info → the client links the target (`kind`) → migrate → completed → the
/// client switches → SPICE_MIGRATE_COMPLETED on the source.
pub fn migrate_and_follow(
    pair: &mut QemuPair,
    c: &mut ClientHandle,
    dest: &SpiceAddr,
    kind: MigrationKind,
) -> (MigrationStats, Event) {
    pair.client_migrate_info(dest).unwrap();
    c.wait_event(
        T,
        "MigrationConnected",
        |e| matches!(e, SessionEvent::MigrationConnected { kind: k } if *k == kind),
    )
    .unwrap();
    pair.migrate().unwrap();
    let stats = pair.wait_migration_completed(T).unwrap();
    c.wait_event(T, "Migrated", migrated(kind)).unwrap();
    let done = pair.wait_spice_migrate_completed(T).unwrap();
    (stats, done)
}

/// Every destination channel carries the source session id; `n` of them.
pub fn assert_destination_channels(pair: &mut QemuPair, sid: u32, n: usize) {
    let dst = pair.spice_channels(Side::Destination).unwrap();
    assert_eq!(dst.len(), n, "{dst:?}");
    assert!(
        dst.iter().all(|ch| ch.connection_id == sid),
        "{dst:?} vs {sid}"
    );
}
