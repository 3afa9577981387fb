//! The source daemon's step logic (spec/libvirt-migration.md §4.2, §4.3, §4.6, §7, §8),
//! driven through `handle`/`poll_action` with the real cookies of
//! spec/libvirt-real-peer.md §5.

use livemig_core::bytes::Bytes;
use livemig_core::migration::cookie::{Cookie, CookieFlags, Graphics, Statistics};
use livemig_core::migration::error::{
    ERR_ARGUMENT_UNSUPPORTED, ERR_INTERNAL_ERROR, ERR_MIGRATE_UNSAFE, ERR_OPERATION_ABORTED,
    ERR_OPERATION_FAILED, ERR_OPERATION_INVALID,
};
use livemig_core::migration::phase::{JobPhase, StopReason, VmState};
use livemig_core::migration::source::{
    SourceAction, SourceConfig, SourceHost, SourceInput, SourceReply, SourceStep, SourceVm,
};
use livemig_core::migration::{MigrateFlags, ParamValue, Params, RemoteError};
use livemig_core::Machine;

const NAME: &str = "tiny";
const UUID: &str = "7e1e7e1e-0000-4000-8000-000000000001";
const HOSTA_UUID: &str = "0a0a0a0a-0000-4000-8000-00000000000a";
const HOSTB_UUID: &str = "0b0b0b0b-0000-4000-8000-00000000000b";
const URI: &str = "tcp:10.77.0.2:49152";

const CPU: &str = "<cpu mode='custom' match='exact' check='full'>
    <model fallback='forbid'>qemu64</model>
    <feature policy='require' name='hypervisor'/>
    <feature policy='require' name='lahf_lm'/>
  </cpu>";

const GUEST_XML: &str = "<domain type='qemu'><name>tiny</name><uuid>7e1e7e1e-0000-4000-8000-000000000001</uuid><memory unit='MiB'>64</memory></domain>";

/// The cookies real libvirt 9.0 daemons exchanged (real-peer §5), as the codec's golden
/// vectors hold them: Begin3 → Prepare3 (882 bytes), Prepare3 → Perform3 (724),
/// Perform3 → Finish3 (1122), Finish3 → Confirm3 (1143).
fn real_begin() -> Vec<u8> {
    include_bytes!("vectors/cookies/begin-prepare.cookie").to_vec()
}

fn real_prepare() -> Vec<u8> {
    include_bytes!("vectors/cookies/prepare-perform.cookie").to_vec()
}

fn real_perform() -> Vec<u8> {
    include_bytes!("vectors/cookies/perform-finish.cookie").to_vec()
}

fn real_finish() -> Vec<u8> {
    include_bytes!("vectors/cookies/finish-confirm.cookie").to_vec()
}

fn perform_stats() -> Statistics {
    Cookie::parse(&real_perform())
        .unwrap()
        .unwrap()
        .statistics
        .unwrap()
}

fn config() -> SourceConfig {
    let mut c = SourceConfig::new(
        "hosta",
        HOSTA_UUID,
        SourceVm {
            name: NAME.into(),
            uuid: UUID.into(),
            state: VmState::Running,
            xml: GUEST_XML.into(),
            cpu: Some(CPU.into()),
        },
    );
    c.lock_driver = Some("nop".into());
    c
}

fn drain(m: &mut SourceHost) -> Vec<SourceAction> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn step(m: &mut SourceHost, now: u64, input: SourceInput) -> Vec<SourceAction> {
    m.handle(now, input);
    drain(m)
}

const LIVE_PROT: MigrateFlags =
    MigrateFlags(MigrateFlags::LIVE.0 | MigrateFlags::CHANGE_PROTECTION.0);

fn uri_params() -> Params {
    let mut p = Params::default();
    p.replace_str("migrate_uri", URI);
    p
}

fn begin(flags: MigrateFlags) -> SourceInput {
    SourceInput::Begin {
        flags,
        params: Params::default(),
    }
}

fn perform_with(cookie: Vec<u8>, flags: MigrateFlags, params: Params) -> SourceInput {
    SourceInput::Perform {
        cookie: Bytes(cookie),
        flags,
        params,
    }
}

fn perform(flags: MigrateFlags) -> SourceInput {
    perform_with(real_prepare(), flags, uri_params())
}

fn confirm(cookie: Vec<u8>, cancelled: bool) -> SourceInput {
    SourceInput::Confirm {
        cookie: Bytes(cookie),
        flags: LIVE_PROT,
        cancelled,
    }
}

fn save(phase: JobPhase) -> SourceAction {
    SourceAction::SavePhase { phase }
}

fn ok(step: SourceStep, cookie: Vec<u8>, xml: Option<&str>) -> SourceAction {
    SourceAction::Reply {
        step,
        result: Ok(SourceReply {
            cookie: Bytes(cookie),
            xml: xml.map(str::to_owned),
        }),
    }
}

fn confirm_ok() -> SourceAction {
    ok(SourceStep::Confirm, Vec::new(), None)
}

fn relocation_5940() -> SourceAction {
    SourceAction::SetSpiceRelocation {
        hostname: "127.0.0.1".into(),
        port: 5940,
        tls_port: -1,
        cert_subject: None,
    }
}

fn set_caps() -> SourceAction {
    SourceAction::SetCapabilities {
        capabilities: vec!["pause-before-switchover".into()],
    }
}

fn start() -> SourceAction {
    SourceAction::StartMigration { uri: URI.into() }
}

fn stop_migrated() -> SourceAction {
    SourceAction::StopVm {
        reason: StopReason::Migrated,
    }
}

