//! The libvirt RPC client: byte-exact frames from real libvirt 9.0 (libvirt-real-peer.md §4),
//! XDR round trips, hostile input, keepalive, and whole migrations driven by the core
//! orchestrator through `MigrationExecutor` against fake daemons speaking the protocol.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use livemig_core::bytes::Bytes;
use livemig_core::migration::error::RemoteError;
use livemig_core::migration::flags::{
    param, Feature, FeatureSet, MigrateFlags, ParamValue, Params, TypedParam,
};
use livemig_core::migration::orchestrator::{
    Call, DomainRef, DomainState, Host, Mode, Orchestrator, OrchestratorConfig, OrchestratorInput,
    Procedure, Protocol, ProtocolRequest, Verdict,
};
use livemig_host::libvirt::calls::*;
use livemig_host::libvirt::executor::{decode_reply, MigrationExecutor};
use livemig_host::libvirt::rpc::{
    decode_frame, encode_frame, reply_result, Header, KeepaliveConfig, MessageType, ProtocolError,
    Rpc, RpcError, Status, KEEPALIVE_PROC_PING, KEEPALIVE_PROC_PONG, REMOTE_PROGRAM,
};
use livemig_host::libvirt::xdr::{self, format_uuid, WireError, XdrError};
use proptest::prelude::*;

const T: Duration = Duration::from_secs(10);

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

fn accept(l: &TcpListener) -> TcpStream {
    let (s, _) = l.accept().unwrap();
    s.set_read_timeout(Some(T)).unwrap();
    s
}

fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut w = [0u8; 4];
    s.read_exact(&mut w)?;
    let len = u32::from_be_bytes(w) as usize;
    assert!(
        (28..1 << 26).contains(&len),
        "fake daemon: bad length {len}"
    );
    let mut f = w.to_vec();
    f.resize(len, 0);
    s.read_exact(&mut f[4..])?;
    Ok(f)
}

// ---- byte-exact frames (libvirt-real-peer.md §4 "Raw frames") ---------------------------

/// A daemon that expects exactly `tx` and answers exactly `rx`, in turn.
fn scripted(script: Vec<(Vec<u8>, Vec<u8>)>) -> (SocketAddr, JoinHandle<Result<(), String>>) {
    let (l, a) = listener();
    let h = std::thread::spawn(move || {
        let mut s = accept(&l);
        for (i, (tx, rx)) in script.into_iter().enumerate() {
            let mut got = vec![0u8; tx.len()];
            s.read_exact(&mut got)
                .map_err(|e| format!("frame {i}: {e}"))?;
            if got != tx {
                return Err(format!("frame {i}: got {got:02x?}\nwant {tx:02x?}"));
            }
            s.write_all(&rx).map_err(|e| e.to_string())?;
        }
        Ok(())
    });
    (a, h)
}

#[test]
fn wire_probe_frames_are_byte_exact() {
    let script = vec![
        (
            // TX CONNECT_OPEN (56)
            hex(
                "00000038 20008086 00000001 00000001 00000000 00000001 00000000
                 00000001 0000000e 71656d75 3a2f2f2f 73797374 656d0000 00000000",
            ),
            // RX (28): REPLY, OK, empty body
            hex("0000001c 20008086 00000001 00000001 00000001 00000001 00000000"),
        ),
        (
            // TX AUTH_LIST (28)
            hex("0000001c 20008086 00000001 00000042 00000000 00000002 00000000"),
            // RX (36): one type, 0 = REMOTE_AUTH_NONE
            hex(
                "00000024 20008086 00000001 00000042 00000001 00000002 00000000
                 00000001 00000000",
            ),
        ),
        (
            // TX SUPPORTS_FEATURE(6)
            hex("00000020 20008086 00000001 0000003c 00000000 00000003 00000000 00000006"),
            // RX: supported
            hex("00000020 20008086 00000001 0000003c 00000001 00000003 00000000 00000001"),
        ),
    ];
    let (a, h) = scripted(script);
    let mut rpc = Rpc::connect(a, T).unwrap();
    rpc.set_call_timeout(Some(T));
    rpc.connect_open(Some("qemu:///system"), 0).unwrap();
    assert_eq!(rpc.auth_list().unwrap(), vec![0]);
    assert!(rpc.supports_feature(Feature::MigrationV3).unwrap());
    h.join().unwrap().unwrap();
}

#[test]
fn lookup_before_open_error_reply() {
    let msg = "internal error: hypervisor connection not open";
    assert_eq!(msg.len(), 46);
    // remote_error {code 1, domain 7 (VIR_FROM_REMOTE), message, level 2, dom NULL,
    // str1..3 NULL, int1 0, int2 0, net NULL}, written out by hand.
    let mut body = hex("00000001 00000007 00000001 0000002e");
    body.extend_from_slice(msg.as_bytes());
    body.extend_from_slice(&[0, 0]);
    body.extend(hex(
        "00000002 00000000 00000000 00000000 00000000 00000000 00000000 00000000",
    ));
    let mut rx = ((28 + body.len()) as u32).to_be_bytes().to_vec();
    rx.extend(hex("20008086 00000001 00000017 00000001 00000001 00000001"));
    rx.extend(body);
    let tx =
        hex("00000024 20008086 00000001 00000017 00000000 00000001 00000000 00000004 74696e79");
    let (a, h) = scripted(vec![(tx, rx)]);
    let mut rpc = Rpc::connect(a, T).unwrap();
    rpc.set_call_timeout(Some(T));
    match rpc.lookup_by_name("tiny") {
        Err(RpcError::Remote(e)) => assert_eq!(e, RemoteError::new(1, 7, msg)),
        other => panic!("{other:?}"),
    }
    h.join().unwrap().unwrap();
}

#[test]
fn keepalive_pong_is_byte_exact_and_events_are_skipped() {
    let (l, a) = listener();
    let h = std::thread::spawn(move || {
        let mut s = accept(&l);
        let call = read_frame(&mut s).unwrap();
        let (ch, _) = decode_frame(&call).unwrap();
        // An event (REMOTE program, MESSAGE, serial 0) and a PING before the reply.
        s.write_all(&hex(
            "00000020 20008086 00000001 0000013e 00000002 00000000 00000000 0000002a",
        ))
        .unwrap();
        s.write_all(&hex(
            "0000001c 6b656570 00000001 00000001 00000002 00000000 00000000",
        ))
        .unwrap();
        let pong = read_frame(&mut s).unwrap();
        assert_eq!(
            pong,
            hex("0000001c 6b656570 00000001 00000002 00000002 00000000 00000000")
        );
        let r = xdr::to_bytes(&SupportsFeatureRet { supported: 0 }).unwrap();
        s.write_all(&encode_frame(&Header::reply(60, ch.serial, Status::Ok), &r).unwrap())
            .unwrap();
    });
    let mut rpc = Rpc::connect(a, T).unwrap();
    rpc.set_call_timeout(Some(T));
    assert!(!rpc.supports_feature(Feature::MigrationParams).unwrap());
    h.join().unwrap();
    let st = rpc.stats();
    assert_eq!((st.pings_answered, st.skipped), (1, 1));
}

