//! An OCI registry for the remote-cache tests: Debian's `docker-registry` (CNCF Distribution 2.8.2)
//! run as a plain process with its own YAML config and a storage root in a temp dir.
//!
//! The registry listens on a free port of 127.0.0.1, or of an address inside a network namespace
//! (run under `ip netns exec NS`, e.g. a [`crate::TestNode`]'s, whose IP the host reaches over the
//! node's veth link). Options: TLS with a test CA made by the openssl CLI (the server certificate
//! has `subjectAltName=IP:<addr>`; [`Registry::ca`] is the CA's PEM) and htpasswd (bcrypt) basic
//! auth; without them it speaks plain HTTP to anyone. The package's own
//! `/etc/docker/registry/config.yml` (which listens on `:5000` on every interface) is never used.
//!
//! ```no_run
//! use kdbg_tests::registry::{Registry, RegistryConfig};
//! let registry = Registry::start(RegistryConfig::loopback().tls().auth("ci", "s3cret")).unwrap();
//! println!("{} trusts {}", registry.url(), registry.ca().unwrap().display());
//! drop(registry); // kills the process, removes its storage
//! ```
//!
//! Credentials the way Docker keeps them are in [`docker`]; certificates in [`certs`].

pub mod certs;
pub mod docker;

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::sys::{cmd, run, tool, wait_for};

/// How long a started registry may take to answer `/v2/`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How many ports are tried when the chosen one turns out to be taken.
const PORT_TRIES: usize = 5;

/// How to start a [`Registry`].
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// The address it listens on (default 127.0.0.1).
    pub addr: IpAddr,
    /// The network namespace it runs in (`ip netns exec NS`), where `addr` lives.
    pub netns: Option<String>,
    /// Serve HTTPS with a certificate of a test CA.
    pub tls: bool,
    /// htpasswd basic auth with this one user and password.
    pub auth: Option<(String, String)>,
}

impl RegistryConfig {
    /// Plain HTTP on 127.0.0.1, anonymous.
    pub fn loopback() -> Self {
        Self { addr: IpAddr::from([127, 0, 0, 1]), netns: None, tls: false, auth: None }
    }

    /// Plain HTTP on `addr` inside the network namespace `netns` (a test node's IP and netns).
    pub fn in_netns(netns: impl Into<String>, addr: impl Into<IpAddr>) -> Self {
        Self { addr: addr.into(), netns: Some(netns.into()), ..Self::loopback() }
    }

    /// Serves HTTPS with a certificate for `addr` signed by a fresh test CA.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// Requires basic auth as `user`/`password` (bcrypt htpasswd entry).
    pub fn auth(mut self, user: &str, password: &str) -> Self {
        self.auth = Some((user.to_string(), password.to_string()));
        self
    }
}

/// A running `docker-registry serve`; dropping it kills the process and removes its files.
pub struct Registry {
    dir: tempfile::TempDir,
    config: RegistryConfig,
    port: u16,
    child: Option<Child>,
    ca: Option<PathBuf>,
}

/// One line of the registry's access log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub uri: String,
    pub status: u16,
}

impl Registry {
    /// Starts the registry and waits (up to 20 s) until `/v2/` answers.
    pub fn start(config: RegistryConfig) -> Result<Registry> {
        let program = tool("docker-registry");
        if !program.is_absolute() {
            bail!("the registry tests need Debian's docker-registry: apt-get install -y docker-registry");
        }
        let dir = tempfile::Builder::new().prefix("kdbg-registry-").tempdir().context("create the registry's dir")?;
        std::fs::create_dir(dir.path().join("storage"))?;
        let ca = match config.tls {
            true => Some(certs::make(dir.path(), config.addr)?.ca),
            false => None,
        };
        if let Some((user, password)) = &config.auth {
            let entry = run(cmd("htpasswd").args(["-Bbn", user, password]))
                .context("make the htpasswd entry (apt-get install -y apache2-utils)")?;
            std::fs::write(dir.path().join("htpasswd"), entry.stdout)?;
        }
        let mut registry = Registry { dir, config, port: 0, child: None, ca };
        registry.launch()?;
        Ok(registry)
    }

