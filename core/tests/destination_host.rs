//! The destination daemon's step logic (spec/libvirt-migration.md §4.1, §4.4, §4.5, §8),
//! driven through `handle`/`poll_action` with the real cookies of
//! spec/libvirt-real-peer.md §5.

use livemig_core::bytes::Bytes;
use livemig_core::migration::cookie::{Cookie, CookieFlags, Graphics, RawXml, Statistics};
use livemig_core::migration::destination::{
    DestinationAction, DestinationConfig, DestinationHost, DestinationInput, DestinationReply,
    DestinationStep, DomainRef,
};
use livemig_core::migration::error::{
    ERR_ARGUMENT_UNSUPPORTED, ERR_INTERNAL_ERROR, ERR_MIGRATE_FINISH_OK, ERR_NO_DOMAIN,
    ERR_OPERATION_FAILED, ERR_OPERATION_INVALID,
};
use livemig_core::migration::phase::{JobPhase, StopReason};
use livemig_core::migration::{MigrateFlags, Params, RemoteError};
use livemig_core::Machine;

const UUID: &str = "7e1e7e1e-0000-4000-8000-000000000001";
const HOSTA_UUID: &str = "0a0a0a0a-0000-4000-8000-00000000000a";
const HOSTB_UUID: &str = "0b0b0b0b-0000-4000-8000-00000000000b";

/// real-peer §2 guest (abridged).
const GUEST_XML: &str = "<domain type='qemu'><name>tiny</name><uuid>7e1e7e1e-0000-4000-8000-000000000001</uuid>
  <memory unit='MiB'>64</memory><vcpu>1</vcpu>
  <devices><graphics type='spice' port='5940' autoport='no' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics></devices></domain>";

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

fn stats_of(cookie: &[u8]) -> Statistics {
    Cookie::parse(cookie).unwrap().unwrap().statistics.unwrap()
}

fn config() -> DestinationConfig {
    let mut c = DestinationConfig::new("hostb", HOSTB_UUID);
    c.migration_host = Some("10.77.0.2".into());
    c.lock_driver = Some("nop".into());
    c.graphics = Some(Graphics {
        kind: "spice".into(),
        port: 5940,
        listen: "127.0.0.1".into(),
        tls_port: Some(-1),
        cert_subject: None,
    });
    c
}

fn drain(m: &mut DestinationHost) -> Vec<DestinationAction> {
    std::iter::from_fn(|| m.poll_action()).collect()
}

fn step(m: &mut DestinationHost, input: DestinationInput) -> Vec<DestinationAction> {
    m.handle(0, input);
    drain(m)
}

fn xml_params() -> Params {
    let mut p = Params::default();
    p.replace_str("destination_xml", GUEST_XML);
    p
}

fn prepare_with(cookie: Vec<u8>, flags: MigrateFlags, params: Params) -> DestinationInput {
    DestinationInput::Prepare {
        cookie: Bytes(cookie),
        flags,
        params,
    }
}

fn prepare() -> DestinationInput {
    prepare_with(real_begin(), MigrateFlags::LIVE, xml_params())
}

fn finish_with(
    cookie: Vec<u8>,
    flags: MigrateFlags,
    cancelled: bool,
    v2: bool,
) -> DestinationInput {
    let mut params = xml_params();
    params.replace_str("migrate_uri", "tcp:10.77.0.2:49152");
    params.replace_str("destination_name", "tiny");
    DestinationInput::Finish {
        cookie: Bytes(cookie),
        flags,
        params,
        cancelled,
        v2,
    }
}

fn finish() -> DestinationInput {
    finish_with(real_perform(), MigrateFlags::LIVE, false, false)
}

fn save(phase: JobPhase) -> DestinationAction {
    DestinationAction::SavePhase { phase }
}

fn start_incoming(name: &str, uri: &str) -> DestinationAction {
    DestinationAction::StartIncoming {
        name: name.into(),
        xml: GUEST_XML.into(),
        uri: uri.into(),
    }
}

fn kill() -> DestinationAction {
    DestinationAction::StopVm {
        reason: StopReason::Failed,
    }
}

fn tiny() -> DomainRef {
    DomainRef {
        name: "tiny".into(),
        uuid: UUID.into(),
    }
}

