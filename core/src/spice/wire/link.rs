//! The link stage (§1.1): `SpiceLinkHeader` + `SpiceLinkMess` + caps from the client, the
//! server's `SpiceLinkReply`, the auth mechanism word, the 128-byte ticket and the link
//! result. Little-endian, packed.
//!
//! Decoders are incremental in the caller-buffer style of the framer: give them everything
//! received so far; they return `Ok(None)` until the whole structure is there, then the
//! value and how many bytes it took. A wrong magic, version or size fails as soon as the
//! 16-byte header is there, and sizes are checked before anything is allocated (at most
//! 4096 bytes, §1.1).

use serde::{Deserialize, Serialize};

use super::caps::Caps;
use super::consts::{
    ChannelType, LinkErr, PUB_KEY_LEN, SPICE_MAGIC, TICKET_LEN, VERSION_MAJOR, VERSION_MINOR,
};
use super::error::WireError;
use super::read::le_u32;

/// Largest link message size (`SpiceLinkHeader.size`) spice-server accepts (§1.1); also the
/// bound this crate applies to the server's reply.
pub const MAX_LINK_SIZE: u32 = 4096;
/// Length of the link result word (§1.1).
pub const LINK_RESULT_LEN: usize = 4;
/// Length of the auth mechanism word (§1.1).
pub const AUTH_MECHANISM_LEN: usize = 4;

/// `SpiceLinkHeader` (16 bytes, §1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LinkHeader {
    /// `SPICE_MAGIC`.
    pub magic: u32,
    /// Major version (2).
    pub major: u32,
    /// Minor version (2).
    pub minor: u32,
    /// Number of bytes that follow.
    pub size: u32,
}

impl LinkHeader {
    /// Encoded length.
    pub const LEN: usize = 16;

    /// A 2.2 header announcing `size` bytes.
    pub const fn new(size: u32) -> Self {
        LinkHeader {
            magic: SPICE_MAGIC,
            major: VERSION_MAJOR,
            minor: VERSION_MINOR,
            size,
        }
    }

    /// Parse the first 16 bytes, or `None` if fewer are there. No check.
    pub fn decode(buf: &[u8]) -> Option<Self> {
        Some(LinkHeader {
            magic: le_u32(buf, 0)?,
            major: le_u32(buf, 4)?,
            minor: le_u32(buf, 8)?,
            size: le_u32(buf, 12)?,
        })
    }

    /// Append the 16 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.magic, self.major, self.minor, self.size] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
}

/// Checks a link header at the front of `buf` (magic as soon as 4 bytes are there, then
/// major, then `min..=MAX_LINK_SIZE`) and returns the body once it is complete.
fn checked_link_body<'a>(
    buf: &'a [u8],
    what: &'static str,
    min: u32,
) -> Result<Option<&'a [u8]>, WireError> {
    if let Some(magic) = le_u32(buf, 0) {
        if magic != SPICE_MAGIC {
            return Err(WireError::BadMagic { found: magic });
        }
    }
    let Some(h) = LinkHeader::decode(buf) else {
        return Ok(None);
    };
    if h.major != VERSION_MAJOR {
        return Err(WireError::VersionMismatch {
            major: h.major,
            minor: h.minor,
        });
    }
    if h.size < min || h.size > MAX_LINK_SIZE {
        return Err(WireError::LinkSize {
            what,
            size: h.size,
            min,
            max: MAX_LINK_SIZE,
        });
    }
    // size ≤ 4096, so this cannot overflow.
    let end = LinkHeader::LEN + h.size as usize;
    Ok(buf.get(LinkHeader::LEN..end))
}

/// Reads the two caps lists of a link structure after validating counts and placement.
fn read_caps(
    body: &[u8],
    what: &'static str,
    fixed: u32,
    at: usize,
) -> Result<(Caps, Caps), WireError> {
    let field = |off: usize| le_u32(body, at + off).unwrap_or(0);
    let (num_common, num_channel, caps_offset) = (field(0), field(4), field(8));
    for n in [num_common, num_channel] {
        if n as usize > Caps::MAX_WORDS {
            return Err(WireError::TooManyCaps {
                count: u64::from(n),
                max: Caps::MAX_WORDS,
            });
        }
    }
    let size = body.len() as u64;
    let caps_end = u64::from(caps_offset) + 4 * (u64::from(num_common) + u64::from(num_channel));
    let out_of_range = || WireError::CapsOutOfRange {
        what,
        caps_offset,
        num_common,
        num_channel,
        size: body.len() as u32,
    };
    if caps_offset < fixed || caps_end > size {
        return Err(out_of_range());
    }
    let common_start = caps_offset as usize;
    let channel_start = common_start + 4 * num_common as usize;
    let common = body
        .get(common_start..channel_start)
        .ok_or_else(out_of_range)?;
    let channel = body
        .get(channel_start..caps_end as usize)
        .ok_or_else(out_of_range)?;
    Ok((Caps::read_words(common), Caps::read_words(channel)))
}

