//! The destination daemon's step logic (spec/libvirt-migration.md §4.4 Prepare, §4.5 Finish,
//! §4.1 v2 Finish, §8 autodestroy), as a sans-IO [`Machine`].
//!
//! Commands that answer with an input: [`DestinationAction::StartIncoming`] →
//! [`DestinationInput::IncomingStarted`], [`DestinationAction::PersistVm`] →
//! [`DestinationInput::PersistDone`], [`DestinationAction::StartCpus`] →
//! [`DestinationInput::CpusStarted`]. The incoming migration's outcome
//! ([`DestinationInput::IncomingCompleted`] / [`DestinationInput::IncomingFailed`]) may
//! arrive any time after Prepare; Finish waits for it. Other actions are fire-and-forget.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;
use crate::migration::cookie::{Capability, CheckContext, Cookie, CookieHop, Graphics, Statistics};
use crate::migration::error::{
    RemoteError, ERR_ARGUMENT_UNSUPPORTED, ERR_INTERNAL_ERROR, ERR_MIGRATE_FINISH_OK,
    ERR_NO_DOMAIN, ERR_OPERATION_FAILED, ERR_OPERATION_INVALID,
};
use crate::migration::flags::{param, MigrateFlags, Params};
use crate::migration::phase::{
    check_phase, libvirt_error, on_client_closed, ClientClosedAction, JobPhase, StopReason,
    ERR_INVALID_ARG, ERR_XML_ERROR,
};
use crate::migration::source::{cookie_error, default_caps, parse_uri};
use crate::{Machine, Millis};

/// The capability the destination always turns on (`qemuMigrationParamsAlwaysOn`, §6).
const DESTINATION_ALWAYS_ON: &str = "late-block-activate";

/// libvirt's first migration port (qemu.conf `migration_port_min`).
pub const DEFAULT_MIGRATION_PORT: u16 = 49152;

fn default_port() -> u16 {
    DEFAULT_MIGRATION_PORT
}

/// A domain's identity (`remote_nonnull_domain` without the id).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRef {
    /// Domain name.
    pub name: String,
    /// Domain UUID, as text.
    pub uuid: String,
}

/// Configuration of a [`DestinationHost`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DestinationConfig {
    /// This host's name (cookies' `<hostname>`; `uri_out` host without `migration_host`).
    pub hostname: String,
    /// This host's UUID (cookies' `<hostuuid>`).
    pub host_uuid: String,
    /// qemu.conf `migration_host`: the host put in `uri_out` (§4.4).
    #[serde(default)]
    pub migration_host: Option<String>,
    /// The port allocated for incoming migration (the pool's first free port).
    #[serde(default = "default_port")]
    pub migration_port: u16,
    /// The incoming VM's SPICE display, sent in the Prepare cookie's `<graphics>` (§7);
    /// `cert_subject` is the DN of `server-cert.pem` when SPICE TLS is on.
    #[serde(default)]
    pub graphics: Option<Graphics>,
    /// The lock manager plugin, compared with the Begin cookie's `<lockstate driver>`.
    #[serde(default)]
    pub lock_driver: Option<String>,
    /// Domains already active on this host (Prepare refuses their name or UUID, §4.4).
    #[serde(default)]
    pub active_vms: Vec<DomainRef>,
    /// Migration capabilities this QEMU supports (Prepare's `<capabilities>`).
    #[serde(default = "default_caps")]
    pub migration_caps: Vec<String>,
}

impl DestinationConfig {
    /// A configuration with libvirt's defaults for everything but the identities.
    pub fn new(hostname: impl Into<String>, host_uuid: impl Into<String>) -> Self {
        DestinationConfig {
            hostname: hostname.into(),
            host_uuid: host_uuid.into(),
            migration_host: None,
            migration_port: DEFAULT_MIGRATION_PORT,
            graphics: None,
            lock_driver: None,
            active_vms: Vec::new(),
            migration_caps: default_caps(),
        }
    }
}

/// The step call a [`DestinationAction::Reply`] answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationStep {
    /// Prepare3 / Prepare3Params / Prepare2.
    Prepare,
    /// Finish3 / Finish3Params / Finish2.
    Finish,
}

