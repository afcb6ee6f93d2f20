//! Test-only fault injection: `KDBG_TEST_CRASH_AT=<point>` makes kdbg SIGKILL itself right after
//! that point, so tests can check that `kdbg restore` recovers from a kill anywhere.
//!
//! Points are plan step ids (`stop:kube-apiserver`: after the step finished) and step-internal
//! boundaries (`stop:kube-apiserver#backup`: after the manifest was copied to the backup directory,
//! before it left the manifests directory). [`debug_points`] and [`restore_points`] list them in
//! the order a run passes them. The CLI reads the variable; kdbg-core only gets the value.

/// The environment variable the CLI reads.
pub const ENV: &str = "KDBG_TEST_CRASH_AT";

/// Where to die, if anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CrashAt(pub Option<String>);

impl CrashAt {
    /// Called at each point: SIGKILLs this process if `point` is the one asked for.
    pub fn point(&self, point: &str) {
        if self.0.as_deref() == Some(point) {
            // SAFETY: sends SIGKILL to this very process; nothing is touched after it.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

/// Every point of `kdbg debug` for one component, in order.
pub fn debug_points(component: &str) -> Vec<String> {
    [
        "capture-args",
        "copy",
        "stop#journal",
        "stop#backup",
        "stop#moved",
        "stop",
        "launch#journal",
        "launch#spawned",
        "launch",
        "tunnel",
    ]
    .iter()
    .map(|p| match p.split_once('#') {
        Some((step, sub)) => format!("{step}:{component}#{sub}"),
        None => format!("{p}:{component}"),
    })
    .collect()
}

/// Every point of `kdbg restore` for one component, in order.
pub fn restore_points(component: &str) -> Vec<String> {
    ["#journal", "#killed", "#manifest", ""].iter().map(|sub| format!("restore:{component}{sub}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_named_after_plan_steps() {
        let p = debug_points("kube-apiserver");
        assert_eq!(p[0], "capture-args:kube-apiserver");
        assert_eq!(p[3], "stop:kube-apiserver#backup");
        assert_eq!(restore_points("kube-apiserver")[3], "restore:kube-apiserver");
        // Not asked: nothing happens.
        CrashAt(Some("elsewhere".into())).point("build:kube-apiserver");
        CrashAt::default().point("build:kube-apiserver");
    }
}
