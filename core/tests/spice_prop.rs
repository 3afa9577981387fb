//! Property tests for the SPICE wire codec (spec/spice-migration.md §1-§3): chunking never
//! changes the frames, typed messages round-trip, and no input panics.

mod spice_prop {
    use livemig_core::spice::wire::consts::{msg, ChannelType, LinkErr, MigrateFlags};
    use livemig_core::spice::wire::msg::{
        BeginSeamless, ChannelId, Disconnecting, DisplayInit, DstInfo, MainInit, MouseButton,
        MouseMode, MouseMotion, MousePosition, Notify, Ping, Pong, SetAck, SwitchHost,
        WaitForChannel,
    };
    use livemig_core::spice::wire::{
        encode_frame, encode_msg, Caps, ClientMsg, FrameBuf, Framer, HeaderKind, LinkMess,
        LinkReply, ServerMsg, WireMsg,
    };
    use proptest::prelude::*;

    fn leak(v: Vec<u8>) -> &'static [u8] {
        Box::leak(v.into_boxed_slice())
    }

    fn bytes(max: usize) -> impl Strategy<Value = &'static [u8]> {
        prop::collection::vec(any::<u8>(), 0..max).prop_map(leak)
    }

    fn kind() -> impl Strategy<Value = HeaderKind> {
        prop_oneof![Just(HeaderKind::Mini), Just(HeaderKind::Full)]
    }

    fn port() -> impl Strategy<Value = Option<u16>> {
        prop::option::of(1u16..0xFFFF)
    }

    fn text() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9.:=, -]{0,24}"
    }

    fn any_text() -> impl Strategy<Value = String> {
        "\\PC{0,16}"
    }

    fn dst() -> impl Strategy<Value = DstInfo> {
        (port(), port(), text(), prop::option::of(text())).prop_map(
            |(port, sport, host, cert_subject)| DstInfo {
                port,
                sport,
                host,
                cert_subject,
            },
        )
    }

    fn channel_type() -> impl Strategy<Value = ChannelType> {
        any::<u8>().prop_map(ChannelType::from_raw)
    }

    fn link_err() -> impl Strategy<Value = LinkErr> {
        any::<u32>().prop_map(LinkErr::from_raw)
    }

    /// A server message and a channel it is decoded on.
    fn server_msg() -> impl Strategy<Value = (ChannelType, ServerMsg<'static>)> {
        let common = prop_oneof![
            any::<u32>().prop_map(|f| ServerMsg::Migrate(MigrateFlags(f))),
            bytes(64).prop_map(ServerMsg::MigrateData),
            (any::<u32>(), any::<u32>())
                .prop_map(|(generation, window)| ServerMsg::SetAck(SetAck { generation, window })),
            (any::<u32>(), any::<u64>(), 0u32..600).prop_map(|(id, timestamp, padding_len)| {
                ServerMsg::Ping(Ping {
                    id,
                    timestamp,
                    padding_len,
                })
            }),
            prop::collection::vec((channel_type(), any::<u8>(), any::<u64>()), 0..6).prop_map(
                |v| ServerMsg::WaitForChannels(
                    v.into_iter()
                        .map(
                            |(channel_type, channel_id, message_serial)| WaitForChannel {
                                channel_type,
                                channel_id,
                                message_serial,
                            }
                        )
                        .collect()
                )
            ),
            (any::<u64>(), link_err()).prop_map(|(time_stamp, reason)| {
                ServerMsg::Disconnecting(Disconnecting { time_stamp, reason })
            }),
            (
                any::<u64>(),
                any::<u32>(),
                any::<u32>(),
                any::<u32>(),
                any_text()
            )
                .prop_map(|(time_stamp, severity, visibility, what, message)| {
                    ServerMsg::Notify(Notify {
                        time_stamp,
                        severity,
                        visibility,
                        what,
                        message,
                    })
                }),
        ];
        let main = prop_oneof![
            dst().prop_map(ServerMsg::MigrateBegin),
            (dst(), any::<u32>()).prop_map(|(dst, src_mig_version)| {
                ServerMsg::MigrateBeginSeamless(BeginSeamless {
                    dst,
                    src_mig_version,
                })
            }),
            (
                port(),
                port(),
                prop::option::of(text()),
                prop::option::of(text())
            )
                .prop_map(|(port, sport, host, cert_subject)| {
                    ServerMsg::MigrateSwitchHost(SwitchHost {
                        port,
                        sport,
                        host,
                        cert_subject,
                    })
                }),
            prop::array::uniform8(any::<u32>()).prop_map(|a| ServerMsg::MainInit(MainInit {
                session_id: a[0],
                display_channels_hint: a[1],
                supported_mouse_modes: a[2],
                current_mouse_mode: a[3],
                agent_connected: a[4],
                agent_tokens: a[5],
                multi_media_time: a[6],
                ram_hint: a[7],
            })),
            prop::collection::vec((channel_type(), any::<u8>()), 0..12).prop_map(|v| {
                ServerMsg::ChannelsList(
                    v.into_iter()
                        .map(|(channel_type, id)| ChannelId { channel_type, id })
                        .collect(),
                )
            }),
            (any::<u16>(), any::<u16>()).prop_map(|(supported, current)| ServerMsg::MouseMode(
                MouseMode { supported, current }
            )),
            any::<u32>().prop_map(ServerMsg::MultiMediaTime),
            link_err().prop_map(ServerMsg::AgentDisconnected),
            bytes(64).prop_map(ServerMsg::AgentData),
            any::<u32>().prop_map(ServerMsg::AgentToken),
            any::<u32>().prop_map(ServerMsg::AgentConnectedTokens),
            any_text().prop_map(ServerMsg::Name),
            any::<[u8; 16]>().prop_map(ServerMsg::Uuid),
            prop_oneof![
                Just(ServerMsg::MigrateCancel),
                Just(ServerMsg::AgentConnected),
                Just(ServerMsg::MigrateEnd),
                Just(ServerMsg::MigrateDstSeamlessAck),
                Just(ServerMsg::MigrateDstSeamlessNack),
            ],
        ];
        let inputs = prop_oneof![
            any::<u16>().prop_map(ServerMsg::InputsInit),
            any::<u16>().prop_map(ServerMsg::InputsKeyModifiers),
            Just(ServerMsg::InputsMouseMotionAck),
        ];
        prop_oneof![
            (channel_type(), common),
            main.prop_map(|m| (ChannelType::Main, m)),
            inputs.prop_map(|m| (ChannelType::Inputs, m)),
            (100u16.., bytes(64)).prop_map(|(msg_type, body)| {
                (ChannelType::Cursor, ServerMsg::Other { msg_type, body })
            }),
            bytes(16).prop_map(|body| (
                ChannelType::Main,
                ServerMsg::Other {
                    msg_type: msg::LIST,
                    body
                }
            )),
        ]
    }

    fn client_msg() -> impl Strategy<Value = (ChannelType, ClientMsg<'static>)> {
        let common = prop_oneof![
            any::<u32>().prop_map(ClientMsg::AckSync),
            Just(ClientMsg::Ack),
            (any::<u32>(), any::<u64>())
                .prop_map(|(id, timestamp)| ClientMsg::Pong(Pong { id, timestamp })),
            Just(ClientMsg::MigrateFlushMark),
            bytes(64).prop_map(ClientMsg::MigrateData),
            (any::<u64>(), link_err()).prop_map(|(time_stamp, reason)| {
                ClientMsg::Disconnecting(Disconnecting { time_stamp, reason })
            }),
        ];
        let main = prop_oneof![
            any::<u64>().prop_map(ClientMsg::ClientInfo),
            Just(ClientMsg::MigrateConnected),
            Just(ClientMsg::MigrateConnectError),
            Just(ClientMsg::AttachChannels),
            any::<u16>().prop_map(ClientMsg::MouseModeRequest),
            any::<u32>().prop_map(ClientMsg::AgentStart),
            bytes(64).prop_map(ClientMsg::AgentData),
            any::<u32>().prop_map(ClientMsg::AgentToken),
            Just(ClientMsg::MigrateEnd),
            any::<u32>().prop_map(ClientMsg::MigrateDstDoSeamless),
            Just(ClientMsg::MigrateConnectedSeamless),
        ];
        let inputs = prop_oneof![
            any::<u32>().prop_map(ClientMsg::KeyDown),
            any::<u32>().prop_map(ClientMsg::KeyUp),
            any::<u16>().prop_map(ClientMsg::KeyModifiers),
            (any::<i32>(), any::<i32>(), any::<u16>()).prop_map(|(dx, dy, buttons_state)| {
                ClientMsg::MouseMotion(MouseMotion {
                    dx,
                    dy,
                    buttons_state,
                })
            }),
            (any::<u32>(), any::<u32>(), any::<u16>(), any::<u8>()).prop_map(
                |(x, y, buttons_state, display_id)| ClientMsg::MousePosition(MousePosition {
                    x,
                    y,
                    buttons_state,
                    display_id,
                })
            ),
            (any::<u8>(), any::<u16>()).prop_map(|(button, buttons_state)| {
                ClientMsg::MousePress(MouseButton {
                    button,
                    buttons_state,
                })
            }),
            (any::<u8>(), any::<u16>()).prop_map(|(button, buttons_state)| {
                ClientMsg::MouseRelease(MouseButton {
                    button,
                    buttons_state,
                })
            }),
        ];
        prop_oneof![
            (channel_type(), common),
            main.prop_map(|m| (ChannelType::Main, m)),
            inputs.prop_map(|m| (ChannelType::Inputs, m)),
            (any::<u8>(), any::<i64>(), any::<u8>(), any::<i32>()).prop_map(|(a, b, c, d)| (
                ChannelType::Display,
                ClientMsg::DisplayInit(DisplayInit {
                    pixmap_cache_id: a,
                    pixmap_cache_size: b,
                    glz_dictionary_id: c,
                    glz_dictionary_window_size: d,
                })
            )),
            (100u16.., bytes(64)).prop_map(|(msg_type, body)| {
                (ChannelType::Record, ClientMsg::Other { msg_type, body })
            }),
        ]
    }

    /// Split `wire` at the given (sorted, deduplicated) fractions.
    fn chunks<'a>(wire: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut points: Vec<usize> = cuts.iter().map(|c| c % (wire.len() + 1)).collect();
        points.sort_unstable();
        points.dedup();
        let mut out = Vec::new();
        let mut prev = 0;
        for p in points.into_iter().chain(std::iter::once(wire.len())) {
            out.push(&wire[prev..p]);
            prev = p;
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Any message stream split at arbitrary chunk boundaries decodes to the same frames,
        /// through FrameBuf and through a caller-owned Vec drained once per chunk.
        #[test]
        fn spice_chunking_never_changes_frames(
            kind in kind(),
            msgs in prop::collection::vec(
                (any::<u16>(), any::<u64>(), prop::collection::vec(any::<u8>(), 0..300)),
                0..24,
            ),
            cuts in prop::collection::vec(any::<usize>(), 0..40),
        ) {
            let mut wire = Vec::new();
            for (t, serial, body) in &msgs {
                encode_frame(kind, *serial, *t, body, &mut wire).unwrap();
            }
            let expected: Vec<(u16, Option<u64>, Vec<u8>)> = msgs
                .iter()
                .map(|(t, s, b)| (*t, (kind == HeaderKind::Full).then_some(*s), b.clone()))
                .collect();

            let framer = Framer::new(kind);
            let mut rx = FrameBuf::new(framer);
            let mut got = Vec::new();
            let mut owned_rx: Vec<u8> = Vec::new();
            let mut got2 = Vec::new();
            for chunk in chunks(&wire, &cuts) {
                rx.push(chunk);
                while let Some(f) = rx.next_frame().unwrap() {
                    got.push((f.msg_type, f.serial, f.body.to_vec()));
                }
                owned_rx.extend_from_slice(chunk);
                let mut it = framer.frames(&owned_rx);
                for f in it.by_ref() {
                    let f = f.unwrap();
                    got2.push((f.msg_type, f.serial, f.body.to_vec()));
                }
                let used = it.consumed();
                owned_rx.drain(..used);
            }
            prop_assert_eq!(&got, &expected);
            prop_assert_eq!(&got2, &expected);
            prop_assert!(rx.pending().is_empty());
            prop_assert!(owned_rx.is_empty());
        }

        /// Server messages: encode → frame → decode gives the same value.
        #[test]
        fn spice_server_msgs_round_trip(
            (channel, m) in server_msg(),
            kind in kind(),
            serial in any::<u64>(),
        ) {
            let mut wire = Vec::new();
            encode_msg(kind, serial, &m, &mut wire).unwrap();
            let f = Framer::new(kind).decode(&wire).unwrap().unwrap();
            prop_assert_eq!(f.consumed, wire.len());
            prop_assert_eq!(f.msg_type, m.msg_type());
            let back = ServerMsg::from_frame(channel, &f).unwrap();
            prop_assert_eq!(&back, &m);
            // And the body is canonical: re-encoding is byte-identical.
            let mut again = Vec::new();
            back.encode_body(&mut again).unwrap();
            prop_assert_eq!(&again[..], f.body);
        }

        /// Client messages: encode → decode (server side) gives the same value.
        #[test]
        fn spice_client_msgs_round_trip((channel, m) in client_msg(), kind in kind()) {
            let mut wire = Vec::new();
            encode_msg(kind, 1, &m, &mut wire).unwrap();
            let f = Framer::new(kind).decode(&wire).unwrap().unwrap();
            prop_assert_eq!(ClientMsg::decode(channel, f.msg_type, f.body).unwrap(), m);
        }

        /// Link message and reply round trips, and every proper prefix waits for more.
        #[test]
        fn spice_link_round_trip(
            connection_id in any::<u32>(),
            channel_type in channel_type(),
            channel_id in any::<u8>(),
            common in prop::collection::vec(any::<u32>(), 0..4),
            channel in prop::collection::vec(any::<u32>(), 0..4),
            key in prop::collection::vec(any::<u8>(), 162),
            err in link_err(),
        ) {
            let m = LinkMess {
                connection_id,
                channel_type,
                channel_id,
                common_caps: Caps::from_words(&common).unwrap(),
                channel_caps: Caps::from_words(&channel).unwrap(),
            };
            let mut wire = Vec::new();
            m.encode(&mut wire).unwrap();
            for cut in 0..wire.len() {
                prop_assert_eq!(LinkMess::decode(&wire[..cut]).unwrap(), None);
            }
            prop_assert_eq!(LinkMess::decode(&wire).unwrap(), Some((m.clone(), wire.len())));

            let mut reply = LinkReply {
                error: LinkErr::Ok,
                pub_key: key.try_into().unwrap(),
                common_caps: m.common_caps.clone(),
                channel_caps: m.channel_caps.clone(),
            };
            if !err.is_ok() {
                reply = LinkReply::error_reply(err);
            }
            let mut wire = Vec::new();
            reply.encode(&mut wire).unwrap();
            for cut in 0..wire.len() {
                prop_assert_eq!(LinkReply::decode(&wire[..cut]).unwrap(), None);
            }
            prop_assert_eq!(LinkReply::decode(&wire).unwrap(), Some((reply, wire.len())));
        }

        /// Arbitrary bytes never panic any decoder, and whatever decodes re-encodes to
        /// something that decodes to the same value.
        #[test]
        fn spice_arbitrary_bytes_never_panic(
            channel in any::<u8>(),
            msg_type in prop_oneof![1u16..9, 100u16..120, any::<u16>()],
            body in prop::collection::vec(any::<u8>(), 0..200),
            max in prop_oneof![Just(0u32), 1u32..64, Just(u32::MAX)],
        ) {
            let channel = ChannelType::from_raw(channel % 12);
            if let Ok(m) = ServerMsg::decode(channel, msg_type, &body) {
                let mut out = Vec::new();
                m.encode_body(&mut out).unwrap();
                prop_assert_eq!(ServerMsg::decode(channel, msg_type, &out).unwrap(), m);
            }
            if let Ok(m) = ClientMsg::decode(channel, msg_type, &body) {
                let mut out = Vec::new();
                m.encode_body(&mut out).unwrap();
                prop_assert_eq!(ClientMsg::decode(channel, msg_type, &out).unwrap(), m);
            }
            let _ = LinkReply::decode(&body);
            let _ = LinkMess::decode(&body);
            for kind in [HeaderKind::Mini, HeaderKind::Full] {
                let framer = Framer::new(kind).with_max_body(max);
                let _ = framer.needed(&body);
                for f in framer.frames(&body).flatten() {
                    prop_assert!(f.body.len() as u64 <= u64::from(max));
                }
            }
        }

        /// Golden link/link-reply headers with random tails and mutations never panic.
        #[test]
        fn spice_mutated_link_never_panics(
            pos in any::<usize>(),
            val in any::<u8>(),
            extra in prop::collection::vec(any::<u8>(), 0..300),
        ) {
            let mut reply = vec![0x52, 0x45, 0x44, 0x51, 2, 0, 0, 0, 2, 0, 0, 0];
            reply.extend_from_slice(&((178 + extra.len() / 4 * 4) as u32).to_le_bytes());
            reply.extend(std::iter::repeat_n(0u8, 178));
            reply.extend_from_slice(&extra);
            let i = 16 + pos % (reply.len() - 16);
            reply[i] = val;
            let _ = LinkReply::decode(&reply);
            let _ = LinkMess::decode(&reply);
        }
    }
}
