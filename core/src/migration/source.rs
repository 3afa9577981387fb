//! The source daemon's step logic (spec/libvirt-migration.md §4.2 Begin, §4.3 Perform,
//! §4.6 Confirm, §7 SPICE relocation and wait, §8 client loss), as a sans-IO
//! [`Machine`]: step calls and hypervisor results come in as [`SourceInput`]s, hypervisor
//! commands, persisted phases and step replies go out as [`SourceAction`]s.
//!
//! Commands that answer with an input: [`SourceAction::SetSpiceRelocation`] →
//! [`SourceInput::RelocationDone`], [`SourceAction::SetCapabilities`] →
//! [`SourceInput::CapabilitiesSet`], [`SourceAction::Pause`] → [`SourceInput::PauseDone`],
//! [`SourceAction::StartMigration`] → [`SourceInput::MigrationCompleted`] or
//! [`SourceInput::MigrationFailed`]. Every other action is fire-and-forget, executed in order.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;
use crate::migration::cookie::{Capability, Statistics};
use crate::migration::cookie::{CheckContext, Cookie, CookieFlags, CookieHop, Lockstate, RawXml};
use crate::migration::error::{
    RemoteError, ERR_ARGUMENT_UNSUPPORTED, ERR_INTERNAL_ERROR, ERR_MIGRATE_UNSAFE,
    ERR_OPERATION_ABORTED, ERR_OPERATION_FAILED, ERR_OPERATION_INVALID,
};
use crate::migration::flags::{param, MigrateFlags, Params};
use crate::migration::phase::{
    check_phase, libvirt_error, on_client_closed, ClientClosedAction, JobPhase, StopReason,
    VmState, ERR_INVALID_ARG,
};
use crate::{Machine, Millis};

/// The migration capabilities libvirt 9.0 advertises with QEMU 10 (§5 real cookies), in
/// libvirt's enum order: the default of [`SourceConfig::migration_caps`].
pub const QEMU_MIGRATION_CAPS: [&str; 10] = [
    "xbzrle",
    "auto-converge",
    "rdma-pin-all",
    "postcopy-ram",
    "pause-before-switchover",
    "late-block-activate",
    "multifd",
    "dirty-bitmaps",
    "return-path",
    "zero-copy-send",
];

/// The capability the source always turns on when both sides support it
/// (`qemuMigrationParamsAlwaysOn`, §6).
const SOURCE_ALWAYS_ON: &str = "pause-before-switchover";

pub(crate) fn default_caps() -> Vec<String> {
    QEMU_MIGRATION_CAPS
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// The VM this source host migrates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceVm {
    /// Domain name (the cookie's `<name>`).
    pub name: String,
    /// Domain UUID, as text.
    pub uuid: String,
    /// State before any migration: running, paused or shut off.
    pub state: VmState,
    /// The migratable domain XML Begin returns (§4.2).
    pub xml: String,
    /// The `<cpu>` element Begin puts in its cookie (origCPU), verbatim.
    #[serde(default)]
    pub cpu: Option<String>,
}

/// Configuration of a [`SourceHost`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceConfig {
    /// This host's name (the cookies' `<hostname>`).
    pub hostname: String,
    /// This host's UUID (the cookies' `<hostuuid>`; refused when it comes back, §6).
    pub host_uuid: String,
    /// The VM.
    pub vm: SourceVm,
    /// The lock manager plugin (e.g. `nop`, `lockd`, `sanlock`): with one, the Begin cookie
    /// carries the mandatory LOCKSTATE feature (§6).
    #[serde(default)]
    pub lock_driver: Option<String>,
    /// Inner text of `<leases>`: when set, Begin sends `<lockstate driver><leases>`.
    #[serde(default)]
    pub lock_leases: Option<String>,
    /// Bound on Confirm's wait for SPICE completion. `None` = unbounded, like libvirt (§7).
    #[serde(default)]
    pub spice_wait_ms: Option<Millis>,
    /// Migration capabilities this QEMU supports (Begin's `<capabilities>`).
    #[serde(default = "default_caps")]
    pub migration_caps: Vec<String>,
    /// qemu.conf `migrate_tls_force` (§4.2).
    #[serde(default)]
    pub tls_force: bool,
    /// Storage that `qemuMigrationSrcIsSafe` refuses (§4.2).
    #[serde(default)]
    pub unsafe_storage: bool,
    /// Migration blockers (`qemuMigrationSrcIsAllowed`, §4.2), e.g. "domain has snapshots".
    #[serde(default)]
    pub blockers: Vec<String>,
}

impl SourceConfig {
    /// A configuration with libvirt's defaults for everything but the identities.
    pub fn new(hostname: impl Into<String>, host_uuid: impl Into<String>, vm: SourceVm) -> Self {
        SourceConfig {
            hostname: hostname.into(),
            host_uuid: host_uuid.into(),
            vm,
            lock_driver: None,
            lock_leases: None,
            spice_wait_ms: None,
            migration_caps: default_caps(),
            tls_force: false,
            unsafe_storage: false,
            blockers: Vec::new(),
        }
    }
}

/// The step call a [`SourceAction::Reply`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceStep {
    /// Begin3 / Begin3Params.
    Begin,
    /// Perform3 / Perform3Params.
    Perform,
    /// Confirm3 / Confirm3Params.
    Confirm,
}

