//! [`Remote`] on an OCI registry (any Distribution server: kind's local registry, GHCR, Harbor),
//! through the ORAS project's `oci-client`. HTTPS with the system's roots and the given CA; plain
//! HTTP only for loopback registries or with `--insecure`, when HTTPS does not connect. Every
//! lookup has a deadline, so a registry that does not answer never holds a build up.

use std::sync::Mutex;
use std::time::Duration;

use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError as OE, OciErrorCode};
use oci_client::manifest::{OciDescriptor, OciImageManifest, OciManifest, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use sha2::{Digest, Sha256};

use super::artifact::{Facts, ARTIFACT_TYPE, EMPTY_CONFIG_TYPE};
use super::settings::{CacheUrl, RemoteSettings};
use super::{creds, Found, Layer, Pushed, Remote, RemoteError};

const CONNECT: Duration = Duration::from_secs(3);
const READ: Duration = Duration::from_secs(20);
/// The longest a lookup (credentials and manifest) may take.
const LOOKUP: Duration = Duration::from_secs(6);
const USER_AGENT: &str = concat!("kdbg/", env!("CARGO_PKG_VERSION"));

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    Https,
    Http,
}

pub(super) struct Oci {
    url: CacheUrl,
    rt: tokio::runtime::Runtime,
    https: Client,
    /// Plain HTTP, tried when HTTPS does not connect: loopback registries, or `--insecure`.
    http: Option<Client>,
    chosen: Mutex<Option<Transport>>,
    auth: RegistryAuth,
    /// What to tell the user once (a credential helper that failed, plain HTTP in use).
    notes: Mutex<Vec<String>>,
    insecure: bool,
}

impl Oci {
    pub(super) fn new(settings: &RemoteSettings) -> Result<Oci, RemoteError> {
        let url = settings.url.clone();
        let setup = |detail: String| RemoteError::Setup { url: url.to_string(), detail };
        let mut roots = Vec::new();
        for f in super::ca_files(settings) {
            let data = std::fs::read(&f).map_err(|e| setup(format!("cannot read the CA file {f}: {e}")))?;
            roots.push(Certificate { encoding: CertificateEncoding::Pem, data });
        }
        let config = |protocol| ClientConfig {
            protocol,
            extra_root_certificates: roots.clone(),
            accept_invalid_certificates: settings.insecure,
            connect_timeout: Some(CONNECT),
            read_timeout: Some(READ),
            platform_resolver: None,
            user_agent: USER_AGENT,
            ..Default::default()
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| setup(format!("cannot start its I/O runtime: {e}")))?;
        let plain_ok = url.is_loopback() || settings.insecure;
        let (auth, note) = creds::for_registry(&url.registry);
        Ok(Oci {
            https: Client::new(config(ClientProtocol::Https)),
            http: plain_ok.then(|| Client::new(config(ClientProtocol::Http))),
            url,
            rt,
            chosen: Mutex::new(None),
            auth,
            notes: Mutex::new(note.into_iter().collect()),
            insecure: settings.insecure,
        })
    }

    fn reference(&self, component: &str, tag: &str) -> Reference {
        Reference::with_tag(self.url.registry.clone(), self.url.repository(component), tag.to_string())
    }

    fn client(&self, t: Transport) -> &Client {
        match (t, &self.http) {
            (Transport::Http, Some(http)) => http,
            _ => &self.https,
        }
    }

    /// The client to use, decided on first contact: HTTPS, else plain HTTP where allowed.
    async fn connect(&self, r: &Reference, op: RegistryOperation) -> Result<&Client, RemoteError> {
        let known = *self.chosen.lock().unwrap();
        if let Some(t) = known {
            let c = self.client(t);
            c.auth(r, &self.auth, op).await.map_err(|e| self.classify(e))?;
            return Ok(c);
        }
        let err = match self.https.auth(r, &self.auth, op).await {
            Ok(_) => return Ok(self.chose(Transport::Https)),
            Err(e) => e,
        };
        // A certificate HTTPS does not trust is not a plain-HTTP registry.
        let Some(http) = self.http.as_ref().filter(|_| is_connect(&err) && !is_certificate(&err)) else {
            return Err(self.classify(err));
        };
        match http.auth(r, &self.auth, op).await {
            Ok(_) => Ok(self.chose(Transport::Http)),
            Err(plain) if is_connect(&plain) => Err(self.classify(err)),
            Err(plain) => Err(self.classify(plain)),
        }
    }

