//! Every client path of spec/spice-migration.md §4 against the simulated servers of §5:
//! what reaches each server, in which order, and what the session reports.

use livemig_core::spice::session::{
    ChannelRef, ConnId, MigrationKind, Role, SessionAction, SessionError, SessionEvent,
    SessionInput, Verify,
};
use livemig_core::spice::wire::consts::{msg, msgc, ChannelType, LinkErr};
use livemig_core::trace::Record;
use livemig_tests::spice_scenarios::{
    corpus, run, run_with, scenario, SpiceScenario, DISPLAY, DST, DST_SESSION_ID, INPUTS, MAIN,
    SRC, SRC_SESSION_ID, SUBJECT,
};
use livemig_tests::spice_sim::{
    fake_public_key, fake_ticket, is_session_msg, mini_frame, Chunking, Network, ServerConfig,
    ServerOut, SimServer, DRAW_MSG,
};
use proptest::prelude::*;

/// Run `name`; it must settle and no server may have seen a protocol violation.
fn ok(name: &str) -> Network {
    let n = run(&scenario(name));
    assert!(!n.stuck, "{name}: the run did not settle");
    for s in &n.servers {
        assert!(s.violations.is_empty(), "{name}: {:?}", s.violations);
    }
    n
}

fn src(n: &Network) -> &SimServer {
    &n.servers[SRC]
}
fn dst(n: &Network) -> &SimServer {
    &n.servers[DST]
}

fn errors(n: &Network) -> Vec<&SessionError> {
    n.events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::Error { error } => Some(error),
            _ => None,
        })
        .collect()
}

fn has(n: &Network, f: impl Fn(&SessionEvent) -> bool) -> bool {
    n.events.iter().any(f)
}

fn migrated(n: &Network, kind: MigrationKind) -> bool {
    has(n, |e| *e == SessionEvent::Migrated { kind })
}

fn closed(n: &Network) -> bool {
    has(n, |e| matches!(e, SessionEvent::Closed { .. }))
}

fn closes(n: &Network) -> Vec<ConnId> {
    n.actions
        .iter()
        .filter_map(|(_, a)| match a {
            SessionAction::Close { conn } => Some(*conn),
            _ => None,
        })
        .collect()
}

/// The connection ids the session opened to server `i`, by role.
fn conns_to(n: &Network, i: usize, role: Role) -> Vec<(ConnId, ChannelRef)> {
    n.connects
        .iter()
        .filter(|c| c.server == Some(i) && c.role == role)
        .map(|c| (c.conn, c.channel))
        .collect()
}

/// Message types server `s` read on `conn`.
fn types(s: &SimServer, conn: ConnId) -> Vec<u16> {
    s.log_of(conn).iter().map(|g| g.msg_type).collect()
}

/// Whether server `s` read the PONG of its last PING on `channel`.
fn answered_ping(s: &SimServer, channel: ChannelRef) -> bool {
    s.ping_answered(channel)
}

fn records(n: &Network) -> Vec<Record<SessionInput, SessionAction>> {
    n.trace()
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The main-channel answer (`CONNECTED*` / `CONNECT_ERROR`) the source read.
fn replies(n: &Network) -> &[u16] {
    &src(n).replies
}

fn app_of(all: &[(ChannelRef, u16, Vec<u8>)], kind: ChannelType) -> Vec<(u16, Vec<u8>)> {
    all.iter()
        .filter(|(c, _, _)| c.kind == kind)
        .map(|(_, t, b)| (*t, b.clone()))
        .collect()
}

// ---- seamless --------------------------------------------------------------------------

#[test]
fn seamless_main_inputs_display() {
    let n = ok("seamless-main-inputs-display");
    let (s, d) = (src(&n), dst(&n));
    assert!(errors(&n).is_empty(), "{:?}", errors(&n));
    assert!(has(&n, |e| matches!(
        e,
        SessionEvent::MigrationStarted {
            kind: MigrationKind::Seamless,
            ..
        }
    )));
    assert!(has(&n, |e| *e
        == SessionEvent::MigrationConnected {
            kind: MigrationKind::Seamless
        }));
    assert!(migrated(&n, MigrationKind::Seamless));
    assert_eq!(replies(&n), [msgc::main::MIGRATE_CONNECTED_SEAMLESS]);

    // Invariant 3: the target links carry s1's session id, main first.
    assert_eq!(d.links.len(), 3);
    assert_eq!(d.links[0].channel, MAIN);
    assert!(d
        .links
        .iter()
        .all(|l| l.connection_id == SRC_SESSION_ID && l.result == LinkErr::Ok));
    let dst_conns = conns_to(&n, DST, Role::Destination);
    let dst_main = dst_conns[0].0;
    assert_eq!(dst_conns[0].1, MAIN);
    // The other target links start only after DST_DO_SEAMLESS went out on the target main.
    let do_seamless = mini_frame(msgc::main::MIGRATE_DST_DO_SEAMLESS, &1u32.to_le_bytes());
    let pos_do = n
        .actions
        .iter()
        .position(|(_, a)| {
            matches!(a, SessionAction::Transmit { conn, bytes }
                if *conn == dst_main && bytes.as_slice() == do_seamless)
        })
        .expect("DST_DO_SEAMLESS{1}");
    let pos_others = n
        .actions
        .iter()
        .position(|(_, a)| {
            matches!(a, SessionAction::Connect { role: Role::Destination, channel, .. }
                if *channel != MAIN)
        })
        .unwrap();
    assert!(pos_do < pos_others);

    // Invariant 9: MSGC_MIGRATE_DATA is the first message on each target channel (main:
    // after the handshake), byte-identical to s1's MIGRATE_DATA.
    for (conn, channel) in &dst_conns {
        let t = types(d, *conn);
        let first = if *channel == MAIN { t[1] } else { t[0] };
        assert_eq!(first, msgc::MIGRATE_DATA, "{channel:?}: {t:?}");
        if *channel == MAIN {
            assert_eq!(t[0], msgc::main::MIGRATE_DST_DO_SEAMLESS);
        }
    }
    let mut sent = s.migrate_data_sent.clone();
    let mut got = d.migrate_data_received.clone();
    sent.sort();
    got.sort();
    assert_eq!(sent, got);
    assert_eq!(sent.len(), 3);
    let len_of = |kind| {
        sent.iter()
            .find(|(c, _)| c.kind == kind)
            .map(|(_, b)| b.len())
    };
    assert_eq!(len_of(ChannelType::Main), Some(65));
    assert_eq!(&sent[0].1[..4], b"MNMD");
    assert_eq!(len_of(ChannelType::Inputs), Some(10));
    // Invariant 7: one FLUSH_MARK per source channel (MIGRATE flags 3).
    for (conn, _) in conns_to(&n, SRC, Role::Source) {
        let flush = types(s, conn)
            .iter()
            .filter(|t| **t == msgc::MIGRATE_FLUSH_MARK)
            .count();
        assert_eq!(flush, 1);
    }
    // Invariant 13: every s1 connection closed by the client after the last switch.
    let src_conns: Vec<ConnId> = conns_to(&n, SRC, Role::Source)
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(closes(&n), src_conns);
    assert!(s.open_conns().is_empty());
    assert!(!d.client_is_target());
    // Flow control on both sides: the servers blocked at 2·window + 1 unacked and the
    // client's acks released every drawing message.
    let draws = n
        .events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Message { msg_type, .. } if *msg_type == DRAW_MSG))
        .count();
    assert_eq!(draws, 200);
    assert_eq!(s.max_unacked, 41);
    assert_eq!(d.max_unacked, 41);
    assert!(answered_ping(d, MAIN));
}

