//! Splitting a data-stage byte stream into messages (§1.2), for bytes that arrive in any
//! chunking.
//!
//! ## Design
//!
//! * [`Framer`] is a stateless `Copy` value (header kind + body limit). Its
//!   [`decode`](Framer::decode) looks at the front of a caller-owned buffer and returns a
//!   [`Frame`] whose `body` borrows that buffer, plus `consumed`, the frame's length. Nothing
//!   is copied, so pass-through traffic (display, MIGRATE_DATA, agent data) can be forwarded
//!   straight from the receive buffer.
//! * [`Framer::frames`] iterates over every complete frame in a buffer; afterwards the caller
//!   drains [`Frames::consumed`] bytes **once** (draining after every message would move the
//!   tail once per message).
//! * [`FrameBuf`] is the owned convenience: `push` received bytes, then take
//!   [`next_frame`](FrameBuf::next_frame) (borrowed) or [`next_owned`](FrameBuf::next_owned)
//!   until `None`. It keeps a read offset and compacts only when at least half of its buffer
//!   is consumed and the new bytes would not fit the capacity, so each byte is moved at most
//!   about once and the buffer stays within about twice the bytes in flight.
//!
//! A declared size is checked against the limit as soon as the header is there and is never
//! used to reserve memory: buffers only grow with bytes actually received.
//!
//! ## Body limit
//!
//! [`Framer::DEFAULT_MAX_BODY`] is 64 MiB. The largest messages a server sends are display
//! images, bounded by the QXL device memory that holds them (16 MiB `vgamem` and 64 MiB
//! `vram` by default; an uncompressed 4K 32-bit frame is 33 MB). The main channel's largest is
//! the 256 KiB net-test PING (§1.2), inputs and cursor are tiny, and spice-server itself
//! bounds what it receives on main to about 4 KiB plus the agent window
//! (`MAIN_CHANNEL_RECEIVE_BUF_SIZE`). Callers can lower the limit per channel with
//! [`Framer::with_max_body`] (or raise it for very large QXL devices).

use super::error::WireError;
use super::header::{FullHeader, HeaderKind, MiniHeader};

/// msg_type, body size, serial, sub_list.
type HeaderFields = (u16, u32, Option<u64>, u32);

/// One complete message at the front of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// Message type.
    pub msg_type: u16,
    /// Serial from a full header; `None` with mini headers (the serial is implicit, §1.2).
    pub serial: Option<u64>,
    /// `sub_list` from a full header (0 with mini headers), not interpreted.
    pub sub_list: u32,
    /// The body, borrowed from the input buffer.
    pub body: &'a [u8],
    /// Header plus body length: how many bytes this frame occupies.
    pub consumed: usize,
}

/// Stateless message splitter for one connection (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Framer {
    kind: HeaderKind,
    max_body: u32,
}

impl Framer {
    /// Default body limit: 64 MiB (see the module docs).
    pub const DEFAULT_MAX_BODY: u32 = 64 << 20;

    /// A framer for `kind` headers with the default limit.
    pub const fn new(kind: HeaderKind) -> Self {
        Framer {
            kind,
            max_body: Self::DEFAULT_MAX_BODY,
        }
    }

    /// The same framer with another body limit.
    pub const fn with_max_body(self, max_body: u32) -> Self {
        Framer { max_body, ..self }
    }

    /// Header kind.
    pub const fn kind(&self) -> HeaderKind {
        self.kind
    }

    /// Body limit.
    pub const fn max_body(&self) -> u32 {
        self.max_body
    }

    /// Switch the header kind (a seamless swap takes it from the new link, invariant 11).
    pub fn set_kind(&mut self, kind: HeaderKind) {
        self.kind = kind;
    }

    /// Parse the header at the front of `buf`: (msg_type, body size, serial, sub_list).
    fn header(&self, buf: &[u8]) -> Result<Option<HeaderFields>, WireError> {
        let parsed = match self.kind {
            HeaderKind::Mini => MiniHeader::decode(buf).map(|h| (h.msg_type, h.size, None, 0)),
            HeaderKind::Full => {
                FullHeader::decode(buf).map(|h| (h.msg_type, h.size, Some(h.serial), h.sub_list))
            }
        };
        match parsed {
            Some((msg_type, size, _, _)) if size > self.max_body => Err(WireError::BodyTooLarge {
                msg_type,
                size,
                max: self.max_body,
            }),
            other => Ok(other),
        }
    }

