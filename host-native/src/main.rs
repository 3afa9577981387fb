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

/// Exit status: usage or unreadable input.
const EXIT_USAGE: u8 = 2;
/// Exit status: a replay differed.
const EXIT_MISMATCH: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
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
