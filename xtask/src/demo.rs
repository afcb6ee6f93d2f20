//! `cargo xtask demo`: the main job. A full kdbg session on the built-in fixture tree against a
//! minikube-shaped test node, narrated step by step; no cluster needed.

use std::io::IsTerminal;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use camino::Utf8PathBuf;
use kdbg_core::dlv::DlvClient;
use kdbg_tests::{lab, TestNodeConfig};
use xshell::{cmd, Shell};

pub fn run(sh: &Shell) -> Result<()> {
    crate::setup::ensure_packages(sh)?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    eprintln!("demo: building kdbg and the test node harness");
    cmd!(sh, "{cargo} build --quiet -p kdbg-cli -p kdbg-tests --bins").run()?;
    let bins = crate::target_dir().join("debug");
    let work = crate::project_root().join("target/kdbg-demo");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("release"))?;
    let tree = Utf8PathBuf::try_from(kdbg_tests::fixture::copy_to(work.as_std_path())?)?;
    let _env = sh.push_env("KDBG_STATE_DIR", work.join("state"));
    let _dir = sh.push_dir(&tree);

    step("the cluster: a minikube-shaped node (own IP, own /etc/kubernetes, user docker, sshd) running a release build of kube-apiserver from /etc/kubernetes/manifests");
    let release_tree = kdbg_tests::fixture::copy_to(work.join("release").as_std_path())?;
    let release = lab::release_build(&release_tree, "kube-apiserver")?;
    let config = TestNodeConfig::unique("demo").bin(bins.join("kdbg-testnode"));
    let (node, _manifest) = lab::apiserver_node(config, &release, &[])?;
    println!("node {} is up; GET http://{}:{}/healthz -> ok", node.ssh_target(), node.ip(), lab::API_PORT);
    let manifests_before = snapshot(&node.manifests_dir())?;
    let target = &lab::target_args(&node);
    let kdbg = bins.join("kdbg");

    step(&format!(
        "a kubernetes-shaped source tree at {tree} (the fixture, tagged v1.20.2); kdbg plan shows what would run"
    ));
    cmd!(sh, "{kdbg} plan apiserver").run()?;

    step("kdbg debug apiserver: debug build, copy only what the node lacks, capture the manifest's args, move the manifest out, run it under dlv on the node's loopback, open an ssh tunnel");
    cmd!(sh, "{kdbg} debug apiserver {target...}").run()?;

    step("kdbg status");
    cmd!(sh, "{kdbg} status {target...}").run()?;

    let line = lab::breakpoint_line(tree.as_std_path())?;
    step(&format!(
        "a Delve client through the tunnel: breakpoint at pkg/healthz/healthz.go:{line}, then GET /healthz on the node"
    ));
    breakpoint(&node, line)?;

    step("nothing changed, so nothing is rebuilt or copied again");
    cmd!(sh, "{kdbg} build apiserver").run()?;
    cmd!(sh, "{kdbg} deploy apiserver {target...}").run()?;

    step("VSCode: .vscode/launch.json and tasks.json now attach to it (F5)");
    println!("{}", std::fs::read_to_string(tree.join(".vscode/launch.json")).unwrap_or_default());

    if std::io::stdin().is_terminal() {
        println!("\nThe session is live: `dlv connect localhost:2345`, or open {tree} in VSCode and press F5.");
        println!("Press Enter to restore the node and end the demo.");
        let _ = std::io::stdin().read_line(&mut String::new());
    }

    step("kdbg restore: stop dlv and the tunnel, put the manifest back, wait for the original");
    cmd!(sh, "{kdbg} restore {target...}").run()?;
    ensure!(snapshot(&node.manifests_dir())? == manifests_before, "the manifests directory differs from before");
    lab::wait_healthz(&node, Duration::from_secs(60))?;
    println!("/etc/kubernetes/manifests is byte-identical to before; the release apiserver serves /healthz again");

    step("your clone moves on to v1.20.3 while the node still runs v1.20.2 (kdbg debug would warn about the skew): --match-node builds exactly the node's version in a git worktree, with its own cache, and leaves your checkout alone");
    let healthz = tree.join("pkg/healthz/healthz.go");
    std::fs::write(&healthz, std::fs::read_to_string(&healthz)? + "\n// changed in v1.20.3\n")?;
    cmd!(sh, "git -c user.name=demo -c user.email=demo@localhost commit -qam v1.20.3").run()?;
    cmd!(sh, "git tag v1.20.3").run()?;
    cmd!(sh, "{kdbg} debug apiserver --match-node --no-ide {target...}").run()?;
    cmd!(sh, "{kdbg} status {target...}").run()?;
    cmd!(sh, "{kdbg} restore {target...}").run()?;
    cmd!(sh, "{kdbg} worktrees").run()?;
    ensure!(snapshot(&node.manifests_dir())? == manifests_before, "the manifests directory differs from before");
    Ok(())
}

fn breakpoint(node: &kdbg_tests::TestNode, line: u32) -> Result<()> {
    let mut dlv =
        DlvClient::connect("127.0.0.1:2345", Duration::from_secs(10)).context("connecting through the tunnel")?;
    dlv.halt()?;
    let bp = dlv.create_breakpoint_file_line("k8s.io/kubernetes/pkg/healthz/healthz.go", line)?;
    dlv.continue_async()?;
    let node_ip = node.ip();
    let request = std::thread::spawn(move || {
        let mut s = std::net::TcpStream::connect((node_ip, lab::API_PORT))?;
        std::io::Write::write_all(&mut s, b"GET /healthz HTTP/1.0\r\n\r\n")?;
        kdbg_core::host::read_lossy(s)
    });
    let state = dlv.wait_stopped(Duration::from_secs(60))?;
    if let Some(l) = &state.current_thread {
        println!("stopped at {}:{} in {}", l.file, l.line, l.function.as_deref().unwrap_or("?"));
    }
    dlv.clear_breakpoint(bp.id)?;
    dlv.continue_async()?;
    let response = request.join().expect("request thread")?;
    println!("after continue, GET /healthz answered: {}", lab::body(&response));
    ensure!(lab::body(&response) == "ok", "unexpected response: {response}");
    Ok(())
}

fn snapshot(dir: &std::path::Path) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        files.push((e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path())?));
    }
    files.sort();
    Ok(files)
}

fn step(what: &str) {
    println!("\n==> {what}");
}
