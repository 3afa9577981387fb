//! A small, bounded XML layer over quick-xml for the cookie (spec/libvirt-migration.md §6
//! "Wire"): byte positions for verbatim elements, a tiny DOM for the typed ones, and the
//! explicit caps ([`MAX_DEPTH`], [`MAX_ELEMENTS`], [`MAX_ATTRIBUTES`]).
//!
//! What is refused, like libxml2 refuses it: characters outside XML 1.0 `Char` (literal or
//! as character references), entity references other than the five predefined ones,
//! mismatched or unclosed tags, duplicate attributes, `<` in attribute values, text or a
//! second element outside the root. A `DOCTYPE` is refused outright (no internal subset,
//! no entity expansion). Not done, unlike a full XML processor: line-end and
//! attribute-value whitespace normalisation (values come back exactly as written, so
//! parse → format → parse is stable).

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::error::{clip, CookieError};

/// Deepest element nesting accepted (the root is depth 1).
pub const MAX_DEPTH: usize = 64;
/// Most elements accepted in one cookie (the root included).
pub const MAX_ELEMENTS: usize = 100_000;
/// Most attributes accepted on one element.
pub const MAX_ATTRIBUTES: usize = 1024;

/// An element read into memory.
#[derive(Debug)]
pub(crate) struct Elem<'a> {
    pub name: &'a str,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Elem<'a>>,
    /// The element's own text (text, references and CDATA; comments skipped).
    pub text: Cow<'a, str>,
    /// Byte range in the document, `<` to the closing `>`.
    pub start: usize,
    pub end: usize,
}

impl Elem<'_> {
    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Elem<'_>> {
        self.children.iter().find(|c| c.name == name)
    }
}

/// A start tag just read: what is needed to read the rest of the element either way.
#[derive(Debug)]
pub(crate) struct Opened<'a> {
    pub name: &'a str,
    pub attrs: Vec<(String, String)>,
    pub start: usize,
    /// End of the start tag.
    pub tag_end: usize,
    pub empty: bool,
    pub depth: usize,
}

/// A `Malformed` error at byte `pos`.
pub(crate) fn malformed(pos: usize, why: impl std::fmt::Display) -> CookieError {
    CookieError::Malformed(clip(&format!("at byte {pos}: {why}")))
}

/// XML 1.0 `Char`.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// A lenient XML `Name` check: ASCII as the spec says, any non-ASCII accepted.
fn valid_name(s: &str) -> bool {
    let mut cs = s.chars();
    match cs.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':' || !c.is_ascii() => {}
        _ => return false,
    }
    cs.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | ':') || !c.is_ascii())
}

/// The character a reference (`lt`, `#38`, `#x26`, …; without `&` and `;`) stands for.
pub(crate) fn resolve_ref(name: &str) -> Option<char> {
    let c = match name {
        "lt" => '<',
        "gt" => '>',
        "amp" => '&',
        "apos" => '\'',
        "quot" => '"',
        _ => {
            let num = name.strip_prefix('#')?;
            let (digits, radix) = match num.strip_prefix('x') {
                Some(h) => (h, 16),
                None => (num, 10),
            };
            if digits.is_empty() || digits.len() > 10 || !digits.chars().all(|c| c.is_digit(radix))
            {
                return None;
            }
            char::from_u32(u32::from_str_radix(digits, radix).ok()?)?
        }
    };
    is_xml_char(c).then_some(c)
}

/// Decodes the references in an attribute value. `Err` carries the reason.
pub(crate) fn unescape(raw: &str) -> Result<Cow<'_, str>, String> {
    if raw.contains('<') {
        return Err("'<' in an attribute value".into());
    }
    let Some(first) = raw.find('&') else {
        return Ok(Cow::Borrowed(raw));
    };
    let mut out = String::with_capacity(raw.len());
    out.push_str(raw.get(..first).unwrap_or(""));
    let mut rest = raw.get(first..).unwrap_or("");
    while let Some(amp) = rest.find('&') {
        out.push_str(rest.get(..amp).unwrap_or(""));
        let after = rest.get(amp.saturating_add(1)..).unwrap_or("");
        let semi = after
            .find(';')
            .ok_or_else(|| "unterminated reference".to_string())?;
        let name = after.get(..semi).unwrap_or("");
        let c = resolve_ref(name).ok_or_else(|| format!("bad reference &{};", clip(name)))?;
        out.push(c);
        rest = after.get(semi.saturating_add(1)..).unwrap_or("");
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// Appends a text piece to a `Cow` accumulator, borrowing while there is only one piece.
fn push_text<'a>(acc: &mut Cow<'a, str>, piece: &'a str) {
    if acc.is_empty() {
        *acc = Cow::Borrowed(piece);
    } else {
        acc.to_mut().push_str(piece);
    }
}

/// The reader: a quick-xml slice reader plus the counters for the caps.
pub(crate) struct XmlReader<'a> {
    text: &'a str,
    reader: Reader<&'a [u8]>,
    elements: usize,
}

impl<'a> XmlReader<'a> {
    fn new(text: &'a str) -> Self {
        XmlReader {
            text,
            reader: Reader::from_str(text),
            elements: 0,
        }
    }

