//! Turning what ssh, sudo and the node's tools print into [`NodeError`]s that name the node and a fix.

use super::{NodeError, NodeOutput, Privilege};

/// Transport-specific advice, filled in by each transport (ssh, minikube, kind).
#[derive(Debug, Clone, Default)]
pub struct Fixes {
    /// For "connection refused", "timed out", "no route".
    pub unreachable: String,
    /// For a rejected key.
    pub auth: String,
    /// For an unknown or changed host key.
    pub host_key: String,
}

/// What a failed ssh login (exit 255) printed, as an error; `None` if it is not a login failure.
pub(crate) fn ssh_failure(node: &str, stderr: &str, fixes: &Fixes) -> Option<NodeError> {
    let detail = last_meaningful_line(stderr);
    let has = |needle: &str| stderr.contains(needle);
    if has("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        return Some(NodeError::HostKey {
            node: node.into(),
            detail: "it CHANGED since ssh last saw it (a recreated VM, or someone in between)".into(),
            fix: fixes.host_key.clone(),
        });
    }
    if has("Host key verification failed") || has("No ED25519 host key is known") {
        return Some(NodeError::HostKey {
            node: node.into(),
            detail: "ssh does not know it (not in known_hosts) and runs in batch mode".into(),
            fix: fixes.host_key.clone(),
        });
    }
    if has("Permission denied") || has("Too many authentication failures") {
        return Some(NodeError::Auth { node: node.into(), detail, fix: fixes.auth.clone() });
    }
    let unreachable = [
        "Connection refused",
        "Connection timed out",
        "Operation timed out",
        "No route to host",
        "Network is unreachable",
        "Could not resolve hostname",
        "Connection closed by",
        "Connection reset by",
        "kex_exchange_identification",
    ];
    if unreachable.iter().any(|n| has(n)) {
        return Some(NodeError::Unreachable { node: node.into(), detail, fix: fixes.unreachable.clone() });
    }
    None
}

/// Failures of any node command that are never the command's own answer: sudo refusing, a full disk.
pub(crate) fn command_failure(node: &str, out: &NodeOutput, privilege: Privilege) -> Option<NodeError> {
    if out.success() {
        return None;
    }
    let stderr = out.stderr_str();
    let sudo_refused = [
        "sudo: a password is required",
        "sudo: a terminal is required",
        "is not in the sudoers file",
        "is not allowed to execute",
        "may not run sudo",
        "sudo: sorry, you must have a tty",
    ];
    if privilege == Privilege::Root && sudo_refused.iter().any(|n| stderr.contains(n)) {
        return Some(NodeError::SudoDenied { node: node.into() });
    }
    if stderr.contains("No space left on device") || stderr.contains("Disk quota exceeded") {
        let path = stderr
            .lines()
            .find_map(|l| l.strip_prefix("kdbg: receiving "))
            .and_then(|l| l.strip_suffix(" failed"))
            .and_then(|p| p.rsplit_once('/').map(|(dir, _)| dir.to_string()))
            .unwrap_or_else(|| crate::layout::KDBG_DIR.to_string());
        return Some(NodeError::DiskFull { node: node.into(), path, detail: last_meaningful_line(&stderr) });
    }
    None
}

/// The line that says what went wrong (ssh's banners and warnings come first).
fn last_meaningful_line(stderr: &str) -> String {
    stderr
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("kdbg: receiving"))
        .find(|l| {
            ["refused", "denied", "timed out", "No space", "unreachable", "resolve", "route"]
                .iter()
                .any(|k| l.contains(k))
        })
        .or_else(|| stderr.lines().map(str::trim).rfind(|l| !l.is_empty()))
        .unwrap_or("no message")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixes() -> Fixes {
        Fixes { unreachable: "U".into(), auth: "A".into(), host_key: "H".into() }
    }

    #[test]
    fn ssh_messages_become_errors_with_fixes() {
        let refused = "ssh: connect to host 10.0.0.2 port 2222: Connection refused\n";
        let e = ssh_failure("docker@10.0.0.2", refused, &fixes()).unwrap();
        assert!(matches!(&e, NodeError::Unreachable { fix, .. } if fix == "U"), "{e}");
        assert!(e.to_string().contains("port 2222: Connection refused"), "{e}");
        let e = ssh_failure("n", "docker@10.0.0.2: Permission denied (publickey).\n", &fixes());
        assert!(matches!(e, Some(NodeError::Auth { .. })));
        let e = ssh_failure("n", "Host key verification failed.\n", &fixes());
        assert!(matches!(e, Some(NodeError::HostKey { .. })));
        let changed =
            "@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\nHost key verification failed.\n";
        let e = ssh_failure("n", changed, &fixes()).unwrap().to_string();
        assert!(e.contains("CHANGED"), "{e}");
        assert!(ssh_failure("n", "bash: line 1: foo: command not found\n", &fixes()).is_none());
    }

    #[test]
    fn sudo_and_full_disks_are_recognised() {
        let out = |stderr: &str| NodeOutput { status: 1, stdout: vec![], stderr: stderr.as_bytes().to_vec() };
        let sudo = out("sudo: a password is required\n");
        assert!(matches!(command_failure("n", &sudo, Privilege::Root), Some(NodeError::SudoDenied { .. })));
        assert!(command_failure("n", &sudo, Privilege::User).is_none());
        let full = out("zstd: error 70 : Write error : No space left on device\nkdbg: receiving /var/lib/kdbg/bin/kube-apiserver failed\n");
        match command_failure("n", &full, Privilege::Root) {
            Some(NodeError::DiskFull { path, detail, .. }) => {
                assert_eq!(path, "/var/lib/kdbg/bin");
                assert!(detail.contains("No space left"), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
}
