//! Choosing the Delve that can debug a given binary, before anything reaches the node.
//!
//! What a binary needs is read from its ELF, without running anything: the Go that built it
//! (the `.go.buildinfo` section) and its DWARF version (Go ≥ 1.25 writes DWARF 5, whose
//! `.debug_addr`/`.debug_rnglists`/`.debug_loclists` sections DWARF 4 binaries do not have).
//! Delve follows Go's minor releases: Delve 1.N reads binaries of Go up to 1.N, and DWARF 5 only
//! when Delve itself was built with Go ≥ 1.25. Candidates: `--dlv` (the only one when given),
//! else `dlv` on PATH, then where `go install` puts it (`$GOPATH/bin`, `~/go/bin`); of those
//! that can read the binary, the closest release wins. A Delve that cannot read it is refused
//! with the Delve to use instead.

use camino::{Utf8Path, Utf8PathBuf};
use object::{Object, ObjectSection};
use serde::Serialize;

pub(crate) use crate::binary::{go_minor, go_version_in, DWARF5_GO_MINOR};
pub use crate::binary::{needs_of, Needs};
use crate::host::Cmd;
use crate::platform::Platform;

/// What to do when a dynamically linked dlv does not start on the node.
pub(crate) const STATIC: &str = "a dlv that runs on any Linux node: `CGO_ENABLED=0 go install github.com/go-delve/delve/cmd/dlv@latest`, then --dlv ~/go/bin/dlv";

/// The install advice every "no usable dlv" error ends with.
pub(crate) const INSTALL: &str = "install Delve with the Go that builds the binaries: `go install github.com/go-delve/delve/cmd/dlv@latest` (Debian: `apt-get install delve`), or pass --dlv PATH";

/// How many Go releases before its own a Delve release still debugs: Delve 1.24.0 refuses Go 1.20
/// binaries ("minimum supported version 1.21", its `pkg/goversion/compat.go`).
const DELVE_GO_SPAN: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum DlvPickError {
    #[error("dlv was not found on PATH\n  fix: {INSTALL}")]
    Missing,
    #[error("{path} does not exist\n  fix: {INSTALL}")]
    NoFile { path: Utf8PathBuf },
    #[error("`{path} version` failed: {detail}\n  fix: {INSTALL}")]
    Broken { path: Utf8PathBuf, detail: String },
    #[error("{path} is not executable\n  fix: `chmod +x {path}`, or pass --dlv with another Delve binary")]
    NotExecutable { path: Utf8PathBuf },
    #[error("{path} is a dlv for {dlv_arch} (its ELF machine is {machine}), but {platform_of} is linux/{node_arch}\n  fix: build one for linux/{node_arch}: `GOOS=linux GOARCH={node_arch} CGO_ENABLED=0 go install github.com/go-delve/delve/cmd/dlv@latest`, then pass --dlv PATH")]
    WrongArch { path: Utf8PathBuf, dlv_arch: String, machine: String, platform_of: String, node_arch: String },
    /// The message names the binary, its Go and DWARF, the Delves tried and the Delve to use.
    #[error("{message}")]
    TooOld { binary: Utf8PathBuf, message: String },
    /// No Delve for a node of another platform: what was tried, the searched paths, the fix.
    #[error("{message}")]
    NoneForPlatform { message: String },
    #[error("failed to read {path}: {detail}")]
    Binary { path: Utf8PathBuf, detail: String },
}

/// A usable dlv, as `kdbg deploy --json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Dlv {
    pub path: Utf8PathBuf,
    /// Delve's version (`1.20.2`).
    pub version: String,
    /// The Go it was built with (`go1.19.8`), from its build info.
    pub go_version: Option<String>,
    /// Its Go architecture (`amd64`).
    pub arch: String,
    /// Dynamically linked binaries may not start on a node with another libc.
    pub dynamic: bool,
}

impl Dlv {
    /// `--listen=unix:PATH` works from Delve 1.22.1; `None` when it does, else why not (for
    /// `kdbg status`: "Delve 1.20.2 has no unix sockets").
    pub(crate) fn unix_socket_gap(&self) -> Option<String> {
        let v: Vec<u32> =
            self.version.trim().trim_start_matches('v').split('.').map_while(|p| p.parse().ok()).collect();
        let ok = v.len() >= 2 && (v[0], v[1], v.get(2).copied().unwrap_or(0)) >= UNIX_SOCKET_DELVE;
        let (a, b, c) = UNIX_SOCKET_DELVE;
        (!ok).then(|| format!("Delve {} has no unix sockets; they need Delve ≥ {a}.{b}.{c}", self.version))
    }
}

