//! Executes the orchestrator's [`Call`]s against two libvirt daemons.
//!
//! Pure encoding: each [`Call`] becomes its procedure's arguments (the `_PARAMS` forms
//! carry `call.params`, the fixed-argument forms take uri/dname/xml/bandwidth from
//! [`Call::legacy_args`]), and each reply becomes the [`OrchestratorInput`] the orchestrator
//! expects. Every protocol decision stays in the core.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use livemig_core::bytes::Bytes;
use livemig_core::migration::error::{RemoteError, ERR_INTERNAL_ERROR, FROM_NONE};
use livemig_core::migration::orchestrator::{
    Call, DomainRef, DomainState, Host, Orchestrator, OrchestratorAction, OrchestratorInput,
    Procedure, Report,
};
use livemig_core::Machine;

use super::calls::*;
use super::rpc::{Rpc, RpcError};
use super::xdr::{self, XdrError};

/// Why a [`Call`] could not be turned into arguments (nothing was sent).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A value does not fit its XDR type.
    #[error(transparent)]
    Xdr(#[from] XdrError),
    /// Flags above 32 bits for a procedure whose flags are `unsigned int`.
    #[error("flags {flags:#x} do not fit the unsigned int of {procedure:?}")]
    FlagsTooWide {
        /// The procedure.
        procedure: Procedure,
        /// The flags.
        flags: u64,
    },
    /// A non-nullable argument the call's params do not provide.
    #[error("{procedure:?} needs {what}, which the call does not carry")]
    Missing {
        /// The procedure.
        procedure: Procedure,
        /// Which argument.
        what: &'static str,
    },
}

/// The procedure number and XDR arguments of `call`, for `domain` (the source domain,
/// `remote_nonnull_domain` of the calls that take one).
///
/// Fixed-argument forms: `xmlin` of Begin3 and `dom_xml` of Prepare3/Prepare2 are
/// `legacy_args().xml`; Perform3's `xmlin` and every `dconnuri` are NULL (managed mode, as
/// `virDomainMigrateVersion3Full` sends them); a missing `dname` of Finish3/Finish2 is the
/// domain's name (libvirt's `dname ? dname : domain->name`).
pub fn encode_call(call: &Call, domain: &DomainRef) -> Result<(u32, Vec<u8>), EncodeError> {
    use Procedure as P;
    let procedure = call.procedure;
    let legacy = call.legacy_args();
    let opt = |s: Option<&str>| s.map(str::to_owned);
    let need = |s: Option<&str>, what| {
        s.map(str::to_owned)
            .ok_or(EncodeError::Missing { procedure, what })
    };
    let flags32 = || {
        u32::try_from(call.flags).map_err(|_| EncodeError::FlagsTooWide {
            procedure,
            flags: call.flags,
        })
    };
    let cookie = || {
        call.cookie
            .as_ref()
            .map(|c| c.0.clone())
            .unwrap_or_default()
    };
    let cancelled = i32::from(call.cancelled.unwrap_or(false));
    let dom = || domain.clone();
    let params = || call.params.clone();
    let dname_or_domain = || {
        legacy
            .dname
            .map_or_else(|| domain.name.clone(), str::to_owned)
    };
    let body = match procedure {
        P::DomainGetXmlDesc => xdr::to_bytes(&GetXmlDescArgs {
            dom: dom(),
            flags: flags32()?,
        })?,
        P::DomainGetState => xdr::to_bytes(&GetStateArgs {
            dom: dom(),
            flags: flags32()?,
        })?,
        P::DomainAbortJob => xdr::to_bytes(&DomainArgs { dom: dom() })?,
        P::MigrateBegin3Params => xdr::to_bytes(&Begin3ParamsArgs {
            dom: dom(),
            params: params(),
            flags: flags32()?,
        })?,
        P::MigratePrepare3Params => xdr::to_bytes(&Prepare3ParamsArgs {
            params: params(),
            cookie_in: cookie(),
            flags: flags32()?,
        })?,
        P::MigratePerform3Params => xdr::to_bytes(&Perform3ParamsArgs {
            dom: dom(),
            dconnuri: None,
            params: params(),
            cookie_in: cookie(),
            flags: flags32()?,
        })?,
        P::MigrateFinish3Params => xdr::to_bytes(&Finish3ParamsArgs {
            params: params(),
            cookie_in: cookie(),
            flags: flags32()?,
            cancelled,
        })?,
        P::MigrateConfirm3Params => xdr::to_bytes(&Confirm3ParamsArgs {
            dom: dom(),
            params: params(),
            cookie_in: cookie(),
            flags: flags32()?,
            cancelled,
        })?,
        P::MigrateBegin3 => xdr::to_bytes(&Begin3Args {
            dom: dom(),
            xmlin: opt(legacy.xml),
            flags: call.flags,
            dname: opt(legacy.dname),
            resource: legacy.bandwidth,
        })?,
        P::MigratePrepare3 => xdr::to_bytes(&Prepare3Args {
            cookie_in: cookie(),
            uri_in: opt(legacy.uri),
            flags: call.flags,
            dname: opt(legacy.dname),
            resource: legacy.bandwidth,
            dom_xml: need(legacy.xml, "dom_xml (destination_xml)")?,
        })?,
        P::MigratePerform3 => xdr::to_bytes(&Perform3Args {
            dom: dom(),
            xmlin: None,
            cookie_in: cookie(),
            dconnuri: None,
            uri: opt(legacy.uri),
            flags: call.flags,
            dname: opt(legacy.dname),
            resource: legacy.bandwidth,
        })?,
        P::MigrateFinish3 => xdr::to_bytes(&Finish3Args {
            dname: dname_or_domain(),
            cookie_in: cookie(),
            dconnuri: None,
            uri: opt(legacy.uri),
            flags: call.flags,
            cancelled,
        })?,
        P::MigrateConfirm3 => xdr::to_bytes(&Confirm3Args {
            dom: dom(),
            cookie_in: cookie(),
            flags: call.flags,
            cancelled,
        })?,
        P::MigratePrepare2 => xdr::to_bytes(&Prepare2Args {
            uri_in: opt(legacy.uri),
            flags: call.flags,
            dname: opt(legacy.dname),
            resource: legacy.bandwidth,
            dom_xml: need(legacy.xml, "dom_xml (destination_xml)")?,
        })?,
        P::MigratePerform => xdr::to_bytes(&PerformArgs {
            dom: dom(),
            cookie: cookie(),
            uri: need(legacy.uri, "uri (migrate_uri)")?,
            flags: call.flags,
            dname: opt(legacy.dname),
            resource: legacy.bandwidth,
        })?,
        P::MigrateFinish2 => xdr::to_bytes(&Finish2Args {
            dname: dname_or_domain(),
            cookie: cookie(),
            uri: need(legacy.uri, "uri (migrate_uri)")?,
            flags: call.flags,
            retcode: cancelled,
        })?,
    };
    Ok((procedure.number(), body))
}

