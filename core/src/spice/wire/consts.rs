//! Protocol constants: magic and version, channel types, message numbers per direction,
//! capability bits, migrate flags, link errors and MIGRATE_DATA magics.
//!
//! Sources: spec/spice-migration.md §1-§3 (spice-protocol `enums.h`, spice-common
//! `spice.proto`). The inputs-channel numbers were checked against spice-protocol
//! `spice/enums.h` (GitHub mirror elmarco/spice-protocol, commit 1a3b5631) and spice-common
//! `spice.proto` (flexVDI/spice-common): `SPICE_MSG_INPUTS_INIT = 101`, `KEY_MODIFIERS`,
//! `MOUSE_MOTION_ACK = 111`; `SPICE_MSGC_INPUTS_KEY_DOWN = 101`, `KEY_UP`, `KEY_MODIFIERS`,
//! (`KEY_SCANCODE` = 104 in newer `spice.proto`), `MOUSE_MOTION = 111`, `MOUSE_POSITION`,
//! `MOUSE_PRESS`, `MOUSE_RELEASE`.
//!
//! Naming mirrors upstream: [`msg`] holds `SPICE_MSG_*` (server → client), [`msgc`] holds
//! `SPICE_MSGC_*` (client → server). The two number spaces overlap (104, 111, 1-6): always
//! pick the constant by direction and channel.
//!
//! Enums that reach events and traces ([`ChannelType`], [`LinkErr`]) keep unknown wire values
//! in an `Unknown(n)` variant and serialize as their snake_case name when they have one, else
//! as the plain number; deserialization accepts either (so it needs a self-describing format
//! such as JSON). Build them with `from_raw` so a known value never lands in `Unknown`.

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `SPICE_MAGIC`, `"REDQ"` read as a little-endian u32 (§1.1).
pub const SPICE_MAGIC: u32 = 0x5144_4552;
/// `SPICE_VERSION_MAJOR` (§1.1); the server refuses any other major.
pub const VERSION_MAJOR: u32 = 2;
/// `SPICE_VERSION_MINOR` (§1.1).
pub const VERSION_MINOR: u32 = 2;

/// `SPICE_MIGRATION_PROTOCOL_VERSION`: the `src_mig_version` of BEGIN_SEAMLESS and the version
/// of every MIGRATE_DATA header (§3).
pub const MIGRATION_PROTOCOL_VERSION: u32 = 1;

/// Length of the RSA ticket the client sends (§1.1: RSA-1024 OAEP ciphertext).
pub const TICKET_LEN: usize = 128;
/// Length of `SpiceLinkReply.pub_key` (DER SubjectPublicKeyInfo of RSA-1024, §1.1).
pub const PUB_KEY_LEN: usize = 162;
/// Longest password spice-server accepts in a ticket (§1.1).
pub const MAX_PASSWORD_LEN: usize = 60;

/// Link-stage authentication mechanisms (`SpiceLinkAuthMechanism`, §1.1). The values are the
/// common cap bit numbers of the mechanism.
pub mod auth_mechanism {
    /// `SPICE_COMMON_CAP_AUTH_SPICE`: RSA-encrypted ticket.
    pub const SPICE: u32 = 1;
    /// `SPICE_COMMON_CAP_AUTH_SASL`.
    pub const SASL: u32 = 2;
}

/// Common capability bit numbers (§2).
pub mod common_cap {
    /// `SPICE_COMMON_CAP_PROTOCOL_AUTH_SELECTION`.
    pub const PROTOCOL_AUTH_SELECTION: u32 = 0;
    /// `SPICE_COMMON_CAP_AUTH_SPICE`.
    pub const AUTH_SPICE: u32 = 1;
    /// `SPICE_COMMON_CAP_AUTH_SASL`.
    pub const AUTH_SASL: u32 = 2;
    /// `SPICE_COMMON_CAP_MINI_HEADER`.
    pub const MINI_HEADER: u32 = 3;
}

