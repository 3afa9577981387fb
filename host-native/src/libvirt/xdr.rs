//! The XDR subset of libvirt's remote protocol (RFC 4506 as `remote_protocol.x` uses it).
//!
//! Everything is big-endian in 4-byte units; variable-length data is a `u32` length, the
//! bytes, then zero padding to a multiple of 4. Decoding is bounds-checked and capped: a
//! length read from the peer is compared with its protocol limit *and* with the bytes that
//! are actually left before anything is allocated, so a hostile peer cannot make the decoder
//! allocate more than it sent. Nothing here panics on input.

use livemig_core::migration::flags::{ParamValue, Params, TypedParam};
use livemig_core::migration::orchestrator::DomainRef;

/// `REMOTE_STRING_MAX`: longest `remote_nonnull_string` (4 MiB).
pub const STRING_MAX: usize = 4 * 1024 * 1024;
/// `REMOTE_MIGRATE_COOKIE_MAX`: longest migration cookie (4 MiB).
pub const COOKIE_MAX: usize = 4 * 1024 * 1024;
/// `REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX`: most typed params in one migration call.
pub const PARAMS_MAX: usize = 64;
/// `REMOTE_DOMAIN_LIST_MAX`: most domains in one list.
pub const DOMAIN_LIST_MAX: usize = 16384;
/// `REMOTE_AUTH_TYPE_LIST_MAX`
pub const AUTH_TYPE_LIST_MAX: usize = 20;
/// `VIR_UUID_BUFLEN`
pub const UUID_LEN: usize = 16;

/// Why a value could not be encoded or decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum XdrError {
    /// The input ends before the value does.
    #[error("truncated XDR: {needed} bytes needed at offset {offset}, {available} left")]
    Truncated {
        /// Where the value starts.
        offset: usize,
        /// Bytes it needs.
        needed: u64,
        /// Bytes left.
        available: usize,
    },
    /// A length is over the protocol's limit.
    #[error("{what}: length {len} over the limit {max}")]
    TooLong {
        /// Which value.
        what: &'static str,
        /// The length found (or asked for).
        len: u64,
        /// The limit.
        max: usize,
    },
    /// Padding bytes after variable-length data are not zero.
    #[error("non-zero XDR padding at offset {offset}")]
    BadPadding {
        /// Where the padding starts.
        offset: usize,
    },
    /// A `bool` or optional-data discriminant is neither 0 nor 1.
    #[error("XDR bool/optional discriminant {value} at offset {offset} is not 0 or 1")]
    BadDiscriminant {
        /// Where it is.
        offset: usize,
        /// The value found.
        value: u32,
    },
    /// A string is not UTF-8.
    #[error("{what}: not UTF-8")]
    BadUtf8 {
        /// Which value.
        what: &'static str,
    },
    /// A `remote_typed_param_value` discriminant outside 1..=7.
    #[error("unknown typed parameter type {0}")]
    BadParamType(i32),
    /// A UUID that is not 32 hex digits (with optional dashes), when encoding.
    #[error("invalid UUID {0:?}")]
    BadUuid(String),
    /// Bytes left over after the value.
    #[error("{remaining} trailing bytes after the XDR value")]
    TrailingBytes {
        /// How many.
        remaining: usize,
    },
}

/// Pad length for `n` bytes of variable data.
const fn pad(n: usize) -> usize {
    (4 - n % 4) % 4
}

/// An XDR writer into a growable buffer.
#[derive(Clone, Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
}

