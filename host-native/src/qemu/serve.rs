//! `livemig qemu`: a [`QemuPair`] driven by line commands, for test harnesses in other
//! languages (the npm package's browser test drives a real migration with it).
//!
//! Every reply is one JSON object on one line with an `event` field. First, once the pair is
//! up:
//!
//! ```text
//! {"event":"ready","seamless":true,"source":{"host":"127.0.0.1","port":P,"tls_port":null,
//!  "cert_subject":null},"destination":{...},"ca_cert_pem":null}
//! ```
//!
//! then one reply per command read from the input (one per line):
//!
//! | command | what it does | reply |
//! |---|---|---|
//! | `client_migrate_info` | QMP `client_migrate_info` on the source, naming the destination | `{"event":"ok"}` |
//! | `migrate` | QMP `migrate`, then waits for both sides to complete | `{"event":"migrated",...}` ([`MigrationStats`]) |
//! | `spice_migrate_completed` | waits for the source's `SPICE_MIGRATE_COMPLETED` | `{"event":"spice_migrate_completed","timestamp_us":T}` |
//! | `channels source\|destination` | `query-spice`'s channels | `{"event":"channels","channels":[{"connection_id","type","id","tls"}]}` |
//! | `status source\|destination` | `query-status` | `{"event":"status","status":"running"}` |
//! | `quit` (or end of input) | tears the pair down | `{"event":"bye"}` |
//!
//! A command that fails gives `{"event":"error","command":...,"message":...}` and the pair
//! stays up. QMP timestamps are the host's wall clock in µs since the epoch (spec
//! qemu-spice-interop.md, "QMP sequence").

use std::io::{BufRead, Write};
use std::time::Duration;

use serde_json::{json, Value};

use super::pair::{MigrationStats, PairError, PairOptions, QemuPair, Side, SpiceAddr};

/// Bound on each waiting command (migration completion, SPICE_MIGRATE_COMPLETED).
const WAIT: Duration = Duration::from_secs(30);

fn addr_json(a: &SpiceAddr) -> Value {
    json!({"host": a.host, "port": a.port, "tls_port": a.tls_port, "cert_subject": a.cert_subject})
}

fn stats_json(s: &MigrationStats) -> Value {
    json!({
        "event": "migrated",
        "total_time_ms": s.total_time_ms,
        "downtime_ms": s.downtime_ms,
        "setup_time_ms": s.setup_time_ms,
        "completed_at_us": s.completed_at_timestamp_us,
        "dest_completed_at_us": s.dest_completed_at_timestamp_us,
    })
}

fn side(arg: Option<&str>) -> Result<Side, String> {
    match arg {
        Some("source") => Ok(Side::Source),
        Some("destination") => Ok(Side::Destination),
        other => Err(format!(
            "expected `source` or `destination`, got {:?}",
            other.unwrap_or("")
        )),
    }
}

/// Runs one command line; `Ok(None)` means quit.
fn command(pair: &mut QemuPair, line: &str) -> Result<Option<Value>, String> {
    let mut words = line.split_whitespace();
    let err = |e: PairError| e.to_string();
    let reply = match words.next().unwrap_or("") {
        "client_migrate_info" => {
            let dest = pair.dest_spice();
            pair.client_migrate_info(&dest).map_err(err)?;
            json!({"event": "ok"})
        }
        "migrate" => {
            pair.migrate().map_err(err)?;
            stats_json(&pair.wait_migration_completed(WAIT).map_err(err)?)
        }
        "spice_migrate_completed" => {
            let e = pair.wait_spice_migrate_completed(WAIT).map_err(err)?;
            json!({"event": "spice_migrate_completed", "timestamp_us": e.timestamp_us})
        }
        "channels" => {
            let channels = pair.spice_channels(side(words.next())?).map_err(err)?;
            let list: Vec<Value> = channels
                .iter()
                .map(|c| {
                    json!({"connection_id": c.connection_id, "type": c.channel_type,
                           "id": c.channel_id, "tls": c.tls})
                })
                .collect();
            json!({"event": "channels", "channels": list})
        }
        "status" => {
            let status = pair.query_status(side(words.next())?).map_err(err)?;
            json!({"event": "status", "status": status})
        }
        "quit" => return Ok(None),
        other => return Err(format!("unknown command {other:?}")),
    };
    Ok(Some(reply))
}

fn emit(out: &mut impl Write, v: &Value) -> std::io::Result<()> {
    writeln!(out, "{v}")?;
    out.flush()
}

/// Starts a pair with `options`, announces it on `out`, and serves the commands of `input`
/// until `quit` or its end; the pair is torn down on return. Errors: the pair did not start,
/// or `out` failed.
pub fn serve(
    options: PairOptions,
    input: impl BufRead,
    mut out: impl Write,
) -> Result<(), PairError> {
    let io = |e: std::io::Error| PairError::Io {
        context: "writing a reply".into(),
        source: e,
    };
    // The certificates' directory goes away with the options once QEMU has read it: hand
    // the CA to clients as text.
    let ca_cert_pem = match &options.tls {
        Some(t) => Some(
            std::fs::read_to_string(t.ca_cert_path()).map_err(|e| PairError::Io {
                context: format!("reading {}", t.ca_cert_path().display()),
                source: e,
            })?,
        ),
        None => None,
    };
    let seamless = options.seamless;
    let mut pair = QemuPair::start(options)?;
    let ready = json!({
        "event": "ready",
        "seamless": seamless,
        "source": addr_json(&pair.source_spice()),
        "destination": addr_json(&pair.dest_spice()),
        "ca_cert_pem": ca_cert_pem,
    });
    emit(&mut out, &ready).map_err(io)?;
    for line in input.lines() {
        let line = line.map_err(|e| PairError::Io {
            context: "reading a command".into(),
            source: e,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let reply = match command(&mut pair, &line) {
            Ok(Some(v)) => v,
            Ok(None) => break,
            Err(message) => json!({"event": "error", "command": line.trim(), "message": message}),
        };
        emit(&mut out, &reply).map_err(io)?;
    }
    pair.kill();
    emit(&mut out, &json!({"event": "bye"})).map_err(io)
}
