//! The SPICE migration scenario corpus: every client path of spec/spice-migration.md §4
//! (seamless, semi-seamless, cancel, failed target links, policy refusal, timeouts,
//! SWITCH_HOST, TLS/port selection, source aborts, hostile servers), run through
//! [`Network`] against the simulated servers of [`crate::spice_sim`] and recorded as traces
//! (`tests/traces/spice/<name>.jsonl`, `Setup::SpiceSession`).
//!
//! A scenario is data: the session's configuration, the servers (index 0 is the source,
//! 1 the destination), the application's stream and a script of [`Step`]s. After each step
//! the network runs until nothing is in flight.

use livemig_core::spice::session::{ChannelRef, Endpoint, SessionConfig};
use livemig_core::spice::wire::consts::{msg, msgc, ChannelType, LinkErr};

use crate::spice_sim::{
    dst_info_body, mini_frame, Chunking, DstTarget, Network, ServerConfig, ServerFault,
};

/// Main (1, 0).
pub const MAIN: ChannelRef = ChannelRef::MAIN;
/// Display (2, 0).
pub const DISPLAY: ChannelRef = ChannelRef {
    kind: ChannelType::Display,
    id: 0,
};
/// Inputs (3, 0).
pub const INPUTS: ChannelRef = ChannelRef {
    kind: ChannelType::Inputs,
    id: 0,
};
/// Cursor (4, 0).
pub const CURSOR: ChannelRef = ChannelRef {
    kind: ChannelType::Cursor,
    id: 0,
};

/// Index of the source server.
pub const SRC: usize = 0;
/// Index of the destination server.
pub const DST: usize = 1;

/// The shared password of the simulated servers.
pub const PASSWORD: &str = "s3cret";
/// The source's session id (the one of the probe's trace).
pub const SRC_SESSION_ID: u32 = 3_175_435_938;
/// The destination's session id for fresh clients (after SWITCH_HOST).
pub const DST_SESSION_ID: u32 = 0x2E5A_0001;
/// A certificate subject.
pub const SUBJECT: &str = "C=XX,O=Test,CN=dst.example";

/// One scripted step.
#[derive(Clone, Debug)]
pub enum Step {
    /// `SessionInput::Start`.
    Start,
    /// The source announces the destination as configured (`client_migrate_info`).
    Begin,
    /// The source announces this target.
    BeginTo(DstTarget),
    /// The VM migration ends on the source (`spice_server_migrate_end`).
    End {
        /// Whether it completed.
        completed: bool,
    },
    /// The source sends MIGRATE_CANCEL.
    Cancel,
    /// The application stream starts (one message every `app_every` ticks).
    AppOn,
    /// The rest of the application stream is sent now.
    AppFlush,
    /// A server sends `count` drawing messages on a channel.
    Burst {
        /// Server index.
        server: usize,
        /// Channel.
        channel: ChannelRef,
        /// How many.
        count: u32,
    },
    /// A server pings a channel.
    Ping {
        /// Server index.
        server: usize,
        /// Channel.
        channel: ChannelRef,
    },
    /// A server writes raw bytes on a channel's connection (`None`: its latest connection).
    Raw {
        /// Server index.
        server: usize,
        /// Channel.
        channel: Option<ChannelRef>,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The source dies: every connection closes.
    SourceAbort,
    /// The destination dies: every connection closes.
    DestinationAbort,
    /// The clock jumps to the session's deadline.
    Timeout,
    /// These steps with nothing delivered in between.
    Together(Vec<Step>),
}

/// One scenario.
#[derive(Clone, Debug)]
pub struct SpiceScenario {
    /// File stem of its trace.
    pub name: String,
    /// The session's configuration.
    pub config: SessionConfig,
    /// The servers: source, destination.
    pub servers: Vec<ServerConfig>,
    /// The host's answer to `CheckTarget`.
    pub policy_allows: bool,
    /// The application's messages.
    pub app: Vec<(ChannelRef, u16, Vec<u8>)>,
    /// One application message every this many ticks.
    pub app_every: u64,
    /// The script.
    pub steps: Vec<Step>,
}

/// The source as QEMU runs it: main, display, inputs; seamless on.
pub fn source() -> ServerConfig {
    let mut s = ServerConfig::new("src", "src.example", 5930, SRC_SESSION_ID);
    s.password = PASSWORD.into();
    s.channels = vec![DISPLAY, INPUTS];
    s.key_seed = 1;
    s
}

/// The destination, same devices, plain port 5931.
pub fn destination() -> ServerConfig {
    let mut s = ServerConfig::new("dst", "dst.example", 5931, DST_SESSION_ID);
    s.password = PASSWORD.into();
    s.channels = vec![DISPLAY, INPUTS];
    s.key_seed = 2;
    s
}

/// The session's configuration: the source's plain port, the shared password.
pub fn session_config() -> SessionConfig {
    let mut c = SessionConfig::new(Endpoint {
        host: "src.example".into(),
        port: Some(5930),
        tls_port: None,
        cert_subject: None,
    });
    c.password = PASSWORD.into();
    c
}

/// `n` application messages spread over main (AGENT_DATA), inputs (KEY_DOWN) and display
/// (a STREAM_REPORT-numbered message), each carrying its sequence number.
pub fn mixed_stream(n: u32) -> Vec<(ChannelRef, u16, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let seq = i.to_le_bytes().to_vec();
            match i % 3 {
                0 => (
                    MAIN,
                    msgc::main::AGENT_DATA,
                    [seq, b"agent".to_vec()].concat(),
                ),
                1 => (INPUTS, msgc::inputs::KEY_DOWN, seq),
                _ => (DISPLAY, 104, seq),
            }
        })
        .collect()
}

