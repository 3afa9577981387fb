//! The sandbox: livemig-core compiled to WebAssembly (`wasm-abi/`, built by
//! `scripts/build-wasm-abi.sh`) and run under wasmtime 48 with nothing linked in.
//!
//! * **Hermetic.** The module is instantiated with an empty import list: no WASI, no
//!   filesystem, network, clock, randomness or environment. A module that imports anything
//!   is refused at load time ([`SandboxError::Imports`]).
//! * **Bounded.** Every call into a guest runs on a fresh fuel budget
//!   ([`Limits::fuel_per_call`]; fuel is deterministic: the same budget stops at the same
//!   instruction) and every instance lives under a memory limit ([`Limits::memory_bytes`]); a
//!   `memory.grow` past it traps at once.
//! * **Contained.** Each trap becomes its own error ([`SandboxError::OutOfFuel`],
//!   [`SandboxError::MemoryLimit`], [`SandboxError::OutOfBounds`],
//!   [`SandboxError::Unreachable`], [`SandboxError::Trap`]); the trapped instance is dead
//!   ([`SandboxError::Dead`] afterwards), while its [`Sandbox`] keeps creating fresh ones.
//! * **Untrusted.** Everything read back from the guest (result pointers and lengths, frame
//!   counts and lengths, UTF-8) is bounds-checked; a lying guest is an
//!   [`SandboxError::Abi`] error, never a host panic.
//!
//! The guest ABI (version 1) is specified in `wasm-abi/README.md`; this host implements it
//! independently of the guest crate.

use std::path::{Path, PathBuf};

use wasmtime::{
    Config, Engine, Instance, Memory, Module, ResourceLimiter, Store, StoreLimits,
    StoreLimitsBuilder, Trap, TypedFunc,
};

/// The ABI version this host speaks (`lm_abi_version`).
pub const ABI_VERSION: u32 = 1;

/// The module file the build script writes, relative to the cargo target directory.
pub const MODULE_FILE: &str = "wasm-abi/livemig_wasm_abi.wasm";

/// Where `scripts/build-wasm-abi.sh` puts the module: `$CARGO_TARGET_DIR/wasm-abi/…` when
/// that variable is set (relative to the workspace root if relative), else the workspace's
/// `target/wasm-abi/livemig_wasm_abi.wasm`.
pub fn default_module_path() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap_or(Path::new("."));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root.join(dir),
        _ => root.join("target"),
    };
    target.join(MODULE_FILE)
}

/// Resource bounds of every instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel for one host call (`SandboxEngine::new`, `step_json`, `poll_timeout`): roughly
    /// one unit per wasm instruction.
    pub fuel_per_call: u64,
    /// The most linear memory an instance may have, in bytes.
    pub memory_bytes: usize,
}

impl Default for Limits {
    /// 1e9 fuel per call (the heaviest corpus input takes well under 1 % of it; an infinite
    /// loop stops within about a second), 64 MiB of memory.
    fn default() -> Self {
        Limits {
            fuel_per_call: 1_000_000_000,
            memory_bytes: 64 << 20,
        }
    }
}

/// Everything that can go wrong in the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SandboxError {
    /// No module file at the path.
    #[error("no WebAssembly module at {}: build it with scripts/build-wasm-abi.sh", path.display())]
    ModuleMissing {
        /// The path looked at.
        path: PathBuf,
    },
    /// The module file could not be read.
    #[error("{}: {message}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// What the OS said.
        message: String,
    },
    /// The bytes are not a valid WebAssembly module (or wasmtime could not compile them).
    #[error("invalid WebAssembly module: {0}")]
    InvalidModule(String),
    /// The module imports something; the sandbox links nothing at all.
    #[error("the module imports {}; the sandbox provides no imports", .0.join(", "))]
    Imports(Vec<String>),
    /// The module speaks another ABI version.
    #[error("the module speaks ABI version {found}; this host speaks {ABI_VERSION}")]
    AbiVersion {
        /// What `lm_abi_version` returned.
        found: u32,
    },
    /// The module broke the ABI: a missing or mistyped export, an out-of-bounds result, a
    /// malformed frame, a failed allocation.
    #[error("ABI violation: {0}")]
    Abi(String),
    /// The guest refused the call with a status code (e.g. an input that is not JSON).
    #[error("the module answered {} ({code}): {message}", status_name(*code))]
    Guest {
        /// The status code (`wasm-abi/README.md`).
        code: u32,
        /// The guest's message.
        message: String,
    },
    /// The call used up its fuel budget.
    #[error("out of fuel: the call used its whole budget of {budget}")]
    OutOfFuel {
        /// The budget per call.
        budget: u64,
    },
    /// The guest tried to grow its memory past the limit.
    #[error("memory limit: the guest asked for {desired} bytes, the limit is {limit}")]
    MemoryLimit {
        /// The limit in bytes.
        limit: usize,
        /// The size the guest asked for.
        desired: usize,
    },
    /// An out-of-bounds memory or table access trapped.
    #[error("out-of-bounds access: {0}")]
    OutOfBounds(String),
    /// The guest executed `unreachable` (what a Rust guest's panic or abort becomes).
    #[error("the guest executed `unreachable` (a panic or abort in the module)")]
    Unreachable,
    /// Any other trap (stack overflow, division by zero, ...).
    #[error("trap: {0}")]
    Trap(String),
    /// This instance trapped earlier and can no longer be used; create a new one.
    #[error("this instance trapped earlier and is dead; create a new one")]
    Dead,
    /// wasmtime itself failed outside a guest call (engine or store setup).
    #[error("wasmtime: {0}")]
    Runtime(String),
}

