//! The plan: a DAG of steps computed from a request and observed state, without running anything.

use serde::Serialize;

use crate::cache::ComponentKey;

/// What a step does. Later steps of a debug session are part of the type from the start so that
/// plans, renderers and the executor grow without changing shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum StepKind {
    /// One `make all` covers every stale build step of a plan.
    Build {
        component: String,
    },
    Copy {
        component: String,
    },
    ProvisionDlv,
    CaptureArgs {
        component: String,
    },
    Stop {
        component: String,
    },
    Launch {
        component: String,
    },
    Tunnel {
        component: String,
    },
    WriteIde,
    Restore {
        component: String,
    },
}

impl StepKind {
    pub fn verb(&self) -> &'static str {
        match self {
            StepKind::Build { .. } => "build",
            StepKind::Copy { .. } => "copy",
            StepKind::ProvisionDlv => "provision-dlv",
            StepKind::CaptureArgs { .. } => "capture-args",
            StepKind::Stop { .. } => "stop",
            StepKind::Launch { .. } => "launch",
            StepKind::Tunnel { .. } => "tunnel",
            StepKind::WriteIde => "write-ide",
            StepKind::Restore { .. } => "restore",
        }
    }
    pub fn component(&self) -> Option<&str> {
        match self {
            StepKind::Build { component }
            | StepKind::Copy { component }
            | StepKind::CaptureArgs { component }
            | StepKind::Stop { component }
            | StepKind::Launch { component }
            | StepKind::Tunnel { component }
            | StepKind::Restore { component } => Some(component),
            StepKind::ProvisionDlv | StepKind::WriteIde => None,
        }
    }
    /// `build:kube-apiserver`, `provision-dlv`, ...
    pub fn id(&self) -> String {
        match self.component() {
            Some(c) => format!("{}:{c}", self.verb()),
            None => self.verb().to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Step {
    pub id: String,
    #[serde(flatten)]
    pub kind: StepKind,
    pub deps: Vec<String>,
    /// What decides whether the step must run (a cache key, a remote hash, ...).
    pub fingerprint: Option<String>,
    /// The fingerprint matches what is already there: the step will be skipped.
    pub up_to_date: bool,
    /// Why the step must run, or why it is up to date.
    pub why: Vec<String>,
}

/// Version of `kdbg plan --json` output.
pub const PLAN_SCHEMA: u32 = 1;

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    pub schema: u32,
    pub steps: Vec<Step>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("step `{step}` depends on unknown step `{dep}`")]
    UnknownDep { step: String, dep: String },
    #[error("the plan has a cycle through `{0}`")]
    Cycle(String),
}

impl Plan {
    /// The build steps for computed keys.
    pub fn for_build(keys: &[ComponentKey]) -> Plan {
        let mut plan = Plan { schema: PLAN_SCHEMA, steps: Vec::new() };
        for k in keys {
            plan.add(
                StepKind::Build { component: k.component.name.to_string() },
                &[],
                Some(k.key.clone()),
                k.hit,
                why(k),
            );
        }
        plan
    }

    pub fn add(
        &mut self,
        kind: StepKind,
        deps: &[&str],
        fingerprint: Option<String>,
        up_to_date: bool,
        why: Vec<String>,
    ) -> String {
        let id = kind.id();
        let deps = deps.iter().map(|d| d.to_string()).collect();
        self.steps.push(Step { id: id.clone(), kind, deps, fingerprint, up_to_date, why });
        id
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Steps in an order that respects dependencies, grouped in waves that may run concurrently.
    pub fn waves(&self) -> Result<Vec<Vec<&Step>>, PlanError> {
        for s in &self.steps {
            if let Some(dep) = s.deps.iter().find(|d| self.step(d).is_none()) {
                return Err(PlanError::UnknownDep { step: s.id.clone(), dep: dep.clone() });
            }
        }
        let mut done: Vec<&str> = Vec::new();
        let mut waves = Vec::new();
        while done.len() < self.steps.len() {
            let wave: Vec<&Step> = self
                .steps
                .iter()
                .filter(|s| !done.contains(&s.id.as_str()) && s.deps.iter().all(|d| done.contains(&d.as_str())))
                .collect();
            if wave.is_empty() {
                let stuck = self.steps.iter().find(|s| !done.contains(&s.id.as_str())).unwrap();
                return Err(PlanError::Cycle(stuck.id.clone()));
            }
            done.extend(wave.iter().map(|s| s.id.as_str()));
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
                let deps = if s.deps.is_empty() { String::new() } else { format!("  after {}", s.deps.join(", ")) };
                out.push_str(&format!("{}. {:<32} {state}{fp}{deps}\n", n + 1, s.id));
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

    fn kind(verb: &str, c: &str) -> StepKind {
        match verb {
            "build" => StepKind::Build { component: c.into() },
            "copy" => StepKind::Copy { component: c.into() },
            _ => StepKind::Launch { component: c.into() },
        }
    }

    #[test]
    fn waves_respect_dependencies_and_render_in_order() {
        let mut p = Plan::default();
        let b = p.add(kind("build", "kube-apiserver"), &[], Some("0123456789abcdef".into()), true, vec![]);
        let c = p.add(kind("copy", "kube-apiserver"), &[&b], None, false, vec!["node holds other bytes".into()]);
        p.add(StepKind::ProvisionDlv, &[], None, false, vec![]);
        p.add(kind("launch", "kube-apiserver"), &[&c, "provision-dlv"], None, false, vec![]);
        let waves = p.waves().unwrap();
        let ids: Vec<Vec<&str>> = waves.iter().map(|w| w.iter().map(|s| s.id.as_str()).collect()).collect();
        assert_eq!(
            ids,
            vec![
                vec!["build:kube-apiserver", "provision-dlv"],
                vec!["copy:kube-apiserver"],
                vec!["launch:kube-apiserver"]
            ]
        );
        expect_test::expect![[r#"
            1. build:kube-apiserver             up to date  [0123456789ab]
            1. provision-dlv                    will run
            2. copy:kube-apiserver              will run  after build:kube-apiserver
                 node holds other bytes
            3. launch:kube-apiserver            will run  after copy:kube-apiserver, provision-dlv
        "#]]
        .assert_eq(&p.render());
    }

    #[test]
    fn cycles_and_unknown_deps_are_errors() {
        let mut p = Plan::default();
        p.add(kind("build", "a"), &["copy:a"], None, false, vec![]);
        p.add(kind("copy", "a"), &["build:a"], None, false, vec![]);
        assert_eq!(p.waves().unwrap_err(), PlanError::Cycle("build:a".into()));
        p.add(kind("launch", "a"), &["tunnel:a"], None, false, vec![]);
        assert!(matches!(p.waves().unwrap_err(), PlanError::UnknownDep { .. }));
    }
}
