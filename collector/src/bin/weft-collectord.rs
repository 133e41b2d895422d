//! A standalone collector process for tests and benchmarks (the product's
//! command line is `weft collector`): `weft-collectord DB_URL` binds every
//! listener on 127.0.0.1 port 0, prints one JSON line with the bound
//! addresses, and serves until stdin closes or it is killed.
//!
//! The durability test kills it with SIGKILL mid-ingest
//! (`tests/durability.rs`).

use std::io::Write as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let Some(db) = std::env::args().nth(1) else {
        eprintln!("usage: weft-collectord DB_URL");
        std::process::exit(2);
    };
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    let collector = weft_collector::Config {
        db,
        http: any,
        otlp_grpc: any,
        otlp_http: any,
        zipkin: Some(any),
        ..weft_collector::Config::default()
    }
    .build()
    .await?;
    let zipkin = collector
        .zipkin_addr()
        .map(|addr| addr.to_string())
        .unwrap_or_default();
    let line = format!(
        "{{\"http\":\"{}\",\"otlp_grpc\":\"{}\",\"otlp_http\":\"{}\",\"zipkin\":\"{}\"}}\n",
        collector.http_addr(),
        collector.otlp_grpc_addr(),
        collector.otlp_http_addr(),
        zipkin,
    );
    let mut stdout = std::io::stdout();
    stdout.write_all(line.as_bytes())?;
    stdout.flush()?;
    collector
        .run_until(async {
            // Ends when the parent closes our stdin.
            let _ = tokio::task::spawn_blocking(|| {
                let mut sink = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink)
            })
            .await;
        })
        .await;
    Ok(())
}