/// The reply's error, asserting the action is a reply to `step`.
fn reply_err(a: &SourceAction, step: SourceStep) -> RemoteError {
    match a {
        SourceAction::Reply {
            step: s,
            result: Err(e),
        } if *s == step => e.clone(),
        other => panic!("expected an error reply to {step:?}, got {other:?}"),
    }
}

/// Begin (with CHANGE_PROTECTION) and Perform up to the `migrate` command.
fn migrating(m: &mut SourceHost) {
    assert_eq!(
        step(m, 0, begin(LIVE_PROT)),
        vec![
            save(JobPhase::Begin3),
            ok(SourceStep::Begin, real_begin(), Some(GUEST_XML))
        ]
    );
    assert_eq!(
        step(m, 1, perform(LIVE_PROT)),
        vec![save(JobPhase::Perform3), relocation_5940()]
    );
    assert_eq!(
        step(m, 2, SourceInput::RelocationDone { error: None }),
        vec![set_caps()]
    );
    assert_eq!(
        step(m, 3, SourceInput::CapabilitiesSet { error: None }),
        vec![start()]
    );
}

/// Begin, Perform and a completed migration: phase perform3_done.
fn performed(m: &mut SourceHost) {
    migrating(m);
    assert!(step(m, 4, SourceInput::VmPaused).is_empty());
    assert_eq!(
        step(
            m,
            5,
            SourceInput::MigrationCompleted {
                stats: perform_stats()
            }
        ),
        vec![
            save(JobPhase::Perform3Done),
            ok(SourceStep::Perform, real_perform(), None)
        ]
    );
}

#[test]
fn real_cookie_constants_have_the_captured_lengths() {
    assert_eq!(real_begin().len(), 882);
    assert_eq!(real_prepare().len(), 724);
    assert_eq!(real_perform().len(), 1122);
    assert_eq!(real_finish().len(), 1143);
}

/// The managed v3 success path of real-peer §3/§4, byte for byte on every cookie.
#[test]
fn success_path_reproduces_the_real_cookies() {
    let mut m = SourceHost::new(config());
    performed(&mut m);
    assert_eq!(m.vm_state(), VmState::Paused);
    assert_eq!(m.phase(), Some(JobPhase::Perform3Done));
    // SPICE_MIGRATE_COMPLETED arrives at once (no client): Confirm does not wait.
    assert!(step(&mut m, 6, SourceInput::SpiceMigrated).is_empty());
    assert_eq!(
        step(&mut m, 7, confirm(real_finish(), false)),
        vec![
            save(JobPhase::Confirm3),
            stop_migrated(),
            SourceAction::EndJob,
            confirm_ok()
        ]
    );
    assert_eq!(m.vm_state(), VmState::Shutoff);
    assert_eq!(m.phase(), None);
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn begin_without_change_protection_keeps_no_job() {
    let mut m = SourceHost::new(config());
    let flags = MigrateFlags::LIVE;
    assert_eq!(
        step(&mut m, 0, begin(flags)),
        vec![ok(SourceStep::Begin, real_begin(), Some(GUEST_XML))]
    );
    assert_eq!(m.phase(), None);
    // Perform starts its own job.
    assert_eq!(
        step(&mut m, 1, perform(flags)),
        vec![save(JobPhase::Perform3), relocation_5940()]
    );
}

#[test]
fn begin_returns_destination_xml_param_and_offline_cookie_has_no_caps() {
    let mut m = SourceHost::new(config());
    let mut params = Params::default();
    params.replace_str("destination_xml", "<domain><name>tiny</name></domain>");
    let flags = MigrateFlags::OFFLINE.with(MigrateFlags::PERSIST_DEST);
    let out = step(&mut m, 0, SourceInput::Begin { flags, params });
    let [SourceAction::Reply {
        step: SourceStep::Begin,
        result: Ok(reply),
    }] = out.as_slice()
    else {
        panic!("{out:?}")
    };
    assert_eq!(
        reply.xml.as_deref(),
        Some("<domain><name>tiny</name></domain>")
    );
    let cookie = Cookie::parse(reply.cookie.as_slice()).unwrap().unwrap();
    assert_eq!(cookie.capabilities, None);
    assert_eq!(cookie.mandatory, CookieFlags::LOCKSTATE);
    assert_eq!(cookie.hostuuid, HOSTA_UUID);
}

#[test]
fn begin_with_lock_leases_sends_lockstate_and_none_without_driver() {
    let mut cfg = config();
    cfg.lock_driver = Some("lockd".into());
    cfg.lock_leases = Some("<lease/>".into());
    let mut m = SourceHost::new(cfg);
    let out = step(&mut m, 0, begin(MigrateFlags::LIVE));
    let SourceAction::Reply { result: Ok(r), .. } = &out[0] else {
        panic!("{out:?}")
    };
    let c = Cookie::parse(r.cookie.as_slice()).unwrap().unwrap();
    assert_eq!(
        c.lockstate.as_ref().map(|l| l.driver.as_str()),
        Some("lockd")
    );
    assert!(c.mandatory.contains(CookieFlags::LOCKSTATE));

    let mut cfg = config();
    cfg.lock_driver = None;
    let mut m = SourceHost::new(cfg);
    let out = step(&mut m, 0, begin(MigrateFlags::LIVE));
    let SourceAction::Reply { result: Ok(r), .. } = &out[0] else {
        panic!("{out:?}")
    };
    let c = Cookie::parse(r.cookie.as_slice()).unwrap().unwrap();
    assert_eq!(c.mandatory, CookieFlags::NONE);
    assert_eq!(c.lockstate, None);
}

/// §4.2 flag rules and safety checks: each refused combination answers with exactly one
/// error reply and keeps no job.
#[test]
fn begin_refuses_unsafe_or_invalid_flag_combinations() {
    use MigrateFlags as F;
    let live = F::LIVE;
    type Case<'a> = (MigrateFlags, Option<(&'a str, ParamValue)>, i32, &'a str);
    let cases: Vec<Case> = vec![
        (F::POSTCOPY, None, ERR_ARGUMENT_UNSUPPORTED,
         "argument unsupported: post-copy migration is not supported with non-live or paused migration"),
        (live.with(F::POSTCOPY).with(F::PAUSED), None, ERR_ARGUMENT_UNSUPPORTED,
         "argument unsupported: post-copy migration is not supported with non-live or paused migration"),
        (live.with(F::POSTCOPY).with(F::TUNNELLED), None, ERR_ARGUMENT_UNSUPPORTED,
         "argument unsupported: post-copy is not supported with tunnelled migration"),
        (F::OFFLINE, None, ERR_OPERATION_INVALID,
         "Requested operation is not valid: offline migration must be specified with the persistent flag set"),
        (F::OFFLINE.with(F::PERSIST_DEST).with(F::NON_SHARED_DISK), None, ERR_OPERATION_INVALID,
         "Requested operation is not valid: offline migration cannot handle non-shared storage"),
        (F::OFFLINE.with(F::PERSIST_DEST).with(F::TUNNELLED), None, ERR_OPERATION_INVALID,
         "Requested operation is not valid: tunnelled offline migration does not make sense"),
        (live.with(F::ZEROCOPY), None, ERR_OPERATION_INVALID,
         "Requested operation is not valid: zero-copy is only available for parallel migration"),
        (live.with(F::NON_SHARED_INC).with(F::TUNNELLED), None, ERR_ARGUMENT_UNSUPPORTED,
         "argument unsupported: migration of non-shared storage is not supported with tunnelled migration"),
        (live, Some(("migrate_disks", ParamValue::String("vda".into()))), 8,
         "invalid argument: use of 'VIR_MIGRATE_PARAM_MIGRATE_DISKS' requires use of 'VIR_MIGRATE_NON_SHARED_DISK' or 'VIR_MIGRATE_NON_SHARED_INC' flag"),
    ];
    for (flags, param, code, message) in cases {
        let mut m = SourceHost::new(config());
        let mut params = Params::default();
        if let Some((k, v)) = param {
            params.replace(k, v);
        }
        let out = step(
            &mut m,
            0,
            SourceInput::Begin {
                flags: flags.with(F::CHANGE_PROTECTION),
                params,
            },
        );
        assert_eq!(out.len(), 1, "{flags}: {out:?}");
        let e = reply_err(&out[0], SourceStep::Begin);
        assert_eq!((e.code, e.message.as_str()), (code, message), "{flags}");
        assert_eq!(m.phase(), None);
    }
    // Allowed combinations pass.
    for flags in [
        live.with(F::POSTCOPY),
        live.with(F::PARALLEL).with(F::ZEROCOPY),
        F::OFFLINE.with(F::PERSIST_DEST),
    ] {
        let mut m = SourceHost::new(config());
        let out = step(&mut m, 0, begin(flags));
        assert!(
            matches!(&out[..], [SourceAction::Reply { result: Ok(_), .. }]),
            "{flags}: {out:?}"
        );
    }
}