/// The name of a guest status code (ABI version 1).
pub fn status_name(code: u32) -> &'static str {
    match code {
        0 => "ok",
        1 => "bad_buffer",
        2 => "not_utf8",
        3 => "invalid_json",
        4 => "invalid_setup",
        5 => "invalid_input",
        6 => "bad_handle",
        7 => "too_large",
        8 => "exhausted",
        _ => "unknown_status",
    }
}

/// The limiter's own error: a grow past the limit traps with it.
#[derive(Debug, thiserror::Error)]
#[error("memory limit: {desired} bytes asked, {limit} allowed")]
struct MemoryLimitHit {
    desired: usize,
    limit: usize,
}

/// `StoreLimits` (instances, memories, tables and memory size), except that a grow past the
/// memory limit traps with [`MemoryLimitHit`] instead of returning -1 to the guest: the
/// host learns exactly why the instance died.
struct Limiter {
    inner: StoreLimits,
    memory_bytes: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if self.inner.memory_growing(current, desired, maximum)? {
            Ok(true)
        } else {
            Err(wasmtime::Error::new(MemoryLimitHit {
                desired,
                limit: self.memory_bytes,
            }))
        }
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }

    fn instances(&self) -> usize {
        self.inner.instances()
    }

    fn tables(&self) -> usize {
        self.inner.tables()
    }

    fn memories(&self) -> usize {
        self.inner.memories()
    }
}

/// A compiled, checked module and the engine that runs it: the factory of instances.
/// Cheap to clone (the engine and module are shared).
#[derive(Clone)]
pub struct Sandbox {
    engine: Engine,
    module: Module,
    limits: Limits,
    size: usize,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("limits", &self.limits)
            .field("module_bytes", &self.size)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    /// Load and compile the module at `path` with the default [`Limits`].
    pub fn load(path: impl AsRef<Path>) -> Result<Sandbox, SandboxError> {
        Sandbox::load_with(path, Limits::default())
    }

    /// Load and compile the module at `path`.
    pub fn load_with(path: impl AsRef<Path>, limits: Limits) -> Result<Sandbox, SandboxError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SandboxError::ModuleMissing {
                path: path.to_owned(),
            },
            _ => SandboxError::Io {
                path: path.to_owned(),
                message: e.to_string(),
            },
        })?;
        Sandbox::from_bytes(&bytes, limits)
    }

    /// Compile a module from its binary form; refuse it if it imports anything.
    pub fn from_bytes(bytes: &[u8], limits: Limits) -> Result<Sandbox, SandboxError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        let engine = Engine::new(&config).map_err(|e| SandboxError::Runtime(e.to_string()))?;
        let module = Module::from_binary(&engine, bytes)
            .map_err(|e| SandboxError::InvalidModule(format!("{e:#}")))?;
        let imports: Vec<String> = module
            .imports()
            .map(|i| format!("{}.{}", i.module(), i.name()))
            .collect();
        if !imports.is_empty() {
            return Err(SandboxError::Imports(imports));
        }
        Ok(Sandbox {
            engine,
            module,
            limits,
            size: bytes.len(),
        })
    }

    /// The same compiled module with other limits (limits are per instance: no recompile).
    pub fn with_limits(&self, limits: Limits) -> Sandbox {
        Sandbox {
            limits,
            ..self.clone()
        }
    }

    /// The limits of every instance.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The module's size in bytes.
    pub fn module_size(&self) -> usize {
        self.size
    }

    /// A fresh instance driving a fresh machine for a trace setup's JSON.
    pub fn engine(&self, setup_json: &str) -> Result<SandboxEngine, SandboxError> {
        SandboxEngine::new(self, setup_json)
    }
}

