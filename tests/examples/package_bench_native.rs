//! The native half of the npm package's bench (js/bench/package.js, issue 5): the same
//! measures the package bench takes through the JS object API, on exactly the same inputs,
//! through livemig-core directly.
//!
//! 1. Events per second replaying the trace corpus: the orchestrator traces
//!    (tests/traces/migration) and the SPICE session traces (tests/traces/spice and
//!    tests/traces/real), a fresh machine per replay (made outside the timer), `handle` and
//!    draining `poll_action` timed; every replay must give as many actions as the trace holds.
//! 2. SPICE framing through the session: a `Session` linked by replaying the recorded real
//!    QEMU run (tests/traces/real/qemu-seamless-4ch.jsonl) until its display channel is ready,
//!    then synthetic pass-through display messages (types 101..=107) fed as `Received` inputs
//!    on that connection in three shapes, every message event counted (the run fails if one
//!    is missing), next to a plain memcpy of the same chunks.
//!
//! ```sh
//! cargo run --release -p livemig-tests --example package_bench_native          # tables
//! cargo run --release -p livemig-tests --example package_bench_native -- --json # for package.js
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use livemig_core::migration::orchestrator::{Orchestrator, OrchestratorAction, OrchestratorInput};
use livemig_core::spice::session::{
    ConnId, Session, SessionAction, SessionConfig, SessionEvent, SessionInput,
};
use livemig_core::spice::wire::{encode_frame, ChannelType, HeaderKind, LinkMess, LinkReply};
use livemig_core::trace::{self, Record, Setup};
use livemig_core::Machine;
use livemig_tests::traces_dir;
use serde::de::DeserializeOwned;
use serde_json::json;

/// One trace: its machine's configuration, its inputs, and how many actions it recorded.
struct Trace<C, I> {
    config: C,
    inputs: Vec<(u64, I)>,
    actions: usize,
}

/// Every trace of `dirs` (sorted by name) whose setup `pick` accepts.
fn load<C, I: DeserializeOwned, A: DeserializeOwned>(
    dirs: &[&str],
    pick: impl Fn(Setup) -> Option<C>,
) -> Vec<Trace<C, I>> {
    let mut paths = Vec::new();
    for d in dirs {
        for e in std::fs::read_dir(traces_dir().join(d)).expect("trace folder") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|x| x == "jsonl") {
                paths.push(p);
            }
        }
    }
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).expect("trace");
            let header = trace::read_header(&text).expect("header");
            let config =
                pick(header.setup).unwrap_or_else(|| panic!("{}: other machine", p.display()));
            let recs: Vec<Record<I, A>> = text
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .map(|l| serde_json::from_str(l).expect("record"))
                .collect();
            Trace {
                config,
                actions: recs.iter().map(|r| r.actions.len()).sum(),
                inputs: recs.into_iter().map(|r| (r.now, r.input)).collect(),
            }
        })
        .collect()
}

/// What one group of traces measured.
struct GroupRate {
    traces: usize,
    inputs: usize,
    actions: usize,
    events_per_sec: f64,
    rounds: usize,
    reps_per_round: usize,
}

/// Replay every trace of the group `reps` times per round on fresh machines (made before the
/// timer starts), for at least `budget` of replaying and 5 rounds; events (inputs) per second
/// of the fastest round (the machine is shared: the fastest round is the least disturbed).
fn group_rate<M: Machine, C>(
    traces: &[Trace<C, M::Input>],
    make: impl Fn(&C) -> M,
    budget: Duration,
) -> GroupRate
where
    M::Input: Clone,
{
    let inputs: usize = traces.iter().map(|t| t.inputs.len()).sum();
    let actions: usize = traces.iter().map(|t| t.actions).sum();
    let reps = (300_000 / inputs.max(1)).max(1);
    let (mut spent, mut rounds, mut best) = (Duration::ZERO, 0, Duration::MAX);
    while spent < budget || rounds < 5 {
        let mut machines: Vec<M> = (0..reps)
            .flat_map(|_| traces.iter().map(|t| make(&t.config)))
            .collect();
        let mut produced = 0usize;
        let started = Instant::now();
        for (m, t) in machines.iter_mut().zip(traces.iter().cycle()) {
            for (now, input) in &t.inputs {
                m.handle(*now, input.clone());
                while let Some(a) = m.poll_action() {
                    black_box(&a);
                    produced += 1;
                }
            }
        }
        let took = started.elapsed();
        drop(black_box(machines));
        assert_eq!(
            produced,
            actions * reps,
            "a replay gave other actions than its trace"
        );
        (spent, rounds, best) = (spent + took, rounds + 1, best.min(took));
    }
    GroupRate {
        traces: traces.len(),
        inputs,
        actions,
        events_per_sec: (inputs * reps) as f64 / best.as_secs_f64(),
        rounds,
        reps_per_round: reps,
    }
}