/// Main-channel capability bit numbers (§2).
pub mod main_cap {
    /// `SPICE_MAIN_CAP_SEMI_SEAMLESS_MIGRATE`: needed to get MIGRATE_END instead of SWITCH_HOST.
    pub const SEMI_SEAMLESS_MIGRATE: u32 = 0;
    /// `SPICE_MAIN_CAP_NAME_AND_UUID`.
    pub const NAME_AND_UUID: u32 = 1;
    /// `SPICE_MAIN_CAP_AGENT_CONNECTED_TOKENS`: required (with bit 3) for seamless (§5).
    pub const AGENT_CONNECTED_TOKENS: u32 = 2;
    /// `SPICE_MAIN_CAP_SEAMLESS_MIGRATE`.
    pub const SEAMLESS_MIGRATE: u32 = 3;
}

/// `SpiceMigrateFlags` bits carried by MIGRATE (§2).
pub mod migrate_flags {
    /// `SPICE_MIGRATE_NEED_FLUSH`: answer with FLUSH_MARK.
    pub const NEED_FLUSH: u32 = 1;
    /// `SPICE_MIGRATE_NEED_DATA_TRANSFER`: the next message is MIGRATE_DATA.
    pub const NEED_DATA_TRANSFER: u32 = 2;
    /// `SPICE_MIGRATE_FLAGS_MASK`.
    pub const MASK: u32 = 3;
}

/// `SpiceMigrateDataHeader.magic` per channel, ASCII packed little-endian (§3).
pub mod migrate_data_magic {
    /// `"MNMD"`, main.
    pub const MAIN: u32 = 0x444D_4E4D;
    /// `"DCMD"`, display.
    pub const DISPLAY: u32 = 0x444D_4344;
    /// `"ICMD"`, inputs.
    pub const INPUTS: u32 = 0x444D_4349;
    /// `"SCMD"`, smartcard.
    pub const SMARTCARD: u32 = 0x444D_4353;
    /// `"SVMD"`, spicevmc (usbredir, port, webdav).
    pub const SPICEVMC: u32 = 0x444D_5653;
}

/// Smallest main MIGRATE_DATA body spice-server accepts: header 8 + `SpiceMigrateDataMain`
/// 57 (§3).
pub const MIN_MAIN_MIGRATE_DATA_LEN: usize = 8 + 57;

/// `SpiceNotifySeverity` (spice.proto `notify_severity`).
pub mod notify_severity {
    /// INFO.
    pub const INFO: u32 = 0;
    /// WARN (what spice-server sends).
    pub const WARN: u32 = 1;
    /// ERROR.
    pub const ERROR: u32 = 2;
}

/// `SpiceNotifyVisibility` (spice.proto `notify_visibility`).
pub mod notify_visibility {
    /// LOW.
    pub const LOW: u32 = 0;
    /// MEDIUM.
    pub const MEDIUM: u32 = 1;
    /// HIGH (what spice-server sends).
    pub const HIGH: u32 = 2;
}

/// `SpiceMouseMode` flags.
pub mod mouse_mode {
    /// Server (relative) mouse.
    pub const SERVER: u16 = 1;
    /// Client (absolute) mouse.
    pub const CLIENT: u16 = 2;
}

/// Server → client message numbers (`SPICE_MSG_*`). Common ones (every channel) sit at the
/// top; channel-specific ones in submodules (§2).
pub mod msg {
    /// MIGRATE{flags u32}.
    pub const MIGRATE: u16 = 1;
    /// MIGRATE_DATA, opaque body.
    pub const MIGRATE_DATA: u16 = 2;
    /// SET_ACK{generation u32, window u32}.
    pub const SET_ACK: u16 = 3;
    /// PING{id u32, timestamp u64, padding}.
    pub const PING: u16 = 4;
    /// WAIT_FOR_CHANNELS.
    pub const WAIT_FOR_CHANNELS: u16 = 5;
    /// DISCONNECTING{time_stamp u64, reason u32}.
    pub const DISCONNECTING: u16 = 6;
    /// NOTIFY.
    pub const NOTIFY: u16 = 7;
    /// LIST (a sub-message list; passed through).
    pub const LIST: u16 = 8;
    /// BASE_LAST: the first number past the common range.
    pub const BASE_LAST: u16 = 100;

