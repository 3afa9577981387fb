//! Conversions between the core's serde types and plain JS values, written for this package
//! in place of serde-wasm-bindgen, with the same behaviour (BENCHMARKS.md, WebAssembly: with
//! serde's buffering of the input enums, that generic conversion and the float formatting
//! its error messages pulled in were a third of the module).
//!
//! * [`Deserializer`] reads configurations and inputs: `null`/`undefined` for `None` and
//!   unit, booleans, numbers (safe integers for integer fields, `BigInt` for 64-bit ones),
//!   strings, arrays (and other iterables), `Uint8Array`/`ArrayBuffer` for bytes, objects
//!   for structs, objects and `Map`s for maps and enums (an input's fields are read as
//!   serde's buffering read them: see `de`). It reports itself human-readable, so `Bytes`
//!   also accept base64 text.
//! * [`Serializer`] writes actions JSON-compatibly: `null` for `None` and unit, objects for
//!   structs and maps, numbers for 64-bit integers (above 2^53-1 is an error, never a
//!   `BigInt`), and `Uint8Array` for bytes: it reports itself compact, which is what makes
//!   `Bytes` serialize as raw bytes at every depth.
//! * [`Error`] carries the message. Its serde messages are serde's own, except that numbers
//!   and strings are written by JS: core's float formatting and string escaping would cost
//!   ~20 KB of wasm for error texts.

mod de;
mod ser;

use std::fmt::{self, Display};

use serde::de::{Expected, Unexpected};
use wasm_bindgen::prelude::*;

pub use de::{Deserializer, Tagged};
pub use ser::Serializer;

/// A value that does not fit the expected type, or an action JS cannot carry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(String);

impl Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl serde::de::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
    fn invalid_type(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Error(format!("invalid type: {}, expected {exp}", Shown(unexp)))
    }
    fn invalid_value(unexp: Unexpected<'_>, exp: &dyn Expected) -> Self {
        Error(format!("invalid value: {}, expected {exp}", Shown(unexp)))
    }
}

impl serde::ser::Error for Error {
    fn custom<T: Display>(msg: T) -> Self {
        Error(msg.to_string())
    }
}

/// A JS exception raised while reading a value (a throwing getter, a revoked proxy).
impl From<JsValue> for Error {
    fn from(e: JsValue) -> Self {
        Error(js_text(&e))
    }
}

/// serde's `Unexpected` as its own `Display` writes it, with floats printed by JS.
struct Shown<'a>(Unexpected<'a>);

impl Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Unexpected::*;
        match self.0 {
            Bool(b) => write!(f, "boolean `{b}`"),
            Unsigned(i) => write!(f, "integer `{i}`"),
            Signed(i) => write!(f, "integer `{i}`"),
            // serde writes `1.0` for an integral float, as Rust prints floats.
            Float(v) if v.is_finite() && v.fract() == 0.0 => {
                write!(f, "floating point `{}.0`", number_text(v))
            }
            Float(v) => write!(f, "floating point `{}`", number_text(v)),
            Char(c) => write!(f, "character `{c}`"),
            Str(s) => write!(f, "string {}", quoted(s)),
            Bytes(_) => f.write_str("byte array"),
            Unit => f.write_str("unit value"),
            Option => f.write_str("Option value"),
            NewtypeStruct => f.write_str("newtype struct"),
            Seq => f.write_str("sequence"),
            Map => f.write_str("map"),
            Enum => f.write_str("enum"),
            UnitVariant => f.write_str("unit variant"),
            NewtypeVariant => f.write_str("newtype variant"),
            TupleVariant => f.write_str("tuple variant"),
            StructVariant => f.write_str("struct variant"),
            Other(other) => f.write_str(other),
        }
    }
}

#[wasm_bindgen]
extern "C" {
    /// JS `String(value)`.
    #[wasm_bindgen(js_name = String)]
    fn js_text(value: &JsValue) -> String;

    /// An object being filled.
    type Target;

    /// `this[key] = value`
    #[wasm_bindgen(method, indexing_setter)]
    fn set(this: &Target, key: &JsValue, value: JsValue);
}

/// A JS string for a name from the core's types (a field, a variant), created once: the
/// same few dozen names are written for every action. Keyed by address and length.
fn name(s: &'static str) -> JsValue {
    thread_local! {
        static NAMES: std::cell::RefCell<Vec<((usize, usize), JsValue)>> = const {
            std::cell::RefCell::new(Vec::new())
        };
    }
    let key = (s.as_ptr() as usize, s.len());
    NAMES.with_borrow_mut(|names| {
        if let Some((_, js)) = names.iter().find(|(k, _)| *k == key) {
            return js.clone();
        }
        let js = JsValue::from_str(s);
        names.push((key, js.clone()));
        js
    })
}

/// A string quoted and escaped, as JSON writes it (`JSON.stringify`): Rust's `{:?}` for
/// strings links core's Unicode tables into the module (~5 KB gzipped) for error messages.
/// Natively (unit tests), Rust's.
pub fn quoted(s: &str) -> String {
    #[cfg(target_arch = "wasm32")]
    return js_sys::JSON::stringify(&JsValue::from_str(s))
        .map(String::from)
        .unwrap_or_default();
    #[cfg(not(target_arch = "wasm32"))]
    return format!("{s:?}");
}

/// A number as text, as JS writes it (`String(n)`): Rust's float formatting is not linked
/// into the module for error messages. Natively (unit tests), Rust's.
pub fn number_text(v: f64) -> String {
    #[cfg(target_arch = "wasm32")]
    return js_text(&JsValue::from_f64(v));
    #[cfg(not(target_arch = "wasm32"))]
    return v.to_string();
}