    /// The first complete frame in `buf`, `Ok(None)` if more bytes are needed, or an error
    /// if the header declares a body over the limit (the stream cannot be resynchronised).
    pub fn decode<'a>(&self, buf: &'a [u8]) -> Result<Option<Frame<'a>>, WireError> {
        let Some((msg_type, size, serial, sub_list)) = self.header(buf)? else {
            return Ok(None);
        };
        let start = self.kind.header_len();
        let Some(end) = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
        else {
            return Err(WireError::BodyTooLarge {
                msg_type,
                size,
                max: self.max_body,
            });
        };
        Ok(buf.get(start..end).map(|body| Frame {
            msg_type,
            serial,
            sub_list,
            body,
            consumed: end,
        }))
    }

    /// How many more bytes `buf` needs before its first frame is complete (0 if it is).
    /// Lets an I/O layer size its next read.
    pub fn needed(&self, buf: &[u8]) -> Result<usize, WireError> {
        let header_len = self.kind.header_len();
        match self.header(buf)? {
            None => Ok(header_len.saturating_sub(buf.len())),
            Some((_, size, _, _)) => {
                let total = (size as usize).saturating_add(header_len);
                Ok(total.saturating_sub(buf.len()))
            }
        }
    }

    /// Iterate over the complete frames at the front of `buf`.
    pub fn frames<'a>(&self, buf: &'a [u8]) -> Frames<'a> {
        Frames {
            framer: *self,
            buf,
            pos: 0,
            failed: false,
        }
    }
}

/// Iterator over complete frames (see [`Framer::frames`]). After an error it ends.
#[derive(Debug, Clone)]
pub struct Frames<'a> {
    framer: Framer,
    buf: &'a [u8],
    pos: usize,
    failed: bool,
}

impl<'a> Frames<'a> {
    /// Bytes taken by the frames yielded so far: drain this many from the buffer.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// The bytes after the frames yielded so far.
    pub fn remaining(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }
}

impl<'a> Iterator for Frames<'a> {
    type Item = Result<Frame<'a>, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        match self.framer.decode(self.remaining()) {
            Ok(Some(frame)) => {
                self.pos = self.pos.saturating_add(frame.consumed);
                Some(Ok(frame))
            }
            Ok(None) => None,
            Err(e) => {
                self.failed = true;
                Some(Err(e))
            }
        }
    }
}

impl std::iter::FusedIterator for Frames<'_> {}

/// An owned receive buffer with a [`Framer`]: push bytes in any chunking, take frames out.
#[derive(Debug, Clone)]
pub struct FrameBuf {
    framer: Framer,
    buf: Vec<u8>,
    start: usize,
}

impl FrameBuf {
    /// An empty buffer.
    pub fn new(framer: Framer) -> Self {
        FrameBuf {
            framer,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// The framer.
    pub fn framer(&self) -> Framer {
        self.framer
    }

    /// Switch the header kind for the bytes not yet framed.
    pub fn set_kind(&mut self, kind: HeaderKind) {
        self.framer.set_kind(kind);
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 {
            let live = self.buf.len().saturating_sub(self.start);
            if live == 0 {
                self.buf.clear();
                self.start = 0;
            } else if self.start >= live && self.buf.len() + bytes.len() > self.buf.capacity() {
                // Move only when appending would reallocate (and copy) anyway.
                self.buf.drain(..self.start);
                self.start = 0;
            }
        }
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, borrowed from the buffer; `Ok(None)` until enough bytes are
    /// pushed. An error repeats on every call (the stream is unusable).
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, WireError> {
        let tail = self.buf.get(self.start..).unwrap_or(&[]);
        match self.framer.decode(tail)? {
            Some(frame) => {
                self.start = self.start.saturating_add(frame.consumed);
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// The next complete frame as `(msg_type, body)`, copying the body.
    pub fn next_owned(&mut self) -> Result<Option<(u16, Vec<u8>)>, WireError> {
        Ok(self.next_frame()?.map(|f| (f.msg_type, f.body.to_vec())))
    }

    /// Bytes pushed but not yet returned as frames.
    pub fn pending(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or(&[])
    }

    /// Remove and return the pending bytes (e.g. to hand them to another connection state).
    pub fn take_pending(&mut self) -> Vec<u8> {
        let rest = self.pending().to_vec();
        self.buf.clear();
        self.start = 0;
        rest
    }

    /// How many more bytes the next frame needs (see [`Framer::needed`]).
    pub fn needed(&self) -> Result<usize, WireError> {
        self.framer.needed(self.pending())
    }
}
