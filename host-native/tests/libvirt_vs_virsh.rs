//! livemig against virsh on two real libvirt 9.0 daemons (libvirt-real-peer.md §4, §7):
//! each client runs the same scenario in a fresh environment behind the same recording
//! proxies, and the migration calls both put on the wire are compared (procedure, flags,
//! `cancelled`, cookie presence, param names; incidental calls such as job-info polls are
//! not compared). For P2P the calls the real source daemon makes to the destination are
//! compared with the destination calls of the core's P2P orchestrator. Never skipped.

use std::process::{Command, Output, Stdio};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use livemig_core::bytes::Bytes;
use livemig_core::migration::cookie::Cookie;
use livemig_core::migration::flags::{param, Feature, FeatureSet, MigrateFlags};
use livemig_core::migration::orchestrator::{
    DomainRef, DomainState, Host, Mode, Orchestrator, OrchestratorAction, OrchestratorConfig,
    OrchestratorInput, Procedure, ProtocolRequest, Report, Verdict,
};
use livemig_core::Machine;
use livemig_host::libvirt::calls::{procs, Finish3Ret, Prepare3Ret};
use livemig_host::libvirt::Rpc;
use livemig_host::libvirt_compare::{
    collect, decode, wire_call_of, CookieDir, WireCall, WireCapture,
};
use livemig_host::libvirt_hosts::{Host as LvHost, PortBlocker, TwoHosts, HOST_A, HOST_B};
use livemig_host::libvirt_proxy::{Captured, Dir, Proxy};
use livemig_host::migrate::{run, MigrateOptions, MigrateOutcome};

/// Proxies in the root namespace in front of A (source) and B (destination).
struct Proxies {
    source: Proxy,
    destination: Proxy,
}

impl Proxies {
    fn start(listen: &str) -> Proxies {
        Proxies {
            source: Proxy::start(&format!("{listen}:0"), &HOST_A.rpc_addr()).unwrap(),
            destination: Proxy::start(&format!("{listen}:0"), &HOST_B.rpc_addr()).unwrap(),
        }
    }
    fn source_uri(&self) -> String {
        uri(&self.source)
    }
    fn destination_uri(&self) -> String {
        uri(&self.destination)
    }
    fn capture(&self) -> WireCapture {
        let s = settled(&self.source);
        let d = settled(&self.destination);
        collect(&[(Host::Source, &s), (Host::Destination, &d)]).unwrap()
    }
}

fn uri(p: &Proxy) -> String {
    format!("qemu+tcp://{}/system", p.addr())
}

/// The proxy's frames once nothing more arrives (a reply is recorded just after it was
/// forwarded, so the client can be done a moment before the proxy is).
fn settled(p: &Proxy) -> Vec<Captured> {
    let mut last = p.frames();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let now = p.frames();
        if now.len() == last.len() {
            return now;
        }
        last = now;
    }
}

/// A fresh environment with `tiny` running on A.
fn fresh() -> TwoHosts {
    let env = TwoHosts::start().unwrap();
    env.create_guest(&HOST_A, "127.0.0.1").unwrap();
    env
}

fn virsh_migrate(source_uri: &str, extra: &[&str], destination_uri: &str) -> Output {
    Command::new("timeout")
        .args(["50", "virsh", "-c", source_uri, "migrate", "--live"])
        .args(extra)
        .args(["tiny", destination_uri])
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn livemig_migrate(p: &Proxies) -> MigrateOutcome {
    let o = MigrateOptions {
        source: p.source_uri(),
        destination: p.destination_uri(),
        domain: "tiny".into(),
        protocol: ProtocolRequest::Auto,
        flags: MigrateFlags::LIVE,
        graphics_uri: None,
        step_timeout: Some(Duration::from_secs(30)),
        record: false,
    };
    run(&o, Arc::new(AtomicBool::new(false)), |_| {}).unwrap()
}

fn shown(calls: &[WireCall]) -> Vec<String> {
    calls.iter().map(WireCall::to_string).collect()
}

fn uuid_of(h: Host) -> &'static str {
    match h {
        Host::Source => HOST_A.uuid,
        Host::Destination => HOST_B.uuid,
    }
}

