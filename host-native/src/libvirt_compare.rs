//! What two migration clients put on the wire, in a form that can be compared: the frames
//! the recording proxies ([`crate::libvirt_proxy`]) captured in front of the source and the
//! destination daemon become one ordered list of [`WireCall`]s, the migration procedures
//! only (302-307, 213-218, 108, 62, 109; incidental calls such as job-info polls, feature
//! probes or `DomainGetState` are left out), each decoded with its `*Args` layout.
//!
//! The same decoding serves the core orchestrator's own [`Call`]s ([`wire_call_of`]: encoded
//! exactly as the executor sends them, then decoded here), so a capture of `virsh migrate`,
//! a capture of `livemig migrate` and the calls of an orchestrator driven inline all end up
//! in the same shape (libvirt-real-peer.md §4 and §7 list what virsh produced).
//!
//! The cookies are kept apart ([`WireCookie`]): those sent (`cookie_in` of each call) and
//! those returned (`cookie_out` of Begin/Prepare/Perform/Finish replies), so a test can check
//! that each one parses with the core codec and who was sent whose cookie.

use livemig_core::migration::flags::Params;
use livemig_core::migration::orchestrator::{Call, DomainRef, Host};

use crate::libvirt::calls::{
    procs, Begin3Args, Begin3ParamsArgs, Begin3Ret, Confirm3Args, Confirm3ParamsArgs, Finish2Args,
    Finish3Args, Finish3ParamsArgs, Finish3Ret, Perform3Args, Perform3ParamsArgs, Perform3Ret,
    PerformArgs, Prepare2Args, Prepare2Ret, Prepare3Args, Prepare3ParamsArgs, Prepare3Ret,
};
use crate::libvirt::executor::{encode_call, EncodeError};
use crate::libvirt::xdr::{self, Decoder, WireError, Xdr, XdrError, COOKIE_MAX, STRING_MAX};
use crate::libvirt_proxy::{Captured, Dir};

/// `REMOTE_PROGRAM` (keepalive and QEMU-specific frames use other programs).
pub const REMOTE_PROGRAM: u32 = 0x2000_8086;

/// `REMOTE_PROC_DOMAIN_MIGRATE_PREPARE_TUNNEL3` (not in [`procs`]: livemig never sends it).
pub const PREPARE_TUNNEL3: u32 = 215;
/// `REMOTE_PROC_DOMAIN_MIGRATE_PREPARE_TUNNEL3_PARAMS`
pub const PREPARE_TUNNEL3_PARAMS: u32 = 304;

/// The procedures compared: v3 with params (302-307), v3 with fixed arguments (213-218) and
/// v2 (108, 62, 109).
pub const MIGRATION_PROCEDURES: [u32; 15] = [
    procs::DOMAIN_MIGRATE_BEGIN3_PARAMS,
    procs::DOMAIN_MIGRATE_PREPARE3_PARAMS,
    PREPARE_TUNNEL3_PARAMS,
    procs::DOMAIN_MIGRATE_PERFORM3_PARAMS,
    procs::DOMAIN_MIGRATE_FINISH3_PARAMS,
    procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS,
    procs::DOMAIN_MIGRATE_BEGIN3,
    procs::DOMAIN_MIGRATE_PREPARE3,
    PREPARE_TUNNEL3,
    procs::DOMAIN_MIGRATE_PERFORM3,
    procs::DOMAIN_MIGRATE_FINISH3,
    procs::DOMAIN_MIGRATE_CONFIRM3,
    procs::DOMAIN_MIGRATE_PREPARE2,
    procs::DOMAIN_MIGRATE_PERFORM,
    procs::DOMAIN_MIGRATE_FINISH2,
];

/// Whether `procedure` is one of [`MIGRATION_PROCEDURES`].
pub fn is_migration_procedure(procedure: u32) -> bool {
    MIGRATION_PROCEDURES.contains(&procedure)
}

/// One migration call as it went over the wire: what the comparison looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireCall {
    /// The daemon it went to.
    pub host: Host,
    /// The procedure number.
    pub procedure: u32,
    /// `flags` (`unsigned int` in the params forms, `unsigned hyper` elsewhere).
    pub flags: u64,
    /// `cancelled` of Finish3/Confirm3 (both forms), `retcode` of Finish2; `None` for the
    /// procedures without one.
    pub cancelled: Option<i32>,
    /// Whether a non-empty `cookie_in` (v2 Perform/Finish2: `cookie`) was sent.
    pub cookie_present: bool,
    /// The typed params' names in wire order (empty for the fixed-argument procedures).
    pub param_names: Vec<String>,
}