#[test]
fn display_burst_racing_the_switch_does_not_stall() {
    let n = ok("seamless-display-burst-during-switch");
    assert!(migrated(&n, MigrationKind::Seamless));
    let draws = n
        .events
        .iter()
        .filter(|e| matches!(e, SessionEvent::Message { msg_type, .. } if *msg_type == DRAW_MSG))
        .count();
    assert_eq!(draws, 97);
    assert_eq!(src(&n).max_unacked, 41, "the source really blocked on acks");
    // The client acked s1's display while MIGRATE was queued behind the burst.
    let display = conns_to(&n, SRC, Role::Source)
        .into_iter()
        .find(|c| c.1 == DISPLAY)
        .unwrap()
        .0;
    let acks = types(src(&n), display)
        .iter()
        .filter(|t| **t == msgc::ACK)
        .count();
    assert!(acks >= 4, "{acks} acks");
}

#[test]
fn cursor_switches_without_flush_or_data() {
    let n = ok("seamless-with-cursor");
    assert!(migrated(&n, MigrationKind::Seamless));
    let cursor = ChannelRef {
        kind: ChannelType::Cursor,
        id: 0,
    };
    assert!(has(&n, |e| *e
        == SessionEvent::ChannelSwitched {
            channel: cursor,
            migrate_data_len: 0
        }));
    let s_cursor = conns_to(&n, SRC, Role::Source)
        .into_iter()
        .find(|c| c.1 == cursor)
        .unwrap()
        .0;
    assert!(!types(src(&n), s_cursor).contains(&msgc::MIGRATE_FLUSH_MARK));
    let d_cursor = conns_to(&n, DST, Role::Destination)
        .into_iter()
        .find(|c| c.1 == cursor)
        .unwrap()
        .0;
    assert!(!types(dst(&n), d_cursor).contains(&msgc::MIGRATE_DATA));
}

/// The application's messages reach the servers none lost, duplicated or reordered: per
/// channel, what s1 read followed by what s2 read is what the application sent. The
/// source reads no application message after its FLUSH_MARK, and the FLUSH_MARK precedes
/// (in global order) every message s2 reads on that channel.
fn check_app_delivery(n: &Network) -> Result<(), String> {
    let (s, d) = (src(n), dst(n));
    for kind in [ChannelType::Main, ChannelType::Inputs, ChannelType::Display] {
        let mut got = s.app_messages(kind);
        got.extend(d.app_messages(kind));
        let want = app_of(&n.app_sent, kind);
        if got != want {
            return Err(format!(
                "{kind:?}: servers read {} messages, the application sent {}",
                got.len(),
                want.len()
            ));
        }
        let flush = s
            .log
            .iter()
            .find(|g| g.channel.kind == kind && g.msg_type == msgc::MIGRATE_FLUSH_MARK)
            .ok_or(format!("{kind:?}: no FLUSH_MARK"))?;
        let late = s
            .log
            .iter()
            .any(|g| g.channel.kind == kind && g.tick > flush.tick && g.msg_type >= msg::BASE_LAST);
        if late {
            return Err(format!(
                "{kind:?}: application message on s1 after FLUSH_MARK"
            ));
        }
        let early = d.log.iter().any(|g| {
            g.channel.kind == kind
                && g.tick < flush.tick
                && (g.msg_type == msgc::MIGRATE_DATA || !is_session_msg(kind, g.msg_type))
        });
        if early {
            return Err(format!(
                "{kind:?}: s2 read data before s1's FLUSH_MARK on that channel"
            ));
        }
    }
    Ok(())
}

