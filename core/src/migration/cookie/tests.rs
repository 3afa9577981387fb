//! Unit tests of the cookie codec (spec/libvirt-migration.md §6, §12.9): error cases, escapes, caps, helpers.

use super::*;

const UUID: &str = "7e1e7e1e-0000-4000-8000-000000000001";
const HOST_A: &str = "0a0a0a0a-0000-4000-8000-00000000000a";
const HOST_B: &str = "0b0b0b0b-0000-4000-8000-00000000000b";

/// A NUL-terminated cookie from host A with `body` after the identity elements.
fn wire(body: &str) -> Vec<u8> {
    let mut s = format!(
        "<qemu-migration>\n  <name>tiny</name>\n  <uuid>{UUID}</uuid>\n  \
         <hostname>hosta</hostname>\n  <hostuuid>{HOST_A}</hostuuid>\n{body}</qemu-migration>\n"
    )
    .into_bytes();
    s.push(0);
    s
}

fn nul(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn parse(body: &str) -> Result<Cookie, CookieError> {
    Cookie::parse(&wire(body)).map(|c| c.unwrap_or_default())
}

fn ctx(hop: CookieHop) -> CheckContext<'static> {
    CheckContext {
        expected_name: "tiny",
        expected_uuid: UUID,
        local_host_uuid: HOST_B,
        hop,
        local_lock_driver: None,
    }
}

#[test]
fn cookie_empty_is_none() {
    assert_eq!(Cookie::parse(b""), Ok(None));
}

#[test]
fn cookie_wire_errors() {
    assert_eq!(
        Cookie::parse(b"<qemu-migration/>"),
        Err(CookieError::NotNulTerminated)
    );
    assert_eq!(
        Cookie::parse(&vec![b' '; MAX_COOKIE_LEN + 1]),
        Err(CookieError::TooLarge {
            len: MAX_COOKIE_LEN + 1,
            max: MAX_COOKIE_LEN
        })
    );
    assert_eq!(
        Cookie::parse(b"<qemu-migration>\0</qemu-migration>\0"),
        Err(CookieError::InteriorNul)
    );
    assert_eq!(
        Cookie::parse(b"<qemu-migration>\xff</qemu-migration>\0"),
        Err(CookieError::InvalidUtf8)
    );
    assert_eq!(
        Cookie::parse(b"\0"),
        Err(CookieError::Malformed("at byte 0: no root element".into()))
    );
}

