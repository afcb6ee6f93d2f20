//! `kdbg deploy` as plan steps run by [`crate::plan::exec`], each yielding a typed [`Output`]
//! that the executor hands to the steps after it:
//!
//! ```text
//! build:<c> ──▶ Built ─┬─▶ choose-dlv ──▶ Chosen ─┬─▶ hash-node ──▶ OnNode ─┬─▶ copy:<c> ──▶ Deployed
//!                      └──────────────────────────┴──────────────────────────┴─▶ copy:dlv ──▶ Deployed
//! ```
//!
//! `build:<c>`: one make or replay for every stale component ([`Building`]); `choose-dlv`: the
//! Delve that reads every built binary and runs on the node; `hash-node`: one `sha256s` round
//! trip for every file to send; a copy is up to date when the node already holds its sha256.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};

use super::{copy_one, dlv, DeployConfig, DeployError, DeployOutcome, Deployed, Dlv, DlvPickError, Needs};
use crate::build::{self, BuildConfig, BuildOutcome, Building, Built, Prepared};
use crate::component::Component;
use crate::layout::BIN_DIR;
use crate::node::Node;
use crate::plan::exec::{Fresh, Inputs, Ran, Runner};
use crate::plan::{Plan, Step, StepId, StepKind};
use crate::platform::Platform;
use crate::report::Reporter;
use crate::tree::SourceTree;

/// Adds Delve's choice, the node's hashes and the copies to a build plan: each binary after its
/// build, Delve after its choice, both after the one round trip that tells what the node holds.
pub(crate) fn plan(mut plan: Plan, components: &[&'static Component]) -> Plan {
    let builds: Vec<StepId> = components.iter().map(|c| StepKind::Build.on(c.name)).collect();
    let why = |w: &str| vec![w.to_string()];
    let choose = plan.add(
        StepKind::ChooseDlv.alone(),
        &builds,
        None,
        false,
        why("the Delve that reads the built binaries (Go and DWARF version) and runs on the node"),
    );
    let mut hash_after = builds.clone();
    hash_after.push(choose.clone());
    let hash = plan.add(StepKind::HashNode.alone(), &hash_after, None, false, why("one round trip for every file"));
    let sent = || why("sent only if the node's sha256 differs");
    for (c, build) in components.iter().zip(&builds) {
        plan.add(StepKind::Copy.on(c.name), &[build.clone(), hash.clone()], None, false, sent());
    }
    plan.add(StepKind::Copy.delve(), &[choose, hash], None, false, sent());
    plan
}

/// What a step of a deploy plan yields.
#[derive(Debug, Clone)]
pub(crate) enum Output {
    /// `build:<c>`: the binary.
    Built(Built),
    /// `choose-dlv`: the Delve for the binaries.
    Delve(Chosen),
    /// `hash-node`: what the node holds.
    OnNode(OnNode),
    /// `copy:<c>`, `copy:dlv`: the file on the node, sent or already there.
    Sent(Deployed),
}

/// The Delve chosen to read the built binaries, and its sha256.
#[derive(Debug, Clone)]
pub(crate) struct Chosen {
    pub dlv: Dlv,
    pub needs: Needs,
    pub sha256: String,
}

/// The sha256 the node holds at each file's path in `/var/lib/kdbg/bin` (`None`: no such file).
#[derive(Debug, Clone)]
pub(crate) struct OnNode {
    pub have: BTreeMap<String, Option<String>>,
    pub round_trips: u64,
}

/// The outputs a step was given, by what they are.
pub(crate) struct Given<'a>(pub Vec<&'a Output>);

impl<'a> Given<'a> {
    pub(crate) fn of(inputs: &Inputs<'a, Output>) -> Given<'a> {
        Given(inputs.iter().map(|(_, o)| o).collect())
    }

    pub(crate) fn built(&self) -> Vec<&'a Built> {
        self.0.iter().filter_map(|o| if let Output::Built(b) = o { Some(b) } else { None }).collect()
    }

    pub(crate) fn delve(&self) -> Option<&'a Chosen> {
        self.0.iter().find_map(|o| if let Output::Delve(d) = o { Some(d) } else { None })
    }

    fn on_node(&self) -> Option<&'a OnNode> {
        self.0.iter().find_map(|o| if let Output::OnNode(h) = o { Some(h) } else { None })
    }
}

/// What the node must be and have before anything is built.
pub(crate) struct Destination {
    pub prepared: Prepared,
    pub platform: String,
}

