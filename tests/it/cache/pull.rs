//! Pulls that work: `kdbg debug` in a tree at another path with another HOME pulls CI's binary from
//! a TLS registry with htpasswd auth (credentials from `docker login`'s `auths`, then from a
//! `credsStore` helper), make never runs, a breakpoint set by the tree's own path is hit (VSCode's
//! DAP attach through the `substitutePath` kdbg wrote, then Delve's JSON-RPC), restore is exact;
//! `kdbg build --json` says `via: "cache"` (schema 2) for a plain-HTTP loopback registry, which
//! needs no flag; the first edit after a pull is a full make, and kdbg says so; a `credHelpers`
//! entry in `$DOCKER_CONFIG/config.json` is used.

use kdbg_tests::registry::docker::{self, Helper};
use kdbg_tests::registry::{Registry, RegistryConfig};

use super::{
    assert_not_pulled, assert_pulled, assert_same_binary_as_source, forget_builds, json, push, strs, warnings,
    with_cache, Home, MAKE_BIN, PASSWORD, USER,
};
use crate::session::Lab;
use crate::support::{Out, Tree};

/// `f`, then `kdbg restore` (also when `f` panicked), which must succeed and leave the node as
/// `before`.
fn then_restore(lab: &Lab, home: &Home, before: &std::collections::BTreeMap<String, Vec<u8>>, f: impl FnOnce()) {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    let restored = home.run(lab.kdbg(&["restore"])).output();
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
    assert!(restored.stdout.contains("the original runs again"), "{}\n{}", restored.stdout, restored.stderr);
    assert_eq!(&lab.snapshot(), before, "the manifests directory and journal are as before");
    lab.assert_clean();
}

#[test]
fn debug_pulls_into_another_tree_and_hits_a_breakpoint_set_by_its_own_path() {
    let registry = Registry::start(RegistryConfig::loopback().tls().auth(USER, PASSWORD)).unwrap();
    let ci = Home::new();
    ci.login(&registry, USER, PASSWORD);
    push(&ci, &registry, &[]);

    // Another tree (another path, no kdbg state), another HOME: `docker login`'s auths.
    let lab = Lab::up("cachepull");
    let before = lab.snapshot();
    let dev = Home::new();
    dev.login(&registry, USER, PASSWORD);
    let port = lab.port.to_string();
    let args = with_cache(&["debug", "apiserver", "--port", &port], &registry);
    let out = dev.run(lab.kdbg(&strs(&args))).success();
    then_restore(&lab, &dev, &before, || {
        assert_pulled(&out, &registry);
        let about_cache: Vec<_> = warnings(&out.stderr).into_iter().filter(|w| w.contains("cache")).collect();
        assert!(about_cache.is_empty(), "{}", out.stderr);
        assert_eq!(lab.tree.make_runs(), Vec::<String>::new(), "make did not run: the binary was pulled");
        assert_same_binary_as_source(&lab.tree);
        crate::dap_node::attach_and_break(&lab);
    });

    // Again from nothing, the credentials from a credential helper (`credsStore`).
    forget_builds(&lab.tree);
    let helper = Home::new();
    let host_port = registry.host_port();
    let stub = Helper { bin: &lab.tree.bin, name: "kdbgtest", host_port: &host_port, user: USER, password: PASSWORD };
    stub.creds_store(helper.path()).unwrap();
    let out = helper.run(lab.kdbg(&strs(&args))).success();
    then_restore(&lab, &helper, &before, || {
        assert_pulled(&out, &registry);
        assert_eq!(lab.tree.make_runs(), Vec::<String>::new(), "make did not run: the binary was pulled");
        let asked = std::fs::read_to_string(docker::helper_calls(&lab.tree.bin, "kdbgtest")).unwrap_or_default();
        assert!(asked.lines().any(|l| l.contains(&host_port)), "the helper was asked for {host_port}: {asked:?}");
        assert_same_binary_as_source(&lab.tree);
        crate::dap_node::attach_and_break(&lab);
    });
}

/// `kdbg build apiserver --json --cache URL` in `tree` as `home`.
fn build_json(tree: &Tree, home: &Home, registry: &Registry) -> Out {
    home.run(tree.kdbg(["build", "apiserver", "--json", "--cache", &registry.url()])).success()
}

#[test]
fn plain_http_on_loopback_needs_no_flag_and_build_json_says_via_cache() {
    let registry = Registry::start(RegistryConfig::loopback()).unwrap();
    push(&Home::new(), &registry, &[]);
    let (tree, dev) = (Tree::fixture(), Home::new());

    let out = build_json(&tree, &dev, &registry);
    assert_pulled(&out, &registry);
    assert!(warnings(&out.stderr).is_empty(), "plain HTTP on loopback is not worth a warning: {}", out.stderr);
    let v = json(&out);
    assert_eq!(v["schema"], 3, "{v:#}");
    assert_eq!(v["components"][0]["via"], "cache", "{v:#}");
    assert_eq!(v["via"], "cache", "the summary of one pulled component: {v:#}");
    assert_eq!(tree.make_runs(), Vec::<String>::new());
    assert_same_binary_as_source(&tree);

    // Up to date now: the registry is not asked again.
    let asked = registry.requests().len();
    let v = json(&build_json(&tree, &dev, &registry));
    assert_eq!((&v["components"][0]["via"], &v["via"]), (&"up_to_date".into(), &serde_json::Value::Null), "{v:#}");
    assert_eq!(registry.requests().len(), asked, "an up-to-date build asks no registry");

    // The first edit after a pull: no captured go call to replay, a cold Go cache: a full make.
    let original = std::fs::read_to_string(tree.path(tree.healthz())).unwrap();
    tree.append(tree.healthz(), "\n// an edit after the pull\n");
    let out = build_json(&tree, &dev, &registry);
    assert_not_pulled(&out);
    let said = "was pulled from the cache: this build is a full make";
    assert!(out.stderr.contains(said), "{said:?} in:\n{}", out.stderr);
    assert_eq!(json(&out)["components"][0]["via"], "make");
    assert_eq!(tree.make_runs().len(), 1, "{:?}", tree.make_runs());

    // A pull leaves the tree as make does, `_output/bin` included.
    tree.write(tree.healthz(), &original);
    forget_builds(&tree);
    assert_pulled(&build_json(&tree, &dev, &registry), &registry);
    assert!(tree.path(MAKE_BIN).is_file(), "{MAKE_BIN} after a pull, as after make");
}

#[test]
fn a_cred_helper_named_for_the_registry_in_docker_config_is_used() {
    let registry = Registry::start(RegistryConfig::loopback().tls().auth(USER, PASSWORD)).unwrap();
    push(Home::new().login(&registry, USER, PASSWORD), &registry, &[]);
    let (tree, dev) = (Tree::fixture(), Home::new());
    let docker_config = tempfile::tempdir().unwrap();
    let host_port = registry.host_port();
    let stub = Helper { bin: &tree.bin, name: "kdbgonly", host_port: &host_port, user: USER, password: PASSWORD };
    stub.cred_helpers_in(docker_config.path()).unwrap();
    let run = dev.run(tree.kdbg(with_cache(&["build", "apiserver"], &registry)));
    let out = run.env("DOCKER_CONFIG", docker_config.path()).success();
    assert_pulled(&out, &registry);
    assert_eq!(tree.make_runs(), Vec::<String>::new());
    let asked = std::fs::read_to_string(docker::helper_calls(&tree.bin, "kdbgonly")).unwrap_or_default();
    assert!(asked.lines().any(|l| l.contains(&host_port)), "the helper was asked for {host_port}: {asked:?}");
}