#[test]
fn app_stream_across_the_switch_loses_nothing() {
    let n = ok("seamless-app-stream");
    assert!(migrated(&n, MigrationKind::Seamless));
    check_app_delivery(&n).unwrap();
    assert_eq!(n.app_sent.len(), 150);
    // The stream really crossed the switch: every channel has traffic on both servers and
    // some messages were held while their channel switched.
    for kind in [ChannelType::Main, ChannelType::Inputs, ChannelType::Display] {
        assert!(!src(&n).app_messages(kind).is_empty(), "{kind:?} on s1");
        assert!(!dst(&n).app_messages(kind).is_empty(), "{kind:?} on s2");
    }
    assert!(n.app_held > 0);
}

#[test]
fn app_delivery_check_catches_a_reorder() {
    let mut n = ok("seamless-app-stream");
    let inputs: Vec<usize> = (0..n.app_sent.len())
        .filter(|&i| n.app_sent[i].0 == INPUTS)
        .collect();
    n.app_sent.swap(inputs[3], inputs[4]);
    assert!(check_app_delivery(&n).is_err());
    let mut n = ok("seamless-app-stream");
    n.app_sent
        .push((INPUTS, msgc::inputs::KEY_DOWN, vec![9; 4]));
    assert!(check_app_delivery(&n).is_err());
}

/// The MOUSE_MOTION_ACKs of both servers together are one per 4 motions the application
/// sent, and the client saw each of them.
fn check_motion_acks(n: &Network) -> Result<(), String> {
    let sent = n
        .app_sent
        .iter()
        .filter(|(_, t, _)| *t == msgc::inputs::MOUSE_MOTION)
        .count() as u32;
    let acks = src(n).motion_acks + dst(n).motion_acks;
    let seen = n
        .events
        .iter()
        .filter(|e| {
            matches!(e, SessionEvent::Message { channel, msg_type, .. }
                if *channel == INPUTS && *msg_type == msg::inputs::MOUSE_MOTION_ACK)
        })
        .count() as u32;
    if acks != sent / 4 || seen != acks {
        return Err(format!(
            "{sent} motions: {acks} acks sent ({} + {}), {seen} seen",
            src(n).motion_acks,
            dst(n).motion_acks
        ));
    }
    Ok(())
}

#[test]
fn motion_acks_across_seamless_migration() {
    let n = ok("seamless-motion-acks");
    check_motion_acks(&n).unwrap();
    assert_eq!(n.app_sent.len(), 64);
    // Both servers acked, and the source carried a withheld count in "ICMD".
    assert!(src(&n).motion_acks > 0 && dst(&n).motion_acks > 0);
    let icmd = &src(&n)
        .migrate_data_sent
        .iter()
        .find(|(c, _)| *c == INPUTS)
        .unwrap()
        .1;
    assert_eq!(&icmd[..4], b"ICMD");
    assert!(u16::from_le_bytes([icmd[8], icmd[9]]) > 0);
}

#[test]
fn motion_ack_check_fails_when_a_motion_is_lost() {
    let n = ok("seamless-motion-acks-lost-control");
    assert!(check_motion_acks(&n).is_err());
    assert!(check_app_delivery_inputs_only(&n).is_err());
}

fn check_app_delivery_inputs_only(n: &Network) -> Result<(), String> {
    let mut got = src(n).app_messages(ChannelType::Inputs);
    got.extend(dst(n).app_messages(ChannelType::Inputs));
    if got == app_of(&n.app_sent, ChannelType::Inputs) {
        Ok(())
    } else {
        Err("inputs differ".into())
    }
}

// ---- semi-seamless ---------------------------------------------------------------------

fn check_semi(name: &str, do_seamless: bool) -> Network {
    let n = ok(name);
    let (s, d) = (src(&n), dst(&n));
    assert!(migrated(&n, MigrationKind::SemiSeamless), "{name}");
    assert!(has(&n, |e| *e
        == SessionEvent::MigrationConnected {
            kind: MigrationKind::SemiSeamless
        }));
    assert!(has(&n, |e| *e == SessionEvent::SessionReset));
    assert_eq!(replies(&n), [msgc::main::MIGRATE_CONNECTED], "{name}");
    let dst_main = conns_to(&n, DST, Role::Destination)[0].0;
    let t = types(d, dst_main);
    assert_eq!(
        t.contains(&msgc::main::MIGRATE_DST_DO_SEAMLESS),
        do_seamless
    );
    // MIGRATE_END to the target, never ATTACH_CHANNELS; no MIGRATE_DATA anywhere.
    assert!(t.contains(&msgc::main::MIGRATE_END));
    assert!(!t.contains(&msgc::main::ATTACH_CHANNELS), "{name}: {t:?}");
    assert!(d.migrate_data_received.is_empty() && s.migrate_data_sent.is_empty());
    // The target's INIT (same session id) made main ready again.
    let reset = n
        .events
        .iter()
        .position(|e| *e == SessionEvent::SessionReset)
        .unwrap();
    assert!(n.events[reset..].contains(&SessionEvent::ChannelReady {
        channel: MAIN,
        session_id: Some(SRC_SESSION_ID)
    }));
    // Every s1 connection closed at MIGRATE_END, before MIGRATE_END went to s2.
    let end = mini_frame(msgc::main::MIGRATE_END, &[]);
    let pos_end = n
        .actions
        .iter()
        .position(|(_, a)| {
            matches!(a, SessionAction::Transmit { conn, bytes }
                if *conn == dst_main && bytes.as_slice() == end)
        })
        .unwrap();
    for (conn, _) in conns_to(&n, SRC, Role::Source) {
        let pos = n
            .actions
            .iter()
            .position(|(_, a)| *a == SessionAction::Close { conn })
            .unwrap();
        assert!(pos < pos_end);
    }
    assert!(!d.client_is_target());
    n
}

