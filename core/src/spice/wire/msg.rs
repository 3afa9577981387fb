//! Typed message bodies (§3, spice-common `spice.proto`): decode what a client receives,
//! encode what it sends, and the reverse for simulated servers and tests.
//!
//! * [`ServerMsg::decode`] / [`ClientMsg::decode`] take the channel type, the message type
//!   and the body (e.g. from a [`Frame`]) and return a typed message,
//!   or `Other { msg_type, body }` for everything passed through unparsed (display drawing,
//!   cursor, audio, …). Opaque bodies (MIGRATE_DATA, AGENT_DATA) borrow the input.
//! * Both implement [`WireMsg`]; [`encode_msg`] writes header and body in one pass.
//!
//! Size rules follow the generated spice-common demarshallers: a body shorter than its fixed
//! part, or than a count/length/pointer inside it says, is an error; trailing bytes after
//! what the layout describes are ignored (PING padding, the NUL after NOTIFY's text, fields a
//! newer peer appended). Pointers are u32 offsets from the first body byte (§1.2); one that
//! reaches past the body is an error, and strings they point to must be NUL-terminated
//! without an inner NUL.

use serde::{Deserialize, Serialize};

use super::consts::{migrate_data_magic, MIN_MAIN_MIGRATE_DATA_LEN};
use super::consts::{msg, msgc, ChannelType, LinkErr, MigrateFlags, MIGRATION_PROTOCOL_VERSION};
use super::error::WireError;
use super::framer::Frame;
use super::header::{begin_header, finish_header, HeaderKind};
use super::read::{le_u32, Reader};

/// A message that can write its body.
pub trait WireMsg {
    /// The message type number for the header.
    fn msg_type(&self) -> u16;
    /// Append the body. Fails only when a length does not fit its field or a string has an
    /// inner NUL.
    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), WireError>;
}

/// Append header (`serial` is ignored for mini headers) and body of `msg` to `out`. On error
/// `out` is left as it was.
pub fn encode_msg<M: WireMsg + ?Sized>(
    kind: HeaderKind,
    serial: u64,
    msg: &M,
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let orig = out.len();
    let start = begin_header(kind, serial, msg.msg_type(), out);
    let result = msg
        .encode_body(out)
        .and_then(|()| finish_header(kind, start, out));
    if result.is_err() {
        out.truncate(orig);
    }
    result
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_le_bytes());
}
fn len_u32(what: &'static str, len: usize) -> Result<u32, WireError> {
    u32::try_from(len).map_err(|_| WireError::TooLong { what, len })
}

/// A port as sent in DstInfo: 0 and 0xFFFF (QEMU's −1) mean absent (§3, invariant 15).
fn port_from_wire(v: u16) -> Option<u16> {
    (v != 0 && v != 0xFFFF).then_some(v)
}

/// Reads a NUL-terminated string at a body-relative pointer (§1.2, §3).
fn read_cstr(
    msg_type: u16,
    body: &[u8],
    field: &'static str,
    size: u32,
    ptr: u32,
    nonnull: bool,
) -> Result<Option<String>, WireError> {
    if ptr == 0 {
        return if nonnull {
            Err(WireError::NullPointer { msg_type, field })
        } else {
            Ok(None)
        };
    }
    let end = u64::from(ptr) + u64::from(size);
    let out_of_range = || WireError::PointerOutOfRange {
        msg_type,
        field,
        offset: ptr,
        size,
        body_len: body.len(),
    };
    if end > body.len() as u64 {
        return Err(out_of_range());
    }
    let bytes = body
        .get(ptr as usize..end as usize)
        .ok_or_else(out_of_range)?;
    let Some((&0, text)) = bytes.split_last() else {
        return Err(WireError::MissingNul { msg_type, field });
    };
    if text.contains(&0) {
        return Err(WireError::InteriorNul { msg_type, field });
    }
    String::from_utf8(text.to_vec())
        .map(Some)
        .map_err(|_| WireError::InvalidUtf8 { msg_type, field })
}

/// The parsed DstInfo fields: port, sport, host, cert subject.
type DstFields = (Option<u16>, Option<u16>, Option<String>, Option<String>);

fn decode_dst(
    msg_type: u16,
    body: &[u8],
    fixed: usize,
    host_nonnull: bool,
) -> Result<DstFields, WireError> {
    let mut r = Reader::fixed(msg_type, body, fixed)?;
    let port = r.u16()?;
    let sport = r.u16()?;
    let host_size = r.u32()?;
    let host_ptr = r.u32()?;
    let subject_size = r.u32()?;
    let subject_ptr = r.u32()?;
    let host = read_cstr(msg_type, body, "host", host_size, host_ptr, host_nonnull)?;
    let subject = read_cstr(
        msg_type,
        body,
        "cert_subject",
        subject_size,
        subject_ptr,
        false,
    )?;
    Ok((port_from_wire(port), port_from_wire(sport), host, subject))
}

