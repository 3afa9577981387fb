//! The host-role corpus (`tests/traces/hosts/`), path by path: the exact hypervisor
//! commands and their answers, the step replies, the persisted phases, resume only when the
//! guest ran before, error 93, and the SPICE relocation arguments
//! (spec/libvirt-migration.md §4.2-§4.6, §7, §8, §12).

use livemig_core::bytes::Bytes;
use livemig_core::migration::cookie::{Cookie, Graphics};
use livemig_core::migration::destination::{
    DestinationAction as DA, DestinationHost, DestinationInput as DI, DestinationReply,
    DestinationStep,
};
use livemig_core::migration::error::{
    ERR_ARGUMENT_UNSUPPORTED, ERR_INTERNAL_ERROR, ERR_MIGRATE_FINISH_OK, ERR_NO_DOMAIN,
    ERR_OPERATION_ABORTED, ERR_OPERATION_FAILED,
};
use livemig_core::migration::phase::{JobPhase, StopReason, VmState};
use livemig_core::migration::source::{
    SourceAction as SA, SourceHost, SourceInput as SI, SourceReply, SourceStep,
};
use livemig_core::migration::RemoteError;
use livemig_core::Machine;
use livemig_tests::host_scenarios::{
    cookies, destination_corpus, run, run_destination, run_source, source_corpus, tag, tiny, Run,
    GUEST_XML, HV_MS, SPICE_PORT_BUSY, SPICE_WAIT_MS, URI,
};

// ------------------------------------------------------------------ helpers

/// The actions the input of tag `input_tag` produced (the first such input).
fn after<M: livemig_tests::host_scenarios::HostRole>(
    r: &Run<M>,
    input_tag: &str,
) -> Vec<M::Action> {
    r.records
        .iter()
        .find(|rec| tag(&rec.input) == input_tag)
        .unwrap_or_else(|| panic!("no input {input_tag}"))
        .actions
        .clone()
}

/// The actions of the last record.
fn last<M: livemig_tests::host_scenarios::HostRole>(r: &Run<M>) -> Vec<M::Action> {
    r.records.last().expect("a record").actions.clone()
}

/// The tags of every action except phase saves, replies and warnings: what the host
/// asks the hypervisor to do.
fn commands<M: livemig_tests::host_scenarios::HostRole>(r: &Run<M>) -> Vec<String> {
    r.actions()
        .iter()
        .map(tag)
        .filter(|t| !matches!(t.as_str(), "save_phase" | "reply" | "warn" | "end_job"))
        .collect()
}

fn src_phases(r: &Run<SourceHost>) -> Vec<JobPhase> {
    r.actions()
        .iter()
        .filter_map(|a| match a {
            SA::SavePhase { phase } => Some(*phase),
            _ => None,
        })
        .collect()
}

fn dst_phases(r: &Run<DestinationHost>) -> Vec<JobPhase> {
    r.actions()
        .iter()
        .filter_map(|a| match a {
            DA::SavePhase { phase } => Some(*phase),
            _ => None,
        })
        .collect()
}

fn src_ok(step: SourceStep, cookie: &[u8], xml: Option<&str>) -> SA {
    SA::Reply {
        step,
        result: Ok(SourceReply {
            cookie: Bytes(cookie.to_vec()),
            xml: xml.map(str::to_owned),
        }),
    }
}

fn src_err(a: &SA, step: SourceStep) -> RemoteError {
    match a {
        SA::Reply {
            step: s,
            result: Err(e),
        } if *s == step => e.clone(),
        other => panic!("expected an error reply to {step:?}, got {other:?}"),
    }
}

fn dst_err(a: &DA, step: DestinationStep) -> RemoteError {
    match a {
        DA::Reply {
            step: s,
            result: Err(e),
        } if *s == step => e.clone(),
        other => panic!("expected an error reply to {step:?}, got {other:?}"),
    }
}

fn relocation(host: &str, port: i32, tls_port: i32, subject: Option<&str>) -> SA {
    SA::SetSpiceRelocation {
        hostname: host.into(),
        port,
        tls_port,
        cert_subject: subject.map(str::to_owned),
    }
}

