//! `livemig migrate` against two real libvirt 9.0 daemons (libvirt-real-peer.md): the core's
//! orchestrator decides, the XDR client executes. Never skipped: setup installs libvirt.

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use livemig_core::migration::cookie::Cookie;
use livemig_core::migration::orchestrator::{
    OrchestratorInput, Procedure, ProtocolRequest, Verdict,
};
use livemig_core::migration::MigrateFlags;
use livemig_host::libvirt_hosts::{Host as LvHost, PortBlocker, TwoHosts, HOST_A, HOST_B};
use livemig_host::migrate::{run, MigrateOptions, MigrateOutcome, StepLog};

fn opts(from: &LvHost, to: &LvHost, protocol: ProtocolRequest) -> MigrateOptions {
    MigrateOptions {
        source: from.uri(),
        destination: to.uri(),
        domain: "tiny".into(),
        protocol,
        flags: MigrateFlags::LIVE,
        graphics_uri: None,
        step_timeout: Some(Duration::from_secs(30)),
        record: true,
    }
}

fn migrate(o: &MigrateOptions) -> MigrateOutcome {
    run(o, Arc::new(AtomicBool::new(false)), |_| {}).unwrap()
}

/// `proc(cancelled)` of each step, e.g. `306(0)`.
fn calls(o: &MigrateOutcome) -> Vec<String> {
    o.steps
        .iter()
        .map(|s| match s.call.cancelled {
            Some(c) => format!("{}({})", s.call.procedure.number(), u8::from(c)),
            None => s.call.procedure.number().to_string(),
        })
        .collect()
}

/// Every cookie seen parses and formats back byte for byte, and no host is ever sent a
/// cookie it emitted itself.
fn check_cookies(o: &MigrateOutcome) {
    for s in &o.steps {
        let out = match &s.result {
            OrchestratorInput::Begun { cookie, .. }
            | OrchestratorInput::Prepared { cookie, .. }
            | OrchestratorInput::Performed { cookie }
            | OrchestratorInput::Finished { cookie, .. } => Some(cookie),
            _ => None,
        };
        for bytes in [s.call.cookie.as_ref(), out].into_iter().flatten() {
            if let Some(c) = Cookie::parse(bytes.as_slice()).unwrap() {
                assert_eq!(c.format(), bytes.as_slice(), "cookie does not round-trip");
            }
        }
        if let (Some(sent), Some(out)) = (s.call.cookie.as_ref(), out) {
            if !sent.is_empty() && !out.is_empty() {
                let a = Cookie::parse(sent.as_slice()).unwrap().unwrap();
                let b = Cookie::parse(out.as_slice()).unwrap().unwrap();
                assert_ne!(
                    a.hostuuid, b.hostuuid,
                    "{:?} got its own cookie",
                    s.call.procedure
                );
            }
        }
    }
}

#[test]
fn managed_v3_there_and_back_then_fixed_args_and_v2() {
    let env = TwoHosts::start().unwrap();
    env.create_guest(&HOST_A, "127.0.0.1").unwrap();
    let o = migrate(&opts(&HOST_A, &HOST_B, ProtocolRequest::Auto));
    assert_eq!(o.report.verdict, Verdict::Migrated, "{:?}", o.report);
    assert_eq!(calls(&o), ["302", "212", "303", "305", "306(0)", "307(0)"]);
    assert_eq!(o.steps[0].call.flags, 0x101);
    check_cookies(&o);
    env.check_runs_only_on(&HOST_B).unwrap();
    livemig_core::trace::replay(o.trace.as_deref().unwrap()).unwrap();

    let o = migrate(&opts(&HOST_B, &HOST_A, ProtocolRequest::Auto));
    assert_eq!(o.report.verdict, Verdict::Migrated, "{:?}", o.report);
    env.check_runs_only_on(&HOST_A).unwrap();

    let o = migrate(&opts(&HOST_A, &HOST_B, ProtocolRequest::V3));
    assert_eq!(o.report.verdict, Verdict::Migrated, "{:?}", o.report);
    assert_eq!(calls(&o), ["213", "212", "214", "216", "217(0)", "218(0)"]);
    check_cookies(&o);
    env.check_runs_only_on(&HOST_B).unwrap();

    // v2 against libvirt 9.0 + QEMU: the destination daemon segfaults in Prepare2:
    // qemuMigrationDstPrepareActive passes `mig->caps->automatic` on, and a v2 Prepare2 has
    // no cookie, so `mig->caps` is NULL ("rpc-libvirtd: segfault at 8 in
    // libvirt_driver_qemu.so", seen in dmesg). What livemig must guarantee then: the
    // migration fails cleanly and the VM keeps running on the source only.
    let o = migrate(&opts(&HOST_B, &HOST_A, ProtocolRequest::V2));
    assert_eq!(calls(&o), ["14", "212", "108"]);
    assert_eq!(o.report.verdict, Verdict::Failed, "{:?}", o.report);
    let st = livemig_host::libvirt_hosts::virsh(&HOST_B, &["domstate", "tiny"]).unwrap();
    assert_eq!(st.trim(), "running");
}