/// Writes the 20-byte DstInfo fixed part, `extra` words (src_mig_version), then the strings,
/// laid out as spice-server does: host at the end of the fixed part, the subject after it.
fn encode_dst(
    msg_type: u16,
    fields: (Option<u16>, Option<u16>, Option<&str>, Option<&str>),
    extra: &[u32],
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let (port, sport, host, subject) = fields;
    for (field, s) in [("host", host), ("cert_subject", subject)] {
        if s.is_some_and(|s| s.as_bytes().contains(&0)) {
            return Err(WireError::InteriorNul { msg_type, field });
        }
    }
    let fixed = DstInfo::FIXED_LEN + 4 * extra.len();
    let size_of = |s: Option<&str>| s.map_or(Ok(0), |s| len_u32("DstInfo string", s.len() + 1));
    let host_size = size_of(host)?;
    let subject_size = size_of(subject)?;
    let host_ptr = if host.is_some() {
        len_u32("DstInfo", fixed)?
    } else {
        0
    };
    let subject_ptr = if subject.is_some() {
        len_u32("DstInfo", fixed + host_size as usize)?
    } else {
        0
    };
    put_u16(out, port.unwrap_or(0xFFFF));
    put_u16(out, sport.unwrap_or(0xFFFF));
    put_u32(out, host_size);
    put_u32(out, host_ptr);
    put_u32(out, subject_size);
    put_u32(out, subject_ptr);
    for &w in extra {
        put_u32(out, w);
    }
    for s in [host, subject].into_iter().flatten() {
        out.extend_from_slice(s.as_bytes());
        out.push(0);
    }
    Ok(())
}

/// `DstInfo` of MIGRATE_BEGIN (101) and MIGRATE_BEGIN_SEAMLESS (116), §3.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DstInfo {
    /// Plain port; `None` for 0 or 0xFFFF on the wire (encoded as 0xFFFF, like QEMU).
    pub port: Option<u16>,
    /// TLS port, same convention.
    pub sport: Option<u16>,
    /// Destination host (the pointer must be non-null).
    pub host: String,
    /// TLS certificate subject to verify against instead of the host name.
    pub cert_subject: Option<String>,
}

impl DstInfo {
    /// Length of the fixed part: port, sport, host size/ptr, subject size/ptr.
    pub const FIXED_LEN: usize = 20;

    fn fields(&self) -> (Option<u16>, Option<u16>, Option<&str>, Option<&str>) {
        (
            self.port,
            self.sport,
            Some(self.host.as_str()),
            self.cert_subject.as_deref(),
        )
    }

    fn from_fields(msg_type: u16, f: DstFields) -> Result<Self, WireError> {
        let (port, sport, host, cert_subject) = f;
        let host = host.ok_or(WireError::NullPointer {
            msg_type,
            field: "host",
        })?;
        Ok(DstInfo {
            port,
            sport,
            host,
            cert_subject,
        })
    }

    /// Decode a MIGRATE_BEGIN body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = msg::main::MIGRATE_BEGIN;
        Self::from_fields(t, decode_dst(t, body, Self::FIXED_LEN, true)?)
    }
}

/// MIGRATE_BEGIN_SEAMLESS (116): DstInfo + `src_mig_version` at @20; host at 24 (§3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct BeginSeamless {
    /// Where to connect.
    pub dst: DstInfo,
    /// Source migration protocol version, echoed in DST_DO_SEAMLESS (invariant 4).
    pub src_mig_version: u32,
}

impl BeginSeamless {
    /// Length of the fixed part.
    pub const FIXED_LEN: usize = 24;

    /// Decode a MIGRATE_BEGIN_SEAMLESS body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = msg::main::MIGRATE_BEGIN_SEAMLESS;
        let dst = DstInfo::from_fields(t, decode_dst(t, body, Self::FIXED_LEN, true)?)?;
        let src_mig_version = le_u32(body, DstInfo::FIXED_LEN).unwrap_or(0);
        Ok(BeginSeamless {
            dst,
            src_mig_version,
        })
    }
}

/// MIGRATE_SWITCH_HOST (111): the DstInfo layout, but the host pointer may be null (§3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SwitchHost {
    /// Plain port (`None` for 0 / 0xFFFF).
    pub port: Option<u16>,
    /// TLS port.
    pub sport: Option<u16>,
    /// New host, if given.
    pub host: Option<String>,
    /// TLS certificate subject.
    pub cert_subject: Option<String>,
}

impl SwitchHost {
    /// Decode a MIGRATE_SWITCH_HOST body.
    pub fn decode(body: &[u8]) -> Result<Self, WireError> {
        let t = msg::main::MIGRATE_SWITCH_HOST;
        let (port, sport, host, cert_subject) = decode_dst(t, body, DstInfo::FIXED_LEN, false)?;
        Ok(SwitchHost {
            port,
            sport,
            host,
            cert_subject,
        })
    }
}

/// MAIN_INIT (103): 8×u32, 32 bytes (§3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct MainInit {
    /// The connection id every later link carries (invariant 3).
    pub session_id: u32,
    /// Number of display channels to expect.
    pub display_channels_hint: u32,
    /// `SpiceMouseMode` flags supported.
    pub supported_mouse_modes: u32,
    /// Current mouse mode.
    pub current_mouse_mode: u32,
    /// Whether the guest agent is connected.
    pub agent_connected: u32,
    /// Agent tokens granted (10, `REDS_AGENT_WINDOW_SIZE`).
    pub agent_tokens: u32,
    /// Multimedia time.
    pub multi_media_time: u32,
    /// RAM hint.
    pub ram_hint: u32,
}

impl MainInit {
    /// Body length.
    pub const LEN: usize = 32;
}

/// SET_ACK (3): answer ACK_SYNC{generation}, then ACK every `window` messages (§1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SetAck {
    /// Generation to echo.
    pub generation: u32,
    /// Ack window (20, or 40 on a low-bandwidth display).
    pub window: u32,
}

/// PING (4): id, timestamp and padding (256000 bytes in the net test), §1.2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Ping {
    /// Id to echo in PONG.
    pub id: u32,
    /// Timestamp to echo in PONG.
    pub timestamp: u64,
    /// Padding bytes after the 12-byte fixed part (not kept; encoded as zeros).
    pub padding_len: u32,
}

/// PONG (client 3): the ping's id and timestamp, 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Pong {
    /// Ping id.
    pub id: u32,
    /// Ping timestamp.
    pub timestamp: u64,
}

