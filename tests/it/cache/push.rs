//! Pushing: the artifact's format in the registry (one zstd layer, kdbg's artifact type and
//! annotations), a second push of the same key sends no blob, two pushes at once are both fine,
//! `kdbg cache ls` (and `--json`) shows what the remote has, a push without a cache says which flag
//! is missing.

use kdbg_tests::registry::{Registry, RegistryConfig};

use super::{cache_key, push, said, source, Home, BINARY, REPO};
use crate::support::sha256_file;

/// The manifest `push` stored has the shape CACHE_SPEC.md fixes.
fn assert_artifact(registry: &Registry, tag: &str) {
    let m = registry.manifest(REPO, tag).expect("the pushed manifest is in the storage");
    assert_eq!(m["artifactType"], "application/vnd.kdbg.debug-binary.v1", "{m:#}");
    assert_eq!(m["config"]["mediaType"], "application/vnd.oci.empty.v1+json", "{m:#}");
    let layers = m["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "one layer: {m:#}");
    assert_eq!(layers[0]["mediaType"], "application/vnd.kdbg.debug-binary.v1+zstd", "{m:#}");
    let a = &m["annotations"];
    let binary = source().path(BINARY);
    let size = std::fs::metadata(&binary).unwrap().len().to_string();
    for (k, v) in [
        ("io.kdbg.schema", "1"),
        ("io.kdbg.component", "kube-apiserver"),
        ("io.kdbg.sha256", &sha256_file(&binary)),
        ("io.kdbg.size", &size),
        ("io.kdbg.platform", "linux/amd64"),
    ] {
        assert_eq!(a[k], v, "{k}: {m:#}");
    }
    for k in ["io.kdbg.key", "io.kdbg.key-schema", "io.kdbg.go", "io.kdbg.dwarf", "io.kdbg.flags", "io.kdbg.version"] {
        assert!(a[k].as_str().is_some_and(|v| !v.is_empty()), "{k}: {m:#}");
    }
    for k in ["io.kdbg.kube-version", "io.kdbg.kube-commit", "io.kdbg.built-by", "org.opencontainers.image.created"] {
        assert!(a[k].is_string(), "{k}: {m:#}");
    }
    assert!(a["io.kdbg.go"].as_str().unwrap().starts_with("go1."), "{m:#}");
    // The make variables of a debug build (the 1.20-era tree's hack/lib/golang.sh turns DBG=1
    // into `-N -l`).
    assert!(a["io.kdbg.flags"].as_str().unwrap().contains("DBG=1"), "{m:#}");
}

#[test]
fn the_same_key_pushed_twice_sends_no_blob_the_second_time() {
    let registry = Registry::start(RegistryConfig::loopback()).unwrap();
    let ci = Home::new();
    let tag = push(&ci, &registry, &[]);
    assert_eq!(tag, cache_key(source()));
    assert_artifact(&registry, &tag);
    let (uploads, blobs) = (registry.blob_uploads(), registry.blobs());
    assert!(!uploads.is_empty(), "the first push uploaded blobs: {}", registry.log());

    let url = registry.url();
    let already = format!("kube-apiserver: {url}/kube-apiserver:{tag} is already in the cache; nothing sent");
    let mut again = Vec::new();
    for args in [["cache", "push", "apiserver"], ["build", "apiserver", "--push"]] {
        let out = ci.run(source().kdbg([&args[..], &["--cache", &url]].concat())).success();
        assert!(said(&out, &already), "{already:?} in:\n{}\n{}", out.stdout, out.stderr);
        assert!(!said(&out, "pushed kube-apiserver"), "{}\n{}", out.stdout, out.stderr);
        again.push(out);
    }
    assert_eq!(registry.blob_uploads(), uploads, "no blob upload after the first push");
    assert_eq!(registry.blobs(), blobs);

    // `kdbg cache ls`: the remote has this key.
    let ls = ci.run(source().kdbg(["cache", "ls", "apiserver", "--cache", &url])).success();
    let row = ls.stdout.lines().find(|l| l.starts_with("kube-apiserver")).unwrap_or_else(|| panic!("{}", ls.stdout));
    let cols: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(cols[..3], ["kube-apiserver", &tag, "yes"], "{}", ls.stdout);
    assert!(row.contains("linux/amd64"), "{row}");
    let ls = ci.run(source().kdbg(["cache", "ls", "apiserver", "--json", "--cache", &url])).success();
    let v: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
    assert_eq!(
        (&v["components"][0]["component"], &v["components"][0]["tag"]),
        (&"kube-apiserver".into(), &tag.clone().into()),
        "{v:#}"
    );

    // Without a cache, push says what is missing.
    let out = ci.run(source().kdbg(["cache", "push", "apiserver"])).output();
    assert_ne!(out.code, 0, "{}", out.stderr);
    assert!(out.stderr.contains("--cache") && out.stderr.contains("KDBG_CACHE"), "{}", out.stderr);

    // What a push did is its result, on stdout (CACHE_SPEC.md), for CI scripts to read.
    for out in &again {
        assert!(out.stdout.contains(&already), "{already:?} on stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
    }
}

#[test]
fn two_pushes_of_the_same_key_at_once_are_both_fine() {
    source();
    let registry = Registry::start(RegistryConfig::loopback()).unwrap();
    let (a, b) = (Home::new(), Home::new());
    let url = registry.url();
    let ls = a.run(source().kdbg(["cache", "ls", "apiserver", "--cache", &url])).success();
    let row = ls.stdout.lines().find(|l| l.starts_with("kube-apiserver")).unwrap_or_else(|| panic!("{}", ls.stdout));
    assert_eq!(row.split_whitespace().nth(2), Some("no"), "an empty registry: {}", ls.stdout);
    let args = ["cache", "push", "apiserver", "--cache", &url];
    let (ra, rb) = (a.run(source().kdbg(args)), b.run(source().kdbg(args)));
    let outs = std::thread::scope(|s| {
        let first = s.spawn(|| ra.output());
        let second = s.spawn(|| rb.output());
        [first.join().unwrap(), second.join().unwrap()]
    });
    for out in &outs {
        assert_eq!(out.code, 0, "stdout:\n{}\nstderr:\n{}", out.stdout, out.stderr);
        let lines = ["pushed kube-apiserver to ", "is already in the cache; nothing sent"];
        assert!(lines.iter().any(|l| said(out, l)), "{}\n{}", out.stdout, out.stderr);
    }
    assert_eq!(registry.tags(REPO), [cache_key(source())]);
    assert_artifact(&registry, &cache_key(source()));
}
