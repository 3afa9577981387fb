//! `livemig migrate` as a command against two real libvirt daemons: exit statuses (0
//! migrated, 1 failed with the source running, 2 usage), `--json`, `--record`, and Ctrl-C
//! cancelling through the core.

use std::process::{Command, Stdio};
use std::time::Duration;

use livemig_host::libvirt_hosts::{PortBlocker, TwoHosts, HOST_A, HOST_B};

fn livemig() -> Command {
    Command::new(env!("CARGO_BIN_EXE_livemig"))
}

#[test]
fn usage_errors_exit_2() {
    let out = livemig()
        .args([
            "migrate",
            "qemu:///system",
            "qemu+tcp://10.77.0.2/system",
            "tiny",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let out = livemig().args(["migrate"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn json_success_with_a_trace_then_prepare_failure_then_ctrl_c() {
    let env = TwoHosts::start().unwrap();
    env.create_guest(&HOST_A, "127.0.0.1").unwrap();
    let trace = std::env::temp_dir().join(format!("livemig-migrate-{}.jsonl", std::process::id()));

    // 0: migrated, one JSON object per step and one for the outcome.
    let out = livemig()
        .args([
            "migrate",
            &HOST_A.uri(),
            &HOST_B.uri(),
            "tiny",
            "--json",
            "--record",
        ])
        .arg(&trace)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7, "6 steps and the outcome");
    assert_eq!(lines[0]["call"]["procedure"], "migrate_begin3_params");
    assert_eq!(lines[6]["report"]["verdict"], "migrated");
    env.check_runs_only_on(&HOST_B).unwrap();
    let replay = livemig().arg("replay").arg(&trace).output().unwrap();
    assert!(replay.status.success());
    std::fs::remove_file(&trace).ok();

    // 1: Prepare fails on A (its SPICE port is taken), the VM keeps running on B.
    let blocker = PortBlocker::start(&HOST_A, 5940).unwrap();
    let out = livemig()
        .args(["migrate", &HOST_B.uri(), &HOST_A.uri(), "tiny"])
        .output()
        .unwrap();
    drop(blocker);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("Failed"), "{text}");
    env.check_runs_only_on(&HOST_B).unwrap();

    // Ctrl-C during a slow Perform: the core aborts the job; exit 1, the VM stays on B.
    let st = Command::new("ip")
        .args([
            "netns",
            "exec",
            HOST_B.netns,
            "tc",
            "qdisc",
            "add",
            "dev",
            "eth0",
            "root",
        ])
        .args([
            "tbf", "rate", "1mbit", "burst", "32kbit", "latency", "400ms",
        ])
        .status()
        .unwrap();
    assert!(st.success());
    let child = livemig()
        .args(["migrate", &HOST_B.uri(), &HOST_A.uri(), "tiny"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("DomainAbortJob"), "{text}");
    env.check_runs_only_on(&HOST_B).unwrap();
}
