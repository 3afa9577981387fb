//! JS values into the core's types.
//!
//! One [`Deserializer`] reads a JS value in one of two ways, each what the package did with
//! serde-wasm-bindgen before it had its own conversions:
//!
//! * **direct** (configurations): serde-wasm-bindgen's reading of a JS value;
//! * **buffered** (an input's fields): what serde's internally tagged enums saw after
//!   buffering serde-wasm-bindgen's self-describing reading of the input
//!   (`deserialize_any`) into their `Content`. A `BigInt` then fits any integer field,
//!   bytes fit string fields and base64 text fits byte fields, an array fits a struct (by
//!   position), an empty object fits unit, a struct reads an object's own enumerable
//!   properties, and every value, even one no field takes, must be readable.
//!
//! [`Tagged`] reads an input (`{ "type": variant, ...fields }`, or `[variant, ...fields]`)
//! into an externally tagged mirror of its enum (`crate::input`): the JS object already is
//! a buffer, so serde's `Content` machinery (a fifth of the module) is not needed. A struct
//! is read by name in both ways (an array is first made an object), so the derived
//! visitors are instantiated for maps only.

use js_sys::{Array, ArrayBuffer, Map, Number, Object, Symbol, Uint8Array};
use serde::de::{self, DeserializeSeed, IgnoredAny, IntoDeserializer, Visitor};
use wasm_bindgen::{JsCast, JsValue};

use super::{Error, Target};

type Result<T> = std::result::Result<T, Error>;

/// A JS value as a serde [`de::Deserializer`].
pub struct Deserializer {
    value: JsValue,
    buffered: bool,
}

impl From<JsValue> for Deserializer {
    /// The direct reading (configurations).
    fn from(value: JsValue) -> Self {
        Deserializer {
            value,
            buffered: false,
        }
    }
}

impl<'de> IntoDeserializer<'de, Error> for Deserializer {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

/// A fresh object without a prototype (so `in` sees only what was put in it).
fn bare_object() -> Target {
    Object::create(JsValue::NULL.unchecked_ref::<Object>()).unchecked_into()
}

/// Checks that a buffered value is readable (as buffering it had to be).
fn check(value: JsValue) -> Result<()> {
    de::Deserializer::deserialize_any(Deserializer::buffered(value), IgnoredAny).map(drop)
}

impl Deserializer {
    fn buffered(value: JsValue) -> Self {
        Deserializer {
            value,
            buffered: true,
        }
    }

    /// A value inside this one, read the same way.
    fn child(&self, value: JsValue) -> Self {
        Deserializer {
            value,
            buffered: self.buffered,
        }
    }

    /// `null` or `undefined` (JS `value == null`).
    fn is_nullish(&self) -> bool {
        self.value.loose_eq(&JsValue::NULL)
    }

    /// The bytes of a `Uint8Array` or an `ArrayBuffer`.
    fn bytes(&self) -> Option<Vec<u8>> {
        if let Some(a) = self.value.dyn_ref::<Uint8Array>() {
            Some(a.to_vec())
        } else {
            self.value
                .dyn_ref::<ArrayBuffer>()
                .map(|b| Uint8Array::new(b).to_vec())
        }
    }

    /// A number that is a safe integer (`Number.isSafeInteger`).
    fn safe_integer(&self) -> Option<i64> {
        Number::is_safe_integer(&self.value).then(|| self.value.unchecked_into_f64() as i64)
    }

    /// What the self-describing reading takes for a map: an object that is not iterable,
    /// or a `Map`.
    fn is_map_like(&self) -> bool {
        self.value.is_object()
            && (!Symbol::iterator().js_in(&self.value) || self.value.has_type::<Map>())
    }

    /// The `[key, value]` pairs of a map-like value (see [`Self::is_map_like`]): a `Map`'s
    /// entries, or an object's own enumerable properties.
    fn pairs(&self) -> Result<js_sys::IntoIter> {
        match js_sys::try_iter(&self.value)? {
            Some(pairs) => Ok(pairs),
            None => Ok(Object::entries(self.value.unchecked_ref())
                .values()
                .into_iter()),
        }
    }