    /// Tries a few free ports: a port free on this host may be taken in the namespace.
    fn launch(&mut self) -> Result<()> {
        let mut last = None;
        for _ in 0..PORT_TRIES {
            self.port = free_port()?;
            match self.spawn_and_wait() {
                Ok(()) => return Ok(()),
                Err(e) if self.log().contains("address already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no port")))
            .with_context(|| format!("no free port for the registry on {} after {PORT_TRIES} tries", self.config.addr))
    }

    fn spawn_and_wait(&mut self) -> Result<()> {
        let config_file = self.dir.path().join("config.yml");
        std::fs::write(&config_file, self.config_yaml())?;
        let log = std::fs::File::create(self.log_path())?;
        let mut command = match &self.config.netns {
            Some(netns) => {
                let mut c = cmd("ip");
                c.args(["netns", "exec", netns]).arg(tool("docker-registry"));
                c
            }
            None => cmd("docker-registry"),
        };
        command.arg("serve").arg(&config_file).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        self.child = Some(command.spawn().context("start docker-registry")?);
        let ready = wait_for(READY_TIMEOUT, Duration::from_millis(50), || {
            if !self.running() {
                return Some(false);
            }
            self.status("/v2/", None).ok().filter(|code| *code != 0).map(|_| true)
        });
        if ready == Some(true) {
            return Ok(());
        }
        self.stop();
        let why =
            if ready.is_none() { format!("did not answer /v2/ within {READY_TIMEOUT:?}") } else { "exited".into() };
        bail!("docker-registry on {} {why}; its log:\n{}", self.host_port(), self.log())
    }