#[test]
fn prepare_fails_confirm_cancelled_source_keeps_running() {
    let env = TwoHosts::start().unwrap();
    env.create_guest(&HOST_A, "127.0.0.1").unwrap();
    let blocker = PortBlocker::start(&HOST_B, 5940).unwrap();
    let o = migrate(&opts(&HOST_A, &HOST_B, ProtocolRequest::Auto));
    drop(blocker);
    assert_eq!(o.report.verdict, Verdict::Failed, "{:?}", o.report);
    assert_eq!(calls(&o), ["302", "212", "303", "307(1)"]);
    assert!(
        o.report.error.as_ref().unwrap().message.contains("spice"),
        "{:?}",
        o.report
    );
    env.check_runs_only_on(&HOST_A).unwrap();
}

fn tc(netns: &str, args: &[&str]) {
    let st = Command::new("ip")
        .args(["netns", "exec", netns, "tc"])
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "tc {args:?}");
}

fn kill_qemu_in(netns: &str) {
    let pids = Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .unwrap();
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmd.contains("qemu-system") {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
}

#[test]
fn destination_killed_during_perform_finish_cancelled_no_confirm() {
    let env = TwoHosts::start().unwrap();
    env.create_guest(&HOST_A, "127.0.0.1").unwrap();
    // Slow A's link so Perform lasts seconds (failure F2).
    tc(
        HOST_A.netns,
        &[
            "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "1mbit", "burst", "32kbit",
            "latency", "400ms",
        ],
    );
    let killer = std::thread::spawn(|| {
        std::thread::sleep(Duration::from_millis(1500));
        kill_qemu_in(HOST_B.netns);
    });
    let o = run(
        &opts(&HOST_A, &HOST_B, ProtocolRequest::Auto),
        Arc::new(AtomicBool::new(false)),
        |_| {},
    )
    .unwrap();
    killer.join().unwrap();
    assert_eq!(o.report.verdict, Verdict::Failed, "{:?}", o.report);
    assert_eq!(calls(&o), ["302", "212", "303", "305", "306(1)"]);
    env.check_runs_only_on(&HOST_A).unwrap();
}

fn cancel_at(step: Procedure) -> (MigrateOutcome, TwoHosts) {
    let env = TwoHosts::start().unwrap();
    env.create_guest(&HOST_A, "127.0.0.1").unwrap();
    let cancel = Arc::new(AtomicBool::new(false));
    let c = cancel.clone();
    let o = run(
        &opts(&HOST_A, &HOST_B, ProtocolRequest::Auto),
        cancel,
        move |s: &StepLog| {
            if s.call.procedure == step {
                c.store(true, Ordering::SeqCst);
            }
        },
    )
    .unwrap();
    (o, env)
}

#[test]
fn cancel_after_begin_releases_the_job_with_confirm_cancelled() {
    // Asked while Begin was out: Confirm(cancelled=1, empty cookie) right after it
    // (libvirt-real-peer.md §7 C1).
    let (o, env) = cancel_at(Procedure::MigrateBegin3Params);
    assert_eq!(o.report.verdict, Verdict::Failed, "{:?}", o.report);
    assert_eq!(calls(&o), ["302", "307(1)"]);
    assert_eq!(o.steps[1].call.cookie.as_ref().map(|c| c.len()), Some(0));
    assert_eq!(o.report.error.as_ref().map(|e| e.code), Some(78));
    env.check_runs_only_on(&HOST_A).unwrap();
    // The job was released: a new migration goes through.
    let o = migrate(&opts(&HOST_A, &HOST_B, ProtocolRequest::Auto));
    assert_eq!(o.report.verdict, Verdict::Migrated, "{:?}", o.report);
    env.check_runs_only_on(&HOST_B).unwrap();
}

#[test]
fn cancel_after_prepare_finishes_and_confirms_cancelled() {
    let (o, env) = cancel_at(Procedure::MigratePrepare3Params);
    assert_eq!(o.report.verdict, Verdict::Failed, "{:?}", o.report);
    assert_eq!(calls(&o), ["302", "212", "303", "306(1)", "307(1)"]);
    env.check_runs_only_on(&HOST_A).unwrap();
}
