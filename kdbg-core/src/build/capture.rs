//! Capture of the `go` invocations `make` performs: a `go` shim first on make's PATH logs them, kdbg keeps the builds.
//!
//! The shim (`_output/kdbg/shim/go`) appends one record per call to `_output/kdbg/shim/go.log`
//! and then `exec`s the real `go` the toolchain module chose, so make's output is unchanged.
//! A record is a run of lines: `cwd=DIR`, `env:NAME=VALUE` for each Go-relevant variable that
//! is set, `arg=VALUE` for each argument, then `end`. A line with none of these prefixes
//! continues the previous value (a value holding a newline).
//!
//! After a successful make, the invocations that build binaries (`go build`, `go install`) are
//! kept in `_output/kdbg/capture.json` with the components and keys they were made for. The
//! record is state, not a key input: it may hold absolute paths.

use std::collections::BTreeMap;

use camino::{Utf8Path, Utf8PathBuf};
use serde::{Deserialize, Serialize};

/// The variables Go reads that the shim records (when set).
pub(crate) const GO_ENV: &[&str] = &[
    "GOPATH",
    "GOFLAGS",
    "GO111MODULE",
    "GOWORK",
    "GOTOOLCHAIN",
    "CGO_ENABLED",
    "GOOS",
    "GOARCH",
    "GOCACHE",
    "GOROOT",
    "GOEXPERIMENT",
    "GOAMD64",
    "GOBIN",
    "CGO_CFLAGS",
    "CGO_LDFLAGS",
];

pub(crate) const CAPTURE_FILE: &str = "capture.json";

/// One `go` call as the shim saw it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct GoInvocation {
    pub args: Vec<String>,
    pub cwd: String,
    pub env: BTreeMap<String, String>,
}

impl GoInvocation {
    /// `go build` or `go install`: a call that produces binaries.
    pub(crate) fn builds(&self) -> bool {
        matches!(self.args.first().map(String::as_str), Some("build" | "install"))
    }

    /// A build of one of the `whats` (`cmd/kube-apiserver`, as `./cmd/...` or an import path);
    /// make's builds of its generators and tools are not replayed.
    pub(crate) fn builds_one_of(&self, whats: &[&str]) -> bool {
        self.builds()
            && self
                .args
                .iter()
                .skip(1)
                .any(|a| whats.iter().any(|w| a == w || a.ends_with(&format!("/{w}")) || a == &format!("./{w}")))
    }
}

/// What one make run did with Go, for the components it built.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Capture {
    /// Component name → the key it was built under.
    pub keys: BTreeMap<String, String>,
    pub invocations: Vec<GoInvocation>,
}

/// The shim's directory under the state dir.
pub(crate) fn shim_dir(state_dir: &Utf8Path) -> Utf8PathBuf {
    state_dir.join("shim")
}

/// Writes the shim that logs and then runs `real_go`; empties its log. Returns the shim's directory.
pub(crate) fn write_shim(state_dir: &Utf8Path, real_go: &Utf8Path) -> std::io::Result<Utf8PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let dir = shim_dir(state_dir);
    std::fs::create_dir_all(&dir)?;
    let log = dir.join("go.log");
    std::fs::write(&log, "")?;
    let path = dir.join("go");
    std::fs::write(&path, shim_script(&log, real_go))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
    Ok(dir)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn shim_script(log: &Utf8Path, real_go: &Utf8Path) -> String {
    let mut s = String::from("#!/bin/sh\n# written by kdbg: logs this go call, then runs the real go\n{\n");
    s.push_str("  printf 'cwd=%s\\n' \"$(pwd)\"\n");
    for v in GO_ENV {
        s.push_str(&format!("  if [ -n \"${{{v}+x}}\" ]; then printf 'env:{v}=%s\\n' \"${v}\"; fi\n"));
    }
    s.push_str("  for a in \"$@\"; do printf 'arg=%s\\n' \"$a\"; done\n  echo end\n");
    s.push_str(&format!("}} >> {}\nexec {} \"$@\"\n", quote(log.as_str()), quote(real_go.as_str())));
    s
}

