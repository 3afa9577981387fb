//! [`WireError`]: every way bytes from a peer (or a value to encode) can be wrong.

use super::consts::ChannelType;

/// A typed codec error. Decoders return it instead of panicking; the message type (data
/// stage) or the link structure (link stage) and what was wrong are always included.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The link header's magic is not `"REDQ"` (§1.1).
    #[error("link: bad magic {found:#010x}, expected 0x51444552 (\"REDQ\")")]
    BadMagic {
        /// The four bytes read, as a little-endian u32.
        found: u32,
    },
    /// The link header's major version is not 2 (§1.1).
    #[error("link: protocol version {major}.{minor}, expected major 2")]
    VersionMismatch {
        /// Major version read.
        major: u32,
        /// Minor version read.
        minor: u32,
    },
    /// A link header declares a size outside the accepted range (§1.1).
    #[error("link: {what} size {size} outside {min}..={max}")]
    LinkSize {
        /// Which structure (`"SpiceLinkMess"`, `"SpiceLinkReply"`).
        what: &'static str,
        /// Declared size.
        size: u32,
        /// Smallest accepted size.
        min: u32,
        /// Largest accepted size.
        max: u32,
    },
    /// More capability words than the server accepts (1024 per kind, §1.1).
    #[error("{count} capability words, at most {max} allowed")]
    TooManyCaps {
        /// Declared or requested number of words.
        count: u64,
        /// Limit.
        max: usize,
    },
    /// The link caps words do not lie inside the declared size (§1.1).
    #[error(
        "link: {what} caps at offset {caps_offset} ({num_common}+{num_channel} words) \
         outside its {size} bytes"
    )]
    CapsOutOfRange {
        /// Which structure (`"SpiceLinkMess"`, `"SpiceLinkReply"`).
        what: &'static str,
        /// Declared caps offset.
        caps_offset: u32,
        /// Declared number of common words.
        num_common: u32,
        /// Declared number of channel words.
        num_channel: u32,
        /// Declared structure size.
        size: u32,
    },
    /// A data header declares a body larger than the framer's limit.
    #[error("message {msg_type}: declared body of {size} bytes exceeds the limit of {max}")]
    BodyTooLarge {
        /// Message type from the header.
        msg_type: u16,
        /// Declared body size.
        size: u32,
        /// Configured limit.
        max: u32,
    },
    /// A body is shorter than its fixed part, or than a count/length field says (§3).
    #[error("message {msg_type}: body of {got} bytes, need at least {need}")]
    Truncated {
        /// Message type.
        msg_type: u16,
        /// Bytes needed (computed without overflow, hence u64).
        need: u64,
        /// Bytes present.
        got: usize,
    },
    /// A `@nonnull` pointer is 0 (§3: MIGRATE_BEGIN host).
    #[error("message {msg_type}: {field} pointer is null")]
    NullPointer {
        /// Message type.
        msg_type: u16,
        /// Field name.
        field: &'static str,
    },
    /// A body-relative pointer and its size reach outside the body (§1.2).
    #[error(
        "message {msg_type}: {field} at {offset}+{size} lies outside the {body_len}-byte body"
    )]
    PointerOutOfRange {
        /// Message type.
        msg_type: u16,
        /// Field name.
        field: &'static str,
        /// Declared offset from the start of the body.
        offset: u32,
        /// Declared size.
        size: u32,
        /// Actual body length.
        body_len: usize,
    },
    /// A string that must be NUL-terminated is not (§3: DstInfo strings).
    #[error("message {msg_type}: {field} is not NUL-terminated")]
    MissingNul {
        /// Message type.
        msg_type: u16,
        /// Field name.
        field: &'static str,
    },
    /// A NUL-terminated string has a NUL before its end, so C peers would read a shorter one.
    #[error("message {msg_type}: {field} contains a NUL before its end")]
    InteriorNul {
        /// Message type.
        msg_type: u16,
        /// Field name.
        field: &'static str,
    },
    /// A string field is not UTF-8.
    #[error("message {msg_type}: {field} is not UTF-8")]
    InvalidUtf8 {
        /// Message type.
        msg_type: u16,
        /// Field name.
        field: &'static str,
    },
    /// A MIGRATE_DATA body the destination server would reject (§3, §5 "Client errors").
    #[error(
        "MIGRATE_DATA for {channel:?}: magic {magic:#010x} version {version} \
         ({len} bytes) is not acceptable"
    )]
    BadMigrateData {
        /// Channel it was meant for.
        channel: ChannelType,
        /// Magic read (0 if the body is shorter than 8 bytes).
        magic: u32,
        /// Version read (0 if the body is shorter than 8 bytes).
        version: u32,
        /// Body length.
        len: usize,
    },
    /// A value to encode does not fit its wire field (e.g. a body over 4 GiB).
    #[error("cannot encode {what}: length {len} does not fit the wire field")]
    TooLong {
        /// What was being encoded.
        what: &'static str,
        /// Its length.
        len: usize,
    },
}
