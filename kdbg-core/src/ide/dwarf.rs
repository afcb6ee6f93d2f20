//! Reads which source paths a Go binary recorded in its DWARF line tables, per package.
//!
//! Breakpoints bind only when the debugger is given the file names exactly as the compiler
//! recorded them, and kubernetes trees record them in several ways: `-trimpath` module builds
//! record `k8s.io/kubernetes/pkg/healthz/healthz.go` (and `k8s.io/klog/v2@v2.4.0/klog.go` for
//! vendored modules); v1.20's `make` compiles through the GOPATH link and records
//! `<tree>/_output/local/go/src/k8s.io/kubernetes/pkg/...`; a plain `go build` records
//! `<tree>/pkg/...`. So nothing is guessed: every compile unit (one per Go package, named by
//! its import path) is read, and the directory holding the package's own files is found by
//! matching the import path against the recorded file names.

use std::borrow::Cow;

use camino::{Utf8Path, Utf8PathBuf};
use object::{Object, ObjectSection};
use serde::Serialize;

/// The module every kubernetes component belongs to.
pub(crate) const MAIN_MODULE: &str = "k8s.io/kubernetes";

#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    #[error("failed to read {path}: {source}")]
    Read { path: Utf8PathBuf, source: std::io::Error },
    #[error("{path} is not an executable kdbg can read: {detail}")]
    Object { path: Utf8PathBuf, detail: String },
    #[error("{path} has no DWARF debug information (release builds strip it with -ldflags '-s -w'); rebuild it with `kdbg build`")]
    NoDwarf { path: Utf8PathBuf },
    #[error("failed to read the DWARF of {path}: {detail}")]
    Dwarf { path: Utf8PathBuf, detail: String },
    #[error("{path} has no package of {module} in its DWARF; is it a kubernetes component?")]
    NoMainModule { path: Utf8PathBuf, module: String },
}

/// Where one non-standard-library package's files were recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecordedPackage {
    /// The compile unit's name: the import path as the build saw it (GOPATH builds see vendored
    /// packages as `k8s.io/kubernetes/vendor/...`).
    pub import_path: String,
    /// The package's directory relative to the tree root, as the build saw it (`pkg/healthz`,
    /// `vendor/k8s.io/klog/v2`); symlinks (staging) are not resolved here.
    pub tree_dir: String,
    /// The directory its files were recorded under, e.g. `k8s.io/klog/v2@v2.4.0`.
    pub recorded_dir: String,
    /// The names of its own files in that directory, sorted.
    pub files: Vec<String>,
}

/// What a binary's DWARF says about its sources.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedPaths {
    pub binary: Utf8PathBuf,
    /// What the tree root was recorded as: `k8s.io/kubernetes`, `/abs/tree`, or
    /// `/abs/tree/_output/local/go/src/k8s.io/kubernetes`; empty when recorded relative to it.
    pub root_prefix: String,
    /// `Some(true)` when every package of the main module was compiled with `-N -l`, read from
    /// the compile units' `DW_AT_producer` (`Go cmd/compile go1.19.8; -N -l regabi`).
    pub optimizations_disabled: Option<bool>,
    /// The compiler named by `DW_AT_producer`, e.g. `go1.19.8`.
    pub go_version: Option<String>,
    /// Every package outside the standard library, sorted by import path.
    pub packages: Vec<RecordedPackage>,
}

impl RecordedPaths {
    /// The recorded path of a file given relative to the tree root, through the root prefix.
    pub fn recorded_file(&self, tree_rel: &str) -> String {
        join(&self.root_prefix, tree_rel)
    }
}

/// Reads the DWARF of `binary`.
pub fn recorded_sources(binary: &Utf8Path) -> Result<RecordedPaths, DwarfError> {
    let data = std::fs::read(binary).map_err(|source| DwarfError::Read { path: binary.to_owned(), source })?;
    let units = read_units(binary, &data)?;
    from_units(binary, units)
}

/// One compile unit: its name, producer and the file names of its line table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unit {
    pub name: String,
    pub producer: String,
    pub files: Vec<String>,
}

