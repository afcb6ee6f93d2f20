//! Debian packages of one architecture through a PRIVATE apt configuration: its own sources list
//! (the system's Debian suites, read from `/etc/apt/sources.list*` at run time, with
//! `[arch=ARCH signed-by=<debian-archive-keyring>]`), its own lists, cache and an empty dpkg
//! status, so the system's apt never sees it. Used only for `apt-cache depends` and
//! `apt-get download`.

use std::collections::BTreeSet;

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";

/// A private apt configuration under `<cache>/apt-<arch>`.
pub struct Apt {
    root: Utf8PathBuf,
    arch: &'static str,
}

impl Apt {
    /// Writes the configuration (sources from the system's Debian entries) and runs `apt-get update`.
    pub fn update(sh: &Shell, cache: &Utf8Path, arch: &'static str) -> Result<Apt> {
        let root = cache.join(format!("apt-{arch}"));
        for d in ["lists/partial", "cache/archives/partial"] {
            std::fs::create_dir_all(root.join(d))?;
        }
        std::fs::write(root.join("status"), "")?;
        let lines = sources_lines(&system_sources(), arch)?;
        std::fs::write(root.join("sources.list"), lines)?;
        let apt = Apt { root, arch };
        let opts = apt.options();
        eprintln!("xtask: apt-get update ({arch}, private configuration in {})", apt.root);
        cmd!(sh, "apt-get -q {opts...} update").quiet().ignore_stdout().run().context("private apt-get update")?;
        Ok(apt)
    }

    fn options(&self) -> Vec<String> {
        let r = &self.root;
        let extra = [
            format!("Dir::State::status={r}/status"),
            format!("APT::Architecture={}", self.arch),
            format!("APT::Architectures::={}", self.arch),
        ];
        crate::apt::private_options(r, &extra)
    }

    /// `roots` and, transitively, those of their Depends/Pre-Depends that `keep` accepts (of a
    /// group of alternatives, the first one it accepts).
    pub fn closure(&self, sh: &Shell, roots: &[&str], keep: fn(&str) -> bool) -> Result<Vec<String>> {
        let opts = self.options();
        let mut seen: BTreeSet<String> = roots.iter().map(|r| r.to_string()).collect();
        let mut frontier: Vec<String> = seen.iter().cloned().collect();
        while !frontier.is_empty() {
            let opts = &opts;
            let out = cmd!(
                sh,
                "apt-cache {opts...} depends --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances {frontier...}"
            )
            .quiet()
            .read()?;
            frontier = depends(&out, keep).into_iter().filter(|n| seen.insert(n.clone())).collect();
        }
        Ok(seen.into_iter().collect())
    }

    /// `apt-get download` of `names` into `dir`; the .deb files.
    pub fn download(&self, sh: &Shell, names: &[String], dir: &Utf8Path) -> Result<Vec<Utf8PathBuf>> {
        let opts = self.options();
        std::fs::create_dir_all(dir)?;
        let _cwd = sh.push_dir(dir);
        cmd!(sh, "apt-get -q {opts...} download {names...}").quiet().ignore_stdout().run()?;
        let mut debs: Vec<Utf8PathBuf> = dir
            .read_dir_utf8()?
            .flatten()
            .map(|e| e.path().to_owned())
            .filter(|p| p.extension() == Some("deb"))
            .collect();
        debs.sort();
        if debs.len() != names.len() {
            bail!("apt-get download of {} packages left {} .debs in {dir}", names.len(), debs.len());
        }
        Ok(debs)
    }
}

/// The names `apt-cache depends` output depends on, filtered by `keep`; of `|Depends:` groups
/// (alternatives) the first accepted member; virtual packages (`<name>`) never.
fn depends(out: &str, keep: fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    let mut group_done = false;
    for line in out.lines() {
        let line = line.trim_start();
        let (alt, rest) = match line.strip_prefix('|') {
            Some(r) => (true, r),
            None => (false, line),
        };
        let Some(name) = rest.strip_prefix("Depends: ").or_else(|| rest.strip_prefix("PreDepends: ")) else {
            continue;
        };
        let name = name.split(':').next().unwrap_or(name).trim();
        if !group_done && !name.starts_with('<') && keep(name) {
            found.push(name.to_string());
            group_done = alt;
        }
        if !alt {
            group_done = false;
        }
    }
    found
}

