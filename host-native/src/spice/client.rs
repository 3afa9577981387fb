//! The socket driver of a SPICE [`Session`]: one thread runs the session; one reader thread
//! per connection only moves raw bytes to it. TLS state (rustls `ClientConnection`) lives in
//! the session thread, so reading and writing never contend for a lock.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use livemig_core::bytes::Bytes;
use livemig_core::spice::session::{
    ChannelRef, ConnId, Endpoint, Session, SessionAction, SessionConfig, SessionEvent,
    SessionInput, Verify,
};
use livemig_core::trace::{Setup, Writer};
use livemig_core::Machine;
use rustls::ClientConnection;

use super::ticket::encrypt_ticket;
use super::tls::Trust;

/// Decides whether a migration target may be contacted.
pub type TargetPolicy = Arc<dyn Fn(&Endpoint) -> bool + Send + Sync>;

/// Maps an endpoint and port to a unix socket to use instead of TCP (`None`: TCP).
pub type UnixRoute = Arc<dyn Fn(&Endpoint, u16) -> Option<std::path::PathBuf> + Send + Sync>;

/// How the client runs.
#[derive(Clone)]
pub struct ClientOptions {
    /// CA certificates (PEM) for TLS links; without it TLS links fail.
    pub ca_pem: Option<Vec<u8>>,
    /// Which migration targets may be contacted (default: any).
    pub policy: TargetPolicy,
    /// Record the session as a trace.
    pub record: bool,
    /// Bound on one TCP connect.
    pub connect_timeout: Duration,
    /// Unix-socket routing (e.g. a QEMU whose SPICE listens on `unix=on`).
    pub unix_route: Option<UnixRoute>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            ca_pem: None,
            policy: Arc::new(|_| true),
            record: false,
            connect_timeout: Duration::from_secs(3),
            unix_route: None,
        }
    }
}

/// An event with the time it was seen.
#[derive(Clone, Debug)]
pub struct TimedEvent {
    /// When the session emitted it.
    pub at: Instant,
    /// The event.
    pub event: SessionEvent,
}

/// What a finished client hands back.
#[derive(Debug, Default)]
pub struct ClientReport {
    /// Every event, in order.
    pub events: Vec<TimedEvent>,
    /// The trace, when recording.
    pub trace: Option<String>,
    /// Every Connect action: (channel, target role, port, tls).
    pub connects: Vec<SessionAction>,
}

/// Errors of the handle.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No matching event before the deadline.
    #[error("timed out after {0:?} waiting for {1}")]
    Timeout(Duration, String),
    /// The client thread is gone.
    #[error("client stopped")]
    Stopped,
}

enum LoopMsg {
    Net { conn: ConnId, data: Option<Vec<u8>> },
    Send(ChannelRef, u16, Vec<u8>),
    Stop,
}

/// A running client.
pub struct ClientHandle {
    tx: Sender<LoopMsg>,
    events: Receiver<TimedEvent>,
    seen: Vec<TimedEvent>,
    returned: Vec<bool>,
    join: Option<JoinHandle<ClientReport>>,
}

/// A clonable way to send application messages from other threads.
#[derive(Clone)]
pub struct ClientSender(Sender<LoopMsg>);

impl ClientSender {
    /// Send an application message on a channel (see [`ClientHandle::send`]).
    pub fn send(&self, channel: ChannelRef, msg_type: u16, body: Vec<u8>) -> bool {
        self.0.send(LoopMsg::Send(channel, msg_type, body)).is_ok()
    }
}

impl ClientHandle {
    /// A sender usable from other threads.
    pub fn sender(&self) -> ClientSender {
        ClientSender(self.tx.clone())
    }

    /// Send an application message on a channel (held across migrations, never lost).
    pub fn send(&self, channel: ChannelRef, msg_type: u16, body: Vec<u8>) {
        let _ = self.tx.send(LoopMsg::Send(channel, msg_type, body));
    }

