//! Switch networks: a plain L2 segment on one host, for what the rewrite
//! pipeline must not touch (a nested dclab puts host MACs and mapping keys
//! of its own on its tunnel network). Each member's frames, whatever their
//! addresses or ethertype, go unchanged to every other member on the host:
//! a hub, not a learning switch. They never reach the uplink, and nothing
//! from the uplink reaches a member (no ingress flow names one). Tagged
//! frames are still dropped, by the base pipeline's VLAN flow (priority
//! 300, above every hub flow): dclab carries no VLANs anywhere, a nested
//! dclab sends none, and one rule for every port keeps that guarantee
//! simple to state and to verify.

use smallvec::smallvec;

use super::flow::{Action as A, Actions, Flow, Match as M, PortRef};
use super::netview::NetView;
use super::*;
use crate::model::Port;

/// Below the VLAN drop (300); the uplink's classify flow (200) matches
/// another in_port, so the two never compete.
pub const HUB_PRIORITY: u16 = 100;

/// The members of the switch network `view` on `host`.
pub fn local_members<'a>(view: &NetView<'a>, host: &str) -> Vec<&'a Port> {
    view.members
        .iter()
        .filter(|m| view.hosts[m.host].id == host)
        .map(|m| m.port)
        .collect()
}

/// One classify flow per local member: out to every other member, or
/// dropped while it is alone. Outputs in name order.
pub fn hub_part(view: &NetView, host: &str) -> Vec<Flow> {
    let members = local_members(view, host);
    let mut flows: Vec<Flow> = members
        .iter()
        .map(|p| {
            let others = members
                .iter()
                .filter(|q| q.name != p.name)
                .map(|q| q.name.as_str());
            flood(&p.name, others, HUB_PRIORITY)
        })
        .collect();
    flows.sort();
    flows
}

/// A classify flow sending what `from` sends to each of `to` unchanged.
pub fn flood<'a>(from: &str, to: impl Iterator<Item = &'a str>, priority: u16) -> Flow {
    let mut outputs: Actions = to.map(|q| A::Output(PortRef::port(q))).collect();
    if outputs.is_empty() {
        outputs.push(A::Drop);
    }
    Flow::new(
        T_CLASSIFY,
        priority,
        smallvec![M::InPort(PortRef::port(from))],
        outputs,
    )
}