impl From<Ping> for Pong {
    fn from(p: Ping) -> Self {
        Pong {
            id: p.id,
            timestamp: p.timestamp,
        }
    }
}

/// NOTIFY (7): time_stamp u64, severity u32, visibility u32, what u32, message_len u32,
/// message (spice-server appends a NUL not counted in message_len).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Notify {
    /// Time stamp (ns, monotonic on the server).
    pub time_stamp: u64,
    /// `notify_severity` (spice-server: WARN).
    pub severity: u32,
    /// `notify_visibility` (spice-server: HIGH).
    pub visibility: u32,
    /// error/warn/info code.
    pub what: u32,
    /// The text (decoded lossily; informational only).
    pub message: String,
}

impl Notify {
    /// Length of the fixed part.
    pub const FIXED_LEN: usize = 24;
}

/// DISCONNECTING (6, both directions): time_stamp u64, reason u32.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Disconnecting {
    /// Time stamp.
    pub time_stamp: u64,
    /// Reason.
    pub reason: LinkErr,
}

/// One (type, id) of CHANNELS_LIST.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ChannelId {
    /// Channel type.
    pub channel_type: ChannelType,
    /// Channel id.
    pub id: u8,
}

/// One entry of WAIT_FOR_CHANNELS (5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct WaitForChannel {
    /// Channel type.
    pub channel_type: ChannelType,
    /// Channel id.
    pub channel_id: u8,
    /// Serial to wait for on that channel.
    pub message_serial: u64,
}

/// MOUSE_MODE (main 105).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MouseMode {
    /// Supported `mouse_mode` flags.
    pub supported: u16,
    /// Current mode.
    pub current: u16,
}

/// INPUTS_MOUSE_MOTION (client 111): dx i32, dy i32, buttons_state u16 = 10 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MouseMotion {
    /// Relative x.
    pub dx: i32,
    /// Relative y.
    pub dy: i32,
    /// `mouse_button_mask`.
    pub buttons_state: u16,
}

/// INPUTS_MOUSE_POSITION (client 112): x u32, y u32, buttons_state u16, display_id u8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MousePosition {
    /// Absolute x.
    pub x: u32,
    /// Absolute y.
    pub y: u32,
    /// `mouse_button_mask`.
    pub buttons_state: u16,
    /// Display.
    pub display_id: u8,
}

/// INPUTS_MOUSE_PRESS / RELEASE (client 113/114): button u8, buttons_state u16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MouseButton {
    /// `mouse_button`.
    pub button: u8,
    /// `mouse_button_mask` after the event.
    pub buttons_state: u16,
}

/// DISPLAY_INIT (client, display 101): 14 bytes (§4 "Semi-seamless switch").
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(missing_as_null))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DisplayInit {
    /// Pixmap cache id.
    pub pixmap_cache_id: u8,
    /// Pixmap cache size, in pixels.
    pub pixmap_cache_size: i64,
    /// GLZ dictionary id.
    pub glz_dictionary_id: u8,
    /// GLZ dictionary window size, in pixels.
    pub glz_dictionary_window_size: i32,
}

impl DisplayInit {
    /// Body length.
    pub const LEN: usize = 14;
}

/// `SpiceMigrateDataHeader` at the front of a MIGRATE_DATA body (§3), read without copying
/// the body (which is forwarded byte-identical, invariant 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MigrateDataHeader {
    /// Channel magic ([`migrate_data_magic`]).
    pub magic: u32,
    /// Version (1).
    pub version: u32,
}

impl MigrateDataHeader {
    /// Header length.
    pub const LEN: usize = 8;

    /// The header, if the body holds 8 bytes.
    pub fn peek(body: &[u8]) -> Option<Self> {
        Some(MigrateDataHeader {
            magic: le_u32(body, 0)?,
            version: le_u32(body, 4)?,
        })
    }

    /// Whether spice-server on `channel` would accept this body
    /// (`migration_protocol_validate_header`: the channel's magic, version ≤ 1; main also
    /// needs 8 + 57 bytes). A body failing this would make the destination QEMU abort or
    /// drop the channel (§5), so a client may check before forwarding, never alter.
    pub fn validate_for(channel: ChannelType, body: &[u8]) -> Result<Self, WireError> {
        let header = Self::peek(body);
        let ok = match (header, channel.migrate_data_magic()) {
            (Some(h), Some(magic)) => {
                h.magic == magic
                    && h.version <= MIGRATION_PROTOCOL_VERSION
                    && (h.magic != migrate_data_magic::MAIN
                        || body.len() >= MIN_MAIN_MIGRATE_DATA_LEN)
            }
            _ => false,
        };
        match header {
            Some(h) if ok => Ok(h),
            _ => Err(WireError::BadMigrateData {
                channel,
                magic: header.map_or(0, |h| h.magic),
                version: header.map_or(0, |h| h.version),
                len: body.len(),
            }),
        }
    }
}

