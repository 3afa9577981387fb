//! The client-side SPICE session with migration (spec/spice-migration.md §4 and its
//! invariants), for any number of channels.
//!
//! One [`Session`] owns every connection of one SPICE session: the source connections (s1)
//! and, during a migration, the target connections (s2). The host opens sockets, does TLS,
//! encrypts tickets and moves bytes; the session decides everything else:
//!
//! * link stage per connection (link message, reply, ticket, result), then mini headers;
//! * keep-alive: SET_ACK → ACK_SYNC and an ACK every `window` messages, PING → PONG;
//! * main channel: INIT (session id), ATTACH_CHANNELS, CHANNELS_LIST → link each channel;
//! * BEGIN / BEGIN_SEAMLESS → ask the host's policy → link the target's main channel with
//!   the source session id → DST_DO_SEAMLESS → ACK/NACK → link every other channel →
//!   CONNECTED_SEAMLESS / CONNECTED (or CONNECT_ERROR) on the source, within a deadline;
//! * seamless switch per channel on MIGRATE(flags): FLUSH_MARK at once, the next message
//!   must be MIGRATE_DATA, its body goes byte-for-byte as the first message to the target,
//!   then the channel's held messages, then the target's buffered input, in order;
//! * semi-seamless: MIGRATE_END → drop queued output, close s1, switch main, MIGRATE_END to
//!   the target, wait for its MAIN_INIT, switch the rest without ATTACH_CHANNELS;
//! * MIGRATE_CANCEL, a failed target link, and the legacy SWITCH_HOST (connection id 0).
//!
//! Target connections are never read for application traffic before their switch: their
//! bytes are buffered and handled after it (invariant 6), except the target main channel's
//! ACK/NACK during the handshake.

mod types;

use std::collections::{BTreeMap, VecDeque};

pub use types::*;

use crate::bytes::Bytes;
use crate::spice::wire::consts::{
    auth_mechanism, common_cap, main_cap, msg, msgc, ChannelType, LinkErr,
    MIGRATION_PROTOCOL_VERSION, TICKET_LEN,
};
use crate::spice::wire::link::{decode_link_result, encode_auth_mechanism, encode_ticket};
use crate::spice::wire::msg::Pong;
use crate::spice::wire::{
    encode_frame, Caps, ClientMsg, Framer, HeaderKind, LinkMess, LinkReply, ServerMsg, WireMsg,
};
use crate::{Machine, Millis};

/// Where a connection is in the link stage (§1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    Connecting,
    LinkSent,
    TicketPending,
    TicketSent,
    Ready,
}

/// Received bytes not parsed yet. Parsing consumes from the front by moving a cursor; the
/// consumed prefix is dropped when more bytes arrive, so a chunk of many small messages costs
/// one pass over its bytes, not one move of the rest per message.
#[derive(Clone, Debug, Default)]
struct RxBuf {
    buf: Vec<u8>,
    start: usize,
}

impl RxBuf {
    /// The bytes not consumed yet.
    fn pending(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }

