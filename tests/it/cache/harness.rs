//! The registry harness itself: TLS with the test CA and htpasswd auth on loopback, plain HTTP in
//! a test node's network namespace, the storage layout the tamper test relies on.

use kdbg_tests::registry::{Registry, RegistryConfig};
use kdbg_tests::{TestNode, TestNodeConfig};

#[test]
fn registry_with_tls_and_auth_answers_401_without_and_200_with_credentials() {
    let mut registry = Registry::start(RegistryConfig::loopback().tls().auth("ci", "s3cret")).unwrap();
    assert!(registry.url().starts_with("oci://127.0.0.1:") && registry.url().ends_with("/kdbg"));
    assert!(registry.base_url().starts_with("https://"));
    assert_eq!(registry.status("/v2/", None).unwrap(), 401);
    assert_eq!(registry.status("/v2/", Some(("ci", "wrong"))).unwrap(), 401);
    assert_eq!(registry.status("/v2/", Some(("ci", "s3cret"))).unwrap(), 200);
    // Without the test CA, curl refuses the certificate (no HTTP status at all).
    let out = std::process::Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-u", "ci:s3cret"])
        .arg(format!("{}/v2/", registry.base_url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "000");
    let requests = registry.requests();
    assert!(requests.iter().any(|r| r.uri == "/v2/" && r.status == 200), "{requests:?}");
    assert!(registry.blob_uploads().is_empty());
    registry.stop();
    assert_eq!(registry.status("/v2/", Some(("ci", "s3cret"))).unwrap(), 0, "a stopped registry does not answer");
}

#[test]
fn registry_in_a_test_node_namespace_serves_the_host_over_the_veth() {
    kdbg_tests::require_root().unwrap();
    let node = TestNode::up(TestNodeConfig::unique("reg").bin(env!("CARGO_BIN_EXE_kdbg-testnode"))).unwrap();
    let registry = Registry::start(RegistryConfig::in_netns(node.netns(), node.ip())).unwrap();
    assert_eq!(registry.url(), format!("oci://{}:{}/kdbg", node.ip(), registry.port()));
    assert_eq!(registry.status("/v2/", None).unwrap(), 200);
    // Listening in the node's namespace only: not on this host's loopback.
    assert!(std::net::TcpStream::connect(("127.0.0.1", registry.port())).is_err());
}
