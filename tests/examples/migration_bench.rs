//! Events per second through the migration orchestrator, natively: every scenario of the
//! corpus (success and failure paths), inputs replayed on fresh machines with no JSON in the
//! loop. Prints a markdown table. Run: `cargo run --release -p livemig-tests --example migration_bench`.

use std::hint::black_box;
use std::time::Instant;

use livemig_core::migration::orchestrator::{Orchestrator, OrchestratorAction, OrchestratorInput};
use livemig_core::trace::Record;
use livemig_core::Machine;
use livemig_tests::scenarios::{corpus, run};

fn main() {
    let mut rows = Vec::new();
    let (mut all_inputs, mut all_secs) = (0u64, 0f64);
    for s in corpus() {
        let r = run(&s);
        let inputs: Vec<(u64, OrchestratorInput)> = r
            .trace
            .lines()
            .skip(1)
            .map(|l| {
                let rec: Record<OrchestratorInput, OrchestratorAction> =
                    serde_json::from_str(l).unwrap();
                (rec.now, rec.input)
            })
            .collect();
        let iters = 20_000u64;
        let t = Instant::now();
        let mut actions = 0u64;
        for _ in 0..iters {
            let mut m = Orchestrator::new(s.config.clone());
            for (now, i) in &inputs {
                m.handle(*now, i.clone());
                while let Some(a) = m.poll_action() {
                    black_box(&a);
                    actions += 1;
                }
            }
        }
        let secs = t.elapsed().as_secs_f64();
        let events = iters * inputs.len() as u64;
        all_inputs += events;
        all_secs += secs;
        rows.push((
            s.name.clone(),
            inputs.len(),
            events as f64 / secs,
            secs * 1e6 / iters as f64,
            actions / iters,
        ));
    }
    println!("| scenario | inputs | actions | events/s | µs per migration |");
    println!("|---|---:|---:|---:|---:|");
    for (name, n, eps, us, acts) in &rows {
        println!("| {name} | {n} | {acts} | {:.2} M | {us:.2} |", eps / 1e6);
    }
    println!(
        "| **all {} scenarios** | | | **{:.2} M** | |",
        rows.len(),
        all_inputs as f64 / all_secs / 1e6
    );
}
