//! Simulated SPICE servers (spec/spice-migration.md §5, spec/qemu-spice-interop.md) and a
//! deterministic network that connects them to the client [`Session`].
//!
//! * [`SimServer`] is one spice-server as a sans-IO machine: it accepts the client's bytes
//!   per connection and produces its own ([`ServerOut`]). It runs the link stage with a
//!   fixed fake 162-byte key and a fake ticket ([`fake_ticket`]), MAIN_INIT / CHANNELS_LIST,
//!   SET_ACK / ACK accounting (it stops sending while more than `2 * window` messages are
//!   unacked, as spice-server's `waiting_for_ack`), PINGs, and both sides of a migration:
//!   the source's BEGIN / BEGIN_SEAMLESS, MIGRATE(flags) per channel, FLUSH_MARK →
//!   MIGRATE_DATA, MIGRATE_END, MIGRATE_CANCEL and SWITCH_HOST; the target's handling of a
//!   main link with `connection_id ≠ 0`, pending links, DST_DO_SEAMLESS → ACK / NACK,
//!   MSGC_MIGRATE_DATA checks, and MAIN_INIT after MSGC MIGRATE_END (semi-seamless).
//! * What would make QEMU abort (an unrequested FLUSH_MARK, a bad MIGRATE_DATA magic,
//!   DST_DO_SEAMLESS on a non-target main, …) and every other client protocol mistake is
//!   recorded in [`SimServer::violations`]; a correct client leaves it empty.
//! * [`Network`] owns a [`Session`] and the servers and moves bytes between them in one
//!   global FIFO, so a run is a pure function of its script. It answers the session's host
//!   actions (connect, ticket, policy) and records the trace.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use livemig_core::bytes::Bytes;
use livemig_core::spice::session::{
    ChannelRef, ConnId, Role, Session, SessionAction, SessionConfig, SessionEvent, SessionInput,
    Verify,
};
use livemig_core::spice::wire::consts::{
    common_cap, main_cap, migrate_data_magic, migrate_flags, msg, msgc, ChannelType, LinkErr,
    MIGRATION_PROTOCOL_VERSION, PUB_KEY_LEN, TICKET_LEN,
};
use livemig_core::spice::wire::link::{
    decode_auth_mechanism, decode_ticket, encode_link_result, AUTH_MECHANISM_LEN,
};
use livemig_core::spice::wire::msg::{ChannelId, MainInit, MigrateDataHeader, Ping, SetAck};
use livemig_core::spice::wire::{
    encode_msg, Caps, ClientMsg, Framer, HeaderKind, LinkMess, LinkReply, MigrateFlags, ServerMsg,
};
use livemig_core::trace::{self, Setup, Writer};
use livemig_core::{Machine, Millis};

// ---- fake crypto -----------------------------------------------------------------------

fn xorshift(mut x: u64) -> u64 {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

/// A fixed fake "public key" for a server: 162 bytes shaped like the DER
/// SubjectPublicKeyInfo of an RSA-1024 key (e = 65537) with a modulus derived from `seed`.
pub fn fake_public_key(seed: u8) -> [u8; PUB_KEY_LEN] {
    const PREFIX: [u8; 29] = [
        0x30, 0x81, 0x9f, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01,
        0x01, 0x05, 0x00, 0x03, 0x81, 0x8d, 0x00, 0x30, 0x81, 0x89, 0x02, 0x81, 0x81, 0x00,
    ];
    let mut key = [0u8; PUB_KEY_LEN];
    key[..PREFIX.len()].copy_from_slice(&PREFIX);
    let mut x = 0x9E37_79B9_7F4A_7C15 ^ u64::from(seed);
    for b in &mut key[PREFIX.len()..PUB_KEY_LEN - 5] {
        x = xorshift(x);
        *b = (x >> 24) as u8;
    }
    key[PUB_KEY_LEN - 5..].copy_from_slice(&[0x02, 0x03, 0x01, 0x00, 0x01]);
    key
}

/// The deterministic 128-byte stand-in for RSA-OAEP-SHA1(`password` + NUL) under
/// `public_key`: the test host answers `EncryptTicket` with it and the simulated server
/// checks it the same way.
pub fn fake_ticket(public_key: &[u8], password: &str) -> Vec<u8> {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in public_key.iter().chain(password.as_bytes()).chain(&[0u8]) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    (0..TICKET_LEN)
        .map(|_| {
            h = xorshift(h);
            (h >> 32) as u8
        })
        .collect()
}

// ---- configuration ---------------------------------------------------------------------

/// A migration target as the source announces it (BEGIN, BEGIN_SEAMLESS, SWITCH_HOST), with
/// raw wire ports so 0 and 0xFFFF (QEMU's −1) can be sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DstTarget {
    /// Host.
    pub host: String,
    /// Plain port as on the wire.
    pub port: u16,
    /// TLS port as on the wire.
    pub sport: u16,
    /// Certificate subject.
    pub cert_subject: Option<String>,
}

/// A fault a simulated server injects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerFault {
    /// The host cannot be reached: every connect fails.
    Unreachable,
    /// Connections open but the server never writes a byte (and reads nothing).
    Silent,
    /// The link of this channel is refused in the link reply.
    RefuseLink {
        /// The channel.
        channel: ChannelRef,
        /// The error in the reply.
        error: LinkErr,
    },
    /// DST_DO_SEAMLESS gets a NACK.
    Nack,
    /// DST_DO_SEAMLESS is never answered (the ACK is lost).
    IgnoreDoSeamless,
    /// The nth (1-based) MOUSE_MOTION the server reads is discarded, as if lost on the way.
    LoseMotion(u32),
    /// After sending main's MIGRATE_DATA, the source closes every connection (it aborts).
    AbortAfterMainData,
    /// On FLUSH_MARK of this channel the source sends a PING where MIGRATE_DATA is due.
    NoDataAfterFlush(ChannelType),
}

/// One simulated server.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Name for messages (`src`, `dst`).
    pub name: String,
    /// Host name it answers on.
    pub host: String,
    /// Plain port.
    pub port: Option<u16>,
    /// TLS port (no real TLS: the network only checks the client asked for it).
    pub tls_port: Option<u16>,
    /// Ticket password (`""` with disable-ticketing).
    pub password: String,
    /// Session id a fresh client gets in MAIN_INIT.
    pub session_id: u32,
    /// The channels besides main, in CHANNELS_LIST order.
    pub channels: Vec<ChannelRef>,
    /// QEMU `seamless-migration=on`.
    pub seamless_migration: bool,
    /// Main channel caps word (spice-server: SEMI | SEAMLESS = 0x09).
    pub main_caps: u32,
    /// SET_ACK window (20).
    pub ack_window: u32,
    /// Seed of the fixed fake key.
    pub key_seed: u8,
    /// Padding of the third net-test PING (spice-server: 256000).
    pub net_test_padding: u32,
    /// Injected fault.
    pub fault: Option<ServerFault>,
}