    /// Mark the first `n` pending bytes consumed.
    fn consume(&mut self, n: usize) {
        self.start = self.start.saturating_add(n).min(self.buf.len());
        if self.start == self.buf.len() {
            self.clear();
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    fn clear(&mut self) {
        self.buf.clear();
        self.start = 0;
    }
}

#[derive(Clone, Debug)]
struct Conn {
    channel: ChannelRef,
    role: Role,
    stage: Stage,
    connection_id: u32,
    rx: RxBuf,
    framer: Framer,
    remote_caps: Caps,
    /// Buffer, do not parse (a target before its switch).
    hold: bool,
}

#[derive(Clone, Copy, Debug, Default)]
struct Ack {
    window: u32,
    count: u32,
}

#[derive(Clone, Debug, Default)]
struct Channel {
    /// The connection the channel talks on now.
    conn: Option<ConnId>,
    /// The target connection during a migration.
    target: Option<ConnId>,
    /// Application messages held while the channel cannot send (linking, switching).
    queue: VecDeque<(u16, Bytes)>,
    ack: Ack,
    serial: u64,
    /// After MIGRATE: application messages wait for the switch (invariant 7).
    frozen: bool,
    /// After MIGRATE with NEED_DATA_TRANSFER: the next message must be MIGRATE_DATA.
    awaiting_data: bool,
    /// Switched to the target in the current migration.
    switched: bool,
    /// The source connection it switched away from, closed after the last switch.
    previous: Option<ConnId>,
}

#[derive(Clone, Debug)]
enum Mig {
    Idle,
    /// Waiting for the host's policy answer.
    Checking {
        kind: MigrationKind,
        version: u32,
        target: Endpoint,
        switch_host: bool,
    },
    /// Linking the target.
    Connecting {
        requested: MigrationKind,
        version: u32,
        target: Endpoint,
        /// `None` while DST_DO_SEAMLESS awaits ACK/NACK.
        seamless: Option<bool>,
        deadline: Millis,
    },
    /// The source knows we are linked; waiting for MIGRATE / MIGRATE_END / CANCEL.
    Armed {
        kind: MigrationKind,
        target: Endpoint,
    },
    /// Semi-seamless: main switched, waiting for the target's MAIN_INIT.
    WaitInit,
    /// Armed, then the target went away: waiting for the source's MIGRATE_CANCEL.
    TargetLost,
}

/// The session machine (see the module docs).
#[derive(Clone, Debug)]
pub struct Session {
    cfg: SessionConfig,
    conns: BTreeMap<ConnId, Conn>,
    channels: BTreeMap<ChannelRef, Channel>,
    next_conn: u32,
    session_id: Option<u32>,
    mig: Mig,
    closed: bool,
    actions: VecDeque<SessionAction>,
}

fn common_caps() -> Caps {
    let mut c = Caps::new();
    for bit in [
        common_cap::PROTOCOL_AUTH_SELECTION,
        common_cap::AUTH_SPICE,
        common_cap::MINI_HEADER,
    ] {
        let _ = c.set(bit);
    }
    c
}

fn channel_caps(kind: ChannelType) -> Caps {
    let mut c = Caps::new();
    if kind == ChannelType::Main {
        // Seamless needs AGENT_CONNECTED_TOKENS and SEAMLESS_MIGRATE; SEMI_SEAMLESS gets
        // MIGRATE_END instead of SWITCH_HOST (invariant 2).
        for bit in [
            main_cap::SEMI_SEAMLESS_MIGRATE,
            main_cap::NAME_AND_UUID,
            main_cap::AGENT_CONNECTED_TOKENS,
            main_cap::SEAMLESS_MIGRATE,
        ] {
            let _ = c.set(bit);
        }
    }
    c
}

impl Session {
    /// A new session; nothing happens until [`SessionInput::Start`].
    pub fn new(cfg: SessionConfig) -> Self {
        Session {
            cfg,
            conns: BTreeMap::new(),
            channels: BTreeMap::new(),
            next_conn: 1,
            session_id: None,
            mig: Mig::Idle,
            closed: false,
            actions: VecDeque::new(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.cfg
    }

    /// The session id from MAIN_INIT, once known.
    pub fn session_id(&self) -> Option<u32> {
        self.session_id
    }

    /// The channels of the session, in order.
    pub fn channels(&self) -> impl Iterator<Item = ChannelRef> + '_ {
        self.channels.keys().copied()
    }

    fn event(&mut self, e: SessionEvent) {
        self.actions.push_back(SessionAction::Event(e));
    }

    fn error(&mut self, error: SessionError) {
        self.event(SessionEvent::Error { error });
    }

    // ---- connections -------------------------------------------------------------------

    fn connect(
        &mut self,
        channel: ChannelRef,
        role: Role,
        endpoint: &Endpoint,
        connection_id: u32,
    ) -> Option<ConnId> {
        let use_tls =
            endpoint.tls_port.is_some() && (self.cfg.prefer_tls || endpoint.port.is_none());
        let port = if use_tls {
            endpoint.tls_port
        } else {
            endpoint.port
        };
        let Some(port) = port else {
            self.error(SessionError::Transport {
                channel,
                reason: format!("no usable port for {}", endpoint.host),
            });
            return None;
        };
        let tls = use_tls.then(|| match &endpoint.cert_subject {
            Some(s) => Verify::Subject(s.clone()),
            None => Verify::Hostname(endpoint.host.clone()),
        });
        let id = ConnId(self.next_conn);
        self.next_conn = self.next_conn.wrapping_add(1).max(1);
        self.conns.insert(
            id,
            Conn {
                channel,
                role,
                stage: Stage::Connecting,
                connection_id,
                rx: RxBuf::default(),
                framer: Framer::new(HeaderKind::Mini),
                remote_caps: Caps::new(),
                hold: role == Role::Destination,
            },
        );
        self.actions.push_back(SessionAction::Connect {
            conn: id,
            channel,
            role,
            endpoint: endpoint.clone(),
            port,
            tls,
        });
        Some(id)
    }

    fn close_conn(&mut self, id: ConnId) {
        if self.conns.remove(&id).is_some() {
            self.actions.push_back(SessionAction::Close { conn: id });
        }
    }

    fn transmit(&mut self, id: ConnId, bytes: Vec<u8>) {
        self.actions.push_back(SessionAction::Transmit {
            conn: id,
            bytes: Bytes(bytes),
        });
    }

    /// Encode and send one data message on `id` (the channel's serial counts it).
    fn send_raw(&mut self, id: ConnId, msg_type: u16, body: &[u8]) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let kind = conn.framer.kind();
        let chan = conn.channel;
        let serial = match self.channels.get_mut(&chan) {
            Some(c) => {
                c.serial = c.serial.wrapping_add(1);
                c.serial
            }
            None => 1,
        };
        let mut out = Vec::with_capacity(body.len() + 18);
        if encode_frame(kind, serial, msg_type, body, &mut out).is_ok() {
            self.transmit(id, out);
        }
    }

    fn send_msg(&mut self, id: ConnId, m: &ClientMsg<'_>) {
        let mut body = Vec::new();
        if m.encode_body(&mut body).is_ok() {
            self.send_raw(id, m.msg_type(), &body);
        }
    }

    fn on_connected(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(&id) else {
            self.error(SessionError::UnknownConnection { conn: id });
            return;
        };
        if conn.stage != Stage::Connecting {
            return;
        }
        conn.stage = Stage::LinkSent;
        let link = LinkMess {
            connection_id: conn.connection_id,
            channel_type: conn.channel.kind,
            channel_id: conn.channel.id,
            common_caps: common_caps(),
            channel_caps: channel_caps(conn.channel.kind),
        };
        let mut out = Vec::new();
        if link.encode(&mut out).is_ok() {
            self.transmit(id, out);
        }
    }

    fn on_received(&mut self, now: Millis, id: ConnId, bytes: &[u8]) {
        let max = usize::try_from(self.cfg.max_buffered).unwrap_or(usize::MAX);
        let Some(conn) = self.conns.get_mut(&id) else {
            self.error(SessionError::UnknownConnection { conn: id });
            return;
        };
        if conn.rx.pending().len().saturating_add(bytes.len()) > max {
            let channel = conn.channel;
            self.error(SessionError::BufferLimit { channel });
            self.conn_failed(id, "buffer limit exceeded".into());
            return;
        }
        conn.rx.extend(bytes);
        self.pump(now, id);
    }

    /// Parse what `id` has buffered, as far as its stage allows.
    fn pump(&mut self, now: Millis, id: ConnId) {
        loop {
            let Some(conn) = self.conns.get_mut(&id) else {
                return;
            };
            let channel = conn.channel;
            match conn.stage {
                Stage::LinkSent => match LinkReply::decode(conn.rx.pending()) {
                    Ok(None) => return,
                    Ok(Some((reply, used))) => {
                        conn.rx.consume(used);
                        if !reply.error.is_ok() {
                            self.error(SessionError::LinkRefused {
                                channel,
                                error: reply.error,
                            });
                            self.conn_failed(id, format!("link refused: {:?}", reply.error));
                            return;
                        }
                        conn.framer
                            .set_kind(HeaderKind::negotiate(&common_caps(), &reply.common_caps));
                        conn.remote_caps = reply.channel_caps;
                        conn.stage = Stage::TicketPending;
                        let public_key = Bytes(reply.pub_key.to_vec());
                        let password = self.cfg.password.clone();
                        self.actions.push_back(SessionAction::EncryptTicket {
                            conn: id,
                            public_key,
                            password,
                        });
                    }
                    Err(e) => {
                        self.error(SessionError::Wire {
                            channel,
                            message: e.to_string(),
                        });
                        self.conn_failed(id, "bad link reply".into());
                        return;
                    }
                },
                Stage::TicketSent => {
                    let Some(result) = conn.rx.pending().get(..4).and_then(decode_link_result)
                    else {
                        return;
                    };
                    conn.rx.consume(4);
                    if result != LinkErr::Ok {
                        self.error(SessionError::LinkRefused {
                            channel,
                            error: result,
                        });
                        self.conn_failed(id, format!("link result {result:?}"));
                        return;
                    }
                    conn.stage = Stage::Ready;
                    self.on_linked(id);
                }
                Stage::Ready => {
                    let handshake = self.in_handshake(id);
                    let Some(conn) = self.conns.get_mut(&id) else {
                        return;
                    };
                    if conn.hold && !handshake {
                        return;
                    }
                    let (msg_type, body, used) = match conn.framer.decode(conn.rx.pending()) {
                        Ok(None) => return,
                        Ok(Some(f)) => (f.msg_type, f.body.to_vec(), f.consumed),
                        Err(e) => {
                            self.error(SessionError::Wire {
                                channel,
                                message: e.to_string(),
                            });
                            self.conn_failed(id, "bad message framing".into());
                            return;
                        }
                    };
                    conn.rx.consume(used);
                    if handshake {
                        self.on_handshake_msg(msg_type);
                    } else {
                        self.on_message(now, id, msg_type, body);
                    }
                }
                Stage::Connecting | Stage::TicketPending => return,
            }
        }
    }

    fn on_ticket(&mut self, now: Millis, id: ConnId, ticket: &[u8]) {
        let Some(conn) = self.conns.get_mut(&id) else {
            self.error(SessionError::UnknownConnection { conn: id });
            return;
        };
        if conn.stage != Stage::TicketPending {
            return;
        }
        let Ok(ticket) = <&[u8; TICKET_LEN]>::try_from(ticket) else {
            let reason = format!("ticket of {} bytes, not {TICKET_LEN}", ticket.len());
            self.conn_failed(id, reason);
            return;
        };
        let mut out = Vec::with_capacity(4 + TICKET_LEN);
        // The mechanism word goes iff we advertised AUTH_SELECTION, which we always do.
        encode_auth_mechanism(auth_mechanism::SPICE, &mut out);
        encode_ticket(ticket, &mut out);
        conn.stage = Stage::TicketSent;
        self.transmit(id, out);
        self.pump(now, id);
    }

    /// A connection failed, closed, or broke the protocol.
    fn conn_failed(&mut self, id: ConnId, reason: String) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let (channel, role) = (conn.channel, conn.role);
        self.close_conn(id);
        if self.is_previous(id) {
            return;
        }
        let is_target = self
            .channels
            .get(&channel)
            .is_some_and(|c| c.target == Some(id));
        if role == Role::Destination && is_target {
            self.target_failed(format!("{channel:?} on the target: {reason}"));
            return;
        }
        let active = self
            .channels
            .get(&channel)
            .is_some_and(|c| c.conn == Some(id));
        if !active {
            return;
        }
        if let Some(c) = self.channels.get_mut(&channel) {
            c.conn = None;
        }
        self.error(SessionError::Transport {
            channel,
            reason: reason.clone(),
        });
        if channel == ChannelRef::MAIN {
            self.shutdown(format!("main channel lost: {reason}"));
        } else {
            self.source_lost(channel);
        }
    }

    /// The source connection of a non-main `channel` is gone: a migration can no longer
    /// move it, so its target link goes too, and a seamless switch that only waited for
    /// this channel finishes (else the session would stay mid-migration for good).
    fn source_lost(&mut self, channel: ChannelRef) {
        let Some(t) = self.channels.get_mut(&channel).and_then(|c| {
            c.frozen = false;
            c.awaiting_data = false;
            c.target.take()
        }) else {
            return;
        };
        self.close_conn(t);
        if let Mig::Armed {
            kind: MigrationKind::Seamless,
            ..
        } = self.mig
        {
            let switched = self.channels.values().any(|c| c.switched);
            let pending = self
                .channels
                .values()
                .any(|c| c.target.is_some() && !c.switched);
            if switched && !pending {
                self.finish_migration(MigrationKind::Seamless);
            }
        }
        self.check_connected();
    }

    fn shutdown(&mut self, reason: String) {
        if self.closed {
            return;
        }
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close_conn(id);
        }
        self.closed = true;
        self.mig = Mig::Idle;
        self.event(SessionEvent::Closed { reason });
    }