/// A message from the server, typed where migration or keep-alive needs it (§2-§3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMsg<'a> {
    /// MIGRATE (1).
    Migrate(MigrateFlags),
    /// MIGRATE_DATA (2): opaque, forward byte-identical.
    MigrateData(&'a [u8]),
    /// SET_ACK (3).
    SetAck(SetAck),
    /// PING (4).
    Ping(Ping),
    /// WAIT_FOR_CHANNELS (5).
    WaitForChannels(Vec<WaitForChannel>),
    /// DISCONNECTING (6).
    Disconnecting(Disconnecting),
    /// NOTIFY (7).
    Notify(Notify),
    /// MAIN_MIGRATE_BEGIN (101).
    MigrateBegin(DstInfo),
    /// MAIN_MIGRATE_CANCEL (102).
    MigrateCancel,
    /// MAIN_INIT (103).
    MainInit(MainInit),
    /// MAIN_CHANNELS_LIST (104).
    ChannelsList(Vec<ChannelId>),
    /// MAIN_MOUSE_MODE (105).
    MouseMode(MouseMode),
    /// MAIN_MULTI_MEDIA_TIME (106).
    MultiMediaTime(u32),
    /// MAIN_AGENT_CONNECTED (107).
    AgentConnected,
    /// MAIN_AGENT_DISCONNECTED (108): error code.
    AgentDisconnected(LinkErr),
    /// MAIN_AGENT_DATA (109): opaque VDAgent bytes (chunks may be split, §4).
    AgentData(&'a [u8]),
    /// MAIN_AGENT_TOKEN (110): num_tokens.
    AgentToken(u32),
    /// MAIN_MIGRATE_SWITCH_HOST (111).
    MigrateSwitchHost(SwitchHost),
    /// MAIN_MIGRATE_END (112).
    MigrateEnd,
    /// MAIN_NAME (113): the VM name (a trailing NUL is dropped; lossy UTF-8).
    Name(String),
    /// MAIN_UUID (114).
    Uuid([u8; 16]),
    /// MAIN_AGENT_CONNECTED_TOKENS (115): num_tokens.
    AgentConnectedTokens(u32),
    /// MAIN_MIGRATE_BEGIN_SEAMLESS (116).
    MigrateBeginSeamless(BeginSeamless),
    /// MAIN_MIGRATE_DST_SEAMLESS_ACK (117).
    MigrateDstSeamlessAck,
    /// MAIN_MIGRATE_DST_SEAMLESS_NACK (118).
    MigrateDstSeamlessNack,
    /// INPUTS_INIT (101): keyboard_modifiers.
    InputsInit(u16),
    /// INPUTS_KEY_MODIFIERS (102).
    InputsKeyModifiers(u16),
    /// INPUTS_MOUSE_MOTION_ACK (111).
    InputsMouseMotionAck,
    /// Anything else (LIST, display, cursor, audio, …), passed through.
    Other {
        /// Message type.
        msg_type: u16,
        /// Body.
        body: &'a [u8],
    },
}

/// Decodes the common (base-channel) server messages; `None` for other numbers.
fn decode_common_server(msg_type: u16, body: &[u8]) -> Result<Option<ServerMsg<'_>>, WireError> {
    let t = msg_type;
    Ok(Some(match t {
        msg::MIGRATE => ServerMsg::Migrate(MigrateFlags(Reader::fixed(t, body, 4)?.u32()?)),
        msg::MIGRATE_DATA => ServerMsg::MigrateData(body),
        msg::SET_ACK => {
            let mut r = Reader::fixed(t, body, 8)?;
            ServerMsg::SetAck(SetAck {
                generation: r.u32()?,
                window: r.u32()?,
            })
        }
        msg::PING => {
            let mut r = Reader::fixed(t, body, 12)?;
            ServerMsg::Ping(Ping {
                id: r.u32()?,
                timestamp: r.u64()?,
                padding_len: u32::try_from(r.rest().len()).unwrap_or(u32::MAX),
            })
        }
        msg::WAIT_FOR_CHANNELS => {
            let mut r = Reader::fixed(t, body, 1)?;
            let count = usize::from(r.u8()?);
            // 10 bytes per entry; check they are all there before allocating.
            let entries = r.bytes(count * 10)?;
            let list = entries
                .chunks_exact(10)
                .map(|e| {
                    let mut er = Reader::fixed(t, e, 10)?;
                    Ok(WaitForChannel {
                        channel_type: ChannelType::from_raw(er.u8()?),
                        channel_id: er.u8()?,
                        message_serial: er.u64()?,
                    })
                })
                .collect::<Result<Vec<_>, WireError>>()?;
            ServerMsg::WaitForChannels(list)
        }
        msg::DISCONNECTING => ServerMsg::Disconnecting(decode_disconnecting(t, body)?),
        msg::NOTIFY => {
            let mut r = Reader::fixed(t, body, Notify::FIXED_LEN)?;
            let time_stamp = r.u64()?;
            let severity = r.u32()?;
            let visibility = r.u32()?;
            let what = r.u32()?;
            let len = r.u32()?;
            let text = r.bytes(len as usize)?;
            ServerMsg::Notify(Notify {
                time_stamp,
                severity,
                visibility,
                what,
                message: String::from_utf8_lossy(text).into_owned(),
            })
        }
        _ => return Ok(None),
    }))
}

fn decode_disconnecting(t: u16, body: &[u8]) -> Result<Disconnecting, WireError> {
    let mut r = Reader::fixed(t, body, 12)?;
    Ok(Disconnecting {
        time_stamp: r.u64()?,
        reason: LinkErr::from_raw(r.u32()?),
    })
}