impl ServerConfig {
    /// A spice-server as QEMU runs it with `seamless-migration=on`.
    pub fn new(name: &str, host: &str, port: u16, session_id: u32) -> Self {
        ServerConfig {
            name: name.into(),
            host: host.into(),
            port: Some(port),
            tls_port: None,
            password: String::new(),
            session_id,
            channels: Vec::new(),
            seamless_migration: true,
            main_caps: (1 << main_cap::SEMI_SEAMLESS_MIGRATE) | (1 << main_cap::SEAMLESS_MIGRATE),
            ack_window: 20,
            key_seed: 1,
            net_test_padding: 64,
            fault: None,
        }
    }

    /// The target as this server's source would announce it (absent ports as 0xFFFF).
    pub fn as_target(&self) -> DstTarget {
        DstTarget {
            host: self.host.clone(),
            port: self.port.unwrap_or(0xFFFF),
            sport: self.tls_port.unwrap_or(0xFFFF),
            cert_subject: None,
        }
    }
}

/// The MIGRATE flags spice-server's channel sends (§2 table).
pub fn migrate_flags_of(kind: ChannelType) -> u32 {
    match kind {
        ChannelType::Main
        | ChannelType::Display
        | ChannelType::Inputs
        | ChannelType::Smartcard
        | ChannelType::Usbredir
        | ChannelType::Port
        | ChannelType::Webdav => migrate_flags::MASK,
        _ => 0,
    }
}

/// Whether a client message type is session traffic the session sends by itself (as
/// opposed to the application's messages): common messages, main's migration and
/// ATTACH_CHANNELS, and DISPLAY_INIT (`SessionConfig::display_init`).
pub fn is_session_msg(kind: ChannelType, msg_type: u16) -> bool {
    use msgc::main as m;
    msg_type < msg::BASE_LAST
        || (kind == ChannelType::Display && msg_type == msgc::display::INIT)
        || (kind == ChannelType::Main
            && matches!(
                msg_type,
                m::MIGRATE_CONNECTED
                    | m::MIGRATE_CONNECT_ERROR
                    | m::ATTACH_CHANNELS
                    | m::MIGRATE_END
                    | m::MIGRATE_DST_DO_SEAMLESS
                    | m::MIGRATE_CONNECTED_SEAMLESS
            ))
}

/// Message type of the display "drawing" messages a burst sends (DRAW_FILL).
pub const DRAW_MSG: u16 = 302;
/// CURSOR_INIT.
const CURSOR_INIT: u16 = 101;

// ---- server ----------------------------------------------------------------------------

/// What a server writes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerOut {
    /// Bytes to the client on `conn`.
    Bytes {
        /// The connection.
        conn: ConnId,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The server closes `conn`.
    Close {
        /// The connection.
        conn: ConnId,
    },
}

/// A data message the server read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Got {
    /// The network tick it was read at (global order across servers).
    pub tick: u64,
    /// The connection.
    pub conn: ConnId,
    /// Its channel.
    pub channel: ChannelRef,
    /// Message type.
    pub msg_type: u16,
    /// Body.
    pub body: Vec<u8>,
    /// Discarded by [`ServerFault::LoseMotion`].
    pub lost: bool,
}

/// One link attempt as the server saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkSeen {
    /// The connection.
    pub conn: ConnId,
    /// The channel.
    pub channel: ChannelRef,
    /// `connection_id` of the link message.
    pub connection_id: u32,
    /// The link result (or the reply's error).
    pub result: LinkErr,
}

/// The source's view of the migration (spice-server `reds` state).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SrcMig {
    /// Nothing announced.
    Idle,
    /// BEGIN (seamless = false) or BEGIN_SEAMLESS sent; waiting for the client's reply.
    Connecting {
        /// BEGIN_SEAMLESS was sent.
        seamless: bool,
    },
    /// The client linked the target (`mig_connect_ok`).
    Connected {
        /// CONNECTED_SEAMLESS (`src_do_seamless_migrate`).
        seamless: bool,
    },
    /// CONNECT_ERROR received.
    ConnectFailed,
    /// MIGRATE sent on every channel.
    Switching,
    /// MIGRATE_END or SWITCH_HOST sent.
    Ended,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum LinkStage {
    Mess,
    Mechanism,
    Ticket,
    Data,
}

#[derive(Clone, Copy, Debug, Default)]
struct AckState {
    enabled: bool,
    generation: u32,
    client_generation: u32,
    window: u32,
    messages_window: u32,
}

#[derive(Clone, Debug)]
struct SConn {
    stage: LinkStage,
    rx: Vec<u8>,
    channel: ChannelRef,
    connection_id: u32,
    client_common: Caps,
    client_caps: Caps,
    kind: HeaderKind,
    serial: u64,
    /// Linked to a target before the handshake: neither read nor written yet.
    pending: bool,
    ack: AckState,
    blocked: VecDeque<Vec<u8>>,
    /// MIGRATE(flags) sent.
    migrate_flags: Option<u32>,
    flush_mark: bool,
    /// A seamless target channel waiting for MSGC_MIGRATE_DATA.
    awaiting_data: bool,
}

#[derive(Clone, Debug)]
struct Client {
    session_id: u32,
    main: ConnId,
    main_caps: Caps,
    /// A migration target (main linked with connection_id ≠ 0) until the switch ends.
    target: bool,
    seamless: bool,
}

/// One simulated spice-server (see the module docs).
#[derive(Clone, Debug)]
pub struct SimServer {
    /// Its configuration.
    pub cfg: ServerConfig,
    conns: BTreeMap<ConnId, SConn>,
    out: VecDeque<ServerOut>,
    client: Option<Client>,
    /// The source side of the migration.
    pub mig: SrcMig,
    /// Where BEGIN pointed (SWITCH_HOST reuses it).
    pub target: Option<DstTarget>,
    tick: u64,
    generation: u32,
    ping_id: u32,
    motion_count: u32,
    motions_read: u32,
    /// Inputs: MOUSE_MOTION acks withheld (source during a seamless migration).
    src_during_migrate: bool,
    /// Every data message read, in order.
    pub log: Vec<Got>,
    /// Client behaviour that would abort QEMU or break the protocol.
    pub violations: Vec<String>,
    /// Softer oddities (spice-server only warns).
    pub notes: Vec<String>,
    /// Every link attempt.
    pub links: Vec<LinkSeen>,
    /// Connections the client closed, in order.
    pub closed_by_client: Vec<ConnId>,
    /// MOUSE_MOTION_ACKs sent.
    pub motion_acks: u32,
    /// MIGRATE_DATA bodies sent (source).
    pub migrate_data_sent: Vec<(ChannelRef, Vec<u8>)>,
    /// MSGC_MIGRATE_DATA bodies accepted (target).
    pub migrate_data_received: Vec<(ChannelRef, Vec<u8>)>,
    /// The client's answers to BEGIN on main (102, 103, 111).
    pub replies: Vec<u16>,
    /// Largest number of unacked messages on any connection.
    pub max_unacked: u32,
    /// Messages sent per channel (after the link).
    pub sent: BTreeMap<ChannelRef, u32>,
    /// The link-stage connections that got a link reply, by accept order.
    accepted: Vec<ConnId>,
    /// The id of the last PING per connection.
    last_ping: BTreeMap<ConnId, u32>,
    /// PONGs read: (connection, ping id).
    pub pongs: Vec<(ConnId, u32)>,
}