#[test]
fn cookie_malformed_xml() {
    for bad in [
        "<qemu-migration><name>x</nam></qemu-migration>",
        "<qemu-migration><name>x</name>",
        "<qemu-migration></qemu-migration><x/>",
        "text<qemu-migration/>",
        "<!DOCTYPE x [<!ENTITY a 'b'>]><qemu-migration/>",
        "<qemu-migration><name>&foo;</name></qemu-migration>",
        "<qemu-migration><name>&#1;</name></qemu-migration>",
        "<qemu-migration><name>\u{1}</name></qemu-migration>",
        "<qemu-migration><x a='1' a='2'/></qemu-migration>",
        "<qemu-migration><x a='<'/></qemu-migration>",
        "<qemu-migration><x a='&bogus;'/></qemu-migration>",
        "<qemu-migration><x a/></qemu-migration>",
        "<qemu-migration><1x/></qemu-migration>",
        "<qemu-migration>\n<?xml version='1.0'?></qemu-migration>",
        "</qemu-migration>",
    ] {
        match Cookie::parse(&nul(bad)) {
            Err(CookieError::Malformed(_)) => {}
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}

#[test]
fn cookie_wrong_root_and_missing_identity() {
    assert_eq!(
        Cookie::parse(&nul("<migration/>")),
        Err(CookieError::WrongRoot("migration".into()))
    );
    assert_eq!(
        Cookie::parse(&nul("<qemu-migration/>")),
        Err(CookieError::MissingElement("name"))
    );
    assert_eq!(
        Cookie::parse(&nul(&format!(
            "<qemu-migration><name>t</name><uuid>{UUID}</uuid><hostname></hostname>\
             <hostuuid>{HOST_A}</hostuuid></qemu-migration>"
        ))),
        Err(CookieError::MissingElement("hostname"))
    );
    assert!(matches!(
        parse("  <name>again</name>\n"),
        Err(CookieError::DuplicateElement("name"))
    ));
    assert!(matches!(
        Cookie::parse(&nul("<qemu-migration><name>a<b/></name></qemu-migration>")),
        Err(CookieError::Malformed(_))
    ));
}

#[test]
fn cookie_graphics_attributes() {
    let missing = |body: &str, attribute: &'static str| {
        assert_eq!(
            parse(body),
            Err(CookieError::MissingAttribute {
                element: "graphics",
                attribute
            }),
            "{body}"
        );
    };
    missing("<graphics port='1' listen='a' tlsPort='-1'/>", "type");
    missing("<graphics type='spice' listen='a' tlsPort='-1'/>", "port");
    missing("<graphics type='spice' port='1' listen='a'/>", "tlsPort");
    missing("<graphics type='spice' port='1' tlsPort='-1'/>", "listen");
    missing(
        "<graphics type='spice' port='1' listen='' tlsPort='-1'/>",
        "listen",
    );
    assert_eq!(
        parse("<graphics type='teletype' port='1' listen='a'/>"),
        Err(CookieError::InvalidValue {
            element: "graphics@type",
            value: "teletype".into()
        })
    );
    assert_eq!(
        parse("<graphics type='vnc' port='x1' listen='a'/>"),
        Err(CookieError::InvalidValue {
            element: "graphics@port",
            value: "x1".into()
        })
    );
    // VNC needs no tlsPort.
    let c = parse("<graphics type='vnc' port='5900' listen='::1'/>").unwrap();
    assert_eq!(c.graphics.unwrap().tls_port, None);
}

#[test]
fn cookie_bad_numbers() {
    for (body, element) in [
        ("<statistics><sent>12a</sent></statistics>", "sent"),
        ("<statistics><sent>-1</sent></statistics>", "sent"),
        ("<statistics><sent> 1</sent></statistics>", "sent"),
        ("<statistics><sent>+1</sent></statistics>", "sent"),
        ("<statistics><sent></sent></statistics>", "sent"),
        (
            "<statistics><memory_total>18446744073709551616</memory_total></statistics>",
            "memory_total",
        ),
        ("<statistics><delta>--2</delta></statistics>", "delta"),
        ("<nbd port='65536x'/>", "nbd@port"),
        (
            "<nbd><disk target='vda' capacity='-1'/></nbd>",
            "nbd/disk@capacity",
        ),
        (
            "<graphics type='spice' port='1' listen='a' tlsPort='2147483648'/>",
            "graphics@tlsPort",
        ),
    ] {
        match parse(body) {
            Err(CookieError::InvalidValue { element: e, .. }) if e == element => {}
            other => panic!("{body}: {other:?}"),
        }
    }
    let c =
        parse("<statistics><delta>-9223372036854775808</delta><x>junk</x></statistics>").unwrap();
    assert_eq!(c.statistics.unwrap().delta, Some(i64::MIN));
    assert!(matches!(
        parse("<statistics><sent>1</sent><sent>2</sent></statistics>"),
        Err(CookieError::DuplicateElement("sent"))
    ));
}

#[test]
fn cookie_required_attributes_elsewhere() {
    assert_eq!(
        parse("<lockstate><leases>x</leases></lockstate>"),
        Err(CookieError::MissingAttribute {
            element: "lockstate",
            attribute: "driver"
        })
    );
    assert_eq!(
        parse("<nbd><disk capacity='1'/></nbd>"),
        Err(CookieError::MissingAttribute {
            element: "nbd/disk",
            attribute: "target"
        })
    );
    assert_eq!(
        parse("<network><interface index='0'/></network>"),
        Err(CookieError::MissingAttribute {
            element: "network/interface",
            attribute: "vporttype"
        })
    );
    assert_eq!(
        parse("<capabilities><cap auto='yes'/></capabilities>"),
        Err(CookieError::MissingAttribute {
            element: "capabilities/cap",
            attribute: "name"
        })
    );
    assert_eq!(
        parse("<blockDirtyBitmaps><disk target='a'><bitmap name='b'/></disk></blockDirtyBitmaps>"),
        Err(CookieError::MissingAttribute {
            element: "blockDirtyBitmaps/disk/bitmap",
            attribute: "alias"
        })
    );
    assert_eq!(
        parse("<feature/>"),
        Err(CookieError::MissingAttribute {
            element: "feature",
            attribute: "name"
        })
    );
    assert!(matches!(
        parse("<domain/><domain/>"),
        Err(CookieError::DuplicateElement("domain"))
    ));
}

#[test]
fn cookie_features() {
    assert_eq!(
        parse("<feature name='teleport'/>"),
        Err(CookieError::UnknownFeature("teleport".into()))
    );
    let c = parse("<feature name='persistent'/>").unwrap();
    assert_eq!(c.mandatory, CookieFlags::PERSISTENT);
    assert_eq!(
        c.check(&ctx(CookieHop::BeginToPrepare)),
        Err(CookieError::UnsupportedFeature("persistent".into()))
    );
    assert_eq!(c.check(&ctx(CookieHop::PerformToFinish)), Ok(()));
    let mut c = c;
    c.mandatory = CookieFlags(1 << 20);
    assert_eq!(
        c.check(&ctx(CookieHop::PerformToFinish)),
        Err(CookieError::UnknownFeature("#20".into()))
    );
}

#[test]
fn cookie_check_identity() {
    let c = parse("").unwrap();
    assert_eq!(c.check(&ctx(CookieHop::FinishToConfirm)), Ok(()));
    let mut x = ctx(CookieHop::FinishToConfirm);
    x.expected_name = "other";
    let e = c.check(&x).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Incoming cookie data had unexpected name tiny vs other"
    );
    let mut x = ctx(CookieHop::FinishToConfirm);
    x.expected_uuid = "7E1E7E1E-0000-4000-8000-000000000001"; // canonicalised: accepted
    assert_eq!(c.check(&x), Ok(()));
    x.expected_uuid = "7e1e7e1e-0000-4000-8000-000000000002";
    assert!(matches!(
        c.check(&x),
        Err(CookieError::UnexpectedUuid { .. })
    ));
    let mut x = ctx(CookieHop::FinishToConfirm);
    x.local_host_uuid = "0A0A0A0A00004000800000000000000A";
    let e = c.check(&x).unwrap_err();
    assert_eq!(e, CookieError::SameHost(HOST_A.into()));
    assert_eq!(
        e.to_string(),
        format!("Attempt to migrate guest to the same host {HOST_A}")
    );
    assert_eq!(
        e.to_remote().code,
        crate::migration::error::ERR_INTERNAL_ERROR
    );
    let mut bad = c.clone();
    bad.hostuuid = "not-a-uuid".into();
    assert!(matches!(
        bad.check(&ctx(CookieHop::FinishToConfirm)),
        Err(CookieError::InvalidValue {
            element: "hostuuid",
            ..
        })
    ));
}