#[test]
fn semi_seamless_after_nack() {
    let n = check_semi("semi-dst-nack", true);
    assert!(has(&n, |e| matches!(
        e,
        SessionEvent::MigrationStarted {
            kind: MigrationKind::Seamless,
            ..
        }
    )));
    assert!(answered_ping(dst(&n), MAIN));
}

#[test]
fn semi_seamless_when_target_lacks_seamless() {
    let n = check_semi("semi-dst-without-seamless-cap", false);
    assert!(answered_ping(dst(&n), MAIN));
}

#[test]
fn semi_seamless_after_plain_begin() {
    let n = check_semi("semi-plain-begin", false);
    assert!(has(&n, |e| matches!(
        e,
        SessionEvent::MigrationStarted {
            kind: MigrationKind::SemiSeamless,
            ..
        }
    )));
    assert!(answered_ping(dst(&n), MAIN));
}

fn is_subsequence(got: &[(u16, Vec<u8>)], want: &[(u16, Vec<u8>)]) -> bool {
    let mut it = want.iter();
    got.iter().all(|g| it.any(|w| w == g))
}

#[test]
fn semi_seamless_app_stream_may_drop_but_never_reorders() {
    let n = check_semi("semi-app-stream", false);
    for kind in [ChannelType::Main, ChannelType::Inputs, ChannelType::Display] {
        let mut got = src(&n).app_messages(kind);
        got.extend(dst(&n).app_messages(kind));
        assert!(
            is_subsequence(&got, &app_of(&n.app_sent, kind)),
            "{kind:?} duplicated or reordered"
        );
        assert!(!dst(&n).app_messages(kind).is_empty(), "{kind:?} on s2");
    }
    // Nothing reached a non-main target channel before the target's MAIN_INIT was sent.
    let init_tick = dst(&n)
        .log
        .iter()
        .find(|g| g.msg_type == msgc::main::MIGRATE_END)
        .unwrap()
        .tick;
    assert!(dst(&n)
        .log
        .iter()
        .filter(|g| g.channel != MAIN)
        .all(|g| g.tick > init_tick));
}

// ---- cancel, failures ------------------------------------------------------------------

#[test]
fn cancel_after_connect_stays_on_source() {
    let n = ok("cancel-after-connect");
    assert!(has(&n, |e| *e == SessionEvent::MigrationCancelled));
    assert!(!has(&n, |e| matches!(e, SessionEvent::Migrated { .. })));
    // The targets are closed; the source connections stay and answer.
    let dst_conns: Vec<ConnId> = conns_to(&n, DST, Role::Destination)
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(dst_conns.len(), 3);
    let c = closes(&n);
    assert!(dst_conns.iter().all(|d| c.contains(d)));
    assert!(dst(&n).open_conns().is_empty());
    assert_eq!(src(&n).open_conns().len(), 3);
    assert!(answered_ping(src(&n), MAIN));
    assert!(answered_ping(src(&n), INPUTS));
    for kind in [ChannelType::Main, ChannelType::Inputs, ChannelType::Display] {
        assert_eq!(src(&n).app_messages(kind), app_of(&n.app_sent, kind));
    }
    assert!(dst(&n).app_messages(ChannelType::Inputs).is_empty());
}

#[test]
fn failed_vm_migration_cancels() {
    let n = ok("migration-failed-cancel");
    assert!(has(&n, |e| *e == SessionEvent::MigrationCancelled));
    assert!(dst(&n).open_conns().is_empty());
    assert!(answered_ping(src(&n), MAIN));
}

/// CONNECT_ERROR on the source, every target closed, the session still answers there.
fn check_connect_error(n: &Network) {
    assert_eq!(replies(n), [msgc::main::MIGRATE_CONNECT_ERROR]);
    assert!(has(n, |e| matches!(
        e,
        SessionEvent::MigrationFailed { .. }
    )));
    assert!(!closed(n));
    assert!(dst(n).open_conns().is_empty());
    // Every target connection the session opened is closed: by the session, or by the
    // server that refused its link.
    let c = closes(n);
    for (conn, _) in conns_to(n, DST, Role::Destination) {
        let refused = dst(n)
            .links
            .iter()
            .any(|l| l.conn == conn && l.result != LinkErr::Ok);
        assert!(c.contains(&conn) || refused, "{conn:?} left open");
    }
    assert_eq!(src(n).open_conns().len(), 3);
}

#[test]
fn target_link_refused_on_second_channel() {
    let n = ok("target-link-refused");
    check_connect_error(&n);
    assert!(errors(&n).contains(&&SessionError::LinkRefused {
        channel: DISPLAY,
        error: LinkErr::PermissionDenied
    }));
    // The target's main and inputs links (accepted) were closed by the client.
    let d = dst(&n);
    for l in d.links.iter().filter(|l| l.result == LinkErr::Ok) {
        assert!(d.closed_by_client.contains(&l.conn), "{l:?}");
    }
    assert!(answered_ping(src(&n), MAIN));
}