fn write_caps_fields(common: &Caps, channel: &Caps, caps_offset: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&(common.len() as u32).to_le_bytes());
    out.extend_from_slice(&(channel.len() as u32).to_le_bytes());
    out.extend_from_slice(&caps_offset.to_le_bytes());
}

/// The client's link message: `SpiceLinkMess` (18 bytes) and its caps (§1.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkMess {
    /// 0 for a fresh session; s1's `INIT.session_id` for every other link and every
    /// destination link (invariant 3).
    pub connection_id: u32,
    /// Channel type.
    pub channel_type: ChannelType,
    /// Channel id.
    pub channel_id: u8,
    /// Common caps (e.g. `0x0b`: AUTH_SELECTION | AUTH_SPICE | MINI_HEADER).
    pub common_caps: Caps,
    /// Channel caps (e.g. main `0x0f`).
    pub channel_caps: Caps,
}

impl LinkMess {
    /// Length of `SpiceLinkMess` without caps; also its `caps_offset`.
    pub const FIXED_LEN: usize = 18;

    /// `SpiceLinkHeader.size` for this message.
    pub fn size(&self) -> usize {
        Self::FIXED_LEN + 4 * (self.common_caps.len() + self.channel_caps.len())
    }

    /// Append header, message and caps (e.g. 42 bytes for main with one word of each).
    /// Fails if the caps make it larger than the server accepts (4096 bytes).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let size = self.size();
        if size > MAX_LINK_SIZE as usize {
            return Err(WireError::LinkSize {
                what: "SpiceLinkMess",
                size: u32::try_from(size).unwrap_or(u32::MAX),
                min: Self::FIXED_LEN as u32,
                max: MAX_LINK_SIZE,
            });
        }
        out.reserve(LinkHeader::LEN + size);
        LinkHeader::new(size as u32).encode(out);
        out.extend_from_slice(&self.connection_id.to_le_bytes());
        out.push(self.channel_type.to_raw());
        out.push(self.channel_id);
        write_caps_fields(
            &self.common_caps,
            &self.channel_caps,
            Self::FIXED_LEN as u32,
            out,
        );
        self.common_caps.write_words(out);
        self.channel_caps.write_words(out);
        Ok(())
    }

    /// Server side: parse a link message with spice-server's checks (§1.1: major 2,
    /// 18 ≤ size ≤ 4096, each count ≤ 1024, caps inside `size`, caps_offset ≥ 18).
    pub fn decode(buf: &[u8]) -> Result<Option<(LinkMess, usize)>, WireError> {
        let Some(body) = checked_link_body(buf, "SpiceLinkMess", Self::FIXED_LEN as u32)? else {
            return Ok(None);
        };
        let (common_caps, channel_caps) =
            read_caps(body, "SpiceLinkMess", Self::FIXED_LEN as u32, 6)?;
        let mess = LinkMess {
            connection_id: le_u32(body, 0).unwrap_or(0),
            channel_type: ChannelType::from_raw(body.get(4).copied().unwrap_or(0)),
            channel_id: body.get(5).copied().unwrap_or(0),
            common_caps,
            channel_caps,
        };
        Ok(Some((mess, LinkHeader::LEN + body.len())))
    }
}

/// The server's link reply: `SpiceLinkReply` (178 bytes) and its caps (§1.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkReply {
    /// `SpiceLinkErr`; anything but `Ok` ends the link (no caps follow).
    pub error: LinkErr,
    /// DER SubjectPublicKeyInfo of the per-link RSA-1024 key (zero on errors, and with SASL).
    pub pub_key: [u8; PUB_KEY_LEN],
    /// Server common caps (spice-server: `0x0b`).
    pub common_caps: Caps,
    /// Server channel caps (main: `0x09`).
    pub channel_caps: Caps,
}

impl LinkReply {
    /// Length of `SpiceLinkReply` without caps; also its `caps_offset`.
    pub const FIXED_LEN: usize = 178;

    /// The all-zero reply carrying `error` that `reds_send_link_error` sends (§1.1).
    pub fn error_reply(error: LinkErr) -> Self {
        LinkReply {
            error,
            pub_key: [0; PUB_KEY_LEN],
            common_caps: Caps::new(),
            channel_caps: Caps::new(),
        }
    }

