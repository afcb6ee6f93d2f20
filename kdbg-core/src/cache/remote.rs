//! The team cache: debug binaries pushed to and pulled from a remote store by key, so one CI
//! build serves every contributor. [`Remote`] is the seam (an OCI registry today, [`oci`]; an
//! object store could follow without touching callers); [`pull`] and [`push`] hold what does
//! not depend on the store: verification, placing the binary, the artifact's facts.

use camino::Utf8PathBuf;

pub mod artifact;
mod creds;
mod oci;
pub(crate) mod pull;
pub(crate) mod push;
pub mod settings;
#[cfg(test)]
mod tests;

pub use artifact::{Expect, Facts};
pub use settings::{CacheFlags, CacheUrl, RemoteSettings};

/// An artifact the store holds under a component's tag.
#[derive(Debug, Clone)]
pub struct Found {
    /// Its facts, or why its annotations could not be read.
    pub facts: Result<Facts, String>,
    /// The binary's compressed layer: digest (`sha256:…`), size, media type; `None` when the
    /// manifest does not have exactly one layer.
    pub layer: Option<Layer>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layer {
    pub digest: String,
    pub size: u64,
    pub media_type: String,
}

/// What a push did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The tag was there already: nothing was sent.
    Already,
    /// The artifact was published; `sent` bytes of blob went up (0 when the blob was there).
    Sent { sent: u64 },
}

/// Why the store could not be used. None of these stops a build: the caller warns and builds.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("the cache {url} refused kdbg's credentials for {registry} ({detail})\n  fix: run `docker login {registry}` (kdbg reads Docker's config.json, its credsStore and credHelpers)")]
    Unauthorized { url: String, registry: String, detail: String },
    #[error("the cache {url} could not be reached ({detail}){hint}")]
    Unreachable { url: String, detail: String, hint: String },
    #[error("the cache {url} failed: {detail}")]
    Failed { url: String, detail: String },
    /// What arrived does not match its digest.
    #[error("the cache {url} sent a corrupt layer: {detail}")]
    Corrupt { url: String, detail: String },
    #[error("cannot use the cache {url}: {detail}")]
    Setup { url: String, detail: String },
}

/// A store of kdbg's artifacts, addressed by component and tag (the component's CI key).
pub trait Remote: Send + Sync {
    fn url(&self) -> &CacheUrl;
    /// The artifact tagged `tag` in the component's repository, or `None` when there is none.
    fn lookup(&self, component: &str, tag: &str) -> Result<Option<Found>, RemoteError>;
    /// Streams a found artifact's layer (compressed bytes) into `sink`, calling `progress` with
    /// the bytes received so far.
    fn download(
        &self,
        component: &str,
        found: &Found,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        progress: &dyn Fn(u64),
    ) -> Result<(), RemoteError>;
    /// Publishes `layer` (the compressed binary) with `facts` under `tag`, unless the tag is there.
    fn push(&self, component: &str, tag: &str, layer: Vec<u8>, facts: &Facts) -> Result<Pushed, RemoteError>;
    /// What to tell the user once, taken by the caller after a call (credentials that could not
    /// be used, plain HTTP in use).
    fn notes(&self) -> Vec<String> {
        Vec::new()
    }
}

/// Opens the store `settings` name (no network yet: the first call decides the transport).
pub fn open(settings: &RemoteSettings) -> Result<Box<dyn Remote>, RemoteError> {
    Ok(Box::new(oci::Oci::new(settings)?))
}

/// A pulled or pushed binary's size for people: `42.9 MB`.
pub fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// The CA file the settings or `SSL_CERT_FILE` name.
fn ca_files(settings: &RemoteSettings) -> Vec<Utf8PathBuf> {
    let env = std::env::var("SSL_CERT_FILE").ok().filter(|v| !v.is_empty()).map(Utf8PathBuf::from);
    settings.ca_file.iter().cloned().chain(env).collect()
}
