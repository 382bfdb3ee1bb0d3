//! The node hub's sends and the lease renewals when one host stops reading
//! its stream: everything for that host fails in time, nothing for the
//! others waits on it.

use std::sync::Arc;
use std::time::Duration;

use dclab_proto::v1::{self, operation::Action};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::hub::NodeHub;
use super::lease::Renewals;
use super::ops;

fn renew_op() -> v1::Operation {
    ops::on_host(Action::Renew(v1::RenewLeases {
        ids: vec!["l".into()],
        ttl_ms: 3000,
    }))
}

/// An agent that answers every operation of `host` at once and counts
/// the renewals it got.
fn answering_agent(hub: Arc<NodeHub>, host: &'static str) -> Arc<std::sync::atomic::AtomicU32> {
    let (tx, mut rx) = mpsc::channel::<v1::Operation>(4);
    hub.connect(host, tx);
    let renewed = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let count = renewed.clone();
    tokio::spawn(async move {
        while let Some(op) = rx.recv().await {
            if matches!(op.action, Some(Action::Renew(_))) {
                count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            let result = v1::OperationResult {
                host_id: host.into(),
                id: op.id,
                ok: true,
                ..Default::default()
            };
            hub.complete(host, result);
        }
    });
    renewed
}

/// A host whose stream is never read: its channel fills and stays full.
fn stuck_host(hub: &NodeHub, host: &str) -> mpsc::Receiver<v1::Operation> {
    let (tx, rx) = mpsc::channel(1);
    hub.connect(host, tx.clone());
    tx.try_send(renew_op()).expect("room for one");
    rx
}

#[tokio::test]
async fn an_operation_to_a_host_that_stopped_reading_fails_within_its_timeout() {
    let hub = NodeHub::default();
    let _held = stuck_host(&hub, "h2");
    let started = Instant::now();
    let sent = hub.run("h2", renew_op(), Duration::from_millis(300));
    let err = tokio::time::timeout(Duration::from_secs(5), sent)
        .await
        .expect("the call ends by itself")
        .expect_err("no agent reads h2's stream");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "waited {:?}",
        started.elapsed()
    );
    assert!(err.to_string().contains("not taking operations"), "{err}");
}

#[tokio::test]
async fn a_second_stream_of_a_host_replaces_the_first_cleanly() {
    let hub = Arc::new(NodeHub::default());
    let (old_tx, mut old_rx) = mpsc::channel(4);
    let (_, old_replaced) = hub.connect("h1", old_tx);
    let waiting = {
        let hub = hub.clone();
        tokio::spawn(async move { hub.run("h1", renew_op(), Duration::from_secs(60)).await })
    };
    old_rx
        .recv()
        .await
        .expect("the operation went down the first stream");
    let (new_tx, mut new_rx) = mpsc::channel(4);
    hub.connect("h1", new_tx);
    assert!(old_replaced.is_cancelled(), "the first stream is told to end");
    let started = Instant::now();
    let err = waiting.await.unwrap().expect_err("its stream was replaced");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "waited {:?}",
        started.elapsed()
    );
    assert!(
        err.to_string().contains("disconnected during the operation"),
        "{err}"
    );
    // New operations go down the new stream, and their answers arrive.
    let hub2 = hub.clone();
    let answer = tokio::spawn(async move {
        let op = new_rx.recv().await.unwrap();
        let result = v1::OperationResult {
            host_id: "h1".into(),
            id: op.id,
            ok: true,
            ..Default::default()
        };
        hub2.complete("h1", result);
    });
    let result = hub.run("h1", renew_op(), Duration::from_secs(5)).await.unwrap();
    assert!(result.ok);
    answer.await.unwrap();
}

#[tokio::test]
async fn a_stuck_host_does_not_delay_the_renewals_of_the_others() {
    let hub = Arc::new(NodeHub::default());
    let _held = stuck_host(&hub, "h2");
    let renewed = answering_agent(hub.clone(), "h1");
    // TTL 600 ms: a renewal every 200 ms; a stuck host's wait is 200 ms.
    let renewals = Renewals::start(hub.clone(), Duration::from_millis(600));
    renewals.add("h1", "l1");
    renewals.add("h2", "l2");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let count = renewed.load(std::sync::atomic::Ordering::Relaxed);
    // Ten rounds fit; with h2 holding up every round only five would.
    assert!(count >= 8, "h1 was renewed {count} times in 2.1 s");
}
