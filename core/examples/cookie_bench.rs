//! Throughput of the migration cookie codec (spec/libvirt-migration.md §6) on the golden
//! vectors: `cargo run --release -p livemig-core --example cookie_bench`.
//! Prints a markdown table (MB = 10^6 bytes of cookie, NUL included).

use std::hint::black_box;
use std::time::{Duration, Instant};

use livemig_core::migration::cookie::Cookie;

const VECTORS: [(&str, &[u8]); 5] = [
    (
        "begin-prepare",
        include_bytes!("../tests/vectors/cookies/begin-prepare.cookie"),
    ),
    (
        "prepare-perform",
        include_bytes!("../tests/vectors/cookies/prepare-perform.cookie"),
    ),
    (
        "perform-finish",
        include_bytes!("../tests/vectors/cookies/perform-finish.cookie"),
    ),
    (
        "finish-confirm",
        include_bytes!("../tests/vectors/cookies/finish-confirm.cookie"),
    ),
    (
        "full",
        include_bytes!("../tests/vectors/cookies/full.cookie"),
    ),
];

/// Runs `f` repeatedly for about `budget`; returns MB/s for `bytes` per call.
fn rate(bytes: usize, budget: Duration, mut f: impl FnMut()) -> f64 {
    for _ in 0..100 {
        f();
    }
    let start = Instant::now();
    let mut iters = 0u64;
    while start.elapsed() < budget {
        for _ in 0..100 {
            f();
        }
        iters += 100;
    }
    let secs = start.elapsed().as_secs_f64();
    (bytes as f64 * iters as f64) / secs / 1e6
}

fn main() {
    let budget = Duration::from_millis(700);
    println!("| vector | bytes | parse MB/s | format MB/s |");
    println!("|---|---:|---:|---:|");
    for (name, bytes) in VECTORS {
        let cookie = Cookie::parse(bytes)
            .expect("golden vector parses")
            .expect("non-empty");
        assert_eq!(cookie.format(), bytes, "{name} round trip");
        let parse = rate(bytes.len(), budget, || {
            black_box(Cookie::parse(black_box(bytes)).ok());
        });
        let format = rate(bytes.len(), budget, || {
            black_box(black_box(&cookie).format());
        });
        println!("| {name} | {} | {parse:.0} | {format:.0} |", bytes.len());
    }
}
