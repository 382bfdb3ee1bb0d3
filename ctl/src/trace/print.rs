//! How a trace reads: per bridge the tables in order with their flows and
//! actions, then where each copy went.

use dclab_proto::v1;
use serde::Serialize;

use super::{Topo, Trace};
use crate::output::Format;

/// One table a copy went through.
#[derive(Debug, Serialize)]
pub struct Step {
    pub table: u32,
    /// The pipeline's name for the table.
    pub stage: &'static str,
    pub flow: String,
    pub actions: Vec<String>,
    pub depth: u32,
}

/// dclab's tables (see ARCHITECTURE.md); others are not dclab's.
pub fn stage(table: u32) -> &'static str {
    match table {
        0 => "classify",
        10 => "egress",
        11 => "egress source",
        20 => "ARP",
        30 => "ingress",
        31 => "ingress source",
        32 => "deliver",
        _ => "not dclab's",
    }
}

pub fn steps(trace: &v1::FlowTrace) -> Vec<Step> {
    trace
        .steps
        .iter()
        .map(|s| Step {
            table: s.table,
            stage: stage(s.table),
            flow: s.flow.clone(),
            actions: s.actions.clone(),
            depth: s.depth,
        })
        .collect()
}

/// Why a bridge sent nothing on: the last table's verdict.
pub fn drop_reason(trace: &v1::FlowTrace) -> String {
    match trace.steps.last() {
        Some(s) if s.flow.starts_with("No match") || s.flow.starts_with("priority 0,") => format!(
            "dropped in table {} ({}): no flow of its own matches (the table's default drop)",
            s.table,
            stage(s.table)
        ),
        Some(s) => format!("dropped in table {} ({}) by {}", s.table, stage(s.table), s.flow),
        None => "dropped before any table".to_string(),
    }
}

fn port_label(topo: &Topo, port: &str) -> String {
    match topo.ports.iter().find(|p| p.name == port) {
        Some(p) => format!("{port} ({}/{} {})", p.tenant, p.network, p.ip),
        None => port.to_string(),
    }
}

pub fn trace(t: &Trace, topo: &Topo, format: Format) {
    if format == Format::Json {
        println!("{}", serde_json::to_string_pretty(t).expect("traces serialize"));
        return;
    }
    println!("trace {} -> {}", t.from, t.to);
    for hop in &t.hops {
        let entered = match &hop.from_host {
            Some(from) => format!("from {from} over the uplink"),
            None => format!("from port {}", port_label(topo, &hop.entered)),
        };
        println!("\n{} ({entered})", hop.host);
        println!("  packet  {}", hop.trace.flow);
        for s in &hop.steps {
            let pad = "  ".repeat(s.depth as usize + 1);
            println!("{pad}{:>2} {:<15} {}", s.table, s.stage, s.flow);
            for a in &s.actions {
                println!("{pad}   {:15} {a}", "");
            }
        }
        println!("  datapath  {}", hop.datapath_actions);
        for out in &hop.trace.outputs {
            let mut set: Vec<String> = out.set.iter().map(|(k, v)| format!("{k}={v}")).collect();
            set.sort();
            let set = if set.is_empty() {
                "unchanged".to_string()
            } else {
                set.join(",")
            };
            println!("  -> {} with {set}", port_label(topo, &out.port));
        }
    }
    println!();
    for e in &t.endings {
        match &e.port {
            Some(port) => println!(
                "delivered to {} on {}: {} > {}, {} > {}",
                port_label(topo, port),
                e.host,
                e.packet.field("dl_src"),
                e.packet.field("dl_dst"),
                src(&e.packet),
                e.packet.destination()
            ),
            None => println!("on {}: {}", e.host, e.why),
        }
    }
}

fn src(p: &super::Packet) -> &str {
    if p.proto == super::Proto::Arp {
        p.field("arp_spa")
    } else {
        p.field("nw_src")
    }
}
