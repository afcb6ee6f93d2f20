//! Tidy test: the modules of `session/` import each other without a circle, so each can be read
//! (and changed) knowing only the ones below it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// `session/` module → the `session/` modules its non-test code imports.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/session");
    let names: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str().and_then(|n| n.strip_suffix(".rs")).map(String::from))
        .collect();
    let mut out = BTreeMap::new();
    for name in &names {
        let mut text = code(&dir.join(format!("{name}.rs")));
        if let Ok(sub) = std::fs::read_dir(dir.join(name)) {
            for e in sub.flatten().filter(|e| e.path().extension().is_some_and(|x| x == "rs")) {
                text.push_str(&code(&e.path()));
            }
        }
        let mut deps = BTreeSet::new();
        for prefix in ["super::", "crate::session::"] {
            for (i, _) in text.match_indices(prefix) {
                let rest = &text[i + prefix.len()..];
                let group = match rest.strip_prefix('{') {
                    Some(g) => &g[..g.find('}').unwrap_or(g.len())],
                    None => &rest[..rest.find(|c: char| !c.is_alphanumeric() && c != '_').unwrap_or(rest.len())],
                };
                for word in group.split(|c: char| !c.is_alphanumeric() && c != '_') {
                    if names.contains(word) && word != name {
                        deps.insert(word.to_string());
                    }
                }
            }
        }
        out.insert(name.clone(), deps);
    }
    out
}

/// A file's code without its comments and unit tests.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return String::new();
    }
    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
    code.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n")
}

#[test]
fn session_modules_import_each_other_without_a_circle() {
    let graph = imports();
    assert!(graph.get("capture").is_some_and(|d| d.contains("daemonset")), "the scan sees imports: {graph:?}");
    // Depth-first: a module met again while still on the path closes a circle.
    fn visit(m: &str, graph: &BTreeMap<String, BTreeSet<String>>, path: &mut Vec<String>, done: &mut BTreeSet<String>) {
        if let Some(i) = path.iter().position(|p| p == m) {
            panic!("import circle in session/: {} -> {m}", path[i..].join(" -> "));
        }
        if done.contains(m) {
            return;
        }
        path.push(m.to_string());
        for d in graph.get(m).into_iter().flatten() {
            visit(d, graph, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}