/// A successful step's result: the out-cookie (empty for Confirm) and, for Begin, the
/// domain XML.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceReply {
    /// The out-cookie, NUL-terminated, or empty.
    pub cookie: Bytes,
    /// Begin's domain XML.
    pub xml: Option<String>,
}

/// What the source host is fed.
// Inputs are moved once into `handle`; boxing the statistics would only burden hosts.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceInput {
    /// Begin3[Params] (§4.2). Params used: `destination_xml` (xmlin), `migrate_disks`.
    Begin {
        /// Flags as sent (CHANGE_PROTECTION included).
        flags: MigrateFlags,
        /// Typed parameters.
        #[serde(default)]
        params: Params,
    },
    /// Perform3[Params] (§4.3). Params used: `migrate_uri`, `graphics_uri`, `persistent_xml`.
    Perform {
        /// The Prepare cookie.
        cookie: Bytes,
        /// Flags as sent.
        flags: MigrateFlags,
        /// Typed parameters.
        #[serde(default)]
        params: Params,
    },
    /// Confirm3[Params] (§4.6).
    Confirm {
        /// The Finish cookie (may be empty).
        cookie: Bytes,
        /// Flags as sent.
        flags: MigrateFlags,
        /// Whether the migration was cancelled (Finish returned no domain, §12.3).
        cancelled: bool,
    },
    /// Result of [`SourceAction::SetSpiceRelocation`] (`client_migrate_info`).
    RelocationDone {
        /// The failure, if any (only warned about, §7).
        error: Option<String>,
    },
    /// Result of [`SourceAction::SetCapabilities`].
    CapabilitiesSet {
        /// The failure, if any.
        error: Option<String>,
    },
    /// Result of [`SourceAction::Pause`].
    PauseDone {
        /// The failure, if any.
        error: Option<String>,
    },
    /// QEMU's `STOP` event: the guest CPUs stopped (e.g. at switchover).
    VmPaused,
    /// The outgoing migration completed (QEMU status `completed`).
    MigrationCompleted {
        /// Statistics for the Perform cookie (§6 `<statistics>`).
        stats: Statistics,
    },
    /// The outgoing migration failed or was cancelled.
    MigrationFailed {
        /// QEMU's error text.
        error: String,
    },
    /// A [`SourceAction::Resume`] failed (the guest stays paused, reason API_ERROR).
    ResumeFailed {
        /// The failure.
        error: String,
    },
    /// QEMU's `SPICE_MIGRATE_COMPLETED` event (§7).
    SpiceMigrated,
    /// The QEMU process died.
    VmDied,
    /// `virDomainAbortJob` (§3 "Loss/abort").
    AbortJob,
    /// The client connection that owns a kept job closed (§8).
    ClientClosed,
    /// The time from [`Machine::poll_timeout`] passed.
    Timeout,
}

/// What the source host asks its host to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SourceAction {
    /// Persist the job's new phase (status XML, §8). Phases only go up (§12.8).
    SavePhase {
        /// The new phase.
        phase: JobPhase,
    },
    /// The migration job ended: drop it from the status XML.
    EndJob,
    /// QMP `client_migrate_info` (§7); answer with [`SourceInput::RelocationDone`].
    SetSpiceRelocation {
        /// Where the SPICE client reconnects.
        hostname: String,
        /// Plain port (≤ 0: none).
        port: i32,
        /// TLS port (−1: none).
        tls_port: i32,
        /// The destination server certificate's subject.
        cert_subject: Option<String>,
    },
    /// QMP `migrate-set-capabilities`; answer with [`SourceInput::CapabilitiesSet`].
    SetCapabilities {
        /// Capabilities to turn on.
        capabilities: Vec<String>,
    },
    /// Pause the guest before a non-live migration (PAUSED_MIGRATION, §4.3); answer with
    /// [`SourceInput::PauseDone`].
    Pause,
    /// QMP `migrate`; answer with [`SourceInput::MigrationCompleted`] or
    /// [`SourceInput::MigrationFailed`].
    StartMigration {
        /// The destination URI (`migrate_uri`).
        uri: String,
    },
    /// QMP `migrate_cancel`.
    CancelMigration,
    /// QMP `cont`: resume the guest (only if it was running before, §12.7).
    Resume,
    /// Stop the QEMU process.
    StopVm {
        /// Why.
        reason: StopReason,
    },
    /// Undefine the persistent source definition (UNDEFINE_SOURCE after a successful
    /// Confirm, §12.11).
    UndefineVm,
    /// Log a warning.
    Warn {
        /// The text.
        message: String,
    },
    /// Answer a step call.
    Reply {
        /// The call answered.
        step: SourceStep,
        /// Its result.
        result: Result<SourceReply, RemoteError>,
    },
}

/// What the machine waits for.
#[derive(Clone, Debug, PartialEq)]
enum Wait {
    Nothing,
    Relocation,
    Capabilities,
    Pause,
    Migration,
    Spice {
        deadline: Option<Millis>,
        undefine: bool,
    },
}

/// The outgoing migration job (`VIR_ASYNC_JOB_MIGRATION_OUT`).
#[derive(Clone, Debug)]
struct Job {
    phase: JobPhase,
    /// Kept across calls since Begin (CHANGE_PROTECTION).
    pre_running: bool,
    spice_relocated: bool,
    spice_migrated: bool,
    aborted: bool,
    migration_started: bool,
    plan: Option<Plan>,
}

/// What Perform decided before waiting on the hypervisor.
#[derive(Clone, Debug)]
struct Plan {
    uri: String,
    flags: MigrateFlags,
    capabilities: Vec<String>,
    persist_xml: Option<RawXml>,
}

