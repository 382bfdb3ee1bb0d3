//! Clients that race each other on the same names, for the suites that
//! check the coordinator stays up and serial under concurrency: each
//! records what it sent, when, and whether it was accepted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dclab_ctl::client::Operator;
use dclab_proto::v1;
use dclab_runtime::net::ClientConfig;
use tonic::Code;

/// Statuses that mean "your request was wrong for the state it met",
/// which racing clients are expected to get.
pub const CLIENT_ERRORS: [Code; 6] = [
    Code::InvalidArgument,
    Code::NotFound,
    Code::AlreadyExists,
    Code::FailedPrecondition,
    Code::ResourceExhausted,
    Code::OutOfRange,
];

/// The names the clients fight over.
#[derive(Debug, Clone)]
pub struct Mix {
    pub ports: Vec<&'static str>,
    pub labs: Vec<&'static str>,
    pub tenant: &'static str,
    pub network: &'static str,
    pub host: &'static str,
}

#[derive(Debug, Clone)]
pub enum Call {
    /// `mac` is unique per call: it tells which create made a port.
    CreatePort {
        name: String,
        mac: String,
    },
    DeletePort(String),
    /// `tag` (the node's role) is unique per call.
    ApplyLab {
        lab: String,
        tag: String,
    },
    DeleteLab(String),
    ListRuns,
    ListPorts,
    GetLab(String),
}

impl Call {
    pub fn port_name(&self) -> Option<&str> {
        match self {
            Call::CreatePort { name, .. } | Call::DeletePort(name) => Some(name),
            _ => None,
        }
    }

    pub fn lab_name(&self) -> Option<&str> {
        match self {
            Call::ApplyLab { lab, .. } | Call::DeleteLab(lab) => Some(lab),
            _ => None,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Call::CreatePort { .. } => "create port",
            Call::DeletePort(_) => "delete port",
            Call::ApplyLab { .. } => "apply lab",
            Call::DeleteLab(_) => "delete lab",
            Call::ListRuns => "list runs",
            Call::ListPorts => "list ports",
            Call::GetLab(_) => "get lab",
        }
    }

    /// Whether an accepted call of this kind writes one revision.
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Call::CreatePort { .. } | Call::DeletePort(_) | Call::ApplyLab { .. } | Call::DeleteLab(_)
        )
    }
}

/// One call as sent: `refused` is the status code's name when it was.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub call: Call,
    pub started: Instant,
    pub ended: Instant,
    pub refused: Option<String>,
    pub message: String,
}

/// What the probe saw while the clients ran.
#[derive(Debug, Default)]
pub struct Probe {
    pub calls: u32,
    pub slowest: Duration,
    pub failures: Vec<String>,
}

