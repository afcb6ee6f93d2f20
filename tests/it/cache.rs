//! The remote cache (issue #25): `kdbg build --push` from one tree into Debian's Distribution
//! registry, `kdbg debug`/`build` pulling it into another tree at another path, and the failure
//! paths (wrong credentials, a stopped registry, a tampered layer, plain HTTP off loopback).

mod harness;