/// A successful step's result.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DestinationReply {
    /// Prepare: the cookie for Perform and, when this host chose it, the URI.
    Prepared {
        /// Prepare → Perform cookie.
        cookie: Bytes,
        /// `uri_out` (`tcp:HOST:PORT`), `None` when `uri_in` was used as given.
        uri_out: Option<String>,
    },
    /// Finish: the Confirm cookie and the domain now running here.
    Finished {
        /// Finish → Confirm cookie (empty for offline migration).
        cookie: Bytes,
        /// The migrated domain.
        domain: DomainRef,
    },
}

/// What the destination host is fed.
// Inputs are moved once into `handle`; boxing the statistics would only burden hosts.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DestinationInput {
    /// Prepare3[Params] / Prepare2 (§4.4). Params used: `destination_xml` (required),
    /// `destination_name`, `migrate_uri` (uri_in), `listen_address`.
    Prepare {
        /// The Begin cookie.
        cookie: Bytes,
        /// Flags as sent.
        flags: MigrateFlags,
        /// Typed parameters.
        #[serde(default)]
        params: Params,
    },
    /// Finish3[Params] / Finish2 (§4.5). Params used: `destination_name`.
    Finish {
        /// The Perform cookie (may be empty).
        cookie: Bytes,
        /// Flags as sent.
        flags: MigrateFlags,
        /// Typed parameters.
        #[serde(default)]
        params: Params,
        /// `cancelled` (v3) / `retcode ≠ 0` (v2).
        cancelled: bool,
        /// A v2 Finish2: persist, completion and CPU-start errors are ignored (§4.1).
        #[serde(default)]
        v2: bool,
    },
    /// Result of [`DestinationAction::StartIncoming`].
    IncomingStarted {
        /// The failure (e.g. "qemu unexpectedly closed the monitor: …"), if any.
        error: Option<String>,
    },
    /// The incoming migration completed in QEMU.
    IncomingCompleted {
        /// Statistics for the Finish cookie; `None` forwards the Perform cookie's.
        #[serde(default)]
        stats: Option<Statistics>,
    },
    /// The incoming migration failed in QEMU.
    IncomingFailed {
        /// QEMU's error text.
        error: String,
    },
    /// Result of [`DestinationAction::PersistVm`].
    PersistDone {
        /// The failure, if any.
        error: Option<String>,
    },
    /// Result of [`DestinationAction::StartCpus`].
    CpusStarted {
        /// The failure, if any.
        error: Option<String>,
    },
    /// The incoming QEMU process died.
    VmDied {
        /// Why, if known (becomes the error a later Finish reports).
        #[serde(default)]
        error: Option<String>,
    },
    /// The client connection that called Prepare closed (§8 autodestroy).
    ClientClosed,
}

/// What the destination host asks its host to do.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum DestinationAction {
    /// Persist the job's new phase (§8).
    SavePhase {
        /// The new phase.
        phase: JobPhase,
    },
    /// The incoming job ended.
    EndJob,
    /// Start QEMU paused with `-incoming defer` + `migrate-incoming`, autodestroyed with
    /// the client connection (§4.4); answer with [`DestinationInput::IncomingStarted`].
    StartIncoming {
        /// Local domain name (after `destination_name`).
        name: String,
        /// Domain XML.
        xml: String,
        /// The `migrate-incoming` URI, e.g. `tcp:[::]:49152`.
        uri: String,
    },
    /// Stop the incoming QEMU process.
    StopVm {
        /// Why (always `failed` here).
        reason: StopReason,
    },
    /// Define the domain persistently (PERSIST_DEST); answer with
    /// [`DestinationInput::PersistDone`].
    PersistVm {
        /// The persistent definition (the cookie's `<domain>`, else the prepared XML).
        xml: String,
    },
    /// Start the guest CPUs (RUNNING_MIGRATED); answer with
    /// [`DestinationInput::CpusStarted`].
    StartCpus,
    /// Log a warning.
    Warn {
        /// The text.
        message: String,
    },
    /// Answer a step call.
    Reply {
        /// The call answered.
        step: DestinationStep,
        /// Its result.
        result: Result<DestinationReply, RemoteError>,
    },
}

