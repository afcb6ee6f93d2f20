//! A systemd unit's command line: `ExecStart` with drop-ins and `EnvironmentFile`s expanded, the
//! way systemd would run it (the kubelet on kubeadm nodes).
//!
//! Input is what `systemctl cat UNIT` prints (the unit followed by its drop-ins, each after a
//! `# /path` comment), so the node is asked once and the parsing is data in, data out.

/// The parts of a unit's `[Service]` section that make its command line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Unit {
    /// The last `ExecStart=` (an empty one, as drop-ins write first, resets it).
    pub exec_start: Option<String>,
    /// `Environment=` assignments, in order.
    pub environment: Vec<(String, String)>,
    /// `EnvironmentFile=` paths; `true` when a missing file is an error (no `-` prefix).
    pub environment_files: Vec<(String, bool)>,
}

/// Parses `systemctl cat` output (or one unit file).
pub(crate) fn parse_unit(text: &str) -> Unit {
    let mut unit = Unit::default();
    let mut section = String::new();
    for line in logical_lines(text) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line.starts_with('[') && line.ends_with(']') {
            section = line[1..line.len() - 1].to_string();
            continue;
        }
        let (Some((key, value)), "Service") = (line.split_once('='), section.as_str()) else { continue };
        let value = value.trim();
        match key.trim() {
            "ExecStart" if value.is_empty() => unit.exec_start = None,
            "ExecStart" => unit.exec_start = Some(value.trim_start_matches(['-', '@', '+', '!', ':']).to_string()),
            "Environment" if value.is_empty() => unit.environment.clear(),
            "Environment" => {
                for word in split_words(value) {
                    if let Some((k, v)) = word.split_once('=') {
                        unit.environment.push((k.to_string(), v.to_string()));
                    }
                }
            }
            "EnvironmentFile" if value.is_empty() => unit.environment_files.clear(),
            "EnvironmentFile" => match value.strip_prefix('-') {
                Some(path) => unit.environment_files.push((path.to_string(), false)),
                None => unit.environment_files.push((value.to_string(), true)),
            },
            _ => {}
        }
    }
    unit
}

/// Parses an `EnvironmentFile`: `KEY=VALUE` lines, quotes, comments, continuations.
pub(crate) fn parse_env_file(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in logical_lines(text) {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let Some((k, v)) = line.split_once('=') else { continue };
        out.push((k.trim().to_string(), split_words(v.trim()).join(" ")));
    }
    out
}

/// `KEY=VALUE` pairs, in order.
pub(crate) type Env = Vec<(String, String)>;

/// The unit's argv and environment, given the contents of its environment files (`None`: missing).
pub(crate) fn command(unit: &Unit, files: &[(String, Option<String>)]) -> Result<(Vec<String>, Env), String> {
    let exec = unit.exec_start.as_deref().ok_or("the unit has no ExecStart")?;
    let mut env = unit.environment.clone();
    for (path, required) in &unit.environment_files {
        match files.iter().find(|(p, _)| p == path).and_then(|(_, text)| text.as_deref()) {
            Some(text) => env.extend(parse_env_file(text)),
            None if *required => return Err(format!("its EnvironmentFile {path} is missing")),
            None => {}
        }
    }
    let lookup = |name: &str| env.iter().rev().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let mut argv = Vec::new();
    for word in split_words(exec) {
        let unbraced = word.strip_prefix('$').filter(|n| !n.is_empty() && n.chars().all(is_name_char));
        match unbraced {
            // `$VAR` alone is split on whitespace into several arguments (none if unset or empty).
            Some(name) => argv.extend(lookup(name).unwrap_or("").split_whitespace().map(String::from)),
            None => argv.push(expand_braced(&word, &lookup)),
        }
    }
    if argv.is_empty() {
        return Err("its ExecStart is empty".into());
    }
    // Deduplicate while keeping the last value (systemd's semantics for the process environment).
    let mut dedup: Vec<(String, String)> = Vec::new();
    for (k, v) in env {
        dedup.retain(|(d, _)| *d != k);
        dedup.push((k, v));
    }
    Ok((argv, dedup))
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// `${VAR}` inside a word, `$$` → `$`, `%%` → `%`.
fn expand_braced<'a>(word: &str, lookup: &impl Fn(&str) -> Option<&'a str>) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find(['$', '%']) {
        out.push_str(&rest[..at]);
        let (c, tail) = (&rest[at..at + 1], &rest[at + 1..]);
        if let Some(after) = tail.strip_prefix(c) {
            out.push_str(c);
            rest = after;
        } else if let Some((name, after)) = tail.strip_prefix('{').filter(|_| c == "$").and_then(|t| t.split_once('}'))
        {
            out.push_str(lookup(name).unwrap_or(""));
            rest = after;
        } else {
            out.push_str(c);
            rest = tail;
        }
    }
    out.push_str(rest);
    out
}

