//! libvirt's RPC framing and a blocking connection (`src/rpc/virnetprotocol.x`,
//! `virkeepaliveprotocol.x`).
//!
//! A frame is a `u32` length that counts itself, the 24-byte header
//! `{prog, vers, proc, type, serial, status}`, then the XDR body. A reply with status ERROR
//! carries a `remote_error`. MESSAGE frames (events) are skipped, except the keepalive
//! program's PING, which is answered with a PONG.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use livemig_core::migration::error::RemoteError;

use super::xdr::{Decoder, Encoder, WireError, XdrError};

/// `REMOTE_PROGRAM`
pub const REMOTE_PROGRAM: u32 = 0x2000_8086;
/// `REMOTE_PROTOCOL_VERSION`
pub const REMOTE_PROTOCOL_VERSION: u32 = 1;
/// `KEEPALIVE_PROGRAM` ("keep")
pub const KEEPALIVE_PROGRAM: u32 = 0x6b65_6570;
/// `KEEPALIVE_PROTOCOL_VERSION`
pub const KEEPALIVE_PROTOCOL_VERSION: u32 = 1;
/// `KEEPALIVE_PROC_PING`
pub const KEEPALIVE_PROC_PING: u32 = 1;
/// `KEEPALIVE_PROC_PONG`
pub const KEEPALIVE_PROC_PONG: u32 = 2;
/// `REMOTE_PROC_CONNECT_SUPPORTS_FEATURE`
const PROC_SUPPORTS_FEATURE: u32 = 60;
/// `VIR_DRV_FEATURE_PROGRAM_KEEPALIVE`
const FEATURE_PROGRAM_KEEPALIVE: i32 = 10;

/// Length word plus header.
pub const HEADER_LEN: usize = 24;
/// Smallest frame: the length word and the header.
pub const FRAME_MIN: usize = 4 + HEADER_LEN;
/// Largest frame accepted or sent: `VIR_NET_MESSAGE_MAX` (32 MiB since libvirt 3.x) plus
/// the length word, which libvirt does not count in that limit.
pub const FRAME_MAX: usize = 32 * 1024 * 1024 + 4;

/// `virNetMessageType`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageType {
    /// `VIR_NET_CALL` (0)
    Call,
    /// `VIR_NET_REPLY` (1)
    Reply,
    /// `VIR_NET_MESSAGE` (2): events, keepalive.
    Message,
    /// `VIR_NET_STREAM` (3)
    Stream,
    /// `VIR_NET_CALL_WITH_FDS` (4)
    CallWithFds,
    /// `VIR_NET_REPLY_WITH_FDS` (5)
    ReplyWithFds,
    /// `VIR_NET_STREAM_HOLE` (6)
    StreamHole,
}

impl MessageType {
    /// The wire number.
    pub const fn number(self) -> u32 {
        match self {
            MessageType::Call => 0,
            MessageType::Reply => 1,
            MessageType::Message => 2,
            MessageType::Stream => 3,
            MessageType::CallWithFds => 4,
            MessageType::ReplyWithFds => 5,
            MessageType::StreamHole => 6,
        }
    }
    /// From the wire number.
    pub const fn from_number(n: u32) -> Option<MessageType> {
        Some(match n {
            0 => MessageType::Call,
            1 => MessageType::Reply,
            2 => MessageType::Message,
            3 => MessageType::Stream,
            4 => MessageType::CallWithFds,
            5 => MessageType::ReplyWithFds,
            6 => MessageType::StreamHole,
            _ => return None,
        })
    }
}

/// `virNetMessageStatus`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// `VIR_NET_OK` (0)
    Ok,
    /// `VIR_NET_ERROR` (1): the body is a `remote_error`.
    Error,
    /// `VIR_NET_CONTINUE` (2): streams only.
    Continue,
}

impl Status {
    /// The wire number.
    pub const fn number(self) -> u32 {
        match self {
            Status::Ok => 0,
            Status::Error => 1,
            Status::Continue => 2,
        }
    }
    /// From the wire number.
    pub const fn from_number(n: u32) -> Option<Status> {
        Some(match n {
            0 => Status::Ok,
            1 => Status::Error,
            2 => Status::Continue,
            _ => return None,
        })
    }
}