    #[cold]
    fn invalid(&self, exp: &dyn de::Expected) -> Error {
        let text;
        let bytes;
        let unexpected = if self.is_nullish() {
            de::Unexpected::Unit
        } else if let Some(b) = self.value.as_bool() {
            de::Unexpected::Bool(b)
        } else if let Some(v) = self.value.as_f64() {
            de::Unexpected::Float(v)
        } else if let Some(s) = self.value.as_string() {
            text = s;
            de::Unexpected::Str(&text)
        } else if let Some(b) = self.bytes() {
            bytes = b;
            de::Unexpected::Bytes(&bytes)
        } else {
            text = format!("{:?}", self.value);
            de::Unexpected::Other(&text)
        };
        de::Error::invalid_type(unexpected, exp)
    }

    fn invalid_type<'de, V: Visitor<'de>>(&self, visitor: V) -> Result<V::Value> {
        Err(self.invalid(&visitor))
    }

    /// A `BigInt` as the self-describing reading gives it: `i64` if it fits, else `u64`.
    fn big_integer<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match i64::try_from(self.value) {
            Ok(v) => visitor.visit_i64(v),
            Err(big) => match u64::try_from(big) {
                Ok(v) => visitor.visit_u64(v),
                Err(_) => Err(de::Error::custom(
                    "Couldn't deserialize i64 or u64 from a BigInt outside i64::MIN..u64::MAX bounds",
                )),
            },
        }
    }

    /// A safe integer (buffered, or a `BigInt`) for a field narrower than 64 bits; serde's
    /// visitors check the range.
    fn integer<'de, V: Visitor<'de>>(self, visitor: V, signed: bool) -> Result<V::Value> {
        if self.buffered && self.value.is_bigint() {
            return self.big_integer(visitor);
        }
        match self.safe_integer() {
            Some(v) if self.buffered || signed => visitor.visit_i64(v),
            Some(v) if v >= 0 => visitor.visit_u64(v as u64),
            _ => self.invalid_type(visitor),
        }
    }

    /// The elements of an iterable (buffered: of an array, all of which must be read).
    fn seq<'de, V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.buffered && !Array::is_array(&self.value) {
            return self.invalid_type(visitor);
        }
        match js_sys::try_iter(&self.value)? {
            Some(items) => {
                let mut seq = Seq {
                    items,
                    buffered: self.buffered,
                    count: 0,
                };
                let value = visitor.visit_seq(&mut seq)?;
                seq.end()?;
                Ok(value)
            }
            None => self.invalid_type(visitor),
        }
    }

    /// Visits `pairs` as a map; buffered, every entry must have been read.
    fn entries<'de, V: Visitor<'de>>(
        self,
        pairs: js_sys::IntoIter,
        visitor: V,
    ) -> Result<V::Value> {
        let mut map = Entries {
            pairs,
            buffered: self.buffered,
            value: None,
            count: 0,
        };
        let value = visitor.visit_map(&mut map)?;
        map.end()?;
        Ok(value)
    }

    /// A buffered struct's fields as a prototype-less object to read by name: an array's
    /// elements by position (exactly one per field), or a map-like value's entries, whose
    /// keys must be strings and whose values no field takes must be readable (`skip`: a key
    /// read already, the tag). `None` for any other value.
    fn buffered_fields(
        &self,
        fields: &'static [&'static str],
        skip: Option<&str>,
    ) -> Result<Option<JsValue>> {
        let object = bare_object();
        if Array::is_array(&self.value) {
            let items = self.value.unchecked_ref::<Array>();
            if items.length() as usize != fields.len() {
                return Err(de::Error::invalid_length(
                    items.length() as usize,
                    &format!("{} elements in sequence", fields.len()).as_str(),
                ));
            }
            for (i, name) in fields.iter().enumerate() {
                object.set(&JsValue::from_str(name), items.get(i as u32));
            }
        } else if self.is_map_like() {
            for pair in self.pairs()? {
                let pair = pair?.unchecked_into::<Array>();
                let (key, value) = (pair.get(0), pair.get(1));
                let Some(name) = key.as_string() else {
                    return Err(self.child(key).invalid(&"field identifier"));
                };
                if skip == Some(name.as_str()) {
                    continue;
                }
                if !fields.contains(&name.as_str()) {
                    check(value.clone())?;
                }
                object.set(&key, value);
            }
        } else {
            return Ok(None);
        }
        Ok(Some(object.into()))
    }
}

/// The elements of a JS iterable.
struct Seq {
    items: js_sys::IntoIter,
    buffered: bool,
    count: usize,
}

impl Seq {
    /// Buffered, elements left over are an error (as serde's buffered sequences have it).
    fn end(&mut self) -> Result<()> {
        let left = if self.buffered {
            (&mut self.items).count()
        } else {
            0
        };
        if left == 0 {
            return Ok(());
        }
        Err(de::Error::invalid_length(
            self.count + left,
            &format!("{} elements in sequence", self.count).as_str(),
        ))
    }
}

