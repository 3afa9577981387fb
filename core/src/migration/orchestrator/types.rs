//! The orchestrator's configuration, inputs, actions and report (the vocabulary shared with
//! executors, wasm, JS and traces).

use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;
use crate::migration::error::RemoteError;
use crate::migration::flags::{FeatureSet, MigrateFlags, Params};

/// Who drives the steps (§1): the client (managed) or the source daemon (peer-to-peer).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// `virDomainMigrate3`: the client calls both daemons (§2).
    Managed,
    /// `VIR_MIGRATE_PEER2PEER`: the source daemon calls the destination (§3).
    PeerToPeer,
}

/// Which protocol the caller asks for. `Auto` chooses as `virDomainMigrate3` does (§1).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProtocolRequest {
    /// v3 with params when both sides have PARAMS, else v3, else v2.
    #[default]
    Auto,
    /// v3 with the extensible-params procedures (302-307).
    V3Params,
    /// v3 with the fixed-argument procedures (213-218).
    V3,
    /// The v2 sequence (Prepare2, Perform, Finish2).
    V2,
}

/// The protocol actually used.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// v3, procedures 302-307.
    V3Params,
    /// v3, procedures 213-218.
    V3,
    /// v2, procedures 108, 62, 109.
    V2,
}

impl Protocol {
    /// Whether this is one of the v3 variants.
    pub fn is_v3(self) -> bool {
        !matches!(self, Protocol::V2)
    }
}

/// Which daemon a call goes to.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Host {
    /// The daemon running the VM now.
    Source,
    /// The daemon receiving it.
    Destination,
}

/// A domain as the remote protocol names it (`remote_nonnull_domain`).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainRef {
    /// Domain name.
    pub name: String,
    /// UUID in its canonical text form.
    pub uuid: String,
    /// Domain id (-1 when inactive).
    pub id: i32,
}

/// `virDomainState`, as `DOMAIN_GET_STATE` reports it.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DomainState {
    /// 0
    NoState,
    /// 1
    Running,
    /// 2
    Blocked,
    /// 3
    Paused,
    /// 4
    Shutdown,
    /// 5
    Shutoff,
    /// 6
    Crashed,
    /// 7
    PmSuspended,
}

impl DomainState {
    /// From libvirt's number; unknown numbers map to `NoState`.
    pub fn from_number(n: i32) -> DomainState {
        use DomainState::*;
        match n {
            1 => Running,
            2 => Blocked,
            3 => Paused,
            4 => Shutdown,
            5 => Shutoff,
            6 => Crashed,
            7 => PmSuspended,
            _ => NoState,
        }
    }
}

/// The remote procedures the orchestrator asks for (§9; numbers from remote_protocol.x).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Procedure {
    /// `REMOTE_PROC_DOMAIN_GET_XML_DESC` (14), v2's migratable XML.
    DomainGetXmlDesc,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_PERFORM` (62), v2.
    MigratePerform,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_PREPARE2` (108).
    MigratePrepare2,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_FINISH2` (109).
    MigrateFinish2,
    /// `REMOTE_PROC_DOMAIN_ABORT_JOB` (164).
    DomainAbortJob,
    /// `REMOTE_PROC_DOMAIN_GET_STATE` (212).
    DomainGetState,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_BEGIN3` (213).
    MigrateBegin3,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_PREPARE3` (214).
    MigratePrepare3,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_PERFORM3` (216).
    MigratePerform3,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_FINISH3` (217).
    MigrateFinish3,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_CONFIRM3` (218).
    MigrateConfirm3,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_BEGIN3_PARAMS` (302).
    MigrateBegin3Params,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_PREPARE3_PARAMS` (303).
    MigratePrepare3Params,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_PERFORM3_PARAMS` (305).
    MigratePerform3Params,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_FINISH3_PARAMS` (306).
    MigrateFinish3Params,
    /// `REMOTE_PROC_DOMAIN_MIGRATE_CONFIRM3_PARAMS` (307).
    MigrateConfirm3Params,
}

impl Procedure {
    /// The procedure number in `remote_protocol.x`.
    pub const fn number(self) -> u32 {
        use Procedure::*;
        match self {
            DomainGetXmlDesc => 14,
            MigratePerform => 62,
            MigratePrepare2 => 108,
            MigrateFinish2 => 109,
            DomainAbortJob => 164,
            DomainGetState => 212,
            MigrateBegin3 => 213,
            MigratePrepare3 => 214,
            MigratePerform3 => 216,
            MigrateFinish3 => 217,
            MigrateConfirm3 => 218,
            MigrateBegin3Params => 302,
            MigratePrepare3Params => 303,
            MigratePerform3Params => 305,
            MigrateFinish3Params => 306,
            MigrateConfirm3Params => 307,
        }
    }
    /// Whether the procedure takes typed params (the `_PARAMS` family: flags are `u32` there).
    pub const fn takes_params(self) -> bool {
        self.number() >= 302
    }
}

/// `VIR_DOMAIN_XML_SECURE`
pub const XML_SECURE: u64 = 1;
/// `VIR_DOMAIN_XML_UPDATE_CPU`
pub const XML_UPDATE_CPU: u64 = 4;
/// `VIR_DOMAIN_XML_MIGRATABLE`
pub const XML_MIGRATABLE: u64 = 8;

