//! Reading the machines' inputs from JS without serde's buffering.
//!
//! The core's input enums are internally tagged (`{"type": "received", ...}`). serde
//! deserializes such an enum by first buffering the whole value into its private `Content`
//! tree, then re-reading that tree; monomorphized for every field type, this machinery was
//! the largest part of the package's module (BENCHMARKS.md, WebAssembly). A JS object is
//! already a buffer that can be read in any order, so the package reads an input's variant
//! name from its `type` field first ([`crate::convert::Tagged`]) and its fields straight from
//! the object, through the externally tagged mirrors below (serde's `remote` derive).
//!
//! The mirrors must list the core's variants with the same fields in the same order: the
//! compiler checks the fields (each mirror builds the core's value), and the tests check the
//! variant lists and read every input of the trace corpus both ways.

use livemig_core::bytes::Bytes;
use livemig_core::migration::orchestrator::{
    DomainRef, DomainState, Host, OrchestratorInput, Procedure,
};
use livemig_core::migration::RemoteError;
use livemig_core::spice::session::{ChannelRef, ConnId, SessionInput};
use serde::Deserialize;
use wasm_bindgen::JsValue;

use crate::convert::{Error, Tagged};

/// An input read from JS.
pub trait Input: Sized {
    /// Reads `{"type": variant, ...fields}` (or `[variant, ...fields]`) as serde's
    /// internally tagged enums do.
    fn from_js(value: JsValue) -> Result<Self, Error>;
}

impl Input for SessionInput {
    fn from_js(value: JsValue) -> Result<Self, Error> {
        SessionInputDef::deserialize(Tagged::new(
            value,
            "type",
            "internally tagged enum SessionInput",
        ))
    }
}

impl Input for OrchestratorInput {
    fn from_js(value: JsValue) -> Result<Self, Error> {
        OrchestratorInputDef::deserialize(Tagged::new(
            value,
            "type",
            "internally tagged enum OrchestratorInput",
        ))
    }
}

/// [`SessionInput`], externally tagged.
#[derive(Deserialize)]
#[serde(remote = "SessionInput", rename_all = "snake_case")]
#[allow(dead_code)] // the fields are only written, by serde
enum SessionInputDef {
    Start,
    Connected {
        conn: ConnId,
    },
    ConnectFailed {
        conn: ConnId,
        reason: String,
    },
    Received {
        conn: ConnId,
        bytes: Bytes,
    },
    Closed {
        conn: ConnId,
        reason: String,
    },
    Ticket {
        conn: ConnId,
        ticket: Bytes,
    },
    TicketFailed {
        conn: ConnId,
        reason: String,
    },
    TargetDecision {
        allow: bool,
    },
    Send {
        channel: ChannelRef,
        msg_type: u16,
        body: Bytes,
    },
    Timeout,
    Disconnect,
}

/// [`OrchestratorInput`], externally tagged.
#[derive(Deserialize)]
#[serde(remote = "OrchestratorInput", rename_all = "snake_case")]
#[allow(dead_code)] // the fields are only written, by serde
enum OrchestratorInputDef {
    Start,
    Begun {
        cookie: Bytes,
        xml: String,
    },
    SourceState {
        state: DomainState,
    },
    XmlDesc {
        xml: String,
    },
    Prepared {
        cookie: Bytes,
        uri: Option<String>,
    },
    Performed {
        cookie: Bytes,
    },
    Finished {
        domain: DomainRef,
        cookie: Bytes,
    },
    Confirmed,
    JobAborted,
    CallFailed {
        procedure: Procedure,
        error: RemoteError,
    },
    ConnectionLost {
        host: Host,
        reason: String,
    },
    Cancel,
    Timeout,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::de::DeserializeOwned;
    use std::path::Path;

    /// The variant names serde lists for an unknown variant.
    fn variants(error: serde_json::Error) -> String {
        let text = error.to_string();
        let start = text.find("expected one of").expect(&text);
        text[start..].split(" at line").next().unwrap().to_string()
    }

    /// An internally tagged input's JSON in the externally tagged form of the mirrors.
    fn external(input: &serde_json::Value) -> serde_json::Value {
        let mut fields = input.as_object().unwrap().clone();
        let tag = fields.remove("type").unwrap();
        let tag = tag.as_str().unwrap().to_string();
        if fields.is_empty() {
            serde_json::Value::String(tag)
        } else {
            serde_json::json!({ tag: fields })
        }
    }

    struct Session;
    struct Orchestrator;

    trait Mirror {
        type Input: DeserializeOwned + PartialEq + std::fmt::Debug;
        const MACHINE: &'static str;
        fn mirror(v: serde_json::Value) -> serde_json::Result<Self::Input>;
    }

    impl Mirror for Session {
        type Input = SessionInput;
        const MACHINE: &'static str = "spice_session";
        fn mirror(v: serde_json::Value) -> serde_json::Result<SessionInput> {
            SessionInputDef::deserialize(v)
        }
    }

    impl Mirror for Orchestrator {
        type Input = OrchestratorInput;
        const MACHINE: &'static str = "orchestrator";
        fn mirror(v: serde_json::Value) -> serde_json::Result<OrchestratorInput> {
            OrchestratorInputDef::deserialize(v)
        }
    }

    fn same_variants<M: Mirror>() {
        let core = serde_json::from_str::<M::Input>(r#"{"type":"?"}"#).unwrap_err();
        let mirror = M::mirror(serde_json::json!("?")).unwrap_err();
        assert_eq!(variants(core), variants(mirror));
    }

    /// Every input of the corpus's traces of `M`'s machine reads the same both ways.
    fn corpus_inputs<M: Mirror>() -> usize {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/traces");
        let mut files = vec![dir];
        let mut seen = 0;
        while let Some(path) = files.pop() {
            if path.is_dir() {
                files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
                continue;
            }
            if path.extension().is_none_or(|e| e != "jsonl") {
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let mut lines = text.lines();
            let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
            if header["setup"]["machine"] != M::MACHINE {
                continue;
            }
            for line in lines {
                let record: serde_json::Value = serde_json::from_str(line).unwrap();
                let input = &record["input"];
                let core: M::Input = serde_json::from_value(input.clone()).unwrap();
                let mirror = M::mirror(external(input)).unwrap();
                assert_eq!(core, mirror, "{}: {input}", path.display());
                seen += 1;
            }
        }
        seen
    }

    #[test]
    fn mirrors_list_the_core_variants() {
        same_variants::<Session>();
        same_variants::<Orchestrator>();
    }

    #[test]
    fn mirrors_read_every_corpus_input_as_the_core_does() {
        assert!(corpus_inputs::<Session>() > 500);
        assert!(corpus_inputs::<Orchestrator>() > 200);
    }
}