    /// `SpiceLinkHeader.size` for this reply (178 for an error reply).
    pub fn size(&self) -> usize {
        if self.error.is_ok() {
            Self::FIXED_LEN + 4 * (self.common_caps.len() + self.channel_caps.len())
        } else {
            Self::FIXED_LEN
        }
    }

    /// Server side (simulated peers, tests): append header, reply and caps. An error reply is
    /// written as spice-server does: 178 bytes, all zero but `error` (key and caps ignored).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let size = self.size();
        if size > MAX_LINK_SIZE as usize {
            return Err(WireError::LinkSize {
                what: "SpiceLinkReply",
                size: u32::try_from(size).unwrap_or(u32::MAX),
                min: Self::FIXED_LEN as u32,
                max: MAX_LINK_SIZE,
            });
        }
        out.reserve(LinkHeader::LEN + size);
        LinkHeader::new(size as u32).encode(out);
        out.extend_from_slice(&self.error.to_raw().to_le_bytes());
        if self.error.is_ok() {
            out.extend_from_slice(&self.pub_key);
            write_caps_fields(
                &self.common_caps,
                &self.channel_caps,
                Self::FIXED_LEN as u32,
                out,
            );
            self.common_caps.write_words(out);
            self.channel_caps.write_words(out);
        } else {
            out.resize(out.len() + (Self::FIXED_LEN - 4), 0);
        }
        Ok(())
    }

    /// Client side: parse the server's reply (§1.1): magic, major 2, 178 ≤ size ≤ 4096;
    /// for `error == OK` also each count ≤ 1024, caps_offset ≥ 178 and caps inside `size`.
    /// An error reply is returned as [`LinkReply::error_reply`]: everything after `error` is
    /// ignored (spice-server zeroes it).
    pub fn decode(buf: &[u8]) -> Result<Option<(LinkReply, usize)>, WireError> {
        let Some(body) = checked_link_body(buf, "SpiceLinkReply", Self::FIXED_LEN as u32)? else {
            return Ok(None);
        };
        let consumed = LinkHeader::LEN + body.len();
        let error = LinkErr::from_raw(le_u32(body, 0).unwrap_or(0));
        if !error.is_ok() {
            return Ok(Some((LinkReply::error_reply(error), consumed)));
        }
        let mut pub_key = [0u8; PUB_KEY_LEN];
        if let Some(key) = body.get(4..4 + PUB_KEY_LEN) {
            pub_key.copy_from_slice(key);
        }
        let (common_caps, channel_caps) = read_caps(
            body,
            "SpiceLinkReply",
            Self::FIXED_LEN as u32,
            4 + PUB_KEY_LEN,
        )?;
        Ok(Some((
            LinkReply {
                error,
                pub_key,
                common_caps,
                channel_caps,
            },
            consumed,
        )))
    }
}

/// Append the `SpiceLinkAuthMechanism` word (e.g. [`auth_mechanism::SPICE`]). Send it iff the
/// client advertised PROTOCOL_AUTH_SELECTION (invariant 1).
///
/// [`auth_mechanism::SPICE`]: super::consts::auth_mechanism::SPICE
pub fn encode_auth_mechanism(mechanism: u32, out: &mut Vec<u8>) {
    out.extend_from_slice(&mechanism.to_le_bytes());
}

/// Server side: the auth mechanism word, once 4 bytes are there.
pub fn decode_auth_mechanism(buf: &[u8]) -> Option<u32> {
    le_u32(buf, 0)
}

/// Append the 128-byte RSA-OAEP ticket (§1.1; the encryption is the host's job).
pub fn encode_ticket(ticket: &[u8; TICKET_LEN], out: &mut Vec<u8>) {
    out.extend_from_slice(ticket);
}

/// Server side: the ticket, once 128 bytes are there.
pub fn decode_ticket(buf: &[u8]) -> Option<&[u8; TICKET_LEN]> {
    buf.get(..TICKET_LEN)?.try_into().ok()
}

/// Server side: append the link result word.
pub fn encode_link_result(result: LinkErr, out: &mut Vec<u8>) {
    out.extend_from_slice(&result.to_raw().to_le_bytes());
}

/// The 4-byte link result (§1.1: 0 OK, 7 PERMISSION_DENIED, 8 BAD_CONNECTION_ID, 9
/// CHANNEL_NOT_AVAILABLE, …), once 4 bytes are there. Data messages follow it directly.
pub fn decode_link_result(buf: &[u8]) -> Option<LinkErr> {
    le_u32(buf, 0).map(LinkErr::from_raw)
}
