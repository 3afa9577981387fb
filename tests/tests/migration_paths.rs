//! Every path of spec/libvirt-migration.md §2 (managed v3), §3 (P2P) and §4.1 (v2): the
//! calls, their flags, `cancelled` values and cookies, and the verdict.

use livemig_core::migration::flags::{param, MigrateFlags};
use livemig_core::migration::orchestrator::{Host, Report, Verdict};
use livemig_tests::libvirt_sim::{DestVm, SourceVm};
use livemig_tests::scenarios::{corpus, run, Run};

fn scenario(name: &str) -> Run {
    let s = corpus()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no scenario {name}"));
    let r = run(&s);
    assert!(
        r.world.violations.is_empty(),
        "{name}: {:?}",
        r.world.violations
    );
    r
}

/// The calls as `host:procedure-number[(cancelled)]`.
fn calls(r: &Run) -> Vec<String> {
    r.world
        .calls
        .iter()
        .map(|c| {
            let h = match c.host {
                Host::Source => "src",
                Host::Destination => "dst",
            };
            match c.cancelled {
                Some(x) => format!("{h}:{}({})", c.procedure.number(), u8::from(x)),
                None => format!("{h}:{}", c.procedure.number()),
            }
        })
        .collect()
}

fn report(r: &Run) -> &Report {
    r.report.as_ref().expect("the run must end with Done")
}

fn err_code(r: &Run) -> Option<i32> {
    report(r).error.as_ref().map(|e| e.code)
}

#[test]
fn managed_v3_success_matches_virsh_wire() {
    let r = scenario("managed-v3-success");
    assert_eq!(
        calls(&r),
        [
            "src:302",
            "src:212",
            "dst:303",
            "src:305",
            "dst:306(0)",
            "src:307(0)"
        ]
    );
    assert_eq!(report(&r).verdict, Verdict::Migrated);
    assert_eq!(report(&r).error, None);
    // Flags exactly as virsh sent them (libvirt-real-peer.md §4): 0x101 to the source, 0x1
    // to the destination.
    let flags: Vec<u64> = r.world.calls.iter().map(|c| c.flags).collect();
    assert_eq!(flags, [0x101, 0, 0x1, 0x101, 0x1, 0x101]);
    // Params accumulate as libvirt's virTypedParamsReplaceString does.
    let names = |i: usize| -> Vec<String> {
        r.world.calls[i]
            .params
            .0
            .iter()
            .map(|p| p.field.clone())
            .collect()
    };
    assert_eq!(names(2), [param::DEST_XML]);
    assert_eq!(names(3), [param::DEST_XML, param::URI]);
    assert_eq!(names(4), [param::DEST_XML, param::URI, param::DEST_NAME]);
    assert_eq!(names(5), names(4));
    assert_eq!(
        r.world.calls[3].params.get_str(param::URI),
        Some("tcp:10.77.0.2:49152")
    );
    // Each cookie_out is the next cookie_in.
    let cookie = |i: usize| {
        String::from_utf8_lossy(r.world.calls[i].cookie.as_ref().unwrap().as_slice()).into_owned()
    };
    assert!(r.world.calls[0].cookie.is_none());
    assert!(cookie(2).contains("<hostname>hosta</hostname>") && cookie(2).contains("<cpu"));
    assert!(cookie(3).contains("<hostname>hostb</hostname>") && cookie(3).contains("<graphics"));
    assert!(cookie(4).contains("<hostname>hosta</hostname>") && cookie(4).contains("<statistics>"));
    assert!(cookie(5).contains("<hostname>hostb</hostname>") && cookie(5).contains("<delta>"));
    // The real cookies, as the codec reads them.
    for i in 2..6 {
        let bytes = r.world.calls[i].cookie.as_ref().unwrap().as_slice();
        let c = livemig_core::migration::cookie::Cookie::parse(bytes)
            .unwrap()
            .unwrap();
        assert_eq!(c.name, "tiny");
        assert_eq!(c.format(), bytes);
    }
    assert_eq!(
        (r.world.src, r.world.dst),
        (SourceVm::Gone, DestVm::Running)
    );
}

