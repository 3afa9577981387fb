//! Golden vectors and hostile inputs for the SPICE wire codec (spec/spice-migration.md §1-§3,
//! spec/qemu-spice-interop.md "Link stage" and "Observed message trace").

mod spice_wire {
    use livemig_core::spice::wire::consts::{
        self, common_cap, main_cap, migrate_data_magic, msg, msgc, ChannelType, LinkErr,
        MigrateFlags,
    };
    use livemig_core::spice::wire::link::{
        decode_auth_mechanism, decode_link_result, decode_ticket, encode_auth_mechanism,
        encode_link_result, encode_ticket,
    };
    use livemig_core::spice::wire::msg::{
        BeginSeamless, ChannelId, DisplayInit, DstInfo, MainInit, MigrateDataHeader, MouseMotion,
        Notify, Ping, Pong, SwitchHost,
    };
    use livemig_core::spice::wire::{
        encode_frame, encode_full, encode_mini, encode_msg, Caps, ClientMsg, FrameBuf, Framer,
        FullHeader, HeaderKind, LinkMess, LinkReply, MiniHeader, ServerMsg, WireError, WireMsg,
    };

    /// Hex with any whitespace; `"..."` runs are ASCII.
    fn hex(s: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let mut parts = s.split('"');
        while let Some(h) = parts.next() {
            let h: String = h.chars().filter(|c| !c.is_whitespace()).collect();
            for i in (0..h.len()).step_by(2) {
                out.push(u8::from_str_radix(&h[i..i + 2], 16).unwrap());
            }
            let Some(text) = parts.next() else { break };
            out.extend_from_slice(text.replace("\\0", "\0").as_bytes());
        }
        out
    }