    // ---- linked channels ---------------------------------------------------------------

    fn on_linked(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let (channel, role) = (conn.channel, conn.role);
        match role {
            Role::Source => {
                if channel != ChannelRef::MAIN {
                    self.channel_up(id, channel);
                }
            }
            Role::Destination => {
                if channel == ChannelRef::MAIN {
                    self.target_main_linked(id);
                }
                self.check_connected();
            }
        }
    }

    /// A freshly linked (or semi-seamlessly re-linked) channel: its init message, then the
    /// application's queue (§4 "Semi-seamless switch" 6: `spice_channel_up`).
    fn channel_up(&mut self, id: ConnId, channel: ChannelRef) {
        if channel.kind == ChannelType::Display {
            if let Some(init) = self.cfg.display_init {
                self.send_msg(id, &ClientMsg::DisplayInit(init));
            }
        }
        self.event(SessionEvent::ChannelReady {
            channel,
            session_id: None,
        });
        self.flush_queue(channel);
    }

    /// Send what the application queued on `channel` while it could not send.
    fn flush_queue(&mut self, channel: ChannelRef) {
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        let Some(id) = c.conn else {
            return;
        };
        if c.frozen {
            return;
        }
        let queued: Vec<(u16, Bytes)> = c.queue.drain(..).collect();
        for (t, body) in queued {
            self.send_raw(id, t, body.as_slice());
        }
    }

