//! Two local QEMUs, a SPICE migration source and its destination.
//!
//! [`QemuPair::start`] makes a fresh run directory under `std::env::temp_dir()` and starts:
//!
//! ```text
//! qemu-system-x86_64 -name src -no-user-config -machine pc,accel=tcg -m 64 -nodefaults
//!   -vga qxl -display none -serial none -monitor none
//!   -spice port=P,addr=127.0.0.1,seamless-migration=on,disable-ticketing=on[,tls-port=T,x509-dir=D]
//!   -qmp unix:$RUN/src.qmp,server=on,wait=off
//! ```
//!
//! and the same destination (`-name dst`, its own SPICE ports, `$RUN/dst.qmp`) with
//! `-incoming unix:$RUN/mig.sock`. No guest image is needed: the guest sits in SeaBIOS. SPICE
//! listens on TCP ports of 127.0.0.1 picked per run; QMP and the migration stream use unix
//! sockets in the run directory, so concurrent runs cannot collide. Each QEMU's stderr goes
//! to `$RUN/src.stderr` / `$RUN/dst.stderr`, whose tail is part of every error.
//!
//! # Teardown
//!
//! Dropping the pair (also during a panic's unwinding, or through [`QemuPair::kill`]) sends
//! QMP `quit` to both (best effort, bounded to about half a second), then SIGKILLs whatever
//! still runs by PID, reaps both children and removes the run directory. A process that is
//! itself killed (SIGKILL, abort) cannot run that: the next [`QemuPair::start`] in any
//! process sweeps run directories whose owning process is gone, SIGKILLs their QEMUs (only
//! PIDs whose command line names that directory) and removes them.
//!
//! # One pair at a time
//!
//! [`QemuPair::start`] takes a process-wide lock that the pair holds until it is dropped, so
//! the real-peer tests of one test binary run one at a time even though libtest runs tests on
//! parallel threads (the machine has 2 cores, and timings stay meaningful). Different test
//! binaries need no lock: `cargo test` runs them one after the other. Consequence: a thread
//! must not start a second pair while it holds one (it would wait forever).

use std::fmt;
use std::fs::{self, File};
use std::io::{self, ErrorKind, Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::binary::{PasswordSupport, QemuBinary};
use super::qmp::{Event, Qmp, QmpError};
use super::tls::TlsDir;

/// The address every SPICE server of a pair listens on.
pub const SPICE_HOST: &str = "127.0.0.1";

/// Prefix of run directory names under `std::env::temp_dir()`.
pub const RUN_DIR_PREFIX: &str = "livemig-qemu-";

/// How many bytes of a QEMU's stderr an error carries at most.
const STDERR_TAIL_BYTES: u64 = 4096;

/// Which QEMU of the pair.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Side {
    /// The migration source (`-name src`).
    Source,
    /// The migration destination (`-name dst`, started with `-incoming`).
    Destination,
}

impl Side {
    /// `src` or `dst`: the QEMU `-name` and the prefix of its files in the run directory.
    pub fn tag(self) -> &'static str {
        match self {
            Side::Source => "src",
            Side::Destination => "dst",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Source => "source",
            Side::Destination => "destination",
        })
    }
}

/// The emulated display adapter (`-vga`), which decides the SPICE channels offered.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Vga {
    /// `-vga qxl`: display, cursor and inputs channels.
    #[default]
    Qxl,
    /// `-vga std`: display (simple spice display), cursor and inputs channels.
    Std,
    /// `-vga none`: the inputs channel only.
    None,
}

impl Vga {
    fn arg(self) -> &'static str {
        match self {
            Vga::Qxl => "qxl",
            Vga::Std => "std",
            Vga::None => "none",
        }
    }
}

