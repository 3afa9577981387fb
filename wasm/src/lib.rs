//! wasm-bindgen facade over `livemig-core`, packaged as the npm package `livemig` (`js/`).
//!
//! * [`MigrationOrchestrator`] and [`SpiceSession`] expose the core's machines with the
//!   drive-loop contract unchanged: `handle(now, input)`, `pollAction()`, `pollTimeout()`.
//!   Inputs, configurations and actions cross as plain JS objects shaped exactly like the
//!   core's serde form (the trace JSON), except that byte strings are `Uint8Array`s instead of
//!   base64 text. Their TypeScript declarations are generated from the core types (tsify).
//! * [`TraceEngine`] drives any traceable machine with JSON text, returning the canonical
//!   JSON of each action: what the trace runner compares byte for byte.
//! * Time is a JS number of milliseconds; 64-bit values cross as numbers (never `BigInt`).
//! * Every failure is a JS `Error` named `LivemigError` with a stable `code` ([`Code`]).
//!   Nothing here panics on input: malformed values become errors, and a machine in use
//!   (re-entered from JS) answers `busy`.

use std::cell::RefCell;
use std::fmt::Display;

use livemig_core::migration::orchestrator::{
    Orchestrator, OrchestratorAction, OrchestratorConfig, OrchestratorInput,
};
use livemig_core::spice::session::{Session, SessionAction, SessionConfig, SessionInput};
use livemig_core::trace::{AnyMachine, Setup, TRACE_VERSION};
use livemig_core::{Machine, Millis};
use serde::Serialize;
use wasm_bindgen::prelude::*;

pub mod compact;

/// The stable error codes (the `code` property of every error this package throws).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// Text that is not JSON (TraceEngine's setup or input).
    InvalidJson,
    /// A trace setup names no machine this build knows.
    UnknownMachine,
    /// A configuration does not have the machine's configuration type.
    InvalidConfig,
    /// An input does not have the machine's input type.
    InvalidInput,
    /// `now` is not a finite number of milliseconds in `0..=2^53-1`.
    InvalidTime,
    /// An action holds a 64-bit number above 2^53-1, which a JS number cannot carry (the
    /// action is dropped).
    Unrepresentable,
    /// The machine was called while one of its own calls was running (re-entrancy).
    Busy,
}

impl Code {
    /// Every code, in declaration order.
    pub const ALL: [Code; 7] = [
        Code::InvalidJson,
        Code::UnknownMachine,
        Code::InvalidConfig,
        Code::InvalidInput,
        Code::InvalidTime,
        Code::Unrepresentable,
        Code::Busy,
    ];

    /// The code's text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Code::InvalidJson => "invalid_json",
            Code::UnknownMachine => "unknown_machine",
            Code::InvalidConfig => "invalid_config",
            Code::InvalidInput => "invalid_input",
            Code::InvalidTime => "invalid_time",
            Code::Unrepresentable => "unrepresentable",
            Code::Busy => "busy",
        }
    }
}

/// Kept equal to [`Code::ALL`] by a unit test.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
const ERROR_CODE_TS: &str = "export type ErrorCode = \"invalid_json\" | \"unknown_machine\" | \"invalid_config\" | \"invalid_input\" | \"invalid_time\" | \"unrepresentable\" | \"busy\";";

#[wasm_bindgen(typescript_custom_section)]
const TS_ERROR_CODE: &'static str = ERROR_CODE_TS;

/// A failure with its code: plain Rust, so native tests can check it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The stable code.
    pub code: Code,
    /// A human-readable message (not stable).
    pub message: String,
}

impl Failure {
    fn new(code: Code, message: impl Display) -> Failure {
        Failure {
            code,
            message: message.to_string(),
        }
    }
}

impl From<Failure> for JsValue {
    fn from(f: Failure) -> JsValue {
        let e = js_sys::Error::new(&f.message);
        e.set_name("LivemigError");
        // Setting a property on a fresh Error cannot fail; ignore the impossible error.
        let _ = js_sys::Reflect::set(&e, &"code".into(), &f.code.as_str().into());
        e.into()
    }
}

/// The largest integer a JS number holds exactly.
const MAX_SAFE_INTEGER: f64 = 9_007_199_254_740_991.0;

/// A JS time in milliseconds as the core's [`Millis`]. Fractions (e.g. from
/// `performance.now()`) are truncated.
pub fn millis(now: f64) -> Result<Millis, Failure> {
    if now.is_finite() && (0.0..=MAX_SAFE_INTEGER).contains(&now) {
        Ok(now.trunc() as Millis)
    } else {
        Err(Failure::new(
            Code::InvalidTime,
            format_args!("now must be a number of milliseconds in 0..=2^53-1, got {now}"),
        ))
    }
}

/// A [`Millis`] as a JS number (saturating at 2^53-1, far beyond any real clock).
fn js_millis(t: Millis) -> f64 {
    (t as f64).min(MAX_SAFE_INTEGER)
}

