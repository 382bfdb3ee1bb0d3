//! Authorization from the peer's certificate, never from what the request
//! says: operators change topology; an agent speaks only for the host its
//! certificate names. Every refusal is logged with the peer's identity.

use dclab_runtime::identity::{PeerAuth, PeerInfo, Role};
use tonic::{Request, Status};
use tracing::warn;

fn peer<T>(req: &Request<T>) -> PeerInfo {
    req.extensions().get::<PeerInfo>().cloned().unwrap_or(PeerInfo {
        addr: req.remote_addr(),
        auth: PeerAuth::Anonymous,
    })
}

fn refuse(peer: &PeerInfo, call: &str, status: Status) -> Status {
    let status = Status::new(
        status.code(),
        dclab_proto::error::clip(status.message().to_string()),
    );
    warn!(peer = %peer, call, reason = %status.message(), code = ?status.code(), "request refused");
    status
}

/// The caller's role and name, or Unauthenticated.
fn identify(peer: &PeerInfo, call: &str) -> Result<Option<(Role, String)>, Status> {
    match &peer.auth {
        PeerAuth::Insecure => Ok(None),
        PeerAuth::Identified(id) => Ok(Some((id.role, id.name.clone()))),
        PeerAuth::Anonymous => Err(refuse(
            peer,
            call,
            Status::unauthenticated(
                "no client certificate; dclab needs one issued by the deployment's CA (ctl certs init)",
            ),
        )),
        PeerAuth::Unrecognized(why) => Err(refuse(peer, call, Status::unauthenticated(why.clone()))),
    }
}

fn article(role: Role) -> &'static str {
    match role {
        Role::Agent => "an agent",
        Role::Operator => "an operator",
        Role::Coordinator => "a coordinator",
    }
}

/// Interceptor for the Topology service: operators only.
#[allow(clippy::result_large_err)]
pub fn operators_only(req: Request<()>) -> Result<Request<()>, Status> {
    let peer = peer(&req);
    match identify(&peer, "Topology")? {
        None | Some((Role::Operator, _)) => Ok(req),
        Some((role, name)) => Err(refuse(
            &peer,
            "Topology",
            Status::permission_denied(format!(
                "{name} holds {} certificate; only operator certificates may read or change topology",
                article(role)
            )),
        )),
    }
}

/// Any agent, before the request says which host it acts for (a
/// TunnelBack stream, whose first message names its tunnel): nobody else
/// holds a stream open on this service.
#[allow(clippy::result_large_err)]
pub fn any_agent<T>(req: &Request<T>, call: &str) -> Result<(), Status> {
    let peer = peer(req);
    match identify(&peer, call)? {
        None | Some((Role::Agent, _)) => Ok(()),
        Some((role, name)) => Err(refuse(
            &peer,
            call,
            Status::permission_denied(format!(
                "{name} holds {} certificate; {call} is for agents only",
                article(role)
            )),
        )),
    }
}

/// An agent may act only for the host in its certificate.
#[allow(clippy::result_large_err)]
pub fn agent_for<T>(req: &Request<T>, call: &str, host_id: &str) -> Result<(), Status> {
    let peer = peer(req);
    match identify(&peer, call)? {
        None => Ok(()),
        Some((Role::Agent, name)) if name == host_id => Ok(()),
        Some((Role::Agent, name)) => Err(refuse(
            &peer,
            call,
            Status::permission_denied(format!(
                "the agent certificate of host {name} cannot act for host {host_id:?}"
            )),
        )),
        Some((role, name)) => Err(refuse(
            &peer,
            call,
            Status::permission_denied(format!(
                "{name} holds {} certificate; {call} is for agents only",
                article(role)
            )),
        )),
    }
}