fn reply_err(a: &DestinationAction, step: DestinationStep) -> RemoteError {
    match a {
        DestinationAction::Reply {
            step: s,
            result: Err(e),
        } if *s == step => e.clone(),
        other => panic!("expected an error reply to {step:?}, got {other:?}"),
    }
}

fn finished_cookie(a: &DestinationAction) -> Cookie {
    match a {
        DestinationAction::Reply {
            step: DestinationStep::Finish,
            result: Ok(DestinationReply::Finished { cookie, domain }),
        } => {
            assert_eq!(*domain, tiny());
            Cookie::parse(cookie.as_slice()).unwrap().unwrap()
        }
        other => panic!("expected a Finish reply, got {other:?}"),
    }
}

/// Prepare up to a started incoming QEMU (reply delivered).
fn prepared(m: &mut DestinationHost) {
    assert_eq!(
        step(m, prepare()),
        vec![
            save(JobPhase::Prepare),
            start_incoming("tiny", "tcp:[::]:49152")
        ]
    );
    assert_eq!(
        step(m, DestinationInput::IncomingStarted { error: None }),
        vec![DestinationAction::Reply {
            step: DestinationStep::Prepare,
            result: Ok(DestinationReply::Prepared {
                cookie: Bytes(real_prepare()),
                uri_out: Some("tcp:10.77.0.2:49152".into()),
            }),
        }]
    );
    assert_eq!(m.phase(), Some(JobPhase::Prepare));
}

#[test]
fn real_cookie_constants_have_the_captured_lengths() {
    assert_eq!(real_begin().len(), 882);
    assert_eq!(real_prepare().len(), 724);
    assert_eq!(real_perform().len(), 1122);
    assert_eq!(real_finish().len(), 1143);
}

/// real-peer §3/§4/§5: Prepare's cookie and uri_out, Finish's cookie, byte for byte.
#[test]
fn success_path_reproduces_the_real_cookies() {
    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    // The incoming migration completes before Finish is called.
    assert!(step(
        &mut m,
        DestinationInput::IncomingCompleted {
            stats: Some(stats_of(&real_finish()))
        }
    )
    .is_empty());
    assert_eq!(
        step(&mut m, finish()),
        vec![save(JobPhase::Finish3), DestinationAction::StartCpus]
    );
    assert_eq!(
        step(&mut m, DestinationInput::CpusStarted { error: None }),
        vec![
            DestinationAction::EndJob,
            DestinationAction::Reply {
                step: DestinationStep::Finish,
                result: Ok(DestinationReply::Finished {
                    cookie: Bytes(real_finish()),
                    domain: tiny(),
                }),
            }
        ]
    );
    assert_eq!(m.phase(), None);
    assert_eq!(m.migrated(), Some(&tiny()));
    // The domain is now active here: a second Prepare of it is refused.
    let out = step(&mut m, prepare());
    assert_eq!(
        reply_err(&out[0], DestinationStep::Prepare).message,
        "Requested operation is not valid: domain 'tiny' is already active"
    );
}

/// Finish waits for the incoming completion; without host stats the Perform cookie's are
/// forwarded in the STATS cookie.
#[test]
fn finish_waits_for_incoming_completion() {
    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    assert_eq!(step(&mut m, finish()), vec![save(JobPhase::Finish3)]);
    assert_eq!(
        step(&mut m, DestinationInput::IncomingCompleted { stats: None }),
        vec![DestinationAction::StartCpus]
    );
    let out = step(&mut m, DestinationInput::CpusStarted { error: None });
    assert_eq!(out.len(), 2);
    assert_eq!(out[0], DestinationAction::EndJob);
    let c = finished_cookie(&out[1]);
    assert_eq!(c.statistics, Some(stats_of(&real_perform())));
    assert_eq!(c.hostname, "hostb");
    assert_eq!(c.hostuuid, HOSTB_UUID);
    assert_eq!(c.graphics, None);
}

#[test]
fn finish_with_paused_flag_does_not_start_cpus() {
    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    step(&mut m, DestinationInput::IncomingCompleted { stats: None });
    let out = step(
        &mut m,
        finish_with(
            real_perform(),
            MigrateFlags::LIVE.with(MigrateFlags::PAUSED),
            false,
            false,
        ),
    );
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(
        out[..2],
        [save(JobPhase::Finish3), DestinationAction::EndJob]
    );
    finished_cookie(&out[2]);
}

