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
//! a buffer, so serde's `Content` machinery (a fifth of the module) is not needed. Structs
//! are read by field name either way (a buffered array by position), so the derived
//! visitors are instantiated for one kind of map access each.

use js_sys::{Array, ArrayBuffer, Map, Number, Object, Symbol, Uint8Array};
use serde::de::{self, DeserializeSeed, IgnoredAny, IntoDeserializer, Visitor};
use wasm_bindgen::{JsCast, JsValue};

use super::Error;

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

/// Checks that a buffered value is readable (as buffering it had to be).
fn check(value: JsValue) -> Result<()> {
    de::Deserializer::deserialize_any(Deserializer::buffered(value), IgnoredAny).map(drop)
}

/// "N elements in a sequence" (or a map): what a length error expected.
struct Elements(usize, &'static str);

impl de::Expected for Elements {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            1 => write!(f, "1 element in {}", self.1),
            n => write!(f, "{n} elements in {}", self.1),
        }
    }
}

/// A buffered struct's named values (`Err` keys are a `Map`'s keys that are not strings).
type Named = Vec<(std::result::Result<String, JsValue>, JsValue)>;

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
    fn pairs(&self) -> Array {
        if self.value.has_type::<Map>() {
            Array::from(&self.value)
        } else {
            Object::entries(self.value.unchecked_ref())
        }
    }

    /// The items of an iterable, in an array (`None` if it is not iterable; JS's TypeError
    /// for a primitive).
    fn items(&self) -> Result<Option<Array>> {
        if Array::is_array(&self.value) {
            return Ok(Some(self.value.clone().unchecked_into()));
        }
        let Some(iter) = js_sys::try_iter(&self.value)? else {
            return Ok(None);
        };
        let items = Array::new();
        for item in iter {
            items.push(&item?);
        }
        Ok(Some(items))
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
            match self.safe_integer() {
                Some(i) => de::Unexpected::Signed(i),
                None => de::Unexpected::Float(v),
            }
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
        let items = if self.buffered && !Array::is_array(&self.value) {
            None
        } else {
            self.items()?
        };
        let Some(items) = items else {
            return self.invalid_type(visitor);
        };
        let mut seq = Seq {
            length: items.length(),
            items,
            index: 0,
            buffered: self.buffered,
        };
        let value = visitor.visit_seq(&mut seq)?;
        seq.end()?;
        Ok(value)
    }

    /// Visits `[key, value]` pairs as a map; buffered, every entry must have been read.
    fn entries<'de, V: Visitor<'de>>(self, pairs: Array, visitor: V) -> Result<V::Value> {
        let mut map = Entries {
            length: pairs.length(),
            pairs,
            index: 0,
            buffered: self.buffered,
            value: None,
        };
        let value = visitor.visit_map(&mut map)?;
        map.end()?;
        Ok(value)
    }

    /// A buffered struct's values by field name: an array's elements by position (exactly
    /// one per field), or a map-like value's entries, whose values no field takes must be
    /// readable (`skip`: a key read already, the tag) and whose keys must be strings if
    /// there are fields. `None` for any other value.
    fn named(&self, fields: &'static [&'static str], skip: Option<&str>) -> Result<Option<Named>> {
        if Array::is_array(&self.value) {
            let items = self.value.unchecked_ref::<Array>();
            if items.length() as usize != fields.len() {
                return Err(de::Error::invalid_length(
                    items.length() as usize,
                    &Elements(fields.len(), "sequence"),
                ));
            }
            let named = fields.iter().zip(0..);
            return Ok(Some(
                named
                    .map(|(name, i)| (Ok(name.to_string()), items.get(i)))
                    .collect(),
            ));
        }
        if !self.is_map_like() {
            return Ok(None);
        }
        let pairs = self.pairs();
        let mut named = Vec::with_capacity(pairs.length() as usize);
        for i in 0..pairs.length() {
            let pair = pairs.get(i).unchecked_into::<Array>();
            let (key, value) = (pair.get(0), pair.get(1));
            let key = key.as_string().ok_or(key);
            if skip.is_some() && key.as_deref().ok() == skip {
                continue;
            }
            match &key {
                Ok(name) if fields.contains(&name.as_str()) => {}
                Ok(_) => check(value.clone())?,
                Err(other) => {
                    // A `Map`'s key that names no field: readable, and then only ignored by
                    // a unit variant (no field).
                    check(other.clone())?;
                    check(value.clone())?;
                    if !fields.is_empty() {
                        return Err(self.child(other.clone()).invalid(&"field identifier"));
                    }
                }
            }
            named.push((key, value));
        }
        Ok(Some(named))
    }
}

