//! The wasmtime sandbox (src/sandbox/): every corpus trace gives byte-identical action JSON
//! natively and in the import-free module, hostile modules are stopped with the right error,
//! and the host keeps serving afterwards.
//!
//! Needs the module built by `scripts/build-wasm-abi.sh` (with the same `CARGO_TARGET_DIR`);
//! these tests never compile wasm themselves and fail with that instruction if it is missing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use livemig_core::trace::{self, AnyMachine};
use livemig_core::Machine;
use livemig_host::sandbox::{default_module_path, Limits, Sandbox, SandboxEngine, SandboxError};

/// The real module, compiled once per test process.
fn sandbox() -> &'static Sandbox {
    static SANDBOX: OnceLock<Sandbox> = OnceLock::new();
    SANDBOX.get_or_init(|| {
        let path = default_module_path();
        Sandbox::load(&path).unwrap_or_else(|e| {
            panic!(
                "cannot load the sandbox module {}: {e}\n\
                 build it first with scripts/build-wasm-abi.sh (same CARGO_TARGET_DIR)",
                path.display()
            )
        })
    })
}

fn traces() -> Vec<PathBuf> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/traces");
    let mut out = Vec::new();
    for dir in std::fs::read_dir(&root).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|e| e == "jsonl") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn native_timeout(m: &AnyMachine) -> Option<u64> {
    match m {
        AnyMachine::Orchestrator(m) => m.poll_timeout(),
        AnyMachine::SourceHost(m) => m.poll_timeout(),
        AnyMachine::DestinationHost(m) => m.poll_timeout(),
        AnyMachine::SpiceSession(m) => m.poll_timeout(),
    }
}

const SUCCESS: &str = "migration/managed-v3-success.jsonl";

fn trace_text(name: &str) -> String {
    std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/traces")
            .join(name),
    )
    .unwrap()
}

/// The real module still replays a whole trace: the host kept serving.
fn real_module_still_works() {
    let text = trace_text(SUCCESS);
    let done = trace::replay_with(
        &text,
        |setup| {
            sandbox()
                .engine(&trace::canonical(setup))
                .map_err(|e| e.to_string())
        },
        |e, now, input| e.step_json(now, input).map_err(|e| e.to_string()),
    )
    .unwrap();
    assert!(done.actions > 5);
}

#[test]
fn every_trace_is_byte_identical_natively_and_in_wasmtime() {
    let files = traces();
    assert!(files.len() >= 100, "corpus: {} traces", files.len());
    let mut records = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let header = trace::read_header(&text).unwrap();
        let setup = trace::canonical(&header.setup);
        let native = header.setup.machine();
        let wasm = sandbox()
            .engine(&setup)
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let done = trace::replay_with(
            &text,
            |_| Ok((native, wasm)),
            |(native, wasm), now, input| {
                let n = native.step_json(now, input)?;
                let w = wasm.step_json(now, input).map_err(|e| e.to_string())?;
                // Byte for byte, action by action.
                assert_eq!(n, w, "{} at {now} ms, input {input}", file.display());
                assert_eq!(
                    Ok(native_timeout(native)),
                    wasm.poll_timeout(),
                    "{}: poll_timeout at {now} ms",
                    file.display()
                );
                Ok(w)
            },
        );
        let done = done.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        records += done.inputs;
    }
    assert!(records > 1000, "{records} records");
}

#[test]
fn every_trace_replays_through_the_sandbox() {
    for file in traces() {
        let text = std::fs::read_to_string(&file).unwrap();
        let done = trace::replay_with(
            &text,
            |setup| {
                sandbox()
                    .engine(&trace::canonical(setup))
                    .map_err(|e| e.to_string())
            },
            |e: &mut SandboxEngine, now, input| e.step_json(now, input).map_err(|e| e.to_string()),
        );
        assert!(done.is_ok(), "{}: {done:?}", file.display());
    }
}

