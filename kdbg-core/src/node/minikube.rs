//! The minikube transport: find the node the way minikube does (`minikube ip -p P`,
//! `minikube ssh-key -p P`, user `docker`) and use the ssh transport; where the node's ip is not
//! reachable (docker driver on macOS), fall back to `minikube ssh` and `minikube cp`.
//!
//! Host keys: minikube itself logs in with `StrictHostKeyChecking=no` and
//! `UserKnownHostsFile=/dev/null`, because every `minikube start` after a delete makes a new VM
//! key; kdbg does the same for minikube targets only (options you pass come first and win).
//! Not exercised by the integration tests (no VM or docker engine there): the discovery and
//! fallback command lines are checked as data below.

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};

use super::errors::Fixes;
use super::shell::{ShellNode, Transport};
use super::ssh::{SshConfig, SshTransport};
use super::{sh_join, Endpoint, Node, NodeError, Privilege, Tunnel};
use crate::host::{Cmd, HostError};

/// The two questions kdbg asks minikube about a profile.
pub(crate) fn discovery(profile: &str) -> [Cmd; 2] {
    [Cmd::new("minikube").args(["ip", "-p", profile]), Cmd::new("minikube").args(["ssh-key", "-p", profile])]
}

/// The ssh login for a profile whose node is at `ip` with key `key`.
pub(crate) fn ssh_config(ip: &str, key: Utf8PathBuf, identity: Option<&Utf8Path>, options: &[String]) -> SshConfig {
    let mut options = options.to_vec();
    options.extend(["StrictHostKeyChecking=no".into(), "UserKnownHostsFile=/dev/null".into()]);
    SshConfig {
        user: Some("docker".into()),
        host: ip.into(),
        port: None,
        identity: Some(identity.map_or(key, Utf8Path::to_path_buf)),
        options,
    }
}

fn fixes(profile: &str) -> Fixes {
    Fixes {
        unreachable: format!("check the cluster with `minikube status -p {profile}` (start it with `minikube start -p {profile}`)"),
        auth: format!("minikube's key did not log in; compare `minikube ssh-key -p {profile}` with --identity, or recreate the profile"),
        host_key: String::new(),
    }
}

/// Connects to a profile's node.
pub(crate) fn node(profile: &str, identity: Option<&Utf8Path>, options: &[String]) -> Result<Box<dyn Node>, NodeError> {
    let name = format!("minikube profile {profile}");
    let [ip_cmd, key_cmd] = discovery(profile);
    let ask = |cmd: &Cmd| {
        cmd.read().map(|s| s.trim().to_string()).map_err(|e| NodeError::Unreachable {
            node: name.clone(),
            fix: match e {
                HostError::NotFound { .. } => "install minikube (https://minikube.sigs.k8s.io/docs/start/), or name your cluster with --target kind://CLUSTER, ssh://USER@HOST or local".into(),
                _ => fixes(profile).unreachable,
            },
            detail: e.to_string(),
        })
    };
    let ip = ask(&ip_cmd)?;
    let key = Utf8PathBuf::from(ask(&key_cmd)?);
    let reachable = ip
        .parse()
        .ok()
        .map(|ip| SocketAddr::new(ip, 22))
        .is_some_and(|a| TcpStream::connect_timeout(&a, Duration::from_secs(3)).is_ok());
    if reachable {
        let config = ssh_config(&ip, key, identity, options);
        let transport = SshTransport::new(config, format!("{name} (docker@{ip})"), fixes(profile))?;
        return Ok(Box::new(ShellNode::new(transport)));
    }
    Ok(Box::new(ShellNode::new(MinikubeSsh { profile: profile.into() })))
}

/// The fallback: every command through `minikube ssh` (system ssh client, so stdin is forwarded),
/// files through `minikube cp` (uncompressed, then checked and renamed on the node).
pub(crate) struct MinikubeSsh {
    pub profile: String,
}

impl Transport for MinikubeSsh {
    fn describe(&self) -> String {
        format!("minikube profile {} (via `minikube ssh`)", self.profile)
    }

    fn command(&self, argv: &[&str], privilege: Privilege) -> Cmd {
        let mut words = Vec::new();
        if privilege == Privilege::Root {
            words.extend(["sudo", "-n", "--"]);
        }
        words.extend_from_slice(argv);
        Cmd::new("minikube").args(["ssh", "-p", self.profile.as_str(), "--native-ssh=false", "--"]).arg(sh_join(&words))
    }

    fn upload(&self, local: &Utf8Path, tmp: &str) -> Option<Cmd> {
        Some(Cmd::new("minikube").args(["cp", "-p", self.profile.as_str(), local.as_str(), tmp]))
    }

    fn fixes(&self) -> Fixes {
        fixes(&self.profile)
    }

    fn forward(&self, _local: u16, to: &Endpoint) -> Result<Box<dyn Tunnel>, NodeError> {
        Err(NodeError::Unreachable {
            node: self.describe(),
            detail: format!("{to} cannot be forwarded: the node's ip is not reachable from here"),
            fix: format!(
                "run `minikube tunnel -p {}` or use a driver whose ip is reachable (e.g. --driver=kvm2 or hyperkit)",
                self.profile
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_and_login_are_minikubes() {
        let [ip, key] = discovery("dev");
        assert_eq!((ip.display().as_str(), key.display().as_str()), ("minikube ip -p dev", "minikube ssh-key -p dev"));
        let c = ssh_config(
            "192.168.49.2",
            "/home/u/.minikube/machines/dev/id_rsa".into(),
            None,
            &["Ciphers=aes128-ctr".into()],
        );
        assert_eq!(c.destination(), "docker@192.168.49.2");
        assert_eq!(c.identity.as_deref(), Some(Utf8Path::new("/home/u/.minikube/machines/dev/id_rsa")));
        assert_eq!(c.options, ["Ciphers=aes128-ctr", "StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"]);
        let own = ssh_config("192.168.49.2", "/k".into(), Some(Utf8Path::new("/mine")), &[]);
        assert_eq!(own.identity.as_deref(), Some(Utf8Path::new("/mine")));
    }

    #[test]
    fn fallback_runs_through_minikube_ssh_and_cp() {
        let m = MinikubeSsh { profile: "dev".into() };
        assert_eq!(
            m.command(&["cat", "/etc/kubernetes/manifests/kube-apiserver.yaml"], Privilege::Root).display(),
            "minikube ssh -p dev --native-ssh=false -- 'sudo -n -- cat /etc/kubernetes/manifests/kube-apiserver.yaml'"
        );
        let up =
            m.upload(Utf8Path::new("/src/_output/bin/kube-apiserver"), "/var/lib/kdbg/bin/kube-apiserver.kdbg-upload");
        assert_eq!(
            up.unwrap().display(),
            "minikube cp -p dev /src/_output/bin/kube-apiserver /var/lib/kdbg/bin/kube-apiserver.kdbg-upload"
        );
    }
}