/// The first Delve release whose `--listen` takes `unix:PATH`.
const UNIX_SOCKET_DELVE: (u32, u32, u32) = (1, 22, 1);

impl Needs {
    /// From a Go version alone (before anything is built): the DWARF that Go writes by default.
    pub(crate) fn of_go(go_version: &str) -> Needs {
        let dwarf = if go_minor(go_version).is_some_and(|m| m >= DWARF5_GO_MINOR) { 5 } else { 4 };
        Needs { go_version: go_version.to_string(), dwarf }
    }

    /// "Delve 1.27–1.30 built with Go ≥ 1.25".
    pub(crate) fn requirement(&self) -> String {
        let minor = go_minor(&self.go_version).unwrap_or(0);
        match self.dwarf >= 5 {
            true => format!("Delve 1.{minor}–1.{} built with Go ≥ 1.{DWARF5_GO_MINOR}", minor + DELVE_GO_SPAN),
            false => format!("Delve 1.{minor}–1.{}", minor + DELVE_GO_SPAN),
        }
    }

    /// Why `dlv` cannot read such a binary, or `None` if it can.
    pub(crate) fn unmet_by(&self, dlv: &Dlv) -> Option<String> {
        let need = go_minor(&self.go_version)?;
        let have = delve_minor(&dlv.version)?;
        if have < need {
            return Some(format!("Delve {} reads binaries of Go up to 1.{have}", dlv.version));
        }
        if need + DELVE_GO_SPAN < have {
            return Some(format!(
                "Delve {} refuses binaries of Go older than 1.{} (it supports the Go releases up to {DELVE_GO_SPAN} before its own)",
                dlv.version,
                have - DELVE_GO_SPAN
            ));
        }
        let built = dlv.go_version.as_deref().and_then(go_minor);
        if self.dwarf >= 5 && built.is_none_or(|b| b < DWARF5_GO_MINOR) {
            let go = dlv.go_version.as_deref().unwrap_or("an unknown Go");
            return Some(format!("Delve {} was built with {go}, which cannot read DWARF 5", dlv.version));
        }
        None
    }
}

/// `--dlv PATH`, else `dlv` on PATH.
pub(crate) fn find(explicit: Option<&Utf8Path>) -> Result<Utf8PathBuf, DlvPickError> {
    match explicit {
        Some(p) if p.is_file() => {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(p).map(|m| m.permissions().mode()).unwrap_or(0);
            match mode & 0o111 {
                0 => Err(DlvPickError::NotExecutable { path: p.to_path_buf() }),
                _ => Ok(p.to_path_buf()),
            }
        }
        Some(p) => Err(DlvPickError::NoFile { path: p.to_path_buf() }),
        None => which::which("dlv").ok().and_then(|p| Utf8PathBuf::from_path_buf(p).ok()).ok_or(DlvPickError::Missing),
    }
}

/// Every dlv worth trying for a node of `platform`, `--dlv` alone when given; duplicates
/// (symlinks) once. Searched: `KDBG_DLV_<OS>_<ARCH>`; where `GOOS=<os> GOARCH=<arch> go install`
/// puts a cross build (`$GOPATH/bin/<os>_<arch>/dlv`, `~/go/bin/<os>_<arch>/dlv`); and, when the
/// platform is this machine's own, `dlv` on PATH, `$GOPATH/bin/dlv`, `~/go/bin/dlv`.
pub(crate) fn candidates(explicit: Option<&Utf8Path>, platform: &Platform) -> Result<Vec<Utf8PathBuf>, DlvPickError> {
    if explicit.is_some() {
        return find(explicit).map(|p| vec![p]);
    }
    let searched = search_paths(platform);
    let mut seen = Vec::new();
    let all: Vec<Utf8PathBuf> = searched
        .iter()
        .filter(|p| {
            p.is_file()
                && p.canonicalize_utf8().is_ok_and(|real| {
                    !seen.contains(&real) && {
                        seen.push(real);
                        true
                    }
                })
        })
        .cloned()
        .collect();
    match (all.is_empty(), *platform == host_platform()) {
        (false, _) => Ok(all),
        (true, true) => Err(DlvPickError::Missing),
        (true, false) => Err(none_for(platform, &searched, "no Delve found", "latest")),
    }
}

