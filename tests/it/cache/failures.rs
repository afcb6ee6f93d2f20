//! What goes wrong with a cache never stops a build: a wrong password, a registry that is down, a
//! layer tampered with in the registry's storage each give one warning, then the local build.

use kdbg_tests::lab;
use kdbg_tests::registry::{Registry, RegistryConfig};
use kdbg_tests::{TestNode, TestNodeConfig};

use super::{assert_not_pulled, push, warnings, with_cache, Home, BINARY, PASSWORD, REPO, USER};
use crate::support::{sha256_file, Out, Tree};

/// Where `kdbg deploy` puts the apiserver on a node.
const DEPLOYED: &str = "/var/lib/kdbg/bin/kube-apiserver";

/// kdbg warned once, with a line containing every one of `needles`, and built locally (one make).
#[track_caller]
fn assert_warned_then_built(out: &Out, tree: &Tree, needles: &[&str]) {
    let w = warnings(&out.stderr);
    assert_eq!(w.len(), 1, "one warning:\n{}", out.stderr);
    for needle in needles {
        assert!(w[0].contains(needle), "{needle:?} in the warning {:?}", w[0]);
    }
    assert_not_pulled(out);
    assert_eq!(tree.make_runs().len(), 1, "the local build ran make once: {:?}", tree.make_runs());
}

#[test]
fn a_wrong_password_warns_once_naming_the_registry_and_docker_login_then_builds_locally() {
    let registry = Registry::start(RegistryConfig::loopback().tls().auth(USER, PASSWORD)).unwrap();
    push(Home::new().login(&registry, USER, PASSWORD), &registry, &[]);
    let (tree, dev) = (Tree::fixture(), Home::new());
    dev.login(&registry, USER, "not-the-password");
    let out = dev.run(tree.kdbg(with_cache(&["build", "apiserver"], &registry))).success();
    let host_port = registry.host_port();
    assert_warned_then_built(&out, &tree, &[&host_port, &format!("docker login {host_port}")]);
    assert!(tree.path(BINARY).is_file());
}

#[test]
fn a_stopped_registry_warns_and_the_build_is_local() {
    let mut registry = Registry::start(RegistryConfig::loopback()).unwrap();
    registry.stop();
    let (tree, dev) = (Tree::fixture(), Home::new());
    let out = dev.run(tree.kdbg(["build", "apiserver", "--cache", &registry.url()])).success();
    let url = registry.url();
    assert_warned_then_built(&out, &tree, &[&format!("the cache {url} did not answer"), "building locally"]);
    assert!(tree.path(BINARY).is_file());
}

/// Flips bytes in the middle of the blob `digest` in the registry's storage (its size stays).
fn tamper(registry: &Registry, digest: &str) {
    let path = registry.blob_path(digest);
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let middle = bytes.len() / 2;
    for b in &mut bytes[middle..middle + 64] {
        *b ^= 0x5a;
    }
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn a_tampered_layer_fails_verification_and_the_local_build_is_deployed() {
    kdbg_tests::require_root().unwrap();
    let registry = Registry::start(RegistryConfig::loopback()).unwrap();
    let tag = push(&Home::new(), &registry, &[]);
    let manifest = registry.manifest(REPO, &tag).expect("the pushed manifest is in the storage");
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_string();
    let pushed_sha = manifest["annotations"]["io.kdbg.sha256"].as_str().unwrap().to_string();
    tamper(&registry, &layer);

    let node = TestNode::up(TestNodeConfig::unique("cachetamp").bin(env!("CARGO_BIN_EXE_kdbg-testnode"))).unwrap();
    let (tree, dev) = (Tree::fixture(), Home::new());
    let args = ["deploy", "apiserver", "--json", "--cache", &registry.url()].map(String::from);
    let out = dev.run(tree.kdbg(args.into_iter().chain(lab::target_args(&node)))).success();
    let from = format!("kube-apiserver from {}/kube-apiserver:{tag} failed verification", registry.url());
    assert_warned_then_built(&out, &tree, &[&from, "not used; building locally"]);

    // What the node got is this tree's own build, not the tampered artifact.
    let local = sha256_file(&tree.path(BINARY));
    assert_ne!(local, pushed_sha, "the local build differs from CI's (another tree path)");
    assert_eq!(sha256_file(&node.host_path(DEPLOYED)), local, "the node has the local build");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let deployed = v["files"].as_array().unwrap().iter().find(|f| f["name"] == "kube-apiserver").unwrap();
    assert_eq!(deployed["sha256"], local.as_str(), "{v:#}");
}
