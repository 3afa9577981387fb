//! The `<qemu-migration>` migration cookie: model, parser, formatter and the receiver's
//! checks (spec/libvirt-migration.md §6, §10, §12.9; spec/libvirt-real-peer.md §5, §6.5).
//!
//! * [`Cookie::parse`]: NUL-terminated wire bytes → [`Cookie`] (structural checks only;
//!   empty input is `Ok(None)`).
//! * [`Cookie::check`]: name, UUID, host UUID, mandatory features for a [`CookieHop`], lock
//!   driver. [`Cookie::receive`] does parse + check + [`Cookie::retain`].
//! * [`Cookie::format`]: the model in libvirt's byte layout, NUL-terminated, so a cookie
//!   libvirt wrote comes back byte for byte (as long as any unknown elements were last).
//!
//! Each step's output cookie is the next step's input; a step that produced none sends an
//! empty one (real-peer §6.5). Elements the model does not type (`<domain>`, `<network>`,
//! `<cpu>`, `<blockDirtyBitmaps>`, unknown ones) travel verbatim as [`RawXml`].
//!
//! Nothing here panics on any input; the caps are [`MAX_COOKIE_LEN`], [`MAX_DEPTH`],
//! [`MAX_ELEMENTS`] and [`MAX_ATTRIBUTES`].

mod check;
mod error;
mod format;
mod model;
mod parse;
mod xml;

pub use check::{format_uuid, parse_uuid, CheckContext};
pub use error::CookieError;
pub use model::{
    Capability, Cookie, CookieFlags, CookieHop, Graphics, Lockstate, Nbd, NbdDisk, RawXml,
    Statistics,
};
pub use xml::{MAX_ATTRIBUTES, MAX_DEPTH, MAX_ELEMENTS};

/// The RPC cap on a cookie, NUL included (`REMOTE_MIGRATE_COOKIE_MAX`, §6 "Wire").
pub const MAX_COOKIE_LEN: usize = 4 * 1024 * 1024;

impl RawXml {
    /// `s` if it is exactly one well-formed element (no prolog, no surrounding text),
    /// within the caps; the check [`Cookie::parse`] applies to verbatim elements.
    pub fn checked(s: impl Into<String>) -> Result<RawXml, CookieError> {
        let s = s.into();
        if s.len() >= MAX_COOKIE_LEN {
            return Err(CookieError::TooLarge {
                len: s.len(),
                max: MAX_COOKIE_LEN,
            });
        }
        xml::single_element(&s)?;
        Ok(RawXml(s))
    }
}

#[cfg(test)]
mod tests;
