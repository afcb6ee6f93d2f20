//! `--target` strings (`minikube`, `minikube://PROFILE`, `kind://CLUSTER[/NODE]`,
//! `ssh://[USER@]HOST[:PORT]`, `local`) and connecting to what they name.

use std::fmt;
use std::str::FromStr;

use camino::Utf8PathBuf;
use serde::Serialize;

use super::{kind, local, minikube, ssh, Node, NodeError};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Target {
    Minikube { profile: String },
    Kind { cluster: String, node: Option<String> },
    Ssh { user: Option<String>, host: String, port: Option<u16> },
    Local,
}

pub(crate) const FORMS: &str = "minikube | minikube://PROFILE | kind://CLUSTER[/NODE] | ssh://USER@HOST[:PORT] | local";

#[derive(Debug, thiserror::Error)]
#[error("bad target `{input}`: {problem}; use one of: {FORMS}")]
pub struct BadTarget {
    pub input: String,
    pub problem: String,
}

/// How to log in, beyond what the target string says.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// `--identity FILE`: the private key (ssh and minikube targets).
    pub identity: Option<Utf8PathBuf>,
    /// `--ssh-option OPT`, each passed as `-o OPT` before kdbg's own options.
    pub ssh_options: Vec<String>,
}

impl FromStr for Target {
    type Err = BadTarget;

    fn from_str(input: &str) -> Result<Target, BadTarget> {
        let bad = |problem: &str| BadTarget { input: input.into(), problem: problem.into() };
        let word = |s: &str| {
            !s.is_empty() && !s.starts_with('-') && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        if input == "local" {
            return Ok(Target::Local);
        }
        if input == "minikube" {
            return Ok(Target::Minikube { profile: "minikube".into() });
        }
        let Some((scheme, rest)) = input.split_once("://") else {
            return Err(bad("not one of the known forms"));
        };
        match scheme {
            "minikube" if word(rest) => Ok(Target::Minikube { profile: rest.into() }),
            "minikube" => Err(bad("bad profile name")),
            "kind" => {
                let (cluster, node) = match rest.split_once('/') {
                    Some((c, n)) => (c, Some(n)),
                    None => (rest, None),
                };
                if !word(cluster) || node.is_some_and(|n| !word(n)) {
                    return Err(bad("bad cluster or node name"));
                }
                Ok(Target::Kind { cluster: cluster.into(), node: node.map(String::from) })
            }
            "ssh" => parse_ssh(rest).ok_or_else(|| bad("expected USER@HOST[:PORT]")),
            _ => Err(bad(&format!("unknown scheme `{scheme}://`"))),
        }
    }
}

fn parse_ssh(rest: &str) -> Option<Target> {
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, rest),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok().filter(|&p| p != 0)?),
        None => None,
    };
    let ok = |s: &str| {
        !s.is_empty() && !s.starts_with('-') && !s.contains(|c: char| c.is_whitespace() || "/@'\"".contains(c))
    };
    if !ok(host) || user.is_some_and(|u| !ok(u)) {
        return None;
    }
    Some(Target::Ssh { user: user.map(String::from), host: host.into(), port })
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Minikube { profile } if profile == "minikube" => write!(f, "minikube"),
            Target::Minikube { profile } => write!(f, "minikube://{profile}"),
            Target::Kind { cluster, node: None } => write!(f, "kind://{cluster}"),
            Target::Kind { cluster, node: Some(n) } => write!(f, "kind://{cluster}/{n}"),
            Target::Ssh { user, host, port } => {
                let host = if host.contains(':') { format!("[{host}]") } else { host.clone() };
                write!(f, "ssh://{}{host}", user.as_ref().map(|u| format!("{u}@")).unwrap_or_default())?;
                port.map_or(Ok(()), |p| write!(f, ":{p}"))
            }
            Target::Local => write!(f, "local"),
        }
    }
}

impl Target {
    /// With `all_nodes`, a `kind://CLUSTER` target stands for every node container of the
    /// cluster; every other target (ssh, a named kind node, local) is one node. minikube's
    /// several-node profiles are not supported yet.
    pub fn expand(&self, all_nodes: bool) -> Result<Vec<Target>, NodeError> {
        match self {
            Target::Kind { cluster, node: None } if all_nodes => Ok(kind::cluster_nodes(cluster)?
                .into_iter()
                .map(|n| Target::Kind { cluster: cluster.clone(), node: Some(n) })
                .collect()),
            Target::Minikube { profile } if all_nodes => Err(NodeError::Unreachable {
                node: format!("minikube profile {profile}"),
                detail: "--all-nodes does not list a minikube profile's nodes yet".into(),
                fix: "name each node with --target ssh://docker@<node ip> (`minikube ip -n <node>`)".into(),
            }),
            t => Ok(vec![t.clone()]),
        }
    }

