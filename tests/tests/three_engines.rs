//! Cross-target conformance (issue 6): every trace of the corpus, fed to four engines, gives
//! the committed action texts byte for byte on each of them:
//!
//! * `native`: `livemig-core` (`AnyMachine::step_json`);
//! * `wasmtime`: the import-free module in the sandbox (`livemig_host::sandbox`);
//! * `node-package`: Node, the npm package's `TraceEngine` (`livemig/trace`, js/dist/trace/);
//! * `node-abi`: Node, the import-free module under the independent host `tests/abi-node/`.
//!
//! The Node engines' outputs come from `tests/node-engines/emit.mjs` (spawned). Needs
//! `scripts/build-wasm-abi.sh` (same `CARGO_TARGET_DIR`) and `scripts/build-wasm.sh`; without
//! them the test fails saying so, it never skips.

use std::ffi::OsStr;
use std::path::PathBuf;

use livemig_core::trace::Setup;
use livemig_host::sandbox::{default_module_path, Sandbox};
use livemig_tests::engines::{
    compare, corpus, node_prerequisites, node_runs, parse_emitted, run_node, Mismatch, Outcome,
    Run, Trace,
};

fn native(trace: &Trace) -> Run {
    let setup: Setup = serde_json::from_str(&trace.setup).expect("setup");
    let mut m = setup.machine();
    Run {
        engine: "native".to_owned(),
        outcomes: trace
            .steps
            .iter()
            .map(|s| m.step_json(s.now, &s.input))
            .collect(),
    }
}

fn wasmtime(sandbox: &Sandbox, trace: &Trace) -> Run {
    let outcomes = match sandbox.engine(&trace.setup) {
        Ok(mut e) => trace
            .steps
            .iter()
            .map(|s| e.step_json(s.now, &s.input).map_err(|e| e.to_string()))
            .collect(),
        Err(e) => vec![Err(e.to_string())],
    };
    Run {
        engine: "wasmtime".to_owned(),
        outcomes,
    }
}

fn renamed(mut runs: Vec<Run>, engine: &str) -> Vec<Run> {
    for r in &mut runs {
        r.engine = engine.to_owned();
    }
    runs
}

/// Both Node engines over `traces` (two `node` processes, run side by side).
fn node(module: &std::path::Path, traces: &[Trace]) -> (Vec<Run>, Vec<Run>) {
    let (package, abi) = std::thread::scope(|s| {
        let p = s.spawn(|| node_runs("package", module, traces));
        let a = s.spawn(|| node_runs("abi", module, traces));
        (p.join().expect("thread"), a.join().expect("thread"))
    });
    let package = package.unwrap_or_else(|e| panic!("{e}"));
    let abi = abi.unwrap_or_else(|e| panic!("{e}"));
    (renamed(package, "node-package"), renamed(abi, "node-abi"))
}

fn report(mismatches: &[Mismatch]) -> String {
    let shown: Vec<String> = mismatches.iter().take(8).map(|m| m.to_string()).collect();
    format!("{} mismatches:\n{}", mismatches.len(), shown.join("\n"))
}

#[test]
fn every_trace_is_byte_identical_on_four_engines() {
    let module = default_module_path();
    node_prerequisites(&module).unwrap_or_else(|e| panic!("{e}"));
    let sandbox = Sandbox::load(&module).unwrap_or_else(|e| panic!("{e}"));
    let traces = corpus();
    assert!(traces.len() >= 100, "corpus: {} traces", traces.len());
    let events: usize = traces.iter().map(Trace::events).sum();
    assert!(events > 1000, "corpus: {events} events");

    let (package, abi) = node(&module, &traces);
    assert_eq!((package.len(), abi.len()), (traces.len(), traces.len()));
    let mut mismatches = Vec::new();
    let mut answers = 0;
    for (i, t) in traces.iter().enumerate() {
        let runs = [
            native(t),
            wasmtime(&sandbox, t),
            package[i].clone(),
            abi[i].clone(),
        ];
        answers += runs.iter().map(|r| r.outcomes.len()).sum::<usize>();
        mismatches.extend(compare(t, &runs));
    }
    assert!(mismatches.is_empty(), "{}", report(&mismatches));
    assert_eq!(answers, 4 * events, "every engine answered every input");
}

/// A real trace and its native answers, for the failing cases below.
fn success() -> (Trace, Run) {
    let t = corpus()
        .into_iter()
        .find(|t| t.name == "migration/managed-v3-success.jsonl")
        .expect("trace");
    let run = native(&t);
    assert!(compare(&t, std::slice::from_ref(&run)).is_empty());
    (t, run)
}

