//! livemig's migration client against virsh's, in one environment of two real libvirt 9.0
//! daemons (libvirt-real-peer.md §2): N rounds, each migrating the guest A → B then B → A
//! with `virsh migrate --live` (managed) and with livemig (`migrate::run`), the tool that goes
//! first alternating per round. Both talk to the daemons through the same timestamping
//! proxies ([`Proxy`]), so a step's time is the same measure for both: from its CALL frame to
//! its REPLY frame (302 Begin3, 303 Prepare3, 305 Perform3, 306 Finish3, 307 Confirm3).
//! Totals: the whole command (virsh: the process, from spawn to exit; livemig: `migrate::run`
//! in process, connections and probes included) and the wire (first frame of the run to the
//! Confirm3 reply). Prints a markdown table of medians and the ratio livemig / virsh.
//! Run: `cargo run --release -p livemig-host --example libvirt_bench -- [N]` (default 5).

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livemig_core::migration::orchestrator::{ProtocolRequest, Verdict};
use livemig_core::migration::MigrateFlags;
use livemig_host::libvirt_hosts::{Host, TwoHosts, HOST_A, HOST_B};
use livemig_host::libvirt_proxy::{Captured, Dir, Proxy};
use livemig_host::migrate::{run, MigrateOptions};

const REMOTE_PROGRAM: u32 = 0x2000_8086;
const STEPS: [(u32, &str); 5] = [
    (302, "Begin3Params (302)"),
    (303, "Prepare3Params (303)"),
    (305, "Perform3Params (305)"),
    (306, "Finish3Params (306)"),
    (307, "Confirm3Params (307)"),
];

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Tool {
    Virsh,
    Livemig,
}

/// Samples per row and tool.
type Samples = BTreeMap<(String, Tool), Vec<f64>>;