const STOP_MIGRATED: SA = SA::StopVm {
    reason: StopReason::Migrated,
};
const KILL: DA = DA::StopVm {
    reason: StopReason::Failed,
};

// ------------------------------------------------------------------ source: Begin (§4.2)

#[test]
fn source_begin_with_change_protection_keeps_the_job_and_sends_the_real_cookie() {
    let r = run_source("src-begin-protected");
    assert_eq!(
        last(&r),
        [
            SA::SavePhase {
                phase: JobPhase::Begin3
            },
            src_ok(SourceStep::Begin, cookies::BEGIN, Some(GUEST_XML)),
        ]
    );
    assert_eq!(r.machine.phase(), Some(JobPhase::Begin3));
}

#[test]
fn source_begin_without_change_protection_keeps_no_job_until_perform() {
    let r = run_source("src-begin-unprotected");
    assert_eq!(
        after(&r, "begin"),
        [src_ok(SourceStep::Begin, cookies::BEGIN, Some(GUEST_XML))]
    );
    // Perform starts its own job: perform3 is the first phase saved.
    assert_eq!(src_phases(&r), [JobPhase::Perform3, JobPhase::Perform3Done]);
    assert_eq!(
        last(&r)[1],
        src_ok(SourceStep::Perform, cookies::PERFORM, None)
    );
}

#[test]
fn source_begin_flag_rule_refusal_is_one_error_reply_and_no_job() {
    let r = run_source("src-begin-refused-postcopy-paused");
    let out = last(&r);
    assert_eq!(out.len(), 1, "{out:?}");
    let e = src_err(&out[0], SourceStep::Begin);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            ERR_ARGUMENT_UNSUPPORTED,
            "argument unsupported: post-copy migration is not supported with non-live or paused migration"
        )
    );
    assert_eq!(r.machine.phase(), None);
}

// ------------------------------------------------------------------ source: Perform (§4.3, §7)

/// The whole v3 source side: relocation from the Prepare cookie's `<graphics>`
/// (listen 127.0.0.1, port 5940, no TLS), the always-on capability, `migrate` to uri_out,
/// and Confirm holding the source until SPICE_MIGRATE_COMPLETED.
#[test]
fn source_success_relocates_from_the_prepare_cookie_and_waits_for_spice() {
    let r = run_source("src-v3-success-spice-wait");
    assert_eq!(
        after(&r, "perform"),
        [
            SA::SavePhase {
                phase: JobPhase::Perform3
            },
            relocation("127.0.0.1", 5940, -1, None),
        ]
    );
    assert_eq!(
        after(&r, "relocation_done"),
        [SA::SetCapabilities {
            capabilities: vec!["pause-before-switchover".into()]
        }]
    );
    assert_eq!(
        after(&r, "capabilities_set"),
        [SA::StartMigration { uri: URI.into() }]
    );
    assert_eq!(
        after(&r, "migration_completed"),
        [
            SA::SavePhase {
                phase: JobPhase::Perform3Done
            },
            src_ok(SourceStep::Perform, cookies::PERFORM, None),
        ]
    );
    // Confirm only saves its phase: the source waits (no libvirt timeout, §12.12).
    assert_eq!(
        after(&r, "confirm"),
        [SA::SavePhase {
            phase: JobPhase::Confirm3
        }]
    );
    assert!(r.records.iter().all(|rec| rec.input != SI::Timeout));
    assert_eq!(
        after(&r, "spice_migrated"),
        [
            STOP_MIGRATED,
            SA::EndJob,
            src_ok(SourceStep::Confirm, &[], None)
        ]
    );
    assert_eq!(
        commands(&r),
        [
            "set_spice_relocation",
            "set_capabilities",
            "start_migration",
            "stop_vm"
        ]
    );
    assert_eq!(
        src_phases(&r),
        [
            JobPhase::Begin3,
            JobPhase::Perform3,
            JobPhase::Perform3Done,
            JobPhase::Confirm3
        ]
    );
    assert_eq!(r.machine.vm_state(), VmState::Shutoff);
    assert_eq!(r.machine.phase(), None);
    // The hypervisor answered HV_MS after each command.
    let times: Vec<u64> = r.records.iter().map(|x| x.now).collect();
    assert_eq!(
        times,
        [
            0,
            10,
            10 + HV_MS,
            10 + 2 * HV_MS,
            10 + 3 * HV_MS,
            10 + 4 * HV_MS,
            100,
            150
        ]
    );
}