fn decode_main_server(msg_type: u16, body: &[u8]) -> Result<Option<ServerMsg<'_>>, WireError> {
    use msg::main as m;
    let t = msg_type;
    let u32_body = |body: &[u8]| Reader::fixed(t, body, 4)?.u32();
    Ok(Some(match t {
        m::MIGRATE_BEGIN => ServerMsg::MigrateBegin(DstInfo::decode(body)?),
        m::MIGRATE_CANCEL => ServerMsg::MigrateCancel,
        m::INIT => {
            let mut r = Reader::fixed(t, body, MainInit::LEN)?;
            ServerMsg::MainInit(MainInit {
                session_id: r.u32()?,
                display_channels_hint: r.u32()?,
                supported_mouse_modes: r.u32()?,
                current_mouse_mode: r.u32()?,
                agent_connected: r.u32()?,
                agent_tokens: r.u32()?,
                multi_media_time: r.u32()?,
                ram_hint: r.u32()?,
            })
        }
        m::CHANNELS_LIST => {
            let mut r = Reader::fixed(t, body, 4)?;
            let num = r.u32()? as usize;
            // Bounded by the body: the bytes must be there before anything is allocated.
            let pairs = r.bytes(num.saturating_mul(2))?;
            ServerMsg::ChannelsList(
                pairs
                    .chunks_exact(2)
                    .map(|p| ChannelId {
                        channel_type: ChannelType::from_raw(p.first().copied().unwrap_or(0)),
                        id: p.get(1).copied().unwrap_or(0),
                    })
                    .collect(),
            )
        }
        m::MOUSE_MODE => {
            let mut r = Reader::fixed(t, body, 4)?;
            ServerMsg::MouseMode(MouseMode {
                supported: r.u16()?,
                current: r.u16()?,
            })
        }
        m::MULTI_MEDIA_TIME => ServerMsg::MultiMediaTime(u32_body(body)?),
        m::AGENT_CONNECTED => ServerMsg::AgentConnected,
        m::AGENT_DISCONNECTED => ServerMsg::AgentDisconnected(LinkErr::from_raw(u32_body(body)?)),
        m::AGENT_DATA => ServerMsg::AgentData(body),
        m::AGENT_TOKEN => ServerMsg::AgentToken(u32_body(body)?),
        m::MIGRATE_SWITCH_HOST => ServerMsg::MigrateSwitchHost(SwitchHost::decode(body)?),
        m::MIGRATE_END => ServerMsg::MigrateEnd,
        m::NAME => {
            let mut r = Reader::fixed(t, body, 4)?;
            let len = r.u32()? as usize;
            let bytes = r.bytes(len)?;
            let text = bytes.strip_suffix(&[0]).unwrap_or(bytes);
            ServerMsg::Name(String::from_utf8_lossy(text).into_owned())
        }
        m::UUID => ServerMsg::Uuid(Reader::fixed(t, body, 16)?.array()?),
        m::AGENT_CONNECTED_TOKENS => ServerMsg::AgentConnectedTokens(u32_body(body)?),
        m::MIGRATE_BEGIN_SEAMLESS => ServerMsg::MigrateBeginSeamless(BeginSeamless::decode(body)?),
        m::MIGRATE_DST_SEAMLESS_ACK => ServerMsg::MigrateDstSeamlessAck,
        m::MIGRATE_DST_SEAMLESS_NACK => ServerMsg::MigrateDstSeamlessNack,
        _ => return Ok(None),
    }))
}

fn decode_inputs_server(msg_type: u16, body: &[u8]) -> Result<Option<ServerMsg<'_>>, WireError> {
    use msg::inputs as i;
    let t = msg_type;
    Ok(Some(match t {
        i::INIT => ServerMsg::InputsInit(Reader::fixed(t, body, 2)?.u16()?),
        i::KEY_MODIFIERS => ServerMsg::InputsKeyModifiers(Reader::fixed(t, body, 2)?.u16()?),
        i::MOUSE_MOTION_ACK => ServerMsg::InputsMouseMotionAck,
        _ => return Ok(None),
    }))
}

impl<'a> ServerMsg<'a> {
    /// Decode a server message received on a `channel` connection. Numbers this crate does
    /// not type (and every number on channels other than main and inputs, beyond the common
    /// ones) give [`ServerMsg::Other`].
    pub fn decode(
        channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<ServerMsg<'a>, WireError> {
        let typed = if msg_type < msg::BASE_LAST {
            decode_common_server(msg_type, body)?
        } else {
            match channel {
                ChannelType::Main => decode_main_server(msg_type, body)?,
                ChannelType::Inputs => decode_inputs_server(msg_type, body)?,
                _ => None,
            }
        };
        Ok(typed.unwrap_or(ServerMsg::Other { msg_type, body }))
    }