#[test]
fn paused_source_adds_paused_flag_everywhere_but_keeps_it_paused() {
    let r = scenario("managed-v3-source-paused");
    for c in &r.world.calls[2..] {
        assert!(
            MigrateFlags(c.flags).contains(MigrateFlags::PAUSED),
            "{c:?}"
        );
    }
    assert_eq!((r.world.src, r.world.dst), (SourceVm::Gone, DestVm::Paused));
}

#[test]
fn begin_failure_runs_nothing_else() {
    let r = scenario("managed-v3-begin-fails");
    assert_eq!(calls(&r), ["src:302"]);
    assert_eq!(report(&r).verdict, Verdict::Failed);
    assert_eq!(report(&r).error, Some(r.world.errors[0].clone()));
}

#[test]
fn prepare_failure_with_change_protection_confirms_cancelled_with_empty_cookie() {
    let r = scenario("managed-v3-prepare-fails");
    assert_eq!(calls(&r), ["src:302", "src:212", "dst:303", "src:307(1)"]);
    assert_eq!(r.world.calls[3].cookie.as_ref().map(|c| c.len()), Some(0));
    assert_eq!(report(&r).error, Some(r.world.errors[0].clone()));
    assert_eq!(
        (r.world.src, r.world.dst),
        (SourceVm::Running, DestVm::Absent)
    );
}

#[test]
fn prepare_failure_without_change_protection_ends_the_run() {
    let r = scenario("managed-v3-prepare-fails-no-protection");
    assert_eq!(calls(&r), ["src:302", "src:212", "dst:303"]);
    assert_eq!(r.world.calls[0].flags, MigrateFlags::LIVE.0);
    assert_eq!(report(&r).verdict, Verdict::Failed);
}

#[test]
fn prepare_without_uri_finishes_cancelled_without_sending_dst_its_own_cookie() {
    let r = scenario("managed-v3-prepare-no-uri");
    assert_eq!(
        calls(&r),
        ["src:302", "src:212", "dst:303", "dst:306(1)", "src:307(1)"]
    );
    assert_eq!(r.world.calls[3].cookie.as_ref().map(|c| c.len()), Some(0));
    let e = report(&r).error.as_ref().unwrap();
    assert_eq!(e.message, "domainMigratePrepare3 did not set uri");
}

#[test]
fn perform_failure_finishes_cancelled_and_skips_confirm() {
    let r = scenario("managed-v3-perform-fails");
    assert_eq!(
        calls(&r),
        ["src:302", "src:212", "dst:303", "src:305", "dst:306(1)"]
    );
    assert_eq!(r.world.calls[4].cookie.as_ref().map(|c| c.len()), Some(0));
    // First error wins over Finish's FINISH_OK.
    assert_eq!(report(&r).error, Some(r.world.errors[0].clone()));
    assert_eq!(r.world.errors[1].code, 93);
    assert_eq!(
        (r.world.src, r.world.dst),
        (SourceVm::Running, DestVm::Absent)
    );
}

#[test]
fn finish_error_replaces_perform_operation_failed() {
    // §2.8: orig_err (QEMU, OPERATION_FAILED) gives way to Finish's QEMU error ≠ FINISH_OK.
    let r = scenario("managed-v3-perform-fails-finish-error");
    assert_eq!(r.world.errors.len(), 2);
    assert_eq!(r.world.errors[0].code, 9);
    assert_eq!(report(&r).error, Some(r.world.errors[1].clone()));
}

#[test]
fn finish_failure_confirms_cancelled_and_resumes_source() {
    let r = scenario("managed-v3-finish-fails");
    assert_eq!(calls(&r)[4..], ["dst:306(0)", "src:307(1)"]);
    assert_eq!(report(&r).verdict, Verdict::Failed);
    assert_eq!(
        (r.world.src, r.world.dst),
        (SourceVm::Running, DestVm::Absent)
    );
}