struct HostState {
    limiter: Limiter,
}

/// The ABI's exports, type-checked once per instance.
struct Exports {
    alloc: TypedFunc<u32, u32>,
    free: TypedFunc<(u32, u32), u32>,
    new: TypedFunc<(u32, u32), i32>,
    step: TypedFunc<(u32, u64, u32, u32), u32>,
    poll_timeout: TypedFunc<u32, u32>,
    result_ptr: TypedFunc<(), u32>,
    result_len: TypedFunc<(), u32>,
}

/// One module instance driving one machine: the sandboxed twin of
/// [`AnyMachine::step_json`](livemig_core::trace::AnyMachine::step_json).
pub struct SandboxEngine {
    store: Store<HostState>,
    memory: Memory,
    exports: Exports,
    handle: u32,
    budget: u64,
    dead: bool,
    fuel_used: u64,
}

impl std::fmt::Debug for SandboxEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxEngine")
            .field("handle", &self.handle)
            .field("dead", &self.dead)
            .finish_non_exhaustive()
    }
}

/// Classify the error of a guest call.
fn classify(e: wasmtime::Error, limits: Limits) -> SandboxError {
    if let Some(hit) = e.downcast_ref::<MemoryLimitHit>() {
        return SandboxError::MemoryLimit {
            limit: hit.limit,
            desired: hit.desired,
        };
    }
    match e.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => SandboxError::OutOfFuel {
            budget: limits.fuel_per_call,
        },
        Some(t @ (Trap::MemoryOutOfBounds | Trap::TableOutOfBounds)) => {
            SandboxError::OutOfBounds(t.to_string())
        }
        Some(Trap::UnreachableCodeReached) => SandboxError::Unreachable,
        Some(t) => SandboxError::Trap(t.to_string()),
        None => SandboxError::Trap(format!("{e:#}")),
    }
}

fn export<P, R>(
    instance: &Instance,
    store: &mut Store<HostState>,
    name: &str,
) -> Result<TypedFunc<P, R>, SandboxError>
where
    P: wasmtime::WasmParams,
    R: wasmtime::WasmResults,
{
    instance
        .get_typed_func::<P, R>(&mut *store, name)
        .map_err(|e| SandboxError::Abi(format!("export `{name}`: {e:#}")))
}

