//! Derives the editor's path rules (Delve's `substitutePath`) from the paths a binary recorded.
//!
//! Delve applies a list of `{from, to}` rules in order, first match wins, in both directions:
//! editor → debugger replaces a `from` prefix by `to`, debugger → editor replaces a `to` prefix by
//! `from`; a `to` of `""` matches every relative recorded path (see `SubstitutePath` in Delve's
//! `pkg/locspec/locations.go`, and `setLaunchAttachArgs` in `service/dap/server.go`, v1.20.2).
//! So the rules must be few (one for the tree root, one per vendored module or staging repo)
//! and still be right for every file the binary knows. Each recorded file, seen from each of its
//! tree paths (the vendor path and, for staging, the real path the editor shows), is a *pair*.
//! Starting from the root rule, pairs are visited in order; a pair not mapped right gets the
//! most general rule (strip as many common trailing components as possible) that maps it right
//! without breaking any pair that was mapped right, falling back to a rule for the single file
//! (v1.20's main package, recorded unlike the rest). Rules are ordered most specific first.

use camino::Utf8Path;
use serde::Serialize;

use super::dwarf::{RecordedPackage, RecordedPaths};

/// `${workspaceFolder}/<tree>` in the editor stands for `<recorded>` in the binary.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct PathRule {
    /// Relative to the tree root; `""` is the root itself.
    pub tree: String,
    /// The recorded prefix (or whole file name) it stands for.
    pub recorded: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Mapping {
    /// Most specific first: the order Delve must see them in.
    pub rules: Vec<PathRule>,
    /// Tree-relative files no rule maps right (none in practice; reported, never hidden).
    pub unmapped: Vec<String>,
}

/// The rules for `recorded` and the tree at `tree_root` (read for vendor → staging symlinks).
pub fn mapping(recorded: &RecordedPaths, tree_root: &Utf8Path) -> Mapping {
    let real_root = tree_root.canonicalize_utf8().ok();
    let resolve = |dir: &str| -> Option<String> {
        let real = tree_root.join(dir).canonicalize_utf8().ok()?;
        real.strip_prefix(real_root.as_ref()?).ok().map(|p| p.as_str().to_string())
    };
    // Workspace trees (v1.30+) have no vendor/k8s.io/<repo> links: a staging package's only
    // tree path is staging/src/k8s.io/<repo>/...
    let packages: Vec<RecordedPackage> = recorded
        .packages
        .iter()
        .cloned()
        .map(|mut p| {
            if let Some(rest) = p.tree_dir.strip_prefix("vendor/k8s.io/") {
                let staging = format!("staging/src/k8s.io/{rest}");
                if !tree_root.join(&p.tree_dir).exists() && tree_root.join(&staging).is_dir() {
                    p.tree_dir = staging;
                }
            }
            p
        })
        .collect();
    derive(&recorded.root_prefix, &packages, resolve)
}

/// One recorded file seen from one of its tree paths.
struct Pair {
    client: String,
    server: String,
    /// Every tree path of the file: debugger → editor may give any of them.
    accept: std::rc::Rc<[String]>,
}

