//! The kdbg test node: a minikube-like node built on this host (as root) from a
//! network namespace, a mount/pid/UTS namespace, sshd and a static-pod runner.
//!
//! A node looks to kdbg like a minikube node: its own IP (`10.213.N.2`, the host
//! is `10.213.N.1`), `ssh docker@IP` with a generated key and passwordless sudo,
//! and kubeadm's paths (`/etc/kubernetes/manifests`, `/var/lib/minikube/certs`,
//! ...) that are the node's own. A stand-in for the kubelet runs every static
//! pod manifest in `/etc/kubernetes/manifests` as a process (see [`runner`]).
//!
//! ```no_run
//! use kdbg_tests::{TestNode, TestNodeConfig};
//! let node = TestNode::up(TestNodeConfig::unique("doc")).unwrap();
//! std::fs::write(node.manifests_dir().join("sleeper.yaml"), "...").unwrap();
//! let out = node.ssh("sudo -n ls /etc/kubernetes/manifests").unwrap();
//! drop(node); // tears everything down, also when a test panics
//! ```
//!
//! How a node is prepared is in [`setup`] and [`init`]; the layout of a node's
//! state directory is in [`layout`]. Nodes of killed test processes are removed by the
//! next `TestNode::up` (or `kdbg-testnode down --name NAME`).

pub mod arm64;
pub mod dap;
pub mod faults;
pub mod fixture;
pub mod init;
pub mod lab;
pub mod layout;
pub mod manifest;
pub mod net;
pub mod node;
pub mod pods;
pub mod probe;
pub mod registry;
pub mod runner;
pub mod setup;
pub mod sys;
pub mod teardown;
pub mod toolchain;

pub use manifest::{PodSpec, PodState, PodStatus, PodsFile};
pub use node::{TestNode, TestNodeConfig};
pub use setup::NodeInfo;
pub use sys::require_root;