impl<'de> de::SeqAccess<'de> for &mut Seq {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        match self.items.next().transpose()? {
            Some(value) => {
                self.count += 1;
                let buffered = self.buffered;
                seed.deserialize(Deserializer { value, buffered }).map(Some)
            }
            None => Ok(None),
        }
    }
}

/// `[key, value]` pairs (a `Map`'s, or an object's `Object.entries`).
struct Entries {
    pairs: js_sys::IntoIter,
    buffered: bool,
    value: Option<JsValue>,
    count: usize,
}

impl Entries {
    /// Buffered, entries left over are an error (as serde's buffered maps have it).
    fn end(&mut self) -> Result<()> {
        let left = if self.buffered {
            (&mut self.pairs).count()
        } else {
            0
        };
        if left == 0 {
            return Ok(());
        }
        Err(de::Error::invalid_length(
            self.count + left,
            &format!("{} elements in map", self.count).as_str(),
        ))
    }
}

impl<'de> de::MapAccess<'de> for &mut Entries {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        match self.pairs.next().transpose()? {
            Some(pair) => {
                let pair = pair.unchecked_into::<Array>();
                self.value = Some(pair.get(1));
                self.count += 1;
                let buffered = self.buffered;
                seed.deserialize(Deserializer {
                    value: pair.get(0),
                    buffered,
                })
                .map(Some)
            }
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(Deserializer {
            value: self.value.take().unwrap_or_default(),
            buffered: self.buffered,
        })
    }
}

/// A struct's fields read by name, in declaration order: a field is missing when it is
/// `undefined` and not `in` the object; other properties are not read.
struct Fields {
    object: JsValue,
    names: std::slice::Iter<'static, &'static str>,
    buffered: bool,
    value: Option<JsValue>,
}

impl<'de> de::MapAccess<'de> for Fields {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        for &name in &mut self.names {
            let key = JsValue::from_str(name);
            let value = js_sys::Reflect::get(&self.object, &key)?;
            if !value.is_undefined() || key.js_in(&self.object) {
                self.value = Some(value);
                return seed.deserialize(name.into_deserializer()).map(Some);
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(Deserializer {
            value: self.value.take().unwrap_or_default(),
            buffered: self.buffered,
        })
    }
}

/// An externally tagged enum value: the variant's name and its payload (`undefined` for a
/// bare name).
struct Variant {
    tag: Deserializer,
    payload: Deserializer,
}

impl<'de> de::EnumAccess<'de> for Variant {
    type Error = Error;
    type Variant = Deserializer;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Deserializer)> {
        Ok((seed.deserialize(self.tag)?, self.payload))
    }
}

impl<'de> de::VariantAccess<'de> for Deserializer {
    type Error = Error;

    fn unit_variant(self) -> Result<()> {
        de::Deserialize::deserialize(self)
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, seed: T) -> Result<T::Value> {
        seed.deserialize(self)
    }

    fn tuple_variant<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value> {
        de::Deserializer::deserialize_tuple(self, len, visitor)
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        de::Deserializer::deserialize_struct(self, "", fields, visitor)
    }
}

impl<'de> de::Deserializer<'de> for Deserializer {
    type Error = Error;

