//! The sandbox's cost, in one run: events per second over the whole trace corpus natively and
//! in wasmtime (as a ratio to native), module compile and instantiation times, fuel per event,
//! and the module's size raw and gzipped.
//!
//! ```sh
//! ./scripts/build-wasm-abi.sh
//! cargo run --release -p livemig-host --example sandbox_bench [-- MODULE.wasm]
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use livemig_core::trace::{self, Record, Setup};
use livemig_host::sandbox::{default_module_path, Sandbox, SandboxEngine};

/// One trace: its setup and its inputs as JSON.
struct Trace {
    setup: Setup,
    setup_json: String,
    inputs: Vec<(u64, String)>,
}

fn corpus() -> Vec<Trace> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/traces");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .expect("tests/traces")
        .flat_map(|d| std::fs::read_dir(d.expect("dir").path()).expect("dir"))
        .map(|f| f.expect("file").path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("trace");
            let setup = trace::read_header(&text).expect("header").setup;
            let inputs = text
                .lines()
                .skip(1)
                .filter(|l| !l.trim().is_empty())
                .map(|l| {
                    let r: Record<serde_json::Value, serde_json::Value> =
                        serde_json::from_str(l).expect("record");
                    (r.now, r.input.to_string())
                })
                .collect();
            Trace {
                setup_json: trace::canonical(&setup),
                setup,
                inputs,
            }
        })
        .collect()
}

/// Run `round` until at least `min` has passed; (events per second, rounds).
fn rate(events_per_round: usize, min: Duration, mut round: impl FnMut() -> Duration) -> f64 {
    let mut spent = Duration::ZERO;
    let mut rounds = 0;
    while spent < min || rounds < 3 {
        spent += round();
        rounds += 1;
    }
    (events_per_round * rounds) as f64 / spent.as_secs_f64()
}

fn gzipped(path: &Path) -> Option<usize> {
    let out = std::process::Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout.len())
}

fn main() {
    let module = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(default_module_path);
    let traces = corpus();
    let events: usize = traces.iter().map(|t| t.inputs.len()).sum();
    let min = Duration::from_secs(2);

    let started = Instant::now();
    let sandbox = Sandbox::load(&module).unwrap_or_else(|e| panic!("{e}"));
    let compile = started.elapsed();

    // Natively: machines created outside the timer, steps timed.
    let native = rate(events, min, || {
        let mut machines: Vec<_> = traces.iter().map(|t| t.setup.machine()).collect();
        let started = Instant::now();
        for (t, m) in traces.iter().zip(&mut machines) {
            for (now, input) in &t.inputs {
                std::hint::black_box(m.step_json(*now, input).expect("native step"));
            }
        }
        started.elapsed()
    });

    // In wasmtime: one instance per trace, created outside the timer.
    let mut fuel = Vec::with_capacity(events);
    let wasm = rate(events, min, || {
        let mut engines: Vec<SandboxEngine> = traces
            .iter()
            .map(|t| sandbox.engine(&t.setup_json).expect("instance"))
            .collect();
        fuel.clear();
        let started = Instant::now();
        for (t, e) in traces.iter().zip(&mut engines) {
            for (now, input) in &t.inputs {
                std::hint::black_box(e.step_json(*now, input).expect("wasm step"));
                fuel.push(e.fuel_used());
            }
        }
        started.elapsed()
    });

    // Instantiation: a fresh instance plus its machine (lm_new of a corpus setup).
    let n = 200;
    let started = Instant::now();
    for i in 0..n {
        std::hint::black_box(
            sandbox
                .engine(&traces[i % traces.len()].setup_json)
                .expect("instance"),
        );
    }
    let instantiate = started.elapsed() / n as u32;
    let memory = sandbox
        .engine(&traces[0].setup_json)
        .expect("instance")
        .memory_size();

    let raw = sandbox.module_size();
    let gz = gzipped(&module);
    let info = std::fs::read_to_string(module.with_file_name("build-info.txt")).ok();
    fuel.sort_unstable();
    let fuel_mean = fuel.iter().sum::<u64>() / fuel.len().max(1) as u64;
    let fuel_max = fuel.last().copied().unwrap_or(0);

    println!(
        "corpus: {} traces, {events} events; module {}",
        traces.len(),
        module.display()
    );
    println!();
    println!("| measure | value |");
    println!("|---|---|");
    println!("| native events/s | {native:.0} |");
    println!(
        "| wasmtime events/s | {wasm:.0} (ratio to native {:.2}) |",
        wasm / native
    );
    println!(
        "| module compile (Sandbox::load) | {:.1} ms |",
        compile.as_secs_f64() * 1e3
    );
    println!(
        "| instantiation + lm_new | {:.1} µs (mean of {n}) |",
        instantiate.as_secs_f64() * 1e6
    );
    println!("| instance memory | {} KiB |", memory / 1024);
    println!("| fuel per event | mean {fuel_mean}, max {fuel_max} |");
    println!(
        "| module size | {raw} bytes raw, {} gzipped (-9) |",
        gz.map_or("?".to_owned(), |g| format!("{g} bytes"))
    );
    if let Some(info) = info {
        println!("| build | {} |", info.trim());
    }
}