impl Encoder {
    /// An empty encoder.
    pub fn new() -> Self {
        Encoder::default()
    }
    /// The bytes written so far.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
    /// The bytes written.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
    /// `unsigned int`
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// `int`
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// `unsigned hyper`
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// `hyper`
    pub fn i64(&mut self, v: i64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    /// `bool` (a 4-byte 0 or 1)
    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.u32(u32::from(v))
    }
    /// `opaque name[n]`: the bytes and their padding, no length.
    pub fn fixed_opaque(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self.buf.extend(std::iter::repeat_n(0u8, pad(v.len())));
        self
    }
    /// `opaque name<max>`
    pub fn opaque(
        &mut self,
        v: &[u8],
        max: usize,
        what: &'static str,
    ) -> Result<&mut Self, XdrError> {
        let len = u32::try_from(v.len())
            .ok()
            .filter(|&l| l as usize <= max)
            .ok_or(XdrError::TooLong {
                what,
                len: v.len() as u64,
                max,
            })?;
        self.u32(len);
        Ok(self.fixed_opaque(v))
    }
    /// `string name<max>`
    pub fn string(
        &mut self,
        v: &str,
        max: usize,
        what: &'static str,
    ) -> Result<&mut Self, XdrError> {
        self.opaque(v.as_bytes(), max, what)
    }
    /// `remote_string`: `remote_nonnull_string *` (a bool, then the string when present).
    pub fn remote_string(&mut self, v: Option<&str>) -> Result<&mut Self, XdrError> {
        match v {
            None => Ok(self.bool(false)),
            Some(s) => {
                self.bool(true);
                self.string(s, STRING_MAX, "remote_string")
            }
        }
    }
    /// Any [`Xdr`] value.
    pub fn put<T: Xdr>(&mut self, v: &T) -> Result<&mut Self, XdrError> {
        v.encode(self)?;
        Ok(self)
    }
}

/// A bounds-checked XDR reader over a byte slice.
#[derive(Clone, Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Decoder<'a> {
    /// A decoder at the start of `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Decoder { buf, pos: 0 }
    }
    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.pos
    }
    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }
    /// Fails unless every byte was consumed.
    pub fn finish(&self) -> Result<(), XdrError> {
        match self.remaining() {
            0 => Ok(()),
            remaining => Err(XdrError::TrailingBytes { remaining }),
        }
    }
    fn take(&mut self, n: u64) -> Result<&'a [u8], XdrError> {
        let available = self.remaining();
        if n > available as u64 {
            return Err(XdrError::Truncated {
                offset: self.pos,
                needed: n,
                available,
            });
        }
        // n <= available <= usize::MAX, so the cast is lossless.
        let n = n as usize;
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], XdrError> {
        let s = self.take(N as u64)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }
    /// `unsigned int`
    pub fn u32(&mut self) -> Result<u32, XdrError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    /// `int`
    pub fn i32(&mut self) -> Result<i32, XdrError> {
        Ok(i32::from_be_bytes(self.array()?))
    }
    /// `unsigned hyper`
    pub fn u64(&mut self) -> Result<u64, XdrError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    /// `hyper`
    pub fn i64(&mut self) -> Result<i64, XdrError> {
        Ok(i64::from_be_bytes(self.array()?))
    }
    /// `bool`: exactly 0 or 1.
    pub fn bool(&mut self) -> Result<bool, XdrError> {
        let offset = self.pos;
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            value => Err(XdrError::BadDiscriminant { offset, value }),
        }
    }
    fn padding(&mut self, n: usize) -> Result<(), XdrError> {
        let offset = self.pos;
        if self.take(pad(n) as u64)?.iter().any(|&b| b != 0) {
            return Err(XdrError::BadPadding { offset });
        }
        Ok(())
    }
    /// `opaque name[n]`: `n` bytes and their padding, borrowed.
    pub fn fixed_opaque(&mut self, n: usize) -> Result<&'a [u8], XdrError> {
        let s = self.take(n as u64)?;
        self.padding(n)?;
        Ok(s)
    }
    /// `opaque name<max>`, borrowed. The length is checked against `max` and against the
    /// bytes left before anything else happens.
    pub fn opaque_ref(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], XdrError> {
        let len = self.u32()?;
        if len as u64 > max as u64 {
            return Err(XdrError::TooLong {
                what,
                len: u64::from(len),
                max,
            });
        }
        self.fixed_opaque(len as usize)
    }
    /// `opaque name<max>`, copied (only after it is known to be there).
    pub fn opaque(&mut self, max: usize, what: &'static str) -> Result<Vec<u8>, XdrError> {
        Ok(self.opaque_ref(max, what)?.to_vec())
    }
    /// `string name<max>` (UTF-8).
    pub fn string(&mut self, max: usize, what: &'static str) -> Result<String, XdrError> {
        let b = self.opaque_ref(max, what)?;
        std::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| XdrError::BadUtf8 { what })
    }
    /// `remote_string` (optional `remote_nonnull_string`).
    pub fn remote_string(&mut self) -> Result<Option<String>, XdrError> {
        if self.bool()? {
            Ok(Some(self.string(STRING_MAX, "remote_string")?))
        } else {
            Ok(None)
        }
    }
    /// Any [`Xdr`] value.
    pub fn get<T: Xdr>(&mut self) -> Result<T, XdrError> {
        T::decode(self)
    }
    /// A variable-length array `T name<max>`: the count is checked against `max` and
    /// against the bytes left (every element takes at least 4) before allocating.
    pub fn array_of<T: Xdr>(&mut self, max: usize, what: &'static str) -> Result<Vec<T>, XdrError> {
        let offset = self.pos;
        let n = self.u32()?;
        if n as u64 > max as u64 {
            return Err(XdrError::TooLong {
                what,
                len: u64::from(n),
                max,
            });
        }
        let n = n as usize;
        let available = self.remaining();
        if n.saturating_mul(4) > available {
            return Err(XdrError::Truncated {
                offset,
                needed: n as u64 * 4,
                available,
            });
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(T::decode(self)?);
        }
        Ok(v)
    }
}

