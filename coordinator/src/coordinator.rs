//! The coordinator's parts, built once at start and handed out piece by
//! piece: each service and subsystem gets only the parts it uses.

use std::path::Path;
use std::sync::Arc;

use crate::experiment::{Experiments, RunStore, Runs};
use crate::keys::KeyRange;
use crate::lab::Labs;
use crate::nodes::hub::NodeHub;
use crate::relay::{ExecStreams, Tunnels};
use crate::rules::{CompileStats, RuleHub};
use crate::state::State;
use crate::store::StoreError;

#[derive(Clone)]
pub struct Coordinator {
    /// Desired state: topology, keys, revision; a write publishes to
    /// `rules` and `nodes`.
    pub store: Arc<State>,
    /// Every host's rewrite rules, as agents watch them.
    pub rules: Arc<RuleHub>,
    /// Lab nodes per host, operations and what agents report.
    pub nodes: Arc<NodeHub>,
    /// Experiment runs: those under way and the records of all.
    pub runs: Arc<Runs>,
    /// Tunnels to lab nodes waiting for their agent's end.
    pub tunnels: Arc<Tunnels>,
    /// Streamed execs waiting for (or receiving) their agent's output.
    pub exec_streams: Arc<ExecStreams>,
    /// The compile of every host at start, from scratch.
    pub startup_compile: CompileStats,
}

impl Coordinator {
    /// Opens the store in `dir`, publishes it to fresh hubs and closes the
    /// runs a previous coordinator left under way.
    pub fn open(dir: &Path, keys: KeyRange) -> Result<Coordinator, StoreError> {
        let rules = Arc::new(RuleHub::default());
        let nodes = Arc::new(NodeHub::default());
        let store = Arc::new(State::open(dir, keys, rules.clone(), nodes.clone())?);
        let startup_compile = rules.last_compile();
        let runs = Arc::new(Runs::new(RunStore::new(store.runs_tree()?)));
        runs.close_interrupted();
        Ok(Coordinator {
            store,
            rules,
            nodes,
            runs,
            tunnels: Default::default(),
            exec_streams: Default::default(),
            startup_compile,
        })
    }

    /// What the lab calls need: the store, the node hub, the rule hub
    /// (whether a lab's ports are applied).
    pub fn labs(&self) -> Labs {
        Labs {
            store: self.store.clone(),
            nodes: self.nodes.clone(),
            rules: self.rules.clone(),
        }
    }

    /// What experiment runs need: the store, the node hub and the runs.
    pub fn experiments(&self) -> Experiments {
        Experiments {
            store: self.store.clone(),
            nodes: self.nodes.clone(),
            runs: self.runs.clone(),
        }
    }
}