impl SimServer {
    /// A server with no connection.
    pub fn new(cfg: ServerConfig) -> Self {
        SimServer {
            cfg,
            conns: BTreeMap::new(),
            out: VecDeque::new(),
            client: None,
            mig: SrcMig::Idle,
            target: None,
            tick: 0,
            generation: 0,
            ping_id: 0,
            motion_count: 0,
            motions_read: 0,
            src_during_migrate: false,
            log: Vec::new(),
            violations: Vec::new(),
            notes: Vec::new(),
            links: Vec::new(),
            closed_by_client: Vec::new(),
            motion_acks: 0,
            migrate_data_sent: Vec::new(),
            migrate_data_received: Vec::new(),
            replies: Vec::new(),
            max_unacked: 0,
            sent: BTreeMap::new(),
            accepted: Vec::new(),
            last_ping: BTreeMap::new(),
            pongs: Vec::new(),
        }
    }

    /// Whether `host:port` reaches this server, and whether that port is its TLS port.
    pub fn listens(&self, host: &str, port: u16) -> Option<bool> {
        if host != self.cfg.host {
            return None;
        }
        if self.cfg.tls_port == Some(port) {
            Some(true)
        } else if self.cfg.port == Some(port) {
            Some(false)
        } else {
            None
        }
    }

    fn violation(&mut self, what: String) {
        let v = format!("{}: {what}", self.cfg.name);
        self.violations.push(v);
    }

    /// The session id of the current client, if any.
    pub fn session_id(&self) -> Option<u32> {
        self.client.as_ref().map(|c| c.session_id)
    }

    /// Whether the current client came in as a migration target.
    pub fn client_is_target(&self) -> bool {
        self.client.as_ref().is_some_and(|c| c.target)
    }

    /// Open connections.
    pub fn open_conns(&self) -> Vec<ConnId> {
        self.conns.keys().copied().collect()
    }

    /// The application messages read on channels of `kind`, in order (lost ones excluded).
    pub fn app_messages(&self, kind: ChannelType) -> Vec<(u16, Vec<u8>)> {
        self.log
            .iter()
            .filter(|g| g.channel.kind == kind && !g.lost && !is_session_msg(kind, g.msg_type))
            .map(|g| (g.msg_type, g.body.clone()))
            .collect()
    }

    /// The messages read on connection `conn`, in order.
    pub fn log_of(&self, conn: ConnId) -> Vec<&Got> {
        self.log.iter().filter(|g| g.conn == conn).collect()
    }

    /// The next thing the server writes.
    pub fn poll_output(&mut self) -> Option<ServerOut> {
        self.out.pop_front()
    }

    /// A client connection opened.
    pub fn accept(&mut self, conn: ConnId) {
        self.accepted.push(conn);
        self.conns.insert(
            conn,
            SConn {
                stage: LinkStage::Mess,
                rx: Vec::new(),
                channel: ChannelRef::MAIN,
                connection_id: 0,
                client_common: Caps::new(),
                client_caps: Caps::new(),
                kind: HeaderKind::Full,
                serial: 0,
                pending: false,
                ack: AckState::default(),
                blocked: VecDeque::new(),
                migrate_flags: None,
                flush_mark: false,
                awaiting_data: false,
            },
        );
    }

    /// The connection most recently accepted (e.g. for raw bytes during the link stage).
    pub fn latest_conn(&self) -> Option<ConnId> {
        self.accepted
            .iter()
            .rev()
            .copied()
            .find(|c| self.conns.contains_key(c))
    }

    /// The open data-stage connection of `channel`.
    pub fn conn_of(&self, channel: ChannelRef) -> Option<ConnId> {
        self.conns
            .iter()
            .rev()
            .find(|(_, c)| c.channel == channel && c.stage == LinkStage::Data)
            .map(|(id, _)| *id)
    }