/// What to start. `PairOptions::default()` is the spec's pair: seamless, QXL, no password, no
/// TLS, no agent channel, 64 MiB.
#[derive(Clone, Debug)]
pub struct PairOptions {
    /// `seamless-migration=on|off` on both servers.
    pub seamless: bool,
    /// The display adapter of both guests.
    pub vga: Vga,
    /// A SPICE ticket password for both servers (the destination must have the same one);
    /// `None` gives `disable-ticketing=on`. Passed as `-object secret,...,file=` plus
    /// `password-secret=` where the binary supports it (QEMU 7.2 does, and still also has the
    /// deprecated `password=`; QEMU ≥ 9 only has the secret form), else as `password=`.
    pub password: Option<String>,
    /// TLS for both servers: `tls-port=N,x509-dir=DIR` (the plain port stays open too). The
    /// destination's [`SpiceAddr::cert_subject`] is then the directory's subject.
    pub tls: Option<TlsDir>,
    /// Adds a virtio-serial port for the SPICE agent (`spicevmc` chardev `vdagent`, port
    /// `com.redhat.spice.0`). No agent runs in the guest, so the client sees no agent.
    pub vdagent: bool,
    /// Guest RAM in MiB (`-m`).
    pub memory_mib: u32,
    /// A fixed SPICE (plain) port for the source instead of a free one picked per run.
    pub source_spice_port: Option<u16>,
    /// A fixed SPICE (plain) port for the destination instead of a free one picked per run.
    pub dest_spice_port: Option<u16>,
    /// The QEMU binary; `None` means `$LIVEMIG_QEMU`, else `qemu-system-x86_64` from `PATH`.
    pub qemu: Option<PathBuf>,
    /// Leave the run directory (sockets, stderr files) after teardown, for debugging.
    /// Defaults to whether `LIVEMIG_QEMU_KEEP_RUN_DIR` is set.
    pub keep_run_dir: bool,
    /// Bound on each QEMU coming up (process start to QMP ready).
    pub start_timeout: Duration,
    /// SPICE on unix sockets in the run directory instead of TCP (no TLS then).
    pub unix_spice: bool,
}

impl Default for PairOptions {
    fn default() -> Self {
        PairOptions {
            seamless: true,
            vga: Vga::Qxl,
            password: None,
            tls: None,
            vdagent: false,
            memory_mib: 64,
            source_spice_port: None,
            dest_spice_port: None,
            qemu: None,
            keep_run_dir: std::env::var_os("LIVEMIG_QEMU_KEEP_RUN_DIR").is_some(),
            unix_spice: false,
            start_timeout: Duration::from_secs(10),
        }
    }
}

/// Where a SPICE server listens, and (for a migration target) the subject its TLS
/// certificate must have. This is exactly what `client_migrate_info` tells the client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpiceAddr {
    /// Always [`SPICE_HOST`] for a pair.
    pub host: String,
    /// The plain TCP port.
    pub port: u16,
    /// The TLS port, if TLS is on.
    pub tls_port: Option<u16>,
    /// The server certificate's subject in spice form (`C=..,L=..,O=..,CN=..`), if TLS is on.
    pub cert_subject: Option<String>,
    /// The unix socket SPICE listens on instead of TCP ([`PairOptions::unix_spice`]); `port`
    /// is then only the nominal port `client_migrate_info` announces.
    pub unix: Option<PathBuf>,
}

/// One entry of `query-spice`'s `channels`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpiceChannelInfo {
    /// The SPICE session id (QMP reports it as a signed int32; this is the same 32 bits).
    pub connection_id: u32,
    /// SPICE channel type (1 main, 2 display, 3 inputs, 4 cursor, ...).
    pub channel_type: u8,
    /// Channel id within its type.
    pub channel_id: u8,
    /// Whether the channel runs over TLS.
    pub tls: bool,
}

/// The result of a completed migration.
#[derive(Clone, Debug, PartialEq)]
pub struct MigrationStats {
    /// `total-time` of the source's `query-migrate`.
    pub total_time_ms: u64,
    /// `downtime` of the source's `query-migrate`.
    pub downtime_ms: u64,
    /// `setup-time` of the source's `query-migrate`.
    pub setup_time_ms: u64,
    /// QMP timestamp (µs since the epoch, host wall clock) of the source's
    /// `MIGRATION {"status":"completed"}` event.
    pub completed_at_timestamp_us: u64,
    /// QMP timestamp of the destination's `MIGRATION {"status":"completed"}` event (after it,
    /// the destination runs).
    pub dest_completed_at_timestamp_us: u64,
    /// The source's whole final `query-migrate` reply.
    pub query_migrate: Value,
}

fn show_tail(tail: &str) -> String {
    if tail.trim().is_empty() {
        "\n(stderr empty)".to_string()
    } else {
        format!("\n--- stderr tail ---\n{}", tail.trim_end())
    }
}

