//! From a lab file to a checked LabSpec: the file's own syntax (TOML,
//! sizes) is checked here, everything else by `dclab_spec::validate`,
//! the same checks the coordinator makes, so `ctl lab check` and `lab up`
//! agree. Each error names its line and field.

use std::ops::Range;

use dclab_proto::v1;
use dclab_spec::validate::{self, Location};
use toml::Spanned;

use super::file::{line_of, parse, parse_mib, LabFile, LabFileError};

/// Where each field of a node stands in the file.
struct NodeSpans {
    name: Range<usize>,
    fields: Vec<(&'static str, Range<usize>)>,
    disks: Vec<Range<usize>>,
    /// (network, ip) of each interface.
    interfaces: Vec<(Range<usize>, Option<Range<usize>>)>,
}

/// Where each field of a network stands in the file.
struct NetworkSpans {
    name: Range<usize>,
    cidr: Range<usize>,
    kind: Option<Range<usize>>,
}

/// Spans of the file's parts, to point a validator error at its line.
struct Spans {
    lab_name: Range<usize>,
    networks: Vec<NetworkSpans>,
    nodes: Vec<NodeSpans>,
    ssh_keys: Vec<Range<usize>>,
}

impl Spans {
    fn of(&self, at: Location) -> Range<usize> {
        let node = |i: usize| self.nodes.get(i);
        let found = match at {
            Location::LabName => Some(self.lab_name.clone()),
            Location::Network { index, field } => self.networks.get(index).map(|n| match field {
                "cidr" => n.cidr.clone(),
                "kind" => n.kind.clone().unwrap_or(n.name.clone()),
                _ => n.name.clone(),
            }),
            Location::Node { index, field } => node(index).map(|n| {
                n.fields
                    .iter()
                    .find(|(f, span)| *f == field && !span.is_empty())
                    .map_or(n.name.clone(), |(_, span)| span.clone())
            }),
            Location::Disk { node: i, index } => {
                node(i).map(|n| n.disks.get(index).unwrap_or(&n.name).clone())
            }
            Location::Interface {
                node: i,
                index,
                field,
            } => node(i).map(|n| match n.interfaces.get(index) {
                Some((_, Some(ip))) if field == "ip" => ip.clone(),
                Some((net, _)) => net.clone(),
                None => n.name.clone(),
            }),
            Location::SshKey(i) => self.ssh_keys.get(i).cloned(),
        };
        found.unwrap_or(self.lab_name.clone())
    }
}

/// Reads, parses and checks the lab file at `path`.
pub fn load(path: &str) -> Result<v1::LabSpec, LabFileError> {
    let text = std::fs::read_to_string(path).map_err(|e| LabFileError {
        file: path.to_string(),
        line: 0,
        message: format!("cannot read the lab file: {e}"),
    })?;
    check(path, &text, parse(path, &text)?)
}

pub fn check(file: &str, text: &str, raw: LabFile) -> Result<v1::LabSpec, LabFileError> {
    let err = |span: &Range<usize>, message: String| LabFileError {
        file: file.to_string(),
        line: line_of(text, span),
        message,
    };
    let (spec, spans) = to_spec(&raw).map_err(|(span, message)| err(&span, message))?;
    match validate::lab(&spec) {
        Ok(_) => Ok(spec),
        Err(e) => Err(err(&spans.of(e.at), e.message)),
    }
}

/// The file as the coordinator's LabSpec, with defaults filled in: role
/// "node", one vCPU, the image of `[lab]`. Sizes are parsed here.
fn to_spec(raw: &LabFile) -> Result<(v1::LabSpec, Spans), (Range<usize>, String)> {
    let mut spans = Spans {
        lab_name: raw.lab.name.span(),
        networks: vec![],
        nodes: vec![],
        ssh_keys: raw.lab.ssh_keys.iter().map(Spanned::span).collect(),
    };
    let mut networks = Vec::with_capacity(raw.networks.len());
    for n in &raw.networks {
        spans.networks.push(NetworkSpans {
            name: n.name.span(),
            cidr: n.cidr.span(),
            kind: n.kind.as_ref().map(Spanned::span),
        });
        let kind = match n.kind.as_ref().map(|k| (k.get_ref().as_str(), k.span())) {
            None | Some(("rewrite", _)) => v1::NetworkKind::Rewrite,
            Some(("switch", _)) => v1::NetworkKind::Switch,
            Some((other, span)) => {
                let name = n.name.get_ref();
                return Err((
                    span,
                    format!("network {name}: kind {other:?} is not \"rewrite\" or \"switch\""),
                ));
            }
        };
        networks.push(v1::LabNetwork {
            name: n.name.get_ref().clone(),
            cidr: n.cidr.get_ref().clone(),
            kind: kind.into(),
        });
    }
    let mut nodes = Vec::with_capacity(raw.nodes.len());
    for n in &raw.nodes {
        let name = n.name.get_ref();
        let size = |s: &Spanned<String>, field: &str| {
            parse_mib(s.get_ref()).ok_or_else(|| {
                let msg = format!(
                    "node {name}: {field} {:?} is not a size like \"512MiB\" or \"4GiB\" (at least 64 MiB)",
                    s.get_ref()
                );
                (s.span(), msg)
            })
        };
        let kind = match n.kind.as_ref().map(|k| (k.get_ref().as_str(), k.span())) {
            None | Some(("vm", _)) => v1::NodeKind::Vm,
            Some(("container", _)) => v1::NodeKind::Container,
            Some((other, span)) => {
                return Err((
                    span,
                    format!("node {name}: kind {other:?} is not \"vm\" or \"container\""),
                ))
            }
        };
        let span_of = |f: &Option<Spanned<String>>| f.as_ref().map_or(0..0, Spanned::span);
        let image = n.image.as_ref().or(raw.lab.image.as_ref());
        spans.nodes.push(NodeSpans {
            name: n.name.span(),
            fields: vec![
                ("role", span_of(&n.role)),
                ("vcpus", n.vcpus.span()),
                ("memory", n.memory.span()),
                ("image", span_of(&n.image)),
                ("host", span_of(&n.host)),
                ("kind", span_of(&n.kind)),
            ],
            disks: n.disks.iter().map(Spanned::span).collect(),
            interfaces: n
                .interfaces
                .iter()
                .map(|i| {
                    (
                        i.get_ref().network.span(),
                        i.get_ref().ip.as_ref().map(Spanned::span),
                    )
                })
                .collect(),
        });
        nodes.push(v1::NodeSpec {
            name: name.clone(),
            role: n
                .role
                .as_ref()
                .map_or_else(|| "node".to_string(), |r| r.get_ref().clone()),
            vcpus: *n.vcpus.get_ref(),
            memory_mib: size(&n.memory, "memory")?,
            image: image.map(|i| i.get_ref().clone()).unwrap_or_default(),
            disks_mib: n
                .disks
                .iter()
                .map(|d| size(d, "disk"))
                .collect::<Result<_, _>>()?,
            host: n.host.as_ref().map(|h| h.get_ref().clone()).unwrap_or_default(),
            interfaces: n
                .interfaces
                .iter()
                .map(|i| v1::InterfaceSpec {
                    network: i.get_ref().network.get_ref().clone(),
                    ip: i
                        .get_ref()
                        .ip
                        .as_ref()
                        .map(|ip| ip.get_ref().clone())
                        .unwrap_or_default(),
                })
                .collect(),
            kind: kind.into(),
        });
    }
    let spec = v1::LabSpec {
        name: raw.lab.name.get_ref().clone(),
        networks,
        nodes,
        ssh_keys: raw
            .lab
            .ssh_keys
            .iter()
            .map(|k| k.get_ref().trim().to_string())
            .collect(),
    };
    Ok((spec, spans))
}