/// Parse a trace setup (`{"machine": ..., "config": ...}`), classifying the failure.
pub fn parse_setup(text: &str) -> Result<Setup, Failure> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|e| Failure::new(Code::InvalidJson, e))?;
    let name = match value.get("machine") {
        Some(serde_json::Value::String(name)) => name.clone(),
        _ => {
            return Err(Failure::new(
                Code::UnknownMachine,
                "the setup names no machine (a string \"machine\" field)",
            ))
        }
    };
    serde_json::from_value::<Setup>(value).map_err(|e| {
        if is_known_machine(&name) {
            Failure::new(Code::InvalidConfig, e)
        } else {
            Failure::new(
                Code::UnknownMachine,
                format_args!("unknown machine {name:?}"),
            )
        }
    })
}

/// Whether `name` is a [`Setup`] variant: a setup without its config fails on the missing
/// config for a known machine, and on the variant itself otherwise.
fn is_known_machine(name: &str) -> bool {
    match serde_json::from_value::<Setup>(serde_json::json!({ "machine": name })) {
        Ok(_) => true,
        Err(e) => !e.to_string().starts_with("unknown variant"),
    }
}

/// A machine fed JSON: the engine behind [`TraceEngine`].
#[derive(Debug)]
pub struct JsonEngine {
    machine: AnyMachine,
}

impl JsonEngine {
    /// A fresh machine for the setup's JSON.
    pub fn new(setup: &str) -> Result<JsonEngine, Failure> {
        Ok(JsonEngine {
            machine: parse_setup(setup)?.machine(),
        })
    }

    /// Apply one input (JSON); return the canonical JSON of each action it produced.
    pub fn step(&mut self, now: Millis, input: &str) -> Result<Vec<String>, Failure> {
        // Tell malformed text from a well-formed value of the wrong shape.
        serde_json::from_str::<serde::de::IgnoredAny>(input)
            .map_err(|e| Failure::new(Code::InvalidJson, e))?;
        self.machine
            .step_json(now, input)
            .map_err(|m| Failure::new(Code::InvalidInput, m))
    }
}

/// The serializer of the object API: JSON-compatible (`null` for `None`, objects for
/// structs, numbers for 64-bit integers) with bytes as `Uint8Array`.
static TO_JS: serde_wasm_bindgen::Serializer =
    serde_wasm_bindgen::Serializer::json_compatible().serialize_bytes_as_arrays(false);

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, Failure> {
    v.serialize(compact::Compact(&TO_JS))
        .map_err(|e| Failure::new(Code::Unrepresentable, e))
}

fn from_js<T: serde::de::DeserializeOwned>(v: JsValue, code: Code) -> Result<T, Failure> {
    serde_wasm_bindgen::from_value(v).map_err(|e| Failure::new(code, e))
}

fn busy() -> Failure {
    Failure::new(
        Code::Busy,
        "the machine is already running a call (re-entered from JS)",
    )
}