/// A SPICE relocation target (§7).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Relocation {
    hostname: String,
    port: i32,
    tls_port: i32,
    cert_subject: Option<String>,
}

/// The source daemon's migration logic for one VM (§4.2, §4.3, §4.6, §7).
#[derive(Clone, Debug)]
pub struct SourceHost {
    cfg: SourceConfig,
    vm_state: VmState,
    job: Option<Job>,
    wait: Wait,
    actions: VecDeque<SourceAction>,
}

impl SourceHost {
    /// A source host with `cfg`; the VM starts in `cfg.vm.state`.
    pub fn new(cfg: SourceConfig) -> Self {
        let vm_state = cfg.vm.state;
        SourceHost {
            cfg,
            vm_state,
            job: None,
            wait: Wait::Nothing,
            actions: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SourceConfig {
        &self.cfg
    }

    /// The VM state as this machine tracks it.
    pub fn vm_state(&self) -> VmState {
        self.vm_state
    }

    /// The migration job's phase, or `None` without a job.
    pub fn phase(&self) -> Option<JobPhase> {
        self.job.as_ref().map(|j| j.phase)
    }

    fn push(&mut self, a: SourceAction) {
        self.actions.push_back(a);
    }

    fn warn(&mut self, message: String) {
        self.push(SourceAction::Warn { message });
    }

    fn reply(&mut self, step: SourceStep, result: Result<SourceReply, RemoteError>) {
        self.push(SourceAction::Reply { step, result });
    }

    fn end_job(&mut self) {
        if self.job.take().is_some() {
            self.push(SourceAction::EndJob);
        }
        self.wait = Wait::Nothing;
    }

    /// Move the job to `next` (checked, §8) and persist it.
    fn set_phase(&mut self, next: JobPhase) -> Result<(), RemoteError> {
        let job = self
            .job
            .as_mut()
            .ok_or_else(|| not_being_migrated(&self.cfg.vm.name))?;
        check_phase(job.phase, next).map_err(|e| e.to_remote())?;
        job.phase = next;
        self.push(SourceAction::SavePhase { phase: next });
        Ok(())
    }

    fn new_job(&mut self) {
        self.job = Some(Job {
            phase: JobPhase::None,
            pre_running: self.vm_state == VmState::Running,
            spice_relocated: false,
            spice_migrated: false,
            aborted: false,
            migration_started: false,
            plan: None,
        });
    }

    fn busy_error(&self) -> RemoteError {
        libvirt_error(
            ERR_OPERATION_INVALID,
            &format!(
                "another migration job is already running for domain '{}'",
                self.cfg.vm.name
            ),
        )
    }

    fn check_cookie(&self, bytes: &Bytes, hop: CookieHop) -> Result<Option<Cookie>, RemoteError> {
        let parsed = Cookie::parse(bytes.as_slice()).map_err(cookie_error)?;
        let Some(mut cookie) = parsed else {
            return Ok(None);
        };
        cookie
            .check(&CheckContext {
                expected_name: &self.cfg.vm.name,
                expected_uuid: &self.cfg.vm.uuid,
                local_host_uuid: &self.cfg.host_uuid,
                hop,
                local_lock_driver: self.cfg.lock_driver.as_deref(),
            })
            .map_err(cookie_error)?;
        cookie.retain(hop.parse_flags());
        Ok(Some(cookie))
    }

    // ---------------------------------------------------------------- Begin (§4.2)

    fn begin(&mut self, flags: MigrateFlags, params: Params) {
        if self.wait != Wait::Nothing || self.job.is_some() {
            let e = self.busy_error();
            return self.reply(SourceStep::Begin, Err(e));
        }
        if let Err(e) = self.begin_checks(flags, &params) {
            return self.reply(SourceStep::Begin, Err(e));
        }
        let cookie = self.begin_cookie(flags);
        let xml = params
            .get_str(param::DEST_XML)
            .map(str::to_owned)
            .unwrap_or_else(|| self.cfg.vm.xml.clone());
        if flags.contains(MigrateFlags::CHANGE_PROTECTION) {
            self.new_job();
            if let Err(e) = self.set_phase(JobPhase::Begin3) {
                self.end_job();
                return self.reply(SourceStep::Begin, Err(e));
            }
        }
        self.reply(
            SourceStep::Begin,
            Ok(SourceReply {
                cookie: Bytes(cookie.format()),
                xml: Some(xml),
            }),
        );
    }

    /// `qemuMigrationSrcBeginPhase`'s checks (§4.2), in libvirt's order.
    fn begin_checks(&self, flags: MigrateFlags, params: &Params) -> Result<(), RemoteError> {
        let has = |f: MigrateFlags| flags.contains(f);
        let offline = has(MigrateFlags::OFFLINE);
        let non_shared = has(MigrateFlags::NON_SHARED_DISK) || has(MigrateFlags::NON_SHARED_INC);
        if !offline && self.vm_state == VmState::Shutoff {
            return Err(libvirt_error(
                ERR_OPERATION_INVALID,
                "domain is not running",
            ));
        }
        if has(MigrateFlags::POSTCOPY_RESUME) {
            return Err(libvirt_error(
                ERR_OPERATION_INVALID,
                &format!(
                    "migration of domain {} is not in post-copy failed state",
                    self.cfg.vm.name
                ),
            ));
        }
        if self.cfg.tls_force && !has(MigrateFlags::TUNNELLED) && !has(MigrateFlags::TLS) {
            return Err(libvirt_error(
                ERR_OPERATION_INVALID,
                "this libvirtd instance allows migration only with VIR_MIGRATE_TLS flag",
            ));
        }
        if !offline {
            if let Some(b) = self.cfg.blockers.first() {
                return Err(libvirt_error(
                    ERR_OPERATION_INVALID,
                    &format!("cannot migrate domain: {b}"),
                ));
            }
        }
        if self.cfg.unsafe_storage && !has(MigrateFlags::UNSAFE) && !offline {
            return Err(libvirt_error(
                ERR_MIGRATE_UNSAFE,
                "Migration may lead to data corruption if disks use cache other than none or directsync",
            ));
        }
        if has(MigrateFlags::POSTCOPY) && (!has(MigrateFlags::LIVE) || has(MigrateFlags::PAUSED)) {
            return Err(libvirt_error(
                ERR_ARGUMENT_UNSUPPORTED,
                "post-copy migration is not supported with non-live or paused migration",
            ));
        }
        if has(MigrateFlags::POSTCOPY) && has(MigrateFlags::TUNNELLED) {
            return Err(libvirt_error(
                ERR_ARGUMENT_UNSUPPORTED,
                "post-copy is not supported with tunnelled migration",
            ));
        }
        if offline {
            if non_shared {
                return Err(libvirt_error(
                    ERR_OPERATION_INVALID,
                    "offline migration cannot handle non-shared storage",
                ));
            }
            if !has(MigrateFlags::PERSIST_DEST) {
                return Err(libvirt_error(
                    ERR_OPERATION_INVALID,
                    "offline migration must be specified with the persistent flag set",
                ));
            }
            if has(MigrateFlags::TUNNELLED) {
                return Err(libvirt_error(
                    ERR_OPERATION_INVALID,
                    "tunnelled offline migration does not make sense",
                ));
            }
        }
        if non_shared && has(MigrateFlags::TUNNELLED) {
            return Err(libvirt_error(
                ERR_ARGUMENT_UNSUPPORTED,
                "migration of non-shared storage is not supported with tunnelled migration",
            ));
        }
        if params.get(param::MIGRATE_DISKS).is_some() && !non_shared {
            return Err(libvirt_error(
                ERR_INVALID_ARG,
                "use of 'VIR_MIGRATE_PARAM_MIGRATE_DISKS' requires use of 'VIR_MIGRATE_NON_SHARED_DISK' or 'VIR_MIGRATE_NON_SHARED_INC' flag",
            ));
        }
        if has(MigrateFlags::ZEROCOPY) && !has(MigrateFlags::PARALLEL) {
            return Err(libvirt_error(
                ERR_OPERATION_INVALID,
                "zero-copy is only available for parallel migration",
            ));
        }
        Ok(())
    }

    /// Begin → Prepare cookie (§6 table): LOCKSTATE (mandatory) with a lock driver, CPU,
    /// CAPS unless OFFLINE.
    fn begin_cookie(&mut self, flags: MigrateFlags) -> Cookie {
        let cpu = match self
            .cfg
            .vm
            .cpu
            .as_deref()
            .map(|x| RawXml::checked(x.trim()))
        {
            Some(Ok(raw)) => Some(raw),
            Some(Err(e)) => {
                self.warn(format!("ignored invalid <cpu> element: {e}"));
                None
            }
            None => None,
        };
        let c = &self.cfg;
        let mut cookie = Cookie::new(&c.vm.name, &c.vm.uuid, &c.hostname, &c.host_uuid);
        cookie.cpu = cpu;
        if let Some(driver) = &c.lock_driver {
            cookie.mandatory |= CookieFlags::LOCKSTATE;
            if let Some(leases) = &c.lock_leases {
                cookie.lockstate = Some(Lockstate {
                    driver: driver.clone(),
                    leases: Some(leases.clone()),
                });
            }
        }
        if !flags.contains(MigrateFlags::OFFLINE) {
            cookie.capabilities = Some(
                c.migration_caps
                    .iter()
                    .map(|name| Capability {
                        name: name.clone(),
                        auto: name == SOURCE_ALWAYS_ON,
                    })
                    .collect(),
            );
        }
        cookie
    }

    // ---------------------------------------------------------------- Perform (§4.3)

    fn perform(&mut self, cookie: Bytes, flags: MigrateFlags, params: Params) {
        if self.wait != Wait::Nothing {
            let e = self.busy_error();
            return self.reply(SourceStep::Perform, Err(e));
        }
        if self.vm_state == VmState::Shutoff {
            let e = libvirt_error(ERR_OPERATION_INVALID, "domain is not running");
            return self.reply(SourceStep::Perform, Err(e));
        }
        // Job: continued from Begin with CHANGE_PROTECTION, else started now.
        if flags.contains(MigrateFlags::CHANGE_PROTECTION) {
            if self.job.is_none() {
                let e = not_being_migrated(&self.cfg.vm.name);
                return self.reply(SourceStep::Perform, Err(e));
            }
        } else if self.job.is_some() {
            let e = self.busy_error();
            return self.reply(SourceStep::Perform, Err(e));
        } else {
            self.new_job();
        }
        if let Err(e) = self.set_phase(JobPhase::Perform3) {
            // qemuMigrationSrcPerformPhase: a refused phase ends the job as it is.
            self.end_job();
            return self.reply(SourceStep::Perform, Err(e));
        }
        match self.plan_perform(&cookie, flags, &params) {
            Ok((plan, relocation)) => {
                if let Some(job) = self.job.as_mut() {
                    job.plan = Some(plan);
                }
                match relocation {
                    Ok(Some(r)) => {
                        self.wait = Wait::Relocation;
                        self.push(SourceAction::SetSpiceRelocation {
                            hostname: r.hostname,
                            port: r.port,
                            tls_port: r.tls_port,
                            cert_subject: r.cert_subject,
                        });
                    }
                    Ok(None) => self.set_capabilities(),
                    Err(why) => {
                        self.warn(relocation_warning(&why));
                        self.set_capabilities();
                    }
                }
            }
            Err(e) => self.fail_perform(e),
        }
    }

    /// URI, Prepare cookie, capabilities and graphics target (§4.3 Run, §7).
    #[allow(clippy::type_complexity)]
    fn plan_perform(
        &self,
        cookie: &Bytes,
        flags: MigrateFlags,
        params: &Params,
    ) -> Result<(Plan, Result<Option<Relocation>, String>), RemoteError> {
        if self.job.as_ref().is_some_and(|j| j.aborted) {
            return Err(aborted_error());
        }
        let uri = params
            .get_str(param::URI)
            .filter(|u| !u.is_empty())
            .ok_or_else(|| libvirt_error(ERR_INVALID_ARG, "missing migration URI"))?
            .to_owned();
        let cookie = self.check_cookie(cookie, CookieHop::PrepareToPerform)?;
        let capabilities = self.capabilities(flags, cookie.as_ref())?;
        let relocation = relocation_target(cookie.as_ref(), params.get_str(param::GRAPHICS_URI));
        let persist_xml = if flags.contains(MigrateFlags::PERSIST_DEST) {
            let xml = params
                .get_str(param::PERSIST_XML)
                .unwrap_or(&self.cfg.vm.xml)
                .trim();
            let raw = RawXml::checked(xml).map_err(|e| {
                libvirt_error(
                    ERR_INTERNAL_ERROR,
                    &format!("invalid persistent domain definition: {e}"),
                )
            })?;
            Some(raw)
        } else {
            None
        };
        Ok((
            Plan {
                uri,
                flags,
                capabilities,
                persist_xml,
            },
            relocation,
        ))
    }

    /// Capabilities requested by the flags (must be supported locally) plus the always-on
    /// one when the destination advertises it (`qemuMigrationParamsCheck`).
    fn capabilities(
        &self,
        flags: MigrateFlags,
        cookie: Option<&Cookie>,
    ) -> Result<Vec<String>, RemoteError> {
        const BY_FLAG: [(MigrateFlags, &str); 6] = [
            (MigrateFlags::COMPRESSED, "xbzrle"),
            (MigrateFlags::AUTO_CONVERGE, "auto-converge"),
            (MigrateFlags::RDMA_PIN_ALL, "rdma-pin-all"),
            (MigrateFlags::POSTCOPY, "postcopy-ram"),
            (MigrateFlags::PARALLEL, "multifd"),
            (MigrateFlags::ZEROCOPY, "zero-copy-send"),
        ];
        let local = |name: &str| self.cfg.migration_caps.iter().any(|c| c == name);
        let mut wanted: Vec<&str> = Vec::new();
        for (flag, name) in BY_FLAG {
            if flags.contains(flag) {
                if !local(name) {
                    return Err(libvirt_error(
                        ERR_ARGUMENT_UNSUPPORTED,
                        &format!("Migration option '{name}' is not supported by QEMU binary"),
                    ));
                }
                wanted.push(name);
            }
        }
        let remote_has = match cookie.and_then(|c| c.capabilities.as_ref()) {
            Some(caps) => caps.iter().any(|c| c.name == SOURCE_ALWAYS_ON),
            None => true,
        };
        if remote_has && local(SOURCE_ALWAYS_ON) {
            wanted.push(SOURCE_ALWAYS_ON);
        }
        // libvirt's capability order.
        let rank = |n: &str| {
            QEMU_MIGRATION_CAPS
                .iter()
                .position(|c| *c == n)
                .unwrap_or(usize::MAX)
        };
        wanted.sort_by_key(|n| rank(n));
        Ok(wanted.into_iter().map(str::to_owned).collect())
    }

    fn plan(&self) -> Option<&Plan> {
        self.job.as_ref().and_then(|j| j.plan.as_ref())
    }

    fn set_capabilities(&mut self) {
        if self.job.as_ref().is_some_and(|j| j.aborted) {
            return self.fail_perform(aborted_error());
        }
        let capabilities = self
            .plan()
            .map(|p| p.capabilities.clone())
            .unwrap_or_default();
        self.wait = Wait::Capabilities;
        self.push(SourceAction::SetCapabilities { capabilities });
    }

    fn after_capabilities(&mut self) {
        if self.job.as_ref().is_some_and(|j| j.aborted) {
            return self.fail_perform(aborted_error());
        }
        let live = self
            .plan()
            .is_some_and(|p| p.flags.contains(MigrateFlags::LIVE));
        if !live && self.vm_state == VmState::Running {
            self.wait = Wait::Pause;
            self.push(SourceAction::Pause);
        } else {
            self.start_migration();
        }
    }

    fn start_migration(&mut self) {
        if self.job.as_ref().is_some_and(|j| j.aborted) {
            return self.fail_perform(aborted_error());
        }
        let uri = self.plan().map(|p| p.uri.clone()).unwrap_or_default();
        if let Some(job) = self.job.as_mut() {
            job.migration_started = true;
        }
        self.wait = Wait::Migration;
        self.push(SourceAction::StartMigration { uri });
    }

    fn migration_completed(&mut self, stats: Statistics) {
        // The guest is stopped at switchover; v3 never kills it here (§12.4).
        self.vm_state = VmState::Paused;
        self.wait = Wait::Nothing;
        let (persist_dest, persist_xml) = match self.plan() {
            Some(p) => (
                p.flags.contains(MigrateFlags::PERSIST_DEST),
                p.persist_xml.clone(),
            ),
            None => (false, None),
        };
        if let Err(e) = self.set_phase(JobPhase::Perform3Done) {
            self.end_job();
            return self.reply(SourceStep::Perform, Err(e));
        }
        let c = &self.cfg;
        let mut cookie = Cookie::new(&c.vm.name, &c.vm.uuid, &c.hostname, &c.host_uuid);
        cookie.statistics = Some(stats);
        if persist_dest {
            cookie.mandatory |= CookieFlags::PERSISTENT;
            cookie.domain = persist_xml;
        }
        self.reply(
            SourceStep::Perform,
            Ok(SourceReply {
                cookie: Bytes(cookie.format()),
                xml: None,
            }),
        );
    }

    /// Perform failed: cancel QEMU's migration if started, restore the pre-migration state
    /// (resume only if it was running, §12.7), end the job, reply the error.
    fn fail_perform(&mut self, e: RemoteError) {
        let (started, pre_running) = self
            .job
            .as_ref()
            .map(|j| (j.migration_started, j.pre_running))
            .unwrap_or((false, false));
        if started {
            self.push(SourceAction::CancelMigration);
        }
        if pre_running && self.vm_state == VmState::Paused {
            self.push(SourceAction::Resume);
            self.vm_state = VmState::Running;
        }
        self.end_job();
        self.reply(SourceStep::Perform, Err(e));
    }

    // ---------------------------------------------------------------- Confirm (§4.6)

    fn confirm(&mut self, now: Millis, cookie: Bytes, flags: MigrateFlags, cancelled: bool) {
        if self.wait != Wait::Nothing {
            let e = self.busy_error();
            return self.reply(SourceStep::Confirm, Err(e));
        }
        let Some(phase) = self.phase() else {
            let e = not_being_migrated(&self.cfg.vm.name);
            return self.reply(SourceStep::Confirm, Err(e));
        };
        let offline = flags.contains(MigrateFlags::OFFLINE);
        if !cancelled && !offline && phase != JobPhase::Perform3Done {
            // Killing a source whose migration never completed would lose the guest.
            let e = libvirt_error(
                ERR_OPERATION_INVALID,
                &format!(
                    "migration of domain '{}' did not complete (phase {phase})",
                    self.cfg.vm.name
                ),
            );
            return self.reply(SourceStep::Confirm, Err(e));
        }
        let next = if cancelled {
            JobPhase::Confirm3Cancelled
        } else {
            JobPhase::Confirm3
        };
        if let Err(e) = self.set_phase(next) {
            return self.reply(SourceStep::Confirm, Err(e));
        }
        if let Err(e) = self.check_cookie(&cookie, CookieHop::FinishToConfirm) {
            // qemuMigrationSrcConfirm ends the job; the guest stays as it is (§11.3).
            self.end_job();
            return self.reply(SourceStep::Confirm, Err(e));
        }
        if offline {
            self.end_job();
            return self.reply(SourceStep::Confirm, Ok(empty_reply()));
        }
        let undefine = flags.contains(MigrateFlags::UNDEFINE_SOURCE);
        if cancelled {
            let pre_running = self.job.as_ref().is_some_and(|j| j.pre_running);
            if pre_running && self.vm_state == VmState::Paused {
                self.push(SourceAction::Resume);
                self.vm_state = VmState::Running;
            }
            self.end_job();
            return self.reply(SourceStep::Confirm, Ok(empty_reply()));
        }
        let must_wait = self
            .job
            .as_ref()
            .is_some_and(|j| j.spice_relocated && !j.spice_migrated && !j.aborted);
        if must_wait {
            self.wait = Wait::Spice {
                deadline: self.cfg.spice_wait_ms.map(|d| now.saturating_add(d)),
                undefine,
            };
        } else {
            self.complete(undefine);
        }
    }

    /// `qemuMigrationSrcComplete`: stop the source (migrated), end the job, reply.
    fn complete(&mut self, undefine: bool) {
        if self.vm_state != VmState::Shutoff {
            self.push(SourceAction::StopVm {
                reason: StopReason::Migrated,
            });
            self.vm_state = VmState::Shutoff;
        }
        if undefine {
            self.push(SourceAction::UndefineVm);
        }
        self.end_job();
        self.reply(SourceStep::Confirm, Ok(empty_reply()));
    }

    // ---------------------------------------------------------------- events

    fn unexpected(&mut self, what: &str) {
        self.warn(format!("ignored unexpected {what}"));
    }

    fn abort_job(&mut self) {
        let Some(job) = self.job.as_mut() else {
            return self.warn("no job is active on the domain".to_owned());
        };
        job.aborted = true;
        match self.wait.clone() {
            Wait::Migration => self.push(SourceAction::CancelMigration),
            Wait::Spice { undefine, .. } => self.complete(undefine),
            _ => {}
        }
    }

    fn client_closed(&mut self) {
        if self.wait != Wait::Nothing {
            return; // an API call is running: it sees the loss itself.
        }
        let Some(phase) = self.phase() else { return };
        match on_client_closed(phase) {
            ClientClosedAction::AbortJob => self.end_job(),
            ClientClosedAction::EndJobLeavePaused => {
                let name = self.cfg.vm.name.clone();
                self.warn(format!(
                    "Migration of domain {name} finished but we don't know if the domain was successfully started on destination or not"
                ));
                self.end_job();
            }
            ClientClosedAction::AutoDestroy | ClientClosedAction::Ignore => {}
        }
    }

    fn vm_died(&mut self) {
        self.vm_state = VmState::Shutoff;
        match self.wait.clone() {
            Wait::Relocation | Wait::Capabilities | Wait::Pause | Wait::Migration => {
                self.end_job();
                let e = libvirt_error(ERR_OPERATION_FAILED, "domain is not running");
                self.reply(SourceStep::Perform, Err(e));
            }
            Wait::Spice { undefine, .. } => self.complete(undefine),
            Wait::Nothing => self.end_job(),
        }
    }
}

impl Machine for SourceHost {
    type Input = SourceInput;
    type Action = SourceAction;

    fn handle(&mut self, now: Millis, input: SourceInput) {
        match input {
            SourceInput::Begin { flags, params } => self.begin(flags, params),
            SourceInput::Perform {
                cookie,
                flags,
                params,
            } => self.perform(cookie, flags, params),
            SourceInput::Confirm {
                cookie,
                flags,
                cancelled,
            } => self.confirm(now, cookie, flags, cancelled),
            SourceInput::RelocationDone { error } => {
                if self.wait != Wait::Relocation {
                    return self.unexpected("relocation result");
                }
                match error {
                    Some(e) => self.warn(relocation_warning(&e)),
                    None => {
                        if let Some(job) = self.job.as_mut() {
                            job.spice_relocated = true;
                        }
                    }
                }
                self.set_capabilities();
            }
            SourceInput::CapabilitiesSet { error } => {
                if self.wait != Wait::Capabilities {
                    return self.unexpected("capabilities result");
                }
                match error {
                    Some(e) => self.fail_perform(libvirt_error(ERR_OPERATION_FAILED, &e)),
                    None => self.after_capabilities(),
                }
            }
            SourceInput::PauseDone { error } => {
                if self.wait != Wait::Pause {
                    return self.unexpected("pause result");
                }
                match error {
                    Some(e) => self.fail_perform(libvirt_error(ERR_OPERATION_FAILED, &e)),
                    None => {
                        self.vm_state = VmState::Paused;
                        self.start_migration();
                    }
                }
            }
            SourceInput::VmPaused => {
                if self.vm_state == VmState::Running {
                    self.vm_state = VmState::Paused;
                }
            }
            SourceInput::MigrationCompleted { stats } => {
                if self.wait != Wait::Migration {
                    return self.unexpected("migration completion");
                }
                self.migration_completed(stats);
            }
            SourceInput::MigrationFailed { error } => {
                if self.wait != Wait::Migration {
                    return self.unexpected("migration failure");
                }
                let e = if self.job.as_ref().is_some_and(|j| j.aborted) {
                    aborted_error()
                } else {
                    libvirt_error(
                        ERR_OPERATION_FAILED,
                        &format!("job 'migration out' failed: {error}"),
                    )
                };
                self.fail_perform(e);
            }
            SourceInput::ResumeFailed { error } => {
                if self.vm_state == VmState::Running {
                    self.vm_state = VmState::Paused;
                }
                let name = self.cfg.vm.name.clone();
                self.warn(format!(
                    "Failed to resume guest {name} after failure: {error}"
                ));
            }
            SourceInput::SpiceMigrated => {
                // Only recorded with an outgoing job (qemuProcessHandleSpiceMigrated).
                if let Some(job) = self.job.as_mut() {
                    job.spice_migrated = true;
                    if let Wait::Spice { undefine, .. } = self.wait {
                        self.complete(undefine);
                    }
                }
            }
            SourceInput::VmDied => self.vm_died(),
            SourceInput::AbortJob => self.abort_job(),
            SourceInput::ClientClosed => self.client_closed(),
            SourceInput::Timeout => {
                if let Wait::Spice {
                    deadline: Some(d),
                    undefine,
                } = self.wait
                {
                    if now >= d {
                        let ms = self.cfg.spice_wait_ms.unwrap_or(0);
                        self.warn(format!(
                            "SPICE client migration did not complete within {ms} ms; stopping the source anyway"
                        ));
                        self.complete(undefine);
                    }
                }
            }
        }
    }

    fn poll_action(&mut self) -> Option<SourceAction> {
        self.actions.pop_front()
    }

    fn poll_timeout(&self) -> Option<Millis> {
        match self.wait {
            Wait::Spice { deadline, .. } => deadline,
            _ => None,
        }
    }
}

fn empty_reply() -> SourceReply {
    SourceReply {
        cookie: Bytes::new(),
        xml: None,
    }
}

fn not_being_migrated(name: &str) -> RemoteError {
    libvirt_error(
        ERR_OPERATION_INVALID,
        &format!("domain '{name}' is not being migrated"),
    )
}

fn aborted_error() -> RemoteError {
    libvirt_error(
        ERR_OPERATION_ABORTED,
        "migration out job: canceled by client",
    )
}

/// A cookie error as the daemon reports it (`VIR_ERR_INTERNAL_ERROR`, §6).
pub(crate) fn cookie_error(e: crate::migration::cookie::CookieError) -> RemoteError {
    libvirt_error(ERR_INTERNAL_ERROR, &e.to_string())
}

fn relocation_warning(why: &str) -> String {
    format!("unable to provide data for graphics client relocation: {why}")
}

/// `qemuMigrationSrcGraphicsRelocate`'s target (§7): the cookie's `<graphics>` (wildcard or
/// missing listen → the cookie's `<hostname>`), overridden by `graphics_uri`
/// (`spice://host[:port]/?tlsPort=N&tlsSubject=DN`). `Ok(None)`: nothing to send (no
/// graphics, not SPICE, or port ≤ 0 and tlsPort ≤ 0). `Err`: only warned about.
fn relocation_target(
    cookie: Option<&Cookie>,
    graphics_uri: Option<&str>,
) -> Result<Option<Relocation>, String> {
    let graphics = cookie.and_then(|c| c.graphics.as_ref());
    if graphics.is_none() && graphics_uri.is_none() {
        return Ok(None);
    }
    let mut kind: Option<String> = None;
    let mut host: Option<String> = None;
    let mut port = -1;
    let mut tls_port = -1;
    let mut cert_subject: Option<String> = None;
    if let Some(g) = graphics {
        kind = Some(g.kind.clone());
        host = if g.listen.is_empty() || is_wildcard(&g.listen) {
            cookie.map(|c| c.hostname.clone())
        } else {
            Some(g.listen.clone())
        };
        port = g.port;
        tls_port = g.tls_port.unwrap_or(-1);
        cert_subject = g.cert_subject.clone();
    }
    if let Some(text) = graphics_uri {
        let uri = parse_uri(text).ok_or_else(|| format!("Unable to parse URI {text}"))?;
        const TYPES: [&str; 7] = [
            "sdl",
            "vnc",
            "rdp",
            "desktop",
            "spice",
            "egl-headless",
            "dbus",
        ];
        if !TYPES.contains(&uri.scheme.as_str()) {
            return Err(format!("unknown graphics type {}", uri.scheme));
        }
        kind = Some(uri.scheme);
        if let Some(server) = uri.server {
            host = Some(server);
        }
        if let Some(p) = uri.port.filter(|p| *p > 0) {
            port = p;
        }
        for (name, value) in uri.query {
            if name.eq_ignore_ascii_case("tlsPort") {
                tls_port = value
                    .parse::<i32>()
                    .map_err(|_| format!("invalid tlsPort number: {value}"))?;
            } else if name.eq_ignore_ascii_case("tlsSubject") {
                cert_subject = Some(value);
            }
        }
    }
    // QEMU cannot relocate VNC clients; libvirt skips anything but SPICE.
    if kind.as_deref() != Some("spice") {
        return Ok(None);
    }
    if port <= 0 && tls_port <= 0 {
        return Ok(None);
    }
    let hostname = host
        .filter(|h| !h.is_empty())
        .ok_or_else(|| "no host name to relocate the graphics client to".to_owned())?;
    Ok(Some(Relocation {
        hostname,
        port,
        tls_port,
        cert_subject,
    }))
}

fn is_wildcard(listen: &str) -> bool {
    let bare = listen
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(listen);
    bare.parse::<std::net::IpAddr>()
        .is_ok_and(|a| a.is_unspecified())
}

/// The parts of a `scheme://[user@]host[:port][/path][?query]` URI libvirt uses.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct ParsedUri {
    pub(crate) scheme: String,
    /// Host without IPv6 brackets; `None` when empty or absent.
    pub(crate) server: Option<String>,
    pub(crate) port: Option<i32>,
    /// Whether the URI had an authority (`//`).
    pub(crate) well_formed: bool,
    /// Query parameters, percent-decoded, in order.
    pub(crate) query: Vec<(String, String)>,
}

/// A small RFC 3986 subset parser (enough for `graphics_uri` and migration URIs).
pub(crate) fn parse_uri(text: &str) -> Option<ParsedUri> {
    let (scheme, rest) = text.split_once(':')?;
    let scheme_ok = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return None;
    }
    let rest = rest.split('#').next().unwrap_or("");
    let (before_query, query) = match rest.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (rest, None),
    };
    let (authority, well_formed) = match before_query.strip_prefix("//") {
        Some(a) => (a.split('/').next().unwrap_or(""), true),
        None => (before_query, false),
    };
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port_text) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (h, port)
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port_text {
        None | Some("") => None,
        Some(p) => Some(p.parse::<u16>().ok().map(i32::from)?),
    };
    let mut pairs = Vec::new();
    for item in query.unwrap_or("").split(['&', ';']) {
        if item.is_empty() {
            continue;
        }
        let (k, v) = item.split_once('=').unwrap_or((item, ""));
        pairs.push((percent_decode(k), percent_decode(v)));
    }
    Some(ParsedUri {
        scheme: scheme.to_ascii_lowercase(),
        server: (!host.is_empty()).then(|| host.to_owned()),
        port,
        well_formed,
        query: pairs,
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        let hex = |j: usize| {
            bytes
                .get(j)
                .and_then(|c| char::from(*c).to_digit(16))
                .and_then(|d| u8::try_from(d).ok())
        };
        match b {
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            _ => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
