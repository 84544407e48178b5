//! Load client for benches/daemon.sh: N concurrent connections, each reading the Handlers
//! property and calling Install of an installed platform; prints p50/p99 latencies.
//!
//! Usage: daemon_load ADDRESS CLIENTS REQUESTS PLATFORM

use binfmtd::dbus::proxy::ManagerProxy;
use std::collections::HashMap;
use std::time::{Duration, Instant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn client(
    address: String,
    requests: usize,
    platform: Option<String>,
    start: &std::sync::Barrier,
) -> Result<(Vec<Duration>, Vec<Duration>), zbus::Error> {
    let conn = zbus::connection::Builder::address(address.as_str())
        .build()
        .await?;
    let proxy = ManagerProxy::builder(&conn)
        .cache_properties(zbus::proxy::CacheProperties::No)
        .build()
        .await?;
    // Every client is connected before any is timed.
    start.wait();
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for _ in 0..requests {
        let t = Instant::now();
        proxy.handlers().await?;
        reads.push(t.elapsed());
        if let Some(platform) = &platform {
            let t = Instant::now();
            proxy
                .install(&[platform.as_str()], HashMap::new(), false)
                .await?;
            writes.push(t.elapsed());
        }
    }
    Ok((reads, writes))
}

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [address, clients, requests, platform] = args.as_slice() else {
        eprintln!("usage: daemon_load ADDRESS CLIENTS REQUESTS PLATFORM");
        return std::process::ExitCode::from(2);
    };
    let (Ok(clients), Ok(requests)) = (clients.parse::<usize>(), requests.parse::<usize>()) else {
        eprintln!("CLIENTS and REQUESTS are whole numbers");
        return std::process::ExitCode::from(2);
    };
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("clients={clients} requests_per_client={requests}");
    let mut failed = false;
    for (phase, platform) in [("reads_only", None), ("mixed", Some(platform.clone()))] {
        let (mut reads, mut writes, errors) = phase_run(address, clients, requests, platform);
        reads.sort();
        writes.sort();
        println!("{phase}: errors={errors}");
        println!(
            "  property_read_ms p50={:.2} p99={:.2} n={}",
            ms(percentile(&reads, 0.5)),
            ms(percentile(&reads, 0.99)),
            reads.len()
        );
        if !writes.is_empty() {
            println!(
                "  install_installed_ms p50={:.2} p99={:.2} n={}",
                ms(percentile(&writes, 0.5)),
                ms(percentile(&writes, 0.99)),
                writes.len()
            );
        }
        failed |= errors > 0;
    }
    if failed {
        std::process::ExitCode::FAILURE
    } else {
        std::process::ExitCode::SUCCESS
    }
}

/// One OS thread with its own runtime and connection per client: independent peers.
fn phase_run(
    address: &str,
    clients: usize,
    requests: usize,
    platform: Option<String>,
) -> (Vec<Duration>, Vec<Duration>, usize) {
    let start = std::sync::Barrier::new(clients);
    let start = &start;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let platform = platform.clone();
                s.spawn(move || {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .map_err(|e| zbus::Error::Failure(e.to_string()))?;
                    rt.block_on(client(address.to_string(), requests, platform, start))
                })
            })
            .collect();
        let (mut reads, mut writes, mut errors) = (Vec::new(), Vec::new(), 0usize);
        for h in handles {
            match h.join() {
                Ok(Ok((r, w))) => {
                    reads.extend(r);
                    writes.extend(w);
                }
                Ok(Err(e)) => {
                    eprintln!("client error: {e}");
                    errors += 1;
                }
                Err(_) => {
                    eprintln!("client thread panicked");
                    errors += 1;
                }
            }
        }
        (reads, writes, errors)
    })
}