#[test]
fn begin_refuses_unsafe_storage_unless_unsafe_flag() {
    let mut cfg = config();
    cfg.unsafe_storage = true;
    let mut m = SourceHost::new(cfg.clone());
    let out = step(&mut m, 0, begin(MigrateFlags::LIVE));
    let e = reply_err(&out[0], SourceStep::Begin);
    assert_eq!(e.code, ERR_MIGRATE_UNSAFE);
    assert!(e.message.starts_with("Unsafe migration: "), "{}", e.message);
    let mut m = SourceHost::new(cfg);
    let out = step(
        &mut m,
        0,
        begin(MigrateFlags::LIVE.with(MigrateFlags::UNSAFE)),
    );
    assert!(matches!(
        &out[..],
        [SourceAction::Reply { result: Ok(_), .. }]
    ));
}

#[test]
fn begin_refuses_blockers_tls_force_and_a_stopped_vm() {
    let mut cfg = config();
    cfg.blockers = vec!["domain has active block job".into()];
    let e = reply_err(
        &step(&mut SourceHost::new(cfg), 0, begin(MigrateFlags::LIVE))[0],
        SourceStep::Begin,
    );
    assert_eq!(
        e.message,
        "Requested operation is not valid: cannot migrate domain: domain has active block job"
    );

    let mut cfg = config();
    cfg.tls_force = true;
    let e = reply_err(
        &step(
            &mut SourceHost::new(cfg.clone()),
            0,
            begin(MigrateFlags::LIVE),
        )[0],
        SourceStep::Begin,
    );
    assert_eq!(e.code, ERR_OPERATION_INVALID);
    let out = step(
        &mut SourceHost::new(cfg),
        0,
        begin(MigrateFlags::LIVE.with(MigrateFlags::TLS)),
    );
    assert!(matches!(
        &out[..],
        [SourceAction::Reply { result: Ok(_), .. }]
    ));

    let mut cfg = config();
    cfg.vm.state = VmState::Shutoff;
    let e = reply_err(
        &step(&mut SourceHost::new(cfg), 0, begin(MigrateFlags::LIVE))[0],
        SourceStep::Begin,
    );
    assert_eq!(
        e.message,
        "Requested operation is not valid: domain is not running"
    );
}

#[test]
fn second_begin_while_job_is_kept_is_refused() {
    let mut m = SourceHost::new(config());
    step(&mut m, 0, begin(LIVE_PROT));
    let out = step(&mut m, 1, begin(LIVE_PROT));
    assert_eq!(out.len(), 1);
    let e = reply_err(&out[0], SourceStep::Begin);
    assert_eq!(
        e.message,
        "Requested operation is not valid: another migration job is already running for domain 'tiny'"
    );
    assert_eq!(m.phase(), Some(JobPhase::Begin3));
}

