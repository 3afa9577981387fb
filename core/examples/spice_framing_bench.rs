//! Throughput of the SPICE framing decoder (spec/spice-migration.md §1.2) on pass-through
//! traffic: `cargo run --release -p livemig-core --example spice_framing_bench`.
//!
//! Three stream shapes, mini headers, each fed chunk by chunk:
//! * small: 32-byte bodies, fed in 64 KiB chunks (display/inputs chatter);
//! * large: 64 KiB bodies, fed in 64 KiB chunks (so every message straddles two chunks);
//! * per-message: 32-byte bodies, one message per chunk (worst case per call).
//!
//! Paths: `FrameBuf` (push + borrowed `next_frame`), a caller-owned `Vec` with
//! `Framer::frames` and one drain per chunk, and a plain memcpy of the same chunks into a
//! reused `Vec` for comparison. Prints a markdown table (MB = 10^6 wire bytes, headers
//! included).

use std::hint::black_box;
use std::time::{Duration, Instant};

use livemig_core::spice::wire::{encode_mini, FrameBuf, Framer, HeaderKind};

struct Shape {
    name: &'static str,
    wire: Vec<u8>,
    chunk_ends: Vec<usize>,
    messages: usize,
}

fn shape(name: &'static str, body_len: usize, messages: usize, chunk: Option<usize>) -> Shape {
    let mut wire = Vec::new();
    let mut ends = Vec::new();
    let body: Vec<u8> = (0..body_len).map(|i| i as u8).collect();
    for i in 0..messages {
        encode_mini(101 + (i % 7) as u16, &body, &mut wire).expect("small body");
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

/// Runs `f` (one pass over the stream) for about `budget`; returns passes per second.
fn passes_per_sec(budget: Duration, mut f: impl FnMut() -> usize) -> f64 {
    black_box(f());
    let start = Instant::now();
    let mut passes = 0u64;
    while start.elapsed() < budget {
        black_box(f());
        passes += 1;
    }
    passes as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let budget = Duration::from_millis(1500);
    let framer = Framer::new(HeaderKind::Mini);
    let shapes = [
        shape("small 32 B, 64 KiB chunks", 32, 200_000, Some(64 << 10)),
        shape("large 64 KiB, 64 KiB chunks", 64 << 10, 128, Some(64 << 10)),
        shape("32 B, one message per chunk", 32, 200_000, None),
    ];

    println!("| shape | path | messages/s | MB/s |");
    println!("|---|---|---:|---:|");
    for s in &shapes {
        let framebuf = passes_per_sec(budget, || {
            let mut rx = FrameBuf::new(framer);
            let mut n = 0;
            for c in chunks(s) {
                rx.push(c);
                while let Ok(Some(f)) = rx.next_frame() {
                    n += f.body.len() ^ usize::from(f.msg_type);
                }
            }
            n
        });
        let borrowed = passes_per_sec(budget, || {
            let mut rx: Vec<u8> = Vec::new();
            let mut n = 0;
            for c in chunks(s) {
                rx.extend_from_slice(c);
                let mut it = framer.frames(&rx);
                for f in it.by_ref().flatten() {
                    n += f.body.len() ^ usize::from(f.msg_type);
                }
                let used = it.consumed();
                rx.drain(..used);
            }
            n
        });
        let memcpy = passes_per_sec(budget, || {
            let mut rx: Vec<u8> = Vec::new();
            let mut n = 0;
            for c in chunks(s) {
                rx.clear();
                rx.extend_from_slice(c);
                n += black_box(&rx).len();
            }
            n
        });
        for (path, passes) in [
            ("FrameBuf push + next_frame", framebuf),
            ("Vec + Framer::frames + drain", borrowed),
            ("memcpy only (baseline)", memcpy),
        ] {
            println!(
                "| {} | {} | {:.2e} | {:.0} |",
                s.name,
                path,
                passes * s.messages as f64,
                passes * s.wire.len() as f64 / 1e6
            );
        }
    }
}
