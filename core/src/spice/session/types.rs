//! The session's configuration, inputs, actions and events: the vocabulary shared with
//! hosts, wasm, JS and traces (spec/spice-migration.md §4).

use serde::{Deserialize, Serialize};

use crate::bytes::Bytes;
use crate::spice::wire::consts::{ChannelType, LinkErr};
use crate::spice::wire::msg::DisplayInit;
use crate::Millis;

/// A host-chosen handle for one transport connection (TCP, TLS, unix or WebSocket).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnId(pub u32);

/// A logical SPICE channel: (type, id), e.g. main (1, 0), inputs (3, 0).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChannelRef {
    /// Channel type.
    #[serde(rename = "type")]
    pub kind: ChannelType,
    /// Channel id.
    pub id: u8,
}

impl ChannelRef {
    /// The main channel (1, 0).
    pub const MAIN: ChannelRef = ChannelRef {
        kind: ChannelType::Main,
        id: 0,
    };
}

/// Which server a connection goes to.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The server the session runs on now (s1).
    Source,
    /// A migration target (s2), before the switch.
    Destination,
}

/// A SPICE server address as BEGIN, SWITCH_HOST or the host's configuration gives it.
/// Ports 0 and 0xFFFF mean absent (§3, invariant 15).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// Host name or address.
    pub host: String,
    /// Plain port.
    pub port: Option<u16>,
    /// TLS port.
    pub tls_port: Option<u16>,
    /// Certificate subject to verify the server against (else its host name).
    pub cert_subject: Option<String>,
}

/// How the host must verify the server's TLS certificate (invariant 15).
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verify {
    /// Against this certificate subject (e.g. `C=XX,O=Org,CN=host`).
    Subject(String),
    /// Against this host name.
    Hostname(String),
}

/// Session configuration.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionConfig {
    /// The server to link to first.
    pub server: Endpoint,
    /// The ticket password (`""` when the server has ticketing disabled). It is handed back
    /// in [`SessionAction::EncryptTicket`] so the host encrypts with its own crypto.
    #[serde(default)]
    pub password: String,
    /// Use the TLS port when an endpoint has one (default true).
    #[serde(default = "yes")]
    pub prefer_tls: bool,
    /// Channel types to link from CHANNELS_LIST; empty = every listed channel.
    #[serde(default)]
    pub channel_types: Vec<ChannelType>,
    /// Bound on linking every channel to a migration target, in ms (the server waits 10 s,
    /// §5; default 9000).
    #[serde(default = "default_connect_timeout")]
    pub migrate_connect_timeout_ms: Millis,
    /// Largest number of bytes buffered for one connection before it is an error.
    #[serde(default = "default_max_buffer")]
    pub max_buffered: u64,
    /// DISPLAY_INIT sent on every freshly linked display channel (spice-server waits for
    /// it before it starts the display, §4 "Semi-seamless switch" 6); `None` leaves it to
    /// the application. Default: pixmap cache 1 of size 0 (no caching), GLZ dictionary 1
    /// with a window of 1.
    #[serde(default = "default_display_init")]
    pub display_init: Option<DisplayInit>,
}

fn yes() -> bool {
    true
}
fn default_connect_timeout() -> Millis {
    9_000
}
fn default_max_buffer() -> u64 {
    64 << 20
}
fn default_display_init() -> Option<DisplayInit> {
    Some(DisplayInit {
        pixmap_cache_id: 1,
        pixmap_cache_size: 0,
        glz_dictionary_id: 1,
        glz_dictionary_window_size: 1,
    })
}

impl SessionConfig {
    /// A configuration with defaults for `server`.
    pub fn new(server: Endpoint) -> Self {
        SessionConfig {
            server,
            password: String::new(),
            prefer_tls: true,
            channel_types: Vec::new(),
            migrate_connect_timeout_ms: default_connect_timeout(),
            max_buffered: default_max_buffer(),
            display_init: default_display_init(),
        }
    }
}

/// What the host feeds the session.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionInput {
    /// Link the main channel to the configured server.
    Start,
    /// A [`SessionAction::Connect`] succeeded (TLS verified, WebSocket open, ...).
    Connected {
        /// Which connection.
        conn: ConnId,
    },
    /// A [`SessionAction::Connect`] failed.
    ConnectFailed {
        /// Which connection.
        conn: ConnId,
        /// Why.
        reason: String,
    },
    /// Bytes arrived on a connection (any chunking).
    Received {
        /// Which connection.
        conn: ConnId,
        /// The bytes.
        bytes: Bytes,
    },
    /// The peer closed a connection, or it broke.
    Closed {
        /// Which connection.
        conn: ConnId,
        /// Why, for the record.
        reason: String,
    },
    /// The 128-byte ticket the host computed for [`SessionAction::EncryptTicket`].
    Ticket {
        /// Which connection.
        conn: ConnId,
        /// RSA-OAEP-SHA1 of the password and its NUL under the server's key.
        ticket: Bytes,
    },
    /// The host could not compute the ticket.
    TicketFailed {
        /// Which connection.
        conn: ConnId,
        /// Why.
        reason: String,
    },
    /// The host's answer to [`SessionAction::CheckTarget`].
    TargetDecision {
        /// Whether the target may be contacted.
        allow: bool,
    },
    /// The application sends a message on a channel. Held while that channel switches
    /// servers, then sent in order: none is lost, duplicated or reordered.
    Send {
        /// The channel.
        channel: ChannelRef,
        /// Message type.
        msg_type: u16,
        /// Body.
        body: Bytes,
    },
    /// Time passed (see `poll_timeout`).
    Timeout,
    /// Close the session.
    Disconnect,
}

