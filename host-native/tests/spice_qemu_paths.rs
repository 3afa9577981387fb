//! Real QEMU: semi-seamless, cancel, unreachable target, policy refusal, ticket password with
//! TLS (subject verified; a wrong subject refused). Never skipped.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::*;
use livemig_core::spice::session::{MigrationKind, Role, SessionAction, SessionEvent, Verify};
use livemig_host::qemu::pair::{PairOptions, Side, SpiceAddr};
use livemig_host::qemu::tls::TlsDir;
use livemig_host::spice::client::ClientOptions;
use serde_json::json;

fn failed(e: &SessionEvent) -> bool {
    matches!(e, SessionEvent::MigrationFailed { .. })
}

#[test]
fn semi_seamless_migration_resets_and_follows() {
    let mut pair = start(PairOptions {
        seamless: false,
        ..PairOptions::default()
    });
    let (mut c, sid, channels) = link(&pair, |_| {}, ClientOptions::default());
    let dest = pair.dest_spice();
    let (stats, done) = migrate_and_follow(&mut pair, &mut c, &dest, MigrationKind::SemiSeamless);
    assert!(
        done.timestamp_us
            .saturating_sub(stats.completed_at_timestamp_us)
            < 1_000_000
    );
    c.drain();
    assert_eq!(count(&c, |e| matches!(e, SessionEvent::SessionReset)), 1);
    assert_eq!(
        count(&c, |e| matches!(e, SessionEvent::ChannelSwitched { .. })),
        0
    );
    assert_destination_channels(&mut pair, sid, channels.len() + 1);
    still_answers(&mut c);
}

#[test]
fn cancelled_migration_keeps_the_client_on_the_source() {
    let mut pair = start(PairOptions::default());
    let (mut c, _, _) = link(&pair, |_| {}, ClientOptions::default());
    pair.client_migrate_info(&pair.dest_spice()).unwrap();
    c.wait_event(T, "connected", |e| {
        matches!(e, SessionEvent::MigrationConnected { .. })
    })
    .unwrap();
    pair.execute(
        Side::Source,
        "migrate-set-parameters",
        json!({"max-bandwidth": 1024}),
    )
    .unwrap();
    pair.migrate().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    pair.execute(Side::Source, "migrate_cancel", json!({}))
        .unwrap();
    if let Err(e) = c.wait_event(T, "MigrationCancelled", |e| {
        matches!(e, SessionEvent::MigrationCancelled)
    }) {
        c.drain();
        let evs: Vec<String> = c
            .seen()
            .iter()
            .map(|e| format!("{:?}", e.event))
            .filter(|s| !s.contains("Message"))
            .collect();
        panic!("{e}: {evs:#?}");
    }
    still_answers(&mut c);
    assert_eq!(pair.query_status(Side::Source).unwrap(), "running");
    c.drain();
    assert_eq!(count(&c, |e| matches!(e, SessionEvent::Migrated { .. })), 0);
}

#[test]
fn unreachable_target_answers_connect_error_and_stays() {
    let mut pair = start(PairOptions::default());
    let (mut c, _, _) = link(&pair, |_| {}, ClientOptions::default());
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let nowhere = SpiceAddr {
        host: "127.0.0.1".into(),
        port,
        tls_port: None,
        cert_subject: None,
        unix: None,
    };
    pair.client_migrate_info(&nowhere).unwrap();
    c.wait_event(T, "MigrationFailed", failed).unwrap();
    still_answers(&mut c);
}

#[test]
fn a_refused_target_is_never_contacted() {
    let mut pair = start(PairOptions::default());
    let opts = ClientOptions {
        policy: Arc::new(|_| false),
        ..ClientOptions::default()
    };
    let (mut c, _, _) = link(&pair, |_| {}, opts);
    pair.client_migrate_info(&pair.dest_spice()).unwrap();
    c.wait_event(T, "MigrationFailed", failed).unwrap();
    still_answers(&mut c);
    let report = c.stop();
    assert!(report.connects.iter().all(|a| !matches!(
        a,
        SessionAction::Connect {
            role: Role::Destination,
            ..
        }
    )));
}

