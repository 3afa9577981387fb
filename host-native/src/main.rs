//! `livemig`: the native command line of livemig.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// livemig: live-migration protocol core, natively.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// The main job: two libvirt daemons, a VM with SPICE, livemig's SPICE client linked to
    /// it, `livemig migrate` moving the VM and the client following seamlessly, each step
    /// printed with its time, everything torn down.
    Demo {
        /// Instead: a seamless migration between two plain QEMUs driven over QMP.
        #[arg(long)]
        qemu_only: bool,
        /// Record the client's session as a trace file (with the libvirt story, the
        /// migration's trace goes next to it as FILE.migration.jsonl).
        #[arg(long)]
        record: Option<std::path::PathBuf>,
    },
    /// Migrate a domain between two libvirt daemons (managed mode), each step printed.
    Migrate(MigrateArgs),
    /// Connect a SPICE client to a server and follow its migrations, printing each event.
    Spice(SpiceArgs),
    /// Start two local QEMUs with SPICE (a migration source and destination) and drive
    /// them with line commands on stdin, one JSON reply per line on stdout: a harness for
    /// tests in other languages (see host-native/src/qemu/serve.rs).
    Qemu {
        /// A SPICE ticket password on both servers.
        #[arg(long)]
        password: Option<String>,
        /// `seamless-migration=off` on both servers.
        #[arg(long)]
        semi_seamless: bool,
        /// TLS ports too, with a fresh CA (its PEM is in the `ready` line).
        #[arg(long)]
        tls: bool,
    },
    /// Re-run traces on fresh machines; fail on the first action that differs.
    Replay {
        /// Trace files (JSON Lines, see core/src/trace.rs).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// Print only the verdict line per trace.
        #[arg(short, long)]
        quiet: bool,
        /// Run the core natively, or as WebAssembly in the wasmtime sandbox.
        #[arg(long, value_enum, default_value_t = ReplayEngine::Native)]
        engine: ReplayEngine,
        /// The module for `--engine wasm` (default: scripts/build-wasm-abi.sh's output).
        #[arg(long)]
        module: Option<std::path::PathBuf>,
    },
}

/// `livemig replay --engine`.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum ReplayEngine {
    /// livemig-core compiled into this program.
    Native,
    /// livemig-core's import-free module under wasmtime (fuel and memory limits).
    Wasm,
}

#[derive(clap::Args)]
struct MigrateArgs {
    /// Source daemon, `qemu+tcp://HOST[:PORT]/system`.
    source: String,
    /// Destination daemon.
    destination: String,
    /// Domain name.
    domain: String,
    /// Protocol: v3 (default; with params where both daemons have them) or v2.
    #[arg(long, value_parser = ["v3", "v2"], default_value = "v3")]
    protocol: String,
    /// Use the fixed-argument v3 procedures (213-218) even where params are supported.
    #[arg(long)]
    no_params: bool,
    /// Where a SPICE client should follow the VM (`spice://HOST:PORT`).
    #[arg(long)]
    graphics_uri: Option<String>,
    /// Bound on each step, in seconds.
    #[arg(long)]
    timeout: Option<u64>,
    /// One JSON object per step and one for the outcome, instead of text.
    #[arg(long)]
    json: bool,
    /// Record the run as a trace file (`livemig replay` accepts it).
    #[arg(long)]
    record: Option<std::path::PathBuf>,
}