    /// Bytes from the client on `conn`, read at network tick `tick`.
    pub fn receive(&mut self, tick: u64, conn: ConnId, bytes: &[u8]) {
        self.tick = tick;
        if self.cfg.fault == Some(ServerFault::Silent) {
            return;
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.rx.extend_from_slice(bytes);
        self.process(conn);
    }

    /// The client closed `conn`.
    pub fn client_closed(&mut self, tick: u64, conn: ConnId) {
        self.tick = tick;
        if self.conns.remove(&conn).is_none() {
            return;
        }
        self.closed_by_client.push(conn);
        if self.client.as_ref().is_some_and(|c| c.main == conn) {
            // The main channel's client is gone: spice-server drops its other channels.
            self.drop_client();
        }
    }

    fn close(&mut self, conn: ConnId) {
        if self.conns.remove(&conn).is_some() {
            self.out.push_back(ServerOut::Close { conn });
        }
    }

    fn drop_client(&mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let ids: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.stage == LinkStage::Data && c.connection_id == client.session_id)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            self.close(id);
        }
        if client.main != ConnId(0) {
            self.close(client.main);
        }
        self.mig = SrcMig::Idle;
        self.src_during_migrate = false;
    }

    /// The server dies: every connection closes.
    pub fn abort(&mut self) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close(id);
        }
        self.client = None;
    }

    fn write(&mut self, conn: ConnId, bytes: Vec<u8>) {
        if !bytes.is_empty() {
            self.out.push_back(ServerOut::Bytes { conn, bytes });
        }
    }

    /// Send a message, subject to ack flow control.
    fn send(&mut self, conn: ConnId, m: &ServerMsg<'_>) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.serial += 1;
        let mut buf = Vec::new();
        if encode_msg(c.kind, c.serial, m, &mut buf).is_err() {
            return;
        }
        *self.sent.entry(c.channel).or_default() += 1;
        if c.ack.enabled && (!c.blocked.is_empty() || c.ack.messages_window > 2 * c.ack.window) {
            c.blocked.push_back(buf);
            return;
        }
        if c.ack.enabled {
            c.ack.messages_window += 1;
            self.max_unacked = self.max_unacked.max(c.ack.messages_window);
        }
        self.write(conn, buf);
    }

    fn send_set_ack(&mut self, conn: ConnId) {
        self.generation += 1;
        let generation = self.generation;
        let window = self.cfg.ack_window;
        if let Some(c) = self.conns.get_mut(&conn) {
            c.ack = AckState {
                enabled: true,
                generation,
                client_generation: c.ack.client_generation,
                window,
                messages_window: 0,
            };
        }
        self.send(conn, &ServerMsg::SetAck(SetAck { generation, window }));
    }

    fn on_ack(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !c.ack.enabled || c.ack.client_generation != c.ack.generation {
            return;
        }
        c.ack.messages_window = c.ack.messages_window.saturating_sub(c.ack.window);
        let mut ready = Vec::new();
        while c.ack.messages_window <= 2 * c.ack.window {
            let Some(buf) = c.blocked.pop_front() else {
                break;
            };
            c.ack.messages_window += 1;
            self.max_unacked = self.max_unacked.max(c.ack.messages_window);
            ready.push(buf);
        }
        for buf in ready {
            self.write(conn, buf);
        }
    }

    /// Send a PING on `channel` (padding bytes after the fixed part).
    pub fn ping(&mut self, channel: ChannelRef, padding_len: u32) {
        if let Some(conn) = self.conn_of(channel) {
            self.ping_on(conn, padding_len);
        }
    }

    /// Whether the last PING on `channel`'s connection got its PONG.
    pub fn ping_answered(&self, channel: ChannelRef) -> bool {
        let Some(conn) = self.conn_of(channel) else {
            return false;
        };
        self.last_ping
            .get(&conn)
            .is_some_and(|id| self.pongs.contains(&(conn, *id)))
    }

    fn ping_on(&mut self, conn: ConnId, padding_len: u32) {
        self.ping_id += 1;
        self.last_ping.insert(conn, self.ping_id);
        let p = Ping {
            id: self.ping_id,
            timestamp: 1_000_000 + u64::from(self.ping_id),
            padding_len,
        };
        self.send(conn, &ServerMsg::Ping(p));
    }

    /// `count` display drawing messages on `channel` (flow-controlled).
    pub fn burst(&mut self, channel: ChannelRef, count: u32) {
        let Some(conn) = self.conn_of(channel) else {
            return;
        };
        for i in 0..count {
            let body = i.to_le_bytes();
            self.send(
                conn,
                &ServerMsg::Other {
                    msg_type: DRAW_MSG,
                    body: &body,
                },
            );
        }
    }

    /// Raw bytes to the client on `conn` (hostile input).
    pub fn send_raw(&mut self, conn: ConnId, bytes: Vec<u8>) {
        if self.conns.contains_key(&conn) {
            self.write(conn, bytes);
        }
    }

    // ---- link stage --------------------------------------------------------------------

    fn process(&mut self, conn: ConnId) {
        loop {
            let Some(c) = self.conns.get_mut(&conn) else {
                return;
            };
            match c.stage {
                LinkStage::Mess => match LinkMess::decode(&c.rx) {
                    Ok(None) => return,
                    Ok(Some((mess, used))) => {
                        c.rx.drain(..used);
                        self.on_link_mess(conn, mess);
                    }
                    Err(e) => {
                        self.violation(format!("bad link message: {e}"));
                        self.link_error(conn, LinkErr::InvalidData);
                        return;
                    }
                },
                LinkStage::Mechanism => {
                    let Some(mech) = decode_auth_mechanism(&c.rx) else {
                        return;
                    };
                    c.rx.drain(..AUTH_MECHANISM_LEN);
                    c.stage = LinkStage::Ticket;
                    if mech != 1 {
                        self.violation(format!("auth mechanism {mech}"));
                        self.link_result(conn, LinkErr::InvalidData);
                        return;
                    }
                }
                LinkStage::Ticket => {
                    let Some(ticket) = decode_ticket(&c.rx) else {
                        return;
                    };
                    let good = ticket.as_slice()
                        == fake_ticket(&fake_public_key(self.cfg.key_seed), &self.cfg.password);
                    c.rx.drain(..TICKET_LEN);
                    c.stage = LinkStage::Data;
                    if good {
                        self.on_linked(conn);
                    } else {
                        self.link_result(conn, LinkErr::PermissionDenied);
                        return;
                    }
                }
                LinkStage::Data => {
                    if c.pending {
                        return;
                    }
                    let framer = Framer::new(c.kind);
                    let (msg_type, body, used) = match framer.decode(&c.rx) {
                        Ok(None) => return,
                        Ok(Some(f)) => (f.msg_type, f.body.to_vec(), f.consumed),
                        Err(e) => {
                            self.violation(format!("bad framing from the client: {e}"));
                            self.close(conn);
                            return;
                        }
                    };
                    c.rx.drain(..used);
                    self.on_message(conn, msg_type, body);
                }
            }
        }
    }

    fn link_error(&mut self, conn: ConnId, error: LinkErr) {
        let mut out = Vec::new();
        if LinkReply::error_reply(error).encode(&mut out).is_ok() {
            self.write(conn, out);
        }
        self.close(conn);
    }

    /// Write a link result; anything but OK closes the connection.
    fn link_result(&mut self, conn: ConnId, result: LinkErr) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        self.links.push(LinkSeen {
            conn,
            channel: c.channel,
            connection_id: c.connection_id,
            result,
        });
        let mut out = Vec::new();
        encode_link_result(result, &mut out);
        self.write(conn, out);
        if result != LinkErr::Ok {
            self.close(conn);
        }
    }

    fn on_link_mess(&mut self, conn: ConnId, mess: LinkMess) {
        let channel = ChannelRef {
            kind: mess.channel_type,
            id: mess.channel_id,
        };
        if let Some(ServerFault::RefuseLink { channel: ch, error }) = &self.cfg.fault {
            if *ch == channel {
                let error = *error;
                self.links.push(LinkSeen {
                    conn,
                    channel,
                    connection_id: mess.connection_id,
                    result: error,
                });
                self.link_error(conn, error);
                return;
            }
        }
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.channel = channel;
        c.connection_id = mess.connection_id;
        c.kind = if mess.common_caps.test(common_cap::MINI_HEADER) {
            HeaderKind::Mini
        } else {
            HeaderKind::Full
        };
        c.stage = if mess.common_caps.test(common_cap::PROTOCOL_AUTH_SELECTION) {
            LinkStage::Mechanism
        } else {
            LinkStage::Ticket
        };
        c.client_common = mess.common_caps;
        c.client_caps = mess.channel_caps;
        let channel_caps = match channel.kind {
            ChannelType::Main => Caps::single(self.cfg.main_caps),
            ChannelType::Inputs => Caps::single(1),
            _ => Caps::new(),
        };
        let reply = LinkReply {
            error: LinkErr::Ok,
            pub_key: fake_public_key(self.cfg.key_seed),
            common_caps: Caps::single(0x0b),
            channel_caps,
        };
        let mut out = Vec::new();
        if reply.encode(&mut out).is_ok() {
            self.write(conn, out);
        }
    }

    /// Ticket accepted: the link result and the channel's start (`reds_handle_main_link`,
    /// `reds_handle_other_links`).
    fn on_linked(&mut self, conn: ConnId) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let (channel, cid, caps) = (c.channel, c.connection_id, c.client_caps.clone());
        if channel.kind == ChannelType::Main {
            // A main link replaces any client (single-client mode).
            if let Some(old) = self.client.as_ref().map(|c| c.main) {
                if old != conn {
                    self.drop_client();
                }
            }
            let target = cid != 0;
            self.client = Some(Client {
                session_id: if target { cid } else { self.cfg.session_id },
                main: conn,
                main_caps: caps,
                target,
                seamless: false,
            });
            self.link_result(conn, LinkErr::Ok);
            if !target {
                self.send_main_init(conn);
                self.send(conn, &ServerMsg::Name(self.cfg.name.clone()));
                self.send(conn, &ServerMsg::Uuid([self.cfg.key_seed; 16]));
                self.ping_on(conn, 0);
                self.ping_on(conn, 0);
                self.ping_on(conn, self.cfg.net_test_padding);
            }
            return;
        }
        let Some(client) = self.client.as_ref().filter(|c| c.session_id == cid) else {
            self.link_result(conn, LinkErr::BadConnectionId);
            return;
        };
        if !self.cfg.channels.contains(&channel) {
            self.link_result(conn, LinkErr::ChannelNotAvailable);
            return;
        }
        let pending = client.target && !client.seamless;
        self.link_result(conn, LinkErr::Ok);
        if pending {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.pending = true;
            }
        } else {
            self.start_channel(conn);
        }
    }

    fn send_main_init(&mut self, conn: ConnId) {
        let session_id = self.session_id().unwrap_or(self.cfg.session_id);
        let init = MainInit {
            session_id,
            display_channels_hint: 1,
            supported_mouse_modes: 3,
            current_mouse_mode: 1,
            agent_connected: 0,
            agent_tokens: 10,
            multi_media_time: 1000,
            ram_hint: 50_323_456,
        };
        self.send(conn, &ServerMsg::MainInit(init));
    }

    /// A (non-main) channel starts: its first messages, and on a seamless target it waits
    /// for MSGC_MIGRATE_DATA (`handle_migrate_data_early`).
    fn start_channel(&mut self, conn: ConnId) {
        let seamless_target = self.client.as_ref().is_some_and(|c| c.target && c.seamless);
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.pending = false;
        let kind = c.channel.kind;
        if seamless_target && migrate_flags_of(kind) & migrate_flags::NEED_DATA_TRANSFER != 0 {
            c.awaiting_data = true;
        }
        match kind {
            ChannelType::Display => self.send_set_ack(conn),
            ChannelType::Cursor => {
                self.send_set_ack(conn);
                self.send(
                    conn,
                    &ServerMsg::Other {
                        msg_type: CURSOR_INIT,
                        body: &[0; 9],
                    },
                );
            }
            ChannelType::Inputs => self.send(conn, &ServerMsg::InputsInit(0)),
            _ => {}
        }
        // Whatever the client sent while the link was pending.
        self.process(conn);
    }

    // ---- data stage --------------------------------------------------------------------

    fn on_message(&mut self, conn: ConnId, msg_type: u16, body: Vec<u8>) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        let channel = c.channel;
        let (awaiting, flush_mark) = (c.awaiting_data, c.flush_mark);
        self.log.push(Got {
            tick: self.tick,
            conn,
            channel,
            msg_type,
            body: body.clone(),
            lost: false,
        });
        if awaiting && msg_type != msgc::MIGRATE_DATA {
            self.violation(format!(
                "{channel:?}: message {msg_type} on the target before MSGC_MIGRATE_DATA"
            ));
        }
        if flush_mark && (msg_type >= msg::BASE_LAST || msg_type == msgc::MIGRATE_DATA) {
            self.violation(format!(
                "{channel:?}: data message {msg_type} on the source after FLUSH_MARK"
            ));
        }
        let m = match ClientMsg::decode(channel.kind, msg_type, &body) {
            Ok(m) => m,
            Err(e) => {
                self.violation(format!("{channel:?}: undecodable message {msg_type}: {e}"));
                return;
            }
        };
        match m {
            ClientMsg::AckSync(g) => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.ack.client_generation = g;
                }
            }
            ClientMsg::Ack => self.on_ack(conn),
            ClientMsg::Pong(p) => self.pongs.push((conn, p.id)),
            ClientMsg::MigrateFlushMark => self.on_flush_mark(conn, channel),
            ClientMsg::MigrateData(data) => self.on_migrate_data(conn, channel, data),
            ClientMsg::Disconnecting(_) => self.notes.push(format!("{channel:?}: DISCONNECTING")),
            ClientMsg::AttachChannels => {
                if self.client_is_target() || self.came_as_target(conn) {
                    self.violation("ATTACH_CHANNELS on a migration target".into());
                }
                let list: Vec<ChannelId> = self
                    .cfg
                    .channels
                    .iter()
                    .map(|c| ChannelId {
                        channel_type: c.kind,
                        id: c.id,
                    })
                    .collect();
                self.send(conn, &ServerMsg::ChannelsList(list));
            }
            ClientMsg::MigrateConnected
            | ClientMsg::MigrateConnectedSeamless
            | ClientMsg::MigrateConnectError => self.on_connect_reply(msg_type),
            ClientMsg::MigrateDstDoSeamless(v) => self.on_do_seamless(conn, v),
            ClientMsg::MigrateEnd => self.on_client_migrate_end(conn),
            ClientMsg::MouseMotion(_) => self.on_motion(conn),
            _ => {}
        }
    }

    fn came_as_target(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.channel.kind == ChannelType::Main && c.connection_id != 0)
    }

    fn on_motion(&mut self, conn: ConnId) {
        self.motions_read += 1;
        if self.cfg.fault == Some(ServerFault::LoseMotion(self.motions_read)) {
            if let Some(g) = self.log.last_mut() {
                g.lost = true;
            }
            return;
        }
        self.motion_count += 1;
        // spice-server `on_mouse_motion`: ack every 4th, withheld on a migrating source.
        if self.motion_count.checked_rem(4) == Some(0) && !self.src_during_migrate {
            self.motion_count = 0;
            self.send_motion_ack(conn);
        }
    }

    fn send_motion_ack(&mut self, conn: ConnId) {
        self.motion_acks += 1;
        self.send(conn, &ServerMsg::InputsMouseMotionAck);
    }

    fn on_connect_reply(&mut self, msg_type: u16) {
        self.replies.push(msg_type);
        let SrcMig::Connecting { seamless } = self.mig else {
            self.violation(format!("migration reply {msg_type} without a BEGIN"));
            return;
        };
        self.mig = match msg_type {
            msgc::main::MIGRATE_CONNECTED_SEAMLESS => {
                if !seamless {
                    self.violation("CONNECTED_SEAMLESS after a plain BEGIN".into());
                }
                self.src_during_migrate = true;
                SrcMig::Connected { seamless: true }
            }
            msgc::main::MIGRATE_CONNECTED => SrcMig::Connected { seamless: false },
            _ => SrcMig::ConnectFailed,
        };
    }

    fn on_do_seamless(&mut self, conn: ConnId, version: u32) {
        let is_target = self
            .client
            .as_ref()
            .is_some_and(|c| c.target && c.main == conn);
        if !is_target {
            self.violation("DST_DO_SEAMLESS on a non-target main (QEMU aborts)".into());
            return;
        }
        match self.cfg.fault {
            Some(ServerFault::IgnoreDoSeamless) => return,
            Some(ServerFault::Nack) => {
                self.send(conn, &ServerMsg::MigrateDstSeamlessNack);
                return;
            }
            _ => {}
        }
        if version > MIGRATION_PROTOCOL_VERSION {
            self.send(conn, &ServerMsg::MigrateDstSeamlessNack);
            return;
        }
        if let Some(c) = self.client.as_mut() {
            c.seamless = true;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.awaiting_data = true;
        }
        self.activate_pending();
        self.send(conn, &ServerMsg::MigrateDstSeamlessAck);
    }

    fn activate_pending(&mut self) {
        let pending: Vec<ConnId> = self
            .conns
            .iter()
            .filter(|(_, c)| c.pending)
            .map(|(id, _)| *id)
            .collect();
        for id in pending {
            self.start_channel(id);
        }
    }

    /// MSGC MIGRATE_END on a semi-seamless target (`semi_seamless_migrate_complete`).
    fn on_client_migrate_end(&mut self, conn: ConnId) {
        let ok = self.client.as_ref().is_some_and(|c| {
            c.target
                && !c.seamless
                && c.main == conn
                && c.main_caps.test(main_cap::SEMI_SEAMLESS_MIGRATE)
        });
        if !ok {
            self.notes.push("unexpected MSGC MIGRATE_END".into());
            return;
        }
        if let Some(c) = self.client.as_mut() {
            c.target = false;
        }
        self.send_main_init(conn);
        self.ping_on(conn, 0);
        self.activate_pending();
    }

    /// Whether every seamless target channel has its data; then the target state ends.
    fn check_target_done(&mut self) {
        let waiting = self.conns.values().any(|c| c.awaiting_data || c.pending);
        if !waiting {
            if let Some(c) = self.client.as_mut() {
                c.target = false;
            }
        }
    }

    fn on_migrate_data(&mut self, conn: ConnId, channel: ChannelRef, data: &[u8]) {
        let awaiting = self.conns.get(&conn).is_some_and(|c| c.awaiting_data);
        if !awaiting {
            self.violation(format!(
                "{channel:?}: MSGC_MIGRATE_DATA on a channel not waiting for it (channel shutdown)"
            ));
            self.close(conn);
            return;
        }
        if let Err(e) = MigrateDataHeader::validate_for(channel.kind, data) {
            self.violation(format!("{channel:?}: bad MIGRATE_DATA (QEMU aborts): {e}"));
            return;
        }
        if let Some(c) = self.conns.get_mut(&conn) {
            c.awaiting_data = false;
        }
        self.migrate_data_received.push((channel, data.to_vec()));
        match channel.kind {
            ChannelType::Main => self.send(conn, &ServerMsg::MultiMediaTime(2000)),
            ChannelType::Inputs => {
                // `inputs_channel_handle_migrate_data`: restore the count, ack whole bunches.
                let count = data
                    .get(8..10)
                    .map_or(0, |b| u32::from(u16::from_le_bytes([b[0], b[1]])));
                self.motion_count = count;
                for _ in 0..count / 4 {
                    self.send_motion_ack(conn);
                }
                self.send(conn, &ServerMsg::InputsKeyModifiers(0));
            }
            _ => {}
        }
        self.check_target_done();
    }

    fn migrate_data_body(&self, kind: ChannelType) -> Vec<u8> {
        let magic = kind
            .migrate_data_magic()
            .unwrap_or(migrate_data_magic::SPICEVMC);
        let mut b = Vec::new();
        b.extend_from_slice(&magic.to_le_bytes());
        b.extend_from_slice(&MIGRATION_PROTOCOL_VERSION.to_le_bytes());
        match kind {
            ChannelType::Main => {
                // SpiceMigrateDataMain, 57 bytes: char-device state, agent state.
                let mut m = [0u8; 57];
                m[0] = 1;
                m[5..9].copy_from_slice(&10u32.to_le_bytes());
                m[56] = self.cfg.key_seed;
                b.extend_from_slice(&m);
            }
            ChannelType::Inputs => {
                let count = u16::try_from(self.motion_count).unwrap_or(u16::MAX);
                b.extend_from_slice(&count.to_le_bytes());
            }
            ChannelType::Display => {
                // message_serial u64, low_bandwidth u8, … (opaque to the client).
                let serial = self.sent.get(&ChannelRef { kind, id: 0 });
                b.extend_from_slice(&u64::from(serial.copied().unwrap_or(0)).to_le_bytes());
                b.extend_from_slice(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
            }
            _ => b.extend_from_slice(&[0; 8]),
        }
        b
    }

    fn on_flush_mark(&mut self, conn: ConnId, channel: ChannelRef) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let flags = c.migrate_flags.unwrap_or(0);
        if flags & migrate_flags::NEED_FLUSH == 0 || c.flush_mark {
            self.violation(format!("{channel:?}: unrequested FLUSH_MARK (QEMU aborts)"));
            return;
        }
        c.flush_mark = true;
        if flags & migrate_flags::NEED_DATA_TRANSFER == 0 {
            return;
        }
        if self.cfg.fault == Some(ServerFault::NoDataAfterFlush(channel.kind)) {
            self.ping_on(conn, 0);
            return;
        }
        let data = self.migrate_data_body(channel.kind);
        self.migrate_data_sent.push((channel, data.clone()));
        self.send(conn, &ServerMsg::MigrateData(&data));
        if channel.kind == ChannelType::Main
            && self.cfg.fault == Some(ServerFault::AbortAfterMainData)
        {
            self.abort();
        }
    }

    // ---- source commands ----------------------------------------------------------------

    /// `client_migrate_info`: announce `target` (`spice_server_migrate_connect`):
    /// BEGIN_SEAMLESS if seamless is enabled and the client has AGENT_CONNECTED_TOKENS and
    /// SEAMLESS, else BEGIN if it has SEMI_SEAMLESS, else nothing.
    pub fn begin(&mut self, target: DstTarget) {
        self.target = Some(target.clone());
        let Some(client) = self.client.clone() else {
            return;
        };
        let caps = &client.main_caps;
        let try_seamless =
            self.cfg.seamless_migration && caps.test(main_cap::AGENT_CONNECTED_TOKENS);
        if try_seamless && caps.test(main_cap::SEAMLESS_MIGRATE) {
            let body = dst_info_body(&target, Some(MIGRATION_PROTOCOL_VERSION));
            self.send(
                client.main,
                &ServerMsg::Other {
                    msg_type: msg::main::MIGRATE_BEGIN_SEAMLESS,
                    body: &body,
                },
            );
            self.mig = SrcMig::Connecting { seamless: true };
        } else if caps.test(main_cap::SEMI_SEAMLESS_MIGRATE) {
            let body = dst_info_body(&target, None);
            self.send(
                client.main,
                &ServerMsg::Other {
                    msg_type: msg::main::MIGRATE_BEGIN,
                    body: &body,
                },
            );
            self.mig = SrcMig::Connecting { seamless: false };
        }
    }

    /// The VM migration ended (`spice_server_migrate_end`): on success MIGRATE per channel
    /// (seamless), MIGRATE_END (semi-seamless) or SWITCH_HOST; on failure MIGRATE_CANCEL.
    pub fn end(&mut self, completed: bool) {
        let Some(client) = self.client.clone() else {
            return;
        };
        let connected = matches!(self.mig, SrcMig::Connected { .. });
        if !completed {
            if connected {
                self.send(client.main, &ServerMsg::MigrateCancel);
            }
            self.mig = SrcMig::Idle;
            self.src_during_migrate = false;
            return;
        }
        match self.mig {
            SrcMig::Connected { seamless: true } => {
                let ids: Vec<ConnId> = self
                    .conns
                    .iter()
                    .filter(|(_, c)| c.stage == LinkStage::Data)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    let Some(c) = self.conns.get_mut(&id) else {
                        continue;
                    };
                    let flags = migrate_flags_of(c.channel.kind);
                    c.migrate_flags = Some(flags);
                    self.send(id, &ServerMsg::Migrate(MigrateFlags(flags)));
                }
                self.mig = SrcMig::Switching;
            }
            SrcMig::Connected { seamless: false }
                if client.main_caps.test(main_cap::SEMI_SEAMLESS_MIGRATE) =>
            {
                self.send(client.main, &ServerMsg::MigrateEnd);
                self.mig = SrcMig::Ended;
            }
            _ => {
                if let Some(t) = self.target.clone() {
                    self.switch_host(&t);
                }
            }
        }
    }

    /// MIGRATE_CANCEL on main (e.g. a repeated `client_migrate_info`).
    pub fn cancel(&mut self) {
        if let Some(main) = self.client.as_ref().map(|c| c.main) {
            self.send(main, &ServerMsg::MigrateCancel);
        }
        self.mig = SrcMig::Idle;
        self.src_during_migrate = false;
    }

    /// SWITCH_HOST on main.
    pub fn switch_host(&mut self, target: &DstTarget) {
        if let Some(main) = self.client.as_ref().map(|c| c.main) {
            let body = dst_info_body(target, None);
            self.send(
                main,
                &ServerMsg::Other {
                    msg_type: msg::main::MIGRATE_SWITCH_HOST,
                    body: &body,
                },
            );
        }
        self.mig = SrcMig::Ended;
    }
}

