//! The `livemig replay` command: readable output, exit status 0 on identical replays, 1 on
//! the first differing action, 2 on unreadable input.

use std::process::Command;

fn livemig() -> Command {
    Command::new(env!("CARGO_BIN_EXE_livemig"))
}

fn trace(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/traces/migration")
        .join(name)
}

#[test]
fn replays_a_whole_v3_migration_readably() {
    let out = livemig()
        .arg("replay")
        .arg(trace("managed-v3-success.jsonl"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    for needle in [
        "MigrateBegin3Params (302) flags=LIVE|CHANGE_PROTECTION",
        "MigratePrepare3Params (303) flags=LIVE",
        "uri tcp:10.77.0.2:49152",
        "MigrateFinish3Params (306)",
        "cancelled=0",
        "done: Migrated",
        "identical",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn a_tampered_trace_fails_with_both_actions_printed() {
    let text = std::fs::read_to_string(trace("managed-v3-perform-fails.jsonl")).unwrap();
    let bad = text.replacen("\"cancelled\":true", "\"cancelled\":false", 1);
    assert_ne!(bad, text);
    let dir = std::env::temp_dir().join(format!("livemig-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.jsonl");
    std::fs::write(&path, bad).unwrap();
    let out = livemig().arg("replay").arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("REPLAY FAILED"), "{text}");
    assert!(
        text.contains("expected:") && text.contains("got:"),
        "{text}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn missing_file_is_a_usage_error() {
    let out = livemig()
        .args(["replay", "/nonexistent/trace.jsonl"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}