    fn channel_ready(&self, channel: &ChannelRef) -> Option<ConnId> {
        let c = self.channels.get(channel)?;
        if c.frozen {
            return None;
        }
        let id = c.conn?;
        let conn = self.conns.get(&id)?;
        (conn.stage == Stage::Ready && !conn.hold).then_some(id)
    }

    fn on_app_send(&mut self, channel: ChannelRef, msg_type: u16, body: Bytes) {
        if !self.channels.contains_key(&channel) {
            self.error(SessionError::UnknownChannel { channel });
            return;
        }
        match self.channel_ready(&channel) {
            Some(id)
                if self
                    .channels
                    .get(&channel)
                    .is_some_and(|c| c.queue.is_empty()) =>
            {
                self.send_raw(id, msg_type, body.as_slice());
            }
            _ => {
                if let Some(c) = self.channels.get_mut(&channel) {
                    c.queue.push_back((msg_type, body));
                }
            }
        }
    }

    /// Count a received message for flow control; ACK every `window` (§1.2).
    fn count_ack(&mut self, id: ConnId, channel: ChannelRef) {
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        if c.ack.window == 0 {
            return;
        }
        c.ack.count = c.ack.count.saturating_add(1);
        if c.ack.count >= c.ack.window {
            c.ack.count = 0;
            self.send_msg(id, &ClientMsg::Ack);
        }
    }