/// A DstInfo body (§3) with raw ports: 20 fixed bytes (+ `src_mig_version` for
/// BEGIN_SEAMLESS), the host at the end of the fixed part, the subject after it.
pub fn dst_info_body(t: &DstTarget, version: Option<u32>) -> Vec<u8> {
    let fixed: u32 = if version.is_some() { 24 } else { 20 };
    let host_size = t.host.len() as u32 + 1;
    let subject_size = t.cert_subject.as_ref().map_or(0, |s| s.len() as u32 + 1);
    let subject_ptr = if t.cert_subject.is_some() {
        fixed + host_size
    } else {
        0
    };
    let mut b = Vec::new();
    b.extend_from_slice(&t.port.to_le_bytes());
    b.extend_from_slice(&t.sport.to_le_bytes());
    for v in [host_size, fixed, subject_size, subject_ptr] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    if let Some(v) = version {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(t.host.as_bytes());
    b.push(0);
    if let Some(s) = &t.cert_subject {
        b.extend_from_slice(s.as_bytes());
        b.push(0);
    }
    b
}

/// One mini-header frame (hostile-input helper).
pub fn mini_frame(msg_type: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&msg_type.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(body);
    out
}

// ---- network ---------------------------------------------------------------------------

/// How server→client bytes are cut before the session sees them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Chunking {
    /// Each server write is one `Received`.
    Whole,
    /// Each write is cut into pseudo-random pieces of 1..=`max` bytes.
    Random {
        /// Seed.
        seed: u64,
        /// Largest piece.
        max: usize,
    },
}

