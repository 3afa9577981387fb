//! Data-stage headers (§1.2): `SpiceMiniDataHeader` (6 bytes) and `SpiceDataHeader`
//! (18 bytes), and the encoders that put a body behind one.

use serde::{Deserialize, Serialize};

use super::caps::Caps;
use super::consts::common_cap;
use super::error::WireError;
use super::read::{le_u16, le_u32, le_u64};

/// Which data header a connection uses (§1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeaderKind {
    /// `SpiceMiniDataHeader{type u16, size u32}`; the serial is implicit.
    Mini,
    /// `SpiceDataHeader{serial u64, type u16, size u32, sub_list u32}`.
    Full,
}

impl HeaderKind {
    /// Header length in bytes: 6 or 18.
    pub const fn header_len(self) -> usize {
        match self {
            HeaderKind::Mini => MiniHeader::LEN,
            HeaderKind::Full => FullHeader::LEN,
        }
    }

    /// The header a link uses: mini iff both sides advertised common cap MINI_HEADER (the
    /// server sends mini iff the client advertised it, the client sends mini iff the server
    /// did, §1.2).
    pub fn negotiate(client_common: &Caps, server_common: &Caps) -> HeaderKind {
        if client_common.test(common_cap::MINI_HEADER)
            && server_common.test(common_cap::MINI_HEADER)
        {
            HeaderKind::Mini
        } else {
            HeaderKind::Full
        }
    }
}

/// `SpiceMiniDataHeader` (6 bytes, §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MiniHeader {
    /// Message type.
    pub msg_type: u16,
    /// Body size.
    pub size: u32,
}

impl MiniHeader {
    /// Encoded length.
    pub const LEN: usize = 6;

    /// Parse the first 6 bytes, or `None` if fewer are there.
    pub fn decode(buf: &[u8]) -> Option<Self> {
        Some(MiniHeader {
            msg_type: le_u16(buf, 0)?,
            size: le_u32(buf, 2)?,
        })
    }

    /// Append the 6 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.msg_type.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
    }
}

/// `SpiceDataHeader` (18 bytes, §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FullHeader {
    /// Message serial.
    pub serial: u64,
    /// Message type.
    pub msg_type: u16,
    /// Body size.
    pub size: u32,
    /// Offset of a `SpiceSubMessageList` in the body, 0 if none. Passed through unchecked.
    pub sub_list: u32,
}

impl FullHeader {
    /// Encoded length.
    pub const LEN: usize = 18;

    /// Parse the first 18 bytes, or `None` if fewer are there.
    pub fn decode(buf: &[u8]) -> Option<Self> {
        Some(FullHeader {
            serial: le_u64(buf, 0)?,
            msg_type: le_u16(buf, 8)?,
            size: le_u32(buf, 10)?,
            sub_list: le_u32(buf, 14)?,
        })
    }

    /// Append the 18 bytes.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.serial.to_le_bytes());
        out.extend_from_slice(&self.msg_type.to_le_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.sub_list.to_le_bytes());
    }
}

fn body_size(len: usize) -> Result<u32, WireError> {
    u32::try_from(len).map_err(|_| WireError::TooLong {
        what: "message body",
        len,
    })
}

/// Append a mini header and `body` to `out`. Fails only for a body over 4 GiB.
pub fn encode_mini(msg_type: u16, body: &[u8], out: &mut Vec<u8>) -> Result<(), WireError> {
    let size = body_size(body.len())?;
    out.reserve(MiniHeader::LEN + body.len());
    MiniHeader { msg_type, size }.encode(out);
    out.extend_from_slice(body);
    Ok(())
}

/// Append a full header (sub_list 0) and `body` to `out`. Fails only for a body over 4 GiB.
pub fn encode_full(
    serial: u64,
    msg_type: u16,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    let size = body_size(body.len())?;
    out.reserve(FullHeader::LEN + body.len());
    FullHeader {
        serial,
        msg_type,
        size,
        sub_list: 0,
    }
    .encode(out);
    out.extend_from_slice(body);
    Ok(())
}

/// Append a header of `kind` and `body`; `serial` is ignored for mini headers.
pub fn encode_frame(
    kind: HeaderKind,
    serial: u64,
    msg_type: u16,
    body: &[u8],
    out: &mut Vec<u8>,
) -> Result<(), WireError> {
    match kind {
        HeaderKind::Mini => encode_mini(msg_type, body, out),
        HeaderKind::Full => encode_full(serial, msg_type, body, out),
    }
}

/// Append a header of `kind` for `msg_type` with a size placeholder; returns the header's
/// start so [`finish_header`] can patch the size once the body is written.
pub(crate) fn begin_header(
    kind: HeaderKind,
    serial: u64,
    msg_type: u16,
    out: &mut Vec<u8>,
) -> usize {
    let start = out.len();
    match kind {
        HeaderKind::Mini => MiniHeader { msg_type, size: 0 }.encode(out),
        HeaderKind::Full => FullHeader {
            serial,
            msg_type,
            size: 0,
            sub_list: 0,
        }
        .encode(out),
    }
    start
}

/// Patch the size of the header begun at `start` to cover everything after it.
pub(crate) fn finish_header(
    kind: HeaderKind,
    start: usize,
    out: &mut [u8],
) -> Result<(), WireError> {
    let size_at = start
        + match kind {
            HeaderKind::Mini => 2,
            HeaderKind::Full => 10,
        };
    let body_len = out.len().saturating_sub(start + kind.header_len());
    let size = body_size(body_len)?;
    if let Some(slot) = out.get_mut(size_at..size_at + 4) {
        slot.copy_from_slice(&size.to_le_bytes());
    }
    Ok(())
}
