//! Wire bytes → [`Cookie`]: the structural half of libvirt's `qemuMigrationCookieParse` /
//! `qemuMigrationCookieXMLParse` (spec/libvirt-migration.md §6 "Wire", "Parse checks").
//!
//! Everything that does not depend on the receiver is checked here: NUL termination, the
//! size cap, well-formedness, required elements and attributes, numbers, duplicate
//! singletons and **unknown `<feature>` names** (refused here, as libvirt does in
//! `qemuMigrationCookieXMLParseMandatoryFeatures`). The receiver-dependent checks (name,
//! UUID, host UUID, features allowed for the hop, lock driver) are in
//! [`Cookie::check`](super::Cookie::check).
//!
//! Unlike libvirt, which only looks at the elements of the step's parse flags, every known
//! element is validated whatever the hop.

use super::error::{invalid, CookieError};
use super::model::Statistics;
use super::model::{Capability, Cookie, CookieFlags, Graphics, Lockstate, Nbd, NbdDisk, RawXml};
use super::xml::{malformed, Document, Elem, Opened, XmlReader};
use super::MAX_COOKIE_LEN;

/// `virDomainGraphicsType` names accepted in `<graphics type>`.
const GRAPHICS_TYPES: [&str; 7] = [
    "sdl",
    "vnc",
    "rdp",
    "desktop",
    "spice",
    "egl-headless",
    "dbus",
];

/// A number as the cookie writes it: decimal digits, with a leading `-` for signed types.
/// No whitespace, no `+`, no overflow.
pub(crate) trait StrictNum: Sized {
    /// Parses `s`.
    fn parse_strict(s: &str) -> Option<Self>;
}

fn digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

impl StrictNum for u64 {
    fn parse_strict(s: &str) -> Option<Self> {
        digits(s).then(|| s.parse().ok()).flatten()
    }
}

impl StrictNum for i64 {
    fn parse_strict(s: &str) -> Option<Self> {
        digits(s.strip_prefix('-').unwrap_or(s))
            .then(|| s.parse().ok())
            .flatten()
    }
}

impl StrictNum for i32 {
    fn parse_strict(s: &str) -> Option<Self> {
        digits(s.strip_prefix('-').unwrap_or(s))
            .then(|| s.parse().ok())
            .flatten()
    }
}

/// Parses a number or fails with `InvalidValue { element, .. }`.
pub(crate) fn number<T: StrictNum>(s: &str, element: &'static str) -> Result<T, CookieError> {
    T::parse_strict(s).ok_or_else(|| invalid(element, s))
}

/// A required attribute; empty counts as missing where libvirt reads it with
/// `virXPathString` (which returns NULL for "").
fn required<'e>(
    e: &'e Elem<'_>,
    element: &'static str,
    attribute: &'static str,
    allow_empty: bool,
) -> Result<&'e str, CookieError> {
    match e.attr(attribute) {
        Some(v) if allow_empty || !v.is_empty() => Ok(v),
        _ => Err(CookieError::MissingAttribute { element, attribute }),
    }
}

/// The text of an element that must hold text only.
fn text_only<'e>(e: &'e Elem<'_>) -> Result<&'e str, CookieError> {
    if e.children.is_empty() {
        Ok(&e.text)
    } else {
        Err(malformed(
            e.start,
            format_args!("<{}> must contain text only", e.name),
        ))
    }
}

fn graphics(e: &Elem<'_>) -> Result<Graphics, CookieError> {
    const EL: &str = "graphics";
    let kind = required(e, EL, "type", false)?;
    if !GRAPHICS_TYPES.contains(&kind) {
        return Err(invalid("graphics@type", kind));
    }
    let port = number(required(e, EL, "port", false)?, "graphics@port")?;
    let tls_port = match e.attr("tlsPort") {
        Some(v) if !v.is_empty() => Some(number(v, "graphics@tlsPort")?),
        _ if kind == "spice" => {
            return Err(CookieError::MissingAttribute {
                element: EL,
                attribute: "tlsPort",
            })
        }
        _ => None,
    };
    let listen = required(e, EL, "listen", false)?.to_owned();
    let cert_subject = e
        .children
        .iter()
        .find(|c| c.name == "cert" && c.attr("info") == Some("subject"))
        .and_then(|c| c.attr("value"))
        .map(str::to_owned);
    Ok(Graphics {
        kind: kind.to_owned(),
        port,
        listen,
        tls_port,
        cert_subject,
    })
}