/// `virNetMessageHeader`
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Program number.
    pub prog: u32,
    /// Program version.
    pub vers: u32,
    /// Procedure number (an `int` on the wire; every procedure is positive).
    pub procedure: u32,
    /// Message type.
    pub kind: MessageType,
    /// Serial (a call's, echoed by its reply; 0 for MESSAGE).
    pub serial: u32,
    /// Status.
    pub status: Status,
}

impl Header {
    /// A CALL of the remote program.
    pub const fn call(procedure: u32, serial: u32) -> Header {
        Header {
            prog: REMOTE_PROGRAM,
            vers: REMOTE_PROTOCOL_VERSION,
            procedure,
            kind: MessageType::Call,
            serial,
            status: Status::Ok,
        }
    }
    /// A REPLY of the remote program.
    pub const fn reply(procedure: u32, serial: u32, status: Status) -> Header {
        Header {
            prog: REMOTE_PROGRAM,
            vers: REMOTE_PROTOCOL_VERSION,
            procedure,
            kind: MessageType::Reply,
            serial,
            status,
        }
    }
    /// A keepalive MESSAGE (PING or PONG), serial 0.
    pub const fn keepalive(procedure: u32) -> Header {
        Header {
            prog: KEEPALIVE_PROGRAM,
            vers: KEEPALIVE_PROTOCOL_VERSION,
            procedure,
            kind: MessageType::Message,
            serial: 0,
            status: Status::Ok,
        }
    }
}

