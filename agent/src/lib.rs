//! dclab agent: owns the host's Open vSwitch bridge, registers the host with
//! the coordinator, watches its rules and reconciles them into the bridge.

pub mod aptcache;
pub mod bridge_watch;
pub mod desired;
pub mod exec_output;
pub mod faults;
pub mod image;
pub mod joined_down;
pub mod libvirt;
pub mod metrics;
pub mod monitor;
pub mod netem;
pub mod nodes;
pub mod ovs;
pub mod reconcile;
pub mod render;
pub mod retry;
pub mod trace;
pub mod watch;
