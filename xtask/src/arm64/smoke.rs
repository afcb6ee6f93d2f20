//! The smoke flow that proves the arm64 node: the fixture apiserver cross-built for linux/arm64
//! by hand runs as a static pod and serves `/healthz`; the node's arm64 Delve, driven from this
//! host through an ssh forward, stops it at the healthz handler's breakpoint on a request we can
//! recognise; then the static pod comes back and the node is as it was.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{bail, ensure, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use kdbg_core::dlv::DlvClient;
use kdbg_tests::arm64::{Arm64Node, NODE_DLV, NODE_IP};
use kdbg_tests::lab;
use kdbg_tests::probe::{Probe, QUERY_EXPR};
use xshell::{cmd, Shell};

use crate::e2e::{wait_until, Stages};

/// Where the node's apiserver binary lives.
pub const NODE_APISERVER: &str = "/usr/local/bin/kube-apiserver";
const MANIFEST: &str = "/etc/kubernetes/manifests/kube-apiserver.yaml";
const DLV_LISTEN: &str = "127.0.0.1:2345";
/// From the first continue to the stop: the apiserver starting under Delve, then the request.
const STOP_TIMEOUT: Duration = Duration::from_secs(180);

/// `GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -gcflags='all=-N -l'` of the fixture's
/// apiserver with Debian's Go 1.19, into `out`; checks the ELF is aarch64.
pub fn cross_build_apiserver(sh: &Shell, out: &Utf8Path) -> Result<()> {
    let tree = fixture_tree();
    let _cwd = sh.push_dir(&tree);
    let go = format!("{}/go", lab::GO_BIN);
    let gcflags = "-gcflags=all=-N -l";
    cmd!(sh, "{go} build {gcflags} -o {out} ./cmd/kube-apiserver")
        .env("GOOS", "linux")
        .env("GOARCH", "arm64")
        .env("CGO_ENABLED", "0")
        .run()?;
    let head = std::fs::read(out)?;
    // e_machine (offset 18, little endian) 183 is EM_AARCH64.
    ensure!(head.len() > 20 && head[18] == 183 && head[19] == 0, "{out} is not an aarch64 ELF");
    Ok(())
}

/// The 1.20-era fixture tree of this repository (built with `-o` elsewhere; nothing written in it).
pub fn fixture_tree() -> Utf8PathBuf {
    Utf8PathBuf::from_path_buf(kdbg_tests::fixture::source()).expect("a UTF-8 repository path")
}

/// The apiserver's static pod as kubeadm writes it, running [`NODE_APISERVER`].
pub fn manifest() -> String {
    lab::apiserver_manifest(NODE_IP, &[]).replace(lab::RELEASE_BIN, NODE_APISERVER)
}

/// Copies `bin` to the node and puts the manifest in place; the runner starts it. Returns the
/// local port forwarded to the apiserver once `/healthz` answers `ok` there.
pub fn install_static_pod(node: &Arm64Node, bin: &Utf8Path) -> Result<u16> {
    node.ssh_with_input(
        &format!("sudo -n sh -c 'cat > {NODE_APISERVER}.tmp && chmod 755 {NODE_APISERVER}.tmp && mv {NODE_APISERVER}.tmp {NODE_APISERVER}'"),
        &std::fs::read(bin)?,
    )?;
    node.ssh_with_input(&format!("sudo -n tee {MANIFEST} >/dev/null"), manifest().as_bytes())?;
    let port = node.forward(&format!("{NODE_IP}:{}", lab::API_PORT))?;
    wait_healthz(node, port)?;
    Ok(port)
}

/// Waits (generously: a -N -l apiserver under emulation is slow to start) for `/healthz` → `ok`.
pub fn wait_healthz(node: &Arm64Node, port: u16) -> Result<()> {
    wait_until("the arm64 node's apiserver to serve /healthz", Duration::from_secs(120), || {
        get(port, "/healthz").is_ok_and(|r| body(&r) == "ok")
    })
    .with_context(|| format!("pod log: {}", node.ssh("cat /var/log/pods/kube-apiserver.yaml.log").unwrap_or_default()))
}