fn read_units(binary: &Utf8Path, data: &[u8]) -> Result<Vec<Unit>, DwarfError> {
    let obj_err = |e: object::Error| DwarfError::Object { path: binary.to_owned(), detail: e.to_string() };
    let dwarf_err = |e: gimli::Error| DwarfError::Dwarf { path: binary.to_owned(), detail: e.to_string() };
    let file = object::File::parse(data).map_err(obj_err)?;
    if file.section_by_name(".debug_info").is_none() {
        return Err(DwarfError::NoDwarf { path: binary.to_owned() });
    }
    let endian = if file.is_little_endian() { gimli::RunTimeEndian::Little } else { gimli::RunTimeEndian::Big };
    // Only what names units and files is decompressed; locations and ranges are not needed.
    let load = |id: gimli::SectionId| -> Result<Cow<'_, [u8]>, object::Error> {
        use gimli::SectionId::*;
        if !matches!(id, DebugInfo | DebugAbbrev | DebugLine | DebugStr | DebugLineStr | DebugStrOffsets | DebugAddr) {
            return Ok(Cow::Borrowed(&[]));
        }
        match file.section_by_name(id.name()) {
            Some(section) => section.uncompressed_data(),
            None => Ok(Cow::Borrowed(&[])),
        }
    };
    let sections = gimli::DwarfSections::load(load).map_err(obj_err)?;
    let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, endian));
    let string = |unit: &gimli::Unit<_>, v| -> Result<String, gimli::Error> {
        Ok(dwarf.attr_string(unit, v)?.to_string_lossy().into_owned())
    };

    let mut units = Vec::new();
    let mut headers = dwarf.units();
    while let Some(header) = headers.next().map_err(dwarf_err)? {
        let unit = dwarf.unit(header).map_err(dwarf_err)?;
        let name = unit.name.map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut producer = String::new();
        let mut entries = unit.entries();
        if let Some((_, root)) = entries.next_dfs().map_err(dwarf_err)? {
            if let Some(v) = root.attr_value(gimli::DW_AT_producer).map_err(dwarf_err)? {
                producer = string(&unit, v).map_err(dwarf_err)?;
            }
        }
        let mut files = Vec::new();
        if let Some(program) = &unit.line_program {
            let header = program.header();
            for entry in header.file_names() {
                let name = string(&unit, entry.path_name()).map_err(dwarf_err)?;
                let dir = match entry.directory(header) {
                    Some(d) => string(&unit, d).map_err(dwarf_err)?,
                    None => String::new(),
                };
                files.push(if dir.is_empty() || dir == "." || name.starts_with('/') {
                    name
                } else {
                    join(&dir, &name)
                });
            }
        }
        units.push(Unit { name, producer, files });
    }
    Ok(units)
}

