//! The host-role scenario corpus: [`SourceHost`] and [`DestinationHost`] driven through every
//! success and failure path of spec/libvirt-migration.md §4.2-§4.6, §7 and §8 by a scripted
//! hypervisor, recorded as traces (`tests/traces/hosts/<name>.jsonl`).
//!
//! A scenario is data: the machine's configuration, a script of timed inputs (step calls
//! and external events) and the hypervisor's scripted answers. One generic driver runs
//! them all: it feeds the script, answers each hypervisor action that has a scripted answer
//! ([`HV_MS`] later, in order), and fires the machine's timer when nothing else is due.

use livemig_core::bytes::Bytes;
use livemig_core::migration::cookie::{Cookie, Graphics, Statistics};
use livemig_core::migration::destination::{
    DestinationConfig, DestinationHost, DestinationInput, DomainRef,
};
use livemig_core::migration::flags::{param, MigrateFlags, Params};
use livemig_core::migration::phase::VmState;
use livemig_core::migration::source::{SourceConfig, SourceHost, SourceInput, SourceVm};
use livemig_core::trace::{self, Record, Setup, Writer};
use livemig_core::{Machine, Millis};
use serde::Serialize;

/// The real cookies of a managed v3 migration of `tiny` from hosta to hostb
/// (libvirt-real-peer.md §5), as the cookie codec's golden vectors hold them.
pub mod cookies {
    /// Begin3 → Prepare3 (882 bytes).
    pub const BEGIN: &[u8] =
        include_bytes!("../../core/tests/vectors/cookies/begin-prepare.cookie");
    /// Prepare3 → Perform3 (724 bytes; SPICE `<graphics>` and capabilities).
    pub const PREPARE: &[u8] =
        include_bytes!("../../core/tests/vectors/cookies/prepare-perform.cookie");
    /// Perform3 → Finish3 (1122 bytes; statistics).
    pub const PERFORM: &[u8] =
        include_bytes!("../../core/tests/vectors/cookies/perform-finish.cookie");
    /// Finish3 → Confirm3 (1143 bytes; statistics with delta).
    pub const FINISH: &[u8] =
        include_bytes!("../../core/tests/vectors/cookies/finish-confirm.cookie");
}

/// The migrated domain's name.
pub const NAME: &str = "tiny";
/// The migrated domain's UUID.
pub const UUID: &str = "7e1e7e1e-0000-4000-8000-000000000001";
/// The source host's UUID.
pub const HOSTA_UUID: &str = "0a0a0a0a-0000-4000-8000-00000000000a";
/// The destination host's UUID.
pub const HOSTB_UUID: &str = "0b0b0b0b-0000-4000-8000-00000000000b";
/// The migration URI the destination hands out (`uri_out`).
pub const URI: &str = "tcp:10.77.0.2:49152";
/// The graphics URI of the override scenario (`virsh migrate --graphicsuri`).
pub const GRAPHICS_URI: &str =
    "spice://10.77.0.9:5941/?tlsPort=5942&tlsSubject=C%3DGB%2CCN%3Dhostb";
/// The bound on Confirm's SPICE wait in the bounded scenario.
pub const SPICE_WAIT_MS: Millis = 5_000;
/// Delay between a hypervisor command and each of its scripted answers.
pub const HV_MS: Millis = 10;
/// F1 (libvirt-real-peer.md): the incoming QEMU cannot bind the SPICE port.
pub const SPICE_PORT_BUSY: &str = "qemu unexpectedly closed the monitor: 2025-11-22T10:20:21.379548Z qemu-system-x86_64: binding socket to 127.0.0.1:5940 failed: Address already in use; failed to initialize spice server";

/// The guest's CPU, as the source's Begin cookie carries it.
pub const CPU: &str = "<cpu mode='custom' match='exact' check='full'>
    <model fallback='forbid'>qemu64</model>
    <feature policy='require' name='hypervisor'/>
    <feature policy='require' name='lahf_lm'/>
  </cpu>";

