//! Test-only fault injection: `KDBG_TEST_CRASH_AT=<point>` makes kdbg SIGKILL itself right after
//! that point, so tests can check that `kdbg restore` recovers from a kill anywhere.
//!
//! Points are plan step ids (`stop:kube-apiserver`: after the step finished or was skipped) and
//! the boundaries inside a step its [`StepKind::boundaries`] names (`stop:kube-apiserver#backup`:
//! after the manifest was copied to the backup directory, before it left the manifests
//! directory). [`points`] lists them for a plan in the order a run passes them. The CLI reads the
//! variable; kdbg-core only gets the value.

use crate::plan::StepId;
#[cfg(doc)]
use crate::plan::{Plan, StepKind};

/// The environment variable the CLI reads.
pub const ENV: &str = "KDBG_TEST_CRASH_AT";

/// Where to die, if anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashAt(pub Option<String>);

impl CrashAt {
    /// The point `KDBG_TEST_CRASH_AT` names, if any.
    pub fn from_env() -> CrashAt {
        CrashAt(std::env::var(ENV).ok().filter(|v| !v.is_empty()))
    }

    /// Called when step `id` finished: SIGKILLs this process if that is the point asked for.
    pub(crate) fn after(&self, id: &StepId) {
        self.die_at(&id.to_string());
    }

    /// Called at `boundary` inside step `id` (one of its kind's [`StepKind::boundaries`]).
    pub(crate) fn within(&self, id: &StepId, boundary: &str) {
        debug_assert!(id.kind.boundaries().contains(&boundary), "{boundary} is not a boundary of {id}");
        self.die_at(&format!("{id}#{boundary}"));
    }

    fn die_at(&self, point: &str) {
        if self.0.as_deref() == Some(point) {
            // SAFETY: sends SIGKILL to this very process; nothing is touched after it.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

/// Every point a run passes, in order, given its steps in the order they start
/// ([`Plan::in_order`]): each step's boundaries, then the step itself.
pub fn points<'a>(steps: impl IntoIterator<Item = &'a StepId>) -> Vec<String> {
    let mut out = Vec::new();
    for id in steps {
        out.extend(id.kind.boundaries().iter().map(|b| format!("{id}#{b}")));
        out.push(id.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Plan, StepKind};

    #[test]
    fn points_are_named_after_plan_steps() {
        let mut plan = Plan::default();
        let stop = plan.add(StepKind::Stop.on("kube-apiserver"), &[], None, false, vec![]);
        plan.add(StepKind::Tunnel.on("kube-apiserver"), &[stop], None, false, vec![]);
        let p = points(plan.in_order().unwrap().steps.iter().map(|s| &s.id));
        assert_eq!(
            p,
            [
                "stop:kube-apiserver#journal",
                "stop:kube-apiserver#backup",
                "stop:kube-apiserver#moved",
                "stop:kube-apiserver",
                "tunnel:kube-apiserver"
            ]
        );
        // Not asked: nothing happens.
        CrashAt(Some("elsewhere".into())).after(&StepKind::Build.on("kube-apiserver"));
        CrashAt::default().within(&StepKind::Stop.on("kube-apiserver"), "backup");
    }
}