/// Where a Delve for `platform` is looked for, in order.
fn search_paths(platform: &Platform) -> Vec<Utf8PathBuf> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty()).map(Utf8PathBuf::from);
    let (gopath, home) = (var("GOPATH"), crate::host::home_dir());
    let mut all: Vec<Utf8PathBuf> = var(&platform.dlv_env()).into_iter().collect();
    let cross = format!("bin/{}/dlv", platform.go_install_dir());
    all.extend(gopath.as_ref().map(|g| g.join(&cross)));
    all.extend(home.as_ref().map(|h| h.join("go").join(&cross)));
    if *platform == host_platform() {
        all.extend(find(None).ok());
        all.extend(gopath.map(|g| g.join("bin/dlv")));
        all.extend(home.map(|h| h.join("go/bin/dlv")));
    }
    all
}

/// No usable Delve for a node of another platform than this machine's: the `go install` command
/// that makes one, and where kdbg looked.
fn none_for(platform: &Platform, searched: &[Utf8PathBuf], why: &str, version: &str) -> DlvPickError {
    let searched: Vec<String> = searched.iter().map(|p| p.to_string()).collect();
    let (os, arch, dir) = (&platform.os, &platform.arch, platform.go_install_dir());
    let message = format!(
        "no Delve for {platform} nodes: {why}\n  searched: {}\n  fix: build one: `GOOS={os} GOARCH={arch} \
         CGO_ENABLED=0 go install github.com/go-delve/delve/cmd/dlv@{version}` (it lands in ~/go/bin/{dir}/dlv), \
         or pass --dlv {platform}=PATH",
        searched.join(", ")
    );
    DlvPickError::NoneForPlatform { message }
}

/// The platform this machine's own binaries are for (`linux/amd64`; `darwin/arm64` on a Mac).
pub(crate) fn host_platform() -> Platform {
    Platform::new(std::env::consts::OS.replace("macos", "darwin").as_str(), &go_arch(host_architecture()))
}

/// The dlv for `binary` (see the module doc), for a node of `platform`.
pub(crate) fn choose(
    explicit: Option<&Utf8Path>,
    binary: &Utf8Path,
    platform: &Platform,
) -> Result<(Dlv, Needs), DlvPickError> {
    let needs = needs_of(binary)?;
    let mut usable = Vec::new();
    let mut tried = Vec::new();
    for path in candidates(explicit, platform)? {
        let dlv = match inspect(&path, Some(&platform.arch)) {
            Ok(d) => d,
            Err(e) if explicit.is_some() => return Err(e),
            Err(e) => {
                tried.push(format!("{path} ({e})"));
                continue;
            }
        };
        match needs.unmet_by(&dlv) {
            None => usable.push(dlv),
            Some(why) => tried.push(format!("{path} ({why})")),
        }
    }
    usable.sort_by_key(|d| delve_minor(&d.version).unwrap_or(u32::MAX));
    if let Some(d) = usable.into_iter().next() {
        return Ok((d, needs));
    }
    let minor = go_minor(&needs.go_version).unwrap_or(0);
    if *platform != host_platform() {
        return Err(none_for(platform, &search_paths(platform), &tried.join(", "), &format!("v1.{minor}")));
    }
    let tried = if tried.is_empty() { "no dlv found".into() } else { tried.join(", ") };
    let need_go = if needs.dwarf >= 5 { minor.max(DWARF5_GO_MINOR) } else { minor };
    let message = format!(
        "{binary} was built with {} (DWARF {}); {tried} cannot read it\n  fix: use {}, e.g. \
         `go install github.com/go-delve/delve/cmd/dlv@v1.{minor}` with a Go ≥ 1.{need_go}, and pass --dlv PATH",
        needs.go_version,
        needs.dwarf,
        needs.requirement()
    );
    Err(DlvPickError::TooOld { binary: binary.to_owned(), message })
}