fn migrate(args: MigrateArgs) -> ExitCode {
    use livemig_core::migration::orchestrator::{OrchestratorInput as I, ProtocolRequest};
    use livemig_core::migration::MigrateFlags;
    use livemig_host::migrate::{describe_cookie, exit_code, run, MigrateOptions};

    let protocol = match (args.protocol.as_str(), args.no_params) {
        ("v2", _) => ProtocolRequest::V2,
        (_, true) => ProtocolRequest::V3,
        _ => ProtocolRequest::Auto,
    };
    let opts = MigrateOptions {
        source: args.source.clone(),
        destination: args.destination.clone(),
        domain: args.domain.clone(),
        protocol,
        flags: MigrateFlags::LIVE,
        graphics_uri: args.graphics_uri.clone(),
        step_timeout: args.timeout.map(std::time::Duration::from_secs),
        record: args.record.is_some(),
    };
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        let _ = signal_hook::flag::register(sig, cancel.clone());
    }
    if !args.json {
        println!(
            "livemig migrate {} → {} ({})",
            args.source, args.destination, args.domain
        );
    }
    let json = args.json;
    let outcome = run(&opts, cancel, |s| {
        let result = match &s.result {
            I::Begun { cookie, xml } => {
                format!(
                    "begun: {}; domain XML {} B",
                    describe_cookie(cookie.as_slice()),
                    xml.len()
                )
            }
            I::Prepared { cookie, uri } => format!(
                "prepared: {}; uri {}",
                describe_cookie(cookie.as_slice()),
                uri.as_deref().unwrap_or("(none)")
            ),
            I::Performed { cookie } => format!("performed: {}", describe_cookie(cookie.as_slice())),
            I::Finished { domain, cookie } => format!(
                "finished: {} runs; {}",
                domain.name,
                describe_cookie(cookie.as_slice())
            ),
            other => livemig_host::present::input(other),
        };
        if json {
            let line = serde_json::json!({
                "at_ms": s.at_ms, "took_ms": s.took_ms,
                "call": &s.call, "result": &s.result,
            });
            println!("{line}");
        } else {
            println!(
                "{:>9.1} ms  {:<11} {:<24} {:>7.1} ms  {result}",
                s.at_ms,
                format!("{:?}", s.call.host).to_lowercase(),
                format!("{:?}", s.call.procedure),
                s.took_ms
            );
        }
    });
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("livemig migrate: {e}");
            // Nothing was changed anywhere: a bad URI is a usage error, anything else
            // (unreachable daemon, unknown domain) a failure with the source untouched.
            let code = match e {
                livemig_host::migrate::MigrateError::Uri(_) => EXIT_USAGE,
                _ => 1,
            };
            return ExitCode::from(code);
        }
    };
    for w in &outcome.warnings {
        eprintln!("warning: {w}");
    }
    if json {
        println!(
            "{}",
            serde_json::json!({"report": &outcome.report, "total_ms": outcome.total_ms})
        );
    } else {
        let r = &outcome.report;
        println!(
            "{:?} in {:.1} ms (protocol {:?}){}",
            r.verdict,
            outcome.total_ms,
            r.protocol,
            r.error
                .as_ref()
                .map(|e| format!(": {}", e.message))
                .unwrap_or_default()
        );
    }
    if let (Some(path), Some(trace)) = (&args.record, &outcome.trace) {
        if let Err(e) = std::fs::write(path, trace) {
            eprintln!("livemig: {}: {e}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
    }
    ExitCode::from(exit_code(outcome.report.verdict))
}

#[derive(clap::Args)]
struct SpiceArgs {
    /// Server host.
    host: String,
    /// Plain port (0 for none).
    port: u16,
    /// TLS port (preferred when given).
    #[arg(long)]
    tls_port: Option<u16>,
    /// CA certificate (PEM) for TLS links.
    #[arg(long)]
    ca: Option<std::path::PathBuf>,
    /// Expected certificate subject of the first server (else its host name is verified).
    #[arg(long)]
    cert_subject: Option<String>,
    /// Ticket password (or the LIVEMIG_SPICE_PASSWORD environment variable).
    #[arg(
        long,
        env = "LIVEMIG_SPICE_PASSWORD",
        hide_env_values = true,
        default_value = ""
    )]
    password: String,
    /// Migration targets that may be contacted (host names); default: any. Repeatable.
    #[arg(long = "allow-target")]
    allow_targets: Vec<String>,
    /// Stop after this many seconds (default: run until the session closes).
    #[arg(long)]
    seconds: Option<u64>,
    /// Record the session as a trace file (`livemig replay` accepts it).
    #[arg(long)]
    record: Option<std::path::PathBuf>,
}