/// The rules for `packages`, starting from the root rule (`"" ↔ root_prefix`); `resolve` gives
/// a vendored directory's real tree-relative path (staging repos are symlinked into vendor/).
pub(crate) fn derive(
    root_prefix: &str,
    packages: &[RecordedPackage],
    resolve: impl Fn(&str) -> Option<String>,
) -> Mapping {
    let mut ordered: Vec<&RecordedPackage> = packages.iter().collect();
    ordered.sort_by_key(|p| (p.tree_dir.starts_with("vendor/"), p.tree_dir.clone()));
    let mut pairs = Vec::new();
    for p in ordered {
        let real = p.tree_dir.starts_with("vendor/").then(|| resolve(&p.tree_dir)).flatten();
        let mut dirs: Vec<&str> = real.iter().map(String::as_str).filter(|r| *r != p.tree_dir).collect();
        dirs.push(&p.tree_dir);
        for f in &p.files {
            let accept: std::rc::Rc<[String]> = dirs.iter().map(|d| join(d, f)).collect();
            for client in accept.iter() {
                pairs.push(Pair { client: client.clone(), server: join(&p.recorded_dir, f), accept: accept.clone() });
            }
        }
    }

    let mut rules = vec![PathRule { tree: String::new(), recorded: root_prefix.to_string() }];
    let mut ok: Vec<bool> = pairs.iter().map(|p| correct(&rules, p)).collect();
    for i in 0..pairs.len() {
        if ok[i] {
            continue;
        }
        for cand in candidates(&pairs[i].client, &pairs[i].server) {
            if rules.contains(&cand) {
                continue;
            }
            let mut trial = rules.clone();
            trial.push(cand.clone());
            sort(&mut trial);
            let affected =
                |p: &Pair| client_match(&cand, &p.client).is_some() || server_match(&cand, &p.server).is_some();
            let breaks = pairs.iter().zip(&ok).any(|(p, &was)| was && affected(p) && !correct(&trial, p));
            if breaks || !correct(&trial, &pairs[i]) {
                continue;
            }
            rules = trial;
            for (p, state) in pairs.iter().zip(ok.iter_mut()) {
                if !*state && affected(p) {
                    *state = correct(&rules, p);
                }
            }
            break;
        }
    }
    let mut unmapped: Vec<String> =
        pairs.iter().zip(&ok).filter(|(_, &ok)| !ok).map(|(p, _)| p.client.clone()).collect();
    unmapped.dedup();
    Mapping { rules, unmapped }
}

/// Most general first: strip every common trailing component, then one fewer, down to the file.
fn candidates(client: &str, server: &str) -> Vec<PathRule> {
    let c: Vec<&str> = client.split('/').collect();
    let s: Vec<&str> = server.split('/').collect();
    let common = c.iter().rev().zip(s.iter().rev()).take_while(|(a, b)| a == b).count();
    (0..=common)
        .rev()
        .map(|k| PathRule { tree: c[..c.len() - k].join("/"), recorded: s[..s.len() - k].join("/") })
        .collect()
}

/// Delve's order: the most specific editor path first.
fn sort(rules: &mut [PathRule]) {
    rules.sort_by(|a, b| b.tree.len().cmp(&a.tree.len()).then(b.recorded.len().cmp(&a.recorded.len())).then(a.cmp(b)));
}

fn correct(rules: &[PathRule], p: &Pair) -> bool {
    first(rules, |r| client_match(r, &p.client)).as_deref() == Some(p.server.as_str())
        && first(rules, |r| server_match(r, &p.server)).is_some_and(|c| p.accept.contains(&c))
}

fn first(rules: &[PathRule], f: impl Fn(&PathRule) -> Option<String>) -> Option<String> {
    rules.iter().find_map(f)
}

/// Editor → debugger: the editor path is always `${workspaceFolder}/...`, so `""` matches all.
fn client_match(rule: &PathRule, client: &str) -> Option<String> {
    let rest = strip_dir(client, &rule.tree)?;
    Some(join(&rule.recorded, rest))
}

/// Debugger → editor: `""` matches relative recorded paths only, like Delve.
fn server_match(rule: &PathRule, server: &str) -> Option<String> {
    if rule.recorded.is_empty() && server.starts_with('/') {
        return None;
    }
    let rest = strip_dir(server, &rule.recorded)?;
    Some(join(&rule.tree, rest))
}

fn strip_dir<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(path);
    }
    if path == prefix {
        return Some("");
    }
    path.strip_prefix(prefix)?.strip_prefix('/')
}

fn join(prefix: &str, rel: &str) -> String {
    match (prefix.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (_, true) => prefix.to_string(),
        _ => format!("{prefix}/{rel}"),
    }
}

#[cfg(test)]
mod tests;