impl SandboxEngine {
    /// Instantiate the sandbox's module (nothing linked) and create the machine of a trace
    /// setup's JSON in it.
    pub fn new(sandbox: &Sandbox, setup_json: &str) -> Result<SandboxEngine, SandboxError> {
        let limits = sandbox.limits;
        let state = HostState {
            limiter: Limiter {
                inner: StoreLimitsBuilder::new()
                    .memory_size(limits.memory_bytes)
                    .instances(1)
                    .memories(1)
                    .tables(1)
                    .build(),
                memory_bytes: limits.memory_bytes,
            },
        };
        let mut store = Store::new(&sandbox.engine, state);
        store.limiter(|s| &mut s.limiter);
        store
            .set_fuel(limits.fuel_per_call)
            .map_err(|e| SandboxError::Runtime(e.to_string()))?;
        let instance =
            Instance::new(&mut store, &sandbox.module, &[]).map_err(|e| classify(e, limits))?;
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| SandboxError::Abi("no exported memory `memory`".to_owned()))?;
        let version: TypedFunc<(), u32> = export(&instance, &mut store, "lm_abi_version")?;
        let found = version
            .call(&mut store, ())
            .map_err(|e| classify(e, limits))?;
        if found != ABI_VERSION {
            return Err(SandboxError::AbiVersion { found });
        }
        let exports = Exports {
            alloc: export(&instance, &mut store, "lm_alloc")?,
            free: export(&instance, &mut store, "lm_free")?,
            new: export(&instance, &mut store, "lm_new")?,
            step: export(&instance, &mut store, "lm_step")?,
            poll_timeout: export(&instance, &mut store, "lm_poll_timeout")?,
            result_ptr: export(&instance, &mut store, "lm_result_ptr")?,
            result_len: export(&instance, &mut store, "lm_result_len")?,
        };
        // lm_drop is part of the ABI (checked here) though an instance dies with its machine.
        export::<u32, u32>(&instance, &mut store, "lm_drop")?;
        let mut engine = SandboxEngine {
            store,
            memory,
            exports,
            handle: 0,
            budget: limits.fuel_per_call,
            dead: false,
            fuel_used: 0,
        };
        let handle = engine.call(|e| {
            let (ptr, len) = e.put(setup_json.as_bytes())?;
            let h = e
                .exports
                .new
                .call(&mut e.store, (ptr, len))
                .map_err(Fail::Trap)?;
            if h <= 0 {
                let message = e.result_text()?;
                e.release(ptr, len)?;
                return Err(Fail::Sandbox(SandboxError::Guest {
                    code: h.unsigned_abs(),
                    message,
                }));
            }
            e.release(ptr, len)?;
            Ok(h.unsigned_abs())
        })?;
        engine.handle = handle;
        Ok(engine)
    }

    /// Apply one input (JSON) at `now`; the canonical JSON of each action.
    pub fn step_json(&mut self, now: u64, input: &str) -> Result<Vec<String>, SandboxError> {
        self.call(|e| {
            let (ptr, len) = e.put(input.as_bytes())?;
            let status = e
                .exports
                .step
                .call(&mut e.store, (e.handle, now, ptr, len))
                .map_err(Fail::Trap)?;
            let result = e.result()?;
            e.release(ptr, len)?;
            if status != 0 {
                return Err(Fail::Sandbox(SandboxError::Guest {
                    code: status,
                    message: String::from_utf8_lossy(&result).into_owned(),
                }));
            }
            decode_frames(&result).map_err(|m| Fail::Sandbox(SandboxError::Abi(m)))
        })
    }

    /// The machine's next deadline (`Machine::poll_timeout`).
    pub fn poll_timeout(&mut self) -> Result<Option<u64>, SandboxError> {
        self.call(|e| {
            let status = e
                .exports
                .poll_timeout
                .call(&mut e.store, e.handle)
                .map_err(Fail::Trap)?;
            let result = e.result()?;
            match (status, result.len()) {
                (0, 0) => Ok(None),
                (0, 8) => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&result);
                    Ok(Some(u64::from_le_bytes(b)))
                }
                (0, n) => Err(Fail::Sandbox(SandboxError::Abi(format!(
                    "lm_poll_timeout result of {n} bytes"
                )))),
                (code, _) => Err(Fail::Sandbox(SandboxError::Guest {
                    code,
                    message: String::from_utf8_lossy(&result).into_owned(),
                })),
            }
        })
    }

    /// Fuel the last successful call used.
    pub fn fuel_used(&self) -> u64 {
        self.fuel_used
    }

    /// The instance's linear memory, in bytes.
    pub fn memory_size(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// Whether the instance has trapped (every call now answers [`SandboxError::Dead`]).
    pub fn is_dead(&self) -> bool {
        self.dead
    }

    /// Run one host call on a fresh fuel budget; a trap kills the instance.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut SandboxEngine) -> Result<T, Fail>,
    ) -> Result<T, SandboxError> {
        if self.dead {
            return Err(SandboxError::Dead);
        }
        self.store
            .set_fuel(self.budget)
            .map_err(|e| SandboxError::Runtime(e.to_string()))?;
        match f(self) {
            Ok(v) => {
                self.fuel_used = self.budget - self.store.get_fuel().unwrap_or(0);
                Ok(v)
            }
            Err(Fail::Trap(e)) => {
                self.dead = true;
                Err(classify(
                    e,
                    Limits {
                        fuel_per_call: self.budget,
                        memory_bytes: self.store.data().limiter.memory_bytes,
                    },
                ))
            }
            Err(Fail::Sandbox(e)) => {
                // A guest that broke the ABI is not trusted further.
                if matches!(e, SandboxError::Abi(_)) {
                    self.dead = true;
                }
                Err(e)
            }
        }
    }

    /// Copy `bytes` into a fresh guest buffer; its (pointer, length).
    fn put(&mut self, bytes: &[u8]) -> Result<(u32, u32), Fail> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| abi(format!("{} bytes do not fit the ABI", bytes.len())))?;
        let ptr = self
            .exports
            .alloc
            .call(&mut self.store, len)
            .map_err(Fail::Trap)?;
        if ptr == 0 {
            return Err(abi(format!("lm_alloc({len}) failed")));
        }
        self.memory
            .write(&mut self.store, ptr as usize, bytes)
            .map_err(|_| abi(format!("lm_alloc({len}) returned {ptr:#x}, out of bounds")))?;
        Ok((ptr, len))
    }

    fn release(&mut self, ptr: u32, len: u32) -> Result<(), Fail> {
        match self
            .exports
            .free
            .call(&mut self.store, (ptr, len))
            .map_err(Fail::Trap)?
        {
            0 => Ok(()),
            s => Err(abi(format!("lm_free({ptr:#x}, {len}) answered {s}"))),
        }
    }

    /// A copy of the guest's result buffer, bounds-checked.
    fn result(&mut self) -> Result<Vec<u8>, Fail> {
        let ptr = self
            .exports
            .result_ptr
            .call(&mut self.store, ())
            .map_err(Fail::Trap)? as usize;
        let len = self
            .exports
            .result_len
            .call(&mut self.store, ())
            .map_err(Fail::Trap)? as usize;
        let data = self.memory.data(&self.store);
        ptr.checked_add(len)
            .and_then(|end| data.get(ptr..end))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                abi(format!(
                    "result of {len} bytes at {ptr:#x} is outside the guest's {} bytes",
                    data.len()
                ))
            })
    }

    fn result_text(&mut self) -> Result<String, Fail> {
        Ok(String::from_utf8_lossy(&self.result()?).into_owned())
    }
}

