//! Step identity: what a step does ([`StepKind`]) and to what ([`StepId`]: a [`Subject`], a
//! component or Delve, and the node when a plan spans several). The plan, the reporter's events, the crash-injection
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
    /// Picks the Delve that reads the built binaries and runs on the node.
    ChooseDlv,
    /// Asks the node for the sha256 of every file a copy would send: one round trip for all.
    HashNode,
    /// A file put into `/var/lib/kdbg/bin` on the node: a component's binary, or Delve.
    Copy,
    CaptureArgs,
    /// Decides where each component's Delve listens (a unix socket or a port), before any stop.
    ChooseEndpoint,
    Stop,
    Launch,
    Tunnel,
    WriteIde,
    Restore,
}

const KINDS: [StepKind; 11] = [
    StepKind::Build,
    StepKind::ChooseDlv,
    StepKind::HashNode,
    StepKind::Copy,
    StepKind::CaptureArgs,
    StepKind::ChooseEndpoint,
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
            StepKind::ChooseDlv => "choose-dlv",
            StepKind::HashNode => "hash-node",
            StepKind::Copy => "copy",
            StepKind::CaptureArgs => "capture-args",
            StepKind::ChooseEndpoint => "choose-endpoint",
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

    /// This kind of step for the component `name`.
    pub(crate) fn on(self, name: &str) -> StepId {
        StepId { kind: self, subject: Some(Subject::Component(name.to_string())), node: None }
    }

    /// This kind of step for Delve (`copy:dlv`).
    pub(crate) fn delve(self) -> StepId {
        StepId { kind: self, subject: Some(Subject::Delve), node: None }
    }

    /// This kind of step with no subject (`write-ide`).
    pub(crate) fn alone(self) -> StepId {
        StepId { kind: self, subject: None, node: None }
    }
}

/// What a step acts on: a component, or Delve (printed `dlv`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Subject {
    Component(String),
    Delve,
}

impl Subject {
    /// How step ids print it: the component's name, or `dlv`.
    pub fn name(&self) -> &str {
        match self {
            Subject::Component(name) => name,
            Subject::Delve => "dlv",
        }
    }
}

/// `build:kube-apiserver`, `copy:dlv`, `write-ide`; `@node` follows when the step is per node.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StepId {
    pub kind: StepKind,
    pub subject: Option<Subject>,
    pub node: Option<String>,
}

impl StepId {
    /// The component the step acts on, if it acts on one.
    pub fn component(&self) -> Option<&str> {
        match &self.subject {
            Some(Subject::Component(name)) => Some(name),
            _ => None,
        }
    }

    /// The step acts on Delve.
    pub fn is_delve(&self) -> bool {
        self.subject == Some(Subject::Delve)
    }

    /// The same step without its node (as a node's runner sees it).
    pub(crate) fn local(&self) -> StepId {
        StepId { node: None, ..self.clone() }
    }

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
            write!(f, ":{}", s.name())?;
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
            Some((v, "dlv")) => (v, Some(Subject::Delve)),
            Some((v, s)) => (v, Some(Subject::Component(s.to_string()))),
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
        for id in [
            StepKind::Copy.delve(),
            StepKind::WriteIde.alone(),
            StepKind::Stop.on("kubelet").at("kind-worker"),
            StepKind::ChooseEndpoint.alone().at("n2"),
        ] {
            assert_eq!(id.to_string().parse::<StepId>().unwrap(), id);
        }
        assert!(StepKind::Copy.delve().is_delve());
        assert_eq!(StepKind::Copy.delve().component(), None);
        assert_eq!("copy:kubelet".parse::<StepId>().unwrap().component(), Some("kubelet"));
        assert_eq!(StepKind::Build.on("kube-apiserver").to_string(), "build:kube-apiserver");
        assert_eq!(StepKind::Stop.on("kubelet").at("n1").to_string(), "stop:kubelet@n1");
        assert!("provision-dlv".parse::<StepId>().is_err());
    }
}
