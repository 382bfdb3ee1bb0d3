//! The local multi-host setup: on one machine, a Linux bridge in a
//! "switch" namespace plays the physical network, and each simulated host
//! is a namespace with its own Open vSwitch (userspace datapath) joined to
//! the switch by a veth uplink. In dclab mode a coordinator and one agent
//! per host run as detached processes; in plain mode each host's br-int
//! just forwards with `actions=NORMAL`. Instances are namespaces plugged
//! into a host's br-int.
//!
//! Everything created is recorded in `/run/dclab/<name>/state.json` after
//! each step, so `Cluster::down` removes it even after a crash.

mod cli;
mod cluster;
mod command;
mod daemons;
mod down;
mod grpc;
mod guard;
mod instance;
pub mod libvirtd;
mod netns;
mod ovs;
mod process;
mod solo;
mod state;
mod status;
mod up;

#[cfg(test)]
mod dclab_tests;
#[cfg(test)]
mod tests;

pub use cli::{run, ClusterName, InstanceCommand, LocalCommand};
pub use cluster::{Cluster, UpOptions};
pub use command::ping_counts;
pub use daemons::LOCAL_VCPUS;
pub use guard::ClusterGuard;
pub use instance::{derived_mac, InstanceSpec, MAX_INSTANCE_NAME};
pub use ovs::BRIDGE;
pub use process::find_binary;
pub use state::{ClusterState, HostState, InstanceKind, InstanceState, Mode, ProcRecord};
pub use status::{ClusterStatus, HostStatus, ProcStatus};
pub use up::UPLINK;