/// The orchestrator input for a successful reply body of `procedure`.
pub fn decode_reply(procedure: Procedure, body: &[u8]) -> Result<OrchestratorInput, XdrError> {
    use OrchestratorInput as I;
    use Procedure as P;
    Ok(match procedure {
        P::DomainGetXmlDesc => I::XmlDesc {
            xml: xdr::from_bytes::<GetXmlDescRet>(body)?.xml,
        },
        P::DomainGetState => I::SourceState {
            state: DomainState::from_number(xdr::from_bytes::<GetStateRet>(body)?.state),
        },
        P::DomainAbortJob => {
            xdr::from_bytes::<()>(body)?;
            I::JobAborted
        }
        P::MigrateBegin3 | P::MigrateBegin3Params => {
            let r: Begin3Ret = xdr::from_bytes(body)?;
            I::Begun {
                cookie: Bytes(r.cookie_out),
                xml: r.xml,
            }
        }
        P::MigratePrepare3 | P::MigratePrepare3Params => {
            let r: Prepare3Ret = xdr::from_bytes(body)?;
            I::Prepared {
                cookie: Bytes(r.cookie_out),
                uri: r.uri_out,
            }
        }
        P::MigratePrepare2 => {
            let r: Prepare2Ret = xdr::from_bytes(body)?;
            I::Prepared {
                cookie: Bytes(r.cookie),
                uri: r.uri_out,
            }
        }
        P::MigratePerform3 | P::MigratePerform3Params => I::Performed {
            cookie: Bytes(xdr::from_bytes::<Perform3Ret>(body)?.cookie_out),
        },
        P::MigratePerform => {
            xdr::from_bytes::<()>(body)?;
            I::Performed {
                cookie: Bytes::new(),
            }
        }
        P::MigrateFinish3 | P::MigrateFinish3Params => {
            let r: Finish3Ret = xdr::from_bytes(body)?;
            I::Finished {
                domain: r.dom,
                cookie: Bytes(r.cookie_out),
            }
        }
        P::MigrateFinish2 => I::Finished {
            domain: xdr::from_bytes::<Finish2Ret>(body)?.ddom,
            cookie: Bytes::new(),
        },
        P::MigrateConfirm3 | P::MigrateConfirm3Params => {
            xdr::from_bytes::<()>(body)?;
            I::Confirmed
        }
    })
}