fn spice(args: SpiceArgs) -> ExitCode {
    use livemig_core::spice::session::{Endpoint, SessionConfig, SessionEvent};
    use livemig_host::spice::client::{spawn, ClientOptions};
    use std::time::{Duration, Instant};

    let mut cfg = SessionConfig::new(Endpoint {
        host: args.host.clone(),
        port: (args.port != 0).then_some(args.port),
        tls_port: args.tls_port,
        cert_subject: args.cert_subject.clone(),
    });
    cfg.password = args.password.clone();
    let ca_pem = match &args.ca {
        Some(p) => match std::fs::read(p) {
            Ok(b) => Some(b),
            Err(e) => {
                eprintln!("livemig: {}: {e}", p.display());
                return ExitCode::from(EXIT_USAGE);
            }
        },
        None => None,
    };
    let allow = args.allow_targets.clone();
    let opts = ClientOptions {
        ca_pem,
        record: args.record.is_some(),
        policy: std::sync::Arc::new(move |e: &Endpoint| {
            allow.is_empty() || allow.contains(&e.host)
        }),
        ..ClientOptions::default()
    };
    let start = Instant::now();
    let deadline = args.seconds.map(|s| start + Duration::from_secs(s));
    let mut c = spawn(cfg, opts);
    let mut closed = false;
    while !closed && deadline.is_none_or(|d| Instant::now() < d) {
        let Ok(e) = c.wait_event(Duration::from_millis(200), "event", |_| true) else {
            continue;
        };
        let t = e.at.saturating_duration_since(start).as_secs_f64() * 1e3;
        let text = match &e.event {
            SessionEvent::Message {
                channel,
                msg_type,
                body,
            } => {
                format!(
                    "{:?} {}: message {msg_type} ({} B)",
                    channel.kind,
                    channel.id,
                    body.len()
                )
            }
            SessionEvent::Closed { reason } => {
                closed = true;
                format!("closed: {reason}")
            }
            other => format!("{other:?}"),
        };
        println!("{t:>9.1} ms  {text}");
    }
    let report = c.stop();
    if let (Some(path), Some(trace)) = (&args.record, report.trace) {
        if let Err(e) = std::fs::write(path, trace) {
            eprintln!("livemig: {}: {e}", path.display());
            return ExitCode::from(EXIT_USAGE);
        }
        println!("trace written to {}", path.display());
    }
    ExitCode::SUCCESS
}

/// Exit status: usage or unreadable input.
const EXIT_USAGE: u8 = 2;
/// Exit status: a replay differed.
const EXIT_MISMATCH: u8 = 1;

fn write_trace(path: &std::path::Path, trace: Option<String>) -> bool {
    let Some(trace) = trace else { return true };
    match std::fs::write(path, trace) {
        Ok(()) => {
            println!("trace written to {}", path.display());
            true
        }
        Err(e) => {
            eprintln!("livemig: {}: {e}", path.display());
            false
        }
    }
}