/// real-peer C2 / §4.5 / §12.6: Finish(cancelled) kills the incoming VM and answers 93.
#[test]
fn cancelled_finish_kills_and_reports_finish_ok() {
    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    let out = step(
        &mut m,
        finish_with(Vec::new(), MigrateFlags::LIVE, true, false),
    );
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!(
        out[..3],
        [save(JobPhase::Finish3), kill(), DestinationAction::EndJob]
    );
    let e = reply_err(&out[3], DestinationStep::Finish);
    assert_eq!(
        (e.code, e.message.as_str()),
        (ERR_MIGRATE_FINISH_OK, "migration successfully aborted")
    );
    assert_eq!(m.phase(), None);
    assert_eq!(m.migrated(), None);
}

/// real-peer F1: the incoming QEMU fails to start → error, nothing left; no Finish needed.
#[test]
fn prepare_start_failure_leaves_nothing() {
    let mut m = DestinationHost::new(config());
    step(&mut m, prepare());
    let out = step(
        &mut m,
        DestinationInput::IncomingStarted {
            error: Some(
                "qemu unexpectedly closed the monitor: failed to initialize spice server".into(),
            ),
        },
    );
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[..2], [kill(), DestinationAction::EndJob]);
    let e = reply_err(&out[2], DestinationStep::Prepare);
    assert_eq!(e.code, ERR_OPERATION_FAILED);
    assert_eq!(
        e.message,
        "operation failed: qemu unexpectedly closed the monitor: failed to initialize spice server"
    );
    assert_eq!(m.phase(), None);
    // A Finish now finds no domain.
    let out = step(
        &mut m,
        finish_with(Vec::new(), MigrateFlags::LIVE, true, false),
    );
    assert_eq!(out.len(), 1);
    let e = reply_err(&out[0], DestinationStep::Finish);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            ERR_NO_DOMAIN,
            "Domain not found: no domain with matching name 'tiny'"
        )
    );
    // And the VM can be prepared again.
    assert_eq!(step(&mut m, prepare())[0], save(JobPhase::Prepare));
}

/// §4.4: the cookie is checked before anything is started.
#[test]
fn prepare_refuses_bad_begin_cookies() {
    let mut bad_feature = String::from_utf8(real_begin()).unwrap();
    bad_feature = bad_feature.replace("<feature name='lockstate'/>", "<feature name='bogus'/>");
    let mut other_name = Cookie::new("other", UUID, "hosta", HOSTA_UUID);
    other_name.capabilities = Some(vec![]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (real_prepare(), "internal error: Attempt to migrate guest to the same host 0b0b0b0b-0000-4000-8000-00000000000b"),
        (bad_feature.into_bytes(), "internal error: Unknown migration cookie feature bogus"),
        (other_name.format(), "internal error: Incoming cookie data had unexpected name other vs tiny"),
    ];
    for (cookie, message) in cases {
        let mut m = DestinationHost::new(config());
        let out = step(
            &mut m,
            prepare_with(cookie, MigrateFlags::LIVE, xml_params()),
        );
        assert_eq!(out.len(), 1, "{out:?}");
        let e = reply_err(&out[0], DestinationStep::Prepare);
        assert_eq!((e.code, e.message.as_str()), (ERR_INTERNAL_ERROR, message));
        assert_eq!(m.phase(), None);
    }
}

#[test]
fn prepare_refuses_a_mandatory_feature_outside_the_hop() {
    let mut c = Cookie::new("tiny", UUID, "hosta", HOSTA_UUID);
    c.mandatory = CookieFlags::PERSISTENT;
    c.domain = Some(RawXml("<domain/>".into()));
    let mut m = DestinationHost::new(config());
    let out = step(
        &mut m,
        prepare_with(c.format(), MigrateFlags::LIVE, xml_params()),
    );
    assert_eq!(
        reply_err(&out[0], DestinationStep::Prepare).message,
        "internal error: Unsupported migration cookie feature persistent"
    );
}