    fn config_yaml(&self) -> String {
        let root = self.storage();
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  \
             delete:\n    enabled: true\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
             http:\n  addr: {}\n  secret: kdbg-test-secret\n",
            root.display(),
            self.host_port()
        );
        if self.ca.is_some() {
            let dir = self.dir.path().display();
            yaml.push_str(&format!("  tls:\n    certificate: {dir}/server.pem\n    key: {dir}/server.key\n"));
        }
        if self.config.auth.is_some() {
            let path = self.dir.path().join("htpasswd");
            yaml.push_str(&format!("auth:\n  htpasswd:\n    realm: kdbg-test\n    path: {}\n", path.display()));
        }
        yaml
    }

    /// `ADDR:PORT` (what Docker's config.json keys credentials by).
    pub fn host_port(&self) -> String {
        match self.config.addr {
            IpAddr::V6(a) => format!("[{a}]:{}", self.port),
            IpAddr::V4(a) => format!("{a}:{}", self.port),
        }
    }

    /// `oci://ADDR:PORT/kdbg`: the cache URL kdbg is given.
    pub fn url(&self) -> String {
        format!("oci://{}/kdbg", self.host_port())
    }

    /// `https://ADDR:PORT` or `http://ADDR:PORT`.
    pub fn base_url(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.host_port())
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The test CA's certificate (PEM), when the registry serves TLS.
    pub fn ca(&self) -> Option<&Path> {
        self.ca.as_deref()
    }

    /// The storage root (`storage.filesystem.rootdirectory`).
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// Where the filesystem driver keeps the blob `sha256:HEX`.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap_or(digest);
        self.storage().join("docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }

    /// The digest the tag `repo:tag` points at, read from the storage (None: no such tag).
    pub fn manifest_digest(&self, repo: &str, tag: &str) -> Option<String> {
        let link = self.storage().join("docker/registry/v2/repositories").join(repo);
        let link = link.join("_manifests/tags").join(tag).join("current/link");
        std::fs::read_to_string(link).ok().map(|s| s.trim().to_string())
    }

    /// The manifest `repo:tag` as stored (None: no such tag).
    pub fn manifest(&self, repo: &str, tag: &str) -> Option<serde_json::Value> {
        let bytes = std::fs::read(self.blob_path(&self.manifest_digest(repo, tag)?)).ok()?;
        serde_json::from_slice(&bytes).ok()
    }

    /// Stores `manifest` (as compact JSON) and points `repo:tag` at it, the way a push of it would
    /// leave the storage (its blob, the repository's revision link, the tag's current and index
    /// links). Returns its digest. For tests that change what a registry serves.
    pub fn put_manifest(&self, repo: &str, tag: &str, manifest: &serde_json::Value) -> Result<String> {
        use sha2::Digest;
        let bytes = serde_json::to_vec(manifest)?;
        let hex = hex::encode(sha2::Sha256::digest(&bytes));
        let digest = format!("sha256:{hex}");
        let blob = self.blob_path(&digest);
        std::fs::create_dir_all(blob.parent().unwrap())?;
        std::fs::write(&blob, &bytes)?;
        let manifests = self.storage().join("docker/registry/v2/repositories").join(repo).join("_manifests");
        let tag_dir = manifests.join("tags").join(tag);
        for dir in [
            manifests.join("revisions/sha256").join(&hex),
            tag_dir.join("current"),
            tag_dir.join("index/sha256").join(&hex),
        ] {
            std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
            std::fs::write(dir.join("link"), &digest)?;
        }
        Ok(digest)
    }

    /// Every tag of `repo` in the storage.
    pub fn tags(&self, repo: &str) -> Vec<String> {
        let dir = self.storage().join("docker/registry/v2/repositories").join(repo).join("_manifests/tags");
        let entries = std::fs::read_dir(dir).into_iter().flatten().filter_map(|e| e.ok());
        let mut tags: Vec<String> = entries.map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        tags.sort();
        tags
    }

    /// Every blob digest in the storage (`sha256:HEX`), sorted.
    pub fn blobs(&self) -> Vec<String> {
        let root = self.storage().join("docker/registry/v2/blobs/sha256");
        let prefixes = std::fs::read_dir(root).into_iter().flatten().filter_map(|e| e.ok());
        let dirs = prefixes.flat_map(|p| std::fs::read_dir(p.path()).into_iter().flatten().filter_map(|e| e.ok()));
        let mut blobs: Vec<String> = dirs.map(|d| format!("sha256:{}", d.file_name().to_string_lossy())).collect();
        blobs.sort();
        blobs
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("registry.log")
    }

    /// What the registry logged so far (its own lines and the access log).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The requests of its access log (`ADDR - - [...] "METHOD URI HTTP/1.1" STATUS ...`), in order.
    pub fn requests(&self) -> Vec<Request> {
        self.log().lines().filter_map(parse_access).collect()
    }

    /// The requests that start or carry a blob upload (`POST`/`PATCH`/`PUT …/blobs/uploads/…`).
    pub fn blob_uploads(&self) -> Vec<Request> {
        let upload = |r: &Request| r.uri.contains("/blobs/uploads/") && r.method != "GET" && r.method != "HEAD";
        self.requests().into_iter().filter(upload).collect()
    }

    /// The HTTP status of `GET path` (0: no answer), as `user:password` if given; curl with the
    /// test CA, so a TLS registry is checked like a client that trusts it.
    pub fn status(&self, path: &str, credentials: Option<(&str, &str)>) -> Result<u16> {
        let mut curl = Command::new(tool("curl"));
        curl.args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5"]);
        if let Some(ca) = &self.ca {
            curl.arg("--cacert").arg(ca);
        }
        if let Some((user, password)) = credentials {
            curl.arg("-u").arg(format!("{user}:{password}"));
        }
        let out = curl.arg(format!("{}{path}", self.base_url())).output().context("run curl (apt-get install curl)")?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0))
    }

    /// True while the process runs.
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// Kills the process (the storage stays until the value is dropped); idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

fn parse_access(line: &str) -> Option<Request> {
    let (_, rest) = line.split_once("] \"")?;
    let (request, rest) = rest.split_once("\" ")?;
    let mut parts = request.split(' ');
    let (method, uri) = (parts.next()?, parts.next()?);
    let status = rest.split(' ').next()?.parse().ok()?;
    Some(Request { method: method.to_string(), uri: uri.to_string(), status })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_access_log_lines() {
        let line = r#"127.0.0.1 - - [08/Dec/2026:00:05:09 +0000] "POST /v2/kdbg/x/blobs/uploads/ HTTP/1.1" 202 0 "" "curl/7.88.1""#;
        let r = parse_access(line).unwrap();
        assert_eq!((r.method.as_str(), r.uri.as_str(), r.status), ("POST", "/v2/kdbg/x/blobs/uploads/", 202));
        assert!(parse_access(r#"time="2026" level=info msg="listening on 127.0.0.1:5999""#).is_none());
    }
}
