//! Which `make` variables give a debuggable build of a given tree, and the pins that make it reproducible.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::tree::KubeVersion;

/// How a tree is told to keep debug information.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DebugPolicy {
    /// `DBG=1` (kubernetes ≥ v1.24): no `-s -w`, `-gcflags=all=-N -l`.
    Dbg,
    /// Older trees: `GOLDFLAGS=''` (set but empty, which drops the default `-s -w`) and
    /// `GOGCFLAGS='all=-N -l'`.
    GoFlags,
}

impl DebugPolicy {
    /// The tree's `hack/lib/golang.sh` decides when present (a tree between releases may already
    /// honour `DBG`); the version number only when that file is missing.
    pub(crate) fn detect(golang_sh: Option<&str>, version: &KubeVersion) -> DebugPolicy {
        match golang_sh {
            Some(text) if text.contains("${DBG") || text.contains("$DBG") => DebugPolicy::Dbg,
            Some(_) => DebugPolicy::GoFlags,
            None if version.at_least(1, 24) => DebugPolicy::Dbg,
            None => DebugPolicy::GoFlags,
        }
    }
}

/// What the user wants from the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Optimisations and inlining off: every variable and line is visible in Delve.
    #[default]
    Debug,
    /// Optimised code that keeps DWARF: closer to production timing, harder to step through.
    Optimized,
}

/// The exact `make` variables of a build. Set-versus-unset matters (`GOLDFLAGS` unset means
/// `-s -w`), so a variable is either in the map or not.
pub fn make_vars(policy: DebugPolicy, profile: Profile) -> BTreeMap<String, String> {
    let pairs: &[(&str, &str)] = match (policy, profile) {
        (DebugPolicy::Dbg, Profile::Debug) => &[("DBG", "1")],
        (DebugPolicy::GoFlags, Profile::Debug) => &[("GOLDFLAGS", ""), ("GOGCFLAGS", "all=-N -l")],
        (_, Profile::Optimized) => &[("GOLDFLAGS", "")],
    };
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// `make all` arguments for these variables: `KEY=value`, an empty value kept as `KEY=`.
pub fn make_args(vars: &BTreeMap<String, String>) -> Vec<String> {
    vars.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// The build date kdbg stamps: fixed, so the same inputs give the same bytes on every machine
/// and every commit (a commit time would change the key on commits that touch nothing built).
pub const SOURCE_DATE_EPOCH: &str = "0";

/// The `KUBE_GIT_VERSION_FILE` kdbg writes: the version only, no commit and no dirty flag, for
/// the same reason.
pub(crate) fn version_file(version: &KubeVersion) -> String {
    format!(
        "KUBE_GIT_VERSION='{v}'\nKUBE_GIT_COMMIT=''\nKUBE_GIT_TREE_STATE='clean'\nKUBE_GIT_MAJOR='{major}'\nKUBE_GIT_MINOR='{minor}'\n",
        v = version.text,
        major = version.major,
        minor = version.minor,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> KubeVersion {
        KubeVersion::parse(text).unwrap()
    }

    #[test]
    fn golang_sh_beats_the_version_number() {
        let old = "  gogcflags=\"all=-trimpath=${trimroot} ${GOGCFLAGS:-}\"\n";
        let new = "  if [[ \"${DBG:-}\" == 1 ]]; then\n    gogcflags=\"${gogcflags} -N -l\"\n";
        assert_eq!(DebugPolicy::detect(Some(old), &v("v1.30.0")), DebugPolicy::GoFlags);
        assert_eq!(DebugPolicy::detect(Some(new), &v("v1.23.0")), DebugPolicy::Dbg);
        assert_eq!(DebugPolicy::detect(None, &v("v1.20.2")), DebugPolicy::GoFlags);
        assert_eq!(DebugPolicy::detect(None, &v("v1.24.0")), DebugPolicy::Dbg);
    }

    #[test]
    fn empty_goldflags_is_passed_as_set() {
        let vars = make_vars(DebugPolicy::GoFlags, Profile::Debug);
        assert_eq!(make_args(&vars), ["GOGCFLAGS=all=-N -l", "GOLDFLAGS="]);
        assert_eq!(make_args(&make_vars(DebugPolicy::Dbg, Profile::Debug)), ["DBG=1"]);
    }
}
