//! Import-closure discovery: one `go list -deps -json` run, split into one closure per component.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use camino::{Utf8Path, Utf8PathBuf};
use serde::Deserialize;

use crate::component::Component;
use crate::host::Cmd;
use crate::toolchain::GoToolchain;
use crate::tree::{GoMode, SourceTree, GOPATH_LINK};

use super::CacheError;

/// The files and package directories one component is built from, repo-relative.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Closure {
    pub files: BTreeSet<String>,
    pub dirs: BTreeSet<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Package {
    import_path: String,
    #[serde(default)]
    dir: String,
    #[serde(default)]
    standard: bool,
    /// Direct imports, as resolved paths (vendored ones included). `Deps` would be simpler but
    /// makes the output quadratic: 16 MB instead of 1 MB for kube-apiserver.
    #[serde(default)]
    imports: Vec<String>,
    #[serde(default)]
    go_files: Vec<String>,
    /// Files Go would build but could not read or parse (a broken symlink, a syntax error in
    /// the header): still inputs, so kdbg never calls a tree with one "up to date".
    #[serde(default)]
    invalid_go_files: Vec<String>,
    #[serde(default)]
    cgo_files: Vec<String>,
    #[serde(default)]
    c_files: Vec<String>,
    #[serde(default)]
    c_x_x_files: Vec<String>,
    #[serde(default)]
    h_files: Vec<String>,
    #[serde(default)]
    s_files: Vec<String>,
    #[serde(default)]
    syso_files: Vec<String>,
    #[serde(default)]
    embed_files: Vec<String>,
}

const FIELDS: &str =
    "ImportPath,Dir,Standard,Imports,GoFiles,InvalidGoFiles,CgoFiles,CFiles,CXXFiles,HFiles,SFiles,SysoFiles,EmbedFiles";

/// The `go` invocation environment `make` uses for this tree (GOPATH mode or modules): the chosen
/// Go with the build's own environment (PATH, GOROOT, GOTOOLCHAIN; GOWORK, GOFLAGS and tags pass
/// through from the caller exactly as they reach `make`), plus what `hack/lib/golang.sh` sets.
pub(crate) fn go_cmd(tree: &SourceTree, go: &GoToolchain, cgo_enabled: &str) -> Result<(Cmd, Utf8PathBuf), CacheError> {
    let mut cmd = go.cmd().env("CGO_ENABLED", cgo_enabled).env("GOPROXY", "off");
    let cwd = match tree.go_mode {
        GoMode::Gopath => {
            let link = tree.root.join(GOPATH_LINK);
            ensure_gopath_link(&tree.root, &link)?;
            cmd = cmd
                .env("GOPATH", tree.root.join("_output/local/go").as_str())
                .env("GO111MODULE", "off")
                .env("PWD", link.as_str());
            link
        }
        GoMode::Modules => {
            // v1.2x trees pass `-mod=vendor` on go build's command line; a workspace tree
            // (go.work, `## workspace` vendoring) reads vendor/ by default. Either way the
            // caller's GOFLAGS come first, as `make` sees them.
            if tree.root.join("vendor/modules.txt").is_file() && !tree.root.join("go.work").is_file() {
                let flags = format!("{} -mod=vendor", go.identity.goflags).trim().to_string();
                cmd = cmd.env("GOFLAGS", flags);
            }
            cmd = cmd.env("GO111MODULE", "on").env("PWD", tree.root.as_str());
            tree.root.clone()
        }
    };
    Ok((cmd.cwd(&cwd), cwd))
}

/// `hack/lib/golang.sh` links the tree into `_output/local/go/src/k8s.io/kubernetes`; do the same
/// so `go list` sees the tree exactly as `make` will, even before the first build.
fn ensure_gopath_link(root: &Utf8Path, link: &Utf8Path) -> Result<(), CacheError> {
    if link.exists() {
        return Ok(());
    }
    let io = |source| CacheError::Io { path: link.to_owned(), source };
    std::fs::create_dir_all(link.parent().expect("link has a parent")).map_err(io)?;
    let _ = std::fs::remove_file(link); // a dangling link from a moved tree
    std::os::unix::fs::symlink(root, link).map_err(io)
}

