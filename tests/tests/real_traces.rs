//! Traces recorded against real peers (`livemig demo --record`, the real-QEMU tests) replay
//! identically: the session's decisions depend only on its inputs.

use livemig_core::trace;
use livemig_tests::traces_dir;

#[test]
fn recorded_real_sessions_replay() {
    let mut n = 0;
    for entry in std::fs::read_dir(traces_dir().join("real")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let done = trace::replay(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(
            done.actions > 50,
            "{}: only {} actions",
            path.display(),
            done.actions
        );
        n += 1;
    }
    assert!(n >= 1);
}

#[test]
fn the_real_seamless_trace_shows_the_whole_switch() {
    let text = std::fs::read_to_string(traces_dir().join("real/qemu-seamless-4ch.jsonl")).unwrap();
    for needle in [
        "\"event\":\"migration_connected\",\"kind\":\"seamless\"",
        "\"event\":\"channel_switched\"",
        "\"event\":\"migrated\",\"kind\":\"seamless\"",
    ] {
        assert!(text.contains(needle), "missing {needle}");
    }
    assert!(!text.contains("switch_host"));
}