/// Everything the orchestrator needs to know before the first step.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrchestratorConfig {
    /// Managed or peer-to-peer.
    pub mode: Mode,
    /// Which protocol the caller asks for.
    #[serde(default)]
    pub protocol: ProtocolRequest,
    /// Features the source daemon answered (`CONNECT_SUPPORTS_FEATURE`).
    pub source_features: FeatureSet,
    /// Features the destination daemon answered.
    pub destination_features: FeatureSet,
    /// The domain being migrated, as looked up on the source.
    pub domain: DomainRef,
    /// The caller's `VIR_MIGRATE_*` flags.
    pub flags: MigrateFlags,
    /// The caller's typed params (`migrate_uri`, `destination_name`, `graphics_uri`, ...).
    #[serde(default)]
    pub params: Params,
    /// Bound on each remote call, in milliseconds (`None`: wait forever, as libvirt does).
    #[serde(default)]
    pub step_timeout_ms: Option<u64>,
}

/// One remote call to execute. Exactly the arguments the procedure needs; an executor only
/// encodes it (see [`LegacyArgs`] for the fixed-argument procedures).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The daemon to call.
    pub host: Host,
    /// The procedure.
    pub procedure: Procedure,
    /// `VIR_MIGRATE_*` flags (or `VIR_DOMAIN_XML_*` for `DomainGetXmlDesc`).
    pub flags: u64,
    /// `cookie_in` (empty when the previous step produced none, §6.5 of the real-peer spec).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cookie: Option<Bytes>,
    /// Typed params (the `_PARAMS` procedures) or the source of the fixed arguments.
    #[serde(default, skip_serializing_if = "Params::is_empty")]
    pub params: Params,
    /// `cancelled` of Finish3/Confirm3, `retcode` of Finish2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cancelled: Option<bool>,
}

/// The fixed arguments of the pre-params procedures, taken from a [`Call`]'s params.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LegacyArgs<'a> {
    /// `uri` / `uri_in`
    pub uri: Option<&'a str>,
    /// `dname`
    pub dname: Option<&'a str>,
    /// `xmlin` (Begin3) or `dom_xml` (Prepare3, Prepare2)
    pub xml: Option<&'a str>,
    /// `resource` (bandwidth, MiB/s)
    pub bandwidth: u64,
}

impl Call {
    /// The fixed arguments for the procedures without params (213-218, 108, 62, 109).
    pub fn legacy_args(&self) -> LegacyArgs<'_> {
        use crate::migration::flags::{param, ParamValue};
        let bandwidth = match self.params.get(param::BANDWIDTH) {
            Some(ParamValue::Ullong(v)) => *v,
            Some(ParamValue::Uint(v)) => u64::from(*v),
            _ => 0,
        };
        LegacyArgs {
            uri: self.params.get_str(param::URI),
            dname: self.params.get_str(param::DEST_NAME),
            xml: self.params.get_str(param::DEST_XML),
            bandwidth,
        }
    }
}

/// How the migration ended, as a caller must act on it.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The VM runs on the destination; the source no longer runs it.
    Migrated,
    /// Not migrated; the VM stays on the source in the state it had before.
    Failed,
    /// The source VM is probably left paused (a failed Confirm, or the source lost during
    /// Perform): it needs recovery (§11.3).
    SourceLeftPaused,
    /// Nobody can tell where the VM runs (the Finish reply was lost, §11.1, or v2 lost it
    /// after Perform): it needs a look before anything is resumed.
    Unknown,
}

/// The final action of every run.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// What happened.
    pub verdict: Verdict,
    /// The protocol used, when one was chosen.
    pub protocol: Option<Protocol>,
    /// The domain Finish returned, if any.
    pub domain: Option<DomainRef>,
    /// The error to report: the first one, after §2.8's Finish substitution.
    pub error: Option<RemoteError>,
}

/// What the host feeds the orchestrator.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrchestratorInput {
    /// Begin the migration (checks the configuration and emits the first call).
    Start,
    /// Begin3 / Begin3Params answered.
    Begun {
        /// `cookie_out`
        cookie: Bytes,
        /// The domain XML to send to the destination.
        xml: String,
    },
    /// `DomainGetState` answered.
    SourceState {
        /// The state.
        state: DomainState,
    },
    /// `DomainGetXmlDesc` answered (v2).
    XmlDesc {
        /// The migratable XML.
        xml: String,
    },
    /// Prepare3 / Prepare3Params / Prepare2 answered.
    Prepared {
        /// `cookie_out`
        cookie: Bytes,
        /// `uri_out`
        uri: Option<String>,
    },
    /// Perform3 / Perform3Params / Perform answered.
    Performed {
        /// `cookie_out` (empty for v2)
        cookie: Bytes,
    },
    /// Finish3 / Finish3Params / Finish2 returned a domain.
    Finished {
        /// The domain now running on the destination.
        domain: DomainRef,
        /// `cookie_out` (empty for v2)
        cookie: Bytes,
    },
    /// Confirm3 / Confirm3Params answered.
    Confirmed,
    /// `DomainAbortJob` answered.
    JobAborted,
    /// A call answered with an error (for Finish: returned no domain).
    CallFailed {
        /// Which call.
        procedure: Procedure,
        /// The daemon's error.
        error: RemoteError,
    },
    /// The connection to a daemon is gone (EOF, keepalive timeout): its outstanding call
    /// has no answer and never will.
    ConnectionLost {
        /// Which daemon.
        host: Host,
        /// Why, for the report.
        reason: String,
    },
    /// The user asks to cancel (Ctrl-C); cleanup depends on the step (§2).
    Cancel,
    /// Time passed: a call past `step_timeout_ms` is treated as lost.
    Timeout,
}

/// What the orchestrator asks the host to do.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrchestratorAction {
    /// Execute a remote call and feed its answer back.
    Call(Call),
    /// Log a warning (libvirt's VIR_WARN lines).
    Warn {
        /// The text.
        message: String,
    },
    /// The run is over; nothing else follows.
    Done(Report),
}