/// §4.4: `virDomainObjListAdd(CHECK_LIVE)` refusals.
#[test]
fn prepare_refuses_an_active_name_or_uuid() {
    let cases = [
        ("tiny", UUID, ERR_OPERATION_INVALID, "Requested operation is not valid: domain 'tiny' is already active".to_owned()),
        ("tiny", "11111111-0000-4000-8000-000000000001", ERR_OPERATION_FAILED,
         "operation failed: domain 'tiny' already exists with uuid 11111111-0000-4000-8000-000000000001".to_owned()),
        ("big", UUID, ERR_OPERATION_FAILED,
         format!("operation failed: domain 'big' is already defined with uuid {UUID}")),
    ];
    for (name, uuid, code, message) in cases {
        let mut cfg = config();
        cfg.active_vms = vec![DomainRef {
            name: name.into(),
            uuid: uuid.into(),
        }];
        let mut m = DestinationHost::new(cfg);
        let out = step(&mut m, prepare());
        assert_eq!(out.len(), 1, "{out:?}");
        let e = reply_err(&out[0], DestinationStep::Prepare);
        assert_eq!((e.code, e.message.as_str()), (code, message.as_str()));
    }
}

#[test]
fn prepare_needs_the_domain_xml() {
    let mut m = DestinationHost::new(config());
    let out = step(
        &mut m,
        prepare_with(real_begin(), MigrateFlags::LIVE, Params::default()),
    );
    assert_eq!(
        reply_err(&out[0], DestinationStep::Prepare).message,
        "invalid argument: no domain XML passed"
    );
    let mut p = Params::default();
    p.replace_str("destination_xml", "<domain><uuid>x</uuid></domain>");
    let out = step(&mut m, prepare_with(real_begin(), MigrateFlags::LIVE, p));
    assert_eq!(reply_err(&out[0], DestinationStep::Prepare).code, 27);
}

/// §4.4: with dname the VM is renamed; cookies keep the original name; Finish looks the VM
/// up by the new name.
#[test]
fn destination_name_renames_the_incoming_vm() {
    let mut m = DestinationHost::new(config());
    let mut params = xml_params();
    params.replace_str("destination_name", "tiny2");
    assert_eq!(
        step(
            &mut m,
            prepare_with(real_begin(), MigrateFlags::LIVE, params)
        ),
        vec![
            save(JobPhase::Prepare),
            start_incoming("tiny2", "tcp:[::]:49152")
        ]
    );
    let out = step(&mut m, DestinationInput::IncomingStarted { error: None });
    let DestinationAction::Reply {
        result: Ok(DestinationReply::Prepared { cookie, .. }),
        ..
    } = &out[0]
    else {
        panic!("{out:?}")
    };
    assert_eq!(
        Cookie::parse(cookie.as_slice()).unwrap().unwrap().name,
        "tiny"
    );
    // Finish for the old name: no such domain, the incoming VM is untouched.
    let out = step(&mut m, finish());
    assert_eq!(
        reply_err(&out[0], DestinationStep::Finish).code,
        ERR_NO_DOMAIN
    );
    assert_eq!(m.phase(), Some(JobPhase::Prepare));
    let mut params = Params::default();
    params.replace_str("destination_name", "tiny2");
    step(&mut m, DestinationInput::IncomingCompleted { stats: None });
    let out = step(
        &mut m,
        DestinationInput::Finish {
            cookie: Bytes(real_perform()),
            flags: MigrateFlags::LIVE,
            params,
            cancelled: false,
            v2: false,
        },
    );
    assert_eq!(
        out,
        vec![save(JobPhase::Finish3), DestinationAction::StartCpus]
    );
    let out = step(&mut m, DestinationInput::CpusStarted { error: None });
    let DestinationAction::Reply {
        result: Ok(DestinationReply::Finished { domain, .. }),
        ..
    } = &out[1]
    else {
        panic!("{out:?}")
    };
    assert_eq!(domain.name, "tiny2");
}