    fn chose(&self, t: Transport) -> &Client {
        *self.chosen.lock().unwrap() = Some(t);
        if t == Transport::Http && !self.url.is_loopback() {
            self.notes.lock().unwrap().push(format!(
                "--insecure: kdbg talks to {} over plain HTTP; anyone on the network path can change what it pulls",
                self.url.registry
            ));
        }
        self.client(t)
    }

    /// Runs `fut` on the runtime, within `limit` when one is given.
    fn block<T>(
        &self,
        limit: Option<Duration>,
        fut: impl std::future::Future<Output = Result<T, RemoteError>>,
    ) -> Result<T, RemoteError> {
        self.rt.block_on(async {
            match limit {
                None => fut.await,
                Some(limit) => tokio::time::timeout(limit, fut)
                    .await
                    .unwrap_or_else(|_| Err(self.unreachable(format!("no answer within {} s", limit.as_secs()), true))),
            }
        })
    }

    fn unreachable(&self, detail: String, maybe_plain: bool) -> RemoteError {
        let hint = match maybe_plain && !self.url.is_loopback() && !self.insecure {
            true => "; if it serves plain HTTP, pass --insecure".to_string(),
            false => String::new(),
        };
        RemoteError::Unreachable { url: self.url.to_string(), detail, hint }
    }

    /// The user's view of a client error: refused credentials, no answer, or a failure.
    fn classify(&self, e: OE) -> RemoteError {
        let url = self.url.to_string();
        match &e {
            OE::UnauthorizedError { .. } | OE::AuthenticationFailure(_) => RemoteError::Unauthorized {
                url,
                registry: self.url.registry.clone(),
                detail: "401 unauthorized".into(),
            },
            OE::RegistryError { envelope, .. }
                if envelope
                    .errors
                    .iter()
                    .any(|x| matches!(x.code, OciErrorCode::Unauthorized | OciErrorCode::Denied)) =>
            {
                RemoteError::Unauthorized { url, registry: self.url.registry.clone(), detail: envelope.to_string() }
            }
            OE::RequestError(re) if re.is_timeout() => self.unreachable("timed out".into(), false),
            OE::RequestError(re) if is_certificate(&e) => RemoteError::Unreachable {
                url,
                detail: innermost(re),
                hint:
                    "\n  fix: if its certificate is signed by your own CA, pass --cache-ca FILE (or set SSL_CERT_FILE)"
                        .into(),
            },
            OE::RequestError(re) if re.is_connect() => self.unreachable(innermost(re), true),
            _ => RemoteError::Failed { url, detail: innermost(&e) },
        }
    }
}

fn is_connect(e: &OE) -> bool {
    matches!(e, OE::RequestError(re) if re.is_connect() || re.is_timeout())
}

/// HTTPS failed on the registry's certificate (an unknown CA, a name it does not hold).
fn is_certificate(e: &OE) -> bool {
    matches!(e, OE::RequestError(re) if innermost(re).to_lowercase().contains("certificate"))
}

/// A manifest or blob the registry does not have.
fn not_found(e: &OE) -> bool {
    match e {
        OE::ImageManifestNotFoundError(_) => true,
        OE::ServerError { code, .. } => *code == 404,
        OE::RegistryError { envelope, .. } => envelope.errors.iter().any(|x| {
            matches!(x.code, OciErrorCode::ManifestUnknown | OciErrorCode::NameUnknown | OciErrorCode::BlobUnknown)
        }),
        _ => false,
    }
}

/// The most specific message of an error chain (`Connection refused (os error 111)`).
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut last = e;
    while let Some(s) = last.source() {
        last = s;
    }
    last.to_string()
}

/// What a manifest says: its facts (when it is kdbg's artifact) and its one layer.
fn found(body: &[u8]) -> Found {
    let manifest: OciImageManifest = match serde_json::from_slice(body) {
        Ok(m) => m,
        Err(e) => return Found { facts: Err(format!("not an OCI image manifest: {e}")), layer: None },
    };
    let facts = match manifest.artifact_type.as_deref() {
        Some(ARTIFACT_TYPE) => Facts::from_annotations(&manifest.annotations.unwrap_or_default()),
        other => Err(format!("artifact type {other:?}, not {ARTIFACT_TYPE}")),
    };
    let layer = match manifest.layers.as_slice() {
        [l] => Some(Layer { digest: l.digest.clone(), size: l.size.max(0) as u64, media_type: l.media_type.clone() }),
        _ => None,
    };
    Found { facts, layer }
}