/// The guest (real-peer §2, abridged).
pub const GUEST_XML: &str = "<domain type='qemu'><name>tiny</name><uuid>7e1e7e1e-0000-4000-8000-000000000001</uuid><memory unit='MiB'>64</memory><devices><graphics type='spice' port='5940' autoport='no' listen='127.0.0.1'><listen type='address' address='127.0.0.1'/></graphics></devices></domain>";

/// A host-role machine the driver can run.
pub trait HostRole: Machine<Input: Clone + Serialize, Action: Clone + Serialize> + Sized {
    /// Its configuration.
    type Config: Clone;
    /// A fresh machine and the trace header's setup.
    fn start(config: &Self::Config) -> (Self, Setup);
    /// The input that tells the machine its timer expired, if it has one.
    fn timeout_input() -> Option<Self::Input>;
}

impl HostRole for SourceHost {
    type Config = SourceConfig;
    fn start(config: &SourceConfig) -> (Self, Setup) {
        (
            SourceHost::new(config.clone()),
            Setup::SourceHost(config.clone()),
        )
    }
    fn timeout_input() -> Option<SourceInput> {
        Some(SourceInput::Timeout)
    }
}

impl HostRole for DestinationHost {
    type Config = DestinationConfig;
    fn start(config: &DestinationConfig) -> (Self, Setup) {
        (
            DestinationHost::new(config.clone()),
            Setup::DestinationHost(config.clone()),
        )
    }
    fn timeout_input() -> Option<DestinationInput> {
        None
    }
}

/// A scripted hypervisor answer: the tag of the action it answers (its serde `type`) and
/// the inputs fed back, [`HV_MS`] apart.
pub type Answer<I> = (&'static str, Vec<I>);

/// One scenario: everything the driver needs, as data.
#[derive(Clone, Debug)]
pub struct Scenario<M: HostRole> {
    /// File stem of its trace.
    pub name: &'static str,
    /// The machine's configuration.
    pub config: M::Config,
    /// Step calls and external events, at absolute times (non-decreasing).
    pub script: Vec<(Millis, M::Input)>,
    /// The hypervisor's answers: the first unused entry whose tag equals an action's
    /// `type` answers it, with these inputs ([`HV_MS`] apart). Actions without an entry
    /// get no answer (fire-and-forget, or a command that hangs).
    pub answers: Vec<Answer<M::Input>>,
}

/// The outcome of running a scenario.
#[derive(Debug)]
pub struct Run<M: HostRole> {
    /// The recorded trace.
    pub trace: String,
    /// Every input fed and the actions it produced, in order.
    pub records: Vec<Record<M::Input, M::Action>>,
    /// The machine afterwards.
    pub machine: M,
    /// Tags of scripted answers no action asked for (a scenario bug when not empty).
    pub unused_answers: Vec<&'static str>,
}

impl<M: HostRole> Run<M> {
    /// Every action, in order.
    pub fn actions(&self) -> Vec<M::Action> {
        self.records
            .iter()
            .flat_map(|r| r.actions.iter().cloned())
            .collect()
    }
}

/// The `type` tag of a serde-tagged input or action.
pub fn tag<T: Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|j| j.get("type").and_then(|t| t.as_str()).map(str::to_owned))
        .unwrap_or_default()
}

