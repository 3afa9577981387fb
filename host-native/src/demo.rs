//! The main job: a real seamless migration between two local QEMUs with the native client
//! following, every step printed with its time (spec/qemu-spice-interop.md).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use livemig_core::spice::session::{
    ChannelRef, Endpoint, MigrationKind, SessionConfig, SessionEvent,
};
use livemig_core::spice::wire::consts::{msg, msgc, ChannelType};

use crate::qemu::pair::{PairOptions, QemuPair, Side};
use crate::spice::client::{spawn, ClientHandle, ClientOptions};

const T: Duration = Duration::from_secs(10);

/// What the demo measured.
#[derive(Debug, Clone)]
pub struct DemoReport {
    /// Channels the client linked (main included).
    pub channels: usize,
    /// The session id every destination channel must carry.
    pub session_id: u32,
    /// client_migrate_info → every destination channel linked (MigrationConnected).
    pub connect_ms: f64,
    /// QEMU's migration total time.
    pub migration_ms: u64,
    /// Migration completed → SPICE_MIGRATE_COMPLETED (QMP timestamps).
    pub completed_lag_ms: f64,
    /// Bytes of MIGRATE_DATA forwarded per channel.
    pub forwarded: Vec<(ChannelRef, u64)>,
    /// The recorded trace.
    pub trace: Option<String>,
}

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// QEMU.
    #[error("QEMU: {0}")]
    Qemu(#[from] crate::qemu::pair::PairError),
    /// The client.
    #[error("client: {0}")]
    Client(#[from] crate::spice::client::ClientError),
    /// A check failed.
    #[error("check failed: {0}")]
    Check(String),
}

fn wait(
    c: &mut ClientHandle,
    what: &str,
    pred: impl FnMut(&SessionEvent) -> bool,
) -> Result<(), DemoError> {
    c.wait_event(T, what, pred)
        .map(|_| ())
        .map_err(DemoError::from)
}

/// Run the demo; `log` receives one readable line per step.
pub fn spice_seamless(record: bool, mut log: impl FnMut(&str)) -> Result<DemoReport, DemoError> {
    let t0 = Instant::now();
    let mut line = |s: &str| {
        let mut out = String::new();
        let _ = write!(out, "{:>8.1} ms  {s}", t0.elapsed().as_secs_f64() * 1e3);
        log(&out);
    };
    let mut pair = QemuPair::start(PairOptions::default())?;
    let src = pair.source_spice();
    let dst = pair.dest_spice();
    line(&format!(
        "two QEMUs up: source SPICE {}:{}, destination {}:{} (seamless-migration=on)",
        src.host, src.port, dst.host, dst.port
    ));
    let cfg = SessionConfig::new(Endpoint {
        host: src.host.clone(),
        port: Some(src.port),
        tls_port: None,
        cert_subject: None,
    });
    let mut c = spawn(
        cfg,
        ClientOptions {
            record,
            ..ClientOptions::default()
        },
    );
    let ready = c.wait_event(
        T,
        "main ready",
        |e| matches!(e, SessionEvent::ChannelReady { channel, .. } if *channel == ChannelRef::MAIN),
    )?;
    let SessionEvent::ChannelReady {
        session_id: Some(sid),
        ..
    } = ready.event
    else {
        return Err(DemoError::Check("MAIN_INIT without a session id".into()));
    };
    line(&format!("client linked main, session id {sid}"));
    let mut linked = 1;
    while linked < 4 {
        let e = c.wait_event(T, "channels", |e| {
            matches!(e, SessionEvent::ChannelReady { channel, .. } if *channel != ChannelRef::MAIN)
        })?;
        if let SessionEvent::ChannelReady { channel, .. } = e.event {
            line(&format!("client linked {:?} {}", channel.kind, channel.id));
        }
        linked += 1;
    }
    let inputs = ChannelRef {
        kind: ChannelType::Inputs,
        id: 0,
    };
    let motion = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0].to_vec();
    for _ in 0..8 {
        c.send(inputs, msgc::inputs::MOUSE_MOTION, motion.clone());
    }
    let is_ack = |e: &SessionEvent| {
        matches!(e, SessionEvent::Message { channel, msg_type, .. }
            if channel.kind == ChannelType::Inputs && *msg_type == msg::inputs::MOUSE_MOTION_ACK)
    };
    wait(&mut c, "motion ack", is_ack)?;
    line("8 mouse motions sent on the source; the server acknowledged");

    let asked = Instant::now();
    pair.client_migrate_info(&dst)?;
    line("QMP client_migrate_info → source sends MIGRATE_BEGIN_SEAMLESS");
    wait(&mut c, "MigrationStarted", |e| {
        matches!(e, SessionEvent::MigrationStarted { .. })
    })?;
    wait(&mut c, "MigrationConnected", |e| {
        matches!(
            e,
            SessionEvent::MigrationConnected {
                kind: MigrationKind::Seamless
            }
        )
    })?;
    let connect_ms = asked.elapsed().as_secs_f64() * 1e3;
    line(&format!(
        "client linked all 4 channels to the destination with connection id {sid}, \
         DST_DO_SEAMLESS acked, CONNECTED_SEAMLESS sent ({connect_ms:.1} ms)"
    ));
    pair.migrate()?;
    line("QMP migrate");
    let stats = pair.wait_migration_completed(T)?;
    line(&format!(
        "migration completed: total {} ms, downtime {} ms",
        stats.total_time_ms, stats.downtime_ms
    ));
    wait(&mut c, "Migrated", |e| {
        matches!(
            e,
            SessionEvent::Migrated {
                kind: MigrationKind::Seamless
            }
        )
    })?;
    c.drain();
    let forwarded: Vec<(ChannelRef, u64)> = c
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
    for (ch, len) in &forwarded {
        let how = if *len > 0 {
            format!("MIGRATE → FLUSH_MARK, MIGRATE_DATA {len} B forwarded byte-for-byte")
        } else {
            "MIGRATE (no data asked) → switched at once".to_owned()
        };
        line(&format!("  {:?} {}: {how}", ch.kind, ch.id));
    }
    line("client now on the destination; source connections closed");
    let done = pair.wait_spice_migrate_completed(T)?;
    let lag_ms = done
        .timestamp_us
        .saturating_sub(stats.completed_at_timestamp_us) as f64
        / 1e3;
    line(&format!(
        "source QEMU: SPICE_MIGRATE_COMPLETED, {lag_ms:.1} ms after the migration completed"
    ));
    let chans = pair.spice_channels(Side::Destination)?;
    if chans.len() != 4 || chans.iter().any(|c| c.connection_id != sid) {
        return Err(DemoError::Check(format!(
            "destination channels {chans:?} do not all carry {sid}"
        )));
    }
    line("destination query-spice: 4 channels, all with the source session's connection id");
    for _ in 0..4 {
        c.send(inputs, msgc::inputs::MOUSE_MOTION, motion.clone());
    }
    wait(&mut c, "motion ack on destination", is_ack)?;
    line("4 more motions on the destination; it acknowledged (the count carried over)");
    if lag_ms >= 1000.0 {
        return Err(DemoError::Check(format!(
            "SPICE_MIGRATE_COMPLETED {lag_ms} ms after completion"
        )));
    }
    let report = c.stop();
    drop(pair);
    line("torn down: client stopped, both QEMUs gone");
    Ok(DemoReport {
        channels: 4,
        session_id: sid,
        connect_ms,
        migration_ms: stats.total_time_ms,
        completed_lag_ms: lag_ms,
        forwarded,
        trace: report.trace,
    })
}
