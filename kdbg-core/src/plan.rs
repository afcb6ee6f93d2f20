//! The plan: a DAG of steps computed from a request and observed state, without running anything.

pub(crate) mod exec;
pub(crate) mod fleet;
pub(crate) mod id;

use serde::ser::{SerializeStruct, Serializer};
use serde::Serialize;

use crate::cache::ComponentKey;
pub use id::{StepId, StepKind, Subject};

#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub id: StepId,
    pub deps: Vec<StepId>,
    /// What decides whether the step must run (a cache key, a remote hash, ...).
    pub fingerprint: Option<String>,
    /// The fingerprint matches what is already there: the step will be skipped.
    pub up_to_date: bool,
    /// Why the step must run, or why it is up to date.
    pub why: Vec<String>,
}

/// `{"id", "kind", "component"?, "node"?, "deps", "fingerprint", "up_to_date", "why"}`;
/// `component` is left out for the steps of Delve and of no subject (their `id` says which).
impl Serialize for Step {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("Step", 8)?;
        st.serialize_field("id", &self.id)?;
        st.serialize_field("kind", &self.id.kind)?;
        match self.id.component() {
            Some(c) => st.serialize_field("component", c)?,
            None => st.skip_field("component")?,
        }
        match &self.id.node {
            Some(n) => st.serialize_field("node", n)?,
            None => st.skip_field("node")?,
        }
        st.serialize_field("deps", &self.deps)?;
        st.serialize_field("fingerprint", &self.fingerprint)?;
        st.serialize_field("up_to_date", &self.up_to_date)?;
        st.serialize_field("why", &self.why)?;
        st.end()
    }
}

/// Version of `kdbg plan --json` output.
pub(crate) const PLAN_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub schema: u32,
    pub steps: Vec<Step>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("step `{step}` depends on unknown step `{dep}`")]
    UnknownDep { step: StepId, dep: StepId },
    #[error("the plan has a cycle through `{0}`")]
    Cycle(StepId),
}

impl Plan {
    /// This plan once per node of `nodes`: every step but the node-less ones (`build:*`,
    /// `write-ide`) is repeated with `@node`, deps too; a node-less step stays once and waits for
    /// its per-node deps on every node. With one node the plan is unchanged (no `@node`).
    pub(crate) fn across(self, nodes: &[String]) -> Plan {
        if nodes.len() <= 1 {
            return self;
        }
        let shared = |id: &StepId| matches!(id.kind, StepKind::Build | StepKind::WriteIde);
        let on = |id: &StepId, n: &str| if shared(id) { id.clone() } else { id.clone().at(n) };
        let mut out = Plan { schema: self.schema, steps: Vec::new() };
        for step in self.steps {
            if shared(&step.id) {
                let mut deps: Vec<StepId> = Vec::new();
                for d in step.deps.iter().flat_map(|d| nodes.iter().map(move |n| on(d, n))) {
                    if !deps.contains(&d) {
                        deps.push(d);
                    }
                }
                out.steps.push(Step { deps, ..step });
            } else {
                for n in nodes {
                    let deps = step.deps.iter().map(|d| on(d, n)).collect();
                    out.steps.push(Step { id: on(&step.id, n), deps, ..step.clone() });
                }
            }
        }
        out
    }

    /// The build steps for computed keys.
    pub(crate) fn for_build(keys: &[ComponentKey]) -> Plan {
        let mut plan = Plan { schema: PLAN_SCHEMA, steps: Vec::new() };
        for k in keys {
            plan.add(StepKind::Build.on(k.component.name), &[], Some(k.key.clone()), k.hit, why(k));
        }
        plan
    }

    pub(crate) fn add(
        &mut self,
        id: StepId,
        deps: &[StepId],
        fingerprint: Option<String>,
        up_to_date: bool,
        why: Vec<String>,
    ) -> StepId {
        self.steps.push(Step { id: id.clone(), deps: deps.to_vec(), fingerprint, up_to_date, why });
        id
    }

    pub(crate) fn step(&self, id: &StepId) -> Option<&Step> {
        self.steps.iter().find(|s| &s.id == id)
    }

    /// The same plan with its steps in the order the executor starts them (wave by wave, in
    /// plan order within a wave): what `kdbg plan --json` prints.
    pub fn in_order(&self) -> Result<Plan, PlanError> {
        let steps = self.waves()?.into_iter().flatten().cloned().collect();
        Ok(Plan { schema: self.schema, steps })
    }