// ---- keepalive, timeouts, lost connections ----------------------------------------------

/// Answers SUPPORTS_FEATURE(PROGRAM_KEEPALIVE) with 1, then on the next call counts the
/// client's PINGs (answering them when `pong`) and replies after `delay` (never if `None`).
fn keepalive_daemon(
    pong: bool,
    delay: Option<Duration>,
) -> (SocketAddr, JoinHandle<(u32, TcpStream)>) {
    let (l, a) = listener();
    let h = std::thread::spawn(move || {
        let mut s = accept(&l);
        let f = read_frame(&mut s).unwrap();
        let (h, b) = decode_frame(&f).unwrap();
        assert_eq!((h.procedure, b), (60, &[0, 0, 0, 10][..]));
        let r = xdr::to_bytes(&SupportsFeatureRet { supported: 1 }).unwrap();
        s.write_all(&encode_frame(&Header::reply(60, h.serial, Status::Ok), &r).unwrap())
            .unwrap();
        let f = read_frame(&mut s).unwrap();
        let (call, _) = decode_frame(&f).unwrap();
        let t0 = Instant::now();
        let mut pings = 0;
        s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
        loop {
            if let Some(d) = delay {
                if t0.elapsed() >= d {
                    let r = xdr::to_bytes(&GetStateRet {
                        state: 1,
                        reason: 1,
                    })
                    .unwrap();
                    let reply = Header::reply(call.procedure, call.serial, Status::Ok);
                    s.write_all(&encode_frame(&reply, &r).unwrap()).unwrap();
                    // The stream stays open until the test is done with it (no RST).
                    return (pings, s);
                }
            }
            match read_frame(&mut s) {
                Ok(f) => {
                    let (h, _) = decode_frame(&f).unwrap();
                    assert_eq!(h, Header::keepalive(KEEPALIVE_PROC_PING));
                    pings += 1;
                    if pong {
                        let p = encode_frame(&Header::keepalive(KEEPALIVE_PROC_PONG), &[]);
                        s.write_all(&p.unwrap()).unwrap();
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(_) => return (pings, s),
            }
        }
    });
    (a, h)
}

fn dom() -> DomainRef {
    DomainRef {
        name: "tiny".into(),
        uuid: "7e1e7e1e-0000-4000-8000-000000000001".into(),
        id: 1,
    }
}

const KA: KeepaliveConfig = KeepaliveConfig {
    interval: Duration::from_millis(100),
    count: 2,
};

#[test]
fn client_keepalive_declares_a_silent_peer_dead() {
    let (a, h) = keepalive_daemon(false, None);
    let mut rpc = Rpc::connect(a, T).unwrap();
    rpc.set_call_timeout(Some(T));
    assert!(rpc.enable_keepalive(KA).unwrap());
    let t0 = Instant::now();
    match rpc.get_state(&dom()) {
        Err(RpcError::Lost(r)) => assert!(r.contains("keepalive"), "{r}"),
        other => panic!("{other:?}"),
    }
    // Two PINGs at 100 ms, dead at the third interval: well before the 10 s call timeout.
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(rpc.stats().pings_sent, 2);
    assert!(matches!(rpc.get_state(&dom()), Err(RpcError::Lost(_))));
    drop(rpc);
    assert_eq!(h.join().unwrap().0, 2);
}

#[test]
fn client_keepalive_keeps_a_slow_call_alive() {
    let (a, h) = keepalive_daemon(true, Some(Duration::from_millis(700)));
    let mut rpc = Rpc::connect(a, T).unwrap();
    rpc.set_call_timeout(Some(T));
    assert!(rpc.enable_keepalive(KA).unwrap());
    assert_eq!(rpc.get_state(&dom()).unwrap(), DomainState::Running);
    let (pings, _stream) = h.join().unwrap();
    assert!(
        pings >= 4,
        "only {pings} PINGs in 700 ms at 100 ms intervals"
    );
    assert_eq!(rpc.stats().pongs_received, u64::from(pings));
}

#[test]
fn call_timeout_then_late_reply_is_skipped() {
    let (l, a) = listener();
    let h = std::thread::spawn(move || {
        let mut s = accept(&l);
        let first = read_frame(&mut s).unwrap();
        let (h1, _) = decode_frame(&first).unwrap();
        let second = read_frame(&mut s).unwrap();
        let (h2, _) = decode_frame(&second).unwrap();
        // The late reply to the first call, then the reply to the second.
        let r1 = xdr::to_bytes(&GetStateRet {
            state: 3,
            reason: 0,
        })
        .unwrap();
        let r2 = xdr::to_bytes(&GetStateRet {
            state: 5,
            reason: 0,
        })
        .unwrap();
        s.write_all(&encode_frame(&Header::reply(212, h1.serial, Status::Ok), &r1).unwrap())
            .unwrap();
        s.write_all(&encode_frame(&Header::reply(212, h2.serial, Status::Ok), &r2).unwrap())
            .unwrap();
    });
    let mut rpc = Rpc::connect(a, T).unwrap();
    rpc.set_call_timeout(Some(Duration::from_millis(150)));
    assert!(matches!(
        rpc.get_state(&dom()),
        Err(RpcError::Timeout { procedure: 212, .. })
    ));
    rpc.set_call_timeout(Some(T));
    assert_eq!(rpc.get_state(&dom()).unwrap(), DomainState::Shutoff);
    assert_eq!(rpc.stats().skipped, 1);
    h.join().unwrap();
}

#[test]
fn eof_is_lost_and_stays_lost() {
    let (l, a) = listener();
    let h = std::thread::spawn(move || {
        let mut s = accept(&l);
        let _ = read_frame(&mut s).unwrap();
    });
    let mut rpc = Rpc::connect(a, T).unwrap();
    rpc.set_call_timeout(Some(T));
    assert!(matches!(rpc.connect_close(), Err(RpcError::Lost(_))));
    h.join().unwrap();
    assert!(matches!(rpc.connect_close(), Err(RpcError::Lost(_))));
}

// ---- hostile input ---------------------------------------------------------------------

/// A daemon that answers the first call with `raw` bytes, then closes.
fn hostile(raw: Vec<u8>) -> SocketAddr {
    let (l, a) = listener();
    std::thread::spawn(move || {
        let mut s = accept(&l);
        if read_frame(&mut s).is_ok() {
            let _ = s.write_all(&raw);
        }
    });
    a
}

fn reply_to_serial_1(procedure: u32, status: Status, body: &[u8]) -> Vec<u8> {
    encode_frame(&Header::reply(procedure, 1, status), body).unwrap()
}

fn call_hostile(raw: Vec<u8>) -> (RpcError, Rpc) {
    let mut rpc = Rpc::connect(hostile(raw), T).unwrap();
    rpc.set_call_timeout(Some(Duration::from_secs(3)));
    let e = rpc.get_xml_desc(&dom(), 0).unwrap_err();
    (e, rpc)
}

#[test]
fn huge_frame_length_is_a_typed_error_and_kills_the_connection() {
    let (e, mut rpc) = call_hostile(hex("fffffff0 20008086"));
    assert!(
        matches!(
            e,
            RpcError::Protocol(ProtocolError::FrameTooLong(0xffff_fff0))
        ),
        "{e:?}"
    );
    assert!(matches!(
        rpc.get_xml_desc(&dom(), 0),
        Err(RpcError::Lost(_))
    ));
    let (e, _) = call_hostile(hex("00000004"));
    assert!(
        matches!(e, RpcError::Protocol(ProtocolError::FrameTooShort(4))),
        "{e:?}"
    );
}

#[test]
fn truncated_frame_then_eof_is_lost() {
    let mut f = reply_to_serial_1(
        14,
        Status::Ok,
        &xdr::to_bytes(&"<domain/>".to_owned()).unwrap(),
    );
    f.truncate(f.len() - 3);
    let (e, _) = call_hostile(f);
    assert!(matches!(e, RpcError::Lost(_)), "{e:?}");
}

#[test]
fn hostile_bodies_are_typed_errors() {
    // A string claiming 4 GiB.
    let (e, _) = call_hostile(reply_to_serial_1(14, Status::Ok, &hex("ffffffff 61626364")));
    assert!(
        matches!(
            e,
            RpcError::Xdr(XdrError::TooLong {
                len: 0xffff_ffff,
                ..
            })
        ),
        "{e:?}"
    );
    // A string claiming 1 MiB with 4 bytes behind it.
    let (e, _) = call_hostile(reply_to_serial_1(14, Status::Ok, &hex("00100000 61626364")));
    assert!(
        matches!(e, RpcError::Xdr(XdrError::Truncated { .. })),
        "{e:?}"
    );
    // Non-zero padding.
    let (e, _) = call_hostile(reply_to_serial_1(14, Status::Ok, &hex("00000001 61000100")));
    assert!(
        matches!(e, RpcError::Xdr(XdrError::BadPadding { offset: 5 })),
        "{e:?}"
    );
    // Trailing bytes.
    let (e, _) = call_hostile(reply_to_serial_1(
        14,
        Status::Ok,
        &hex("00000001 61000000 00"),
    ));
    assert!(
        matches!(e, RpcError::Xdr(XdrError::TrailingBytes { remaining: 1 })),
        "{e:?}"
    );
    // A truncated remote_error.
    let (e, _) = call_hostile(reply_to_serial_1(
        14,
        Status::Error,
        &hex("00000001 00000007 00000001"),
    ));
    assert!(
        matches!(e, RpcError::Xdr(XdrError::Truncated { .. })),
        "{e:?}"
    );
    // A bad optional discriminant inside remote_error.
    let (e, _) = call_hostile(reply_to_serial_1(
        14,
        Status::Error,
        &hex("00000001 00000007 00000005"),
    ));
    assert!(
        matches!(e, RpcError::Xdr(XdrError::BadDiscriminant { value: 5, .. })),
        "{e:?}"
    );
    // Our serial, but another procedure.
    let (e, _) = call_hostile(reply_to_serial_1(15, Status::Ok, &[]));
    assert!(
        matches!(
            e,
            RpcError::Protocol(ProtocolError::UnexpectedReply { procedure: 14, .. })
        ),
        "{e:?}"
    );
    // Unknown message type.
    let mut f = reply_to_serial_1(14, Status::Ok, &[]);
    f[19] = 7;
    let (e, _) = call_hostile(f);
    assert!(
        matches!(e, RpcError::Protocol(ProtocolError::UnknownType(7))),
        "{e:?}"
    );
}

#[test]
fn every_prefix_of_a_frame_is_an_error() {
    let body = xdr::to_bytes(&Finish3Ret {
        dom: dom(),
        cookie_out: b"<qemu-migration/>\0".to_vec(),
    })
    .unwrap();
    let f = reply_to_serial_1(306, Status::Ok, &body);
    for n in 0..f.len() {
        assert!(decode_frame(&f[..n]).is_err(), "prefix {n}");
    }
    let (h, b) = decode_frame(&f).unwrap();
    for n in 0..b.len() {
        assert!(
            decode_reply(Procedure::MigrateFinish3Params, &b[..n]).is_err(),
            "body prefix {n}"
        );
    }
    assert!(reply_result(&h, b).is_ok());
}

// ---- proptest: round trips and no panics -------------------------------------------------

fn domain_s() -> impl Strategy<Value = DomainRef> {
    (".{0,24}", any::<[u8; 16]>(), any::<i32>()).prop_map(|(name, u, id)| DomainRef {
        name,
        uuid: format_uuid(&u),
        id,
    })
}

fn value_s() -> impl Strategy<Value = ParamValue> {
    prop_oneof![
        any::<i32>().prop_map(ParamValue::Int),
        any::<u32>().prop_map(ParamValue::Uint),
        any::<i64>().prop_map(ParamValue::Llong),
        any::<u64>().prop_map(ParamValue::Ullong),
        any::<u64>().prop_map(ParamValue::DoubleBits),
        any::<bool>().prop_map(ParamValue::Boolean),
        ".{0,40}".prop_map(ParamValue::String),
    ]
}

fn params_s() -> impl Strategy<Value = Params> {
    prop::collection::vec(
        ("[a-z_]{1,24}", value_s()).prop_map(|(field, value)| TypedParam { field, value }),
        0..=64,
    )
    .prop_map(Params)
}

fn cookie_s() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..600)
}

