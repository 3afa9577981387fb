//! The migration scenario corpus: every success and failure path of
//! spec/libvirt-migration.md §2-§4.1, run against [`crate::libvirt_sim::World`] and recorded
//! as traces (`tests/traces/migration/<name>.jsonl`).

use std::collections::VecDeque;

use livemig_core::migration::flags::{param, Feature, FeatureSet, MigrateFlags, Params};
use livemig_core::migration::orchestrator::{
    Call, Mode, Orchestrator, OrchestratorAction, OrchestratorConfig, OrchestratorInput, Procedure,
    ProtocolRequest, Report,
};
use livemig_core::trace::{self, Setup, Writer};
use livemig_core::{Machine, Millis};

use crate::libvirt_sim::{tiny, Answer, Fault, Step, World};

/// One scenario: a configuration, the source's state and one fault.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// File stem of its trace.
    pub name: String,
    /// The orchestrator's configuration.
    pub config: OrchestratorConfig,
    /// Whether the source VM is paused before the migration.
    pub source_paused: bool,
    /// The injected fault.
    pub fault: Option<Fault>,
}

/// The outcome of running a scenario.
#[derive(Debug)]
pub struct Run {
    /// The recorded trace.
    pub trace: String,
    /// The final report (`None` if the run got stuck: a bug).
    pub report: Option<Report>,
    /// The simulated daemons afterwards.
    pub world: World,
    /// Warnings the orchestrator emitted.
    pub warnings: Vec<String>,
}

/// A configuration as `virsh migrate --live` between two libvirt 9 QEMU daemons would have.
pub fn config(mode: Mode, protocol: ProtocolRequest, flags: MigrateFlags) -> OrchestratorConfig {
    OrchestratorConfig {
        mode,
        protocol,
        source_features: FeatureSet::qemu(),
        destination_features: FeatureSet::qemu(),
        domain: tiny(),
        flags,
        params: Params::default(),
        step_timeout_ms: Some(30_000),
    }
}

/// Simulated latency of each call, from the real daemons (libvirt-real-peer.md §3).
fn latency(p: Procedure) -> Millis {
    use Procedure::*;
    match p {
        MigrateBegin3 | MigrateBegin3Params => 4,
        MigratePrepare3 | MigratePrepare3Params | MigratePrepare2 => 300,
        MigratePerform3 | MigratePerform3Params | MigratePerform => 25,
        MigrateFinish3 | MigrateFinish3Params | MigrateFinish2 => 11,
        MigrateConfirm3 | MigrateConfirm3Params => 205,
        DomainGetState | DomainAbortJob | DomainGetXmlDesc => 1,
    }
}

