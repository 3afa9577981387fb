//! wasm-bindgen facade over `livemig-core`, packaged as the npm package `livemig` (`js/`).
//!
//! * [`MigrationOrchestrator`] and [`SpiceSession`] expose the core's machines with the
//!   drive-loop contract unchanged: `handle(now, input)`, `pollAction()`, `pollTimeout()`.
//!   Inputs, configurations and actions cross as plain JS objects shaped exactly like the
//!   core's serde form (the trace JSON), except that byte strings are `Uint8Array`s instead of
//!   base64 text. Their TypeScript declarations are generated from the core types (tsify).
//!   serde-wasm-bindgen converts them: configurations directly, inputs tag-first through
//!   [`input`] (no serde buffering), actions through [`compact::Compact`] (bytes as
//!   `Uint8Array`s). BENCHMARKS.md (WebAssembly) has what this costs in the module.
//! * `trace::TraceEngine` (feature `trace`, on by default but off in the package's module)
//!   drives any traceable machine with JSON text, returning the canonical JSON of each
//!   action: what the trace runner compares byte for byte.
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
use livemig_core::trace::TRACE_VERSION;
use livemig_core::{Machine, Millis};
use serde::Serialize;
use wasm_bindgen::prelude::*;

pub mod compact;
pub mod input;

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
    /// The object was used after `free()` (raised by the JS wrapper).
    Freed,
}

impl Code {
    /// Every code, in declaration order.
    pub const ALL: [Code; 8] = [
        Code::InvalidJson,
        Code::UnknownMachine,
        Code::InvalidConfig,
        Code::InvalidInput,
        Code::InvalidTime,
        Code::Unrepresentable,
        Code::Busy,
        Code::Freed,
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
            Code::Freed => "freed",
        }
    }
}

/// Kept equal to [`Code::ALL`] by a unit test.
#[allow(dead_code)] // read by wasm-bindgen (custom section) and the unit test only
const ERROR_CODE_TS: &str = "export type ErrorCode = \"invalid_json\" | \"unknown_machine\" | \"invalid_config\" | \"invalid_input\" | \"invalid_time\" | \"unrepresentable\" | \"busy\" | \"freed\";";

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
    pub(crate) fn new(code: Code, message: impl Display) -> Failure {
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
            format_args!(
                "now must be a number of milliseconds in 0..=2^53-1, got {}",
                number_text(now)
            ),
        ))
    }
}

/// A [`Millis`] as a JS number (saturating at 2^53-1, far beyond any real clock).
fn js_millis(t: Millis) -> f64 {
    (t as f64).min(MAX_SAFE_INTEGER)
}

/// A number as text, as JS writes it (`String(n)`: `Infinity`, `1.5`, `-1`), for error
/// messages read in JS. Natively (unit tests), Rust's.
pub fn number_text(v: f64) -> String {
    #[cfg(target_arch = "wasm32")]
    return js_sys::Number::from(v)
        .to_string_with_radix(10)
        .map(String::from)
        .unwrap_or_default();
    #[cfg(not(target_arch = "wasm32"))]
    return v.to_string();
}

/// The serializer of the object API: JSON-compatible (`null` for `None`, objects for
/// structs and maps, numbers for 64-bit integers) with bytes as `Uint8Array`.
static TO_JS: serde_wasm_bindgen::Serializer =
    serde_wasm_bindgen::Serializer::json_compatible().serialize_bytes_as_arrays(false);

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, Failure> {
    v.serialize(compact::Compact(&TO_JS))
        .map_err(|e| Failure::new(Code::Unrepresentable, message(e)))
}

/// A serde-wasm-bindgen error's message (its text is the JS `Error`'s `toString()`: without
/// the "Error: " prefix).
pub(crate) fn message(e: serde_wasm_bindgen::Error) -> String {
    let m = e.to_string();
    match m.strip_prefix("Error: ") {
        Some(rest) => rest.to_string(),
        None => m,
    }
}

fn from_js<T: serde::de::DeserializeOwned>(v: JsValue, code: Code) -> Result<T, Failure> {
    serde_wasm_bindgen::from_value(v).map_err(|e| Failure::new(code, message(e)))
}

pub(crate) fn busy() -> Failure {
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
                let input = <$input as input::Input>::from_js(input)
                    .map_err(|e| Failure::new(Code::InvalidInput, message(e)))?;
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

#[cfg(feature = "trace")]
pub mod trace;

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
}
