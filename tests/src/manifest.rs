//! Static pod manifests as the runner understands them, and the runner's state
//! file (`pods.json`) that tests read.
//!
//! Only what a process needs is read: `metadata.name` and the first container's
//! `command`, `args`, `env` (name/value) and `workingDir`. YAML and JSON both
//! parse (JSON is YAML). Like the kubelet, the runner takes every non-hidden
//! regular file of the directory, whatever its extension, and rejects a second
//! pod with a name an earlier file (in name order) already uses.

use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Manifest {
    kind: Option<String>,
    metadata: Metadata,
    spec: Spec,
}

#[derive(Deserialize)]
struct Metadata {
    name: String,
    namespace: Option<String>,
}

#[derive(Deserialize)]
struct Spec {
    #[serde(default)]
    containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    command: Vec<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: Vec<EnvVar>,
    #[serde(rename = "workingDir")]
    working_dir: Option<String>,
}

#[derive(Deserialize)]
struct EnvVar {
    name: String,
    #[serde(default)]
    value: String,
}

/// What the runner starts for one manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PodSpec {
    pub name: String,
    /// `metadata.namespace` (`default` if unset); pods are told apart by
    /// name and namespace, as by the kubelet.
    pub namespace: String,
    /// `command` followed by `args` of the first container.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
}

/// Parses a manifest; the error says what is wrong with it.
pub fn parse(bytes: &[u8]) -> Result<PodSpec, String> {
    let manifest: Manifest = serde_yaml_ng::from_slice(bytes).map_err(|e| e.to_string())?;
    if let Some(kind) = manifest.kind.as_deref().filter(|k| *k != "Pod") {
        return Err(format!("kind is {kind:?}, not \"Pod\""));
    }
    let name = manifest.metadata.name;
    if name.is_empty() || name.contains('/') {
        return Err(format!("bad metadata.name {name:?}"));
    }
    let container = manifest.spec.containers.into_iter().next().ok_or("spec.containers is empty")?;
    let argv: Vec<String> = container.command.into_iter().chain(container.args).collect();
    if argv.is_empty() {
        return Err("the first container has no command (the runner has no images)".into());
    }
    Ok(PodSpec {
        name,
        namespace: manifest.metadata.namespace.unwrap_or_else(|| "default".to_owned()),
        argv,
        env: container.env.into_iter().map(|e| (e.name, e.value)).collect(),
        working_dir: container.working_dir,
    })
}

/// A pod's state in `pods.json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PodState {
    /// Its process runs (`pid`).
    Running,
    /// Waiting to be (re)started: backoff after an exit, or its name is still
    /// held by a terminating pod.
    Waiting,
    /// Stopped (manifest gone or changed), process not yet exited.
    Terminating,
    /// The manifest cannot be run (`error` says why); nothing runs.
    Invalid,
}

/// One entry of `pods.json`. Pids are pids of the node's pid namespace.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PodStatus {
    /// `metadata.name`, or the file name for an unparsable manifest.
    pub name: String,
    /// The manifest's path on the node.
    pub manifest: String,
    pub state: PodState,
    pub pid: Option<u32>,
    /// How many times the process was started again after exiting.
    pub restarts: u32,
    pub argv: Vec<String>,
    /// How the previous process ended (`exit status: 1`, `signal: 9 (SIGKILL)`).
    pub last_exit: Option<String>,
    pub error: Option<String>,
    /// When the current process started (ms since the epoch).
    pub started_ms: Option<u64>,
}

/// The whole of `pods.json`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct PodsFile {
    pub runner_pid: u32,
    pub updated_ms: u64,
    pub pods: Vec<PodStatus>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_command_args_env() {
        let spec = parse(
            b"apiVersion: v1\nkind: Pod\nmetadata:\n  name: kube-apiserver\n  namespace: kube-system\n\
              spec:\n  containers:\n  - name: a\n    image: x\n    command:\n    - kube-apiserver\n    \
              - --a=1\n    args: [--b=2]\n    env:\n    - name: X\n      value: y\n",
        )
        .unwrap();
        assert_eq!(spec.name, "kube-apiserver");
        assert_eq!(spec.argv, ["kube-apiserver", "--a=1", "--b=2"]);
        assert_eq!(spec.env, [("X".to_owned(), "y".to_owned())]);
    }

    #[test]
    fn json_and_errors() {
        let json = br#"{"kind":"Pod","metadata":{"name":"p"},"spec":{"containers":[{"command":["sleep","1"]}]}}"#;
        assert_eq!(parse(json).unwrap().argv, ["sleep", "1"]);
        assert!(parse(b"{{{").is_err());
        assert!(parse(b"").is_err());
        assert!(parse(b"kind: Pod\nmetadata: {name: p}\nspec: {containers: []}").is_err());
        assert!(parse(b"kind: Deployment\nmetadata: {name: p}\nspec: {containers: [{command: [x]}]}").is_err());
    }
}
