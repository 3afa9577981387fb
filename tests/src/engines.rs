//! Cross-engine conformance (issue 6): the corpus's inputs with the committed action texts,
//! the Node engines' outputs (`tests/node-engines/emit.mjs`, spawned), and the byte-for-byte
//! comparison of every engine's answers with the trace. Used by `tests/three_engines.rs` and
//! `examples/engines_bench.rs`.
//!
//! Every line of a trace is canonical JSON (`core/src/trace.rs`), so the committed text of
//! each action is the reference every engine's output must equal, byte for byte.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Deserialize;
use serde_json::value::RawValue;

/// One input of a trace and the actions committed for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// 1-based line number in the trace file.
    pub line: usize,
    /// The record's `now`.
    pub now: u64,
    /// The input's JSON text, exactly as committed.
    pub input: String,
    /// Each action's JSON text, exactly as committed.
    pub actions: Vec<String>,
}

/// A trace of the corpus.
#[derive(Debug, Clone)]
pub struct Trace {
    /// The file.
    pub path: PathBuf,
    /// The path under `tests/traces/` (`migration/managed-v3-success.jsonl`).
    pub name: String,
    /// The header's setup as canonical JSON.
    pub setup: String,
    /// Every record, in order.
    pub steps: Vec<Step>,
}

#[derive(Deserialize)]
struct RawHeader<'a> {
    #[serde(borrow)]
    setup: &'a RawValue,
}

#[derive(Deserialize)]
struct RawRecord<'a> {
    now: u64,
    #[serde(borrow)]
    input: &'a RawValue,
    #[serde(borrow)]
    actions: Vec<&'a RawValue>,
}

impl Trace {
    /// Read a trace file, keeping the committed texts of setup, inputs and actions.
    pub fn read(path: &Path, name: String) -> Result<Trace, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let bad = |line: usize, e: serde_json::Error| format!("{}:{line}: {e}", path.display());
        let mut lines = text.lines().enumerate();
        let (_, first) = lines
            .next()
            .ok_or_else(|| format!("{}: empty", path.display()))?;
        let header: RawHeader = serde_json::from_str(first).map_err(|e| bad(1, e))?;
        let mut steps = Vec::new();
        for (i, line) in lines.filter(|(_, l)| !l.trim().is_empty()) {
            let r: RawRecord = serde_json::from_str(line).map_err(|e| bad(i + 1, e))?;
            steps.push(Step {
                line: i + 1,
                now: r.now,
                input: r.input.get().to_owned(),
                actions: r.actions.iter().map(|a| a.get().to_owned()).collect(),
            });
        }
        Ok(Trace {
            path: path.to_owned(),
            name,
            setup: header.setup.get().to_owned(),
            steps,
        })
    }

    /// Inputs fed by a replay of this trace.
    pub fn events(&self) -> usize {
        self.steps.len()
    }
}

/// Every trace under `tests/traces/` (one folder level), sorted by name.
pub fn corpus() -> Vec<Trace> {
    let root = crate::traces_dir();
    let mut names = Vec::new();
    for dir in std::fs::read_dir(&root).expect("tests/traces") {
        let dir = dir.expect("tests/traces entry").path();
        for file in std::fs::read_dir(&dir).into_iter().flatten() {
            let file = file.expect("trace file").path();
            if file.extension().is_some_and(|e| e == "jsonl") {
                let name = file.strip_prefix(&root).expect("under traces");
                names.push(name.to_string_lossy().into_owned());
            }
        }
    }
    names.sort();
    names
        .into_iter()
        .map(|n| Trace::read(&root.join(&n), n).unwrap_or_else(|e| panic!("{e}")))
        .collect()
}

/// What an engine answered for one input: its action texts, or its error.
pub type Outcome = Result<Vec<String>, String>;

/// An engine's answers for one trace, one per step (fewer if it stopped early).
#[derive(Debug, Clone)]
pub struct Run {
    /// The engine's name.
    pub engine: String,
    /// One outcome per step, in order.
    pub outcomes: Vec<Outcome>,
}

/// An engine's answer that is not the committed one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The trace's name.
    pub trace: String,
    /// The line of the record.
    pub line: usize,
    /// The engine.
    pub engine: String,
    /// The first differing action (index), or the number of actions expected on an error.
    pub index: usize,
    /// The committed text (`(none)` past the committed actions).
    pub expected: String,
    /// What the engine gave (`(none)`, or `error: …` / `no output`).
    pub got: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} line {}: engine {} action {} differs\n  expected: {}\n       got: {}",
            self.trace, self.line, self.engine, self.index, self.expected, self.got
        )
    }
}

