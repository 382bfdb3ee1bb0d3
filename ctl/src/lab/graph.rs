//! `ctl lab graph`: a lab as a picture. Hosts are boxes with their nodes
//! inside (name, role, kind, state), networks are coloured lines under the
//! hosts with a drop into every host that has a node on them, and each
//! node carries a chip per interface in its network's colour, its address
//! on hover. Also as Graphviz dot. The same SVG heads experiment reports.

use std::collections::BTreeMap;
use std::fmt::Write;

use dclab_proto::v1;

use super::show::state_name;

const HOST_W: f64 = 250.0;
const HOST_GAP: f64 = 30.0;
const NODE_H: f64 = 62.0;
const NODE_GAP: f64 = 10.0;
const TOP: f64 = 40.0;
const BUS_GAP: f64 = 34.0;
/// Colour per network, in order of the lab file; repeats past eight.
const COLOURS: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
];

/// Escapes text for XML and HTML.
pub fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn kind_name(node: &v1::LabNode) -> &'static str {
    let kind = node.spec.as_ref().map_or(0, |s| s.kind);
    if kind == v1::NodeKind::Container as i32 {
        "container"
    } else {
        "vm"
    }
}

fn spec(node: &v1::LabNode) -> (&str, &str) {
    node.spec
        .as_ref()
        .map_or(("?", ""), |s| (s.name.as_str(), s.role.as_str()))
}

/// Nodes by host, hosts in name order; a node not placed yet is under "(unplaced)".
fn by_host(lab: &v1::Lab) -> BTreeMap<String, Vec<&v1::LabNode>> {
    let mut hosts: BTreeMap<String, Vec<&v1::LabNode>> = BTreeMap::new();
    for node in &lab.nodes {
        let host = if node.host.is_empty() {
            "(unplaced)"
        } else {
            &node.host
        };
        hosts.entry(host.to_string()).or_default().push(node);
    }
    hosts
}

fn colour(lab: &v1::Lab, network: &str) -> &'static str {
    let at = lab
        .networks
        .iter()
        .position(|n| n.name == network)
        .unwrap_or(lab.networks.len());
    COLOURS[at % COLOURS.len()]
}

/// The picture as one SVG element (no XML prolog: it is embedded in HTML).
pub fn svg(lab: &v1::Lab) -> String {
    let hosts = by_host(lab);
    let tallest = hosts.values().map(Vec::len).max().unwrap_or(0) as f64;
    let host_h = 34.0 + tallest * (NODE_H + NODE_GAP);
    let bus_top = TOP + host_h + 30.0;
    let width = 20.0 + hosts.len().max(1) as f64 * (HOST_W + HOST_GAP);
    let height = bus_top + lab.networks.len() as f64 * BUS_GAP + 20.0;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"lab\" width=\"{width:.0}\" height=\"{height:.0}\" \
         viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"sans-serif\">\
         <text x=\"20\" y=\"24\" font-size=\"16\" font-weight=\"bold\">lab {}</text>",
        xml(&lab.name)
    );
    // Which hosts each network drops into.
    let mut drops: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for (i, (host, nodes)) in hosts.iter().enumerate() {
        let x = 20.0 + i as f64 * (HOST_W + HOST_GAP);
        let _ = write!(
            out,
            "<g class=\"host\"><rect x=\"{x:.0}\" y=\"{TOP:.0}\" width=\"{HOST_W:.0}\" height=\"{host_h:.0}\" rx=\"8\" \
             fill=\"#f4f4f4\" stroke=\"#555\"/><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"14\" font-weight=\"bold\">host {}</text></g>",
            x + 10.0,
            TOP + 20.0,
            xml(host)
        );
        for (j, node) in nodes.iter().enumerate() {
            let y = TOP + 30.0 + j as f64 * (NODE_H + NODE_GAP);
            node_box(&mut out, lab, node, x + 10.0, y);
        }
        for (k, net) in lab.networks.iter().enumerate() {
            if nodes.iter().any(|n| n.nics.iter().any(|c| c.network == net.name)) {
                drops
                    .entry(&net.name)
                    .or_default()
                    .push(x + 40.0 + k as f64 * 14.0);
            }
        }
    }
    for (k, net) in lab.networks.iter().enumerate() {
        let y = bus_top + k as f64 * BUS_GAP;
        let c = colour(lab, &net.name);
        let xs = drops.get(net.name.as_str()).cloned().unwrap_or_default();
        let (from, to) = xs
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), x| (a.min(*x), b.max(*x)));
        for x in &xs {
            let _ = write!(
                out,
                "<line x1=\"{x:.0}\" y1=\"{:.0}\" x2=\"{x:.0}\" y2=\"{y:.0}\" stroke=\"{c}\" stroke-width=\"3\"/>",
                TOP + host_h
            );
        }
        if !xs.is_empty() {
            let _ = write!(
                out,
                "<line class=\"net\" x1=\"{:.0}\" y1=\"{y:.0}\" x2=\"{:.0}\" y2=\"{y:.0}\" stroke=\"{c}\" stroke-width=\"5\"/>",
                from - 10.0,
                to + 10.0
            );
        }
        let _ = write!(
            out,
            "<text x=\"{:.0}\" y=\"{:.0}\" font-size=\"13\" fill=\"{c}\">network {} {}</text>",
            if xs.is_empty() { 20.0 } else { to + 18.0 },
            y + 4.0,
            xml(&net.name),
            xml(&net.cidr)
        );
    }
    out.push_str("</svg>");
    out
}