    fn on_message(&mut self, now: Millis, id: ConnId, msg_type: u16, body: Vec<u8>) {
        let Some(conn) = self.conns.get(&id) else {
            return;
        };
        let channel = conn.channel;
        let m = match ServerMsg::decode(channel.kind, msg_type, &body) {
            Ok(m) => m,
            Err(e) => {
                self.error(SessionError::Wire {
                    channel,
                    message: e.to_string(),
                });
                self.count_ack(id, channel);
                return;
            }
        };
        // Invariant 8: after MIGRATE(NEED_DATA_TRANSFER) the next message is MIGRATE_DATA.
        let awaiting = self
            .channels
            .get(&channel)
            .is_some_and(|c| c.awaiting_data && c.conn == Some(id));
        if awaiting {
            self.count_ack(id, channel);
            if let ServerMsg::MigrateData(data) = m {
                let data = data.to_vec();
                self.switch_channel(now, channel, Some(data));
            } else {
                if let Some(c) = self.channels.get_mut(&channel) {
                    c.awaiting_data = false;
                }
                self.error(SessionError::Protocol {
                    channel,
                    message: format!(
                        "message {msg_type} where MIGRATE_DATA was due; channel not switched"
                    ),
                });
            }
            return;
        }
        match m {
            ServerMsg::SetAck(a) => {
                if let Some(c) = self.channels.get_mut(&channel) {
                    c.ack = Ack {
                        window: a.window,
                        count: 0,
                    };
                }
                self.send_msg(id, &ClientMsg::AckSync(a.generation));
                return;
            }
            ServerMsg::Ping(p) => {
                self.send_msg(
                    id,
                    &ClientMsg::Pong(Pong {
                        id: p.id,
                        timestamp: p.timestamp,
                    }),
                );
            }
            ServerMsg::Migrate(flags) => self.on_migrate(now, id, channel, flags.0),
            ServerMsg::MigrateData(_) => {
                self.error(SessionError::Protocol {
                    channel,
                    message: "MIGRATE_DATA without MIGRATE".into(),
                });
            }
            ServerMsg::MainInit(init) if channel == ChannelRef::MAIN => {
                self.on_main_init(now, init.session_id);
                self.app_message(channel, msg_type, body);
            }
            ServerMsg::ChannelsList(list) if channel == ChannelRef::MAIN => {
                let refs: Vec<ChannelRef> = list
                    .iter()
                    .map(|c| ChannelRef {
                        kind: c.channel_type,
                        id: c.id,
                    })
                    .collect();
                self.link_channels(&refs);
                self.app_message(channel, msg_type, body);
            }
            ServerMsg::MigrateBegin(dst) if channel == ChannelRef::MAIN => {
                let target = Endpoint {
                    host: dst.host,
                    port: dst.port,
                    tls_port: dst.sport,
                    cert_subject: dst.cert_subject,
                };
                self.on_begin(
                    MigrationKind::SemiSeamless,
                    MIGRATION_PROTOCOL_VERSION,
                    target,
                    false,
                );
            }
            ServerMsg::MigrateBeginSeamless(b) if channel == ChannelRef::MAIN => {
                let target = Endpoint {
                    host: b.dst.host,
                    port: b.dst.port,
                    tls_port: b.dst.sport,
                    cert_subject: b.dst.cert_subject,
                };
                self.on_begin(MigrationKind::Seamless, b.src_mig_version, target, false);
            }
            ServerMsg::MigrateSwitchHost(s) if channel == ChannelRef::MAIN => {
                let current = self.cfg.server.host.clone();
                let target = Endpoint {
                    host: s.host.unwrap_or(current),
                    port: s.port,
                    tls_port: s.sport,
                    cert_subject: s.cert_subject,
                };
                self.on_begin(MigrationKind::SemiSeamless, 0, target, true);
            }
            ServerMsg::MigrateCancel if channel == ChannelRef::MAIN => self.on_cancel(),
            ServerMsg::MigrateEnd if channel == ChannelRef::MAIN => self.on_migrate_end(now),
            _ => self.app_message(channel, msg_type, body),
        }
        self.count_ack(id, channel);
    }

    fn app_message(&mut self, channel: ChannelRef, msg_type: u16, body: Vec<u8>) {
        self.event(SessionEvent::Message {
            channel,
            msg_type,
            body: Bytes(body),
        });
    }

    fn on_main_init(&mut self, now: Millis, session_id: u32) {
        self.session_id = Some(session_id);
        if matches!(self.mig, Mig::WaitInit) {
            // Semi-seamless: the target's INIT; no ATTACH_CHANNELS (§4, invariant 12).
            self.finish_semi_seamless(now);
            return;
        }
        let main_conn = self.channels.get(&ChannelRef::MAIN).and_then(|c| c.conn);
        self.event(SessionEvent::ChannelReady {
            channel: ChannelRef::MAIN,
            session_id: Some(session_id),
        });
        if let Some(id) = main_conn {
            self.send_msg(id, &ClientMsg::AttachChannels);
        }
        self.flush_queue(ChannelRef::MAIN);
    }

    fn link_channels(&mut self, list: &[ChannelRef]) {
        let Some(sid) = self.session_id else {
            return;
        };
        let server = self.cfg.server.clone();
        for &channel in list {
            if channel == ChannelRef::MAIN || self.channels.contains_key(&channel) {
                continue;
            }
            if !self.cfg.channel_types.is_empty() && !self.cfg.channel_types.contains(&channel.kind)
            {
                continue;
            }
            self.channels.insert(channel, Channel::default());
            if let Some(id) = self.connect(channel, Role::Source, &server, sid) {
                if let Some(c) = self.channels.get_mut(&channel) {
                    c.conn = Some(id);
                }
            }
        }
    }

    // ---- migration: connecting the target ----------------------------------------------

    fn on_begin(&mut self, kind: MigrationKind, version: u32, target: Endpoint, switch_host: bool) {
        if switch_host
            && matches!(
                self.mig,
                Mig::Checking { .. } | Mig::Connecting { .. } | Mig::Armed { .. }
            )
        {
            // The VM migration completed before the source counted on the target link (it
            // came late, or not at all): the source falls back to SWITCH_HOST, which holds
            // from any state (§4 state diagram). Give the target up, then switch.
            self.drop_targets();
            self.mig = Mig::Idle;
        }
        if !matches!(self.mig, Mig::Idle | Mig::TargetLost) {
            self.error(SessionError::Protocol {
                channel: ChannelRef::MAIN,
                message: "migration announced while one is under way; ignored".into(),
            });
            return;
        }
        if !switch_host {
            self.event(SessionEvent::MigrationStarted {
                kind,
                target: target.clone(),
            });
        }
        self.mig = Mig::Checking {
            kind,
            version,
            target: target.clone(),
            switch_host,
        };
        self.actions
            .push_back(SessionAction::CheckTarget { endpoint: target });
    }

