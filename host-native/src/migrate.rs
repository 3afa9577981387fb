//! `livemig migrate`: drive two real libvirt daemons through a migration. Every decision is
//! the core orchestrator's; this module opens the connections, executes its calls (one
//! worker thread does the step calls, so a Ctrl-C can still reach the core during a long
//! Perform and become `DomainAbortJob` on a separate control connection) and reports.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livemig_core::migration::cookie::Cookie;
use livemig_core::migration::flags::{param, Feature, FeatureSet, MigrateFlags, Params};
use livemig_core::migration::orchestrator::{
    Call, Host, Mode, Orchestrator, OrchestratorAction, OrchestratorConfig, OrchestratorInput,
    Procedure, ProtocolRequest, Report, Verdict,
};
use livemig_core::trace::{Setup, Writer};
use livemig_core::Machine;

use crate::libvirt::executor::{decode_reply, encode_call};
use crate::libvirt::{KeepaliveConfig, MigrationExecutor, Rpc, RpcError};

/// What to migrate, and how.
#[derive(Clone, Debug)]
pub struct MigrateOptions {
    /// `qemu+tcp://HOST[:PORT]/system` of the source daemon.
    pub source: String,
    /// The destination daemon.
    pub destination: String,
    /// The domain name.
    pub domain: String,
    /// Protocol request (`Auto` picks v3 with params where both sides can).
    pub protocol: ProtocolRequest,
    /// `VIR_MIGRATE_*` flags (LIVE by default).
    pub flags: MigrateFlags,
    /// `graphics_uri` (`spice://HOST:PORT`), for a SPICE client outside the destination's
    /// network namespace.
    pub graphics_uri: Option<String>,
    /// Bound on each remote call.
    pub step_timeout: Option<Duration>,
    /// Record the run as a trace.
    pub record: bool,
}

/// One step as it happened.
#[derive(Clone, Debug)]
pub struct StepLog {
    /// Milliseconds since the start.
    pub at_ms: f64,
    /// How long the call took.
    pub took_ms: f64,
    /// The call.
    pub call: Call,
    /// What came back.
    pub result: OrchestratorInput,
}

/// The outcome of a run.
#[derive(Debug)]
pub struct MigrateOutcome {
    /// The orchestrator's report.
    pub report: Report,
    /// Every call, in order.
    pub steps: Vec<StepLog>,
    /// Warnings.
    pub warnings: Vec<String>,
    /// The trace when recording.
    pub trace: Option<String>,
    /// Total wall time.
    pub total_ms: f64,
}

/// Errors before the orchestrator could start (nothing was changed anywhere).
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A URI livemig cannot use.
    #[error("unsupported URI {0:?} (expected qemu+tcp://HOST[:PORT]/system)")]
    Uri(String),
    /// Connecting or probing a daemon failed.
    #[error("{what}: {source}")]
    Rpc {
        /// What was being done.
        what: String,
        /// The error.
        source: RpcError,
    },
}

/// `qemu+tcp://HOST[:PORT]/PATH` → (`HOST:PORT`, `qemu:///PATH`).
pub fn parse_uri(uri: &str) -> Result<(String, String), MigrateError> {
    let rest = uri
        .strip_prefix("qemu+tcp://")
        .ok_or_else(|| MigrateError::Uri(uri.into()))?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, "system"));
    if authority.is_empty() {
        return Err(MigrateError::Uri(uri.into()));
    }
    let addr = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:16509")
    };
    Ok((
        addr,
        format!("qemu:///{}", if path.is_empty() { "system" } else { path }),
    ))
}

fn open(uri: &str, timeout: Duration) -> Result<Rpc, MigrateError> {
    let (addr, name) = parse_uri(uri)?;
    let err = |what: &str| {
        let what = format!("{what} {uri}");
        move |source| MigrateError::Rpc { what, source }
    };
    let mut rpc = Rpc::connect(addr.as_str(), timeout).map_err(err("connect to"))?;
    rpc.set_call_timeout(Some(timeout));
    rpc.connect_open(Some(&name), 0).map_err(err("open"))?;
    // Ask for keepalive (libvirt-real-peer.md §4): PINGs both ways, so a dead daemon is
    // noticed and the idle connection is kept alive during a long step on the other.
    rpc.enable_keepalive(KeepaliveConfig::default())
        .map_err(err("ask keepalive of"))?;
    Ok(rpc)
}