impl Destination {
    /// The build for the node's platform (`KUBE_BUILD_PLATFORMS` when it is not the Go
    /// toolchain's own), and a Delve for it exists at all (worth knowing before a long build).
    pub(crate) fn check(tree: &SourceTree, node: &dyn Node, config: &DeployConfig) -> Result<Destination, DeployError> {
        let (os, arch) = node.platform()?;
        if os != "linux" {
            return Err(DeployError::NotLinux { node: node.describe(), os });
        }
        let target = Platform::new(&os, &arch);
        let build = BuildConfig { platform: Some(target.clone()), ..config.build.clone() };
        let prepared = build::prepare(tree, &build)?;
        let explicit = config.dlv.for_platform(&target);
        dlv::candidates(explicit, &target)?;
        if let Some(path) = explicit {
            dlv::check_machine(path, &target)?;
        }
        Ok(Destination { prepared, platform: target.to_string() })
    }
}

/// A file to send: `(name, local path, sha256)`.
type Wanted = (String, Utf8PathBuf, String);

/// Runs the steps of a deploy plan for one node; the build steps through the run's one
/// [`Building`].
pub(crate) struct Deploying<'a> {
    pub tree: &'a SourceTree,
    pub node: &'a dyn Node,
    pub dest: &'a Destination,
    pub dlv_flag: Option<&'a Utf8Path>,
    pub building: &'a Building<'a>,
    pub reporter: &'a dyn Reporter,
}

impl Deploying<'_> {
    /// The Delve that reads every built binary and runs on the node. Every binary is checked
    /// before anything is sent to the node.
    fn choose_dlv(&self, built: &[&Built]) -> Result<Chosen, DeployError> {
        let (flag, platform) = (self.dlv_flag, &self.dest.prepared.platform);
        let (dlv, needs) = match built.first() {
            Some(first) => dlv::choose(flag, &first.binary, platform)?,
            None => {
                let go = &self.dest.prepared.toolchain.identity.go_version;
                let first = dlv::candidates(flag, platform)?.remove(0);
                (dlv::inspect(&first, Some(&platform.arch))?, Needs::of_go(go))
            }
        };
        for b in built.iter().skip(1) {
            let needs = match &b.needs {
                Some(n) => n.clone(),
                None => dlv::needs_of(&b.binary)?,
            };
            if needs.unmet_by(&dlv).is_some() {
                dlv::choose(Some(&dlv.path), &b.binary, platform)?;
            }
        }
        let version = match dlv.version == dlv::UNKNOWN {
            true => "(its version read on the node once copied, checked before anything else changes)".to_string(),
            false => dlv.version.clone(),
        };
        self.reporter.info(format!(
            "Delve {version} ({}, {}) for {} binaries built with {} (DWARF {})",
            dlv.go_version.as_deref().unwrap_or("unknown Go"),
            dlv.path,
            platform,
            needs.go_version,
            needs.dwarf
        ));
        let sha256 = crate::node::copy::hash_file(&dlv.path)
            .map_err(|e| DlvPickError::Broken { path: dlv.path.clone(), detail: e.to_string() })?
            .0;
        Ok(Chosen { dlv, needs, sha256 })
    }

    /// A Delve whose version could not be read here is checked once the node ran it.
    fn verify(&self, chosen: &Chosen, node_version: &str) -> Result<(), DeployError> {
        if chosen.dlv.version != dlv::UNKNOWN {
            return Ok(());
        }
        let on_node = Dlv { version: node_version.to_string(), ..chosen.dlv.clone() };
        match chosen.needs.unmet_by(&on_node) {
            None => Ok(()),
            Some(why) => Err(DlvPickError::TooOld {
                binary: chosen.dlv.path.clone(),
                message: format!(
                    "{} on {}: {why}\n  fix: use {}, e.g. `GOOS=linux GOARCH={} CGO_ENABLED=0 go install \
                     github.com/go-delve/delve/cmd/dlv@latest`, and pass --dlv {}=PATH",
                    chosen.dlv.path,
                    self.node.describe(),
                    chosen.needs.requirement(),
                    self.dest.prepared.platform.arch,
                    self.dest.prepared.platform
                ),
            }
            .into()),
        }
    }

    /// What the node holds of every file to send: one round trip.
    fn hash_node(&self, given: &Given<'_>) -> Result<OnNode, DeployError> {
        let names: Vec<String> = given.built().iter().map(|b| b.name.clone()).chain(["dlv".to_string()]).collect();
        let remote: Vec<String> = names.iter().map(|n| format!("{BIN_DIR}/{n}")).collect();
        let before = self.node.round_trips();
        let have = self.node.sha256s(&remote.iter().map(String::as_str).collect::<Vec<_>>())?;
        let round_trips = self.node.round_trips() - before;
        Ok(OnNode { have: names.into_iter().zip(have).collect(), round_trips })
    }

    /// The file a copy step sends, and what the node holds at its path.
    fn wanted(step: &Step, given: &Given<'_>) -> (Wanted, Option<String>) {
        let wanted = match step.id.component() {
            Some(name) => {
                let b = given.built().into_iter().find(|b| b.name == name).expect("a copy after its build");
                (b.name.clone(), b.binary.clone(), b.sha256.clone())
            }
            None => {
                let d = given.delve().expect("copy:dlv after choose-dlv");
                ("dlv".to_string(), d.dlv.path.clone(), d.sha256.clone())
            }
        };
        let on_node = given.on_node().expect("a copy after hash-node");
        let have = on_node.have.get(&wanted.0).cloned().flatten();
        (wanted, have)
    }
}

