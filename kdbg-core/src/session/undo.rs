//! Putting a component back, as node-side scripts ([`Op`]s): kill Delve and the debug build,
//! remove Delve's socket directory, put the manifest back (or start the unit, or patch the
//! DaemonSet). `kdbg restore` runs these through the connection; the node's own restore script
//! (`session::lease::restore_sh`) is made of the very same ones, so both undo a session alike.

use super::journal::{Entry, How};
use super::scripts::{self, Op};
use crate::layout::{binary_path, dlv_path, BACKUP_DIR, RUN_DIR};

/// `$1` the debug build, `$2` Delve: kills the debug build and the Delves that `exec` it, waits
/// until they are gone, prints their pids.
const KILL_DEBUG: &str = r#"pids=$(exe_pids "$1")
for p in $(exe_pids "$2"); do
  [ "$(tr '\0' '\n' < "/proc/$p/cmdline" 2>/dev/null | sed -n 2,3p | tr '\n' ' ')" = "exec $1 " ] && pids="$pids $p"
done
[ -z "$pids" ] || kill_wait $pids || exit 1
echo $pids"#;

/// `$1` manifest, `$2` its sha256, `$3` mode (octal), `$4` kdbg's copy: the original's bytes back
/// in place (a dotfile first: the kubelet ignores those), then the copy goes. Exit 3 when neither
/// holds the original.
const PUT_MANIFEST: &str = r#"sum() { sha256sum "$1" 2>/dev/null | cut -d' ' -f1; }
if [ "$(sum "$1")" != "$2" ]; then
  if [ -e "$1" ]; then echo "$1 holds other bytes than the manifest kdbg moved away; kept it" >&2; exit 3; fi
  if [ "$(sum "$4")" != "$2" ]; then echo "neither $1 nor kdbg's copy $4 holds the original" >&2; exit 3; fi
  t="${1%/*}/.kdbg-restore.tmp"
  cp "$4" "$t" && chmod "$3" "$t" && sync "$t" 2>/dev/null; mv -f "$t" "$1" && { sync "${1%/*}" 2>/dev/null || sync; } || exit 1
fi
rm -f "$4" && { rmdir "${4%/*}" 2>/dev/null; true; }"#;

/// `$1` unit: started again (`KDBG_NO_BLOCK=1`: queued, not waited for — at boot, before the
/// kubelet).
const START_UNIT: &str =
    r#"if [ "${KDBG_NO_BLOCK:-}" = 1 ]; then systemctl start --no-block "$1"; else systemctl start "$1"; fi"#;

/// `$1` unit, `$2` its enablement as found, `$3` `enable`|`disable`: put back if it changed.
const KEEP_ENABLED: &str = r#"[ "$(systemctl is-enabled "$1" 2>/dev/null)" = "$2" ] || systemctl "$3" --quiet "$1""#;

/// `$1` Delve's socket: its directory goes (and `/var/lib/kdbg/run` once empty).
const REMOVE_SOCKET_DIR: &str = r#"d=${1%/*}; rm -rf "$d" && { rmdir "${d%/*}" 2>/dev/null; true; }"#;

/// Kills Delve and the debug build of `component`; prints the pids it killed.
pub(crate) fn kill_debug(component: &str) -> Op {
    let fragments = [scripts::ALIVE, scripts::KILL_WAIT, scripts::EXES, scripts::EXE_PIDS];
    Op {
        step: "stop",
        what: format!("stop Delve and the debug build of {component}"),
        script: scripts::with(&fragments, KILL_DEBUG),
        args: vec![binary_path(component), dlv_path()],
    }
}

/// Removes the directory of Delve's socket `socket`.
pub(crate) fn remove_socket_dir(socket: &str) -> Op {
    let dir = socket.rsplit_once('/').map_or(socket, |p| p.0);
    debug_assert!(dir.starts_with(RUN_DIR), "{dir}");
    Op {
        step: "remove-socket",
        what: format!("remove {dir}"),
        script: REMOVE_SOCKET_DIR.into(),
        args: vec![socket.into()],
    }
}

