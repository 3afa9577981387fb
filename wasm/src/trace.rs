//! The conformance engine (feature `trace`): any traceable machine driven by JSON text, as
//! the trace runner replays the corpus. Built into js/dist/trace/, not the package's module.

use std::cell::RefCell;

use livemig_core::trace::{AnyMachine, Setup};
use livemig_core::Millis;
use wasm_bindgen::prelude::*;

use crate::{busy, millis, Code, Failure};

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

#[cfg(test)]
mod tests {
    use super::*;

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