#[test]
fn source_graphics_uri_overrides_the_cookie_relocation_target() {
    let r = run_source("src-perform-graphics-uri");
    assert_eq!(
        after(&r, "perform")[1],
        relocation("10.77.0.9", 5941, 5942, Some("C=GB,CN=hostb"))
    );
}

#[test]
fn source_perform_failure_cancels_and_resumes_a_running_guest() {
    let r = run_source("src-perform-fails-resumes-running");
    let out = after(&r, "migration_failed");
    assert_eq!(out[..3], [SA::CancelMigration, SA::Resume, SA::EndJob]);
    let e = src_err(&out[3], SourceStep::Perform);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            ERR_OPERATION_FAILED,
            "operation failed: job 'migration out' failed: Channel error: Input/output error"
        )
    );
    assert_eq!(out.len(), 4);
    assert_eq!(r.machine.vm_state(), VmState::Running);
    assert_eq!(r.machine.phase(), None);
}

#[test]
fn source_perform_failure_leaves_a_paused_guest_paused() {
    let r = run_source("src-perform-fails-keeps-paused");
    let out = after(&r, "migration_failed");
    assert_eq!(out[..2], [SA::CancelMigration, SA::EndJob]);
    assert_eq!(
        src_err(&out[2], SourceStep::Perform).code,
        ERR_OPERATION_FAILED
    );
    assert!(!r.actions().contains(&SA::Resume));
    assert_eq!(r.machine.vm_state(), VmState::Paused);
}

#[test]
fn source_abort_cancels_migrate_and_reports_operation_aborted() {
    let r = run_source("src-perform-abort");
    assert_eq!(after(&r, "abort_job"), [SA::CancelMigration]);
    let out = last(&r);
    let e = src_err(out.last().unwrap(), SourceStep::Perform);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            ERR_OPERATION_ABORTED,
            "operation aborted: migration out job: canceled by client"
        )
    );
    // The guest never reached switchover: nothing to resume, nothing stopped.
    assert!(!r.actions().contains(&SA::Resume));
    assert!(!r.actions().contains(&STOP_MIGRATED));
    assert_eq!(r.machine.vm_state(), VmState::Running);
    assert_eq!(r.machine.phase(), None);
}

// ------------------------------------------------------------------ source: Confirm (§4.6, §7)

#[test]
fn source_bounded_spice_wait_times_out_and_stops_the_source() {
    let r = run_source("src-confirm-spice-timeout");
    let confirm_at = r
        .records
        .iter()
        .find(|x| tag(&x.input) == "confirm")
        .unwrap()
        .now;
    let rec = r.records.last().unwrap();
    assert_eq!(
        (rec.now, &rec.input),
        (confirm_at + SPICE_WAIT_MS, &SI::Timeout)
    );
    assert_eq!(
        rec.actions,
        [
            SA::Warn {
                message: "SPICE client migration did not complete within 5000 ms; stopping the source anyway".into()
            },
            STOP_MIGRATED,
            SA::EndJob,
            src_ok(SourceStep::Confirm, &[], None),
        ]
    );
    assert_eq!(r.machine.poll_timeout(), None);
}

#[test]
fn source_cancelled_confirm_resumes_and_never_stops() {
    let r = run_source("src-confirm-cancelled-resumes");
    assert_eq!(
        after(&r, "confirm"),
        [
            SA::SavePhase {
                phase: JobPhase::Confirm3Cancelled
            },
            SA::Resume,
            SA::EndJob,
            src_ok(SourceStep::Confirm, &[], None),
        ]
    );
    assert!(!r.actions().contains(&STOP_MIGRATED));
    assert_eq!(r.machine.vm_state(), VmState::Running);
}

