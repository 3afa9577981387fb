//! [`Cookie`] → wire bytes in libvirt's exact layout (`qemuMigrationCookieXMLFormat`,
//! spec/libvirt-migration.md §6 "Order"): two-space indentation, single-quoted attributes,
//! `"\n"` after every line including `</qemu-migration>`, then the NUL.
//!
//! Escaping follows libvirt's `virBufferEscapeString` (src/util/virbuffer.c): `<` `>` `&`
//! `"` `'` become `&lt;` `&gt;` `&amp;` `&quot;` `&apos;`, in text and attribute values
//! alike, and control characters 0x01–0x08, 0x0B, 0x0C, 0x0E–0x19 are silently dropped.
//! Here every character that is not an XML 1.0 `Char` is dropped (a superset: libvirt lets
//! 0x1A–0x1F through and produces XML no parser accepts). libvirt escapes `name`,
//! `hostname`, the cert subject and NBD disk targets this way but prints `listen`, the
//! lock driver and the leases raw (`virBufferAsprintf`); this formatter escapes every
//! string, which gives the same bytes for every value libvirt itself can read back.
//! Verbatim elements ([`RawXml`](super::RawXml)) are written as received, so the
//! receiver's indentation inside them is kept.

use super::model::Cookie;
use super::xml::is_xml_char;

/// Appends `s` escaped as `virBufferEscapeString` does (see the module docs).
pub(crate) fn escape_into(out: &mut String, s: &str) {
    if !s
        .chars()
        .any(|c| matches!(c, '<' | '>' | '&' | '"' | '\'') || !is_xml_char(c))
    {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
}

/// `indent<tag>escaped</tag>\n`
fn text_elem(out: &mut String, indent: &str, tag: &str, value: &str) {
    out.push_str(indent);
    out.push('<');
    out.push_str(tag);
    out.push('>');
    escape_into(out, value);
    out.push_str("</");
    out.push_str(tag);
    out.push_str(">\n");
}

/// ` name='escaped'`
fn attr(out: &mut String, name: &str, value: &str) {
    out.push(' ');
    out.push_str(name);
    out.push_str("='");
    escape_into(out, value);
    out.push('\'');
}

/// `  raw\n`
fn raw(out: &mut String, raw: &str) {
    out.push_str("  ");
    out.push_str(raw);
    out.push('\n');
}

impl Cookie {
    /// Model → wire bytes: [`Cookie::to_xml`] followed by the terminating NUL.
    pub fn format(&self) -> Vec<u8> {
        let mut s = self.to_xml();
        s.push('\0');
        s.into_bytes()
    }

    /// The XML text in libvirt's layout (see the module docs), without the NUL.
    /// Identity strings are written even when empty ([`Cookie::parse`] refuses those).
    pub fn to_xml(&self) -> String {
        let raw_len: usize = [
            &self.domain,
            &self.network,
            &self.cpu,
            &self.block_dirty_bitmaps,
        ]
        .iter()
        .filter_map(|r| r.as_ref().map(|r| r.0.len()))
        .chain(self.unknown.iter().map(|r| r.0.len()))
        .fold(0usize, usize::saturating_add);
        let mut out = String::with_capacity(raw_len.saturating_add(2048));

        out.push_str("<qemu-migration>\n");
        text_elem(&mut out, "  ", "name", &self.name);
        text_elem(&mut out, "  ", "uuid", &self.uuid);
        text_elem(&mut out, "  ", "hostname", &self.hostname);
        text_elem(&mut out, "  ", "hostuuid", &self.hostuuid);
        for name in self.mandatory.names() {
            out.push_str("  <feature name='");
            out.push_str(name);
            out.push_str("'/>\n");
        }

        if let Some(g) = &self.graphics {
            out.push_str("  <graphics");
            attr(&mut out, "type", &g.kind);
            attr(&mut out, "port", &g.port.to_string());
            attr(&mut out, "listen", &g.listen);
            if let Some(tls) = g.tls_port {
                attr(&mut out, "tlsPort", &tls.to_string());
            }
            match &g.cert_subject {
                Some(subject) => {
                    out.push_str(">\n    <cert info='subject'");
                    attr(&mut out, "value", subject);
                    out.push_str("/>\n  </graphics>\n");
                }
                None => out.push_str("/>\n"),
            }
        }

        if let Some(l) = &self.lockstate {
            out.push_str("  <lockstate");
            attr(&mut out, "driver", &l.driver);
            match &l.leases {
                Some(leases) => {
                    out.push_str(">\n");
                    text_elem(&mut out, "    ", "leases", leases);
                    out.push_str("  </lockstate>\n");
                }
                None => out.push_str("/>\n"),
            }
        }

        if let Some(d) = &self.domain {
            raw(&mut out, &d.0);
        }
        if let Some(n) = &self.network {
            raw(&mut out, &n.0);
        }

        if let Some(nbd) = &self.nbd {
            out.push_str("  <nbd");
            if let Some(port) = nbd.port {
                attr(&mut out, "port", &port.to_string());
            }
            if nbd.disks.is_empty() {
                out.push_str("/>\n");
            } else {
                out.push_str(">\n");
                for d in &nbd.disks {
                    out.push_str("    <disk");
                    attr(&mut out, "target", &d.target);
                    attr(&mut out, "capacity", &d.capacity.to_string());
                    out.push_str("/>\n");
                }
                out.push_str("  </nbd>\n");
            }
        }

        if let Some(s) = &self.statistics {
            out.push_str("  <statistics>\n");
            s.format_fields(&mut out, "    ");
            out.push_str("  </statistics>\n");
        }

        if let Some(cpu) = &self.cpu {
            raw(&mut out, &cpu.0);
        }

        if let Some(caps) = &self.capabilities {
            out.push_str("  <capabilities>\n");
            for cap in caps {
                out.push_str("    <cap");
                attr(&mut out, "name", &cap.name);
                out.push_str(if cap.auto {
                    " auto='yes'/>\n"
                } else {
                    " auto='no'/>\n"
                });
            }
            out.push_str("  </capabilities>\n");
        }

        if let Some(b) = &self.block_dirty_bitmaps {
            raw(&mut out, &b.0);
        }
        for u in &self.unknown {
            raw(&mut out, &u.0);
        }
        out.push_str("</qemu-migration>\n");
        out
    }
}
