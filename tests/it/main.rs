//! End-to-end tests: real sockets on 127.0.0.1, the demo mesh in-process,
//! the `weft` binary, and a real headless Chromium. One test binary.

mod browser;
mod browser_data;
mod check;
mod demo_cli;
mod exactness;
mod inject;
mod mesh;
mod propagation;
mod robustness;
mod security_cli;
mod security_egress;
mod security_jwt;
mod security_mtls;
mod security_support;
mod support;
mod telemetry;
mod traces;
mod traffic_reload;
mod traffic_resilience;
mod traffic_routing;
mod traffic_support;