/// Derives packages, the root prefix and the optimisation flags from compile units.
pub(crate) fn from_units(binary: &Utf8Path, units: Vec<Unit>) -> Result<RecordedPaths, DwarfError> {
    let mut packages = Vec::new();
    let mut prefixes: Vec<(String, usize)> = Vec::new();
    let mut main_flags: Option<bool> = None;
    let mut go_version = None;
    for unit in &units {
        if go_version.is_none() {
            go_version = unit.producer.split(';').next().and_then(|p| p.split_whitespace().last()).map(str::to_string);
        }
        let (tree_dir, recorded_dir) = if unit.name == "main" {
            // The command's package: `cmd/<name>`, however its files were recorded.
            let Some(dir) = dirs(&unit.files).find(|d| is_cmd_dir(d)) else { continue };
            let (_, cmd) = dir.rsplit_once("cmd/").unwrap_or(("", dir));
            (format!("cmd/{cmd}"), dir.to_string())
        } else {
            let Some(tree_dir) = tree_dir(&unit.name) else { continue };
            let expected = if unit.name.starts_with(MAIN_MODULE) { tree_dir.as_str() } else { unit.name.as_str() };
            let Some(recorded_dir) = own_dir(&unit.files, expected) else { continue };
            (tree_dir, recorded_dir)
        };
        let mut files: Vec<String> = unit
            .files
            .iter()
            .filter_map(|f| f.rsplit_once('/').filter(|(d, _)| *d == recorded_dir).map(|(_, n)| n.to_string()))
            .collect();
        files.sort();
        files.dedup();
        // `main` is left out of the vote: v1.20's `-gcflags=-trimpath=$KUBE_ROOT` (no `all=`)
        // reaches only the packages named on the command line.
        let in_main = unit.name.starts_with(MAIN_MODULE) && !tree_dir.starts_with("vendor/");
        if in_main {
            let prefix = strip_dir_suffix(&recorded_dir, &tree_dir).to_string();
            match prefixes.iter_mut().find(|(p, _)| *p == prefix) {
                Some((_, n)) => *n += 1,
                None => prefixes.push((prefix, 1)),
            }
            // Since go1.10 the producer lists the compiler flags after a `;`.
            if let Some((_, flags)) = unit.producer.split_once(';') {
                let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
                main_flags = Some(main_flags.unwrap_or(true) && has("-N") && has("-l"));
            }
        }
        packages.push(RecordedPackage { import_path: unit.name.clone(), tree_dir, recorded_dir, files });
    }
    // Every package of the main module agrees in practice; the majority wins if not.
    prefixes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let Some((root_prefix, _)) = prefixes.into_iter().next() else {
        return Err(DwarfError::NoMainModule { path: binary.to_owned(), module: MAIN_MODULE.to_string() });
    };
    packages.sort_by(|a, b| a.import_path.cmp(&b.import_path));
    packages.dedup_by(|a, b| a.import_path == b.import_path);
    Ok(RecordedPaths {
        binary: binary.to_owned(),
        root_prefix,
        optimizations_disabled: main_flags,
        go_version,
        packages,
    })
}

/// Where a package lives relative to the tree root, or `None` for the standard library and `main`.
fn tree_dir(import_path: &str) -> Option<String> {
    let first = import_path.split('/').next()?;
    if !first.contains('.') {
        return None;
    }
    match import_path.strip_prefix(MAIN_MODULE) {
        Some(rest) if rest.starts_with('/') => Some(rest[1..].to_string()),
        Some(_) => None,
        None => Some(format!("vendor/{import_path}")),
    }
}

/// The directory of the package's own files among a unit's files (others come from inlining):
/// one whose path, with module `@version`s removed, ends with `expected`.
fn own_dir(files: &[String], expected: &str) -> Option<String> {
    dirs(files).find_map(|dir| {
        let plain = strip_versions(dir);
        let matches = plain == expected || plain.ends_with(&format!("/{expected}"));
        matches.then(|| dir.to_string())
    })
}

fn dirs(files: &[String]) -> impl Iterator<Item = &str> {
    files.iter().filter_map(|f| f.rsplit_once('/').map(|(dir, _)| dir))
}

/// `.../cmd/kube-apiserver` or `cmd/kube-apiserver`.
fn is_cmd_dir(dir: &str) -> bool {
    let mut rev = dir.rsplit('/');
    matches!((rev.next(), rev.next()), (Some(name), Some("cmd")) if !name.is_empty())
}

/// `k8s.io/klog/v2@v2.4.0/internal` -> `k8s.io/klog/v2/internal`.
fn strip_versions(dir: &str) -> String {
    dir.split('/').map(|c| c.split_once('@').map_or(c, |(name, _)| name)).collect::<Vec<_>>().join("/")
}

/// `recorded` minus its trailing `/suffix` (both plain directories here).
fn strip_dir_suffix<'a>(recorded: &'a str, suffix: &str) -> &'a str {
    if recorded == suffix {
        ""
    } else {
        recorded.strip_suffix(suffix).and_then(|p| p.strip_suffix('/')).unwrap_or(recorded)
    }
}

fn join(prefix: &str, rel: &str) -> String {
    match (prefix.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}/{rel}"),
    }
}

#[cfg(test)]
mod tests;