/// What [`MigrationExecutor::run`] saw.
#[derive(Clone, Debug, Default)]
pub struct RunOutcome {
    /// The orchestrator's report (`None` if it stopped asking without one).
    pub report: Option<Report>,
    /// Its warnings, in order.
    pub warnings: Vec<String>,
    /// The calls made, in order.
    pub calls: Vec<(Host, Procedure)>,
}

/// Two daemon connections and the domain being migrated (as looked up on the source).
#[derive(Debug)]
pub struct MigrationExecutor {
    /// The source daemon.
    pub source: Rpc,
    /// The destination daemon.
    pub destination: Rpc,
    /// The domain, as `remote_nonnull_domain` of source-side calls.
    pub domain: DomainRef,
}

impl MigrationExecutor {
    /// An executor over two open connections.
    pub fn new(source: Rpc, destination: Rpc, domain: DomainRef) -> Self {
        MigrationExecutor {
            source,
            destination,
            domain,
        }
    }

    /// Run one call and turn its outcome into the orchestrator's input: a reply becomes
    /// the matching input, an error reply `CallFailed`, a lost/timed-out/broken connection
    /// or an undecodable reply `ConnectionLost` (nobody knows what the daemon did). A call
    /// that cannot be encoded is not sent and becomes `CallFailed` (internal error).
    ///
    /// While the call waits, the other connection is served (PINGs answered and sent) if
    /// it runs keepalive, so the idle daemon does not drop it, e.g. the destination during
    /// a long Perform.
    pub fn execute(&mut self, call: &Call) -> OrchestratorInput {
        let procedure = call.procedure;
        let (number, body) = match encode_call(call, &self.domain) {
            Ok(x) => x,
            Err(e) => {
                return OrchestratorInput::CallFailed {
                    procedure,
                    error: RemoteError::new(
                        ERR_INTERNAL_ERROR,
                        FROM_NONE,
                        format!("internal error: cannot encode {procedure:?}: {e}"),
                    ),
                }
            }
        };
        let (target, other) = match call.host {
            Host::Source => (&mut self.source, &mut self.destination),
            Host::Destination => (&mut self.destination, &mut self.source),
        };
        let result = call_serving_other(target, other, number, &body);
        match result {
            Ok(reply) => match decode_reply(procedure, &reply) {
                Ok(input) => input,
                Err(e) => OrchestratorInput::ConnectionLost {
                    host: call.host,
                    reason: format!("undecodable reply to {procedure:?}: {e}"),
                },
            },
            Err(RpcError::Remote(error)) => OrchestratorInput::CallFailed { procedure, error },
            Err(e) => OrchestratorInput::ConnectionLost {
                host: call.host,
                reason: e.to_string(),
            },
        }
    }

    /// Drive `orchestrator` from `Start` to its report, executing every call in turn. When
    /// the configuration has `step_timeout_ms`, it becomes both connections' call timeout.
    pub fn run(&mut self, orchestrator: &mut Orchestrator) -> RunOutcome {
        if let Some(ms) = orchestrator.config().step_timeout_ms {
            let t = Some(Duration::from_millis(ms));
            self.source.set_call_timeout(t);
            self.destination.set_call_timeout(t);
        }
        let t0 = Instant::now();
        let now = || t0.elapsed().as_millis() as u64;
        let mut out = RunOutcome::default();
        orchestrator.handle(now(), OrchestratorInput::Start);
        while let Some(action) = orchestrator.poll_action() {
            match action {
                OrchestratorAction::Call(call) => {
                    out.calls.push((call.host, call.procedure));
                    let input = self.execute(&call);
                    orchestrator.handle(now(), input);
                }
                OrchestratorAction::Warn { message } => out.warnings.push(message),
                OrchestratorAction::Done(report) => {
                    out.report = Some(report);
                    break;
                }
            }
        }
        out
    }
}