/// One `Connect` action, as the network saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectSeen {
    /// The connection.
    pub conn: ConnId,
    /// Its channel.
    pub channel: ChannelRef,
    /// Source or target.
    pub role: Role,
    /// Host.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS verification.
    pub tls: Option<Verify>,
    /// The server index it reached.
    pub server: Option<usize>,
}

#[derive(Clone, Debug)]
enum Net {
    /// A host answer for the session.
    Input(SessionInput),
    /// Server bytes on their way to the session.
    Deliver { conn: ConnId, bytes: Vec<u8> },
    /// The server closed the connection.
    ServerClosed { conn: ConnId },
    /// Client bytes on their way to a server.
    ToServer { conn: ConnId, bytes: Vec<u8> },
    /// The client closed the connection.
    ClientClose { conn: ConnId },
}

/// The application's continuous traffic.
#[derive(Clone, Debug, Default)]
pub struct AppStream {
    /// Messages still to send, in order.
    pub queue: VecDeque<(ChannelRef, u16, Vec<u8>)>,
    /// One message every this many network ticks while active.
    pub every: u64,
    /// Whether the stream runs.
    pub active: bool,
}

/// The session, the servers, and the wire between them (see the module docs).
#[derive(Debug)]
pub struct Network {
    /// The client.
    pub session: Session,
    /// The servers (index 0: source, 1: destination).
    pub servers: Vec<SimServer>,
    routes: BTreeMap<ConnId, usize>,
    queue: VecDeque<Net>,
    client_closed: BTreeSet<ConnId>,
    server_closed: BTreeSet<ConnId>,
    /// The host clock.
    pub now: Millis,
    /// Network ticks so far (one per delivered item).
    pub tick: u64,
    writer: Writer,
    /// Whether `CheckTarget` is allowed.
    pub policy_allows: bool,
    chunking: Chunking,
    rng: u64,
    /// The application stream.
    pub app: AppStream,
    /// Every application message given to the session, in order.
    pub app_sent: Vec<(ChannelRef, u16, Vec<u8>)>,
    /// Application messages the session held (no Transmit right away).
    pub app_held: usize,
    /// Every action, in order, with the tick it was produced at.
    pub actions: Vec<(u64, SessionAction)>,
    /// Every event, in order.
    pub events: Vec<SessionEvent>,
    /// Every connect.
    pub connects: Vec<ConnectSeen>,
    /// Transmitted bytes per connection, concatenated.
    pub transmitted: BTreeMap<ConnId, Vec<u8>>,
    /// Set when a run did not settle (a bug).
    pub stuck: bool,
}

