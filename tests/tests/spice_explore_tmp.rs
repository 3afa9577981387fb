use livemig_core::spice::session::{SessionAction, SessionEvent};
use livemig_tests::spice_scenarios::*;

fn short(e: &SessionEvent) -> String {
    match e {
        SessionEvent::Message {
            channel,
            msg_type,
            body,
        } => format!("Msg({:?}:{} {}B)", channel.kind, msg_type, body.len()),
        other => format!("{other:?}"),
    }
}

#[test]
fn dump() {
    let only = std::env::var("SC").ok();
    for s in corpus() {
        if let Some(o) = &only {
            if &s.name != o {
                continue;
            }
        }
        let n = run(&s);
        println!(
            "=== {} stuck={} ticks={} app_sent={} held={} trace={}B",
            s.name,
            n.stuck,
            n.tick,
            n.app_sent.len(),
            n.app_held,
            n.trace().len()
        );
        let mut last = String::new();
        let mut rep = 0;
        for e in &n.events {
            let t = short(e);
            if t.starts_with("Msg(") && t == last {
                rep += 1;
                continue;
            }
            if rep > 0 {
                println!("   (x{rep} more)");
                rep = 0;
            }
            println!("  ev {t}");
            last = t;
        }
        if rep > 0 {
            println!("   (x{rep} more)");
        }
        for c in &n.connects {
            println!("  connect {:?}", c);
        }
        for (i, srv) in n.servers.iter().enumerate() {
            println!("  server{i} viol={:?} notes={:?} replies={:?} acks={} maxunacked={} open={:?} closed_by_client={:?}", srv.violations, srv.notes, srv.replies, srv.motion_acks, srv.max_unacked, srv.open_conns(), srv.closed_by_client);
            for l in &srv.links {
                println!("    link {:?}", l);
            }
        }
        let closes: Vec<_> = n
            .actions
            .iter()
            .filter_map(|(_, a)| {
                if let SessionAction::Close { conn } = a {
                    Some(conn.0)
                } else {
                    None
                }
            })
            .collect();
        println!("  closes {:?}", closes);
    }
}