/// A session linked for real, ready to take display traffic.
struct Linked {
    session: Session,
    display: ConnId,
    header: HeaderKind,
    now: u64,
}

/// Replay the real trace until its display channel is ready; find the display connection
/// from its `connect` action and the header kind from the link caps both sides sent.
fn link_display() -> Linked {
    let text = std::fs::read_to_string(traces_dir().join("real/qemu-seamless-4ch.jsonl"))
        .expect("real trace");
    let Setup::SpiceSession(cfg) = trace::read_header(&text).expect("header").setup else {
        panic!("not a session trace")
    };
    let recs: Vec<Record<SessionInput, SessionAction>> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).expect("record"))
        .collect();
    let mut session = Session::new(cfg);
    let (mut display, mut sent, mut got) = (None, Vec::new(), Vec::new());
    for r in &recs {
        session.handle(r.now, r.input.clone());
        let mut ready = false;
        while let Some(a) = session.poll_action() {
            match a {
                SessionAction::Connect { conn, channel, .. }
                    if channel.kind == ChannelType::Display && display.is_none() =>
                {
                    display = Some(conn)
                }
                SessionAction::Transmit { conn, bytes } if Some(conn) == display => {
                    sent.extend_from_slice(bytes.as_slice())
                }
                SessionAction::Event(SessionEvent::ChannelReady { channel, .. })
                    if channel.kind == ChannelType::Display =>
                {
                    ready = true
                }
                _ => {}
            }
        }
        if let SessionInput::Received { conn, bytes } = &r.input {
            if Some(*conn) == display {
                got.extend_from_slice(bytes.as_slice());
            }
        }
        if ready {
            let mess = LinkMess::decode(&sent)
                .expect("link mess")
                .expect("whole")
                .0;
            let reply = LinkReply::decode(&got)
                .expect("link reply")
                .expect("whole")
                .0;
            return Linked {
                session,
                display: display.expect("display connect"),
                header: HeaderKind::negotiate(&mess.common_caps, &reply.common_caps),
                now: r.now,
            };
        }
    }
    panic!("the display channel never became ready")
}

/// A stream of `messages` display messages of `body_len` bytes (types 101..=107 in turn),
/// cut in chunks of `chunk` bytes, or one message per chunk.
struct Shape {
    name: &'static str,
    wire: Vec<u8>,
    chunk_ends: Vec<usize>,
    messages: usize,
    body_bytes: usize,
}

fn shape(
    name: &'static str,
    header: HeaderKind,
    body_len: usize,
    messages: usize,
    chunk: Option<usize>,
) -> Shape {
    let body: Vec<u8> = (0..body_len).map(|i| i as u8).collect();
    let (mut wire, mut ends) = (Vec::new(), Vec::new());
    for i in 0..messages {
        let serial = i as u64 + 1;
        encode_frame(header, serial, 101 + (i % 7) as u16, &body, &mut wire).expect("frame");
        ends.push(wire.len());
    }
    let chunk_ends = match chunk {
        None => ends,
        Some(n) => (1..=wire.len().div_ceil(n))
            .map(|i| (i * n).min(wire.len()))
            .collect(),
    };
    Shape {
        name,
        wire,
        chunk_ends,
        messages,
        body_bytes: body_len * messages,
    }
}

fn chunks(s: &Shape) -> impl Iterator<Item = &[u8]> {
    let mut prev = 0;
    s.chunk_ends.iter().map(move |&end| {
        let c = &s.wire[prev..end];
        prev = end;
        c
    })
}

/// Runs `f` (one pass over the stream) for about `budget` and at least 3 times; passes per
/// second of the fastest pass.
fn best_pass(budget: Duration, mut f: impl FnMut()) -> f64 {
    f();
    let (mut spent, mut passes, mut best) = (Duration::ZERO, 0, Duration::MAX);
    while spent < budget || passes < 3 {
        let t = Instant::now();
        f();
        let took = t.elapsed();
        (spent, passes, best) = (spent + took, passes + 1, best.min(took));
    }
    1.0 / best.as_secs_f64()
}