/// How a step inside [`SandboxEngine::call`] failed.
enum Fail {
    /// A wasmtime call failed (a trap, the limiter's error): the instance is dead.
    Trap(wasmtime::Error),
    /// Anything else.
    Sandbox(SandboxError),
}

fn abi(message: String) -> Fail {
    Fail::Sandbox(SandboxError::Abi(message))
}

/// Decode action frames: `u32le count`, then per action `u32le len` + UTF-8 bytes. Every
/// count and length is checked against the bytes actually there.
pub fn decode_frames(bytes: &[u8]) -> Result<Vec<String>, String> {
    fn word(rest: &mut &[u8]) -> Result<usize, String> {
        let (w, tail) = rest
            .split_first_chunk::<4>()
            .ok_or_else(|| "truncated frame length".to_owned())?;
        *rest = tail;
        Ok(u32::from_le_bytes(*w) as usize)
    }
    let mut rest = bytes;
    let count = word(&mut rest)?;
    if count > rest.len() / 4 {
        return Err(format!(
            "{count} frames cannot fit in {} bytes",
            bytes.len()
        ));
    }
    let mut out = Vec::with_capacity(count);
    for i in 0..count {
        let n = word(&mut rest)?;
        if n > rest.len() {
            return Err(format!("frame {i} claims {n} bytes, {} remain", rest.len()));
        }
        let (frame, tail) = rest.split_at(n);
        rest = tail;
        out.push(String::from_utf8(frame.to_vec()).map_err(|_| format!("frame {i} is not UTF-8"))?);
    }
    if !rest.is_empty() {
        return Err(format!("{} bytes after the last frame", rest.len()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_checked() {
        assert_eq!(decode_frames(&[0, 0, 0, 0]), Ok(vec![]));
        assert_eq!(
            decode_frames(&[1, 0, 0, 0, 2, 0, 0, 0, b'{', b'}']),
            Ok(vec!["{}".to_owned()])
        );
        assert!(decode_frames(&[]).is_err());
        assert!(decode_frames(&[9, 0, 0, 0]).is_err());
        assert!(decode_frames(&[255, 255, 255, 255, 0, 0, 0, 0]).is_err());
        assert!(decode_frames(&[1, 0, 0, 0, 255, 255, 255, 255]).is_err());
        assert!(decode_frames(&[1, 0, 0, 0, 1, 0, 0, 0, 0xff]).is_err());
        assert!(decode_frames(&[0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn missing_module_is_typed() {
        let path = Path::new("/nonexistent/livemig.wasm");
        assert_eq!(
            Sandbox::load(path).unwrap_err(),
            SandboxError::ModuleMissing {
                path: path.to_owned()
            }
        );
        assert!(Sandbox::load(path)
            .unwrap_err()
            .to_string()
            .contains("scripts/build-wasm-abi.sh"));
    }

    #[test]
    fn garbage_is_an_invalid_module() {
        assert!(matches!(
            Sandbox::from_bytes(b"\0asm\x01\0\0\0\x07", Limits::default()),
            Err(SandboxError::InvalidModule(_))
        ));
    }

    #[test]
    fn default_path_names_the_build_output() {
        assert!(default_module_path().ends_with(MODULE_FILE));
    }
}
