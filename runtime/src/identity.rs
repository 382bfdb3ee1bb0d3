//! Who is on the other end of a connection, as its certificate says:
//! Organization = role, Common Name = host id or operator name (the
//! Kubernetes convention of O for groups and CN for users).

use std::fmt;

use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, X509Certificate};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Coordinator,
    Agent,
    Operator,
}

impl Role {
    /// The certificate Organization that carries the role.
    pub fn organization(self) -> &'static str {
        match self {
            Role::Coordinator => "dclab:coordinator",
            Role::Agent => "dclab:agent",
            Role::Operator => "dclab:operator",
        }
    }

    fn from_organization(org: &str) -> Option<Role> {
        [Role::Coordinator, Role::Agent, Role::Operator]
            .into_iter()
            .find(|r| r.organization() == org)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub role: Role,
    pub name: String,
}

impl fmt::Display for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let role = match self.role {
            Role::Coordinator => "coordinator",
            Role::Agent => "agent",
            Role::Operator => "operator",
        };
        write!(f, "{role} {}", self.name)
    }
}

/// Reads role and name from a certificate the TLS layer already verified.
pub fn identity_of(cert: &CertificateDer<'_>) -> Result<Identity, String> {
    let (_, cert) = X509Certificate::from_der(cert).map_err(|e| format!("unreadable certificate: {e}"))?;
    let subject = cert.subject();
    let name = subject
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .ok_or("certificate has no Common Name")?
        .to_string();
    let org = subject
        .iter_organization()
        .next()
        .and_then(|o| o.as_str().ok())
        .ok_or_else(|| format!("certificate of {name} has no Organization naming a dclab role"))?;
    let role = Role::from_organization(org)
        .ok_or_else(|| format!("certificate of {name} has Organization {org:?}, not a dclab role"))?;
    Ok(Identity { role, name })
}

/// What the server knows about a connection's peer.
#[derive(Debug, Clone)]
pub enum PeerAuth {
    /// The server runs with --insecure: no identities, everything allowed.
    Insecure,
    /// TLS without a client certificate.
    Anonymous,
    Identified(Identity),
    /// A valid certificate that names no dclab role.
    Unrecognized(String),
}

/// Attached to every request the server receives.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub addr: Option<std::net::SocketAddr>,
    pub auth: PeerAuth,
}

impl fmt::Display for PeerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let addr = self.addr.map(|a| a.to_string()).unwrap_or_else(|| "?".into());
        match &self.auth {
            PeerAuth::Insecure => write!(f, "{addr} (insecure)"),
            PeerAuth::Anonymous => write!(f, "{addr} (no certificate)"),
            PeerAuth::Identified(id) => write!(f, "{id} at {addr}"),
            PeerAuth::Unrecognized(why) => write!(f, "{addr} ({why})"),
        }
    }
}
