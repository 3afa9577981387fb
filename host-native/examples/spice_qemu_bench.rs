//! Real QEMU timings of a seamless migration with 4 channels followed by the native client:
//! client_migrate_info → every destination channel linked, and migration completed →
//! SPICE_MIGRATE_COMPLETED. Prints a markdown table (min / median / max over N runs).
//! Run: `cargo run --release -p livemig-host --example spice_qemu_bench -- 10`.

fn stats(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(10);
    let (mut connect, mut lag, mut mig) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let r = livemig_host::demo::spice_seamless(false, |_| {}).expect("demo run");
        connect.push(r.connect_ms);
        lag.push(r.completed_lag_ms);
        mig.push(r.migration_ms as f64);
    }
    println!("| measure ({runs} runs, 4 channels) | min ms | median ms | max ms |");
    println!("|---|---:|---:|---:|");
    for (name, v) in [
        (
            "client_migrate_info → every destination channel linked",
            connect,
        ),
        ("QEMU migration total time", mig),
        ("migration completed → SPICE_MIGRATE_COMPLETED", lag),
    ] {
        let (a, b, c) = stats(v);
        println!("| {name} | {a:.1} | {b:.1} | {c:.1} |");
    }
}