    /// The self-describing reading: unit for `null`/`undefined`, then booleans, `BigInt`s
    /// (64-bit), numbers (integers when safe), strings, arrays, bytes, and map-like values
    /// as maps.
    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.is_nullish() {
            visitor.visit_unit()
        } else if let Some(b) = self.value.as_bool() {
            visitor.visit_bool(b)
        } else if self.value.is_bigint() {
            self.big_integer(visitor)
        } else if let Some(v) = self.value.as_f64() {
            match self.safe_integer() {
                Some(i) => visitor.visit_i64(i),
                None => visitor.visit_f64(v),
            }
        } else if let Some(s) = self.value.as_string() {
            visitor.visit_string(s)
        } else if Array::is_array(&self.value) {
            self.seq(visitor)
        } else if let Some(b) = self.bytes() {
            visitor.visit_byte_buf(b)
        } else if self.is_map_like() {
            let pairs = self.pairs()?;
            self.entries(pairs, visitor)
        } else {
            self.invalid_type(visitor)
        }
    }

    /// `null`/`undefined` (buffered, also an empty map-like value).
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.is_nullish()
            || (self.buffered && self.is_map_like() && self.pairs()?.next().is_none())
        {
            visitor.visit_unit()
        } else {
            self.invalid_type(visitor)
        }
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value.as_bool() {
            Some(b) => visitor.visit_bool(b),
            None => self.invalid_type(visitor),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        match self.value.as_f64() {
            Some(v) => visitor.visit_f64(v),
            None => self.invalid_type(visitor),
        }
    }

    fn deserialize_i8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.integer(visitor, true)
    }
    fn deserialize_i16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.integer(visitor, true)
    }
    fn deserialize_i32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.integer(visitor, true)
    }
    fn deserialize_u8<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.integer(visitor, false)
    }
    fn deserialize_u16<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.integer(visitor, false)
    }
    fn deserialize_u32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.integer(visitor, false)
    }

    /// Direct: a safe integer, or a `BigInt` in range.
    fn deserialize_i64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.buffered || !self.value.is_bigint() {
            return self.integer(visitor, true);
        }
        match i64::try_from(self.value) {
            Ok(v) => visitor.visit_i64(v),
            Err(_) => Err(de::Error::custom(
                "Couldn't deserialize i64 from a BigInt outside i64::MIN..i64::MAX bounds",
            )),
        }
    }

    /// Direct: a non-negative safe integer, or a `BigInt` in range.
    fn deserialize_u64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.buffered || !self.value.is_bigint() {
            return self.integer(visitor, false);
        }
        match u64::try_from(self.value) {
            Ok(v) => visitor.visit_u64(v),
            Err(_) => Err(de::Error::custom(
                "Couldn't deserialize u64 from a BigInt outside u64::MIN..u64::MAX bounds",
            )),
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_string(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_string(visitor)
    }

    /// A string (buffered, also bytes).
    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if let Some(s) = self.value.as_string() {
            return visitor.visit_string(s);
        }
        match self.bytes() {
            Some(b) if self.buffered => visitor.visit_byte_buf(b),
            _ => self.invalid_type(visitor),
        }
    }

    /// A name: a string (buffered, also bytes).
    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_string(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.deserialize_byte_buf(visitor)
    }

    /// A `Uint8Array`, an `ArrayBuffer`, or an array of numbers (buffered, also a string).
    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if let Some(b) = self.bytes() {
            visitor.visit_byte_buf(b)
        } else if Array::is_array(&self.value) {
            self.seq(visitor)
        } else {
            match self.value.as_string() {
                Some(s) if self.buffered => visitor.visit_string(s),
                _ => self.invalid_type(visitor),
            }
        }
    }

    /// `null`/`undefined` is `None`; anything else is `Some`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.is_nullish() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_newtype_struct(self)
    }

    /// Any JS iterable (buffered, an array).
    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        self.seq(visitor)
    }

    fn deserialize_tuple<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        self.seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value> {
        self.seq(visitor)
    }

    /// An iterable of `[key, value]` pairs or an object's own enumerable properties
    /// (buffered, a map-like value).
    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        // `try_iter` raises JS's TypeError for a primitive.
        let pairs = match js_sys::try_iter(&self.value)? {
            Some(pairs) if !self.buffered || self.value.has_type::<Map>() => pairs,
            None if self.value.is_object() => Object::entries(self.value.unchecked_ref())
                .values()
                .into_iter(),
            _ => return self.invalid_type(visitor),
        };
        self.entries(pairs, visitor)
    }

    /// The fields by name, from an object (buffered, see [`Self::buffered_fields`]).
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let object = if self.buffered {
            self.buffered_fields(fields, None)?
        } else {
            Some(self.value.clone()).filter(JsValue::is_object)
        };
        match object {
            Some(object) => visitor.visit_map(Fields {
                object,
                names: fields.iter(),
                buffered: self.buffered,
                value: None,
            }),
            None => self.invalid_type(visitor),
        }
    }

    /// `"variant"`, or `{ "variant": payload }`.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let pair = if self.value.is_string() {
            None
        } else if self.buffered && self.is_map_like() {
            let mut pairs = self.pairs()?;
            match (pairs.next().transpose()?, pairs.next()) {
                (Some(pair), None) => Some(pair.unchecked_into::<Array>()),
                _ => {
                    return Err(de::Error::invalid_value(
                        de::Unexpected::Map,
                        &"map with a single key",
                    ))
                }
            }
        } else if !self.buffered && self.value.is_object() {
            let entries = Object::entries(self.value.unchecked_ref());
            if entries.length() != 1 {
                return Err(de::Error::invalid_length(entries.length() as usize, &"1"));
            }
            Some(entries.get(0).unchecked_into::<Array>())
        } else if self.buffered {
            return Err(self.invalid(&"string or map"));
        } else {
            return self.invalid_type(visitor);
        };
        let variant = match pair {
            None => Variant {
                payload: self.child(JsValue::UNDEFINED),
                tag: self,
            },
            Some(pair) => Variant {
                tag: self.child(pair.get(0)),
                payload: self.child(pair.get(1)),
            },
        };
        visitor.visit_enum(variant)
    }

    /// Direct, ignored values are not even looked at; buffered, they must be readable.
    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.buffered {
            self.deserialize_any(visitor)
        } else {
            visitor.visit_unit()
        }
    }

    fn is_human_readable(&self) -> bool {
        true
    }
}

