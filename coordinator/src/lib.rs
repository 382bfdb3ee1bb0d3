//! dclab coordinator: holds the topology and mapping keys in sled, compiles
//! every host's rewrite rules and pushes them to the agents.

pub use dclab_spec::addr;
pub mod auth;
pub mod compile;
pub mod coordinator;
pub mod experiment;
pub mod keys;
pub mod lab;
pub mod metrics;
pub mod model;
pub mod mutate;
pub mod nodes;
pub mod placement;
pub mod record;
pub mod relay;
pub mod rules;
pub mod service;
pub mod state;
pub mod store;