#[test]
fn target_unreachable() {
    let n = ok("target-unreachable");
    check_connect_error(&n);
    let c = conns_to(&n, usize::MAX, Role::Destination);
    assert!(c.is_empty());
    assert_eq!(
        n.connects
            .iter()
            .filter(|c| c.role == Role::Destination)
            .count(),
        1,
        "only main was tried"
    );
}

#[test]
fn target_refused_by_policy_is_never_contacted() {
    let n = ok("target-refused-by-policy");
    check_connect_error(&n);
    assert!(n
        .actions
        .iter()
        .any(|(_, a)| matches!(a, SessionAction::CheckTarget { endpoint } if endpoint.host == "dst.example")));
    assert!(!n.connects.iter().any(|c| c.role == Role::Destination));
}

#[test]
fn target_without_the_channel() {
    let n = ok("target-channel-not-available");
    check_connect_error(&n);
    assert!(errors(&n).contains(&&SessionError::LinkRefused {
        channel: DISPLAY,
        error: LinkErr::ChannelNotAvailable
    }));
}

/// The run's CONNECT_ERROR came from the Timeout input, at the deadline set when the
/// policy allowed the target (now + 9000 ms), and not before.
fn check_timeout_path(name: &str) -> Network {
    let n = ok(name);
    check_connect_error(&n);
    let recs = records(&n);
    let allowed = recs
        .iter()
        .find(|r| matches!(r.input, SessionInput::TargetDecision { allow: true }))
        .unwrap()
        .now;
    let failed_at = recs
        .iter()
        .position(|r| {
            r.actions.iter().any(|a| {
                matches!(
                    a,
                    SessionAction::Event(SessionEvent::MigrationFailed { .. })
                )
            })
        })
        .unwrap();
    assert_eq!(recs[failed_at].input, SessionInput::Timeout);
    assert_eq!(recs[failed_at].now, allowed + 9_000);
    let main = conns_to(&n, SRC, Role::Source)[0].0;
    let error = mini_frame(msgc::main::MIGRATE_CONNECT_ERROR, &[]);
    assert!(recs[failed_at].actions.iter().any(
        |a| matches!(a, SessionAction::Transmit { conn, bytes } if *conn == main && bytes.as_slice() == error)
    ));
    n
}

#[test]
fn target_that_never_answers_times_out() {
    let n = check_timeout_path("target-connect-timeout");
    assert_eq!(dst(&n).closed_by_client.len(), 1);
}

#[test]
fn lost_seamless_ack_times_out() {
    let n = check_timeout_path("target-seamless-ack-lost");
    let dst_main = conns_to(&n, DST, Role::Destination)[0].0;
    assert_eq!(
        types(dst(&n), dst_main),
        [msgc::main::MIGRATE_DST_DO_SEAMLESS]
    );
    // All three target links were up (pending on the server) and the session closed them.
    let dst_conns: Vec<ConnId> = conns_to(&n, DST, Role::Destination)
        .iter()
        .map(|c| c.0)
        .collect();
    assert_eq!(dst_conns.len(), 3);
    assert!(dst(&n).links.iter().all(|l| l.result == LinkErr::Ok));
    assert!(dst_conns.iter().all(|c| closes(&n).contains(c)));
}

// ---- switch-host -----------------------------------------------------------------------

#[test]
fn switch_host_links_fresh() {
    let n = ok("switch-host");
    let d = dst(&n);
    assert!(has(
        &n,
        |e| matches!(e, SessionEvent::SwitchHost { target } if target.host == "dst.example")
    ));
    assert!(has(&n, |e| *e == SessionEvent::SessionReset));
    // A fresh link: connection id 0 on main, ATTACH_CHANNELS, the new session id after.
    let to_dst = conns_to(&n, DST, Role::Source);
    assert_eq!(to_dst.len(), 3);
    assert_eq!(d.links[0].channel, MAIN);
    assert_eq!(d.links[0].connection_id, 0);
    assert!(d.links[1..]
        .iter()
        .all(|l| l.connection_id == DST_SESSION_ID));
    assert!(types(d, to_dst[0].0).contains(&msgc::main::ATTACH_CHANNELS));
    assert!(has(&n, |e| *e
        == SessionEvent::ChannelReady {
            channel: MAIN,
            session_id: Some(DST_SESSION_ID)
        }));
    assert_eq!(n.session.session_id(), Some(DST_SESSION_ID));
    assert!(src(&n).open_conns().is_empty());
    assert!(answered_ping(d, MAIN));
    assert!(!n.connects.iter().any(|c| c.role == Role::Destination));
}

/// SWITCH_HOST arrived while the session was still getting to the announced target: the
/// source's VM migration completed first (seen with libvirt: Perform sends
/// client_migrate_info and migrates at once, and a small idle guest migrates in ~0.1 s).
fn check_switch_host_mid_migration(name: &str) -> Network {
    let n = ok(name);
    let d = dst(&n);
    let kinds: Vec<&str> = n
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::MigrationStarted { .. } => Some("started"),
            SessionEvent::MigrationConnected { .. } => Some("connected"),
            SessionEvent::SwitchHost { .. } => Some("switch-host"),
            SessionEvent::SessionReset => Some("reset"),
            SessionEvent::Error { .. } => Some("error"),
            _ => None,
        })
        .collect();
    assert_eq!(kinds, ["started", "switch-host", "reset"], "{name}");
    // Every link to the announced target was closed by the session, and nothing was said
    // to the source about it (the server checks: no CONNECTED after its migration ended).
    let target_links = conns_to(&n, DST, Role::Destination);
    assert!(target_links.iter().all(|(c, _)| closes(&n).contains(c)));
    // Then the fresh link: connection id 0 on main, the destination's session after.
    assert_eq!(conns_to(&n, DST, Role::Source).len(), 3);
    assert!(d
        .links
        .iter()
        .any(|l| l.channel == MAIN && l.connection_id == 0));
    assert_eq!(n.session.session_id(), Some(DST_SESSION_ID));
    assert!(src(&n).open_conns().is_empty());
    assert!(answered_ping(d, MAIN));
    n
}