/// Compare every engine's answers with the committed actions, byte for byte: the first
/// mismatch of each engine (an engine's later answers follow from a diverged state).
pub fn compare(trace: &Trace, runs: &[Run]) -> Vec<Mismatch> {
    let mut out = Vec::new();
    for run in runs {
        let first = trace.steps.iter().enumerate().find_map(|(i, step)| {
            let miss = |index: usize, expected: &str, got: String| Mismatch {
                trace: trace.name.clone(),
                line: step.line,
                engine: run.engine.clone(),
                index,
                expected: expected.to_owned(),
                got,
            };
            let got = match run.outcomes.get(i) {
                None => return Some(miss(0, "an answer", "no output".to_owned())),
                Some(Err(e)) => return Some(miss(0, "an answer", format!("error: {e}"))),
                Some(Ok(got)) => got,
            };
            (0..step.actions.len().max(got.len())).find_map(|k| {
                let e = step.actions.get(k).map_or("(none)", String::as_str);
                let g = got.get(k).map_or("(none)", String::as_str);
                (e != g).then(|| miss(k, e, g.to_owned()))
            })
        });
        out.extend(first);
        if run.outcomes.len() > trace.steps.len() {
            out.push(Mismatch {
                trace: trace.name.clone(),
                line: 0,
                engine: run.engine.clone(),
                index: trace.steps.len(),
                expected: format!("{} answers", trace.steps.len()),
                got: format!("{} answers", run.outcomes.len()),
            });
        }
    }
    out
}

/// The workspace root (the parent of this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The package's conformance module, built by `scripts/build-wasm.sh`.
pub fn package_module() -> PathBuf {
    workspace_root().join("js/dist/trace/livemig_wasm_bg.wasm")
}

/// Why the Node engines cannot run (a missing artefact or `node`), with what to do.
pub fn node_prerequisites(abi_module: &Path) -> Result<(), String> {
    let mut missing = Vec::new();
    if !package_module().is_file() {
        missing.push(format!(
            "{} (build it with scripts/build-wasm.sh)",
            package_module().display()
        ));
    }
    if !abi_module.is_file() {
        missing.push(format!(
            "{} (build it with scripts/build-wasm-abi.sh, same CARGO_TARGET_DIR)",
            abi_module.display()
        ));
    }
    if Command::new("node").arg("--version").output().is_err() {
        missing.push("`node` on PATH (Node >= 20: scripts/setup.sh)".to_owned());
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("missing: {}", missing.join("; ")))
    }
}

/// Spawn `node` on a script of `tests/node-engines/` and return its standard output.
pub fn run_node(script: &str, args: &[&OsStr]) -> Result<String, String> {
    let script = workspace_root().join("tests/node-engines").join(script);
    let out = Command::new("node")
        .arg(&script)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run node: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "node {} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|_| "node printed non-UTF-8".to_owned())
}

#[derive(Deserialize)]
struct Emitted {
    trace: String,
    line: usize,
    actions: Option<Vec<String>>,
    error: Option<String>,
}

/// The answers of a Node engine (`package` or `abi`) for every trace, through `emit.mjs`.
pub fn node_runs(engine: &str, abi_module: &Path, traces: &[Trace]) -> Result<Vec<Run>, String> {
    let mut args = vec![
        OsStr::new(engine),
        OsStr::new("--module"),
        abi_module.as_os_str(),
    ];
    args.extend(traces.iter().map(|t| t.path.as_os_str()));
    parse_emitted(engine, &run_node("emit.mjs", &args)?, traces)
}

/// Split `emit.mjs`'s output into one [`Run`] per trace (lines may only follow each
/// trace's records in order).
pub fn parse_emitted(engine: &str, text: &str, traces: &[Trace]) -> Result<Vec<Run>, String> {
    let index: BTreeMap<String, usize> = traces
        .iter()
        .enumerate()
        .map(|(i, t)| (t.path.to_string_lossy().into_owned(), i))
        .collect();
    let mut runs: Vec<Run> = traces
        .iter()
        .map(|_| Run {
            engine: engine.to_owned(),
            outcomes: Vec::new(),
        })
        .collect();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let e: Emitted =
            serde_json::from_str(line).map_err(|err| format!("{engine}: `{line}`: {err}"))?;
        let t = *index
            .get(&e.trace)
            .ok_or_else(|| format!("{engine}: output for an unknown trace {}", e.trace))?;
        let run = &mut runs[t];
        let expected_line = traces[t].steps.get(run.outcomes.len()).map(|s| s.line);
        if e.error.is_none() && expected_line != Some(e.line) {
            return Err(format!(
                "{engine}: {} line {} out of order (expected {expected_line:?})",
                e.trace, e.line
            ));
        }
        run.outcomes.push(match (e.actions, e.error) {
            (Some(a), None) => Ok(a),
            (None, Some(err)) => Err(format!("line {}: {err}", e.line)),
            _ => return Err(format!("{engine}: `{line}` has neither actions nor error")),
        });
    }
    Ok(runs)
}