    fn on_decision(&mut self, now: Millis, allow: bool) {
        let Mig::Checking {
            kind,
            version,
            target,
            switch_host,
        } = std::mem::replace(&mut self.mig, Mig::Idle)
        else {
            return;
        };
        if switch_host {
            if allow {
                self.switch_host(target);
            } else {
                self.error(SessionError::Protocol {
                    channel: ChannelRef::MAIN,
                    message: format!("SWITCH_HOST to {} refused by policy", target.host),
                });
            }
            return;
        }
        if !allow {
            self.connect_error(format!("target {} refused by policy", target.host));
            return;
        }
        let Some(sid) = self.session_id else {
            self.connect_error("no session id yet".into());
            return;
        };
        self.mig = Mig::Connecting {
            requested: kind,
            version,
            target: target.clone(),
            seamless: None,
            deadline: now.saturating_add(self.cfg.migrate_connect_timeout_ms),
        };
        // MAIN first; the others once main's link result is OK (invariant 3).
        match self.connect(ChannelRef::MAIN, Role::Destination, &target, sid) {
            Some(id) => {
                if let Some(c) = self.channels.get_mut(&ChannelRef::MAIN) {
                    c.target = Some(id);
                }
            }
            None => self.target_failed("no usable port".into()),
        }
    }

    fn in_handshake(&self, id: ConnId) -> bool {
        matches!(self.mig, Mig::Connecting { seamless: None, .. })
            && self
                .channels
                .get(&ChannelRef::MAIN)
                .is_some_and(|c| c.target == Some(id))
    }

    fn target_main_linked(&mut self, id: ConnId) {
        let Mig::Connecting {
            requested,
            version,
            ref target,
            ..
        } = self.mig
        else {
            return;
        };
        let target = target.clone();
        let dst_seamless = self
            .conns
            .get(&id)
            .is_some_and(|c| c.remote_caps.test(main_cap::SEAMLESS_MIGRATE));
        if requested == MigrationKind::Seamless && dst_seamless {
            self.send_msg(id, &ClientMsg::MigrateDstDoSeamless(version));
        } else if let Mig::Connecting { seamless, .. } = &mut self.mig {
            *seamless = Some(false);
        }
        // Every other (type, id) held on the source, in parallel.
        let Some(sid) = self.session_id else {
            return;
        };
        let others: Vec<ChannelRef> = self
            .channels
            .iter()
            .filter(|(r, c)| **r != ChannelRef::MAIN && c.conn.is_some())
            .map(|(r, _)| *r)
            .collect();
        for channel in others {
            match self.connect(channel, Role::Destination, &target, sid) {
                Some(cid) => {
                    if let Some(c) = self.channels.get_mut(&channel) {
                        c.target = Some(cid);
                    }
                }
                None => {
                    self.target_failed(format!("no usable port for {channel:?}"));
                    return;
                }
            }
        }
    }

    fn on_handshake_msg(&mut self, msg_type: u16) {
        let answer = match msg_type {
            msg::main::MIGRATE_DST_SEAMLESS_ACK => Some(true),
            msg::main::MIGRATE_DST_SEAMLESS_NACK => Some(false),
            _ => None, // dropped while the handshake runs (§4 step 4)
        };
        if let (Some(a), Mig::Connecting { seamless, .. }) = (answer, &mut self.mig) {
            *seamless = Some(a);
            self.check_connected();
        }
    }

    fn check_connected(&mut self) {
        let Mig::Connecting {
            seamless: Some(seamless),
            ref target,
            ..
        } = self.mig
        else {
            return;
        };
        let target = target.clone();
        let all_linked = self.channels.values().all(|c| match c.conn {
            None => true,
            Some(_) => c
                .target
                .and_then(|t| self.conns.get(&t))
                .is_some_and(|t| t.stage == Stage::Ready),
        });
        if !all_linked {
            return;
        }
        let kind = if seamless {
            MigrationKind::Seamless
        } else {
            MigrationKind::SemiSeamless
        };
        self.mig = Mig::Armed { kind, target };
        if let Some(main) = self.channels.get(&ChannelRef::MAIN).and_then(|c| c.conn) {
            let m = if seamless {
                ClientMsg::MigrateConnectedSeamless
            } else {
                ClientMsg::MigrateConnected
            };
            self.send_msg(main, &m);
        }
        self.event(SessionEvent::MigrationConnected { kind });
    }

    /// Close every target connection and forget them.
    fn drop_targets(&mut self) {
        let targets: Vec<ConnId> = self
            .channels
            .values_mut()
            .filter_map(|c| {
                c.frozen = false;
                c.awaiting_data = false;
                c.target.take()
            })
            .collect();
        for t in targets {
            self.close_conn(t);
        }
    }

    fn connect_error(&mut self, reason: String) {
        self.mig = Mig::Idle;
        self.drop_targets();
        if let Some(main) = self.channels.get(&ChannelRef::MAIN).and_then(|c| c.conn) {
            self.send_msg(main, &ClientMsg::MigrateConnectError);
        }
        self.event(SessionEvent::MigrationFailed { reason });
    }