/// Drive one scenario to its end, recording the trace.
pub fn run<M: HostRole>(s: &Scenario<M>) -> Run<M> {
    let (mut m, setup) = M::start(&s.config);
    let mut w = Writer::new(&setup);
    let mut records = Vec::new();
    let mut answers: Vec<Option<Answer<M::Input>>> = s.answers.iter().cloned().map(Some).collect();
    // Hypervisor answers due, in the order they were scheduled.
    let mut pending: Vec<(Millis, M::Input)> = Vec::new();
    let mut script = s.script.iter().cloned().peekable();
    let mut now: Millis = 0;
    for _ in 0..1_000 {
        // Earliest first; on a tie the hypervisor, then the script, then the timer.
        let due = pending.iter().map(|(t, _)| *t).min();
        let next = script.peek().map(|(t, _)| *t);
        let timer = M::timeout_input().and(m.poll_timeout());
        let pick = [due, next, timer]
            .into_iter()
            .enumerate()
            .filter_map(|(i, t)| t.map(|t| (t, i)))
            .min();
        let (at, input) = match pick {
            None => break,
            Some((t, 0)) => {
                let i = pending.iter().position(|(d, _)| *d == t).unwrap_or(0);
                (t, pending.remove(i).1)
            }
            Some((t, 1)) => match script.next() {
                Some((_, input)) => (t, input),
                None => break,
            },
            Some((t, _)) => match M::timeout_input() {
                Some(input) => (t, input),
                None => break,
            },
        };
        now = now.max(at);
        let actions = trace::step(&mut m, now, input.clone());
        w.record(now, &input, &actions);
        for a in &actions {
            let kind = tag(a);
            let slot = answers
                .iter_mut()
                .find(|e| e.as_ref().is_some_and(|(k, _)| *k == kind));
            if let Some((_, inputs)) = slot.and_then(Option::take) {
                let base = pending.last().map_or(now, |(t, _)| (*t).max(now));
                for (n, i) in (1..).zip(inputs) {
                    pending.push((base + n * HV_MS, i));
                }
            }
        }
        records.push(Record {
            now,
            input,
            actions,
        });
    }
    Run {
        trace: w.finish(),
        records,
        machine: m,
        unused_answers: answers.into_iter().flatten().map(|(k, _)| k).collect(),
    }
}

// ------------------------------------------------------------------ shared pieces

fn bytes(b: &[u8]) -> Bytes {
    Bytes(b.to_vec())
}

/// The statistics of a real cookie.
pub fn stats_of(cookie: &[u8]) -> Statistics {
    Cookie::parse(cookie)
        .ok()
        .flatten()
        .and_then(|c| c.statistics)
        .unwrap_or_default()
}

/// LIVE | CHANGE_PROTECTION (0x101), as virsh sends to the source.
pub const LIVE_PROT: MigrateFlags =
    MigrateFlags(MigrateFlags::LIVE.0 | MigrateFlags::CHANGE_PROTECTION.0);

// ------------------------------------------------------------------ source scenarios

/// hosta's source daemon migrating the running `tiny` (lock driver `nop`).
pub fn source_config() -> SourceConfig {
    let mut c = SourceConfig::new(
        "hosta",
        HOSTA_UUID,
        SourceVm {
            name: NAME.into(),
            uuid: UUID.into(),
            state: VmState::Running,
            xml: GUEST_XML.into(),
            cpu: Some(CPU.into()),
        },
    );
    c.lock_driver = Some("nop".into());
    c
}

fn begin(flags: MigrateFlags) -> SourceInput {
    SourceInput::Begin {
        flags,
        params: Params::default(),
    }
}

fn perform_with(flags: MigrateFlags, graphics_uri: Option<&str>) -> SourceInput {
    let mut params = Params::default();
    params.replace_str(param::URI, URI);
    if let Some(g) = graphics_uri {
        params.replace_str(param::GRAPHICS_URI, g);
    }
    SourceInput::Perform {
        cookie: bytes(cookies::PREPARE),
        flags,
        params,
    }
}

fn perform() -> SourceInput {
    perform_with(LIVE_PROT, None)
}

fn confirm(cancelled: bool) -> SourceInput {
    SourceInput::Confirm {
        cookie: if cancelled {
            Bytes::new()
        } else {
            bytes(cookies::FINISH)
        },
        flags: LIVE_PROT,
        cancelled,
    }
}

/// QEMU's answers to a Perform up to `migrate`: relocation and capabilities succeed.
fn perform_answers() -> Vec<Answer<SourceInput>> {
    vec![
        (
            "set_spice_relocation",
            vec![SourceInput::RelocationDone { error: None }],
        ),
        (
            "set_capabilities",
            vec![SourceInput::CapabilitiesSet { error: None }],
        ),
    ]
}

