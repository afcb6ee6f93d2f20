//! Capturing a component's exact invocation on the node: the running process's command line and
//! environment, else its static pod manifest, else its systemd unit — and what stopping it moves.

use sha2::{Digest, Sha256};

use super::journal::How;
use super::{daemonset, manifest, procs, systemd, SessionError};
use crate::component::{Component, Launch, MANIFESTS_DIR};
use crate::layout::{BACKUP_DIR, BIN_DIR};
use crate::node::{Node, NodeError, Privilege};

/// A component's invocation as found on the node.
#[derive(Debug, Clone)]
pub(crate) struct Captured {
    pub component: &'static Component,
    /// The original argv (argv[0] as the original had it).
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: Option<String>,
    /// `process 1234`, `manifest /etc/...`, `unit kubelet.service`.
    pub from: String,
    /// The running original, if any.
    pub pid: Option<u32>,
    pub how: How,
    /// The manifest's bytes (static pods): what the backup and restore write.
    pub manifest_bytes: Option<Vec<u8>>,
    /// The ports to wait for: those the running original listens on (seen before it is stopped),
    /// else those its flags name.
    pub ports: Vec<u16>,
    /// The running version, from the manifest's image tag (`v1.20.2`).
    pub version: Option<String>,
    pub warnings: Vec<String>,
}

/// Reads how `c` runs on the node, changing nothing. Without a running original this is an error
/// unless `allow_not_running` (then the manifest's or unit's arguments are used).
pub(crate) fn capture(
    node: &dyn Node,
    c: &'static Component,
    allow_not_running: bool,
) -> Result<Captured, SessionError> {
    match c.launch {
        Launch::StaticPod { manifest } => static_pod(node, c, manifest, allow_not_running),
        Launch::Systemd { unit } => systemd_unit(node, c, unit, allow_not_running),
        Launch::DaemonSet { namespace, name } => daemonset_pod(node, c, namespace, name),
    }
}

fn static_pod(
    node: &dyn Node,
    c: &'static Component,
    file: &str,
    allow_not_running: bool,
) -> Result<Captured, SessionError> {
    let path = format!("{MANIFESTS_DIR}/{file}");
    let pids = procs::running(node, c.name, BIN_DIR)?;
    let Some(bytes) = node.read_file(&path, Privilege::Root)? else {
        // Parked by a kdbg session whose journal is gone: the way out is restore, not status.
        let backup = format!("{BACKUP_DIR}/{file}");
        if node.sha256s(&[&backup])?.first().is_some_and(Option::is_some) {
            return Err(SessionError::ParkedWithoutJournal {
                component: c.name.into(),
                node: node.describe(),
                path,
                backup,
            });
        }
        return Err(match pids.first() {
            Some(&pid) => SessionError::ManifestMissing { component: c.name.into(), node: node.describe(), path, pid },
            None => SessionError::NotOnNode { component: c.name.into(), node: node.describe(), path },
        });
    };
    let pod = manifest::parse(&bytes, c.name).map_err(|detail| SessionError::Malformed {
        component: c.name.into(),
        node: node.describe(),
        path: path.clone(),
        detail,
    })?;
    let mode = file_mode(node, &path)?;
    let how = How::StaticPod {
        manifest: path.clone(),
        sha256: hex::encode(Sha256::digest(&bytes)),
        mode,
        backup: format!("{BACKUP_DIR}/{file}"),
    };
    let mut cap = Captured {
        component: c,
        argv: pod.argv.clone(),
        env: with_path(pod.env.clone()),
        working_dir: pod.working_dir.clone(),
        from: format!("manifest {path}"),
        pid: None,
        how,
        ports: procs::ports_from_args(c, &pod.argv),
        manifest_bytes: Some(bytes),
        version: pod.image_version().map(String::from),
        warnings: Vec::new(),
    };
    from_process(node, &mut cap, &pids, &path, allow_not_running)?;
    if cap.pid.is_some() && cap.argv[1..] != pod.argv[1..] {
        cap.warnings.push(format!(
            "the running {} has other arguments than its manifest {path} (edited since it started?); \
             kdbg uses the running process's",
            c.name
        ));
    }
    Ok(cap)
}