/// What the machine waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wait {
    Nothing,
    Start,
    Persist,
    Completion,
    Cpus,
}

/// The incoming migration's outcome as reported by QEMU.
#[derive(Clone, Debug, PartialEq)]
enum Outcome {
    Running,
    Completed(Option<Box<Statistics>>),
    Failed(String),
}

/// The incoming migration job (`VIR_ASYNC_JOB_MIGRATION_IN`).
#[derive(Clone, Debug)]
struct Incoming {
    /// Local name (after `destination_name`).
    name: String,
    /// The source's name: the cookies' `<name>`.
    origname: String,
    uuid: String,
    xml: String,
    phase: JobPhase,
    offline: bool,
    outcome: Outcome,
    client_closed: bool,
    prepared: Option<DestinationReply>,
    finish: Option<FinishCtx>,
}

#[derive(Clone, Debug)]
struct FinishCtx {
    flags: MigrateFlags,
    v2: bool,
    stats: Option<Statistics>,
}

/// The destination daemon's migration logic (§4.4, §4.5), one incoming migration at a time.
#[derive(Clone, Debug)]
pub struct DestinationHost {
    cfg: DestinationConfig,
    incoming: Option<Incoming>,
    /// The domain a successful Finish left running here.
    migrated: Option<DomainRef>,
    /// The error a later Finish reports when the incoming VM vanished
    /// (`qemuMigrationDstErrorReport`).
    saved_error: Option<RemoteError>,
    wait: Wait,
    actions: VecDeque<DestinationAction>,
}