fn uri_case(
    cfg: DestinationConfig,
    uri_in: Option<&str>,
    listen: Option<&str>,
) -> Result<(String, Option<String>), RemoteError> {
    let mut m = DestinationHost::new(cfg);
    let mut params = xml_params();
    if let Some(u) = uri_in {
        params.replace_str("migrate_uri", u);
    }
    if let Some(l) = listen {
        params.replace_str("listen_address", l);
    }
    let out = step(
        &mut m,
        prepare_with(real_begin(), MigrateFlags::LIVE, params),
    );
    match &out[..] {
        [DestinationAction::SavePhase { .. }, DestinationAction::StartIncoming { uri, .. }] => {
            let listen = uri.clone();
            let out = step(&mut m, DestinationInput::IncomingStarted { error: None });
            match &out[..] {
                [DestinationAction::Reply {
                    result: Ok(DestinationReply::Prepared { uri_out, .. }),
                    ..
                }] => Ok((listen, uri_out.clone())),
                other => panic!("{other:?}"),
            }
        }
        [a] => Err(reply_err(a, DestinationStep::Prepare)),
        other => panic!("{other:?}"),
    }
}

/// §4.4 URIs: `tcp:HOST:PORT`, IPv6 in brackets, localhost refused, uri_in with/without port.
#[test]
fn incoming_uri_rules() {
    let some = |s: &str| Some(s.to_owned());
    let mut v6 = config();
    v6.migration_host = Some("fd00::2".into());
    assert_eq!(
        uri_case(v6, None, None).unwrap(),
        ("tcp:[::]:49152".into(), some("tcp:[fd00::2]:49152"))
    );
    let mut by_name = config();
    by_name.migration_host = None;
    by_name.migration_port = 49153;
    assert_eq!(
        uri_case(by_name, None, None).unwrap(),
        ("tcp:[::]:49153".into(), some("tcp:hostb:49153"))
    );
    let mut local = config();
    local.migration_host = None;
    local.hostname = "localhost.localdomain".into();
    let e = uri_case(local, None, None).unwrap_err();
    assert_eq!(e.message, "internal error: hostname on destination resolved to localhost, but migration requires an FQDN");
    assert_eq!(
        uri_case(config(), Some("tcp:10.0.0.5"), None).unwrap(),
        ("tcp:[::]:49152".into(), some("tcp:10.0.0.5:49152"))
    );
    assert_eq!(
        uri_case(config(), Some("tcp://10.0.0.5"), None).unwrap(),
        ("tcp:[::]:49152".into(), some("tcp://10.0.0.5:49152"))
    );
    assert_eq!(
        uri_case(config(), Some("tcp://10.0.0.5:5000"), Some("10.0.0.5")).unwrap(),
        ("tcp:10.0.0.5:5000".into(), None)
    );
    assert_eq!(
        uri_case(config(), Some("tcp:10.0.0.5:5000"), Some("fd00::5")).unwrap(),
        ("tcp:[fd00::5]:5000".into(), None)
    );
    let e = uri_case(config(), Some("ftp://10.0.0.5"), None).unwrap_err();
    assert_eq!(e.code, ERR_ARGUMENT_UNSUPPORTED);
}

/// §4.5: a v3 PERSIST_DEST failure kills the destination (the source can still resume).
#[test]
fn persist_dest_uses_the_cookie_definition_and_failure_kills_in_v3() {
    let mut perform = Cookie::parse(&real_perform()).unwrap().unwrap();
    perform.mandatory = CookieFlags::PERSISTENT;
    perform.domain = Some(RawXml(
        "<domain type='qemu'><name>tiny</name></domain>".into(),
    ));
    let flags = MigrateFlags::LIVE.with(MigrateFlags::PERSIST_DEST);

    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    step(&mut m, DestinationInput::IncomingCompleted { stats: None });
    assert_eq!(
        step(&mut m, finish_with(perform.format(), flags, false, false)),
        vec![
            save(JobPhase::Finish3),
            DestinationAction::PersistVm {
                xml: "<domain type='qemu'><name>tiny</name></domain>".into()
            }
        ]
    );
    assert_eq!(
        step(&mut m, DestinationInput::PersistDone { error: None }),
        vec![DestinationAction::StartCpus]
    );

    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    step(&mut m, finish_with(perform.format(), flags, false, false));
    let out = step(
        &mut m,
        DestinationInput::PersistDone {
            error: Some("disk full".into()),
        },
    );
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(out[..2], [kill(), DestinationAction::EndJob]);
    assert_eq!(
        reply_err(&out[2], DestinationStep::Finish).message,
        "operation failed: disk full"
    );
}