/// Every cookie parses with the core codec and formats back byte for byte; each came from
/// the host that returned it, and no host is sent a cookie it emitted itself.
fn check_cookies(who: &str, c: &WireCapture) {
    for k in &c.cookies {
        let cookie = Cookie::parse(&k.bytes)
            .unwrap_or_else(|e| panic!("{who}: cookie of {} does not parse: {e}", k.procedure))
            .unwrap_or_else(|| panic!("{who}: cookie of {} is empty", k.procedure));
        assert_eq!(
            cookie.format(),
            k.bytes,
            "{who}: cookie of {} does not format back byte for byte",
            k.procedure
        );
        match k.dir {
            CookieDir::Returned => assert_eq!(
                cookie.hostuuid,
                uuid_of(k.host),
                "{who}: {:?} returned a cookie of another host in {}",
                k.host,
                k.procedure
            ),
            CookieDir::Sent => assert_ne!(
                cookie.hostuuid,
                uuid_of(k.host),
                "{who}: {:?} was sent its own cookie in {}",
                k.host,
                k.procedure
            ),
        }
    }
}

/// Both lists equal, shown side by side when they are not.
fn assert_same(what: &str, virsh: &[WireCall], livemig: &[WireCall]) {
    assert_eq!(
        virsh,
        livemig,
        "{what}: the calls differ\n virsh:   {:#?}\n livemig: {:#?}",
        shown(virsh),
        shown(livemig)
    );
}

// ---- failure injections (libvirt-real-peer.md §7) ------------------------------------------

fn tc(netns: &str, args: &[&str]) {
    let st = Command::new("ip")
        .args(["netns", "exec", netns, "tc"])
        .args(args)
        .status()
        .unwrap();
    assert!(st.success(), "tc {args:?}");
}

fn kill_qemu_in(netns: &str) -> usize {
    let pids = Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .unwrap();
    let mut killed = 0;
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if cmd.contains("qemu-system") {
            let ok = Command::new("kill").args(["-9", pid]).status();
            killed += usize::from(ok.is_ok_and(|s| s.success()));
        }
    }
    killed
}

/// F2: A's link slowed to 1 mbit, then B's incoming QEMU killed once Perform is under way
/// (seen on the source proxy), while `client` runs. Returns what the client returned.
fn with_destination_killed_during_perform<T: Send>(
    p: &Proxies,
    client: impl FnOnce() -> T + Send,
) -> T {
    tc(
        HOST_A.netns,
        &[
            "qdisc", "add", "dev", "eth0", "root", "tbf", "rate", "1mbit", "burst", "32kbit",
            "latency", "400ms",
        ],
    );
    std::thread::scope(|s| {
        let killer = s.spawn(|| {
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                let performing = p.source.frames().iter().any(|f| {
                    f.dir == Dir::Call
                        && f.kind() == Some(0)
                        && f.procedure() == Some(procs::DOMAIN_MIGRATE_PERFORM3_PARAMS)
                });
                if performing {
                    // Well inside the transfer: ~1 MB at 1 mbit takes seconds.
                    std::thread::sleep(Duration::from_millis(500));
                    return kill_qemu_in(HOST_B.netns);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            0
        });
        let out = client();
        assert_eq!(
            killer.join().unwrap(),
            1,
            "B's incoming QEMU was not killed"
        );
        out
    })
}

// ---- managed: virsh migrate vs livemig migrate ------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Scenario {
    Success,
    /// F1
    PrepareFails,
    /// F2
    PerformFails,
}