/// A framing violation.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// The length word is below the header size.
    #[error("frame length {0} below the minimum {FRAME_MIN}")]
    FrameTooShort(u32),
    /// The length word is over [`FRAME_MAX`].
    #[error("frame length {0} over the maximum {FRAME_MAX}")]
    FrameTooLong(u64),
    /// The length word does not match the bytes given.
    #[error("frame length word {word} but {actual} bytes")]
    LengthMismatch {
        /// The length word.
        word: u32,
        /// Bytes given.
        actual: usize,
    },
    /// Unknown `virNetMessageType`.
    #[error("unknown message type {0}")]
    UnknownType(u32),
    /// Unknown `virNetMessageStatus`.
    #[error("unknown message status {0}")]
    UnknownStatus(u32),
    /// The reply to our call names another program, version or procedure.
    #[error("reply header {got:?} does not match the call (procedure {procedure})")]
    UnexpectedReply {
        /// Our call's procedure.
        procedure: u32,
        /// What came.
        got: Header,
    },
}

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// A socket error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// No reply within the call's timeout (the connection stays usable; a late reply is
    /// skipped).
    #[error("no reply to procedure {procedure} within {after:?}")]
    Timeout {
        /// The procedure.
        procedure: u32,
        /// The timeout.
        after: Duration,
    },
    /// The peer is gone: EOF, keepalive death, or an earlier fatal error.
    #[error("connection lost: {0}")]
    Lost(String),
    /// The daemon answered with an error.
    #[error("remote error: {0}")]
    Remote(RemoteError),
    /// The peer broke the framing.
    #[error("protocol error: {0}")]
    Protocol(#[from] ProtocolError),
    /// A body did not decode (or a value did not encode).
    #[error("XDR error: {0}")]
    Xdr(#[from] XdrError),
}

/// The frame for `header` and `body` (length word included).
pub fn encode_frame(header: &Header, body: &[u8]) -> Result<Vec<u8>, ProtocolError> {
    let len = FRAME_MIN + body.len();
    if len > FRAME_MAX {
        return Err(ProtocolError::FrameTooLong(len as u64));
    }
    let mut e = Encoder::new();
    e.u32(len as u32)
        .u32(header.prog)
        .u32(header.vers)
        .u32(header.procedure)
        .u32(header.kind.number())
        .u32(header.serial)
        .u32(header.status.number());
    let mut v = e.into_bytes();
    v.extend_from_slice(body);
    Ok(v)
}

/// Validate a length word (the first 4 bytes of a frame).
pub fn frame_length(word: [u8; 4]) -> Result<usize, ProtocolError> {
    let len = u32::from_be_bytes(word);
    if (len as usize) < FRAME_MIN {
        return Err(ProtocolError::FrameTooShort(len));
    }
    if len as u64 > FRAME_MAX as u64 {
        return Err(ProtocolError::FrameTooLong(u64::from(len)));
    }
    Ok(len as usize)
}

/// Split one whole frame (length word included) into its header and body.
pub fn decode_frame(frame: &[u8]) -> Result<(Header, &[u8]), RpcError> {
    let word: [u8; 4] = match frame.get(..4) {
        Some(w) => [w[0], w[1], w[2], w[3]],
        None => {
            return Err(XdrError::Truncated {
                offset: 0,
                needed: 4,
                available: frame.len(),
            }
            .into())
        }
    };
    let len = frame_length(word)?;
    if len != frame.len() {
        return Err(ProtocolError::LengthMismatch {
            word: len as u32,
            actual: frame.len(),
        }
        .into());
    }
    let mut d = Decoder::new(&frame[4..]);
    let prog = d.u32()?;
    let vers = d.u32()?;
    let procedure = d.u32()?;
    let kind = d.u32()?;
    let kind = MessageType::from_number(kind).ok_or(ProtocolError::UnknownType(kind))?;
    let serial = d.u32()?;
    let status = d.u32()?;
    let status = Status::from_number(status).ok_or(ProtocolError::UnknownStatus(status))?;
    let header = Header {
        prog,
        vers,
        procedure,
        kind,
        serial,
        status,
    };
    Ok((header, &frame[FRAME_MIN..]))
}

/// The result of a reply: its body on OK, [`RpcError::Remote`] on ERROR.
pub fn reply_result(header: &Header, body: &[u8]) -> Result<Vec<u8>, RpcError> {
    match header.status {
        Status::Ok => Ok(body.to_vec()),
        Status::Error => {
            let e: WireError = super::xdr::from_bytes(body)?;
            Err(RpcError::Remote(e.to_remote_error()))
        }
        Status::Continue => Err(ProtocolError::UnknownStatus(Status::Continue.number()).into()),
    }
}

/// Client-side keepalive (`virKeepAlive`): after `interval` without any frame from the
/// peer a PING is sent; when `count` PINGs in a row got nothing back, the peer is dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepaliveConfig {
    /// Silence before a PING (libvirt's default: 5 s).
    pub interval: Duration,
    /// Unanswered PINGs before the peer is dead (libvirt's default: 5).
    pub count: u32,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig {
            interval: Duration::from_secs(5),
            count: 5,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Keepalive {
    cfg: KeepaliveConfig,
    /// Last PING we sent since the peer was last heard, and how many.
    last_ping: Option<Instant>,
    missed: u32,
}

/// What a connection has seen (for logs and tests).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RpcStats {
    /// Calls sent.
    pub calls: u64,
    /// PINGs from the peer answered with a PONG.
    pub pings_answered: u64,
    /// PINGs we sent.
    pub pings_sent: u64,
    /// PONGs received.
    pub pongs_received: u64,
    /// MESSAGE frames skipped (events) and replies to no outstanding call.
    pub skipped: u64,
}

enum Event {
    Frame(Vec<u8>),
    Deadline,
}

/// A blocking connection to a libvirt daemon (TCP, no TLS/SASL: `auth_tcp = "none"`).
#[derive(Debug)]
pub struct Rpc {
    stream: TcpStream,
    rbuf: Vec<u8>,
    next_serial: u32,
    call_timeout: Option<Duration>,
    keepalive: Option<Keepalive>,
    last_rx: Instant,
    dead: Option<String>,
    stats: RpcStats,
}

const READ_CHUNK: usize = 64 * 1024;

impl Rpc {
    /// Connect over TCP within `timeout` (per address). Calls then wait for their reply
    /// without a bound, as libvirt does: see [`Rpc::set_call_timeout`].
    pub fn connect<A: ToSocketAddrs>(addr: A, timeout: Duration) -> Result<Rpc, RpcError> {
        let mut last = None;
        for a in addr.to_socket_addrs()? {
            match TcpStream::connect_timeout(&a, timeout) {
                Ok(s) => return Ok(Rpc::from_stream(s)),
                Err(e) => last = Some(e),
            }
        }
        Err(RpcError::Io(last.unwrap_or_else(|| {
            std::io::Error::new(ErrorKind::InvalidInput, "no address to connect to")
        })))
    }

    /// Wrap a connected stream. Serials start at 1.
    pub fn from_stream(stream: TcpStream) -> Rpc {
        let _ = stream.set_nodelay(true);
        Rpc {
            stream,
            rbuf: Vec::new(),
            next_serial: 1,
            call_timeout: None,
            keepalive: None,
            last_rx: Instant::now(),
            dead: None,
            stats: RpcStats::default(),
        }
    }

    /// Bound every later [`Rpc::call`] (`None`: wait forever).
    pub fn set_call_timeout(&mut self, timeout: Option<Duration>) {
        self.call_timeout = timeout;
    }

    /// The bound [`Rpc::call`] uses.
    pub fn call_timeout(&self) -> Option<Duration> {
        self.call_timeout
    }

    /// Counters of what this connection has seen.
    pub fn stats(&self) -> RpcStats {
        self.stats
    }

    /// Why the connection is unusable, if it is.
    pub fn dead_reason(&self) -> Option<&str> {
        self.dead.as_deref()
    }

    /// Whether client-side keepalive runs.
    pub fn keepalive_enabled(&self) -> bool {
        self.keepalive.is_some()
    }

    /// Ask the daemon for keepalive (`CONNECT_SUPPORTS_FEATURE(PROGRAM_KEEPALIVE)`, which
    /// also starts the daemon's own PINGs) and, when it answers 1, start sending PINGs per
    /// `cfg`. Returns whether the daemon supports it.
    pub fn enable_keepalive(&mut self, cfg: KeepaliveConfig) -> Result<bool, RpcError> {
        let mut e = Encoder::new();
        e.i32(FEATURE_PROGRAM_KEEPALIVE);
        let body = self.call(PROC_SUPPORTS_FEATURE, e.as_bytes())?;
        let supported: i32 = super::xdr::from_bytes(&body)?;
        if supported != 0 {
            self.start_keepalive(cfg);
        }
        Ok(supported != 0)
    }

    /// Start client-side PINGs without asking the daemon (for peers known to support it).
    pub fn start_keepalive(&mut self, cfg: KeepaliveConfig) {
        self.keepalive = Some(Keepalive {
            cfg: KeepaliveConfig {
                interval: cfg.interval.max(Duration::from_millis(1)),
                count: cfg.count,
            },
            last_ping: None,
            missed: 0,
        });
        self.last_rx = Instant::now();
    }

    /// Call `procedure` with an encoded argument body and return the reply body, waiting
    /// at most [`Rpc::call_timeout`].
    pub fn call(&mut self, procedure: u32, body: &[u8]) -> Result<Vec<u8>, RpcError> {
        self.call_with_timeout(procedure, body, self.call_timeout)
    }

    /// [`Rpc::call`] with its own bound.
    pub fn call_with_timeout(
        &mut self,
        procedure: u32,
        body: &[u8],
        timeout: Option<Duration>,
    ) -> Result<Vec<u8>, RpcError> {
        if let Some(r) = &self.dead {
            return Err(RpcError::Lost(r.clone()));
        }
        let serial = self.next_serial;
        self.next_serial = self.next_serial.wrapping_add(1);
        let frame = encode_frame(&Header::call(procedure, serial), body)?;
        let deadline = timeout.map(|t| Instant::now() + t);
        self.send(&frame, deadline)?;
        self.stats.calls += 1;
        loop {
            let frame = match self.next_event(deadline)? {
                Event::Deadline => {
                    return Err(RpcError::Timeout {
                        procedure,
                        after: timeout.unwrap_or_default(),
                    })
                }
                Event::Frame(f) => f,
            };
            let (h, b) = self.fatal_on_err(decode_frame(&frame))?;
            if self.handle_unsolicited(&h)? {
                continue;
            }
            // A reply (or stream frame) to a call that is not ours (e.g. one that timed out).
            if h.serial != serial || !matches!(h.kind, MessageType::Reply) {
                self.stats.skipped += 1;
                continue;
            }
            if h.prog != REMOTE_PROGRAM
                || h.vers != REMOTE_PROTOCOL_VERSION
                || h.procedure != procedure
            {
                return Err(ProtocolError::UnexpectedReply { procedure, got: h }.into());
            }
            return reply_result(&h, b);
        }
    }

    /// Serve the connection without a call for `duration`: answer PINGs, send our own,
    /// skip events. Use it to keep an idle keepalive connection alive.
    pub fn service(&mut self, duration: Duration) -> Result<(), RpcError> {
        let deadline = Instant::now() + duration;
        self.service_loop(Some(deadline), None)
    }

    /// Serve the connection (as [`Rpc::service`]) until `stop` is set, checking it every
    /// `tick`.
    pub fn service_until(&mut self, stop: &AtomicBool, tick: Duration) -> Result<(), RpcError> {
        self.service_loop(None, Some((stop, tick.max(Duration::from_millis(1)))))
    }

    fn service_loop(
        &mut self,
        deadline: Option<Instant>,
        stop: Option<(&AtomicBool, Duration)>,
    ) -> Result<(), RpcError> {
        if let Some(r) = &self.dead {
            return Err(RpcError::Lost(r.clone()));
        }
        loop {
            let wake = match stop {
                Some((flag, tick)) => {
                    if flag.load(Ordering::Acquire) {
                        return Ok(());
                    }
                    Some(Instant::now() + tick)
                }
                None => deadline,
            };
            match self.next_event(wake)? {
                Event::Deadline => {
                    if stop.is_none() {
                        return Ok(());
                    }
                }
                Event::Frame(f) => {
                    let (h, _) = self.fatal_on_err(decode_frame(&f))?;
                    if !self.handle_unsolicited(&h)? {
                        self.stats.skipped += 1;
                    }
                }
            }
        }
    }

    /// Close the socket (both directions).
    pub fn shutdown(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
        self.dead.get_or_insert_with(|| "closed locally".into());
    }

    /// Keepalive frames and events: answered or skipped. `true` when consumed.
    fn handle_unsolicited(&mut self, h: &Header) -> Result<bool, RpcError> {
        if h.prog == KEEPALIVE_PROGRAM {
            if h.kind == MessageType::Message && h.procedure == KEEPALIVE_PROC_PING {
                let pong = encode_frame(&Header::keepalive(KEEPALIVE_PROC_PONG), &[])?;
                self.send(&pong, None)?;
                self.stats.pings_answered += 1;
            } else if h.procedure == KEEPALIVE_PROC_PONG {
                self.stats.pongs_received += 1;
            } else {
                self.stats.skipped += 1;
            }
            return Ok(true);
        }
        if h.kind == MessageType::Message {
            self.stats.skipped += 1;
            return Ok(true);
        }
        Ok(false)
    }

    fn fatal_on_err<T>(&mut self, r: Result<T, RpcError>) -> Result<T, RpcError> {
        if let Err(e) = &r {
            self.dead = Some(e.to_string());
        }
        r
    }

    fn send(&mut self, frame: &[u8], deadline: Option<Instant>) -> Result<(), RpcError> {
        let t = deadline.map(|d| {
            d.saturating_duration_since(Instant::now())
                .max(Duration::from_millis(1))
        });
        let r = self
            .stream
            .set_write_timeout(t)
            .and_then(|_| self.stream.write_all(frame));
        if let Err(e) = r {
            // A partial write desynchronises the stream: the connection is done.
            self.dead = Some(format!("write failed: {e}"));
            return Err(match e.kind() {
                ErrorKind::WouldBlock | ErrorKind::TimedOut => {
                    RpcError::Lost(format!("write timed out: {e}"))
                }
                _ => RpcError::Io(e),
            });
        }
        Ok(())
    }

    /// A whole buffered frame, if one is there.
    fn take_buffered(&mut self) -> Result<Option<Vec<u8>>, RpcError> {
        if self.rbuf.len() < 4 {
            return Ok(None);
        }
        let word = [self.rbuf[0], self.rbuf[1], self.rbuf[2], self.rbuf[3]];
        let len = match frame_length(word) {
            Ok(l) => l,
            Err(e) => {
                self.dead = Some(e.to_string());
                return Err(e.into());
            }
        };
        if self.rbuf.len() < len {
            return Ok(None);
        }
        let rest = self.rbuf.split_off(len);
        Ok(Some(std::mem::replace(&mut self.rbuf, rest)))
    }

    /// When the keepalive next needs attention.
    fn keepalive_due(&self) -> Option<Instant> {
        self.keepalive.map(|k| {
            let since = k.last_ping.map_or(self.last_rx, |p| p.max(self.last_rx));
            since + k.cfg.interval
        })
    }

    fn keepalive_tick(&mut self) -> Result<(), RpcError> {
        let Some(mut k) = self.keepalive else {
            return Ok(());
        };
        if k.missed >= k.cfg.count {
            let r = format!(
                "no answer from the peer to {} keepalive PINGs at {:?} intervals",
                k.missed, k.cfg.interval
            );
            self.dead = Some(r.clone());
            return Err(RpcError::Lost(r));
        }
        let ping = encode_frame(&Header::keepalive(KEEPALIVE_PROC_PING), &[])?;
        self.send(&ping, None)?;
        self.stats.pings_sent += 1;
        k.missed += 1;
        k.last_ping = Some(Instant::now());
        self.keepalive = Some(k);
        Ok(())
    }

    /// The next whole frame, or `Deadline` once `deadline` passes; keepalive runs meanwhile.
    fn next_event(&mut self, deadline: Option<Instant>) -> Result<Event, RpcError> {
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            if let Some(f) = self.take_buffered()? {
                return Ok(Event::Frame(f));
            }
            let now = Instant::now();
            if let Some(due) = self.keepalive_due() {
                if now >= due {
                    self.keepalive_tick()?;
                    continue;
                }
            }
            if deadline.is_some_and(|d| now >= d) {
                return Ok(Event::Deadline);
            }
            let wake = match (deadline, self.keepalive_due()) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let t = wake.map(|w| {
                w.saturating_duration_since(now)
                    .max(Duration::from_millis(1))
            });
            if let Err(e) = self.stream.set_read_timeout(t) {
                self.dead = Some(e.to_string());
                return Err(e.into());
            }
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    let r = "connection closed by the peer".to_owned();
                    self.dead = Some(r.clone());
                    return Err(RpcError::Lost(r));
                }
                Ok(n) => {
                    self.rbuf.extend_from_slice(&chunk[..n]);
                    self.last_rx = Instant::now();
                    if let Some(k) = &mut self.keepalive {
                        k.missed = 0;
                        k.last_ping = None;
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) => {}
                Err(e) => {
                    self.dead = Some(e.to_string());
                    return Err(e.into());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip() {
        let h = Header::reply(212, 7, Status::Error);
        let f = encode_frame(&h, &[1, 2, 3, 4]).unwrap();
        assert_eq!(f.len(), 32);
        let (h2, b) = decode_frame(&f).unwrap();
        assert_eq!(h2, h);
        assert_eq!(b, &[1, 2, 3, 4]);
    }

    #[test]
    fn bad_lengths_and_enums() {
        assert_eq!(
            frame_length([0, 0, 0, 27]),
            Err(ProtocolError::FrameTooShort(27))
        );
        assert!(matches!(
            frame_length([0xff, 0xff, 0xff, 0xff]),
            Err(ProtocolError::FrameTooLong(0xffff_ffff))
        ));
        let mut f = encode_frame(&Header::call(1, 1), &[]).unwrap();
        f[19] = 9;
        assert!(matches!(
            decode_frame(&f),
            Err(RpcError::Protocol(ProtocolError::UnknownType(9)))
        ));
        let mut f = encode_frame(&Header::call(1, 1), &[]).unwrap();
        f[27] = 3;
        assert!(matches!(
            decode_frame(&f),
            Err(RpcError::Protocol(ProtocolError::UnknownStatus(3)))
        ));
        let f = encode_frame(&Header::call(1, 1), &[0; 4]).unwrap();
        assert!(matches!(
            decode_frame(&f[..30]),
            Err(RpcError::Protocol(ProtocolError::LengthMismatch {
                word: 32,
                actual: 30
            }))
        ));
    }

    #[test]
    fn error_reply_decodes_to_remote() {
        let body = super::super::xdr::to_bytes(&WireError::new(42, 10, "no domain")).unwrap();
        let h = Header::reply(23, 2, Status::Error);
        match reply_result(&h, &body) {
            Err(RpcError::Remote(e)) => {
                assert_eq!(
                    (e.code, e.domain, e.message.as_str()),
                    (42, 10, "no domain")
                )
            }
            other => panic!("{other:?}"),
        }
        // A truncated error body is an XDR error, not a panic.
        assert!(matches!(
            reply_result(&h, &body[..body.len() - 1]),
            Err(RpcError::Xdr(_))
        ));
    }
}