    /// Main channel, server → client (`SPICE_MSG_MAIN_*`).
    pub mod main {
        /// MIGRATE_BEGIN (DstInfo).
        pub const MIGRATE_BEGIN: u16 = 101;
        /// MIGRATE_CANCEL (empty).
        pub const MIGRATE_CANCEL: u16 = 102;
        /// INIT (8×u32).
        pub const INIT: u16 = 103;
        /// CHANNELS_LIST.
        pub const CHANNELS_LIST: u16 = 104;
        /// MOUSE_MODE.
        pub const MOUSE_MODE: u16 = 105;
        /// MULTI_MEDIA_TIME.
        pub const MULTI_MEDIA_TIME: u16 = 106;
        /// AGENT_CONNECTED (empty).
        pub const AGENT_CONNECTED: u16 = 107;
        /// AGENT_DISCONNECTED{error_code u32}.
        pub const AGENT_DISCONNECTED: u16 = 108;
        /// AGENT_DATA (opaque).
        pub const AGENT_DATA: u16 = 109;
        /// AGENT_TOKEN{num_tokens u32}.
        pub const AGENT_TOKEN: u16 = 110;
        /// MIGRATE_SWITCH_HOST.
        pub const MIGRATE_SWITCH_HOST: u16 = 111;
        /// MIGRATE_END (empty).
        pub const MIGRATE_END: u16 = 112;
        /// NAME.
        pub const NAME: u16 = 113;
        /// UUID.
        pub const UUID: u16 = 114;
        /// AGENT_CONNECTED_TOKENS{num_tokens u32}.
        pub const AGENT_CONNECTED_TOKENS: u16 = 115;
        /// MIGRATE_BEGIN_SEAMLESS (DstInfo + src_mig_version).
        pub const MIGRATE_BEGIN_SEAMLESS: u16 = 116;
        /// MIGRATE_DST_SEAMLESS_ACK (empty).
        pub const MIGRATE_DST_SEAMLESS_ACK: u16 = 117;
        /// MIGRATE_DST_SEAMLESS_NACK (empty).
        pub const MIGRATE_DST_SEAMLESS_NACK: u16 = 118;
    }

    /// Inputs channel, server → client (`SPICE_MSG_INPUTS_*`).
    pub mod inputs {
        /// INIT{keyboard_modifiers u16}.
        pub const INIT: u16 = 101;
        /// KEY_MODIFIERS{modifiers u16}.
        pub const KEY_MODIFIERS: u16 = 102;
        /// MOUSE_MOTION_ACK (empty).
        pub const MOUSE_MOTION_ACK: u16 = 111;
    }
}

/// Client → server message numbers (`SPICE_MSGC_*`), common at the top (§2).
pub mod msgc {
    /// ACK_SYNC{generation u32}.
    pub const ACK_SYNC: u16 = 1;
    /// ACK (empty).
    pub const ACK: u16 = 2;
    /// PONG{id u32, timestamp u64}.
    pub const PONG: u16 = 3;
    /// MIGRATE_FLUSH_MARK (empty).
    pub const MIGRATE_FLUSH_MARK: u16 = 4;
    /// MIGRATE_DATA (opaque, forwarded byte-identical).
    pub const MIGRATE_DATA: u16 = 5;
    /// DISCONNECTING{time_stamp u64, reason u32}.
    pub const DISCONNECTING: u16 = 6;

    /// Main channel, client → server (`SPICE_MSGC_MAIN_*`).
    pub mod main {
        /// CLIENT_INFO{cache_size u64}.
        pub const CLIENT_INFO: u16 = 101;
        /// MIGRATE_CONNECTED (empty).
        pub const MIGRATE_CONNECTED: u16 = 102;
        /// MIGRATE_CONNECT_ERROR (empty).
        pub const MIGRATE_CONNECT_ERROR: u16 = 103;
        /// ATTACH_CHANNELS (empty).
        pub const ATTACH_CHANNELS: u16 = 104;
        /// MOUSE_MODE_REQUEST{mode u16}.
        pub const MOUSE_MODE_REQUEST: u16 = 105;
        /// AGENT_START{num_tokens u32}.
        pub const AGENT_START: u16 = 106;
        /// AGENT_DATA (opaque).
        pub const AGENT_DATA: u16 = 107;
        /// AGENT_TOKEN{num_tokens u32}.
        pub const AGENT_TOKEN: u16 = 108;
        /// MIGRATE_END (empty).
        pub const MIGRATE_END: u16 = 109;
        /// MIGRATE_DST_DO_SEAMLESS{src_version u32}.
        pub const MIGRATE_DST_DO_SEAMLESS: u16 = 110;
        /// MIGRATE_CONNECTED_SEAMLESS (empty).
        pub const MIGRATE_CONNECTED_SEAMLESS: u16 = 111;
        /// QUALITY_INDICATOR (spice-protocol ≥ 0.14.1; passed through).
        pub const QUALITY_INDICATOR: u16 = 112;
    }