/// One run of `scenario` by virsh (`true`) or livemig, in a fresh environment, behind
/// proxies. Returns the capture and how long the run took once the environment was up
/// (setting it up may wait for other tests' environments).
fn managed_run(scenario: Scenario, virsh: bool) -> (WireCapture, Duration) {
    let t0 = Instant::now();
    let env = fresh();
    let env_up = t0.elapsed();
    let t1 = Instant::now();
    let p = Proxies::start("127.0.0.1");
    let client = || -> (bool, String) {
        if virsh {
            let out = virsh_migrate(&p.source_uri(), &[], &p.destination_uri());
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        } else {
            let o = livemig_migrate(&p);
            let took: Vec<String> = o
                .steps
                .iter()
                .map(|s| format!("{}:{:.0}ms", s.call.procedure.number(), s.took_ms))
                .collect();
            eprintln!("livemig steps {took:?}");
            (
                o.report.verdict == Verdict::Migrated,
                format!("{:?}", o.report),
            )
        }
    };
    let (ok, detail) = match scenario {
        Scenario::Success => client(),
        Scenario::PrepareFails => {
            let _blocker = PortBlocker::start(&HOST_B, 5940).unwrap();
            client()
        }
        Scenario::PerformFails => with_destination_killed_during_perform(&p, client),
    };
    let who = if virsh { "virsh" } else { "livemig" };
    match scenario {
        Scenario::Success => {
            assert!(ok, "{who}: {detail}");
            env.check_runs_only_on(&HOST_B).unwrap();
        }
        Scenario::PrepareFails => {
            assert!(!ok, "{who} migrated although B's SPICE port is taken");
            assert!(detail.contains("spice"), "{who}: {detail}");
            env.check_runs_only_on(&HOST_A).unwrap();
        }
        Scenario::PerformFails => {
            assert!(!ok, "{who} migrated although B's QEMU was killed");
            env.check_runs_only_on(&HOST_A).unwrap();
        }
    }
    let capture = p.capture();
    let run = t1.elapsed();
    drop(env);
    eprintln!(
        "{who} {scenario:?}: environment up in {:.1} s, run {:.1} s, all {:.1} s: {:#?}",
        env_up.as_secs_f64(),
        run.as_secs_f64(),
        t0.elapsed().as_secs_f64(),
        shown(&capture.wire_calls())
    );
    (capture, run)
}

fn compare_managed(scenario: Scenario, expected: &[&str]) {
    let t0 = Instant::now();
    let (virsh, virsh_run) = managed_run(scenario, true);
    let (livemig, livemig_run) = managed_run(scenario, false);
    check_cookies("virsh", &virsh);
    check_cookies("livemig", &livemig);
    assert_same(
        &format!("{scenario:?}"),
        &virsh.wire_calls(),
        &livemig.wire_calls(),
    );
    assert_eq!(shown(&virsh.wire_calls()), expected, "{scenario:?}");
    eprintln!(
        "{scenario:?}: both runs in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    for (who, run) in [("virsh", virsh_run), ("livemig", livemig_run)] {
        assert!(run < RUN_BOUND, "{who} {scenario:?} took {run:?}");
    }
}

/// Bound on one client run once its environment is up (about 0.5-2 s here; an
/// environment adds about 2 s, so a scenario of two runs stays well under 60 s).
const RUN_BOUND: Duration = Duration::from_secs(20);

const XML: &str = "destination_xml";
const XML_URI_NAME: &str = "destination_xml,migrate_uri,destination_name";

#[test]
fn managed_success_matches_virsh() {
    compare_managed(
        Scenario::Success,
        &[
            "src:302(f=0x101)[]",
            &format!("dst:303(f=0x1,cookie)[{XML}]"),
            &format!("src:305(f=0x101,cookie)[{XML},migrate_uri]"),
            &format!("dst:306(f=0x1,c=0,cookie)[{XML_URI_NAME}]"),
            &format!("src:307(f=0x101,c=0,cookie)[{XML_URI_NAME}]"),
        ],
    );
}

#[test]
fn managed_prepare_fails_matches_virsh() {
    compare_managed(
        Scenario::PrepareFails,
        &[
            "src:302(f=0x101)[]",
            &format!("dst:303(f=0x1,cookie)[{XML}]"),
            &format!("src:307(f=0x101,c=1)[{XML}]"),
        ],
    );
}

#[test]
fn managed_perform_fails_matches_virsh() {
    compare_managed(
        Scenario::PerformFails,
        &[
            "src:302(f=0x101)[]",
            &format!("dst:303(f=0x1,cookie)[{XML}]"),
            &format!("src:305(f=0x101,cookie)[{XML},migrate_uri]"),
            &format!("dst:306(f=0x1,c=1)[{XML_URI_NAME}]"),
        ],
    );
}

// ---- P2P: the real source daemon vs the core's P2P orchestrator -------------------------

