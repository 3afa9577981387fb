//! Reading the machines' inputs from JS without serde's buffering.
//!
//! The core's input enums are internally tagged (`{"type": "received", ...}`). serde
//! deserializes such an enum by first buffering the whole value into its private `Content`
//! tree, then re-reading that tree; monomorphized for every field type, this machinery was
//! the largest part of the package's module (BENCHMARKS.md, WebAssembly). A JS object is
//! already a buffer that can be read in any order, so the package reads an input's variant
//! name from its `type` field first (`Tagged`), then its fields straight from the object
//! with serde-wasm-bindgen (as it reads configurations), through the externally tagged
//! mirrors below (serde's `remote` derive). Byte fields take a `Uint8Array`, an
//! `ArrayBuffer` or base64 text (`bytes`).
//!
//! Only the reading of ill-typed fields differs from serde's buffered one: a `BigInt` in a
//! 32- or 16-bit field, bytes in a string field or an array for a nested struct are refused
//! (the TypeScript types allow none of them), and fields no variant has are not read at all.
//!
//! The mirrors must list the core's variants with the same fields in the same order: the
//! compiler checks the fields (each mirror builds the core's value), and the tests check the
//! variant lists and read every input of the trace corpus both ways.

use js_sys::Array;
use livemig_core::bytes::Bytes;
use livemig_core::migration::orchestrator::{
    DomainRef, DomainState, Host, OrchestratorInput, Procedure,
};
use livemig_core::migration::RemoteError;
use livemig_core::spice::session::{ChannelRef, ConnId, SessionInput};
use serde::de::{self, DeserializeSeed, IntoDeserializer, Visitor};
use serde::Deserialize;
use serde_wasm_bindgen::{Deserializer, Error};
use wasm_bindgen::JsValue;

/// An input read from JS.
pub trait Input: Sized {
    /// Reads `{"type": variant, ...fields}` (or `[variant, ...fields]`) as serde's
    /// internally tagged enums do.
    fn from_js(value: JsValue) -> Result<Self, Error>;
}

impl Input for SessionInput {
    fn from_js(value: JsValue) -> Result<Self, Error> {
        SessionInputDef::deserialize(Tagged {
            value,
            expecting: "internally tagged enum SessionInput",
        })
    }
}

impl Input for OrchestratorInput {
    fn from_js(value: JsValue) -> Result<Self, Error> {
        OrchestratorInputDef::deserialize(Tagged {
            value,
            expecting: "internally tagged enum OrchestratorInput",
        })
    }
}

/// The tag's key.
const TAG: &str = "type";

/// An internally tagged input (`{ "type": variant, ...fields }`, or `[variant, ...fields]`)
/// as an externally tagged enum: the variant's name first, then its fields, each read by
/// serde-wasm-bindgen. Only `deserialize_enum` is meaningful.
struct Tagged {
    value: JsValue,
    /// What a value of the wrong shape is told it should be.
    expecting: &'static str,
}

/// A variant's fields: the input object (its tag is no field), or the array's elements after
/// the name.
enum Fields {
    Object(JsValue),
    Elements(Array),
}

impl Fields {
    /// The fields as an object: an array's elements named by position, exactly one per
    /// field (not generic: one copy for every variant).
    fn object(self, fields: &'static [&'static str]) -> Result<JsValue, Error> {
        let rest = match self {
            Fields::Object(object) => return Ok(object),
            Fields::Elements(rest) => rest,
        };
        if rest.length() as usize != fields.len() {
            return Err(de::Error::invalid_length(
                rest.length() as usize,
                &Elements(fields.len()),
            ));
        }
        let object = js_sys::Object::new();
        for (name, value) in fields.iter().zip(rest.iter()) {
            js_sys::Reflect::set(&object, &JsValue::from_str(name), &value)?;
        }
        Ok(object.into())
    }
}

/// "N elements in a sequence": what a length error expected.
struct Elements(usize);

