//! Delve JSON-RPC API v2 client (state, breakpoints, continue, detach), used by `status`, shutdown and tests.
