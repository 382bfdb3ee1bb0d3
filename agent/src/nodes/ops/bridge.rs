//! Operations on the host's bridge rather than its nodes: a packet traced
//! through the flows OvS really has (`ofproto/trace`), and the installed
//! flows themselves, with the port numbers that make sense of them.

use dclab_proto::v1::{self, operation_result::Detail};

use super::super::Context;
use super::Outcome;
use crate::reconcile::port_map;
use crate::render::substitute;
use crate::trace;

fn failed(what: &str, e: impl std::fmt::Display) -> Outcome {
    Outcome::failed(v1::OperationError::Failed, format!("{what}: {e}"))
}

/// Traces `flow` (ports may be symbolic) through the bridge.
pub async fn trace(ctx: &Context, flow: &str) -> Outcome {
    let ovs = ctx.taps.ovs();
    let ifaces = match ovs.interfaces().await {
        Ok(i) => i,
        Err(e) => return failed("listing OvS interfaces", e),
    };
    let ports = port_map(&ctx.uplink, &ifaces);
    let flow = match substitute(flow, &ports) {
        Ok(f) => f,
        Err(port) => {
            let message = format!("{port} is not attached to the bridge of host {}", ctx.host_id);
            return Outcome::failed(v1::OperationError::NotFound, message);
        }
    };
    let text = match ovs.trace(&flow).await {
        Ok(t) => t,
        Err(e) => return Outcome::failed(v1::OperationError::Invalid, format!("ofproto/trace {flow}: {e}")),
    };
    let datapath = match ovs.datapath_ports().await {
        Ok(d) => d,
        Err(e) => return failed("reading the datapath ports", e),
    };
    let name = |odp: u32| {
        let ofport = datapath.get(&odp).map(|p| i64::from(*p));
        if ofport.is_some() && ofport == ports.uplink {
            return "uplink".to_string();
        }
        ifaces
            .iter()
            .find(|i| Some(i.ofport) == ofport)
            .map(|i| i.iface_id.clone().unwrap_or_else(|| i.name.clone()))
            .unwrap_or_else(|| format!("datapath port {odp}"))
    };
    let actions = trace::datapath_actions(&text);
    let result = v1::FlowTrace {
        host: ctx.host_id.clone(),
        flow,
        steps: trace::steps(&text),
        outputs: trace::outputs(&actions, name),
        datapath_actions: actions,
        text,
    };
    Outcome {
        detail: Some(Detail::Trace(result)),
        ..Outcome::default()
    }
}

/// The bridge's flows and port numbers.
pub async fn dump(ctx: &Context) -> Outcome {
    let ovs = ctx.taps.ovs();
    let (flows, ifaces) = match (ovs.dump_flows().await, ovs.interfaces().await) {
        (Ok(f), Ok(i)) => (f, i),
        (Err(e), _) | (_, Err(e)) => return failed("dumping the bridge's flows", e),
    };
    let ports = ifaces
        .iter()
        .filter(|i| i.ofport > 0)
        .map(|i| v1::PortNumber {
            ofport: i.ofport as u32,
            interface: i.name.clone(),
            iface_id: i.iface_id.clone().unwrap_or_default(),
        })
        .collect();
    let uplink = port_map(&ctx.uplink, &ifaces).uplink.unwrap_or(0) as u32;
    let dump = v1::FlowDump {
        host: ctx.host_id.clone(),
        flows,
        ports,
        uplink_ofport: uplink,
    };
    Outcome {
        detail: Some(Detail::Flows(dump)),
        ..Outcome::default()
    }
}
