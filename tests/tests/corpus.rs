//! The committed trace corpus under `tests/traces/migration/`: each scenario's recorded run
//! equals its committed trace byte for byte, and every committed trace replays.
//! Regenerate with `LIVEMIG_BLESS=1 cargo test -p livemig-tests --test corpus`.

use livemig_core::trace;
use livemig_tests::scenarios::{corpus, run};
use livemig_tests::traces_dir;

#[test]
fn scenarios_match_committed_traces() {
    let dir = traces_dir().join("migration");
    let bless = std::env::var_os("LIVEMIG_BLESS").is_some();
    if bless {
        std::fs::create_dir_all(&dir).unwrap();
    }
    let mut names = Vec::new();
    for s in corpus() {
        let r = run(&s);
        let path = dir.join(format!("{}.jsonl", s.name));
        if bless {
            std::fs::write(&path, &r.trace).unwrap();
        }
        let committed = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with LIVEMIG_BLESS=1)", path.display()));
        assert_eq!(committed, r.trace, "{} drifted", path.display());
        names.push(format!("{}.jsonl", s.name));
    }
    // No stale trace lingers in the folder.
    for entry in std::fs::read_dir(&dir).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(names.contains(&name), "stale trace {name}");
    }
}

#[test]
fn every_committed_trace_replays() {
    let mut count = 0;
    for sub in ["migration"] {
        for entry in std::fs::read_dir(traces_dir().join(sub)).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let done = trace::replay(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(done.inputs > 0);
            count += 1;
        }
    }
    assert!(count >= 30, "only {count} traces");
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
fn traces_are_canonical() {
    // Re-serializing each typed line gives the same bytes.
    use livemig_core::migration::orchestrator::{OrchestratorAction, OrchestratorInput};
    type Rec = trace::Record<OrchestratorInput, OrchestratorAction>;
    for entry in std::fs::read_dir(traces_dir().join("migration")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        let mut lines = text.lines();
        let h: trace::Header = serde_json::from_str(lines.next().unwrap()).unwrap();
        assert_eq!(trace::canonical(&h), text.lines().next().unwrap());
        for l in lines {
            let r: Rec = serde_json::from_str(l).unwrap();
            assert_eq!(trace::canonical(&r), l);
        }
    }
}