#[test]
fn switch_host_while_linking_the_target_gives_it_up_and_switches() {
    let n = check_switch_host_mid_migration("switch-host-while-linking-target");
    // The three target links were up (DST_DO_SEAMLESS unanswered) when SWITCH_HOST came.
    assert_eq!(conns_to(&n, DST, Role::Destination).len(), 3);
}

#[test]
fn switch_host_while_checking_the_target_switches() {
    let n = check_switch_host_mid_migration("switch-host-while-checking-target");
    assert!(conns_to(&n, DST, Role::Destination).is_empty());
}

#[test]
fn switch_host_refused_by_policy_stays() {
    let n = ok("switch-host-refused-by-policy");
    let checks = n
        .actions
        .iter()
        .filter(|(_, a)| matches!(a, SessionAction::CheckTarget { .. }))
        .count();
    assert_eq!(checks, 2);
    assert!(errors(&n)
        .iter()
        .any(|e| matches!(e, SessionError::Protocol { .. })));
    assert!(n.connects.iter().all(|c| c.server == Some(SRC)));
    assert_eq!(src(&n).open_conns().len(), 3);
}

// ---- ports and TLS ---------------------------------------------------------------------

fn dst_connects(n: &Network) -> Vec<(u16, Option<Verify>)> {
    n.connects
        .iter()
        .filter(|c| c.role == Role::Destination)
        .map(|c| (c.port, c.tls.clone()))
        .collect()
}

#[test]
fn tls_port_with_subject() {
    let n = ok("begin-tls-subject");
    assert!(migrated(&n, MigrationKind::Seamless));
    let c = dst_connects(&n);
    assert_eq!(c.len(), 3);
    assert!(c
        .iter()
        .all(|x| *x == (5932, Some(Verify::Subject(SUBJECT.into())))));
}

#[test]
fn tls_port_verifies_hostname_and_port_zero_is_absent() {
    let n = ok("begin-tls-hostname");
    assert!(migrated(&n, MigrationKind::Seamless));
    assert!(dst_connects(&n)
        .iter()
        .all(|x| *x == (5932, Some(Verify::Hostname("dst.example".into())))));
    assert!(has(
        &n,
        |e| matches!(e, SessionEvent::MigrationStarted { target, .. }
        if target.port.is_none() && target.tls_port == Some(5932))
    ));
}

#[test]
fn tls_port_preferred_over_plain() {
    let n = ok("begin-both-ports-prefers-tls");
    assert!(dst_connects(&n)
        .iter()
        .all(|x| *x == (5932, Some(Verify::Hostname("dst.example".into())))));
    let n = ok("begin-both-ports-tls-not-preferred");
    assert!(migrated(&n, MigrationKind::Seamless));
    assert!(dst_connects(&n).iter().all(|x| *x == (5931, None)));
}

#[test]
fn sport_zero_and_ffff_are_absent() {
    let n = ok("begin-plain-port-sport-zero");
    assert!(migrated(&n, MigrationKind::Seamless));
    assert!(dst_connects(&n).iter().all(|x| *x == (5931, None)));
    // The default scenario announces sport 0xFFFF.
    let n = ok("seamless-main-inputs-display");
    assert!(dst_connects(&n).iter().all(|x| *x == (5931, None)));
}

#[test]
fn no_usable_port_is_a_connect_error_without_connect() {
    let n = ok("begin-no-usable-port");
    check_connect_error(&n);
    assert!(dst_connects(&n).is_empty());
    assert!(answered_ping(src(&n), MAIN));
}

// ---- source aborts, authentication -------------------------------------------------------

#[test]
fn source_abort_while_armed_closes_the_session() {
    let n = ok("source-aborts-armed");
    assert!(closed(&n));
    assert!(errors(&n).contains(&&SessionError::Transport {
        channel: MAIN,
        reason: "closed by the server".into()
    }));
    assert!(dst(&n).open_conns().is_empty(), "targets closed too");
    assert!(!has(&n, |e| matches!(e, SessionEvent::Migrated { .. })));
}

#[test]
fn source_abort_mid_switch_keeps_what_switched() {
    let n = ok("source-aborts-mid-switch");
    assert!(!closed(&n));
    assert!(has(&n, |e| *e
        == SessionEvent::ChannelSwitched {
            channel: MAIN,
            migrate_data_len: 65
        }));
    for ch in [DISPLAY, INPUTS] {
        assert!(errors(&n)
            .iter()
            .any(|e| matches!(e, SessionError::Transport { channel, .. } if *channel == ch)));
    }
    // The migration ends with main on s2; the orphaned target links are closed.
    assert!(migrated(&n, MigrationKind::Seamless));
    assert_eq!(dst(&n).open_conns().len(), 1);
    assert!(answered_ping(dst(&n), MAIN));
}

#[test]
fn wrong_password_is_refused() {
    let n = ok("link-wrong-password");
    assert!(errors(&n).contains(&&SessionError::LinkRefused {
        channel: MAIN,
        error: LinkErr::PermissionDenied
    }));
    assert!(closed(&n));
    assert_eq!(src(&n).links[0].result, LinkErr::PermissionDenied);
}