#[test]
fn cookie_lock_driver() {
    let c = parse("  <feature name='lockstate'/>\n  <lockstate driver='sanlock'>\n    <leases>l</leases>\n  </lockstate>\n")
        .unwrap();
    let mut x = ctx(CookieHop::BeginToPrepare);
    x.local_lock_driver = Some("sanlock");
    assert_eq!(c.check(&x), Ok(()));
    x.local_lock_driver = Some("lockd");
    assert_eq!(
        c.check(&x),
        Err(CookieError::LockDriverMismatch {
            remote: "sanlock".into(),
            local: "lockd".into()
        })
    );
    // Not parsed on this hop: ignored.
    let mut c2 = c.clone();
    c2.mandatory = CookieFlags::NONE;
    x.hop = CookieHop::FinishToConfirm;
    assert_eq!(c2.check(&x), Ok(()));
    let got = Cookie::receive(&c2.format(), &x).unwrap().unwrap();
    assert_eq!(got.lockstate, None);
}

#[test]
fn cookie_escapes_and_text_forms() {
    let c = Cookie::parse(&nul(&format!(
        "<?xml version='1.0'?>\n<!-- hi --><qemu-migration>\n<name>a&amp;b&apos;&lt;&#x41;&#66;<![CDATA[<c>]]><!--x-->d</name>\
         <uuid>{UUID}</uuid><hostname>h\"</hostname><hostuuid>{HOST_A}</hostuuid>\
         <graphics type=\"spice\" port=\"1\" listen=\"a&quot;&gt;\" tlsPort=\"-1\">\
         <cert info='subject' value='CN=x&amp;y'/></graphics></qemu-migration>\n"
    )))
    .unwrap()
    .unwrap();
    assert_eq!(c.name, "a&b'<AB<c>d");
    assert_eq!(c.hostname, "h\"");
    let g = c.graphics.clone().unwrap();
    assert_eq!(g.listen, "a\">");
    assert_eq!(g.cert_subject.as_deref(), Some("CN=x&y"));
    let text = c.to_xml();
    assert!(
        text.contains("<name>a&amp;b&apos;&lt;AB&lt;c&gt;d</name>"),
        "{text}"
    );
    assert!(text.contains("<hostname>h&quot;</hostname>"));
    assert!(text.contains("listen='a&quot;&gt;'"));
    assert_eq!(Cookie::parse(&c.format()), Ok(Some(c)));
}

