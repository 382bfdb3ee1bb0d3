//! Operations as the agents get them: a target and one typed action.

use dclab_proto::v1::{self, operation::Action, target::Target};

/// `action` on `nodes` of `lab`, carrying the current trace context.
pub fn on_nodes(lab: &str, nodes: Vec<String>, action: Action) -> v1::Operation {
    let target = Target::Nodes(v1::NodeTarget {
        lab: lab.to_string(),
        nodes,
    });
    operation(target, action)
}

/// `action` on the agent's own host.
pub fn on_host(action: Action) -> v1::Operation {
    operation(Target::Host(v1::HostTarget {}), action)
}

fn operation(target: Target, action: Action) -> v1::Operation {
    v1::Operation {
        id: 0,
        traceparent: dclab_runtime::telemetry::current_traceparent(),
        target: Some(v1::Target { target: Some(target) }),
        action: Some(action),
    }
}

/// A short name of the action, for spans and messages.
pub fn action_name(action: &Action) -> &'static str {
    match action {
        Action::Pause(_) => "pause",
        Action::Shutdown(_) => "shutdown",
        Action::Resume(_) => "resume",
        Action::Snapshot(_) => "snapshot",
        Action::Revert(_) => "revert",
        Action::DeleteSnapshot(_) => "delete",
        Action::Exec(_) => "exec",
        Action::Renew(_) => "renew",
        Action::Trace(_) => "trace",
        Action::DumpFlows(_) => "dump_flows",
        Action::Fault(_) => "fault",
        Action::Heal(_) => "heal",
        Action::OpenTunnel(_) => "open_tunnel",
    }
}

/// The failure of an operation as the error a caller gets: a target the
/// agent does not know is NotFound, a malformed one InvalidArgument, and
/// a node that cannot do it or failed FailedPrecondition.
pub fn result_error(result: &v1::OperationResult, context: &str) -> dclab_proto::ApiError {
    use dclab_proto::ApiError;
    let message = format!("{context}: {}", result.error);
    match v1::OperationError::try_from(result.error_kind) {
        Ok(v1::OperationError::NotFound) => ApiError::NotFound(message),
        Ok(v1::OperationError::Invalid) => ApiError::InvalidArgument(message),
        _ => ApiError::FailedPrecondition(message),
    }
}
