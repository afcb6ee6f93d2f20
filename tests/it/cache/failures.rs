//! What goes wrong with a cache never stops a build: a wrong password, a registry that is down or
//! never answers, a layer tampered with or cut short in the registry's storage, a manifest whose
//! sha256, platform, Go, schema or flags do not fit each give one warning, then the local build
//! (what a node gets is never the artifact's bytes).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use kdbg_tests::lab;
use kdbg_tests::registry::{Registry, RegistryConfig};
use kdbg_tests::{TestNode, TestNodeConfig};

use super::{assert_not_pulled, forget_builds, push, warnings, with_cache, Home, BINARY, PASSWORD, REPO, USER};
use crate::support::{sha256_file, Out, Run, Tree};

/// How long a build against a registry that never answers may wait before the test calls it hung
/// (kdbg's own timeouts are a few seconds).
const HANG_GUARD: Duration = Duration::from_secs(120);

/// Where `kdbg deploy` puts the apiserver on a node.
const DEPLOYED: &str = "/var/lib/kdbg/bin/kube-apiserver";

/// kdbg warned once, with a line containing every one of `needles`, and built locally (make has
/// run `makes` times in `tree` now).
#[track_caller]
fn assert_warned_then_built(out: &Out, tree: &Tree, makes: usize, needles: &[&str]) {
    assert_not_pulled(out);
    assert_eq!(tree.make_runs().len(), makes, "the local build ran make: {:?}", tree.make_runs());
    assert!(tree.path(BINARY).is_file());
    let w = warnings(&out.stderr);
    assert_eq!(w.len(), 1, "one warning:\n{}", out.stderr);
    for needle in needles {
        assert!(w[0].contains(needle), "{needle:?} in the warning {:?}", w[0]);
    }
}

#[test]
fn a_wrong_password_warns_once_naming_the_registry_and_docker_login_then_builds_locally() {
    let registry = Registry::start(RegistryConfig::loopback().tls().auth(USER, PASSWORD)).unwrap();
    push(Home::new().login(&registry, USER, PASSWORD), &registry, &[]);
    let (tree, dev) = (Tree::fixture(), Home::new());
    dev.login(&registry, USER, "not-the-password");
    let out = dev.run(tree.kdbg(with_cache(&["build", "apiserver"], &registry))).success();
    let host_port = registry.host_port();
    assert_warned_then_built(&out, &tree, 1, &[&host_port, &format!("docker login {host_port}")]);
}

#[test]
fn a_stopped_or_silent_registry_warns_and_the_build_is_local() {
    let mut registry = Registry::start(RegistryConfig::loopback()).unwrap();
    registry.stop();
    let (tree, dev) = (Tree::fixture(), Home::new());
    let out = dev.run(tree.kdbg(["build", "apiserver", "--cache", &registry.url()])).success();
    let url = registry.url();
    assert_warned_then_built(&out, &tree, 1, &[&format!("the cache {url} "), "building locally"]);
    assert_unreachable(&out);

    // A registry that accepts connections and never answers holds no build up.
    forget_builds(&tree);
    let out = with_silent_server(|port| {
        let url = format!("oci://127.0.0.1:{port}/kdbg");
        let out = output_before(dev.run(tree.kdbg(["build", "apiserver", "--cache", &url])), HANG_GUARD);
        assert_eq!(out.code, 0, "{}", out.stderr);
        (out, url)
    });
    assert_warned_then_built(&out.0, &tree, 2, &[&format!("the cache {} ", out.1), "building locally"]);
    assert_unreachable(&out.0);
}

/// The warning says the registry did not answer (CACHE_SPEC.md's words) or could not be reached.
#[track_caller]
fn assert_unreachable(out: &Out) {
    let w = &warnings(&out.stderr)[0];
    assert!(w.contains("did not answer") || w.contains("could not be reached"), "{w}");
}

/// A TCP server on loopback that accepts connections and never answers, while `f` runs.
fn with_silent_server<T>(f: impl FnOnce(u16) -> T) -> T {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            let mut held = Vec::new();
            while !done.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(port)));
        done.store(true, Ordering::Relaxed);
        result.unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// `run`'s output; a kdbg still running after `limit` is killed and the test fails (a guard