#[test]
fn cookie_format_drops_control_characters() {
    let mut c = Cookie::new("a\u{1}b\u{1f}\tc", UUID, "h", HOST_A);
    c.capabilities = Some(vec![]);
    c.nbd = Some(Nbd::default());
    let text = c.to_xml();
    assert!(text.contains("<name>ab\tc</name>"));
    assert!(text.contains("  <nbd/>\n  <capabilities>\n  </capabilities>\n"));
}

#[test]
fn cookie_unknown_elements_go_last() {
    let c = parse("  <allowReboot value='yes'/>\n  <capabilities>\n  </capabilities>\n").unwrap();
    assert_eq!(c.unknown, vec![RawXml("<allowReboot value='yes'/>".into())]);
    assert!(c
        .to_xml()
        .ends_with("  </capabilities>\n  <allowReboot value='yes'/>\n</qemu-migration>\n"));
}

#[test]
fn cookie_caps() {
    let deep = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
    assert_eq!(parse(&deep), Err(CookieError::TooDeep));
    let ok = format!(
        "{}{}",
        "<a>".repeat(MAX_DEPTH - 1),
        "</a>".repeat(MAX_DEPTH - 1)
    );
    assert_eq!(parse(&ok).unwrap().unknown.len(), 1);
    let many = "<a/>".repeat(MAX_ELEMENTS);
    assert_eq!(parse(&many), Err(CookieError::TooManyElements));
    let attrs: String = (0..=MAX_ATTRIBUTES).map(|i| format!(" a{i}='1'")).collect();
    assert!(matches!(
        parse(&format!("<x{attrs}/>")),
        Err(CookieError::Malformed(_))
    ));
}

#[test]
fn cookie_flags_and_hops() {
    assert_eq!(CookieFlags::name(11), Some("block-dirty-bitmaps"));
    assert_eq!(CookieFlags::name(12), None);
    assert_eq!(
        CookieFlags::from_name("statistics"),
        Some(CookieFlags::STATS)
    );
    assert_eq!(
        CookieFlags::from_name("allowReboot"),
        Some(CookieFlags::ALLOW_REBOOT)
    );
    assert_eq!(CookieFlags::from_name("Graphics"), None);
    assert_eq!(CookieFlags::MANDATORY.bits(), 0b1100_0110);
    assert!(CookieHop::PrepareToPerform
        .parse_flags()
        .contains(CookieFlags::NBD));
    assert_eq!(CookieHop::FinishToConfirm.parse_flags(), CookieFlags::STATS);
    assert_eq!(
        (CookieFlags::CPU | CookieFlags::GRAPHICS)
            .names()
            .collect::<Vec<_>>(),
        ["graphics", "cpu"]
    );
    assert_eq!(RawXml("<cpu mode='x'/>".into()).name(), "cpu");
}

#[test]
fn cookie_uuid_helpers() {
    let u = parse_uuid(" 7e1e7e1e-0000-4000-8000-000000000001 ").unwrap();
    assert_eq!(format_uuid(&u), UUID);
    assert_eq!(parse_uuid("7e1e7e1e000040008000000000000001"), Some(u));
    assert_eq!(parse_uuid("7e1e7e1e-0000-4000-8000-00000000000"), None);
    assert_eq!(parse_uuid("7e1e7e1e-0000-4000-8000-0000000000011"), None);
    assert_eq!(parse_uuid("g e1e7e1e-0000-4000-8000-000000000001"), None);
    assert_eq!(parse_uuid(""), None);
}

#[test]
fn cookie_raw_checked() {
    assert!(RawXml::checked("<cpu mode='x'><model>m</model></cpu>").is_ok());
    assert!(RawXml::checked("<cpu/>").is_ok());
    for bad in [
        "<cpu>",
        "<cpu/><x/>",
        " <cpu/>",
        "<cpu/> ",
        "text",
        "<a>&x;</a>",
        "",
    ] {
        assert!(RawXml::checked(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn cookie_present_and_retain() {
    let mut c = Cookie::new("n", UUID, "h", HOST_A);
    c.cpu = Some(RawXml("<cpu/>".into()));
    c.statistics = Some(Statistics::default());
    c.domain = Some(RawXml("<domain/>".into()));
    assert_eq!(
        c.present(),
        CookieFlags::CPU | CookieFlags::STATS | CookieFlags::PERSISTENT
    );
    c.retain(CookieHop::FinishToConfirm.parse_flags());
    assert_eq!(c.present(), CookieFlags::STATS);
}

#[test]
fn cookie_error_values_are_clipped() {
    let long = "9".repeat(10_000);
    match parse(&format!("<statistics><sent>{long}</sent></statistics>")) {
        Err(CookieError::InvalidValue { value, .. }) => assert!(value.len() < 140),
        other => panic!("{other:?}"),
    }
}