    /// Display channel, client → server (`SPICE_MSGC_DISPLAY_*`).
    pub mod display {
        /// INIT{pixmap_cache_id u8, pixmap_cache_size i64, glz_dictionary_id u8,
        /// glz_dictionary_window_size i32}, 14 bytes.
        pub const INIT: u16 = 101;
    }

    /// Inputs channel, client → server (`SPICE_MSGC_INPUTS_*`).
    pub mod inputs {
        /// KEY_DOWN{code u32}.
        pub const KEY_DOWN: u16 = 101;
        /// KEY_UP{code u32}.
        pub const KEY_UP: u16 = 102;
        /// KEY_MODIFIERS{modifiers u16}.
        pub const KEY_MODIFIERS: u16 = 103;
        /// KEY_SCANCODE (raw scan-code bytes; newer spice.proto).
        pub const KEY_SCANCODE: u16 = 104;
        /// MOUSE_MOTION{dx i32, dy i32, buttons_state u16}, 10 bytes.
        pub const MOUSE_MOTION: u16 = 111;
        /// MOUSE_POSITION{x u32, y u32, buttons_state u16, display_id u8}, 11 bytes.
        pub const MOUSE_POSITION: u16 = 112;
        /// MOUSE_PRESS{button u8, buttons_state u16}.
        pub const MOUSE_PRESS: u16 = 113;
        /// MOUSE_RELEASE{button u8, buttons_state u16}.
        pub const MOUSE_RELEASE: u16 = 114;
    }
}

/// Declares a wire enum with an `Unknown` fallback and the name-or-number serde form.
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        $name:ident: $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )*
            /// A value this crate has no name for, kept as read.
            Unknown($repr),
        }

        impl $name {
            /// Every named variant, in wire order.
            pub const NAMED: &'static [$name] = &[$($name::$variant),*];

            /// The variant for a wire value (never `Unknown` for a named value).
            pub const fn from_raw(value: $repr) -> Self {
                match value {
                    $( $value => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }

            /// The wire value.
            pub const fn to_raw(self) -> $repr {
                match self {
                    $( $name::$variant => $value, )*
                    $name::Unknown(v) => v,
                }
            }

            /// The snake_case name, or `None` for a value without one.
            pub const fn name(self) -> Option<&'static str> {
                match self.to_raw() {
                    $( $value => Some($text), )*
                    _ => None,
                }
            }

            /// The variant with this snake_case name.
            pub fn from_name(name: &str) -> Option<Self> {
                match name {
                    $( $text => Some($name::$variant), )*
                    _ => None,
                }
            }
        }

        impl From<$repr> for $name {
            fn from(value: $repr) -> Self {
                Self::from_raw(value)
            }
        }

        impl From<$name> for $repr {
            fn from(value: $name) -> Self {
                value.to_raw()
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                match self.name() {
                    Some(n) => s.serialize_str(n),
                    None => s.serialize_u64(u64::from(self.to_raw())),
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl Visitor<'_> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                        f.write_str(concat!("a ", stringify!($name), " name or number"))
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        $name::from_name(v).ok_or_else(|| E::unknown_variant(v, &[$($text),*]))
                    }
                    fn visit_u64<E: de::Error>(self, v: u64) -> Result<$name, E> {
                        <$repr>::try_from(v)
                            .map($name::from_raw)
                            .map_err(|_| E::invalid_value(de::Unexpected::Unsigned(v), &self))
                    }
                    fn visit_i64<E: de::Error>(self, v: i64) -> Result<$name, E> {
                        <$repr>::try_from(v)
                            .map($name::from_raw)
                            .map_err(|_| E::invalid_value(de::Unexpected::Signed(v), &self))
                    }
                }
                d.deserialize_any(V)
            }
        }

        // The TypeScript form of the serde form above: a name, or the number of an
        // unnamed value.
        #[cfg(feature = "ts")]
        const _: () = {
            use wasm_bindgen::prelude::*;
            #[wasm_bindgen(typescript_custom_section)]
            const TS_APPEND_CONTENT: &'static str = concat!(
                "export type ", stringify!($name), " = ", $("\"", $text, "\" | ",)* "number;"
            );
        };
    };
}