/// The features `h` answers, and `tiny` there when `domain`.
fn probe(h: &LvHost, domain: bool) -> (FeatureSet, Option<DomainRef>) {
    let mut rpc = Rpc::connect(h.rpc_addr().as_str(), Duration::from_secs(10)).unwrap();
    rpc.set_call_timeout(Some(Duration::from_secs(10)));
    rpc.connect_open(Some("qemu:///system"), 0).unwrap();
    let mut set = FeatureSet::default();
    for f in Feature::ALL {
        if rpc.supports_feature(f).unwrap() {
            set.0.insert(f);
        }
    }
    let dom = domain.then(|| rpc.lookup_by_name("tiny").unwrap());
    (set, dom)
}

/// `virsh -c A migrate --live --p2p tiny qemu+tcp://10.77.0.254:PORT/system`, PORT being a
/// proxy on the bridge address (which the source daemon in lvmA reaches) in front of B.
/// Returns the destination-side capture, the config the core gets for the same run, and
/// whether virsh succeeded.
fn p2p_virsh_run(prepare_fails: bool) -> (WireCapture, OrchestratorConfig, bool, String) {
    let env = fresh();
    let (source_features, domain) = probe(&HOST_A, true);
    let (destination_features, _) = probe(&HOST_B, false);
    let proxy = Proxy::start("10.77.0.254:0", &HOST_B.rpc_addr()).unwrap();
    let t1 = Instant::now();
    let blocker = prepare_fails.then(|| PortBlocker::start(&HOST_B, 5940).unwrap());
    let out = virsh_migrate(&HOST_A.uri(), &["--p2p"], &uri(&proxy));
    drop(blocker);
    let run = t1.elapsed();
    assert!(run < RUN_BOUND, "virsh --p2p took {run:?}");
    let ok = out.status.success();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    env.check_runs_only_on(if ok { &HOST_B } else { &HOST_A })
        .unwrap();
    let frames = settled(&proxy);
    let capture = collect(&[(Host::Destination, &frames)]).unwrap();
    drop(env);
    let cfg = OrchestratorConfig {
        mode: Mode::PeerToPeer,
        protocol: ProtocolRequest::Auto,
        source_features,
        destination_features,
        domain: domain.unwrap(),
        flags: MigrateFlags::LIVE,
        params: Default::default(),
        step_timeout_ms: None,
    };
    (capture, cfg, ok, stderr)
}