fn ostr() -> impl Strategy<Value = Option<String>> {
    prop::option::of(".{0,40}")
}

fn round_trip<T: xdr::Xdr + PartialEq + std::fmt::Debug>(v: &T) -> Result<(), TestCaseError> {
    let b = xdr::to_bytes(v).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(b.len() % 4, 0);
    prop_assert_eq!(
        &xdr::from_bytes::<T>(&b).map_err(|e| TestCaseError::fail(e.to_string()))?,
        v
    );
    // Every strict prefix fails (all fields are required).
    for n in [0, b.len() / 2, b.len().saturating_sub(1)] {
        if n < b.len() {
            prop_assert!(xdr::from_bytes::<T>(&b[..n]).is_err() || b.is_empty());
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn params_and_domains_round_trip(p in params_s(), d in domain_s()) {
        round_trip(&p)?;
        round_trip(&d)?;
    }

    #[test]
    fn remote_error_round_trips(
        code in any::<i32>(), domain in any::<i32>(), message in ostr(), level in any::<i32>(),
        dom in prop::option::of(domain_s()), s1 in ostr(), s2 in ostr(), s3 in ostr(),
        int1 in any::<i32>(), int2 in any::<i32>(),
        net in prop::option::of((".{0,10}", any::<[u8; 16]>())),
    ) {
        round_trip(&WireError {
            code, domain, message, level, dom, str1: s1, str2: s2, str3: s3, int1, int2,
            net: net.map(|(name, uuid)| xdr::NetworkRef { name, uuid }),
        })?;
    }

    #[test]
    fn params_procedures_round_trip(
        d in domain_s(), p in params_s(), c in cookie_s(), f in any::<u32>(),
        cancelled in 0i32..2, dconnuri in ostr(), xml in ".{0,80}", uri in ostr(),
    ) {
        round_trip(&Begin3ParamsArgs { dom: d.clone(), params: p.clone(), flags: f })?;
        round_trip(&Prepare3ParamsArgs { params: p.clone(), cookie_in: c.clone(), flags: f })?;
        round_trip(&Perform3ParamsArgs {
            dom: d.clone(), dconnuri, params: p.clone(), cookie_in: c.clone(), flags: f,
        })?;
        round_trip(&Finish3ParamsArgs { params: p.clone(), cookie_in: c.clone(), flags: f, cancelled })?;
        round_trip(&Confirm3ParamsArgs { dom: d.clone(), params: p, cookie_in: c.clone(), flags: f, cancelled })?;
        round_trip(&Begin3Ret { cookie_out: c.clone(), xml })?;
        round_trip(&Prepare3Ret { cookie_out: c.clone(), uri_out: uri })?;
        round_trip(&Finish3Ret { dom: d, cookie_out: c })?;
    }

    #[test]
    fn fixed_and_v2_procedures_round_trip(
        d in domain_s(), c in cookie_s(), f in any::<u64>(), r in any::<u64>(),
        a in ostr(), b in ostr(), e in ostr(), s in ".{0,60}", t in ".{0,60}", n in any::<i32>(),
    ) {
        round_trip(&Begin3Args { dom: d.clone(), xmlin: a.clone(), flags: f, dname: b.clone(), resource: r })?;
        round_trip(&Prepare3Args {
            cookie_in: c.clone(), uri_in: a.clone(), flags: f, dname: b.clone(), resource: r,
            dom_xml: s.clone(),
        })?;
        round_trip(&Perform3Args {
            dom: d.clone(), xmlin: a.clone(), cookie_in: c.clone(), dconnuri: b.clone(),
            uri: e.clone(), flags: f, dname: a.clone(), resource: r,
        })?;
        round_trip(&Finish3Args {
            dname: s.clone(), cookie_in: c.clone(), dconnuri: a.clone(), uri: b.clone(), flags: f,
            cancelled: n,
        })?;
        round_trip(&Confirm3Args { dom: d.clone(), cookie_in: c.clone(), flags: f, cancelled: n })?;
        round_trip(&Prepare2Args { uri_in: a.clone(), flags: f, dname: b.clone(), resource: r, dom_xml: s.clone() })?;
        round_trip(&Prepare2Ret { cookie: c.clone(), uri_out: e })?;
        round_trip(&PerformArgs {
            dom: d.clone(), cookie: c.clone(), uri: t.clone(), flags: f, dname: a, resource: r,
        })?;
        round_trip(&Finish2Args { dname: s, cookie: c, uri: t, flags: f, retcode: n })?;
        round_trip(&Finish2Ret { ddom: d })?;
    }

    #[test]
    fn frames_round_trip(
        prog in any::<u32>(), vers in any::<u32>(), procedure in any::<u32>(), kind in 0u32..7,
        serial in any::<u32>(), status in 0u32..3, body in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let h = Header {
            prog, vers, procedure, serial,
            kind: MessageType::from_number(kind).unwrap(),
            status: Status::from_number(status).unwrap(),
        };
        let f = encode_frame(&h, &body).unwrap();
        let (h2, b2) = decode_frame(&f).unwrap();
        prop_assert_eq!(h2, h);
        prop_assert_eq!(b2, &body[..]);
    }

    /// Arbitrary bytes never panic the frame and reply decoders.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = decode_frame(&bytes);
        // The same bytes behind a valid length word, so the header and body paths run.
        let mut f = ((bytes.len() + 4) as u32).to_be_bytes().to_vec();
        f.extend_from_slice(&bytes);
        if let Ok((h, b)) = decode_frame(&f) {
            let _ = reply_result(&h, b);
        }
        for p in ALL_PROCEDURES {
            let _ = decode_reply(p, &bytes);
        }
        let _ = xdr::from_bytes::<WireError>(&bytes);
        let _ = xdr::from_bytes::<ListAllDomainsRet>(&bytes);
        let _ = xdr::from_bytes::<AuthListRet>(&bytes);
        let _ = xdr::from_bytes::<Params>(&bytes);
    }

    /// Structured garbage: valid headers with random bodies decode to errors, not panics.
    #[test]
    fn error_bodies_never_panic(words in prop::collection::vec(any::<u32>(), 0..40)) {
        let body: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let _ = reply_result(&Header::reply(1, 1, Status::Error), &body);
        for p in ALL_PROCEDURES {
            let _ = decode_reply(p, &body);
        }
    }
}

const ALL_PROCEDURES: [Procedure; 16] = [
    Procedure::DomainGetXmlDesc,
    Procedure::MigratePerform,
    Procedure::MigratePrepare2,
    Procedure::MigrateFinish2,
    Procedure::DomainAbortJob,
    Procedure::DomainGetState,
    Procedure::MigrateBegin3,
    Procedure::MigratePrepare3,
    Procedure::MigratePerform3,
    Procedure::MigrateFinish3,
    Procedure::MigrateConfirm3,
    Procedure::MigrateBegin3Params,
    Procedure::MigratePrepare3Params,
    Procedure::MigratePerform3Params,
    Procedure::MigrateFinish3Params,
    Procedure::MigrateConfirm3Params,
];

// ---- fake libvirtd: whole migrations through MigrationExecutor + Orchestrator ----------

fn cookie(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../core/tests/vectors/cookies/{name}.cookie",
        env!("CARGO_MANIFEST_DIR")
    );
    let c = std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    assert_eq!(
        c.last(),
        Some(&0),
        "{name}: cookies are NUL-terminated on the wire"
    );
    c
}