/// §4.5: a v3 CPU-start failure kills the destination so the source can resume.
#[test]
fn cpu_start_failure_kills_in_v3() {
    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    step(&mut m, DestinationInput::IncomingCompleted { stats: None });
    step(&mut m, finish());
    let out = step(
        &mut m,
        DestinationInput::CpusStarted {
            error: Some(String::new()),
        },
    );
    assert_eq!(out[..2], [kill(), DestinationAction::EndJob]);
    assert_eq!(
        reply_err(&out[2], DestinationStep::Finish).message,
        "internal error: resume operation failed"
    );
    assert_eq!(m.migrated(), None);
}

#[test]
fn incoming_failure_fails_finish_and_kills_in_v3() {
    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    assert!(step(
        &mut m,
        DestinationInput::IncomingFailed {
            error: "load of migration failed".into()
        }
    )
    .is_empty());
    let out = step(&mut m, finish());
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!(
        out[..3],
        [save(JobPhase::Finish3), kill(), DestinationAction::EndJob]
    );
    assert_eq!(
        reply_err(&out[3], DestinationStep::Finish).message,
        "operation failed: job 'migration in' failed: load of migration failed"
    );
}

/// §4.1: a v2 Finish2 ignores persist and CPU-start errors and leaves the VM paused.
#[test]
fn v2_finish_ignores_errors_and_leaves_the_vm_paused() {
    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    step(&mut m, DestinationInput::IncomingCompleted { stats: None });
    let flags = MigrateFlags::LIVE.with(MigrateFlags::PERSIST_DEST);
    let out = step(&mut m, finish_with(real_perform(), flags, false, true));
    assert_eq!(out[0], save(JobPhase::Finish2));
    assert!(
        matches!(out[1], DestinationAction::PersistVm { .. }),
        "{out:?}"
    );
    let out = step(
        &mut m,
        DestinationInput::PersistDone {
            error: Some("disk full".into()),
        },
    );
    assert_eq!(
        out,
        vec![
            DestinationAction::Warn {
                message: "failed to persist the migrated domain: disk full".into()
            },
            DestinationAction::StartCpus
        ]
    );
    let out = step(
        &mut m,
        DestinationInput::CpusStarted {
            error: Some("cont failed".into()),
        },
    );
    assert_eq!(out.len(), 3, "{out:?}");
    assert_eq!(
        out[0],
        DestinationAction::Warn {
            message: "operation failed: cont failed; domain left paused".into()
        }
    );
    assert_eq!(out[1], DestinationAction::EndJob);
    finished_cookie(&out[2]);
    assert_eq!(m.migrated(), Some(&tiny()));
}

#[test]
fn bad_perform_cookie_kills_the_destination() {
    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    // The destination's own Prepare cookie sent back.
    let out = step(
        &mut m,
        finish_with(real_prepare(), MigrateFlags::LIVE, false, false),
    );
    assert_eq!(out.len(), 4, "{out:?}");
    assert_eq!(
        out[..3],
        [save(JobPhase::Finish3), kill(), DestinationAction::EndJob]
    );
    assert_eq!(
        reply_err(&out[3], DestinationStep::Finish).code,
        ERR_INTERNAL_ERROR
    );
}

/// §8/§12.2: losing the client between Prepare and Finish autodestroys the incoming VM.
#[test]
fn client_lost_after_prepare_autodestroys() {
    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    assert_eq!(
        step(&mut m, DestinationInput::ClientClosed),
        vec![kill(), DestinationAction::EndJob]
    );
    assert_eq!(m.phase(), None);
    let out = step(&mut m, finish());
    assert_eq!(
        reply_err(&out[0], DestinationStep::Finish).code,
        ERR_NO_DOMAIN
    );
}

#[test]
fn client_lost_while_starting_destroys_once_started() {
    let mut m = DestinationHost::new(config());
    step(&mut m, prepare());
    assert!(step(&mut m, DestinationInput::ClientClosed).is_empty());
    let out = step(&mut m, DestinationInput::IncomingStarted { error: None });
    assert_eq!(out[..2], [kill(), DestinationAction::EndJob]);
    assert_eq!(
        reply_err(&out[2], DestinationStep::Prepare).code,
        ERR_OPERATION_FAILED
    );
}

