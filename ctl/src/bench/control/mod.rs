//! `ctl bench control-plane`: the real coordinator process with thousands
//! of simulated agents, at the scales the NVP and OVN papers report.

pub mod agents;
pub mod measure;
pub mod plan;

use serde_json::json;

use crate::output::{print, Format};
use measure::ScaleReport;

#[derive(clap::Args, Debug)]
pub struct ControlArgs {
    /// Scales as HOSTS:PORTS, comma separated.
    #[arg(long, value_delimiter = ',', default_value = "100:2000,1000:20000,3000:60000")]
    pub scales: Vec<String>,
    /// One-port changes timed at each scale.
    #[arg(long, default_value_t = 30)]
    pub samples: usize,
    /// Plaintext gRPC instead of mutual TLS (to see what TLS costs).
    #[arg(long)]
    pub insecure: bool,
}

fn parse_scale(text: &str) -> anyhow::Result<(usize, usize)> {
    let bad = || anyhow::anyhow!("scale {text:?} is not HOSTS:PORTS, e.g. 1000:20000");
    let (h, p) = text.split_once(':').ok_or_else(bad)?;
    let (h, p) = (h.parse().map_err(|_| bad())?, p.parse().map_err(|_| bad())?);
    if h == 0 || p < h {
        anyhow::bail!("scale {text}: need at least one host and as many ports as hosts");
    }
    Ok((h, p))
}

pub async fn run(args: ControlArgs, format: Format) -> anyhow::Result<()> {
    let scales = args
        .scales
        .iter()
        .map(|s| parse_scale(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut reports = Vec::new();
    for (hosts, ports) in scales {
        reports.push(measure::run_scale(hosts, ports, args.samples, args.insecure).await?);
    }
    let transport = if args.insecure {
        "plaintext"
    } else {
        "mutual TLS 1.3"
    };
    if format == Format::Table {
        println!("{}", super::machine_line());
        println!("control plane: real coordinator process, simulated agents over {transport}\n");
    }
    let json = json!({"transport": transport, "machine": super::machine_line(), "scales": reports});
    let headers = headers(&reports);
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    print(format, &headers, &rows(&reports), json);
    Ok(())
}

fn percentile(samples: &[f64], p: f64) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn headers(reports: &[ScaleReport]) -> Vec<String> {
    let mut h = vec!["metric".to_string()];
    h.extend(reports.iter().map(|r| format!("{} h / {} p", r.hosts, r.ports)));
    h.push("reference".into());
    h
}

fn rows(reports: &[ScaleReport]) -> Vec<Vec<String>> {
    type Cell = fn(&ScaleReport) -> String;
    let metrics: [(&str, Cell, &str); 13] = [
        (
            "full compile from scratch",
            |r| format!("{:.0} ms", r.full_compile_ms),
            "goal <= 2 s at 3000/60000; NVP: up to 1 h; OVN: ~0.7 s per host recompute at 1000/20000",
        ),
        (
            "store load at start",
            |r| format!("{:.0} ms", r.startup_load_ms),
            "",
        ),
        (
            "one-port change, all affected acked, p50",
            |r| format!("{:.1} ms", percentile(&r.change_ms, 0.5)),
            "goal <= 30 ms at 1000 hosts; OVN northd ~30 ms per port at 500 nodes",
        ),
        (
            "  p95",
            |r| format!("{:.1} ms", percentile(&r.change_ms, 0.95)),
            "",
        ),
        (
            "  max",
            |r| format!("{:.1} ms", percentile(&r.change_ms, 1.0)),
            "",
        ),
        (
            "  of which the write (commit + compile), p50",
            |r| format!("{:.1} ms", percentile(&r.write_ms, 0.5)),
            "",
        ),
        (
            "  affected hosts per change",
            |r| format!("{:.1}", r.affected_hosts_avg),
            "",
        ),
        (
            "all agents reconverged after restart",
            |r| format!("{:.1} s", r.reconverge_s),
            "",
        ),
        (
            "coordinator memory (RSS)",
            |r| format!("{:.0} MiB", r.rss_mib),
            "",
        ),
        ("sled size", |r| format!("{:.1} MiB", r.store_mib), ""),
        (
            "flows per host, mean",
            |r| format!("{:.0}", r.flows_per_host_avg),
            "",
        ),
        ("flows per host, max", |r| r.flows_per_host_max.to_string(), ""),
        (
            "populate (tenants, ports, all acked)",
            |r| format!("{:.1} s", r.populate_s),
            "",
        ),
    ];
    metrics
        .iter()
        .map(|(name, cell, reference)| {
            let mut row = vec![name.to_string()];
            row.extend(reports.iter().map(cell));
            row.push(reference.to_string());
            row
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_parse_and_percentiles_pick_ranks() {
        assert_eq!(parse_scale("100:2000").unwrap(), (100, 2000));
        assert!(parse_scale("100").is_err() && parse_scale("0:5").is_err() && parse_scale("10:5").is_err());
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 0.5), 2.0);
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 1.0), 3.0);
    }
}