/// An internally tagged input (`{ "type": variant, ...fields }`, or `[variant, ...fields]`)
/// read as an externally tagged enum: the variant's name (direct), then its fields
/// (buffered). Only `deserialize_enum` is meaningful.
pub struct Tagged {
    value: JsValue,
    /// The tag's key (`type`).
    tag: &'static str,
    /// What a value of the wrong shape is told it should be.
    expecting: &'static str,
}

impl Tagged {
    /// An input whose variant is named by its `tag` field.
    pub fn new(value: JsValue, tag: &'static str, expecting: &'static str) -> Self {
        Tagged {
            value,
            tag,
            expecting,
        }
    }

    /// The variant's name and the input (for a map-like input) or the elements after the
    /// name (for an array).
    fn split(&self) -> Result<(JsValue, Deserializer)> {
        let input = Deserializer::buffered(self.value.clone());
        if Array::is_array(&input.value) {
            let items = input.value.unchecked_ref::<Array>();
            if items.length() == 0 {
                return Err(de::Error::missing_field(self.tag));
            }
            let rest = items.slice(1, items.length());
            return Ok((items.get(0), input.child(rest.into())));
        }
        if !input.is_map_like() {
            return Err(input.invalid(&self.expecting));
        }
        for pair in input.pairs()? {
            let pair = pair?.unchecked_into::<Array>();
            if pair.get(0).as_string().as_deref() == Some(self.tag) {
                return Ok((pair.get(1), input));
            }
        }
        Err(de::Error::missing_field(self.tag))
    }
}

/// A variant's fields: the input minus its tag, buffered.
struct Rest {
    input: Deserializer,
    tag: &'static str,
}

/// [`Tagged`] as the enum its mirror reads.
struct Access(Tagged);

impl<'de> de::EnumAccess<'de> for Access {
    type Error = Error;
    type Variant = Rest;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Rest)> {
        let (name, input) = self.0.split()?;
        let variant = seed.deserialize(Deserializer::from(name))?;
        let tag = self.0.tag;
        Ok((variant, Rest { input, tag }))
    }
}

impl<'de> de::VariantAccess<'de> for Rest {
    type Error = Error;

    /// Any other fields (which must be readable), but no element after the name.
    fn unit_variant(self) -> Result<()> {
        if Array::is_array(&self.input.value) {
            check(self.input.value.clone())?;
            let left = self.input.value.unchecked_ref::<Array>().length();
            if left > 0 {
                return Err(de::Error::invalid_length(
                    left as usize,
                    &"0 elements in sequence",
                ));
            }
        } else {
            self.input.buffered_fields(&[], Some(self.tag))?;
        }
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value> {
        Err(de::Error::invalid_type(
            de::Unexpected::NewtypeVariant,
            &"a unit or struct variant",
        ))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, visitor: V) -> Result<V::Value> {
        Err(de::Error::invalid_type(
            de::Unexpected::TupleVariant,
            &visitor,
        ))
    }

    /// The fields by name (an array's by position).
    fn struct_variant<V: Visitor<'de>>(
        self,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let object = self
            .input
            .buffered_fields(fields, Some(self.tag))?
            .unwrap_or_default();
        visitor.visit_map(Fields {
            object,
            names: fields.iter(),
            buffered: true,
            value: None,
        })
    }
}

impl<'de> de::Deserializer<'de> for Tagged {
    type Error = Error;

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        visitor.visit_enum(Access(self))
    }

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        Err(de::Error::invalid_type(de::Unexpected::Enum, &visitor))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct identifier
        ignored_any
    }
}
