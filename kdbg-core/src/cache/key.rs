//! Cache keys: the serialized inputs of one component's build, their sha256, and why two differ.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::tree::GoMode;

/// Bump when the meaning of a key changes; old state then simply misses.
pub(crate) const SCHEMA: u32 = 1;

/// `go env` facts that change the bytes `go build` writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Toolchain {
    pub go_version: String,
    pub goos: String,
    pub goarch: String,
    /// The caller's `GOFLAGS` (`-tags`, `-mod`, ...), which `make` passes on.
    pub goflags: String,
}

/// Everything that decides a component's binary. Paths are repo-relative; maps are sorted; nothing
/// absolute, no timestamp, no host name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInputs {
    pub schema: u32,
    pub component: String,
    pub what: String,
    pub toolchain: Toolchain,
    pub cgo_enabled: String,
    pub go_mode: GoMode,
    /// The exact `make` variables (set-but-empty `GOLDFLAGS` is not unset `GOLDFLAGS`).
    pub make_vars: BTreeMap<String, String>,
    /// What kdbg stamps through `KUBE_GIT_VERSION_FILE` and `SOURCE_DATE_EPOCH`.
    pub kube_version: String,
    pub source_date_epoch: String,
    /// Closure files plus the build's own files (Makefile, hack/lib, go.mod, ...): path → sha256.
    pub files: BTreeMap<String, String>,
}

impl KeyInputs {
    /// sha256 over the JSON serialization, streamed into the hasher.
    pub(crate) fn digest(&self) -> String {
        let mut h = HashWriter(Sha256::new());
        serde_json::to_writer(&mut h, self).expect("key inputs serialize");
        hex::encode(h.0.finalize())
    }
}

struct HashWriter(Sha256);

impl std::io::Write for HashWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A CI cache key for a set of components: `kdbg-v1-linux-amd64-go1.19.8-<16 hex>`.
pub(crate) fn ci_key(toolchain: &Toolchain, component_keys: &[&str]) -> String {
    let mut keys = component_keys.to_vec();
    keys.sort();
    let mut h = Sha256::new();
    for k in keys {
        h.update(k.as_bytes());
        h.update(b"\n");
    }
    let hex = hex::encode(h.finalize());
    format!("kdbg-v{SCHEMA}-{}-{}-{}-{}", toolchain.goos, toolchain.goarch, toolchain.go_version, &hex[..16])
}

/// Human-readable reasons why `new` differs from `old`, most telling first.
pub(crate) fn explain(old: &KeyInputs, new: &KeyInputs) -> Vec<String> {
    let mut why = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            why.push(format!("{name} changed: {a} -> {b}"));
        }
    };
    field("key schema", old.schema.to_string(), new.schema.to_string());
    field("go version", old.toolchain.go_version.clone(), new.toolchain.go_version.clone());
    field(
        "target platform",
        format!("{}/{}", old.toolchain.goos, old.toolchain.goarch),
        format!("{}/{}", new.toolchain.goos, new.toolchain.goarch),
    );
    field("GOFLAGS", old.toolchain.goflags.clone(), new.toolchain.goflags.clone());
    field("CGO_ENABLED", old.cgo_enabled.clone(), new.cgo_enabled.clone());
    field("go mode", format!("{:?}", old.go_mode), format!("{:?}", new.go_mode));
    field("make variables", render_vars(&old.make_vars), render_vars(&new.make_vars));
    field("kube version", old.kube_version.clone(), new.kube_version.clone());
    field("SOURCE_DATE_EPOCH", old.source_date_epoch.clone(), new.source_date_epoch.clone());
    for (path, sha) in &new.files {
        match old.files.get(path) {
            None => why.push(format!("added: {path}")),
            Some(o) if o != sha => why.push(format!("modified: {path}")),
            Some(_) => {}
        }
    }
    for path in old.files.keys().filter(|p| !new.files.contains_key(*p)) {
        why.push(format!("removed: {path}"));
    }
    why
}

fn render_vars(vars: &BTreeMap<String, String>) -> String {
    if vars.is_empty() {
        return "(none)".into();
    }
    vars.iter().map(|(k, v)| format!("{k}='{v}'")).collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> KeyInputs {
        KeyInputs {
            schema: SCHEMA,
            component: "kube-apiserver".into(),
            what: "cmd/kube-apiserver".into(),
            toolchain: Toolchain {
                go_version: "go1.19.8".into(),
                goos: "linux".into(),
                goarch: "amd64".into(),
                goflags: String::new(),
            },
            cgo_enabled: "0".into(),
            go_mode: GoMode::Modules,
            make_vars: [("GOLDFLAGS".to_string(), String::new())].into(),
            kube_version: "v1.20.2".into(),
            source_date_epoch: "0".into(),
            files: [("pkg/a/a.go".to_string(), "aa".to_string())].into(),
        }
    }

    #[test]
    fn set_but_empty_flags_differ_from_unset() {
        let a = inputs();
        let mut b = inputs();
        b.make_vars.clear();
        assert_ne!(a.digest(), b.digest());
        assert_eq!(explain(&a, &b), ["make variables changed: GOLDFLAGS='' -> (none)"]);
    }

    #[test]
    fn explain_names_files() {
        let a = inputs();
        let mut b = inputs();
        b.files.insert("pkg/a/a.go".into(), "bb".into());
        b.files.insert("pkg/a/new.go".into(), "cc".into());
        assert_eq!(explain(&a, &b), ["modified: pkg/a/a.go", "added: pkg/a/new.go"]);
        assert_eq!(explain(&a, &a), Vec::<String>::new());
    }

    #[test]
    fn ci_key_shape_and_order_independence() {
        let t = inputs().toolchain;
        let k = ci_key(&t, &["b", "a"]);
        assert_eq!(k, ci_key(&t, &["a", "b"]));
        assert!(
            k.starts_with("kdbg-v1-linux-amd64-go1.19.8-") && k.len() == "kdbg-v1-linux-amd64-go1.19.8-".len() + 16
        );
    }
}