/// `target.call`, with `other` served meanwhile when it runs keepalive.
fn call_serving_other(
    target: &mut Rpc,
    other: &mut Rpc,
    number: u32,
    body: &[u8],
) -> Result<Vec<u8>, RpcError> {
    if !other.keepalive_enabled() || other.dead_reason().is_some() {
        return target.call(number, body);
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let stop = &stop;
        // An error there marks `other` dead; its next call reports it.
        // A short tick: joining waits for it after every call.
        let server = s.spawn(move || other.service_until(stop, Duration::from_millis(2)));
        let r = target.call(number, body);
        stop.store(true, Ordering::Release);
        let _ = server.join();
        r
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use livemig_core::migration::flags::{param, ParamValue, Params, TypedParam};

    fn dom() -> DomainRef {
        DomainRef {
            name: "tiny".into(),
            uuid: "7e1e7e1e-0000-4000-8000-000000000001".into(),
            id: 1,
        }
    }

    fn call(procedure: Procedure, params: Params) -> Call {
        Call {
            host: Host::Source,
            procedure,
            flags: 0x101,
            cookie: Some(Bytes(b"ck".to_vec())),
            params,
            cancelled: Some(true),
        }
    }

    fn sp(f: &str, v: &str) -> TypedParam {
        TypedParam {
            field: f.into(),
            value: ParamValue::String(v.into()),
        }
    }

    #[test]
    fn legacy_forms_take_legacy_args() {
        let p = Params(vec![
            sp(param::URI, "tcp:b:49152"),
            sp(param::DEST_NAME, "renamed"),
            sp(param::DEST_XML, "<domain/>"),
            TypedParam {
                field: param::BANDWIDTH.into(),
                value: ParamValue::Ullong(77),
            },
        ]);
        let (n, b) = encode_call(&call(Procedure::MigratePerform3, p.clone()), &dom()).unwrap();
        assert_eq!(n, 216);
        let a: Perform3Args = xdr::from_bytes(&b).unwrap();
        assert_eq!(a.xmlin, None);
        assert_eq!(a.dconnuri, None);
        assert_eq!(a.uri.as_deref(), Some("tcp:b:49152"));
        assert_eq!(a.dname.as_deref(), Some("renamed"));
        assert_eq!((a.flags, a.resource), (0x101, 77));
        assert_eq!(a.cookie_in, b"ck");

        let (n, b) = encode_call(&call(Procedure::MigrateFinish2, p.clone()), &dom()).unwrap();
        assert_eq!(n, 109);
        let a: Finish2Args = xdr::from_bytes(&b).unwrap();
        assert_eq!(
            (a.dname.as_str(), a.uri.as_str(), a.retcode),
            ("renamed", "tcp:b:49152", 1)
        );

        let (_, b) = encode_call(&call(Procedure::MigratePrepare3, p), &dom()).unwrap();
        let a: Prepare3Args = xdr::from_bytes(&b).unwrap();
        assert_eq!(a.dom_xml, "<domain/>");
        assert_eq!(a.uri_in.as_deref(), Some("tcp:b:49152"));
    }

    #[test]
    fn params_forms_carry_params_and_u32_flags() {
        let p = Params(vec![sp(param::DEST_XML, "<domain/>")]);
        let (n, b) =
            encode_call(&call(Procedure::MigrateFinish3Params, p.clone()), &dom()).unwrap();
        assert_eq!(n, 306);
        let a: Finish3ParamsArgs = xdr::from_bytes(&b).unwrap();
        assert_eq!((a.params, a.flags, a.cancelled), (p.clone(), 0x101, 1));
        let mut wide = call(Procedure::MigrateBegin3Params, p);
        wide.flags = 1 << 40;
        assert!(matches!(
            encode_call(&wide, &dom()),
            Err(EncodeError::FlagsTooWide { .. })
        ));
    }

    #[test]
    fn missing_required_args_are_errors() {
        assert!(matches!(
            encode_call(&call(Procedure::MigratePerform, Params::default()), &dom()),
            Err(EncodeError::Missing {
                what: "uri (migrate_uri)",
                ..
            })
        ));
        assert!(matches!(
            encode_call(&call(Procedure::MigratePrepare2, Params::default()), &dom()),
            Err(EncodeError::Missing { .. })
        ));
        let mut bad = dom();
        bad.uuid = "nope".into();
        assert!(matches!(
            encode_call(&call(Procedure::DomainAbortJob, Params::default()), &bad),
            Err(EncodeError::Xdr(XdrError::BadUuid(_)))
        ));
    }

    #[test]
    fn replies_map_to_inputs() {
        let b = xdr::to_bytes(&Prepare3Ret {
            cookie_out: b"c".to_vec(),
            uri_out: Some("tcp:x:1".into()),
        })
        .unwrap();
        assert_eq!(
            decode_reply(Procedure::MigratePrepare3Params, &b).unwrap(),
            OrchestratorInput::Prepared {
                cookie: Bytes(b"c".to_vec()),
                uri: Some("tcp:x:1".into())
            }
        );
        let b = xdr::to_bytes(&GetStateRet {
            state: 3,
            reason: 1,
        })
        .unwrap();
        assert_eq!(
            decode_reply(Procedure::DomainGetState, &b).unwrap(),
            OrchestratorInput::SourceState {
                state: DomainState::Paused
            }
        );
        assert_eq!(
            decode_reply(Procedure::MigrateConfirm3Params, &[]).unwrap(),
            OrchestratorInput::Confirmed
        );
        assert!(decode_reply(Procedure::MigrateConfirm3, &[0, 0, 0, 0]).is_err());
        assert!(decode_reply(Procedure::MigrateFinish3Params, &b).is_err());
    }
}
