//! `check_module FILE`: prove a built module imports nothing and exports the whole ABI
//! (run by `scripts/build-wasm-abi.sh`). Exit status 1 otherwise.

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: check_module FILE.wasm");
        return ExitCode::from(2);
    };
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("check_module: {path}: {e}");
            return ExitCode::from(2);
        }
    };
    let info = match livemig_wasm_abi::module_check::inspect(&bytes) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("check_module: {path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let missing = info.missing_exports();
    println!(
        "{path}: {} imports, {} exports, ABI exports missing: {}",
        info.imports.len(),
        info.exports.len(),
        if missing.is_empty() {
            "none".to_owned()
        } else {
            missing.join(", ")
        }
    );
    for (module, field) in &info.imports {
        println!("  import {module}.{field}");
    }
    if info.imports.is_empty() && missing.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