/// What puts the original back in place, as the journal recorded it. Idempotent: a manifest
/// already in place, a unit already running, a DaemonSet already patched back are fine.
pub(crate) fn put_back(how: &How) -> Result<Vec<Op>, String> {
    Ok(match how {
        How::StaticPod { manifest, sha256, mode, backup } => {
            debug_assert!(backup.starts_with(BACKUP_DIR), "{backup}");
            vec![Op {
                step: "put-back",
                what: format!("put {manifest} back"),
                script: PUT_MANIFEST.into(),
                args: vec![manifest.clone(), sha256.clone(), format!("{mode:o}"), backup.clone()],
            }]
        }
        How::DaemonSet { .. } => super::daemonset::put_back_ops(how)?,
        How::Systemd { unit, active, enabled } => {
            // The unit returns to the state kdbg found: started only if it was active, and its
            // enablement as it was (kdbg never changes it; someone else may have meanwhile).
            let mut ops = Vec::new();
            if *active {
                let what = format!("systemctl start {unit}");
                ops.push(Op { step: "start", what, script: START_UNIT.into(), args: vec![unit.clone()] });
            }
            if let Some(want @ ("enabled" | "disabled")) = enabled.as_deref() {
                let verb = if want == "enabled" { "enable" } else { "disable" };
                let what = format!("systemctl {verb} {unit}");
                ops.push(Op {
                    step: verb,
                    what,
                    script: KEEP_ENABLED.into(),
                    args: vec![unit.clone(), want.into(), verb.into()],
                });
            }
            ops
        }
    })
}

/// Every op of undoing `entry`'s session, in order: stop the debug build, remove the socket
/// directory, put the original back.
pub(crate) fn all(entry: &Entry) -> Result<Vec<Op>, String> {
    let mut ops = vec![kill_debug(&entry.component)];
    ops.extend(entry.listen.socket().map(remove_socket_dir));
    ops.extend(put_back(&entry.how)?);
    Ok(ops)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_op_parses_as_sh() {
        let how = How::StaticPod {
            manifest: "/m/a.yaml".into(),
            sha256: "x".into(),
            mode: 0o600,
            backup: "/var/lib/kdbg/backup/a.yaml".into(),
        };
        let unit = How::Systemd { unit: "kubelet.service".into(), active: true, enabled: Some("enabled".into()) };
        let mut ops = put_back(&how).unwrap();
        ops.extend(put_back(&unit).unwrap());
        ops.push(kill_debug("kube-apiserver"));
        ops.push(remove_socket_dir("/var/lib/kdbg/run/kube-apiserver/dlv.sock"));
        for op in ops {
            let out = std::process::Command::new("sh").args(["-n", "-c", &op.script]).output().unwrap();
            assert!(out.status.success(), "{}: {}", op.what, String::from_utf8_lossy(&out.stderr));
        }
    }

    #[test]
    fn a_manifest_goes_back_with_its_bytes_and_mode_and_the_copy_goes() {
        let dir = tempfile::tempdir().unwrap();
        let m = dir.path().join("manifests/a.yaml");
        let b = dir.path().join("backup/a.yaml");
        std::fs::create_dir_all(m.parent().unwrap()).unwrap();
        std::fs::create_dir_all(b.parent().unwrap()).unwrap();
        std::fs::write(&b, "original\n").unwrap();
        let sha = format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(b"original\n"));
        let run = |sha: &str| {
            let args = [m.to_str().unwrap(), sha, "640", b.to_str().unwrap()];
            std::process::Command::new("sh").arg("-c").arg(PUT_MANIFEST).arg("kdbg").args(args).output().unwrap()
        };
        let wrong = run("0000");
        assert_eq!(wrong.status.code(), Some(3), "{wrong:?}");
        assert!(b.exists() && !m.exists(), "a refusal changes nothing");
        assert!(run(&sha).status.success());
        assert_eq!(std::fs::read_to_string(&m).unwrap(), "original\n");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&m).unwrap().permissions().mode() & 0o777, 0o640);
        assert!(!b.exists() && !b.parent().unwrap().exists(), "the copy and its empty directory go");
        assert!(run(&sha).status.success(), "again: nothing to do");
        std::fs::write(&m, "edited\n").unwrap();
        assert_eq!(run(&sha).status.code(), Some(3), "a manifest put back by hand is kept");
        assert_eq!(std::fs::read_to_string(&m).unwrap(), "edited\n");
    }
}
