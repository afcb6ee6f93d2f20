//! `kdbg doctor`: everything kdbg needs, on the workstation and on the target node, checked one by
//! one; each failure comes with the command that fixes it.

use std::time::Instant;

use camino::Utf8PathBuf;
use serde::Serialize;

use crate::deploy::dlv::{self, Needs};
use crate::host::{install_hint, Cmd};
use crate::layout::KDBG_DIR;
use crate::node::{Node, NodeError, Privilege};
use crate::platform::Platform;
use crate::session::{journal, traces};
use crate::toolchain::{self, GoSearch};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Ok,
    /// Works, with a caveat worth knowing.
    Warn,
    Fail,
    /// Not checked because an earlier check failed.
    Skipped,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
    pub fix: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct DoctorConfig {
    /// `--dlv [OS/ARCH=]PATH`.
    pub dlv: crate::deploy::DlvPaths,
    /// Whether the target is reached over ssh (then a missing `ssh` fails, else it warns).
    pub needs_ssh: bool,
    /// The tree, when kdbg runs in one: its `.go-version` decides the Go.
    pub tree_root: Option<Utf8PathBuf>,
    /// `--go PATH`.
    pub go: Option<Utf8PathBuf>,
}

/// Free space kdbg wants where it puts binaries: a debug kube-apiserver (~160 MB) and its temp copy.
pub(crate) const MIN_FREE_MB: u64 = 400;

impl Check {
    fn new(name: &str, status: Status, detail: impl Into<String>, fix: Option<String>) -> Check {
        Check { name: name.into(), status, detail: detail.into(), fix }
    }
    fn ok(name: &str, detail: impl Into<String>) -> Check {
        Check::new(name, Status::Ok, detail, None)
    }
    /// A failure from an error whose message ends in `\n  fix: ...`.
    fn failed(name: &str, error: &dyn std::fmt::Display) -> Check {
        let text = error.to_string();
        let (detail, fix) = match text.split_once("\n  fix: ") {
            Some((d, f)) => (d.to_string(), Some(f.to_string())),
            None => (text, None),
        };
        Check::new(name, Status::Fail, detail, fix)
    }
}

/// True when every check passed (warnings pass).
pub fn all_ok(checks: &[Check]) -> bool {
    checks.iter().all(|c| matches!(c.status, Status::Ok | Status::Warn))
}

/// go, make, git, ssh and dlv on this machine.
pub fn workstation(config: &DoctorConfig) -> Vec<Check> {
    let go = go_check(config);
    let go_version =
        (go.status != Status::Fail).then(|| go.detail.split_whitespace().next().unwrap_or_default().to_string());
    vec![
        go,
        tool("make", &["--version"], true),
        tool("git", &["--version"], false),
        tool("ssh", &["-V"], config.needs_ssh),
        dlv_check(config, go_version.as_deref()),
    ]
}

/// A tool on PATH and the first line of what `name args` says; missing, a failure when
/// `required`, else a warning.
fn tool(name: &str, args: &[&str], required: bool) -> Check {
    match Cmd::new(name).args(args.iter().copied()).output() {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(if o.stdout.is_empty() { &o.stderr } else { &o.stdout }).into_owned();
            Check::ok(name, text.lines().next().unwrap_or_default().trim())
        }
        Ok(o) => Check::new(name, Status::Fail, String::from_utf8_lossy(&o.stderr).trim(), None),
        Err(e) => {
            let fix = install_hint(name).trim_start_matches("; ").to_string();
            let status = if required { Status::Fail } else { Status::Warn };
            Check::new(
                name,
                status,
                e.to_string().split(';').next().unwrap_or_default(),
                Some(fix).filter(|f| !f.is_empty()),
            )
        }
    }
}

/// The Go that builds the tree (as a build chooses it), or, with no tree, the `go` on PATH.
fn go_check(config: &DoctorConfig) -> Check {
    let Some(root) = &config.tree_root else {
        return tool("go", &["env", "GOVERSION"], true);
    };
    match toolchain::select(root, &GoSearch::from_env(config.go.clone())) {
        Ok(t) => {
            let wanted =
                t.wanted.as_ref().map(|w| format!(", the tree's .go-version asks for go{w}")).unwrap_or_default();
            let detail = format!("{} at {}{wanted}; make runs with GOTOOLCHAIN=local", t.identity.go_version, t.go);
            match &t.warning {
                None => Check::ok("go", detail),
                Some(w) => Check::new("go", Status::Warn, detail, Some(w.clone())),
            }
        }
        Err(e) => Check::failed("go", &e),
    }
}

