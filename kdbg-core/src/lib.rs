//! kdbg-core: turns a Kubernetes source tree and a node into a live Delve session, and back.
//!
//! Planning and key computation are data in, data out; processes run only through [`host::Cmd`]
//! (the workstation) and the node transports. Nothing here prints: progress is reported as
//! [`report::Event`]s.

pub(crate) mod binary;
pub mod build;
pub mod cache;
pub mod cgo;
pub mod component;
pub mod crash;
pub mod deploy;
pub(crate) mod digest;
pub mod dlv;
pub mod doctor;
pub(crate) mod emulation;
pub mod exit;
mod fence;
pub mod flags;
pub mod host;
pub mod ide;
pub(crate) mod layout;
pub(crate) mod lock;
pub mod node;
pub mod node_lock;
pub mod node_version;
pub mod plan;
pub mod platform;
pub mod report;
pub mod session;
pub(crate) mod statefile;
pub(crate) mod toolchain;
pub mod trace;
pub mod tree;
pub(crate) mod tunnels;
pub mod watch;
pub(crate) mod workstation;
pub mod worktree;
