//! DaemonSet components (kube-proxy): the pod on this node is found and changed through the
//! node's own `kubectl` and admin kubeconfig (credentials never leave the node).
//!
//! Stopping keeps the DaemonSet's pod off this one node with a reversible spec change, journaled
//! before it is made: `updateStrategy` becomes `OnDelete` (so changing the template rolls no other
//! node's pod) and the template gains a required node-affinity term `metadata.name NotIn [node]`;
//! then this node's pod is deleted. Restore writes both fields back as they were, which makes the
//! template hash the original one again: other nodes' pods stay untouched, this node gets its pod.
//!
//! The debug build sees the pod's files at the same paths: before the pod goes, every volume that
//! is not a same-path hostPath (ConfigMaps, the service account's projected token, ...) is copied
//! node-side from `/proc/PID/root` into a 0700 directory under [`crate::layout::PODS_DIR`], and Delve starts in
//! a private mount namespace where each is bind-mounted at its `mountPath`. Nothing of it passes
//! through the workstation, the journal or a log.

use crate::node::root_sh;
use serde_json::Value;

use super::journal::{How, PodMount};
use super::scripts::Op;
use super::SessionError;
use crate::component::Component;
use crate::layout::PODS_DIR;
use crate::node::{Node, Privilege};

/// Defines `kubectl` as the node's kubectl with its admin kubeconfig (exit 3 when there is none).
const KUBECTL: &str = r#"kc=""
for f in /etc/kubernetes/admin.conf /var/lib/minikube/kubeconfig; do [ -r "$f" ] && { kc=$f; break; }; done
k=$(command -v kubectl || ls /var/lib/minikube/binaries/*/kubectl 2>/dev/null | tail -n 1)
if [ -z "$k" ] || [ -z "$kc" ]; then
  echo "found no kubectl or no admin kubeconfig (/etc/kubernetes/admin.conf, /var/lib/minikube/kubeconfig)" >&2; exit 3
fi
kubectl() { "$k" --kubeconfig "$kc" "$@"; }
"#;

/// The node's addresses and name, the DaemonSet and the namespace's pods (`$1` ns, `$2` name).
const LOOK: &str = r##"echo "#me $(hostname -I 2>/dev/null) $(hostname)"
echo "#ds"; kubectl get daemonset -n "$1" "$2" -o json || exit 4
echo "#pods"; kubectl get pods -n "$1" -o json || exit 5"##;

/// Of the mount targets `$@`, the directories that do not exist yet (deepest last).
const MISSING: &str = r#"for t; do
  d=$t; miss=""
  while [ -n "$d" ] && [ "$d" != / ] && [ ! -e "$d" ]; do miss="$d $miss"; d=${d%/*}; done
  for m in $miss; do echo "$m"; done
done"#;

/// Copies each pod path `$t` of pid `$1` to `$s` (pairs `$s $t` follow), then creates the
/// missing mount points, all root-only.
const COPY: &str = r#"pid=$1; shift
mkdir -p -m 700 "$1" && chmod 700 "$1"; shift
while [ $# -ge 2 ]; do
  s=$1 t=$2; shift 2
  if [ -d "/proc/$pid/root$t" ]; then mkdir -p -m 700 "$s" && cp -a "/proc/$pid/root$t/." "$s/" || exit 1
  else cp -a "/proc/$pid/root$t" "$s" || exit 1; fi
  if [ -d "$s" ]; then mkdir -p "$t"; else mkdir -p "${t%/*}" && touch "$t"; fi
done"#;

/// What `capture` learns about a DaemonSet pod on this node.
pub(crate) struct DsPod {
    pub how: How,
    /// The pod as JSON, for its command, env and image.
    pub pod_json: Vec<u8>,
}

/// Finds the DaemonSet's pod on this node; changes nothing.
pub(crate) fn look(node: &dyn Node, c: &Component, namespace: &str, name: &str) -> Result<DsPod, SessionError> {
    let unsupported = |why: String| SessionError::Unsupported { component: c.name.into(), node: node.describe(), why };
    let out = node.sh(Privilege::Root, &format!("{KUBECTL}{LOOK}"), &[namespace, name])?;
    if !out.success() {
        let said = out.stderr_str().trim().to_string();
        return Err(unsupported(match out.status {
            3 => format!("it runs as the DaemonSet {namespace}/{name}, and kdbg reaches the API server through the node's kubectl: {said}"),
            _ => format!("`kubectl get daemonset -n {namespace} {name}` on the node failed: {said}"),
        }));
    }
    let text = out.stdout_str();
    let (me, rest) = text.split_once("\n#ds\n").unwrap_or((&text, ""));
    let (ds, pods) = rest.split_once("\n#pods\n").unwrap_or((rest, ""));
    let me: Vec<&str> = me.trim_start_matches("#me").split_whitespace().collect();
    let ds: Value = serde_json::from_str(ds).map_err(|e| unsupported(format!("unreadable DaemonSet JSON: {e}")))?;
    let pods: Value = serde_json::from_str(pods).map_err(|e| unsupported(format!("unreadable pod list: {e}")))?;
    let owned = |p: &&Value| {
        p["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|o| o.iter().any(|r| r["kind"] == "DaemonSet" && r["name"].as_str() == Some(name)))
    };
    let here = |p: &&Value| {
        [&p["status"]["hostIP"], &p["spec"]["nodeName"]].iter().any(|v| v.as_str().is_some_and(|s| me.contains(&s)))
    };
    let items = pods["items"].as_array().map(Vec::as_slice).unwrap_or_default();
    let Some(pod) = items.iter().filter(owned).find(here) else {
        let nodes: Vec<&str> = items.iter().filter(owned).filter_map(|p| p["spec"]["nodeName"].as_str()).collect();
        return Err(unsupported(format!(
            "no pod of the DaemonSet {namespace}/{name} runs on this node ({}); it has pods on {nodes:?}",
            me.join(" ")
        )));
    };
    if pod["spec"]["hostNetwork"] != Value::Bool(true) {
        return Err(unsupported(format!(
            "its pod {} does not use the host network; kdbg runs debug builds in the node's network namespace",
            pod["metadata"]["name"].as_str().unwrap_or("?")
        )));
    }
    let spec = &ds["spec"];
    let how = How::DaemonSet {
        namespace: namespace.into(),
        name: name.into(),
        node: pod["spec"]["nodeName"].as_str().unwrap_or_default().into(),
        pod: pod["metadata"]["name"].as_str().unwrap_or_default().into(),
        update_strategy: spec["updateStrategy"].to_string(),
        affinity: spec["template"]["spec"].get("affinity").map(Value::to_string),
        mounts: mounts(pod, c.name),
        files: format!("{PODS_DIR}/{}", c.name),
        created: Vec::new(),
    };
    Ok(DsPod { how, pod_json: serde_json::to_vec(pod).expect("JSON serializes") })
}

/// The container's mounts that the debug build must see: everything but same-path hostPaths.
fn mounts(pod: &Value, component: &str) -> Vec<PodMount> {
    let containers = pod["spec"]["containers"].as_array().map(Vec::as_slice).unwrap_or_default();
    let container = containers
        .iter()
        .find(|c| c["name"].as_str() == Some(component))
        .or(containers.first())
        .unwrap_or(&Value::Null);
    let volumes = pod["spec"]["volumes"].as_array().map(Vec::as_slice).unwrap_or_default();
    let mut out = Vec::new();
    for m in container["volumeMounts"].as_array().map(Vec::as_slice).unwrap_or_default() {
        let (Some(target), Some(vol)) = (m["mountPath"].as_str(), m["name"].as_str()) else { continue };
        let volume = volumes.iter().find(|v| v["name"].as_str() == Some(vol));
        match volume.and_then(|v| v["hostPath"]["path"].as_str()) {
            Some(path) if path == target => {}
            Some(path) => out.push(PodMount { source: path.into(), target: target.into(), copied: false }),
            None => out.push(PodMount {
                source: format!("{PODS_DIR}/{component}/{}", out.len()),
                target: target.into(),
                copied: true,
            }),
        }
    }
    out
}

/// Which mount targets' directories do not exist on the node yet (kdbg creates and removes them).
pub(crate) fn missing_mount_points(node: &dyn Node, mounts: &[PodMount]) -> Result<Vec<String>, SessionError> {
    let targets: Vec<&str> = mounts.iter().map(|m| m.target.as_str()).collect();
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let out = root_sh(node, MISSING, &targets, "look for missing mount points")?;
    let mut seen = Vec::new();
    for l in out.lines().filter(|l| !l.is_empty()) {
        if !seen.iter().any(|s: &String| s == l) {
            seen.push(l.to_string());
        }
    }
    Ok(seen)
}

/// Copies the pod's files (before the pod goes), then takes the pod off this node.
pub(crate) fn stop(node: &dyn Node, how: &How, component: &str, pid: Option<u32>) -> Result<(), SessionError> {
    let How::DaemonSet { namespace, name, node: node_name, pod, affinity, mounts, files, .. } = how else {
        return Ok(());
    };
    let copies: Vec<&PodMount> = mounts.iter().filter(|m| m.copied).collect();
    if !copies.is_empty() {
        let pid = pid.ok_or_else(|| SessionError::Unsupported {
            component: component.into(),
            node: node.describe(),
            why: format!("its pod {pod} is not running, so kdbg cannot copy the files it mounts"),
        })?;
        let mut args = vec![pid.to_string(), files.clone()];
        for m in &copies {
            args.extend([m.source.clone(), m.target.clone()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        root_sh(node, COPY, &args, &format!("copy {pod}'s mounted files into {files}"))?;
    }
    let mut aff: Value = affinity.as_deref().and_then(|a| serde_json::from_str(a).ok()).unwrap_or(Value::Null);
    exclude_node(&mut aff, node_name);
    let patch = serde_json::json!([
        { "op": "replace", "path": "/spec/updateStrategy", "value": { "type": "OnDelete" } },
        { "op": "add", "path": "/spec/template/spec/affinity", "value": aff },
    ]);
    let script = format!(
        "{KUBECTL}kubectl patch daemonset -n \"$1\" \"$2\" --type=json -p \"$3\" >/dev/null && \
         kubectl delete pod -n \"$1\" \"$4\" --wait=false >/dev/null"
    );
    root_sh(
        node,
        &script,
        &[namespace, name, &patch.to_string(), pod],
        &format!("keep {namespace}/{name}'s pod off this node"),
    )?;
    Ok(())
}

/// Adds `metadata.name NotIn [node]` to every required node-selector term (one term if none).
pub(crate) fn exclude_node(affinity: &mut Value, node: &str) {
    let expr = serde_json::json!({ "key": "metadata.name", "operator": "NotIn", "values": [node] });
    if !affinity.is_object() {
        *affinity = serde_json::json!({});
    }
    let required = &mut affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"];
    let terms = &mut required["nodeSelectorTerms"];
    match terms.as_array_mut() {
        Some(terms) if !terms.is_empty() => {
            for t in terms {
                match t["matchFields"].as_array_mut() {
                    Some(fields) => fields.push(expr.clone()),
                    None => t["matchFields"] = serde_json::json!([expr.clone()]),
                }
            }
        }
        _ => *terms = serde_json::json!([{ "matchFields": [expr] }]),
    }
}

/// Putting a DaemonSet back: its strategy and affinity as found, then the pod's copied files and
/// the mount points kdbg created go.
pub(crate) fn put_back_ops(how: &How) -> Result<Vec<Op>, String> {
    let How::DaemonSet { namespace, name, update_strategy, affinity, files, created, .. } = how else {
        return Ok(Vec::new());
    };
    let strategy: Value = serde_json::from_str(update_strategy).map_err(|e| e.to_string())?;
    let mut ops = vec![serde_json::json!({ "op": "replace", "path": "/spec/updateStrategy", "value": strategy })];
    let (with, without) = match affinity {
        Some(a) => {
            let a: Value = serde_json::from_str(a).map_err(|e| e.to_string())?;
            ops.push(serde_json::json!({ "op": "add", "path": "/spec/template/spec/affinity", "value": a }));
            (Value::Array(ops.clone()), Value::Array(ops))
        }
        None => {
            let without = Value::Array(ops.clone());
            ops.push(serde_json::json!({ "op": "remove", "path": "/spec/template/spec/affinity" }));
            (Value::Array(ops), without)
        }
    };
    // Removing an affinity that is already gone fails: then only the strategy is left to put back.
    let patch = Op {
        step: "put-back",
        what: format!("put the DaemonSet {namespace}/{name} back"),
        script: format!(
            "{KUBECTL}kubectl patch daemonset -n \"$1\" \"$2\" --type=json -p \"$3\" >/dev/null 2>&1 || \
             kubectl patch daemonset -n \"$1\" \"$2\" --type=json -p \"$4\" >/dev/null"
        ),
        args: vec![namespace.clone(), name.clone(), with.to_string(), without.to_string()],
    };
    let mut args = vec![files.clone()];
    args.extend(created.iter().rev().cloned());
    let cleanup = r#"rm -rf "$1"; shift; rmdir "$PODS" 2>/dev/null; for d; do rmdir "$d" 2>/dev/null || rm -f "$d" 2>/dev/null; done; true"#;
    let cleanup = Op {
        step: "remove-files",
        what: "remove the pod's copied files".into(),
        script: cleanup.replace("$PODS", PODS_DIR),
        args,
    };
    Ok(vec![patch, cleanup])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_is_excluded_from_every_required_term() {
        let mut none = Value::Null;
        exclude_node(&mut none, "n1");
        assert_eq!(
            none.to_string(),
            r#"{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchFields":[{"key":"metadata.name","operator":"NotIn","values":["n1"]}]}]}}}"#
        );
        let mut two: Value = serde_json::from_str(
            r#"{"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[
                {"matchExpressions":[{"key":"a","operator":"Exists"}]},
                {"matchFields":[{"key":"metadata.name","operator":"In","values":["x","n1"]}]}]}}}"#,
        )
        .unwrap();
        exclude_node(&mut two, "n1");
        let terms = &two["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"];
        assert_eq!(terms[0]["matchFields"][0]["values"][0], "n1");
        assert_eq!(terms[0]["matchExpressions"][0]["key"], "a");
        assert_eq!(terms[1]["matchFields"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn same_path_host_paths_are_left_alone_and_the_rest_is_copied() {
        let pod: Value = serde_json::from_str(
            r#"{"spec":{"containers":[{"name":"kube-proxy","volumeMounts":[
                {"name":"kube-proxy","mountPath":"/var/lib/kube-proxy"},
                {"name":"xtables-lock","mountPath":"/run/xtables.lock"},
                {"name":"mods","mountPath":"/lib/modules"},
                {"name":"tok","mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}]}],
              "volumes":[{"name":"kube-proxy","configMap":{"name":"kube-proxy"}},
                {"name":"xtables-lock","hostPath":{"path":"/run/xtables.lock"}},
                {"name":"mods","hostPath":{"path":"/usr/lib/modules"}},
                {"name":"tok","projected":{}}]}}"#,
        )
        .unwrap();
        let m = mounts(&pod, "kube-proxy");
        let got: Vec<(&str, &str, bool)> = m.iter().map(|m| (m.source.as_str(), m.target.as_str(), m.copied)).collect();
        assert_eq!(
            got,
            [
                ("/var/lib/kdbg/pods/kube-proxy/0", "/var/lib/kube-proxy", true),
                ("/usr/lib/modules", "/lib/modules", false),
                ("/var/lib/kdbg/pods/kube-proxy/2", "/var/run/secrets/kubernetes.io/serviceaccount", true),
            ]
        );
    }
}
