//! Two simulated libvirt QEMU daemons with the VM state libvirt would have (§4.2-§4.6 of
//! spec/libvirt-migration.md), answering the orchestrator's calls, with injected faults.
//! After every answer the world checks the invariants of §12 and records any violation.

use livemig_core::bytes::Bytes;
use livemig_core::migration::error::{self, RemoteError};
use livemig_core::migration::orchestrator::{
    Call, DomainRef, DomainState, Host, OrchestratorInput, Procedure,
};
use livemig_core::migration::MigrateFlags;
use serde::{Deserialize, Serialize};

/// The migration step a fault hits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Begin3 (v3) or the XML dump (v2).
    Begin,
    /// The state query.
    GetState,
    /// Prepare3 / Prepare2.
    Prepare,
    /// Perform3 / Perform.
    Perform,
    /// Finish3 / Finish2.
    Finish,
    /// Confirm3.
    Confirm,
}

impl Step {
    /// Every step, in protocol order.
    pub const ALL: [Step; 6] = [
        Step::Begin,
        Step::GetState,
        Step::Prepare,
        Step::Perform,
        Step::Finish,
        Step::Confirm,
    ];
    /// The step a procedure belongs to.
    pub fn of(p: Procedure) -> Option<Step> {
        use Procedure::*;
        Some(match p {
            MigrateBegin3 | MigrateBegin3Params | DomainGetXmlDesc => Step::Begin,
            DomainGetState => Step::GetState,
            MigratePrepare3 | MigratePrepare3Params | MigratePrepare2 => Step::Prepare,
            MigratePerform3 | MigratePerform3Params | MigratePerform => Step::Perform,
            MigrateFinish3 | MigrateFinish3Params | MigrateFinish2 => Step::Finish,
            MigrateConfirm3 | MigrateConfirm3Params => Step::Confirm,
            DomainAbortJob => return None,
        })
    }
}

/// What goes wrong, and where.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fault {
    /// The step answers with an error and has no effect.
    Error(Step),
    /// Finish (cancelled) answers with a QEMU error other than FINISH_OK (real-peer C3), so
    /// §2.8's substitution applies after a failed Perform.
    FinishQemuError,
    /// Prepare succeeds without a URI.
    NoUri,
    /// The step takes effect but its answer is lost with the connection.
    ReplyLost(Step),
    /// The step never answers (the orchestrator's step timeout must fire).
    Hang(Step),
    /// The user cancels while this step is outstanding.
    CancelDuring(Step),
}

/// The VM as the source daemon has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceVm {
    /// Running.
    Running,
    /// Paused.
    Paused,
    /// Stopped and gone (migrated away, or killed by v2's Perform).
    Gone,
}

/// The VM as the destination daemon has it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestVm {
    /// No such domain.
    Absent,
    /// Incoming, CPUs stopped.
    Incoming,
    /// Incoming migration completed, CPUs still stopped (PAUSED flag).
    Paused,
    /// Running.
    Running,
}

/// The cookies real libvirt 9.0 daemons emitted in a managed v3 migration of `tiny` from
/// hosta to hostb (libvirt-real-peer.md §5; byte-exact vectors of the cookie codec's tests).
fn cookie(host: Host, step: &str) -> Bytes {
    const DIR: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../core/tests/vectors/cookies/"
    );
    let file = match (host, step) {
        (Host::Source, "begin") => "begin-prepare.cookie",
        (Host::Destination, "prepare") => "prepare-perform.cookie",
        (Host::Source, "perform") => "perform-finish.cookie",
        _ => "finish-confirm.cookie",
    };
    Bytes(std::fs::read(format!("{DIR}{file}")).unwrap_or_default())
}

fn emitted_by(c: &Bytes) -> Option<Host> {
    let s = std::str::from_utf8(c.as_slice()).ok()?;
    if s.contains("0a0a0a0a-") {
        Some(Host::Source)
    } else if s.contains("0b0b0b0b-") {
        Some(Host::Destination)
    } else {
        None
    }
}

/// The domain the scenarios migrate.
pub fn tiny() -> DomainRef {
    DomainRef {
        name: "tiny".into(),
        uuid: "7e1e7e1e-0000-4000-8000-000000000001".into(),
        id: 1,
    }
}

/// The simulated pair of daemons.
#[derive(Clone, Debug)]
pub struct World {
    /// The source's VM.
    pub src: SourceVm,
    /// The destination's VM.
    pub dst: DestVm,
    /// Whether the source VM was running before the migration.
    pub src_was_running: bool,
    /// v2 semantics (Perform kills the source).
    pub v2: bool,
    /// The injected fault.
    pub fault: Option<Fault>,
    /// Every call sent, in the order the orchestrator emitted them (the runner logs them).
    pub calls: Vec<Call>,
    /// Errors the daemons answered, in order.
    pub errors: Vec<RemoteError>,
    /// Prepare calls that answered success.
    pub prepares_ok: usize,
    /// Finish calls received.
    pub finishes: usize,
    /// Whether Finish returned a domain (`None`: no Finish answered).
    pub finish_returned_domain: Option<bool>,
    /// Violations of §12 seen so far.
    pub violations: Vec<String>,
    abort_pending: bool,
}