/// `n` MOUSE_MOTION messages on inputs (dx = i + 1, dy = −i, no button).
pub fn motions(n: u32) -> Vec<(ChannelRef, u16, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let mut b = Vec::new();
            b.extend_from_slice(&(i as i32 + 1).to_le_bytes());
            b.extend_from_slice(&(-(i as i32)).to_le_bytes());
            b.extend_from_slice(&0u16.to_le_bytes());
            (INPUTS, msgc::inputs::MOUSE_MOTION, b)
        })
        .collect()
}

fn sc(name: &str, steps: Vec<Step>) -> SpiceScenario {
    SpiceScenario {
        name: name.into(),
        config: session_config(),
        servers: vec![source(), destination()],
        policy_allows: true,
        app: Vec::new(),
        app_every: 1,
        steps,
    }
}

fn with_fault(mut s: SpiceScenario, server: usize, fault: ServerFault) -> SpiceScenario {
    s.servers[server].fault = Some(fault);
    s
}

fn pseudo_random(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn target(port: u16, sport: u16, subject: Option<&str>) -> DstTarget {
    DstTarget {
        host: "dst.example".into(),
        port,
        sport,
        cert_subject: subject.map(str::to_owned),
    }
}

fn raw(server: usize, channel: ChannelRef, bytes: Vec<u8>) -> Step {
    Step::Raw {
        server,
        channel: Some(channel),
        bytes,
    }
}

/// Every scenario of the corpus.
pub fn corpus() -> Vec<SpiceScenario> {
    use Step::*;
    let seamless = || vec![Start, Begin, End { completed: true }];
    let mut v = Vec::new();

    // Seamless, main + display + inputs, with flow-controlled display bursts on both sides.
    v.push(sc(
        "seamless-main-inputs-display",
        vec![
            Start,
            Burst {
                server: SRC,
                channel: DISPLAY,
                count: 100,
            },
            Ping {
                server: SRC,
                channel: INPUTS,
            },
            Begin,
            End { completed: true },
            Burst {
                server: DST,
                channel: DISPLAY,
                count: 100,
            },
            Ping {
                server: DST,
                channel: MAIN,
            },
        ],
    ));
    // The source's display burst is still blocked on acks when MIGRATE goes out: the
    // client keeps acking s1 through MIGRATE / MIGRATE_DATA, so nothing stalls.
    v.push(sc(
        "seamless-display-burst-during-switch",
        vec![
            Start,
            Begin,
            Together(vec![
                Burst {
                    server: SRC,
                    channel: DISPLAY,
                    count: 97,
                },
                End { completed: true },
            ]),
        ],
    ));
    // A flag-0 channel (cursor) switches at once.
    let mut s = sc("seamless-with-cursor", seamless());
    for srv in &mut s.servers {
        srv.channels = vec![DISPLAY, CURSOR, INPUTS];
    }
    v.push(s);
    // Application traffic on every channel, continuously across the switch.
    let mut s = sc(
        "seamless-app-stream",
        vec![Start, AppOn, Begin, End { completed: true }, AppFlush],
    );
    s.app = mixed_stream(150);
    s.app_every = 2;
    v.push(s);
    // Mouse motions across the switch: the acks (every 4th) from both servers.
    let mut s = sc(
        "seamless-motion-acks",
        vec![Start, AppOn, Begin, End { completed: true }, AppFlush],
    );
    s.app = motions(64);
    s.app_every = 2;
    v.push(s.clone());
    // Control: one motion is lost on the way to the source.
    s.name = "seamless-motion-acks-lost-control".into();
    v.push(with_fault(s, SRC, ServerFault::LoseMotion(3)));

    // Semi-seamless: the target NACKs, lacks SEAMLESS, or the source sends plain BEGIN.
    let semi = || {
        vec![
            Start,
            Begin,
            End { completed: true },
            Ping {
                server: DST,
                channel: MAIN,
            },
        ]
    };
    v.push(with_fault(
        sc("semi-dst-nack", semi()),
        DST,
        ServerFault::Nack,
    ));
    let mut s = sc("semi-dst-without-seamless-cap", semi());
    s.servers[DST].main_caps = 1; // SEMI_SEAMLESS only
    v.push(s);
    let mut s = sc("semi-plain-begin", semi());
    s.servers[SRC].seamless_migration = false;
    v.push(s);
    // The application sends around the semi-seamless switch.
    let mut s = sc(
        "semi-app-stream",
        vec![Start, AppOn, Begin, End { completed: true }, AppFlush],
    );
    s.servers[SRC].seamless_migration = false;
    s.app = mixed_stream(90);
    s.app_every = 2;
    v.push(s);

    // MIGRATE_CANCEL after the client linked the target: stays on the source.
    let mut s = sc(
        "cancel-after-connect",
        vec![
            Start,
            Begin,
            Cancel,
            Ping {
                server: SRC,
                channel: MAIN,
            },
            Ping {
                server: SRC,
                channel: INPUTS,
            },
            AppFlush,
        ],
    );
    s.app = mixed_stream(6);
    v.push(s);
    // The VM migration fails: MIGRATE_CANCEL from spice_server_migrate_end(false).
    v.push(sc(
        "migration-failed-cancel",
        vec![
            Start,
            Begin,
            End { completed: false },
            Ping {
                server: SRC,
                channel: MAIN,
            },
        ],
    ));

    // Target failures → CONNECT_ERROR on the source.
    let fail = |name: &str| {
        sc(
            name,
            vec![
                Start,
                Begin,
                Ping {
                    server: SRC,
                    channel: MAIN,
                },
            ],
        )
    };
    v.push(with_fault(
        fail("target-link-refused"),
        DST,
        ServerFault::RefuseLink {
            channel: DISPLAY,
            error: LinkErr::PermissionDenied,
        },
    ));
    v.push(with_fault(
        fail("target-unreachable"),
        DST,
        ServerFault::Unreachable,
    ));
    let mut s = fail("target-refused-by-policy");
    s.policy_allows = false;
    v.push(s);
    // The target lacks a channel the source has: CHANNEL_NOT_AVAILABLE in its link result.
    let mut s = fail("target-channel-not-available");
    s.servers[DST].channels = vec![INPUTS];
    v.push(s);
    v.push(with_fault(
        sc("target-connect-timeout", vec![Start, Begin, Timeout]),
        DST,
        ServerFault::Silent,
    ));
    v.push(with_fault(
        sc("target-seamless-ack-lost", vec![Start, Begin, Timeout]),
        DST,
        ServerFault::IgnoreDoSeamless,
    ));

    // SWITCH_HOST: the migration completes before the client linked the target.
    v.push(sc(
        "switch-host",
        vec![
            Start,
            End { completed: true },
            Ping {
                server: DST,
                channel: MAIN,
            },
        ],
    ));
    // SWITCH_HOST while the client is still linking the target it was announced: the VM
    // migration completed first (a small idle guest under libvirt, whose Perform sends
    // client_migrate_info and migrates at once). The session gives the target up and
    // switches (§4: SWITCH_HOST from any state). Here the target never answers
    // DST_DO_SEAMLESS, so every target link is up when SWITCH_HOST comes ...
    v.push(with_fault(
        sc(
            "switch-host-while-linking-target",
            vec![
                Start,
                Begin,
                End { completed: true },
                Ping {
                    server: DST,
                    channel: MAIN,
                },
            ],
        ),
        DST,
        ServerFault::IgnoreDoSeamless,
    ));
    // ... and here SWITCH_HOST follows BEGIN_SEAMLESS at once, while the host is still asked
    // whether the target may be contacted.
    v.push(sc(
        "switch-host-while-checking-target",
        vec![
            Start,
            Together(vec![Begin, End { completed: true }]),
            Ping {
                server: DST,
                channel: MAIN,
            },
        ],
    ));
    // SWITCH_HOST after a CONNECT_ERROR: the policy refuses again.
    let mut s = sc(
        "switch-host-refused-by-policy",
        vec![Start, Begin, End { completed: true }],
    );
    s.policy_allows = false;
    v.push(s);

    // Ports and TLS (invariant 15).
    let tls = |name: &str, t: DstTarget| {
        let mut s = sc(name, vec![Start, BeginTo(t), End { completed: true }]);
        s.servers[DST].tls_port = Some(5932);
        s
    };
    v.push(tls(
        "begin-tls-subject",
        target(0xFFFF, 5932, Some(SUBJECT)),
    ));
    v.push(tls("begin-tls-hostname", target(0, 5932, None)));
    v.push(tls(
        "begin-both-ports-prefers-tls",
        target(5931, 5932, None),
    ));
    v.push(tls("begin-plain-port-sport-zero", target(5931, 0, None)));
    let mut s = tls("begin-no-usable-port", target(0xFFFF, 0, None));
    s.steps = vec![
        Start,
        BeginTo(target(0xFFFF, 0, None)),
        Ping {
            server: SRC,
            channel: MAIN,
        },
    ];
    v.push(s);
    let mut s = tls(
        "begin-both-ports-tls-not-preferred",
        target(5931, 5932, None),
    );
    s.config.prefer_tls = false;
    v.push(s);

    // The source dies during the migration.
    v.push(sc("source-aborts-armed", vec![Start, Begin, SourceAbort]));
    v.push(with_fault(
        sc(
            "source-aborts-mid-switch",
            vec![
                Start,
                Begin,
                End { completed: true },
                Ping {
                    server: DST,
                    channel: MAIN,
                },
            ],
        ),
        SRC,
        ServerFault::AbortAfterMainData,
    ));

    // The destination dies after the client linked it: the session stays on the source
    // until the source, whose VM migration then fails, sends MIGRATE_CANCEL.
    v.push(sc(
        "target-dies-while-armed",
        vec![
            Start,
            Begin,
            DestinationAbort,
            End { completed: false },
            Ping {
                server: SRC,
                channel: MAIN,
            },
            Begin,
        ],
    ));

    // Authentication.
    let mut s = sc("link-wrong-password", vec![Start]);
    s.config.password = "wrong".into();
    v.push(s);

    // Hostile or broken servers: typed errors, no panic, the session goes on where it can.
    let after = |server: usize, channel: ChannelRef| Ping { server, channel };
    let begin_body = dst_info_body(&target(5931, 0xFFFF, None), Some(1));
    v.push(sc(
        "hostile-truncated-begin",
        vec![
            Start,
            raw(
                SRC,
                MAIN,
                mini_frame(msg::main::MIGRATE_BEGIN_SEAMLESS, &begin_body[..10]),
            ),
            after(SRC, MAIN),
        ],
    ));
    let mut bad_ptr = begin_body.clone();
    bad_ptr[8..12].copy_from_slice(&200u32.to_le_bytes());
    v.push(sc(
        "hostile-begin-bad-pointer",
        vec![
            Start,
            raw(
                SRC,
                MAIN,
                mini_frame(msg::main::MIGRATE_BEGIN_SEAMLESS, &bad_ptr),
            ),
            after(SRC, MAIN),
        ],
    ));
    let mut no_nul = begin_body.clone();
    if let Some(last) = no_nul.last_mut() {
        *last = b'x';
    }
    v.push(sc(
        "hostile-begin-host-without-nul",
        vec![
            Start,
            raw(
                SRC,
                MAIN,
                mini_frame(msg::main::MIGRATE_BEGIN_SEAMLESS, &no_nul),
            ),
            after(SRC, MAIN),
        ],
    ));
    v.push(sc(
        "hostile-oversized-body-inputs",
        vec![
            Start,
            raw(SRC, INPUTS, vec![101, 0, 0xF0, 0xFF, 0xFF, 0xFF, 1, 2, 3]),
            after(SRC, MAIN),
        ],
    ));
    v.push(sc(
        "hostile-oversized-body-main",
        vec![Start, raw(SRC, MAIN, vec![4, 0, 0, 0, 0, 0x40, 0, 0])],
    ));
    v.push(sc(
        "hostile-garbage-display",
        vec![
            Start,
            raw(SRC, DISPLAY, pseudo_random(7, 300)),
            after(SRC, MAIN),
        ],
    ));
    v.push(sc(
        "hostile-bad-channels-list",
        vec![
            Start,
            raw(
                SRC,
                MAIN,
                mini_frame(msg::main::CHANNELS_LIST, &[0xE8, 3, 0, 0, 2, 0]),
            ),
            after(SRC, MAIN),
        ],
    ));
    v.push(sc(
        "hostile-short-main-init",
        vec![
            Start,
            raw(SRC, MAIN, mini_frame(msg::main::INIT, &[1, 2, 3, 4])),
            after(SRC, MAIN),
        ],
    ));
    v.push(sc(
        "hostile-migrate-while-idle",
        vec![
            Start,
            raw(SRC, INPUTS, mini_frame(msg::MIGRATE, &3u32.to_le_bytes())),
            raw(SRC, MAIN, mini_frame(msg::MIGRATE_DATA, b"MNMD")),
            Begin,
            End { completed: true },
        ],
    ));
    // Then the source force-disconnects the client (10 s later in spice-server).
    v.push(with_fault(
        sc(
            "hostile-no-migrate-data-after-flush",
            vec![Start, Begin, End { completed: true }, SourceAbort],
        ),
        SRC,
        ServerFault::NoDataAfterFlush(ChannelType::Inputs),
    ));
    v.push(with_fault(
        sc(
            "hostile-garbage-link-reply",
            vec![
                Start,
                Begin,
                Step::Raw {
                    server: DST,
                    channel: None,
                    bytes: pseudo_random(11, 64),
                },
                after(SRC, MAIN),
            ],
        ),
        DST,
        ServerFault::Silent,
    ));
    let mut short_reply = Vec::new();
    for w in [0x5144_4552u32, 2, 2, 10] {
        short_reply.extend_from_slice(&w.to_le_bytes());
    }
    short_reply.extend_from_slice(&[0; 10]);
    v.push(with_fault(
        sc(
            "hostile-short-link-reply",
            vec![
                Start,
                Begin,
                Step::Raw {
                    server: DST,
                    channel: None,
                    bytes: short_reply,
                },
                after(SRC, MAIN),
            ],
        ),
        DST,
        ServerFault::Silent,
    ));
    v
}

/// The scenario `name`.
pub fn scenario(name: &str) -> SpiceScenario {
    corpus()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no SPICE scenario {name}"))
}

/// Run a scenario with whole server writes.
pub fn run(s: &SpiceScenario) -> Network {
    run_with(s, Chunking::Whole)
}

/// Run a scenario with the given chunking of server→client bytes.
pub fn run_with(s: &SpiceScenario, chunking: Chunking) -> Network {
    let mut net = Network::new(s.config.clone(), s.servers.clone(), chunking);
    net.policy_allows = s.policy_allows;
    net.app.queue = s.app.iter().cloned().collect();
    net.app.every = s.app_every;
    for step in &s.steps {
        apply(&mut net, step);
        net.run();
    }
    net
}

fn apply(net: &mut Network, step: &Step) {
    match step {
        Step::Start => net.feed(livemig_core::spice::session::SessionInput::Start),
        Step::Begin => {
            let t = net.servers[DST].cfg.as_target();
            net.on_server(SRC, |s| s.begin(t));
        }
        Step::BeginTo(t) => {
            let t = t.clone();
            net.on_server(SRC, |s| s.begin(t));
        }
        Step::End { completed } => {
            if net.servers[SRC].target.is_none() {
                net.servers[SRC].target = Some(net.servers[DST].cfg.as_target());
            }
            net.on_server(SRC, |s| s.end(*completed));
        }
        Step::Cancel => net.on_server(SRC, |s| s.cancel()),
        Step::AppOn => net.app.active = true,
        Step::AppFlush => {
            while let Some((c, t, b)) = net.app.queue.pop_front() {
                net.app_send(c, t, b);
            }
        }
        Step::Burst {
            server,
            channel,
            count,
        } => net.on_server(*server, |s| s.burst(*channel, *count)),
        Step::Ping { server, channel } => net.on_server(*server, |s| s.ping(*channel, 0)),
        Step::Raw {
            server,
            channel,
            bytes,
        } => {
            let bytes = bytes.clone();
            net.on_server(*server, |s| {
                let conn = match channel {
                    Some(c) => s.conn_of(*c),
                    None => s.latest_conn(),
                };
                if let Some(conn) = conn {
                    s.send_raw(conn, bytes);
                }
            });
        }
        Step::SourceAbort => net.on_server(SRC, |s| s.abort()),
        Step::DestinationAbort => net.on_server(DST, |s| s.abort()),
        Step::Timeout => {
            net.fire_timeout();
        }
        Step::Together(steps) => {
            for s in steps {
                apply(net, s);
            }
        }
    }
}

/// `(name, trace)` of every scenario, for the corpus test.
pub fn corpus_traces() -> Vec<(String, String)> {
    corpus()
        .iter()
        .map(|s| (s.name.clone(), run(s).trace()))
        .collect()
}
