//! Static pod manifests: the component's `command` + `args` + `env`, as the kubelet would run them.

use serde::Deserialize;

#[derive(Deserialize)]
struct Pod {
    kind: Option<String>,
    spec: PodSpec,
}

#[derive(Deserialize)]
struct PodSpec {
    #[serde(default)]
    containers: Vec<Container>,
}

#[derive(Deserialize)]
struct Container {
    #[serde(default)]
    name: String,
    #[serde(default)]
    image: Option<String>,
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
    value: Option<String>,
}

/// What a static pod runs, read from its manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PodCommand {
    /// `command` followed by `args`, with `$(VAR)` references expanded as the kubelet does.
    pub argv: Vec<String>,
    /// `env` entries with a literal `value` (`valueFrom` needs the API server; left out).
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// `image`, e.g. `registry.k8s.io/kube-apiserver:v1.20.2`.
    pub image: Option<String>,
}

impl PodCommand {
    /// The image's tag when it looks like a Kubernetes version (`v1.20.2`).
    pub(crate) fn image_version(&self) -> Option<&str> {
        let image = self.image.as_deref()?;
        let image = image.split('@').next()?;
        let tag = image.rsplit_once(':')?.1;
        if tag.contains('/') {
            return None;
        }
        (tag.starts_with('v') && tag[1..].starts_with(|c: char| c.is_ascii_digit())).then_some(tag)
    }
}

/// Parses a manifest and picks the container named `component` (else the first one).
pub(crate) fn parse(bytes: &[u8], component: &str) -> Result<PodCommand, String> {
    let pod: Pod = serde_yaml_ng::from_slice(bytes).map_err(|e| e.to_string())?;
    if let Some(kind) = pod.kind.as_deref().filter(|k| *k != "Pod") {
        return Err(format!("kind is {kind:?}, not \"Pod\""));
    }
    let mut containers = pod.spec.containers;
    let at = containers.iter().position(|c| c.name == component).unwrap_or(0);
    if containers.is_empty() {
        return Err("spec.containers is empty".into());
    }
    let c = containers.swap_remove(at);
    let env: Vec<(String, String)> = c.env.into_iter().filter_map(|e| Some((e.name, e.value?))).collect();
    let argv: Vec<String> = c.command.into_iter().chain(c.args).map(|a| expand(&a, &env)).collect();
    if argv.is_empty() {
        return Err(format!(
            "container {:?} has no `command`: kdbg needs the binary's arguments, not the image's entrypoint",
            c.name
        ));
    }
    Ok(PodCommand { argv, env, working_dir: c.working_dir, image: c.image })
}

/// Kubernetes' `$(VAR)` expansion in `command`/`args`: a defined variable is replaced, `$$` is a
/// literal `$`, anything else is kept as written.
pub(crate) fn expand(arg: &str, env: &[(String, String)]) -> String {
    let mut out = String::new();
    let mut rest = arg;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        if let Some(after) = tail.strip_prefix('$') {
            out.push('$');
            rest = after;
        } else if let Some((name, after)) = tail.strip_prefix('(').and_then(|t| t.split_once(')')) {
            match env.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => out.push_str(&format!("$({name})")),
            }
            rest = after;
        } else {
            out.push('$');
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// As kubeadm v1.20 writes it (minikube's paths).
    pub(crate) const KUBEADM_APISERVER: &str = r#"apiVersion: v1
kind: Pod
metadata:
  annotations:
    kubeadm.kubernetes.io/kube-apiserver.advertise-address.endpoint: 192.168.49.2:8443
  creationTimestamp: null
  labels:
    component: kube-apiserver
    tier: control-plane
  name: kube-apiserver
  namespace: kube-system
spec:
  containers:
  - command:
    - kube-apiserver
    - --advertise-address=192.168.49.2
    - --allow-privileged=true
    - --client-ca-file=/var/lib/minikube/certs/ca.crt
    - --etcd-servers=https://127.0.0.1:2379
    - --secure-port=8443
    - --service-account-issuer=$(ISSUER)
    - --tls-private-key-file=/var/lib/minikube/certs/apiserver.key
    env:
    - name: ISSUER
      value: https://kubernetes.default.svc.cluster.local
    - name: POD_IP
      valueFrom:
        fieldRef:
          fieldPath: status.podIP
    image: k8s.gcr.io/kube-apiserver:v1.20.2
    imagePullPolicy: IfNotPresent
    livenessProbe:
      httpGet:
        host: 192.168.49.2
        path: /livez
        port: 8443
        scheme: HTTPS
    name: kube-apiserver
  hostNetwork: true
  priorityClassName: system-node-critical
status: {}
"#;

    #[test]
    fn kubeadm_manifest_gives_command_env_and_version() {
        let p = parse(KUBEADM_APISERVER.as_bytes(), "kube-apiserver").unwrap();
        assert_eq!(p.argv[0], "kube-apiserver");
        assert_eq!(p.argv.len(), 8);
        assert_eq!(p.argv[6], "--service-account-issuer=https://kubernetes.default.svc.cluster.local");
        assert_eq!(p.env, [("ISSUER".to_string(), "https://kubernetes.default.svc.cluster.local".to_string())]);
        assert_eq!(p.image_version(), Some("v1.20.2"));
    }

    #[test]
    fn picks_the_named_container_and_appends_args() {
        let y = "kind: Pod\nspec:\n  containers:\n  - name: sidecar\n    command: [sleep]\n  - name: kube-scheduler\n    command: [kube-scheduler]\n    args: [--v=2]\n    workingDir: /tmp\n";
        let p = parse(y.as_bytes(), "kube-scheduler").unwrap();
        assert_eq!(p.argv, ["kube-scheduler", "--v=2"]);
        assert_eq!(p.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(p.image_version(), None);
    }

    #[test]
    fn malformed_manifests_say_why() {
        let e = parse(b"kind: Pod\nspec: [", "x").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
        assert!(parse(b"kind: Deployment\nspec: {containers: [{command: [x]}]}", "x")
            .unwrap_err()
            .contains("Deployment"));
        assert!(parse(b"kind: Pod\nspec: {containers: []}", "x").unwrap_err().contains("empty"));
        assert!(parse(b"kind: Pod\nspec: {containers: [{name: x, image: i}]}", "x")
            .unwrap_err()
            .contains("no `command`"));
    }

    #[test]
    fn dollar_expansion_follows_kubernetes() {
        let env = [("A".to_string(), "1".to_string())];
        assert_eq!(expand("x=$(A)$(B)$$(A)$", &env), "x=1$(B)$(A)$");
        assert_eq!(expand("$(unterminated", &env), "$(unterminated");
    }

    #[test]
    fn image_tags() {
        let p = |i: &str| PodCommand { argv: vec![], env: vec![], working_dir: None, image: Some(i.into()) };
        assert_eq!(p("registry.k8s.io/kube-apiserver:v1.28.0").image_version(), Some("v1.28.0"));
        assert_eq!(p("localhost:5000/kube-apiserver").image_version(), None);
        assert_eq!(p("kube-apiserver:latest").image_version(), None);
    }
}