    /// The document text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    fn pos(&self) -> usize {
        usize::try_from(self.reader.buffer_position()).unwrap_or(usize::MAX)
    }

    fn slice(&self, start: usize, end: usize) -> Result<&'a str, CookieError> {
        self.text
            .get(start..end)
            .ok_or_else(|| malformed(start, "bad element bounds"))
    }

    /// The next event with its start and end offsets.
    fn next(&mut self) -> Result<(usize, usize, Event<'a>), CookieError> {
        let start = self.pos();
        match self.reader.read_event() {
            Ok(ev) => Ok((start, self.pos(), ev)),
            Err(e) => {
                let at = usize::try_from(self.reader.error_position()).unwrap_or(start);
                Err(malformed(at, e))
            }
        }
    }

    /// Counts and checks a start tag; reads its attributes (kept if `keep`).
    fn open(
        &mut self,
        e: &BytesStart<'_>,
        start: usize,
        tag_end: usize,
        empty: bool,
        depth: usize,
        keep: bool,
    ) -> Result<Opened<'a>, CookieError> {
        if depth > MAX_DEPTH {
            return Err(CookieError::TooDeep);
        }
        self.elements = self.elements.saturating_add(1);
        if self.elements > MAX_ELEMENTS {
            return Err(CookieError::TooManyElements);
        }
        let name_len = e.name().as_ref().len();
        let name_start = start.saturating_add(1);
        let name = self.slice(name_start, name_start.saturating_add(name_len))?;
        if !valid_name(name) {
            return Err(malformed(start, format_args!("bad element name '{name}'")));
        }
        let mut keys: Vec<&[u8]> = Vec::new();
        let mut attrs = Vec::new();
        for attr in e.attributes().with_checks(false) {
            let attr = attr.map_err(|err| malformed(start, err))?;
            if keys.len() >= MAX_ATTRIBUTES {
                return Err(malformed(start, "too many attributes"));
            }
            let key = std::str::from_utf8(attr.key.as_ref())
                .map_err(|_| malformed(start, "attribute name is not UTF-8"))?;
            if !valid_name(key) {
                return Err(malformed(start, format_args!("bad attribute name '{key}'")));
            }
            let raw = std::str::from_utf8(&attr.value)
                .map_err(|_| malformed(start, "attribute value is not UTF-8"))?;
            let value = unescape(raw).map_err(|why| malformed(start, why))?;
            if keep {
                attrs.push((key.to_owned(), value.into_owned()));
            }
            keys.push(attr.key.into_inner());
        }
        if keys.len() > 1 {
            keys.sort_unstable();
            if keys.windows(2).any(|w| w.first() == w.get(1)) {
                return Err(malformed(start, "duplicate attribute"));
            }
        }
        Ok(Opened {
            name,
            attrs,
            start,
            tag_end,
            empty,
            depth,
        })
    }

    /// Reads the rest of an opened element into an [`Elem`].
    pub fn read_elem(&mut self, o: Opened<'a>) -> Result<Elem<'a>, CookieError> {
        let mut elem = Elem {
            name: o.name,
            attrs: o.attrs,
            children: Vec::new(),
            text: Cow::Borrowed(""),
            start: o.start,
            end: o.tag_end,
        };
        if o.empty {
            return Ok(elem);
        }
        loop {
            let (p, q, ev) = self.next()?;
            match ev {
                Event::Text(_) => push_text(&mut elem.text, self.slice(p, q)?),
                Event::CData(_) => push_text(
                    &mut elem.text,
                    self.slice(p.saturating_add(9), q.saturating_sub(3))?,
                ),
                Event::GeneralRef(r) => {
                    let name = std::str::from_utf8(&r).unwrap_or("");
                    let c = resolve_ref(name)
                        .ok_or_else(|| malformed(p, format_args!("bad reference &{name};")))?;
                    elem.text.to_mut().push(c);
                }
                Event::Comment(_) | Event::PI(_) => {}
                Event::Start(e) => {
                    let child = self.open(&e, p, q, false, o.depth.saturating_add(1), true)?;
                    elem.children.push(self.read_elem(child)?);
                }
                Event::Empty(e) => {
                    let child = self.open(&e, p, q, true, o.depth.saturating_add(1), true)?;
                    elem.children.push(self.read_elem(child)?);
                }
                Event::End(_) => {
                    elem.end = q;
                    return Ok(elem);
                }
                Event::Decl(_) | Event::DocType(_) => {
                    return Err(malformed(p, "declaration inside an element"))
                }
                Event::Eof => return Err(malformed(p, format_args!("<{}> is not closed", o.name))),
            }
        }
    }

    /// Reads past the rest of an opened element, checking it, and returns its exact text.
    pub fn skip_elem(&mut self, o: Opened<'a>) -> Result<&'a str, CookieError> {
        if o.empty {
            return self.slice(o.start, o.tag_end);
        }
        let mut level = 0usize;
        loop {
            let (p, q, ev) = self.next()?;
            match ev {
                Event::Text(_) | Event::CData(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::GeneralRef(r) => {
                    let name = std::str::from_utf8(&r).unwrap_or("");
                    if resolve_ref(name).is_none() {
                        return Err(malformed(p, format_args!("bad reference &{name};")));
                    }
                }
                Event::Start(e) => {
                    level = level.saturating_add(1);
                    let depth = o.depth.saturating_add(level);
                    self.open(&e, p, q, false, depth, false)?;
                }
                Event::Empty(e) => {
                    let depth = o.depth.saturating_add(level).saturating_add(1);
                    self.open(&e, p, q, true, depth, false)?;
                }
                Event::End(_) => {
                    if level == 0 {
                        return self.slice(o.start, q);
                    }
                    level = level.saturating_sub(1);
                }
                Event::Decl(_) | Event::DocType(_) => {
                    return Err(malformed(p, "declaration inside an element"))
                }
                Event::Eof => return Err(malformed(p, format_args!("<{}> is not closed", o.name))),
            }
        }
    }
}

/// A document being read: the prolog and root are consumed by [`Document::open`], the
/// root's children come from [`Document::next_child`].
pub(crate) struct Document<'a> {
    pub reader: XmlReader<'a>,
    root_open: bool,
}

/// True if `s` is XML whitespace only.
fn is_blank(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
}

impl<'a> Document<'a> {
    /// Checks the characters, reads the prolog and the root's start tag.
    /// Returns the document and the root element's name.
    pub fn open(text: &'a str) -> Result<(Self, &'a str), CookieError> {
        if let Some((pos, c)) = text.char_indices().find(|(_, c)| !is_xml_char(*c)) {
            return Err(malformed(
                pos,
                format_args!("invalid character U+{:04X}", u32::from(c)),
            ));
        }
        let mut reader = XmlReader::new(text);
        loop {
            let (p, q, ev) = reader.next()?;
            match ev {
                Event::Decl(_) if p == 0 => {}
                Event::Text(_) if is_blank(reader.slice(p, q)?) => {}
                Event::Comment(_) | Event::PI(_) => {}
                Event::Start(e) => {
                    let root = reader.open(&e, p, q, false, 1, false)?;
                    let doc = Document {
                        reader,
                        root_open: true,
                    };
                    return Ok((doc, root.name));
                }
                Event::Empty(e) => {
                    let root = reader.open(&e, p, q, true, 1, false)?;
                    let doc = Document {
                        reader,
                        root_open: false,
                    };
                    return Ok((doc, root.name));
                }
                Event::DocType(_) => return Err(malformed(p, "DOCTYPE is not allowed")),
                Event::Eof => return Err(malformed(p, "no root element")),
                _ => return Err(malformed(p, "content before the root element")),
            }
        }
    }

    /// The next child element of the root (its start tag read), or `None` after the
    /// root's end tag; then the rest of the document is checked.
    pub fn next_child(&mut self) -> Result<Option<Opened<'a>>, CookieError> {
        while self.root_open {
            let (p, q, ev) = self.reader.next()?;
            match ev {
                // Text directly in the root is ignored, as libvirt's XPath queries do.
                Event::Text(_) | Event::CData(_) | Event::Comment(_) | Event::PI(_) => {}
                Event::GeneralRef(r) => {
                    let name = std::str::from_utf8(&r).unwrap_or("");
                    if resolve_ref(name).is_none() {
                        return Err(malformed(p, format_args!("bad reference &{name};")));
                    }
                }
                Event::Start(e) => return self.reader.open(&e, p, q, false, 2, true).map(Some),
                Event::Empty(e) => return self.reader.open(&e, p, q, true, 2, true).map(Some),
                Event::End(_) => self.root_open = false,
                Event::Decl(_) | Event::DocType(_) => {
                    return Err(malformed(p, "declaration inside an element"))
                }
                Event::Eof => return Err(malformed(p, "the root element is not closed")),
            }
        }
        loop {
            let (p, q, ev) = self.reader.next()?;
            match ev {
                Event::Eof => return Ok(None),
                Event::Comment(_) | Event::PI(_) => {}
                Event::Text(_) if is_blank(self.reader.slice(p, q)?) => {}
                _ => return Err(malformed(p, "content after the root element")),
            }
        }
    }
}

/// Checks that `s` is exactly one well-formed element, nothing before or after it.
pub(crate) fn single_element(s: &str) -> Result<(), CookieError> {
    if let Some((pos, c)) = s.char_indices().find(|(_, c)| !is_xml_char(*c)) {
        return Err(malformed(
            pos,
            format_args!("invalid character U+{:04X}", u32::from(c)),
        ));
    }
    let mut r = XmlReader::new(s);
    let (p, q, ev) = r.next()?;
    let o = match ev {
        Event::Start(e) if p == 0 => r.open(&e, p, q, false, 1, false)?,
        Event::Empty(e) if p == 0 => r.open(&e, p, q, true, 1, false)?,
        _ => return Err(malformed(p, "not an element")),
    };
    let raw = r.skip_elem(o)?;
    if raw.len() != s.len() {
        return Err(malformed(raw.len(), "content after the element"));
    }
    Ok(())
}
