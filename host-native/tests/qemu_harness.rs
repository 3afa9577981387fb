//! The real-QEMU harness (`livemig_host::qemu`) against the installed `qemu-system-x86_64`.
//! These tests never skip: without QEMU they fail, naming the install command.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use livemig_host::qemu::{PairError, PairOptions, QemuBinary, QemuPair, Side, TlsDir, Vga};
use serde_json::Value;

fn start(options: PairOptions) -> QemuPair {
    QemuPair::start(options).unwrap_or_else(|e| panic!("starting the QEMU pair failed: {e}"))
}

/// Whether a process with `pid` still runs with `run_dir` on its command line.
fn still_running(pid: u32, run_dir: &Path) -> bool {
    match std::fs::read(format!("/proc/{pid}/cmdline")) {
        Ok(cmdline) => String::from_utf8_lossy(&cmdline).contains(&*run_dir.to_string_lossy()),
        Err(_) => false,
    }
}

fn assert_spice_enabled(spice: &Value, port: u16) {
    assert_eq!(spice["enabled"], true, "{spice}");
    assert_eq!(spice["host"], "127.0.0.1", "{spice}");
    assert_eq!(spice["port"], u64::from(port), "{spice}");
    assert_eq!(spice["migrated"], false, "{spice}");
    assert!(spice["compiled-version"].is_string(), "{spice}");
}

#[test]
fn qemu_with_spice_is_installed() {
    let qemu = QemuBinary::locate(None).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "{} ({}), password: {:?}",
        qemu.path.display(),
        qemu.version,
        qemu.password
    );
    assert!(
        qemu.version.starts_with("QEMU emulator version"),
        "{qemu:?}"
    );
}

#[test]
fn a_migration_without_a_spice_client_completes_and_teardown_leaves_nothing() {
    let t0 = Instant::now();
    let mut pair = start(PairOptions::default());
    let started = t0.elapsed();

    let (src, dst) = (pair.source_spice(), pair.dest_spice());
    assert_ne!(src.port, dst.port);
    assert_eq!((src.tls_port, dst.tls_port), (None, None));
    let spice = pair.query_spice(Side::Source).unwrap();
    assert_spice_enabled(&spice, src.port);
    assert_eq!(spice["auth"], "none");
    assert_spice_enabled(&pair.query_spice(Side::Destination).unwrap(), dst.port);
    assert!(pair.spice_channels(Side::Source).unwrap().is_empty());
    assert_eq!(pair.query_status(Side::Source).unwrap(), "running");
    assert_eq!(pair.query_status(Side::Destination).unwrap(), "inmigrate");

    let t1 = Instant::now();
    pair.client_migrate_info(&dst).unwrap();
    pair.migrate().unwrap();
    let stats = pair
        .wait_migration_completed(Duration::from_secs(20))
        .unwrap();
    let migrated = t1.elapsed();
    // No client connected: spice-server reports the SPICE side done at once.
    let spice_done = pair
        .wait_spice_migrate_completed(Duration::from_secs(1))
        .unwrap();
    assert!(stats.completed_at_timestamp_us > 0, "{stats:?}");
    assert!(stats.dest_completed_at_timestamp_us > 0, "{stats:?}");
    assert!(
        spice_done.timestamp_us < stats.completed_at_timestamp_us + 1_000_000,
        "{spice_done:?} vs {stats:?}"
    );
    assert_eq!(stats.query_migrate["status"], "completed");
    assert!(stats.total_time_ms > 0, "{stats:?}");
    assert_eq!(pair.query_status(Side::Destination).unwrap(), "running");
    assert_eq!(pair.query_status(Side::Source).unwrap(), "postmigrate");
    assert_eq!(pair.query_spice(Side::Source).unwrap()["migrated"], true);
    let events: Vec<String> = pair
        .source_qmp()
        .drain_events()
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert!(events.iter().any(|e| e == "STOP"), "{events:?}");

    let pids = [pair.pid(Side::Source), pair.pid(Side::Destination)];
    let run_dir = pair.run_dir().to_path_buf();
    assert!(run_dir.join("src.stderr").exists());
    for pid in pids {
        assert!(still_running(pid, &run_dir), "pid {pid} should run now");
    }
    let t2 = Instant::now();
    drop(pair);
    let torn_down = t2.elapsed();
    for pid in pids {
        assert!(
            !still_running(pid, &run_dir),
            "QEMU {pid} survived the drop"
        );
    }
    assert!(!run_dir.exists(), "{} survived the drop", run_dir.display());
    eprintln!(
        "timings: start {started:?}, client_migrate_info+migrate+completed {migrated:?} \
         (QEMU total-time {} ms, downtime {} ms), teardown {torn_down:?}, whole {:?}",
        stats.total_time_ms,
        stats.downtime_ms,
        t0.elapsed()
    );
}

