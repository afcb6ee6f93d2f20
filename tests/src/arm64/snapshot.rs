//! What "byte-identical" means for the arm64 node: the manifests directory and `/var/lib/kdbg`
//! (minus kdbg's `bin/`, its cache of binaries) entry by entry with modes and bytes, and the
//! command lines of the component processes (`kube-*`) and of any Delve — read in one ssh round
//! trip by a busybox script (`snapshot.sh`).

use std::collections::BTreeMap;

use anyhow::{bail, Context, Result};

use super::Arm64Node;

/// The node's state, comparable with `==`; `Debug` prints it readably.
#[derive(Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// `D PATH MODE`, `L PATH TARGET` or `F PATH MODE SIZE` → the file's bytes (empty otherwise).
    pub entries: BTreeMap<String, Vec<u8>>,
    /// Command lines of the `kube-*` and `dlv` processes, sorted.
    pub processes: Vec<String>,
}

impl Snapshot {
    pub(super) fn take(node: &Arm64Node) -> Result<Snapshot> {
        let mut cmd = node.ssh_command("sudo -n sh -s");
        cmd.stdin(std::process::Stdio::piped());
        let mut child = cmd.stdout(std::process::Stdio::piped()).spawn().context("failed to run ssh")?;
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("piped");
            stdin.write_all(include_str!("snapshot.sh").as_bytes())?;
        }
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("the snapshot script failed on the arm64 node ({})", out.status);
        }
        parse(&out.stdout)
    }
}

fn parse(mut rest: &[u8]) -> Result<Snapshot> {
    let mut entries = BTreeMap::new();
    loop {
        let nl = rest.iter().position(|b| *b == b'\n').context("the snapshot ended before its process list")?;
        let header = String::from_utf8_lossy(&rest[..nl]).into_owned();
        rest = &rest[nl + 1..];
        if header == "P" {
            break;
        }
        let mut bytes = Vec::new();
        if header.starts_with("F ") {
            let size: usize = header.rsplit(' ').next().and_then(|s| s.parse().ok()).context("a file without size")?;
            if rest.len() < size + 1 {
                bail!("the snapshot is cut short in {header}");
            }
            bytes = rest[..size].to_vec();
            rest = &rest[size + 1..];
        }
        entries.insert(header, bytes);
    }
    let processes = String::from_utf8_lossy(rest).lines().map(|l| l.trim_end().to_string()).collect();
    Ok(Snapshot { entries, processes })
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (header, bytes) in &self.entries {
            writeln!(f, "{header}")?;
            if !bytes.is_empty() {
                writeln!(f, "  {:?}", String::from_utf8_lossy(bytes))?;
            }
        }
        for p in &self.processes {
            writeln!(f, "process: {p}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_files_dirs_links_and_processes() {
        let out = b"D /etc/kubernetes/manifests 755\nF /etc/kubernetes/manifests/a.yaml 644 5\nx: 1\n\n\
            L /var/lib/kdbg/current bin/x\nF /var/lib/kdbg/empty 600 0\n\nP\n/usr/local/bin/kube-apiserver --secure-port=8443 \n";
        let s = parse(out).unwrap();
        expect_test::expect![[r#"
            D /etc/kubernetes/manifests 755
            F /etc/kubernetes/manifests/a.yaml 644 5
              "x: 1\n"
            F /var/lib/kdbg/empty 600 0
            L /var/lib/kdbg/current bin/x
            process: /usr/local/bin/kube-apiserver --secure-port=8443
        "#]]
        .assert_eq(&format!("{s:?}"));
    }

    #[test]
    fn a_cut_snapshot_is_an_error() {
        assert!(parse(b"F /etc/kubernetes/manifests/a.yaml 644 60\nx: 1\n").is_err());
        assert!(parse(b"D /etc/kubernetes/manifests 755\n").is_err());
    }
}