fn node_box(out: &mut String, lab: &v1::Lab, node: &v1::LabNode, x: f64, y: f64) {
    let (name, role) = spec(node);
    let state = state_name(node.state);
    let fill = match state {
        "running" => "#e3f4e1",
        "failed" => "#fbe0de",
        "paused" | "stopped" => "#fff2cc",
        _ => "#ececec",
    };
    let w = HOST_W - 20.0;
    let role = if role.is_empty() {
        String::new()
    } else {
        format!("{role} · ")
    };
    let mut tip = format!("{name} ({}) on {}: {state}", kind_name(node), node.host);
    if !node.error.is_empty() {
        let _ = write!(tip, " — {}", node.error);
    }
    let _ = write!(
        out,
        "<g class=\"node\" data-node=\"{}\"><title>{}</title><rect x=\"{x:.0}\" y=\"{y:.0}\" width=\"{w:.0}\" height=\"{NODE_H:.0}\" \
         rx=\"6\" fill=\"{fill}\" stroke=\"#888\"/><text x=\"{:.0}\" y=\"{:.0}\" font-size=\"14\" font-weight=\"bold\">{}</text>\
         <text x=\"{:.0}\" y=\"{:.0}\" font-size=\"12\" fill=\"#333\">{}{} · {state}</text>",
        xml(name),
        xml(&tip),
        x + 8.0,
        y + 18.0,
        xml(name),
        x + 8.0,
        y + 34.0,
        xml(&role),
        kind_name(node)
    );
    for (i, nic) in node.nics.iter().enumerate() {
        let cx = x + 14.0 + i as f64 * 74.0;
        let cy = y + 50.0;
        let c = colour(lab, &nic.network);
        let _ = write!(
            out,
            "<g class=\"nic\"><title>{} {}/{} {} (port {}, tap {})</title><circle cx=\"{cx:.0}\" cy=\"{cy:.0}\" r=\"5\" fill=\"{c}\"/>\
             <text x=\"{:.0}\" y=\"{:.0}\" font-size=\"10\" fill=\"{c}\">{}</text></g>",
            xml(&nic.network),
            xml(&nic.ip),
            nic.prefix,
            xml(&nic.mac),
            xml(&nic.port),
            xml(&nic.tap),
            cx + 8.0,
            cy + 4.0,
            xml(&nic.ip)
        );
    }
    out.push_str("</g>");
}

/// A self-contained page: the picture, then a table of every node's
/// addresses (what hovering shows, for a reader without a mouse).
pub fn html(lab: &v1::Lab) -> String {
    let mut rows = String::new();
    for node in &lab.nodes {
        let (name, role) = spec(node);
        let nics: Vec<String> = node
            .nics
            .iter()
            .map(|n| format!("{} {}/{}", xml(&n.network), xml(&n.ip), n.prefix))
            .collect();
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            xml(name),
            xml(role),
            kind_name(node),
            xml(&node.host),
            state_name(node.state),
            nics.join("<br>")
        );
    }
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>lab {name}</title>\
         <style>body{{font-family:sans-serif;margin:20px}}table{{border-collapse:collapse;margin-top:16px}}\
         td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;font-size:13px}}</style></head><body>\n{svg}\n\
         <table><tr><th>node</th><th>role</th><th>kind</th><th>host</th><th>state</th><th>addresses</th></tr>{rows}</table>\n\
         </body></html>\n",
        name = xml(&lab.name),
        svg = svg(lab)
    )
}

fn dot_id(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Graphviz: a cluster per host, a node per lab node, a point per
/// network, an edge per interface labelled with its address.
pub fn dot(lab: &v1::Lab) -> String {
    let mut out = format!(
        "graph {} {{\n  compound=true;\n",
        dot_id(&format!("lab {}", lab.name))
    );
    for (i, (host, nodes)) in by_host(lab).iter().enumerate() {
        let _ = writeln!(
            out,
            "  subgraph cluster_{i} {{\n    label={};",
            dot_id(&format!("host {host}"))
        );
        for node in nodes {
            let (name, role) = spec(node);
            let label = format!("{name}\\n{role} {} {}", kind_name(node), state_name(node.state));
            let _ = writeln!(
                out,
                "    {} [shape=box, label=\"{}\"];",
                dot_id(&format!("node {name}")),
                label.replace('"', "'")
            );
        }
        out.push_str("  }\n");
    }
    for net in &lab.networks {
        let _ = writeln!(
            out,
            "  {} [shape=ellipse, color=\"{}\", label={}];",
            dot_id(&format!("net {}", net.name)),
            colour(lab, &net.name),
            dot_id(&format!("{} {}", net.name, net.cidr))
        );
    }
    for node in &lab.nodes {
        let (name, _) = spec(node);
        for nic in &node.nics {
            let _ = writeln!(
                out,
                "  {} -- {} [label={}, color=\"{}\"];",
                dot_id(&format!("node {name}")),
                dot_id(&format!("net {}", nic.network)),
                dot_id(&nic.ip),
                colour(lab, &nic.network)
            );
        }
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod tests;
