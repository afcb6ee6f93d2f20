//! A throwaway OCI registry for the bench and the real-cluster tier: Debian's `docker-registry`
//! (CNCF Distribution) as a plain process on 127.0.0.1, plain HTTP, with its own config and its
//! storage in a temp dir. Killed (and its directory removed) when dropped, on every exit path.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::Shell;

/// The registry's program (Debian package `docker-registry`).
pub const PROGRAM: &str = "/usr/bin/docker-registry";

pub struct Registry {
    child: Child,
    pub port: u16,
    /// Config, log and storage; removed on drop.
    dir: tempfile::TempDir,
}

impl Registry {
    /// Installs `docker-registry` when missing, starts it on a free loopback port, and waits
    /// until `/v2/` answers.
    pub fn start(sh: &Shell) -> Result<Registry> {
        crate::setup::ensure_extra(sh, &[(PROGRAM, "docker-registry")])?;
        let dir = tempfile::Builder::new().prefix("kdbg-registry-").tempdir()?;
        let root = Utf8PathBuf::try_from(dir.path().to_owned())?;
        let port = free_port()?;
        let config = root.join("config.yml");
        std::fs::write(&config, config_yaml(&root.join("storage"), port))?;
        let log = std::fs::File::create(root.join("registry.log"))?;
        let child = Command::new(PROGRAM)
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {PROGRAM} serve {config}"))?;
        let mut registry = Registry { child, port, dir };
        registry.wait_ready(Duration::from_secs(30))?;
        eprintln!("xtask: docker-registry listens on 127.0.0.1:{port} (plain HTTP, storage in {root}/storage)");
        Ok(registry)
    }

    /// `oci://127.0.0.1:PORT/<repo>`.
    pub fn url(&self, repo: &str) -> String {
        format!("oci://127.0.0.1:{}/{repo}", self.port)
    }

    pub fn root(&self) -> &Utf8Path {
        Utf8Path::from_path(self.dir.path()).expect("tempdir paths are UTF-8")
    }

    /// The blobs the registry stores (Distribution's filesystem layout), largest first: for
    /// one pushed artifact the first is its layer, the binary as sent.
    pub fn blob_sizes(&self) -> Result<Vec<u64>> {
        let blobs = self.root().join("storage/docker/registry/v2/blobs/sha256");
        let mut sizes = Vec::new();
        if !blobs.exists() {
            return Ok(sizes);
        }
        for prefix in blobs.read_dir_utf8().with_context(|| format!("reading {blobs}"))? {
            for blob in prefix?.path().read_dir_utf8()? {
                if let Ok(m) = std::fs::metadata(blob?.path().join("data")) {
                    sizes.push(m.len());
                }
            }
        }
        sizes.sort_unstable_by(|a, b| b.cmp(a));
        Ok(sizes)
    }

    fn wait_ready(&mut self, timeout: Duration) -> Result<()> {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if let Some(status) = self.child.try_wait()? {
                bail!("docker-registry exited ({status}) before it answered:\n{}", self.log_tail());
            }
            if v2_answers(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "docker-registry did not answer on 127.0.0.1:{} within {}s:\n{}",
            self.port,
            timeout.as_secs(),
            self.log_tail()
        )
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.root().join("registry.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes `sh`'s kdbg runs use only the cache their `--cache` names: `KDBG_CONFIG` points at a
/// file that does not exist in `scratch`, `KDBG_CACHE` is empty. Undone when the guards drop.
pub fn no_cache_settings<'a>(sh: &'a Shell, scratch: &Utf8Path) -> [xshell::PushEnv<'a>; 2] {
    [sh.push_env("KDBG_CONFIG", scratch.join("no-kdbg-config.toml")), sh.push_env("KDBG_CACHE", "")]
}

/// A port nothing listens on now (the registry binds it right after).
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Only loopback, no auth, no TLS; storage where the caller says; no debug server.
fn config_yaml(storage: &Utf8Path, port: u16) -> String {
    format!(
        "version: 0.1\n\
         log:\n  level: warn\n  accesslog:\n    disabled: true\n\
         storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n\
         http:\n  addr: 127.0.0.1:{port}\n"
    )
}

/// `GET /v2/` answers 200 (an open registry).
fn v2_answers(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let req = format!("GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
    let mut head = [0u8; 12];
    s.write_all(req.as_bytes()).is_ok() && s.read_exact(&mut head).is_ok() && head.ends_with(b" 200")
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_registry_answers_on_loopback_and_is_gone_after_drop() {
        let sh = xshell::Shell::new().unwrap();
        let registry = super::Registry::start(&sh).unwrap();
        let (port, root) = (registry.port, registry.root().to_owned());
        assert!(super::v2_answers(port));
        assert_eq!(registry.url("kdbg"), format!("oci://127.0.0.1:{port}/kdbg"));
        assert!(registry.blob_sizes().unwrap().is_empty());
        drop(registry);
        assert!(!super::v2_answers(port) && !root.exists());
    }

    #[test]
    fn the_config_binds_loopback_only() {
        let yaml = super::config_yaml(camino::Utf8Path::new("/tmp/x/storage"), 5999);
        assert!(yaml.contains("addr: 127.0.0.1:5999"));
        assert!(yaml.contains("rootdirectory: /tmp/x/storage"));
        assert!(!yaml.contains("tls") && !yaml.contains("auth"));
    }
}