/// Errors of [`QemuPair`].
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    /// No usable QEMU with SPICE.
    #[error(
        "QEMU with SPICE is not available: {reason}. Install it with `apt-get install -y \
         --no-install-recommends qemu-system-x86` (scripts/setup.sh does), or point \
         LIVEMIG_QEMU at a binary"
    )]
    QemuMissing { reason: String },
    /// The binary lacks something the options ask for.
    #[error("unsupported by this QEMU: {what}")]
    Unsupported { what: String },
    /// Local setup failed (run directory, files, port probing, spawning).
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
    /// A QEMU did not come up: it exited, or QMP did not answer in time.
    #[error("{side} QEMU failed to start: {reason}{}", show_tail(.stderr_tail))]
    Start {
        side: Side,
        reason: String,
        stderr_tail: String,
    },
    /// A QMP exchange failed (including timeouts while waiting for events).
    #[error("{side} QEMU: {op}: {source}{}", show_tail(.stderr_tail))]
    Qmp {
        side: Side,
        op: String,
        source: QmpError,
        stderr_tail: String,
    },
    /// The migration ended in a state other than `completed`.
    #[error(
        "migration {status}: {detail}\n--- source{}\n--- destination{}",
        show_tail(.source_stderr_tail),
        show_tail(.dest_stderr_tail)
    )]
    Migration {
        status: String,
        detail: String,
        source_stderr_tail: String,
        dest_stderr_tail: String,
    },
}

