//! Golden cookies: the four captured from real libvirt 9.0 daemons
//! (spec/libvirt-real-peer.md §5) and one carrying every element of
//! spec/libvirt-migration.md §6, each parsed, checked and formatted back byte for byte.

mod cookie_golden {
    use livemig_core::migration::cookie::{
        CheckContext, Cookie, CookieError, CookieFlags, CookieHop, RawXml, MAX_COOKIE_LEN,
    };

    const UUID: &str = "7e1e7e1e-0000-4000-8000-000000000001";
    const HOST_A: &str = "0a0a0a0a-0000-4000-8000-00000000000a";
    const HOST_B: &str = "0b0b0b0b-0000-4000-8000-00000000000b";

    const BEGIN: &[u8] = include_bytes!("vectors/cookies/begin-prepare.cookie");
    const PREPARE: &[u8] = include_bytes!("vectors/cookies/prepare-perform.cookie");
    const PERFORM: &[u8] = include_bytes!("vectors/cookies/perform-finish.cookie");
    const FINISH: &[u8] = include_bytes!("vectors/cookies/finish-confirm.cookie");
    const FULL: &[u8] = include_bytes!("vectors/cookies/full.cookie");

    /// The receiving side's context: B receives from A and vice versa.
    fn ctx(hop: CookieHop) -> CheckContext<'static> {
        let local_host_uuid = match hop {
            CookieHop::BeginToPrepare | CookieHop::PerformToFinish => HOST_B,
            CookieHop::PrepareToPerform | CookieHop::FinishToConfirm => HOST_A,
        };
        CheckContext {
            expected_name: "tiny",
            expected_uuid: UUID,
            local_host_uuid,
            hop,
            local_lock_driver: Some("nop"),
        }
    }

    fn golden() -> [(&'static str, &'static [u8], usize, CookieHop); 4] {
        [
            ("begin-prepare", BEGIN, 882, CookieHop::BeginToPrepare),
            ("prepare-perform", PREPARE, 724, CookieHop::PrepareToPerform),
            ("perform-finish", PERFORM, 1122, CookieHop::PerformToFinish),
            ("finish-confirm", FINISH, 1143, CookieHop::FinishToConfirm),
        ]
    }

    #[test]
    fn real_libvirt_cookies_round_trip_byte_for_byte() {
        for (name, bytes, len, hop) in golden() {
            assert_eq!(bytes.len(), len, "{name}: reconstruction size");
            assert_eq!(bytes.last(), Some(&0), "{name}");
            let c = Cookie::parse(bytes).unwrap().unwrap();
            c.check(&ctx(hop)).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(c.format(), bytes, "{name}: format");
            // The cookie only carries what its hop parses: receive() keeps it whole.
            let got = Cookie::receive(bytes, &ctx(hop)).unwrap().unwrap();
            assert_eq!(got, c, "{name}: receive");
        }
    }

    #[test]
    fn real_libvirt_cookie_contents() {
        let b = Cookie::parse(BEGIN).unwrap().unwrap();
        assert_eq!(
            (
                b.name.as_str(),
                b.uuid.as_str(),
                b.hostname.as_str(),
                b.hostuuid.as_str()
            ),
            ("tiny", UUID, "hosta", HOST_A)
        );
        assert_eq!(b.mandatory, CookieFlags::LOCKSTATE);
        assert_eq!(b.present(), CookieFlags::CPU | CookieFlags::CAPS);
        assert!(b.cpu.as_ref().unwrap().as_str().ends_with("  </cpu>"));
        let caps = b.capabilities.as_ref().unwrap();
        assert_eq!(caps.len(), 10);
        assert!(caps
            .iter()
            .any(|c| c.name == "pause-before-switchover" && c.auto));

        let p = Cookie::parse(PREPARE).unwrap().unwrap();
        let g = p.graphics.unwrap();
        assert_eq!(
            (
                g.kind.as_str(),
                g.port,
                g.listen.as_str(),
                g.tls_port,
                g.cert_subject
            ),
            ("spice", 5940, "127.0.0.1", Some(-1), None)
        );

        let f = Cookie::parse(PERFORM).unwrap().unwrap();
        let s = f.statistics.unwrap();
        assert_eq!(s.started, Some(1_795_316_420_559));
        assert_eq!(s.delta, None);
        assert_eq!(s.memory_page_size, Some(4096));
        assert_eq!(s.compression_cache, None);

        let c = Cookie::parse(FINISH).unwrap().unwrap();
        let s = c.statistics.unwrap();
        assert_eq!(
            (s.delta, s.time_elapsed, s.downtime),
            (Some(2), Some(330), Some(26))
        );
        assert_eq!(c.hostuuid, HOST_B);
    }

    #[test]
    fn real_libvirt_cookie_sent_back_to_its_sender_is_same_host() {
        // Real-peer §6.5: returning a host's own cookie fails.
        let c = Cookie::parse(PREPARE).unwrap().unwrap();
        let mut x = ctx(CookieHop::PrepareToPerform);
        x.local_host_uuid = HOST_B;
        let e = c.check(&x).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("Attempt to migrate guest to the same host {HOST_B}")
        );
    }

    #[test]
    fn real_libvirt_cookie_on_the_wrong_hop() {
        // Begin's mandatory lockstate is not parsed by Perform → Finish.
        let c = Cookie::parse(BEGIN).unwrap().unwrap();
        let mut x = ctx(CookieHop::PerformToFinish);
        x.local_host_uuid = HOST_B;
        assert_eq!(
            c.check(&x),
            Err(CookieError::UnsupportedFeature("lockstate".into()))
        );
        // Prepare's graphics are simply not parsed by Finish → Confirm: no error, dropped.
        let mut x = ctx(CookieHop::FinishToConfirm);
        x.local_host_uuid = HOST_A;
        let got = Cookie::receive(PREPARE, &x).unwrap().unwrap();
        assert_eq!(got.graphics, None);
        assert_eq!(got.capabilities, None);
    }

    #[test]
    fn cookie_with_every_element_round_trips() {
        let c = Cookie::parse(FULL).unwrap().unwrap();
        assert_eq!(c.format(), FULL);
        assert_eq!(c.name, "web'01 & co");
        assert_eq!(
            c.mandatory,
            CookieFlags::LOCKSTATE
                | CookieFlags::PERSISTENT
                | CookieFlags::MEMORY_HOTPLUG
                | CookieFlags::CPU_HOTPLUG
        );
        assert_eq!(c.mandatory, CookieFlags::MANDATORY);
        assert_eq!(
            c.present(),
            CookieFlags::ALL.without(
                CookieFlags::MEMORY_HOTPLUG | CookieFlags::CPU_HOTPLUG | CookieFlags::ALLOW_REBOOT
            )
        );
        let g = c.graphics.as_ref().unwrap();
        assert_eq!(
            g.cert_subject.as_deref(),
            Some("C=GB,O=Example & Sons,CN=dst's <spice> \"server\"")
        );
        assert_eq!(g.tls_port, Some(5902));
        let l = c.lockstate.as_ref().unwrap();
        assert_eq!(l.driver, "sanlock");
        let nbd = c.nbd.as_ref().unwrap();
        assert_eq!(nbd.port, Some(49153));
        assert_eq!(nbd.disks.len(), 2);
        assert_eq!(nbd.disks[0].capacity, 10_737_418_240);
        let s = c.statistics.as_ref().unwrap();
        assert_eq!(s.delta, Some(-3));
        assert_eq!(s.compression_overflow, Some(1));
        assert_eq!(s.auto_converge_throttle, Some(20));
        assert!(c
            .domain
            .as_ref()
            .unwrap()
            .as_str()
            .contains("<!-- a comment"));
        assert!(c.network.as_ref().unwrap().as_str().contains("802.1Qbh"));
        assert!(c
            .block_dirty_bitmaps
            .as_ref()
            .unwrap()
            .as_str()
            .contains("libvirt-vda-backup-2"));
        assert_eq!(c.capabilities.as_ref().unwrap().len(), 4);
        assert_eq!(c.unknown, vec![RawXml("<allowReboot value='yes'/>".into())]);

        // The identity matches a context for this cookie; its mandatory features only fit
        // a hop that parses all of them, which none does.
        let x = CheckContext {
            expected_name: "web'01 & co",
            expected_uuid: "c0ffee00-1234-4abc-8def-0123456789ab",
            local_host_uuid: HOST_B,
            hop: CookieHop::BeginToPrepare,
            local_lock_driver: Some("sanlock"),
        };
        assert_eq!(
            c.check(&x),
            Err(CookieError::UnsupportedFeature("persistent".into()))
        );
        let mut ok = c.clone();
        ok.mandatory = CookieFlags::LOCKSTATE | CookieFlags::MEMORY_HOTPLUG;
        assert_eq!(ok.check(&x), Ok(()));
    }

    #[test]
    fn cookie_legacy_allow_reboot_anywhere_is_kept_as_unknown() {
        let text = std::str::from_utf8(FULL).unwrap();
        let moved = text.replace("  <allowReboot value='yes'/>\n", "").replace(
            "  <statistics>\n",
            "  <allowReboot value='yes'/>\n  <statistics>\n",
        );
        assert_ne!(moved, text);
        let c = Cookie::parse(moved.as_bytes()).unwrap().unwrap();
        assert_eq!(c.unknown, vec![RawXml("<allowReboot value='yes'/>".into())]);
        // Unknown elements are written last: the libvirt layout comes back.
        assert_eq!(c.format(), FULL);
    }

    #[test]
    fn cookie_golden_vectors_fit_the_cap() {
        for (_, bytes, _, _) in golden() {
            assert!(bytes.len() <= MAX_COOKIE_LEN);
        }
    }
}
