//! A bounds-checked little-endian reader over a body; every read returns a typed error
//! instead of panicking.

use super::error::WireError;

/// Little-endian u16 at `off`, if the bytes are there.
pub(crate) fn le_u16(buf: &[u8], off: usize) -> Option<u16> {
    let b = buf.get(off..off.checked_add(2)?)?;
    Some(u16::from_le_bytes(b.try_into().ok()?))
}

/// Little-endian u32 at `off`, if the bytes are there.
pub(crate) fn le_u32(buf: &[u8], off: usize) -> Option<u32> {
    let b = buf.get(off..off.checked_add(4)?)?;
    Some(u32::from_le_bytes(b.try_into().ok()?))
}

/// Little-endian u64 at `off`, if the bytes are there.
pub(crate) fn le_u64(buf: &[u8], off: usize) -> Option<u64> {
    let b = buf.get(off..off.checked_add(8)?)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

/// Sequential reader over one message body.
pub(crate) struct Reader<'a> {
    msg_type: u16,
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader over `body`, which must hold at least `fixed` bytes (the fixed part).
    pub(crate) fn fixed(msg_type: u16, body: &'a [u8], fixed: usize) -> Result<Self, WireError> {
        if body.len() < fixed {
            return Err(WireError::Truncated {
                msg_type,
                need: fixed as u64,
                got: body.len(),
            });
        }
        Ok(Reader {
            msg_type,
            buf: body,
            pos: 0,
        })
    }

    /// The next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n);
        match end.and_then(|end| self.buf.get(self.pos..end).map(|b| (b, end))) {
            Some((b, end)) => {
                self.pos = end;
                Ok(b)
            }
            None => Err(WireError::Truncated {
                msg_type: self.msg_type,
                need: self.pos as u64 + n as u64,
                got: self.buf.len(),
            }),
        }
    }

    /// The next `N` bytes as an array.
    pub(crate) fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let b = self.bytes(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(b);
        Ok(a)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        self.array().map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn i32(&mut self) -> Result<i32, WireError> {
        self.array().map(i32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        self.array().map(u64::from_le_bytes)
    }

    pub(crate) fn i64(&mut self) -> Result<i64, WireError> {
        self.array().map(i64::from_le_bytes)
    }

    /// Everything after the current position.
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.buf.get(self.pos..).unwrap_or(&[])
    }
}
