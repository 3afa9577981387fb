//! Migration job phases, the monotonic phase check and restart recovery
//! (spec/libvirt-migration.md §8, §12.8), plus the VM-state vocabulary the source and
//! destination hosts share.
//!
//! Everything here is a pure function of its arguments: [`check_phase`]
//! (`qemuMigrationCheckPhase`), [`recover`] (`qemuProcessRecoverMigrationOut`/`…In`) and
//! [`on_client_closed`] (`qemuMigrationAnyConnectionClosed` and autodestroy).

use serde::{Deserialize, Serialize};

use crate::migration::error::{
    RemoteError, ERR_ARGUMENT_UNSUPPORTED, ERR_INTERNAL_ERROR, ERR_MIGRATE_FINISH_OK,
    ERR_MIGRATE_UNSAFE, ERR_NO_DOMAIN, ERR_NO_SUPPORT, ERR_OPERATION_ABORTED, ERR_OPERATION_FAILED,
    ERR_OPERATION_INVALID, ERR_OPERATION_TIMEOUT, FROM_QEMU,
};

/// `qemuMigrationJobPhase` (§8): libvirt's numbers, and the names saved in the status XML
/// (`<job … phase='perform3_done'>`) as the serde names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[repr(u8)]
pub enum JobPhase {
    /// `none` (0): no migration job.
    None = 0,
    /// `perform2` (1): v2 / P2P-v2 single-phase outgoing migration.
    Perform2 = 1,
    /// `begin3` (2): Begin done, job kept (CHANGE_PROTECTION).
    Begin3 = 2,
    /// `perform3` (3): outgoing migration running.
    Perform3 = 3,
    /// `perform3_done` (4): QEMU completed, source paused, waiting for Confirm.
    Perform3Done = 4,
    /// `confirm3_cancelled` (5): Confirm(cancelled=1).
    Confirm3Cancelled = 5,
    /// `confirm3` (6): Confirm(cancelled=0).
    Confirm3 = 6,
    /// `prepare` (7): incoming QEMU started, waiting for data.
    Prepare = 7,
    /// `finish2` (8): v2 Finish.
    Finish2 = 8,
    /// `finish3` (9): v3 Finish.
    Finish3 = 9,
    /// `postcopy_failed` (10).
    PostcopyFailed = 10,
    /// `begin_resume` (11).
    BeginResume = 11,
    /// `perform_resume` (12).
    PerformResume = 12,
    /// `confirm_resume` (13).
    ConfirmResume = 13,
    /// `prepare_resume` (14).
    PrepareResume = 14,
    /// `finish_resume` (15).
    FinishResume = 15,
}

impl JobPhase {
    /// Every phase in number order.
    pub const ALL: [JobPhase; 16] = [
        JobPhase::None,
        JobPhase::Perform2,
        JobPhase::Begin3,
        JobPhase::Perform3,
        JobPhase::Perform3Done,
        JobPhase::Confirm3Cancelled,
        JobPhase::Confirm3,
        JobPhase::Prepare,
        JobPhase::Finish2,
        JobPhase::Finish3,
        JobPhase::PostcopyFailed,
        JobPhase::BeginResume,
        JobPhase::PerformResume,
        JobPhase::ConfirmResume,
        JobPhase::PrepareResume,
        JobPhase::FinishResume,
    ];

    /// libvirt's number for the phase.
    pub const fn number(self) -> u8 {
        self as u8
    }

    /// The phase with libvirt's number `n`.
    pub fn from_number(n: u8) -> Option<JobPhase> {
        JobPhase::ALL.get(usize::from(n)).copied()
    }

    /// The status-XML name (`qemuMigrationJobPhaseTypeToString`).
    pub const fn name(self) -> &'static str {
        match self {
            JobPhase::None => "none",
            JobPhase::Perform2 => "perform2",
            JobPhase::Begin3 => "begin3",
            JobPhase::Perform3 => "perform3",
            JobPhase::Perform3Done => "perform3_done",
            JobPhase::Confirm3Cancelled => "confirm3_cancelled",
            JobPhase::Confirm3 => "confirm3",
            JobPhase::Prepare => "prepare",
            JobPhase::Finish2 => "finish2",
            JobPhase::Finish3 => "finish3",
            JobPhase::PostcopyFailed => "postcopy_failed",
            JobPhase::BeginResume => "begin_resume",
            JobPhase::PerformResume => "perform_resume",
            JobPhase::ConfirmResume => "confirm_resume",
            JobPhase::PrepareResume => "prepare_resume",
            JobPhase::FinishResume => "finish_resume",
        }
    }

    /// The phase named `name` in the status XML.
    pub fn from_name(name: &str) -> Option<JobPhase> {
        JobPhase::ALL.iter().copied().find(|p| p.name() == name)
    }
}