#[test]
fn confirm_failure_is_reported_as_left_paused() {
    let r = scenario("managed-v3-confirm-fails");
    assert_eq!(report(&r).verdict, Verdict::SourceLeftPaused);
    assert!(r
        .warnings
        .iter()
        .any(|w| w.contains("Guest tiny probably left in 'paused' state on source")));
}

#[test]
fn cancel_paths_clean_up_per_step() {
    let r = scenario("managed-v3-cancel-during-begin");
    assert_eq!(calls(&r), ["src:302", "src:307(1)"]);
    assert_eq!(err_code(&r), Some(78));
    let r = scenario("managed-v3-cancel-after-begin");
    assert_eq!(calls(&r), ["src:302", "src:212", "src:307(1)"]);
    let r = scenario("managed-v3-cancel-during-prepare");
    assert_eq!(
        calls(&r),
        ["src:302", "src:212", "dst:303", "dst:306(1)", "src:307(1)"]
    );
    assert_eq!(r.world.calls[3].cookie.as_ref().map(|c| c.len()), Some(0));
    assert_eq!(r.world.dst, DestVm::Absent);
    let r = scenario("managed-v3-cancel-during-perform");
    assert_eq!(
        calls(&r),
        [
            "src:302",
            "src:212",
            "dst:303",
            "src:164",
            "src:305",
            "dst:306(1)"
        ]
    );
    assert_eq!(report(&r).verdict, Verdict::Failed);
    let r = scenario("managed-v3-cancel-too-late");
    assert_eq!(report(&r).verdict, Verdict::Migrated);
    assert!(r.warnings.iter().any(|w| w.contains("too late")));
}

#[test]
fn lost_replies() {
    let r = scenario("managed-v3-prepare-reply-lost");
    assert_eq!(calls(&r), ["src:302", "src:212", "dst:303", "src:307(1)"]);
    assert_eq!(report(&r).verdict, Verdict::Failed);
    let r = scenario("managed-v3-perform-reply-lost");
    assert_eq!(calls(&r)[4..], ["dst:306(1)"]);
    assert_eq!(report(&r).verdict, Verdict::SourceLeftPaused);
    // A lost Finish reply must not resume the source: the destination may run (§11.1).
    let r = scenario("managed-v3-finish-reply-lost");
    assert_eq!(calls(&r).len(), 5);
    assert_eq!(report(&r).verdict, Verdict::Unknown);
    assert_eq!(r.world.src, SourceVm::Paused);
    let r = scenario("managed-v3-confirm-reply-lost");
    assert_eq!(report(&r).verdict, Verdict::SourceLeftPaused);
}

#[test]
fn step_timeout_counts_as_a_lost_call() {
    let r = scenario("managed-v3-prepare-timeout");
    assert_eq!(calls(&r), ["src:302", "src:212", "dst:303", "src:307(1)"]);
    assert_eq!(err_code(&r), Some(68));
}

#[test]
fn nonparams_v3_uses_213_to_218() {
    let r = scenario("managed-v3-nonparams-success");
    assert_eq!(
        calls(&r),
        [
            "src:213",
            "src:212",
            "dst:214",
            "src:216",
            "dst:217(0)",
            "src:218(0)"
        ]
    );
    let args = r.world.calls[4].legacy_args();
    assert_eq!(args.dname, Some("tiny"));
    assert_eq!(args.uri, Some("tcp:10.77.0.2:49152"));
    let r = scenario("managed-v3-nonparams-perform-fails");
    assert_eq!(calls(&r)[3..], ["src:216", "dst:217(1)"]);
}

#[test]
fn offline_skips_perform() {
    let r = scenario("managed-v3-offline");
    assert_eq!(
        calls(&r),
        ["src:302", "src:212", "dst:303", "dst:306(0)", "src:307(0)"]
    );
    assert_eq!(r.world.calls[3].cookie.as_ref().map(|c| c.len()), Some(0));
}

