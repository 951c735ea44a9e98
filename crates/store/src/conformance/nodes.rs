//! Conformance cases of the nodes sharing a store (`NodeStore`, issue 11).

use super::Harness;
use crate::NodeReport;
use std::time::Duration;

/// A plain heartbeat: no API, no machine said.
fn beat<'a>(name: &'a str, boot_id: &'a str, claims_stopped: bool) -> NodeReport<'a> {
    NodeReport {
        name,
        boot_id,
        claims_stopped,
        api_url: None,
        machine: None,
    }
}

/// A node's row follows its heartbeats; a restart (a new boot id) starts
/// it anew; a drain asked by a person reaches it with its next heartbeat
/// and is acknowledged by the one after; a resume clears both.
pub async fn nodes_report_themselves_and_drain_when_asked(h: Harness) {
    let s = &h.store;
    assert!(s.nodes().await.unwrap().is_empty());
    assert!(
        !s.set_node_draining("a", true).await.unwrap(),
        "no such node yet"
    );
    let a = s.node_heartbeat(beat("a", "boot-1", false)).await.unwrap();
    let started = a.started_at;
    assert_eq!((a.draining, a.claims_stopped), (false, false));
    h.clock.advance(Duration::from_secs(5));
    let a = s.node_heartbeat(beat("a", "boot-1", false)).await.unwrap();
    assert_eq!(a.started_at, started, "the same run of the engine");
    assert!(a.heartbeat_at > started);
    s.node_heartbeat(beat("b", "boot-9", false)).await.unwrap();

    assert!(s.set_node_draining("a", true).await.unwrap());
    let a = s.node_heartbeat(beat("a", "boot-1", false)).await.unwrap();
    assert!(a.draining && !a.claims_stopped, "asked, not yet stopped");
    let a = s.node_heartbeat(beat("a", "boot-1", true)).await.unwrap();
    assert!(a.draining && a.claims_stopped);
    let names: Vec<_> = s
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .map(|n| n.name)
        .collect();
    assert_eq!(names, ["a", "b"]);

    assert!(s.set_node_draining("a", false).await.unwrap());
    let listed = s.nodes().await.unwrap();
    assert!(!listed[0].draining && !listed[0].claims_stopped);

    h.clock.advance(Duration::from_secs(5));
    let restarted = s.node_heartbeat(beat("a", "boot-2", false)).await.unwrap();
    assert!(restarted.started_at > started, "a restart starts anew");
    assert_eq!(restarted.api_url, None);

    // Where the other nodes reach its API follows its heartbeats (a
    // restart may listen elsewhere).
    let a = s
        .node_heartbeat(NodeReport {
            api_url: Some("http://10.0.0.7:8080"),
            machine: Some("m-1"),
            ..beat("a", "boot-2", false)
        })
        .await
        .unwrap();
    assert_eq!(a.api_url.as_deref(), Some("http://10.0.0.7:8080"));
    assert_eq!(a.machine.as_deref(), Some("m-1"));
    s.node_heartbeat(NodeReport {
        api_url: Some("http://10.0.0.7:9090"),
        machine: Some("m-2"),
        ..beat("a", "boot-3", false)
    })
    .await
    .unwrap();
    let listed = s.nodes().await.unwrap();
    assert_eq!(listed[0].api_url.as_deref(), Some("http://10.0.0.7:9090"));
    assert_eq!(listed[0].machine.as_deref(), Some("m-2"));
    assert_eq!(listed[1].api_url, None, "b never said");
}

/// One leader at a time: the lease is kept by its holder, refused to
/// others until it expires, then taken over with a higher epoch.
pub async fn one_leader_at_a_time_and_a_takeover_after_expiry(h: Harness) {
    let s = &h.store;
    let ttl = Duration::from_secs(30);
    assert_eq!(s.leader().await.unwrap(), None, "nobody led yet");
    let first = s.lead("a", ttl).await.unwrap().expect("a free lease");
    assert_eq!(s.lead("b", ttl).await.unwrap(), None, "a holds it");
    h.clock.advance(Duration::from_secs(20));
    assert_eq!(s.lead("a", ttl).await.unwrap(), Some(first), "a renews");
    h.clock.advance(Duration::from_secs(20));
    assert_eq!(s.lead("b", ttl).await.unwrap(), None, "renewed: still a's");
    h.clock.advance(Duration::from_secs(11));
    let taken = s.lead("b", ttl).await.unwrap().expect("a's lease expired");
    assert!(taken > first, "a new holder raises the epoch");
    let l = s.leader().await.unwrap().unwrap();
    assert_eq!((l.node.as_str(), l.epoch), ("b", taken));
    assert_eq!(s.lead("a", ttl).await.unwrap(), None, "a lost it");
    // A leader that shuts down resigns: the next asker leads at once.
    assert!(!s.resign("a").await.unwrap(), "a does not lead");
    assert!(s.resign("b").await.unwrap());
    let after = s.lead("a", ttl).await.unwrap().expect("b resigned");
    assert!(after > taken);

    // Nodes asking at once: exactly one leads.
    h.clock.advance(Duration::from_secs(31));
    let asks = (0..8).map(|i| {
        let s = s.clone();
        tokio::spawn(async move { s.lead(&format!("n{i}"), ttl).await.unwrap() })
    });
    let mut leaders = 0;
    for a in asks {
        leaders += usize::from(a.await.unwrap().is_some());
    }
    assert_eq!(leaders, 1);
}

/// A task's step lock is given when nobody holds it, and again after its
/// release (contention between nodes: `pg_specific.rs`).
pub async fn a_tasks_step_lock_is_taken_and_given_back(h: Harness) {
    let s = &h.store;
    let task = orch_core::TaskId(7);
    let lock = s
        .try_lock_task(task)
        .await
        .unwrap()
        .expect("nobody holds it");
    lock.release().await;
    let again = s.try_lock_task(task).await.unwrap().expect("released");
    again.release().await;
}
