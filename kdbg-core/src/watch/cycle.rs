//! A watch cycle's node part as a plan run by the executor ([`crate::plan::exec`]): `copy:<c>`
//! for each binary that differs from what the node holds, then `launch:<c>` (Delve relaunched
//! on the new binary, [`super::relaunch`]) for each component to relaunch, after its copy. The
//! copies of a wave, and the relaunches, run at once; each step is a crash point (`<id>`), as in
//! `kdbg debug`. A failed copy leaves its component's relaunch out; the other steps still run.

use std::sync::Mutex;
use std::time::Instant;

use camino::Utf8PathBuf;

use super::relaunch::{self, Held, Relaunched};
use super::WatchError;
use crate::crash::CrashAt;
use crate::deploy::{self, Deployed};
use crate::node::Node;
use crate::plan::exec::{Exec, Inputs, Policy, Ran, Runner};
use crate::plan::{Plan, Step, StepId, StepKind};
use crate::report::Reporter;
use crate::session::debug::Timeouts;
use crate::session::journal::Journal;
use crate::tree::SourceTree;

/// `copy:<c>` for `copies`, `launch:<c>` for `relaunch` (after `copy:<c>` when there is one).
pub(super) fn plan(copies: &[&str], relaunch: &[&str]) -> Plan {
    let mut p = Plan::default();
    for c in copies {
        p.add(StepKind::Copy.on(c), &[], None, false, vec![]);
    }
    for c in relaunch {
        let after: Vec<StepId> = copies.contains(c).then(|| StepKind::Copy.on(c)).into_iter().collect();
        p.add(StepKind::Launch.on(c), &after, None, false, vec![]);
    }
    p
}

/// Why a step of the cycle failed.
#[derive(Debug, thiserror::Error)]
pub(super) enum CycleError {
    #[error("{0}")]
    Copy(String),
    #[error(transparent)]
    Relaunch(WatchError),
}

/// What a step of the cycle yields.
pub(super) enum CycleOut {
    /// `copy:<c>`: the file sent, and when the copy ended.
    Copied(Deployed, Instant),
    /// `launch:<c>`: Delve relaunched on the new binary.
    Relaunched(Relaunched),
}

/// What a cycle's plan did: the copies, the relaunches, and the errors of the steps that failed.
#[derive(Default)]
pub(super) struct Cycled {
    pub copied: Vec<(Deployed, Instant)>,
    pub relaunched: Vec<(String, Relaunched)>,
    pub errors: Vec<CycleError>,
}

/// What the cycle's steps do.
pub(super) struct Cycling<'a> {
    pub tree: &'a SourceTree,
    pub node: &'a dyn Node,
    /// `(name, local binary, sha256)` to copy, and the sha256 the node holds at its path.
    pub wanted: Vec<(String, Utf8PathBuf, String)>,
    pub have: Vec<Option<String>>,
    pub held: Vec<&'a Held>,
    pub journal: Mutex<Journal>,
    pub timeouts: Timeouts,
    pub reporter: &'a dyn Reporter,
}

impl Cycling<'_> {
    /// Runs the cycle's plan.
    pub(super) fn run_plan(&self, plan: &Plan, crash: CrashAt) -> Cycled {
        let exec = Exec { policy: Policy::KeepGoing, crash, parallel: 4.max(self.held.len()) };
        let (outputs, errors) = match exec.run(plan, self, self.reporter) {
            Ok(run) => (run.outputs, Vec::new()),
            Err(failed) => (failed.outputs, failed.errors.into_iter().map(|(_, e)| e).collect()),
        };
        let mut cycled = Cycled { errors, ..Cycled::default() };
        for (id, out) in outputs {
            match out {
                CycleOut::Copied(d, at) => cycled.copied.push((d, at)),
                CycleOut::Relaunched(r) => cycled.relaunched.push((id.component().unwrap_or_default().to_string(), r)),
            }
        }
        cycled
    }
}

impl Runner for Cycling<'_> {
    type Error = CycleError;
    type Output = CycleOut;

    fn run(&self, step: &Step, _: &Inputs<'_, CycleOut>) -> Result<Ran<CycleOut>, CycleError> {
        let name = step.id.component().unwrap_or_default();
        let out = match step.id.kind {
            StepKind::Copy => {
                let i = self.wanted.iter().position(|(n, ..)| n == name).expect("a copy of a wanted binary");
                let (tree, node, reporter) = (self.tree, self.node, self.reporter);
                let d = deploy::copy_one(tree, node, &self.wanted[i], self.have[i].as_deref(), false, reporter)
                    .map_err(|e| CycleError::Copy(e.to_string()))?;
                CycleOut::Copied(d, Instant::now())
            }
            StepKind::Launch => {
                let held = self.held.iter().find(|h| h.component == name).expect("a relaunch of a held component");
                let (dlv, serve) = (self.timeouts.dlv, self.timeouts.serve);
                let r = relaunch::relaunch(self.node, &self.journal, held, dlv, serve).map_err(CycleError::Relaunch)?;
                CycleOut::Relaunched(r)
            }
            other => unreachable!("a watch cycle has no {} step", other.verb()),
        };
        Ok(Ran::done(out))
    }
}
