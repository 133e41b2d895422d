//! Publishes the config in force as metrics: `weft_proxy_config_info` and
//! `weft_route_weight`, the configured share of every weighted route
//! destination. The collector shows these beside the observed split, so the
//! canary view compares what was asked with what happened, from the proxies'
//! own point of view (no shared config folder needed).

use weft_config::Snapshot;
use weft_config::snapshot::Action;

use super::Metrics;

/// Replaces the published values with those of `snapshot`.
pub fn publish(snapshot: &Snapshot, metrics: &Metrics) {
    metrics.config_info.reset();
    metrics
        .config_info
        .with_label_values(&[snapshot.version()])
        .set(1);
    metrics.route_weight.reset();
    for host in snapshot.virtual_hosts() {
        let Some(virtual_service) = &host.virtual_service else {
            continue;
        };
        let virtual_service = virtual_service.to_string();
        let port = host
            .ports
            .as_ref()
            .and_then(|ports| ports.first().copied())
            .unwrap_or(80);
        for route in &host.routes {
            let Action::Route(destinations) = &route.action else {
                continue;
            };
            let total: u64 = destinations.iter().map(|d| u64::from(d.weight)).sum();
            for destination in destinations {
                let share = match (destinations.len(), total) {
                    (1, _) => 100.0,
                    (_, 0) => 0.0,
                    _ => f64::from(destination.weight) * 100.0 / total as f64,
                };
                let cluster = destination.cluster(port);
                let service = cluster.map_or(destination.destination.host.as_str(), |c| {
                    c.service_host.as_str()
                });
                let subset = destination.destination.subset.as_deref().unwrap_or("");
                let version = cluster
                    .and_then(common_version)
                    .unwrap_or(subset)
                    .to_string();
                metrics
                    .route_weight
                    .with_label_values(&[
                        virtual_service.as_str(),
                        route.name.as_deref().unwrap_or(""),
                        service,
                        subset,
                        version.as_str(),
                    ])
                    .set(share);
            }
        }
    }
}

/// The `version` label shared by every endpoint of a cluster, if any.
fn common_version(cluster: &weft_config::Cluster) -> Option<&str> {
    let mut versions = cluster
        .endpoints
        .iter()
        .map(|e| e.labels.get("version").map(String::as_str));
    let first = versions.next()??;
    versions.all(|v| v == Some(first)).then_some(first)
}
