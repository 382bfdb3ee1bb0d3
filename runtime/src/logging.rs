//! Log and trace setup shared by the binaries: RUST_LOG filter (default
//! info) to stderr, colours only on a terminal so log files stay plain;
//! with an OTLP endpoint, spans also go to an OpenTelemetry collector.

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer as _;

use crate::telemetry::Telemetry;

/// Where spans go: `--otlp-endpoint` on every binary.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TelemetryArgs {
    /// Send traces to this OpenTelemetry collector (OTLP over gRPC, e.g.
    /// http://127.0.0.1:4317). Unset: logs only. `ctl local up` hands it to
    /// the cluster's coordinator and agents too.
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT")]
    pub otlp_endpoint: Option<String>,
}

fn install(default: &str, telemetry: Option<&Telemetry>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter);
    // Spans are exported from info up, whatever the log level shows.
    let spans = telemetry.map(|t| t.layer().with_filter(LevelFilter::INFO));
    tracing_subscriber::registry().with(spans).with(fmt).init();
}

/// Logs (from `default` up unless RUST_LOG says otherwise), and traces as
/// `service` when `args` names an endpoint. Must run inside the tokio
/// runtime (the exporter's channel lives there); keep the returned guard
/// until exit, it flushes the last spans.
pub fn init_traced(service: &str, default: &str, args: &TelemetryArgs) -> anyhow::Result<Option<Telemetry>> {
    let Some(endpoint) = &args.otlp_endpoint else {
        install(default, None);
        return Ok(None);
    };
    let telemetry = Telemetry::start(service, endpoint)?;
    install(default, Some(&telemetry));
    tracing::info!(service, endpoint = %endpoint, "sending traces over OTLP");
    Ok(Some(telemetry))
}
