//! The weft control plane: the certificate authority that signs SPIFFE
//! workload certificates and the distribution of mesh config to proxies.
//! Not built yet; proxies read their config from files (`--config DIR`).
