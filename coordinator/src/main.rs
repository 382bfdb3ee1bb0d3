use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use dclab_coordinator::{addr::Cidr, coordinator::Coordinator, keys::KeyRange, metrics::Metrics, service};
use dclab_runtime::metrics_http::{self, write_atomically};
use tokio::net::TcpListener;
use tracing::info;

/// dclab coordinator: stores the topology and pushes every host's rewrite rules to its agent.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// Directory of the sled database (created if missing).
    #[arg(long, env = "DCLAB_DATA_DIR")]
    data_dir: PathBuf,
    /// Address to serve gRPC on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:7400")]
    listen: String,
    /// Write the address actually listened on to this file once serving.
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Addresses used as mapping keys on the physical network.
    #[arg(long, default_value = "100.64.0.0/16")]
    key_range: String,
    #[command(flatten)]
    metrics: dclab_runtime::metrics_http::MetricsArgs,
    #[command(flatten)]
    tls: dclab_runtime::net::TlsArgs,
    #[command(flatten)]
    telemetry: dclab_runtime::logging::TelemetryArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let _telemetry = dclab_runtime::logging::init_traced("dclab-coordinator", "info", &args.telemetry)?;
    let cidr: Cidr = args
        .key_range
        .parse()
        .map_err(|e| anyhow::anyhow!("--key-range: {e}"))?;
    let tls = args.tls.files("coordinator");
    // Fail on bad certificates before touching the store.
    if let Some(files) = &tls {
        dclab_runtime::tls::server_config(files)?;
    }
    let parts = Coordinator::open(&args.data_dir, KeyRange(cidr))?;
    let listener = TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    if tls.is_none() && !addr.ip().is_loopback() {
        anyhow::bail!(
            "--insecure serves plaintext without authentication, so it listens on loopback only; \
             {addr} is reachable from other machines: use --listen 127.0.0.1:PORT, or drop --insecure \
             and give the coordinator its certificates (ctl certs init)"
        );
    }
    let metrics = Metrics::new(&parts);
    if let Some(at) = metrics_http::serve(&args.metrics, Arc::new(move || metrics.render())).await? {
        info!(addr = %at, "Prometheus metrics at http://{at}/metrics (plain HTTP)");
    }
    let security = if tls.is_some() {
        "mutual TLS 1.3"
    } else {
        "plaintext (insecure)"
    };
    info!(%addr, data_dir = %args.data_dir.display(), revision = parts.store.revision(), security,
        load_ms = parts.store.load_micros / 1000, compile_ms = parts.startup_compile.micros / 1000,
        flows = parts.startup_compile.flows, "coordinator serving");
    if let Some(file) = &args.addr_file {
        write_atomically(file, &addr.to_string())?;
    }
    service::serve(
        parts,
        listener,
        tls.as_ref(),
        dclab_runtime::net::shutdown_signal(),
    )
    .await?;
    info!("coordinator stopped");
    Ok(())
}
