//! The trace format every engine shares (native, wasmtime, JS).
//!
//! A trace is JSON Lines:
//! 1. a header: `{"livemig_trace":1,"setup":{"machine":"orchestrator","config":{...}}}`;
//! 2. one record per input: `{"now":N,"input":{...},"actions":[...]}` with the actions that
//!    input produced, drained in order.
//!
//! Canonical form: each line is the compact serde_json serialization of the typed value
//! (struct fields in declaration order, no maps, no insignificant whitespace, bytes as
//! standard base64). Re-serializing a parsed line gives the same bytes, so any engine's
//! output can be compared byte for byte.

use serde::{Deserialize, Serialize};

use crate::{Machine, Millis};

/// The trace format version written in every header.
pub const TRACE_VERSION: u32 = 1;

/// Declares the traceable machines once: the [`Setup`] enum of the header, the
/// [`AnyMachine`] wrapper and its JSON driver. Adding a machine is one line here.
macro_rules! machines {
    ($($variant:ident => $ty:ty, $config:ty, $doc:literal;)*) => {
        /// Which machine a trace drives, with its initial configuration.
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(tag = "machine", content = "config", rename_all = "snake_case")]
        pub enum Setup {
            $(#[doc = $doc] $variant($config),)*
        }

        /// Any traceable machine (boxed: their sizes differ widely).
        #[derive(Debug)]
        pub enum AnyMachine {
            $(#[doc = $doc] $variant(Box<$ty>),)*
        }

        impl Setup {
            /// A fresh machine for this setup.
            pub fn machine(&self) -> AnyMachine {
                match self {
                    $(Setup::$variant(c) => AnyMachine::$variant(Box::new(<$ty>::new(c.clone()))),)*
                }
            }
        }

        #[cfg(feature = "json")]
        impl AnyMachine {
            /// Apply one input given as JSON; return the canonical JSON of each action.
            pub fn step_json(&mut self, now: Millis, input: &str) -> Result<Vec<String>, String> {
                match self {
                    $(AnyMachine::$variant(m) => {
                        let i = serde_json::from_str(input).map_err(|e| e.to_string())?;
                        Ok(step(m.as_mut(), now, i).iter().map(canonical).collect())
                    })*
                }
            }
        }
    };
}

machines! {
    Orchestrator => crate::migration::orchestrator::Orchestrator,
        crate::migration::orchestrator::OrchestratorConfig,
        "The migration driver (managed or P2P, v3 or v2).";
    SourceHost => crate::migration::source::SourceHost,
        crate::migration::source::SourceConfig,
        "The source host's step logic.";
    DestinationHost => crate::migration::destination::DestinationHost,
        crate::migration::destination::DestinationConfig,
        "The destination host's step logic.";
    SpiceSession => crate::spice::session::Session,
        crate::spice::session::SessionConfig,
        "A SPICE client session that follows migrations.";
}

/// The first line of a trace.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    /// Format version ([`TRACE_VERSION`]).
    pub livemig_trace: u32,
    /// The machine and its configuration.
    pub setup: Setup,
}

/// One input and the actions it produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record<I, A> {
    /// The time given to `handle`.
    pub now: Millis,
    /// The input.
    pub input: I,
    /// Every action drained after it, in order.
    pub actions: Vec<A>,
}

/// Feed one input and drain the actions it produced: the drive-loop contract in one call.
pub fn step<M: Machine>(m: &mut M, now: Millis, input: M::Input) -> Vec<M::Action> {
    m.handle(now, input);
    std::iter::from_fn(|| m.poll_action()).collect()
}

/// Errors reading or replaying a trace. They carry the 1-based line number.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TraceError {
    /// The trace has no header line.
    #[error("empty trace: no header line")]
    Empty,
    /// A line is not valid JSON for its place.
    #[error("line {line}: {message}")]
    Parse {
        /// Line number.
        line: usize,
        /// What serde said.
        message: String,
    },
    /// The header names a version this build does not read.
    #[error("unsupported trace version {0} (this build reads {TRACE_VERSION})")]
    Version(u32),
    /// Replay produced other actions than the trace holds.
    #[error("line {line}: action {index} differs\n  expected: {expected}\n       got: {got}")]
    Mismatch {
        /// Line number.
        line: usize,
        /// Index of the first differing action in that record (0-based).
        index: usize,
        /// The trace's action (canonical JSON), or `(none)`.
        expected: String,
        /// The replayed action (canonical JSON), or `(none)`.
        got: String,
    },
}

#[cfg(feature = "json")]
mod json {
    use super::*;