/// Runs `go list -deps` once for `components` (all with the same `CGO_ENABLED`) and returns each
/// one's closure, keyed by component name. Files outside the tree (GOROOT, the module cache) are
/// left out: the toolchain identity and `go.sum` stand for them.
pub(crate) fn closures(
    tree: &SourceTree,
    go: &GoToolchain,
    cgo_enabled: &str,
    components: &[&Component],
) -> Result<BTreeMap<String, Closure>, CacheError> {
    let (cmd, cwd) = go_cmd(tree, go, cgo_enabled)?;
    let cmd = cmd
        .args(["list", "-e", "-deps", &format!("-json={FIELDS}")])
        .args(components.iter().map(|c| format!("./{}", c.what)));
    let out = cmd.read().map_err(CacheError::GoList)?;
    let packages = parse_stream(&out)?;
    let by_path: HashMap<&str, &Package> = packages.iter().map(|p| (p.import_path.as_str(), p)).collect();
    let mut result = BTreeMap::new();
    for c in components {
        let root = packages
            .iter()
            .find(|p| !p.standard && p.import_path.ends_with(&format!("/{}", c.what)))
            .ok_or_else(|| CacheError::NoPackage { what: c.what.to_string(), root: tree.root.clone() })?;
        let mut closure = Closure::default();
        let mut seen: HashSet<&str> = HashSet::from([root.import_path.as_str()]);
        let mut todo = vec![root];
        while let Some(p) = todo.pop() {
            if p.standard {
                continue;
            }
            for i in &p.imports {
                if let Some(dep) = by_path.get(i.as_str()) {
                    if seen.insert(dep.import_path.as_str()) {
                        todo.push(dep);
                    }
                }
            }
            let Some(dir) = relative_dir(&p.dir, &cwd) else { continue };
            for f in p.files() {
                closure.files.insert(if dir.is_empty() { f.to_string() } else { format!("{dir}/{f}") });
            }
            closure.dirs.insert(dir);
        }
        result.insert(c.name.to_string(), closure);
    }
    Ok(result)
}

impl Package {
    fn files(&self) -> impl Iterator<Item = &str> {
        [
            &self.go_files,
            &self.invalid_go_files,
            &self.cgo_files,
            &self.c_files,
            &self.c_x_x_files,
            &self.h_files,
            &self.s_files,
            &self.syso_files,
            &self.embed_files,
        ]
        .into_iter()
        .flatten()
        .map(String::as_str)
    }
}

fn parse_stream(out: &str) -> Result<Vec<Package>, CacheError> {
    serde_json::Deserializer::from_str(out)
        .into_iter::<Package>()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| CacheError::GoListOutput(e.to_string()))
}

/// `dir` relative to the tree as `go list` saw it; `None` for directories outside it.
fn relative_dir(dir: &str, cwd: &Utf8Path) -> Option<String> {
    let rel = Utf8Path::new(dir).strip_prefix(cwd).ok()?;
    Some(rel.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_of_objects_parses_and_paths_become_relative() {
        let out = r#"{"ImportPath":"fmt","Dir":"/usr/lib/go/src/fmt","Standard":true,"GoFiles":["print.go"]}
{"ImportPath":"k8s.io/kubernetes/pkg/a","Dir":"/t/pkg/a","GoFiles":["a.go"],"EmbedFiles":["x.txt"]}"#;
        let pkgs = parse_stream(out).unwrap();
        assert_eq!(pkgs.len(), 2);
        assert_eq!(pkgs[1].files().collect::<Vec<_>>(), ["a.go", "x.txt"]);
        assert_eq!(relative_dir("/t/pkg/a", Utf8Path::new("/t")).as_deref(), Some("pkg/a"));
        assert_eq!(relative_dir("/usr/lib/go/src/fmt", Utf8Path::new("/t")), None);
    }
}