/// The dlv a session would install, and whether it reads the binaries of `go_version`.
fn dlv_check(config: &DoctorConfig, go_version: Option<&str>) -> Check {
    let d = match dlv::find(config.dlv.any.as_deref()).and_then(|path| dlv::inspect(&path, None)) {
        Ok(d) => d,
        Err(e) => return Check::failed("dlv", &e),
    };
    let go = d.go_version.as_deref().unwrap_or("unknown Go");
    let detail = format!("dlv {} ({go}, {}) at {}", d.version, d.arch, d.path);
    // The pairing: what binaries of this Go need, and whether this Delve has it.
    let Some(needs) = go_version.filter(|v| v.starts_with("go")).map(Needs::of_go) else {
        return Check::ok("dlv", detail);
    };
    let pair = format!("{detail}; {} binaries (DWARF {}) need {}", needs.go_version, needs.dwarf, needs.requirement());
    match needs.unmet_by(&d) {
        None => Check::ok("dlv", format!("{pair}: ok")),
        Some(why) => Check::new(
            "dlv",
            Status::Fail,
            format!("{pair}: {why}"),
            Some(format!("use {} and pass --dlv PATH", needs.requirement())),
        ),
    }
}

/// Reachability, sudo, platform, free space and zstd on the target node. `node` is the result of
/// connecting to `target`.
pub fn node(target: &str, node: Result<&dyn Node, &NodeError>, config: &DoctorConfig) -> Vec<Check> {
    let unreachable =
        |e: &dyn std::fmt::Display| vec![Check::failed("target", e), skipped("sudo", target), skipped("space", target)];
    let node = match node {
        Ok(n) => n,
        Err(e) => return unreachable(e),
    };
    let t = Instant::now();
    if let Err(e) = node.exec(&["true"], Privilege::User, &[]) {
        return unreachable(&e);
    }
    let reached = format!("{target}: reached {} in {:.1}s", node.describe(), t.elapsed().as_secs_f64());
    let mut checks = vec![Check::ok("target", reached)];
    match sudo_check(node) {
        Ok(check) => checks.push(check),
        Err(check) => {
            checks.extend([check, skipped("space", target)]);
            return checks;
        }
    }
    checks.extend([platform_check(node, config), space(node), zstd_check(node), leftovers(node, target)]);
    checks
}

/// Root commands without a password: the check, or the failed one (the rest cannot run).
fn sudo_check(node: &dyn Node) -> Result<Check, Check> {
    match node.exec(&["true"], Privilege::Root, &[]) {
        Ok(o) if o.success() => Ok(Check::ok("sudo", "root commands work without a password")),
        Ok(o) => Err(Check::new(
            "sudo",
            Status::Fail,
            o.stderr_str().trim(),
            Some("install sudo on the node, or log in as root".into()),
        )),
        Err(e) => Err(Check::failed("sudo", &e)),
    }
}

