//! The build step and the team cache: before make, the stale components the cache has are
//! pulled (in parallel, verified, placed where make puts them, recorded as after a build); after
//! a local build they are pushed when asked; and `kdbg cache ls`.

use std::collections::BTreeSet;

use super::step::{record_known, Building};
use super::{BuildConfig, BuildError, Built, Prepared, Via};
use crate::cache::key::SCHEMA;
use crate::cache::remote::artifact::{self, Expect, Facts};
use crate::cache::remote::pull::{self, Miss, Pulled};
use crate::cache::remote::{self, push, Remote};
use crate::cache::{ci_key, CacheState, ComponentKey};
use crate::component::Component;
use crate::plan::{self, StepKind};
use crate::report::{Event, Reporter};
use crate::tree::SourceTree;

/// The team cache a build uses: none when none is named; one that cannot be opened (an
/// unreadable CA file) is a warning, and the build goes on without it.
pub(super) fn open(prepared: &Prepared, reporter: &dyn Reporter) -> Option<Box<dyn Remote>> {
    let settings = prepared.remote.as_ref()?;
    match remote::open(settings) {
        Ok(r) => Some(r),
        Err(e) => {
            reporter.warn(locally(&e.to_string()));
            None
        }
    }
}

/// A miss's message with what happens next on its first line (a `fix:` line may follow).
fn locally(message: &str) -> String {
    match message.split_once('\n') {
        Some((first, rest)) => format!("{first}; building locally\n{rest}"),
        None => format!("{message}; building locally"),
    }
}

/// A component's tag in the team cache: its CI key alone (what `kdbg cache-key <component>` prints).
fn tag(prepared: &Prepared, key: &str) -> String {
    ci_key(&prepared.toolchain.identity, &[key])
}

/// What `k`'s key demands of a pulled binary.
fn expect(prepared: &Prepared, k: &ComponentKey) -> Expect {
    Expect {
        component: k.component.name.to_string(),
        key: k.key.clone(),
        key_schema: SCHEMA.to_string(),
        platform: prepared.platform.to_string(),
        go: prepared.toolchain.identity.go_version.clone(),
        flags: artifact::flags_text(&prepared.make_vars),
    }
}

/// Before make runs for components that were pulled: why this make is a full one.
pub(super) fn say_full_make(state: &CacheState, stale: &[&ComponentKey], reporter: &dyn Reporter) {
    let pulled: Vec<&str> = stale
        .iter()
        .filter(|k| {
            state
                .components
                .get(k.component.name)
                .and_then(|c| c.output.as_ref())
                .is_some_and(|o| o.pulled_from.is_some())
        })
        .map(|k| k.component.name)
        .collect();
    if !pulled.is_empty() {
        reporter.info(format!(
            "{} was pulled from the cache: this build is a full make (no captured go call to replay, and Go's \
             build cache may be cold); later edits replay as usual",
            pulled.join(", ")
        ));
    }
}