    /// [`ServerMsg::decode`] of a frame's type and body.
    pub fn from_frame(channel: ChannelType, frame: &Frame<'a>) -> Result<ServerMsg<'a>, WireError> {
        Self::decode(channel, frame.msg_type, frame.body)
    }
}

impl WireMsg for ServerMsg<'_> {
    fn msg_type(&self) -> u16 {
        use msg::{inputs as i, main as m};
        match self {
            ServerMsg::Migrate(_) => msg::MIGRATE,
            ServerMsg::MigrateData(_) => msg::MIGRATE_DATA,
            ServerMsg::SetAck(_) => msg::SET_ACK,
            ServerMsg::Ping(_) => msg::PING,
            ServerMsg::WaitForChannels(_) => msg::WAIT_FOR_CHANNELS,
            ServerMsg::Disconnecting(_) => msg::DISCONNECTING,
            ServerMsg::Notify(_) => msg::NOTIFY,
            ServerMsg::MigrateBegin(_) => m::MIGRATE_BEGIN,
            ServerMsg::MigrateCancel => m::MIGRATE_CANCEL,
            ServerMsg::MainInit(_) => m::INIT,
            ServerMsg::ChannelsList(_) => m::CHANNELS_LIST,
            ServerMsg::MouseMode(_) => m::MOUSE_MODE,
            ServerMsg::MultiMediaTime(_) => m::MULTI_MEDIA_TIME,
            ServerMsg::AgentConnected => m::AGENT_CONNECTED,
            ServerMsg::AgentDisconnected(_) => m::AGENT_DISCONNECTED,
            ServerMsg::AgentData(_) => m::AGENT_DATA,
            ServerMsg::AgentToken(_) => m::AGENT_TOKEN,
            ServerMsg::MigrateSwitchHost(_) => m::MIGRATE_SWITCH_HOST,
            ServerMsg::MigrateEnd => m::MIGRATE_END,
            ServerMsg::Name(_) => m::NAME,
            ServerMsg::Uuid(_) => m::UUID,
            ServerMsg::AgentConnectedTokens(_) => m::AGENT_CONNECTED_TOKENS,
            ServerMsg::MigrateBeginSeamless(_) => m::MIGRATE_BEGIN_SEAMLESS,
            ServerMsg::MigrateDstSeamlessAck => m::MIGRATE_DST_SEAMLESS_ACK,
            ServerMsg::MigrateDstSeamlessNack => m::MIGRATE_DST_SEAMLESS_NACK,
            ServerMsg::InputsInit(_) => i::INIT,
            ServerMsg::InputsKeyModifiers(_) => i::KEY_MODIFIERS,
            ServerMsg::InputsMouseMotionAck => i::MOUSE_MOTION_ACK,
            ServerMsg::Other { msg_type, .. } => *msg_type,
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let t = self.msg_type();
        match self {
            ServerMsg::Migrate(f) => put_u32(out, f.0),
            ServerMsg::MigrateData(b)
            | ServerMsg::AgentData(b)
            | ServerMsg::Other { body: b, .. } => out.extend_from_slice(b),
            ServerMsg::SetAck(a) => {
                put_u32(out, a.generation);
                put_u32(out, a.window);
            }
            ServerMsg::Ping(p) => {
                put_u32(out, p.id);
                put_u64(out, p.timestamp);
                out.resize(out.len() + p.padding_len as usize, 0);
            }
            ServerMsg::WaitForChannels(list) => {
                let n = u8::try_from(list.len()).map_err(|_| WireError::TooLong {
                    what: "WAIT_FOR_CHANNELS list",
                    len: list.len(),
                })?;
                out.push(n);
                for w in list {
                    out.push(w.channel_type.to_raw());
                    out.push(w.channel_id);
                    put_u64(out, w.message_serial);
                }
            }
            ServerMsg::Disconnecting(d) => {
                put_u64(out, d.time_stamp);
                put_u32(out, d.reason.to_raw());
            }
            ServerMsg::Notify(n) => {
                let len = len_u32("NOTIFY message", n.message.len())?;
                put_u64(out, n.time_stamp);
                put_u32(out, n.severity);
                put_u32(out, n.visibility);
                put_u32(out, n.what);
                put_u32(out, len);
                out.extend_from_slice(n.message.as_bytes());
                out.push(0);
            }
            ServerMsg::MigrateBegin(d) => encode_dst(t, d.fields(), &[], out)?,
            ServerMsg::MigrateBeginSeamless(b) => {
                encode_dst(t, b.dst.fields(), &[b.src_mig_version], out)?
            }
            ServerMsg::MigrateSwitchHost(s) => encode_dst(
                t,
                (
                    s.port,
                    s.sport,
                    s.host.as_deref(),
                    s.cert_subject.as_deref(),
                ),
                &[],
                out,
            )?,
            ServerMsg::MainInit(i) => {
                for v in [
                    i.session_id,
                    i.display_channels_hint,
                    i.supported_mouse_modes,
                    i.current_mouse_mode,
                    i.agent_connected,
                    i.agent_tokens,
                    i.multi_media_time,
                    i.ram_hint,
                ] {
                    put_u32(out, v);
                }
            }
            ServerMsg::ChannelsList(list) => {
                put_u32(out, len_u32("CHANNELS_LIST", list.len())?);
                for c in list {
                    out.push(c.channel_type.to_raw());
                    out.push(c.id);
                }
            }
            ServerMsg::MouseMode(m) => {
                put_u16(out, m.supported);
                put_u16(out, m.current);
            }
            ServerMsg::MultiMediaTime(v)
            | ServerMsg::AgentToken(v)
            | ServerMsg::AgentConnectedTokens(v) => put_u32(out, *v),
            ServerMsg::AgentDisconnected(e) => put_u32(out, e.to_raw()),
            ServerMsg::Name(name) => {
                put_u32(out, len_u32("NAME", name.len() + 1)?);
                out.extend_from_slice(name.as_bytes());
                out.push(0);
            }
            ServerMsg::Uuid(u) => out.extend_from_slice(u),
            ServerMsg::InputsInit(m) | ServerMsg::InputsKeyModifiers(m) => put_u16(out, *m),
            ServerMsg::MigrateCancel
            | ServerMsg::AgentConnected
            | ServerMsg::MigrateEnd
            | ServerMsg::MigrateDstSeamlessAck
            | ServerMsg::MigrateDstSeamlessNack
            | ServerMsg::InputsMouseMotionAck => {}
        }
        Ok(())
    }
}

/// A message from the client (§2-§3). Decoding is for simulated servers and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientMsg<'a> {
    /// ACK_SYNC (1): the SET_ACK generation.
    AckSync(u32),
    /// ACK (2).
    Ack,
    /// PONG (3).
    Pong(Pong),
    /// MIGRATE_FLUSH_MARK (4): only after MIGRATE with flag 1 (invariant 7).
    MigrateFlushMark,
    /// MIGRATE_DATA (5): s1's body, byte-identical (invariant 9).
    MigrateData(&'a [u8]),
    /// DISCONNECTING (6).
    Disconnecting(Disconnecting),
    /// MAIN_CLIENT_INFO (101): cache_size.
    ClientInfo(u64),
    /// MAIN_MIGRATE_CONNECTED (102).
    MigrateConnected,
    /// MAIN_MIGRATE_CONNECT_ERROR (103).
    MigrateConnectError,
    /// MAIN_ATTACH_CHANNELS (104).
    AttachChannels,
    /// MAIN_MOUSE_MODE_REQUEST (105).
    MouseModeRequest(u16),
    /// MAIN_AGENT_START (106): num_tokens.
    AgentStart(u32),
    /// MAIN_AGENT_DATA (107).
    AgentData(&'a [u8]),
    /// MAIN_AGENT_TOKEN (108): num_tokens.
    AgentToken(u32),
    /// MAIN_MIGRATE_END (109).
    MigrateEnd,
    /// MAIN_MIGRATE_DST_DO_SEAMLESS (110): src_version (invariant 4).
    MigrateDstDoSeamless(u32),
    /// MAIN_MIGRATE_CONNECTED_SEAMLESS (111).
    MigrateConnectedSeamless,
    /// DISPLAY_INIT (display 101).
    DisplayInit(DisplayInit),
    /// INPUTS_KEY_DOWN (101): scan code.
    KeyDown(u32),
    /// INPUTS_KEY_UP (102): scan code.
    KeyUp(u32),
    /// INPUTS_KEY_MODIFIERS (103).
    KeyModifiers(u16),
    /// INPUTS_MOUSE_MOTION (111).
    MouseMotion(MouseMotion),
    /// INPUTS_MOUSE_POSITION (112).
    MousePosition(MousePosition),
    /// INPUTS_MOUSE_PRESS (113).
    MousePress(MouseButton),
    /// INPUTS_MOUSE_RELEASE (114).
    MouseRelease(MouseButton),
    /// Anything else, passed through.
    Other {
        /// Message type.
        msg_type: u16,
        /// Body.
        body: &'a [u8],
    },
}

fn decode_common_client(msg_type: u16, body: &[u8]) -> Result<Option<ClientMsg<'_>>, WireError> {
    let t = msg_type;
    Ok(Some(match t {
        msgc::ACK_SYNC => ClientMsg::AckSync(Reader::fixed(t, body, 4)?.u32()?),
        msgc::ACK => ClientMsg::Ack,
        msgc::PONG => {
            let mut r = Reader::fixed(t, body, 12)?;
            ClientMsg::Pong(Pong {
                id: r.u32()?,
                timestamp: r.u64()?,
            })
        }
        msgc::MIGRATE_FLUSH_MARK => ClientMsg::MigrateFlushMark,
        msgc::MIGRATE_DATA => ClientMsg::MigrateData(body),
        msgc::DISCONNECTING => ClientMsg::Disconnecting(decode_disconnecting(t, body)?),
        _ => return Ok(None),
    }))
}

fn decode_main_client(msg_type: u16, body: &[u8]) -> Result<Option<ClientMsg<'_>>, WireError> {
    use msgc::main as m;
    let t = msg_type;
    let u32_body = |body: &[u8]| Reader::fixed(t, body, 4)?.u32();
    Ok(Some(match t {
        m::CLIENT_INFO => ClientMsg::ClientInfo(Reader::fixed(t, body, 8)?.u64()?),
        m::MIGRATE_CONNECTED => ClientMsg::MigrateConnected,
        m::MIGRATE_CONNECT_ERROR => ClientMsg::MigrateConnectError,
        m::ATTACH_CHANNELS => ClientMsg::AttachChannels,
        m::MOUSE_MODE_REQUEST => ClientMsg::MouseModeRequest(Reader::fixed(t, body, 2)?.u16()?),
        m::AGENT_START => ClientMsg::AgentStart(u32_body(body)?),
        m::AGENT_DATA => ClientMsg::AgentData(body),
        m::AGENT_TOKEN => ClientMsg::AgentToken(u32_body(body)?),
        m::MIGRATE_END => ClientMsg::MigrateEnd,
        m::MIGRATE_DST_DO_SEAMLESS => ClientMsg::MigrateDstDoSeamless(u32_body(body)?),
        m::MIGRATE_CONNECTED_SEAMLESS => ClientMsg::MigrateConnectedSeamless,
        _ => return Ok(None),
    }))
}