    /// Steps in an order that respects dependencies, grouped in waves that may run concurrently.
    pub(crate) fn waves(&self) -> Result<Vec<Vec<&Step>>, PlanError> {
        for s in &self.steps {
            if let Some(dep) = s.deps.iter().find(|d| self.step(d).is_none()) {
                return Err(PlanError::UnknownDep { step: s.id.clone(), dep: dep.clone() });
            }
        }
        let mut done: Vec<&StepId> = Vec::new();
        let mut waves = Vec::new();
        while done.len() < self.steps.len() {
            let wave: Vec<&Step> = self
                .steps
                .iter()
                .filter(|s| !done.contains(&&s.id) && s.deps.iter().all(|d| done.contains(&d)))
                .collect();
            if wave.is_empty() {
                let stuck = self.steps.iter().find(|s| !done.contains(&&s.id)).unwrap();
                return Err(PlanError::Cycle(stuck.id.clone()));
            }
            done.extend(wave.iter().map(|s| &s.id));
            waves.push(wave);
        }
        Ok(waves)
    }

    /// What `kdbg plan` prints: one line per step in dependency order, with its reasons.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let waves = match self.waves() {
            Ok(w) => w,
            Err(e) => return format!("invalid plan: {e}\n"),
        };
        for (n, wave) in waves.iter().enumerate() {
            for s in wave {
                let state = if s.up_to_date { "up to date" } else { "will run" };
                let fp = s.fingerprint.as_deref().map(|f| format!("  [{}]", &f[..f.len().min(12)])).unwrap_or_default();
                let deps: Vec<String> = s.deps.iter().map(StepId::to_string).collect();
                let deps = if deps.is_empty() { String::new() } else { format!("  after {}", deps.join(", ")) };
                out.push_str(&format!("{}. {:<32} {state}{fp}{deps}\n", n + 1, s.id.to_string()));
                for w in s.why.iter().take(10) {
                    out.push_str(&format!("     {w}\n"));
                }
                if s.why.len() > 10 {
                    out.push_str(&format!("     ... and {} more\n", s.why.len() - 10));
                }
            }
        }
        out
    }
}

/// Why a build step is (not) needed, in words.
pub fn why(k: &ComponentKey) -> Vec<String> {
    if k.hit {
        return vec!["inputs unchanged since the last build; binary intact".into()];
    }
    let mut why = Vec::new();
    if k.never_built {
        why.push("no build recorded".to_string());
    }
    if k.output_gone {
        why.push(format!("built binary missing or altered: {}", k.binary));
    }
    why.extend(k.changed.iter().cloned());
    if why.is_empty() {
        why.push("binary was built from other inputs".into());
    }
    why
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_respect_dependencies_and_render_in_order() {
        let mut p = Plan::default();
        let b = p.add(StepKind::Build.on("kube-apiserver"), &[], Some("0123456789abcdef".into()), true, vec![]);
        let c = p.add(StepKind::Copy.on("kube-apiserver"), &[b], None, false, vec!["node holds other bytes".into()]);
        let dlv = p.add(StepKind::Copy.delve(), &[], None, false, vec![]);
        p.add(StepKind::Launch.on("kube-apiserver"), &[c, dlv], None, false, vec![]);
        let waves = p.waves().unwrap();
        let ids: Vec<Vec<String>> = waves.iter().map(|w| w.iter().map(|s| s.id.to_string()).collect()).collect();
        assert_eq!(
            ids,
            vec![vec!["build:kube-apiserver", "copy:dlv"], vec!["copy:kube-apiserver"], vec!["launch:kube-apiserver"]]
        );
        let ordered: Vec<String> = p.in_order().unwrap().steps.iter().map(|s| s.id.to_string()).collect();
        assert_eq!(ordered, ["build:kube-apiserver", "copy:dlv", "copy:kube-apiserver", "launch:kube-apiserver"]);
        expect_test::expect![[r#"
            1. build:kube-apiserver             up to date  [0123456789ab]
            1. copy:dlv                         will run
            2. copy:kube-apiserver              will run  after build:kube-apiserver
                 node holds other bytes
            3. launch:kube-apiserver            will run  after copy:kube-apiserver, copy:dlv
        "#]]
        .assert_eq(&p.render());
        let json = serde_json::to_value(&p.steps[1]).unwrap();
        assert_eq!(json["id"], "copy:kube-apiserver");
        assert_eq!((json["kind"].as_str(), json["component"].as_str()), (Some("copy"), Some("kube-apiserver")));
        assert_eq!(json["deps"][0], "build:kube-apiserver");
    }

    #[test]
    fn cycles_and_unknown_deps_are_errors() {
        let mut p = Plan::default();
        let (build, copy) = (StepKind::Build.on("a"), StepKind::Copy.on("a"));
        p.add(build.clone(), std::slice::from_ref(&copy), None, false, vec![]);
        p.add(copy, std::slice::from_ref(&build), None, false, vec![]);
        assert_eq!(p.waves().unwrap_err(), PlanError::Cycle(build));
        p.add(StepKind::Launch.on("a"), &[StepKind::Tunnel.on("a")], None, false, vec![]);
        assert!(matches!(p.waves().unwrap_err(), PlanError::UnknownDep { .. }));
    }
}
