//! `livemig replay`: re-run a trace on a fresh machine and compare every action.

use livemig_core::migration::orchestrator::{OrchestratorAction, OrchestratorInput};
use livemig_core::trace::{self, Record, Replayed, Setup, TraceError};

use crate::present;
use crate::sandbox::Sandbox;

/// Replay `text`; when `out` is given, also print the run readably into it.
pub fn replay(text: &str, out: Option<&mut String>) -> Result<Replayed, TraceError> {
    replay_on(text, Engine::Native, out)
}

/// Which engine runs a replay.
#[derive(Clone, Copy, Debug)]
pub enum Engine<'a> {
    /// livemig-core compiled into this program.
    Native,
    /// The core's WebAssembly module in the wasmtime sandbox (a fresh instance per trace).
    Wasm(&'a Sandbox),
}

/// [`replay`] on a chosen engine.
pub fn replay_on(
    text: &str,
    engine: Engine<'_>,
    out: Option<&mut String>,
) -> Result<Replayed, TraceError> {
    let done = match engine {
        Engine::Native => trace::replay(text)?,
        Engine::Wasm(sandbox) => trace::replay_with(
            text,
            |setup| {
                sandbox
                    .engine(&trace::canonical(setup))
                    .map_err(|e| e.to_string())
            },
            |e, now, input| e.step_json(now, input).map_err(|e| e.to_string()),
        )?,
    };
    if let Some(out) = out {
        describe(text, out)?;
    }
    Ok(done)
}

fn describe(text: &str, out: &mut String) -> Result<(), TraceError> {
    let header = trace::read_header(text)?;
    match &header.setup {
        Setup::Orchestrator(c) => out.push_str(&format!("  {}\n", present::config(c))),
        // Other machines print their inputs and actions as canonical JSON.
        other => return describe_json(text, other, out),
    }
    let mut last = 0;
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record<OrchestratorInput, OrchestratorAction> = serde_json::from_str(line)
            .map_err(|e| TraceError::Parse {
                line: i + 1,
                message: e.to_string(),
            })?;
        let dt = rec.now.saturating_sub(last);
        last = rec.now;
        out.push_str(&format!(
            "  {:>7} ms (+{:>3})  {}\n",
            rec.now,
            dt,
            present::input(&rec.input)
        ));
        for a in &rec.actions {
            out.push_str(&format!("  {:>20}  {}\n", "", present::action(a)));
        }
    }
    Ok(())
}

fn describe_json(text: &str, setup: &Setup, out: &mut String) -> Result<(), TraceError> {
    let name = trace::canonical(setup);
    out.push_str(&format!(
        "  {}\n",
        name.chars().take(160).collect::<String>()
    ));
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let rec: Record<serde_json::Value, serde_json::Value> = serde_json::from_str(line)
            .map_err(|e| TraceError::Parse {
                line: i + 1,
                message: e.to_string(),
            })?;
        out.push_str(&format!("  {:>7} ms  ← {}\n", rec.now, rec.input));
        for a in &rec.actions {
            out.push_str(&format!("  {:>10}  → {a}\n", ""));
        }
    }
    Ok(())
}
