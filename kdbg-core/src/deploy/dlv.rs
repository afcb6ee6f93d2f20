//! Finding the workstation's Delve and checking it can debug what kdbg builds, on the node.
//!
//! Checks: it runs (`dlv version`); its architecture is the node's (read from its ELF header);
//! it can read the binaries' DWARF: Go 1.25 writes DWARF 5 by default, which only a dlv built with
//! Go ≥ 1.25 understands, so a dlv whose own Go (`go version DLV`) is older is refused.

use camino::{Utf8Path, Utf8PathBuf};
use object::{Object, ObjectSection};
use serde::Serialize;

use crate::host::{Cmd, HostError};

/// What to do when a dynamically linked dlv does not start on the node.
pub const STATIC: &str = "a dlv that runs on any Linux node: `CGO_ENABLED=0 go install github.com/go-delve/delve/cmd/dlv@latest`, then --dlv ~/go/bin/dlv";

/// The install advice every "no usable dlv" error ends with.
pub const INSTALL: &str = "install Delve with the Go that builds the binaries: `go install github.com/go-delve/delve/cmd/dlv@latest` (Debian: `apt-get install delve`), or pass --dlv PATH";

#[derive(Debug, thiserror::Error)]
pub enum DlvError {
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
    #[error("{path} was built with {dlv_go}, but the binaries are built with {build_go}, which writes DWARF 5: that dlv cannot read them\n  fix: {INSTALL}")]
    TooOld { path: Utf8PathBuf, dlv_go: String, build_go: String },
}

/// A usable dlv, as `kdbg deploy --json` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Dlv {
    pub path: Utf8PathBuf,
    /// Delve's version (`1.20.2`).
    pub version: String,
    /// The Go it was built with (`go1.19.8`), if `go version` could tell.
    pub go_version: Option<String>,
    /// Its Go architecture (`amd64`).
    pub arch: String,
    /// Dynamically linked binaries may not start on a node with another libc.
    pub dynamic: bool,
}

/// `--dlv PATH`, else `dlv` on PATH.
pub fn find(explicit: Option<&Utf8Path>) -> Result<Utf8PathBuf, DlvError> {
    match explicit {
        Some(p) if p.is_file() => {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(p).map(|m| m.permissions().mode()).unwrap_or(0);
            match mode & 0o111 {
                0 => Err(DlvError::NotExecutable { path: p.to_path_buf() }),
                _ => Ok(p.to_path_buf()),
            }
        }
        Some(p) => Err(DlvError::NoFile { path: p.to_path_buf() }),
        None => which::which("dlv").ok().and_then(|p| Utf8PathBuf::from_path_buf(p).ok()).ok_or(DlvError::Missing),
    }
}

/// Runs the checks in the module doc; `build_go` is `go env GOVERSION` (`go1.19.8`). Returns the
/// dlv and warnings worth showing (built with an older Go than the binaries).
pub fn inspect(path: &Utf8Path, build_go: &str, node_arch: Option<&str>) -> Result<(Dlv, Vec<String>), DlvError> {
    let broken = |detail: String| DlvError::Broken { path: path.to_path_buf(), detail };
    // The ELF first: a dlv for another machine cannot even run `version` here.
    let bytes = std::fs::read(path).map_err(|e| broken(crate::host::io_text(&e)))?;
    let file = object::File::parse(&*bytes).map_err(|e| broken(format!("not an executable: {e}")))?;
    let arch = go_arch(file.architecture());
    let (want, platform_of) = match node_arch {
        Some(a) => (a.to_string(), "the node".to_string()),
        None => (go_arch(host_architecture()), "this machine".to_string()),
    };
    if arch != want {
        let machine = format!("{:?}", file.architecture());
        return Err(DlvError::WrongArch {
            path: path.to_path_buf(),
            dlv_arch: arch,
            machine,
            platform_of,
            node_arch: want,
        });
    }
    let dynamic = file.section_by_name(".interp").is_some_and(|s| s.size() > 0);
    let out = Cmd::new(path.as_str()).arg("version").read().map_err(|e| broken(e.to_string()))?;
    let version = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Version:"))
        .map(|v| v.trim().to_string())
        .ok_or_else(|| broken(format!("unexpected output: {}", out.trim())))?;
    let go_version = go_version_of(path).ok();
    let dlv = Dlv { path: path.to_path_buf(), version, go_version, arch, dynamic };
    let mut warnings = Vec::new();
    match (dlv.go_version.as_deref().and_then(go_minor), go_minor(build_go)) {
        (Some(d), Some(b)) if b >= 25 && d < 25 => {
            return Err(DlvError::TooOld { path: path.to_path_buf(), dlv_go: dlv.go_version.unwrap_or_default(), build_go: build_go.into() });
        }
        (Some(d), Some(b)) if d < b => warnings.push(format!(
            "{path} (dlv {}) was built with {}, older than the {build_go} that builds the binaries; if it cannot read them, {INSTALL}",
            dlv.version,
            dlv.go_version.as_deref().unwrap_or("?")
        )),
        _ => {}
    }
    Ok((dlv, warnings))
}

/// `go version FILE` → `go1.19.8`.
fn go_version_of(path: &Utf8Path) -> Result<String, HostError> {
    let out = Cmd::new("go").args(["version", path.as_str()]).read()?;
    Ok(out.rsplit(": ").next().unwrap_or_default().trim().to_string())
}

/// `go1.25.1` → 25 (for Go 1.x).
pub fn go_minor(version: &str) -> Option<u32> {
    let rest = version.trim().strip_prefix("go1.")?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
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
mod tests {
    use super::*;

    #[test]
    fn go_minor_versions() {
        assert_eq!(go_minor("go1.19.8"), Some(19));
        assert_eq!(go_minor("go1.25rc1"), Some(25));
        assert_eq!(go_minor("devel go1.26-abc"), None);
    }

    #[test]
    fn missing_and_wrong_dlvs_say_how_to_install() {
        let e = find(Some(Utf8Path::new("/nonexistent/dlv"))).unwrap_err().to_string();
        assert!(
            e.contains("/nonexistent/dlv does not exist")
                && e.contains("go install github.com/go-delve/delve/cmd/dlv@latest"),
            "{e}"
        );
        // `sh` is an executable, but not a dlv.
        let sh = find(Some(Utf8Path::new("/bin/sh"))).unwrap();
        let e = inspect(&sh, "go1.19.8", None).unwrap_err().to_string();
        assert!(e.starts_with("`/bin/sh version` failed") || e.contains("unexpected output"), "{e}");
    }
}
