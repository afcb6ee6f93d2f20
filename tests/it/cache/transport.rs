//! Plain HTTP off loopback: a registry on a test node's address (its network namespace, reached
//! over the node's veth link) is refused without `--insecure` (a warning naming the flag, then the
//! local build, and not one request in plain HTTP) and used with it (with a warning). A TLS
//! registry whose CA is not trusted is a warning naming `--cache-ca` (no fallback to HTTP);
//! `SSL_CERT_FILE` is trusted like `--cache-ca`.

use kdbg_tests::registry::{Registry, RegistryConfig};
use kdbg_tests::{TestNode, TestNodeConfig};

use super::{
    assert_not_pulled, assert_pulled, assert_same_binary_as_source, forget_builds, push, warnings, Home, PASSWORD, USER,
};
use crate::support::Tree;

#[test]
fn plain_http_off_loopback_is_refused_without_insecure_and_used_with_it() {
    kdbg_tests::require_root().unwrap();
    let node = TestNode::up(TestNodeConfig::unique("cachens").bin(env!("CARGO_BIN_EXE_kdbg-testnode"))).unwrap();
    let registry = Registry::start(RegistryConfig::in_netns(node.netns(), node.ip())).unwrap();
    push(&Home::new(), &registry, &["--insecure"]);
    let (tree, dev) = (Tree::fixture(), Home::new());
    let url = registry.url();

    // With --insecure: used, with a warning that the transport is plain HTTP.
    let out = dev.run(tree.kdbg(["build", "apiserver", "--cache", &url, "--insecure"])).success();
    assert_pulled(&out, &registry);
    let w = warnings(&out.stderr);
    assert!(w.iter().any(|l| l.to_lowercase().contains("plain http")), "a plain-HTTP warning in:\n{}", out.stderr);
    assert_eq!(tree.make_runs(), Vec::<String>::new());
    assert_same_binary_as_source(&tree);

    // Without: refused before any plain-HTTP request, a warning naming --insecure, a local build.
    forget_builds(&tree);
    let asked = registry.requests().len();
    let out = dev.run(tree.kdbg(["build", "apiserver", "--cache", &url])).success();
    let w = warnings(&out.stderr);
    assert_eq!(w.len(), 1, "one warning:\n{}", out.stderr);
    assert!(w[0].contains("--insecure"), "{}", w[0]);
    assert_not_pulled(&out);
    assert_eq!(tree.make_runs().len(), 1, "{:?}", tree.make_runs());
    assert_eq!(registry.requests().len(), asked, "no HTTP request reached the registry:\n{}", registry.log());
}

#[test]
fn an_untrusted_certificate_names_cache_ca_and_ssl_cert_file_is_trusted() {
    let registry = Registry::start(RegistryConfig::loopback().tls().auth(USER, PASSWORD)).unwrap();
    push(Home::new().login(&registry, USER, PASSWORD), &registry, &[]);
    let (tree, dev) = (Tree::fixture(), Home::new());
    dev.login(&registry, USER, PASSWORD);
    let url = registry.url();

    let out = dev.run(tree.kdbg(["build", "apiserver", "--cache", &url])).success();
    assert_not_pulled(&out);
    assert_eq!(tree.make_runs().len(), 1, "{:?}", tree.make_runs());
    let w = warnings(&out.stderr);
    assert_eq!(w.len(), 1, "one warning:\n{}", out.stderr);
    assert!(w[0].contains(&url) && w[0].contains("--cache-ca"), "{}", w[0]);

    forget_builds(&tree);
    let run = dev.run(tree.kdbg(["build", "apiserver", "--cache", &url]));
    let out = run.env("SSL_CERT_FILE", registry.ca().unwrap()).success();
    assert_pulled(&out, &registry);
    assert_eq!(tree.make_runs().len(), 1, "{:?}", tree.make_runs());
}