fn decode_inputs_client(msg_type: u16, body: &[u8]) -> Result<Option<ClientMsg<'_>>, WireError> {
    use msgc::inputs as i;
    let t = msg_type;
    let button = |body: &[u8]| -> Result<MouseButton, WireError> {
        let mut r = Reader::fixed(t, body, 3)?;
        Ok(MouseButton {
            button: r.u8()?,
            buttons_state: r.u16()?,
        })
    };
    Ok(Some(match t {
        i::KEY_DOWN => ClientMsg::KeyDown(Reader::fixed(t, body, 4)?.u32()?),
        i::KEY_UP => ClientMsg::KeyUp(Reader::fixed(t, body, 4)?.u32()?),
        i::KEY_MODIFIERS => ClientMsg::KeyModifiers(Reader::fixed(t, body, 2)?.u16()?),
        i::MOUSE_MOTION => {
            let mut r = Reader::fixed(t, body, 10)?;
            ClientMsg::MouseMotion(MouseMotion {
                dx: r.i32()?,
                dy: r.i32()?,
                buttons_state: r.u16()?,
            })
        }
        i::MOUSE_POSITION => {
            let mut r = Reader::fixed(t, body, 11)?;
            ClientMsg::MousePosition(MousePosition {
                x: r.u32()?,
                y: r.u32()?,
                buttons_state: r.u16()?,
                display_id: r.u8()?,
            })
        }
        i::MOUSE_PRESS => ClientMsg::MousePress(button(body)?),
        i::MOUSE_RELEASE => ClientMsg::MouseRelease(button(body)?),
        _ => return Ok(None),
    }))
}