const XML: &str = "<domain type='qemu'><name>tiny</name><uuid>7e1e7e1e-0000-4000-8000-000000000001</uuid><memory unit='MiB'>64</memory><os><type machine='pc-i440fx-10.0'>hvm</type></os><features><acpi/></features></domain>";
const URI_OUT: &str = "tcp:10.77.0.2:49152";

fn sparam(field: &str, v: &str) -> TypedParam {
    TypedParam {
        field: field.into(),
        value: ParamValue::String(v.into()),
    }
}

/// What a fake daemon's handler does with one call.
enum Answer {
    Ok(Vec<u8>),
    Err(WireError),
    /// Drop the connection without answering.
    Close,
}

fn ok<T: xdr::Xdr>(v: &T) -> Result<Answer, String> {
    Ok(Answer::Ok(xdr::to_bytes(v).map_err(|e| e.to_string())?))
}

fn args<T: xdr::Xdr>(b: &[u8]) -> Result<T, String> {
    xdr::from_bytes(b).map_err(|e| format!("arguments: {e}"))
}

macro_rules! check {
    ($c:expr, $($m:tt)*) => {
        if !$c {
            return Err(format!($($m)*));
        }
    };
}

/// The record of a fake daemon: procedures called, and handler failures.
#[derive(Default, Debug)]
struct Log {
    procs: Vec<u32>,
    failures: Vec<String>,
}

