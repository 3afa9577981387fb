//! Property tests for the cookie codec (spec/libvirt-migration.md §6): any model formats to
//! bytes that parse back to it, and no input, random or a mutated golden vector, panics.

mod cookie_prop {
    use livemig_core::migration::cookie::{
        Capability, CheckContext, Cookie, CookieFlags, CookieHop, Graphics, Lockstate, Nbd,
        NbdDisk, RawXml, Statistics,
    };
    use proptest::prelude::*;

    const GOLDEN: [&[u8]; 5] = [
        include_bytes!("vectors/cookies/begin-prepare.cookie"),
        include_bytes!("vectors/cookies/prepare-perform.cookie"),
        include_bytes!("vectors/cookies/perform-finish.cookie"),
        include_bytes!("vectors/cookies/finish-confirm.cookie"),
        include_bytes!("vectors/cookies/full.cookie"),
    ];

    /// Strings that are fine in XML, including every character that needs escaping.
    fn sane() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ -~]{1,16}",
            "[a-z0-9<>&'\" \t\n\r;#=/-]{1,12}",
            "\\PC{1,8}",
        ]
    }

    fn esc(s: &str) -> String {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('\'', "&apos;")
            .replace('"', "&quot;")
    }

    /// A well-formed verbatim element named `name` carrying `s` in text and an attribute.
    fn raw(name: &'static str) -> impl Strategy<Value = RawXml> {
        (sane(), 0..3usize).prop_map(move |(s, shape)| {
            let e = esc(&s);
            RawXml(match shape {
                0 => format!("<{name} a='{e}'/>"),
                1 => format!("<{name}>{e}</{name}>"),
                _ => format!(
                    "<{name} b=\"{e}\">\n    <child x='1'>{e}</child>\n    <!-- c -->\n  </{name}>"
                ),
            })
        })
    }

    fn graphics() -> impl Strategy<Value = Graphics> {
        (
            prop::sample::select(vec![
                "spice",
                "vnc",
                "sdl",
                "rdp",
                "desktop",
                "egl-headless",
                "dbus",
            ]),
            any::<i32>(),
            sane(),
            any::<Option<i32>>(),
            prop::option::of(prop_oneof![sane(), Just(String::new())]),
        )
            .prop_map(|(kind, port, listen, tls, cert)| Graphics {
                kind: kind.to_owned(),
                port,
                listen,
                tls_port: if kind == "spice" {
                    Some(tls.unwrap_or(-1))
                } else {
                    tls
                },
                cert_subject: cert,
            })
    }

    fn statistics() -> impl Strategy<Value = Statistics> {
        (
            prop::collection::vec(any::<Option<u64>>(), Statistics::ELEMENTS.len()),
            any::<Option<i64>>(),
        )
            .prop_map(|(vals, delta)| {
                let mut m = serde_json::Map::new();
                for (name, v) in Statistics::ELEMENTS.iter().zip(vals) {
                    m.insert((*name).to_owned(), serde_json::json!(v));
                }
                m.insert("delta".into(), serde_json::json!(delta));
                serde_json::from_value(serde_json::Value::Object(m)).unwrap()
            })
    }

    prop_compose! {
        fn cookie()(
            ident in (sane(), sane(), sane(), sane()),
            mandatory in 0u32..(1 << 12),
            graphics in prop::option::of(graphics()),
            lockstate in prop::option::of((sane(), prop::option::of(prop_oneof![sane(), Just(String::new())]))),
            domain in prop::option::of(raw("domain")),
            network in prop::option::of(raw("network")),
            nbd in prop::option::of((any::<Option<i32>>(), prop::collection::vec((sane(), any::<u64>()), 0..3))),
            statistics in prop::option::of(statistics()),
            cpu in prop::option::of(raw("cpu")),
            caps in prop::option::of(prop::collection::vec((prop_oneof![sane(), Just(String::new())], any::<bool>()), 0..4)),
            bitmaps in prop::option::of(raw("blockDirtyBitmaps")),
            unknown in prop::collection::vec(prop_oneof![raw("allowReboot"), raw("x-future"), raw("vendor:ext")], 0..3),
        ) -> Cookie {
            let mut c = Cookie::new(ident.0, ident.1, ident.2, ident.3);
            c.mandatory = CookieFlags(mandatory);
            c.graphics = graphics;
            c.lockstate = lockstate.map(|(driver, leases)| Lockstate { driver, leases });
            c.domain = domain;
            c.network = network;
            c.nbd = nbd.map(|(port, disks)| Nbd {
                port,
                disks: disks.into_iter().map(|(target, capacity)| NbdDisk { target, capacity }).collect(),
            });
            c.statistics = statistics;
            c.cpu = cpu;
            c.capabilities = caps.map(|v| v.into_iter().map(|(name, auto)| Capability { name, auto }).collect());
            c.block_dirty_bitmaps = bitmaps;
            c.unknown = unknown;
            c
        }
    }

    fn check_all_hops(c: &Cookie) {
        for hop in CookieHop::ALL {
            let ctx = CheckContext {
                expected_name: &c.name,
                expected_uuid: &c.uuid,
                local_host_uuid: "0b0b0b0b-0000-4000-8000-00000000000b",
                hop,
                local_lock_driver: Some("sanlock"),
            };
            let _ = c.check(&ctx);
        }
    }

    /// If `bytes` parse, the result formats to bytes that parse back to the same cookie.
    fn roundtrip_if_ok(bytes: &[u8]) {
        if let Ok(Some(c)) = Cookie::parse(bytes) {
            let again = Cookie::parse(&c.format());
            assert_eq!(again, Ok(Some(c.clone())));
            check_all_hops(&c);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

        #[test]
        fn cookie_format_then_parse_is_identity(c in cookie()) {
            let bytes = c.format();
            prop_assert_eq!(bytes.last(), Some(&0));
            let back = Cookie::parse(&bytes);
            prop_assert_eq!(back, Ok(Some(c.clone())));
            check_all_hops(&c);
        }

        #[test]
        fn cookie_arbitrary_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..512), nul in any::<bool>()) {
            if nul {
                bytes.push(0);
            }
            roundtrip_if_ok(&bytes);
        }

        #[test]
        fn cookie_mutated_golden_never_panics(
            which in 0..GOLDEN.len(),
            edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0..4u8), 1..8),
        ) {
            let mut v = GOLDEN[which].to_vec();
            for (at, byte, op) in edits {
                let i = at.index(v.len().max(1)).min(v.len().saturating_sub(1));
                match op {
                    0 => { if let Some(b) = v.get_mut(i) { *b = byte; } }
                    1 => v.insert(i, byte),
                    2 => { if !v.is_empty() { v.remove(i); } }
                    _ => {
                        // Splice a structural token, to reach deeper parser paths.
                        let tokens: [&[u8]; 8] = [b"<", b">", b"/>", b"&amp;", b"&#1;", b"'", b"<x>", b"</x>"];
                        let t = tokens[usize::from(byte) % tokens.len()];
                        v.splice(i..i, t.iter().copied());
                    }
                }
            }
            roundtrip_if_ok(&v);
        }
    }
}