fn decode_display_client(msg_type: u16, body: &[u8]) -> Result<Option<ClientMsg<'_>>, WireError> {
    let t = msg_type;
    Ok(Some(match t {
        msgc::display::INIT => {
            let mut r = Reader::fixed(t, body, DisplayInit::LEN)?;
            ClientMsg::DisplayInit(DisplayInit {
                pixmap_cache_id: r.u8()?,
                pixmap_cache_size: r.i64()?,
                glz_dictionary_id: r.u8()?,
                glz_dictionary_window_size: r.i32()?,
            })
        }
        _ => return Ok(None),
    }))
}

impl<'a> ClientMsg<'a> {
    /// Decode a client message received on a `channel` connection (server side).
    pub fn decode(
        channel: ChannelType,
        msg_type: u16,
        body: &'a [u8],
    ) -> Result<ClientMsg<'a>, WireError> {
        let typed = if msg_type < msg::BASE_LAST {
            decode_common_client(msg_type, body)?
        } else {
            match channel {
                ChannelType::Main => decode_main_client(msg_type, body)?,
                ChannelType::Inputs => decode_inputs_client(msg_type, body)?,
                ChannelType::Display => decode_display_client(msg_type, body)?,
                _ => None,
            }
        };
        Ok(typed.unwrap_or(ClientMsg::Other { msg_type, body }))
    }
}

impl WireMsg for ClientMsg<'_> {
    fn msg_type(&self) -> u16 {
        use msgc::{inputs as i, main as m};
        match self {
            ClientMsg::AckSync(_) => msgc::ACK_SYNC,
            ClientMsg::Ack => msgc::ACK,
            ClientMsg::Pong(_) => msgc::PONG,
            ClientMsg::MigrateFlushMark => msgc::MIGRATE_FLUSH_MARK,
            ClientMsg::MigrateData(_) => msgc::MIGRATE_DATA,
            ClientMsg::Disconnecting(_) => msgc::DISCONNECTING,
            ClientMsg::ClientInfo(_) => m::CLIENT_INFO,
            ClientMsg::MigrateConnected => m::MIGRATE_CONNECTED,
            ClientMsg::MigrateConnectError => m::MIGRATE_CONNECT_ERROR,
            ClientMsg::AttachChannels => m::ATTACH_CHANNELS,
            ClientMsg::MouseModeRequest(_) => m::MOUSE_MODE_REQUEST,
            ClientMsg::AgentStart(_) => m::AGENT_START,
            ClientMsg::AgentData(_) => m::AGENT_DATA,
            ClientMsg::AgentToken(_) => m::AGENT_TOKEN,
            ClientMsg::MigrateEnd => m::MIGRATE_END,
            ClientMsg::MigrateDstDoSeamless(_) => m::MIGRATE_DST_DO_SEAMLESS,
            ClientMsg::MigrateConnectedSeamless => m::MIGRATE_CONNECTED_SEAMLESS,
            ClientMsg::DisplayInit(_) => msgc::display::INIT,
            ClientMsg::KeyDown(_) => i::KEY_DOWN,
            ClientMsg::KeyUp(_) => i::KEY_UP,
            ClientMsg::KeyModifiers(_) => i::KEY_MODIFIERS,
            ClientMsg::MouseMotion(_) => i::MOUSE_MOTION,
            ClientMsg::MousePosition(_) => i::MOUSE_POSITION,
            ClientMsg::MousePress(_) => i::MOUSE_PRESS,
            ClientMsg::MouseRelease(_) => i::MOUSE_RELEASE,
            ClientMsg::Other { msg_type, .. } => *msg_type,
        }
    }

    fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        match self {
            ClientMsg::AckSync(v)
            | ClientMsg::AgentStart(v)
            | ClientMsg::AgentToken(v)
            | ClientMsg::MigrateDstDoSeamless(v)
            | ClientMsg::KeyDown(v)
            | ClientMsg::KeyUp(v) => put_u32(out, *v),
            ClientMsg::Pong(p) => {
                put_u32(out, p.id);
                put_u64(out, p.timestamp);
            }
            ClientMsg::MigrateData(b)
            | ClientMsg::AgentData(b)
            | ClientMsg::Other { body: b, .. } => out.extend_from_slice(b),
            ClientMsg::Disconnecting(d) => {
                put_u64(out, d.time_stamp);
                put_u32(out, d.reason.to_raw());
            }
            ClientMsg::ClientInfo(v) => put_u64(out, *v),
            ClientMsg::MouseModeRequest(v) | ClientMsg::KeyModifiers(v) => put_u16(out, *v),
            ClientMsg::DisplayInit(d) => {
                out.push(d.pixmap_cache_id);
                out.extend_from_slice(&d.pixmap_cache_size.to_le_bytes());
                out.push(d.glz_dictionary_id);
                out.extend_from_slice(&d.glz_dictionary_window_size.to_le_bytes());
            }
            ClientMsg::MouseMotion(m) => {
                out.extend_from_slice(&m.dx.to_le_bytes());
                out.extend_from_slice(&m.dy.to_le_bytes());
                put_u16(out, m.buttons_state);
            }
            ClientMsg::MousePosition(m) => {
                put_u32(out, m.x);
                put_u32(out, m.y);
                put_u16(out, m.buttons_state);
                out.push(m.display_id);
            }
            ClientMsg::MousePress(b) | ClientMsg::MouseRelease(b) => {
                out.push(b.button);
                put_u16(out, b.buttons_state);
            }
            ClientMsg::Ack
            | ClientMsg::MigrateFlushMark
            | ClientMsg::MigrateConnected
            | ClientMsg::MigrateConnectError
            | ClientMsg::AttachChannels
            | ClientMsg::MigrateEnd
            | ClientMsg::MigrateConnectedSeamless => {}
        }
        Ok(())
    }
}
