//! The real kubernetes source for the e2e tier: Debian's source package, fetched once into a cache outside the repo, and its release-style build.

use anyhow::{bail, Context, Result};
use camino::{Utf8Path, Utf8PathBuf};
use xshell::{cmd, Shell};

const DEB_SRC: &str = "/etc/apt/sources.list.d/kdbg-deb-src.sources";

/// The unpacked tree under `<cache>/src`, fetching it with `apt-get source kubernetes` if needed.
pub fn fetch(sh: &Shell, cache: &Utf8Path) -> Result<Utf8PathBuf> {
    let src = cache.join("src");
    if let Some(tree) = find_tree(&src) {
        eprintln!("e2e: using the kubernetes source at {tree}");
        return Ok(tree);
    }
    std::fs::create_dir_all(&src).with_context(|| format!("creating {src}"))?;
    if !Utf8Path::new(DEB_SRC).exists() {
        eprintln!("e2e: adding a deb-src entry for bookworm main ({DEB_SRC})");
        let entry = format!(
            "Types: deb-src\nURIs: {}\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
            crate::apt::system_mirror()?
        );
        std::fs::write(DEB_SRC, entry).with_context(|| format!("writing {DEB_SRC} (needs root)"))?;
    }
    eprintln!("e2e: apt-get update, then apt-get source kubernetes into {src}");
    cmd!(sh, "apt-get update -q").quiet().ignore_stdout().run()?;
    let _d = sh.push_dir(&src);
    if cmd!(sh, "apt-get source -q kubernetes").quiet().ignore_stdout().run().is_err() {
        bail!("failed to download Debian's kubernetes source package (apt-get source kubernetes in {src}); check that the Debian mirror is reachable and that {DEB_SRC} exists, then run `cargo xtask e2e k8s` again");
    }
    find_tree(&src).with_context(|| format!("apt-get source succeeded but left no kubernetes tree in {src}"))
}

fn find_tree(src: &Utf8Path) -> Option<Utf8PathBuf> {
    let entries = src.read_dir_utf8().ok()?;
    entries
        .flatten()
        .map(|e| e.path().to_owned())
        .find(|p| p.file_name().is_some_and(|n| n.starts_with("kubernetes-")) && p.join("Makefile").exists())
}

/// Where Debian's reflect2 1.0.2 sources are (package golang-github-modern-go-reflect2-dev).
const REFLECT2: &str = "/usr/share/gocode/src/github.com/modern-go/reflect2";
/// What `patch_reflect2` leaves in the tree, so it runs once.
const REFLECT2_MARK: &str = "vendor/github.com/modern-go/reflect2/.kdbg-reflect2-1.0.2";

/// kubernetes 1.20 vendors github.com/modern-go/reflect2 v1.0.1, whose map iteration corrupts
/// memory under Go ≥ 1.18 (kubeadm dies with "unexpected fault address" in `mapiterinit` while
/// writing the kubelet's config). The only Go here is 1.19, so the vendored copy is replaced by
/// Debian's reflect2 1.0.2 (the upstream fix), once, in the cached tree.
pub fn patch_reflect2(sh: &Shell, tree: &Utf8Path) -> Result<()> {
    if tree.join(REFLECT2_MARK).exists() {
        return Ok(());
    }
    crate::setup::ensure_extra(sh, &[(REFLECT2, "golang-github-modern-go-reflect2-dev")])?;
    let vendored = tree.join("vendor/github.com/modern-go/reflect2");
    eprintln!("e2e: replacing the vendored reflect2 1.0.1 in {tree} by Debian's 1.0.2 (1.0.1 crashes under Go 1.18+)");
    for e in vendored.read_dir_utf8()? {
        let p = e?.path().to_owned();
        if p.extension().is_some_and(|x| x == "go" || x == "s") {
            std::fs::remove_file(&p)?;
        }
    }
    for e in Utf8Path::new(REFLECT2).read_dir_utf8()? {
        let p = e?.path().to_owned();
        let name = p.file_name().unwrap_or_default();
        if (name.ends_with(".go") && !name.ends_with("_test.go")) || name.ends_with(".s") {
            std::fs::copy(&p, vendored.join(name)).with_context(|| format!("copying {p}"))?;
        }
    }
    std::fs::write(tree.join(REFLECT2_MARK), "github.com/modern-go/reflect2 1.0.2 from Debian\n")?;
    Ok(())
}

/// Release-style (default flags: stripped, optimised) binaries of `whats`, built once and kept in
/// `out` with a stamp naming what they were built from.
pub fn release_build(sh: &Shell, tree: &Utf8Path, out: &Utf8Path, names: &[&str]) -> Result<()> {
    let stamp = out.join("stamp");
    let want = format!("{tree}\n{}\nreflect2 1.0.2\n", names.join(" "));
    let have = std::fs::read_to_string(&stamp).unwrap_or_default();
    if have == want && names.iter().all(|n| out.join(n).exists()) {
        eprintln!("e2e: release binaries already built in {out}");
        return Ok(());
    }
    std::fs::create_dir_all(out)?;
    let version_file = out.join("version.env");
    std::fs::write(
        &version_file,
        "KUBE_GIT_VERSION='v1.20.2'\nKUBE_GIT_MAJOR='1'\nKUBE_GIT_MINOR='20'\nKUBE_GIT_TREE_STATE='clean'\n",
    )?;
    let what = names.iter().map(|n| format!("cmd/{n}")).collect::<Vec<_>>().join(" ");
    let _d = sh.push_dir(tree);
    eprintln!("e2e: make all WHAT=\"{what}\" (release flags; a cold build takes several minutes)");
    let log = out.join("make.log");
    let script = r#"make all WHAT="$1" KUBE_GIT_VERSION_FILE="$2""#;
    super::run_logged(sh, script, &[what.as_str(), version_file.as_str()], &log)
        .with_context(|| format!("release build failed in {tree}"))?;
    for n in names {
        std::fs::copy(tree.join(format!("_output/local/bin/linux/amd64/{n}")), out.join(n))
            .with_context(|| format!("copying the release {n}"))?;
    }
    std::fs::write(stamp, want)?;
    Ok(())
}
