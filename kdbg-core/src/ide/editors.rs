//! How editors other than VSCode attach: GoLand's "Go Remote", `dlv connect`, nvim-dap.

use std::fmt::Write;

use camino::Utf8Path;

use super::mapping::PathRule;
use super::vscode::workspace_path;

/// Instructions for attaching to `component`'s Delve on `127.0.0.1:<port>`; `rules` map the tree
/// at `tree_root` to the binary's recorded paths (most specific first).
pub fn other_editors(component: &str, port: u16, tree_root: &Utf8Path, rules: &[PathRule]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "{component}: Delve (API v2 and DAP) on 127.0.0.1:{port}");
    let _ = writeln!(s, "  GoLand:   Run | Edit Configurations... | + | Go Remote: Host 127.0.0.1, Port {port}");
    let _ = writeln!(s, "  terminal: dlv connect 127.0.0.1:{port}");
    // Delve's terminal maps the other way round: recorded path first, local path second. A binary
    // built in this very tree (no -trimpath) records the tree's own paths: nothing to map.
    let maps: Vec<(&str, String)> = rules
        .iter()
        .map(|r| {
            let local = if r.tree.is_empty() { tree_root.to_string() } else { tree_root.join(&r.tree).to_string() };
            (r.recorded.as_str(), local)
        })
        .filter(|(recorded, local)| recorded != local)
        .collect();
    if !maps.is_empty() {
        let _ = writeln!(s, "            and, so that listings and `break file:line` find this tree:");
        for (recorded, local) in maps {
            let _ = writeln!(s, "            config substitute-path {} {}", quote(recorded), quote(&local));
        }
    }
    let _ = writeln!(s, "  nvim-dap:");
    let ident = component.replace('-', "_");
    let _ = writeln!(s, "    local dap = require('dap')");
    let _ = writeln!(s, "    dap.adapters.kdbg_{ident} = {{ type = 'server', host = '127.0.0.1', port = {port} }}");
    let _ = writeln!(s, "    dap.configurations.go = dap.configurations.go or {{}}");
    let _ = writeln!(s, "    table.insert(dap.configurations.go, {{");
    let _ = writeln!(s, "      type = 'kdbg_{ident}', request = 'attach', mode = 'remote',");
    let _ = writeln!(s, "      name = 'kdbg: attach {component}',");
    let _ = writeln!(s, "      substitutePath = {{");
    for r in rules {
        let _ = writeln!(s, "        {{ from = '{}', to = '{}' }},", workspace_path(&r.tree), r.recorded);
    }
    let _ = writeln!(s, "      }},");
    let _ = writeln!(s, "    }})");
    s
}

fn quote(p: &str) -> String {
    if p.is_empty() {
        "\"\"".to_string()
    } else if p.contains(char::is_whitespace) {
        format!("{p:?}")
    } else {
        p.to_string()
    }
}

#[cfg(test)]
mod tests {
    use expect_test::expect;

    use super::*;

    #[test]
    fn prints_goland_dlv_and_nvim_settings_with_the_mapping() {
        let rules = vec![
            PathRule { tree: "vendor/k8s.io/klog/v2".into(), recorded: "k8s.io/klog/v2@v2.4.0".into() },
            PathRule { tree: String::new(), recorded: "k8s.io/kubernetes".into() },
        ];
        let text = other_editors("kube-apiserver", 2345, Utf8Path::new("/src/kubernetes"), &rules);
        expect![[r#"
            kube-apiserver: Delve (API v2 and DAP) on 127.0.0.1:2345
              GoLand:   Run | Edit Configurations... | + | Go Remote: Host 127.0.0.1, Port 2345
              terminal: dlv connect 127.0.0.1:2345
                        and, so that listings and `break file:line` find this tree:
                        config substitute-path k8s.io/klog/v2@v2.4.0 /src/kubernetes/vendor/k8s.io/klog/v2
                        config substitute-path k8s.io/kubernetes /src/kubernetes
              nvim-dap:
                local dap = require('dap')
                dap.adapters.kdbg_kube_apiserver = { type = 'server', host = '127.0.0.1', port = 2345 }
                dap.configurations.go = dap.configurations.go or {}
                table.insert(dap.configurations.go, {
                  type = 'kdbg_kube_apiserver', request = 'attach', mode = 'remote',
                  name = 'kdbg: attach kube-apiserver',
                  substitutePath = {
                    { from = '${workspaceFolder}/vendor/k8s.io/klog/v2', to = 'k8s.io/klog/v2@v2.4.0' },
                    { from = '${workspaceFolder}', to = 'k8s.io/kubernetes' },
                  },
                })
        "#]]
        .assert_eq(&text);
    }

    #[test]
    fn a_binary_built_in_the_tree_itself_needs_no_terminal_mapping() {
        let rules = vec![PathRule { tree: String::new(), recorded: "/src/kubernetes".into() }];
        let text = other_editors("kube-scheduler", 2347, Utf8Path::new("/src/kubernetes"), &rules);
        assert!(!text.contains("config substitute-path"), "{text}");
        assert!(text.contains("{ from = '${workspaceFolder}', to = '/src/kubernetes' },"), "{text}");
    }
}