#[test]
fn destination_never_gets_abort_on_error_or_auto_converge() {
    let r = scenario("managed-v3-abort-on-error-flags");
    for c in &r.world.calls {
        let f = MigrateFlags(c.flags);
        let bad =
            f.contains(MigrateFlags::ABORT_ON_ERROR) || f.contains(MigrateFlags::AUTO_CONVERGE);
        match c.host {
            Host::Destination => assert!(!bad, "{c:?}"),
            Host::Source if c.procedure.number() != 212 => assert!(bad, "{c:?}"),
            Host::Source => {}
        }
    }
}

#[test]
fn p2p_paths() {
    let r = scenario("p2p-v3-success");
    assert_eq!(
        calls(&r),
        [
            "src:302",
            "src:212",
            "dst:303",
            "src:305",
            "dst:306(0)",
            "src:307(0)"
        ]
    );
    // P2P clears CHANGE_PROTECTION (§3).
    assert!(r
        .world
        .calls
        .iter()
        .all(|c| !MigrateFlags(c.flags).contains(MigrateFlags::CHANGE_PROTECTION)));
    let r = scenario("p2p-v3-prepare-fails");
    assert_eq!(calls(&r), ["src:302", "src:212", "dst:303"]);
    // P2P confirms even after a failed Perform (§12.5).
    let r = scenario("p2p-v3-perform-fails");
    assert_eq!(calls(&r)[3..], ["src:305", "dst:306(1)", "src:307(1)"]);
    let r = scenario("p2p-v3-finish-fails");
    assert_eq!(calls(&r)[4..], ["dst:306(0)", "src:307(1)"]);
    let r = scenario("p2p-v3-no-uri");
    assert_eq!(calls(&r)[3..], ["dst:306(1)", "src:307(1)"]);
}

#[test]
fn v2_paths() {
    let r = scenario("managed-v2-success");
    assert_eq!(
        calls(&r),
        ["src:14", "src:212", "dst:108", "src:62", "dst:109(0)"]
    );
    assert_eq!(r.world.calls[0].flags, 8, "MIGRATABLE XML");
    assert_eq!(report(&r).verdict, Verdict::Migrated);
    let r = scenario("managed-v2-prepare-fails");
    assert_eq!(calls(&r), ["src:14", "src:212", "dst:108"]);
    let r = scenario("managed-v2-perform-fails");
    assert_eq!(calls(&r)[3..], ["src:62", "dst:109(1)"]);
    assert_eq!(report(&r).verdict, Verdict::Failed);
    let r = scenario("managed-v2-no-uri");
    assert_eq!(calls(&r)[3..], ["dst:109(1)"]);
    // v2's Perform already killed the source: a failed Finish2 loses track of the VM.
    let r = scenario("managed-v2-finish-fails");
    assert_eq!(report(&r).verdict, Verdict::Unknown);
    let r = scenario("p2p-v2-success");
    assert!(MigrateFlags(r.world.calls[3].flags).contains(MigrateFlags::PEER2PEER));
    let r = scenario("managed-auto-fallback-v2");
    assert_eq!(
        calls(&r),
        ["src:14", "src:212", "dst:108", "src:62", "dst:109(0)"]
    );
}

#[test]
fn extended_params_need_params_support() {
    let r = scenario("managed-extended-params-unsupported");
    assert!(calls(&r).is_empty());
    assert!(report(&r)
        .error
        .as_ref()
        .unwrap()
        .message
        .contains("extensible parameters"));
}

#[test]
fn caller_params_keep_their_order_and_dname_reaches_finish() {
    let r = scenario("managed-v3-with-params");
    let names: Vec<&str> = r.world.calls[4]
        .params
        .0
        .iter()
        .map(|p| p.field.as_str())
        .collect();
    assert_eq!(
        names,
        [
            param::DEST_NAME,
            param::GRAPHICS_URI,
            param::DEST_XML,
            param::URI
        ]
    );
    assert_eq!(
        r.world.calls[4].params.get_str(param::DEST_NAME),
        Some("tiny-b")
    );
}