fn lockstate(e: &Elem<'_>) -> Result<Lockstate, CookieError> {
    let driver = required(e, "lockstate", "driver", false)?.to_owned();
    let leases = match e.child("leases") {
        Some(l) => Some(text_only(l)?.to_owned()),
        None => None,
    };
    Ok(Lockstate { driver, leases })
}

fn nbd(e: &Elem<'_>) -> Result<Nbd, CookieError> {
    let port = match e.attr("port") {
        Some(p) if !p.is_empty() => Some(number(p, "nbd@port")?),
        _ => None,
    };
    let mut disks = Vec::new();
    for d in e.children.iter().filter(|c| c.name == "disk") {
        let target = required(d, "nbd/disk", "target", false)?.to_owned();
        let capacity = number(
            required(d, "nbd/disk", "capacity", false)?,
            "nbd/disk@capacity",
        )?;
        disks.push(NbdDisk { target, capacity });
    }
    Ok(Nbd { port, disks })
}

fn statistics(e: &Elem<'_>) -> Result<Statistics, CookieError> {
    let mut s = Statistics::default();
    for c in &e.children {
        // Unknown children are ignored, like libvirt's XPath lookups ignore them.
        s.set_field(c.name, text_only(c)?)?;
    }
    Ok(s)
}

fn capabilities(e: &Elem<'_>) -> Result<Vec<Capability>, CookieError> {
    let mut caps = Vec::new();
    for c in e.children.iter().filter(|c| c.name == "cap") {
        let name = required(c, "capabilities/cap", "name", true)?.to_owned();
        // libvirt: STREQ(auto, "yes"); anything else (or nothing) is "no".
        caps.push(Capability {
            name,
            auto: c.attr("auto") == Some("yes"),
        });
    }
    Ok(caps)
}

/// `<network>`: each `<interface>` needs `vporttype` (`qemuMigrationCookieNetworkXMLParse`).
fn check_network(e: &Elem<'_>) -> Result<(), CookieError> {
    for i in e.children.iter().filter(|c| c.name == "interface") {
        required(i, "network/interface", "vporttype", true)?;
    }
    Ok(())
}

/// `<blockDirtyBitmaps>`: disks need `target`, bitmaps `name` and `alias`.
fn check_bitmaps(e: &Elem<'_>) -> Result<(), CookieError> {
    for d in e.children.iter().filter(|c| c.name == "disk") {
        for b in d.children.iter().filter(|c| c.name == "bitmap") {
            required(b, "blockDirtyBitmaps/disk/bitmap", "name", true)?;
            required(b, "blockDirtyBitmaps/disk/bitmap", "alias", true)?;
        }
        required(d, "blockDirtyBitmaps/disk", "target", true)?;
    }
    Ok(())
}

/// Stores `value` in a singleton slot, refusing a second one.
fn put<T>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), CookieError> {
    if slot.is_some() {
        return Err(CookieError::DuplicateElement(name));
    }
    *slot = Some(value);
    Ok(())
}

/// Reads an element fully and returns it with its verbatim text.
fn dom_and_raw<'a>(
    r: &mut XmlReader<'a>,
    o: Opened<'a>,
) -> Result<(Elem<'a>, RawXml), CookieError> {
    let e = r.read_elem(o)?;
    let raw = r
        .text()
        .get(e.start..e.end)
        .ok_or_else(|| malformed(e.start, "bad element bounds"))?;
    Ok((e, RawXml(raw.to_owned())))
}