/// A fake libvirtd accepting one connection. It answers CONNECT_OPEN, AUTH_LIST,
/// SUPPORTS_FEATURE (the QEMU driver's set), LOOKUP_BY_NAME and CONNECT_CLOSE itself and
/// passes everything else to `handler`; a handler error is logged and answered with an
/// error reply, so the migration fails visibly.
fn fake_daemon<F>(mut handler: F) -> (SocketAddr, Arc<Mutex<Log>>, JoinHandle<()>)
where
    F: FnMut(&mut TcpStream, u32, &[u8]) -> Result<Answer, String> + Send + 'static,
{
    let (l, a) = listener();
    let log = Arc::new(Mutex::new(Log::default()));
    let log2 = log.clone();
    let h = std::thread::spawn(move || {
        let mut s = accept(&l);
        let qemu = FeatureSet::qemu();
        loop {
            let Ok(f) = read_frame(&mut s) else { return };
            let (h, b) = decode_frame(&f).unwrap();
            if h.prog != REMOTE_PROGRAM || h.kind != MessageType::Call {
                log2.lock()
                    .unwrap()
                    .failures
                    .push(format!("unexpected frame {h:?}"));
                continue;
            }
            log2.lock().unwrap().procs.push(h.procedure);
            let answer = match h.procedure {
                procs::CONNECT_OPEN => args::<ConnectOpenArgs>(b).and_then(|a| {
                    check!(a.name.as_deref() == Some("qemu:///system"), "open {a:?}");
                    ok(&())
                }),
                procs::AUTH_LIST => ok(&AuthListRet { types: vec![0] }),
                procs::CONNECT_SUPPORTS_FEATURE => args::<SupportsFeatureArgs>(b).and_then(|a| {
                    let yes = Feature::ALL
                        .iter()
                        .any(|f| f.number() as i32 == a.feature && qemu.has(*f));
                    ok(&SupportsFeatureRet {
                        supported: i32::from(yes),
                    })
                }),
                procs::DOMAIN_LOOKUP_BY_NAME => args::<LookupByNameArgs>(b).and_then(|a| {
                    if a.name == "tiny" {
                        ok(&DomainRet { dom: dom() })
                    } else {
                        Ok(Answer::Err(WireError::new(42, 10, "Domain not found")))
                    }
                }),
                procs::CONNECT_CLOSE => ok(&()),
                p => handler(&mut s, p, b),
            };
            let (status, body) = match answer {
                Ok(Answer::Ok(b)) => (Status::Ok, b),
                Ok(Answer::Err(e)) => (Status::Error, xdr::to_bytes(&e).unwrap()),
                Ok(Answer::Close) => return,
                Err(msg) => {
                    log2.lock()
                        .unwrap()
                        .failures
                        .push(format!("proc {}: {msg}", h.procedure));
                    let e = WireError::new(1, 0, format!("fake daemon: {msg}"));
                    (Status::Error, xdr::to_bytes(&e).unwrap())
                }
            };
            let reply = encode_frame(&Header::reply(h.procedure, h.serial, status), &body);
            if s.write_all(&reply.unwrap()).is_err() {
                return;
            }
        }
    });
    (a, log, h)
}

/// Send an event and a keepalive PING, and require the client's PONG before going on.
fn ping_and_event(s: &mut TcpStream) -> Result<(), String> {
    let ev = livemig_host::libvirt::calls::DomainArgs { dom: dom() };
    let mut ev_body = 7i32.to_be_bytes().to_vec(); // callbackID
    ev_body.extend(xdr::to_bytes(&ev).unwrap());
    ev_body.extend([0, 0, 0, 3, 0, 0, 0, 0]); // event, detail
    let ev_header = Header {
        prog: REMOTE_PROGRAM,
        vers: 1,
        procedure: 318, // DOMAIN_EVENT_CALLBACK_LIFECYCLE
        kind: MessageType::Message,
        serial: 0,
        status: Status::Ok,
    };
    s.write_all(&encode_frame(&ev_header, &ev_body).unwrap())
        .map_err(|e| e.to_string())?;
    s.write_all(&encode_frame(&Header::keepalive(KEEPALIVE_PROC_PING), &[]).unwrap())
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let pong = read_frame(s).map_err(|e| format!("no PONG: {e}"))?;
    s.set_read_timeout(Some(T)).unwrap();
    let (h, b) = decode_frame(&pong).map_err(|e| e.to_string())?;
    check!(
        h == Header::keepalive(KEEPALIVE_PROC_PONG) && b.is_empty(),
        "expected a PONG, got {h:?}"
    );
    Ok(())
}

fn connect_probe(addr: SocketAddr) -> (Rpc, FeatureSet) {
    let mut rpc = Rpc::connect(addr, T).unwrap();
    rpc.set_call_timeout(Some(T));
    assert_eq!(rpc.auth_list().unwrap(), vec![0]);
    rpc.connect_open(Some("qemu:///system"), 0).unwrap();
    let features = Feature::ALL
        .into_iter()
        .filter(|f| rpc.supports_feature(*f).unwrap())
        .collect();
    (rpc, features)
}

fn config(
    src: FeatureSet,
    dst: FeatureSet,
    domain: DomainRef,
    protocol: ProtocolRequest,
) -> OrchestratorConfig {
    OrchestratorConfig {
        mode: Mode::Managed,
        protocol,
        source_features: src,
        destination_features: dst,
        domain,
        flags: MigrateFlags::LIVE,
        params: Params::default(),
        step_timeout_ms: None,
    }
}