/// The system's apt sources: `/etc/apt/sources.list.d/*.sources` and `*.list`, `/etc/apt/sources.list`.
fn system_sources() -> Vec<String> {
    let mut paths = vec![Utf8PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = Utf8Path::new("/etc/apt/sources.list.d").read_dir_utf8() {
        paths.extend(dir.flatten().map(|e| e.path().to_owned()));
    }
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sources" || e == "list"))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect()
}

/// One-line sources for `arch`: every suite of the system's Debian archives (URIs ending in
/// `/debian` or `/debian-security`, backports left out), component `main`.
fn sources_lines(texts: &[String], arch: &str) -> Result<String> {
    let mut entries: Vec<(String, String)> = Vec::new();
    for text in texts {
        for stanza in text.split("\n\n") {
            let field = |name: &str| {
                stanza.lines().find_map(|l| l.strip_prefix(name).map(|v| v.trim().to_string())).unwrap_or_default()
            };
            for uri in field("URIs:").split_whitespace() {
                entries.extend(field("Suites:").split_whitespace().map(|s| (uri.to_string(), s.to_string())));
            }
        }
        for line in text.lines().filter_map(|l| l.trim().strip_prefix("deb ")) {
            let mut words = line.split_whitespace().filter(|w| !w.starts_with('[') && !w.ends_with(']'));
            if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
                entries.push((uri.to_string(), suite.to_string()));
            }
        }
    }
    let mut out = String::new();
    for (uri, suite) in entries {
        let uri = uri.trim_end_matches('/');
        if (uri.ends_with("/debian") || uri.ends_with("/debian-security")) && !suite.contains("backports") {
            out.push_str(&format!("deb [arch={arch} signed-by={KEYRING}] {uri} {suite} main\n"));
        }
    }
    if out.is_empty() {
        bail!("no Debian archive found in /etc/apt/sources.list or /etc/apt/sources.list.d; add the Debian mirror this machine should use");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_follow_the_systems_debian_entries() {
        let deb822 = "Types: deb\n# a comment\nURIs: http://mirror.example/debian\nSuites: bookworm bookworm-updates\n\
            Components: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n\
            Types: deb\nURIs: http://mirror.example/debian-security\nSuites: bookworm-security\nComponents: main\n\n\
            Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\n";
        let one_line = "deb [arch=amd64] http://other.example/debian/ bookworm-backports main\n";
        let got = sources_lines(&[deb822.to_string(), one_line.to_string()], "arm64").unwrap();
        let k = "[arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg]";
        let want = format!(
            "deb {k} http://mirror.example/debian bookworm main\n\
             deb {k} http://mirror.example/debian bookworm-updates main\n\
             deb {k} http://mirror.example/debian-security bookworm-security main\n"
        );
        assert_eq!(got, want);
        assert!(sources_lines(&[one_line.to_string()], "arm64").is_err());
    }

    #[test]
    fn depends_keeps_libraries_and_one_of_each_alternative() {
        let out =
            "openssh-server\n  PreDepends: init-system-helpers\n  Depends: libpam-modules\n  Depends: lsb-base\n    \
            sysvinit-utils\n |Depends: debconf\n  Depends: <debconf-2.0>\n    cdebconf\n |Depends: libfoo1\n  \
            Depends: libbar1\n  Depends: libssl3:arm64\n  Depends: zlib1g\n";
        let keep = |n: &str| n.starts_with("lib") || n == "zlib1g";
        assert_eq!(depends(out, keep), ["libpam-modules", "libfoo1", "libssl3", "zlib1g"]);
    }
}