impl std::fmt::Display for WireCall {
    /// `dst:306(f=0x1,c=1,cookie)[destination_xml,migrate_uri]`
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = match self.host {
            Host::Source => "src",
            Host::Destination => "dst",
        };
        write!(f, "{host}:{}(f={:#x}", self.procedure, self.flags)?;
        if let Some(c) = self.cancelled {
            write!(f, ",c={c}")?;
        }
        if self.cookie_present {
            f.write_str(",cookie")?;
        }
        write!(f, ")[{}]", self.param_names.join(","))
    }
}

/// A call decoded in full: the compared part, the cookie and the params themselves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedCall {
    /// What is compared.
    pub call: WireCall,
    /// `cookie_in` (empty when none was sent).
    pub cookie: Vec<u8>,
    /// The typed params (empty for the fixed-argument procedures).
    pub params: Params,
    /// `dconnuri` of Perform3/Perform3Params (set only by a P2P client).
    pub dconnuri: Option<String>,
}

/// Whether a cookie went to a daemon or came back from one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CookieDir {
    /// `cookie_in` of a call to `host`.
    Sent,
    /// `cookie_out` of `host`'s reply.
    Returned,
}

/// One non-empty cookie seen on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireCookie {
    /// The daemon that received it (`Sent`) or emitted it (`Returned`).
    pub host: Host,
    /// The procedure of the call or reply that carried it.
    pub procedure: u32,
    /// Which way it went.
    pub dir: CookieDir,
    /// The bytes, NUL terminator included.
    pub bytes: Vec<u8>,
}

/// A migration reply that came back with status ERROR.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireFailure {
    /// The daemon that answered.
    pub host: Host,
    /// The procedure.
    pub procedure: u32,
    /// The error.
    pub error: WireError,
}

/// Everything migration-related in one or two proxies' frames.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WireCapture {
    /// The calls, ordered by capture time across the proxies.
    pub calls: Vec<DecodedCall>,
    /// Every non-empty cookie, sent or returned, in the same order.
    pub cookies: Vec<WireCookie>,
    /// Successful reply bodies of the migration procedures (host, procedure, body), in order.
    pub replies: Vec<(Host, u32, Vec<u8>)>,
    /// Error replies of the migration procedures, in order.
    pub failures: Vec<WireFailure>,
}

impl WireCapture {
    /// The compared part of each call.
    pub fn wire_calls(&self) -> Vec<WireCall> {
        self.calls.iter().map(|c| c.call.clone()).collect()
    }
    /// The calls that went to `host`.
    pub fn calls_to(&self, host: Host) -> Vec<WireCall> {
        self.calls
            .iter()
            .filter(|c| c.call.host == host)
            .map(|c| c.call.clone())
            .collect()
    }
    /// The first decoded call of `procedure`.
    pub fn first(&self, procedure: u32) -> Option<&DecodedCall> {
        self.calls.iter().find(|c| c.call.procedure == procedure)
    }
    /// The first successful reply body of `procedure`.
    pub fn reply(&self, procedure: u32) -> Option<&[u8]> {
        self.replies
            .iter()
            .find(|(_, p, _)| *p == procedure)
            .map(|(_, _, b)| b.as_slice())
    }
    /// The first error reply of `procedure`.
    pub fn failure(&self, procedure: u32) -> Option<&WireError> {
        self.failures
            .iter()
            .find(|f| f.procedure == procedure)
            .map(|f| &f.error)
    }
}