#[test]
fn client_lost_during_finish_is_ignored() {
    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    step(&mut m, finish());
    assert!(step(&mut m, DestinationInput::ClientClosed).is_empty());
    assert_eq!(m.phase(), Some(JobPhase::Finish3));
}

/// real-peer C3: the incoming QEMU dies after Prepare; Finish reports that error.
#[test]
fn qemu_death_after_prepare_is_reported_by_finish() {
    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    assert_eq!(
        step(
            &mut m,
            DestinationInput::VmDied {
                error: Some("qemu unexpectedly closed the monitor".into())
            }
        ),
        vec![DestinationAction::EndJob]
    );
    let out = step(
        &mut m,
        finish_with(Vec::new(), MigrateFlags::LIVE, true, false),
    );
    assert_eq!(out.len(), 1);
    assert_eq!(
        reply_err(&out[0], DestinationStep::Finish).message,
        "operation failed: qemu unexpectedly closed the monitor"
    );
}

#[test]
fn offline_prepare_and_finish_only_define() {
    let mut m = DestinationHost::new(config());
    let flags = MigrateFlags::OFFLINE.with(MigrateFlags::PERSIST_DEST);
    let mut begin = Cookie::parse(&real_begin()).unwrap().unwrap();
    begin.capabilities = None;
    let out = step(&mut m, prepare_with(begin.format(), flags, xml_params()));
    assert_eq!(out.len(), 2, "{out:?}");
    assert_eq!(out[0], save(JobPhase::Prepare));
    let DestinationAction::Reply {
        result: Ok(DestinationReply::Prepared { cookie, uri_out }),
        ..
    } = &out[1]
    else {
        panic!("{out:?}")
    };
    assert_eq!(*uri_out, None);
    let c = Cookie::parse(cookie.as_slice()).unwrap().unwrap();
    assert_eq!((c.graphics, c.capabilities), (None, None));
    let out = step(&mut m, finish_with(Vec::new(), flags, false, false));
    assert_eq!(
        out,
        vec![
            save(JobPhase::Finish3),
            DestinationAction::PersistVm {
                xml: GUEST_XML.into()
            }
        ]
    );
    let out = step(&mut m, DestinationInput::PersistDone { error: None });
    assert_eq!(
        out,
        vec![
            DestinationAction::EndJob,
            DestinationAction::Reply {
                step: DestinationStep::Finish,
                result: Ok(DestinationReply::Finished {
                    cookie: Bytes::new(),
                    domain: tiny()
                }),
            }
        ]
    );
}

#[test]
fn inputs_and_actions_are_tagged_json() {
    let i: DestinationInput =
        serde_json::from_str(r#"{"type":"finish","cookie":"","flags":1,"cancelled":true}"#)
            .unwrap();
    assert_eq!(
        i,
        DestinationInput::Finish {
            cookie: Bytes::new(),
            flags: MigrateFlags::LIVE,
            params: Params::default(),
            cancelled: true,
            v2: false
        }
    );
    assert_eq!(
        serde_json::to_string(&kill()).unwrap(),
        r#"{"type":"stop_vm","reason":"failed"}"#
    );
    let a = DestinationAction::Reply {
        step: DestinationStep::Prepare,
        result: Ok(DestinationReply::Prepared {
            cookie: Bytes(b"x\0".to_vec()),
            uri_out: None,
        }),
    };
    let back: DestinationAction =
        serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    assert_eq!(back, a);
    let cfg: DestinationConfig =
        serde_json::from_str(r#"{"hostname":"b","host_uuid":"u"}"#).unwrap();
    assert_eq!(cfg.migration_port, 49152);
}

#[test]
fn one_incoming_migration_at_a_time() {
    let mut m = DestinationHost::new(config());
    prepared(&mut m);
    let other =
        "<domain><name>other</name><uuid>22222222-0000-4000-8000-000000000002</uuid></domain>";
    let mut params = Params::default();
    params.replace_str("destination_xml", other);
    let out = step(&mut m, prepare_with(Vec::new(), MigrateFlags::LIVE, params));
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(
        reply_err(&out[0], DestinationStep::Prepare).code,
        ERR_OPERATION_INVALID
    );
    // The first incoming VM is untouched.
    assert_eq!(m.phase(), Some(JobPhase::Prepare));
}