/// `migrate` reaches switchover (STOP) and completes.
fn migration_completes() -> Answer<SourceInput> {
    (
        "start_migration",
        vec![
            SourceInput::VmPaused,
            SourceInput::MigrationCompleted {
                stats: stats_of(cookies::PERFORM),
            },
        ],
    )
}

fn with(
    mut base: Vec<Answer<SourceInput>>,
    more: impl IntoIterator<Item = Answer<SourceInput>>,
) -> Vec<Answer<SourceInput>> {
    base.extend(more);
    base
}

/// Begin@0 and Perform@10 of a successful migration; Perform's reply comes at 50.
fn performed(
    script: impl IntoIterator<Item = (Millis, SourceInput)>,
) -> Vec<(Millis, SourceInput)> {
    let mut v = vec![(0, begin(LIVE_PROT)), (10, perform())];
    v.extend(script);
    v
}

fn src(
    name: &'static str,
    config: SourceConfig,
    script: Vec<(Millis, SourceInput)>,
    answers: Vec<Answer<SourceInput>>,
) -> Scenario<SourceHost> {
    Scenario {
        name,
        config,
        script,
        answers,
    }
}

/// Every source-host scenario.
pub fn source_corpus() -> Vec<Scenario<SourceHost>> {
    use MigrateFlags as F;
    let done = || with(perform_answers(), [migration_completes()]);
    let mut paused = source_config();
    paused.vm.state = VmState::Paused;
    let mut bounded = source_config();
    bounded.spice_wait_ms = Some(SPICE_WAIT_MS);
    vec![
        // §4.2 Begin with CHANGE_PROTECTION: job kept in phase begin3.
        src(
            "src-begin-protected",
            source_config(),
            vec![(0, begin(LIVE_PROT))],
            vec![],
        ),
        // §4.2 Begin without it: no job; Perform then starts its own.
        src(
            "src-begin-unprotected",
            source_config(),
            vec![(0, begin(F::LIVE)), (10, perform_with(F::LIVE, None))],
            done(),
        ),
        // §4.2 flag rule: POSTCOPY needs LIVE and no PAUSED.
        src(
            "src-begin-refused-postcopy-paused",
            source_config(),
            vec![(0, begin(LIVE_PROT.with(F::POSTCOPY).with(F::PAUSED)))],
            vec![],
        ),
        // §4.3/§4.6/§7: relocation from the Prepare cookie's <graphics>, migration, and
        // Confirm waits for SPICE_MIGRATE_COMPLETED before stopping the source.
        src(
            "src-v3-success-spice-wait",
            source_config(),
            performed([(100, confirm(false)), (150, SourceInput::SpiceMigrated)]),
            done(),
        ),
        // §7: graphics_uri overrides host, port, tlsPort and tlsSubject.
        src(
            "src-perform-graphics-uri",
            source_config(),
            vec![
                (0, begin(LIVE_PROT)),
                (10, perform_with(LIVE_PROT, Some(GRAPHICS_URI))),
            ],
            done(),
        ),
        // §4.3: failure after switchover → migrate_cancel, resume (running before).
        src(
            "src-perform-fails-resumes-running",
            source_config(),
            performed([]),
            with(
                perform_answers(),
                [(
                    "start_migration",
                    vec![
                        SourceInput::VmPaused,
                        SourceInput::MigrationFailed {
                            error: "Channel error: Input/output error".into(),
                        },
                    ],
                )],
            ),
        ),
        // §12.7: a source paused before the migration is not resumed.
        src(
            "src-perform-fails-keeps-paused",
            paused,
            performed([]),
            with(
                perform_answers(),
                [(
                    "start_migration",
                    vec![SourceInput::MigrationFailed {
                        error: "Channel error: Input/output error".into(),
                    }],
                )],
            ),
        ),
        // §3 abort: virDomainAbortJob while `migrate` runs → migrate_cancel, QEMU reports
        // the cancellation, Perform fails with OPERATION_ABORTED.
        src(
            "src-perform-abort",
            source_config(),
            performed([(45, SourceInput::AbortJob)]),
            with(
                perform_answers(),
                [(
                    "cancel_migration",
                    vec![SourceInput::MigrationFailed {
                        error: "migration was cancelled".into(),
                    }],
                )],
            ),
        ),
        // §7 with a bound: the client never completes; the timer stops the source.
        src(
            "src-confirm-spice-timeout",
            bounded,
            performed([(100, confirm(false))]),
            done(),
        ),
        // §4.6 cancelled=1 (Finish failed): resume the previously running source.
        src(
            "src-confirm-cancelled-resumes",
            source_config(),
            performed([(100, confirm(true))]),
            done(),
        ),
        // §8: client lost at begin3 → the job is aborted; a new Begin works.
        src(
            "src-client-closed-begin3",
            source_config(),
            vec![
                (0, begin(LIVE_PROT)),
                (10, SourceInput::ClientClosed),
                (20, begin(LIVE_PROT)),
            ],
            vec![],
        ),
        // §8: client lost at perform3_done → warn, end job, the source stays paused.
        src(
            "src-client-closed-perform3-done",
            source_config(),
            performed([(100, SourceInput::ClientClosed)]),
            done(),
        ),
    ]
}