// ---- hostile servers -------------------------------------------------------------------

fn wire_error_on(n: &Network, ch: ChannelRef) -> bool {
    errors(n)
        .iter()
        .any(|e| matches!(e, SessionError::Wire { channel, .. } if *channel == ch))
}

#[test]
fn hostile_messages_give_typed_errors() {
    for name in [
        "hostile-truncated-begin",
        "hostile-begin-bad-pointer",
        "hostile-begin-host-without-nul",
        "hostile-bad-channels-list",
        "hostile-short-main-init",
    ] {
        let n = ok(name);
        assert!(wire_error_on(&n, MAIN), "{name}: {:?}", errors(&n));
        assert!(!closed(&n), "{name}");
        assert!(!has(&n, |e| matches!(
            e,
            SessionEvent::MigrationStarted { .. }
        )));
        assert!(n.connects.iter().all(|c| c.server == Some(SRC)));
        assert!(answered_ping(src(&n), MAIN), "{name}: the session goes on");
    }
}

#[test]
fn hostile_sizes_close_only_that_channel() {
    let n = ok("hostile-oversized-body-inputs");
    assert!(wire_error_on(&n, INPUTS));
    assert!(!closed(&n));
    assert_eq!(src(&n).open_conns().len(), 2);
    assert!(answered_ping(src(&n), MAIN));
    let n = ok("hostile-garbage-display");
    assert!(wire_error_on(&n, DISPLAY));
    assert!(!closed(&n));
    let n = ok("hostile-oversized-body-main");
    assert!(wire_error_on(&n, MAIN));
    assert!(closed(&n));
    assert!(src(&n).open_conns().is_empty());
}

#[test]
fn hostile_migration_messages_outside_a_migration() {
    let n = ok("hostile-migrate-while-idle");
    let protocol: Vec<_> = errors(&n)
        .into_iter()
        .filter(|e| matches!(e, SessionError::Protocol { .. }))
        .collect();
    assert_eq!(protocol.len(), 2, "{protocol:?}");
    // No FLUSH_MARK answered the stray MIGRATE (it would abort QEMU); the real migration
    // afterwards still works.
    assert!(migrated(&n, MigrationKind::Seamless));
}

#[test]
fn hostile_no_migrate_data_after_flush() {
    let n = ok("hostile-no-migrate-data-after-flush");
    assert!(errors(&n)
        .iter()
        .any(|e| matches!(e, SessionError::Protocol { channel, .. } if *channel == INPUTS)));
    let d_inputs = conns_to(&n, DST, Role::Destination)
        .into_iter()
        .find(|c| c.1 == INPUTS)
        .unwrap()
        .0;
    assert!(types(dst(&n), d_inputs).is_empty(), "nothing forwarded");
    // After the source's forced disconnect the migration ends with what switched.
    assert!(migrated(&n, MigrationKind::Seamless));
    assert!(!dst(&n).open_conns().contains(&d_inputs));
}

#[test]
fn hostile_link_replies() {
    for name in ["hostile-garbage-link-reply", "hostile-short-link-reply"] {
        let n = ok(name);
        assert!(wire_error_on(&n, MAIN), "{name}");
        check_connect_error(&n);
        assert!(answered_ping(src(&n), MAIN));
    }
}

// ---- every scenario ----------------------------------------------------------------------

#[test]
fn every_scenario_settles_without_violations() {
    let all = corpus();
    assert!(all.len() >= 35, "only {} scenarios", all.len());
    for s in &all {
        let n = run(s);
        assert!(!n.stuck, "{}", s.name);
        for srv in &n.servers {
            assert!(
                srv.violations.is_empty(),
                "{}: {:?}",
                s.name,
                srv.violations
            );
        }
        // The session never leaves a connection it no longer knows open on a server.
        if !closed(&n) {
            assert!(n.session.channels().count() >= 1, "{}", s.name);
        }
    }
}

/// Events and the concatenated transmitted bytes per connection.
type Observed = (
    Vec<SessionEvent>,
    std::collections::BTreeMap<ConnId, Vec<u8>>,
);

fn observe(s: &SpiceScenario, chunking: Chunking) -> Observed {
    let n = run_with(s, chunking);
    (n.events, n.transmitted)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Random chunk splits of every server→client stream give the same events and the same
    /// transmitted bytes per connection.
    #[test]
    fn chunking_does_not_matter(seed in any::<u64>(), max in 1usize..80) {
        for s in corpus() {
            let whole = observe(&s, Chunking::Whole);
            let split = observe(&s, Chunking::Random { seed, max });
            prop_assert_eq!(&whole.0, &split.0, "{}: events", s.name);
            prop_assert_eq!(&whole.1, &split.1, "{}: transmitted", s.name);
        }
    }
}

// ---- the simulated server's own checks (so a broken client would fail) --------------------

