//! kdbg's integration tests, one binary: `cargo test -p kdbg-tests --test it`
//! (as root: the tests build test nodes, see `kdbg_tests::TestNode`).

mod build_cache;
mod cache;
mod cross;
mod dap;
mod dap_node;
mod emulation;
mod modern;
mod node;
mod pipe;
mod platforms;
mod session;
mod snapshots;
mod socket;
mod support;
mod testnode;
mod trace;
mod versions;
mod watch;