wire_enum! {
    /// SPICE channel types (§1.2 table; `SPICE_CHANNEL_*`).
    ChannelType: u8 {
        /// MAIN.
        Main = 1 => "main",
        /// DISPLAY.
        Display = 2 => "display",
        /// INPUTS.
        Inputs = 3 => "inputs",
        /// CURSOR.
        Cursor = 4 => "cursor",
        /// PLAYBACK.
        Playback = 5 => "playback",
        /// RECORD.
        Record = 6 => "record",
        /// TUNNEL.
        Tunnel = 7 => "tunnel",
        /// SMARTCARD.
        Smartcard = 8 => "smartcard",
        /// USBREDIR.
        Usbredir = 9 => "usbredir",
        /// PORT.
        Port = 10 => "port",
        /// WEBDAV.
        Webdav = 11 => "webdav",
    }
}

wire_enum! {
    /// `SpiceLinkErr` (§1.1): link reply error, link result, DISCONNECTING reason.
    LinkErr: u32 {
        /// OK.
        Ok = 0 => "ok",
        /// ERROR.
        Error = 1 => "error",
        /// INVALID_MAGIC.
        InvalidMagic = 2 => "invalid_magic",
        /// INVALID_DATA.
        InvalidData = 3 => "invalid_data",
        /// VERSION_MISMATCH.
        VersionMismatch = 4 => "version_mismatch",
        /// NEED_SECURED (reconnect with TLS).
        NeedSecured = 5 => "need_secured",
        /// NEED_UNSECURED.
        NeedUnsecured = 6 => "need_unsecured",
        /// PERMISSION_DENIED (bad ticket).
        PermissionDenied = 7 => "permission_denied",
        /// BAD_CONNECTION_ID.
        BadConnectionId = 8 => "bad_connection_id",
        /// CHANNEL_NOT_AVAILABLE.
        ChannelNotAvailable = 9 => "channel_not_available",
    }
}

impl ChannelType {
    /// The MIGRATE_DATA magic spice-server expects on this channel, if it migrates data
    /// (§3 table).
    pub const fn migrate_data_magic(self) -> Option<u32> {
        match self {
            ChannelType::Main => Some(migrate_data_magic::MAIN),
            ChannelType::Display => Some(migrate_data_magic::DISPLAY),
            ChannelType::Inputs => Some(migrate_data_magic::INPUTS),
            ChannelType::Smartcard => Some(migrate_data_magic::SMARTCARD),
            ChannelType::Usbredir | ChannelType::Port | ChannelType::Webdav => {
                Some(migrate_data_magic::SPICEVMC)
            }
            _ => None,
        }
    }
}

impl LinkErr {
    /// Whether this is `Ok`.
    pub const fn is_ok(self) -> bool {
        matches!(self, LinkErr::Ok)
    }
}

/// `SpiceMigrateFlags` as carried by MIGRATE (§2). Unknown bits are kept as read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MigrateFlags(pub u32);

impl MigrateFlags {
    /// NEED_FLUSH | NEED_DATA_TRANSFER, what MAIN/DISPLAY/INPUTS/SMARTCARD/spicevmc send.
    pub const FLUSH_AND_DATA: MigrateFlags = MigrateFlags(migrate_flags::MASK);

    /// Flag 1: the client must send FLUSH_MARK at once (invariant 7).
    pub const fn need_flush(self) -> bool {
        self.0 & migrate_flags::NEED_FLUSH != 0
    }

    /// Flag 2: the next message is MIGRATE_DATA (invariant 8).
    pub const fn need_data_transfer(self) -> bool {
        self.0 & migrate_flags::NEED_DATA_TRANSFER != 0
    }
}