/// A value with an XDR form.
pub trait Xdr: Sized {
    /// Append the XDR form.
    fn encode(&self, e: &mut Encoder) -> Result<(), XdrError>;
    /// Read one value.
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError>;
}

/// Encode one value into a fresh buffer.
pub fn to_bytes<T: Xdr>(v: &T) -> Result<Vec<u8>, XdrError> {
    let mut e = Encoder::new();
    v.encode(&mut e)?;
    Ok(e.into_bytes())
}

/// Decode exactly one value: trailing bytes are an error.
pub fn from_bytes<T: Xdr>(b: &[u8]) -> Result<T, XdrError> {
    let mut d = Decoder::new(b);
    let v = T::decode(&mut d)?;
    d.finish()?;
    Ok(v)
}

/// The void type (procedures without arguments or results).
impl Xdr for () {
    fn encode(&self, _: &mut Encoder) -> Result<(), XdrError> {
        Ok(())
    }
    fn decode(_: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(())
    }
}

macro_rules! xdr_prim {
    ($($t:ty => $m:ident),*) => {$(
        impl Xdr for $t {
            fn encode(&self, e: &mut Encoder) -> Result<(), XdrError> {
                e.$m(*self);
                Ok(())
            }
            fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
                d.$m()
            }
        }
    )*};
}
xdr_prim!(u32 => u32, i32 => i32, u64 => u64, i64 => i64, bool => bool);

/// `remote_nonnull_string` (`string<REMOTE_STRING_MAX>`).
impl Xdr for String {
    fn encode(&self, e: &mut Encoder) -> Result<(), XdrError> {
        e.string(self, STRING_MAX, "remote_nonnull_string")?;
        Ok(())
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        d.string(STRING_MAX, "remote_nonnull_string")
    }
}

/// `opaque<REMOTE_MIGRATE_COOKIE_MAX>`: the only variable opaque these calls carry.
impl Xdr for Vec<u8> {
    fn encode(&self, e: &mut Encoder) -> Result<(), XdrError> {
        e.opaque(self, COOKIE_MAX, "cookie")?;
        Ok(())
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        d.opaque(COOKIE_MAX, "cookie")
    }
}

/// `opaque[16]` (`remote_uuid`).
impl Xdr for [u8; UUID_LEN] {
    fn encode(&self, e: &mut Encoder) -> Result<(), XdrError> {
        e.fixed_opaque(self);
        Ok(())
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        let s = d.fixed_opaque(UUID_LEN)?;
        let mut a = [0u8; UUID_LEN];
        a.copy_from_slice(s);
        Ok(a)
    }
}

