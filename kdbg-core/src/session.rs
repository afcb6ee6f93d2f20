//! The debug lifecycle on a node: capture a component's exact invocation, stop it safely, run the
//! debug build under Delve on the node's loopback, tunnel to it, and put everything back.
//!
//! ```text
//! capture-args ──▶ stop ──────────────▶ launch ─────────────▶ tunnel
//!  /proc/PID        journal: stopping     journal: launching     ssh -L localhost:P
//!  manifest         manifest → backup     socket dir (0700)      → node's dlv.sock
//!  systemd unit     wait: pid gone,       setsid dlv exec …      (or 127.0.0.1:P;
//!                   ports free            wait: Delve listens,   pid kept in the
//!                                         component serves       workstation's state)
//! ```
//!
//! Every change on the node is preceded by a durable write of the journal
//! (`/var/lib/kdbg/journal.json`, see [`journal`]), so `kdbg restore` can undo a session whose
//! kdbg was killed at any point, from any workstation. Restore is idempotent: it kills whatever
//! runs the debug build, puts the manifest back byte-identical (or starts the unit), waits until
//! the original runs again, and only then forgets the entry.
//!
//! Static pod manifests are never copied or renamed *inside* `/etc/kubernetes/manifests`: the
//! kubelet runs every non-hidden file there, so a backup left beside the original would start a
//! second copy. Backups live in `/var/lib/kdbg/backup`; temporary files are dotfiles.
//!
//! Delve never listens off the node unless `--expose` is given: its API is unauthenticated remote
//! code execution as root. Where it can ([`endpoint`]: Delve ≥ 1.22.1, a tunnel), it listens on
//! a unix socket in a 0700 directory owned by the login user, which no other local user can
//! enter; else on `127.0.0.1` with `--only-same-user=false`, because the ssh forward's connection
//! comes from the login user's sshd, not from root.
//!
//! Fault injection for tests: [`crate::crash::CrashAt`] (`KDBG_TEST_CRASH_AT`) at every step id.

mod error;

pub(crate) mod attach;
pub(crate) mod capture;
pub(crate) mod daemonset;
pub mod debug;
pub(crate) mod endpoint;
pub mod journal;
pub(crate) mod launch;
pub mod lease;
pub mod listen;
pub(crate) mod manifest;
pub(crate) mod persist;
pub(crate) mod preflight;
pub(crate) mod procs;
pub mod restore;
pub(crate) mod scripts;
pub mod status;
pub(crate) mod stop;
pub(crate) mod systemd;
pub(crate) mod traces;
pub(crate) mod undo;

pub use error::SessionError;
#[cfg(test)]
mod tidy;