/// real-peer F2: Perform fails after the guest was paused → migrate_cancel, resume (it was
/// running, §12.7), end job, error; managed mode then skips Confirm.
#[test]
fn perform_failure_cancels_and_resumes_a_running_source() {
    let mut m = SourceHost::new(config());
    migrating(&mut m);
    step(&mut m, 4, SourceInput::VmPaused);
    let out = step(
        &mut m,
        5,
        SourceInput::MigrationFailed {
            error: "Channel error: Input/output error".into(),
        },
    );
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!(
        out[..3],
        [
            SourceAction::CancelMigration,
            SourceAction::Resume,
            SourceAction::EndJob
        ]
    );
    let e = reply_err(&out[3], SourceStep::Perform);
    assert_eq!(e.code, ERR_OPERATION_FAILED);
    assert_eq!(
        e.message,
        "operation failed: job 'migration out' failed: Channel error: Input/output error"
    );
    assert_eq!(m.vm_state(), VmState::Running);
    // The job is gone: a Confirm now is refused and kills nothing.
    let out = step(&mut m, 6, confirm(Vec::new(), true));
    let e = reply_err(&out[0], SourceStep::Confirm);
    assert_eq!(
        e.message,
        "Requested operation is not valid: domain 'tiny' is not being migrated"
    );
}

#[test]
fn perform_failure_before_switchover_does_not_resume() {
    let mut m = SourceHost::new(config());
    migrating(&mut m);
    let out = step(
        &mut m,
        5,
        SourceInput::MigrationFailed { error: "x".into() },
    );
    assert_eq!(
        out[..2],
        [SourceAction::CancelMigration, SourceAction::EndJob]
    );
    assert_eq!(out.len(), 3);
}

/// §12.7: a source that was paused before the migration stays paused after a failure.
#[test]
fn perform_failure_keeps_a_paused_source_paused() {
    let mut cfg = config();
    cfg.vm.state = VmState::Paused;
    let mut m = SourceHost::new(cfg);
    let flags = LIVE_PROT.with(MigrateFlags::PAUSED);
    step(&mut m, 0, begin(flags));
    step(&mut m, 1, perform(flags));
    step(&mut m, 2, SourceInput::RelocationDone { error: None });
    step(&mut m, 3, SourceInput::CapabilitiesSet { error: None });
    let out = step(
        &mut m,
        4,
        SourceInput::MigrationFailed { error: "x".into() },
    );
    assert_eq!(
        out[..2],
        [SourceAction::CancelMigration, SourceAction::EndJob]
    );
    assert_eq!(out.len(), 3);
    assert_eq!(m.vm_state(), VmState::Paused);
}

#[test]
fn non_live_perform_pauses_first_and_resumes_on_failure() {
    let mut m = SourceHost::new(config());
    let flags = MigrateFlags::CHANGE_PROTECTION;
    step(&mut m, 0, begin(flags));
    step(&mut m, 1, perform(flags));
    step(&mut m, 2, SourceInput::RelocationDone { error: None });
    assert_eq!(
        step(&mut m, 3, SourceInput::CapabilitiesSet { error: None }),
        vec![SourceAction::Pause]
    );
    assert_eq!(
        step(&mut m, 4, SourceInput::PauseDone { error: None }),
        vec![start()]
    );
    let out = step(
        &mut m,
        5,
        SourceInput::MigrationFailed { error: "x".into() },
    );
    assert_eq!(
        out[..3],
        [
            SourceAction::CancelMigration,
            SourceAction::Resume,
            SourceAction::EndJob
        ]
    );
}

#[test]
fn capability_or_pause_failure_fails_perform_without_cancel() {
    let mut m = SourceHost::new(config());
    step(&mut m, 0, begin(LIVE_PROT));
    step(&mut m, 1, perform(LIVE_PROT));
    step(&mut m, 2, SourceInput::RelocationDone { error: None });
    let out = step(
        &mut m,
        3,
        SourceInput::CapabilitiesSet {
            error: Some("boom".into()),
        },
    );
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0], SourceAction::EndJob);
    assert_eq!(
        reply_err(&out[1], SourceStep::Perform).message,
        "operation failed: boom"
    );
}

/// §6/§12.9: the Prepare cookie is checked; a failure ends the job and touches nothing.
#[test]
fn perform_refuses_bad_prepare_cookies() {
    // The source's own cookie coming back.
    let own = real_begin();
    // A cookie for another domain.
    let mut other = Cookie::new("other", UUID, "hostb", HOSTB_UUID);
    other.graphics = None;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (own, "internal error: Attempt to migrate guest to the same host 0a0a0a0a-0000-4000-8000-00000000000a"),
        (other.format(), "internal error: Incoming cookie data had unexpected name other vs tiny"),
        (b"<qemu-migration>".to_vec(), "internal error: Migration cookie was not NULL terminated"),
    ];
    for (cookie, message) in cases {
        let mut m = SourceHost::new(config());
        step(&mut m, 0, begin(LIVE_PROT));
        let out = step(&mut m, 1, perform_with(cookie, LIVE_PROT, uri_params()));
        assert_eq!(out.len(), 3, "{out:?}");
        assert_eq!(out[..2], [save(JobPhase::Perform3), SourceAction::EndJob]);
        let e = reply_err(&out[2], SourceStep::Perform);
        assert_eq!((e.code, e.message.as_str()), (ERR_INTERNAL_ERROR, message));
        assert_eq!(m.vm_state(), VmState::Running);
    }
}

