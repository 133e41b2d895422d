//! Endpoint picking per DestinationRule `loadBalancer` (istio-model.md §2.4): LEAST_REQUEST
//! (Istio's default; Envoy's power of two choices on active requests), ROUND_ROBIN, RANDOM,
//! and `consistentHash` on a ring (`ringHash.minimumRingSize`, default 1024; Maglev is served
//! by the same ring). Ejected hosts and hosts already tried are skipped when others remain.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicUsize, Ordering};

use weft_config::model::{self, SimpleLb};

/// Envoy's default ring size for ring hash.
const DEFAULT_RING_SIZE: u64 = 1024;
/// Envoy's cap on the ring size (`maximum_ring_size` default 8M); kept small for memory.
const MAX_RING_SIZE: u64 = 1 << 16;

/// What a consistent hash hashes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    Header(http::HeaderName),
    Cookie {
        name: String,
        path: Option<String>,
        /// `None`: never generate a cookie; `Some(0)`: session cookie.
        ttl: Option<std::time::Duration>,
    },
    SourceIp,
    QueryParameter(String),
}

/// The algorithm of one cluster.
#[derive(Debug)]
pub enum Balancer {
    LeastRequest,
    RoundRobin(AtomicUsize),
    Random,
    Ring { key: HashKey, ring: Vec<(u64, u32)> },
}

/// A stable 64-bit hash (SipHash with fixed keys).
pub fn hash_bytes(bytes: &[u8]) -> u64 {
    let mut hasher =
        std::hash::BuildHasherDefault::<std::hash::DefaultHasher>::default().build_hasher();
    hasher.write(bytes);
    hasher.finish()
}

impl Balancer {
    /// The balancer for a `loadBalancer` setting over endpoints named by `authorities`.
    pub fn new(settings: Option<&model::LoadBalancerSettings>, authorities: &[&str]) -> Balancer {
        let Some(settings) = settings else {
            return Balancer::LeastRequest;
        };
        if let Some(hash) = &settings.consistent_hash
            && let Some(key) = hash_key(hash)
        {
            let size = hash
                .ring_hash
                .as_ref()
                .and_then(|r| r.minimum_ring_size)
                .or(hash.minimum_ring_size)
                .filter(|n| *n > 0)
                .unwrap_or(DEFAULT_RING_SIZE)
                .min(MAX_RING_SIZE);
            return Balancer::Ring {
                key,
                ring: build_ring(authorities, size),
            };
        }
        match settings.simple {
            Some(SimpleLb::RoundRobin) => Balancer::RoundRobin(AtomicUsize::new(0)),
            Some(SimpleLb::Random) => Balancer::Random,
            _ => Balancer::LeastRequest,
        }
    }

    /// Whether this is a consistent-hash balancer (retries then keep the previous hosts).
    pub fn is_consistent_hash(&self) -> bool {
        matches!(self, Balancer::Ring { .. })
    }

    /// Picks an endpoint index among `n` endpoints. `usable(i)` says whether endpoint `i` may
    /// be used (not ejected, not tried); `active(i)` is its number of active requests; `hash`
    /// is the request's hash for a ring balancer.
    pub fn pick(
        &self,
        n: usize,
        usable: impl Fn(usize) -> bool,
        active: impl Fn(usize) -> u32,
        hash: Option<u64>,
    ) -> Option<usize> {
        if n == 0 {
            return None;
        }
        if let (Balancer::Ring { ring, .. }, Some(hash)) = (self, hash) {
            return ring_pick(ring, hash, &usable);
        }
        let count = (0..n).filter(|&i| usable(i)).count();
        if count == 0 {
            return None;
        }
        let nth = |rank: usize| (0..n).filter(|&i| usable(i)).nth(rank);
        match self {
            Balancer::RoundRobin(next) => nth(next.fetch_add(1, Ordering::Relaxed) % count),
            Balancer::LeastRequest if count > 1 => {
                let first = rand::random_range(0..count);
                let mut second = rand::random_range(0..count - 1);
                if second >= first {
                    second += 1;
                }
                let (a, b) = (nth(first)?, nth(second)?);
                Some(if active(b) < active(a) { b } else { a })
            }
            _ => nth(rand::random_range(0..count)),
        }
    }
}

fn hash_key(hash: &model::ConsistentHashLb) -> Option<HashKey> {
    if let Some(name) = &hash.http_header_name {
        return http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes())
            .ok()
            .map(HashKey::Header);
    }
    if let Some(cookie) = &hash.http_cookie {
        return Some(HashKey::Cookie {
            name: cookie.name.clone(),
            path: cookie.path.clone(),
            ttl: cookie.ttl,
        });
    }
    if hash.use_source_ip == Some(true) {
        return Some(HashKey::SourceIp);
    }
    hash.http_query_parameter_name
        .clone()
        .map(HashKey::QueryParameter)
}

/// Envoy's ring: each host gets `ceil(size / hosts)` points hashed from `authority_i`.
fn build_ring(authorities: &[&str], size: u64) -> Vec<(u64, u32)> {
    if authorities.is_empty() {
        return Vec::new();
    }
    let per_host = size.div_ceil(authorities.len() as u64);
    let mut ring = Vec::with_capacity((per_host as usize) * authorities.len());
    for (index, authority) in authorities.iter().enumerate() {
        for replica in 0..per_host {
            let key = format!("{authority}_{replica}");
            ring.push((hash_bytes(key.as_bytes()), index as u32));
        }
    }
    ring.sort_unstable();
    ring
}

fn ring_pick(ring: &[(u64, u32)], hash: u64, usable: &impl Fn(usize) -> bool) -> Option<usize> {
    if ring.is_empty() {
        return None;
    }
    let start = ring.partition_point(|(point, _)| *point < hash);
    (0..ring.len())
        .map(|offset| ring[(start + offset) % ring.len()].1 as usize)
        .find(|&index| usable(index))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_request_prefers_the_idle_host() {
        let lb = Balancer::LeastRequest;
        let mut picks = [0; 2];
        for _ in 0..200 {
            let i = lb
                .pick(2, |_| true, |i| if i == 0 { 10 } else { 0 }, None)
                .unwrap();
            picks[i] += 1;
        }
        assert_eq!(picks, [0, 200]);
    }

    #[test]
    fn round_robin_skips_unusable_hosts() {
        let lb = Balancer::RoundRobin(AtomicUsize::new(0));
        let picks: Vec<_> = (0..4)
            .map(|_| lb.pick(3, |i| i != 1, |_| 0, None).unwrap())
            .collect();
        assert_eq!(picks, [0, 2, 0, 2]);
        assert_eq!(lb.pick(3, |_| false, |_| 0, None), None);
    }

    #[test]
    fn ring_hash_is_stable_and_moves_only_the_removed_host() {
        let authorities = ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"];
        let ring = build_ring(&authorities, 1024);
        assert_eq!(ring.len(), 3 * 342);
        let mut moved = 0;
        for key in 0..300u32 {
            let hash = hash_bytes(&key.to_be_bytes());
            let all = ring_pick(&ring, hash, &|_| true).unwrap();
            assert_eq!(ring_pick(&ring, hash, &|_| true), Some(all));
            let without_two = ring_pick(&ring, hash, &|i| i != 2).unwrap();
            if all != 2 {
                assert_eq!(without_two, all);
            } else {
                moved += 1;
            }
        }
        assert!(moved > 50 && moved < 150, "{moved}");
    }
}
