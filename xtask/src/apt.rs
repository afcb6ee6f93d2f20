//! Debian packages from other suites without touching the system's apt: a private apt
//! configuration (own sources list, lists and cache directories; no `sources.list.d`, no
//! preferences) under a cache directory, used only for `apt-get download`, and the .deb unpacked
//! with `dpkg-deb -x`.

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

/// An apt configuration of its own: sources, lists and package cache under `<cache>/apt-<suite>`.
pub struct PrivateApt {
    root: Utf8PathBuf,
}

impl PrivateApt {
    pub fn options(&self) -> Vec<String> {
        private_options(&self.root, &[])
    }
}

/// `-o` options that make apt use only the configuration under `root` (its sources list, lists and
/// package cache), plus `extra` settings.
pub fn private_options(root: &Utf8Path, extra: &[String]) -> Vec<String> {
    let r = root;
    [
        format!("Dir::Etc::SourceList={r}/sources.list"),
        "Dir::Etc::SourceParts=/dev/null".into(),
        "Dir::Etc::Preferences=/dev/null".into(),
        "Dir::Etc::PreferencesParts=/dev/null".into(),
        format!("Dir::State::Lists={r}/lists"),
        format!("Dir::Cache={r}/cache"),
        // The private lists dir belongs to root; apt's download sandbox user could not write it.
        "APT::Sandbox::User=root".into(),
    ]
    .into_iter()
    .chain(extra.iter().cloned())
    .flat_map(|o| ["-o".to_string(), o])
    .collect()
}

pub fn private_apt(cache: &Utf8Path, suite: &str) -> Result<PrivateApt> {
    let root = cache.join(format!("apt-{suite}"));
    for d in ["lists/partial", "cache/archives/partial"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let mirror = system_mirror()?;
    let keyring = "/usr/share/keyrings/debian-archive-keyring.gpg";
    std::fs::write(root.join("sources.list"), format!("deb [signed-by={keyring}] {mirror} {suite} main\n"))?;
    Ok(PrivateApt { root })
}

/// The Debian archive the system's apt already uses (`URIs:` of a deb822 source, or a one-line
/// `deb URI SUITE` entry), so the private configuration reaches the same mirror.
pub fn system_mirror() -> Result<String> {
    let mut texts = Vec::new();
    for path in ["/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"] {
        texts.extend(std::fs::read_to_string(path).ok());
    }
    for text in &texts {
        for line in text.lines().map(str::trim) {
            let uri = line.strip_prefix("URIs:").map(str::trim).or_else(|| {
                let mut w = line.strip_prefix("deb ")?.split_whitespace().filter(|w| !w.starts_with('['));
                w.next()
            });
            if let Some(uri) = uri.filter(|u| u.ends_with("/debian") || u.ends_with("/debian/")) {
                return Ok(uri.trim_end_matches('/').to_string());
            }
        }
    }
    bail!("no Debian mirror found in /etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list; add one (a URI ending in /debian)")
}

/// Downloads `package` from Debian `suite` and unpacks it into `<cache>/<package>-<suite>`;
/// returns that directory. Done once: a second call finds the unpacked tree.
pub fn fetch_unpacked(sh: &Shell, cache: &Utf8Path, suite: &str, package: &str) -> Result<Utf8PathBuf> {
    let out = cache.join(format!("{package}-{suite}"));
    if out.join(".kdbg-complete").exists() {
        return Ok(out);
    }
    let apt = private_apt(cache, suite)?;
    let opts = &apt.options();
    eprintln!("xtask: fetching Debian {suite}'s {package} .deb through a private apt configuration in {}", apt.root);
    cmd!(sh, "apt-get -q {opts...} update").quiet().ignore_stdout().run().context("apt-get update (private)")?;
    let debs = apt.root.join("debs");
    std::fs::create_dir_all(&debs)?;
    let _d = sh.push_dir(&debs);
    cmd!(sh, "apt-get -q {opts...} download {package}").quiet().ignore_stdout().run()?;
    let deb = debs
        .read_dir_utf8()?
        .flatten()
        .map(|e| e.path().to_owned())
        .find(|p| p.file_name().is_some_and(|n| n.starts_with(&format!("{package}_")) && n.ends_with(".deb")))
        .with_context(|| format!("apt-get download {package} left no .deb in {debs}"))?;
    if out.exists() {
        std::fs::remove_dir_all(&out)?;
    }
    cmd!(sh, "dpkg-deb -x {deb} {out}").run()?;
    std::fs::write(out.join(".kdbg-complete"), deb.file_name().unwrap_or_default())?;
    Ok(out)
}