#[test]
fn a_changed_missing_extra_or_failed_answer_is_reported() {
    let (t, good) = success();
    let step = 2;
    let line = t.steps[step].line;
    let tamper = |f: &dyn Fn(&mut Vec<Outcome>)| {
        let mut bad = good.clone();
        bad.engine = "node-abi".to_owned();
        f(&mut bad.outcomes);
        compare(&t, &[good.clone(), bad])
    };

    // One byte of one action.
    let m = tamper(&|o| {
        let a = &mut o[step].as_mut().unwrap()[0];
        *a = a.replacen("\"flags\":", "\"flags\":1", 1);
    });
    assert_eq!(m.len(), 1, "{}", report(&m));
    assert_eq!(
        (m[0].engine.as_str(), m[0].line, m[0].index),
        ("node-abi", line, 0)
    );
    assert_eq!(m[0].expected, t.steps[step].actions[0]);
    assert!(m[0].got.contains("\"flags\":1"));
    assert!(m[0].to_string().contains("node-abi action 0 differs"));

    // An action missing, one too many, an error, the answers stopping early, extra answers.
    let m = tamper(&|o| o[step].as_mut().unwrap().clear());
    assert_eq!((m.len(), m[0].got.as_str()), (1, "(none)"));
    let m = tamper(&|o| o[step].as_mut().unwrap().push("{}".to_owned()));
    assert_eq!((m.len(), m[0].expected.as_str()), (1, "(none)"));
    let m = tamper(&|o| o[step] = Err("trap".to_owned()));
    assert_eq!(
        (m.len(), m[0].got.as_str(), m[0].line),
        (1, "error: trap", line)
    );
    let m = tamper(&|o| o.truncate(step));
    assert_eq!(
        (m.len(), m[0].got.as_str(), m[0].line),
        (1, "no output", line)
    );
    let m = tamper(&|o| o.push(Ok(vec![])));
    assert_eq!((m.len(), m[0].line), (1, 0));
}

#[test]
fn emit_prints_the_engines_answers_not_the_traces() {
    // A copy of a trace with one committed action changed: the Node engines still answer
    // what the machine does, so the comparison names both of them at that line.
    let (t, _) = success();
    let text = std::fs::read_to_string(&t.path).unwrap();
    let changed = text.replacen("\"flags\":257", "\"flags\":256", 1);
    assert_ne!(changed, text);
    let dir = std::env::temp_dir().join(format!("livemig-three-engines-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tampered.jsonl");
    std::fs::write(&path, changed).unwrap();
    let tampered = Trace::read(&path, "tampered.jsonl".to_owned()).unwrap();

    let module = default_module_path();
    node_prerequisites(&module).unwrap_or_else(|e| panic!("{e}"));
    let (package, abi) = node(&module, std::slice::from_ref(&tampered));
    let m = compare(&tampered, &[package[0].clone(), abi[0].clone()]);
    std::fs::remove_dir_all(&dir).unwrap();
    let at: Vec<_> = m.iter().map(|m| (m.engine.as_str(), m.line)).collect();
    assert_eq!(at, [("node-package", 2), ("node-abi", 2)], "{}", report(&m));
    assert!(m.iter().all(|m| m.got.contains("\"flags\":257")));
}

#[test]
fn emitted_output_is_checked() {
    let (t, _) = success();
    let traces = std::slice::from_ref(&t);
    let p = t.path.to_string_lossy();
    let line = |n: usize| format!("{{\"trace\":{p:?},\"line\":{n},\"actions\":[]}}");
    let runs = parse_emitted("x", &format!("{}\n{}", line(2), line(3)), traces).unwrap();
    assert_eq!(runs[0].outcomes, [Ok(vec![]), Ok(vec![])]);
    // Out of order, unknown trace, neither actions nor error, not JSON.
    assert!(parse_emitted("x", &line(3), traces).is_err());
    assert!(parse_emitted("x", &line(2).replace(&*p, "/elsewhere.jsonl"), traces).is_err());
    assert!(parse_emitted("x", &format!("{{\"trace\":{p:?},\"line\":2}}"), traces).is_err());
    assert!(parse_emitted("x", "{", traces).is_err());
}

#[test]
fn missing_artefacts_name_their_build_script() {
    let nowhere = PathBuf::from("/nonexistent/livemig_wasm_abi.wasm");
    let e = node_prerequisites(&nowhere).unwrap_err();
    assert!(
        e.contains("/nonexistent/livemig_wasm_abi.wasm (build it with scripts/build-wasm-abi.sh"),
        "{e}"
    );
    let (t, _) = success();
    let args = [
        OsStr::new("abi"),
        OsStr::new("--module"),
        nowhere.as_os_str(),
        t.path.as_os_str(),
    ];
    let e = run_node("emit.mjs", &args).unwrap_err();
    assert!(e.contains("scripts/build-wasm-abi.sh"), "{e}");
    assert!(run_node("emit.mjs", &[OsStr::new("wasmer")])
        .unwrap_err()
        .contains("usage"));
}