// ------------------------------------------------------------------ destination scenarios

/// hostb's destination daemon (migration_host 10.77.0.2, SPICE on 127.0.0.1:5940).
pub fn destination_config() -> DestinationConfig {
    let mut c = DestinationConfig::new("hostb", HOSTB_UUID);
    c.migration_host = Some("10.77.0.2".into());
    c.lock_driver = Some("nop".into());
    c.graphics = Some(Graphics {
        kind: "spice".into(),
        port: 5940,
        listen: "127.0.0.1".into(),
        tls_port: Some(-1),
        cert_subject: None,
    });
    c
}

fn xml_params() -> Params {
    let mut p = Params::default();
    p.replace_str(param::DEST_XML, GUEST_XML);
    p
}

fn prepare_with(cookie: &[u8], flags: MigrateFlags) -> DestinationInput {
    DestinationInput::Prepare {
        cookie: bytes(cookie),
        flags,
        params: xml_params(),
    }
}

fn prepare() -> DestinationInput {
    prepare_with(cookies::BEGIN, MigrateFlags::LIVE)
}

fn finish_with(cookie: &[u8], flags: MigrateFlags, cancelled: bool, v2: bool) -> DestinationInput {
    let mut params = xml_params();
    params.replace_str(param::URI, URI);
    params.replace_str(param::DEST_NAME, NAME);
    DestinationInput::Finish {
        cookie: bytes(cookie),
        flags,
        params,
        cancelled,
        v2,
    }
}

fn finish() -> DestinationInput {
    finish_with(cookies::PERFORM, MigrateFlags::LIVE, false, false)
}

fn completed() -> DestinationInput {
    DestinationInput::IncomingCompleted {
        stats: Some(stats_of(cookies::FINISH)),
    }
}

fn started(error: Option<&str>) -> Answer<DestinationInput> {
    (
        "start_incoming",
        vec![DestinationInput::IncomingStarted {
            error: error.map(str::to_owned),
        }],
    )
}

fn cpus(error: Option<&str>) -> Answer<DestinationInput> {
    (
        "start_cpus",
        vec![DestinationInput::CpusStarted {
            error: error.map(str::to_owned),
        }],
    )
}

fn dst(
    name: &'static str,
    config: DestinationConfig,
    script: Vec<(Millis, DestinationInput)>,
    answers: Vec<Answer<DestinationInput>>,
) -> Scenario<DestinationHost> {
    Scenario {
        name,
        config,
        script,
        answers,
    }
}

/// The domain a successful Finish leaves running.
pub fn tiny() -> DomainRef {
    DomainRef {
        name: NAME.into(),
        uuid: UUID.into(),
    }
}