impl std::fmt::Display for JobPhase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A phase change refused by [`check_phase`] (§8, §12.8).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("migration protocol going backwards {from} => {to}")]
pub struct PhaseError {
    /// The job's current phase.
    pub from: JobPhase,
    /// The refused new phase.
    pub to: JobPhase,
}

impl PhaseError {
    /// The error a daemon reports (`VIR_ERR_INTERNAL_ERROR`, §8).
    pub fn to_remote(&self) -> RemoteError {
        libvirt_error(ERR_INTERNAL_ERROR, &self.to_string())
    }
}

/// `qemuMigrationCheckPhase` (§8): a new phase below `postcopy_failed` may not be lower than
/// the current one. Phases from `postcopy_failed` on are always accepted.
pub fn check_phase(current: JobPhase, next: JobPhase) -> Result<(), PhaseError> {
    if next < JobPhase::PostcopyFailed && next < current {
        Err(PhaseError {
            from: current,
            to: next,
        })
    } else {
        Ok(())
    }
}

/// The async job's direction (`migration out` / `migration in` in the status XML).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobDirection {
    /// `VIR_ASYNC_JOB_MIGRATION_OUT`: this host is the source.
    Out,
    /// `VIR_ASYNC_JOB_MIGRATION_IN`: this host is the destination.
    In,
}

/// `virDomainState`, reduced to what migration looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmState {
    /// `VIR_DOMAIN_RUNNING`
    Running,
    /// `VIR_DOMAIN_PAUSED`
    Paused,
    /// `VIR_DOMAIN_SHUTOFF` (no QEMU process).
    Shutoff,
}

/// The state reason (§5 "Reasons"); its meaning depends on the [`VmState`] it goes with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VmReason {
    /// `*_UNKNOWN`
    Unknown,
    /// `PAUSED_MIGRATION` (2).
    Migration,
    /// `PAUSED_USER`.
    User,
    /// `PAUSED_IOERROR` (5).
    IoError,
    /// `PAUSED_POSTCOPY` (12) or `RUNNING_POSTCOPY` (10).
    Postcopy,
    /// `PAUSED_POSTCOPY_FAILED` (13) or `RUNNING_POSTCOPY_FAILED` (11).
    PostcopyFailed,
    /// `PAUSED_API_ERROR` (14).
    ApiError,
    /// `RUNNING_MIGRATED` (2) or `SHUTOFF_MIGRATED` (4).
    Migrated,
    /// `RUNNING_MIGRATION_CANCELED` (6).
    MigrationCanceled,
    /// `SHUTOFF_FAILED` (6).
    Failed,
    /// Any other reason.
    Other,
}

/// QEMU's `query-migrate` status, grouped the way recovery uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QemuMigrationStatus {
    /// No migration known to QEMU.
    None,
    /// `setup`, `active`, `pre-switchover`, `device`, `cancelling`, `wait-unplug`.
    Active,
    /// `postcopy-active`, `postcopy-paused`, `postcopy-recover*`.
    Postcopy,
    /// `completed`.
    Completed,
    /// `failed`.
    Failed,
    /// `cancelled`.
    Cancelled,
}

/// What the daemon sees of a VM when it reconnects after a restart (§8 "Recovery").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ObservedVm {
    /// The domain state.
    pub state: VmState,
    /// The state reason.
    pub reason: VmReason,
    /// QEMU's migration status.
    pub qemu_migration_status: QemuMigrationStatus,
}

/// Why a QEMU process is stopped (`virDomainShutoffReason`, §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// `SHUTOFF_MIGRATED` / `STOPPED_MIGRATED`: the guest now runs elsewhere.
    Migrated,
    /// `SHUTOFF_FAILED` / `STOPPED_FAILED`: a failed or aborted incoming migration.
    Failed,
}

/// How a job restored in `postcopy_failed` continues (§8 "PC").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostcopyRecovery {
    /// QEMU is still in post-copy: left to `qemuMigrationProcessUnattended`.
    Unattended,
    /// QEMU completed: run the Complete function of the job's side.
    Complete,
    /// Anything else: mark the migration post-copy failed.
    MarkFailed,
}