/// against a hang, not a measurement).
fn output_before(mut run: Run, limit: Duration) -> Out {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    run.cmd.stdout(std::fs::File::create(&out).unwrap()).stderr(std::fs::File::create(&err).unwrap());
    let mut child = run.cmd.spawn().unwrap();
    let status = kdbg_tests::sys::wait_for(limit, Duration::from_millis(100), || child.try_wait().unwrap());
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("kdbg still waited for a silent registry after {limit:?}; stderr:\n{}", read(&err));
    };
    Out { code: status.code().unwrap_or(-1), stdout: read(&out), stderr: read(&err) }
}

/// Flips bytes in the middle of the blob `digest` in the registry's storage (its size stays), or
/// cuts it in half.
fn tamper(registry: &Registry, digest: &str, truncate: bool) {
    let path = registry.blob_path(digest);
    let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let middle = bytes.len() / 2;
    if truncate {
        bytes.truncate(middle);
    } else {
        bytes[middle..middle + 64].iter_mut().for_each(|b| *b ^= 0x5a);
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
    tamper(&registry, &layer, false);

    let node = TestNode::up(TestNodeConfig::unique("cachetamp").bin(env!("CARGO_BIN_EXE_kdbg-testnode"))).unwrap();
    let (tree, dev) = (Tree::fixture(), Home::new());
    let args = ["deploy", "apiserver", "--json", "--cache", &registry.url()].map(String::from);
    let out = dev.run(tree.kdbg(args.into_iter().chain(lab::target_args(&node)))).success();

    // What the node got is this tree's own build (which, the build being reproducible across tree
    // paths, has the bytes CI built: the manifest's sha256), never the tampered layer's.
    let local = sha256_file(&tree.path(BINARY));
    assert_eq!(local, pushed_sha, "the local build is reproducible");
    assert_eq!(sha256_file(&node.host_path(DEPLOYED)), local, "the node has the local build");
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let deployed = v["files"].as_array().unwrap().iter().find(|f| f["name"] == "kube-apiserver").unwrap();
    assert_eq!(deployed["sha256"], local.as_str(), "{v:#}");

    // A truncated layer: the same.
    forget_builds(&tree);
    tamper(&registry, &layer, true);
    let truncated = dev.run(tree.kdbg(["build", "apiserver", "--cache", &registry.url()])).success();
    assert_not_pulled(&truncated);
    assert_eq!(tree.make_runs().len(), 2, "{:?}", tree.make_runs());
    assert_eq!(sha256_file(&tree.path(BINARY)), pushed_sha);

    let from = format!("{}/kube-apiserver:{tag} failed verification", registry.url());
    assert_warned_then_built(&out, &tree, 2, &[&from, "not used; building locally"]);
    assert_warned_then_built(&truncated, &tree, 2, &[&from, "not used; building locally"]);
}

#[test]
fn a_manifest_that_does_not_match_its_key_or_its_binary_is_not_used() {
    let registry = Registry::start(RegistryConfig::loopback()).unwrap();
    let tag = push(&Home::new(), &registry, &[]);
    let pushed = registry.manifest(REPO, &tag).unwrap();
    let (tree, dev) = (Tree::fixture(), Home::new());
    let zeros = "0".repeat(64);
    let cases: [(&str, Option<&str>); 5] = [
        ("io.kdbg.sha256", Some(&zeros)),
        ("io.kdbg.platform", Some("linux/arm64")),
        ("io.kdbg.go", Some("go1.22.0")),
        ("io.kdbg.schema", Some("99")),
        ("io.kdbg.flags", None),
    ];
    for (n, (key, value)) in cases.into_iter().enumerate() {
        let mut manifest = pushed.clone();
        let annotations = manifest["annotations"].as_object_mut().unwrap();
        match value {
            Some(v) => annotations.insert(key.to_string(), v.into()),
            None => annotations.remove(key),
        };
        registry.put_manifest(REPO, &tag, &manifest).unwrap();
        if n > 0 {
            forget_builds(&tree);
        }
        let out = dev.run(tree.kdbg(["build", "apiserver", "--cache", &registry.url()])).success();
        let from = format!("{}/kube-apiserver:{tag} failed verification", registry.url());
        let context = format!("{key} = {value:?}");
        let out = Out { stderr: format!("{context}\n{}", out.stderr), ..out };
        assert_warned_then_built(&out, &tree, n + 1, &[&from, "not used; building locally"]);
        assert_eq!(sha256_file(&tree.path(BINARY)), pushed["annotations"]["io.kdbg.sha256"].as_str().unwrap());
    }
}
