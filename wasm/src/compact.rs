//! A serializer adapter that reports `is_human_readable() == false` at every depth.
//!
//! `livemig_core::bytes::Bytes` writes base64 text to human-readable formats (JSON, traces)
//! and raw bytes to compact ones. serde-wasm-bindgen calls itself human-readable, so the
//! object API wraps it in [`Compact`]: every `Bytes` then reaches serde-wasm-bindgen's
//! `serialize_bytes` and becomes a `Uint8Array`, and nothing else changes.

use serde::ser::{self, Serialize, Serializer};

/// Serializes a value through [`Compact`] (how nested values keep the adapter).
pub struct Wrap<'a, T: ?Sized>(pub &'a T);

impl<T: ?Sized + Serialize> Serialize for Wrap<'_, T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(Compact(s))
    }
}

/// The adapter: delegates everything to the inner serializer (or compound), wrapping every
/// nested value in [`Wrap`].
pub struct Compact<S>(pub S);

macro_rules! forward {
    ($($method:ident($ty:ty);)*) => {
        $(fn $method(self, v: $ty) -> Result<S::Ok, S::Error> {
            self.0.$method(v)
        })*
    };
}

impl<S: Serializer> Serializer for Compact<S> {
    type Ok = S::Ok;
    type Error = S::Error;
    type SerializeSeq = Compact<S::SerializeSeq>;
    type SerializeTuple = Compact<S::SerializeTuple>;
    type SerializeTupleStruct = Compact<S::SerializeTupleStruct>;
    type SerializeTupleVariant = Compact<S::SerializeTupleVariant>;
    type SerializeMap = Compact<S::SerializeMap>;
    type SerializeStruct = Compact<S::SerializeStruct>;
    type SerializeStructVariant = Compact<S::SerializeStructVariant>;

    fn is_human_readable(&self) -> bool {
        false
    }

    forward! {
        serialize_bool(bool);
        serialize_i8(i8);
        serialize_i16(i16);
        serialize_i32(i32);
        serialize_i64(i64);
        serialize_i128(i128);
        serialize_u8(u8);
        serialize_u16(u16);
        serialize_u32(u32);
        serialize_u64(u64);
        serialize_u128(u128);
        serialize_f32(f32);
        serialize_f64(f64);
        serialize_char(char);
        serialize_str(&str);
        serialize_bytes(&[u8]);
        serialize_unit_struct(&'static str);
    }

    fn serialize_none(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_none()
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> Result<S::Ok, S::Error> {
        self.0.serialize_some(&Wrap(v))
    }
    fn serialize_unit(self) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit()
    }
    fn serialize_unit_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_unit_variant(name, index, variant)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        v: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0.serialize_newtype_struct(name, &Wrap(v))
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        v: &T,
    ) -> Result<S::Ok, S::Error> {
        self.0
            .serialize_newtype_variant(name, index, variant, &Wrap(v))
    }
    fn serialize_seq(self, len: Option<usize>) -> Result<Self::SerializeSeq, S::Error> {
        self.0.serialize_seq(len).map(Compact)
    }
    fn serialize_tuple(self, len: usize) -> Result<Self::SerializeTuple, S::Error> {
        self.0.serialize_tuple(len).map(Compact)
    }
    fn serialize_tuple_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleStruct, S::Error> {
        self.0.serialize_tuple_struct(name, len).map(Compact)
    }
    fn serialize_tuple_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeTupleVariant, S::Error> {
        self.0
            .serialize_tuple_variant(name, index, variant, len)
            .map(Compact)
    }
    fn serialize_map(self, len: Option<usize>) -> Result<Self::SerializeMap, S::Error> {
        self.0.serialize_map(len).map(Compact)
    }
    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, S::Error> {
        self.0.serialize_struct(name, len).map(Compact)
    }
    fn serialize_struct_variant(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStructVariant, S::Error> {
        self.0
            .serialize_struct_variant(name, index, variant, len)
            .map(Compact)
    }
}

/// The compound serializers: each element, field, key or value goes in wrapped, `end` and
/// `skip_field` pass straight through.
macro_rules! compound {
    ($trait:ident { $($method:ident($($key:ident: $key_ty:ty),*);)* } $($extra:item)*) => {
        impl<S: ser::$trait> ser::$trait for Compact<S> {
            type Ok = S::Ok;
            type Error = S::Error;
            $(fn $method<T: ?Sized + Serialize>(
                &mut self,
                $($key: $key_ty,)*
                v: &T,
            ) -> Result<(), S::Error> {
                self.0.$method($($key,)* &Wrap(v))
            })*
            $($extra)*
            fn end(self) -> Result<S::Ok, S::Error> {
                self.0.end()
            }
        }
    };
}

compound!(SerializeSeq { serialize_element(); });
compound!(SerializeTuple { serialize_element(); });
compound!(SerializeTupleStruct { serialize_field(); });
compound!(SerializeTupleVariant { serialize_field(); });
compound!(SerializeMap { serialize_key(); serialize_value(); });
compound!(SerializeStruct { serialize_field(key: &'static str); }
fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
    self.0.skip_field(key)
});
compound!(SerializeStructVariant { serialize_field(key: &'static str); }
fn skip_field(&mut self, key: &'static str) -> Result<(), S::Error> {
    self.0.skip_field(key)
});

#[cfg(test)]
mod tests {
    use super::*;
    use livemig_core::bytes::Bytes;
    use livemig_core::spice::session::{ChannelRef, ConnId, SessionAction, SessionEvent};

    fn compact_json<T: Serialize>(v: &T) -> String {
        let mut out = Vec::new();
        let mut ser = serde_json::Serializer::new(&mut out);
        v.serialize(Compact(&mut ser)).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn bytes_nested_in_tagged_enums_become_raw_bytes() {
        // serde_json writes raw bytes as an array of numbers: proof that `Bytes` saw a
        // compact serializer, however deep it sits.
        let a = SessionAction::Transmit {
            conn: ConnId(3),
            bytes: Bytes(vec![1, 2, 255]),
        };
        assert_eq!(
            compact_json(&a),
            r#"{"type":"transmit","conn":3,"bytes":[1,2,255]}"#
        );
        let e = SessionAction::Event(SessionEvent::Message {
            channel: ChannelRef::MAIN,
            msg_type: 7,
            body: Bytes(vec![9]),
        });
        assert_eq!(
            compact_json(&e),
            r#"{"type":"event","event":"message","channel":{"type":"main","id":0},"msg_type":7,"body":[9]}"#
        );
        // Everything else is unchanged: the plain serializer gives the same shape with base64.
        assert_eq!(
            serde_json::to_string(&a).unwrap(),
            r#"{"type":"transmit","conn":3,"bytes":"AQL/"}"#
        );
    }
}
