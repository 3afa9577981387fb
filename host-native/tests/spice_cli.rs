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