/// XDR optional data (`T *`): `remote_string`, `remote_domain`, `remote_network`.
impl<T: Xdr> Xdr for Option<T> {
    fn encode(&self, e: &mut Encoder) -> Result<(), XdrError> {
        e.bool(self.is_some());
        match self {
            Some(v) => v.encode(e),
            None => Ok(()),
        }
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        if d.bool()? {
            Ok(Some(T::decode(d)?))
        } else {
            Ok(None)
        }
    }
}

/// Parse a UUID's text (32 hex digits; dashes anywhere are ignored, as `virUUIDParse` does).
pub fn parse_uuid(s: &str) -> Result<[u8; UUID_LEN], XdrError> {
    let bad = || XdrError::BadUuid(s.chars().take(64).collect());
    let mut out = [0u8; UUID_LEN];
    let mut n = 0usize;
    for c in s.chars().filter(|&c| c != '-') {
        let v = c.to_digit(16).ok_or_else(bad)? as u8;
        if n >= 2 * UUID_LEN {
            return Err(bad());
        }
        out[n / 2] |= if n & 1 == 0 { v << 4 } else { v };
        n += 1;
    }
    if n != 2 * UUID_LEN {
        return Err(bad());
    }
    Ok(out)
}

/// A UUID in its canonical text form (`8-4-4-4-12`, lower case).
pub fn format_uuid(u: &[u8; UUID_LEN]) -> String {
    let mut s = String::with_capacity(36);
    for (i, b) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// `remote_nonnull_domain {remote_nonnull_string name; remote_uuid uuid; int id}`; the UUID
/// crosses as 16 bytes and is held as canonical text.
impl Xdr for DomainRef {
    fn encode(&self, e: &mut Encoder) -> Result<(), XdrError> {
        let uuid = parse_uuid(&self.uuid)?;
        e.string(&self.name, STRING_MAX, "domain name")?;
        e.fixed_opaque(&uuid).i32(self.id);
        Ok(())
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        let name = d.string(STRING_MAX, "domain name")?;
        let uuid: [u8; UUID_LEN] = d.get()?;
        let id = d.i32()?;
        Ok(DomainRef {
            name,
            uuid: format_uuid(&uuid),
            id,
        })
    }
}

/// `remote_nonnull_network {name; uuid}` (only inside `remote_error`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetworkRef {
    /// Network name.
    pub name: String,
    /// Its UUID bytes.
    pub uuid: [u8; UUID_LEN],
}

impl Xdr for NetworkRef {
    fn encode(&self, e: &mut Encoder) -> Result<(), XdrError> {
        e.put(&self.name)?.put(&self.uuid)?;
        Ok(())
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(NetworkRef {
            name: d.get()?,
            uuid: d.get()?,
        })
    }
}

/// `remote_typed_param {remote_nonnull_string field; remote_typed_param_value value}` where
/// the value is a union switched by `int type` (1 INT, 2 UINT, 3 LLONG, 4 ULLONG, 5 DOUBLE,
/// 6 BOOLEAN as int, 7 STRING).
impl Xdr for TypedParam {
    fn encode(&self, e: &mut Encoder) -> Result<(), XdrError> {
        e.string(&self.field, STRING_MAX, "typed param field")?;
        match &self.value {
            ParamValue::Int(v) => {
                e.i32(1).i32(*v);
            }
            ParamValue::Uint(v) => {
                e.i32(2).u32(*v);
            }
            ParamValue::Llong(v) => {
                e.i32(3).i64(*v);
            }
            ParamValue::Ullong(v) => {
                e.i32(4).u64(*v);
            }
            ParamValue::DoubleBits(v) => {
                e.i32(5).u64(*v);
            }
            ParamValue::Boolean(v) => {
                e.i32(6).i32(i32::from(*v));
            }
            ParamValue::String(v) => {
                e.i32(7).string(v, STRING_MAX, "typed param string")?;
            }
        }
        Ok(())
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        let field = d.string(STRING_MAX, "typed param field")?;
        let value = match d.i32()? {
            1 => ParamValue::Int(d.i32()?),
            2 => ParamValue::Uint(d.u32()?),
            3 => ParamValue::Llong(d.i64()?),
            4 => ParamValue::Ullong(d.u64()?),
            5 => ParamValue::DoubleBits(d.u64()?),
            // libvirt decodes the int as C truth (`b != 0`).
            6 => ParamValue::Boolean(d.i32()? != 0),
            7 => ParamValue::String(d.string(STRING_MAX, "typed param string")?),
            t => return Err(XdrError::BadParamType(t)),
        };
        Ok(TypedParam { field, value })
    }
}