    fn target_failed(&mut self, reason: String) {
        match self.mig {
            Mig::Connecting { .. } | Mig::Checking { .. } => self.connect_error(reason),
            Mig::Armed { .. } => {
                // The source decides what follows (its migration will fail and it sends
                // MIGRATE_CANCEL); the session stays on it meanwhile.
                self.mig = Mig::TargetLost;
                self.drop_targets();
                self.error(SessionError::Transport {
                    channel: ChannelRef::MAIN,
                    reason,
                });
            }
            _ => {}
        }
    }

    fn on_cancel(&mut self) {
        if matches!(self.mig, Mig::Idle) {
            return;
        }
        // Channels already switched go back to their source connection (§4 "Cancel").
        let mut back = Vec::new();
        for c in self.channels.values_mut() {
            if let Some(prev) = c.previous.take() {
                if let Some(cur) = c.conn.replace(prev) {
                    back.push(cur);
                }
            }
            c.switched = false;
        }
        for id in back {
            self.close_conn(id);
        }
        for c in self.conns.values_mut() {
            if c.role == Role::Source {
                c.hold = false;
            }
        }
        self.mig = Mig::Idle;
        self.drop_targets();
        let channels: Vec<ChannelRef> = self.channels.keys().copied().collect();
        for ch in channels {
            self.flush_queue(ch);
        }
        self.event(SessionEvent::MigrationCancelled);
    }

    // ---- migration: the switch ---------------------------------------------------------

    fn on_migrate(&mut self, now: Millis, id: ConnId, channel: ChannelRef, flags: u32) {
        let Mig::Armed {
            kind: MigrationKind::Seamless,
            ..
        } = self.mig
        else {
            self.error(SessionError::Protocol {
                channel,
                message: "MIGRATE outside a seamless migration".into(),
            });
            return;
        };
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        if c.target.is_none() || c.switched {
            self.error(SessionError::Protocol {
                channel,
                message: "MIGRATE on a channel without a target link".into(),
            });
            return;
        }
        c.frozen = true;
        if flags & crate::spice::wire::consts::migrate_flags::NEED_FLUSH != 0 {
            // Ahead of anything queued: queued messages are held in `queue`, not sent yet.
            self.send_msg(id, &ClientMsg::MigrateFlushMark);
        }
        if flags & crate::spice::wire::consts::migrate_flags::NEED_DATA_TRANSFER != 0 {
            if let Some(c) = self.channels.get_mut(&channel) {
                c.awaiting_data = true;
            }
        } else {
            self.switch_channel(now, channel, None);
        }
    }

    /// Move `channel` to its target connection (§4 "Seamless switch" 3-5).
    fn switch_channel(&mut self, now: Millis, channel: ChannelRef, data: Option<Vec<u8>>) {
        let Some(c) = self.channels.get_mut(&channel) else {
            return;
        };
        let Some(target) = c.target.take() else {
            return;
        };
        let old = c.conn.replace(target);
        c.frozen = false;
        c.awaiting_data = false;
        c.switched = true;
        c.previous = old;
        if let Some(old) = old.and_then(|o| self.conns.get_mut(&o)) {
            // Nothing more is read from s1 on this channel.
            old.hold = true;
            old.rx.clear();
        }
        if let Some(t) = self.conns.get_mut(&target) {
            t.hold = false;
            t.role = Role::Source;
        }
        let len = data.as_ref().map_or(0, |d| d.len() as u64);
        if let Some(d) = data {
            // Invariant 9: the first message to s2, byte-identical.
            self.send_raw(target, msgc::MIGRATE_DATA, &d);
        }
        self.flush_queue(channel);
        self.event(SessionEvent::ChannelSwitched {
            channel,
            migrate_data_len: len,
        });
        // The target's input buffered before the switch, in order (invariant 6).
        self.pump(now, target);
        let pending = self
            .channels
            .values()
            .any(|c| c.target.is_some() && !c.switched);
        if !pending {
            self.finish_migration(MigrationKind::Seamless);
        }
    }

    fn finish_migration(&mut self, kind: MigrationKind) {
        // Invariant 13: close every s1 socket right after the last switch.
        let previous: Vec<ConnId> = self
            .channels
            .values_mut()
            .filter_map(|c| {
                c.switched = false;
                c.previous.take()
            })
            .collect();
        for id in previous {
            self.close_conn(id);
        }
        if let Mig::Armed { target, .. } = std::mem::replace(&mut self.mig, Mig::Idle) {
            self.cfg.server = target;
        }
        self.event(SessionEvent::Migrated { kind });
    }

    fn is_previous(&self, id: ConnId) -> bool {
        self.channels.values().any(|c| c.previous == Some(id))
    }

    /// Semi-seamless (§4): MIGRATE_END from s1.
    fn on_migrate_end(&mut self, now: Millis) {
        let Mig::Armed {
            kind: MigrationKind::SemiSeamless,
            ref target,
        } = self.mig
        else {
            self.error(SessionError::Protocol {
                channel: ChannelRef::MAIN,
                message: "MIGRATE_END outside a semi-seamless migration".into(),
            });
            return;
        };
        let target = target.clone();
        // Reset every channel: close s1, drop queued output, fresh flow control.
        let mut old = Vec::new();
        for c in self.channels.values_mut() {
            if let Some(id) = c.conn.take() {
                old.push(id);
            }
            c.queue.clear();
            c.ack = Ack::default();
            c.serial = 0;
            c.frozen = true;
        }
        for id in old {
            self.close_conn(id);
        }
        self.event(SessionEvent::SessionReset);
        // Switch main now and tell the target.
        let Some(main) = self.channels.get_mut(&ChannelRef::MAIN) else {
            return;
        };
        let Some(t) = main.target.take() else {
            return;
        };
        main.conn = Some(t);
        main.frozen = false;
        if let Some(conn) = self.conns.get_mut(&t) {
            conn.hold = false;
            conn.role = Role::Source;
        }
        self.cfg.server = target;
        self.mig = Mig::WaitInit;
        self.send_msg(t, &ClientMsg::MigrateEnd);
        self.pump(now, t);
    }