impl de::Expected for Elements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            1 => f.write_str("1 element in sequence"),
            n => write!(f, "{n} elements in sequence"),
        }
    }
}

/// Expects what [`Tagged::expecting`] says, and accepts nothing.
struct Expecting(&'static str);

impl<'de> Visitor<'de> for Expecting {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl<'de> de::EnumAccess<'de> for Tagged {
    type Error = Error;
    type Variant = Fields;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Fields), Error> {
        let (tag, fields) = if Array::is_array(&self.value) {
            let items = Array::from(&self.value);
            if items.length() == 0 {
                return Err(de::Error::missing_field(TAG));
            }
            let rest = items.slice(1, items.length());
            (items.get(0), Fields::Elements(rest))
        } else if self.value.is_object() {
            let key = JsValue::from_str(TAG);
            if !js_sys::Reflect::has(&self.value, &key)? {
                return Err(de::Error::missing_field(TAG));
            }
            let tag = js_sys::Reflect::get(&self.value, &key)?;
            (tag, Fields::Object(self.value))
        } else {
            // serde-wasm-bindgen's message for a value of the wrong type (it reads no struct
            // from a value that is not an object).
            let expecting = Expecting(self.expecting);
            let wrong = de::Deserializer::deserialize_struct(
                Deserializer::from(self.value),
                "",
                &[],
                expecting,
            );
            return Err(wrong
                .err()
                .unwrap_or_else(|| de::Error::custom(self.expecting)));
        };
        Ok((seed.deserialize(Deserializer::from(tag))?, fields))
    }
}

impl<'de> de::VariantAccess<'de> for Fields {
    type Error = Error;

    /// Other fields are ignored; an array has no element after the name.
    fn unit_variant(self) -> Result<(), Error> {
        self.object(&[]).map(drop)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, Error> {
        Err(de::Error::invalid_type(
            de::Unexpected::NewtypeVariant,
            &"a unit or struct variant",
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value, Error> {
        Err(de::Error::invalid_type(
            de::Unexpected::TupleVariant,
            &visitor,
        ))
    }

    /// The object's fields by name (an array's elements by position).
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        let object = self.object(fields)?;
        de::Deserializer::deserialize_struct(Deserializer::from(object), "", fields, visitor)
    }
}

impl<'de> de::Deserializer<'de> for Tagged {
    type Error = Error;

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Error> {
        visitor.visit_enum(self)
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
        Err(de::Error::invalid_type(de::Unexpected::Enum, &visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}

/// A byte field: a `Uint8Array` or an `ArrayBuffer` (serde-wasm-bindgen gives its bytes), or
/// base64 text, as the core's `Bytes` reads it. serde-wasm-bindgen calls itself
/// human-readable, so `Bytes` alone would take text only.
fn bytes<'de, D: de::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
    struct Raw;

    impl<'de> Visitor<'de> for Raw {
        type Value = Bytes;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a base64 string or a byte buffer")
        }

        fn visit_byte_buf<E: de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
            Ok(Bytes(v))
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Bytes, E> {
            Bytes::deserialize(v.into_deserializer())
        }
    }

    d.deserialize_any(Raw)
}

/// [`SessionInput`], externally tagged.
#[derive(Deserialize)]
#[serde(remote = "SessionInput", rename_all = "snake_case")]
#[allow(dead_code)] // the fields are only written, by serde
enum SessionInputDef {
    Start,
    Connected {
        conn: ConnId,
    },
    ConnectFailed {
        conn: ConnId,
        reason: String,
    },
    Received {
        conn: ConnId,
        #[serde(deserialize_with = "bytes")]
        bytes: Bytes,
    },
    Closed {
        conn: ConnId,
        reason: String,
    },
    Ticket {
        conn: ConnId,
        #[serde(deserialize_with = "bytes")]
        ticket: Bytes,
    },
    TicketFailed {
        conn: ConnId,
        reason: String,
    },
    TargetDecision {
        allow: bool,
    },
    Send {
        channel: ChannelRef,
        msg_type: u16,
        #[serde(deserialize_with = "bytes")]
        body: Bytes,
    },
    Timeout,
    Disconnect,
}

/// [`OrchestratorInput`], externally tagged.
#[derive(Deserialize)]
#[serde(remote = "OrchestratorInput", rename_all = "snake_case")]
#[allow(dead_code)] // the fields are only written, by serde
enum OrchestratorInputDef {
    Start,
    Begun {
        #[serde(deserialize_with = "bytes")]
        cookie: Bytes,
        xml: String,
    },
    SourceState {
        state: DomainState,
    },
    XmlDesc {
        xml: String,
    },
    Prepared {
        #[serde(deserialize_with = "bytes")]
        cookie: Bytes,
        uri: Option<String>,
    },
    Performed {
        #[serde(deserialize_with = "bytes")]
        cookie: Bytes,
    },
    Finished {
        domain: DomainRef,
        #[serde(deserialize_with = "bytes")]
        cookie: Bytes,
    },
    Confirmed,
    JobAborted,
    CallFailed {
        procedure: Procedure,
        error: RemoteError,
    },
    ConnectionLost {
        host: Host,
        reason: String,
    },
    Cancel,
    Timeout,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use std::path::Path;

    /// The variant names serde lists for an unknown variant.
    fn variants(error: serde_json::Error) -> String {
        let text = error.to_string();
        let start = text.find("expected one of").expect(&text);
        text[start..].split(" at line").next().unwrap().to_string()
    }

    /// An internally tagged input's JSON in the externally tagged form of the mirrors.
    fn external(input: &serde_json::Value) -> serde_json::Value {
        let mut fields = input.as_object().unwrap().clone();
        let tag = fields.remove("type").unwrap();
        let tag = tag.as_str().unwrap().to_string();
        if fields.is_empty() {
            serde_json::Value::String(tag)
        } else {
            serde_json::json!({ tag: fields })
        }
    }

    struct Session;
    struct Orchestrator;

    trait Mirror {
        type Input: DeserializeOwned + PartialEq + std::fmt::Debug;
        const MACHINE: &'static str;
        fn mirror(v: serde_json::Value) -> serde_json::Result<Self::Input>;
    }

    impl Mirror for Session {
        type Input = SessionInput;
        const MACHINE: &'static str = "spice_session";
        fn mirror(v: serde_json::Value) -> serde_json::Result<SessionInput> {
            SessionInputDef::deserialize(v)
        }
    }

    impl Mirror for Orchestrator {
        type Input = OrchestratorInput;
        const MACHINE: &'static str = "orchestrator";
        fn mirror(v: serde_json::Value) -> serde_json::Result<OrchestratorInput> {
            OrchestratorInputDef::deserialize(v)
        }
    }

    fn same_variants<M: Mirror>() {
        let core = serde_json::from_str::<M::Input>(r#"{"type":"?"}"#).unwrap_err();
        let mirror = M::mirror(serde_json::json!("?")).unwrap_err();
        assert_eq!(variants(core), variants(mirror));
    }

    /// Every input of the corpus's traces of `M`'s machine reads the same both ways.
    fn corpus_inputs<M: Mirror>() -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/traces");
        let mut files = vec![dir];
        let mut seen = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines = text.lines();
            let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
            if header["setup"]["machine"] != M::MACHINE {
                continue;
            }
            for line in lines {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                let input = &record["input"];
                let core: M::Input = serde_json::from_value(input.clone()).unwrap();
                let mirror = M::mirror(external(input)).unwrap();
                assert_eq!(core, mirror, "{}: {input}", path.display());
                seen += 1;
            }
        }
        seen
    }

    #[test]
    fn mirrors_list_the_core_variants() {
        same_variants::<Session>();
        same_variants::<Orchestrator>();
    }

    #[test]
    fn mirrors_read_every_corpus_input_as_the_core_does() {
        assert!(corpus_inputs::<Session>() > 500);
        assert!(corpus_inputs::<Orchestrator>() > 200);
    }
}