/// `remote_typed_param params<REMOTE_DOMAIN_MIGRATE_PARAM_LIST_MAX>` (64).
impl Xdr for Params {
    fn encode(&self, e: &mut Encoder) -> Result<(), XdrError> {
        let n = self.0.len();
        if n > PARAMS_MAX {
            return Err(XdrError::TooLong {
                what: "typed params",
                len: n as u64,
                max: PARAMS_MAX,
            });
        }
        e.u32(n as u32);
        for p in &self.0 {
            p.encode(e)?;
        }
        Ok(())
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(Params(d.array_of(PARAMS_MAX, "typed params")?))
    }
}

/// `remote_error`: the body of a reply with status ERROR.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WireError {
    /// `virErrorNumber`
    pub code: i32,
    /// `virErrorDomain`
    pub domain: i32,
    /// The message (`remote_string`).
    pub message: Option<String>,
    /// `virErrorLevel`
    pub level: i32,
    /// `remote_domain dom` (unused by libvirt, always NULL in practice).
    pub dom: Option<DomainRef>,
    /// `str1`
    pub str1: Option<String>,
    /// `str2`
    pub str2: Option<String>,
    /// `str3`
    pub str3: Option<String>,
    /// `int1`
    pub int1: i32,
    /// `int2`
    pub int2: i32,
    /// `remote_network net` (unused).
    pub net: Option<NetworkRef>,
}

impl Xdr for WireError {
    fn encode(&self, e: &mut Encoder) -> Result<(), XdrError> {
        e.i32(self.code).i32(self.domain);
        e.put(&self.message)?.i32(self.level);
        e.put(&self.dom)?
            .put(&self.str1)?
            .put(&self.str2)?
            .put(&self.str3)?;
        e.i32(self.int1).i32(self.int2).put(&self.net)?;
        Ok(())
    }
    fn decode(d: &mut Decoder<'_>) -> Result<Self, XdrError> {
        Ok(WireError {
            code: d.i32()?,
            domain: d.i32()?,
            message: d.get()?,
            level: d.i32()?,
            dom: d.get()?,
            str1: d.get()?,
            str2: d.get()?,
            str3: d.get()?,
            int1: d.i32()?,
            int2: d.i32()?,
            net: d.get()?,
        })
    }
}