/// The node's platform → how the binaries are built for it → the Delve that runs there.
fn platform_check(node: &dyn Node, config: &DoctorConfig) -> Check {
    let (os, arch) = match node.platform() {
        Ok(p) => p,
        Err(e) => return Check::failed("platform", &e),
    };
    if os != "linux" {
        let fix = Some("pick a Linux node (kind, minikube, kubeadm)".to_string());
        return Check::new("platform", Status::Fail, format!("the node runs {os}; kdbg debugs Linux nodes"), fix);
    }
    let platform = Platform::new(&os, &arch);
    let host = Cmd::new("go").args(["env", "GOOS", "GOARCH"]).read().unwrap_or_default();
    let host = host.split_whitespace().collect::<Vec<_>>().join("/");
    let build = match host == platform.to_string() || host.is_empty() {
        true => "built natively".to_string(),
        false => format!("cross-built by this Go ({host}) with KUBE_BUILD_PLATFORMS={platform}"),
    };
    let explicit = config.dlv.for_platform(&platform);
    let picked = dlv::candidates(explicit, &platform).and_then(|all| {
        let mut last = None;
        for path in all {
            match dlv::inspect(&path, Some(&arch)) {
                Ok(d) => return Ok(d),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(dlv::DlvPickError::Missing))
    });
    match picked {
        Ok(d) => Check::ok(
            "platform",
            format!("node {platform} → binaries {build} → Delve {} ({}) at {}", d.version, d.arch, d.path),
        ),
        Err(e) => {
            let text = e.to_string();
            let (detail, fix) = text.split_once("\n  fix: ").unwrap_or((&text, ""));
            let detail = format!("node {platform} → binaries {build} → no Delve: {detail}");
            Check::new("platform", Status::Fail, detail, (!fix.is_empty()).then(|| fix.to_string()))
        }
    }
}

/// zstd on the node, for compressed, delta copies (a warning without it).
fn zstd_check(node: &dyn Node) -> Check {
    match node.sh(Privilege::User, "command -v zstd", &[]) {
        Ok(o) if o.success() => Check::ok("zstd", format!("on the node at {}", o.stdout_str().trim())),
        Ok(_) => Check::new(
            "zstd",
            Status::Warn,
            "the node has no zstd: binaries will be copied uncompressed",
            Some("install zstd on the node for compressed, delta copies".into()),
        ),
        Err(e) => Check::failed("zstd", &e),
    }
}

/// What kdbg holds or left on the node: sessions (fine), and traces no journal accounts for.
fn leftovers(node: &dyn Node, target: &str) -> Check {
    let journal = match journal::load(node) {
        Ok(j) => j,
        Err(e) => return Check::failed("leftovers", &e),
    };
    match traces::find(node, &journal, &[]) {
        Err(e) => Check::failed("leftovers", &e),
        Ok(found) if !found.is_empty() => {
            let what: Vec<String> = found.iter().map(|t| format!("{}: {}", t.component(), t.describe())).collect();
            Check::new(
                "leftovers",
                Status::Fail,
                format!("kdbg left these on the node with no journal entry: {}", what.join("; ")),
                Some(format!("`kdbg restore --target {target}` puts them back (and says what it did)")),
            )
        }
        Ok(_) if !journal.components.is_empty() => {
            let names: Vec<&str> = journal.components.keys().map(String::as_str).collect();
            Check::ok("leftovers", format!("under debug: {} (`kdbg restore` ends it)", names.join(", ")))
        }
        Ok(_) => Check::ok("leftovers", "nothing left by kdbg on the node"),
    }
}

fn skipped(name: &str, target: &str) -> Check {
    Check::new(name, Status::Skipped, format!("not checked: {target} was not usable"), None)
}

const DF: &str = r#"for d in /var/lib/kdbg /var/lib /var /; do [ -d "$d" ] && break; done
df -Pk "$d" | tail -n 1"#;

fn space(node: &dyn Node) -> Check {
    let out = match node.sh(Privilege::Root, DF, &[]) {
        Ok(o) if o.success() => o.stdout_str(),
        Ok(o) => return Check::new("space", Status::Fail, format!("df failed: {}", o.stderr_str().trim()), None),
        Err(e) => return Check::failed("space", &e),
    };
    // Filesystem 1024-blocks Used Available Capacity Mounted-on
    let avail_mb = out.split_whitespace().nth(3).and_then(|k| k.parse::<u64>().ok()).map(|k| k / 1024);
    match avail_mb {
        Some(mb) if mb >= MIN_FREE_MB => Check::ok("space", format!("{mb} MB free for {KDBG_DIR}")),
        Some(mb) => Check::new("space", Status::Fail, format!("only {mb} MB free for {KDBG_DIR}; kdbg needs about {MIN_FREE_MB} MB (a debug binary and its temp copy)"), Some(format!("free space on the node's file system holding {KDBG_DIR} (`df -h {KDBG_DIR}`)"))),
        None => Check::new("space", Status::Warn, format!("cannot read df's output: {}", out.trim()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_split_into_detail_and_fix() {
        let e = NodeError::SudoDenied { node: "docker@10.0.0.2".into() };
        let c = Check::failed("sudo", &e);
        assert_eq!(c.status, Status::Fail);
        assert!(c.detail.contains("docker@10.0.0.2"), "{}", c.detail);
        assert!(c.fix.unwrap().starts_with("give the user passwordless sudo"));
        assert!(!all_ok(&[Check::ok("go", "go1.19"), Check::failed("sudo", &e)]));
        assert!(all_ok(&[Check::ok("go", "go1.19"), Check::new("zstd", Status::Warn, "", None)]));
    }
}