// ------------------------------------------------------------------ source: client loss (§8)

#[test]
fn source_client_loss_at_begin3_aborts_the_job() {
    let r = run_source("src-client-closed-begin3");
    assert_eq!(after(&r, "client_closed"), [SA::EndJob]);
    // The job is gone: a new protected Begin is accepted.
    assert_eq!(
        last(&r),
        [
            SA::SavePhase {
                phase: JobPhase::Begin3
            },
            src_ok(SourceStep::Begin, cookies::BEGIN, Some(GUEST_XML)),
        ]
    );
}

#[test]
fn source_client_loss_at_perform3_done_leaves_the_source_paused() {
    let r = run_source("src-client-closed-perform3-done");
    assert_eq!(
        after(&r, "client_closed"),
        [
            SA::Warn {
                message: "Migration of domain tiny finished but we don't know if the domain was successfully started on destination or not".into()
            },
            SA::EndJob,
        ]
    );
    assert!(!r.actions().contains(&SA::Resume));
    assert!(!r.actions().contains(&STOP_MIGRATED));
    assert_eq!(r.machine.vm_state(), VmState::Paused);
    assert_eq!(r.machine.phase(), None);
}

// ------------------------------------------------------------------ destination: Prepare (§4.4)

#[test]
fn destination_prepare_sends_graphics_caps_and_uri_out() {
    let r = run_destination("dst-prepare-success");
    assert_eq!(
        after(&r, "prepare"),
        [
            DA::SavePhase {
                phase: JobPhase::Prepare
            },
            DA::StartIncoming {
                name: "tiny".into(),
                xml: GUEST_XML.into(),
                uri: "tcp:[::]:49152".into(),
            },
        ]
    );
    let out = after(&r, "incoming_started");
    let [DA::Reply {
        step: DestinationStep::Prepare,
        result: Ok(DestinationReply::Prepared { cookie, uri_out }),
    }] = out.as_slice()
    else {
        panic!("{out:?}")
    };
    assert_eq!(cookie.as_slice(), cookies::PREPARE);
    assert_eq!(uri_out.as_deref(), Some(URI));
    let c = Cookie::parse(cookie.as_slice()).unwrap().unwrap();
    assert_eq!(
        c.graphics,
        Some(Graphics {
            kind: "spice".into(),
            port: 5940,
            listen: "127.0.0.1".into(),
            tls_port: Some(-1),
            cert_subject: None,
        })
    );
    let caps = c.capabilities.unwrap();
    let auto: Vec<&str> = caps
        .iter()
        .filter(|c| c.auto)
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!((caps.len(), auto), (10, vec!["late-block-activate"]));
    assert_eq!(r.machine.phase(), Some(JobPhase::Prepare));
}

/// real-peer F1: the incoming QEMU cannot bind the SPICE port; nothing is left.
#[test]
fn destination_spice_port_busy_fails_prepare_and_leaves_nothing() {
    let r = run_destination("dst-prepare-spice-port-busy");
    let out = after(&r, "incoming_started");
    assert_eq!(out[..2], [KILL, DA::EndJob]);
    let e = dst_err(&out[2], DestinationStep::Prepare);
    assert_eq!(e.code, ERR_OPERATION_FAILED);
    assert_eq!(e.message, format!("operation failed: {SPICE_PORT_BUSY}"));
    assert_eq!(r.machine.phase(), None);
    assert_eq!(r.machine.migrated(), None);
}

#[test]
fn destination_refuses_a_cookie_from_the_same_host_before_starting_anything() {
    let r = run_destination("dst-prepare-same-host");
    let out = last(&r);
    assert_eq!(out.len(), 1, "{out:?}");
    let e = dst_err(&out[0], DestinationStep::Prepare);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            ERR_INTERNAL_ERROR,
            "internal error: Attempt to migrate guest to the same host 0a0a0a0a-0000-4000-8000-00000000000a"
        )
    );
    assert!(commands(&r).is_empty());
    assert_eq!(r.machine.phase(), None);
}