/// Drive one scenario to its end, recording the trace.
pub fn run(s: &Scenario) -> Run {
    let v2 = matches!(s.config.protocol, ProtocolRequest::V2)
        || !s.config.destination_features.has(Feature::MigrationV3);
    let mut world = World::new(s.source_paused, v2, s.fault);
    let mut m = Orchestrator::new(s.config.clone());
    let mut w = Writer::new(&Setup::Orchestrator(s.config.clone()));
    let mut now: Millis = 0;
    let mut report = None;
    let mut warnings = Vec::new();
    let mut pending: VecDeque<Call> = VecDeque::new();
    let mut cancelled = false;

    let mut feed = |m: &mut Orchestrator,
                    now: Millis,
                    input: OrchestratorInput,
                    pending: &mut VecDeque<Call>,
                    front: bool,
                    report: &mut Option<Report>| {
        let actions = trace::step(m, now, input.clone());
        w.record(now, &input, &actions);
        let mut calls = Vec::new();
        for a in actions {
            match a {
                OrchestratorAction::Call(c) => calls.push(c),
                OrchestratorAction::Warn { message } => warnings.push(message),
                OrchestratorAction::Done(r) => *report = Some(r),
            }
        }
        if front {
            for c in calls.into_iter().rev() {
                pending.push_front(c);
            }
        } else {
            pending.extend(calls);
        }
    };

    feed(
        &mut m,
        now,
        OrchestratorInput::Start,
        &mut pending,
        false,
        &mut report,
    );
    let mut guard = 0;
    while let Some(call) = pending.pop_front() {
        guard += 1;
        if guard > 100 {
            break;
        }
        let step = Step::of(call.procedure);
        if call.procedure == Procedure::DomainAbortJob {
            world.calls.push(call.clone());
            if let Answer::Input(i) = world.answer(&call) {
                now += latency(call.procedure);
                feed(&mut m, now, i, &mut pending, true, &mut report);
            }
            continue;
        }
        if let (Some(Fault::CancelDuring(at)), Some(step)) = (s.fault, step) {
            if at == step && !cancelled {
                cancelled = true;
                now += 1;
                feed(
                    &mut m,
                    now,
                    OrchestratorInput::Cancel,
                    &mut pending,
                    true,
                    &mut report,
                );
                // An abort call issued now is answered before the outstanding call.
                if let Some(front) = pending.front() {
                    if front.procedure == Procedure::DomainAbortJob {
                        let abort = pending.pop_front().unwrap_or(call.clone());
                        world.calls.push(abort.clone());
                        if let Answer::Input(i) = world.answer(&abort) {
                            now += latency(abort.procedure);
                            feed(&mut m, now, i, &mut pending, true, &mut report);
                        }
                    }
                }
            }
        }
        world.calls.push(call.clone());
        match world.answer(&call) {
            Answer::Input(i) => {
                now += latency(call.procedure);
                feed(&mut m, now, i, &mut pending, false, &mut report);
            }
            Answer::Silent => {
                if let Some(t) = m.poll_timeout() {
                    now = now.max(t);
                    feed(
                        &mut m,
                        now,
                        OrchestratorInput::Timeout,
                        &mut pending,
                        false,
                        &mut report,
                    );
                }
            }
        }
    }
    Run {
        trace: w.finish(),
        report,
        world,
        warnings,
    }
}

fn sc(name: &str, config: OrchestratorConfig, fault: Option<Fault>) -> Scenario {
    Scenario {
        name: name.into(),
        config,
        source_paused: false,
        fault,
    }
}