    /// The node this target reaches, however it is spelled: ssh's port 22 and a host's case,
    /// a kind cluster's control plane named or not. Two targets with one identity are one node.
    pub fn identity(&self) -> String {
        match self {
            Target::Ssh { user, host, port } => {
                format!("ssh://{}@{}:{}", user.as_deref().unwrap_or(""), host.to_lowercase(), port.unwrap_or(22))
            }
            Target::Kind { .. } => format!("kind://{}", self.node_name()),
            Target::Minikube { profile } => format!("minikube://{profile}"),
            Target::Local => "local".into(),
        }
    }

    /// How steps name this node: the kind container, `user@host[:port]`, `local`, the profile.
    pub fn node_name(&self) -> String {
        match self {
            Target::Kind { cluster, node } => node.clone().unwrap_or_else(|| format!("{cluster}-control-plane")),
            Target::Minikube { profile } => profile.clone(),
            t @ Target::Ssh { .. } => t.to_string().trim_start_matches("ssh://").to_string(),
            Target::Local => "local".into(),
        }
    }

    /// A node for this target. ssh-based nodes connect on their first command; minikube asks
    /// minikube for the node's ip and key first.
    pub fn connect(&self, options: &ConnectOptions) -> Result<Box<dyn Node>, NodeError> {
        Ok(match self {
            Target::Minikube { profile } => minikube::node(profile, options.identity.as_deref(), &options.ssh_options)?,
            Target::Kind { cluster, node } => Box::new(kind::node(cluster, node.as_deref())),
            Target::Ssh { user, host, port } => Box::new(ssh::node(ssh::SshConfig {
                user: user.clone(),
                host: host.clone(),
                port: *port,
                identity: options.identity.clone(),
                options: options.ssh_options.clone(),
            })?),
            Target::Local => Box::new(local::node()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_node_spelled_two_ways_has_one_identity() {
        let id = |s: &str| s.parse::<Target>().unwrap().identity();
        assert_eq!(id("ssh://docker@10.0.0.2"), id("ssh://docker@10.0.0.2:22"));
        assert_eq!(id("ssh://docker@Node-A"), id("ssh://docker@node-a"));
        assert_ne!(id("ssh://docker@10.0.0.2"), id("ssh://docker@10.0.0.2:2222"));
        assert_ne!(id("ssh://docker@10.0.0.2"), id("ssh://root@10.0.0.2"));
        assert_eq!(id("kind://c"), id("kind://c/c-control-plane"));
        assert_ne!(id("kind://c"), id("kind://c/c-worker"));
    }

    #[test]
    fn every_form_parses_and_prints_back() {
        for (input, target) in [
            ("minikube", Target::Minikube { profile: "minikube".into() }),
            ("minikube://dev", Target::Minikube { profile: "dev".into() }),
            ("kind://kind", Target::Kind { cluster: "kind".into(), node: None }),
            ("kind://dev/dev-worker", Target::Kind { cluster: "dev".into(), node: Some("dev-worker".into()) }),
            ("ssh://docker@10.0.0.2", Target::Ssh { user: Some("docker".into()), host: "10.0.0.2".into(), port: None }),
            (
                "ssh://root@vm.example.com:2222",
                Target::Ssh { user: Some("root".into()), host: "vm.example.com".into(), port: Some(2222) },
            ),
            ("ssh://[fd00::2]:22", Target::Ssh { user: None, host: "fd00::2".into(), port: Some(22) }),
            ("ssh://my-vm", Target::Ssh { user: None, host: "my-vm".into(), port: None }),
            ("local", Target::Local),
        ] {
            assert_eq!(input.parse::<Target>().unwrap(), target, "{input}");
            assert_eq!(target.to_string(), input);
        }
    }

    #[test]
    fn bad_targets_list_the_forms() {
        for input in [
            "",
            "minikub",
            "http://x",
            "ssh://",
            "ssh://u@h:99999",
            "ssh://-oProxyCommand=x",
            "kind://",
            "kind://a/b/c",
            "minikube://",
        ] {
            let e = input.parse::<Target>().unwrap_err().to_string();
            assert!(e.contains(FORMS) && e.contains(&format!("`{input}`")), "{input}: {e}");
        }
    }
}