fn tls_pair() -> (livemig_host::qemu::pair::QemuPair, TlsDir) {
    let tls = TlsDir::generate_temp_default().unwrap();
    let pair = start(PairOptions {
        password: Some("s3cret".into()),
        tls: Some(tls.clone()),
        ..PairOptions::default()
    });
    (pair, tls)
}

fn tls_client(pair: &livemig_host::qemu::pair::QemuPair, tls: &TlsDir) -> ClientOptions {
    let _ = pair;
    ClientOptions {
        ca_pem: Some(tls.ca_cert_pem.clone().into_bytes()),
        record: true,
        ..ClientOptions::default()
    }
}

#[test]
fn password_and_tls_with_the_destination_subject_verified() {
    let (mut pair, tls) = tls_pair();
    let src = pair.source_spice();
    let (mut c, sid, _) = link(
        &pair,
        |cfg| {
            cfg.server = endpoint(&src, true);
            cfg.password = "s3cret".into();
        },
        tls_client(&pair, &tls),
    );
    let dest = pair.dest_spice();
    assert!(dest.cert_subject.is_some() && dest.tls_port.is_some());
    migrate_and_follow(&mut pair, &mut c, &dest, MigrationKind::Seamless);
    let dst = pair.spice_channels(Side::Destination).unwrap();
    assert!(
        dst.iter().all(|ch| ch.connection_id == sid && ch.tls),
        "{dst:?}"
    );
    still_answers(&mut c);
    let report = c.stop();
    let subject = dest.cert_subject.clone().unwrap();
    let dest_connects: Vec<&SessionAction> = report
        .connects
        .iter()
        .filter(|a| {
            matches!(
                a,
                SessionAction::Connect {
                    role: Role::Destination,
                    ..
                }
            )
        })
        .collect();
    assert!(!dest_connects.is_empty());
    for a in dest_connects {
        let SessionAction::Connect { port, tls, .. } = a else {
            unreachable!()
        };
        assert_eq!(Some(*port), dest.tls_port);
        assert_eq!(tls.as_ref(), Some(&Verify::Subject(subject.clone())));
    }
    // The recorded session replays identically.
    let trace = report.trace.unwrap();
    livemig_core::trace::replay(&trace).unwrap();
}

#[test]
fn a_wrong_destination_subject_is_refused() {
    let (mut pair, tls) = tls_pair();
    let src = pair.source_spice();
    let (mut c, _, _) = link(
        &pair,
        |cfg| {
            cfg.server = endpoint(&src, true);
            cfg.password = "s3cret".into();
        },
        tls_client(&pair, &tls),
    );
    let mut dest = pair.dest_spice();
    dest.cert_subject = Some("C=XX,L=livemig,O=livemig,CN=somebody-else".into());
    pair.client_migrate_info(&dest).unwrap();
    let e = c.wait_event(T, "MigrationFailed", failed).unwrap();
    let SessionEvent::MigrationFailed { reason } = e.event else {
        unreachable!()
    };
    assert!(
        reason.contains("subject") || reason.contains("certificate"),
        "{reason}"
    );
    still_answers(&mut c);
}

#[test]
fn a_wrong_password_is_refused() {
    let (pair, tls) = tls_pair();
    let src = pair.source_spice();
    let mut cfg = livemig_core::spice::session::SessionConfig::new(endpoint(&src, true));
    cfg.password = "wrong".into();
    let mut c = livemig_host::spice::client::spawn(cfg, tls_client(&pair, &tls));
    let e = c
        .wait_event(T, "link refused", |e| {
            matches!(e, SessionEvent::Error { .. })
        })
        .unwrap();
    assert!(
        format!("{:?}", e.event).contains("PermissionDenied"),
        "{e:?}"
    );
}