/// Joins lines ending in a backslash with the next one.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        match line.strip_suffix('\\') {
            Some(head) if !line.trim_start().starts_with('#') => {
                cur.push_str(head);
                cur.push(' ');
            }
            _ => {
                cur.push_str(line);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Splits like systemd: whitespace separates words, `"..."` and `'...'` quote, `\` escapes.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur: Option<String> = None;
    let mut chars = text.chars();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match (c, quote) {
            ('\\', _) => cur.get_or_insert_with(String::new).extend(chars.next()),
            ('"' | '\'', None) => {
                quote = Some(c);
                cur.get_or_insert_with(String::new);
            }
            (c, Some(q)) if c == q => quote = None,
            (c, None) if c.is_whitespace() => words.extend(cur.take()),
            (c, _) => cur.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(cur);
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `systemctl cat kubelet` on a kubeadm v1.20 node (deb packages).
    const KUBEADM_CAT: &str = r#"# /lib/systemd/system/kubelet.service
[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/home/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=/usr/bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target

# /etc/systemd/system/kubelet.service.d/10-kubeadm.conf
# Note: This dropin only works with kubeadm and kubelet v1.11+
[Service]
Environment="KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf"
Environment="KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml"
# This is a file that "kubeadm init" and "kubeadm join" generates at runtime, populating the KUBELET_KUBEADM_ARGS variable dynamically
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
# This is a file that the user can use for overrides of the kubelet args as a last resort. Preferably, the user should use
# the .NodeRegistration.KubeletExtraArgs object in the configuration files instead. KUBELET_EXTRA_ARGS should be sourced from this file.
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=/usr/bin/kubelet $KUBELET_KUBECONFIG_ARGS $KUBELET_CONFIG_ARGS $KUBELET_KUBEADM_ARGS $KUBELET_EXTRA_ARGS
"#;

    const KUBEADM_FLAGS: &str = "KUBELET_KUBEADM_ARGS=\"--container-runtime=remote --container-runtime-endpoint=/run/containerd/containerd.sock --pod-infra-container-image=k8s.gcr.io/pause:3.2\"\n";

    #[test]
    fn kubeadm_kubelet_expands_drop_in_and_env_files() {
        let unit = parse_unit(KUBEADM_CAT);
        assert_eq!(
            unit.environment_files,
            [("/var/lib/kubelet/kubeadm-flags.env".to_string(), false), ("/etc/default/kubelet".to_string(), false)]
        );
        let files = [("/var/lib/kubelet/kubeadm-flags.env".to_string(), Some(KUBEADM_FLAGS.to_string()))];
        let (argv, env) = command(&unit, &files).unwrap();
        assert_eq!(
            argv,
            [
                "/usr/bin/kubelet",
                "--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf",
                "--kubeconfig=/etc/kubernetes/kubelet.conf",
                "--config=/var/lib/kubelet/config.yaml",
                "--container-runtime=remote",
                "--container-runtime-endpoint=/run/containerd/containerd.sock",
                "--pod-infra-container-image=k8s.gcr.io/pause:3.2",
            ]
        );
        assert_eq!(env.len(), 3);
    }

    #[test]
    fn extra_args_file_overrides_and_braced_vars_stay_one_word() {
        let unit = parse_unit(
            "[Service]\nEnvironment=A=1 \"B=two words\"\nEnvironmentFile=/etc/default/kubelet\n\
             ExecStart=-/usr/bin/kubelet \\\n  --node-ip=${B} $A 100%% $$HOME\n",
        );
        let files = [("/etc/default/kubelet".to_string(), Some("# comment\nA='--v=4 --x'\n".to_string()))];
        let (argv, _) = command(&unit, &files).unwrap();
        assert_eq!(argv, ["/usr/bin/kubelet", "--node-ip=two words", "--v=4", "--x", "100%", "$HOME"]);
    }

    #[test]
    fn missing_required_env_file_and_missing_exec_start_are_errors() {
        let unit = parse_unit("[Service]\nEnvironmentFile=/etc/x\nExecStart=/bin/k\n");
        assert!(command(&unit, &[]).unwrap_err().contains("/etc/x"));
        let unit = parse_unit("[Service]\nExecStart=/bin/k\nExecStart=\n");
        assert!(command(&unit, &[]).unwrap_err().contains("no ExecStart"));
        // ExecStart outside [Service] does not count.
        assert_eq!(parse_unit("[Unit]\nExecStart=/bin/k\n").exec_start, None);
    }
}