fn features(rpc: &mut Rpc, uri: &str) -> Result<FeatureSet, MigrateError> {
    let mut set = FeatureSet::default();
    for f in Feature::ALL {
        let ok = rpc
            .supports_feature(f)
            .map_err(|source| MigrateError::Rpc {
                what: format!("probe features of {uri}"),
                source,
            })?;
        if ok {
            set.0.insert(f);
        }
    }
    Ok(set)
}

/// Run a managed migration. `cancel` is polled: once set, the core gets `Cancel` and does
/// that step's cleanup. `on_step` sees each call as it completes.
pub fn run(
    opts: &MigrateOptions,
    cancel: Arc<AtomicBool>,
    mut on_step: impl FnMut(&StepLog),
) -> Result<MigrateOutcome, MigrateError> {
    let t0 = Instant::now();
    let connect_timeout = Duration::from_secs(10);
    let mut source = open(&opts.source, connect_timeout)?;
    let mut destination = open(&opts.destination, connect_timeout)?;
    let mut control = open(&opts.source, connect_timeout)?;
    let source_features = features(&mut source, &opts.source)?;
    let destination_features = features(&mut destination, &opts.destination)?;
    let domain = source
        .lookup_by_name(&opts.domain)
        .map_err(|source| MigrateError::Rpc {
            what: format!("look up {}", opts.domain),
            source,
        })?;
    source.set_call_timeout(opts.step_timeout);
    destination.set_call_timeout(opts.step_timeout);
    let mut params = Params::default();
    if let Some(g) = &opts.graphics_uri {
        params.replace_str(param::GRAPHICS_URI, g.clone());
    }
    let cfg = OrchestratorConfig {
        mode: Mode::Managed,
        protocol: opts.protocol,
        source_features,
        destination_features,
        domain: domain.clone(),
        flags: opts.flags,
        params,
        step_timeout_ms: opts.step_timeout.map(|d| d.as_millis() as u64),
    };
    let mut writer = opts
        .record
        .then(|| Writer::new(&Setup::Orchestrator(cfg.clone())));
    let mut orch = Orchestrator::new(cfg);

    // The worker executes step calls; the main thread stays free for cancel and timers.
    let (call_tx, call_rx) = mpsc::channel::<Call>();
    let (res_tx, res_rx) = mpsc::channel::<(Call, OrchestratorInput, f64)>();
    let worker_domain = domain.clone();
    let worker = std::thread::spawn(move || {
        let mut ex = MigrationExecutor::new(source, destination, worker_domain);
        for call in call_rx {
            let started = Instant::now();
            let input = ex.execute(&call);
            let took = started.elapsed().as_secs_f64() * 1e3;
            if res_tx.send((call, input, took)).is_err() {
                break;
            }
        }
    });

    let now = |t0: Instant| t0.elapsed().as_millis() as u64;
    let mut steps = Vec::new();
    let mut warnings = Vec::new();
    let mut report = None;
    let mut cancelled = false;
    let mut pending: Vec<OrchestratorInput> = vec![OrchestratorInput::Start];
    let mut outstanding = 0usize;
    while report.is_none() {
        for input in std::mem::take(&mut pending) {
            let at = now(t0);
            orch.handle(at, input.clone());
            let actions: Vec<OrchestratorAction> =
                std::iter::from_fn(|| orch.poll_action()).collect();
            if let Some(w) = &mut writer {
                w.record(at, &input, &actions);
            }
            for a in actions {
                match a {
                    OrchestratorAction::Call(call)
                        if call.procedure == Procedure::DomainAbortJob =>
                    {
                        // On the control connection: the source connection is busy in Perform.
                        let started = Instant::now();
                        let input = control_call(&mut control, &call, &domain);
                        let step = StepLog {
                            at_ms: t0.elapsed().as_secs_f64() * 1e3,
                            took_ms: started.elapsed().as_secs_f64() * 1e3,
                            call,
                            result: input.clone(),
                        };
                        on_step(&step);
                        steps.push(step);
                        pending.push(input);
                    }
                    OrchestratorAction::Call(call) => {
                        outstanding += 1;
                        let _ = call_tx.send(call);
                    }
                    OrchestratorAction::Warn { message } => warnings.push(message),
                    OrchestratorAction::Done(r) => report = Some(r),
                }
            }
        }
        if report.is_some() || !pending.is_empty() {
            continue;
        }
        if cancel.load(Ordering::SeqCst) && !cancelled {
            cancelled = true;
            pending.push(OrchestratorInput::Cancel);
            continue;
        }
        if let Some(deadline) = orch.poll_timeout() {
            if now(t0) >= deadline {
                pending.push(OrchestratorInput::Timeout);
                continue;
            }
        }
        if outstanding == 0 {
            break;
        }
        match res_rx.recv_timeout(Duration::from_millis(50)) {
            Ok((call, input, took)) => {
                outstanding -= 1;
                let step = StepLog {
                    at_ms: t0.elapsed().as_secs_f64() * 1e3,
                    took_ms: took,
                    call,
                    result: input.clone(),
                };
                on_step(&step);
                steps.push(step);
                // A cancel asked while the call was out reaches the core before its answer.
                if cancel.load(Ordering::SeqCst) && !cancelled {
                    cancelled = true;
                    pending.push(OrchestratorInput::Cancel);
                }
                pending.push(input);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    drop(call_tx);
    let _ = worker.join();
    let report = report.unwrap_or(Report {
        verdict: Verdict::Unknown,
        protocol: None,
        domain: None,
        error: None,
    });
    Ok(MigrateOutcome {
        report,
        steps,
        warnings,
        trace: writer.map(|w| w.finish()),
        total_ms: t0.elapsed().as_secs_f64() * 1e3,
    })
}

fn control_call(
    rpc: &mut Rpc,
    call: &Call,
    domain: &livemig_core::migration::orchestrator::DomainRef,
) -> OrchestratorInput {
    let procedure = call.procedure;
    let result = encode_call(call, domain)
        .map_err(|e| RpcError::Lost(e.to_string()))
        .and_then(|(n, body)| rpc.call(n, &body));
    match result {
        Ok(reply) => decode_reply(procedure, &reply).unwrap_or(OrchestratorInput::JobAborted),
        Err(RpcError::Remote(error)) => OrchestratorInput::CallFailed { procedure, error },
        Err(e) => OrchestratorInput::ConnectionLost {
            host: Host::Source,
            reason: e.to_string(),
        },
    }
}

/// A readable summary of a cookie: who sent it and which elements it carries.
pub fn describe_cookie(bytes: &[u8]) -> String {
    match Cookie::parse(bytes) {
        Ok(None) => "no cookie".into(),
        Ok(Some(c)) => {
            let mut parts = vec![format!("{} B from {}", bytes.len(), c.hostname)];
            let names: Vec<&str> = c.present().names().collect();
            if !names.is_empty() {
                parts.push(names.join(","));
            }
            if let Some(g) = &c.graphics {
                parts.push(format!("graphics {}:{}", g.listen, g.port));
            }
            if let Some(s) = &c.statistics {
                if let (Some(d), Some(t)) = (s.downtime, s.time_elapsed) {
                    parts.push(format!("downtime {d} ms of {t} ms"));
                }
            }
            parts.join(", ")
        }
        Err(e) => format!("{} B, unreadable: {e}", bytes.len()),
    }
}

/// Exit status of `livemig migrate` for a verdict (documented in the README).
pub fn exit_code(v: Verdict) -> u8 {
    match v {
        Verdict::Migrated => 0,
        Verdict::Failed => 1,
        Verdict::SourceLeftPaused => 3,
        Verdict::Unknown => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris() {
        assert_eq!(
            parse_uri("qemu+tcp://10.77.0.1/system").unwrap(),
            ("10.77.0.1:16509".into(), "qemu:///system".into())
        );
        assert_eq!(
            parse_uri("qemu+tcp://h:16599/session").unwrap(),
            ("h:16599".into(), "qemu:///session".into())
        );
        assert!(parse_uri("qemu:///system").is_err());
        assert!(parse_uri("qemu+tcp:///system").is_err());
    }
}