impl Runner for Deploying<'_> {
    type Error = DeployError;
    type Output = Output;

    fn up_to_date(&self, step: &Step, inputs: &Inputs<'_, Output>) -> Result<Option<Fresh<Output>>, DeployError> {
        match step.id.kind {
            StepKind::Build => {
                let fresh = self.building.up_to_date(step, &Inputs::none())?;
                Ok(fresh.map(|f| Fresh { reason: f.reason, output: Output::Built(f.output) }))
            }
            StepKind::Copy => {
                let ((name, local, sha), have) = Self::wanted(step, &Given::of(inputs));
                if have.as_deref() != Some(sha.as_str()) {
                    return Ok(None);
                }
                let file_bytes = std::fs::metadata(&local).map(|m| m.len()).unwrap_or(0);
                let reason = format!("{} already has sha256:{}", self.node.describe(), &sha[..12.min(sha.len())]);
                let mut kept = Deployed::kept(&name, &sha, file_bytes);
                if let Some(chosen) =
                    Given::of(inputs).delve().filter(|c| step.id.is_delve() && c.dlv.version == dlv::UNKNOWN)
                {
                    let version = super::check_dlv_runs(self.node, &format!("{BIN_DIR}/dlv"))?;
                    self.verify(chosen, &version)?;
                    kept.dlv_version = Some(version);
                }
                Ok(Some(Fresh { reason, output: Output::Sent(kept) }))
            }
            _ => Ok(None),
        }
    }

    fn run(&self, step: &Step, inputs: &Inputs<'_, Output>) -> Result<Ran<Output>, DeployError> {
        let given = Given::of(inputs);
        let output = match step.id.kind {
            StepKind::Build => return self.run_batch(&[(step, Inputs::none())]).pop().expect("one result"),
            StepKind::ChooseDlv => Output::Delve(self.choose_dlv(&given.built())?),
            StepKind::HashNode => Output::OnNode(self.hash_node(&given)?),
            StepKind::Copy => {
                let (file, have) = Self::wanted(step, &given);
                let sent = copy_one(self.tree, self.node, &file, have.as_deref(), step.id.is_delve(), self.reporter)?;
                if let (Some(chosen), Some(version)) = (given.delve().filter(|_| step.id.is_delve()), &sent.dlv_version)
                {
                    self.verify(chosen, version)?;
                }
                Output::Sent(sent)
            }
            other => unreachable!("a deploy plan has no {} step", other.verb()),
        };
        Ok(Ran::done(output))
    }

    fn batched(&self, step: &Step) -> bool {
        step.id.kind == StepKind::Build
    }

    fn run_batch(&self, steps: &[(&Step, Inputs<'_, Output>)]) -> Vec<Result<Ran<Output>, DeployError>> {
        let steps: Vec<(&Step, Inputs<'_, Built>)> = steps.iter().map(|(s, _)| (*s, Inputs::none())).collect();
        let results = self.building.run_batch(&steps);
        let out = |r: Ran<Built>| Ran { output: Output::Built(r.output), warning: r.warning };
        results.into_iter().map(|r| r.map(out).map_err(DeployError::from)).collect()
    }
}

/// What a deploy did on one node, from its steps' outputs.
pub(crate) fn outcome<'o>(
    node: &dyn Node,
    dest: &Destination,
    components: &[&'static Component],
    outputs: impl Iterator<Item = &'o Output>,
    seconds: f64,
    (trips0, sent0): (u64, u64),
) -> DeployOutcome {
    let outputs: Vec<&Output> = outputs.collect();
    let given = Given(outputs.clone());
    let chosen = given.delve().expect("choose-dlv ran or the run failed").clone();
    let mut built: Vec<Built> = given.built().into_iter().cloned().collect();
    built.sort_by_key(|b| components.iter().position(|c| c.name == b.name));
    let mut files: Vec<Deployed> =
        outputs.iter().filter_map(|o| if let Output::Sent(d) = o { Some(d.clone()) } else { None }).collect();
    files.sort_by_key(|f| (f.name == "dlv", built.iter().position(|b| b.name == f.name)));
    DeployOutcome {
        node: node.describe(),
        platform: dest.platform.clone(),
        build: BuildOutcome::of(built),
        files,
        dlv: chosen.dlv,
        needs: Some(chosen.needs),
        decide_round_trips: given.on_node().map(|h| h.round_trips).unwrap_or_default(),
        round_trips: node.round_trips() - trips0,
        bytes_sent: node.bytes_sent() - sent0,
        seconds,
    }
}