/// What to do with a migration job found in the status XML after a daemon restart (§8).
/// Every action but [`RecoveryAction::PostcopyFailed`] ends the job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecoveryAction {
    /// Forget the job; the VM is left as it is (`begin3`, phases of the other direction,
    /// a VM that is no longer running).
    DropJob,
    /// `qemuMigrationSrcCancelUnattended` (`migrate_cancel`), then resume the CPUs if
    /// `resume` (paused with reason MIGRATION/UNKNOWN).
    Cancel {
        /// Whether to resume after cancelling.
        resume: bool,
    },
    /// Migration finished but the Finish result is unknown: leave the source paused.
    LeavePaused,
    /// Resume the CPUs (paused with reason MIGRATION/UNKNOWN after a cancelled Confirm).
    Resume,
    /// Stop QEMU.
    Kill {
        /// The shut-off reason.
        reason: StopReason,
    },
    /// Start the CPUs (`finish2`: the v2 source is already gone); failure only warns.
    StartCpus,
    /// Keep the VM running as it is.
    Keep,
    /// Restore the job in phase `postcopy_failed` (§8 "PC").
    PostcopyFailed {
        /// How the post-copy job continues.
        then: PostcopyRecovery,
    },
}

fn postcopy_recovery(observed: &ObservedVm) -> RecoveryAction {
    let then = match observed.qemu_migration_status {
        QemuMigrationStatus::Postcopy => PostcopyRecovery::Unattended,
        QemuMigrationStatus::Completed => PostcopyRecovery::Complete,
        _ => PostcopyRecovery::MarkFailed,
    };
    RecoveryAction::PostcopyFailed { then }
}

/// Paused because of the migration (reason MIGRATION or UNKNOWN), so recovery may resume it.
fn paused_by_migration(observed: &ObservedVm) -> bool {
    observed.state == VmState::Paused
        && matches!(observed.reason, VmReason::Migration | VmReason::Unknown)
}

/// Restart recovery (`qemuProcessRecoverMigrationOut` / `…In`, §8) as a pure function.
///
/// Outgoing: `begin3` → drop; `perform2`/`perform3` → cancel and resume if paused by the
/// migration (post-copy: PC, §12.7); `perform3_done` → post-copy: PC, else leave paused;
/// `confirm3_cancelled` → post-copy: PC, else resume; `confirm3` → kill (migrated);
/// `confirm_resume` → kill if QEMU completed, else PC; `begin_resume`, `perform_resume`,
/// `postcopy_failed` → PC.
/// Incoming: `prepare` → kill; `finish2` → start CPUs; `finish3` → post-copy: PC, not
/// running: kill, else keep; `prepare_resume`, `finish_resume`, `postcopy_failed` → PC.
/// Phases of the other direction and `none` drop the job; so does a VM whose QEMU is gone
/// (libvirt only recovers jobs of live processes).
pub fn recover(job: JobDirection, phase: JobPhase, observed: ObservedVm) -> RecoveryAction {
    use JobPhase as P;
    if observed.state == VmState::Shutoff {
        return RecoveryAction::DropJob;
    }
    match job {
        JobDirection::Out => {
            let postcopy = observed.state == VmState::Paused
                && matches!(
                    observed.reason,
                    VmReason::Postcopy | VmReason::PostcopyFailed
                );
            match phase {
                P::Begin3 => RecoveryAction::DropJob,
                P::Perform2 | P::Perform3 if postcopy => postcopy_recovery(&observed),
                P::Perform2 | P::Perform3 => RecoveryAction::Cancel {
                    resume: paused_by_migration(&observed),
                },
                P::Perform3Done if postcopy => postcopy_recovery(&observed),
                P::Perform3Done => RecoveryAction::LeavePaused,
                P::Confirm3Cancelled if postcopy => postcopy_recovery(&observed),
                P::Confirm3Cancelled if paused_by_migration(&observed) => RecoveryAction::Resume,
                P::Confirm3Cancelled => RecoveryAction::Keep,
                P::Confirm3 => RecoveryAction::Kill {
                    reason: StopReason::Migrated,
                },
                P::ConfirmResume
                    if observed.qemu_migration_status == QemuMigrationStatus::Completed =>
                {
                    RecoveryAction::Kill {
                        reason: StopReason::Migrated,
                    }
                }
                P::ConfirmResume | P::BeginResume | P::PerformResume | P::PostcopyFailed => {
                    postcopy_recovery(&observed)
                }
                P::None
                | P::Prepare
                | P::Finish2
                | P::Finish3
                | P::PrepareResume
                | P::FinishResume => RecoveryAction::DropJob,
            }
        }
        JobDirection::In => {
            let postcopy = (observed.state == VmState::Paused
                && observed.reason == VmReason::PostcopyFailed)
                || (observed.state == VmState::Running && observed.reason == VmReason::Postcopy);
            match phase {
                P::Prepare => RecoveryAction::Kill {
                    reason: StopReason::Failed,
                },
                P::Finish2 => RecoveryAction::StartCpus,
                P::Finish3 if postcopy => postcopy_recovery(&observed),
                P::Finish3 if observed.state != VmState::Running => RecoveryAction::Kill {
                    reason: StopReason::Failed,
                },
                P::Finish3 => RecoveryAction::Keep,
                P::PrepareResume | P::FinishResume | P::PostcopyFailed => {
                    postcopy_recovery(&observed)
                }
                P::None
                | P::Perform2
                | P::Begin3
                | P::Perform3
                | P::Perform3Done
                | P::Confirm3Cancelled
                | P::Confirm3
                | P::BeginResume
                | P::PerformResume
                | P::ConfirmResume => RecoveryAction::DropJob,
            }
        }
    }
}

