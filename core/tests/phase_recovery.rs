//! Job phases, the monotonic check and restart recovery (spec/libvirt-migration.md §8).

use livemig_core::migration::error::ERR_INTERNAL_ERROR;
use livemig_core::migration::phase::{
    check_phase, on_client_closed, recover, ClientClosedAction, JobDirection, JobPhase, ObservedVm,
    PostcopyRecovery, QemuMigrationStatus, RecoveryAction, StopReason, VmReason, VmState,
};

#[test]
fn phase_numbers_and_names_match_libvirt() {
    let expected = [
        (0, "none"),
        (1, "perform2"),
        (2, "begin3"),
        (3, "perform3"),
        (4, "perform3_done"),
        (5, "confirm3_cancelled"),
        (6, "confirm3"),
        (7, "prepare"),
        (8, "finish2"),
        (9, "finish3"),
        (10, "postcopy_failed"),
        (11, "begin_resume"),
        (12, "perform_resume"),
        (13, "confirm_resume"),
        (14, "prepare_resume"),
        (15, "finish_resume"),
    ];
    assert_eq!(JobPhase::ALL.len(), expected.len());
    for (phase, (n, name)) in JobPhase::ALL.iter().zip(expected) {
        assert_eq!(phase.number(), n);
        assert_eq!(phase.name(), name);
        assert_eq!(JobPhase::from_number(n), Some(*phase));
        assert_eq!(JobPhase::from_name(name), Some(*phase));
        // serde uses the status-XML names.
        assert_eq!(serde_json::to_string(phase).unwrap(), format!("\"{name}\""));
        let back: JobPhase = serde_json::from_str(&format!("\"{name}\"")).unwrap();
        assert_eq!(back, *phase);
    }
    assert_eq!(JobPhase::from_number(16), None);
    assert_eq!(JobPhase::from_name("perform3done"), None);
}

#[test]
fn going_backwards_is_refused_with_libvirts_message() {
    let e = check_phase(JobPhase::Perform3Done, JobPhase::Perform3).unwrap_err();
    assert_eq!(
        e.to_string(),
        "migration protocol going backwards perform3_done => perform3"
    );
    let r = e.to_remote();
    assert_eq!(r.code, ERR_INTERNAL_ERROR);
    assert_eq!(
        r.message,
        "internal error: migration protocol going backwards perform3_done => perform3"
    );
    // Same phase and forward moves are fine.
    assert!(check_phase(JobPhase::Perform3, JobPhase::Perform3).is_ok());
    assert!(check_phase(JobPhase::Begin3, JobPhase::Perform3).is_ok());
    assert!(check_phase(JobPhase::Prepare, JobPhase::Finish3).is_ok());
    assert!(check_phase(JobPhase::Perform3Done, JobPhase::Confirm3Cancelled).is_ok());
    // Phases from postcopy_failed on are always accepted, even "backwards".
    assert!(check_phase(JobPhase::FinishResume, JobPhase::PostcopyFailed).is_ok());
    assert!(check_phase(JobPhase::ConfirmResume, JobPhase::BeginResume).is_ok());
    // Below postcopy_failed, going under the current phase is refused.
    assert!(check_phase(JobPhase::PostcopyFailed, JobPhase::Finish3).is_err());
    assert!(check_phase(JobPhase::Confirm3, JobPhase::Confirm3Cancelled).is_err());
}

#[test]
fn check_phase_matches_the_rule_for_every_pair() {
    for cur in JobPhase::ALL {
        for next in JobPhase::ALL {
            let allowed = next.number() >= 10 || next.number() >= cur.number();
            assert_eq!(check_phase(cur, next).is_ok(), allowed, "{cur} => {next}");
        }
    }
}

fn vm(state: VmState, reason: VmReason, status: QemuMigrationStatus) -> ObservedVm {
    ObservedVm {
        state,
        reason,
        qemu_migration_status: status,
    }
}