impl PairError {
    /// The stderr tail carried by a `Start`/`Qmp` error, if any.
    pub fn stderr_tail(&self) -> Option<&str> {
        match self {
            PairError::Start { stderr_tail, .. } | PairError::Qmp { stderr_tail, .. } => {
                Some(stderr_tail)
            }
            _ => None,
        }
    }
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> PairError {
    let context = context.into();
    move |source| PairError::Io { context, source }
}

/// The process-wide "one pair at a time" lock (a `Send` guard, unlike `MutexGuard`).
#[derive(Debug)]
struct PairLock;

static LOCK_HELD: Mutex<bool> = Mutex::new(false);
static LOCK_FREED: Condvar = Condvar::new();

impl PairLock {
    fn acquire() -> PairLock {
        let mut held = LOCK_HELD.lock().unwrap_or_else(|e| e.into_inner());
        while *held {
            held = LOCK_FREED.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        *held = true;
        PairLock
    }
}

impl Drop for PairLock {
    fn drop(&mut self) {
        *LOCK_HELD.lock().unwrap_or_else(|e| e.into_inner()) = false;
        LOCK_FREED.notify_one();
    }
}

/// The run directory; removed on drop unless kept.
#[derive(Debug)]
struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A QEMU child process; SIGKILLed and reaped on drop.
#[derive(Debug)]
struct Proc {
    side: Side,
    child: Child,
    stderr_path: PathBuf,
}

impl Proc {
    fn stderr_tail(&self) -> String {
        read_tail(&self.stderr_path)
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `limit` for the process to exit by itself.
    fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.exited() {
                return Some(s);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    fn start_error(&mut self, reason: String) -> PairError {
        // Let a dying QEMU finish writing its stderr before reading it.
        let reason = match self.wait_exit(Duration::from_secs(1)) {
            Some(status) => format!("{reason} (QEMU exited: {status})"),
            None => reason,
        };
        PairError::Start {
            side: self.side,
            reason,
            stderr_tail: self.stderr_tail(),
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// One running QEMU with its QMP session.
#[derive(Debug)]
struct Peer {
    qmp: Qmp,
    proc: Proc,
    spice: SpiceAddr,
}

/// A running source and destination QEMU (see the module docs). All methods block.
#[derive(Debug)]
pub struct QemuPair {
    // Field order is drop order: processes first, then the run directory, then the lock.
    src: Peer,
    dst: Peer,
    run_dir: RunDir,
    binary: QemuBinary,
    migrate_uri: String,
    _lock: PairLock,
}

impl QemuPair {
    /// Starts both QEMUs and connects to their QMP (capabilities negotiated, migration
    /// `events` capability on for both). Waits first for any other pair of this process to be
    /// dropped. Typical cost: about 0.1–0.2 s.
    pub fn start(options: PairOptions) -> Result<QemuPair, PairError> {
        let lock = PairLock::acquire();
        let binary = QemuBinary::locate(options.qemu.as_deref())?;
        sweep_stale_runs();

        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "{RUN_DIR_PREFIX}{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        if path.exists() {
            fs::remove_dir_all(&path).map_err(io_err(format!("clear {}", path.display())))?;
        }
        fs::create_dir_all(&path).map_err(io_err(format!("create {}", path.display())))?;
        let run_dir = RunDir {
            path,
            keep: options.keep_run_dir,
        };
        if options.keep_run_dir {
            let _ = fs::write(run_dir.path.join("keep"), b"");
        }
        let longest = run_dir.path.join("src.qmp");
        if longest.as_os_str().len() > 100 {
            return Err(PairError::Io {
                context: format!("run directory {}", run_dir.path.display()),
                source: io::Error::new(
                    ErrorKind::InvalidInput,
                    "path too long for a unix socket; set TMPDIR to a shorter directory",
                ),
            });
        }

        let tls = options.tls.is_some();
        let wanted = 2 * (1 + usize::from(tls))
            - usize::from(options.source_spice_port.is_some())
            - usize::from(options.dest_spice_port.is_some());
        let mut free = free_ports(wanted)?.into_iter();
        let mut spice_addr = |fixed: Option<u16>| SpiceAddr {
            host: SPICE_HOST.to_string(),
            port: fixed.unwrap_or_else(|| free.next().expect("enough ports picked")),
            tls_port: tls.then(|| free.next().expect("enough ports picked")),
            cert_subject: options.tls.as_ref().map(|t| t.cert_subject.clone()),
            unix: None,
        };
        if options.unix_spice && tls {
            return Err(PairError::Unsupported {
                what: "TLS on a unix-socket SPICE server".into(),
            });
        }
        let mut src_spice = spice_addr(options.source_spice_port);
        let mut dst_spice = spice_addr(options.dest_spice_port);
        if options.unix_spice {
            src_spice.unix = Some(run_dir.path.join("src.spice"));
            dst_spice.unix = Some(run_dir.path.join("dst.spice"));
        }

        let mut extra: Vec<String> = Vec::new();
        let password_opt = match (&options.password, binary.password) {
            (None, _) => "disable-ticketing=on".to_string(),
            (Some(pw), PasswordSupport::Secret) => {
                let file = run_dir.path.join("spice-password");
                fs::write(&file, pw).map_err(io_err("write the SPICE password file"))?;
                extra.push("-object".into());
                extra.push(format!(
                    "secret,id=livemig-spice-pw,format=raw,file={}",
                    opt_escape(&file.to_string_lossy())
                ));
                "password-secret=livemig-spice-pw".to_string()
            }
            (Some(pw), PasswordSupport::Legacy) => format!("password={}", opt_escape(pw)),
            (Some(_), PasswordSupport::Unsupported) => {
                return Err(PairError::Unsupported {
                    what: format!("a SPICE password ({})", binary.version),
                })
            }
        };
        if options.vdagent {
            extra.extend(
                [
                    "-device",
                    "virtio-serial-pci,id=livemig-vser0",
                    "-chardev",
                    "spicevmc,id=livemig-vdagent,name=vdagent",
                    "-device",
                    "virtserialport,bus=livemig-vser0.0,chardev=livemig-vdagent,name=com.redhat.spice.0",
                ]
                .map(String::from),
            );
        }
        let migrate_uri = format!("unix:{}", run_dir.path.join("mig.sock").display());

        let args = |side: Side, spice: &SpiceAddr| -> Vec<String> {
            let listen = match &spice.unix {
                Some(path) => format!("unix=on,addr={}", opt_escape(&path.to_string_lossy())),
                None => format!("port={},addr={}", spice.port, spice.host),
            };
            let mut spice_opt = format!(
                "{listen},seamless-migration={},{password_opt}",
                if options.seamless { "on" } else { "off" }
            );
            if let (Some(tls_port), Some(dir)) = (spice.tls_port, &options.tls) {
                spice_opt.push_str(&format!(
                    ",tls-port={tls_port},x509-dir={}",
                    opt_escape(&dir.dir.to_string_lossy())
                ));
            }
            let qmp = run_dir.path.join(format!("{}.qmp", side.tag()));
            let mut a: Vec<String> = [
                "-name",
                side.tag(),
                "-no-user-config",
                "-machine",
                "pc,accel=tcg",
                "-m",
                &options.memory_mib.to_string(),
                "-nodefaults",
                "-vga",
                options.vga.arg(),
                "-display",
                "none",
                "-serial",
                "none",
                "-monitor",
                "none",
                "-spice",
                &spice_opt,
                "-qmp",
                &format!(
                    "unix:{},server=on,wait=off",
                    opt_escape(&qmp.to_string_lossy())
                ),
            ]
            .map(String::from)
            .to_vec();
            a.extend(extra.iter().cloned());
            if side == Side::Destination {
                a.push("-incoming".into());
                a.push(migrate_uri.clone());
            }
            a
        };

        let src_args = args(Side::Source, &src_spice);
        let dst_args = args(Side::Destination, &dst_spice);
        let mut src_proc = spawn(&binary, Side::Source, &src_args, &run_dir.path)?;
        let mut dst_proc = spawn(&binary, Side::Destination, &dst_args, &run_dir.path)?;
        let _ = fs::write(
            run_dir.path.join("pids"),
            format!("{}\n{}\n", src_proc.child.id(), dst_proc.child.id()),
        );

        let deadline = Instant::now() + options.start_timeout;
        let src_qmp = connect_qmp(&mut src_proc, &run_dir.path, deadline)?;
        let dst_qmp = connect_qmp(&mut dst_proc, &run_dir.path, deadline)?;
        let mut pair = QemuPair {
            src: Peer {
                qmp: src_qmp,
                proc: src_proc,
                spice: src_spice,
            },
            dst: Peer {
                qmp: dst_qmp,
                proc: dst_proc,
                spice: dst_spice,
            },
            run_dir,
            binary,
            migrate_uri,
            _lock: lock,
        };
        for side in [Side::Source, Side::Destination] {
            pair.execute(
                side,
                "migrate-set-capabilities",
                json!({"capabilities": [{"capability": "events", "state": true}]}),
            )?;
        }
        Ok(pair)
    }

    /// The source's QMP session (for commands and events this type does not wrap).
    pub fn source_qmp(&mut self) -> &mut Qmp {
        &mut self.src.qmp
    }

    /// The destination's QMP session.
    pub fn dest_qmp(&mut self) -> &mut Qmp {
        &mut self.dst.qmp
    }

    /// The QMP session of `side`.
    pub fn qmp(&mut self, side: Side) -> &mut Qmp {
        &mut self.peer_mut(side).qmp
    }

    /// Where the source's SPICE server listens.
    pub fn source_spice(&self) -> SpiceAddr {
        self.src.spice.clone()
    }

    /// Where the destination's SPICE server listens, with its certificate subject if TLS is
    /// on: the argument for [`client_migrate_info`](Self::client_migrate_info).
    pub fn dest_spice(&self) -> SpiceAddr {
        self.dst.spice.clone()
    }

    /// The PID of `side`'s QEMU.
    pub fn pid(&self, side: Side) -> u32 {
        self.peer(side).proc.child.id()
    }

    /// The run directory (QMP sockets, `mig.sock`, `src.stderr`, `dst.stderr`).
    pub fn run_dir(&self) -> &Path {
        &self.run_dir.path
    }

    /// The migration URI the destination listens on (`unix:$RUN/mig.sock`).
    pub fn migrate_uri(&self) -> &str {
        &self.migrate_uri
    }

    /// The QEMU binary in use.
    pub fn binary(&self) -> &QemuBinary {
        &self.binary
    }

    /// The last few KiB of `side`'s stderr.
    pub fn stderr_tail(&self, side: Side) -> String {
        self.peer(side).proc.stderr_tail()
    }

    /// Whether `side`'s QEMU is still running.
    pub fn is_running(&mut self, side: Side) -> bool {
        self.peer_mut(side).proc.exited().is_none()
    }

    /// Runs a QMP command on `side`, errors carrying that QEMU's stderr tail.
    pub fn execute(&mut self, side: Side, cmd: &str, args: Value) -> Result<Value, PairError> {
        let peer = self.peer_mut(side);
        peer.qmp
            .execute(cmd, args)
            .map_err(|e| qmp_error(&peer.proc, cmd, e))
    }

    /// QMP `client_migrate_info` on the source: tells a connected SPICE client where the
    /// destination is (`hostname`, `port`, and `tls-port` / `cert-subject` when set). Returns
    /// at once; it does not wait for the client.
    pub fn client_migrate_info(&mut self, dest: &SpiceAddr) -> Result<(), PairError> {
        let mut args = json!({"protocol": "spice", "hostname": dest.host, "port": dest.port});
        if let Some(tls_port) = dest.tls_port {
            args["tls-port"] = json!(tls_port);
        }
        if let Some(subject) = &dest.cert_subject {
            args["cert-subject"] = json!(subject);
        }
        self.execute(Side::Source, "client_migrate_info", args)
            .map(drop)
    }

    /// QMP `migrate` on the source to the destination's unix socket. Returns once the
    /// migration has started; see [`wait_migration_completed`](Self::wait_migration_completed).
    pub fn migrate(&mut self) -> Result<(), PairError> {
        let uri = self.migrate_uri.clone();
        self.execute(Side::Source, "migrate", json!({"uri": uri}))
            .map(drop)
    }

    /// Waits until both sides report `MIGRATION {"status":"completed"}` (consuming those two
    /// events; other events stay queued, so do not drain the `MIGRATION` events before) and
    /// returns the source's figures (waiting up to 1 s more for QEMU to fill in `total-time`,
    /// which it does just after the event). A `failed` or `cancelled` status on either side gives
    /// [`PairError::Migration`].
    pub fn wait_migration_completed(
        &mut self,
        timeout: Duration,
    ) -> Result<MigrationStats, PairError> {
        let deadline = Instant::now() + timeout;
        let src_event = self.wait_migration_end(Side::Source, deadline)?;
        let dst_event = self.wait_migration_end(Side::Destination, deadline)?;
        // QEMU emits the `completed` event a moment before it computes the figures: until
        // then query-migrate reports total-time 0. Poll briefly for them.
        let figures_deadline = Instant::now() + Duration::from_secs(1);
        let info = loop {
            let info = self.execute(Side::Source, "query-migrate", Value::Null)?;
            let total = info.get("total-time").and_then(Value::as_u64).unwrap_or(0);
            if total > 0 || Instant::now() >= figures_deadline {
                break info;
            }
            thread::sleep(Duration::from_millis(2));
        };
        let ms = |k: &str| info.get(k).and_then(Value::as_u64).unwrap_or(0);
        Ok(MigrationStats {
            total_time_ms: ms("total-time"),
            downtime_ms: ms("downtime"),
            setup_time_ms: ms("setup-time"),
            completed_at_timestamp_us: src_event.timestamp_us,
            dest_completed_at_timestamp_us: dst_event.timestamp_us,
            query_migrate: info,
        })
    }

    fn wait_migration_end(&mut self, side: Side, deadline: Instant) -> Result<Event, PairError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let peer = self.peer_mut(side);
        let event = peer
            .qmp
            .wait_event_matching("MIGRATION", left, |e| {
                matches!(
                    e.data.get("status").and_then(Value::as_str),
                    Some("completed" | "failed" | "cancelled")
                )
            })
            .map_err(|e| {
                qmp_error(
                    &peer.proc,
                    "wait for MIGRATION completed/failed/cancelled",
                    e,
                )
            })?;
        let status = event.data["status"].as_str().unwrap_or("").to_string();
        if status == "completed" {
            return Ok(event);
        }
        let detail = self
            .execute(side, "query-migrate", Value::Null)
            .map(|v| {
                v.get("error-desc")
                    .and_then(Value::as_str)
                    .map_or_else(|| v.to_string(), String::from)
            })
            .unwrap_or_else(|e| e.to_string());
        Err(PairError::Migration {
            status,
            detail: format!("{side}: {detail}"),
            source_stderr_tail: self.src.proc.stderr_tail(),
            dest_stderr_tail: self.dst.proc.stderr_tail(),
        })
    }

    /// Waits for `SPICE_MIGRATE_COMPLETED` on the source (spice-server emits it when the
    /// client has left the source after migration, at once when no client is connected, or
    /// 10 s after completion at the latest).
    pub fn wait_spice_migrate_completed(&mut self, timeout: Duration) -> Result<Event, PairError> {
        let peer = &mut self.src;
        peer.qmp
            .wait_event("SPICE_MIGRATE_COMPLETED", timeout)
            .map_err(|e| qmp_error(&peer.proc, "wait for SPICE_MIGRATE_COMPLETED", e))
    }

    /// QMP `query-spice` on `side`.
    pub fn query_spice(&mut self, side: Side) -> Result<Value, PairError> {
        self.execute(side, "query-spice", Value::Null)
    }

    /// QMP `query-status`'s `status` on `side` (`running`, `inmigrate`, `postmigrate`, ...).
    pub fn query_status(&mut self, side: Side) -> Result<String, PairError> {
        let v = self.execute(side, "query-status", Value::Null)?;
        v.get("status")
            .and_then(Value::as_str)
            .map(String::from)
            .ok_or_else(|| {
                qmp_error(
                    &self.peer(side).proc,
                    "query-status",
                    QmpError::Protocol(format!("no status in {v}")),
                )
            })
    }

    /// The SPICE channels connected to `side`, from `query-spice`.
    pub fn spice_channels(&mut self, side: Side) -> Result<Vec<SpiceChannelInfo>, PairError> {
        let v = self.query_spice(side)?;
        let channels = v.get("channels").and_then(Value::as_array);
        channels
            .into_iter()
            .flatten()
            .map(|c| {
                parse_channel(c).ok_or_else(|| {
                    qmp_error(
                        &self.peer(side).proc,
                        "query-spice",
                        QmpError::Protocol(format!("unexpected channel entry {c}")),
                    )
                })
            })
            .collect()
    }

    /// SIGKILLs `side`'s QEMU now (no `quit`), e.g. to simulate a crash, and reaps it.
    pub fn kill_side(&mut self, side: Side) -> Result<ExitStatus, PairError> {
        let child = &mut self.peer_mut(side).proc.child;
        if let Some(s) = child.try_wait().map_err(io_err("try_wait"))? {
            return Ok(s);
        }
        child
            .kill()
            .map_err(io_err(format!("kill the {side} QEMU")))?;
        child
            .wait()
            .map_err(io_err(format!("wait for the {side} QEMU")))
    }

    /// Tears the pair down now (the same as dropping it).
    pub fn kill(self) {
        drop(self)
    }

    fn peer(&self, side: Side) -> &Peer {
        match side {
            Side::Source => &self.src,
            Side::Destination => &self.dst,
        }
    }

    fn peer_mut(&mut self, side: Side) -> &mut Peer {
        match side {
            Side::Source => &mut self.src,
            Side::Destination => &mut self.dst,
        }
    }
}

impl Drop for QemuPair {
    /// Best-effort `quit` to both, at most ~0.5 s for them to exit; the fields' own drops
    /// then SIGKILL and reap what is left, remove the run directory and release the lock.
    fn drop(&mut self) {
        for peer in [&mut self.src, &mut self.dst] {
            if peer.proc.exited().is_none() {
                peer.qmp.set_command_timeout(Duration::from_millis(200));
                let _ = peer.qmp.execute("quit", Value::Null);
            }
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        for peer in [&mut self.src, &mut self.dst] {
            let _ = peer
                .proc
                .wait_exit(deadline.saturating_duration_since(Instant::now()));
        }
    }
}

fn qmp_error(proc: &Proc, op: &str, source: QmpError) -> PairError {
    PairError::Qmp {
        side: proc.side,
        op: op.to_string(),
        source,
        stderr_tail: proc.stderr_tail(),
    }
}

fn parse_channel(c: &Value) -> Option<SpiceChannelInfo> {
    let id = c.get("connection-id")?.as_i64()?;
    // QEMU declares connection-id as int and fills it from spice's u32 session id, so ids
    // above 2^31 arrive negative; accept a plain u32 too, in case that is ever fixed.
    let connection_id = if id < 0 {
        i32::try_from(id).ok()? as u32
    } else {
        u32::try_from(id).ok()?
    };
    Some(SpiceChannelInfo {
        connection_id,
        channel_type: u8::try_from(c.get("channel-type")?.as_u64()?).ok()?,
        channel_id: u8::try_from(c.get("channel-id")?.as_u64()?).ok()?,
        tls: c.get("tls")?.as_bool()?,
    })
}

/// Escapes a value for a QEMU `-opt key=value,...` list (a comma is written twice).
fn opt_escape(s: &str) -> String {
    s.replace(',', ",,")
}

/// `n` distinct free TCP ports of 127.0.0.1 (bound together, then released).
fn free_ports(n: usize) -> Result<Vec<u16>, PairError> {
    let listeners = (0..n)
        .map(|_| TcpListener::bind((SPICE_HOST, 0)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err("bind 127.0.0.1:0 to find a free port"))?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err("local_addr"))
}

fn spawn(binary: &QemuBinary, side: Side, args: &[String], dir: &Path) -> Result<Proc, PairError> {
    let stderr_path = dir.join(format!("{}.stderr", side.tag()));
    let stderr =
        File::create(&stderr_path).map_err(io_err(format!("create {}", stderr_path.display())))?;
    let _ = fs::write(
        dir.join(format!("{}.cmdline", side.tag())),
        format!("{} {}\n", binary.path.display(), args.join(" ")),
    );
    let child = Command::new(&binary.path)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .map_err(|e| PairError::Start {
            side,
            reason: format!("cannot run {}: {e}", binary.path.display()),
            stderr_tail: String::new(),
        })?;
    Ok(Proc {
        side,
        child,
        stderr_path,
    })
}

/// Connects to `$RUN/{src,dst}.qmp`, noticing early if QEMU exits instead.
fn connect_qmp(proc: &mut Proc, dir: &Path, deadline: Instant) -> Result<Qmp, PairError> {
    let path = dir.join(format!("{}.qmp", proc.side.tag()));
    loop {
        if proc.exited().is_some() {
            return Err(proc.start_error("QEMU exited before QMP was up".to_string()));
        }
        match UnixStream::connect(&path) {
            Ok(stream) => {
                let left = deadline.saturating_duration_since(Instant::now());
                return Qmp::from_stream(stream, left.max(Duration::from_millis(500)))
                    .map_err(|e| proc.start_error(format!("QMP handshake failed: {e}")));
            }
            Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::ConnectionRefused) => {
                if Instant::now() >= deadline {
                    return Err(proc.start_error(format!(
                        "QMP socket {} not up in time ({e})",
                        path.display()
                    )));
                }
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(proc.start_error(format!("connect {}: {e}", path.display()))),
        }
    }
}

fn read_tail(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > STDERR_TAIL_BYTES {
        let _ = f.seek(SeekFrom::Start(len - STDERR_TAIL_BYTES));
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

/// Cleans up after processes that died without tearing their pair down: for every run
/// directory whose owner PID is gone, SIGKILLs the QEMUs listed in its `pids` file whose
/// command line names that directory, then removes the directory (unless it has a `keep`
/// marker).
fn sweep_stale_runs() {
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    let me = std::process::id();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(rest) = name.to_str().and_then(|n| n.strip_prefix(RUN_DIR_PREFIX)) else {
            continue;
        };
        let Some(owner) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if owner == me || Path::new("/proc").join(owner.to_string()).exists() {
            continue;
        }
        let dir = entry.path();
        let dir_text = dir.to_string_lossy().into_owned();
        let pids = fs::read_to_string(dir.join("pids")).unwrap_or_default();
        for pid in pids.lines().filter_map(|l| l.trim().parse::<u32>().ok()) {
            let cmdline = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&dir_text) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
        if !dir.join("keep").exists() {
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids_above_2_pow_31_are_reinterpreted() {
        let c = json!({"connection-id": -1119531358, "channel-type": 1, "channel-id": 0,
                       "tls": false, "host": "127.0.0.1", "port": "1", "family": "ipv4"});
        let info = parse_channel(&c).unwrap();
        assert_eq!(info.connection_id, 3175435938);
        assert_eq!(
            (info.channel_type, info.channel_id, info.tls),
            (1, 0, false)
        );
        let c = json!({"connection-id": 7, "channel-type": 3, "channel-id": 0, "tls": true});
        assert_eq!(parse_channel(&c).unwrap().connection_id, 7);
    }

    #[test]
    fn option_values_escape_commas() {
        assert_eq!(opt_escape("/tmp/a,b"), "/tmp/a,,b");
    }
}
