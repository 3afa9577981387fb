//! The committed trace corpus under `tests/traces/`: each scenario's recorded run equals its
//! committed trace byte for byte (orchestrator scenarios in `migration/`, host-role
//! scenarios in `hosts/`, SPICE session scenarios in `spice/`), no stale trace lingers, and
//! every committed trace replays.
//! Regenerate with `LIVEMIG_BLESS=1 cargo test -p livemig-tests --test corpus`.

use livemig_core::trace;
use livemig_tests::scenarios::{corpus, run};
use livemig_tests::{host_scenarios, spice_scenarios, traces_dir};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Compare (or, with `LIVEMIG_BLESS`, write) each `(name, trace)` against
/// `tests/traces/<sub>/<name>.jsonl`, and refuse files no scenario produces.
fn check_folder(sub: &str, traces: Vec<(String, String)>) {
    let dir = traces_dir().join(sub);
    let bless = std::env::var_os("LIVEMIG_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut names = Vec::new();
    for (name, text) in traces {
        let file = format!("{name}.jsonl");
        assert!(!names.contains(&file), "two scenarios named {name}");
        let path = dir.join(&file);
        if bless {
            std::fs::write(&path, &text).unwrap();
        }
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with LIVEMIG_BLESS=1)", path.display()));
        assert_eq!(committed, text, "{} drifted", path.display());
        names.push(file);
    }
    // No stale trace lingers in the folder.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if bless && !names.contains(&name) {
            std::fs::remove_file(dir.join(&name)).unwrap();
            continue;
        }
        assert!(names.contains(&name), "stale trace {sub}/{name}");
    }
}

#[test]
fn scenarios_match_committed_traces() {
    let traces = corpus()
        .iter()
        .map(|s| (s.name.clone(), run(s).trace))
        .collect();
    check_folder("migration", traces);
}

#[test]
fn host_scenarios_match_committed_traces() {
    let traces = host_scenarios::corpus_traces();
    assert!(traces.len() >= 20, "only {} host scenarios", traces.len());
    check_folder("hosts", traces);
}

#[test]
fn every_committed_trace_replays() {
    let mut count = 0;
    let mut machines = std::collections::BTreeSet::new();
    for sub in ["migration", "hosts"] {
        for entry in std::fs::read_dir(traces_dir().join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let done = trace::replay(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(done.inputs > 0);
            machines.insert(match trace::read_header(&text).unwrap().setup {
                trace::Setup::Orchestrator(_) => "orchestrator",
                trace::Setup::SourceHost(_) => "source_host",
                trace::Setup::DestinationHost(_) => "destination_host",
                _ => "other",
            });
            count += 1;
        }
    }
    assert!(count >= 50, "only {count} traces");
    // Both folders hold exactly the migration machines' traces.
    assert_eq!(
        machines.into_iter().collect::<Vec<_>>(),
        ["destination_host", "orchestrator", "source_host"]
    );
}

#[test]
fn a_changed_action_is_caught() {
    let path = traces_dir().join("migration/managed-v3-success.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let tampered = text.replacen("\"cancelled\":false", "\"cancelled\":true", 1);
    assert_ne!(tampered, text);
    match trace::replay(&tampered) {
        Err(trace::TraceError::Mismatch { line, .. }) => assert!(line > 1),
        other => panic!("tampered trace replayed: {other:?}"),
    }
}

#[test]
fn a_changed_host_action_is_caught() {
    let path = traces_dir().join("hosts/src-v3-success-spice-wait.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let tampered = text.replacen("\"port\":5940", "\"port\":5941", 1);
    assert_ne!(tampered, text);
    match trace::replay(&tampered) {
        Err(trace::TraceError::Mismatch { line, .. }) => assert!(line > 1),
        other => panic!("tampered trace replayed: {other:?}"),
    }
}

/// Re-serializing each typed line of `text` gives the same bytes.
fn assert_canonical<I, A>(text: &str)
where
    I: Serialize + DeserializeOwned,
    A: Serialize + DeserializeOwned,
{
    let mut lines = text.lines();
    let first = lines.next().unwrap();
    let h: trace::Header = serde_json::from_str(first).unwrap();
    assert_eq!(trace::canonical(&h), first);
    for l in lines {
        let r: trace::Record<I, A> = serde_json::from_str(l).unwrap();
        assert_eq!(trace::canonical(&r), l);
    }
}

#[test]
fn traces_are_canonical() {
    use livemig_core::migration::destination::{DestinationAction, DestinationInput};
    use livemig_core::migration::orchestrator::{OrchestratorAction, OrchestratorInput};
    use livemig_core::migration::source::{SourceAction, SourceInput};
    let mut count = 0;
    for sub in ["migration", "hosts"] {
        for entry in std::fs::read_dir(traces_dir().join(sub)).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            match trace::read_header(&text).unwrap().setup {
                trace::Setup::Orchestrator(_) => {
                    assert_canonical::<OrchestratorInput, OrchestratorAction>(&text)
                }
                trace::Setup::SourceHost(_) => assert_canonical::<SourceInput, SourceAction>(&text),
                trace::Setup::DestinationHost(_) => {
                    assert_canonical::<DestinationInput, DestinationAction>(&text)
                }
                other => panic!("{sub}: unexpected machine {other:?}"),
            }
            count += 1;
        }
    }
    assert!(count >= 50, "only {count} traces");
}

#[test]
fn spice_scenarios_match_committed_traces() {
    let traces = spice_scenarios::corpus_traces();
    assert!(traces.len() >= 35, "only {} SPICE scenarios", traces.len());
    check_folder("spice", traces);
}

#[test]
fn every_committed_spice_trace_replays_and_is_canonical() {
    use livemig_core::spice::session::{SessionAction, SessionInput};
    let mut count = 0;
    for entry in std::fs::read_dir(traces_dir().join("spice")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let setup = trace::read_header(&text).unwrap().setup;
        assert!(
            matches!(setup, trace::Setup::SpiceSession(_)),
            "{}: {setup:?}",
            path.display()
        );
        let done = trace::replay(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(done.inputs > 0 && done.actions > 0);
        assert_canonical::<SessionInput, SessionAction>(&text);
        count += 1;
    }
    assert!(count >= 35, "only {count} SPICE traces");
}

#[test]
fn a_changed_spice_action_is_caught() {
    let path = traces_dir().join("spice/seamless-main-inputs-display.jsonl");
    let text = std::fs::read_to_string(path).unwrap();
    let tampered = text.replacen("\"migrate_data_len\":65", "\"migrate_data_len\":64", 1);
    assert_ne!(tampered, text);
    match trace::replay(&tampered) {
        Err(trace::TraceError::Mismatch { line, .. }) => assert!(line > 1),
        other => panic!("tampered trace replayed: {other:?}"),
    }
}
