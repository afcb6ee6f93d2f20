//! Where kdbg keeps its files on a node: one place for every node path it writes.
//!
//! Everything lives under [`KDBG_DIR`] but the logs ([`LOG_DIR`]); `kdbg restore` removes all of
//! it except the deployed binaries and the lock file, which later sessions reuse.

/// Where kdbg keeps its files on a node.
pub(crate) const KDBG_DIR: &str = "/var/lib/kdbg";
/// Where deployed binaries (and dlv) live on a node.
pub(crate) const BIN_DIR: &str = "/var/lib/kdbg/bin";
/// The journal of what kdbg changed on the node.
pub(crate) const JOURNAL: &str = "/var/lib/kdbg/journal.json";
/// Where static pod manifests wait while their component is under debug.
pub(crate) const BACKUP_DIR: &str = "/var/lib/kdbg/backup";
/// Delve's sockets, `<component>/dlv.sock` (each directory 0700, owned by the login user).
pub(crate) const RUN_DIR: &str = "/var/lib/kdbg/run";
/// Where a DaemonSet pod's files wait for the debug build, `<component>/<n>`.
pub(crate) const PODS_DIR: &str = "/var/lib/kdbg/pods";
/// The lock file of `session::node_lock` (one kdbg changes a node at a time).
pub(crate) const LOCK: &str = "/var/lib/kdbg/lock";
/// Delve's and the debug build's output, `<name>.log`.
pub(crate) const LOG_DIR: &str = "/var/log/kdbg";

/// The debug build of `name` on the node.
pub(crate) fn binary_path(name: &str) -> String {
    format!("{BIN_DIR}/{name}")
}

/// Delve on the node.
pub(crate) fn dlv_path() -> String {
    format!("{BIN_DIR}/dlv")
}

/// The socket of `component`'s Delve on the node.
pub(crate) fn socket_path(component: &str) -> String {
    format!("{RUN_DIR}/{component}/dlv.sock")
}

/// The log of `name` (Delve and the debug build it runs).
pub(crate) fn log_path(name: &str) -> String {
    format!("{LOG_DIR}/{name}.log")
}