fn demo_libvirt(record: Option<std::path::PathBuf>) -> ExitCode {
    println!(
        "livemig demo: a VM with SPICE moved between two libvirt daemons by livemig migrate, \
         livemig's SPICE client following it seamlessly"
    );
    match livemig_host::demo::libvirt_spice(record.is_some(), |l| println!("{l}")) {
        Ok(r) => {
            println!(
                "ok: migrated in {:.1} ms; {} channels followed seamlessly to {}:5940 with \
                 session id {}; Confirm3 returned {:.1} ms after the client's switch; \
                 whole story {:.1} s",
                r.migrate_ms,
                r.channels.len(),
                livemig_host::libvirt_hosts::HOST_B.ip,
                r.session_id,
                r.confirm_done_ms - r.migrated_ms,
                r.total_ms / 1e3
            );
            if let Some(path) = record {
                let mut mig = path.clone().into_os_string();
                mig.push(".migration.jsonl");
                if !write_trace(&path, r.trace) || !write_trace(mig.as_ref(), r.migration_trace) {
                    return ExitCode::from(EXIT_USAGE);
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("livemig demo failed: {e}");
            ExitCode::from(EXIT_MISMATCH)
        }
    }
}

fn demo_qemu(record: Option<std::path::PathBuf>) -> ExitCode {
    println!("livemig demo: SPICE seamless migration between two local QEMUs");
    match livemig_host::demo::spice_seamless(record.is_some(), |l| println!("{l}")) {
        Ok(r) => {
            println!(
                "ok: {} channels followed; linked to the destination in {:.1} ms; \
                 SPICE_MIGRATE_COMPLETED {:.1} ms after the migration",
                r.channels, r.connect_ms, r.completed_lag_ms
            );
            if let (Some(path), Some(trace)) = (record, r.trace) {
                if let Err(e) = std::fs::write(&path, trace) {
                    eprintln!("livemig: {}: {e}", path.display());
                    return ExitCode::from(EXIT_USAGE);
                }
                println!("trace written to {}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("livemig demo failed: {e}");
            ExitCode::from(EXIT_MISMATCH)
        }
    }
}

fn qemu(password: Option<String>, semi_seamless: bool, tls: bool) -> ExitCode {
    use livemig_host::qemu::{serve::serve, PairOptions, TlsDir};
    let tls = match tls.then(TlsDir::generate_temp_default).transpose() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("livemig: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = PairOptions {
        password,
        seamless: !semi_seamless,
        tls,
        ..PairOptions::default()
    };
    match serve(options, std::io::stdin().lock(), std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("livemig: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Spice(args) => spice(args),
        Command::Migrate(args) => migrate(args),
        Command::Demo {
            qemu_only: true,
            record,
        } => demo_qemu(record),
        Command::Demo {
            qemu_only: false,
            record,
        } => demo_libvirt(record),
        Command::Qemu {
            password,
            semi_seamless,
            tls,
        } => qemu(password, semi_seamless, tls),
        Command::Replay {
            files,
            quiet,
            engine,
            module,
        } => {
            use livemig_host::replay::Engine;
            use livemig_host::sandbox::{default_module_path, Sandbox};
            let sandbox = match engine {
                ReplayEngine::Native => None,
                ReplayEngine::Wasm => {
                    match Sandbox::load(module.unwrap_or_else(default_module_path)) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            eprintln!("livemig: {e}");
                            return ExitCode::from(EXIT_USAGE);
                        }
                    }
                }
            };
            let engine = sandbox.as_ref().map_or(Engine::Native, Engine::Wasm);
            let mut failed = false;
            for f in &files {
                let text = match std::fs::read_to_string(f) {
                    Ok(t) => t,
                    Err(e) => {
                        eprintln!("livemig: {}: {e}", f.display());
                        return ExitCode::from(EXIT_USAGE);
                    }
                };
                let mut out = String::new();
                let started = std::time::Instant::now();
                let result =
                    livemig_host::replay::replay_on(&text, engine, (!quiet).then_some(&mut out));
                let took = started.elapsed();
                println!("{}", f.display());
                print!("{out}");
                match result {
                    Ok(r) => println!(
                        "  replayed: {} inputs, {} actions, identical ({:.1} µs{})\n",
                        r.inputs,
                        r.actions,
                        took.as_secs_f64() * 1e6,
                        if sandbox.is_some() { ", wasm" } else { "" }
                    ),
                    Err(e) => {
                        println!("  REPLAY FAILED: {e}\n");
                        failed = true;
                    }
                }
            }
            if failed {
                ExitCode::from(EXIT_MISMATCH)
            } else {
                ExitCode::SUCCESS
            }
        }
    }
}
