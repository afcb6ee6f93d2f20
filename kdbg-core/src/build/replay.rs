//! Replay of the captured `go` builds instead of `make`, when the only changes are Go bodies no generator reads.
//!
//! Replay is allowed only when, for every stale component, the capture was made for exactly the
//! stale set and for the key of its last build, every key input but the files is unchanged (same
//! toolchain, flags, version pins), the same files are inputs, and each changed file is a `.go`
//! file outside `hack/` that carries no code-generation tag and lives in a package whose `doc.go`
//! carries none. Anything else runs make (and captures again).

use std::collections::BTreeMap;

use camino::Utf8Path;

use super::capture::{Capture, CAPTURE_FILE, GO_ENV};
use crate::cache::CacheState;
use crate::cache::ComponentKey;

/// The code-generation tags whose files (and packages) only make regenerates from.
pub(crate) const GEN_TAGS: &[&str] = &[
    "+k8s:deepcopy-gen",
    "+k8s:openapi-gen",
    "+k8s:conversion-gen",
    "+k8s:defaulter-gen",
    "+k8s:prerelease-lifecycle-gen",
];

fn tagged(path: &Utf8Path) -> bool {
    std::fs::read_to_string(path).map(|t| GEN_TAGS.iter().any(|g| t.contains(g))).unwrap_or(true)
}

/// The capture to replay for `stale`, or `None` when make must run.
pub(crate) fn plan(
    root: &Utf8Path,
    state_dir: &Utf8Path,
    stale: &[&ComponentKey],
    state: &CacheState,
) -> Option<Capture> {
    let text = std::fs::read_to_string(state_dir.join(CAPTURE_FILE)).ok()?;
    let capture: Capture = serde_json::from_str(&text).ok()?;
    if capture.invocations.is_empty() || capture.keys.len() != stale.len() {
        return None;
    }
    for k in stale {
        let old = state.components.get(k.component.name)?.built_inputs.as_ref()?;
        if capture.keys.get(k.component.name) != Some(&old.digest()) {
            return None;
        }
        let (mut a, mut b) = (old.clone(), k.inputs.clone());
        let (fa, fb) = (std::mem::take(&mut a.files), std::mem::take(&mut b.files));
        if a != b || !fa.keys().eq(fb.keys()) {
            return None;
        }
        let changed: Vec<&String> = fb.iter().filter(|(p, h)| fa.get(*p) != Some(h)).map(|(p, _)| p).collect();
        for rel in changed {
            let path = root.join(rel);
            if !rel.ends_with(".go") || rel.starts_with("hack/") || tagged(&path) {
                return None;
            }
            let doc = path.parent().map(|d| d.join("doc.go"));
            if doc.is_some_and(|d| d.is_file() && tagged(&d)) {
                return None;
            }
        }
    }
    Some(capture)
}

/// The toolchain's environment with its Go variables replaced by exactly the captured ones.
pub(crate) fn env(base: &[(String, String)], captured: &BTreeMap<String, String>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> =
        base.iter().filter(|(k, _)| !captured.contains_key(k) && !GO_ENV.contains(&k.as_str())).cloned().collect();
    env.extend(captured.iter().map(|(k, v)| (k.clone(), v.clone())));
    env
}

/// Copies `go install`'s binary to where make places it (kubernetes' `place_bins`: `rsync -pc`
/// from `$GOPATH/bin`): permissions kept, written beside and renamed, so a running copy of the
/// old binary is never overwritten in place.
pub(crate) fn place(from: &Utf8Path, to: &Utf8Path) -> std::io::Result<()> {
    if let Some(dir) = to.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = to.with_extension(format!("kdbg-tmp.{}", std::process::id()));
    let copied = std::fs::copy(from, &tmp).and_then(|_| std::fs::rename(&tmp, to));
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied
}
