//! The core's types into JS values (see the module documentation for their shape).

use js_sys::{Array, Object, Uint8Array};
use serde::ser::{self, Error as _, Serialize};
use wasm_bindgen::{JsCast, JsValue};

use super::{name, Error, Target};

type Result<T = JsValue> = std::result::Result<T, Error>;

/// A fresh plain object.
fn object() -> Target {
    Object::new().unchecked_into()
}

/// `{ variant: value }`
fn single(variant: &'static str, value: JsValue) -> JsValue {
    let o = object();
    o.set(&name(variant), value);
    o.into()
}

/// The largest integer a JS number holds exactly.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// Serializes to plain JS values, JSON-compatibly, with bytes as `Uint8Array`s.
#[derive(Clone, Copy, Debug, Default)]
pub struct Serializer;

impl ser::Serializer for Serializer {
    type Ok = JsValue;
    type Error = Error;
    type SerializeSeq = Elements;
    type SerializeTuple = Elements;
    type SerializeTupleStruct = Elements;
    type SerializeTupleVariant = Tagged<Elements>;
    type SerializeMap = Entries;
    type SerializeStruct = Fields;
    type SerializeStructVariant = Tagged<Fields>;

    /// Bytes are raw (`serialize_bytes`), not base64 text.
    fn is_human_readable(&self) -> bool {
        false
    }

    fn serialize_bool(self, v: bool) -> Result {
        Ok(v.into())
    }
    fn serialize_i8(self, v: i8) -> Result {
        Ok(v.into())
    }
    fn serialize_i16(self, v: i16) -> Result {
        Ok(v.into())
    }
    fn serialize_i32(self, v: i32) -> Result {
        Ok(v.into())
    }
    fn serialize_u8(self, v: u8) -> Result {
        Ok(v.into())
    }
    fn serialize_u16(self, v: u16) -> Result {
        Ok(v.into())
    }
    fn serialize_u32(self, v: u32) -> Result {
        Ok(v.into())
    }
    fn serialize_f32(self, v: f32) -> Result {
        Ok(v.into())
    }
    fn serialize_f64(self, v: f64) -> Result {
        Ok(v.into())
    }

    /// A number when safe (|v| <= 2^53-1), else an error: never a `BigInt`.
    fn serialize_i64(self, v: i64) -> Result {
        if v.unsigned_abs() <= MAX_SAFE_INTEGER {
            Ok(JsValue::from_f64(v as f64))
        } else {
            Err(Error::custom(format_args!(
                "{v} can't be represented as a JavaScript number"
            )))
        }
    }

    /// A number when safe (v <= 2^53-1), else an error: never a `BigInt`.
    fn serialize_u64(self, v: u64) -> Result {
        if v <= MAX_SAFE_INTEGER {
            Ok(JsValue::from_f64(v as f64))
        } else {
            Err(Error::custom(format_args!(
                "{v} can't be represented as a JavaScript number"
            )))
        }
    }

    fn serialize_char(self, v: char) -> Result {
        Ok(JsValue::from_str(v.encode_utf8(&mut [0; 4])))
    }

    fn serialize_str(self, v: &str) -> Result {
        Ok(v.into())
    }

    /// A fresh `Uint8Array` (a copy: the wasm memory may move).
    fn serialize_bytes(self, v: &[u8]) -> Result {
        Ok(Uint8Array::from(v).into())
    }

    fn serialize_none(self) -> Result {
        Ok(JsValue::NULL)
    }

    fn serialize_some<T: ?Sized + Serialize>(self, value: &T) -> Result {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result {
        Ok(JsValue::NULL)
    }

    fn serialize_unit_struct(self, _name: &'static str) -> Result {
        Ok(JsValue::NULL)
    }

    fn serialize_unit_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
    ) -> Result {
        Ok(name(variant))
    }

    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result {
        Ok(single(variant, value.serialize(self)?))
    }

    fn serialize_seq(self, _len: Option<usize>) -> Result<Elements> {
        Ok(Elements(Array::new()))
    }

    fn serialize_tuple(self, _len: usize) -> Result<Elements> {
        Ok(Elements(Array::new()))
    }

    fn serialize_tuple_struct(self, _name: &'static str, _len: usize) -> Result<Elements> {
        Ok(Elements(Array::new()))
    }

    fn serialize_tuple_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Tagged<Elements>> {
        Ok(Tagged(variant, Elements(Array::new())))
    }

    fn serialize_map(self, _len: Option<usize>) -> Result<Entries> {
        Ok(Entries {
            target: object(),
            key: None,
        })
    }

    fn serialize_struct(self, _name: &'static str, _len: usize) -> Result<Fields> {
        Ok(Fields(object()))
    }

    fn serialize_struct_variant(
        self,
        _name: &'static str,
        _index: u32,
        variant: &'static str,
        _len: usize,
    ) -> Result<Tagged<Fields>> {
        Ok(Tagged(variant, Fields(object())))
    }
}

/// An array being filled.
pub struct Elements(Array);

impl ser::SerializeSeq for Elements {
    type Ok = JsValue;
    type Error = Error;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        self.0.push(&value.serialize(Serializer)?);
        Ok(())
    }

    fn end(self) -> Result {
        Ok(self.0.into())
    }
}

impl ser::SerializeTuple for Elements {
    type Ok = JsValue;
    type Error = Error;

    fn serialize_element<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result {
        ser::SerializeSeq::end(self)
    }
}

impl ser::SerializeTupleStruct for Elements {
    type Ok = JsValue;
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(self, value)
    }

    fn end(self) -> Result {
        ser::SerializeSeq::end(self)
    }
}

/// A map as a plain object (its keys must serialize as strings).
pub struct Entries {
    target: Target,
    key: Option<JsValue>,
}

impl ser::SerializeMap for Entries {
    type Ok = JsValue;
    type Error = Error;

    fn serialize_key<T: ?Sized + Serialize>(&mut self, key: &T) -> Result<()> {
        let key = key.serialize(Serializer)?;
        if !key.is_string() {
            return Err(Error::custom(
                "Map key is not a string and cannot be an object key",
            ));
        }
        self.key = Some(key);
        Ok(())
    }

    fn serialize_value<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        let key = self.key.take().unwrap_or_default();
        self.target.set(&key, value.serialize(Serializer)?);
        Ok(())
    }

    fn end(self) -> Result {
        Ok(self.target.into())
    }
}

/// A struct as a plain object, its fields in declaration order.
pub struct Fields(Target);

impl ser::SerializeStruct for Fields {
    type Ok = JsValue;
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        self.0.set(&name(key), value.serialize(Serializer)?);
        Ok(())
    }

    fn end(self) -> Result {
        Ok(self.0.into())
    }
}

/// An externally tagged variant: `{ variant: content }`.
pub struct Tagged<S>(&'static str, S);

impl ser::SerializeTupleVariant for Tagged<Elements> {
    type Ok = JsValue;
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(&mut self, value: &T) -> Result<()> {
        ser::SerializeSeq::serialize_element(&mut self.1, value)
    }

    fn end(self) -> Result {
        Ok(single(self.0, ser::SerializeSeq::end(self.1)?))
    }
}

impl ser::SerializeStructVariant for Tagged<Fields> {
    type Ok = JsValue;
    type Error = Error;

    fn serialize_field<T: ?Sized + Serialize>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<()> {
        ser::SerializeStruct::serialize_field(&mut self.1, key, value)
    }

    fn end(self) -> Result {
        Ok(single(self.0, ser::SerializeStruct::end(self.1)?))
    }
}