/// Parses the XML text of a cookie (no NUL) into the model.
pub(crate) fn parse_xml(text: &str) -> Result<Cookie, CookieError> {
    let (mut doc, root) = Document::open(text)?;
    if root != "qemu-migration" {
        return Err(CookieError::WrongRoot(super::error::clip(root)));
    }
    let mut c = Cookie::default();
    let (mut name, mut uuid, mut hostname, mut hostuuid) = (None, None, None, None);
    while let Some(o) = doc.next_child()? {
        let r = &mut doc.reader;
        match o.name {
            "name" | "uuid" | "hostname" | "hostuuid" => {
                let (slot, el) = match o.name {
                    "name" => (&mut name, "name"),
                    "uuid" => (&mut uuid, "uuid"),
                    "hostname" => (&mut hostname, "hostname"),
                    _ => (&mut hostuuid, "hostuuid"),
                };
                let e = r.read_elem(o)?;
                put(slot, text_only(&e)?.to_owned(), el)?;
            }
            "feature" => {
                let fname = o.attrs.iter().find(|(k, _)| k == "name").map(|(_, v)| v);
                let Some(fname) = fname else {
                    return Err(CookieError::MissingAttribute {
                        element: "feature",
                        attribute: "name",
                    });
                };
                let flag = CookieFlags::from_name(fname)
                    .ok_or_else(|| CookieError::UnknownFeature(super::error::clip(fname)))?;
                c.mandatory |= flag;
                r.skip_elem(o)?;
            }
            "graphics" => {
                let e = r.read_elem(o)?;
                put(&mut c.graphics, graphics(&e)?, "graphics")?;
            }
            "lockstate" => {
                let e = r.read_elem(o)?;
                put(&mut c.lockstate, lockstate(&e)?, "lockstate")?;
            }
            "domain" => {
                let raw = r.skip_elem(o)?;
                put(&mut c.domain, RawXml(raw.to_owned()), "domain")?;
            }
            "network" => {
                let (e, raw) = dom_and_raw(r, o)?;
                check_network(&e)?;
                put(&mut c.network, raw, "network")?;
            }
            "nbd" => {
                let e = r.read_elem(o)?;
                put(&mut c.nbd, nbd(&e)?, "nbd")?;
            }
            "statistics" => {
                let e = r.read_elem(o)?;
                put(&mut c.statistics, statistics(&e)?, "statistics")?;
            }
            "cpu" => {
                let raw = r.skip_elem(o)?;
                put(&mut c.cpu, RawXml(raw.to_owned()), "cpu")?;
            }
            "capabilities" => {
                let e = r.read_elem(o)?;
                put(&mut c.capabilities, capabilities(&e)?, "capabilities")?;
            }
            "blockDirtyBitmaps" => {
                let (e, raw) = dom_and_raw(r, o)?;
                check_bitmaps(&e)?;
                put(&mut c.block_dirty_bitmaps, raw, "blockDirtyBitmaps")?;
            }
            _ => {
                let raw = r.skip_elem(o)?;
                c.unknown.push(RawXml(raw.to_owned()));
            }
        }
    }
    // libvirt reads these with virXPathString: absent or empty is "missing".
    let need = |v: Option<String>, el: &'static str| match v {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(CookieError::MissingElement(el)),
    };
    c.name = need(name, "name")?;
    c.uuid = need(uuid, "uuid")?;
    c.hostname = need(hostname, "hostname")?;
    c.hostuuid = need(hostuuid, "hostuuid")?;
    Ok(c)
}

impl Cookie {
    /// Wire bytes → model. Empty input → `Ok(None)` ("an empty cookie is accepted
    /// unchecked", §6). Non-empty input must be NUL-terminated (the length includes the
    /// NUL), at most [`MAX_COOKIE_LEN`] bytes, NUL-free before the end, UTF-8 and a
    /// well-formed `<qemu-migration>` document with the required parts of §6.
    pub fn parse(bytes: &[u8]) -> Result<Option<Cookie>, CookieError> {
        let Some((last, body)) = bytes.split_last() else {
            return Ok(None);
        };
        if bytes.len() > MAX_COOKIE_LEN {
            return Err(CookieError::TooLarge {
                len: bytes.len(),
                max: MAX_COOKIE_LEN,
            });
        }
        if *last != 0 {
            return Err(CookieError::NotNulTerminated);
        }
        if body.contains(&0) {
            return Err(CookieError::InteriorNul);
        }
        let text = std::str::from_utf8(body).map_err(|_| CookieError::InvalidUtf8)?;
        parse_xml(text).map(Some)
    }
}
