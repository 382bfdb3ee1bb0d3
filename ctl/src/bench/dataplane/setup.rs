//! One benchmark cluster: three hosts with the paper's six instances,
//! removed again when the guard drops (also on error or panic).

use std::time::Duration;

use anyhow::Context;

use crate::demo::{self, paper};
use crate::local::{ClusterGuard, UpOptions};

/// Brings up `opts` and adds the paper's instances; in dclab mode first
/// the tenants and networks, and waits until every agent applied its rules.
pub fn paper_cluster(opts: &UpOptions) -> anyhow::Result<ClusterGuard> {
    let name = &opts.name;
    eprintln!(
        "{name}: bringing up {} hosts{}",
        opts.hosts,
        if opts.plain { " (plain OvS)" } else { "" }
    );
    let mut cluster = ClusterGuard::up(opts).with_context(|| {
        format!(
            "cannot bring up the local setup {name}; if one is left over, run `ctl local down --name {name}`"
        )
    })?;
    if opts.plain {
        paper::add_instances(&mut cluster, &paper::DISTINCT)?;
        return Ok(cluster);
    }
    let config = cluster.client_config()?;
    on_own_runtime(|| async { demo::create_networks(&config).await })?;
    paper::add_instances(&mut cluster, &paper::DISTINCT)?;
    on_own_runtime(|| async { demo::wait_converged(&config, Duration::from_secs(30)).await })?;
    Ok(cluster)
}

/// Runs a future on a runtime of its own, on a thread of its own, so this
/// works whether or not the caller is inside a tokio runtime.
fn on_own_runtime<F, Fut>(make: F) -> anyhow::Result<()>
where
    F: FnOnce() -> Fut + Send,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                rt.block_on(make())
            })
            .join()
            .expect("runtime thread")
    })
}