/// The elements of a JS array.
struct Seq {
    items: Array,
    index: u32,
    length: u32,
    buffered: bool,
}

impl Seq {
    /// Buffered, elements left over are an error (as serde's buffered sequences have it).
    fn end(&self) -> Result<()> {
        if !self.buffered || self.index >= self.length {
            return Ok(());
        }
        Err(de::Error::invalid_length(
            self.length as usize,
            &Elements(self.index as usize, "sequence"),
        ))
    }
}

impl<'de> de::SeqAccess<'de> for &mut Seq {
    type Error = Error;

    fn next_element_seed<T: DeserializeSeed<'de>>(&mut self, seed: T) -> Result<Option<T::Value>> {
        if self.index >= self.length {
            return Ok(None);
        }
        let value = self.items.get(self.index);
        self.index += 1;
        let buffered = self.buffered;
        seed.deserialize(Deserializer { value, buffered }).map(Some)
    }

    fn size_hint(&self) -> Option<usize> {
        Some((self.length - self.index) as usize)
    }
}

/// `[key, value]` pairs (a `Map`'s, or an object's `Object.entries`).
struct Entries {
    pairs: Array,
    index: u32,
    length: u32,
    buffered: bool,
    value: Option<JsValue>,
}

impl Entries {
    /// Buffered, entries left over are an error (as serde's buffered maps have it).
    fn end(&self) -> Result<()> {
        if !self.buffered || self.index >= self.length {
            return Ok(());
        }
        Err(de::Error::invalid_length(
            self.length as usize,
            &Elements(self.index as usize, "map"),
        ))
    }
}

impl<'de> de::MapAccess<'de> for &mut Entries {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        if self.index >= self.length {
            return Ok(None);
        }
        let pair = self.pairs.get(self.index).unchecked_into::<Array>();
        self.index += 1;
        self.value = Some(pair.get(1));
        let buffered = self.buffered;
        seed.deserialize(Deserializer {
            value: pair.get(0),
            buffered,
        })
        .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(Deserializer {
            value: self.value.take().unwrap_or_default(),
            buffered: self.buffered,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some((self.length - self.index) as usize)
    }
}

/// Where a struct's fields are read from.
enum Source {
    /// Direct: an object's properties, by name (a field is missing when it is `undefined`
    /// and not `in` the object).
    Object(JsValue),
    /// Buffered: the values by name.
    Named(Named),
}

/// A struct's fields, in declaration order; other properties are not read.
struct Fields {
    source: Source,
    names: std::slice::Iter<'static, &'static str>,
    value: Option<JsValue>,
}

impl Fields {
    fn new(source: Source, fields: &'static [&'static str]) -> Self {
        Fields {
            source,
            names: fields.iter(),
            value: None,
        }
    }

    /// The next field present, its value kept for `next_value_seed` (not generic: one copy
    /// for every struct).
    fn next_field(&mut self) -> Result<Option<&'static str>> {
        for &name in &mut self.names {
            let value = match &mut self.source {
                Source::Object(object) => {
                    let key = super::name(name);
                    let value = js_sys::Reflect::get(object, &key)?;
                    (!value.is_undefined() || key.js_in(object)).then_some(value)
                }
                Source::Named(named) => named
                    .iter()
                    .position(|(key, _)| key.as_deref() == Ok(name))
                    .map(|i| named.swap_remove(i).1),
            };
            if value.is_some() {
                self.value = value;
                return Ok(Some(name));
            }
        }
        Ok(None)
    }
}