impl DestinationHost {
    /// A destination host with `cfg`.
    pub fn new(cfg: DestinationConfig) -> Self {
        DestinationHost {
            cfg,
            incoming: None,
            migrated: None,
            saved_error: None,
            wait: Wait::Nothing,
            actions: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &DestinationConfig {
        &self.cfg
    }

    /// The incoming job's phase, or `None` without a job.
    pub fn phase(&self) -> Option<JobPhase> {
        self.incoming.as_ref().map(|i| i.phase)
    }

    /// The domain a successful Finish left running here.
    pub fn migrated(&self) -> Option<&DomainRef> {
        self.migrated.as_ref()
    }

    fn push(&mut self, a: DestinationAction) {
        self.actions.push_back(a);
    }

    fn reply(&mut self, step: DestinationStep, result: Result<DestinationReply, RemoteError>) {
        self.push(DestinationAction::Reply { step, result });
    }

    fn set_phase(&mut self, next: JobPhase) -> Result<(), RemoteError> {
        let inc = self
            .incoming
            .as_mut()
            .ok_or_else(|| libvirt_error(ERR_OPERATION_INVALID, "no incoming migration"))?;
        check_phase(inc.phase, next).map_err(|e| e.to_remote())?;
        inc.phase = next;
        self.push(DestinationAction::SavePhase { phase: next });
        Ok(())
    }

    /// Kill the incoming VM (unless offline or already dead) and end the job.
    fn discard(&mut self, kill: bool) {
        if let Some(inc) = self.incoming.take() {
            if kill && !inc.offline {
                self.push(DestinationAction::StopVm {
                    reason: StopReason::Failed,
                });
            }
            self.push(DestinationAction::EndJob);
        }
        self.wait = Wait::Nothing;
    }

    // ---------------------------------------------------------------- Prepare (§4.4)

    fn prepare(&mut self, cookie: Bytes, flags: MigrateFlags, params: Params) {
        match self.prepare_checks(&cookie, flags, &params) {
            Ok((inc, listen, uri_out, out_cookie)) => {
                let offline = inc.offline;
                let (name, xml) = (inc.name.clone(), inc.xml.clone());
                self.incoming = Some(inc);
                self.saved_error = None;
                if let Err(e) = self.set_phase(JobPhase::Prepare) {
                    self.discard(false);
                    return self.reply(DestinationStep::Prepare, Err(e));
                }
                let prepared = DestinationReply::Prepared {
                    cookie: Bytes(out_cookie.format()),
                    uri_out,
                };
                if offline {
                    return self.reply(DestinationStep::Prepare, Ok(prepared));
                }
                if let Some(inc) = self.incoming.as_mut() {
                    inc.prepared = Some(prepared);
                }
                self.wait = Wait::Start;
                self.push(DestinationAction::StartIncoming {
                    name,
                    xml,
                    uri: listen,
                });
            }
            Err(e) => self.reply(DestinationStep::Prepare, Err(e)),
        }
    }

    /// Everything Prepare checks before adding the VM: XML, cookie (parsed before the VM
    /// is added), name/UUID not active, URIs.
    #[allow(clippy::type_complexity)]
    fn prepare_checks(
        &self,
        cookie: &Bytes,
        flags: MigrateFlags,
        params: &Params,
    ) -> Result<(Incoming, String, Option<String>, Cookie), RemoteError> {
        let xml = params
            .get_str(param::DEST_XML)
            .map(str::trim)
            .filter(|x| !x.is_empty())
            .ok_or_else(|| libvirt_error(ERR_INVALID_ARG, "no domain XML passed"))?;
        let (origname, xml_uuid) =
            domain_identity(xml).map_err(|e| libvirt_error(ERR_XML_ERROR, &e))?;
        let parsed = Cookie::parse(cookie.as_slice()).map_err(cookie_error)?;
        let uuid = match (xml_uuid, &parsed) {
            (Some(u), _) => u,
            (None, Some(c)) => c.uuid.clone(),
            (None, None) => {
                return Err(libvirt_error(
                    ERR_XML_ERROR,
                    "domain XML has no <uuid> and no cookie supplies one",
                ))
            }
        };
        if let Some(c) = &parsed {
            c.check(&CheckContext {
                expected_name: &origname,
                expected_uuid: &uuid,
                local_host_uuid: &self.cfg.host_uuid,
                hop: CookieHop::BeginToPrepare,
                local_lock_driver: self.cfg.lock_driver.as_deref(),
            })
            .map_err(cookie_error)?;
        }
        let name = params
            .get_str(param::DEST_NAME)
            .filter(|n| !n.is_empty())
            .unwrap_or(&origname)
            .to_owned();
        self.check_not_active(&name, &uuid)?;
        if self.incoming.is_some() {
            // One incoming migration per machine (a libvirt daemon runs one per domain).
            return Err(libvirt_error(
                ERR_OPERATION_INVALID,
                "another incoming migration is already in progress",
            ));
        }
        let offline = flags.contains(MigrateFlags::OFFLINE);
        let (listen, uri_out) = if offline {
            (String::new(), None)
        } else {
            self.incoming_uris(
                params.get_str(param::URI),
                params.get_str(param::LISTEN_ADDRESS),
            )?
        };
        // Prepare → Perform cookie (§6 table): GRAPHICS and CAPS, not when offline.
        let c = &self.cfg;
        let mut out = Cookie::new(&origname, &uuid, &c.hostname, &c.host_uuid);
        if !offline {
            out.graphics = c.graphics.clone().filter(|g| g.kind == "spice");
            out.capabilities = Some(
                c.migration_caps
                    .iter()
                    .map(|name| Capability {
                        name: name.clone(),
                        auto: name == DESTINATION_ALWAYS_ON,
                    })
                    .collect(),
            );
        }
        let inc = Incoming {
            name,
            origname,
            uuid,
            xml: xml.to_owned(),
            phase: JobPhase::None,
            offline,
            outcome: Outcome::Running,
            client_closed: false,
            prepared: None,
            finish: None,
        };
        Ok((inc, listen, uri_out, out))
    }

    /// `virDomainObjListAdd(LIVE|CHECK_LIVE)` (§4.4).
    fn check_not_active(&self, name: &str, uuid: &str) -> Result<(), RemoteError> {
        let current = self.incoming.as_ref().map(|i| DomainRef {
            name: i.name.clone(),
            uuid: i.uuid.clone(),
        });
        let all = self
            .cfg
            .active_vms
            .iter()
            .chain(self.migrated.iter())
            .chain(current.iter());
        for vm in all.clone() {
            if vm.uuid.eq_ignore_ascii_case(uuid) {
                return Err(if vm.name == name {
                    libvirt_error(
                        ERR_OPERATION_INVALID,
                        &format!("domain '{name}' is already active"),
                    )
                } else {
                    libvirt_error(
                        ERR_OPERATION_FAILED,
                        &format!(
                            "domain '{}' is already defined with uuid {}",
                            vm.name, vm.uuid
                        ),
                    )
                });
            }
        }
        if let Some(vm) = all.into_iter().find(|vm| vm.name == name) {
            return Err(libvirt_error(
                ERR_OPERATION_FAILED,
                &format!("domain '{name}' already exists with uuid {}", vm.uuid),
            ));
        }
        Ok(())
    }

    /// `qemuMigrationDstPrepareDirect` (§4.4): the `migrate-incoming` URI and `uri_out`.
    fn incoming_uris(
        &self,
        uri_in: Option<&str>,
        listen_address: Option<&str>,
    ) -> Result<(String, Option<String>), RemoteError> {
        let port = self.cfg.migration_port;
        let listen_host = listen_address
            .filter(|a| !a.is_empty())
            .map_or_else(|| "[::]".to_owned(), bracket);
        let Some(uri_in) = uri_in.filter(|u| !u.is_empty()) else {
            let host = match &self.cfg.migration_host {
                Some(h) if !h.is_empty() => h.clone(),
                _ => {
                    if self.cfg.hostname.starts_with("localhost") {
                        return Err(libvirt_error(
                            ERR_INTERNAL_ERROR,
                            "hostname on destination resolved to localhost, but migration requires an FQDN",
                        ));
                    }
                    self.cfg.hostname.clone()
                }
            };
            let uri_out = format!("tcp:{}:{port}", bracket(&host));
            return Ok((format!("tcp:{listen_host}:{port}"), Some(uri_out)));
        };
        let uri = parse_uri(uri_in).ok_or_else(|| {
            libvirt_error(ERR_INVALID_ARG, &format!("unable to parse URI {uri_in}"))
        })?;
        match uri.scheme.as_str() {
            "unix" => Ok((uri_in.to_owned(), None)),
            "tcp" | "rdma" => {
                let (port, uri_out) = match uri.port.filter(|p| *p > 0) {
                    Some(p) => (p, None),
                    None => {
                        let p = i32::from(port);
                        let out = if uri.well_formed {
                            let host = uri.server.as_deref().map(bracket).unwrap_or_default();
                            format!("{}://{host}:{p}", uri.scheme)
                        } else {
                            format!("{uri_in}:{p}")
                        };
                        (p, Some(out))
                    }
                };
                Ok((format!("{}:{listen_host}:{port}", uri.scheme), uri_out))
            }
            other => Err(libvirt_error(
                ERR_ARGUMENT_UNSUPPORTED,
                &format!("unsupported scheme {other} in migration URI {uri_in}"),
            )),
        }
    }

    fn incoming_started(&mut self, error: Option<String>) {
        let closed = self.incoming.as_ref().is_some_and(|i| i.client_closed);
        match error {
            Some(e) => {
                // Stop whatever started and remove the VM: nothing is left (§4.4).
                self.discard(true);
                self.reply(
                    DestinationStep::Prepare,
                    Err(libvirt_error(ERR_OPERATION_FAILED, &e)),
                );
            }
            None if closed => {
                self.discard(true);
                self.reply(
                    DestinationStep::Prepare,
                    Err(libvirt_error(
                        ERR_OPERATION_FAILED,
                        "client connection closed during Prepare",
                    )),
                );
            }
            None => {
                self.wait = Wait::Nothing;
                let prepared = self.incoming.as_mut().and_then(|i| i.prepared.take());
                match prepared {
                    Some(p) => self.reply(DestinationStep::Prepare, Ok(p)),
                    None => self.reply(
                        DestinationStep::Prepare,
                        Err(libvirt_error(ERR_INTERNAL_ERROR, "no prepared migration")),
                    ),
                }
            }
        }
    }

    // ---------------------------------------------------------------- Finish (§4.5)

    fn finish(
        &mut self,
        cookie: Bytes,
        flags: MigrateFlags,
        params: Params,
        cancelled: bool,
        v2: bool,
    ) {
        const STEP: DestinationStep = DestinationStep::Finish;
        if self.wait != Wait::Nothing {
            let e = libvirt_error(
                ERR_OPERATION_INVALID,
                "another migration job is already running",
            );
            return self.reply(STEP, Err(e));
        }
        let dname = params.get_str(param::DEST_NAME).map(str::to_owned);
        let matches = match (&self.incoming, &dname) {
            (Some(inc), Some(d)) => &inc.name == d,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if !matches {
            let e = self.saved_error.take().unwrap_or_else(|| {
                libvirt_error(
                    ERR_NO_DOMAIN,
                    &format!(
                        "no domain with matching name '{}'",
                        dname.as_deref().unwrap_or("")
                    ),
                )
            });
            return self.reply(STEP, Err(e));
        }
        let next = if v2 {
            JobPhase::Finish2
        } else {
            JobPhase::Finish3
        };
        if let Err(e) = self.set_phase(next) {
            return self.reply(STEP, Err(e));
        }
        if cancelled {
            // retcode ≠ 0: kill the incoming VM, FINISH_OK (§4.5, §12.6).
            self.discard(true);
            return self.reply(STEP, Err(libvirt_error(ERR_MIGRATE_FINISH_OK, "")));
        }
        let parsed = Cookie::parse(cookie.as_slice()).map_err(cookie_error);
        let checked = parsed.and_then(|c| match c {
            None => Ok(None),
            Some(mut c) => {
                let (name, uuid) = self
                    .incoming
                    .as_ref()
                    .map(|i| (i.origname.clone(), i.uuid.clone()))
                    .unwrap_or_default();
                c.check(&CheckContext {
                    expected_name: &name,
                    expected_uuid: &uuid,
                    local_host_uuid: &self.cfg.host_uuid,
                    hop: CookieHop::PerformToFinish,
                    local_lock_driver: self.cfg.lock_driver.as_deref(),
                })
                .map_err(cookie_error)?;
                c.retain(CookieHop::PerformToFinish.parse_flags());
                Ok(Some(c))
            }
        });
        let cookie = match checked {
            Ok(c) => c,
            Err(e) => {
                self.discard(true);
                return self.reply(STEP, Err(e));
            }
        };
        let (stats, persist_xml) = match cookie {
            Some(c) => (c.statistics, c.domain.map(|d| d.0)),
            None => (None, None),
        };
        let Some(inc) = self.incoming.as_mut() else {
            return;
        };
        inc.finish = Some(FinishCtx { flags, v2, stats });
        let offline = inc.offline;
        let xml = persist_xml.unwrap_or_else(|| inc.xml.clone());
        if flags.contains(MigrateFlags::PERSIST_DEST) || offline {
            self.wait = Wait::Persist;
            self.push(DestinationAction::PersistVm { xml });
        } else {
            self.await_completion();
        }
    }

    fn finish_ctx(&self) -> Option<&FinishCtx> {
        self.incoming.as_ref().and_then(|i| i.finish.as_ref())
    }

    fn is_v2(&self) -> bool {
        self.finish_ctx().is_some_and(|f| f.v2)
    }

    /// A v3 Finish failure kills the destination so the source can resume (§4.5).
    fn fail_finish(&mut self, e: RemoteError) {
        self.discard(true);
        self.reply(DestinationStep::Finish, Err(e));
    }

    fn persist_done(&mut self, error: Option<String>) {
        if let Some(e) = error {
            if !self.is_v2() {
                return self.fail_finish(libvirt_error(ERR_OPERATION_FAILED, &e));
            }
            self.push(DestinationAction::Warn {
                message: format!("failed to persist the migrated domain: {e}"),
            });
        }
        if self.incoming.as_ref().is_some_and(|i| i.offline) {
            return self.finished();
        }
        self.await_completion();
    }

    fn await_completion(&mut self) {
        let outcome = self.incoming.as_ref().map(|i| i.outcome.clone());
        match outcome {
            Some(Outcome::Running) => self.wait = Wait::Completion,
            Some(Outcome::Completed(stats)) => {
                if let (Some(s), Some(f)) = (
                    stats,
                    self.incoming.as_mut().and_then(|i| i.finish.as_mut()),
                ) {
                    f.stats = Some(*s);
                }
                self.start_cpus();
            }
            Some(Outcome::Failed(e)) => {
                let err = libvirt_error(
                    ERR_OPERATION_FAILED,
                    &format!("job 'migration in' failed: {e}"),
                );
                if self.is_v2() {
                    self.push(DestinationAction::Warn {
                        message: err.message.clone(),
                    });
                    self.start_cpus();
                } else {
                    self.fail_finish(err);
                }
            }
            None => {}
        }
    }

    fn start_cpus(&mut self) {
        let paused = self
            .finish_ctx()
            .is_some_and(|f| f.flags.contains(MigrateFlags::PAUSED));
        if paused {
            self.finished();
        } else {
            self.wait = Wait::Cpus;
            self.push(DestinationAction::StartCpus);
        }
    }

    fn cpus_started(&mut self, error: Option<String>) {
        if let Some(e) = error {
            let err = if e.is_empty() {
                libvirt_error(ERR_INTERNAL_ERROR, "resume operation failed")
            } else {
                libvirt_error(ERR_OPERATION_FAILED, &e)
            };
            if !self.is_v2() {
                return self.fail_finish(err);
            }
            // v2: the source is gone; leave the guest paused for an admin (§4.1, §11.3).
            self.push(DestinationAction::Warn {
                message: format!("{}; domain left paused", err.message),
            });
        }
        self.finished();
    }

    /// `qemuMigrationDstComplete`: end the job and reply with the STATS cookie and domain.
    fn finished(&mut self) {
        self.wait = Wait::Nothing;
        let Some(inc) = self.incoming.take() else {
            return;
        };
        self.push(DestinationAction::EndJob);
        let c = &self.cfg;
        let cookie = if inc.offline {
            Bytes::new()
        } else {
            let mut out = Cookie::new(&inc.origname, &inc.uuid, &c.hostname, &c.host_uuid);
            out.statistics = inc.finish.and_then(|f| f.stats);
            Bytes(out.format())
        };
        let domain = DomainRef {
            name: inc.name,
            uuid: inc.uuid,
        };
        if !inc.offline {
            self.migrated = Some(domain.clone());
        }
        self.reply(
            DestinationStep::Finish,
            Ok(DestinationReply::Finished { cookie, domain }),
        );
    }

    // ---------------------------------------------------------------- events

    fn unexpected(&mut self, what: &str) {
        self.push(DestinationAction::Warn {
            message: format!("ignored unexpected {what}"),
        });
    }

    fn vm_died(&mut self, error: Option<String>) {
        if self.incoming.is_none() {
            self.migrated = None;
            return;
        }
        let err = match error {
            Some(e) => libvirt_error(ERR_OPERATION_FAILED, &e),
            None => libvirt_error(ERR_OPERATION_FAILED, "domain is not running"),
        };
        let step = match self.wait {
            Wait::Start => Some(DestinationStep::Prepare),
            Wait::Persist | Wait::Completion | Wait::Cpus => Some(DestinationStep::Finish),
            Wait::Nothing => None,
        };
        self.discard(false);
        match step {
            Some(s) => self.reply(s, Err(err)),
            None => self.saved_error = Some(err),
        }
    }

    fn client_closed(&mut self) {
        let Some(inc) = self.incoming.as_mut() else {
            return;
        };
        match self.wait {
            Wait::Start => inc.client_closed = true,
            Wait::Nothing => {
                if on_client_closed(inc.phase) == ClientClosedAction::AutoDestroy {
                    self.discard(true);
                }
            }
            // A running Finish completes and removes autodestroy itself.
            Wait::Persist | Wait::Completion | Wait::Cpus => {}
        }
    }
}

impl Machine for DestinationHost {
    type Input = DestinationInput;
    type Action = DestinationAction;

    fn handle(&mut self, _now: Millis, input: DestinationInput) {
        match input {
            DestinationInput::Prepare {
                cookie,
                flags,
                params,
            } => {
                if self.wait != Wait::Nothing {
                    let e = libvirt_error(
                        ERR_OPERATION_INVALID,
                        "another migration job is already running",
                    );
                    return self.reply(DestinationStep::Prepare, Err(e));
                }
                self.prepare(cookie, flags, params)
            }
            DestinationInput::Finish {
                cookie,
                flags,
                params,
                cancelled,
                v2,
            } => self.finish(cookie, flags, params, cancelled, v2),
            DestinationInput::IncomingStarted { error } => {
                if self.wait != Wait::Start {
                    return self.unexpected("incoming start result");
                }
                self.incoming_started(error);
            }
            DestinationInput::IncomingCompleted { stats } => {
                let Some(inc) = self.incoming.as_mut() else {
                    return self.unexpected("incoming completion");
                };
                inc.outcome = Outcome::Completed(stats.map(Box::new));
                if self.wait == Wait::Completion {
                    self.await_completion();
                }
            }
            DestinationInput::IncomingFailed { error } => {
                let Some(inc) = self.incoming.as_mut() else {
                    return self.unexpected("incoming failure");
                };
                inc.outcome = Outcome::Failed(error);
                if self.wait == Wait::Completion {
                    self.await_completion();
                }
            }
            DestinationInput::PersistDone { error } => {
                if self.wait != Wait::Persist {
                    return self.unexpected("persist result");
                }
                self.persist_done(error);
            }
            DestinationInput::CpusStarted { error } => {
                if self.wait != Wait::Cpus {
                    return self.unexpected("CPU start result");
                }
                self.cpus_started(error);
            }
            DestinationInput::VmDied { error } => self.vm_died(error),
            DestinationInput::ClientClosed => self.client_closed(),
        }
    }

    fn poll_action(&mut self) -> Option<DestinationAction> {
        self.actions.pop_front()
    }

    fn poll_timeout(&self) -> Option<Millis> {
        None
    }
}

/// IPv6 literals go in brackets in `tcp:HOST:PORT` (§4.4).
fn bracket(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// The top-level `<name>` and `<uuid>` of a `<domain>` XML.
fn domain_identity(xml: &str) -> Result<(String, Option<String>), String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut depth = 0usize;
    let mut field: Option<&'static str> = None;
    let mut name: Option<String> = None;
    let mut uuid: Option<String> = None;
    let mut root_seen = false;
    loop {
        match reader.read_event() {
            Err(e) => return Err(format!("invalid domain XML: {e}")),
            Ok(Event::Eof) => break,
            Ok(Event::Start(e)) => {
                if depth == 0 {
                    if e.name().as_ref() != b"domain" {
                        return Err("expected a <domain> root element".to_owned());
                    }
                    root_seen = true;
                } else if depth == 1 {
                    field = match e.name().as_ref() {
                        b"name" => Some("name"),
                        b"uuid" => Some("uuid"),
                        _ => None,
                    };
                }
                depth += 1;
            }
            Ok(Event::End(_)) => {
                depth = depth.saturating_sub(1);
                field = None;
                if depth == 0 && root_seen {
                    break;
                }
            }
            Ok(Event::Text(t)) => {
                if let (Some(f), 2) = (field, depth) {
                    let text = t
                        .decode()
                        .map_err(|e| format!("invalid domain XML: {e}"))?
                        .trim()
                        .to_owned();
                    let slot = if f == "name" { &mut name } else { &mut uuid };
                    slot.get_or_insert_with(String::new).push_str(&text);
                }
            }
            Ok(Event::Empty(_)) => {
                if depth == 0 {
                    return Err("empty <domain> element".to_owned());
                }
            }
            Ok(_) => {}
        }
    }
    let name = name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| "missing name information in domain XML".to_owned())?;
    Ok((name, uuid.filter(|u| !u.is_empty())))
}
