//! Records: the unit of persistence. Every mutation is a list of record
//! writes, applied to sled in one batch and to memory by the same code.

use serde::{Deserialize, Serialize};
use std::net::Ipv4Addr;

use crate::model::lab::{Lab, Snapshot};
use crate::model::{Host, NetId, Network, Port, Tenant, Topology};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Host(Host),
    Tenant(Tenant),
    Network(Network),
    Port(Port),
    BroadcastKey { host: String, net: NetId, key: Ipv4Addr },
    Lab(Lab),
    Snapshot(Snapshot),
}

/// Identifies a record in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Host(String),
    Tenant(String),
    Network(NetId),
    Port(String),
    BroadcastKey(String, NetId),
    Lab(String),
    /// (lab, snapshot name)
    Snapshot(String, String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Put(Record),
    Delete(RecordKey),
}

impl Record {
    pub fn key(&self) -> RecordKey {
        match self {
            Record::Host(h) => RecordKey::Host(h.id.clone()),
            Record::Tenant(t) => RecordKey::Tenant(t.name.clone()),
            Record::Network(n) => RecordKey::Network(n.id),
            Record::Port(p) => RecordKey::Port(p.name.clone()),
            Record::BroadcastKey { host, net, .. } => RecordKey::BroadcastKey(host.clone(), *net),
            Record::Lab(l) => RecordKey::Lab(l.name.clone()),
            Record::Snapshot(s) => RecordKey::Snapshot(s.lab.clone(), s.name.clone()),
        }
    }
}

impl RecordKey {
    /// The sled key. Prefixes keep kinds apart; names never contain '/'.
    pub fn encode(&self) -> String {
        match self {
            RecordKey::Host(id) => format!("host/{id}"),
            RecordKey::Tenant(name) => format!("tenant/{name}"),
            RecordKey::Network(id) => format!("net/{id:010}"),
            RecordKey::Port(name) => format!("port/{name}"),
            RecordKey::BroadcastKey(host, net) => format!("bkey/{host}/{net:010}"),
            RecordKey::Lab(name) => format!("lab/{name}"),
            RecordKey::Snapshot(lab, name) => format!("snap/{lab}/{name}"),
        }
    }
}

impl Topology {
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Put(record) => self.put(record.clone()),
            Op::Delete(key) => self.delete(key),
        }
    }

    fn put(&mut self, record: Record) {
        match record {
            Record::Host(h) => {
                self.hosts.insert(h.id.clone(), h);
            }
            Record::Tenant(t) => {
                self.tenants.insert(t.name.clone(), t);
            }
            Record::Network(n) => self.insert_network(n),
            Record::Port(p) => {
                self.remove_port(&p.name);
                self.insert_port(p);
            }
            Record::BroadcastKey { host, net, key } => {
                self.bkeys.insert((host, net), key);
            }
            Record::Lab(l) => {
                self.labs.insert(l.name.clone(), l);
            }
            Record::Snapshot(s) => {
                self.snapshots.insert((s.lab.clone(), s.name.clone()), s);
            }
        }
    }

    fn delete(&mut self, key: &RecordKey) {
        match key {
            RecordKey::Host(id) => {
                self.hosts.remove(id);
            }
            RecordKey::Tenant(name) => {
                self.tenants.remove(name);
            }
            RecordKey::Network(id) => self.remove_network(*id),
            RecordKey::Port(name) => {
                self.remove_port(name);
            }
            RecordKey::BroadcastKey(host, net) => {
                self.bkeys.remove(&(host.clone(), *net));
            }
            RecordKey::Lab(name) => {
                self.labs.remove(name);
            }
            RecordKey::Snapshot(lab, name) => {
                self.snapshots.remove(&(lab.clone(), name.clone()));
            }
        }
    }
}
