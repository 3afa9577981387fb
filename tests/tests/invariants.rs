//! The invariants of spec/libvirt-migration.md §12 as properties, over one fault injected at
//! every step, in both modes and every protocol, with running and paused sources.

use livemig_core::migration::flags::MigrateFlags;
use livemig_core::migration::orchestrator::{Mode, ProtocolRequest, Verdict};
use livemig_tests::libvirt_sim::{DestVm, Fault, SourceVm, Step};
use livemig_tests::scenarios::{config, run, Scenario};
use proptest::prelude::*;

fn step() -> impl Strategy<Value = Step> {
    prop::sample::select(Step::ALL.to_vec())
}

fn fault() -> impl Strategy<Value = Option<Fault>> {
    prop_oneof![
        Just(None),
        Just(Some(Fault::NoUri)),
        Just(Some(Fault::FinishQemuError)),
        step().prop_map(|s| Some(Fault::Error(s))),
        step().prop_map(|s| Some(Fault::ReplyLost(s))),
        step().prop_map(|s| Some(Fault::Hang(s))),
        step().prop_map(|s| Some(Fault::CancelDuring(s))),
    ]
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::sample::select(vec![Mode::Managed, Mode::PeerToPeer]),
        prop::sample::select(vec![
            ProtocolRequest::Auto,
            ProtocolRequest::V3,
            ProtocolRequest::V2,
        ]),
        any::<bool>(),
        fault(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(mode, proto, paused, fault, abort, persist)| {
            let mut flags = MigrateFlags::LIVE;
            if abort {
                flags = flags.with(MigrateFlags::ABORT_ON_ERROR);
            }
            if persist {
                flags = flags.with(MigrateFlags::PERSIST_DEST);
            }
            Scenario {
                name: "prop".into(),
                config: config(mode, proto, flags),
                source_paused: paused,
                fault,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn section_12_invariants_hold(s in scenario()) {
        let r = run(&s);
        let report = r.report.clone().expect("every run ends with Done");
        let w = &r.world;
        // §12.1, §12.7, §12.3, §12.9, §12.10: checked by the simulated daemons on every call.
        prop_assert!(w.violations.is_empty(), "{:?}: {:?}", s, w.violations);
        // §12.2: every Prepare that answered success gets exactly one Finish.
        let prepare_answered = w.prepares_ok == 1 && s.fault != Some(Fault::ReplyLost(Step::Prepare));
        if prepare_answered {
            prop_assert_eq!(w.finishes, 1, "{:?}", s);
        } else {
            prop_assert_eq!(w.finishes, 0, "{:?}", s);
        }
        // The verdict tells the truth about where the VM is.
        let before = if s.source_paused { SourceVm::Paused } else { SourceVm::Running };
        match report.verdict {
            Verdict::Migrated => {
                prop_assert!(matches!(w.dst, DestVm::Running | DestVm::Paused), "{:?}", s);
                prop_assert!(report.error.is_none());
            }
            Verdict::Failed => {
                prop_assert_eq!(w.src, before, "{:?}", s);
                prop_assert_eq!(w.dst, DestVm::Absent, "{:?}", s);
                prop_assert!(report.error.is_some());
            }
            Verdict::SourceLeftPaused | Verdict::Unknown => prop_assert!(report.error.is_some()),
        }
        // §12.6: the first error wins (cancel counts as an error at the moment it is asked),
        // except §2.8's Finish substitution.
        let cancelled_first = matches!(s.fault, Some(Fault::CancelDuring(_)));
        let orchestrator_made = matches!(
            s.fault,
            Some(Fault::ReplyLost(_) | Fault::Hang(_) | Fault::NoUri)
        );
        if report.verdict != Verdict::Migrated && !cancelled_first && !orchestrator_made {
            let expected = if s.fault == Some(Fault::FinishQemuError) && w.errors.len() > 1 {
                w.errors.get(1)
            } else {
                w.errors.first()
            };
            prop_assert_eq!(report.error.as_ref(), expected, "{:?}", s);
        }
        if cancelled_first && report.verdict == Verdict::Failed {
            prop_assert_eq!(report.error.as_ref().map(|e| e.code), Some(78));
        }
    }
}