/// Why captured frames could not be turned into calls.
#[derive(Debug, thiserror::Error)]
pub enum CompareError {
    /// A migration call or reply body that does not decode with its layout.
    #[error("{host:?} {dir:?} of procedure {procedure}: {source}")]
    Decode {
        /// Which proxy.
        host: Host,
        /// Call or reply.
        dir: Dir,
        /// The procedure.
        procedure: u32,
        /// The decoding error.
        source: XdrError,
    },
    /// A core call the executor could not encode.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// `remote_domain_migrate_prepare_tunnel3_args`
fn decode_prepare_tunnel3(body: &[u8]) -> Result<(Vec<u8>, u64), XdrError> {
    let mut d = Decoder::new(body);
    let cookie = d.opaque(COOKIE_MAX, "cookie")?;
    let flags = d.u64()?;
    let _dname = d.remote_string()?;
    let _resource = d.u64()?;
    let _dom_xml = d.string(STRING_MAX, "dom_xml")?;
    d.finish()?;
    Ok((cookie, flags))
}

/// Decode the CALL body of a migration procedure sent to `host`. `Ok(None)` for any other
/// procedure.
pub fn decode_call(
    host: Host,
    procedure: u32,
    body: &[u8],
) -> Result<Option<DecodedCall>, XdrError> {
    // (flags, cancelled, cookie, params, dconnuri)
    type Parts = (u64, Option<i32>, Vec<u8>, Params, Option<String>);
    let none = Params::default;
    let parts: Parts = match procedure {
        procs::DOMAIN_MIGRATE_BEGIN3_PARAMS => {
            let a: Begin3ParamsArgs = xdr::from_bytes(body)?;
            (a.flags.into(), None, Vec::new(), a.params, None)
        }
        // prepare_tunnel3_params_args has the layout of prepare3_params_args.
        procs::DOMAIN_MIGRATE_PREPARE3_PARAMS | PREPARE_TUNNEL3_PARAMS => {
            let a: Prepare3ParamsArgs = xdr::from_bytes(body)?;
            (a.flags.into(), None, a.cookie_in, a.params, None)
        }
        procs::DOMAIN_MIGRATE_PERFORM3_PARAMS => {
            let a: Perform3ParamsArgs = xdr::from_bytes(body)?;
            (a.flags.into(), None, a.cookie_in, a.params, a.dconnuri)
        }
        procs::DOMAIN_MIGRATE_FINISH3_PARAMS => {
            let a: Finish3ParamsArgs = xdr::from_bytes(body)?;
            (
                a.flags.into(),
                Some(a.cancelled),
                a.cookie_in,
                a.params,
                None,
            )
        }
        procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS => {
            let a: Confirm3ParamsArgs = xdr::from_bytes(body)?;
            (
                a.flags.into(),
                Some(a.cancelled),
                a.cookie_in,
                a.params,
                None,
            )
        }
        procs::DOMAIN_MIGRATE_BEGIN3 => {
            let a: Begin3Args = xdr::from_bytes(body)?;
            (a.flags, None, Vec::new(), none(), None)
        }
        procs::DOMAIN_MIGRATE_PREPARE3 => {
            let a: Prepare3Args = xdr::from_bytes(body)?;
            (a.flags, None, a.cookie_in, none(), None)
        }
        PREPARE_TUNNEL3 => {
            let (cookie, flags) = decode_prepare_tunnel3(body)?;
            (flags, None, cookie, none(), None)
        }
        procs::DOMAIN_MIGRATE_PERFORM3 => {
            let a: Perform3Args = xdr::from_bytes(body)?;
            (a.flags, None, a.cookie_in, none(), a.dconnuri)
        }
        procs::DOMAIN_MIGRATE_FINISH3 => {
            let a: Finish3Args = xdr::from_bytes(body)?;
            (a.flags, Some(a.cancelled), a.cookie_in, none(), a.dconnuri)
        }
        procs::DOMAIN_MIGRATE_CONFIRM3 => {
            let a: Confirm3Args = xdr::from_bytes(body)?;
            (a.flags, Some(a.cancelled), a.cookie_in, none(), None)
        }
        procs::DOMAIN_MIGRATE_PREPARE2 => {
            let a: Prepare2Args = xdr::from_bytes(body)?;
            (a.flags, None, Vec::new(), none(), None)
        }
        procs::DOMAIN_MIGRATE_PERFORM => {
            let a: PerformArgs = xdr::from_bytes(body)?;
            (a.flags, None, a.cookie, none(), None)
        }
        procs::DOMAIN_MIGRATE_FINISH2 => {
            let a: Finish2Args = xdr::from_bytes(body)?;
            (a.flags, Some(a.retcode), a.cookie, none(), None)
        }
        _ => return Ok(None),
    };
    let (flags, cancelled, cookie, params, dconnuri) = parts;
    Ok(Some(DecodedCall {
        call: WireCall {
            host,
            procedure,
            flags,
            cancelled,
            cookie_present: !cookie.is_empty(),
            param_names: params.0.iter().map(|p| p.field.clone()).collect(),
        },
        cookie,
        params,
        dconnuri,
    }))
}

/// The `cookie_out` of a successful reply body of a migration procedure (`None` for the
/// procedures whose reply carries none: Confirm, v2 Perform and Finish2).
pub fn reply_cookie(procedure: u32, body: &[u8]) -> Result<Option<Vec<u8>>, XdrError> {
    Ok(Some(match procedure {
        procs::DOMAIN_MIGRATE_BEGIN3_PARAMS | procs::DOMAIN_MIGRATE_BEGIN3 => {
            xdr::from_bytes::<Begin3Ret>(body)?.cookie_out
        }
        procs::DOMAIN_MIGRATE_PREPARE3_PARAMS | procs::DOMAIN_MIGRATE_PREPARE3 => {
            xdr::from_bytes::<Prepare3Ret>(body)?.cookie_out
        }
        // prepare_tunnel3_ret and perform3_ret are both `{opaque cookie_out}`.
        procs::DOMAIN_MIGRATE_PERFORM3_PARAMS
        | procs::DOMAIN_MIGRATE_PERFORM3
        | PREPARE_TUNNEL3
        | PREPARE_TUNNEL3_PARAMS => xdr::from_bytes::<Perform3Ret>(body)?.cookie_out,
        procs::DOMAIN_MIGRATE_FINISH3_PARAMS | procs::DOMAIN_MIGRATE_FINISH3 => {
            xdr::from_bytes::<Finish3Ret>(body)?.cookie_out
        }
        procs::DOMAIN_MIGRATE_PREPARE2 => xdr::from_bytes::<Prepare2Ret>(body)?.cookie,
        _ => return Ok(None),
    }))
}

/// Turn the frames of the proxies in front of each daemon into the migration calls, ordered
/// by capture time across all of them (a frame's `at`; ties keep the order given).
///
/// Only `REMOTE_PROGRAM` frames count; keepalive, events and streams are skipped.
pub fn collect(proxies: &[(Host, &[Captured])]) -> Result<WireCapture, CompareError> {
    let mut frames: Vec<(Host, &Captured)> = proxies
        .iter()
        .flat_map(|(host, frames)| frames.iter().map(move |f| (*host, f)))
        .filter(|(_, f)| {
            f.program() == Some(REMOTE_PROGRAM) && f.procedure().is_some_and(is_migration_procedure)
        })
        .collect();
    frames.sort_by_key(|(_, f)| f.at);
    let mut out = WireCapture::default();
    for (host, f) in frames {
        let Some(procedure) = f.procedure() else {
            continue;
        };
        let err = |source| CompareError::Decode {
            host,
            dir: f.dir,
            procedure,
            source,
        };
        match (f.dir, f.kind()) {
            (Dir::Call, Some(0)) => {
                let Some(c) = decode_call(host, procedure, f.body()).map_err(err)? else {
                    continue;
                };
                if !c.cookie.is_empty() {
                    out.cookies.push(WireCookie {
                        host,
                        procedure,
                        dir: CookieDir::Sent,
                        bytes: c.cookie.clone(),
                    });
                }
                out.calls.push(c);
            }
            (Dir::Reply, Some(1)) if f.status() == Some(0) => {
                if let Some(cookie) = reply_cookie(procedure, f.body()).map_err(err)? {
                    if !cookie.is_empty() {
                        out.cookies.push(WireCookie {
                            host,
                            procedure,
                            dir: CookieDir::Returned,
                            bytes: cookie,
                        });
                    }
                }
                out.replies.push((host, procedure, f.body().to_vec()));
            }
            (Dir::Reply, Some(1)) => {
                let error: WireError = xdr::from_bytes(f.body()).map_err(err)?;
                out.failures.push(WireFailure {
                    host,
                    procedure,
                    error,
                });
            }
            _ => {}
        }
    }
    Ok(out)
}

/// A core orchestrator [`Call`] as it would go over the wire: encoded by the executor
/// (as `livemig migrate` sends it, for `domain`), then decoded like a captured frame.
/// `None` for the procedures that are not compared (`DomainGetState`, `DomainAbortJob`, ...).
pub fn wire_call_of(call: &Call, domain: &DomainRef) -> Result<Option<DecodedCall>, CompareError> {
    let (procedure, body) = encode_call(call, domain)?;
    if !is_migration_procedure(procedure) {
        return Ok(None);
    }
    decode_call(call.host, procedure, &body).map_err(|source| CompareError::Decode {
        host: call.host,
        dir: Dir::Call,
        procedure,
        source,
    })
}

/// Decode one value of a layout from `calls.rs` (for tests feeding captured replies back).
pub fn decode<T: Xdr>(body: &[u8]) -> Result<T, XdrError> {
    xdr::from_bytes(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::libvirt::rpc::{encode_frame, Header, Status};
    use livemig_core::bytes::Bytes;
    use livemig_core::migration::flags::{ParamValue, TypedParam};
    use livemig_core::migration::orchestrator::Procedure;
    use std::time::{Duration, Instant};

    fn dom() -> DomainRef {
        DomainRef {
            name: "tiny".into(),
            uuid: "7e1e7e1e-0000-4000-8000-000000000001".into(),
            id: 1,
        }
    }

    fn frame(at: Instant, dir: Dir, procedure: u32, status: Status, body: &[u8]) -> Captured {
        let header = if dir == Dir::Call {
            Header::call(procedure, 1)
        } else {
            Header::reply(procedure, 1, status)
        };
        Captured {
            conn: 0,
            at,
            dir,
            bytes: encode_frame(&header, body).unwrap(),
        }
    }

    fn p(name: &str, v: &str) -> TypedParam {
        TypedParam {
            field: name.into(),
            value: ParamValue::String(v.into()),
        }
    }

    #[test]
    fn orders_across_proxies_and_keeps_only_migration_calls() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let begin = xdr::to_bytes(&Begin3ParamsArgs {
            dom: dom(),
            params: Params::default(),
            flags: 0x101,
        })
        .unwrap();
        let begin_ret = xdr::to_bytes(&Begin3Ret {
            cookie_out: b"<c/>\0".to_vec(),
            xml: "<domain/>".into(),
        })
        .unwrap();
        let prepare = xdr::to_bytes(&Prepare3ParamsArgs {
            params: Params(vec![p("destination_xml", "<domain/>")]),
            cookie_in: b"<c/>\0".to_vec(),
            flags: 1,
        })
        .unwrap();
        let confirm = xdr::to_bytes(&Confirm3ParamsArgs {
            dom: dom(),
            params: Params(vec![p("destination_xml", "<domain/>")]),
            cookie_in: Vec::new(),
            flags: 0x101,
            cancelled: 1,
        })
        .unwrap();
        let err = xdr::to_bytes(&WireError::new(1, 10, "spice")).unwrap();
        let src = vec![
            frame(
                ms(0),
                Dir::Call,
                procs::DOMAIN_MIGRATE_BEGIN3_PARAMS,
                Status::Ok,
                &begin,
            ),
            frame(
                ms(1),
                Dir::Reply,
                procs::DOMAIN_MIGRATE_BEGIN3_PARAMS,
                Status::Ok,
                &begin_ret,
            ),
            frame(
                ms(2),
                Dir::Call,
                procs::DOMAIN_GET_STATE,
                Status::Ok,
                &[0; 8],
            ),
            frame(
                ms(5),
                Dir::Call,
                procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS,
                Status::Ok,
                &confirm,
            ),
        ];
        let dst = vec![
            frame(
                ms(3),
                Dir::Call,
                procs::DOMAIN_MIGRATE_PREPARE3_PARAMS,
                Status::Ok,
                &prepare,
            ),
            frame(
                ms(4),
                Dir::Reply,
                procs::DOMAIN_MIGRATE_PREPARE3_PARAMS,
                Status::Error,
                &err,
            ),
        ];
        let c = collect(&[(Host::Source, &src), (Host::Destination, &dst)]).unwrap();
        let shown: Vec<String> = c.wire_calls().iter().map(|c| c.to_string()).collect();
        assert_eq!(
            shown,
            [
                "src:302(f=0x101)[]",
                "dst:303(f=0x1,cookie)[destination_xml]",
                "src:307(f=0x101,c=1)[destination_xml]"
            ]
        );
        assert_eq!(c.cookies.len(), 2);
        assert_eq!(c.cookies[0].dir, CookieDir::Returned);
        assert_eq!(c.cookies[1].dir, CookieDir::Sent);
        assert_eq!(c.failure(303).unwrap().message.as_deref(), Some("spice"));
        assert!(c.reply(302).is_some());
    }

    #[test]
    fn core_calls_decode_like_captured_ones() {
        let call = Call {
            host: Host::Destination,
            procedure: Procedure::MigrateFinish3Params,
            flags: 1,
            cookie: Some(Bytes(b"<c/>\0".to_vec())),
            params: Params(vec![p("destination_name", "tiny")]),
            cancelled: Some(true),
        };
        let d = wire_call_of(&call, &dom()).unwrap().unwrap();
        assert_eq!(
            d.call.to_string(),
            "dst:306(f=0x1,c=1,cookie)[destination_name]"
        );
        let call = Call {
            host: Host::Source,
            procedure: Procedure::DomainGetState,
            flags: 0,
            cookie: None,
            params: Params::default(),
            cancelled: None,
        };
        assert!(wire_call_of(&call, &dom()).unwrap().is_none());
        let v2 = Call {
            host: Host::Destination,
            procedure: Procedure::MigrateFinish2,
            flags: 1,
            cookie: Some(Bytes::new()),
            params: Params(vec![p("migrate_uri", "tcp:h:1")]),
            cancelled: Some(false),
        };
        let d = wire_call_of(&v2, &dom()).unwrap().unwrap();
        assert_eq!(d.call.to_string(), "dst:109(f=0x1,c=0)[]");
    }
}