/// One wasm-bindgen class per machine, all with the same shape.
macro_rules! machine_class {
    (
        $(#[$doc:meta])*
        $class:ident: $machine:ty, $config:ty, $input:ty, $action:ty,
        $config_ts:tt, $input_ts:tt, $action_ts:tt
    ) => {
        $(#[$doc])*
        #[wasm_bindgen]
        pub struct $class {
            inner: RefCell<$machine>,
        }

        #[wasm_bindgen]
        impl $class {
            /// A fresh machine. Throws `invalid_config`.
            #[wasm_bindgen(constructor)]
            pub fn new(
                #[wasm_bindgen(unchecked_param_type = $config_ts)] config: JsValue,
            ) -> Result<$class, JsValue> {
                let config: $config = from_js(config, Code::InvalidConfig)?;
                Ok($class {
                    inner: RefCell::new(<$machine>::new(config)),
                })
            }

            /// Feed one input at `now` (milliseconds). Throws `invalid_time`,
            /// `invalid_input` or `busy`; the machine itself never fails.
            pub fn handle(
                &self,
                now: f64,
                #[wasm_bindgen(unchecked_param_type = $input_ts)] input: JsValue,
            ) -> Result<(), JsValue> {
                let now = millis(now)?;
                let input: $input = from_js(input, Code::InvalidInput)?;
                self.inner.try_borrow_mut().map_err(|_| busy())?.handle(now, input);
                Ok(())
            }

            /// The next pending action, or `undefined` once drained. Drain after every
            /// `handle`.
            #[wasm_bindgen(js_name = pollAction, unchecked_return_type = $action_ts)]
            pub fn poll_action(&self) -> Result<JsValue, JsValue> {
                let action: Option<$action> =
                    self.inner.try_borrow_mut().map_err(|_| busy())?.poll_action();
                match action {
                    Some(a) => Ok(to_js(&a)?),
                    None => Ok(JsValue::UNDEFINED),
                }
            }

            /// When the machine wants a `timeout` input (milliseconds), or `undefined`.
            #[wasm_bindgen(js_name = pollTimeout)]
            pub fn poll_timeout(&self) -> Result<Option<f64>, JsValue> {
                let t = self.inner.try_borrow().map_err(|_| busy())?.poll_timeout();
                Ok(t.map(js_millis))
            }
        }
    };
}

machine_class! {
    /// The libvirt migration driver (managed or peer-to-peer, v3 or v2).
    MigrationOrchestrator: Orchestrator, OrchestratorConfig, OrchestratorInput, OrchestratorAction,
    "OrchestratorConfig", "OrchestratorInput", "OrchestratorAction | undefined"
}

machine_class! {
    /// A SPICE client session that follows migrations.
    SpiceSession: Session, SessionConfig, SessionInput, SessionAction,
    "SessionConfig", "SessionInput", "SessionAction | undefined"
}

/// Any traceable machine driven by JSON text (the trace runner's engine).
#[wasm_bindgen]
pub struct TraceEngine {
    inner: RefCell<JsonEngine>,
}

#[wasm_bindgen]
impl TraceEngine {
    /// A fresh machine for a trace header's `setup` (JSON text). Throws `invalid_json`,
    /// `unknown_machine` or `invalid_config`.
    #[wasm_bindgen(constructor)]
    pub fn new(setup_json: &str) -> Result<TraceEngine, JsValue> {
        Ok(TraceEngine {
            inner: RefCell::new(JsonEngine::new(setup_json)?),
        })
    }

    /// Feed one input (JSON text) at `now`; return the canonical JSON of each action it
    /// produced, in order. Throws `invalid_time`, `invalid_json`, `invalid_input` or `busy`.
    #[wasm_bindgen(js_name = stepJson)]
    pub fn step_json(&self, now: f64, input_json: &str) -> Result<Vec<String>, JsValue> {
        let now = millis(now)?;
        let mut engine = self.inner.try_borrow_mut().map_err(|_| busy())?;
        Ok(engine.step(now, input_json)?)
    }
}

/// The trace format version this build reads and writes.
#[wasm_bindgen(js_name = traceVersion)]
pub fn trace_version() -> u32 {
    TRACE_VERSION
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_code_declaration_lists_every_code() {
        let listed: Vec<String> = Code::ALL
            .iter()
            .map(|c| format!("\"{}\"", c.as_str()))
            .collect();
        assert_eq!(
            ERROR_CODE_TS,
            format!("export type ErrorCode = {};", listed.join(" | "))
        );
    }

    #[test]
    fn time_is_a_safe_non_negative_number() {
        assert_eq!(millis(0.0), Ok(0));
        assert_eq!(millis(12.9), Ok(12));
        assert_eq!(millis(MAX_SAFE_INTEGER), Ok(9_007_199_254_740_991));
        for bad in [-1.0, f64::NAN, f64::INFINITY, MAX_SAFE_INTEGER + 2.0, -0.5] {
            assert_eq!(millis(bad).unwrap_err().code, Code::InvalidTime, "{bad}");
        }
    }

    #[test]
    fn setups_are_classified() {
        let code = |s: &str| parse_setup(s).map(|_| ()).unwrap_err().code;
        assert_eq!(code("{"), Code::InvalidJson);
        assert_eq!(code("[1]"), Code::UnknownMachine);
        assert_eq!(code(r#"{"config":{}}"#), Code::UnknownMachine);
        assert_eq!(
            code(r#"{"machine":"toaster","config":{}}"#),
            Code::UnknownMachine
        );
        for known in [
            "orchestrator",
            "source_host",
            "destination_host",
            "spice_session",
        ] {
            assert!(is_known_machine(known), "{known}");
            assert_eq!(
                code(&format!(r#"{{"machine":"{known}","config":{{"x":1}}}}"#)),
                Code::InvalidConfig
            );
        }
        // A bad value inside a known machine's config is a config error, even when serde
        // calls it an unknown variant.
        let spice = r#"{"machine":"spice_session","config":{"server":{"host":"h","port":1,"tls_port":null,"cert_subject":null},"channel_types":["bogus"]}}"#;
        assert_eq!(code(spice), Code::InvalidConfig);
        assert!(parse_setup(&spice.replace("\"bogus\"", "\"main\"")).is_ok());
    }

    #[test]
    fn json_engine_classifies_inputs() {
        let setup = r#"{"machine":"spice_session","config":{"server":{"host":"h","port":1,"tls_port":null,"cert_subject":null}}}"#;
        let mut e = JsonEngine::new(setup).unwrap();
        assert_eq!(e.step(0, "{").unwrap_err().code, Code::InvalidJson);
        assert_eq!(e.step(0, "{} x").unwrap_err().code, Code::InvalidJson);
        assert_eq!(
            e.step(0, r#"{"type":"nope"}"#).unwrap_err().code,
            Code::InvalidInput
        );
        assert_eq!(
            e.step(0, r#"{"type":"received","conn":"1","bytes":""}"#)
                .unwrap_err()
                .code,
            Code::InvalidInput
        );
        let actions = e.step(0, r#"{"type":"start"}"#).unwrap();
        assert_eq!(
            actions,
            [
                r#"{"type":"connect","conn":1,"channel":{"type":"main","id":0},"role":"source","endpoint":{"host":"h","port":1,"tls_port":null,"cert_subject":null},"port":1,"tls":null}"#
            ]
        );
    }
}