/// Drive the core's P2P orchestrator inline for the run `real` captured: source-side calls
/// are answered with what the real source daemon produced (its Begin cookie and XML are the
/// `cookie_in` and `destination_xml` of its Prepare, its Perform cookie the `cookie_in` of
/// its Finish), destination-side calls with the destination's real replies. Returns the
/// core's destination calls, every call as `proc(cancelled)`, and the report.
fn core_p2p(cfg: OrchestratorConfig, real: &WireCapture) -> (WireCapture, Vec<String>, Report) {
    let domain = cfg.domain.clone();
    let prepare = real
        .first(procs::DOMAIN_MIGRATE_PREPARE3_PARAMS)
        .expect("the real source daemon sent no Prepare3Params");
    let finish = real.first(procs::DOMAIN_MIGRATE_FINISH3_PARAMS);
    let mut orch = Orchestrator::new(cfg);
    let mut pending = vec![OrchestratorInput::Start];
    let mut core = WireCapture::default();
    let mut steps = Vec::new();
    let mut report = None;
    let mut now = 0;
    while let Some(input) = pending.pop() {
        now += 10;
        orch.handle(now, input);
        while let Some(action) = orch.poll_action() {
            let call = match action {
                OrchestratorAction::Call(call) => call,
                OrchestratorAction::Done(r) => {
                    report = Some(r);
                    continue;
                }
                OrchestratorAction::Warn { .. } => continue,
            };
            steps.push(match call.cancelled {
                Some(c) => format!("{}({})", call.procedure.number(), u8::from(c)),
                None => call.procedure.number().to_string(),
            });
            if call.host == Host::Destination {
                core.calls.extend(wire_call_of(&call, &domain).unwrap());
            }
            let failed = |p: u32| {
                real.failure(p).map(|e| OrchestratorInput::CallFailed {
                    procedure: call.procedure,
                    error: e.to_remote_error(),
                })
            };
            use OrchestratorInput as I;
            pending.push(match call.procedure {
                Procedure::MigrateBegin3Params => I::Begun {
                    cookie: Bytes(prepare.cookie.clone()),
                    xml: prepare.params.get_str(param::DEST_XML).unwrap().to_owned(),
                },
                Procedure::DomainGetState => I::SourceState {
                    state: DomainState::Running,
                },
                Procedure::MigratePrepare3Params => failed(procs::DOMAIN_MIGRATE_PREPARE3_PARAMS)
                    .unwrap_or_else(|| {
                        let r: Prepare3Ret =
                            decode(real.reply(procs::DOMAIN_MIGRATE_PREPARE3_PARAMS).unwrap())
                                .unwrap();
                        I::Prepared {
                            cookie: Bytes(r.cookie_out),
                            uri: r.uri_out,
                        }
                    }),
                Procedure::MigratePerform3Params => I::Performed {
                    cookie: Bytes(
                        finish
                            .expect("the core performed, the real source did not finish")
                            .cookie
                            .clone(),
                    ),
                },
                Procedure::MigrateFinish3Params => failed(procs::DOMAIN_MIGRATE_FINISH3_PARAMS)
                    .unwrap_or_else(|| {
                        let r: Finish3Ret =
                            decode(real.reply(procs::DOMAIN_MIGRATE_FINISH3_PARAMS).unwrap())
                                .unwrap();
                        I::Finished {
                            domain: r.dom,
                            cookie: Bytes(r.cookie_out),
                        }
                    }),
                Procedure::MigrateConfirm3Params => I::Confirmed,
                other => panic!("the core's P2P orchestrator asked for {other:?}"),
            });
        }
    }
    (core, steps, report.expect("the core never finished"))
}

fn compare_p2p(prepare_fails: bool, expected: &[&str]) -> (WireCapture, WireCapture, Vec<String>) {
    let t0 = Instant::now();
    let (real, cfg, ok, stderr) = p2p_virsh_run(prepare_fails);
    assert_eq!(ok, !prepare_fails, "virsh --p2p: {stderr}");
    if prepare_fails {
        assert!(stderr.contains("spice"), "{stderr}");
    }
    check_cookies("source daemon (P2P)", &real);
    let (core, steps, report) = core_p2p(cfg, &real);
    check_cookies("core (P2P)", &core);
    eprintln!(
        "P2P: real {:#?}\ncore {:#?}\ncore steps {steps:?}",
        shown(&real.wire_calls()),
        shown(&core.wire_calls())
    );
    assert_same("P2P", &real.wire_calls(), &core.wire_calls());
    assert_eq!(shown(&real.wire_calls()), expected);
    let verdict = if prepare_fails {
        Verdict::Failed
    } else {
        Verdict::Migrated
    };
    assert_eq!(report.verdict, verdict, "{report:?}");
    eprintln!("P2P scenario in {:.1} s", t0.elapsed().as_secs_f64());
    (real, core, steps)
}

#[test]
fn p2p_success_destination_calls_match_the_source_daemon() {
    let (real, core, steps) = compare_p2p(
        false,
        &[
            &format!("dst:303(f=0x3,cookie)[{XML}]"),
            &format!("dst:306(f=0x3,c=0,cookie)[{XML_URI_NAME}]"),
        ],
    );
    assert_eq!(steps, ["302", "212", "303", "305", "306(0)", "307(0)"]);
    // Fed what the real source produced, the core sends the very same bytes.
    for (r, c) in real.calls.iter().zip(&core.calls) {
        assert_eq!(r.cookie, c.cookie, "cookie of {}", r.call.procedure);
        assert_eq!(r.params, c.params, "params of {}", r.call.procedure);
    }
}

#[test]
fn p2p_prepare_fails_destination_calls_match_the_source_daemon() {
    let (_, _, steps) = compare_p2p(true, &[&format!("dst:303(f=0x3,cookie)[{XML}]")]);
    // Nothing after the failed Prepare: no Finish, no Confirm (§3, real-peer F3).
    assert_eq!(steps, ["302", "212", "303"]);
}