const fn kill(reason: StopReason) -> RecoveryAction {
    RecoveryAction::Kill { reason }
}

const fn pc(then: PostcopyRecovery) -> RecoveryAction {
    RecoveryAction::PostcopyFailed { then }
}

/// Every row of §8 "Recovery", with the state variants that change the outcome.
#[test]
fn recovery_table() {
    use JobDirection::{In, Out};
    use JobPhase as P;
    use PostcopyRecovery::{Complete, MarkFailed, Unattended};
    use QemuMigrationStatus as Q;
    use RecoveryAction as A;
    use VmReason as R;
    use VmState::{Paused, Running};

    let rows: Vec<(JobDirection, JobPhase, ObservedVm, RecoveryAction)> = vec![
        // OUT begin3 → drop job.
        (Out, P::Begin3, vm(Running, R::Unknown, Q::None), A::DropJob),
        // OUT perform2/perform3 → cancel, resume if paused with reason MIGRATION/UNKNOWN.
        (
            Out,
            P::Perform2,
            vm(Paused, R::Migration, Q::Active),
            A::Cancel { resume: true },
        ),
        (
            Out,
            P::Perform3,
            vm(Paused, R::Migration, Q::Active),
            A::Cancel { resume: true },
        ),
        (
            Out,
            P::Perform3,
            vm(Paused, R::Unknown, Q::Active),
            A::Cancel { resume: true },
        ),
        (
            Out,
            P::Perform3,
            vm(Paused, R::User, Q::Active),
            A::Cancel { resume: false },
        ),
        (
            Out,
            P::Perform3,
            vm(Running, R::Unknown, Q::Active),
            A::Cancel { resume: false },
        ),
        // ... but never resumed after post-copy switchover (§12.7).
        (
            Out,
            P::Perform3,
            vm(Paused, R::Postcopy, Q::Postcopy),
            pc(Unattended),
        ),
        // OUT perform3_done → post-copy: PC, else leave paused.
        (
            Out,
            P::Perform3Done,
            vm(Paused, R::Migration, Q::Completed),
            A::LeavePaused,
        ),
        (
            Out,
            P::Perform3Done,
            vm(Paused, R::Postcopy, Q::Postcopy),
            pc(Unattended),
        ),
        (
            Out,
            P::Perform3Done,
            vm(Paused, R::PostcopyFailed, Q::Failed),
            pc(MarkFailed),
        ),
        // OUT confirm3_cancelled → post-copy: PC, else resume.
        (
            Out,
            P::Confirm3Cancelled,
            vm(Paused, R::Migration, Q::Cancelled),
            A::Resume,
        ),
        (
            Out,
            P::Confirm3Cancelled,
            vm(Running, R::MigrationCanceled, Q::Cancelled),
            A::Keep,
        ),
        (
            Out,
            P::Confirm3Cancelled,
            vm(Paused, R::Postcopy, Q::Completed),
            pc(Complete),
        ),
        // OUT confirm3 → kill (migrated).
        (
            Out,
            P::Confirm3,
            vm(Paused, R::Migration, Q::Completed),
            kill(StopReason::Migrated),
        ),
        // OUT confirm_resume → kill if QEMU completed, else PC.
        (
            Out,
            P::ConfirmResume,
            vm(Paused, R::Postcopy, Q::Completed),
            kill(StopReason::Migrated),
        ),
        (
            Out,
            P::ConfirmResume,
            vm(Paused, R::PostcopyFailed, Q::Failed),
            pc(MarkFailed),
        ),
        (
            Out,
            P::ConfirmResume,
            vm(Paused, R::Postcopy, Q::Postcopy),
            pc(Unattended),
        ),
        // OUT *_resume / postcopy_failed → PC.
        (
            Out,
            P::BeginResume,
            vm(Paused, R::PostcopyFailed, Q::Failed),
            pc(MarkFailed),
        ),
        (
            Out,
            P::PerformResume,
            vm(Paused, R::Postcopy, Q::Postcopy),
            pc(Unattended),
        ),
        (
            Out,
            P::PostcopyFailed,
            vm(Paused, R::PostcopyFailed, Q::Completed),
            pc(Complete),
        ),
        // IN prepare → kill.
        (
            In,
            P::Prepare,
            vm(Paused, R::Migration, Q::Active),
            kill(StopReason::Failed),
        ),
        // IN finish2 → start CPUs.
        (
            In,
            P::Finish2,
            vm(Paused, R::Migration, Q::Completed),
            A::StartCpus,
        ),
        // IN finish3 → post-copy: PC, not RUNNING: kill, else keep.
        (
            In,
            P::Finish3,
            vm(Running, R::Postcopy, Q::Postcopy),
            pc(Unattended),
        ),
        (
            In,
            P::Finish3,
            vm(Paused, R::PostcopyFailed, Q::Failed),
            pc(MarkFailed),
        ),
        (
            In,
            P::Finish3,
            vm(Paused, R::Migration, Q::Completed),
            kill(StopReason::Failed),
        ),
        (
            In,
            P::Finish3,
            vm(Running, R::Migrated, Q::Completed),
            A::Keep,
        ),
        // IN *_resume / postcopy_failed → PC.
        (
            In,
            P::PrepareResume,
            vm(Paused, R::PostcopyFailed, Q::Failed),
            pc(MarkFailed),
        ),
        (
            In,
            P::FinishResume,
            vm(Running, R::Postcopy, Q::Completed),
            pc(Complete),
        ),
        (
            In,
            P::PostcopyFailed,
            vm(Running, R::Postcopy, Q::Postcopy),
            pc(Unattended),
        ),
        // Phases of the other direction are not applicable: the job is dropped.
        (
            Out,
            P::Prepare,
            vm(Paused, R::Migration, Q::Active),
            A::DropJob,
        ),
        (
            Out,
            P::Finish3,
            vm(Running, R::Migrated, Q::Completed),
            A::DropJob,
        ),
        (
            In,
            P::Perform3,
            vm(Paused, R::Migration, Q::Active),
            A::DropJob,
        ),
        (
            In,
            P::Confirm3,
            vm(Paused, R::Migration, Q::Completed),
            A::DropJob,
        ),
        (Out, P::None, vm(Running, R::Unknown, Q::None), A::DropJob),
        // A VM whose QEMU is gone has nothing to recover.
        (
            Out,
            P::Confirm3,
            vm(VmState::Shutoff, R::Failed, Q::None),
            A::DropJob,
        ),
        (
            In,
            P::Prepare,
            vm(VmState::Shutoff, R::Failed, Q::None),
            A::DropJob,
        ),
    ];
    for (dir, phase, observed, want) in rows {
        assert_eq!(
            recover(dir, phase, observed),
            want,
            "{dir:?} {phase} {observed:?}"
        );
    }
}

#[test]
fn recovery_action_serializes_with_a_type_tag() {
    let a = RecoveryAction::PostcopyFailed {
        then: PostcopyRecovery::Complete,
    };
    let json = serde_json::to_string(&a).unwrap();
    assert_eq!(json, r#"{"type":"postcopy_failed","then":"complete"}"#);
    let back: RecoveryAction = serde_json::from_str(&json).unwrap();
    assert_eq!(back, a);
}

/// §8 "Client connection lost": begin3 → abort; perform3_done → warn, end job, stay
/// paused; prepare → autodestroy; anything else is not affected.
#[test]
fn client_connection_lost_table() {
    for phase in JobPhase::ALL {
        let want = match phase {
            JobPhase::Begin3 => ClientClosedAction::AbortJob,
            JobPhase::Perform3Done => ClientClosedAction::EndJobLeavePaused,
            JobPhase::Prepare => ClientClosedAction::AutoDestroy,
            _ => ClientClosedAction::Ignore,
        };
        assert_eq!(on_client_closed(phase), want, "{phase}");
    }
}
