//! The modern-toolchain flow on the real node: a v1.30+-era git clone (the fixture, Go 1.27) whose
//! checkout has moved past the node's version. `kdbg debug scheduler --match-node` through
//! `kind://` reads v1.20.2 off the running kube-scheduler, builds that tag in a git worktree, and
//! runs it under Delve 1.27 on a unix socket in the node: a breakpoint is hit through the kind
//! forward (workstation socat → `docker exec … socat UNIX-CONNECT:`), another uid of the node is
//! refused by the socket, `kdbg status` names the socket and the worktree, and restore leaves the
//! node as it was and no forward on this workstation.

use anyhow::{ensure, Context, Result};
use camino::Utf8PathBuf;
use xshell::{cmd, Shell};

use super::flows::{self, Kdbg};
use super::{wait_until, Stages};

/// The fixture's healthz handler: every fixture command serves it (module mode, staging module).
const HEALTHZ_FN: &str = "k8s.io/apiserver/pkg/server/healthz.(*Handler).ServeHTTP";
const SOCKET: &str = "/var/lib/kdbg/run/kube-scheduler/dlv.sock";
/// The matrix's newest pair.
const GO: &str = "1.27.3";
const DELVE: (&str, &str) = ("1.27.1", "sid");

pub fn scheduler_at_the_nodes_version_on_a_socket(sh: &Shell, stages: &mut Stages, k: &Kdbg) -> Result<()> {
    let c = k.cluster;
    let (scratch, go_bin, dlv) =
        k.stage(stages, "a v1.30+-era clone at v1.36.0 with tag v1.20.2; Go 1.27, Delve 1.27", || {
            let cache = crate::toolchains::cache_dir();
            let go_bin = crate::toolchains::go(sh, &cache, GO)?;
            let dlv = crate::toolchains::delve(sh, &cache, DELVE.0, DELVE.1)?;
            let scratch = tempfile::Builder::new().prefix("kdbg-e2e-modern-").tempdir()?;
            clone_past_the_node(scratch.path())?;
            Ok((scratch, go_bin, dlv))
        })?;
    let tree = Utf8PathBuf::try_from(scratch.path().join("kubernetes"))?;
    let path = format!("{go_bin}:{}", std::env::var("PATH").unwrap_or_default());
    let _path = sh.push_env("PATH", path);
    let _dlv = sh.push_env("KDBG_DLV", &dlv);
    let m = Kdbg { bin: k.bin.clone(), tree: &tree, cluster: c, target: k.target.clone(), via: k.via };
    let before = flows::node_state(sh, c)?;
    let worktree = tree.join("_output/kdbg/worktrees/v1.20.2");
    m.stage(stages, "kdbg debug scheduler --match-node: v1.20.2 built in a worktree, Delve on a unix socket", || {
        let said = m.output(sh, &["debug", "scheduler", "--no-ide", "--match-node"])?;
        let read = format!("kube-scheduler on kind node {} runs v1.20.2", c.container);
        ensure!(said.contains(&read) && said.contains("checking out v1.20.2"), "unexpected:\n{said}");
        ensure!(said.contains(&format!("at unix:{SOCKET}")), "Delve is not on its socket:\n{said}");
        ensure!(worktree.join("_output/bin/kube-scheduler").exists(), "no build in {worktree}");
        let ps = c.sh(sh, "ps -eo args")?;
        let line = ps.lines().find(|l| l.starts_with("/var/lib/kdbg/bin/dlv") && l.contains("kube-scheduler"));
        let line = line.with_context(|| format!("no Delve runs the scheduler:\n{ps}"))?;
        ensure!(line.contains(&format!("--listen=unix:{SOCKET}")), "Delve listens elsewhere: {line}");
        Ok(())
    })?;
    m.stage(stages, "breakpoint through the kind forward to the socket; another uid is refused", || {
        wait_until("the debug scheduler's /healthz", flows::SLOW, || {
            c.sh(sh, "curl -s --max-time 10 http://127.0.0.1:10259/healthz").is_ok_and(|b| b.trim() == "ok")
        })?;
        let container = c.container.clone();
        let at = flows::breakpoint(tunnel_port(sh, &m)?, HEALTHZ_FN, move || {
            let sh = Shell::new()?;
            let body = cmd!(sh, "docker exec {container} curl -s --max-time 200 http://127.0.0.1:10259/healthz").read()?;
            ensure!(body == "ok", "GET /healthz after continue answered {body:?}");
            Ok(())
        })?;
        eprintln!("e2e: stopped at {at}");
        ensure!(at.contains(worktree.as_str()) && at.contains("ServeHTTP"), "stopped somewhere else: {at}");
        let other = c.sh(
            sh,
            &format!("setpriv --reuid=4242 --regid=4242 --clear-groups socat -u OPEN:/dev/null UNIX-CONNECT:{SOCKET} 2>&1; true"),
        )?;
        ensure!(other.contains("Permission denied"), "uid 4242 reached the socket: {other}");
        Ok(())
    })?;
    m.stage(stages, "kdbg status names the version, the worktree and the socket", || {
        let status = m.stdout(sh, &["status"])?;
        let built = "built from v1.20.2 (worktree at --at v1.20.2, commit ";
        ensure!(status.contains(built) && status.contains(worktree.as_str()), "{status}");
        ensure!(status.contains(&format!("Delve listens on unix:{SOCKET}")), "{status}");
        Ok(())
    })?;
    m.stage(stages, "kdbg restore -> the scheduler's static pod again, no forward left here", || {
        let port = tunnel_port(sh, &m)?;
        m.run(sh, &["restore"])?;
        flows::check_restored(sh, c, &before)?;
        let sport = format!(":{port}");
        let forward = cmd!(sh, "ss -Hltn sport = {sport}").read()?;
        ensure!(forward.trim().is_empty(), "something still listens on localhost:{port}: {forward}");
        let bin = &m.bin;
        let listed = cmd!(sh, "{bin} worktrees --src {tree}").read()?;
        ensure!(listed.contains("v1.20.2") && !listed.contains("in use"), "{listed}");
        Ok(())
    })
}

/// The scheduler's local tunnel port, from `kdbg status --json`.
fn tunnel_port(sh: &Shell, k: &Kdbg) -> Result<u16> {
    let out = k.stdout(sh, &["status", "--json"])?;
    let doc: serde_json::Value = serde_json::from_str(&out).with_context(|| format!("kdbg status --json: {out}"))?;
    flows::tunnel_in(&doc, "kube-scheduler")
        .with_context(|| format!("no kube-scheduler tunnel in kdbg status --json: {out}"))
}

/// The fixture as a clone: tag v1.20.2 (what the node runs), then one more commit, tagged v1.36.0.
fn clone_past_the_node(parent: &std::path::Path) -> Result<()> {
    let root = kdbg_tests::fixture::copy_era(parent, kdbg_tests::fixture::Era::Modern, Some(GO))?;
    let git = |args: &[&str]| kdbg_tests::fixture::git(&root, args).map(drop);
    git(&["tag", "-d", "v1.36.0"])?;
    git(&["tag", "v1.20.2"])?;
    std::fs::write(root.join("CHANGELOG.md"), "v1.36.0: the checkout moved on\n")?;
    git(&["add", "CHANGELOG.md"])?;
    git(&["commit", "-qm", "v1.36.0"])?;
    Ok(git(&["tag", "v1.36.0"])?)
}