impl Network {
    /// A network for `cfg` and these servers; nothing happens until [`Network::start`].
    pub fn new(cfg: SessionConfig, servers: Vec<ServerConfig>, chunking: Chunking) -> Self {
        let seed = match chunking {
            Chunking::Whole => 1,
            Chunking::Random { seed, .. } => seed | 1,
        };
        Network {
            writer: Writer::new(&Setup::SpiceSession(cfg.clone())),
            session: Session::new(cfg),
            servers: servers.into_iter().map(SimServer::new).collect(),
            routes: BTreeMap::new(),
            queue: VecDeque::new(),
            client_closed: BTreeSet::new(),
            server_closed: BTreeSet::new(),
            now: 0,
            tick: 0,
            policy_allows: true,
            chunking,
            rng: seed,
            app: AppStream {
                every: 1,
                ..AppStream::default()
            },
            app_sent: Vec::new(),
            app_held: 0,
            actions: Vec::new(),
            events: Vec::new(),
            connects: Vec::new(),
            transmitted: BTreeMap::new(),
            stuck: false,
        }
    }

    /// The recorded trace.
    pub fn trace(&self) -> String {
        self.writer.finish()
    }

    /// Feed one input to the session, record it, and route its actions.
    pub fn feed(&mut self, input: SessionInput) {
        let actions = trace::step(&mut self.session, self.now, input.clone());
        self.writer.record(self.now, &input, &actions);
        for a in actions {
            self.actions.push((self.tick, a.clone()));
            self.on_action(a);
        }
    }

