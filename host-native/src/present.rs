//! Human-readable lines for trace records: what `livemig replay` prints.

use livemig_core::migration::orchestrator::{
    Call, Host, OrchestratorAction, OrchestratorConfig, OrchestratorInput, Verdict,
};
use livemig_core::migration::MigrateFlags;

fn host(h: Host) -> &'static str {
    match h {
        Host::Source => "source",
        Host::Destination => "destination",
    }
}

fn size(b: &livemig_core::bytes::Bytes) -> String {
    if b.is_empty() {
        "empty".into()
    } else {
        format!("{} B", b.len())
    }
}

/// One line describing the orchestrator's configuration.
pub fn config(c: &OrchestratorConfig) -> String {
    format!(
        "orchestrator: {:?} mode, protocol {:?}, domain {} ({}), flags {}",
        c.mode,
        c.protocol,
        c.domain.name,
        c.domain.uuid,
        MigrateFlags(c.flags.0)
    )
}

/// Describe a call.
pub fn call(c: &Call) -> String {
    let flags = if matches!(
        c.procedure,
        livemig_core::migration::orchestrator::Procedure::DomainGetXmlDesc
    ) {
        format!("xml-flags={:#x}", c.flags)
    } else {
        format!("flags={}", MigrateFlags(c.flags))
    };
    let mut s = format!(
        "→ {:<11} {:?} ({}) {}",
        host(c.host),
        c.procedure,
        c.procedure.number(),
        flags
    );
    if let Some(k) = &c.cookie {
        s.push_str(&format!(" cookie={}", size(k)));
    }
    if let Some(x) = c.cancelled {
        s.push_str(&format!(" cancelled={}", u8::from(x)));
    }
    if !c.params.0.is_empty() {
        let names: Vec<&str> = c.params.0.iter().map(|p| p.field.as_str()).collect();
        s.push_str(&format!(" params=[{}]", names.join(", ")));
    }
    s
}

/// Describe an input.
pub fn input(i: &OrchestratorInput) -> String {
    use OrchestratorInput as I;
    match i {
        I::Start => "start".into(),
        I::Begun { cookie, xml } => format!(
            "← begun: cookie {}, domain XML {} B",
            size(cookie),
            xml.len()
        ),
        I::SourceState { state } => format!("← source state: {state:?}"),
        I::XmlDesc { xml } => format!("← migratable XML {} B", xml.len()),
        I::Prepared { cookie, uri } => format!(
            "← prepared: cookie {}, uri {}",
            size(cookie),
            uri.as_deref().unwrap_or("(none)")
        ),
        I::Performed { cookie } => format!("← performed: cookie {}", size(cookie)),
        I::Finished { domain, cookie } => {
            format!(
                "← finished: domain {} running, cookie {}",
                domain.name,
                size(cookie)
            )
        }
        I::Confirmed => "← confirmed".into(),
        I::JobAborted => "← job aborted".into(),
        I::CallFailed { procedure, error } => {
            format!(
                "← {procedure:?} failed: {} (code {})",
                error.message, error.code
            )
        }
        I::ConnectionLost { host: h, reason } => format!("✗ lost {}: {reason}", host(*h)),
        I::Cancel => "user cancel".into(),
        I::Timeout => "timer".into(),
    }
}

/// Describe an action.
pub fn action(a: &OrchestratorAction) -> String {
    match a {
        OrchestratorAction::Call(c) => call(c),
        OrchestratorAction::Warn { message } => format!("! warning: {message}"),
        OrchestratorAction::Done(r) => {
            let mark = if r.verdict == Verdict::Migrated {
                "✔"
            } else {
                "✘"
            };
            let mut s = format!("{mark} done: {:?}", r.verdict);
            if let Some(p) = r.protocol {
                s.push_str(&format!(" (protocol {p:?})"));
            }
            if let Some(e) = &r.error {
                s.push_str(&format!(": {} (code {})", e.message, e.code));
            }
            s
        }
    }
}
