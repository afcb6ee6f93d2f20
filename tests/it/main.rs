//! kdbg's integration tests, one binary: `cargo test -p kdbg-tests --test it`
//! (as root: the tests build test nodes, see `kdbg_tests::TestNode`).

mod node;
mod testnode;
mod build_cache;
mod support;
mod dap;