    fn on_action(&mut self, a: SessionAction) {
        match a {
            SessionAction::Connect {
                conn,
                channel,
                role,
                endpoint,
                port,
                tls,
            } => {
                let server = self.servers.iter().position(|s| {
                    s.listens(&endpoint.host, port) == Some(tls.is_some())
                        && s.cfg.fault != Some(ServerFault::Unreachable)
                });
                self.connects.push(ConnectSeen {
                    conn,
                    channel,
                    role,
                    host: endpoint.host.clone(),
                    port,
                    tls,
                    server,
                });
                match server {
                    Some(i) => {
                        self.routes.insert(conn, i);
                        self.servers[i].accept(conn);
                        self.queue
                            .push_back(Net::Input(SessionInput::Connected { conn }));
                    }
                    None => self
                        .queue
                        .push_back(Net::Input(SessionInput::ConnectFailed {
                            conn,
                            reason: format!("{}:{port} unreachable", endpoint.host),
                        })),
                }
            }
            SessionAction::Transmit { conn, bytes } => {
                self.transmitted
                    .entry(conn)
                    .or_default()
                    .extend_from_slice(bytes.as_slice());
                self.queue.push_back(Net::ToServer {
                    conn,
                    bytes: bytes.0,
                });
            }
            SessionAction::Close { conn } => {
                self.client_closed.insert(conn);
                self.queue.push_back(Net::ClientClose { conn });
            }
            SessionAction::EncryptTicket {
                conn,
                public_key,
                password,
            } => {
                let ticket = fake_ticket(public_key.as_slice(), &password);
                self.queue.push_back(Net::Input(SessionInput::Ticket {
                    conn,
                    ticket: Bytes(ticket),
                }));
            }
            SessionAction::CheckTarget { .. } => {
                let allow = self.policy_allows;
                self.queue
                    .push_back(Net::Input(SessionInput::TargetDecision { allow }));
            }
            SessionAction::Event(e) => self.events.push(e),
        }
    }

    fn drain_server(&mut self, i: usize) {
        while let Some(o) = self.servers[i].poll_output() {
            match o {
                ServerOut::Bytes { conn, bytes } => {
                    self.queue.push_back(Net::Deliver { conn, bytes })
                }
                ServerOut::Close { conn } => {
                    self.server_closed.insert(conn);
                    self.queue.push_back(Net::ServerClosed { conn });
                }
            }
        }
    }

    fn chunks(&mut self, bytes: Vec<u8>) -> Vec<Vec<u8>> {
        match self.chunking {
            Chunking::Whole => vec![bytes],
            Chunking::Random { max, .. } => {
                let mut out = Vec::new();
                let mut rest = bytes.as_slice();
                while !rest.is_empty() {
                    self.rng = xorshift(self.rng);
                    let n = (self.rng % max.max(1) as u64) as usize + 1;
                    let n = n.min(rest.len());
                    out.push(rest[..n].to_vec());
                    rest = &rest[n..];
                }
                out
            }
        }
    }

    fn deliver(&mut self, item: Net) {
        match item {
            Net::Input(i) => {
                let conn = match &i {
                    SessionInput::Connected { conn }
                    | SessionInput::ConnectFailed { conn, .. }
                    | SessionInput::Ticket { conn, .. }
                    | SessionInput::TicketFailed { conn, .. } => Some(*conn),
                    _ => None,
                };
                if conn.is_some_and(|c| self.client_closed.contains(&c)) {
                    return;
                }
                self.feed(i);
            }
            Net::Deliver { conn, bytes } => {
                if self.client_closed.contains(&conn) {
                    return;
                }
                for chunk in self.chunks(bytes) {
                    // A host stops reading a connection once the session closed it.
                    if self.client_closed.contains(&conn) {
                        return;
                    }
                    self.feed(SessionInput::Received {
                        conn,
                        bytes: Bytes(chunk),
                    });
                }
            }
            Net::ServerClosed { conn } => {
                if self.client_closed.contains(&conn) {
                    return;
                }
                self.feed(SessionInput::Closed {
                    conn,
                    reason: "closed by the server".into(),
                });
            }
            Net::ToServer { conn, bytes } => {
                if self.server_closed.contains(&conn) {
                    return;
                }
                if let Some(&i) = self.routes.get(&conn) {
                    self.servers[i].receive(self.tick, conn, &bytes);
                    self.drain_server(i);
                }
            }
            Net::ClientClose { conn } => {
                if self.server_closed.contains(&conn) {
                    return;
                }
                if let Some(&i) = self.routes.get(&conn) {
                    self.servers[i].client_closed(self.tick, conn);
                    self.drain_server(i);
                }
            }
        }
    }

    /// Give the application message to the session.
    pub fn app_send(&mut self, channel: ChannelRef, msg_type: u16, body: Vec<u8>) {
        self.app_sent.push((channel, msg_type, body.clone()));
        let before = self.actions.len();
        self.feed(SessionInput::Send {
            channel,
            msg_type,
            body: Bytes(body),
        });
        let transmitted = self.actions[before..]
            .iter()
            .any(|(_, a)| matches!(a, SessionAction::Transmit { .. }));
        if !transmitted {
            self.app_held += 1;
        }
    }

    fn app_tick(&mut self) {
        if self.app.active && self.tick.checked_rem(self.app.every) == Some(0) {
            if let Some((c, t, b)) = self.app.queue.pop_front() {
                self.app_send(c, t, b);
            }
        }
    }

    /// Deliver everything in flight (the application stream sends as ticks pass).
    pub fn run(&mut self) {
        let mut guard = 0u32;
        while let Some(item) = self.queue.pop_front() {
            guard += 1;
            if guard > 200_000 {
                self.stuck = true;
                return;
            }
            self.tick += 1;
            self.now += 1;
            self.deliver(item);
            self.app_tick();
        }
    }

    /// Apply a server command and collect what it writes.
    pub fn on_server(&mut self, i: usize, f: impl FnOnce(&mut SimServer)) {
        if let Some(s) = self.servers.get_mut(i) {
            f(s);
            self.drain_server(i);
        }
    }

    /// Jump the clock to the session's deadline and fire it; false if it has none.
    pub fn fire_timeout(&mut self) -> bool {
        match self.session.poll_timeout() {
            Some(t) => {
                self.now = self.now.max(t);
                self.feed(SessionInput::Timeout);
                true
            }
            None => false,
        }
    }

    /// Transmitted data messages on `conn` (mini headers, after the link stage), as
    /// `(msg_type, body)`; the link bytes are skipped by their known sizes.
    pub fn client_frames(&self, conn: ConnId) -> Vec<(u16, Vec<u8>)> {
        let Some(bytes) = self.transmitted.get(&conn) else {
            return Vec::new();
        };
        // Link message (16 + size) and mechanism + ticket (132).
        let Some(size) = bytes.get(12..16) else {
            return Vec::new();
        };
        let size = u32::from_le_bytes([size[0], size[1], size[2], size[3]]) as usize;
        let mut rest = bytes.get(16 + size + 4 + TICKET_LEN..).unwrap_or(&[]);
        let framer = Framer::new(HeaderKind::Mini);
        let mut out = Vec::new();
        while let Ok(Some(f)) = framer.decode(rest) {
            out.push((f.msg_type, f.body.to_vec()));
            rest = &rest[f.consumed..];
        }
        out
    }
}
