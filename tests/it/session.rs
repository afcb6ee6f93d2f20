//! `kdbg debug` / `status` / `restore` on a test node with the fixture tree, real dlv and real sshd:
//! a breakpoint hit through the tunnel, restore byte-identical, loopback-only Delve, faults.

mod bad_inputs;
mod faults;
mod fencing;
mod lease;
mod manifests;
mod nodes;
mod race;
mod recovery;
mod schema1;
mod steps;
mod tasks;

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use kdbg_core::dlv::DlvClient;
use kdbg_core::plan::StepId;
use kdbg_tests::lab::{self, RELEASE_BIN};
use kdbg_tests::probe::{rpc_eval, Probe, QUERY_EXPR};
use kdbg_tests::{TestNode, TestNodeConfig};

use crate::support::{Out, Run, Tree};

/// An environment value and a key's contents that must never reach the journal or kdbg's output.
const SECRET: &str = "s3cr3t-env-value";
const KEY: &str = "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIKdbgkdbgkdbg\n-----END PRIVATE KEY-----\n";

/// A plain `make all` of the fixture apiserver: what a cluster runs (stripped, optimised). Built
/// once per run under cargo's per-target scratch directory (a static is never dropped, so a
/// temp dir here would be left in /tmp by every run).
fn release_binary() -> &'static PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("session-release");
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let root = kdbg_tests::fixture::copy_to(&dir).unwrap();
        lab::release_build(&root, "kube-apiserver").unwrap()
    })
}

/// A test node running the release apiserver from a kubeadm-shaped static pod manifest, plus a
/// fixture tree to debug it from and a private workstation state directory.
pub struct Lab {
    pub node: TestNode,
    pub tree: Tree,
    pub state: tempfile::TempDir,
    /// Delve's port (free on this host: the tunnel's end has the same number).
    pub port: u16,
    /// What the node runs instead of the release build of the fixture, if anything.
    pub original: Option<Original>,
}

/// Another original for the node: its binary, the flags its manifest adds, its image tag.
pub struct Original {
    pub binary: PathBuf,
    pub args: Vec<String>,
    pub tag: String,
}

impl Lab {
    pub fn up(prefix: &str) -> Lab {
        Lab::up_with(prefix, Tree::fixture())
    }

    /// A lab whose workstation tree is `tree` (the node's original is always the 1.20-era build).
    pub fn up_with(prefix: &str, tree: Tree) -> Lab {
        Lab::up_running(prefix, tree, None)
    }

    /// A lab whose node runs `original` (default: the release build of the fixture).
    pub fn up_running(prefix: &str, tree: Tree, original: Option<Original>) -> Lab {
        let node = TestNode::up(TestNodeConfig::unique(prefix).bin(env!("CARGO_BIN_EXE_kdbg-testnode"))).unwrap();
        let bin = node.host_path(RELEASE_BIN);
        std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
        std::fs::copy(original.as_ref().map(|o| &o.binary).unwrap_or_else(|| release_binary()), &bin).unwrap();
        std::fs::write(node.host_path("/var/lib/minikube/certs/sa.key"), KEY).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let lab = Lab { node, tree, state: tempfile::tempdir().unwrap(), port, original };
        std::fs::write(lab.manifest_path(), lab.manifest()).unwrap();
        lab.wait_healthz();
        lab
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.node.manifests_dir().join("kube-apiserver.yaml")
    }

    /// As kubeadm v1.20 writes it (minikube's paths), serving plain HTTP on the node's address.
    pub fn manifest(&self) -> String {
        let m = lab::apiserver_manifest(self.node.ip(), &[("SECRET_TOKEN", SECRET)]);
        let Some(o) = &self.original else { return m };
        let flags: String = o.args.iter().map(|a| format!("    - {a}\n")).collect();
        let m = m.replace("    - --allow-privileged=true\n", &format!("    - --allow-privileged=true\n{flags}"));
        m.replace("kube-apiserver:v1.20.2\n", &format!("kube-apiserver:{}\n", o.tag))
    }

    /// `kdbg ARGS --target ssh://docker@IP --identity KEY --ssh-option UserKnownHostsFile=KH`.
    pub fn kdbg(&self, args: &[&str]) -> Run {
        let target = lab::target_args(&self.node);
        let all = args.iter().map(|a| a.to_string()).chain(target);
        self.tree.kdbg(all).env("KDBG_STATE_DIR", self.state.path())
    }