#[test]
fn perform_without_uri_fails() {
    let mut m = SourceHost::new(config());
    step(&mut m, 0, begin(LIVE_PROT));
    let out = step(
        &mut m,
        1,
        perform_with(real_prepare(), LIVE_PROT, Params::default()),
    );
    assert_eq!(out[..2], [save(JobPhase::Perform3), SourceAction::EndJob]);
    assert_eq!(reply_err(&out[2], SourceStep::Perform).code, 8);
}

#[test]
fn perform_with_change_protection_needs_the_begin_job() {
    let mut m = SourceHost::new(config());
    let out = step(&mut m, 0, perform(LIVE_PROT));
    assert_eq!(out.len(), 1);
    assert_eq!(
        reply_err(&out[0], SourceStep::Perform).message,
        "Requested operation is not valid: domain 'tiny' is not being migrated"
    );
}

/// §8/§12.8: a second Perform after perform3_done would move the phase backwards.
#[test]
fn repeated_perform_is_refused_as_going_backwards() {
    let mut m = SourceHost::new(config());
    performed(&mut m);
    let out = step(&mut m, 6, perform(LIVE_PROT));
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0], SourceAction::EndJob);
    assert_eq!(
        reply_err(&out[1], SourceStep::Perform).message,
        "internal error: migration protocol going backwards perform3_done => perform3"
    );
    // No StartMigration, no StopVm, no Resume: the guest is left as it is.
    assert_eq!(m.vm_state(), VmState::Paused);
}

#[test]
fn perform_success_with_persist_dest_carries_the_persistent_definition() {
    let mut m = SourceHost::new(config());
    let flags = LIVE_PROT.with(MigrateFlags::PERSIST_DEST);
    step(&mut m, 0, begin(flags));
    step(&mut m, 1, perform(flags));
    step(&mut m, 2, SourceInput::RelocationDone { error: None });
    step(&mut m, 3, SourceInput::CapabilitiesSet { error: None });
    let out = step(
        &mut m,
        4,
        SourceInput::MigrationCompleted {
            stats: perform_stats(),
        },
    );
    let SourceAction::Reply { result: Ok(r), .. } = &out[1] else {
        panic!("{out:?}")
    };
    let c = Cookie::parse(r.cookie.as_slice()).unwrap().unwrap();
    assert_eq!(c.mandatory, CookieFlags::PERSISTENT);
    assert_eq!(c.domain.as_ref().map(|d| d.as_str()), Some(GUEST_XML));
    assert_eq!(c.statistics, Some(perform_stats()));
}

#[test]
fn flags_request_capabilities_and_always_on_needs_the_destination() {
    let mut m = SourceHost::new(config());
    let flags = LIVE_PROT
        .with(MigrateFlags::AUTO_CONVERGE)
        .with(MigrateFlags::COMPRESSED);
    step(&mut m, 0, begin(flags));
    // A destination without pause-before-switchover in its <capabilities>.
    let mut c = Cookie::new(NAME, UUID, "hostb", HOSTB_UUID);
    c.capabilities = Some(vec![]);
    let out = step(&mut m, 1, perform_with(c.format(), flags, uri_params()));
    assert_eq!(
        out,
        vec![
            save(JobPhase::Perform3),
            SourceAction::SetCapabilities {
                capabilities: vec!["xbzrle".into(), "auto-converge".into()]
            }
        ]
    );
    // A flag whose capability the local QEMU lacks.
    let mut cfg = config();
    cfg.migration_caps.retain(|c| c != "multifd");
    let mut m = SourceHost::new(cfg);
    let flags = LIVE_PROT.with(MigrateFlags::PARALLEL);
    step(&mut m, 0, begin(flags));
    let out = step(&mut m, 1, perform(flags));
    assert_eq!(
        reply_err(&out[2], SourceStep::Perform).message,
        "argument unsupported: Migration option 'multifd' is not supported by QEMU binary"
    );
}

fn prepare_cookie(graphics: Option<Graphics>) -> Vec<u8> {
    let mut c = Cookie::new(NAME, UUID, "hostb", HOSTB_UUID);
    c.graphics = graphics;
    c.format()
}

fn spice(listen: &str, port: i32, tls_port: Option<i32>) -> Graphics {
    Graphics {
        kind: "spice".into(),
        port,
        listen: listen.into(),
        tls_port,
        cert_subject: None,
    }
}

/// The first actions of a Perform with this Prepare cookie and graphics URI.
fn relocation_for(cookie: Vec<u8>, graphics_uri: Option<&str>) -> Vec<SourceAction> {
    let mut m = SourceHost::new(config());
    step(&mut m, 0, begin(LIVE_PROT));
    let mut params = uri_params();
    if let Some(g) = graphics_uri {
        params.replace_str("graphics_uri", g);
    }
    step(&mut m, 1, perform_with(cookie, LIVE_PROT, params))
}