    /// Wait for the first event not returned by an earlier wait that `pred` accepts (events
    /// seen earlier but not returned count too).
    pub fn wait_event(
        &mut self,
        timeout: Duration,
        what: &str,
        mut pred: impl FnMut(&SessionEvent) -> bool,
    ) -> Result<TimedEvent, ClientError> {
        let deadline = Instant::now() + timeout;
        let mut i = 0;
        loop {
            while i < self.seen.len() {
                if !self.returned.get(i).copied().unwrap_or(false) && pred(&self.seen[i].event) {
                    self.returned.resize(self.seen.len(), false);
                    self.returned[i] = true;
                    return Ok(self.seen[i].clone());
                }
                i += 1;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(e) => self.seen.push(e),
                Err(RecvTimeoutError::Timeout) => {
                    return Err(ClientError::Timeout(timeout, what.to_owned()))
                }
                Err(RecvTimeoutError::Disconnected) => return Err(ClientError::Stopped),
            }
        }
    }

    /// Events received so far through [`ClientHandle::wait_event`] and [`Self::drain`].
    pub fn seen(&self) -> &[TimedEvent] {
        &self.seen
    }

    /// Move every event already emitted into [`Self::seen`].
    pub fn drain(&mut self) {
        while let Ok(e) = self.events.try_recv() {
            self.seen.push(e);
        }
    }

