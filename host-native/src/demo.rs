//! The main job. [`libvirt_spice`]: two real libvirt daemons, a VM with SPICE, the native
//! SPICE client linked to it, `livemig migrate` moving the VM and the client following
//! through a seamless migration, every step printed with its time (spec/libvirt-real-peer.md
//! §3, spec/libvirt-migration.md §7). [`spice_seamless`]: the same client between two plain
//! QEMUs driven over QMP (spec/qemu-spice-interop.md).

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use livemig_core::migration::orchestrator::{
    Host, OrchestratorInput, Procedure, ProtocolRequest, Verdict,
};
use livemig_core::migration::MigrateFlags;
use livemig_core::spice::session::{
    ChannelRef, Endpoint, MigrationKind, SessionConfig, SessionEvent,
};
use livemig_core::spice::wire::consts::{msg, msgc, ChannelType};

use crate::libvirt_hosts::{virsh, Host as LvHost, TwoHosts, HOST_A, HOST_B};
use crate::migrate::{self, describe_cookie, MigrateOptions};
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
    /// The libvirt environment.
    #[error("libvirt hosts: {0}")]
    Hosts(#[from] crate::libvirt_hosts::HostsError),
    /// livemig migrate could not start.
    #[error("livemig migrate: {0}")]
    Migrate(#[from] crate::migrate::MigrateError),
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

/// Start a client and wait for the main channel's session id (and when it came).
fn link_main(cfg: SessionConfig, record: bool) -> Result<(ClientHandle, u32, Instant), DemoError> {
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
    match ready.event {
        SessionEvent::ChannelReady {
            session_id: Some(sid),
            ..
        } => Ok((c, sid, ready.at)),
        _ => Err(DemoError::Check("MAIN_INIT without a session id".into())),
    }
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
    let (mut c, sid, _) = link_main(cfg, record)?;
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

// ---------------------------------------------------------------------------------------
// The libvirt story: two daemons, a VM with SPICE, livemig migrate, the client following.

/// Where the SPICE client follows the VM: B's address, reachable from the root namespace
/// (libvirt-real-peer.md §3).
pub const GRAPHICS_URI: &str = "spice://10.77.0.2:5940";

/// The migration bandwidth cap on the source, MiB/s. Uncapped, this idle 64 MiB guest
/// migrates in about 0.1 s (mostly zero pages), faster than a client links four channels to
/// the destination on a busy 2-core machine; spice-server then falls back to SWITCH_HOST
/// (spice-migration.md §5, "completed, not seamless"). A real VM's migration takes seconds;
/// the cap gives this one about that.
pub const BANDWIDTH_MIBPS: u32 = 1;

/// One migration step as the demo saw it.
#[derive(Debug, Clone)]
pub struct StepTiming {
    /// The daemon called.
    pub host: Host,
    /// The procedure.
    pub procedure: Procedure,
    /// `cancelled` of Finish3/Confirm3.
    pub cancelled: Option<bool>,
    /// How long the call took, ms.
    pub took_ms: f64,
    /// When its answer reached livemig, ms since the demo started.
    pub done_ms: f64,
    /// What came back, readably (cookies through [`describe_cookie`]).
    pub result: String,
}

/// What the libvirt demo measured and checked (it fails with [`DemoError::Check`] when a
/// check does not hold; the fields keep the evidence).
#[derive(Debug, Clone)]
pub struct LibvirtDemoReport {
    /// The session id from MAIN_INIT on the source.
    pub session_id: u32,
    /// Channels linked on the source, main first.
    pub channels: Vec<ChannelRef>,
    /// The orchestrator's verdict.
    pub verdict: Verdict,
    /// Every call of `livemig migrate`, in order.
    pub steps: Vec<StepTiming>,
    /// `migrate::run` from start to report, ms.
    pub migrate_ms: f64,
    /// Where the source told the client to go (MIGRATE_BEGIN_SEAMLESS).
    pub relocation_target: Option<Endpoint>,
    /// The client's migration events, in order (`MigrationStarted(Seamless)`, ...).
    pub migration_events: Vec<String>,
    /// MIGRATE_DATA bytes forwarded per channel (ChannelSwitched).
    pub switched: Vec<(ChannelRef, u64)>,
    /// Fallbacks seen after the migration started (SwitchHost, SessionReset, a second
    /// MAIN_INIT, MIGRATE_END, SWITCH_HOST): must be empty.
    pub fallbacks: Vec<String>,
    /// The guest runs on B only (libvirt, process and network namespace).
    pub runs_only_on_b: bool,
    /// `connection-id` of every SPICE channel on B (query-spice), as u32.
    pub destination_connection_ids: Vec<u32>,
    /// 2 motions after the switch completed the 4-motion ack bunch begun on the source.
    pub count_carried: bool,
    /// 4 more motions on B were acknowledged.
    pub answered_on_destination: bool,
    /// The client's MigrationConnected event (target linked, CONNECTED_SEAMLESS sent), ms
    /// since the demo started.
    pub connected_ms: f64,
    /// The client's Migrated event, ms.
    pub migrated_ms: f64,
    /// Finish3's answer reached livemig (Confirm3 was called right after), ms.
    pub finish_done_ms: f64,
    /// Confirm3 cannot have completed before this: Finish's answer + Confirm's duration.
    pub confirm_done_not_before_ms: f64,
    /// Confirm3's answer reached livemig, ms.
    pub confirm_done_ms: f64,
    /// SPICE_MIGRATE_COMPLETED of the source QEMU reached `virsh qemu-monitor-event`, ms.
    pub spice_migrate_completed_ms: Option<f64>,
    /// The source daemon logged qemuMigrationSrcWaitForSpice ("Waiting for SPICE").
    pub source_waited_for_spice: bool,
    /// The whole story, teardown included, ms.
    pub total_ms: f64,
    /// The client's session trace (when recording).
    pub trace: Option<String>,
    /// The orchestrator's trace (when recording).
    pub migration_trace: Option<String>,
}

fn check(ok: bool, what: impl FnOnce() -> String) -> Result<(), DemoError> {
    if ok {
        Ok(())
    } else {
        Err(DemoError::Check(what()))
    }
}

fn step_result(i: &OrchestratorInput) -> String {
    use OrchestratorInput as I;
    match i {
        I::Begun { cookie, xml } => format!(
            "cookie {}; domain XML {} B",
            describe_cookie(cookie.as_slice()),
            xml.len()
        ),
        I::Prepared { cookie, uri } => format!(
            "cookie {}; uri {}",
            describe_cookie(cookie.as_slice()),
            uri.as_deref().unwrap_or("(none)")
        ),
        I::Performed { cookie } => format!("cookie {}", describe_cookie(cookie.as_slice())),
        I::Finished { domain, cookie } => format!(
            "{} runs on the destination; cookie {}",
            domain.name,
            describe_cookie(cookie.as_slice())
        ),
        I::Confirmed => "source confirmed: its QEMU is gone".into(),
        other => crate::present::input(other),
    }
}

fn channel_name(c: &ChannelRef) -> String {
    format!("{:?} {}", c.kind, c.id).to_lowercase()
}

/// A readable line for a client event of interest during the migration.
fn describe_event(e: &SessionEvent) -> Option<String> {
    Some(match e {
        SessionEvent::MigrationStarted { kind, target } => format!(
            "source sent MIGRATE_BEGIN{} → target {}:{}",
            if *kind == MigrationKind::Seamless {
                "_SEAMLESS"
            } else {
                ""
            },
            target.host,
            target.port.map_or("-".into(), |p| p.to_string())
        ),
        SessionEvent::MigrationConnected { kind } => format!(
            "every channel linked to the destination with the session's connection id; \
             {kind:?} accepted, CONNECTED{} sent",
            if *kind == MigrationKind::Seamless {
                "_SEAMLESS"
            } else {
                ""
            }
        ),
        SessionEvent::ChannelSwitched {
            channel,
            migrate_data_len,
        } => {
            if *migrate_data_len > 0 {
                format!(
                    "{}: MIGRATE → FLUSH_MARK, MIGRATE_DATA {migrate_data_len} B forwarded \
                     byte for byte, switched",
                    channel_name(channel)
                )
            } else {
                format!(
                    "{}: MIGRATE (no data asked), switched",
                    channel_name(channel)
                )
            }
        }
        SessionEvent::Migrated { kind } => {
            format!("Migrated ({kind:?}): every channel on the destination")
        }
        SessionEvent::MigrationFailed { reason } => format!("migration FAILED: {reason}"),
        SessionEvent::MigrationCancelled => "migration cancelled by the source".into(),
        SessionEvent::SwitchHost { target } => format!("SWITCH_HOST to {}", target.host),
        SessionEvent::SessionReset => "session reset".into(),
        SessionEvent::Error { error } => format!("error: {error}"),
        SessionEvent::Closed { reason } => format!("closed: {reason}"),
        SessionEvent::ChannelReady { channel, .. } => format!("{} ready", channel_name(channel)),
        SessionEvent::Message { .. } => return None,
    })
}

/// `virsh qemu-monitor-event` on the source, waiting for SPICE_MIGRATE_COMPLETED (QMP
/// belongs to libvirt; libvirt forwards every QEMU event to such listeners).
struct EventWatch {
    child: Child,
    seen: mpsc::Receiver<Instant>,
}

impl EventWatch {
    fn start(host: &LvHost, event: &str) -> Result<EventWatch, DemoError> {
        let mut child = Command::new("virsh")
            .args([
                "-c",
                &host.uri(),
                "qemu-monitor-event",
                "tiny",
                "--event",
                event,
            ])
            .args(["--timeout", "120"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| DemoError::Check(format!("virsh qemu-monitor-event: {e}")))?;
        let (tx, seen) = mpsc::channel();
        let out = child.stdout.take();
        let event = event.to_owned();
        std::thread::spawn(move || {
            let Some(out) = out else { return };
            for l in BufReader::new(out).lines() {
                let Ok(l) = l else { break };
                if l.contains(&event) {
                    let _ = tx.send(Instant::now());
                }
            }
        });
        Ok(EventWatch { child, seen })
    }
}

impl Drop for EventWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `query-spice` on `host` through libvirt: (channel type, connection-id as u32, client host).
fn query_spice_channels(host: &LvHost) -> Result<Vec<(u64, u32, String)>, DemoError> {
    let out = virsh(
        host,
        &[
            "qemu-monitor-command",
            "tiny",
            "--pretty",
            r#"{"execute":"query-spice"}"#,
        ],
    )?;
    let v: serde_json::Value = serde_json::from_str(&out)
        .map_err(|e| DemoError::Check(format!("query-spice answer {out:?}: {e}")))?;
    let chans = v["return"]["channels"]
        .as_array()
        .ok_or_else(|| DemoError::Check(format!("query-spice without channels: {out}")))?;
    chans
        .iter()
        .map(|c| {
            // QMP's connection-id is a signed int32; the session id is its u32 bits.
            let id = c["connection-id"]
                .as_i64()
                .ok_or_else(|| DemoError::Check(format!("channel without connection-id: {c}")))?;
            Ok((
                c["channel-type"].as_u64().unwrap_or(0),
                id as i32 as u32,
                c["host"].as_str().unwrap_or("?").to_owned(),
            ))
        })
        .collect()
}

fn is_motion_ack(e: &SessionEvent) -> bool {
    matches!(e, SessionEvent::Message { channel, msg_type, .. }
        if channel.kind == ChannelType::Inputs && *msg_type == msg::inputs::MOUSE_MOTION_ACK)
}

/// The whole story in one call: two libvirt hosts up, the guest started on A with SPICE on
/// 0.0.0.0:5940, the native client linked to 10.77.0.1:5940, `livemig migrate` A → B with
/// `graphics_uri` [`GRAPHICS_URI`], the client following seamlessly, every check, teardown.
/// `log` receives one readable line per step.
pub fn libvirt_spice(
    record: bool,
    mut log: impl FnMut(&str),
) -> Result<LibvirtDemoReport, DemoError> {
    let t0 = Instant::now();
    let ms = move |at: Instant| at.saturating_duration_since(t0).as_secs_f64() * 1e3;
    let mut line = |at: Instant, s: &str| log(&format!("{:>8.1} ms  {s}", ms(at)));

    let env = TwoHosts::start()?;
    let version = virsh(&HOST_A, &["version", "--daemon"])?;
    let version = version
        .lines()
        .find_map(|l| l.strip_prefix("Running against daemon:"))
        .unwrap_or(" ?")
        .trim()
        .to_owned();
    line(
        Instant::now(),
        &format!(
            "two libvirt {version} daemons up: {} {} (netns {}), {} {} (netns {}); \
             livemig on bridge lvmbr0 10.77.0.254",
            HOST_A.name, HOST_A.ip, HOST_A.netns, HOST_B.name, HOST_B.ip, HOST_B.netns
        ),
    );
    env.create_guest(&HOST_A, "0.0.0.0")?;
    line(
        Instant::now(),
        &format!(
            "guest tiny started on {} (64 MiB TCG, qxl): SPICE on 0.0.0.0:5940, \
             seamless-migration=on",
            HOST_A.name
        ),
    );
    virsh(
        &HOST_A,
        &[
            "migrate-setspeed",
            "tiny",
            "--bandwidth",
            &BANDWIDTH_MIBPS.to_string(),
        ],
    )?;
    line(
        Instant::now(),
        &format!(
            "virsh migrate-setspeed tiny {BANDWIDTH_MIBPS} MiB/s on {}: the migration lasts \
             long enough for the client to link the destination (see BANDWIDTH_MIBPS)",
            HOST_A.name
        ),
    );
    let spice_done = EventWatch::start(&HOST_A, "SPICE_MIGRATE_COMPLETED")?;

    // The client, linked to A from the root namespace.
    let mut cfg = SessionConfig::new(Endpoint {
        host: HOST_A.ip.into(),
        port: Some(5940),
        tls_port: None,
        cert_subject: None,
    });
    let wanted = [
        ChannelType::Display,
        ChannelType::Cursor,
        ChannelType::Inputs,
    ];
    cfg.channel_types = wanted.to_vec();
    let (mut c, sid, ready_at) = link_main(cfg, record)?;
    line(
        ready_at,
        &format!("client linked main to {}:5940, session id {sid}", HOST_A.ip),
    );
    let list = c.wait_event(T, "CHANNELS_LIST", |e| {
        matches!(e, SessionEvent::Message { channel, msg_type, .. }
            if *channel == ChannelRef::MAIN && *msg_type == msg::main::CHANNELS_LIST)
    })?;
    let SessionEvent::Message { body, .. } = &list.event else {
        unreachable!("matched above")
    };
    let b = body.as_slice();
    let n = b
        .get(0..4)
        .map_or(0, |w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]) as usize);
    let mut channels = vec![ChannelRef::MAIN];
    channels.extend(
        (0..n)
            .filter_map(|i| {
                Some(ChannelRef {
                    kind: ChannelType::from_raw(*b.get(4 + 2 * i)?),
                    id: *b.get(5 + 2 * i)?,
                })
            })
            .filter(|c| wanted.contains(&c.kind)),
    );
    check(channels.len() == 4, || {
        format!("CHANNELS_LIST offers {channels:?}; expected display, cursor, inputs")
    })?;
    let mut ready = Vec::new();
    for ch in channels[1..].iter().copied() {
        let e = c.wait_event(
            T,
            "channel ready",
            |e| matches!(e, SessionEvent::ChannelReady { channel, .. } if *channel == ch),
        )?;
        ready.push((e.at, ch));
    }
    ready.sort();
    for (at, ch) in ready {
        line(at, &format!("client linked {}", channel_name(&ch)));
    }
    let inputs = ChannelRef {
        kind: ChannelType::Inputs,
        id: 0,
    };
    let motion = |n: usize, c: &ClientHandle| {
        let mut body = Vec::new();
        body.extend_from_slice(&1i32.to_le_bytes());
        body.extend_from_slice(&1i32.to_le_bytes());
        body.extend_from_slice(&0u16.to_le_bytes());
        for _ in 0..n {
            c.send(inputs, msgc::inputs::MOUSE_MOTION, body.clone());
        }
    };
    motion(4, &c);
    let ack = c.wait_event(T, "motion ack", is_motion_ack)?;
    motion(2, &c);
    line(
        ack.at,
        "4 mouse motions sent on the source, acknowledged; 2 more sent (the server acks \
         every 4th: the next ack needs the count to survive the migration)",
    );

    // livemig migrate A → B.
    let opts = MigrateOptions {
        source: HOST_A.uri(),
        destination: HOST_B.uri(),
        domain: "tiny".into(),
        protocol: ProtocolRequest::Auto,
        flags: MigrateFlags::LIVE,
        graphics_uri: Some(GRAPHICS_URI.into()),
        step_timeout: Some(Duration::from_secs(60)),
        record,
    };
    line(
        Instant::now(),
        &format!(
            "livemig migrate {} → {} tiny --graphics-uri {GRAPHICS_URI}",
            opts.source, opts.destination
        ),
    );
    let mut steps: Vec<StepTiming> = Vec::new();
    let mut printed = c.seen().len();
    let outcome = migrate::run(&opts, Arc::new(AtomicBool::new(false)), |s| {
        let now = Instant::now();
        c.drain();
        while let Some(e) = c.seen().get(printed).filter(|e| e.at <= now) {
            if let Some(text) = describe_event(&e.event) {
                line(e.at, &format!("    client       {text}"));
            }
            printed += 1;
        }
        let result = step_result(&s.result);
        line(
            now,
            &format!(
                "  → {:<11} {:<22} {:>6.1} ms  {result}",
                format!("{:?}", s.call.host).to_lowercase(),
                format!("{:?}", s.call.procedure),
                s.took_ms
            ),
        );
        steps.push(StepTiming {
            host: s.call.host,
            procedure: s.call.procedure,
            cancelled: s.call.cancelled,
            took_ms: s.took_ms,
            done_ms: ms(now),
            result,
        });
    })?;
    let migrated = c.wait_event(T, "Migrated", |e| {
        matches!(e, SessionEvent::Migrated { .. })
    });
    c.drain();
    for e in &c.seen()[printed..] {
        if let Some(text) = describe_event(&e.event) {
            line(e.at, &format!("    client       {text}"));
        }
    }
    let r = &outcome.report;
    line(
        Instant::now(),
        &format!(
            "livemig migrate: {:?} in {:.1} ms (protocol {}){}",
            r.verdict,
            outcome.total_ms,
            r.protocol.map_or("none".into(), |p| format!("{p:?}")),
            r.error
                .as_ref()
                .map(|e| format!(": {}", e.message))
                .unwrap_or_default()
        ),
    );
    check(r.verdict == Verdict::Migrated, || {
        format!("livemig migrate ended {:?}: {:?}", r.verdict, r.error)
    })?;
    let migrated = migrated?;

    // The client's migration, in order, seamless, on every channel.
    let started = c
        .seen()
        .iter()
        .position(|e| matches!(e.event, SessionEvent::MigrationStarted { .. }))
        .ok_or_else(|| DemoError::Check("no MigrationStarted".into()))?;
    let mut migration_events = Vec::new();
    let mut fallbacks = Vec::new();
    let mut switched = Vec::new();
    let mut relocation_target = None;
    for e in &c.seen()[started..] {
        match &e.event {
            SessionEvent::MigrationStarted { kind, target } => {
                relocation_target = Some(target.clone());
                migration_events.push(format!("MigrationStarted({kind:?})"));
            }
            SessionEvent::MigrationConnected { kind } => {
                migration_events.push(format!("MigrationConnected({kind:?})"))
            }
            SessionEvent::ChannelSwitched {
                channel,
                migrate_data_len,
            } => {
                switched.push((*channel, *migrate_data_len));
                migration_events.push(format!("ChannelSwitched({})", channel_name(channel)));
            }
            SessionEvent::Migrated { kind } => migration_events.push(format!("Migrated({kind:?})")),
            SessionEvent::MigrationFailed { .. } | SessionEvent::MigrationCancelled => {
                migration_events.push(format!("{:?}", e.event))
            }
            SessionEvent::SwitchHost { .. } | SessionEvent::SessionReset => {
                fallbacks.push(format!("{:?}", e.event))
            }
            SessionEvent::Message {
                channel, msg_type, ..
            } if *channel == ChannelRef::MAIN
                && [
                    msg::main::INIT,
                    msg::main::MIGRATE_END,
                    msg::main::MIGRATE_SWITCH_HOST,
                ]
                .contains(msg_type) =>
            {
                fallbacks.push(format!("main message {msg_type}"))
            }
            _ => {}
        }
    }
    let mut expected = vec![
        "MigrationStarted(Seamless)".to_owned(),
        "MigrationConnected(Seamless)".to_owned(),
    ];
    let mut switched_sorted: Vec<ChannelRef> = switched.iter().map(|(c, _)| *c).collect();
    switched_sorted.sort();
    let mut linked_sorted = channels.clone();
    linked_sorted.sort();
    expected.extend(
        switched
            .iter()
            .map(|(c, _)| format!("ChannelSwitched({})", channel_name(c))),
    );
    expected.push("Migrated(Seamless)".into());
    check(
        migration_events == expected && switched_sorted == linked_sorted,
        || format!("client events {migration_events:?}, channels {channels:?}"),
    )?;
    check(fallbacks.is_empty(), || format!("fallbacks: {fallbacks:?}"))?;
    check(
        relocation_target
            .as_ref()
            .is_some_and(|t| t.host == HOST_B.ip && t.port == Some(5940)),
        || format!("relocated to {relocation_target:?}"),
    )?;
    for (ch, len) in &switched {
        check((*len > 0) == ch.kind.migrate_data_magic().is_some(), || {
            format!("{ch:?} forwarded {len} B of MIGRATE_DATA")
        })?;
    }
    line(
        Instant::now(),
        &format!(
            "check: client events MigrationStarted → MigrationConnected(Seamless) → \
             {} × ChannelSwitched → Migrated(Seamless); MIGRATE_DATA on {}; no fallback",
            switched.len(),
            switched
                .iter()
                .filter(|(_, l)| *l > 0)
                .map(|(c, _)| channel_name(c))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );

    // Confirm waited for the client (libvirt-migration.md §7).
    let step = |p: Procedure| steps.iter().find(|s| s.procedure == p);
    let (finish, confirm) = match (
        step(Procedure::MigrateFinish3Params),
        step(Procedure::MigrateConfirm3Params),
    ) {
        (Some(f), Some(c)) => (f.clone(), c.clone()),
        _ => {
            return Err(DemoError::Check(format!(
                "no Finish3/Confirm3 in {steps:?}"
            )))
        }
    };
    let migrated_ms = ms(migrated.at);
    let connected_ms = c
        .seen()
        .iter()
        .find(|e| matches!(e.event, SessionEvent::MigrationConnected { .. }))
        .map_or(f64::NAN, |e| ms(e.at));
    let confirm_done_not_before_ms = finish.done_ms + confirm.took_ms;
    let spice_migrate_completed_ms = spice_done
        .seen
        .recv_timeout(Duration::from_secs(2))
        .ok()
        .map(ms);
    drop(spice_done);
    let log_a =
        std::fs::read_to_string(env.dir(&HOST_A).join("log/libvirtd.log")).unwrap_or_default();
    let source_waited_for_spice = log_a.contains("Waiting for SPICE to finish migration");
    check(confirm_done_not_before_ms > migrated_ms, || {
        format!(
            "Confirm3 done by {:.1} ms (no earlier than {confirm_done_not_before_ms:.1}), \
             before the client's Migrated at {migrated_ms:.1} ms",
            confirm.done_ms
        )
    })?;
    let Some(spice_ms) = spice_migrate_completed_ms else {
        return Err(DemoError::Check(
            "the source's SPICE_MIGRATE_COMPLETED never reached virsh qemu-monitor-event".into(),
        ));
    };
    check(source_waited_for_spice, || {
        "the source daemon never logged qemuMigrationSrcWaitForSpice".into()
    })?;
    let how = if spice_ms <= finish.done_ms {
        "already in when Confirm3 came, so libvirt's wait returned at once"
    } else {
        "awaited by Confirm3"
    };
    line(
        Instant::now(),
        &format!(
            "check: Confirm3 waited for the SPICE completion: client switched (Migrated) at \
             {migrated_ms:.1} ms, source SPICE_MIGRATE_COMPLETED seen at {spice_ms:.1} ms \
             (virsh qemu-monitor-event); Confirm3, called by {:.1} ms, went through \
             qemuMigrationSrcWaitForSpice (hosta's log) and returned at {:.1} ms (done no \
             earlier than {confirm_done_not_before_ms:.1} ms); the completion was {how}",
            finish.done_ms, confirm.done_ms,
        ),
    );

    // The guest, and the SPICE channels on B.
    let runs = env.check_runs_only_on(&HOST_B);
    check(runs.is_ok(), || format!("after the migration: {runs:?}"))?;
    line(
        Instant::now(),
        &format!(
            "check: tiny runs on {} only (libvirt, one QEMU, in netns {})",
            HOST_B.name, HOST_B.netns
        ),
    );
    let dst = query_spice_channels(&HOST_B)?;
    let destination_connection_ids: Vec<u32> = dst.iter().map(|(_, id, _)| *id).collect();
    check(
        dst.len() == channels.len() && destination_connection_ids.iter().all(|i| *i == sid),
        || format!("query-spice on B: {dst:?}, session id {sid}"),
    )?;
    line(
        Instant::now(),
        &format!(
            "check: query-spice on {} (virsh qemu-monitor-command): {} channels from {}, \
             every connection-id = session id {sid}",
            HOST_B.name,
            dst.len(),
            dst.first().map_or("?", |(_, _, h)| h.as_str()),
        ),
    );

    // The session goes on at B, with the inputs state carried over.
    motion(2, &c);
    let ack = c.wait_event(T, "motion ack on the destination", is_motion_ack);
    let count_carried = ack.as_ref().is_ok_and(|a| a.at > migrated.at);
    check(count_carried, || {
        format!("no ack for motions 5-8 after the switch: {ack:?}")
    })?;
    motion(4, &c);
    let ack = c.wait_event(T, "motion ack on the destination", is_motion_ack);
    let answered_on_destination = ack.is_ok();
    check(answered_on_destination, || format!("{ack:?}"))?;
    line(
        Instant::now(),
        "check: 2 motions on the destination completed the bunch begun on the source (acked: \
         the count came in MIGRATE_DATA); 4 more acked",
    );

    let report = c.stop();
    drop(env);
    let end = Instant::now();
    line(
        end,
        "torn down: client stopped, guest destroyed, both daemons stopped, namespaces deleted",
    );
    let took = |p: Procedure| step(p).map_or(0.0, |s| s.took_ms);
    line(
        end,
        &format!(
            "summary: migrated in {:.1} ms (Begin {:.1}, Prepare {:.1}, Perform {:.1}, \
             Finish {:.1}, Confirm {:.1} ms); client on B {:.1} ms after the migration began, \
             {} channels seamless, session id {sid} kept",
            outcome.total_ms,
            took(Procedure::MigrateBegin3Params),
            took(Procedure::MigratePrepare3Params),
            took(Procedure::MigratePerform3Params),
            took(Procedure::MigrateFinish3Params),
            took(Procedure::MigrateConfirm3Params),
            migrated_ms - steps.first().map_or(0.0, |s| s.done_ms - s.took_ms),
            channels.len(),
        ),
    );
    Ok(LibvirtDemoReport {
        session_id: sid,
        channels,
        verdict: outcome.report.verdict,
        migrate_ms: outcome.total_ms,
        relocation_target,
        migration_events,
        switched,
        fallbacks,
        runs_only_on_b: true,
        destination_connection_ids,
        count_carried,
        answered_on_destination,
        connected_ms,
        migrated_ms,
        finish_done_ms: finish.done_ms,
        confirm_done_not_before_ms,
        confirm_done_ms: confirm.done_ms,
        spice_migrate_completed_ms,
        source_waited_for_spice,
        total_ms: ms(end),
        trace: report.trace,
        migration_trace: outcome.trace,
        steps,
    })
}