impl WireError {
    /// A minimal error as libvirtd sends it (level ERROR = 2, no extra fields).
    pub fn new(code: i32, domain: i32, message: impl Into<String>) -> Self {
        WireError {
            code,
            domain,
            message: Some(message.into()),
            level: 2,
            ..WireError::default()
        }
    }
    /// The fields the orchestrator uses (a missing message becomes empty).
    pub fn to_remote_error(&self) -> livemig_core::migration::error::RemoteError {
        livemig_core::migration::error::RemoteError::new(
            self.code,
            self.domain,
            self.message.clone().unwrap_or_default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn string_is_padded_and_round_trips() {
        let b = to_bytes(&"qemu:///system".to_owned()).unwrap();
        assert_eq!(
            b,
            [
                0, 0, 0, 14, b'q', b'e', b'm', b'u', b':', b'/', b'/', b'/', b's', b'y', b's',
                b't', b'e', b'm', 0, 0
            ]
        );
        assert_eq!(from_bytes::<String>(&b).unwrap(), "qemu:///system");
    }

    #[test]
    fn remote_string_none_is_one_zero_word() {
        assert_eq!(to_bytes::<Option<String>>(&None).unwrap(), [0, 0, 0, 0]);
    }

    #[test]
    fn huge_length_is_rejected_before_allocating() {
        // Claims a 4 GiB - 1 string with 4 bytes behind it.
        let b = [0xff, 0xff, 0xff, 0xff, b'a', b'b', b'c', b'd'];
        assert!(matches!(
            from_bytes::<String>(&b),
            Err(XdrError::TooLong {
                len: 0xffff_ffff,
                ..
            })
        ));
        // Under the cap but longer than what is left.
        let b = [0, 0x10, 0, 0, b'a'];
        assert!(matches!(
            from_bytes::<String>(&b),
            Err(XdrError::Truncated {
                needed: 0x10_0000,
                available: 1,
                ..
            })
        ));
    }

    #[test]
    fn params_count_is_capped() {
        let b = 65u32.to_be_bytes();
        assert!(matches!(
            from_bytes::<Params>(&b),
            Err(XdrError::TooLong {
                len: 65,
                max: 64,
                ..
            })
        ));
        let b = 64u32.to_be_bytes();
        assert!(matches!(
            from_bytes::<Params>(&b),
            Err(XdrError::Truncated { .. })
        ));
        let too_many = Params(
            (0..65)
                .map(|i| TypedParam {
                    field: format!("p{i}"),
                    value: ParamValue::Int(i),
                })
                .collect(),
        );
        assert!(matches!(
            to_bytes(&too_many),
            Err(XdrError::TooLong { len: 65, .. })
        ));
    }

    #[test]
    fn nonzero_padding_and_bad_bool_are_errors() {
        let b = [0, 0, 0, 1, b'a', 0, 1, 0];
        assert_eq!(
            from_bytes::<String>(&b),
            Err(XdrError::BadPadding { offset: 5 })
        );
        assert_eq!(
            from_bytes::<Option<String>>(&[0, 0, 0, 2]),
            Err(XdrError::BadDiscriminant {
                offset: 0,
                value: 2
            })
        );
    }

    #[test]
    fn typed_param_layouts() {
        let p = TypedParam {
            field: "bandwidth".into(),
            value: ParamValue::Ullong(0x0102_0304_0506_0708),
        };
        let b = to_bytes(&p).unwrap();
        assert_eq!(&b[..4], &[0, 0, 0, 9]);
        assert_eq!(&b[16..20], &[0, 0, 0, 4]);
        assert_eq!(&b[20..], &[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut bad = b.clone();
        bad[19] = 8;
        assert_eq!(
            from_bytes::<TypedParam>(&bad),
            Err(XdrError::BadParamType(8))
        );
    }

    #[test]
    fn uuid_text_round_trip() {
        let u = parse_uuid("7e1e7e1e-0000-4000-8000-000000000001").unwrap();
        assert_eq!(u[0], 0x7e);
        assert_eq!(u[15], 1);
        assert_eq!(format_uuid(&u), "7e1e7e1e-0000-4000-8000-000000000001");
        assert_eq!(parse_uuid("7E1E7E1E000040008000000000000001").unwrap(), u);
        assert!(parse_uuid("7e1e").is_err());
        assert!(parse_uuid("7e1e7e1e-0000-4000-8000-0000000000011").is_err());
        assert!(parse_uuid("xe1e7e1e-0000-4000-8000-000000000001").is_err());
    }

    #[test]
    fn domain_layout() {
        let d = DomainRef {
            name: "tiny".into(),
            uuid: "7e1e7e1e-0000-4000-8000-000000000001".into(),
            id: 3,
        };
        let b = to_bytes(&d).unwrap();
        assert_eq!(b.len(), 4 + 4 + 16 + 4);
        assert_eq!(&b[24..], &[0, 0, 0, 3]);
        assert_eq!(from_bytes::<DomainRef>(&b).unwrap(), d);
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        assert_eq!(
            from_bytes::<u32>(&[0, 0, 0, 1, 0]),
            Err(XdrError::TrailingBytes { remaining: 1 })
        );
    }
}