#[test]
fn fuel_is_deterministic() {
    let text = trace_text(SUCCESS);
    let run = || {
        let mut fuel = Vec::new();
        trace::replay_with(
            &text,
            |setup| {
                sandbox()
                    .engine(&trace::canonical(setup))
                    .map_err(|e| e.to_string())
            },
            |e, now, input| {
                let out = e.step_json(now, input).map_err(|e| e.to_string());
                fuel.push(e.fuel_used());
                out
            },
        )
        .unwrap();
        fuel
    };
    let first = run();
    assert!(first
        .iter()
        .all(|&f| f > 0 && f < Limits::default().fuel_per_call / 100));
    assert_eq!(first, run());
}

#[test]
fn guest_errors_are_typed_and_the_instance_lives_on() {
    let text = trace_text(SUCCESS);
    let setup = trace::canonical(&trace::read_header(&text).unwrap().setup);
    let err = sandbox()
        .engine(r#"{"machine":"toaster","config":{}}"#)
        .unwrap_err();
    assert!(
        matches!(&err, SandboxError::Guest { code: 4, message } if message.contains("toaster")),
        "{err}"
    );
    let mut e = sandbox().engine(&setup).unwrap();
    let err = e.step_json(0, "{not json").unwrap_err();
    assert!(matches!(err, SandboxError::Guest { code: 3, .. }), "{err}");
    assert!(err.to_string().contains("invalid_json"), "{err}");
    let err = e.step_json(0, r#"{"type":"no_such_input"}"#).unwrap_err();
    assert!(matches!(err, SandboxError::Guest { code: 5, .. }), "{err}");
    assert!(!e.is_dead());
    // The same instance still runs the whole trace.
    let mut e = Some(e);
    trace::replay_with(
        &text,
        |_| e.take().ok_or_else(String::new),
        |e, now, input| e.step_json(now, input).map_err(|e| e.to_string()),
    )
    .unwrap();
}

#[test]
fn a_missing_module_is_a_typed_error() {
    let path = PathBuf::from("/nonexistent/livemig_wasm_abi.wasm");
    assert_eq!(
        Sandbox::load(&path).unwrap_err(),
        SandboxError::ModuleMissing { path }
    );
}

// ---- hostile modules -------------------------------------------------------------------

/// A module exporting the whole ABI (version 1) with benign bodies, except for `overrides`:
/// (export name, replacement function text). `extra` goes at module level.
fn abi_module(overrides: &[(&str, &str)], extra: &str) -> Vec<u8> {
    let defaults = [
        ("lm_abi_version", "(result i32) (i32.const 1)"),
        ("lm_alloc", "(param i32) (result i32) (i32.const 1024)"),
        ("lm_free", "(param i32 i32) (result i32) (i32.const 0)"),
        ("lm_new", "(param i32 i32) (result i32) (i32.const 1)"),
        (
            "lm_step",
            "(param i32 i64 i32 i32) (result i32) (i32.const 0)",
        ),
        ("lm_poll_timeout", "(param i32) (result i32) (i32.const 0)"),
        ("lm_drop", "(param i32) (result i32) (i32.const 0)"),
        // An empty frame list (4 zero bytes) at 2048.
        ("lm_result_ptr", "(result i32) (i32.const 2048)"),
        ("lm_result_len", "(result i32) (i32.const 4)"),
    ];
    let mut text = format!("(module\n{extra}\n(memory (export \"memory\") 1)\n");
    for (name, body) in defaults {
        let body = overrides
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(body, |(_, b)| *b);
        text.push_str(&format!("(func (export \"{name}\") {body})\n"));
    }
    text.push(')');
    wat::parse_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

const STEP_SIG: &str = "(param i32 i64 i32 i32) (result i32)";

/// [`abi_module`] loaded under [`small_limits`].
fn guest(overrides: &[(&str, &str)], extra: &str) -> Sandbox {
    Sandbox::from_bytes(&abi_module(overrides, extra), small_limits()).unwrap()
}

fn hostile(step_body: &str, limits: Limits) -> Sandbox {
    let step = format!("{STEP_SIG} {step_body}");
    Sandbox::from_bytes(&abi_module(&[("lm_step", &step)], ""), limits).unwrap()
}

fn small_limits() -> Limits {
    Limits {
        fuel_per_call: 5_000_000,
        memory_bytes: 4 << 20,
    }
}

/// Step a hostile instance: the error, then `Dead`; a fresh instance of the same module
/// starts fine (the sandbox keeps serving), and so does the real module.
fn expect_trap(sb: &Sandbox) -> SandboxError {
    let mut e = sb.engine("{}").unwrap();
    let err = e.step_json(0, "{}").unwrap_err();
    assert!(e.is_dead());
    assert_eq!(e.step_json(0, "{}").unwrap_err(), SandboxError::Dead);
    assert_eq!(e.poll_timeout().unwrap_err(), SandboxError::Dead);
    sb.engine("{}").expect("a fresh instance after a trap");
    real_module_still_works();
    err
}

#[test]
fn the_benign_abi_module_works() {
    let sb = guest(&[], "");
    let mut e = sb.engine("{}").unwrap();
    assert_eq!(e.step_json(7, "{}").unwrap(), Vec::<String>::new());
    assert!(e.fuel_used() > 0);
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let sb = hostile("(loop $l (br $l)) (i32.const 0)", small_limits());
    let started = std::time::Instant::now();
    let err = expect_trap(&sb);
    assert_eq!(err, SandboxError::OutOfFuel { budget: 5_000_000 });
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}

#[test]
fn unbounded_memory_growth_hits_the_memory_limit() {
    let sb = hostile(
        "(loop $l (drop (memory.grow (i32.const 16))) (br $l)) (i32.const 0)",
        small_limits(),
    );
    match expect_trap(&sb) {
        SandboxError::MemoryLimit { limit, desired } => {
            assert_eq!(limit, 4 << 20);
            assert!(desired > limit);
        }
        other => panic!("{other}"),
    }
}

#[test]
fn unreachable_is_its_own_error() {
    let sb = hostile("(unreachable)", small_limits());
    assert_eq!(expect_trap(&sb), SandboxError::Unreachable);
}

#[test]
fn an_out_of_bounds_load_is_its_own_error() {
    let sb = hostile("(i32.load (i32.const 65536))", small_limits());
    assert!(matches!(expect_trap(&sb), SandboxError::OutOfBounds(_)));
}

#[test]
fn other_traps_are_traps() {
    let sb = hostile("(i32.div_u (i32.const 1) (i32.const 0))", small_limits());
    assert!(matches!(expect_trap(&sb), SandboxError::Trap(m) if m.contains("divide")));
}

#[test]
fn a_module_with_imports_is_refused() {
    let bytes = abi_module(
        &[],
        r#"(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))"#,
    );
    assert_eq!(
        Sandbox::from_bytes(&bytes, Limits::default()).unwrap_err(),
        SandboxError::Imports(vec!["wasi_snapshot_preview1.fd_write".to_owned()])
    );
    real_module_still_works();
}

#[test]
fn a_lying_guest_is_an_abi_error() {
    // A result range outside memory.
    let sb = guest(
        &[("lm_result_len", "(result i32) (i32.const 0x7fffffff)")],
        "",
    );
    // lm_new succeeds without reading the result; the step reads it.
    let mut e = sb.engine("{}").unwrap();
    let err = e.step_json(0, "{}").unwrap_err();
    assert!(
        matches!(&err, SandboxError::Abi(m) if m.contains("outside")),
        "{err}"
    );
    assert_eq!(e.step_json(0, "{}").unwrap_err(), SandboxError::Dead);
    // Malformed frames: 8 zero bytes are a count of 0 followed by 4 stray bytes.
    let sb = guest(&[("lm_result_len", "(result i32) (i32.const 8)")], "");
    let mut e = sb.engine("{}").unwrap();
    assert!(
        matches!(e.step_json(0, "{}"), Err(SandboxError::Abi(m)) if m.contains("after the last frame"))
    );
    // Frames claiming more than there is: count 1, then a length of 2^32-1.
    let data = r#"(data (i32.const 2048) "\01\00\00\00\ff\ff\ff\ff")"#;
    let sb = guest(&[("lm_result_len", "(result i32) (i32.const 8)")], data);
    let mut e = sb.engine("{}").unwrap();
    assert!(matches!(e.step_json(0, "{}"), Err(SandboxError::Abi(m)) if m.contains("claims")));
    // An allocation the guest places outside its memory.
    let sb = guest(
        &[("lm_alloc", "(param i32) (result i32) (i32.const 65535)")],
        "",
    );
    let err = sb.engine("{\"x\":1}").unwrap_err();
    assert!(
        matches!(&err, SandboxError::Abi(m) if m.contains("out of bounds")),
        "{err}"
    );
    real_module_still_works();
}

#[test]
fn abi_version_and_exports_are_checked() {
    let v2 = abi_module(&[("lm_abi_version", "(result i32) (i32.const 2)")], "");
    let sb = Sandbox::from_bytes(&v2, small_limits()).unwrap();
    assert_eq!(
        sb.engine("{}").unwrap_err(),
        SandboxError::AbiVersion { found: 2 }
    );
    let mistyped = abi_module(&[("lm_step", "(param i32) (result i32) (i32.const 0)")], "");
    let sb = Sandbox::from_bytes(&mistyped, small_limits()).unwrap();
    assert!(matches!(sb.engine("{}"), Err(SandboxError::Abi(m)) if m.contains("lm_step")));
    let no_memory = wat::parse_str("(module)").unwrap();
    let sb = Sandbox::from_bytes(&no_memory, small_limits()).unwrap();
    assert!(matches!(sb.engine("{}"), Err(SandboxError::Abi(_))));
}

#[test]
fn initial_memory_above_the_limit_is_refused() {
    let big = wat::parse_str("(module (memory (export \"memory\") 200))").unwrap();
    let sb = Sandbox::from_bytes(&big, small_limits()).unwrap();
    assert!(matches!(
        sb.engine("{}"),
        Err(SandboxError::MemoryLimit { .. })
    ));
}

#[test]
fn the_real_module_under_tight_limits() {
    let text = trace_text(SUCCESS);
    let setup = trace::canonical(&trace::read_header(&text).unwrap().setup);
    // Too little fuel to even create the machine (same compiled module, other limits).
    let starved = sandbox().with_limits(Limits {
        fuel_per_call: 1_000,
        ..Limits::default()
    });
    assert_eq!(
        starved.engine(&setup).unwrap_err(),
        SandboxError::OutOfFuel { budget: 1_000 }
    );
    // An input larger than the memory limit: the guest's allocation grows past it.
    let tight = sandbox().with_limits(Limits {
        memory_bytes: 4 << 20,
        ..Limits::default()
    });
    let mut e = tight.engine(&setup).unwrap();
    let huge = format!("\"{}\"", "x".repeat(8 << 20));
    assert!(matches!(
        e.step_json(0, &huge),
        Err(SandboxError::MemoryLimit { limit, .. }) if limit == 4 << 20
    ));
    assert!(e.is_dead());
    tight
        .engine(&setup)
        .expect("a fresh instance after the memory trap");
    real_module_still_works();
}

// ---- the CLI ---------------------------------------------------------------------------

fn livemig() -> Command {
    Command::new(env!("CARGO_BIN_EXE_livemig"))
}

#[test]
fn cli_replays_the_corpus_on_wasm() {
    // The module must be there (same message as the other tests otherwise).
    sandbox();
    let files = traces();
    let out = livemig()
        .args(["replay", "--quiet", "--engine", "wasm"])
        .args(&files)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(stdout.matches("identical").count(), files.len(), "{stdout}");
    assert!(stdout.contains(", wasm)"), "{stdout}");
}

#[test]
fn cli_names_the_build_script_when_the_module_is_missing() {
    let out = livemig()
        .args([
            "replay",
            "--engine",
            "wasm",
            "--module",
            "/nonexistent/m.wasm",
        ])
        .arg(
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/traces")
                .join(SUCCESS),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("scripts/build-wasm-abi.sh"), "{stderr}");
}