/// Every scenario of the corpus.
pub fn corpus() -> Vec<Scenario> {
    use Fault::*;
    use Mode::*;
    use ProtocolRequest as P;
    let live = MigrateFlags::LIVE;
    let m3 = || config(Managed, P::Auto, live);
    let mut v = vec![
        sc("managed-v3-success", m3(), None),
        Scenario {
            source_paused: true,
            ..sc("managed-v3-source-paused", m3(), None)
        },
        sc("managed-v3-begin-fails", m3(), Some(Error(Step::Begin))),
        sc("managed-v3-prepare-fails", m3(), Some(Error(Step::Prepare))),
        sc("managed-v3-prepare-no-uri", m3(), Some(NoUri)),
        sc("managed-v3-perform-fails", m3(), Some(Error(Step::Perform))),
        sc(
            "managed-v3-perform-fails-finish-error",
            m3(),
            Some(FinishQemuError),
        ),
        sc("managed-v3-finish-fails", m3(), Some(Error(Step::Finish))),
        sc("managed-v3-confirm-fails", m3(), Some(Error(Step::Confirm))),
        sc(
            "managed-v3-cancel-during-begin",
            m3(),
            Some(CancelDuring(Step::Begin)),
        ),
        sc(
            "managed-v3-cancel-after-begin",
            m3(),
            Some(CancelDuring(Step::GetState)),
        ),
        sc(
            "managed-v3-cancel-during-prepare",
            m3(),
            Some(CancelDuring(Step::Prepare)),
        ),
        sc(
            "managed-v3-cancel-during-perform",
            m3(),
            Some(CancelDuring(Step::Perform)),
        ),
        sc(
            "managed-v3-cancel-too-late",
            m3(),
            Some(CancelDuring(Step::Finish)),
        ),
        sc(
            "managed-v3-prepare-reply-lost",
            m3(),
            Some(ReplyLost(Step::Prepare)),
        ),
        sc(
            "managed-v3-perform-reply-lost",
            m3(),
            Some(ReplyLost(Step::Perform)),
        ),
        sc(
            "managed-v3-finish-reply-lost",
            m3(),
            Some(ReplyLost(Step::Finish)),
        ),
        sc(
            "managed-v3-confirm-reply-lost",
            m3(),
            Some(ReplyLost(Step::Confirm)),
        ),
        sc(
            "managed-v3-prepare-timeout",
            m3(),
            Some(Hang(Step::Prepare)),
        ),
        sc(
            "managed-v3-nonparams-success",
            config(Managed, P::V3, live),
            None,
        ),
        sc(
            "managed-v3-nonparams-perform-fails",
            config(Managed, P::V3, live),
            Some(Error(Step::Perform)),
        ),
        sc(
            "managed-v3-offline",
            config(
                Managed,
                P::Auto,
                MigrateFlags::OFFLINE.with(MigrateFlags::PERSIST_DEST),
            ),
            None,
        ),
        sc(
            "managed-v3-abort-on-error-flags",
            config(
                Managed,
                P::Auto,
                live.with(MigrateFlags::ABORT_ON_ERROR)
                    .with(MigrateFlags::AUTO_CONVERGE),
            ),
            None,
        ),
        sc("p2p-v3-success", config(PeerToPeer, P::Auto, live), None),
        sc(
            "p2p-v3-prepare-fails",
            config(PeerToPeer, P::Auto, live),
            Some(Error(Step::Prepare)),
        ),
        sc(
            "p2p-v3-perform-fails",
            config(PeerToPeer, P::Auto, live),
            Some(Error(Step::Perform)),
        ),
        sc(
            "p2p-v3-finish-fails",
            config(PeerToPeer, P::Auto, live),
            Some(Error(Step::Finish)),
        ),
        sc(
            "p2p-v3-no-uri",
            config(PeerToPeer, P::Auto, live),
            Some(NoUri),
        ),
        sc("managed-v2-success", config(Managed, P::V2, live), None),
        sc(
            "managed-v2-prepare-fails",
            config(Managed, P::V2, live),
            Some(Error(Step::Prepare)),
        ),
        sc(
            "managed-v2-perform-fails",
            config(Managed, P::V2, live),
            Some(Error(Step::Perform)),
        ),
        sc(
            "managed-v2-no-uri",
            config(Managed, P::V2, live),
            Some(NoUri),
        ),
        sc(
            "managed-v2-finish-fails",
            config(Managed, P::V2, live),
            Some(Error(Step::Finish)),
        ),
        sc("p2p-v2-success", config(PeerToPeer, P::V2, live), None),
    ];
    // Without CHANGE_PROTECTION on the source, a failed Prepare ends the run (§2.3).
    let mut no_prot = m3();
    no_prot
        .source_features
        .0
        .remove(&Feature::MigrateChangeProtection);
    v.push(sc(
        "managed-v3-prepare-fails-no-protection",
        no_prot,
        Some(Error(Step::Prepare)),
    ));
    // Extended params to a destination without PARAMS (§1).
    let mut ext = m3();
    ext.destination_features.0.remove(&Feature::MigrationParams);
    ext.params
        .replace_str(param::GRAPHICS_URI, "spice://10.77.0.2:5940");
    v.push(sc("managed-extended-params-unsupported", ext, None));
    // A destination without V3 falls back to v2 (§1).
    let mut old = m3();
    old.destination_features.0.remove(&Feature::MigrationV3);
    old.destination_features.0.remove(&Feature::MigrationParams);
    v.push(sc("managed-auto-fallback-v2", old, None));
    // Caller's params flow to the destination (dname, graphics URI, bandwidth).
    let mut named = m3();
    named.params.replace_str(param::DEST_NAME, "tiny-b");
    named
        .params
        .replace_str(param::GRAPHICS_URI, "spice://10.77.0.2:5940");
    v.push(sc("managed-v3-with-params", named, None));
    v
}