    fn body_of<M: WireMsg>(m: &M) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode_body(&mut out).unwrap();
        out
    }

    /// §3 example: MIGRATE_BEGIN_SEAMLESS for 127.0.0.1:5931, no TLS, version 1 (34 bytes).
    const BEGIN_SEAMLESS: &str =
        r#"2B 17 FF FF 0A000000 18000000 00000000 00000000 01000000 "127.0.0.1\0""#;

    /// qemu-spice-interop.md: the 42-byte main link (cid 0, common 0x0b, main 0x0f).
    const MAIN_LINK: &str = "52454451 02000000 02000000 1A000000
        00000000 01 00 01000000 01000000 12000000 0B000000 0F000000";

    /// The 38-byte inputs link with the session id 3175435938 of the trace.
    const INPUTS_LINK: &str = "52454451 02000000 02000000 16000000
        A24E45BD 03 00 01000000 00000000 12000000 0B000000";

    /// A DER SubjectPublicKeyInfo shaped like an RSA-1024 key: 162 bytes.
    fn fake_pub_key() -> [u8; 162] {
        let mut k = Vec::new();
        k.extend(hex(
            "30819F 300D06092A864886F70D0101010500 03818D00 308189 02818100",
        ));
        k.extend((0..128u32).map(|i| (i * 7 + 1) as u8));
        k.extend(hex("0203010001"));
        k.try_into().unwrap()
    }

    fn reply_202() -> Vec<u8> {
        let mut v = hex("52454451 02000000 02000000 BA000000 00000000");
        v.extend(fake_pub_key());
        v.extend(hex("01000000 01000000 B2000000 0B000000 09000000"));
        v
    }

    #[test]
    fn begin_seamless_golden_decodes_and_reencodes() {
        let body = hex(BEGIN_SEAMLESS);
        assert_eq!(body.len(), 34);
        let m =
            ServerMsg::decode(ChannelType::Main, msg::main::MIGRATE_BEGIN_SEAMLESS, &body).unwrap();
        let expected = BeginSeamless {
            dst: DstInfo {
                port: Some(5931),
                sport: None,
                host: "127.0.0.1".into(),
                cert_subject: None,
            },
            src_mig_version: 1,
        };
        assert_eq!(m, ServerMsg::MigrateBeginSeamless(expected.clone()));
        assert_eq!(BeginSeamless::decode(&body).unwrap(), expected);
        // sport None is written as 0xFFFF, like QEMU: byte-identical.
        assert_eq!(body_of(&m), body);
        let mut framed = Vec::new();
        encode_msg(HeaderKind::Mini, 0, &m, &mut framed).unwrap();
        assert_eq!(&framed[..6], &hex("7400 22000000")[..]);
        assert_eq!(&framed[6..], &body[..]);
    }

    #[test]
    fn begin_and_switch_host_share_the_20_byte_layout() {
        let dst = DstInfo {
            port: Some(5931),
            sport: Some(5932),
            host: "dst.example".into(),
            cert_subject: Some("CN=dst".into()),
        };
        let body = body_of(&ServerMsg::MigrateBegin(dst.clone()));
        assert_eq!(body.len(), 20 + 12 + 7);
        assert_eq!(
            &body[..20],
            &hex("2B17 2C17 0C000000 14000000 07000000 20000000")[..]
        );
        assert_eq!(DstInfo::decode(&body).unwrap(), dst);
        let sw = SwitchHost::decode(&body).unwrap();
        assert_eq!(sw.host.as_deref(), Some("dst.example"));
        assert_eq!(sw.cert_subject.as_deref(), Some("CN=dst"));
        // SWITCH_HOST may carry a null host; BEGIN may not.
        let mut null_host = body.clone();
        null_host[8..12].copy_from_slice(&[0; 4]);
        assert_eq!(SwitchHost::decode(&null_host).unwrap().host, None);
        assert_eq!(
            DstInfo::decode(&null_host),
            Err(WireError::NullPointer {
                msg_type: msg::main::MIGRATE_BEGIN,
                field: "host"
            })
        );
    }

    #[test]
    fn ports_zero_and_ffff_are_absent() {
        let mut body = hex(BEGIN_SEAMLESS);
        body[0..2].copy_from_slice(&[0, 0]);
        assert_eq!(BeginSeamless::decode(&body).unwrap().dst.port, None);
        body[2..4].copy_from_slice(&[0x2C, 0x17]);
        assert_eq!(BeginSeamless::decode(&body).unwrap().dst.sport, Some(5932));
    }

    #[test]
    fn main_link_golden_42_bytes() {
        let m = LinkMess {
            connection_id: 0,
            channel_type: ChannelType::Main,
            channel_id: 0,
            common_caps: Caps::from_bits(&[
                common_cap::PROTOCOL_AUTH_SELECTION,
                common_cap::AUTH_SPICE,
                common_cap::MINI_HEADER,
            ])
            .unwrap(),
            channel_caps: Caps::from_bits(&[
                main_cap::SEMI_SEAMLESS_MIGRATE,
                main_cap::NAME_AND_UUID,
                main_cap::AGENT_CONNECTED_TOKENS,
                main_cap::SEAMLESS_MIGRATE,
            ])
            .unwrap(),
        };
        assert_eq!(m.common_caps.words(), &[0x0b]);
        assert_eq!(m.channel_caps.words(), &[0x0f]);
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        assert_eq!(out, hex(MAIN_LINK));
        assert_eq!(out.len(), 42);
        assert_eq!(LinkMess::decode(&out).unwrap(), Some((m, 42)));
    }

    #[test]
    fn inputs_link_golden_38_bytes() {
        let m = LinkMess {
            connection_id: 3_175_435_938,
            channel_type: ChannelType::Inputs,
            channel_id: 0,
            common_caps: Caps::single(0x0b),
            channel_caps: Caps::new(),
        };
        let mut out = Vec::new();
        m.encode(&mut out).unwrap();
        assert_eq!(out, hex(INPUTS_LINK));
        assert_eq!(out.len(), 38);
        assert_eq!(LinkMess::decode(&out).unwrap(), Some((m, 38)));
    }

    #[test]
    fn link_reply_202_bytes_incremental() {
        let wire = reply_202();
        assert_eq!(wire.len(), 202);
        for cut in 0..wire.len() {
            assert_eq!(LinkReply::decode(&wire[..cut]), Ok(None), "cut {cut}");
        }
        let mut with_more = wire.clone();
        with_more.extend(hex("00000000")); // the link result right behind
        let (reply, used) = LinkReply::decode(&with_more).unwrap().unwrap();
        assert_eq!(used, 202);
        assert_eq!(reply.error, LinkErr::Ok);
        assert_eq!(reply.pub_key, fake_pub_key());
        assert_eq!(reply.common_caps.words(), &[0x0b]);
        assert_eq!(reply.channel_caps.words(), &[0x09]);
        assert!(reply.channel_caps.test(main_cap::SEAMLESS_MIGRATE));
        assert!(!reply.channel_caps.test(main_cap::AGENT_CONNECTED_TOKENS));
        assert_eq!(decode_link_result(&with_more[used..]), Some(LinkErr::Ok));
        let mut again = Vec::new();
        reply.encode(&mut again).unwrap();
        assert_eq!(again, wire);
        assert_eq!(
            HeaderKind::negotiate(&Caps::single(0x0b), &reply.common_caps),
            HeaderKind::Mini
        );
        assert_eq!(
            HeaderKind::negotiate(&Caps::single(0x03), &reply.common_caps),
            HeaderKind::Full
        );
    }

    #[test]
    fn link_error_reply_is_194_bytes_without_caps() {
        let mut wire = Vec::new();
        LinkReply::error_reply(LinkErr::InvalidMagic)
            .encode(&mut wire)
            .unwrap();
        assert_eq!(wire.len(), 194);
        assert_eq!(&wire[12..20], &hex("B2000000 02000000")[..]);
        assert!(wire[20..].iter().all(|&b| b == 0));
        let (reply, used) = LinkReply::decode(&wire).unwrap().unwrap();
        assert_eq!(used, 194);
        assert_eq!(reply.error, LinkErr::InvalidMagic);
        assert!(reply.common_caps.is_empty() && reply.channel_caps.is_empty());
        // Whatever follows `error` in an error reply is ignored, so it re-encodes stably
        // (found by the spice_link_reply fuzz target).
        let mut noisy = wire.clone();
        noisy[100] = 40;
        noisy[16 + 166] = 7; // a caps count, not looked at either
        let (reply, _) = LinkReply::decode(&noisy).unwrap().unwrap();
        assert_eq!(reply, LinkReply::error_reply(LinkErr::InvalidMagic));
    }

    #[test]
    fn link_reply_hostile_headers() {
        let good = reply_202();
        // Bad magic fails on the first 4 bytes (the server's "REDQ" check, §1.1).
        assert_eq!(
            LinkReply::decode(b"HTTP"),
            Err(WireError::BadMagic { found: 0x5054_5448 })
        );
        let mut v = good.clone();
        v[4] = 1;
        assert_eq!(
            LinkReply::decode(&v),
            Err(WireError::VersionMismatch { major: 1, minor: 2 })
        );
        // A huge declared size fails with only the header there: nothing is allocated.
        let mut v = good[..16].to_vec();
        v[12..16].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            LinkReply::decode(&v),
            Err(WireError::LinkSize {
                size: u32::MAX,
                min: 178,
                max: 4096,
                ..
            })
        ));
        let mut v = good.clone();
        v[12..16].copy_from_slice(&177u32.to_le_bytes());
        assert!(matches!(
            LinkReply::decode(&v),
            Err(WireError::LinkSize { size: 177, .. })
        ));
        // Caps counts over 1024, and caps outside the size.
        let mut v = good.clone();
        v[16 + 166..16 + 170].copy_from_slice(&1025u32.to_le_bytes());
        assert_eq!(
            LinkReply::decode(&v),
            Err(WireError::TooManyCaps {
                count: 1025,
                max: 1024
            })
        );
        let mut v = good.clone();
        v[16 + 166..16 + 170].copy_from_slice(&3u32.to_le_bytes());
        assert!(matches!(
            LinkReply::decode(&v),
            Err(WireError::CapsOutOfRange { num_common: 3, .. })
        ));
        let mut v = good.clone();
        v[16 + 174..16 + 178].copy_from_slice(&100u32.to_le_bytes());
        assert!(matches!(
            LinkReply::decode(&v),
            Err(WireError::CapsOutOfRange {
                caps_offset: 100,
                ..
            })
        ));
        let mut v = good;
        v[16 + 174..16 + 178].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            LinkReply::decode(&v),
            Err(WireError::CapsOutOfRange { .. })
        ));
    }

    #[test]
    fn link_mess_server_checks() {
        let good = hex(MAIN_LINK);
        let mut v = good.clone();
        v[12..16].copy_from_slice(&17u32.to_le_bytes());
        assert!(matches!(
            LinkMess::decode(&v),
            Err(WireError::LinkSize { size: 17, .. })
        ));
        let mut v = good.clone();
        v[16 + 14..16 + 18].copy_from_slice(&17u32.to_le_bytes());
        assert!(matches!(
            LinkMess::decode(&v),
            Err(WireError::CapsOutOfRange {
                caps_offset: 17,
                ..
            })
        ));
        // Too many caps to fit the server's 4096-byte limit cannot be encoded.
        let big = LinkMess {
            connection_id: 1,
            channel_type: ChannelType::Display,
            channel_id: 0,
            common_caps: Caps::from_words(&[0; 1024]).unwrap(),
            channel_caps: Caps::new(),
        };
        let mut out = vec![9];
        assert!(matches!(
            big.encode(&mut out),
            Err(WireError::LinkSize { .. })
        ));
        assert_eq!(out, vec![9]);
        assert!(Caps::from_words(&[0; 1025]).is_err());
    }

    #[test]
    fn auth_ticket_and_result_words() {
        let mut out = Vec::new();
        encode_auth_mechanism(consts::auth_mechanism::SPICE, &mut out);
        assert_eq!(out, hex("01000000"));
        assert_eq!(decode_auth_mechanism(&out), Some(1));
        let ticket = [0xA5u8; 128];
        let mut out = Vec::new();
        encode_ticket(&ticket, &mut out);
        assert_eq!(decode_ticket(&out), Some(&ticket));
        assert_eq!(decode_ticket(&out[..127]), None);
        let mut out = Vec::new();
        encode_link_result(LinkErr::BadConnectionId, &mut out);
        assert_eq!(out, hex("08000000"));
        assert_eq!(decode_link_result(&out), Some(LinkErr::BadConnectionId));
        assert_eq!(decode_link_result(&out[..3]), None);
        assert_eq!(
            decode_link_result(&hex("2A000000")),
            Some(LinkErr::Unknown(42))
        );
    }

    #[test]
    fn main_init_32_bytes() {
        let init = MainInit {
            session_id: 3_175_435_938,
            display_channels_hint: 1,
            supported_mouse_modes: 1,
            current_mouse_mode: 1,
            agent_connected: 0,
            agent_tokens: 10,
            multi_media_time: 0x1234,
            ram_hint: 50_323_456,
        };
        let body = hex("A24E45BD 01000000 01000000 01000000 00000000 0A000000 34120000 00E0FF02");
        assert_eq!(body.len(), 32);
        assert_eq!(
            ServerMsg::decode(ChannelType::Main, msg::main::INIT, &body).unwrap(),
            ServerMsg::MainInit(init)
        );
        assert_eq!(body_of(&ServerMsg::MainInit(init)), body);
        assert!(matches!(
            ServerMsg::decode(ChannelType::Main, msg::main::INIT, &body[..31]),
            Err(WireError::Truncated {
                msg_type: 103,
                need: 32,
                got: 31
            })
        ));
    }

    #[test]
    fn migrate_flags_3_and_migrate_data_header() {
        let flags = hex("03000000");
        let m = ServerMsg::decode(ChannelType::Inputs, msg::MIGRATE, &flags).unwrap();
        assert_eq!(m, ServerMsg::Migrate(MigrateFlags(3)));
        let ServerMsg::Migrate(f) = m else {
            unreachable!()
        };
        assert!(f.need_flush() && f.need_data_transfer());
        assert!(!MigrateFlags(0).need_flush());

        // Inputs MIGRATE_DATA of the trace: "ICMD", version 1, motion_count: 10 bytes.
        let data = hex(r#""ICMD" 01000000 0000"#);
        let m = ServerMsg::decode(ChannelType::Inputs, msg::MIGRATE_DATA, &data).unwrap();
        let ServerMsg::MigrateData(body) = m else {
            panic!("{m:?}")
        };
        assert!(std::ptr::eq(body, &data[..]), "borrowed, not copied");
        let h = MigrateDataHeader::validate_for(ChannelType::Inputs, body).unwrap();
        assert_eq!((h.magic, h.version), (migrate_data_magic::INPUTS, 1));
        assert!(MigrateDataHeader::validate_for(ChannelType::Main, body).is_err());
        // Main needs 65 bytes; version 2 is refused.
        let mut main = hex(r#""MNMD" 01000000"#);
        assert!(MigrateDataHeader::validate_for(ChannelType::Main, &main).is_err());
        main.resize(65, 0);
        assert!(MigrateDataHeader::validate_for(ChannelType::Main, &main).is_ok());
        main[4] = 2;
        assert!(matches!(
            MigrateDataHeader::validate_for(ChannelType::Main, &main),
            Err(WireError::BadMigrateData {
                version: 2,
                len: 65,
                ..
            })
        ));
        assert_eq!(MigrateDataHeader::peek(&main[..7]), None);
        // Forwarded as MSGC_MIGRATE_DATA with the identical body.
        let fwd = ClientMsg::MigrateData(body);
        assert_eq!(fwd.msg_type(), msgc::MIGRATE_DATA);
        assert_eq!(body_of(&fwd), data);
    }

    #[test]
    fn keep_alive_messages() {
        // SET_ACK → ACK_SYNC; PING (with net-test padding) → PONG of 12 bytes.
        assert_eq!(
            ServerMsg::decode(
                ChannelType::Display,
                msg::SET_ACK,
                &hex("01000000 14000000")
            )
            .unwrap(),
            ServerMsg::SetAck(livemig_core::spice::wire::msg::SetAck {
                generation: 1,
                window: 20
            })
        );
        let mut ping = hex("03000000 8877665544332211");
        ping.resize(12 + 256_000, 0);
        let m = ServerMsg::decode(ChannelType::Main, msg::PING, &ping).unwrap();
        let ServerMsg::Ping(p) = m else { panic!() };
        assert_eq!(
            p,
            Ping {
                id: 3,
                timestamp: 0x1122_3344_5566_7788,
                padding_len: 256_000
            }
        );
        let pong = ClientMsg::Pong(Pong::from(p));
        let mut out = Vec::new();
        encode_msg(HeaderKind::Mini, 0, &pong, &mut out).unwrap();
        assert_eq!(out, hex("0300 0C000000 03000000 8877665544332211"));
        let mut out = Vec::new();
        encode_msg(HeaderKind::Mini, 0, &ClientMsg::AckSync(1), &mut out).unwrap();
        assert_eq!(out, hex("0100 04000000 01000000"));
        let mut out = Vec::new();
        encode_msg(HeaderKind::Full, 7, &ClientMsg::Ack, &mut out).unwrap();
        assert_eq!(out, hex("0700000000000000 0200 00000000 00000000"));
    }

    #[test]
    fn notify_53_bytes_from_the_trace() {
        let mut body = hex("0100000000000000 01000000 02000000 00000000 1C000000");
        body.extend_from_slice(b"keyboard channel is insecure\0");
        assert_eq!(body.len(), 53);
        let m = ServerMsg::decode(ChannelType::Main, msg::NOTIFY, &body).unwrap();
        let n = Notify {
            time_stamp: 1,
            severity: consts::notify_severity::WARN,
            visibility: consts::notify_visibility::HIGH,
            what: 0,
            message: "keyboard channel is insecure".into(),
        };
        assert_eq!(m, ServerMsg::Notify(n));
        assert_eq!(body_of(&m), body);
        let mut lying = body.clone();
        lying[20..24].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            ServerMsg::decode(ChannelType::Main, msg::NOTIFY, &lying),
            Err(WireError::Truncated {
                msg_type: msg::NOTIFY,
                need: 24 + u64::from(u32::MAX),
                got: 53
            })
        );
    }

    #[test]
    fn channels_list_and_small_main_messages() {
        let body = hex("03000000 0200 0400 0300");
        assert_eq!(body.len(), 10);
        let m = ServerMsg::decode(ChannelType::Main, msg::main::CHANNELS_LIST, &body).unwrap();
        let expected = vec![
            ChannelId {
                channel_type: ChannelType::Display,
                id: 0,
            },
            ChannelId {
                channel_type: ChannelType::Cursor,
                id: 0,
            },
            ChannelId {
                channel_type: ChannelType::Inputs,
                id: 0,
            },
        ];
        assert_eq!(m, ServerMsg::ChannelsList(expected));
        assert_eq!(body_of(&m), body);
        // A lying count: typed error, no allocation of 2^32 entries.
        let lying = hex("FFFFFFFF 0200");
        assert!(matches!(
            ServerMsg::decode(ChannelType::Main, msg::main::CHANNELS_LIST, &lying),
            Err(WireError::Truncated {
                need: 8_589_934_594,
                got: 6,
                ..
            })
        ));
        let cases: [(u16, &str, ServerMsg<'static>); 6] = [
            (
                msg::main::AGENT_TOKEN,
                "0A000000",
                ServerMsg::AgentToken(10),
            ),
            (
                msg::main::AGENT_CONNECTED_TOKENS,
                "0A000000",
                ServerMsg::AgentConnectedTokens(10),
            ),
            (
                msg::main::MULTI_MEDIA_TIME,
                "01020304",
                ServerMsg::MultiMediaTime(0x0403_0201),
            ),
            (
                msg::main::NAME,
                r#"04000000 "src\0""#,
                ServerMsg::Name("src".into()),
            ),
            (
                msg::main::MIGRATE_DST_SEAMLESS_ACK,
                "",
                ServerMsg::MigrateDstSeamlessAck,
            ),
            (msg::main::MIGRATE_CANCEL, "", ServerMsg::MigrateCancel),
        ];
        for (t, h, expected) in cases {
            let body = hex(h);
            assert_eq!(
                ServerMsg::decode(ChannelType::Main, t, &body).unwrap(),
                expected
            );
            assert_eq!(body_of(&expected), body);
        }
        // DISCONNECTING: time_stamp u64 + reason u32.
        let disc = hex("0200000000000000 07000000");
        let d = ServerMsg::decode(ChannelType::Main, msg::DISCONNECTING, &disc).unwrap();
        let ServerMsg::Disconnecting(d) = d else {
            panic!()
        };
        assert_eq!((d.time_stamp, d.reason), (2, LinkErr::PermissionDenied));
    }

    #[test]
    fn number_spaces_depend_on_channel_and_direction() {
        // 104: CHANNELS_LIST from the server, ATTACH_CHANNELS from the client.
        assert_eq!(
            ClientMsg::decode(ChannelType::Main, msgc::main::ATTACH_CHANNELS, &[]).unwrap(),
            ClientMsg::AttachChannels
        );
        // 111: SWITCH_HOST (main), MOUSE_MOTION_ACK (inputs), pass-through on display.
        assert_eq!(
            ServerMsg::decode(ChannelType::Inputs, 111, &[]).unwrap(),
            ServerMsg::InputsMouseMotionAck
        );
        assert_eq!(
            ServerMsg::decode(ChannelType::Display, 111, &[1, 2]).unwrap(),
            ServerMsg::Other {
                msg_type: 111,
                body: &[1, 2]
            }
        );
        assert_eq!(
            ClientMsg::decode(ChannelType::Main, 111, &[]).unwrap(),
            ClientMsg::MigrateConnectedSeamless
        );
        // LIST (8) is passed through.
        assert!(matches!(
            ServerMsg::decode(ChannelType::Main, msg::LIST, &[0]).unwrap(),
            ServerMsg::Other { msg_type: 8, .. }
        ));
    }

    #[test]
    fn inputs_and_display_client_messages() {
        let motion = ClientMsg::MouseMotion(MouseMotion {
            dx: -1,
            dy: 2,
            buttons_state: 1,
        });
        let body = body_of(&motion);
        assert_eq!(body, hex("FFFFFFFF 02000000 0100"));
        assert_eq!(motion.msg_type(), msgc::inputs::MOUSE_MOTION);
        assert_eq!(
            ClientMsg::decode(ChannelType::Inputs, msgc::inputs::MOUSE_MOTION, &body).unwrap(),
            motion
        );
        let init = ClientMsg::DisplayInit(DisplayInit {
            pixmap_cache_id: 1,
            pixmap_cache_size: 20 << 20,
            glz_dictionary_id: 1,
            glz_dictionary_window_size: -1,
        });
        let body = body_of(&init);
        assert_eq!(body, hex("01 0000400100000000 01 FFFFFFFF"));
        assert_eq!(body.len(), 14);
        assert_eq!(
            ClientMsg::decode(ChannelType::Display, msgc::display::INIT, &body).unwrap(),
            init
        );
        assert_eq!(
            ServerMsg::decode(ChannelType::Inputs, msg::inputs::INIT, &hex("0200")).unwrap(),
            ServerMsg::InputsInit(2)
        );
        assert_eq!(
            body_of(&ClientMsg::MigrateDstDoSeamless(1)),
            hex("01000000")
        );
        assert_eq!(body_of(&ClientMsg::AgentStart(u32::MAX)), hex("FFFFFFFF"));
    }

    #[test]
    fn dst_info_hostile_pointers_and_strings() {
        let t = msg::main::MIGRATE_BEGIN_SEAMLESS;
        let good = hex(BEGIN_SEAMLESS);
        let decode =
            |b: &[u8]| ServerMsg::decode(ChannelType::Main, t, b).map(|m| format!("{m:?}"));
        for cut in 0..24 {
            assert_eq!(
                decode(&good[..cut]),
                Err(WireError::Truncated {
                    msg_type: t,
                    need: 24,
                    got: cut
                })
            );
        }
        for cut in 24..34 {
            assert!(
                matches!(
                    decode(&good[..cut]),
                    Err(WireError::PointerOutOfRange { .. })
                ),
                "cut {cut}"
            );
        }
        let with = |at: usize, v: u32| {
            let mut b = good.clone();
            b[at..at + 4].copy_from_slice(&v.to_le_bytes());
            b
        };
        assert_eq!(
            decode(&with(8, 0)),
            Err(WireError::NullPointer {
                msg_type: t,
                field: "host"
            })
        );
        assert_eq!(
            decode(&with(4, u32::MAX)),
            Err(WireError::PointerOutOfRange {
                msg_type: t,
                field: "host",
                offset: 24,
                size: u32::MAX,
                body_len: 34
            })
        );
        assert!(matches!(
            decode(&with(8, u32::MAX)),
            Err(WireError::PointerOutOfRange {
                offset: u32::MAX,
                ..
            })
        ));
        assert_eq!(
            decode(&with(4, 9)),
            Err(WireError::MissingNul {
                msg_type: t,
                field: "host"
            })
        );
        assert_eq!(
            decode(&with(4, 0)),
            Err(WireError::MissingNul {
                msg_type: t,
                field: "host"
            })
        );
        let mut inner = good.clone();
        inner[27] = 0;
        assert_eq!(
            decode(&inner),
            Err(WireError::InteriorNul {
                msg_type: t,
                field: "host"
            })
        );
        let mut latin = good.clone();
        latin[24] = 0xE9;
        assert_eq!(
            decode(&latin),
            Err(WireError::InvalidUtf8 {
                msg_type: t,
                field: "host"
            })
        );
        // A cert subject pointer past the body.
        let b = with(16, 30);
        let b = {
            let mut b = b;
            b[12..16].copy_from_slice(&10u32.to_le_bytes());
            b
        };
        assert!(matches!(
            decode(&b),
            Err(WireError::PointerOutOfRange {
                field: "cert_subject",
                ..
            })
        ));
        // Encoding refuses what decoding would refuse.
        let bad = ServerMsg::MigrateBegin(DstInfo {
            port: None,
            sport: None,
            host: "a\0b".into(),
            cert_subject: None,
        });
        let mut out = vec![1, 2];
        assert!(matches!(
            encode_msg(HeaderKind::Mini, 0, &bad, &mut out),
            Err(WireError::InteriorNul { field: "host", .. })
        ));
        assert_eq!(out, vec![1, 2], "left untouched on error");
    }

    #[test]
    fn headers_and_framer_basics() {
        let mut out = Vec::new();
        encode_mini(msg::main::INIT, &[1, 2, 3], &mut out).unwrap();
        assert_eq!(out, hex("6700 03000000 010203"));
        assert_eq!(
            MiniHeader::decode(&out),
            Some(MiniHeader {
                msg_type: 103,
                size: 3
            })
        );
        let mut full = Vec::new();
        encode_full(5, msg::PING, &[], &mut full).unwrap();
        assert_eq!(full, hex("0500000000000000 0400 00000000 00000000"));
        assert_eq!(
            FullHeader::decode(&full),
            Some(FullHeader {
                serial: 5,
                msg_type: 4,
                size: 0,
                sub_list: 0
            })
        );
        let framer = Framer::new(HeaderKind::Full);
        let f = framer.decode(&full).unwrap().unwrap();
        assert_eq!((f.msg_type, f.serial, f.consumed), (4, Some(5), 18));
        assert_eq!(framer.needed(&full[..3]).unwrap(), 15);

        // A body over the limit fails as soon as the header is there.
        let mini = Framer::new(HeaderKind::Mini).with_max_body(1024);
        let huge = hex("0200 FFFFFFFF");
        assert_eq!(
            mini.decode(&huge),
            Err(WireError::BodyTooLarge {
                msg_type: 2,
                size: u32::MAX,
                max: 1024
            })
        );
        assert_eq!(
            Framer::new(HeaderKind::Mini).decode(&huge),
            Err(WireError::BodyTooLarge {
                msg_type: 2,
                size: u32::MAX,
                max: 64 << 20
            })
        );
        let mut rx = FrameBuf::new(mini);
        rx.push(&huge);
        assert!(rx.next_frame().is_err());
        assert!(rx.next_frame().is_err(), "the error repeats");

        // Frames iterator over a caller-owned buffer; drain once.
        let mut buf = Vec::new();
        for i in 0..5u8 {
            encode_frame(HeaderKind::Mini, 0, 100 + u16::from(i), &[i; 3], &mut buf).unwrap();
        }
        buf.extend_from_slice(&hex("6900 05000000 01")); // partial
        let mut it = Framer::new(HeaderKind::Mini).frames(&buf);
        let types: Vec<u16> = it.by_ref().map(|f| f.unwrap().msg_type).collect();
        assert_eq!(types, vec![100, 101, 102, 103, 104]);
        assert_eq!(it.consumed(), 45);
        assert_eq!(it.remaining(), &hex("6900 05000000 01")[..]);
        buf.drain(..45);
        assert_eq!(Framer::new(HeaderKind::Mini).needed(&buf).unwrap(), 4);
    }

    #[test]
    fn framebuf_byte_at_a_time_and_owned_frames() {
        let mut wire = Vec::new();
        encode_mini(msg::MIGRATE, &hex("03000000"), &mut wire).unwrap();
        encode_mini(
            msg::MIGRATE_DATA,
            &hex(r#""ICMD" 01000000 0000"#),
            &mut wire,
        )
        .unwrap();
        encode_mini(msg::main::MIGRATE_END, &[], &mut wire).unwrap();
        let mut rx = FrameBuf::new(Framer::new(HeaderKind::Mini));
        let mut got = Vec::new();
        for b in &wire {
            rx.push(std::slice::from_ref(b));
            while let Some(f) = rx.next_owned().unwrap() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            vec![
                (1, hex("03000000")),
                (2, hex(r#""ICMD" 01000000 0000"#)),
                (112, vec![]),
            ]
        );
        assert!(rx.pending().is_empty());
        rx.push(&[1, 2]);
        assert_eq!(rx.take_pending(), vec![1, 2]);
    }

    #[test]
    fn serde_forms() {
        let j = serde_json::to_string(&ChannelType::Inputs).unwrap();
        assert_eq!(j, "\"inputs\"");
        assert_eq!(
            serde_json::to_string(&ChannelType::from_raw(200)).unwrap(),
            "200"
        );
        assert_eq!(
            serde_json::from_str::<ChannelType>("3").unwrap(),
            ChannelType::Inputs
        );
        assert_eq!(
            serde_json::from_str::<ChannelType>("\"webdav\"").unwrap(),
            ChannelType::Webdav
        );
        assert_eq!(
            serde_json::from_str::<ChannelType>("77").unwrap(),
            ChannelType::Unknown(77)
        );
        assert!(serde_json::from_str::<ChannelType>("300").is_err());
        assert!(serde_json::from_str::<ChannelType>("\"nope\"").is_err());
        assert_eq!(
            serde_json::to_string(&LinkErr::PermissionDenied).unwrap(),
            "\"permission_denied\""
        );
        let caps: Caps = serde_json::from_str("[11, 0]").unwrap();
        assert_eq!(caps.words(), &[11, 0]);
        let too_many = format!("[{}]", vec!["0"; 1025].join(","));
        assert!(serde_json::from_str::<Caps>(&too_many).is_err());
        let dst: BeginSeamless = BeginSeamless::decode(&hex(BEGIN_SEAMLESS)).unwrap();
        let j = serde_json::to_value(&dst).unwrap();
        assert_eq!(j["dst"]["port"], 5931);
        assert!(j["dst"]["sport"].is_null());
        for &ct in ChannelType::NAMED {
            assert_eq!(ChannelType::from_raw(ct.to_raw()), ct);
        }
        assert_eq!(
            ChannelType::Usbredir.migrate_data_magic(),
            Some(migrate_data_magic::SPICEVMC)
        );
        assert_eq!(ChannelType::Cursor.migrate_data_magic(), None);
    }

    #[test]
    fn caps_bits() {
        let mut c = Caps::new();
        assert!(!c.test(40));
        c.set(40).unwrap();
        assert_eq!(c.words(), &[0, 1 << 8]);
        assert!(c.test(40) && !c.test(41));
        c.clear(40);
        assert!(!c.test(40));
        assert!(c.set(Caps::MAX_BITS - 1).is_ok());
        assert_eq!(c.len(), 1024);
        assert!(c.set(Caps::MAX_BITS).is_err());
        assert!(!c.test(u32::MAX));
    }
}