/// What happens to a kept job when the client connection that started it closes (§8
/// "Client connection lost").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClientClosedAction {
    /// `begin3`: abort the job; the VM is untouched.
    AbortJob,
    /// `perform3_done`: warn that the outcome on the destination is unknown and end the
    /// job; the source stays paused.
    EndJobLeavePaused,
    /// `prepare`: the incoming VM is autodestroyed with the connection.
    AutoDestroy,
    /// Any other phase: an API call is running (it sees the loss itself) or nothing is kept.
    Ignore,
}

/// `qemuMigrationAnyConnectionClosed` and autodestroy (§8): the reaction to the loss of the
/// client connection while a job is in `phase`.
pub fn on_client_closed(phase: JobPhase) -> ClientClosedAction {
    match phase {
        JobPhase::Begin3 => ClientClosedAction::AbortJob,
        JobPhase::Perform3Done => ClientClosedAction::EndJobLeavePaused,
        JobPhase::Prepare => ClientClosedAction::AutoDestroy,
        _ => ClientClosedAction::Ignore,
    }
}

/// `VIR_ERR_INVALID_ARG`
pub(crate) const ERR_INVALID_ARG: i32 = 8;
/// `VIR_ERR_XML_ERROR`
pub(crate) const ERR_XML_ERROR: i32 = 27;
/// `VIR_ERR_CONFIG_UNSUPPORTED`
pub(crate) const ERR_CONFIG_UNSUPPORTED: i32 = 67;

/// A QEMU-driver error with the message text a daemon puts on the wire: `virErrorMsg`'s
/// prefix for `code`, then `info` (e.g. "internal error: Attempt to migrate guest …").
pub(crate) fn libvirt_error(code: i32, info: &str) -> RemoteError {
    let prefix = match code {
        ERR_INTERNAL_ERROR => "internal error",
        ERR_NO_SUPPORT => "this function is not supported by the connection driver",
        ERR_INVALID_ARG => "invalid argument",
        ERR_OPERATION_FAILED => "operation failed",
        ERR_XML_ERROR => "XML error",
        ERR_NO_DOMAIN => "Domain not found",
        ERR_OPERATION_INVALID => "Requested operation is not valid",
        ERR_CONFIG_UNSUPPORTED => "unsupported configuration",
        ERR_OPERATION_TIMEOUT => "Timed out during operation",
        ERR_ARGUMENT_UNSUPPORTED => "argument unsupported",
        ERR_OPERATION_ABORTED => "operation aborted",
        ERR_MIGRATE_UNSAFE => "Unsafe migration",
        ERR_MIGRATE_FINISH_OK => "migration successfully aborted",
        _ => "error",
    };
    let message = if info.is_empty() {
        prefix.to_owned()
    } else {
        format!("{prefix}: {info}")
    };
    RemoteError::new(code, FROM_QEMU, message)
}