#[test]
fn a_tls_pair_listens_on_its_tls_port_with_the_generated_certificate() {
    let tls = TlsDir::generate_temp_default().unwrap();
    assert_eq!(tls.cert_subject, "C=XX,L=livemig,O=livemig,CN=127.0.0.1");
    let mut pair = start(PairOptions {
        tls: Some(tls.clone()),
        ..PairOptions::default()
    });
    let (src, dst) = (pair.source_spice(), pair.dest_spice());
    let src_tls = src.tls_port.expect("TLS port for the source");
    let dst_tls = dst.tls_port.expect("TLS port for the destination");
    assert_eq!(dst.cert_subject.as_deref(), Some(tls.cert_subject.as_str()));
    let spice = pair.query_spice(Side::Source).unwrap();
    assert_spice_enabled(&spice, src.port);
    assert_eq!(spice["tls-port"], u64::from(src_tls), "{spice}");
    let spice = pair.query_spice(Side::Destination).unwrap();
    assert_eq!(spice["tls-port"], u64::from(dst_tls), "{spice}");

    // A TLS client trusting only our CA completes the handshake with spice-server and sees
    // the subject we asked for.
    let out = Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{dst_tls}"),
            "-CAfile",
        ])
        .arg(tls.ca_cert_path())
        .args(["-verify_return_error", "-verify_ip", "127.0.0.1", "-brief"])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("running `openssl s_client` failed ({e}); apt-get install openssl")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("Verification: OK"), "{text}");
    assert!(
        text.contains("C = XX, L = livemig, O = livemig, CN = 127.0.0.1"),
        "{text}"
    );

    // client_migrate_info accepts the TLS port and subject; migration still completes.
    pair.client_migrate_info(&dst).unwrap();
    pair.migrate().unwrap();
    pair.wait_migration_completed(Duration::from_secs(20))
        .unwrap();
    pair.wait_spice_migrate_completed(Duration::from_secs(1))
        .unwrap();
    let run_dir = pair.run_dir().to_path_buf();
    drop(pair);
    assert!(!run_dir.exists());
    assert!(
        tls.dir.exists(),
        "the TLS dir belongs to its TlsDir, not to the pair"
    );
}

#[test]
fn password_agent_std_vga_and_semi_seamless_options_are_accepted() {
    let mut pair = start(PairOptions {
        password: Some("s3cret,with comma".into()),
        vdagent: true,
        vga: Vga::Std,
        seamless: false,
        memory_mib: 32,
        ..PairOptions::default()
    });
    for side in [Side::Source, Side::Destination] {
        let spice = pair.query_spice(side).unwrap();
        assert_eq!(spice["auth"], "spice", "{side}: {spice}");
    }
    let qom = pair
        .execute(
            Side::Source,
            "qom-list",
            serde_json::json!({"path": "/machine/peripheral-anon"}),
        )
        .unwrap();
    assert!(qom.to_string().contains("virtserialport"), "{qom}");
    let dst = pair.dest_spice();
    pair.client_migrate_info(&dst).unwrap();
    pair.migrate().unwrap();
    pair.wait_migration_completed(Duration::from_secs(20))
        .unwrap();
    assert_eq!(pair.query_status(Side::Destination).unwrap(), "running");

    let mut pair2 = {
        drop(pair);
        start(PairOptions {
            vga: Vga::None,
            ..PairOptions::default()
        })
    };
    assert_eq!(pair2.query_status(Side::Source).unwrap(), "running");
}

#[test]
fn a_taken_spice_port_fails_the_start_with_a_typed_error_and_stderr() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let t0 = Instant::now();
    let err = QemuPair::start(PairOptions {
        source_spice_port: Some(port),
        ..PairOptions::default()
    })
    .expect_err("QEMU cannot listen on a port that is taken");
    match &err {
        PairError::Start {
            side, stderr_tail, ..
        } => {
            assert_eq!(*side, Side::Source);
            assert!(stderr_tail.to_lowercase().contains("spice"), "{err}");
        }
        other => panic!("expected PairError::Start, got {other:?}"),
    }
    let text = err.to_string();
    assert!(text.contains("stderr tail"), "{text}");
    eprintln!("failed start after {:?}: {text}", t0.elapsed());
    drop(taken);

    // The next start works (the failed one released the lock and cleaned up).
    let mut pair = start(PairOptions::default());
    assert_eq!(pair.query_status(Side::Source).unwrap(), "running");
}

#[test]
fn a_killed_destination_is_reported_with_its_side() {
    let mut pair = start(PairOptions::default());
    let status = pair.kill_side(Side::Destination).unwrap();
    assert!(!status.success());
    assert!(!pair.is_running(Side::Destination));
    match pair.query_status(Side::Destination) {
        Err(PairError::Qmp { side, .. }) => assert_eq!(side, Side::Destination),
        other => panic!("expected a QMP error, got {other:?}"),
    }
    assert_eq!(pair.query_status(Side::Source).unwrap(), "running");
}

#[test]
fn a_panicking_holder_leaves_no_qemu_behind() {
    let (tx, rx) = std::sync::mpsc::channel();
    let joined = std::thread::spawn(move || {
        let pair = start(PairOptions::default());
        tx.send((
            [pair.pid(Side::Source), pair.pid(Side::Destination)],
            pair.run_dir().to_path_buf(),
        ))
        .unwrap();
        panic!("deliberate panic while holding a pair");
    })
    .join();
    assert!(joined.is_err(), "the thread was meant to panic");
    let (pids, run_dir) = rx.recv().unwrap();
    for pid in pids {
        assert!(
            !still_running(pid, &run_dir),
            "QEMU {pid} survived the panic"
        );
    }
    assert!(
        !run_dir.exists(),
        "{} survived the panic",
        run_dir.display()
    );
    // The lock was released by the unwinding: a new pair starts.
    drop(start(PairOptions::default()));
}