/// §7 relocation rules.
#[test]
fn graphics_relocation_rules() {
    let reloc = |hostname: &str, port, tls_port, cert_subject: Option<&str>| {
        vec![
            save(JobPhase::Perform3),
            SourceAction::SetSpiceRelocation {
                hostname: hostname.into(),
                port,
                tls_port,
                cert_subject: cert_subject.map(str::to_owned),
            },
        ]
    };
    let none = vec![save(JobPhase::Perform3), set_caps()];
    // Wildcard listen (IPv4 and IPv6) → the cookie's hostname (real-peer §4 "hostb").
    assert_eq!(
        relocation_for(prepare_cookie(Some(spice("0.0.0.0", 5940, Some(-1)))), None),
        reloc("hostb", 5940, -1, None)
    );
    assert_eq!(
        relocation_for(prepare_cookie(Some(spice("::", 5940, Some(5941)))), None),
        reloc("hostb", 5940, 5941, None)
    );
    // graphics_uri overrides host, port, tlsPort and tlsSubject (percent-decoded).
    assert_eq!(
        relocation_for(
            prepare_cookie(Some(spice("127.0.0.1", 5940, Some(-1)))),
            Some("spice://10.77.0.1:5950/?tlsPort=5951&tlsSubject=C%3DXX%2CO%3DTest")
        ),
        reloc("10.77.0.1", 5950, 5951, Some("C=XX,O=Test"))
    );
    // real-peer §4: --graphicsuri spice://10.77.0.1:5940.
    assert_eq!(
        relocation_for(real_prepare(), Some("spice://10.77.0.1:5940")),
        reloc("10.77.0.1", 5940, -1, None)
    );
    // The URI alone, with an empty cookie (IPv6 host without brackets).
    let out = relocation_for(Vec::new(), Some("spice://[fd00::1]:5940"));
    assert_eq!(out, reloc("fd00::1", 5940, -1, None));
    // ... and without a host there is nothing to fall back to: a warning only.
    let out = relocation_for(Vec::new(), Some("spice:///?tlsPort=5941"));
    assert_eq!(
        out,
        vec![
            save(JobPhase::Perform3),
            SourceAction::Warn {
                message: "unable to provide data for graphics client relocation: no host name to relocate the graphics client to".into()
            },
            set_caps()
        ]
    );
    // Nothing when port ≤ 0 and tlsPort ≤ 0, for VNC, or without graphics.
    assert_eq!(
        relocation_for(prepare_cookie(Some(spice("10.0.0.1", 0, Some(-1)))), None),
        none
    );
    assert_eq!(
        relocation_for(
            prepare_cookie(Some(spice("10.0.0.1", -1, Some(5941)))),
            None
        ),
        reloc("10.0.0.1", -1, 5941, None)
    );
    let mut vnc = spice("10.0.0.1", 5900, None); // VNC has no tlsPort
    vnc.kind = "vnc".into();
    assert_eq!(relocation_for(prepare_cookie(Some(vnc)), None), none);
    assert_eq!(relocation_for(prepare_cookie(None), None), none);
    assert_eq!(relocation_for(Vec::new(), None), none);
    // A bad graphics URI only warns (§7 "failure only warns").
    let out = relocation_for(real_prepare(), Some("bogus://h:1"));
    assert_eq!(
        out,
        vec![
            save(JobPhase::Perform3),
            SourceAction::Warn {
                message: "unable to provide data for graphics client relocation: unknown graphics type bogus".into()
            },
            set_caps()
        ]
    );
    let out = relocation_for(real_prepare(), Some("spice://h:1/?tlsPort=x"));
    assert!(
        matches!(&out[1], SourceAction::Warn { message } if message.ends_with("invalid tlsPort number: x")),
        "{out:?}"
    );
}

/// A failed `client_migrate_info` only warns, and Confirm then does not wait for SPICE.
#[test]
fn relocation_failure_warns_and_confirm_does_not_wait() {
    let mut m = SourceHost::new(config());
    step(&mut m, 0, begin(LIVE_PROT));
    step(&mut m, 1, perform(LIVE_PROT));
    assert_eq!(
        step(
            &mut m,
            2,
            SourceInput::RelocationDone {
                error: Some("no spice".into())
            }
        ),
        vec![
            SourceAction::Warn {
                message: "unable to provide data for graphics client relocation: no spice".into()
            },
            set_caps()
        ]
    );
    step(&mut m, 3, SourceInput::CapabilitiesSet { error: None });
    step(
        &mut m,
        4,
        SourceInput::MigrationCompleted {
            stats: perform_stats(),
        },
    );
    assert_eq!(
        step(&mut m, 5, confirm(real_finish(), false)),
        vec![
            save(JobPhase::Confirm3),
            stop_migrated(),
            SourceAction::EndJob,
            confirm_ok()
        ]
    );
}

/// §7/§12.12: Confirm waits for SPICE_MIGRATE_COMPLETED before stopping the source; no
/// bound by default.
#[test]
fn confirm_waits_for_spice_without_a_timeout_by_default() {
    let mut m = SourceHost::new(config());
    performed(&mut m);
    assert_eq!(
        step(&mut m, 10, confirm(real_finish(), false)),
        vec![save(JobPhase::Confirm3)]
    );
    assert_eq!(m.poll_timeout(), None);
    assert!(step(&mut m, 1_000_000, SourceInput::Timeout).is_empty());
    assert_eq!(m.vm_state(), VmState::Paused);
    assert_eq!(
        step(&mut m, 1_000_001, SourceInput::SpiceMigrated),
        vec![stop_migrated(), SourceAction::EndJob, confirm_ok()]
    );
}

#[test]
fn confirm_spice_wait_is_bounded_when_configured() {
    let mut cfg = config();
    cfg.spice_wait_ms = Some(5000);
    let mut m = SourceHost::new(cfg);
    performed(&mut m);
    assert_eq!(
        step(&mut m, 1000, confirm(real_finish(), false)),
        vec![save(JobPhase::Confirm3)]
    );
    assert_eq!(m.poll_timeout(), Some(6000));
    assert!(step(&mut m, 5999, SourceInput::Timeout).is_empty());
    assert_eq!(
        step(&mut m, 6000, SourceInput::Timeout),
        vec![
            SourceAction::Warn {
                message: "SPICE client migration did not complete within 5000 ms; stopping the source anyway".into()
            },
            stop_migrated(),
            SourceAction::EndJob,
            confirm_ok()
        ]
    );
    assert_eq!(m.poll_timeout(), None);
}

