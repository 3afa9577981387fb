//! `livemig spice HOST PORT`: the command-line client follows a real seamless migration and
//! records a trace that `livemig replay` accepts.

use std::process::{Command, Stdio};
use std::time::Duration;

use livemig_host::qemu::pair::{PairOptions, QemuPair};

#[test]
fn the_cli_client_follows_a_real_migration_and_records_it() {
    let mut pair = QemuPair::start(PairOptions::default()).expect("QEMU pair");
    let src = pair.source_spice();
    let trace = std::env::temp_dir().join(format!("livemig-cli-{}.jsonl", std::process::id()));
    let child = Command::new(env!("CARGO_BIN_EXE_livemig"))
        .args([
            "spice",
            &src.host,
            &src.port.to_string(),
            "--seconds",
            "3",
            "--record",
        ])
        .arg(&trace)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    pair.client_migrate_info(&pair.dest_spice()).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    pair.migrate().unwrap();
    pair.wait_migration_completed(Duration::from_secs(10))
        .unwrap();
    pair.wait_spice_migrate_completed(Duration::from_secs(5))
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("MigrationConnected { kind: Seamless }"),
        "{text}"
    );
    assert!(text.contains("Migrated { kind: Seamless }"), "{text}");
    let replay = Command::new(env!("CARGO_BIN_EXE_livemig"))
        .args(["replay", "--quiet"])
        .arg(&trace)
        .output()
        .unwrap();
    assert!(
        replay.status.success(),
        "{}",
        String::from_utf8_lossy(&replay.stdout)
    );
    std::fs::remove_file(trace).ok();
}

/// `livemig qemu`: the line-command harness other languages' tests drive a real migration
/// with (the npm package's browser test does).
#[test]
fn the_qemu_harness_migrates_on_command() {
    use std::io::{BufRead, BufReader, Write};
    let mut child = Command::new(env!("CARGO_BIN_EXE_livemig"))
        .arg("qemu")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> serde_json::Value {
        serde_json::from_str(&lines.next().expect("a reply line").unwrap()).unwrap()
    };
    let ready = next();
    assert_eq!(ready["event"], "ready", "{ready}");
    assert_eq!(ready["seamless"], true);
    let (sp, dp) = (&ready["source"]["port"], &ready["destination"]["port"]);
    assert!(sp.as_u64().unwrap() > 0 && dp.as_u64().unwrap() > 0 && sp != dp);

    let mut ask = |cmd: &str| {
        writeln!(stdin, "{cmd}").unwrap();
        next()
    };
    assert_eq!(ask("channels source")["channels"], serde_json::json!([]));
    assert_eq!(ask("status destination")["status"], "inmigrate");
    let bad = ask("channels sideways");
    assert_eq!(bad["event"], "error", "{bad}");
    assert_eq!(ask("frobnicate")["event"], "error");
    assert_eq!(ask("client_migrate_info")["event"], "ok");
    let done = ask("migrate");
    assert_eq!(done["event"], "migrated", "{done}");
    assert!(done["completed_at_us"].as_u64().unwrap() > 1_600_000_000_000_000);
    assert_eq!(ask("status destination")["status"], "running");
    assert_eq!(ask("status source")["status"], "postmigrate");
    // No client was connected: spice-server reports completion at once.
    let spice = ask("spice_migrate_completed");
    assert_eq!(spice["event"], "spice_migrate_completed", "{spice}");
    assert_eq!(ask("quit")["event"], "bye");
    drop(stdin);
    assert!(child.wait().unwrap().success());
}
