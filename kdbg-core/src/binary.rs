//! What a built Go binary needs of its debugger, read from its ELF without running it: the Go
//! that built it (`.go.buildinfo`) and its DWARF version.
//!
//! Go ≥ 1.25 writes DWARF 5, whose `.debug_addr`/`.debug_rnglists`/`.debug_loclists` sections
//! DWARF 4 binaries do not have. Before Go 1.25, DWARF 5 sections in a Go binary come from cgo's C
//! objects (gcc ≥ 11 writes DWARF 5), which every Delve reads: only Go's own DWARF decides.

use camino::Utf8Path;
use object::{Object, ObjectSection};
use serde::{Deserialize, Serialize};

use crate::deploy::DlvPickError;

/// The first Go release whose binaries carry DWARF 5 by default.
pub(crate) const DWARF5_GO_MINOR: u32 = 25;

/// What a binary needs of its debugger, read from its ELF.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Needs {
    /// `go1.27.3`.
    pub go_version: String,
    /// 4 or 5; 0 when the binary has no DWARF.
    pub dwarf: u16,
}

/// Reads `binary`'s Go version (build info) and DWARF version (see the module doc).
pub fn needs_of(binary: &Utf8Path) -> Result<Needs, DlvPickError> {
    let err = |detail: String| DlvPickError::Binary { path: binary.to_owned(), detail };
    let bytes = std::fs::read(binary).map_err(|e| err(e.to_string()))?;
    let file = object::File::parse(&*bytes).map_err(|e| err(format!("not an executable: {e}")))?;
    let go_version = go_version_in(&file).ok_or_else(|| err("no Go build info (.go.buildinfo)".into()))?;
    let has = |name: &str| file.section_by_name(name).is_some();
    let go_dwarf5 = go_minor(&go_version).is_some_and(|m| m >= DWARF5_GO_MINOR);
    let dwarf = match (has(".debug_info"), has(".debug_addr") || has(".debug_rnglists") || has(".debug_loclists")) {
        (false, _) => 0,
        (true, true) if go_dwarf5 => 5,
        (true, _) => 4,
    };
    Ok(Needs { go_version, dwarf })
}

/// `.go.buildinfo` of Go ≥ 1.18: a 32-byte header, then the version as a varint-prefixed string.
pub(crate) fn go_version_in(file: &object::File<'_>) -> Option<String> {
    buildinfo_strings(file)?.into_iter().next()
}

/// The module information after the version (`path …`, `mod …`, `dep …`, `build …` lines).
pub(crate) fn mod_info(file: &object::File<'_>) -> Option<String> {
    buildinfo_strings(file)?.into_iter().nth(1)
}

/// The varint-prefixed strings of `.go.buildinfo` (Go ≥ 1.18 inline format): version, modinfo.
fn buildinfo_strings(file: &object::File<'_>) -> Option<Vec<String>> {
    let data = file.section_by_name(".go.buildinfo")?.data().ok()?;
    if !data.starts_with(b"\xff Go buildinf:") || data.get(15)? & 2 == 0 {
        return None;
    }
    let mut at = 32;
    let mut out = Vec::new();
    for _ in 0..2 {
        let (mut len, mut shift) = (0usize, 0);
        loop {
            let b = *data.get(at)?;
            len |= usize::from(b & 0x7f) << shift;
            at += 1;
            if b & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        out.push(String::from_utf8_lossy(data.get(at..at + len)?).into_owned());
        at += len;
    }
    Some(out)
}

/// `go1.25.1` → 25 (for Go 1.x).
pub(crate) fn go_minor(version: &str) -> Option<u32> {
    let rest = version.trim().strip_prefix("go1.")?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
}

/// The Go architecture of an ELF file (`amd64`, `arm64`, …) from its header alone; `None` for a
/// file that is not ELF or not readable.
pub(crate) fn elf_arch(path: &Utf8Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 20];
    std::fs::File::open(path).ok()?.read_exact(&mut head).ok()?;
    if &head[..4] != b"\x7fELF" {
        return None;
    }
    let machine = u16::from_le_bytes([head[18], head[19]]);
    let arch = match machine {
        0x3e => "amd64",
        0xb7 => "arm64",
        0x28 => "arm",
        0x03 => "386",
        0x15 => "ppc64le",
        0x16 => "s390x",
        0xf3 => "riscv64",
        _ => return Some(format!("elf-machine-{machine:#x}")),
    };
    Some(arch.to_string())
}