fn systemd_unit(
    node: &dyn Node,
    c: &'static Component,
    unit: &str,
    allow_not_running: bool,
) -> Result<Captured, SessionError> {
    let out = node.exec(&["systemctl", "cat", "--no-pager", unit], Privilege::Root, &[])?;
    if !out.success() {
        let why = match out.status {
            127 => "systemd (systemctl) is not available on this node; kdbg stops the kubelet with `systemctl stop`"
                .to_string(),
            _ => format!("`systemctl cat {unit}` failed: {}", out.stderr_str().trim()),
        };
        return Err(SessionError::Unsupported { component: c.name.into(), node: node.describe(), why });
    }
    let parsed = systemd::parse_unit(&out.stdout_str());
    let mut files = Vec::new();
    for (file, _) in &parsed.environment_files {
        let text = node.read_file(file, Privilege::Root)?.map(|b| String::from_utf8_lossy(&b).into_owned());
        files.push((file.clone(), text));
    }
    let (argv, env) = systemd::command(&parsed, &files).map_err(|detail| SessionError::Malformed {
        component: c.name.into(),
        node: node.describe(),
        path: unit.into(),
        detail,
    })?;
    let state = node.sh(Privilege::Root, "systemctl is-active \"$1\"; systemctl is-enabled \"$1\"; true", &[unit])?;
    let state = state.stdout_str();
    let mut lines = state.lines().map(str::trim);
    let (active, enabled) = (lines.next().unwrap_or("unknown").to_string(), lines.next().map(String::from));
    let mut cap = Captured {
        component: c,
        ports: procs::ports_from_args(c, &argv),
        argv,
        env: with_path(env),
        working_dir: None,
        from: format!("unit {unit}"),
        pid: None,
        how: How::Systemd { unit: unit.into(), active: active == "active", enabled },
        manifest_bytes: None,
        version: None,
        warnings: Vec::new(),
    };
    let pids = procs::running(node, c.name, BIN_DIR)?;
    if pids.is_empty() && active != "active" {
        // Stopped by the user first, as the manual recipe does: debug it with the unit's own
        // arguments; restore leaves the unit as it was found.
        cap.warnings.push(format!(
            "{unit} is {active} on {}: debugging {} with the unit's arguments; `kdbg restore` leaves {unit} {active}",
            node.describe(),
            c.name
        ));
        return Ok(cap);
    }
    from_process(node, &mut cap, &pids, unit, allow_not_running)?;
    Ok(cap)
}

fn daemonset_pod(node: &dyn Node, c: &'static Component, ns: &str, name: &str) -> Result<Captured, SessionError> {
    let found = daemonset::look(node, c, ns, name)?;
    let pod = manifest::parse(&found.pod_json, c.name).map_err(|detail| SessionError::Malformed {
        component: c.name.into(),
        node: node.describe(),
        path: format!("the DaemonSet {ns}/{name}'s pod"),
        detail,
    })?;
    let mut how = found.how;
    if let How::DaemonSet { mounts, created, .. } = &mut how {
        *created = daemonset::missing_mount_points(node, mounts)?;
    }
    let mut cap = Captured {
        component: c,
        ports: procs::ports_from_args(c, &pod.argv),
        argv: pod.argv.clone(),
        env: with_path(pod.env.clone()),
        working_dir: pod.working_dir.clone(),
        from: format!("daemonset {ns}/{name}"),
        pid: None,
        how,
        manifest_bytes: None,
        version: pod.image_version().map(String::from),
        warnings: Vec::new(),
    };
    // The pod's files are copied from the running container: it must run.
    let pids = procs::running(node, c.name, BIN_DIR)?;
    from_process(node, &mut cap, &pids, &format!("daemonset {ns}/{name}"), false)?;
    Ok(cap)
}