fn word(f: &Captured, i: usize) -> u32 {
    let b = &f.bytes[i * 4..i * 4 + 4];
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Per migration step: CALL → REPLY on the same connection and serial.
fn step_times(frames: &[Captured]) -> BTreeMap<u32, f64> {
    let mut out = BTreeMap::new();
    for call in frames.iter().filter(|f| {
        f.dir == Dir::Call && f.bytes.len() >= 28 && f.program() == Some(REMOTE_PROGRAM)
    }) {
        let Some(p) = call.procedure() else { continue };
        if !STEPS.iter().any(|(n, _)| *n == p) {
            continue;
        }
        let serial = word(call, 5);
        let reply = frames.iter().find(|r| {
            r.dir == Dir::Reply
                && r.conn == call.conn
                && r.bytes.len() >= 28
                && r.program() == Some(REMOTE_PROGRAM)
                && r.procedure() == Some(p)
                && word(r, 5) == serial
        });
        if let Some(r) = reply {
            out.insert(p, ms(r.at.saturating_duration_since(call.at)));
        }
    }
    out
}

struct Proxies {
    a: Proxy,
    b: Proxy,
}

impl Proxies {
    fn of(&self, h: &Host) -> &Proxy {
        if *h == HOST_A {
            &self.a
        } else {
            &self.b
        }
    }
    fn uri(&self, h: &Host) -> String {
        format!("qemu+tcp://{}/system", self.of(h).addr())
    }
}

fn migrate_once(tool: Tool, p: &Proxies, from: &Host, to: &Host, samples: &mut Samples) {
    let marks = (p.a.frames().len(), p.b.frames().len());
    let started = Instant::now();
    match tool {
        Tool::Virsh => {
            let out = Command::new("virsh")
                .args(["-c", &p.uri(from), "migrate", "--live", "tiny", &p.uri(to)])
                .output()
                .expect("virsh");
            assert!(
                out.status.success(),
                "virsh migrate: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Tool::Livemig => {
            let opts = MigrateOptions {
                source: p.uri(from),
                destination: p.uri(to),
                domain: "tiny".into(),
                protocol: ProtocolRequest::Auto,
                flags: MigrateFlags::LIVE,
                graphics_uri: None,
                step_timeout: Some(Duration::from_secs(60)),
                record: false,
            };
            let o = run(&opts, Arc::new(AtomicBool::new(false)), |_| {}).expect("livemig");
            assert_eq!(o.report.verdict, Verdict::Migrated, "{:?}", o.report);
        }
    }
    let total = ms(started.elapsed());
    // The proxy forwards a chunk before it records the frame: let the last ones land.
    std::thread::sleep(Duration::from_millis(50));
    let mut frames: Vec<Captured> = p.a.frames().split_off(marks.0);
    frames.extend(p.b.frames().split_off(marks.1));
    let steps = step_times(&frames);
    assert_eq!(
        steps.len(),
        STEPS.len(),
        "{tool:?} {from:?}: steps {steps:?}"
    );
    let first = frames.iter().map(|f| f.at).min().expect("frames");
    let confirm_reply = frames
        .iter()
        .filter(|f| f.dir == Dir::Reply && f.procedure() == Some(307))
        .map(|f| f.at)
        .max()
        .expect("Confirm3 reply");
    let wire = ms(confirm_reply.saturating_duration_since(first));
    let mut push = |row: &str, v: f64| {
        samples.entry((row.to_owned(), tool)).or_default().push(v);
    };
    for (n, name) in STEPS {
        push(name, steps[&n]);
    }
    let sum: f64 = steps.values().sum();
    push("sum of the five steps", sum);
    push("client time outside the steps (wire − sum)", wire - sum);
    push("total on the wire (first frame → Confirm3 reply)", wire);
    push("total, whole command (virsh process / migrate::run)", total);
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(5);
    let env = TwoHosts::start().expect("two libvirt hosts");
    env.create_guest(&HOST_A, "127.0.0.1").expect("guest");
    let p = Proxies {
        a: Proxy::start("127.0.0.1:0", &HOST_A.rpc_addr()).expect("proxy A"),
        b: Proxy::start("127.0.0.1:0", &HOST_B.rpc_addr()).expect("proxy B"),
    };
    let mut samples = Samples::new();
    let mut here = HOST_A;
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [Tool::Virsh, Tool::Livemig]
        } else {
            [Tool::Livemig, Tool::Virsh]
        };
        for tool in order {
            for _ in 0..2 {
                let to = if here == HOST_A { HOST_B } else { HOST_A };
                migrate_once(tool, &p, &here, &to, &mut samples);
                env.check_runs_only_on(&to)
                    .unwrap_or_else(|e| panic!("{tool:?} {} → {}: {e}", here.name, to.name));
                here = to;
            }
        }
        eprintln!("round {}/{rounds} done", round + 1);
    }
    drop(env);

    let n = samples
        .get(&(STEPS[0].1.to_owned(), Tool::Virsh))
        .map_or(0, Vec::len);
    println!(
        "livemig vs virsh, managed live migration of a 64 MiB TCG guest between two libvirt \
         9.0 daemons; {n} migrations per tool ({rounds} rounds × A→B, B→A), both through the \
         same timestamping proxies. Medians:\n"
    );
    println!("| step | virsh ms | livemig ms | livemig / virsh |");
    println!("|---|---:|---:|---:|");
    let mut rows: Vec<&str> = STEPS.iter().map(|(_, name)| *name).collect();
    rows.extend([
        "sum of the five steps",
        "client time outside the steps (wire − sum)",
        "total on the wire (first frame → Confirm3 reply)",
        "total, whole command (virsh process / migrate::run)",
    ]);
    for row in rows {
        let v = median(&samples[&(row.to_owned(), Tool::Virsh)]);
        let l = median(&samples[&(row.to_owned(), Tool::Livemig)]);
        println!("| {row} | {v:.1} | {l:.1} | {:.2} |", l / v);
    }
}