/// Every destination-host scenario.
pub fn destination_corpus() -> Vec<Scenario<DestinationHost>> {
    use MigrateFlags as F;
    // hostb configured with hosta's UUID: the Begin cookie comes from "this" host.
    let mut same_host = destination_config();
    same_host.host_uuid = HOSTA_UUID.into();
    let persist = F::LIVE.with(F::PERSIST_DEST);
    vec![
        // §4.4: the Prepare cookie carries <graphics> and capabilities; uri_out.
        dst(
            "dst-prepare-success",
            destination_config(),
            vec![(0, prepare())],
            vec![started(None)],
        ),
        // real-peer F1: the incoming QEMU cannot bind the SPICE port.
        dst(
            "dst-prepare-spice-port-busy",
            destination_config(),
            vec![(0, prepare())],
            vec![started(Some(SPICE_PORT_BUSY))],
        ),
        // §6/§12.9: a cookie from this very host is refused before anything starts.
        dst(
            "dst-prepare-same-host",
            same_host,
            vec![(0, prepare())],
            vec![],
        ),
        // §4.5: completion, CPUs started, the STATS cookie for Confirm.
        dst(
            "dst-finish-success",
            destination_config(),
            vec![(0, prepare()), (50, completed()), (60, finish())],
            vec![started(None), cpus(None)],
        ),
        // §4.5/§12.6: Finish(cancelled=1) kills the incoming VM, error 93.
        dst(
            "dst-finish-cancelled",
            destination_config(),
            vec![
                (0, prepare()),
                (
                    50,
                    DestinationInput::IncomingFailed {
                        error: "load of migration failed: Input/output error".into(),
                    },
                ),
                (60, finish_with(&[], F::LIVE, true, false)),
            ],
            vec![started(None)],
        ),
        // §4.5: a v3 CPU-start failure kills the destination so the source can resume.
        dst(
            "dst-finish-cpu-start-fails",
            destination_config(),
            vec![(0, prepare()), (50, completed()), (60, finish())],
            vec![
                started(None),
                cpus(Some("resume failed: guest CPU could not start")),
            ],
        ),
        // §4.1: a v2 Finish2 ignores persist and CPU-start errors; the VM stays paused.
        dst(
            "dst-v2-finish-ignores-errors",
            destination_config(),
            vec![
                (0, prepare_with(&[], persist)),
                (50, DestinationInput::IncomingCompleted { stats: None }),
                (60, finish_with(&[], persist, false, true)),
            ],
            vec![
                started(None),
                (
                    "persist_vm",
                    vec![DestinationInput::PersistDone {
                        error: Some("cannot write /etc/libvirt/qemu/tiny.xml".into()),
                    }],
                ),
                cpus(Some("resume failed: guest CPU could not start")),
            ],
        ),
        // §8: client lost between Prepare and Finish → autodestroy; Finish finds nothing.
        dst(
            "dst-client-closed-after-prepare",
            destination_config(),
            vec![
                (0, prepare()),
                (50, DestinationInput::ClientClosed),
                (60, finish()),
            ],
            vec![started(None)],
        ),
        // §8: client lost while QEMU starts → destroyed once started, Prepare fails.
        dst(
            "dst-client-closed-during-prepare",
            destination_config(),
            vec![(0, prepare()), (5, DestinationInput::ClientClosed)],
            vec![started(None)],
        ),
    ]
}

/// Every host scenario's name and trace, source first.
pub fn corpus_traces() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = source_corpus()
        .iter()
        .map(|s| (s.name.to_owned(), run(s).trace))
        .collect();
    v.extend(
        destination_corpus()
            .iter()
            .map(|s| (s.name.to_owned(), run(s).trace)),
    );
    v
}

/// Run the source scenario `name`.
pub fn run_source(name: &str) -> Run<SourceHost> {
    let s = source_corpus()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no source scenario {name}"));
    run(&s)
}

/// Run the destination scenario `name`.
pub fn run_destination(name: &str) -> Run<DestinationHost> {
    let s = destination_corpus()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no destination scenario {name}"));
    run(&s)
}
