//! Which Kubernetes version a component on the node runs: its running binary's `--version`,
//! else its pod's image tag, else the node's kubelet's version. For the skew warning of
//! `kdbg debug` and for `--match-node`, which builds exactly that version.

use crate::component::{Component, Launch};
use crate::layout::BIN_DIR;
use crate::node::{Node, Privilege};
use crate::session::capture::{self, Captured};
use crate::session::{procs, SessionError};
use crate::tree::KubeVersion;

/// A version found on the node, and where it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeVersion {
    pub version: KubeVersion,
    /// `the --version of its running binary (pid 1234)`, `its static pod's image tag`, ...
    pub from: String,
}

/// What `c` runs on `node`, reading it without changing anything; `None` when nothing tells.
pub fn running(node: &dyn Node, c: &'static Component) -> Result<Option<NodeVersion>, SessionError> {
    let cap = capture::capture(node, c, true)?;
    Ok(of_captured(node, &cap))
}

/// [`running`] for a component already captured.
pub(crate) fn of_captured(node: &dyn Node, cap: &Captured) -> Option<NodeVersion> {
    if let Some(pid) = cap.pid {
        if let Some(version) = binary_version(node, &format!("/proc/{pid}/exe")) {
            return Some(NodeVersion { version, from: format!("the --version of its running binary (pid {pid})") });
        }
    }
    if let Some(version) = cap.version.as_deref().and_then(known) {
        let what = match cap.component.launch {
            Launch::DaemonSet { .. } => "its DaemonSet's image tag",
            _ => "its static pod's image tag",
        };
        return Some(NodeVersion { version, from: what.into() });
    }
    if let Launch::Systemd { unit } = cap.component.launch {
        if let Some(version) = binary_version(node, &cap.argv[0]) {
            return Some(NodeVersion { version, from: format!("the --version of {} ({unit})", cap.argv[0]) });
        }
    }
    let kubelet = procs::running(node, "kubelet", BIN_DIR).ok()?.first().copied()?;
    let version = binary_version(node, &format!("/proc/{kubelet}/exe"))?;
    Some(NodeVersion { version, from: format!("the node's kubelet (pid {kubelet})") })
}

/// `Kubernetes v1.20.2` from `exe --version`; an unstamped build (`v0.0.0-...`) tells nothing.
fn binary_version(node: &dyn Node, exe: &str) -> Option<KubeVersion> {
    let out = node.exec(&[exe, "--version"], Privilege::Root, &[]).ok()?;
    if !out.success() {
        return None;
    }
    out.stdout_str().split_whitespace().find_map(known)
}

fn known(text: &str) -> Option<KubeVersion> {
    KubeVersion::parse(text).filter(|v| (v.major, v.minor, v.patch) != (0, 0, 0))
}

/// What `--match-node` builds: the one version every component asked for runs on every node.
#[derive(Debug, Clone)]
pub struct Matched {
    pub version: KubeVersion,
    pub git_ref: String,
    /// `kube-apiserver on NODE runs v1.20.1 (the --version of its running binary (pid 12))`.
    pub from: String,
    /// A `-dirty` build: what kdbg builds instead.
    pub warning: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error(transparent)]
    Session(#[from] SessionError),
    #[error("--match-node: cannot tell which version {component} on {node} runs (no running binary answers --version, no image tag, no kubelet); name it with --at vX.Y.Z")]
    Unknown { component: String, node: String },
    #[error("--match-node: {first}, but {other}; debug them in separate runs (each with --match-node), or pick one with --at")]
    Differ { first: String, other: String },
}

impl MatchError {
    /// The class of the session's failure behind this error; the rest are plain failures.
    pub fn exit_class(&self) -> crate::exit::ExitClass {
        match self {
            MatchError::Session(e) => e.exit_class(),
            _ => crate::exit::ExitClass::Failure,
        }
    }
}

/// The version `components` run on `nodes`, which must be one.
pub fn matching(nodes: &[&dyn Node], components: &[&'static Component]) -> Result<Matched, MatchError> {
    let mut first: Option<(KubeVersion, String)> = None;
    for node in nodes {
        for &c in components {
            let Some(found) = running(*node, c)? else {
                return Err(MatchError::Unknown { component: c.name.into(), node: node.describe() });
            };
            let said = format!("{} on {} runs {} ({})", c.name, node.describe(), found.version, found.from);
            match &first {
                None => first = Some((found.version, said)),
                Some((v, f)) if v.text != found.version.text => {
                    return Err(MatchError::Differ { first: f.clone(), other: said });
                }
                Some(_) => {}
            }
        }
    }
    let (version, from) = first.expect("at least one node and one component");
    let (git_ref, warning) = git_ref(&version);
    Ok(Matched { version, git_ref, from, warning })
}

/// The git ref of the source a version was built from: the commit of a `+<hash>` build
/// (`v1.35.0-alpha.1.12+0123456789abcd`), else the version's tag; a `-dirty` build names the
/// tag it was made from (the second value says so, for a warning).
pub fn git_ref(v: &KubeVersion) -> (String, Option<String>) {
    let text = v.text.as_str();
    let (clean, dirty) = match text.strip_suffix("-dirty") {
        Some(clean) => (clean, true),
        None => (text, false),
    };
    let r = match clean.split_once('+') {
        Some((_, build)) if build.len() >= 7 && build.chars().all(|c| c.is_ascii_hexdigit()) => build,
        Some((tag, _)) => tag,
        None => clean,
    };
    let why = dirty.then(|| format!("{text} was built from a modified tree; kdbg builds {r}, what it was made from"));
    (r.to_string(), why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_names_its_tag_or_its_commit() {
        let r = |t: &str| git_ref(&KubeVersion::parse(t).unwrap());
        assert_eq!(r("v1.34.2"), ("v1.34.2".into(), None));
        assert_eq!(r("v1.35.0-alpha.1.12+0123456789abcd"), ("0123456789abcd".into(), None));
        assert_eq!(r("v1.34.2-rc.1"), ("v1.34.2-rc.1".into(), None));
        let (tag, why) = r("v1.34.2-dirty");
        assert_eq!(tag, "v1.34.2");
        assert!(why.unwrap().contains("modified tree"));
        assert_eq!(r("v1.24.0-alpha.1.123+0123456789abcd-dirty").0, "0123456789abcd");
        assert!(known("v0.0.0-master+$Format:%H$").is_none());
    }
}