/// Reads a dlv's ELF (format, architecture, linking, the Go it was built with) and its version:
/// `dlv version` when it runs on this machine, else the Delve module's version in its build
/// info (`go install …@vX.Y.Z` records it), else [`UNKNOWN`] — then the node tells after the copy.
pub(crate) fn inspect(path: &Utf8Path, node_arch: Option<&str>) -> Result<Dlv, DlvPickError> {
    let broken = |detail: String| DlvPickError::Broken { path: path.to_path_buf(), detail };
    // The ELF first: a dlv for another machine cannot even run `version` here.
    let bytes = std::fs::read(path).map_err(|e| broken(crate::host::io_text(&e)))?;
    let file = object::File::parse(&*bytes).map_err(|e| broken(format!("not an executable: {e}")))?;
    if file.format() != object::BinaryFormat::Elf {
        return Err(broken(format!("a {:?} binary, not a Linux (ELF) one", file.format())));
    }
    let arch = go_arch(file.architecture());
    let (want, platform_of) = match node_arch {
        Some(a) => (a.to_string(), "the node".to_string()),
        None => (go_arch(host_architecture()), "this machine".to_string()),
    };
    if arch != want {
        let machine = format!("{:?}", file.architecture());
        return Err(DlvPickError::WrongArch {
            path: path.to_path_buf(),
            dlv_arch: arch,
            machine,
            platform_of,
            node_arch: want,
        });
    }
    let dynamic = file.section_by_name(".interp").is_some_and(|s| s.size() > 0);
    let go_version = go_version_in(&file);
    let version = match Platform::new("linux", &arch) == host_platform() {
        true => {
            let out = Cmd::new(path.as_str()).arg("version").read().map_err(|e| broken(e.to_string()))?;
            version_of(&out).ok_or_else(|| broken(format!("unexpected output: {}", out.trim())))?
        }
        false => delve_module_version(&file).unwrap_or_else(|| UNKNOWN.to_string()),
    };
    Ok(Dlv { path: path.to_path_buf(), version, go_version, arch, dynamic })
}

/// A named Delve is a binary of the node's machine (read from its ELF header, before any build).
pub(crate) fn check_machine(path: &Utf8Path, platform: &Platform) -> Result<(), DlvPickError> {
    match crate::binary::elf_arch(path) {
        // The whole ELF read names the machine (it fails on the machine before running anything).
        Some(arch) if arch != platform.arch => inspect(path, Some(&platform.arch)).map(drop),
        _ => Ok(()),
    }
}

/// A Delve's version kdbg could not read here (a foreign binary without module info).
pub(crate) const UNKNOWN: &str = "unknown";

/// `Version: 1.20.2` in `dlv version`'s output.
pub(crate) fn version_of(out: &str) -> Option<String> {
    out.lines().find_map(|l| l.trim().strip_prefix("Version:")).map(|v| v.trim().to_string())
}

/// The `github.com/go-delve/delve` module's version in the build info (`v1.24.0` → `1.24.0`).
fn delve_module_version(file: &object::File<'_>) -> Option<String> {
    let info = crate::binary::mod_info(file)?;
    info.lines().find_map(|l| {
        let mut f = l.split('\t');
        match (f.next(), f.next(), f.next()) {
            (Some("mod"), Some("github.com/go-delve/delve"), Some(v)) if v.starts_with('v') => {
                Some(v.trim_start_matches('v').to_string())
            }
            _ => None,
        }
    })
}

/// `1.27.1` → 27.
fn delve_minor(version: &str) -> Option<u32> {
    go_minor(&format!("go{}", version.trim().trim_start_matches('v')))
}

/// This machine's architecture, as `object` names it.
fn host_architecture() -> object::Architecture {
    use object::Architecture as A;
    match std::env::consts::ARCH {
        "x86_64" => A::X86_64,
        "aarch64" => A::Aarch64,
        "arm" => A::Arm,
        "x86" => A::I386,
        "powerpc64" => A::PowerPc64,
        "s390x" => A::S390x,
        "riscv64" => A::Riscv64,
        _ => A::Unknown,
    }
}

fn go_arch(arch: object::Architecture) -> String {
    use object::Architecture as A;
    match arch {
        A::X86_64 => "amd64",
        A::Aarch64 => "arm64",
        A::Arm => "arm",
        A::I386 => "386",
        A::PowerPc64 => "ppc64le",
        A::S390x => "s390x",
        A::Riscv64 => "riscv64",
        other => return format!("{other:?}").to_lowercase(),
    }
    .to_string()
}

#[cfg(test)]
mod tests;
