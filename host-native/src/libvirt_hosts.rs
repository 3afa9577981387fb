//! Two real libvirt daemons on this machine, each in a network, mount and UTS namespace of
//! its own, as libvirt-real-peer.md §2 describes (the environment every libvirt real-peer
//! test and the main job use). Needs root, `ip`, `unshare`, `virsh`, `libvirtd`
//! (installed by scripts/setup.sh).
//!
//! ```text
//! root netns: bridge lvmbr0 10.77.0.254/24  <- livemig (the client)
//!   ├─ veth ── netns lvmA: eth0 10.77.0.1   libvirtd "hosta", host_uuid 0a0a…0a
//!   └─ veth ── netns lvmB: eth0 10.77.0.2   libvirtd "hostb", host_uuid 0b0b…0b
//! ```
//! One environment at a time per process ([`TwoHosts::start`] takes a lock); dropping it
//! destroys the guest, stops both daemons and deletes the namespaces and the bridge.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

const BRIDGE: &str = "lvmbr0";

/// One libvirt host.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// Host name inside its UTS namespace.
    pub name: &'static str,
    /// Network namespace.
    pub netns: &'static str,
    /// Address of its eth0.
    pub ip: &'static str,
    /// `host_uuid` of its libvirtd.
    pub uuid: &'static str,
}

impl Host {
    /// `qemu+tcp://IP/system`.
    pub fn uri(&self) -> String {
        format!("qemu+tcp://{}/system", self.ip)
    }
    /// The daemon's RPC address.
    pub fn rpc_addr(&self) -> String {
        format!("{}:16509", self.ip)
    }
}

/// Host A (the first source).
pub const HOST_A: Host = Host {
    name: "hosta",
    netns: "lvmA",
    ip: "10.77.0.1",
    uuid: "0a0a0a0a-0000-4000-8000-00000000000a",
};
/// Host B.
pub const HOST_B: Host = Host {
    name: "hostb",
    netns: "lvmB",
    ip: "10.77.0.2",
    uuid: "0b0b0b0b-0000-4000-8000-00000000000b",
};

/// The guest of libvirt-real-peer.md §2: 64 MiB TCG, SPICE on `port` listening on `listen`.
pub fn guest_xml(listen: &str, port: u16) -> String {
    format!(
        "<domain type='qemu'><name>tiny</name><uuid>7e1e7e1e-0000-4000-8000-000000000001</uuid>\
<memory unit='MiB'>64</memory><vcpu>1</vcpu>\
<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>\
<features><acpi/></features>\
<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>\
<graphics type='spice' port='{port}' autoport='no' listen='{listen}'><listen type='address' address='{listen}'/></graphics>\
<video><model type='qxl' vram='8192' ram='8192' vgamem='4096' heads='1'/></video>\
<memballoon model='none'/></devices></domain>"
    )
}

/// Errors setting up or using the environment.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    /// A command failed.
    #[error("{cmd}: {detail}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its status and stderr.
        detail: String,
    },
    /// A daemon did not come up.
    #[error("libvirtd on {host} did not come up: {log}")]
    Daemon {
        /// Which host.
        host: &'static str,
        /// The tail of its output.
        log: String,
    },
    /// I/O on the work directory.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

static LOCK: Mutex<()> = Mutex::new(());