/// Parses the shim's log into invocations (a record cut short by a crash is dropped).
pub(crate) fn parse_log(text: &str) -> Vec<GoInvocation> {
    enum Last {
        None,
        Cwd,
        Env(String),
        Arg,
    }
    let mut out = Vec::new();
    let mut cur = GoInvocation::default();
    let mut last = Last::None;
    for line in text.lines() {
        if line == "end" {
            out.push(std::mem::take(&mut cur));
            last = Last::None;
        } else if let Some(v) = line.strip_prefix("cwd=") {
            cur.cwd = v.to_string();
            last = Last::Cwd;
        } else if let Some((k, v)) = line.strip_prefix("env:").and_then(|kv| kv.split_once('=')) {
            cur.env.insert(k.to_string(), v.to_string());
            last = Last::Env(k.to_string());
        } else if let Some(v) = line.strip_prefix("arg=") {
            cur.args.push(v.to_string());
            last = Last::Arg;
        } else {
            let target = match &last {
                Last::None => continue,
                Last::Cwd => &mut cur.cwd,
                Last::Env(k) => cur.env.entry(k.clone()).or_default(),
                Last::Arg => cur.args.last_mut().expect("an arg was pushed"),
            };
            target.push('\n');
            target.push_str(line);
        }
    }
    out
}

/// Reads the shim's log after a successful make and keeps the calls that build `whats` as `capture.json`.
pub(crate) fn save(state_dir: &Utf8Path, keys: BTreeMap<String, String>, whats: &[&str]) -> std::io::Result<Capture> {
    let text = std::fs::read_to_string(shim_dir(state_dir).join("go.log"))?;
    let invocations = parse_log(&text).into_iter().filter(|i| i.builds_one_of(whats)).collect();
    let capture = Capture { keys, invocations };
    let bytes = serde_json::to_vec_pretty(&capture).map_err(std::io::Error::other)?;
    crate::cache::state::write_atomic(&state_dir.join(CAPTURE_FILE), &bytes)?;
    Ok(capture)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_shim(args: &[&str], env: &[(&str, &str)]) -> Vec<GoInvocation> {
        let dir = tempfile::tempdir().unwrap();
        let state = Utf8Path::from_path(dir.path()).unwrap();
        let shim = write_shim(state, Utf8Path::new("/bin/true")).unwrap();
        let mut cmd = std::process::Command::new(shim.join("go"));
        cmd.args(args).current_dir(dir.path()).env_remove("GOFLAGS").env_remove("GOPATH");
        for (k, v) in env {
            cmd.env(k, v);
        }
        assert!(cmd.status().unwrap().success());
        parse_log(&std::fs::read_to_string(shim.join("go.log")).unwrap())
    }

    #[test]
    fn shim_records_args_cwd_and_go_env_then_runs_the_real_go() {
        let got = run_shim(
            &["install", "-gcflags=all=-N -l", "-ldflags=", "it's\nmulti", "k8s.io/kubernetes/cmd/x"],
            &[("GOFLAGS", "-mod=vendor"), ("GOPATH", "/g")],
        );
        assert_eq!(got.len(), 1);
        let inv = &got[0];
        assert_eq!(inv.args, ["install", "-gcflags=all=-N -l", "-ldflags=", "it's\nmulti", "k8s.io/kubernetes/cmd/x"]);
        assert_eq!(inv.env.get("GOFLAGS").map(String::as_str), Some("-mod=vendor"));
        assert_eq!(inv.env.get("GOPATH").map(String::as_str), Some("/g"));
        assert!(!inv.cwd.is_empty());
        assert!(inv.builds());
    }

    #[test]
    fn only_build_and_install_calls_are_builds_and_a_cut_record_is_dropped() {
        let log = "cwd=/t\narg=version\nend\ncwd=/t\narg=build\narg=-o\narg=/t/x\nend\ncwd=/t\narg=install\n";
        let got = parse_log(log);
        assert_eq!(got.len(), 2);
        assert_eq!(got.iter().filter(|i| i.builds()).count(), 1);
    }

    #[test]
    fn only_the_components_builds_are_replayed_not_makes_generators() {
        let inv =
            |args: &[&str]| GoInvocation { args: args.iter().map(|a| a.to_string()).collect(), ..Default::default() };
        let whats = ["cmd/kube-apiserver"];
        assert!(inv(&["install", "-gcflags=x", "k8s.io/kubernetes/cmd/kube-apiserver"]).builds_one_of(&whats));
        assert!(inv(&["build", "-o", "/o/kube-apiserver", "./cmd/kube-apiserver"]).builds_one_of(&whats));
        assert!(
            !inv(&["install", "k8s.io/kubernetes/vendor/k8s.io/code-generator/cmd/deepcopy-gen"]).builds_one_of(&whats)
        );
        assert!(!inv(&["list", "k8s.io/kubernetes/cmd/kube-apiserver"]).builds_one_of(&whats));
    }
}
