//! Real QEMU: the native client follows a seamless migration (spec/qemu-spice-interop.md),
//! with main, display, cursor and inputs channels. Never skipped: QEMU comes from setup.

mod common;

use std::time::Duration;

use common::*;
use livemig_core::spice::session::{ChannelRef, MigrationKind, SessionEvent};
use livemig_core::spice::wire::consts::msg;
use livemig_host::qemu::pair::PairOptions;
use livemig_host::spice::client::ClientOptions;

#[test]
fn seamless_migration_with_main_display_cursor_and_inputs() {
    let mut pair = start(PairOptions::default());
    let (mut c, sid, channels) = link(&pair, |_| {}, ClientOptions::default());
    assert_eq!(channels.len(), 3, "display, cursor, inputs: {channels:?}");
    still_answers(&mut c);

    let dest = pair.dest_spice();
    let (stats, done) = migrate_and_follow(&mut pair, &mut c, &dest, MigrationKind::Seamless);
    let lag_us = done
        .timestamp_us
        .saturating_sub(stats.completed_at_timestamp_us);
    assert!(
        lag_us < 1_000_000,
        "SPICE_MIGRATE_COMPLETED {lag_us} µs after completion"
    );

    // Every destination channel carries the source session's connection id.
    assert_destination_channels(&mut pair, sid, channels.len() + 1);

    // MIGRATE_DATA forwarded on every channel whose flags ask for it (main, display,
    // inputs: flags 3; cursor: 0).
    c.drain();
    let switched: Vec<(ChannelRef, u64)> = c
        .seen()
        .iter()
        .filter_map(|e| match &e.event {
            SessionEvent::ChannelSwitched {
                channel,
                migrate_data_len,
            } => Some((*channel, *migrate_data_len)),
            _ => None,
        })
        .collect();
    assert_eq!(switched.len(), channels.len() + 1, "{switched:?}");
    for (ch, len) in &switched {
        let wants_data = ch.kind.migrate_data_magic().is_some();
        assert_eq!(*len > 0, wants_data, "{ch:?} forwarded {len} bytes");
    }
    // No fallback, no reset, no second MAIN_INIT.
    let started = c
        .seen()
        .iter()
        .position(|e| matches!(e.event, SessionEvent::MigrationStarted { .. }))
        .unwrap();
    for e in &c.seen()[started..] {
        match &e.event {
            SessionEvent::SwitchHost { .. } | SessionEvent::SessionReset => panic!("{e:?}"),
            SessionEvent::Message {
                channel, msg_type, ..
            } => assert!(
                !(*channel == ChannelRef::MAIN
                    && (*msg_type == msg::main::INIT
                        || *msg_type == msg::main::MIGRATE_END
                        || *msg_type == msg::main::MIGRATE_SWITCH_HOST)),
                "{e:?}"
            ),
            _ => {}
        }
    }
    // And the session works on the destination.
    still_answers(&mut c);
    let report = c.stop();
    assert!(report.events.len() > 10);
}

#[test]
fn no_motion_is_lost_across_the_switch_the_server_counts() {
    // The inputs channel acks every 4th motion and carries its count in MIGRATE_DATA:
    // N motions sent continuously across a seamless switch give exactly N/4 acks.
    for drop_one in [false, true] {
        let mut pair = start(PairOptions::default());
        let (mut c, _, _) = link(&pair, |_| {}, ClientOptions::default());
        let n = 400;
        let tx = c.sender();
        let sender = std::thread::spawn(move || {
            let mut sent = 0;
            for i in 0..n {
                if drop_one && i == n / 2 {
                    continue; // the control: one motion never sent
                }
                tx.send(
                    INPUTS,
                    livemig_core::spice::wire::consts::msgc::inputs::MOUSE_MOTION,
                    motion(),
                );
                sent += 1;
                std::thread::sleep(Duration::from_micros(500));
            }
            sent
        });
        pair.client_migrate_info(&pair.dest_spice()).unwrap();
        c.wait_event(T, "connected", |e| {
            matches!(e, SessionEvent::MigrationConnected { .. })
        })
        .unwrap();
        pair.migrate().unwrap();
        pair.wait_migration_completed(T).unwrap();
        c.wait_event(T, "Migrated", migrated(MigrationKind::Seamless))
            .unwrap();
        let sent = sender.join().unwrap();
        std::thread::sleep(Duration::from_millis(300));
        c.drain();
        let acks = count(&c, is_motion_ack);
        let ok = acks == n / 4;
        assert_eq!(ok, !drop_one, "sent {sent} of {n}, acks {acks}");
    }
}

#[test]
fn seamless_migration_over_unix_sockets() {
    use std::sync::Arc;
    let mut pair = start(PairOptions {
        unix_spice: true,
        ..PairOptions::default()
    });
    let (src, dst) = (pair.source_spice(), pair.dest_spice());
    let routes = [
        (src.port, src.unix.clone().unwrap()),
        (dst.port, dst.unix.clone().unwrap()),
    ];
    let opts = ClientOptions {
        unix_route: Some(Arc::new(move |_, port| {
            routes
                .iter()
                .find(|(p, _)| *p == port)
                .map(|(_, path)| path.clone())
        })),
        ..ClientOptions::default()
    };
    let (mut c, sid, channels) = link(&pair, |_| {}, opts);
    migrate_and_follow(&mut pair, &mut c, &dst, MigrationKind::Seamless);
    assert_destination_channels(&mut pair, sid, channels.len() + 1);
    still_answers(&mut c);
}
