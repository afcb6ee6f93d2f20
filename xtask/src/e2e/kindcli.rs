//! The real `kind` CLI (Debian unstable's .deb, unpacked into the cache, never installed) asked to
//! create the cluster from the locally built node image. Whatever it says is reported; the e2e
//! goes on with its own kind-shaped container either way.

use anyhow::Result;
use camino::Utf8Path;
use xshell::{cmd, Shell};

const CLUSTER: &str = "kdbg-kind";

/// Runs `kind create cluster --image IMAGE`; returns a one-paragraph account of what happened.
pub fn attempt(sh: &Shell, cache: &Utf8Path, image: &str) -> Result<String> {
    let root = crate::apt::fetch_unpacked(sh, cache, "unstable", "kind")?;
    let kind = root.join("usr/bin/kind");
    let version = cmd!(sh, "{kind} version").read()?;
    let had_network = cmd!(sh, "docker network inspect kind").quiet().ignore_stdout().ignore_stderr().run().is_ok();
    let out = cmd!(sh, "timeout 300 {kind} create cluster --name {CLUSTER} --image {image} --retain=false --wait 0s")
        .ignore_status()
        .output()?;
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let _ = cmd!(sh, "{kind} delete cluster --name {CLUSTER}").quiet().ignore_stdout().ignore_stderr().run();
    if !had_network {
        let _ = cmd!(sh, "docker network rm kind").quiet().ignore_stdout().ignore_stderr().run();
    }
    let said: Vec<&str> = said.lines().filter(|l| !l.trim().is_empty()).collect();
    let said = said[said.len().saturating_sub(12)..].join("\n    ");
    Ok(if out.status.success() {
        format!("{version}: `kind create cluster --image {image}` created the cluster (then deleted):\n    {said}")
    } else {
        format!("{version}: `kind create cluster --image {image}` refused ({}):\n    {said}", out.status)
    })
}