#[test]
fn abort_during_spice_wait_stops_the_source() {
    let mut m = SourceHost::new(config());
    performed(&mut m);
    step(&mut m, 10, confirm(real_finish(), false));
    assert_eq!(
        step(&mut m, 11, SourceInput::AbortJob),
        vec![stop_migrated(), SourceAction::EndJob, confirm_ok()]
    );
}

#[test]
fn confirm_with_undefine_source_undefines_after_stopping() {
    let mut m = SourceHost::new(config());
    performed(&mut m);
    step(&mut m, 6, SourceInput::SpiceMigrated);
    let out = step(
        &mut m,
        7,
        SourceInput::Confirm {
            cookie: Bytes(real_finish()),
            flags: LIVE_PROT.with(MigrateFlags::UNDEFINE_SOURCE),
            cancelled: false,
        },
    );
    assert_eq!(
        out,
        vec![
            save(JobPhase::Confirm3),
            stop_migrated(),
            SourceAction::UndefineVm,
            SourceAction::EndJob,
            confirm_ok()
        ]
    );
}

/// Confirm(cancelled=1) after a successful Perform (Finish failed): resume, because the
/// guest was running before (§4.6, §12.3, §12.7).
#[test]
fn confirm_cancelled_resumes_a_previously_running_source() {
    let mut m = SourceHost::new(config());
    performed(&mut m);
    assert_eq!(
        step(&mut m, 6, confirm(Vec::new(), true)),
        vec![
            save(JobPhase::Confirm3Cancelled),
            SourceAction::Resume,
            SourceAction::EndJob,
            confirm_ok()
        ]
    );
    assert_eq!(m.vm_state(), VmState::Running);
}

#[test]
fn confirm_cancelled_leaves_a_previously_paused_source_paused() {
    let mut cfg = config();
    cfg.vm.state = VmState::Paused;
    let mut m = SourceHost::new(cfg);
    let flags = LIVE_PROT.with(MigrateFlags::PAUSED);
    step(&mut m, 0, begin(flags));
    step(&mut m, 1, perform(flags));
    step(&mut m, 2, SourceInput::RelocationDone { error: None });
    step(&mut m, 3, SourceInput::CapabilitiesSet { error: None });
    step(
        &mut m,
        4,
        SourceInput::MigrationCompleted {
            stats: perform_stats(),
        },
    );
    assert_eq!(
        step(&mut m, 5, confirm(Vec::new(), true)),
        vec![
            save(JobPhase::Confirm3Cancelled),
            SourceAction::EndJob,
            confirm_ok()
        ]
    );
    assert_eq!(m.vm_state(), VmState::Paused);
}

/// real-peer C1/C4: Begin then Confirm(cancelled=1, empty cookie) releases the job.
#[test]
fn confirm_cancelled_right_after_begin_releases_the_job() {
    let mut m = SourceHost::new(config());
    step(&mut m, 0, begin(LIVE_PROT));
    assert_eq!(
        step(&mut m, 1, confirm(Vec::new(), true)),
        vec![
            save(JobPhase::Confirm3Cancelled),
            SourceAction::EndJob,
            confirm_ok()
        ]
    );
    assert_eq!(m.vm_state(), VmState::Running);
    assert_eq!(m.phase(), None);
}

/// A Confirm(cancelled=0) without a completed Perform must not kill the only copy.
#[test]
fn confirm_success_without_completed_perform_is_refused() {
    let mut m = SourceHost::new(config());
    step(&mut m, 0, begin(LIVE_PROT));
    let out = step(&mut m, 1, confirm(real_finish(), false));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        reply_err(&out[0], SourceStep::Confirm).code,
        ERR_OPERATION_INVALID
    );
    assert_eq!(m.phase(), Some(JobPhase::Begin3));
}

/// A bad Finish cookie fails Confirm; the job ends and the guest is left paused (§11.3).
#[test]
fn confirm_with_a_bad_cookie_leaves_the_source_paused() {
    let mut m = SourceHost::new(config());
    performed(&mut m);
    let out = step(&mut m, 6, confirm(real_perform(), false));
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[..2], [save(JobPhase::Confirm3), SourceAction::EndJob]);
    assert_eq!(
        reply_err(&out[2], SourceStep::Confirm).message,
        "internal error: Attempt to migrate guest to the same host 0a0a0a0a-0000-4000-8000-00000000000a"
    );
    assert_eq!(m.vm_state(), VmState::Paused);
}

#[test]
fn abort_during_migration_cancels_and_reports_abort() {
    let mut m = SourceHost::new(config());
    migrating(&mut m);
    step(&mut m, 4, SourceInput::VmPaused);
    assert_eq!(
        step(&mut m, 5, SourceInput::AbortJob),
        vec![SourceAction::CancelMigration]
    );
    let out = step(
        &mut m,
        6,
        SourceInput::MigrationFailed {
            error: "cancelled".into(),
        },
    );
    assert_eq!(
        out[..3],
        [
            SourceAction::CancelMigration,
            SourceAction::Resume,
            SourceAction::EndJob
        ]
    );
    let e = reply_err(&out[3], SourceStep::Perform);
    assert_eq!(e.code, ERR_OPERATION_ABORTED);
    assert_eq!(
        e.message,
        "operation aborted: migration out job: canceled by client"
    );
}

#[test]
fn abort_after_begin_fails_the_next_perform() {
    let mut m = SourceHost::new(config());
    step(&mut m, 0, begin(LIVE_PROT));
    assert!(step(&mut m, 1, SourceInput::AbortJob).is_empty());
    let out = step(&mut m, 2, perform(LIVE_PROT));
    assert_eq!(out[..2], [save(JobPhase::Perform3), SourceAction::EndJob]);
    assert_eq!(
        reply_err(&out[2], SourceStep::Perform).code,
        ERR_OPERATION_ABORTED
    );
}

