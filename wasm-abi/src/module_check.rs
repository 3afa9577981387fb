//! A dependency-free reader of a WebAssembly module's import and export sections: enough to
//! prove that the built artifact imports nothing and exports the whole ABI
//! (`examples/check_module.rs`, run by `scripts/build-wasm-abi.sh`). Every length in the
//! binary is bounds-checked; a malformed module is an error, never a panic.

use crate::EXPORTS;

/// What a module imports and exports (names only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModuleInfo {
    /// `(module, field)` of every import.
    pub imports: Vec<(String, String)>,
    /// `(name, kind)` of every export; kind 0 = function, 1 = table, 2 = memory, 3 = global,
    /// 4 = tag.
    pub exports: Vec<(String, u8)>,
}

impl ModuleInfo {
    /// ABI exports ([`EXPORTS`]) the module lacks.
    pub fn missing_exports(&self) -> Vec<&'static str> {
        EXPORTS
            .iter()
            .copied()
            .filter(|want| {
                let kind = if *want == "memory" { 2 } else { 0 };
                !self.exports.iter().any(|(n, k)| n == want && *k == kind)
            })
            .collect()
    }
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| format!("truncated at byte {}", self.pos))?;
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    /// An unsigned LEB128 of at most 32 bits.
    fn u32(&mut self) -> Result<u32, String> {
        let mut value: u64 = 0;
        for i in 0..5 {
            let b = self.byte()?;
            value |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return u32::try_from(value).map_err(|_| "LEB128 above u32".to_owned());
            }
        }
        Err("LEB128 longer than 5 bytes".to_owned())
    }

    /// An unsigned LEB128 of at most 64 bits (memory64 limits); the value is discarded.
    fn skip_u64(&mut self) -> Result<(), String> {
        for _ in 0..10 {
            if self.byte()? & 0x80 == 0 {
                return Ok(());
            }
        }
        Err("LEB128 longer than 10 bytes".to_owned())
    }

    fn usize(&mut self) -> Result<usize, String> {
        usize::try_from(self.u32()?).map_err(|e| e.to_string())
    }

    fn name(&mut self) -> Result<String, String> {
        let n = self.usize()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "name is not UTF-8".to_owned())
    }

    fn limits(&mut self) -> Result<(), String> {
        let flags = self.byte()?;
        self.skip_u64()?;
        if flags & 1 != 0 {
            self.skip_u64()?;
        }
        Ok(())
    }
}

/// Read a module's imports and exports.
pub fn inspect(bytes: &[u8]) -> Result<ModuleInfo, String> {
    let mut r = Reader { bytes, pos: 0 };
    if r.take(4)? != b"\0asm" {
        return Err("not a WebAssembly module (bad magic)".to_owned());
    }
    if r.take(4)? != [1, 0, 0, 0] {
        return Err("not a core module of version 1".to_owned());
    }
    let mut info = ModuleInfo::default();
    while r.pos < bytes.len() {
        let id = r.byte()?;
        let size = r.usize()?;
        let mut s = Reader {
            bytes: r.take(size)?,
            pos: 0,
        };
        match id {
            2 => {
                for _ in 0..s.u32()? {
                    let module = s.name()?;
                    let field = s.name()?;
                    match s.byte()? {
                        // function: type index
                        0 => {
                            s.u32()?;
                        }
                        // table: reftype, limits
                        1 => {
                            s.byte()?;
                            s.limits()?;
                        }
                        // memory: limits
                        2 => s.limits()?,
                        // global: valtype, mutability
                        3 => {
                            s.take(2)?;
                        }
                        // tag: attribute, type index
                        4 => {
                            s.byte()?;
                            s.u32()?;
                        }
                        k => return Err(format!("import {module}.{field}: unknown kind {k}")),
                    }
                    info.imports.push((module, field));
                }
            }
            7 => {
                for _ in 0..s.u32()? {
                    let name = s.name()?;
                    let kind = s.byte()?;
                    s.u32()?;
                    info.exports.push((name, kind));
                }
            }
            _ => {}
        }
    }
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A section: id, LEB size, contents.
    fn section(id: u8, contents: &[u8]) -> Vec<u8> {
        let mut v = vec![id, contents.len() as u8];
        v.extend_from_slice(contents);
        v
    }

    fn module(sections: &[Vec<u8>]) -> Vec<u8> {
        let mut v = b"\0asm\x01\0\0\0".to_vec();
        for s in sections {
            v.extend_from_slice(s);
        }
        v
    }

    #[test]
    fn reads_imports_and_exports() {
        // (import "env" "f" (func (type 0))) (import "m" "mem" (memory 1 2))
        let imports = section(
            2,
            &[
                2, 3, b'e', b'n', b'v', 1, b'f', 0, 0, 1, b'm', 3, b'm', b'e', b'm', 2, 1, 1, 2,
            ],
        );
        // (export "memory" (memory 0)) (export "lm_alloc" (func 3))
        let mut exports = vec![2, 6];
        exports.extend_from_slice(b"memory");
        exports.extend_from_slice(&[2, 0, 8]);
        exports.extend_from_slice(b"lm_alloc");
        exports.extend_from_slice(&[0, 3]);
        let custom = section(0, &[1, b'x', 9, 9]);
        let info = inspect(&module(&[custom, imports, section(7, &exports)])).unwrap();
        assert_eq!(
            info.imports,
            [("env".into(), "f".into()), ("m".into(), "mem".into())]
        );
        assert_eq!(info.exports, [("memory".into(), 2), ("lm_alloc".into(), 0)]);
        let missing = info.missing_exports();
        assert!(!missing.contains(&"memory") && !missing.contains(&"lm_alloc"));
        assert!(missing.contains(&"lm_step"));
    }

    #[test]
    fn malformed_modules_are_errors() {
        assert!(inspect(b"").is_err());
        assert!(inspect(b"\0asm\x02\0\0\0").is_err());
        assert!(inspect(b"\0ELF\x01\0\0\0").is_err());
        // A section claiming more bytes than there are.
        assert!(inspect(&module(&[vec![7, 100, 1]])).is_err());
        // A name running past its section.
        assert!(inspect(&module(&[section(7, &[1, 50, b'a'])])).is_err());
        // A LEB128 that never ends.
        assert!(inspect(&module(&[section(2, &[0xff; 8])])).is_err());
        assert_eq!(inspect(&module(&[])).unwrap(), ModuleInfo::default());
    }
}