impl Building<'_> {
    /// Pulls the stale components the team cache has, in parallel; each miss that is not a plain
    /// absence is one warning (the same failure said once), and those components are built here.
    pub(super) fn pull(&self, stale: &[&ComponentKey]) -> Result<Vec<Built>, BuildError> {
        let Some(remote) = self.remote.as_deref() else { return Ok(Vec::new()) };
        let results: Vec<(&ComponentKey, Result<Option<Pulled>, Miss>)> = std::thread::scope(|s| {
            let pulls: Vec<_> = stale.iter().map(|k| s.spawn(move || (*k, self.pull_one(remote, k)))).collect();
            pulls.into_iter().map(|h| h.join().expect("a pull does not panic")).collect()
        });
        let mut said = BTreeSet::new();
        let mut out = Vec::new();
        for (k, result) in results {
            match result {
                Ok(Some(p)) => out.push(self.record_pulled(k, p)?),
                Ok(None) => {}
                Err(miss) => {
                    let message = locally(&miss.to_string());
                    if said.insert(message.clone()) {
                        self.reporter.warn(message);
                    }
                }
            }
        }
        for note in remote.notes() {
            self.reporter.warn(note);
        }
        if !out.is_empty() {
            super::step::save(self.tree, self.prepared, &mut self.state.lock().unwrap())?;
        }
        Ok(out)
    }

    fn pull_one(&self, remote: &dyn Remote, k: &ComponentKey) -> Result<Option<Pulled>, Miss> {
        let id = StepKind::Build.on(k.component.name);
        let progress = |done, total| self.reporter.report(Event::Progress { id: id.clone(), done, total });
        pull::pull(remote, &expect(self.prepared, k), &tag(self.prepared, &k.key), &k.binary, &progress)
    }

    /// Records a pulled binary exactly as a built one (its key's inputs, its output record), and
    /// links `_output/bin` to its directory as make does for the toolchain's own platform.
    fn record_pulled(&self, k: &ComponentKey, p: Pulled) -> Result<Built, BuildError> {
        let name = k.component.name;
        let link = self.tree.root.join("_output/bin");
        if let (false, Some(dir), Err(_)) = (self.prepared.cross(), k.binary.parent(), link.symlink_metadata()) {
            std::os::unix::fs::symlink(dir, &link).map_err(super::not_writable(self.tree, &link))?;
        }
        let mut record = record_known(self.tree, k, p.sha256.clone(), Some(p.needs.clone()))?;
        record.pulled_from = Some(p.location.clone());
        self.reporter.info(format!(
            "{name}: pulled from {} ({} in {:.1} s)",
            p.location,
            remote::megabytes(p.compressed),
            p.seconds
        ));
        let built = Built {
            name: name.to_string(),
            key: k.key.clone(),
            hit: false,
            binary: k.binary.clone(),
            sha256: record.sha256.clone(),
            seconds: p.seconds,
            size: record.size,
            platform: self.platform(),
            needs: record.needs.clone(),
            via: Via::Pulled,
            command: None,
            why: plan::why(k),
        };
        let mut state = self.state.lock().unwrap();
        let entry = state.components.get_mut(name).expect("keys computed for it");
        entry.output = Some(record);
        entry.built_inputs = Some(k.inputs.clone());
        Ok(built)
    }

    /// Pushes `built` (not what was pulled) when this build pushes; what each push did is kept
    /// for [`Building::finish`] (a failure is also a warning).
    pub(crate) fn push(&self, built: &[&Built]) {
        let (Some(remote), Some(true)) = (self.remote.as_deref(), self.prepared.remote.as_ref().map(|r| r.push)) else {
            return;
        };
        for b in built.iter().filter(|b| b.via != Via::Pulled) {
            let pushed = self.facts(b).and_then(|f| {
                push::push(remote, &b.binary, &tag(self.prepared, &b.key), &f).map_err(|e| e.to_string())
            });
            let mut pushes = self.pushes.lock().unwrap();
            match pushed {
                Ok(report) => pushes.lines.push(report.line(&b.name)),
                Err(e) => {
                    let message = format!("{} was not pushed: {e}", b.name);
                    self.reporter.warn(message.clone());
                    pushes.failed.push(message);
                }
            }
        }
        for note in remote.notes() {
            self.reporter.warn(note);
        }
    }

    /// The artifact facts of a binary built here.
    fn facts(&self, b: &Built) -> Result<Facts, String> {
        let needs = match &b.needs {
            Some(n) => n.clone(),
            None => crate::binary::needs_of(&b.binary).map_err(|e| e.to_string())?,
        };
        let (sha256, size) = match b.sha256.is_empty() || b.size == 0 {
            true => crate::digest::sha256_file(&b.binary).map_err(|e| format!("cannot read {}: {e}", b.binary))?,
            false => (b.sha256.clone(), b.size),
        };
        Ok(Facts {
            component: b.name.clone(),
            key: b.key.clone(),
            key_schema: SCHEMA.to_string(),
            sha256,
            size,
            platform: b.platform.clone(),
            go: needs.go_version,
            dwarf: needs.dwarf,
            flags: artifact::flags_text(&self.prepared.make_vars),
            kube_version: self.tree.version.text.clone(),
            kube_commit: self.tree.commit.clone().unwrap_or_default(),
            kdbg_version: env!("CARGO_PKG_VERSION").to_string(),
            built_by: artifact::built_by(),
            created: artifact::now_rfc3339(),
        })
    }
}

/// One row of `kdbg cache ls`: a component's current tag and what the cache holds under it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Listed {
    pub component: String,
    pub tag: String,
    pub location: String,
    /// The artifact's facts, when the cache has one.
    pub facts: Option<Facts>,
    /// Bytes a pull moves.
    pub compressed: Option<u64>,
    /// Why an artifact there is unusable (unreadable annotations).
    pub problem: Option<String>,
}

/// What the team cache holds for the current keys of `components` (no build, no lock).
pub fn list(
    tree: &SourceTree,
    components: &[&'static Component],
    config: &BuildConfig,
) -> Result<Vec<Listed>, BuildError> {
    let prepared = super::prepare(tree, config)?;
    let settings = prepared.remote.clone().ok_or(BuildError::NoCache)?;
    let remote = remote::open(&settings)?;
    let keys = super::keys(tree, components, &prepared)?;
    let mut rows = Vec::new();
    for k in &keys.components {
        let name = k.component.name;
        let tag = tag(&prepared, &k.key);
        let found = remote.lookup(name, &tag)?;
        let (facts, problem) = match found.as_ref().map(|f| f.facts.clone()) {
            Some(Ok(f)) => (Some(f), None),
            Some(Err(e)) => (None, Some(e)),
            None => (None, None),
        };
        let compressed = found.and_then(|f| f.layer).map(|l| l.size);
        rows.push(Listed {
            component: name.to_string(),
            location: settings.url.artifact(name, &tag),
            tag,
            facts,
            compressed,
            problem,
        });
    }
    Ok(rows)
}