#[test]
fn abort_while_waiting_for_relocation_fails_before_migrate() {
    let mut m = SourceHost::new(config());
    step(&mut m, 0, begin(LIVE_PROT));
    step(&mut m, 1, perform(LIVE_PROT));
    assert!(step(&mut m, 2, SourceInput::AbortJob).is_empty());
    let out = step(&mut m, 3, SourceInput::RelocationDone { error: None });
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0], SourceAction::EndJob);
    assert_eq!(
        reply_err(&out[1], SourceStep::Perform).code,
        ERR_OPERATION_ABORTED
    );
}

/// §8: client lost after Begin → the job is aborted, a new Begin works.
#[test]
fn client_lost_after_begin_releases_the_job() {
    let mut m = SourceHost::new(config());
    step(&mut m, 0, begin(LIVE_PROT));
    assert_eq!(
        step(&mut m, 1, SourceInput::ClientClosed),
        vec![SourceAction::EndJob]
    );
    assert_eq!(m.phase(), None);
    assert_eq!(
        step(&mut m, 2, begin(LIVE_PROT)),
        vec![
            save(JobPhase::Begin3),
            ok(SourceStep::Begin, real_begin(), Some(GUEST_XML))
        ]
    );
}

/// §8: client lost at perform3_done → warn, end job, the source stays paused.
#[test]
fn client_lost_after_perform_leaves_the_source_paused() {
    let mut m = SourceHost::new(config());
    performed(&mut m);
    assert_eq!(
        step(&mut m, 6, SourceInput::ClientClosed),
        vec![
            SourceAction::Warn {
                message: "Migration of domain tiny finished but we don't know if the domain was successfully started on destination or not".into()
            },
            SourceAction::EndJob
        ]
    );
    assert_eq!(m.vm_state(), VmState::Paused);
    assert_eq!(m.phase(), None);
}

#[test]
fn client_lost_during_perform_is_ignored() {
    let mut m = SourceHost::new(config());
    migrating(&mut m);
    assert!(step(&mut m, 4, SourceInput::ClientClosed).is_empty());
    assert_eq!(m.phase(), Some(JobPhase::Perform3));
}

#[test]
fn qemu_death_during_perform_fails_it_without_resume() {
    let mut m = SourceHost::new(config());
    migrating(&mut m);
    let out = step(&mut m, 4, SourceInput::VmDied);
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0], SourceAction::EndJob);
    assert_eq!(
        reply_err(&out[1], SourceStep::Perform).message,
        "operation failed: domain is not running"
    );
    assert_eq!(m.vm_state(), VmState::Shutoff);
}

#[test]
fn stray_results_only_warn() {
    let mut m = SourceHost::new(config());
    let out = step(
        &mut m,
        0,
        SourceInput::MigrationCompleted {
            stats: Statistics::default(),
        },
    );
    assert!(matches!(&out[..], [SourceAction::Warn { .. }]), "{out:?}");
    assert!(step(&mut m, 0, SourceInput::SpiceMigrated).is_empty());
    assert_eq!(
        step(&mut m, 0, SourceInput::AbortJob),
        vec![SourceAction::Warn {
            message: "no job is active on the domain".into()
        }]
    );
}

#[test]
fn inputs_and_actions_are_tagged_json() {
    let a = save(JobPhase::Perform3Done);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        r#"{"type":"save_phase","phase":"perform3_done"}"#
    );
    let i: SourceInput =
        serde_json::from_str(r#"{"type":"relocation_done","error":null}"#).unwrap();
    assert_eq!(i, SourceInput::RelocationDone { error: None });
    let i: SourceInput = serde_json::from_str(r#"{"type":"begin","flags":257}"#).unwrap();
    assert_eq!(i, begin(LIVE_PROT));
    for a in [
        relocation_5940(),
        stop_migrated(),
        ok(SourceStep::Begin, real_begin(), Some("x")),
    ] {
        let json = serde_json::to_string(&a).unwrap();
        let back: SourceAction = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }
    let cfg: SourceConfig = serde_json::from_str(
        r#"{"hostname":"a","host_uuid":"u","vm":{"name":"n","uuid":"v","state":"running","xml":"<domain/>"}}"#,
    )
    .unwrap();
    assert_eq!(cfg.spice_wait_ms, None);
    assert_eq!(cfg.migration_caps.len(), 10);
}

#[test]
fn invalid_definitions_are_refused_or_dropped() {
    // PERSIST_DEST with a persistent_xml that is not one element: Perform fails up front.
    let mut m = SourceHost::new(config());
    let flags = LIVE_PROT.with(MigrateFlags::PERSIST_DEST);
    step(&mut m, 0, begin(flags));
    let mut params = uri_params();
    params.replace_str("persistent_xml", "<domain/><domain/>");
    let out = step(&mut m, 1, perform_with(real_prepare(), flags, params));
    assert_eq!(out[..2], [save(JobPhase::Perform3), SourceAction::EndJob]);
    assert!(reply_err(&out[2], SourceStep::Perform)
        .message
        .starts_with("internal error: invalid persistent domain definition: "));
    // A configured <cpu> that is not one element is left out of the Begin cookie.
    let mut cfg = config();
    cfg.vm.cpu = Some("<cpu>".into());
    let mut m = SourceHost::new(cfg);
    let out = step(&mut m, 0, begin(MigrateFlags::LIVE));
    assert_eq!(out.len(), 2, "{out:?}");
    assert!(
        matches!(&out[0], SourceAction::Warn { message } if message.starts_with("ignored invalid <cpu> element"))
    );
    let SourceAction::Reply { result: Ok(r), .. } = &out[1] else {
        panic!("{out:?}")
    };
    assert_eq!(
        Cookie::parse(r.cookie.as_slice()).unwrap().unwrap().cpu,
        None
    );
}