    /// Disconnect and return the report.
    pub fn stop(mut self) -> ClientReport {
        let _ = self.tx.send(LoopMsg::Stop);
        self.join
            .take()
            .and_then(|j| j.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for ClientHandle {
    fn drop(&mut self) {
        let _ = self.tx.send(LoopMsg::Stop);
        if let Some(j) = self.join.take() {
            let _ = j.join();
        }
    }
}

/// Start a client for `cfg` in its own thread.
pub fn spawn(cfg: SessionConfig, opts: ClientOptions) -> ClientHandle {
    let (tx, rx) = mpsc::channel();
    let (etx, erx) = mpsc::channel();
    let loop_tx = tx.clone();
    let join = std::thread::Builder::new()
        .name("livemig-spice".into())
        .spawn(move || Driver::new(cfg, opts, loop_tx, etx).run(rx))
        .ok();
    ClientHandle {
        tx,
        events: erx,
        seen: Vec::new(),
        returned: Vec::new(),
        join,
    }
}

/// A connected byte stream: TCP or unix.
enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    fn try_clone(&self) -> std::io::Result<Stream> {
        Ok(match self {
            Stream::Tcp(s) => Stream::Tcp(s.try_clone()?),
            Stream::Unix(s) => Stream::Unix(s.try_clone()?),
        })
    }
    fn shutdown(&self) {
        let _ = match self {
            Stream::Tcp(s) => s.shutdown(Shutdown::Both),
            Stream::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Unix(s) => s.flush(),
        }
    }
}

struct Link {
    stream: Stream,
    tls: Option<ClientConnection>,
    connected: bool,
}

struct Driver {
    session: Session,
    start: Instant,
    links: BTreeMap<ConnId, Link>,
    pending: VecDeque<SessionInput>,
    tx: Sender<LoopMsg>,
    events: Sender<TimedEvent>,
    report: ClientReport,
    writer: Option<Writer>,
    trust: Option<Trust>,
    opts: ClientOptions,
    stopped: bool,
}

impl Driver {
    fn new(
        cfg: SessionConfig,
        opts: ClientOptions,
        tx: Sender<LoopMsg>,
        events: Sender<TimedEvent>,
    ) -> Driver {
        let writer = opts
            .record
            .then(|| Writer::new(&Setup::SpiceSession(cfg.clone())));
        let trust = opts.ca_pem.as_deref().and_then(|p| Trust::from_pem(p).ok());
        Driver {
            session: Session::new(cfg),
            start: Instant::now(),
            links: BTreeMap::new(),
            pending: VecDeque::new(),
            tx,
            events,
            report: ClientReport::default(),
            writer,
            trust,
            opts,
            stopped: false,
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn run(mut self, rx: Receiver<LoopMsg>) -> ClientReport {
        self.pending.push_back(SessionInput::Start);
        while !self.stopped {
            while let Some(i) = self.pending.pop_front() {
                self.feed(i);
            }
            let now = self.now();
            let wait = match self.session.poll_timeout() {
                Some(t) if t <= now => {
                    self.pending.push_back(SessionInput::Timeout);
                    continue;
                }
                Some(t) => Duration::from_millis((t - now).min(50)),
                None => Duration::from_millis(50),
            };
            match rx.recv_timeout(wait) {
                Ok(LoopMsg::Net { conn, data }) => self.on_net(conn, data),
                Ok(LoopMsg::Send(channel, msg_type, body)) => {
                    self.pending.push_back(SessionInput::Send {
                        channel,
                        msg_type,
                        body: Bytes(body),
                    })
                }
                Ok(LoopMsg::Stop) | Err(RecvTimeoutError::Disconnected) => {
                    self.feed(SessionInput::Disconnect);
                    self.stopped = true;
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
        }
        for (_, l) in std::mem::take(&mut self.links) {
            l.stream.shutdown();
        }
        self.report.trace = self.writer.as_ref().map(Writer::finish);
        self.report
    }

    fn feed(&mut self, input: SessionInput) {
        let now = self.now();
        self.session.handle(now, input.clone());
        let actions: Vec<SessionAction> =
            std::iter::from_fn(|| self.session.poll_action()).collect();
        if let Some(w) = &mut self.writer {
            w.record(now, &input, &actions);
        }
        for a in actions {
            self.execute(a);
        }
    }

    fn execute(&mut self, a: SessionAction) {
        match a {
            SessionAction::Connect {
                conn,
                ref endpoint,
                port,
                ref tls,
                ..
            } => {
                self.report.connects.push(a.clone());
                let (endpoint, tls) = (endpoint.clone(), tls.clone());
                self.open(conn, &endpoint, port, tls.as_ref());
            }
            SessionAction::Transmit { conn, bytes } => self.write(conn, bytes.as_slice()),
            SessionAction::Close { conn } => {
                if let Some(l) = self.links.remove(&conn) {
                    l.stream.shutdown();
                }
            }
            SessionAction::EncryptTicket {
                conn,
                public_key,
                password,
            } => {
                let input = match encrypt_ticket(public_key.as_slice(), &password) {
                    Ok(t) => SessionInput::Ticket {
                        conn,
                        ticket: Bytes(t),
                    },
                    Err(e) => SessionInput::TicketFailed {
                        conn,
                        reason: e.to_string(),
                    },
                };
                self.pending.push_back(input);
            }
            SessionAction::CheckTarget { endpoint } => {
                let allow = (self.opts.policy)(&endpoint);
                self.pending
                    .push_back(SessionInput::TargetDecision { allow });
            }
            SessionAction::Event(event) => {
                let e = TimedEvent {
                    at: Instant::now(),
                    event,
                };
                let _ = self.events.send(e.clone());
                self.report.events.push(e);
            }
        }
    }

    fn open(&mut self, conn: ConnId, endpoint: &Endpoint, port: u16, tls: Option<&Verify>) {
        let fail = |reason: String| SessionInput::ConnectFailed { conn, reason };
        let stream = match self.dial(endpoint, port) {
            Ok(s) => s,
            Err(e) => {
                self.pending.push_back(fail(e));
                return;
            }
        };
        let tls_conn = match tls {
            None => None,
            Some(v) => match self.trust.as_ref().map(|t| t.connect(v, &endpoint.host)) {
                Some(Ok(c)) => Some(c),
                Some(Err(e)) => {
                    self.pending.push_back(fail(e.to_string()));
                    return;
                }
                None => {
                    self.pending
                        .push_back(fail("TLS asked but no CA configured".into()));
                    return;
                }
            },
        };
        let reader = match stream.try_clone() {
            Ok(r) => r,
            Err(e) => {
                self.pending.push_back(fail(e.to_string()));
                return;
            }
        };
        let tx = self.tx.clone();
        let spawned = std::thread::Builder::new()
            .name(format!("livemig-conn-{}", conn.0))
            .spawn(move || read_loop(reader, conn, tx));
        if let Err(e) = spawned {
            self.pending.push_back(fail(e.to_string()));
            return;
        }
        let plain = tls_conn.is_none();
        self.links.insert(
            conn,
            Link {
                stream,
                tls: tls_conn,
                connected: plain,
            },
        );
        if plain {
            self.pending.push_back(SessionInput::Connected { conn });
        } else {
            self.flush_tls(conn);
        }
    }

    fn dial(&self, endpoint: &Endpoint, port: u16) -> Result<Stream, String> {
        if let Some(path) = self
            .opts
            .unix_route
            .as_ref()
            .and_then(|r| r(endpoint, port))
        {
            return UnixStream::connect(&path)
                .map(Stream::Unix)
                .map_err(|e| format!("{}: {e}", path.display()));
        }
        let addr = (endpoint.host.as_str(), port)
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or_else(|| "no address".to_owned())?;
        let s = TcpStream::connect_timeout(&addr, self.opts.connect_timeout)
            .map_err(|e| format!("{addr}: {e}"))?;
        let _ = s.set_nodelay(true);
        Ok(Stream::Tcp(s))
    }

    fn write(&mut self, conn: ConnId, bytes: &[u8]) {
        let Some(l) = self.links.get_mut(&conn) else {
            return;
        };
        let result = match &mut l.tls {
            None => l.stream.write_all(bytes),
            Some(t) => t.writer().write_all(bytes),
        };
        if let Err(e) = result {
            self.lost(conn, e.to_string());
            return;
        }
        self.flush_tls(conn);
    }

    fn flush_tls(&mut self, conn: ConnId) {
        let Some(l) = self.links.get_mut(&conn) else {
            return;
        };
        let Some(t) = &mut l.tls else {
            return;
        };
        while t.wants_write() {
            if let Err(e) = t.write_tls(&mut l.stream) {
                self.lost(conn, e.to_string());
                return;
            }
        }
    }

    fn lost(&mut self, conn: ConnId, reason: String) {
        if let Some(l) = self.links.remove(&conn) {
            l.stream.shutdown();
            let input = if l.connected {
                SessionInput::Closed { conn, reason }
            } else {
                SessionInput::ConnectFailed { conn, reason }
            };
            self.pending.push_back(input);
        }
    }

    fn on_net(&mut self, conn: ConnId, data: Option<Vec<u8>>) {
        let Some(data) = data else {
            self.lost(conn, "connection closed by the server".into());
            return;
        };
        let Some(l) = self.links.get_mut(&conn) else {
            return;
        };
        let Some(t) = &mut l.tls else {
            self.pending.push_back(SessionInput::Received {
                conn,
                bytes: Bytes(data),
            });
            return;
        };
        let mut rd: &[u8] = &data;
        let mut plain = Vec::new();
        let mut failure = None;
        while !rd.is_empty() {
            if let Err(e) = t.read_tls(&mut rd) {
                failure = Some(e.to_string());
                break;
            }
            match t.process_new_packets() {
                Ok(state) => {
                    let n = state.plaintext_bytes_to_read();
                    if n > 0 {
                        let start = plain.len();
                        plain.resize(start + n, 0);
                        if t.reader().read_exact(&mut plain[start..]).is_err() {
                            plain.truncate(start);
                        }
                    }
                }
                Err(e) => {
                    failure = Some(format!("TLS: {e}"));
                    break;
                }
            }
        }
        let became_connected = !l.connected && !t.is_handshaking() && failure.is_none();
        if became_connected {
            l.connected = true;
        }
        self.flush_tls(conn);
        if let Some(reason) = failure {
            self.lost(conn, reason);
            return;
        }
        if became_connected {
            self.pending.push_back(SessionInput::Connected { conn });
        }
        if !plain.is_empty() {
            self.pending.push_back(SessionInput::Received {
                conn,
                bytes: Bytes(plain),
            });
        }
    }
}

fn read_loop(mut stream: Stream, conn: ConnId, tx: Sender<LoopMsg>) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => {
                let _ = tx.send(LoopMsg::Net { conn, data: None });
                return;
            }
            Ok(n) => {
                if tx
                    .send(LoopMsg::Net {
                        conn,
                        data: buf.get(..n).map(<[u8]>::to_vec),
                    })
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}
