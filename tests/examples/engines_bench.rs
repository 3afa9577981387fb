//! The four engines of the conformance test, in one run: events per second over the whole
//! trace corpus natively, in wasmtime (the sandbox), in Node through the package's
//! `TraceEngine` and in Node through the independent ABI host (tests/abi-node/), as ratios to
//! native; module compile and instantiation times; module sizes raw and gzipped with the
//! route that built them. The Node figures come from `tests/node-engines/bench.mjs` (spawned).
//!
//! ```sh
//! ./scripts/build-wasm-abi.sh && ./scripts/build-wasm.sh
//! cargo run --release -p livemig-tests --example engines_bench [-- MODULE.wasm]
//! ```

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use livemig_core::trace::Setup;
use livemig_host::sandbox::{default_module_path, Sandbox};
use livemig_tests::engines::{corpus, node_prerequisites, package_module, run_node, Trace};

/// Passes over all engines (the best pass of each is reported).
const PASSES: usize = 3;

/// Run `round` (which times itself) for at least 1 s and 5 rounds; events per second of the
/// fastest round (the machine is shared: the fastest round is the least disturbed one).
fn rate(events: usize, mut round: impl FnMut() -> Duration) -> f64 {
    let (mut spent, mut rounds, mut best) = (Duration::ZERO, 0, Duration::MAX);
    while spent < Duration::from_secs(1) || rounds < 5 {
        let t = round();
        (spent, rounds, best) = (spent + t, rounds + 1, best.min(t));
    }
    events as f64 / best.as_secs_f64()
}

/// Median time of `f` over `n` runs (robust to the other work on the machine).
fn median(n: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..n)
        .map(|_| {
            let started = Instant::now();
            f();
            started.elapsed()
        })
        .collect();
    times.sort_unstable();
    times[n / 2]
}

/// Size raw, gzipped (-9).
fn sizes(path: &Path) -> (usize, usize) {
    let raw = std::fs::metadata(path).expect("module").len() as usize;
    let gz = std::process::Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .expect("gzip");
    (raw, gz.stdout.len())
}

