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
    /// The main job: a real seamless migration between two local QEMUs with the native
    /// SPICE client following, each step printed with its time.
    Demo {
        /// Record the client's session as a trace file.
        #[arg(long)]
        record: Option<std::path::PathBuf>,
    },
    /// Connect a SPICE client to a server and follow its migrations, printing each event.
    Spice(SpiceArgs),
    /// Re-run traces on fresh machines; fail on the first action that differs.
    Replay {
        /// Trace files (JSON Lines, see core/src/trace.rs).
        #[arg(required = true)]
        files: Vec<std::path::PathBuf>,
        /// Print only the verdict line per trace.
        #[arg(short, long)]
        quiet: bool,
    },
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Spice(args) => spice(args),
        Command::Demo { record } => {
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
        Command::Replay { files, quiet } => {
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
                let result = livemig_host::replay::replay(&text, (!quiet).then_some(&mut out));
                let took = started.elapsed();
                println!("{}", f.display());
                print!("{out}");
                match result {
                    Ok(r) => println!(
                        "  replayed: {} inputs, {} actions, identical ({:.1} µs)\n",
                        r.inputs,
                        r.actions,
                        took.as_secs_f64() * 1e6
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
