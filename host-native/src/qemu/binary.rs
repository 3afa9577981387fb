//! Finding `qemu-system-x86_64` and what its SPICE support can do.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use super::pair::PairError;

/// The QEMU binary used unless overridden: looked up in `PATH`.
pub const DEFAULT_BINARY: &str = "qemu-system-x86_64";

/// Environment variable that overrides [`DEFAULT_BINARY`] (a path or a name in `PATH`).
pub const BINARY_ENV: &str = "LIVEMIG_QEMU";

/// How the SPICE ticket password can be given on this QEMU's command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordSupport {
    /// `-object secret,id=X,...` plus `-spice password-secret=X` (QEMU ≥ 6.0; the only form
    /// on QEMU ≥ 9, which dropped `password=`). Preferred whenever listed.
    Secret,
    /// Only the old `-spice password=PW`.
    Legacy,
    /// Neither is listed.
    Unsupported,
}

/// A QEMU binary that was found and probed (`--version`, `-spice help`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QemuBinary {
    /// The resolved path of the binary.
    pub path: PathBuf,
    /// The first line of `--version`, e.g. `QEMU emulator version 7.2.22 (Debian ...)`.
    pub version: String,
    /// How a SPICE password is passed.
    pub password: PasswordSupport,
}

impl QemuBinary {
    /// Finds and probes the QEMU binary: `explicit` if given, else `$LIVEMIG_QEMU`, else
    /// `qemu-system-x86_64` from `PATH`. Fails with [`PairError::QemuMissing`] (naming the
    /// install command) when it is absent, and when it was built without SPICE. Probing runs
    /// the binary twice (about 20 ms); results are cached per path for the process.
    pub fn locate(explicit: Option<&Path>) -> Result<QemuBinary, PairError> {
        let wanted: PathBuf = match explicit {
            Some(p) => p.to_path_buf(),
            None => std::env::var_os(BINARY_ENV)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_BINARY)),
        };
        let path = resolve(&wanted).ok_or_else(|| PairError::QemuMissing {
            reason: format!("`{}` not found (PATH or path)", wanted.display()),
        })?;

        static CACHE: Mutex<Option<HashMap<PathBuf, QemuBinary>>> = Mutex::new(None);
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(found) = cache.get_or_insert_with(HashMap::new).get(&path) {
            return Ok(found.clone());
        }

        let run = |args: &[&str]| -> Result<String, PairError> {
            let out = Command::new(&path)
                .args(args)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| PairError::QemuMissing {
                    reason: format!("cannot run {}: {e}", path.display()),
                })?;
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            Ok(text)
        };
        let version = run(&["--version"])?
            .lines()
            .next()
            .unwrap_or("")
            .trim()
            .to_string();
        let help = run(&["-spice", "help"])?;
        if !help.contains("seamless-migration") {
            return Err(PairError::QemuMissing {
                reason: format!(
                    "{} ({version}) has no SPICE support (`-spice help` printed {:?})",
                    path.display(),
                    help.trim()
                ),
            });
        }
        let password = if help.contains("password-secret=") {
            PasswordSupport::Secret
        } else if help.contains("password=") {
            PasswordSupport::Legacy
        } else {
            PasswordSupport::Unsupported
        };
        let found = QemuBinary {
            path: path.clone(),
            version,
            password,
        };
        cache
            .get_or_insert_with(HashMap::new)
            .insert(path, found.clone());
        Ok(found)
    }
}

/// `wanted` itself if it has a slash, else its first match in `PATH`.
fn resolve(wanted: &Path) -> Option<PathBuf> {
    if wanted.components().count() > 1 || wanted.is_absolute() {
        return wanted.is_file().then(|| wanted.to_path_buf());
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(wanted))
        .find(|p| p.is_file())
}