/// `sha256:<hex>`: how OCI names content.
pub(super) fn sha256_digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

impl Remote for Oci {
    fn url(&self) -> &CacheUrl {
        &self.url
    }

    fn lookup(&self, component: &str, tag: &str) -> Result<Option<Found>, RemoteError> {
        let r = self.reference(component, tag);
        self.block(Some(LOOKUP), async {
            let client = self.connect(&r, RegistryOperation::Pull).await?;
            match client.pull_manifest_raw(&r, &self.auth, &[OCI_IMAGE_MEDIA_TYPE]).await {
                Ok((body, _)) => Ok(Some(found(&body))),
                Err(e) if not_found(&e) => Ok(None),
                Err(e) => Err(self.classify(e)),
            }
        })
    }

    fn download(
        &self,
        component: &str,
        found: &Found,
        sink: &mut dyn FnMut(&[u8]) -> std::io::Result<()>,
        progress: &dyn Fn(u64),
    ) -> Result<(), RemoteError> {
        let Some(layer) = &found.layer else {
            return Err(RemoteError::Failed { url: self.url.to_string(), detail: "the artifact has no layer".into() });
        };
        let r = self.reference(component, "latest");
        let desc = OciDescriptor {
            media_type: layer.media_type.clone(),
            digest: layer.digest.clone(),
            size: layer.size as i64,
            ..Default::default()
        };
        let failed = |detail: String| RemoteError::Failed { url: self.url.to_string(), detail };
        self.block(None, async {
            let client = self.connect(&r, RegistryOperation::Pull).await?;
            let mut blob = client.pull_blob_stream(&r, &desc).await.map_err(|e| self.classify(e))?;
            let mut done = 0;
            while let Some(chunk) = blob.stream.next().await {
                let chunk = chunk.map_err(|e| match e.to_string() {
                    d if d.contains("digest") => RemoteError::Corrupt { url: self.url.to_string(), detail: d },
                    d => failed(format!("the download broke off: {d}")),
                })?;
                sink(&chunk).map_err(|e| failed(format!("cannot write what arrived: {e}")))?;
                done += chunk.len() as u64;
                progress(done);
            }
            Ok(())
        })
    }

    fn push(&self, component: &str, tag: &str, layer: Vec<u8>, facts: &Facts) -> Result<Pushed, RemoteError> {
        let r = self.reference(component, tag);
        self.block(None, async {
            let client = self.connect(&r, RegistryOperation::Push).await?;
            match client.fetch_manifest_digest(&r, &self.auth).await {
                Ok(_) => return Ok(Pushed::Already),
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(self.classify(e)),
            }
            let classify = |e| self.classify(e);
            let (digest, size) = (sha256_digest(&layer), layer.len() as u64);
            let mut sent = 0;
            if !client.blob_exists(&r, &digest).await.map_err(classify)? {
                client.push_blob(&r, layer, &digest).await.map_err(classify)?;
                sent = size;
            }
            let config = b"{}".to_vec();
            let config_digest = sha256_digest(&config);
            if !client.blob_exists(&r, &config_digest).await.map_err(classify)? {
                client.push_blob(&r, config, &config_digest).await.map_err(classify)?;
            }
            let manifest = OciImageManifest {
                schema_version: 2,
                media_type: Some(OCI_IMAGE_MEDIA_TYPE.to_string()),
                config: OciDescriptor {
                    media_type: EMPTY_CONFIG_TYPE.into(),
                    digest: config_digest,
                    size: 2,
                    ..Default::default()
                },
                layers: vec![OciDescriptor {
                    media_type: super::artifact::LAYER_TYPE.into(),
                    digest,
                    size: size as i64,
                    ..Default::default()
                }],
                subject: None,
                artifact_type: Some(ARTIFACT_TYPE.into()),
                annotations: Some(facts.annotations()),
            };
            client.push_manifest(&r, &OciManifest::Image(manifest)).await.map_err(classify)?;
            Ok(Pushed::Sent { sent })
        })
    }

    fn notes(&self) -> Vec<String> {
        std::mem::take(&mut *self.notes.lock().unwrap())
    }
}