/// Run a command; its stdout on success.
pub fn run(cmd: &mut Command) -> Result<String, HostsError> {
    let out = cmd.output().map_err(|e| HostsError::Command {
        cmd: format!("{cmd:?}"),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HostsError::Command {
            cmd: format!("{cmd:?}"),
            detail: format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// `virsh -c URI ARGS`.
pub fn virsh(host: &Host, args: &[&str]) -> Result<String, HostsError> {
    run(Command::new("virsh").arg("-c").arg(host.uri()).args(args))
}

/// The running environment.
pub struct TwoHosts {
    work: PathBuf,
    daemons: Vec<(Host, Child)>,
    // Field order is drop order: the environment is gone before the locks are released.
    _file_lock: std::fs::File,
    _lock: MutexGuard<'static, ()>,
}

fn teardown_network() {
    let _ = Command::new("ip")
        .args(["netns", "del", HOST_A.netns])
        .output();
    let _ = Command::new("ip")
        .args(["netns", "del", HOST_B.netns])
        .output();
    let _ = Command::new("ip").args(["link", "del", BRIDGE]).output();
    // The veths vanish asynchronously after `netns del` (§9.6).
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        let gone = ["lvmAh", "lvmBh"].iter().all(|v| {
            !Command::new("ip")
                .args(["link", "show", v])
                .stderr(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        });
        if gone {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kill daemons and QEMUs a crashed earlier run left in our namespaces.
fn kill_leftovers() {
    for h in [HOST_A, HOST_B] {
        if let Ok(pids) = run(Command::new("ip").args(["netns", "pids", h.netns])) {
            for pid in pids.split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).output();
            }
        }
    }
}

impl TwoHosts {
    /// Set up the network, both daemons, and wait until each has probed QEMU.
    pub fn start() -> Result<TwoHosts, HostsError> {
        let lock = LOCK.lock().unwrap_or_else(|p| p.into_inner());
        // The namespaces and bridge names are fixed: one environment per machine, across
        // processes too.
        let file_lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(std::env::temp_dir().join("livemig-libvirt-hosts.lock"))?;
        file_lock.lock()?;
        kill_leftovers();
        teardown_network();
        if run(Command::new("getent").args(["passwd", "libvirt-qemu"])).is_err() {
            run(Command::new("useradd").args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/var/lib/libvirt",
                "--shell",
                "/usr/sbin/nologin",
                "libvirt-qemu",
            ]))?;
        }
        run(Command::new("ip").args(["link", "add", BRIDGE, "type", "bridge"]))?;
        run(Command::new("ip").args(["addr", "add", "10.77.0.254/24", "dev", BRIDGE]))?;
        run(Command::new("ip").args(["link", "set", BRIDGE, "up"]))?;
        for h in [HOST_A, HOST_B] {
            let veth = format!("{}h", h.netns);
            run(Command::new("ip").args(["netns", "add", h.netns]))?;
            run(Command::new("ip").args([
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", h.netns,
            ]))?;
            run(Command::new("ip").args(["link", "set", &veth, "master", BRIDGE, "up"]))?;
            let cidr = format!("{}/24", h.ip);
            run(Command::new("ip").args(["-n", h.netns, "addr", "add", &cidr, "dev", "eth0"]))?;
            run(Command::new("ip").args(["-n", h.netns, "link", "set", "eth0", "up"]))?;
            run(Command::new("ip").args(["-n", h.netns, "link", "set", "lo", "up"]))?;
        }
        let work = std::env::temp_dir().join(format!("livemig-hosts-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work)?;
        let mut env = TwoHosts {
            work,
            daemons: Vec::new(),
            _file_lock: file_lock,
            _lock: lock,
        };
        std::fs::write(
            env.work.join("hosts"),
            "127.0.0.1 localhost\n10.77.0.1 hosta\n10.77.0.2 hostb\n",
        )?;
        for h in [HOST_A, HOST_B] {
            let child = env.spawn_daemon(&h)?;
            env.daemons.push((h, child));
        }
        for h in [HOST_A, HOST_B] {
            env.wait_ready(&h)?;
        }
        Ok(env)
    }

    fn host_dir(&self, h: &Host) -> PathBuf {
        self.work.join(h.name)
    }

    fn spawn_daemon(&self, h: &Host) -> Result<Child, HostsError> {
        let d = self.host_dir(h);
        for sub in ["etc", "run", "lib", "log", "cache"] {
            std::fs::create_dir_all(d.join(sub))?;
        }
        // A seeded QEMU capabilities cache makes the next start ~1 s faster (§3).
        let seed = caps_cache_dir();
        if seed.join("capabilities").is_dir() {
            let _ = run(Command::new("cp")
                .arg("-r")
                .arg(seed.join("capabilities"))
                .arg(d.join("cache/qemu/")));
        }
        std::fs::create_dir_all(d.join("cache/qemu"))?;
        if Path::new("/etc/libvirt/libvirt.conf").exists() {
            std::fs::copy("/etc/libvirt/libvirt.conf", d.join("etc/libvirt.conf"))?;
        }
        std::fs::write(
            d.join("etc/libvirtd.conf"),
            format!(
                "listen_tls = 0\nlisten_tcp = 1\nlisten_addr = \"{ip}\"\ntcp_port = \"16509\"\n\
                 auth_tcp = \"none\"\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\n\
                 host_uuid = \"{uuid}\"\nmdns_adv = 0\n\
                 log_filters = \"1:rpc.netserverprogram 1:remote 1:qemu.qemu_migration 1:qemu.qemu_migration_cookie 3:util 3:object\"\n\
                 log_outputs = \"1:file:/var/log/libvirt/libvirtd.log\"\n",
                ip = h.ip,
                uuid = h.uuid
            ),
        )?;
        std::fs::write(
            d.join("etc/qemu.conf"),
            format!(
                "user = \"root\"\ngroup = \"root\"\ndynamic_ownership = 0\nremember_owner = 0\n\
                 security_driver = \"none\"\ncgroup_controllers = [ ]\nnamespaces = [ ]\n\
                 stdio_handler = \"file\"\nmigration_host = \"{}\"\n",
                h.ip
            ),
        )?;
        let reaper = subreaper_path();
        let script = format!(
            "hostname {name}; mount --bind {d}/etc /etc/libvirt; mount --bind {d}/run /run/libvirt; \
             mount --bind {d}/lib /var/lib/libvirt; mount --bind {d}/log /var/log/libvirt; \
             mount --bind {d}/cache /var/cache/libvirt; mount --bind {w}/hosts /etc/hosts; \
             exec {reaper} /usr/sbin/libvirtd --listen --pid-file /run/libvirt/libvirtd.pid",
            name = h.name,
            d = d.display(),
            w = self.work.display(),
            reaper = reaper.display(),
        );
        for p in [
            "/run/libvirt",
            "/var/lib/libvirt",
            "/var/log/libvirt",
            "/var/cache/libvirt",
            "/etc/libvirt",
        ] {
            std::fs::create_dir_all(p)?;
        }
        let out = std::fs::File::create(d.join("daemon.out"))?;
        Command::new("ip")
            .args(["netns", "exec", h.netns, "unshare", "--uts", "--mount"])
            .args(["--propagation", "private", "sh", "-c", &script])
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| HostsError::Command {
                cmd: "ip netns exec ... libvirtd".into(),
                detail: e.to_string(),
            })
    }

    fn wait_ready(&mut self, h: &Host) -> Result<(), HostsError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if virsh(h, &["domcapabilities", "--virttype", "qemu"]).is_ok() {
                // Keep the probed capabilities for the next start.
                let caps = self.host_dir(h).join("cache/qemu/capabilities");
                let seed = caps_cache_dir();
                if caps.is_dir() && !seed.join("capabilities").is_dir() {
                    let _ = std::fs::create_dir_all(&seed);
                    let _ = run(Command::new("cp").arg("-r").arg(&caps).arg(&seed));
                }
                return Ok(());
            }
            let died = self
                .daemons
                .iter_mut()
                .find(|(d, _)| d == h)
                .is_some_and(|(_, c)| c.try_wait().ok().flatten().is_some());
            if died || Instant::now() > deadline {
                let log = std::fs::read_to_string(self.host_dir(h).join("daemon.out"))
                    .unwrap_or_default();
                let tail: String = log.lines().rev().take(10).collect::<Vec<_>>().join(" | ");
                return Err(HostsError::Daemon {
                    host: h.name,
                    log: tail,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Start the guest `tiny` on `h` (SPICE on `listen`:5940).
    pub fn create_guest(&self, h: &Host, listen: &str) -> Result<(), HostsError> {
        let path = self.work.join("tiny.xml");
        std::fs::write(&path, guest_xml(listen, 5940))?;
        virsh(h, &["create", &path.to_string_lossy()]).map(drop)
    }

    /// The guest runs on `on` only: `running` there, unknown on the other host, and exactly
    /// one QEMU process for it, in `on`'s network namespace.
    pub fn check_runs_only_on(&self, on: &Host) -> Result<(), String> {
        let other = if on == &HOST_A { HOST_B } else { HOST_A };
        let state = virsh(on, &["domstate", "tiny"]).map_err(|e| e.to_string())?;
        if state.trim() != "running" {
            return Err(format!("tiny is {:?} on {}", state.trim(), on.name));
        }
        if virsh(&other, &["domstate", "tiny"]).is_ok() {
            return Err(format!("{} still knows tiny", other.name));
        }
        let pids = run(Command::new("pgrep").args(["-f", "guest=tiny"])).unwrap_or_default();
        let pids: Vec<&str> = pids.split_whitespace().collect();
        if pids.len() != 1 {
            return Err(format!("{} qemu processes for tiny", pids.len()));
        }
        let ns = run(Command::new("ip").args(["netns", "identify", pids[0]])).unwrap_or_default();
        if ns.trim() != on.netns {
            return Err(format!("the qemu runs in netns {:?}", ns.trim()));
        }
        Ok(())
    }

    /// The directory of one host's state (logs under `log/libvirtd.log`).
    pub fn dir(&self, h: &Host) -> PathBuf {
        self.host_dir(h)
    }
}

impl Drop for TwoHosts {
    fn drop(&mut self) {
        for h in [HOST_A, HOST_B] {
            let _ = virsh(&h, &["destroy", "tiny"]);
        }
        for (h, _) in &self.daemons {
            let pidfile = self.host_dir(h).join("run/libvirtd.pid");
            if let Ok(pid) = std::fs::read_to_string(pidfile) {
                let _ = Command::new("kill").args(["-TERM", pid.trim()]).output();
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for (_, c) in &mut self.daemons {
            while Instant::now() < deadline && c.try_wait().ok().flatten().is_none() {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        kill_leftovers();
        teardown_network();
        if std::env::var_os("LIVEMIG_KEEP_HOSTS_DIR").is_none() {
            let _ = std::fs::remove_dir_all(&self.work);
        }
    }
}

/// Where the seeded QEMU capabilities cache is kept between runs.
fn caps_cache_dir() -> PathBuf {
    std::env::temp_dir().join("livemig-libvirt-caps")
}

/// The `livemig-subreaper` binary next to the running executable (or its parent for tests).
fn subreaper_path() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    for dir in exe.ancestors().skip(1).take(3) {
        let p = dir.join("livemig-subreaper");
        if p.is_file() {
            return p;
        }
    }
    PathBuf::from("livemig-subreaper")
}

/// Holds `127.0.0.1:port` inside `host`'s namespace (so a QEMU there cannot start SPICE on
/// it: failure F1 of libvirt-real-peer.md §7) until dropped.
pub struct PortBlocker(Child);

impl PortBlocker {
    /// Bind the port; returns once it is bound.
    pub fn start(host: &Host, port: u16) -> Result<PortBlocker, HostsError> {
        let script = format!(
            "import socket,time\ns=socket.socket()\n\
             s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n\
             s.bind(('127.0.0.1',{port}));s.listen()\nprint('ok',flush=True)\ntime.sleep(300)"
        );
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                host.netns,
                "/usr/bin/python3",
                "-c",
                &script,
            ])
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| HostsError::Command {
                cmd: "ip netns exec python3 (port blocker)".into(),
                detail: e.to_string(),
            })?;
        let mut buf = [0u8; 3];
        let bound = child.stdout.take().map(|mut out| {
            std::io::Read::read_exact(&mut out, &mut buf).is_ok() && &buf == b"ok\n"
        });
        if bound != Some(true) {
            let _ = child.kill();
            let _ = child.wait();
            return Err(HostsError::Command {
                cmd: format!("bind 127.0.0.1:{port} in {}", host.netns),
                detail: "the blocker did not come up".into(),
            });
        }
        Ok(PortBlocker(child))
    }
}

impl Drop for PortBlocker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