/// Takes argv and environment from the running original when there is one.
fn from_process(
    node: &dyn Node,
    cap: &mut Captured,
    pids: &[u32],
    path: &str,
    allow_not_running: bool,
) -> Result<(), SessionError> {
    let name = cap.component.name;
    let lines = procs::cmdlines(node, pids)?;
    // Several processes of the same binary: the one started with the manifest's arguments.
    let picked = lines.iter().find(|(_, argv)| argv.get(1..) == cap.argv.get(1..)).or(lines.first());
    let Some((pid, argv)) = picked else {
        if !allow_not_running {
            return Err(SessionError::NotRunning { component: name.into(), node: node.describe(), path: path.into() });
        }
        cap.warnings.push(format!("{name} is not running; using the arguments of {}", cap.from));
        return Ok(());
    };
    if lines.len() > 1 {
        cap.warnings.push(format!("{} processes run {name}; debugging the one with pid {pid}", lines.len()));
    }
    let environ = node.read_file(&format!("/proc/{pid}/environ"), Privilege::Root)?.unwrap_or_default();
    cap.env = with_path(parse_environ(&environ));
    cap.argv = argv.clone();
    let seen = procs::listening_ports(node, *pid)?;
    if !seen.is_empty() {
        cap.ports = seen;
    }
    cap.pid = Some(*pid);
    cap.from = format!("process {pid}");
    Ok(())
}

/// `/proc/PID/environ`: NUL-separated `KEY=VALUE`.
pub(crate) fn parse_environ(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|b| *b == 0)
        .filter_map(|kv| {
            let kv = String::from_utf8_lossy(kv);
            let (k, v) = kv.split_once('=')?;
            Some((k.to_string(), v.to_string())).filter(|(k, _)| !k.is_empty())
        })
        .collect()
}

/// The kubelet gives containers a PATH; so does kdbg when the source had none.
fn with_path(mut env: Vec<(String, String)>) -> Vec<(String, String)> {
    if !env.iter().any(|(k, _)| k == "PATH") {
        env.insert(0, ("PATH".into(), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into()));
    }
    env
}

fn file_mode(node: &dyn Node, path: &str) -> Result<u32, SessionError> {
    let out = node.exec(&["stat", "-c", "%a", path], Privilege::Root, &[])?;
    u32::from_str_radix(out.stdout_str().trim(), 8).map_err(|_| {
        SessionError::Node(NodeError::Command {
            node: node.describe(),
            cmd: format!("stat -c %a {path}"),
            status: out.status,
            stderr: out.stderr_str(),
        })
    })
}

/// The argv the debug build runs with: argv[0] is the debug binary, `--leader-elect=false` is set
/// when asked (replacing any `--leader-elect` given), everything else exactly as captured.
pub(crate) fn debug_argv(argv: &[String], binary: &str, leader_elect_false: bool) -> Vec<String> {
    let mut out = vec![binary.to_string()];
    for a in argv.iter().skip(1) {
        if leader_elect_false && (a == "--leader-elect" || a.starts_with("--leader-elect=")) {
            // `--leader-elect true` (bool flag with a separate value) is not valid pflag syntax.
            continue;
        }
        out.push(a.clone());
    }
    if leader_elect_false {
        out.push("--leader-elect=false".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environ_and_path() {
        let env = with_path(parse_environ(b"A=1\0B=x=y\0\0=bad\0"));
        assert_eq!(env[0].0, "PATH");
        assert_eq!(&env[1..], [("A".to_string(), "1".to_string()), ("B".to_string(), "x=y".to_string())]);
    }

    #[test]
    fn debug_argv_keeps_everything_but_argv0() {
        let argv: Vec<String> = ["kube-scheduler", "--leader-elect=true", "--bind-address=127.0.0.1", "--v=2"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(debug_argv(&argv, "/var/lib/kdbg/bin/kube-scheduler", false)[1..], argv[1..]);
        assert_eq!(debug_argv(&argv, "/b", true), ["/b", "--bind-address=127.0.0.1", "--v=2", "--leader-elect=false"]);
    }
}
