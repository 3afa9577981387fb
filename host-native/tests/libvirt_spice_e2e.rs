//! End to end (issue 4): two real libvirt daemons, a guest with SPICE reachable from the root
//! namespace, livemig's SPICE client linked to the source, `livemig migrate` moving the VM
//! with `graphics_uri`, and the client ending on the destination through a seamless
//! migration. The same checks as the real-QEMU seamless test, with QMP owned by libvirt.
//! Never skipped: setup installs libvirt and QEMU.

use livemig_core::migration::orchestrator::{Procedure, Verdict};
use livemig_core::spice::session::ChannelRef;
use livemig_core::spice::wire::consts::ChannelType;
use livemig_host::demo::{libvirt_spice, LibvirtDemoReport};

fn channel_name(c: &ChannelRef) -> String {
    format!("{:?} {}", c.kind, c.id).to_lowercase()
}

fn run() -> LibvirtDemoReport {
    libvirt_spice(true, |l| println!("{l}")).unwrap_or_else(|e| panic!("demo: {e}"))
}

#[test]
fn livemig_migrates_a_vm_and_its_spice_client_follows_seamlessly() {
    let r = run();

    // livemig migrate: managed v3 with params, nothing cancelled.
    assert_eq!(r.verdict, Verdict::Migrated);
    let calls: Vec<Procedure> = r.steps.iter().map(|s| s.procedure).collect();
    assert_eq!(
        calls,
        [
            Procedure::MigrateBegin3Params,
            Procedure::DomainGetState,
            Procedure::MigratePrepare3Params,
            Procedure::MigratePerform3Params,
            Procedure::MigrateFinish3Params,
            Procedure::MigrateConfirm3Params,
        ]
    );
    assert!(
        r.steps.iter().all(|s| s.cancelled != Some(true)),
        "{:?}",
        r.steps
    );
    // Prepare's cookie carried the destination's graphics; Perform's the statistics.
    assert!(
        r.steps[2].result.contains("graphics 0.0.0.0:5940"),
        "{}",
        r.steps[2].result
    );
    assert!(
        r.steps[3].result.contains("statistics"),
        "{}",
        r.steps[3].result
    );

    // The client: main, display, cursor, inputs, relocated where graphics_uri said.
    let mut kinds: Vec<ChannelType> = r.channels.iter().map(|c| c.kind).collect();
    kinds.sort();
    let mut want = vec![
        ChannelType::Main,
        ChannelType::Display,
        ChannelType::Cursor,
        ChannelType::Inputs,
    ];
    want.sort();
    assert_eq!(kinds, want);
    let target = r.relocation_target.as_ref().expect("MigrationStarted");
    assert_eq!(
        (target.host.as_str(), target.port),
        ("10.77.0.2", Some(5940))
    );

    // MigrationStarted → MigrationConnected{Seamless} → ChannelSwitched per channel →
    // Migrated{Seamless}, nothing else.
    let n = r.channels.len();
    assert_eq!(r.migration_events.len(), n + 3, "{:?}", r.migration_events);
    assert_eq!(r.migration_events[0], "MigrationStarted(Seamless)");
    assert_eq!(r.migration_events[1], "MigrationConnected(Seamless)");
    assert_eq!(r.migration_events[n + 2], "Migrated(Seamless)");
    let mut switched: Vec<ChannelRef> = r.switched.iter().map(|(c, _)| *c).collect();
    switched.sort();
    let mut linked = r.channels.clone();
    linked.sort();
    assert_eq!(switched, linked, "every channel switched exactly once");
    for (i, (ch, _)) in r.switched.iter().enumerate() {
        assert_eq!(
            r.migration_events[2 + i],
            format!("ChannelSwitched({})", channel_name(ch))
        );
    }
    // MIGRATE_DATA forwarded on every channel whose flags ask for it (main, display,
    // inputs), none on cursor.
    for (ch, len) in &r.switched {
        assert_eq!(
            *len > 0,
            ch.kind.migrate_data_magic().is_some(),
            "{ch:?} forwarded {len} B"
        );
    }
    // No fallback, no reset, no second MAIN_INIT.
    assert!(r.fallbacks.is_empty(), "{:?}", r.fallbacks);

    // The VM runs on B only; every SPICE channel there carries the source's session id.
    assert!(r.runs_only_on_b);
    assert_eq!(r.destination_connection_ids.len(), n);
    assert!(
        r.destination_connection_ids
            .iter()
            .all(|id| *id == r.session_id),
        "{:?} vs {}",
        r.destination_connection_ids,
        r.session_id
    );

    // The session works on B, with the inputs count carried in MIGRATE_DATA.
    assert!(r.count_carried);
    assert!(r.answered_on_destination);

    // libvirt's Confirm waits for SPICE_MIGRATE_COMPLETED (libvirt-migration.md §7): the
    // client linked the target and switched, the source QEMU reported the completion
    // (within a millisecond of the client's Migrated, on either side: the client closes the
    // source sockets as it emits it), Confirm3 went through qemuMigrationSrcWaitForSpice and
    // ended after both.
    let spice = r
        .spice_migrate_completed_ms
        .expect("SPICE_MIGRATE_COMPLETED");
    assert!(r.source_waited_for_spice);
    assert!(spice > r.connected_ms, "{spice} <= {}", r.connected_ms);
    assert!(r.connected_ms < r.migrated_ms);
    assert!(
        r.confirm_done_not_before_ms > r.migrated_ms,
        "Confirm3 done by {} (not before {}), Migrated at {}",
        r.confirm_done_ms,
        r.confirm_done_not_before_ms,
        r.migrated_ms
    );
    assert!(
        spice <= r.confirm_done_ms,
        "{spice} > {}",
        r.confirm_done_ms
    );
    assert!(r.finish_done_ms < r.confirm_done_ms);

    // Both recordings replay identically.
    livemig_core::trace::replay(r.migration_trace.as_deref().expect("migration trace"))
        .expect("migration trace replays");
    livemig_core::trace::replay(r.trace.as_deref().expect("client trace"))
        .expect("client trace replays");
}
