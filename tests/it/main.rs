//! End-to-end tests: real sockets on 127.0.0.1, the demo mesh in-process,
//! the `weft` binary, and a real headless Chromium. One test binary.

mod browser;
mod check;
mod mesh;
mod robustness;
mod support;
mod traces;
mod traffic_reload;
mod traffic_resilience;
mod traffic_routing;
mod traffic_support;