    pub fn debug(&self, extra: &[&str]) -> Run {
        let port = self.port.to_string();
        self.kdbg(&[&["debug", "apiserver", "--no-ide", "--port", &port], extra].concat())
    }

    pub fn restore(&self) -> Out {
        self.kdbg(&["restore"]).success()
    }

    pub fn get(&self, path: &str) -> std::io::Result<String> {
        lab::get(&self.node, path)
    }

    pub fn wait_healthz(&self) {
        lab::wait_healthz(&self.node, Duration::from_secs(60)).unwrap();
    }

    /// What must be as it was: the manifests directory's files and bytes, and the journal.
    pub fn snapshot(&self) -> BTreeMap<String, Vec<u8>> {
        let mut files: BTreeMap<String, Vec<u8>> = std::fs::read_dir(self.node.manifests_dir())
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
            .collect();
        let journal = self.node.host_path("/var/lib/kdbg/journal.json");
        files.insert("<journal>".into(), std::fs::read(journal).unwrap_or_default());
        files
    }

    /// Executables of every process in the node.
    pub fn node_exes(&self) -> Vec<String> {
        self.node_procs().into_iter().map(|(_, exe)| exe).collect()
    }

    /// Every process in the node: (pid, executable).
    pub fn node_procs(&self) -> Vec<(u32, String)> {
        let out = self.node.exec(["sh", "-c", "ls -l /proc/[0-9]*/exe 2>/dev/null; true"]).unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let (head, exe) = l.split_once(" -> ")?;
                let pid = head.rsplit_once("/proc/")?.1.strip_suffix("/exe")?.parse().ok()?;
                Some((pid, exe.to_string()))
            })
            .collect()
    }

    /// Nothing of kdbg runs: no dlv and no debug build on the node, no tunnel on this host; the
    /// original serves with its manifest's arguments.
    pub fn assert_clean(&self) {
        let exes = self.node_exes();
        assert!(!exes.iter().any(|e| e.starts_with("/var/lib/kdbg/")), "kdbg processes left on the node: {exes:?}");
        assert!(exes.iter().any(|e| e == RELEASE_BIN), "the original does not run: {exes:?}");
        // `-L 127.0.0.1:PORT:127.0.0.1:PORT`, or `-L 127.0.0.1:PORT:/path/dlv.sock`.
        let forward = format!("127.0.0.1:{}:", self.port);
        let tunnels: Vec<u32> = kdbg_tests::sys::all_pids()
            .into_iter()
            .filter(|p| {
                std::fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| c.split(|b| *b == 0).any(|a| a.starts_with(forward.as_bytes())))
            })
            .collect();
        assert!(tunnels.is_empty(), "tunnels left on this host: {tunnels:?}");
        self.wait_healthz();
        assert_eq!(self.args(), self.manifest_args());
    }

    /// The running apiserver's arguments (`GET /args`).
    pub fn args(&self) -> Vec<String> {
        let r = self.get("/args").unwrap();
        serde_json::from_str(r.split("\r\n\r\n").nth(1).unwrap()).unwrap()
    }

    pub fn manifest_args(&self) -> Vec<String> {
        lab::manifest_args(&self.manifest())
    }

    /// Through the tunnel on localhost:`port`: a breakpoint at the fixture's marker, a `/healthz`
    /// request that stops there, then completes once continued.
    pub fn hit_breakpoint(&self) {
        self.hit_breakpoint_at(self.port)
    }

    /// [`Lab::hit_breakpoint`] through localhost:`port`.
    pub fn hit_breakpoint_at(&self, port: u16) {
        self.hit_breakpoint_on(self, port)
    }

    /// [`Lab::hit_breakpoint`] on `node`'s apiserver, debugged from this lab's tree, through
    /// localhost:`port`.
    pub fn hit_breakpoint_on(&self, node: &Lab, port: u16) {
        node.hit_breakpoint_built_in(&self.tree.root, port)
    }

    /// [`Lab::hit_breakpoint`] on this lab's apiserver, debugged from the tree at `root` (a
    /// worktree, say), through localhost:`port`.
    pub fn hit_breakpoint_built_in(&self, root: &std::path::Path, port: u16) {
        let node = self;
        let binary = root.join("_output/bin/kube-apiserver");
        let recorded =
            kdbg_core::ide::dwarf::recorded_sources(camino::Utf8Path::new(binary.to_str().unwrap())).unwrap();
        let file = recorded.recorded_file("pkg/healthz/healthz.go");
        let line = lab::breakpoint_line(root).unwrap();
        let mut dlv = DlvClient::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(10)).unwrap();
        dlv.halt().unwrap();
        let bp = dlv.create_breakpoint_file_line(&file, line).unwrap();
        dlv.continue_async().unwrap();
        let response = std::thread::scope(|s| {
            let request = s.spawn(|| node.get("/healthz"));
            let stopped = dlv.wait_stopped(Duration::from_secs(60)).unwrap();
            let at = stopped.current_thread.unwrap();
            assert_eq!((at.file.as_str(), at.line), (file.as_str(), line));
            dlv.clear_breakpoint(bp.id).unwrap();
            dlv.continue_async().unwrap();
            request.join().unwrap().unwrap()
        });
        assert!(response.ends_with("\r\n\r\nok"), "{response}");
    }

    /// `kdbg plan apiserver --debug --no-ide --json`: the ids of the steps [`Lab::debug`] runs, in
    /// the order they start.
    pub fn debug_plan(&self) -> Vec<StepId> {
        let out = self.tree.kdbg(["plan", "apiserver", "--debug", "--no-ide", "--json"]).success();
        let plan: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
        plan["steps"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().parse().unwrap()).collect()
    }

    pub fn journal(&self) -> String {
        std::fs::read_to_string(self.node.host_path("/var/lib/kdbg/journal.json")).unwrap_or_default()
    }
}