    /// Canonical JSON of any trace value.
    pub fn canonical<T: Serialize>(v: &T) -> String {
        // Serialization of these plain data types cannot fail (no maps with non-string
        // keys, no custom failing serializers); fall back to a JSON null just in case.
        serde_json::to_string(v).unwrap_or_else(|_| "null".to_owned())
    }

    /// Records a run as a trace while the host drives the machine.
    #[derive(Debug, Default)]
    pub struct Writer {
        lines: Vec<String>,
    }

    impl Writer {
        /// Start a trace with its header.
        pub fn new(setup: &Setup) -> Writer {
            let header = Header {
                livemig_trace: TRACE_VERSION,
                setup: setup.clone(),
            };
            Writer {
                lines: vec![canonical(&header)],
            }
        }
        /// Append one record.
        pub fn record<I: Serialize, A: Serialize>(
            &mut self,
            now: Millis,
            input: &I,
            actions: &[A],
        ) {
            let r = Record {
                now,
                input,
                actions: actions.iter().collect::<Vec<&A>>(),
            };
            self.lines.push(canonical(&r));
        }
        /// The trace text (one line each, newline-terminated).
        pub fn finish(&self) -> String {
            let mut s = self.lines.join("\n");
            s.push('\n');
            s
        }
    }

    /// The outcome of a successful replay.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct Replayed {
        /// Inputs fed.
        pub inputs: usize,
        /// Actions compared.
        pub actions: usize,
    }

    /// Parse a trace's header.
    pub fn read_header(text: &str) -> Result<Header, TraceError> {
        let first = text.lines().next().ok_or(TraceError::Empty)?;
        let header: Header = serde_json::from_str(first).map_err(|e| TraceError::Parse {
            line: 1,
            message: e.to_string(),
        })?;
        if header.livemig_trace != TRACE_VERSION {
            return Err(TraceError::Version(header.livemig_trace));
        }
        Ok(header)
    }

    /// Re-run a trace on a fresh machine; fail on the first action that differs.
    pub fn replay(text: &str) -> Result<Replayed, TraceError> {
        replay_with(
            text,
            |setup| Ok(setup.machine()),
            |m, now, input| m.step_json(now, input),
        )
    }

    /// Re-run a trace through any engine: `make` builds the engine from the header's setup,
    /// `feed` applies one input (JSON) and returns the canonical JSON of each action.
    pub fn replay_with<E>(
        text: &str,
        make: impl FnOnce(&Setup) -> Result<E, String>,
        mut feed: impl FnMut(&mut E, Millis, &str) -> Result<Vec<String>, String>,
    ) -> Result<Replayed, TraceError> {
        let header = read_header(text)?;
        let mut engine =
            make(&header.setup).map_err(|message| TraceError::Parse { line: 1, message })?;
        let mut done = Replayed {
            inputs: 0,
            actions: 0,
        };
        for (i, line) in text.lines().enumerate().skip(1) {
            let lineno = i + 1;
            if line.trim().is_empty() {
                continue;
            }
            let rec: Record<serde_json::Value, serde_json::Value> = serde_json::from_str(line)
                .map_err(|e| TraceError::Parse {
                    line: lineno,
                    message: e.to_string(),
                })?;
            let input = serde_json::to_string(&rec.input).unwrap_or_default();
            let got = feed(&mut engine, rec.now, &input).map_err(|message| TraceError::Parse {
                line: lineno,
                message,
            })?;
            let expected: Vec<String> = rec.actions.iter().map(canonical).collect();
            for idx in 0..expected.len().max(got.len()) {
                let e = expected.get(idx).map(String::as_str).unwrap_or("(none)");
                let g = got.get(idx).map(String::as_str).unwrap_or("(none)");
                if !json_equal(e, g) {
                    return Err(TraceError::Mismatch {
                        line: lineno,
                        index: idx,
                        expected: e.to_owned(),
                        got: g.to_owned(),
                    });
                }
            }
            done.inputs += 1;
            done.actions += got.len();
        }
        Ok(done)
    }

    /// Two JSON texts denote the same value (the trace's own text is compared as a value,
    /// since `serde_json::Value` reorders keys; engines' outputs are compared by bytes in
    /// the conformance tests).
    fn json_equal(a: &str, b: &str) -> bool {
        if a == b {
            return true;
        }
        match (
            serde_json::from_str::<serde_json::Value>(a),
            serde_json::from_str::<serde_json::Value>(b),
        ) {
            (Ok(x), Ok(y)) => x == y,
            _ => false,
        }
    }
}

#[cfg(feature = "json")]
pub use json::{canonical, read_header, replay, replay_with, Replayed, Writer};