fn assert_clean(name: &str, log: &Arc<Mutex<Log>>) {
    let l = log.lock().unwrap();
    assert!(l.failures.is_empty(), "{name} daemon: {:#?}", l.failures);
}

/// Managed v3 with params, as virsh does it against libvirt 9.0 (real-peer §4), with the
/// real cookies; the source daemon sends an event and a keepalive PING during Begin.
#[test]
fn managed_v3_params_migration_over_fake_daemons() {
    let (c_begin, c_prep, c_perf, c_fin) = (
        cookie("begin-prepare"),
        cookie("prepare-perform"),
        cookie("perform-finish"),
        cookie("finish-confirm"),
    );
    let (cb, cp, cf, cc) = (
        c_begin.clone(),
        c_prep.clone(),
        c_perf.clone(),
        c_fin.clone(),
    );
    let (src_addr, src_log, src_h) = fake_daemon(move |s, p, b| match p {
        procs::DOMAIN_MIGRATE_BEGIN3_PARAMS => {
            let a: Begin3ParamsArgs = args(b)?;
            check!(a.dom == dom(), "dom {:?}", a.dom);
            check!(
                a.flags == 0x101,
                "flags {:#x} (LIVE|CHANGE_PROTECTION)",
                a.flags
            );
            check!(a.params.is_empty(), "params {:?}", a.params);
            ping_and_event(s)?;
            ok(&Begin3Ret {
                cookie_out: cb.clone(),
                xml: XML.into(),
            })
        }
        procs::DOMAIN_GET_STATE => {
            let a: GetStateArgs = args(b)?;
            check!(a.dom == dom() && a.flags == 0, "{a:?}");
            ok(&GetStateRet {
                state: 1,
                reason: 1,
            })
        }
        procs::DOMAIN_MIGRATE_PERFORM3_PARAMS => {
            let a: Perform3ParamsArgs = args(b)?;
            check!(
                a.dom == dom() && a.dconnuri.is_none(),
                "{:?} {:?}",
                a.dom,
                a.dconnuri
            );
            check!(a.flags == 0x101, "flags {:#x}", a.flags);
            check!(a.cookie_in == cp, "Perform must get Prepare's cookie");
            check!(
                a.params.0 == [sparam(param::DEST_XML, XML), sparam(param::URI, URI_OUT)],
                "params {:?}",
                a.params
            );
            ok(&Perform3Ret {
                cookie_out: cf.clone(),
            })
        }
        procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS => {
            let a: Confirm3ParamsArgs = args(b)?;
            check!(
                a.dom == dom() && a.flags == 0x101,
                "{:?} {:#x}",
                a.dom,
                a.flags
            );
            check!(a.cancelled == 0, "cancelled {}", a.cancelled);
            check!(a.cookie_in == cc, "Confirm must get Finish's cookie");
            ok(&())
        }
        p => Err(format!("unexpected procedure {p} on the source")),
    });
    let (cb, cp, cf, cc) = (c_begin, c_prep, c_perf, c_fin);
    let (dst_addr, dst_log, dst_h) = fake_daemon(move |_, p, b| match p {
        procs::DOMAIN_MIGRATE_PREPARE3_PARAMS => {
            let a: Prepare3ParamsArgs = args(b)?;
            check!(a.flags == 1, "flags {:#x} (LIVE only)", a.flags);
            check!(a.cookie_in == cb, "Prepare must get Begin's cookie");
            check!(
                a.params.0 == [sparam(param::DEST_XML, XML)],
                "params {:?}",
                a.params
            );
            ok(&Prepare3Ret {
                cookie_out: cp.clone(),
                uri_out: Some(URI_OUT.into()),
            })
        }
        procs::DOMAIN_MIGRATE_FINISH3_PARAMS => {
            let a: Finish3ParamsArgs = args(b)?;
            check!(
                a.flags == 1 && a.cancelled == 0,
                "{:#x} {}",
                a.flags,
                a.cancelled
            );
            check!(a.cookie_in == cf, "Finish must get Perform's cookie");
            check!(
                a.params.0
                    == [
                        sparam(param::DEST_XML, XML),
                        sparam(param::URI, URI_OUT),
                        sparam(param::DEST_NAME, "tiny"),
                    ],
                "params {:?}",
                a.params
            );
            ok(&Finish3Ret {
                dom: DomainRef { id: 2, ..dom() },
                cookie_out: cc.clone(),
            })
        }
        p => Err(format!("unexpected procedure {p} on the destination")),
    });

    let (mut src, src_f) = connect_probe(src_addr);
    let (dst, dst_f) = connect_probe(dst_addr);
    assert_eq!(src_f, FeatureSet::qemu());
    let domain = src.lookup_by_name("tiny").unwrap();
    assert_eq!(domain, dom());
    let mut orch = Orchestrator::new(config(src_f, dst_f, domain.clone(), ProtocolRequest::Auto));
    let mut ex = MigrationExecutor::new(src, dst, domain);
    let out = ex.run(&mut orch);

    assert_clean("source", &src_log);
    assert_clean("destination", &dst_log);
    let report = out.report.expect("a report");
    assert_eq!(
        report.verdict,
        Verdict::Migrated,
        "{report:?} {:?}",
        out.warnings
    );
    assert_eq!(report.protocol, Some(Protocol::V3Params));
    assert_eq!(report.domain, Some(DomainRef { id: 2, ..dom() }));
    assert_eq!(
        out.calls,
        [
            (Host::Source, Procedure::MigrateBegin3Params),
            (Host::Source, Procedure::DomainGetState),
            (Host::Destination, Procedure::MigratePrepare3Params),
            (Host::Source, Procedure::MigratePerform3Params),
            (Host::Destination, Procedure::MigrateFinish3Params),
            (Host::Source, Procedure::MigrateConfirm3Params),
        ]
    );
    assert_eq!(ex.source.stats().pings_answered, 1);
    assert_eq!(ex.source.stats().skipped, 1);
    ex.source.connect_close().unwrap();
    ex.destination.connect_close().unwrap();
    drop(ex);
    src_h.join().unwrap();
    dst_h.join().unwrap();
    let feat = |n: u32| std::iter::repeat_n(60, n as usize);
    let mut want_src: Vec<u32> = [66, 1].into_iter().chain(feat(13)).collect();
    want_src.extend([23, 302, 212, 305, 307, 2]);
    assert_eq!(src_log.lock().unwrap().procs, want_src);
    let mut want_dst: Vec<u32> = [66, 1].into_iter().chain(feat(13)).collect();
    want_dst.extend([303, 306, 2]);
    assert_eq!(dst_log.lock().unwrap().procs, want_dst);
}

