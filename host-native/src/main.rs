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