fn main() {
    let module = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(default_module_path);
    node_prerequisites(&module).unwrap_or_else(|e| panic!("{e}"));
    let traces = corpus();
    let events: usize = traces.iter().map(Trace::events).sum();
    let setups: Vec<Setup> = traces
        .iter()
        .map(|t| serde_json::from_str(&t.setup).expect("setup"))
        .collect();

    let sandbox = Sandbox::load(&module).unwrap_or_else(|e| panic!("{e}"));
    let mut args = vec!["--module".as_ref(), module.as_os_str()];
    args.extend(traces.iter().map(|t| t.path.as_os_str()));

    // PASSES passes over the engines, interleaved, so that each engine meets the machine's
    // other work alike; each figure is the best of its passes.
    let (mut native, mut wasm, mut node) = (0f64, 0f64, Vec::new());
    for _ in 0..PASSES {
        // Natively: machines made outside the timer, steps timed (JSON in and out).
        native = native.max(rate(events, || {
            let mut machines: Vec<_> = setups.iter().map(Setup::machine).collect();
            let started = Instant::now();
            for (t, m) in traces.iter().zip(&mut machines) {
                for s in &t.steps {
                    std::hint::black_box(m.step_json(s.now, &s.input).expect("native"));
                }
            }
            started.elapsed()
        }));
        // wasmtime: one instance per trace, made outside the timer.
        wasm = wasm.max(rate(events, || {
            let mut engines: Vec<_> = traces
                .iter()
                .map(|t| sandbox.engine(&t.setup).expect("instance"))
                .collect();
            let started = Instant::now();
            for (t, e) in traces.iter().zip(&mut engines) {
                for s in &t.steps {
                    std::hint::black_box(e.step_json(s.now, &s.input).expect("wasmtime"));
                }
            }
            started.elapsed()
        }));
        // Node: both engines in one process.
        let out = run_node("bench.mjs", &args).unwrap_or_else(|e| panic!("{e}"));
        node.push(serde_json::from_str::<serde_json::Value>(&out).expect("bench.mjs output"));
    }
    let compile = median(3, || {
        std::hint::black_box(Sandbox::load(&module).expect("module"));
    });
    let instantiate = median(200, || {
        std::hint::black_box(sandbox.engine(&traces[0].setup).expect("instance"));
    });
    // The best pass: the highest rate, the lowest time.
    let n = |k: &str| {
        let v = node
            .iter()
            .map(|o| o[k].as_f64().unwrap_or_else(|| panic!("bench.mjs: no {k}")));
        if k.ends_with("_per_s") {
            v.fold(0.0, f64::max)
        } else {
            v.fold(f64::INFINITY, f64::min)
        }
    };

    println!(
        "corpus: {} traces, {events} events; Node {}; best of {PASSES} interleaved passes",
        traces.len(),
        node[0]["node"].as_str().unwrap_or("?")
    );
    println!();
    println!("| engine | events/s | ratio to native |");
    println!("|---|---:|---:|");
    for (name, r) in [
        ("native (livemig-core)", native),
        ("wasmtime 48 (sandbox, wasm-abi module)", wasm),
        (
            "Node, package TraceEngine (js/dist/trace)",
            n("package_events_per_s"),
        ),
        (
            "Node, ABI host (tests/abi-node, wasm-abi module)",
            n("abi_events_per_s"),
        ),
    ] {
        println!("| {name} | {r:.0} | {:.2} |", r / native);
    }
    println!();
    println!("| module load | time |");
    println!("|---|---:|");
    println!(
        "| wasm-abi: wasmtime compile (`Sandbox::load`, median of 3) | {:.1} ms |",
        compile.as_secs_f64() * 1e3
    );
    println!(
        "| wasm-abi: wasmtime instantiate + `lm_new` (median of 200) | {:.1} µs |",
        instantiate.as_secs_f64() * 1e6
    );
    let ms = |k: &str| format!("{:.2} ms", n(k));
    let us = |k: &str| format!("{:.1} µs", n(k) * 1e3);
    for (what, v) in [
        (
            "wasm-abi: Node `WebAssembly.compile` (median of 5)",
            ms("abi_compile_ms"),
        ),
        (
            "wasm-abi: Node `WebAssembly.instantiate(m, {})` (median of 200)",
            us("abi_instantiate_ms"),
        ),
        (
            "wasm-abi: Node instantiate + `lm_new` (median of 200)",
            us("abi_engine_ms"),
        ),
        (
            "package trace module: Node `WebAssembly.compile` (median of 5)",
            ms("package_compile_ms"),
        ),
        (
            "package trace module: first import of `livemig/trace` (read, compile, instantiate)",
            ms("package_import_ms"),
        ),
        (
            "package trace module: `new TraceEngine` (median of 200)",
            us("package_engine_ms"),
        ),
    ] {
        println!("| {what} | {v} |");
    }
    println!();
    println!("| module | raw | gzip -9 | route |");
    println!("|---|---:|---:|---|");
    // The routes the build scripts recorded.
    let (raw, gz) = sizes(&module);
    let abi_route = std::fs::read_to_string(module.with_file_name("build-info.txt"))
        .map(|s| s.trim().replace('\n', "; "))
        .unwrap_or_else(|_| "?".to_owned());
    println!("| wasm-abi `livemig_wasm_abi.wasm` | {raw} B | {gz} B | {abi_route} |");
    let package = package_module();
    let (raw, gz) = sizes(&package);
    let info: serde_json::Value = std::fs::read_to_string(
        package
            .parent()
            .and_then(Path::parent)
            .map(|d| d.join("build-info.json"))
            .unwrap_or_default(),
    )
    .ok()
    .and_then(|s| serde_json::from_str(&s).ok())
    .unwrap_or_default();
    let field = |k: &str| info[k].as_str().unwrap_or("?").to_owned();
    let js_route = format!(
        "{} ({}), profile {}, wasm-bindgen {}, {}",
        field("route"),
        field("rustc"),
        field("profile"),
        field("wasm_bindgen"),
        field("wasm_opt")
    );
    println!("| package `dist/trace/livemig_wasm_bg.wasm` | {raw} B | {gz} B | {js_route} |");
}