/// The daemon's error reply becomes `CallFailed` with its RemoteError: Prepare fails, so
/// the source's job is released by Confirm(cancelled=1) with an empty cookie (§2.3).
#[test]
fn prepare_error_reply_confirms_cancelled() {
    let (src_addr, src_log, _h1) = fake_daemon(move |_, p, b| match p {
        procs::DOMAIN_MIGRATE_BEGIN3_PARAMS => ok(&Begin3Ret {
            cookie_out: cookie("begin-prepare"),
            xml: XML.into(),
        }),
        procs::DOMAIN_GET_STATE => ok(&GetStateRet {
            state: 1,
            reason: 1,
        }),
        procs::DOMAIN_MIGRATE_CONFIRM3_PARAMS => {
            let a: Confirm3ParamsArgs = args(b)?;
            check!(
                a.cancelled == 1 && a.cookie_in.is_empty(),
                "{} {:?}",
                a.cancelled,
                a.cookie_in
            );
            ok(&())
        }
        p => Err(format!("unexpected {p}")),
    });
    let spice_err = WireError::new(
        1,
        10,
        "internal error: qemu unexpectedly closed the monitor",
    );
    let e2 = spice_err.clone();
    let (dst_addr, _dst_log, _h2) = fake_daemon(move |_, p, _| match p {
        procs::DOMAIN_MIGRATE_PREPARE3_PARAMS => Ok(Answer::Err(e2.clone())),
        p => Err(format!("unexpected {p}")),
    });
    let (src, sf) = connect_probe(src_addr);
    let (dst, df) = connect_probe(dst_addr);
    let mut orch = Orchestrator::new(config(sf, df, dom(), ProtocolRequest::Auto));
    let mut ex = MigrationExecutor::new(src, dst, dom());
    let out = ex.run(&mut orch);
    assert_clean("source", &src_log);
    let r = out.report.unwrap();
    assert_eq!(r.verdict, Verdict::Failed);
    assert_eq!(r.error, Some(spice_err.to_remote_error()));
    assert_eq!(
        out.calls.last(),
        Some(&(Host::Source, Procedure::MigrateConfirm3Params))
    );
}

/// A destination that drops the connection instead of answering Finish: the executor
/// reports ConnectionLost, and the orchestrator does not Confirm (§11.1: Unknown).
#[test]
fn finish_connection_lost_is_unknown() {
    let (src_addr, _src_log, _h1) = fake_daemon(move |_, p, _| match p {
        procs::DOMAIN_MIGRATE_BEGIN3_PARAMS => ok(&Begin3Ret {
            cookie_out: cookie("begin-prepare"),
            xml: XML.into(),
        }),
        procs::DOMAIN_GET_STATE => ok(&GetStateRet {
            state: 1,
            reason: 1,
        }),
        procs::DOMAIN_MIGRATE_PERFORM3_PARAMS => ok(&Perform3Ret {
            cookie_out: cookie("perform-finish"),
        }),
        p => Err(format!("unexpected {p}")),
    });
    let (dst_addr, _dst_log, _h2) = fake_daemon(move |_, p, _| match p {
        procs::DOMAIN_MIGRATE_PREPARE3_PARAMS => ok(&Prepare3Ret {
            cookie_out: cookie("prepare-perform"),
            uri_out: Some(URI_OUT.into()),
        }),
        procs::DOMAIN_MIGRATE_FINISH3_PARAMS => Ok(Answer::Close),
        p => Err(format!("unexpected {p}")),
    });
    let (src, sf) = connect_probe(src_addr);
    let (dst, df) = connect_probe(dst_addr);
    let mut ex = MigrationExecutor::new(src, dst, dom());
    let finish = Call {
        host: Host::Destination,
        procedure: Procedure::MigrateFinish3Params,
        flags: 1,
        cookie: Some(Bytes(cookie("perform-finish"))),
        params: Params::default(),
        cancelled: Some(false),
    };
    // Prepare first, so the fake reaches Finish.
    let mut prep = finish.clone();
    prep.procedure = Procedure::MigratePrepare3Params;
    prep.cancelled = None;
    assert!(matches!(
        ex.execute(&prep),
        OrchestratorInput::Prepared { .. }
    ));
    assert!(matches!(
        ex.execute(&finish),
        OrchestratorInput::ConnectionLost {
            host: Host::Destination,
            ..
        }
    ));

    // The same through the orchestrator, on fresh daemons.
    let (src_addr, _l1, _h3) = fake_daemon(move |_, p, _| match p {
        procs::DOMAIN_MIGRATE_BEGIN3_PARAMS => ok(&Begin3Ret {
            cookie_out: cookie("begin-prepare"),
            xml: XML.into(),
        }),
        procs::DOMAIN_GET_STATE => ok(&GetStateRet {
            state: 1,
            reason: 1,
        }),
        procs::DOMAIN_MIGRATE_PERFORM3_PARAMS => ok(&Perform3Ret {
            cookie_out: cookie("perform-finish"),
        }),
        p => Err(format!("unexpected {p}")),
    });
    let (dst_addr, _l2, _h4) = fake_daemon(move |_, p, _| match p {
        procs::DOMAIN_MIGRATE_PREPARE3_PARAMS => ok(&Prepare3Ret {
            cookie_out: cookie("prepare-perform"),
            uri_out: Some(URI_OUT.into()),
        }),
        procs::DOMAIN_MIGRATE_FINISH3_PARAMS => Ok(Answer::Close),
        p => Err(format!("unexpected {p}")),
    });
    let (src, _) = connect_probe(src_addr);
    let (dst, _) = connect_probe(dst_addr);
    let mut orch = Orchestrator::new(config(sf, df, dom(), ProtocolRequest::Auto));
    let mut ex = MigrationExecutor::new(src, dst, dom());
    let out = ex.run(&mut orch);
    assert_eq!(out.report.unwrap().verdict, Verdict::Unknown);
    assert_eq!(
        out.calls.last(),
        Some(&(Host::Destination, Procedure::MigrateFinish3Params))
    );
}