fn main() {
    let as_json = std::env::args().any(|a| a == "--json");
    let budget = Duration::from_secs(2);

    let migration = load::<_, OrchestratorInput, OrchestratorAction>(&["migration"], |s| match s {
        Setup::Orchestrator(c) => Some(c),
        _ => None,
    });
    let session_pick = |s| match s {
        Setup::SpiceSession(c) => Some(c),
        _ => None,
    };
    let spice = load::<SessionConfig, SessionInput, SessionAction>(&["spice"], session_pick);
    let real = load::<SessionConfig, SessionInput, SessionAction>(&["real"], session_pick);
    let groups = [
        (
            "migration",
            group_rate(&migration, |c| Orchestrator::new(c.clone()), budget),
        ),
        (
            "spice",
            group_rate(&spice, |c| Session::new(c.clone()), budget),
        ),
        (
            "real",
            group_rate(&real, |c| Session::new(c.clone()), budget),
        ),
    ];

    let linked = link_display();
    let h = linked.header;
    let shapes = [
        shape("small 32 B, 64 KiB chunks", h, 32, 200_000, Some(64 << 10)),
        shape(
            "large 64 KiB, 64 KiB chunks",
            h,
            64 << 10,
            128,
            Some(64 << 10),
        ),
        shape("32 B, one message per chunk", h, 32, 200_000, None),
    ];
    let mut framing = Vec::new();
    for s in &shapes {
        let inputs: Vec<SessionInput> = chunks(s)
            .map(|c| SessionInput::Received {
                conn: linked.display,
                bytes: c.to_vec().into(),
            })
            .collect();
        let mut session = linked.session.clone();
        let now = linked.now;
        let session_rate = best_pass(budget, || {
            let (mut messages, mut body_bytes) = (0usize, 0usize);
            for input in &inputs {
                session.handle(now, input.clone());
                while let Some(a) = session.poll_action() {
                    match a {
                        SessionAction::Event(SessionEvent::Message { msg_type, body, .. })
                            if (101..=107).contains(&msg_type) =>
                        {
                            messages += 1;
                            body_bytes += body.as_slice().len();
                        }
                        other => panic!("{}: unexpected action {other:?}", s.name),
                    }
                }
            }
            assert_eq!(
                (messages, body_bytes),
                (s.messages, s.body_bytes),
                "{}: the session did not pass every message through",
                s.name
            );
        });
        let mut rx = vec![0u8; 64 << 10];
        let memcpy_rate = best_pass(budget, || {
            for c in chunks(s) {
                rx[..c.len()].copy_from_slice(c);
                black_box(&mut rx);
            }
        });
        framing.push((s, session_rate, memcpy_rate));
    }

    if as_json {
        let out = json!({
            "groups": groups.iter().map(|(name, g)| json!({
                "group": name,
                "traces": g.traces,
                "inputs": g.inputs,
                "actions": g.actions,
                "events_per_sec": g.events_per_sec,
                "rounds": g.rounds,
                "reps_per_round": g.reps_per_round,
            })).collect::<Vec<_>>(),
            "display_conn": linked.display.0,
            "header": format!("{:?}", linked.header),
            "framing": framing.iter().map(|(s, session, memcpy)| json!({
                "shape": s.name,
                "messages": s.messages,
                "wire_bytes": s.wire.len(),
                "chunks": s.chunk_ends.len(),
                "session_passes_per_sec": session,
                "memcpy_passes_per_sec": memcpy,
            })).collect::<Vec<_>>(),
        });
        println!("{out}");
        return;
    }
    println!("| group | traces | inputs | actions | native events/s |");
    println!("|---|---:|---:|---:|---:|");
    for (name, g) in &groups {
        println!(
            "| {name} | {} | {} | {} | {:.3} M |",
            g.traces,
            g.inputs,
            g.actions,
            g.events_per_sec / 1e6
        );
    }
    println!();
    println!(
        "Display channel on conn {}, {:?} headers.",
        linked.display.0, linked.header
    );
    println!();
    println!("| shape | path | messages/s | MB/s |");
    println!("|---|---|---:|---:|");
    for (s, session, memcpy) in &framing {
        for (path, passes) in [
            ("Session::handle + poll_action", session),
            ("memcpy only (baseline)", memcpy),
        ] {
            println!(
                "| {} | {} | {:.3e} | {:.0} |",
                s.name,
                path,
                passes * s.messages as f64,
                passes * s.wire.len() as f64 / 1e6
            );
        }
    }
}