/// Stops the static pod (its manifest moved out, as kdbg does), runs the apiserver under the
/// node's Delve, sets the breakpoint from this host, and checks a probe request stops there.
/// Delve runs as root and the forward arrives as `docker` (sshd), hence `--only-same-user=false`,
/// as kdbg's TCP endpoint does.
pub fn breakpoint_through_delve(stages: &mut Stages, node: &Arm64Node, api_port: u16) -> Result<()> {
    stages.run("static pod stopped (manifest moved out)", || {
        node.ssh(&format!("sudo -n mv {MANIFEST} /tmp/kube-apiserver.yaml"))?;
        wait_until("the runner to stop the apiserver", Duration::from_secs(30), || {
            node.ssh("pidof kube-apiserver").is_err()
        })
    })?;
    let dlv_port = stages.run("arm64 Delve on the node: dlv exec --headless (API answering)", || {
        let args = lab::manifest_args(&manifest()).join(" ");
        node.ssh(&format!(
            "sudo -n setsid {NODE_DLV} exec --headless --listen={DLV_LISTEN} --api-version=2 --accept-multiclient --only-same-user=false \
             {NODE_APISERVER} -- {args} </dev/null >/tmp/dlv.log 2>&1 &"
        ))?;
        let port = node.forward(DLV_LISTEN)?;
        wait_until("the node's Delve to answer through the forward", Duration::from_secs(60), || {
            DlvClient::connect(&format!("127.0.0.1:{port}"), Duration::from_secs(5))
                .and_then(|mut c| c.state_nonblocking())
                .is_ok()
        })
        .with_context(|| format!("Delve's output: {}", node.ssh("cat /tmp/dlv.log").unwrap_or_default()))?;
        Ok(port)
    })?;
    stages.run("breakpoint in the healthz handler hit from the host (JSON-RPC)", || {
        hit_breakpoint(&format!("127.0.0.1:{dlv_port}"), api_port)
    })?;
    stages.run("static pod back (manifest restored, /healthz ok)", || {
        wait_until("Delve to exit", Duration::from_secs(30), || node.ssh("pidof dlv").is_err())?;
        node.ssh(&format!("sudo -n mv /tmp/kube-apiserver.yaml {MANIFEST}"))?;
        wait_healthz(node, api_port)
    })
}

fn hit_breakpoint(addr: &str, api_port: u16) -> Result<()> {
    let tree = fixture_tree();
    let file = tree.join(lab::healthz_file(tree.as_std_path()));
    let line = lab::breakpoint_line(tree.as_std_path())?;
    let mut dlv = DlvClient::connect(addr, Duration::from_secs(10))?;
    dlv.call_timeout = Duration::from_secs(60);
    let bp = dlv.create_breakpoint_file_line(file.as_str(), line)?;
    eprintln!("arm64: breakpoint {} at {}:{} ({:?})", bp.id, bp.file, bp.line, bp.function);
    // Launched without --continue, the target waits at its entry until this continue.
    dlv.continue_async()?;
    let probe = Probe::new();
    let path = probe.path();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let request = {
        let done = done.clone();
        // Until Delve reports the stop: a forward whose far end does not listen yet accepts and
        // closes, so the request is sent again until the server holds it.
        std::thread::spawn(move || {
            let t = std::time::Instant::now();
            while !done.load(Ordering::SeqCst) && t.elapsed() < STOP_TIMEOUT {
                let held = TcpStream::connect(("127.0.0.1", api_port)).is_ok_and(|s| send_get(&s, &path).is_ok());
                if held {
                    return;
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let stopped = dlv.wait_stopped(STOP_TIMEOUT);
    done.store(true, Ordering::SeqCst);
    let stopped = stopped?;
    let at = stopped.current_thread.context("Delve stopped without a current thread")?;
    ensure!(at.file == file.as_str() && at.line == line, "stopped at {}:{}, not at the breakpoint", at.file, at.line);
    let query = kdbg_tests::probe::rpc_eval(addr, QUERY_EXPR)?;
    ensure!(query == probe.query(), "stopped serving {query:?}, not the probe {:?}", probe.query());
    eprintln!("arm64: stopped at {}:{} serving {query}", at.file, at.line);
    dlv.detach(true)?;
    request.join().map_err(|_| anyhow::anyhow!("the probe thread panicked"))?;
    Ok(())
}

/// Sends a GET; `Ok` once the server holds it (no answer within 5 s: stopped at the breakpoint)
/// or answers it.
fn send_get(stream: &TcpStream, path: &str) -> std::io::Result<()> {
    let mut s = stream;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())?;
    // A forward whose far end is not listening yet accepts and closes: wait for either a byte
    // (the answer) or a reset/close, and count only a request the server kept open.
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut byte = [0u8; 1];
    match s.read(&mut byte) {
        Ok(0) => Err(std::io::ErrorKind::UnexpectedEof.into()),
        Ok(_) => Ok(()),
        Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => Ok(()),
        Err(e) => Err(e),
    }
}

/// A plain HTTP/1.0 GET to 127.0.0.1:`port`; the whole response.
pub fn get(port: u16, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// Fails unless `before` and `after` are equal, showing both.
pub fn same_node(before: &kdbg_tests::arm64::Snapshot, after: &kdbg_tests::arm64::Snapshot) -> Result<()> {
    if before != after {
        bail!("the arm64 node is not as it was\nbefore:\n{before:?}\nafter:\n{after:?}");
    }
    Ok(())
}