/// Managed v3 with the fixed-argument procedures (213-218): hyper flags, uri/dname/xml
/// from the params, Perform3's xmlin and dconnuri NULL.
#[test]
fn managed_v3_fixed_args_migration() {
    let (src_addr, src_log, _h1) = fake_daemon(move |_, p, b| match p {
        procs::DOMAIN_MIGRATE_BEGIN3 => {
            let a: Begin3Args = args(b)?;
            check!(
                a.flags == 0x101 && a.xmlin.is_none() && a.dname.is_none() && a.resource == 0,
                "{a:?}"
            );
            ok(&Begin3Ret {
                cookie_out: cookie("begin-prepare"),
                xml: XML.into(),
            })
        }
        procs::DOMAIN_GET_STATE => ok(&GetStateRet {
            state: 3,
            reason: 0,
        }),
        procs::DOMAIN_MIGRATE_PERFORM3 => {
            let a: Perform3Args = args(b)?;
            check!(a.cookie_in == cookie("prepare-perform"), "cookie");
            check!(a.xmlin.is_none() && a.dconnuri.is_none(), "{a:?}");
            check!(a.uri.as_deref() == Some(URI_OUT), "uri {:?}", a.uri);
            // PAUSED (1 << 5) is added for a paused source.
            check!(a.flags == 0x121, "flags {:#x}", a.flags);
            ok(&Perform3Ret {
                cookie_out: cookie("perform-finish"),
            })
        }
        procs::DOMAIN_MIGRATE_CONFIRM3 => {
            let a: Confirm3Args = args(b)?;
            check!(
                a.cancelled == 0 && a.cookie_in == cookie("finish-confirm"),
                "confirm"
            );
            ok(&())
        }
        p => Err(format!("unexpected {p}")),
    });
    let (dst_addr, dst_log, _h2) = fake_daemon(move |_, p, b| match p {
        procs::DOMAIN_MIGRATE_PREPARE3 => {
            let a: Prepare3Args = args(b)?;
            check!(
                a.dom_xml == XML && a.uri_in.is_none() && a.flags == 0x21,
                "{a:?}"
            );
            check!(a.cookie_in == cookie("begin-prepare"), "cookie");
            ok(&Prepare3Ret {
                cookie_out: cookie("prepare-perform"),
                uri_out: Some(URI_OUT.into()),
            })
        }
        procs::DOMAIN_MIGRATE_FINISH3 => {
            let a: Finish3Args = args(b)?;
            check!(
                a.dname == "tiny" && a.uri.as_deref() == Some(URI_OUT) && a.dconnuri.is_none(),
                "{a:?}"
            );
            check!(a.cancelled == 0 && a.flags == 0x21, "{a:?}");
            ok(&Finish3Ret {
                dom: dom(),
                cookie_out: cookie("finish-confirm"),
            })
        }
        p => Err(format!("unexpected {p}")),
    });
    let (src, sf) = connect_probe(src_addr);
    let (dst, df) = connect_probe(dst_addr);
    let mut orch = Orchestrator::new(config(sf, df, dom(), ProtocolRequest::V3));
    let mut ex = MigrationExecutor::new(src, dst, dom());
    let out = ex.run(&mut orch);
    assert_clean("source", &src_log);
    assert_clean("destination", &dst_log);
    let r = out.report.unwrap();
    assert_eq!(
        (r.verdict, r.protocol),
        (Verdict::Migrated, Some(Protocol::V3))
    );
}

/// v2: GetXmlDesc, Prepare2, Perform, Finish2 (retcode 0).
#[test]
fn managed_v2_migration() {
    let (src_addr, src_log, _h1) = fake_daemon(move |_, p, b| match p {
        procs::DOMAIN_GET_XML_DESC => {
            let a: GetXmlDescArgs = args(b)?;
            check!(a.flags == 8, "XML_MIGRATABLE, got {:#x}", a.flags);
            ok(&GetXmlDescRet { xml: XML.into() })
        }
        procs::DOMAIN_GET_STATE => ok(&GetStateRet {
            state: 1,
            reason: 1,
        }),
        procs::DOMAIN_MIGRATE_PERFORM => {
            let a: PerformArgs = args(b)?;
            check!(
                a.uri == URI_OUT && a.flags == 1 && a.cookie == b"v2cookie",
                "{a:?}"
            );
            ok(&())
        }
        p => Err(format!("unexpected {p}")),
    });
    let (dst_addr, dst_log, _h2) = fake_daemon(move |_, p, b| match p {
        procs::DOMAIN_MIGRATE_PREPARE2 => {
            let a: Prepare2Args = args(b)?;
            check!(
                a.dom_xml == XML && a.uri_in.is_none() && a.flags == 1,
                "{a:?}"
            );
            ok(&Prepare2Ret {
                cookie: b"v2cookie".to_vec(),
                uri_out: Some(URI_OUT.into()),
            })
        }
        procs::DOMAIN_MIGRATE_FINISH2 => {
            let a: Finish2Args = args(b)?;
            check!(
                a.dname == "tiny" && a.uri == URI_OUT && a.retcode == 0,
                "{a:?}"
            );
            ok(&Finish2Ret { ddom: dom() })
        }
        p => Err(format!("unexpected {p}")),
    });
    let (src, sf) = connect_probe(src_addr);
    let (dst, df) = connect_probe(dst_addr);
    let mut orch = Orchestrator::new(config(sf, df, dom(), ProtocolRequest::V2));
    let mut ex = MigrationExecutor::new(src, dst, dom());
    let out = ex.run(&mut orch);
    assert_clean("source", &src_log);
    assert_clean("destination", &dst_log);
    let r = out.report.unwrap();
    assert_eq!(
        (r.verdict, r.protocol),
        (Verdict::Migrated, Some(Protocol::V2))
    );
}

/// While the source answers slowly, the idle destination connection (keepalive on) is
/// served: its PING is answered.
#[test]
fn idle_connection_is_served_during_a_call() {
    let (src_addr, _src_log, _h1) = fake_daemon(move |_, p, _| match p {
        procs::DOMAIN_GET_STATE => {
            std::thread::sleep(Duration::from_millis(600));
            ok(&GetStateRet {
                state: 1,
                reason: 1,
            })
        }
        p => Err(format!("unexpected {p}")),
    });
    let (l, dst_addr) = listener();
    let dst_h = std::thread::spawn(move || {
        let mut s = accept(&l);
        std::thread::sleep(Duration::from_millis(150));
        s.write_all(&encode_frame(&Header::keepalive(KEEPALIVE_PROC_PING), &[]).unwrap())
            .unwrap();
        s.set_read_timeout(Some(Duration::from_millis(400)))
            .unwrap();
        let f = read_frame(&mut s).expect("no PONG from the idle connection");
        decode_frame(&f).unwrap().0
    });
    let src = Rpc::connect(src_addr, T).unwrap();
    let mut dst = Rpc::connect(dst_addr, T).unwrap();
    dst.start_keepalive(KeepaliveConfig {
        interval: Duration::from_secs(5),
        count: 5,
    });
    let mut ex = MigrationExecutor::new(src, dst, dom());
    let call = Call {
        host: Host::Source,
        procedure: Procedure::DomainGetState,
        flags: 0,
        cookie: None,
        params: Params::default(),
        cancelled: None,
    };
    assert_eq!(
        ex.execute(&call),
        OrchestratorInput::SourceState {
            state: DomainState::Running
        }
    );
    assert_eq!(
        dst_h.join().unwrap(),
        Header::keepalive(KEEPALIVE_PROC_PONG)
    );
    assert_eq!(ex.destination.stats().pings_answered, 1);
}
