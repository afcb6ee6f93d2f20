//! Publishing one component's binary: zstd-compress it and hand it with its facts to the store,
//! which sends nothing when the tag is already there.

use std::time::Instant;

use camino::Utf8Path;

use super::artifact::Facts;
use super::{Pushed, Remote, RemoteError};

/// What a push did, for its report line.
#[derive(Debug, Clone)]
pub(crate) struct PushReport {
    pub location: String,
    pub pushed: Pushed,
    pub size: u64,
    pub seconds: f64,
}

/// zstd level: fast enough to compress a 150 MB debug binary in about a second, and about a
/// third of its size.
const LEVEL: i32 = 3;

/// Pushes `binary` as `facts.component`'s artifact tagged `tag`.
pub(crate) fn push(
    remote: &dyn Remote,
    binary: &Utf8Path,
    tag: &str,
    facts: &Facts,
) -> Result<PushReport, RemoteError> {
    let started = Instant::now();
    let location = remote.url().artifact(&facts.component, tag);
    let failed = |e: std::io::Error| RemoteError::Failed {
        url: remote.url().to_string(),
        detail: format!("cannot read and compress {binary}: {e}"),
    };
    let report = |pushed| PushReport { location: location.clone(), pushed, size: facts.size, seconds: 0.0 };
    if remote.lookup(&facts.component, tag)?.is_some() {
        return Ok(report(Pushed::Already));
    }
    let file = std::fs::File::open(binary).map_err(failed)?;
    let layer = zstd::stream::encode_all(std::io::BufReader::with_capacity(1 << 20, file), LEVEL).map_err(failed)?;
    let pushed = remote.push(&facts.component, tag, layer, facts)?;
    Ok(PushReport { seconds: started.elapsed().as_secs_f64(), ..report(pushed) })
}

impl PushReport {
    /// `pushed kube-apiserver to oci://…:TAG (142.9 MB, 41.0 MB sent, in 1.2 s)`, or that it was there.
    pub(crate) fn line(&self, component: &str) -> String {
        match self.pushed {
            Pushed::Already => format!("{component}: {} is already in the cache; nothing sent", self.location),
            Pushed::Sent { sent } => format!(
                "pushed {component} to {} ({}, {} sent, in {:.1} s)",
                self.location,
                super::megabytes(self.size),
                super::megabytes(sent),
                self.seconds
            ),
        }
    }
}
