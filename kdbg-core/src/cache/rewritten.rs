//! Inputs that changed while `make` ran: make's own scripts rewriting tracked files (issue 15, item 6).
//!
//! Kubernetes v1.20's `make`, run with a Go newer than the tree was formatted with, lets gofmt
//! add `//go:build` lines to the tracked `zz_generated.*` files. Those are key inputs, so a
//! pristine checkout and the same tree after a build have different keys. After a successful
//! make kdbg hashes the stale components' inputs again and compares them with the hashes it keyed
//! the build on. What differs is reported once (a warning naming the files) and remembered in the
//! state, so `kdbg cache-key --explain` can name them later.
//!
//! The binary stays recorded under the key computed before make: kdbg cannot tell make's rewrite
//! from an edit saved while make ran, so the next build rebuilds once more with the rewritten files
//! (or replays, when no generator reads the file) and then, the rewrite being idempotent, hits.

use camino::Utf8Path;

use super::{CacheState, ComponentKey};

/// How many files a warning names before "and N more".
const NAMED: usize = 3;

/// Hashes the inputs of `built` again and returns those that changed since their keys were
/// computed, sorted and without duplicates. Remembers them per component in `state` (a make that
/// changed nothing keeps the earlier list: it explains why a pristine checkout keys differently).
pub(crate) fn detect(root: &Utf8Path, state: &mut CacheState, built: &[&ComponentKey]) -> Vec<String> {
    let mut all = std::collections::BTreeSet::new();
    for k in built {
        let files = k.inputs.files.keys().cloned().collect();
        let refresh = state.index.refresh(root, &files);
        let changed: Vec<String> = k
            .inputs
            .files
            .iter()
            .filter(|(path, sha)| state.index.sha256(path) != Some(sha.as_str()))
            .map(|(path, _)| path.clone())
            .collect();
        let entry = state.components.entry(k.component.name.to_string()).or_default();
        if refresh.closure_suspect {
            // A header changed (`//go:build` added): have `go list` confirm the closure next time.
            entry.closure_env.clear();
        }
        if !changed.is_empty() {
            all.extend(changed.iter().cloned());
            entry.rewritten_by_make = changed;
        }
    }
    all.into_iter().collect()
}

/// The warning for [`detect`]'s files, or `None` when make changed no input.
pub(crate) fn warning(files: &[String]) -> Option<String> {
    if files.is_empty() {
        return None;
    }
    Some(format!(
        "{} input file(s) changed while make ran: {}. Make's own scripts rewrite tracked files in some trees \
         (e.g. gofmt adding `//go:build` lines to zz_generated.* files), unless you edited them meanwhile. A pristine \
         checkout's `kdbg cache-key` differs from this tree's after a build, and the next build rebuilds once more; \
         `kdbg cache-key --explain` lists them all",
        files.len(),
        some(files)
    ))
}

/// The `--explain` lines for a component: each input make changed, still an input now.
pub fn explain(state: &CacheState, k: &ComponentKey) -> Vec<String> {
    let Some(entry) = state.components.get(k.component.name) else {
        return Vec::new();
    };
    let files: Vec<&String> = entry.rewritten_by_make.iter().filter(|f| k.inputs.files.contains_key(*f)).collect();
    if files.is_empty() {
        return Vec::new();
    }
    let mut lines = vec![format!(
        "{} input(s) changed while make ran (make rewrites them; a pristine checkout keys differently):",
        files.len()
    )];
    lines.extend(files.iter().map(|f| format!("  rewritten by make: {f}")));
    lines
}

/// `a, b, c and 4 more`.
fn some(files: &[String]) -> String {
    match files.len() {
        n if n <= NAMED => files.join(", "),
        n => format!("{} and {} more", files[..NAMED].join(", "), n - NAMED),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_names_the_count_and_the_first_few_files() {
        assert_eq!(warning(&[]), None);
        let files: Vec<String> = (1..=5).map(|i| format!("pkg/a/zz_generated.{i}.go")).collect();
        let w = warning(&files).unwrap();
        assert!(w.starts_with("5 input file(s) changed while make ran: pkg/a/zz_generated.1.go, "), "{w}");
        assert!(w.contains("pkg/a/zz_generated.3.go and 2 more."), "{w}");
        assert!(!w.contains("zz_generated.4.go"), "{w}");
    }
}