/// What the session asks the host to do.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SessionAction {
    /// Open a connection; answer `Connected` or `ConnectFailed`.
    Connect {
        /// The handle the session will use for it.
        conn: ConnId,
        /// The channel it carries.
        channel: ChannelRef,
        /// Source or migration target.
        role: Role,
        /// Where.
        endpoint: Endpoint,
        /// The port to use (the TLS port when `tls` is set).
        port: u16,
        /// TLS and how to verify the server, or `None` for plain.
        tls: Option<Verify>,
    },
    /// Write these bytes to the connection, in order.
    Transmit {
        /// Which connection.
        conn: ConnId,
        /// The bytes.
        bytes: Bytes,
    },
    /// Close the connection.
    Close {
        /// Which connection.
        conn: ConnId,
    },
    /// Encrypt `password` + NUL with RSA-OAEP (SHA-1, MGF1-SHA1, empty label) under the DER
    /// SubjectPublicKeyInfo `public_key`; answer `Ticket` (128 bytes) or `TicketFailed`.
    EncryptTicket {
        /// Which connection.
        conn: ConnId,
        /// The server's key for this link.
        public_key: Bytes,
        /// The password.
        password: String,
    },
    /// May this migration target be contacted? Answer `TargetDecision`. A refusal makes
    /// the session answer MIGRATE_CONNECT_ERROR, never a silent connect.
    CheckTarget {
        /// The target as the source server announced it.
        endpoint: Endpoint,
    },
    /// Something the application should know.
    Event(SessionEvent),
}

/// Which kind of switch a migration makes.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MigrationKind {
    /// State carried over, nothing lost (MIGRATE / MIGRATE_DATA).
    Seamless,
    /// Reconnect and reset (MIGRATE_END, then MAIN_INIT from the target).
    SemiSeamless,
}

/// Events for the application.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SessionEvent {
    /// A channel is linked and usable (after a fresh link, SWITCH_HOST, or a semi-seamless
    /// switch: then the application re-runs its channel init, e.g. DISPLAY_INIT).
    ChannelReady {
        /// The channel.
        channel: ChannelRef,
        /// Whether the session id came from MAIN_INIT (main only).
        session_id: Option<u32>,
    },
    /// A message for the application (everything but link, ack, ping and migration
    /// traffic, which the session handles itself).
    Message {
        /// The channel.
        channel: ChannelRef,
        /// Message type.
        msg_type: u16,
        /// Body.
        body: Bytes,
    },
    /// The source announced a migration target.
    MigrationStarted {
        /// Seamless requested (BEGIN_SEAMLESS) or not (BEGIN).
        kind: MigrationKind,
        /// The target.
        target: Endpoint,
    },
    /// Every channel is linked to the target; the source was told (CONNECTED[_SEAMLESS]).
    MigrationConnected {
        /// The kind negotiated with the target (ACK/NACK).
        kind: MigrationKind,
    },
    /// Linking the target failed or was refused; the source was told (CONNECT_ERROR) and
    /// the session stays there.
    MigrationFailed {
        /// Why.
        reason: String,
    },
    /// The source cancelled the migration (MIGRATE_CANCEL): the session stays there.
    MigrationCancelled,
    /// One channel now talks to the target.
    ChannelSwitched {
        /// The channel.
        channel: ChannelRef,
        /// Bytes of MIGRATE_DATA forwarded (0 when none was asked).
        migrate_data_len: u64,
    },
    /// The application must drop per-session state (semi-seamless switch or SWITCH_HOST).
    SessionReset,
    /// Every channel is on the target.
    Migrated {
        /// How.
        kind: MigrationKind,
    },
    /// The legacy switch: reconnecting from scratch to `target` (connection id 0).
    SwitchHost {
        /// The new server.
        target: Endpoint,
    },
    /// A protocol or transport error. The session goes on where it can.
    Error {
        /// The error.
        error: SessionError,
    },
    /// The session is over (main channel gone or `Disconnect`).
    Closed {
        /// Why.
        reason: String,
    },
}

/// Errors reported in [`SessionEvent::Error`].
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "code", rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionError {
    /// A peer sent bytes the codec refused.
    #[error("wire error on {channel:?}: {message}")]
    Wire {
        /// The channel.
        channel: ChannelRef,
        /// The codec's message.
        message: String,
    },
    /// The server refused the link.
    #[error("link of {channel:?} refused: {error:?}")]
    LinkRefused {
        /// The channel.
        channel: ChannelRef,
        /// The server's code.
        error: LinkErr,
    },
    /// A connection failed or closed.
    #[error("connection of {channel:?} failed: {reason}")]
    Transport {
        /// The channel.
        channel: ChannelRef,
        /// Why.
        reason: String,
    },
    /// The server broke the migration protocol (e.g. no MIGRATE_DATA after MIGRATE).
    #[error("migration protocol violation on {channel:?}: {message}")]
    Protocol {
        /// The channel.
        channel: ChannelRef,
        /// What happened.
        message: String,
    },
    /// The application named a channel the session does not have.
    #[error("unknown channel {channel:?}")]
    UnknownChannel {
        /// The channel.
        channel: ChannelRef,
    },
    /// An input named a connection the session does not know (ignored).
    #[error("unknown connection {conn:?}")]
    UnknownConnection {
        /// The connection.
        conn: ConnId,
    },
    /// A connection buffered more than `max_buffered` bytes.
    #[error("buffer limit exceeded on {channel:?}")]
    BufferLimit {
        /// The channel.
        channel: ChannelRef,
    },
}