impl World {
    /// A world whose source VM is running (or paused).
    pub fn new(source_paused: bool, v2: bool, fault: Option<Fault>) -> World {
        World {
            src: if source_paused {
                SourceVm::Paused
            } else {
                SourceVm::Running
            },
            dst: DestVm::Absent,
            src_was_running: !source_paused,
            v2,
            fault,
            calls: Vec::new(),
            errors: Vec::new(),
            prepares_ok: 0,
            finishes: 0,
            finish_returned_domain: None,
            violations: Vec::new(),
            abort_pending: false,
        }
    }

    fn fail(&mut self, call: &Call, e: RemoteError) -> Answer {
        self.errors.push(e.clone());
        Answer::Input(OrchestratorInput::CallFailed {
            procedure: call.procedure,
            error: e,
        })
    }

    fn check(&mut self) {
        if self.src == SourceVm::Running && self.dst == DestVm::Running {
            self.violations
                .push("two running copies (source and destination)".into());
        }
        if !self.src_was_running && self.src == SourceVm::Running {
            self.violations
                .push("source resumed although it was paused before".into());
        }
    }

    /// Answer one call as the daemons would.
    pub fn answer(&mut self, call: &Call) -> Answer {
        let mut a = self.answer_inner(call);
        let step = Step::of(call.procedure);
        if let (Some(Fault::ReplyLost(s)), Some(step)) = (self.fault, step) {
            if s == step && a != Answer::Silent {
                if call.host == Host::Destination && step == Step::Prepare {
                    // The incoming VM is autodestroyed with the connection (§4.4).
                    self.dst = DestVm::Absent;
                }
                a = Answer::Input(OrchestratorInput::ConnectionLost {
                    host: call.host,
                    reason: "End of file while reading data: Input/output error".into(),
                });
            }
        }
        self.check();
        a
    }

