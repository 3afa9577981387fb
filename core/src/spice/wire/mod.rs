//! The SPICE wire codec, client side first (spec/spice-migration.md §1-§3,
//! spec/qemu-spice-interop.md "Link stage"). Sans-IO: bytes in, values out, and values into
//! a caller's `Vec<u8>`. Little-endian, packed. No input makes it panic; a size a peer
//! declares is checked before anything is allocated.
//!
//! * [`consts`]: magic, version, channel types, message numbers per direction, caps bits,
//!   migrate flags, link errors, MIGRATE_DATA magics.
//! * [`caps`]: [`Caps`], capability words.
//! * [`link`]: link message, link reply, auth mechanism, ticket, link result (§1.1).
//! * [`header`]: mini (6 B) and full (18 B) data headers and their encoders (§1.2).
//! * [`framer`]: [`Framer`] / [`FrameBuf`], messages out of arbitrarily chunked bytes.
//! * [`msg`]: typed bodies, [`ServerMsg`] / [`ClientMsg`] with a pass-through variant (§3).
//! * [`error`]: the error type, [`WireError`].
//!
//! A client link, then framing:
//!
//! ```
//! use livemig_core::spice::wire::{
//!     consts::{msg, ChannelType}, Caps, FrameBuf, Framer, HeaderKind, LinkMess, ServerMsg,
//! };
//!
//! let mut out = Vec::new();
//! LinkMess {
//!     connection_id: 0,
//!     channel_type: ChannelType::Main,
//!     channel_id: 0,
//!     common_caps: Caps::single(0x0b),
//!     channel_caps: Caps::single(0x0f),
//! }
//! .encode(&mut out)
//! .unwrap();
//! assert_eq!(out.len(), 42);
//!
//! let mut rx = FrameBuf::new(Framer::new(HeaderKind::Mini));
//! rx.push(&[3, 0, 8, 0]); // SET_ACK, split inside the header
//! rx.push(&[0, 0, 1, 0, 0, 0, 20, 0, 0, 0]);
//! let frame = rx.next_frame().unwrap().unwrap();
//! assert_eq!(frame.msg_type, msg::SET_ACK);
//! let ServerMsg::SetAck(ack) = ServerMsg::from_frame(ChannelType::Main, &frame).unwrap() else {
//!     panic!()
//! };
//! assert_eq!((ack.generation, ack.window), (1, 20));
//! ```

pub mod caps;
pub mod consts;
pub mod error;
pub mod framer;
pub mod header;
pub mod link;
pub mod msg;
mod read;

pub use caps::Caps;
pub use consts::{ChannelType, LinkErr, MigrateFlags};
pub use error::WireError;
pub use framer::{Frame, FrameBuf, Framer, Frames};
pub use header::{encode_frame, encode_full, encode_mini, FullHeader, HeaderKind, MiniHeader};
pub use link::{LinkHeader, LinkMess, LinkReply};
pub use msg::{encode_msg, ClientMsg, ServerMsg, WireMsg};