// ------------------------------------------------------------------ destination: Finish (§4.5, §4.1)

#[test]
fn destination_finish_starts_cpus_and_returns_the_real_cookie() {
    let r = run_destination("dst-finish-success");
    assert_eq!(
        after(&r, "finish"),
        [
            DA::SavePhase {
                phase: JobPhase::Finish3
            },
            DA::StartCpus
        ]
    );
    assert_eq!(
        after(&r, "cpus_started"),
        [
            DA::EndJob,
            DA::Reply {
                step: DestinationStep::Finish,
                result: Ok(DestinationReply::Finished {
                    cookie: Bytes(cookies::FINISH.to_vec()),
                    domain: tiny(),
                }),
            },
        ]
    );
    assert_eq!(commands(&r), ["start_incoming", "start_cpus"]);
    assert_eq!(r.machine.migrated(), Some(&tiny()));
}

/// §4.5/§12.6: retcode ≠ 0 kills the incoming VM and answers VIR_ERR_MIGRATE_FINISH_OK.
#[test]
fn destination_cancelled_finish_kills_with_error_93() {
    let r = run_destination("dst-finish-cancelled");
    let out = after(&r, "finish");
    assert_eq!(
        out[..3],
        [
            DA::SavePhase {
                phase: JobPhase::Finish3
            },
            KILL,
            DA::EndJob
        ]
    );
    let e = dst_err(&out[3], DestinationStep::Finish);
    assert_eq!(ERR_MIGRATE_FINISH_OK, 93);
    assert_eq!(
        (e.code, e.message.as_str()),
        (93, "migration successfully aborted")
    );
    assert!(!commands(&r).contains(&"start_cpus".to_owned()));
    assert_eq!(r.machine.migrated(), None);
}

/// §4.5: a v3 CPU-start failure kills the destination so the source can resume.
#[test]
fn destination_v3_cpu_start_failure_kills() {
    let r = run_destination("dst-finish-cpu-start-fails");
    let out = after(&r, "cpus_started");
    assert_eq!(out[..2], [KILL, DA::EndJob]);
    let e = dst_err(&out[2], DestinationStep::Finish);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            ERR_OPERATION_FAILED,
            "operation failed: resume failed: guest CPU could not start"
        )
    );
    assert_eq!(r.machine.migrated(), None);
}

/// §4.1: Finish2 warns about persist and CPU-start failures, keeps the (paused) guest and
/// returns the domain.
#[test]
fn destination_v2_finish_ignores_errors_and_keeps_the_guest() {
    let r = run_destination("dst-v2-finish-ignores-errors");
    assert_eq!(dst_phases(&r), [JobPhase::Prepare, JobPhase::Finish2]);
    assert_eq!(
        after(&r, "finish")[1],
        DA::PersistVm {
            xml: GUEST_XML.into()
        }
    );
    assert_eq!(
        after(&r, "persist_done"),
        [
            DA::Warn {
                message:
                    "failed to persist the migrated domain: cannot write /etc/libvirt/qemu/tiny.xml"
                        .into()
            },
            DA::StartCpus
        ]
    );
    let out = after(&r, "cpus_started");
    assert_eq!(
        out[0],
        DA::Warn {
            message:
                "operation failed: resume failed: guest CPU could not start; domain left paused"
                    .into()
        }
    );
    assert!(matches!(
        &out[2],
        DA::Reply {
            step: DestinationStep::Finish,
            result: Ok(DestinationReply::Finished { domain, .. }),
        } if *domain == tiny()
    ));
    assert!(!r.actions().contains(&KILL));
    assert_eq!(r.machine.migrated(), Some(&tiny()));
}

// ------------------------------------------------------------------ destination: client loss (§8)

#[test]
fn destination_client_loss_after_prepare_autodestroys() {
    let r = run_destination("dst-client-closed-after-prepare");
    assert_eq!(after(&r, "client_closed"), [KILL, DA::EndJob]);
    let e = dst_err(&after(&r, "finish")[0], DestinationStep::Finish);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            ERR_NO_DOMAIN,
            "Domain not found: no domain with matching name 'tiny'"
        )
    );
    assert_eq!(r.machine.phase(), None);
}