    fn answer_inner(&mut self, call: &Call) -> Answer {
        use Procedure::*;
        if call.procedure == DomainAbortJob {
            self.abort_pending = true;
            return Answer::Input(OrchestratorInput::JobAborted);
        }
        let Some(step) = Step::of(call.procedure) else {
            return Answer::Silent;
        };
        // The receiving daemon refuses its own cookie (§6 "same host" check).
        if let Some(c) = &call.cookie {
            if emitted_by(c) == Some(call.host) {
                let e = RemoteError::internal(
                    "internal error: Attempt to migrate guest to the same host",
                );
                self.violations
                    .push(format!("{:?} was sent its own cookie", call.procedure));
                return self.fail(call, e);
            }
        }
        if step == Step::Finish {
            self.finishes += 1;
        }
        if call.procedure != DomainGetXmlDesc
            && call.procedure != DomainGetState
            && call.host == Host::Destination
            && MigrateFlags(call.flags).contains(MigrateFlags::CHANGE_PROTECTION)
        {
            self.violations
                .push("CHANGE_PROTECTION sent to the destination".into());
        }
        if call.host == Host::Destination
            && (MigrateFlags(call.flags).contains(MigrateFlags::ABORT_ON_ERROR)
                || MigrateFlags(call.flags).contains(MigrateFlags::AUTO_CONVERGE))
        {
            self.violations
                .push("ABORT_ON_ERROR/AUTO_CONVERGE sent to the destination".into());
        }
        if step == Step::Confirm {
            if let (Some(c), Some(ret)) = (call.cancelled, self.finish_returned_domain) {
                if c == ret {
                    self.violations.push(
                        "Confirm's cancelled differs from 'Finish returned no domain'".into(),
                    );
                }
            }
        }
        match self.fault {
            Some(Fault::Error(s)) if s == step => {
                return match step {
                    Step::Perform => {
                        self.rollback_source();
                        let e = RemoteError::operation_failed(
                            "operation failed: job 'migration out' failed: Channel error: Input/output error",
                        );
                        self.fail(call, e)
                    }
                    Step::Finish if call.cancelled != Some(true) => {
                        // v3: a failed Finish kills the destination so the source can resume.
                        self.dst = if self.v2 {
                            DestVm::Paused
                        } else {
                            DestVm::Absent
                        };
                        self.finish_returned_domain = Some(false);
                        let e = RemoteError::operation_failed(
                            "operation failed: domain is not running",
                        );
                        self.fail(call, e)
                    }
                    Step::Prepare => {
                        let e = RemoteError::operation_failed(
                            "operation failed: qemu unexpectedly closed the monitor: failed to initialize spice server",
                        );
                        self.fail(call, e)
                    }
                    _ => {
                        let e = RemoteError::internal(format!(
                            "internal error: injected {step:?} failure"
                        ));
                        if step == Step::Finish {
                            self.finish_returned_domain = Some(false);
                        }
                        self.fail(call, e)
                    }
                };
            }
            Some(Fault::FinishQemuError) if step == Step::Perform => {
                self.rollback_source();
                let e = RemoteError::operation_failed(
                    "operation failed: job 'migration out' failed: Channel error: Input/output error",
                );
                return self.fail(call, e);
            }
            Some(Fault::Hang(s)) if s == step => return Answer::Silent,
            _ => {}
        }
        let input = match step {
            Step::Begin if call.procedure == DomainGetXmlDesc => OrchestratorInput::XmlDesc {
                xml: "<domain type='qemu'><name>tiny</name></domain>".into(),
            },
            Step::Begin => OrchestratorInput::Begun {
                cookie: cookie(Host::Source, "begin"),
                xml: "<domain type='qemu'><name>tiny</name></domain>".into(),
            },
            Step::GetState => OrchestratorInput::SourceState {
                state: if self.src == SourceVm::Paused {
                    DomainState::Paused
                } else {
                    DomainState::Running
                },
            },
            Step::Prepare => {
                if !MigrateFlags(call.flags).contains(MigrateFlags::OFFLINE) {
                    self.dst = DestVm::Incoming;
                }
                self.prepares_ok += 1;
                let uri = (self.fault != Some(Fault::NoUri)).then(|| "tcp:10.77.0.2:49152".into());
                OrchestratorInput::Prepared {
                    cookie: if self.v2 {
                        Bytes::new()
                    } else {
                        cookie(Host::Destination, "prepare")
                    },
                    uri,
                }
            }
            Step::Perform => {
                if self.abort_pending {
                    self.abort_pending = false;
                    self.rollback_source();
                    let e = RemoteError::new(
                        error::ERR_OPERATION_ABORTED,
                        error::FROM_QEMU,
                        "operation aborted: migration out job: canceled by client",
                    );
                    return self.fail(call, e);
                }
                if self.dst != DestVm::Incoming {
                    self.rollback_source();
                    let e = RemoteError::operation_failed("unable to connect to server");
                    return self.fail(call, e);
                }
                self.src = if self.v2 {
                    SourceVm::Gone
                } else {
                    SourceVm::Paused
                };
                OrchestratorInput::Performed {
                    cookie: if self.v2 {
                        Bytes::new()
                    } else {
                        cookie(Host::Source, "perform")
                    },
                }
            }
            Step::Finish if MigrateFlags(call.flags).contains(MigrateFlags::OFFLINE) => {
                // Offline: the destination only defines the domain (§2.5).
                self.finish_returned_domain = Some(true);
                OrchestratorInput::Finished {
                    domain: tiny(),
                    cookie: cookie(Host::Destination, "finish"),
                }
            }
            Step::Confirm if MigrateFlags(call.flags).contains(MigrateFlags::OFFLINE) => {
                OrchestratorInput::Confirmed
            }
            Step::Finish => {
                if call.cancelled == Some(true) {
                    self.dst = DestVm::Absent;
                    self.finish_returned_domain = Some(false);
                    let e = if self.fault == Some(Fault::FinishQemuError) {
                        RemoteError::internal(
                            "internal error: qemu unexpectedly closed the monitor",
                        )
                    } else {
                        RemoteError::new(
                            error::ERR_MIGRATE_FINISH_OK,
                            error::FROM_QEMU,
                            "migration successfully aborted",
                        )
                    };
                    return self.fail(call, e);
                }
                if self.dst != DestVm::Incoming || self.src == SourceVm::Running {
                    self.dst = DestVm::Absent;
                    self.finish_returned_domain = Some(false);
                    let e = RemoteError::new(
                        error::ERR_NO_DOMAIN,
                        error::FROM_QEMU,
                        "Domain not found: no domain with matching name 'tiny'",
                    );
                    return self.fail(call, e);
                }
                self.dst = if MigrateFlags(call.flags).contains(MigrateFlags::PAUSED) {
                    DestVm::Paused
                } else {
                    DestVm::Running
                };
                self.finish_returned_domain = Some(true);
                OrchestratorInput::Finished {
                    domain: tiny(),
                    cookie: if self.v2 {
                        Bytes::new()
                    } else {
                        cookie(Host::Destination, "finish")
                    },
                }
            }
            Step::Confirm => {
                if call.cancelled == Some(true) {
                    self.rollback_source();
                } else {
                    self.src = SourceVm::Gone;
                }
                OrchestratorInput::Confirmed
            }
        };
        Answer::Input(input)
    }

    fn rollback_source(&mut self) {
        // qemuMigrationSrcRestoreDomainState: resume only if it was running (§4.3).
        if self.src == SourceVm::Paused && self.src_was_running {
            self.src = SourceVm::Running;
        }
    }
}

/// The daemons' reaction to a call.
#[derive(Clone, Debug, PartialEq)]
pub enum Answer {
    /// Feed this input back.
    Input(OrchestratorInput),
    /// No answer (a hang; or nothing to say).
    Silent,
}
