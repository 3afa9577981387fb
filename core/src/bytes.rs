//! Byte strings that serialize as standard base64 (with padding) in every human-readable
//! serde format, so traces and JSON carry the same text for the same bytes. A compact format
//! (`is_human_readable() == false`, e.g. the wasm crate's JS object conversion) gets raw
//! bytes, which become a `Uint8Array` in JS. Deserialization accepts either form.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An owned byte buffer: base64 text in JSON, raw bytes (a `Uint8Array` in JS) in compact formats.
#[cfg_attr(feature = "ts", derive(tsify::Tsify), tsify(type = "Uint8Array"))]
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Bytes(pub Vec<u8>);

impl Bytes {
    /// An empty buffer (how libvirt passes "no cookie").
    pub const fn new() -> Self {
        Bytes(Vec::new())
    }
    /// Whether the buffer holds no byte.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match std::str::from_utf8(&self.0) {
            Ok(s) if s.len() <= 64 => write!(f, "b{s:?}"),
            _ => write!(f, "Bytes({} bytes)", self.0.len()),
        }
    }
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Self {
        Bytes(v)
    }
}

impl From<&[u8]> for Bytes {
    fn from(v: &[u8]) -> Self {
        Bytes(v.to_vec())
    }
}

impl Serialize for Bytes {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&STANDARD.encode(&self.0))
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

/// Base64 text, or raw bytes from a format that has them.
struct BytesVisitor;

impl<'de> serde::de::Visitor<'de> for BytesVisitor {
    type Value = Bytes;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a base64 string or a byte buffer")
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Bytes, E> {
        STANDARD.decode(v.as_bytes()).map(Bytes).map_err(E::custom)
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
        Ok(Bytes(v.to_vec()))
    }
    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
        Ok(Bytes(v))
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Human-readable formats (JSON) carry only the base64 text. Buffered content (inside
        // internally tagged enums) hands raw bytes to `deserialize_str` as bytes, so a JS
        // `Uint8Array` arrives through `visit_byte_buf` either way.
        if d.is_human_readable() {
            d.deserialize_str(BytesVisitor)
        } else {
            d.deserialize_byte_buf(BytesVisitor)
        }
    }
}
