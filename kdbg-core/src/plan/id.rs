//! Step identity: what a step does ([`StepKind`]) and to what ([`StepId`]: a component or file,
//! and the node when a plan spans several). The plan, the reporter's events, the crash-injection
//! points and `--json` output all name steps by it, so they cannot drift apart.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// One `make all` (or one replay) covers every build step of a wave; each is reported alone.
    Build,
    /// A file put into `/var/lib/kdbg/bin` on the node: a component's binary, or `dlv`.
    Copy,
    CaptureArgs,
    Stop,
    Launch,
    Tunnel,
    WriteIde,
    Restore,
}

const KINDS: [StepKind; 8] = [
    StepKind::Build,
    StepKind::Copy,
    StepKind::CaptureArgs,
    StepKind::Stop,
    StepKind::Launch,
    StepKind::Tunnel,
    StepKind::WriteIde,
    StepKind::Restore,
];

impl StepKind {
    pub(crate) fn verb(self) -> &'static str {
        match self {
            StepKind::Build => "build",
            StepKind::Copy => "copy",
            StepKind::CaptureArgs => "capture-args",
            StepKind::Stop => "stop",
            StepKind::Launch => "launch",
            StepKind::Tunnel => "tunnel",
            StepKind::WriteIde => "write-ide",
            StepKind::Restore => "restore",
        }
    }

    /// Boundaries inside a step where a kill leaves a distinct node state (crash-injection
    /// points `<id>#<boundary>`), in the order the step passes them.
    pub(crate) fn boundaries(self) -> &'static [&'static str] {
        match self {
            StepKind::Stop => &["journal", "backup", "moved"],
            StepKind::Launch => &["journal", "spawned"],
            StepKind::Restore => &["journal", "killed", "manifest"],
            _ => &[],
        }
    }

    /// This kind of step for `subject` (a component, or a file such as `dlv`).
    pub(crate) fn on(self, subject: &str) -> StepId {
        StepId { kind: self, subject: Some(subject.to_string()), node: None }
    }

    /// This kind of step with no subject (`write-ide`).
    pub(crate) fn alone(self) -> StepId {
        StepId { kind: self, subject: None, node: None }
    }
}

/// `build:kube-apiserver`, `copy:dlv`, `write-ide`; `@node` follows when the step is per node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId {
    pub kind: StepKind,
    pub subject: Option<String>,
    pub node: Option<String>,
}

impl StepId {
    /// The same step on `node`.
    pub(crate) fn at(mut self, node: &str) -> StepId {
        self.node = Some(node.to_string());
        self
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.kind.verb())?;
        if let Some(s) = &self.subject {
            write!(f, ":{s}")?;
        }
        if let Some(n) = &self.node {
            write!(f, "@{n}")?;
        }
        Ok(())
    }
}

impl Serialize for StepId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl FromStr for StepId {
    type Err = String;

    fn from_str(text: &str) -> Result<StepId, String> {
        let (rest, node) = match text.split_once('@') {
            Some((r, n)) => (r, Some(n.to_string())),
            None => (text, None),
        };
        let (verb, subject) = match rest.split_once(':') {
            Some((v, s)) => (v, Some(s.to_string())),
            None => (rest, None),
        };
        let kind = KINDS.into_iter().find(|k| k.verb() == verb).ok_or_else(|| format!("no step kind `{verb}`"))?;
        Ok(StepId { kind, subject, node })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_print_and_parse_back() {
        for id in [StepKind::Copy.on("dlv"), StepKind::WriteIde.alone(), StepKind::Stop.on("kubelet").at("kind-worker")]
        {
            assert_eq!(id.to_string().parse::<StepId>().unwrap(), id);
        }
        assert_eq!(StepKind::Build.on("kube-apiserver").to_string(), "build:kube-apiserver");
        assert_eq!(StepKind::Stop.on("kubelet").at("n1").to_string(), "stop:kubelet@n1");
        assert!("provision-dlv".parse::<StepId>().is_err());
    }
}
