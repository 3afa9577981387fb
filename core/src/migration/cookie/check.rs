//! The receiver's semantic checks of a parsed cookie (spec/libvirt-migration.md §6
//! "Mandatory", "Parse checks"; §12.9), after libvirt's `qemuMigrationCookieXMLParse`,
//! `…ParseMandatoryFeatures` and the lock-driver comparison in `qemuMigrationCookieParse`.

use super::error::{clip, invalid, CookieError};
use super::model::{Cookie, CookieFlags, CookieHop};

/// What the receiver compares the cookie against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckContext<'a> {
    /// The domain name the receiver expects (`<name>` carries the original name).
    pub expected_name: &'a str,
    /// The domain UUID; compared with `<uuid>` in canonical lowercase form, as libvirt
    /// compares the received text with `virUUIDFormat` of its own.
    pub expected_uuid: &'a str,
    /// The receiving host's UUID; `<hostuuid>` must differ from it.
    pub local_host_uuid: &'a str,
    /// The hop the cookie travels; gives the parse flags.
    pub hop: CookieHop,
    /// The receiver's lock manager name; when given, `<lockstate driver>` must equal it.
    pub local_lock_driver: Option<&'a str>,
}

/// Parses a UUID as libvirt's `virUUIDParse`: leading/trailing whitespace allowed, 32 hex
/// digits in pairs, `-` or space allowed between pairs.
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let mut out = [0u8; 16];
    let b = s
        .trim_start_matches(|c: char| c.is_ascii_whitespace())
        .as_bytes();
    let mut i = 0usize;
    let mut n = 0usize;
    while n < 16 {
        let c = *b.get(i)?;
        if c == b'-' || c == b' ' {
            i = i.saturating_add(1);
            continue;
        }
        let hi = char::from(c).to_digit(16)?;
        let lo = char::from(*b.get(i.saturating_add(1))?).to_digit(16)?;
        *out.get_mut(n)? = u8::try_from(hi.checked_mul(16)?.checked_add(lo)?).ok()?;
        n = n.saturating_add(1);
        i = i.saturating_add(2);
    }
    b.get(i..)?
        .iter()
        .all(|c| c.is_ascii_whitespace())
        .then_some(out)
}

/// Formats a UUID as `virUUIDFormat`: lowercase `8-4-4-4-12`.
pub fn format_uuid(u: &[u8; 16]) -> String {
    let mut s = String::with_capacity(36);
    for (i, byte) in u.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            s.push('-');
        }
        s.push_str(&format!("{byte:02x}"));
    }
    s
}

impl Cookie {
    /// The receiver's checks, in libvirt's order: `<name>` equals the expected name;
    /// `<uuid>` the domain UUID; `<hostname>` is present; `<hostuuid>` parses and is not
    /// the local host's; every mandatory feature is known and in the hop's parse flags;
    /// the lock driver matches when one is given and the hop parses LOCKSTATE.
    ///
    /// Elements whose flag is not in the hop's parse flags are not an error (libvirt skips
    /// them; [`Cookie::retain`] drops them).
    pub fn check(&self, ctx: &CheckContext<'_>) -> Result<(), CookieError> {
        if self.name != ctx.expected_name {
            return Err(CookieError::UnexpectedName {
                got: clip(&self.name),
                expected: clip(ctx.expected_name),
            });
        }
        let expected_uuid = parse_uuid(ctx.expected_uuid)
            .map(|u| format_uuid(&u))
            .unwrap_or_else(|| ctx.expected_uuid.to_owned());
        if self.uuid != expected_uuid {
            return Err(CookieError::UnexpectedUuid {
                got: clip(&self.uuid),
                expected: clip(&expected_uuid),
            });
        }
        if self.hostname.is_empty() {
            return Err(CookieError::MissingElement("hostname"));
        }
        let remote =
            parse_uuid(&self.hostuuid).ok_or_else(|| invalid("hostuuid", &self.hostuuid))?;
        let local = parse_uuid(ctx.local_host_uuid)
            .ok_or_else(|| invalid("local host uuid", ctx.local_host_uuid))?;
        if remote == local {
            return Err(CookieError::SameHost(clip(&self.hostuuid)));
        }

        let allowed = ctx.hop.parse_flags();
        for bit in 0..32u32 {
            let flag = CookieFlags(1 << bit);
            if !self.mandatory.contains(flag) {
                continue;
            }
            let Some(name) = CookieFlags::name(bit) else {
                return Err(CookieError::UnknownFeature(format!("#{bit}")));
            };
            if !allowed.contains(flag) {
                return Err(CookieError::UnsupportedFeature(name.to_owned()));
            }
        }

        if let (true, Some(ls), Some(local)) = (
            allowed.contains(CookieFlags::LOCKSTATE),
            &self.lockstate,
            ctx.local_lock_driver,
        ) {
            if ls.driver != local {
                return Err(CookieError::LockDriverMismatch {
                    remote: clip(&ls.driver),
                    local: clip(local),
                });
            }
        }
        Ok(())
    }

    /// [`Cookie::parse`], then [`Cookie::check`], then [`Cookie::retain`] with the hop's
    /// parse flags: what a libvirt receiver does with an incoming cookie. Empty input →
    /// `Ok(None)`.
    pub fn receive(bytes: &[u8], ctx: &CheckContext<'_>) -> Result<Option<Cookie>, CookieError> {
        let Some(mut c) = Cookie::parse(bytes)? else {
            return Ok(None);
        };
        c.check(ctx)?;
        c.retain(ctx.hop.parse_flags());
        Ok(Some(c))
    }
}
