//! The session core's time from SPICE_MSG_MIGRATE to the MIGRATE_DATA written for the
//! destination, per channel, on the inputs recorded from a real 4-channel QEMU migration
//! (tests/traces/real/qemu-seamless-4ch.jsonl). Prints a markdown table.
//! Run: `cargo run --release -p livemig-tests --example spice_session_bench`.

use std::hint::black_box;
use std::time::Instant;

use livemig_core::spice::session::{Session, SessionAction, SessionInput};
use livemig_core::trace::{self, Record, Setup};
use livemig_core::Machine;
use livemig_tests::traces_dir;

fn main() {
    let text = std::fs::read_to_string(traces_dir().join("real/qemu-seamless-4ch.jsonl")).unwrap();
    let header = trace::read_header(&text).unwrap();
    let Setup::SpiceSession(cfg) = header.setup else {
        panic!("not a session trace")
    };
    let recs: Vec<Record<SessionInput, SessionAction>> = text
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let is_transmit_of = |a: &SessionAction, t: u8| matches!(a, SessionAction::Transmit { bytes, .. } if bytes.as_slice().first() == Some(&t) && bytes.as_slice().get(1) == Some(&0));
    // Records where a FLUSH_MARK (4) goes out, and where a MIGRATE_DATA (5) goes out.
    let flush: Vec<usize> = (0..recs.len())
        .filter(|&i| recs[i].actions.iter().any(|a| is_transmit_of(a, 4)))
        .collect();
    let data: Vec<usize> = (0..recs.len())
        .filter(|&i| recs[i].actions.iter().any(|a| is_transmit_of(a, 5)))
        .collect();
    let (first, last) = (flush[0], *data.last().unwrap());
    let mut before = Session::new(cfg);
    for r in &recs[..first] {
        before.handle(r.now, r.input.clone());
        while before.poll_action().is_some() {}
    }
    let window: Vec<&Record<SessionInput, SessionAction>> = recs[first..=last].iter().collect();
    let bytes_in: usize = window
        .iter()
        .map(|r| match &r.input {
            SessionInput::Received { bytes, .. } => bytes.len(),
            _ => 0,
        })
        .sum();
    let iters = 200_000;
    // Cost of the clone alone, subtracted below.
    let t = Instant::now();
    for _ in 0..iters {
        black_box(before.clone());
    }
    let clone_ns = t.elapsed().as_nanos() as f64 / iters as f64;
    let t = Instant::now();
    let mut actions = 0;
    for _ in 0..iters {
        let mut s = before.clone();
        for r in &window {
            s.handle(r.now, r.input.clone());
            while let Some(a) = s.poll_action() {
                black_box(&a);
                actions += 1;
            }
        }
    }
    let total_ns = t.elapsed().as_nanos() as f64 / iters as f64 - clone_ns;
    println!("| measure | value |");
    println!("|---|---:|");
    println!(
        "| inputs from the first MIGRATE to the last MIGRATE_DATA written | {} |",
        window.len()
    );
    println!(
        "| channels switched (MIGRATE_DATA written) | {} |",
        data.len()
    );
    println!("| bytes received in that window | {bytes_in} |");
    println!("| actions produced | {} |", actions / iters);
    println!("| core time, all channels (µs) | {:.2} |", total_ns / 1e3);
    println!(
        "| core time per channel (µs) | {:.2} |",
        total_ns / 1e3 / data.len().max(1) as f64
    );
}