/// A lab of one container node pinned to `host`, whose role is `tag`. The
/// image does not exist, so nothing boots.
pub fn lab_spec(lab: &str, tag: &str, host: &str) -> v1::LabSpec {
    v1::LabSpec {
        name: lab.into(),
        networks: vec![v1::LabNetwork {
            name: "lan".into(),
            cidr: "10.9.0.0/24".into(),
            kind: v1::NetworkKind::Rewrite.into(),
        }],
        nodes: vec![v1::NodeSpec {
            name: "n0".into(),
            role: tag.into(),
            vcpus: 1,
            memory_mib: 64,
            image: "absent-image".into(),
            host: host.into(),
            interfaces: vec![v1::InterfaceSpec {
                network: "lan".into(),
                ip: String::new(),
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// A small deterministic generator (xorshift), one per client.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u32) -> u32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % u64::from(n)) as u32
    }
}

#[derive(Clone)]
pub struct Client(Operator);

impl Client {
    pub async fn connect(config: &ClientConfig) -> Client {
        let channel = config.connect().await.expect("coordinator reachable");
        Client(Operator::new(channel).max_decoding_message_size(256 << 20))
    }

    pub async fn setup(&self, tenant: &str, network: &str, cidr: &str) {
        let mut c = self.0.clone();
        c.create_tenant(v1::CreateTenantRequest { name: tenant.into() })
            .await
            .expect("tenant created");
        let req = v1::CreateNetworkRequest {
            tenant: tenant.into(),
            name: network.into(),
            cidr: cidr.into(),
            kind: v1::NetworkKind::Rewrite.into(),
        };
        c.create_network(req).await.expect("network created");
    }

    pub async fn status(&self) -> v1::CoordinatorStatus {
        self.0
            .clone()
            .status(v1::StatusRequest {})
            .await
            .expect("status")
            .into_inner()
    }

    /// Every port by name.
    pub async fn ports(&self) -> BTreeMap<String, v1::Port> {
        let ports = self.0.clone().list_ports(v1::ListPortsRequest::default()).await;
        let ports = ports.expect("ports listed").into_inner().ports;
        ports.into_iter().map(|p| (p.name.clone(), p)).collect()
    }

    /// Every lab with the role of its first node (the tag of its apply).
    pub async fn labs(&self) -> BTreeMap<String, String> {
        let labs = self.0.clone().list_labs(v1::ListLabsRequest {}).await;
        let labs = labs.expect("labs listed").into_inner().labs;
        labs.into_iter()
            .map(|l| {
                let role = l
                    .nodes
                    .first()
                    .and_then(|n| n.spec.as_ref())
                    .map(|s| s.role.clone());
                (l.name, role.unwrap_or_default())
            })
            .collect()
    }

    /// Random calls on `mix`'s names until `deadline`, one at a time.
    pub async fn run_mix(&self, id: u32, mix: &Mix, deadline: Instant) -> Vec<Accepted> {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((u64::from(id) + 1) * 0x1000_0001));
        let mut out = Vec::new();
        let mut seq = 0u32;
        while Instant::now() < deadline {
            seq += 1;
            let call = pick(&mut rng, mix, id, seq);
            out.push(self.send(call, mix).await);
        }
        out
    }

    async fn send(&self, call: Call, mix: &Mix) -> Accepted {
        let mut c = self.0.clone();
        let started = Instant::now();
        let result = match &call {
            Call::CreatePort { name, mac } => {
                let index = mix.ports.iter().position(|p| p == name).unwrap_or(0);
                let req = v1::CreatePortRequest {
                    name: name.clone(),
                    tenant: mix.tenant.into(),
                    network: mix.network.into(),
                    host: mix.host.into(),
                    mac: mac.clone(),
                    ip: format!("10.0.0.{}", 10 + index),
                    kind: v1::PortKind::Vm.into(),
                };
                c.create_port(req).await.map(drop)
            }
            Call::DeletePort(name) => c
                .delete_port(v1::DeletePortRequest { name: name.clone() })
                .await
                .map(drop),
            Call::ApplyLab { lab, tag } => {
                let spec = lab_spec(lab, tag, mix.host);
                c.apply_lab(v1::ApplyLabRequest { spec: Some(spec) })
                    .await
                    .map(drop)
            }
            Call::DeleteLab(lab) => c
                .delete_lab(v1::DeleteLabRequest { name: lab.clone() })
                .await
                .map(drop),
            Call::ListRuns => c.list_runs(v1::ListRunsRequest::default()).await.map(drop),
            Call::ListPorts => c.list_ports(v1::ListPortsRequest::default()).await.map(drop),
            Call::GetLab(lab) => c.get_lab(v1::GetLabRequest { name: lab.clone() }).await.map(drop),
        };
        let (refused, message) = match result {
            Ok(()) => (None, String::new()),
            Err(s) => (Some(format!("{:?}", s.code())), s.message().to_string()),
        };
        Accepted {
            call,
            started,
            ended: Instant::now(),
            refused,
            message,
        }
    }

    /// The client itself, for calls this module does not wrap.
    pub fn topology(&self) -> Operator {
        self.0.clone()
    }

    /// `probe` until `deadline`.
    pub async fn probe_until(self, deadline: Instant) -> Probe {
        self.probe(move || Instant::now() >= deadline).await
    }

    /// Status and ListHosts every 100 ms until `done`: each must answer.
    pub async fn probe(self, done: impl Fn() -> bool) -> Probe {
        let mut probe = Probe::default();
        while !done() {
            let started = Instant::now();
            let mut c = self.0.clone();
            let result = tokio::time::timeout(Duration::from_secs(10), async {
                c.status(v1::StatusRequest {}).await?;
                c.list_hosts(v1::ListHostsRequest {}).await
            })
            .await;
            match result {
                Ok(Ok(_)) => probe.calls += 1,
                Ok(Err(s)) => probe.failures.push(format!("{:?}: {}", s.code(), s.message())),
                Err(_) => probe.failures.push("no answer within 10 s".into()),
            }
            probe.slowest = probe.slowest.max(started.elapsed());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        probe
    }
}

fn pick(rng: &mut Rng, mix: &Mix, id: u32, seq: u32) -> Call {
    let port = mix.ports[rng.below(mix.ports.len() as u32) as usize].to_string();
    let lab = mix.labs[rng.below(mix.labs.len() as u32) as usize].to_string();
    match rng.below(100) {
        0..=34 => Call::CreatePort {
            name: port,
            mac: format!("06:cc:{:02x}:{:02x}:{:02x}:01", id, (seq >> 8) & 0xff, seq & 0xff),
        },
        35..=64 => Call::DeletePort(port),
        65..=79 => Call::ApplyLab {
            lab,
            tag: format!("r{id}x{seq}"),
        },
        80..=84 => Call::DeleteLab(lab),
        85..=91 => Call::ListRuns,
        92..=95 => Call::ListPorts,
        _ => Call::GetLab(lab),
    }
}