/// A server with one linked connection `ConnId(1)` on `channel`, as target if `cid ≠ 0`.
fn linked(channel: ChannelRef, cid: u32) -> SimServer {
    use livemig_core::spice::wire::{Caps, LinkMess};
    let mut cfg = ServerConfig::new("sim", "h", 1, 77);
    cfg.channels = vec![INPUTS, DISPLAY];
    let mut s = SimServer::new(cfg);
    let link = |s: &mut SimServer, conn: ConnId, channel: ChannelRef, cid: u32| {
        s.accept(conn);
        let mut out = Vec::new();
        LinkMess {
            connection_id: cid,
            channel_type: channel.kind,
            channel_id: channel.id,
            common_caps: Caps::single(0x0b),
            channel_caps: Caps::single(if channel == MAIN { 0x0f } else { 0 }),
        }
        .encode(&mut out)
        .unwrap();
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&fake_ticket(&fake_public_key(1), ""));
        s.receive(0, conn, &out);
    };
    if channel == MAIN {
        link(&mut s, ConnId(1), MAIN, cid);
    } else {
        link(&mut s, ConnId(9), MAIN, 0);
        link(&mut s, ConnId(1), channel, 77);
    }
    while s.poll_output().is_some() {}
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    s
}

#[test]
fn sim_flags_unrequested_flush_mark() {
    let mut s = linked(INPUTS, 0);
    s.receive(1, ConnId(1), &mini_frame(msgc::MIGRATE_FLUSH_MARK, &[]));
    assert!(s.violations[0].contains("unrequested FLUSH_MARK"));
}

#[test]
fn sim_flags_do_seamless_on_a_non_target() {
    let mut s = linked(MAIN, 0);
    s.receive(
        1,
        ConnId(1),
        &mini_frame(msgc::main::MIGRATE_DST_DO_SEAMLESS, &1u32.to_le_bytes()),
    );
    assert!(s.violations[0].contains("non-target"));
}

#[test]
fn sim_flags_bad_migrate_data_magic_and_unsolicited_data() {
    // A target main after ACK waits for "MNMD"; "ICMD" aborts QEMU.
    let mut s = linked(MAIN, 5);
    s.receive(
        1,
        ConnId(1),
        &mini_frame(msgc::main::MIGRATE_DST_DO_SEAMLESS, &1u32.to_le_bytes()),
    );
    let mut body = b"ICMD".to_vec();
    body.extend_from_slice(&[1, 0, 0, 0]);
    body.resize(65, 0);
    s.receive(2, ConnId(1), &mini_frame(msgc::MIGRATE_DATA, &body));
    assert!(
        s.violations[0].contains("bad MIGRATE_DATA"),
        "{:?}",
        s.violations
    );
    // On a channel that is not waiting for it.
    let mut s = linked(INPUTS, 0);
    s.receive(
        1,
        ConnId(1),
        &mini_frame(msgc::MIGRATE_DATA, b"ICMD\x01\0\0\0\0\0"),
    );
    assert!(s.violations[0].contains("not waiting"));
}

#[test]
fn sim_flags_data_after_flush_mark() {
    use livemig_tests::spice_sim::DstTarget;
    let mut s = linked(INPUTS, 0);
    s.begin(DstTarget {
        host: "d".into(),
        port: 2,
        sport: 0xFFFF,
        cert_subject: None,
    });
    s.receive(
        1,
        ConnId(9),
        &mini_frame(msgc::main::MIGRATE_CONNECTED_SEAMLESS, &[]),
    );
    s.end(true);
    s.receive(2, ConnId(1), &mini_frame(msgc::MIGRATE_FLUSH_MARK, &[]));
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(s.migrate_data_sent.len(), 1);
    s.receive(
        3,
        ConnId(1),
        &mini_frame(msgc::inputs::KEY_DOWN, &5u32.to_le_bytes()),
    );
    assert!(
        s.violations.iter().any(|v| v.contains("after FLUSH_MARK")),
        "{:?}",
        s.violations
    );
}

#[test]
fn sim_blocks_at_twice_the_window() {
    let mut s = linked(DISPLAY, 0);
    let writes = |s: &mut SimServer| {
        std::iter::from_fn(|| s.poll_output())
            .filter(|o| matches!(o, ServerOut::Bytes { .. }))
            .count()
    };
    s.burst(DISPLAY, 100);
    // SET_ACK counted one; 40 more make 41 unacked, then the server waits.
    assert_eq!(writes(&mut s), 40);
    // An ACK before ACK_SYNC is for an old generation: ignored.
    s.receive(1, ConnId(1), &mini_frame(msgc::ACK, &[]));
    assert_eq!(writes(&mut s), 0);
    s.receive(
        2,
        ConnId(1),
        &mini_frame(msgc::ACK_SYNC, &1u32.to_le_bytes()),
    );
    s.receive(3, ConnId(1), &mini_frame(msgc::ACK, &[]));
    assert_eq!(writes(&mut s), 20);
    assert_eq!(s.max_unacked, 41);
}

#[test]
fn target_dying_while_armed_waits_for_the_source() {
    let n = ok("target-dies-while-armed");
    // The lost target is reported, the session stays on s1 and sends nothing to the source
    // until its MIGRATE_CANCEL; a new BEGIN afterwards links the target again.
    assert!(errors(&n)
        .iter()
        .any(|e| matches!(e, SessionError::Transport { channel, .. } if *channel == MAIN)));
    let cancelled = n
        .events
        .iter()
        .position(|e| *e == SessionEvent::MigrationCancelled)
        .unwrap();
    assert!(!n.events[..cancelled]
        .iter()
        .any(|e| matches!(e, SessionEvent::MigrationFailed { .. })));
    assert_eq!(
        replies(&n),
        [
            msgc::main::MIGRATE_CONNECTED_SEAMLESS,
            msgc::main::MIGRATE_CONNECTED_SEAMLESS
        ]
    );
    assert!(answered_ping(src(&n), MAIN));
    assert_eq!(src(&n).open_conns().len(), 3);
    assert_eq!(dst(&n).open_conns().len(), 3);
    assert!(!closed(&n));
}