#[test]
fn destination_client_loss_while_starting_destroys_once_started() {
    let r = run_destination("dst-client-closed-during-prepare");
    assert!(after(&r, "client_closed").is_empty());
    let out = after(&r, "incoming_started");
    assert_eq!(out[..2], [KILL, DA::EndJob]);
    assert_eq!(
        dst_err(&out[2], DestinationStep::Prepare).code,
        ERR_OPERATION_FAILED
    );
    assert_eq!(r.machine.phase(), None);
}

// ------------------------------------------------------------------ the whole corpus

const SOURCE_STEPS: [&str; 3] = ["begin", "perform", "confirm"];
const DEST_STEPS: [&str; 2] = ["prepare", "finish"];

/// Every scripted answer is used, every step call gets exactly one reply (in the end),
/// phases only go up within a job, and nothing is left waiting on a timer.
#[test]
fn every_host_scenario_is_complete_and_well_formed() {
    fn check<M: livemig_tests::host_scenarios::HostRole>(
        name: &str,
        r: &Run<M>,
        steps: &[&str],
        phase_of: impl Fn(&M::Action) -> Option<JobPhase>,
    ) {
        assert!(
            r.unused_answers.is_empty(),
            "{name}: unused {:?}",
            r.unused_answers
        );
        let calls = r
            .records
            .iter()
            .filter(|x| steps.contains(&tag(&x.input).as_str()))
            .count();
        let replies = r.actions().iter().filter(|a| tag(*a) == "reply").count();
        assert_eq!(
            calls, replies,
            "{name}: {calls} step calls, {replies} replies"
        );
        let mut current = JobPhase::None;
        for a in r.actions() {
            if tag(&a) == "end_job" {
                current = JobPhase::None;
            }
            if let Some(p) = phase_of(&a) {
                assert!(p > current, "{name}: phase {current:?} -> {p:?}");
                current = p;
            }
        }
        assert_eq!(r.machine.poll_timeout(), None, "{name}");
    }
    let sources = source_corpus();
    let dests = destination_corpus();
    assert!(sources.len() >= 12 && dests.len() >= 9);
    for s in &sources {
        check(s.name, &run(s), &SOURCE_STEPS, |a| match a {
            SA::SavePhase { phase } => Some(*phase),
            _ => None,
        });
    }
    for s in &dests {
        check(s.name, &run(s), &DEST_STEPS, |a| match a {
            DA::SavePhase { phase } => Some(*phase),
            _ => None,
        });
    }
}

/// §12.7 over the corpus: a source is resumed only if it was running before; §12.1: it is
/// stopped (migrated) only by a successful Confirm; the destination starts CPUs only in
/// Finish.
#[test]
fn resume_stop_and_cpu_start_only_where_the_spec_allows() {
    for s in source_corpus() {
        let r = run(&s);
        let running_before = s.config.vm.state == VmState::Running;
        let mut confirmed_ok = false;
        for rec in &r.records {
            if let SI::Confirm {
                cancelled: false, ..
            } = rec.input
            {
                confirmed_ok = true;
            }
            for a in &rec.actions {
                if *a == SA::Resume {
                    assert!(running_before, "{}: resumed a paused guest", s.name);
                }
                if *a == STOP_MIGRATED {
                    assert!(confirmed_ok, "{}: stopped before Confirm", s.name);
                }
            }
        }
    }
    for s in destination_corpus() {
        let r = run(&s);
        let mut finishing = false;
        for rec in &r.records {
            if matches!(rec.input, DI::Finish { .. }) {
                finishing = true;
            }
            if rec.actions.contains(&DA::StartCpus) {
                assert!(finishing, "{}: CPUs started before Finish", s.name);
            }
        }
    }
}

#[test]
fn host_runs_are_deterministic() {
    for s in source_corpus() {
        assert_eq!(run(&s).trace, run(&s).trace, "{}", s.name);
    }
    for s in destination_corpus() {
        assert_eq!(run(&s).trace, run(&s).trace, "{}", s.name);
    }
}
