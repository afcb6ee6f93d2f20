//! Debian packages from other suites without touching the system's apt: a private apt
//! configuration (own sources list, lists and cache directories) under a cache directory, used
//! only for `apt-get download`, and the .deb unpacked with `dpkg-deb -x`.

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

/// The Debian mirror this machine's apt is configured with (first `deb` source).
pub fn mirror() -> Result<String> {
    let mut texts = Vec::new();
    for dir in ["/etc/apt/sources.list.d"] {
        if let Ok(entries) = std::fs::read_dir(dir) {
            let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
            files.sort();
            texts.extend(
                files
                    .into_iter()
                    .filter(|p| p.extension().is_some_and(|e| e == "sources" || e == "list"))
                    .filter_map(|p| std::fs::read_to_string(p).ok()),
            );
        }
    }
    texts.push(std::fs::read_to_string("/etc/apt/sources.list").unwrap_or_default());
    for text in &texts {
        for line in text.lines().map(str::trim) {
            let uri = line.strip_prefix("URIs:").map(str::trim).or_else(|| {
                line.strip_prefix("deb ").and_then(|r| r.split_whitespace().find(|w| w.starts_with("http")))
            });
            if let Some(uri) = uri.and_then(|u| u.split_whitespace().next()) {
                if !uri.contains("security") {
                    return Ok(uri.trim_end_matches('/').to_string());
                }
            }
        }
    }
    bail!("found no Debian mirror in /etc/apt/sources.list or /etc/apt/sources.list.d; configure apt first")
}

/// Downloads `package` from Debian `suite` and unpacks it into `<cache>/<package>-<suite>`;
/// returns that directory. Done once: a second call finds the unpacked tree.
pub fn fetch_unpacked(sh: &Shell, cache: &Utf8Path, suite: &str, package: &str) -> Result<Utf8PathBuf> {
    let out = cache.join(format!("{package}-{suite}"));
    if out.join(".kdbg-complete").exists() {
        return Ok(out);
    }
    let apt = cache.join(format!("apt-{suite}"));
    for d in ["lists/partial", "cache/archives/partial", "debs"] {
        std::fs::create_dir_all(apt.join(d))?;
    }
    let list = apt.join("sources.list");
    let mirror = mirror()?;
    std::fs::write(
        &list,
        format!("deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {mirror} {suite} main\n"),
    )?;
    let opts = &[
        format!("-o=Dir::Etc::SourceList={list}"),
        "-o=Dir::Etc::SourceParts=/dev/null".into(),
        format!("-o=Dir::State::Lists={apt}/lists"),
        format!("-o=Dir::Cache={apt}/cache"),
        "-o=APT::Get::List-Cleanup=0".into(),
    ];
    eprintln!("xtask: fetching Debian {suite}'s {package} .deb through a private apt configuration in {apt}");
    cmd!(sh, "apt-get -q {opts...} update").quiet().ignore_stdout().run().context("apt-get update (private)")?;
    let debs = apt.join("debs");
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