impl<'de> de::MapAccess<'de> for Fields {
    type Error = Error;

    fn next_key_seed<K: DeserializeSeed<'de>>(&mut self, seed: K) -> Result<Option<K::Value>> {
        match self.next_field()? {
            Some(name) => seed.deserialize(name.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value> {
        seed.deserialize(Deserializer {
            value: self.value.take().unwrap_or_default(),
            buffered: matches!(self.source, Source::Named(_)),
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
            let pairs = self.pairs();
            self.entries(pairs, visitor)
        } else {
            self.invalid_type(visitor)
        }
    }

    /// `null`/`undefined` (buffered, also an empty map-like value).
    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value> {
        if self.is_nullish() || (self.buffered && self.is_map_like() && self.pairs().length() == 0)
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
        let pairs = if self.buffered {
            self.is_map_like().then(|| self.pairs())
        } else {
            match self.items()? {
                Some(pairs) => Some(pairs),
                None if self.value.is_object() => Some(Object::entries(self.value.unchecked_ref())),
                None => None,
            }
        };
        match pairs {
            Some(pairs) => self.entries(pairs, visitor),
            None => self.invalid_type(visitor),
        }
    }

    /// The fields by name, from an object (buffered: an array by position, or a map-like
    /// value whose other values must be readable).
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value> {
        let source = if self.buffered {
            self.named(fields, None)?.map(Source::Named)
        } else {
            Some(Source::Object(self.value.clone())).filter(|_| self.value.is_object())
        };
        match source {
            Some(source) => visitor.visit_map(Fields::new(source, fields)),
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
            let pairs = self.pairs();
            if pairs.length() != 1 {
                return Err(de::Error::invalid_value(
                    de::Unexpected::Map,
                    &"map with a single key",
                ));
            }
            Some(pairs.get(0).unchecked_into::<Array>())
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

    /// The variant's name, and the input (map-like) or the elements after the name (array).
    fn split(self) -> Result<(JsValue, Deserializer)> {
        let input = Deserializer::buffered(self.value);
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
        let pairs = input.pairs();
        for i in 0..pairs.length() {
            let pair = pairs.get(i).unchecked_into::<Array>();
            if pair.get(0).as_string().as_deref() == Some(self.tag) {
                return Ok((pair.get(1), input));
            }
        }
        Err(de::Error::missing_field(self.tag))
    }
}

/// [`Tagged`] as the enum its mirror reads.
struct Access(Tagged);

/// A variant's fields: the input minus its tag, buffered.
struct Rest {
    input: Deserializer,
    tag: &'static str,
}

impl<'de> de::EnumAccess<'de> for Access {
    type Error = Error;
    type Variant = Rest;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Rest)> {
        let tag = self.0.tag;
        let (name, input) = self.0.split()?;
        let variant = seed.deserialize(Deserializer::from(name))?;
        Ok((variant, Rest { input, tag }))
    }
}

impl<'de> de::VariantAccess<'de> for Rest {
    type Error = Error;

    /// Any other fields (which must be readable), but no element after the name.
    fn unit_variant(self) -> Result<()> {
        if !Array::is_array(&self.input.value) {
            self.input.named(&[], Some(self.tag))?;
            return Ok(());
        }
        check(self.input.value.clone())?;
        match self.input.value.unchecked_ref::<Array>().length() {
            0 => Ok(()),
            left => Err(de::Error::invalid_length(
                left as usize,
                &Elements(0, "sequence"),
            )),
        }
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
        let named = self
            .input
            .named(fields, Some(self.tag))?
            .unwrap_or_default();
        visitor.visit_map(Fields::new(Source::Named(named), fields))
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
