//! The two-daemon environment itself: it comes up, virsh migrates the guest A → B, the check
//! sees it only on B, and teardown leaves nothing behind.

use livemig_host::libvirt_hosts::{virsh, TwoHosts, HOST_A, HOST_B};

#[test]
fn two_real_daemons_migrate_with_virsh_and_tear_down_clean() {
    let t = std::time::Instant::now();
    {
        let env = TwoHosts::start().unwrap_or_else(|e| panic!("environment: {e}"));
        env.create_guest(&HOST_A, "127.0.0.1").unwrap();
        env.check_runs_only_on(&HOST_A).unwrap();
        virsh(&HOST_A, &["migrate", "--live", "tiny", &HOST_B.uri()]).unwrap();
        env.check_runs_only_on(&HOST_B).unwrap();
        assert!(env.check_runs_only_on(&HOST_A).is_err());
    }
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(!list.contains("lvmA") && !list.contains("lvmB"), "{list}");
    let ps = std::process::Command::new("pgrep")
        .args(["-f", "guest=tiny"])
        .output()
        .unwrap();
    assert!(ps.stdout.is_empty(), "qemu left behind");
    eprintln!(
        "environment up, migrated and torn down in {:?}",
        t.elapsed()
    );
}