#[test]
fn debug_hits_a_breakpoint_through_the_tunnel_and_restore_puts_everything_back() {
    let lab = Lab::up("sess");
    let before = lab.snapshot();
    let out = lab.debug(&[]).success();
    assert!(out.stdout.contains(&format!("dlv connect localhost:{}", lab.port)), "{}", out.stdout);
    assert!(out.stdout.contains("arguments from process "), "{}", out.stdout);
    // Debian's Delve 1.20 has no unix sockets: loopback TCP, and kdbg says why; the matrix's newer
    // Delves listen on a socket (see tests/it/socket.rs).
    let listen = match lab.tree.toolchain.dlv == std::path::Path::new(kdbg_tests::toolchain::DEFAULT_DLV) {
        true => format!("Delve listens on 127.0.0.1:{} (TCP: Delve 1.20.2 has no unix sockets", lab.port),
        false => "Delve listens on unix:/var/lib/kdbg/run/kube-apiserver/dlv.sock".to_string(),
    };
    if listen.contains("TCP") {
        assert!(out.stdout.contains("Delve listens on TCP: Delve 1.20.2 has no unix sockets"), "{}", out.stdout);
    }
    assert_eq!(lab.args(), lab.manifest_args(), "the debug build runs with the manifest's arguments");
    assert!(!lab.manifest_path().exists(), "the manifest left the kubelet's directory");
    let journal = lab.journal();
    assert!(journal.contains("\"SECRET_TOKEN\"") && journal.contains("/var/lib/minikube/certs/sa.key"), "{journal}");
    for (what, text) in [("journal", &journal), ("stdout", &out.stdout), ("stderr", &out.stderr)] {
        assert!(!text.contains(SECRET) && !text.contains("PRIVATE KEY"), "a secret in the {what}:\n{text}");
    }
    let exes = lab.node_exes();
    assert!(exes.iter().any(|e| e == "/var/lib/kdbg/bin/kube-apiserver") && !exes.iter().any(|e| e == RELEASE_BIN));

    // A breakpoint at the fixture's marker, set through the tunnel.
    let binary = lab.tree.path("_output/bin/kube-apiserver");
    let recorded = kdbg_core::ide::dwarf::recorded_sources(camino::Utf8Path::new(binary.to_str().unwrap())).unwrap();
    let file = recorded.recorded_file(lab.tree.healthz());
    let text = std::fs::read_to_string(lab.tree.path(lab.tree.healthz())).unwrap();
    let line = text.lines().position(|l| l.contains("kdbg-fixture: breakpoint here")).unwrap() as u32 + 1;
    let mut dlv = DlvClient::connect(&format!("127.0.0.1:{}", lab.port), Duration::from_secs(10)).unwrap();
    dlv.halt().unwrap();
    dlv.create_breakpoint_file_line(&file, line).unwrap();
    dlv.continue_async().unwrap();
    let probe = Probe::new();
    let request = std::thread::scope(|s| {
        let request = s.spawn(|| lab.get(&probe.path()));
        let stopped = dlv.wait_stopped(Duration::from_secs(60)).unwrap();
        let at = stopped.current_thread.unwrap();
        assert_eq!((at.file.as_str(), at.line), (file.as_str(), line));
        // The halted goroutine serves this request, so its answer cannot have been sent.
        let serving = rpc_eval(&format!("127.0.0.1:{}", lab.port), QUERY_EXPR).unwrap();
        assert_eq!(serving, probe.query());
        assert!(!request.is_finished(), "the request waits at the breakpoint");
        let halted = format!("halted at {file}:{line}");
        let status = lab.kdbg(&["status"]).success();
        assert!(status.stdout.contains(&halted) && status.stdout.contains("launched"), "{}", status.stdout);
        assert!(status.stdout.contains(&listen), "{listen:?} in {}", status.stdout);
        // From a workstation without the tunnel: status opens a short-lived one.
        let elsewhere = tempfile::tempdir().unwrap();
        let status = lab.kdbg(&["status"]).env("KDBG_STATE_DIR", elsewhere.path()).success();
        assert!(status.stdout.contains(&halted), "{}", status.stdout);
        dlv.continue_async().unwrap();
        request.join().unwrap().unwrap()
    });
    assert!(request.starts_with("HTTP/1.0 200 OK") && request.ends_with("\r\n\r\nok"), "{request}");

    // Delve is on the node's loopback only.
    assert!(TcpStream::connect_timeout(&(lab.node.ip(), lab.port).into(), Duration::from_secs(2)).is_err());

    // A second session while this one holds the node.
    let second = lab.debug(&[]).failure(1);
    assert!(second.stderr.contains("kube-apiserver on docker@") && second.stderr.contains("already under debug"));
    assert!(second.stderr.contains("`kdbg restore kube-apiserver`"), "{}", second.stderr);

    drop(dlv);
    // From another workstation: only the node's journal is needed.
    let elsewhere = tempfile::tempdir().unwrap();
    let restored = lab.kdbg(&["restore"]).env("KDBG_STATE_DIR", elsewhere.path()).success();
    assert!(restored.stdout.contains("the original runs again"), "{}", restored.stdout);
    assert_eq!(lab.snapshot(), before, "the manifests directory is byte-identical");
    // Back on this workstation, restore has nothing left to do on the node but stops the tunnel.
    let again = lab.kdbg(&["restore"]).success();
    assert!(again.stdout.contains("nothing to restore"), "restore is idempotent: {}", again.stdout);
    assert!(again.stderr.contains(&format!("stopped the tunnel localhost:{}", lab.port)), "{}", again.stderr);
    lab.assert_clean();
    assert!(lab.kdbg(&["status"]).success().stdout.contains("nothing is under debug"));

    // --expose: reachable from the host, with a warning; --wait-for-debugger: held at its entry
    // until a debugger continues it; this time with VSCode entries.
    let port = lab.port.to_string();
    let exposed = lab.kdbg(&["debug", "apiserver", "--port", &port, "--expose", "--wait-for-debugger"]).success();
    assert!(exposed.stderr.contains("unauthenticated"), "{}", exposed.stderr);
    let launch = std::fs::read_to_string(lab.tree.path(".vscode/launch.json")).unwrap();
    assert!(launch.contains("kdbg: attach kube-apiserver") && launch.contains(&port), "{launch}");
    assert!(lab.get("/healthz").is_err(), "the program waits for the debugger");
    let mut remote = DlvClient::connect(&format!("{}:{}", lab.node.ip(), lab.port), Duration::from_secs(5)).unwrap();
    assert!(!remote.state_nonblocking().unwrap().running);
    remote.continue_async().unwrap();
    lab.wait_healthz();
    drop(remote);
    lab.restore();
    assert_eq!(lab.snapshot(), before);
    lab.assert_clean();
}