    fn finish_semi_seamless(&mut self, now: Millis) {
        self.event(SessionEvent::ChannelReady {
            channel: ChannelRef::MAIN,
            session_id: self.session_id,
        });
        let others: Vec<ChannelRef> = self
            .channels
            .keys()
            .copied()
            .filter(|r| *r != ChannelRef::MAIN)
            .collect();
        for channel in others {
            let Some(c) = self.channels.get_mut(&channel) else {
                continue;
            };
            c.frozen = false;
            let Some(t) = c.target.take() else {
                continue;
            };
            c.conn = Some(t);
            if let Some(conn) = self.conns.get_mut(&t) {
                conn.hold = false;
                conn.role = Role::Source;
            }
            self.channel_up(t, channel);
            self.pump(now, t);
        }
        self.mig = Mig::Idle;
        self.event(SessionEvent::Migrated {
            kind: MigrationKind::SemiSeamless,
        });
    }

    /// The legacy switch (§4 "Switch-host"): everything from scratch, connection id 0.
    fn switch_host(&mut self, target: Endpoint) {
        let ids: Vec<ConnId> = self.conns.keys().copied().collect();
        for id in ids {
            self.close_conn(id);
        }
        self.channels.clear();
        self.session_id = None;
        self.mig = Mig::Idle;
        self.cfg.server = target.clone();
        self.event(SessionEvent::SwitchHost {
            target: target.clone(),
        });
        self.event(SessionEvent::SessionReset);
        self.start_main(&target);
    }

    fn start_main(&mut self, server: &Endpoint) {
        self.channels.insert(ChannelRef::MAIN, Channel::default());
        if let Some(id) = self.connect(ChannelRef::MAIN, Role::Source, server, 0) {
            if let Some(c) = self.channels.get_mut(&ChannelRef::MAIN) {
                c.conn = Some(id);
            }
        } else {
            self.shutdown("no usable port for the server".into());
        }
    }

    fn on_timeout(&mut self, now: Millis) {
        if let Mig::Connecting { deadline, .. } = self.mig {
            if now >= deadline {
                self.connect_error("timed out linking the migration target".into());
            }
        }
    }
}

impl Machine for Session {
    type Input = SessionInput;
    type Action = SessionAction;

    fn handle(&mut self, now: Millis, input: SessionInput) {
        use SessionInput as I;
        if self.closed {
            return;
        }
        match input {
            I::Start => {
                if self.channels.is_empty() {
                    let server = self.cfg.server.clone();
                    self.start_main(&server);
                }
            }
            I::Connected { conn } => self.on_connected(conn),
            I::ConnectFailed { conn, reason } => self.conn_failed(conn, reason),
            I::Received { conn, bytes } => self.on_received(now, conn, bytes.as_slice()),
            I::Closed { conn, reason } => {
                if self.conns.remove(&conn).is_some() && !self.is_previous(conn) {
                    self.conn_closed(conn, reason);
                }
            }
            I::Ticket { conn, ticket } => self.on_ticket(now, conn, ticket.as_slice()),
            I::TicketFailed { conn, reason } => self.conn_failed(conn, reason),
            I::TargetDecision { allow } => self.on_decision(now, allow),
            I::Send {
                channel,
                msg_type,
                body,
            } => self.on_app_send(channel, msg_type, body),
            I::Timeout => self.on_timeout(now),
            I::Disconnect => self.shutdown("disconnected by the application".into()),
        }
    }

    fn poll_action(&mut self) -> Option<SessionAction> {
        self.actions.pop_front()
    }

    fn poll_timeout(&self) -> Option<Millis> {
        match self.mig {
            Mig::Connecting { deadline, .. } => Some(deadline),
            _ => None,
        }
    }
}

impl Session {
    /// The peer closed `conn` (already removed from `conns`).
    fn conn_closed(&mut self, conn: ConnId, reason: String) {
        let Some((channel, c)) = self
            .channels
            .iter()
            .find(|(_, c)| c.conn == Some(conn) || c.target == Some(conn))
            .map(|(r, c)| (*r, c.clone()))
        else {
            return;
        };
        if c.target == Some(conn) {
            if let Some(ch) = self.channels.get_mut(&channel) {
                ch.target = None;
            }
            self.target_failed(format!("{channel:?} on the target closed: {reason}"));
            return;
        }
        if let Some(ch) = self.channels.get_mut(&channel) {
            ch.conn = None;
        }
        self.error(SessionError::Transport {
            channel,
            reason: reason.clone(),
        });
        if channel == ChannelRef::MAIN {
            self.shutdown(format!("main channel closed: {reason}"));
        } else {
            self.source_lost(channel);
        }
    }
}
