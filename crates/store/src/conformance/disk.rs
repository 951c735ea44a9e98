//! Conformance cases of disk care (`DiskStore`, issue 12).

use super::{Harness, NowTs, job, task};
use orch_core::EventKind;
use orch_core::disk::WorktreeSize;
use orch_core::{AgentKind, EventInput, Stage};
use std::time::Duration;

fn size(bytes: u64, complete: bool) -> WorktreeSize {
    WorktreeSize { bytes, complete }
}

/// A measure replaces the last one; a cleanup keeps the idle clock.
pub async fn worktree_sizes_are_recorded_and_listed(h: Harness) {
    let s = h.store.as_ref();
    let a = task(&h, "DISK-1", Stage::Development).await;
    let b = task(&h, "DISK-2", Stage::Review).await;
    assert!(s.worktree_disks().await.unwrap().is_empty());
    s.record_worktree_size(a.id, size(10, true)).await.unwrap();
    let first = h.clock.now_ts();
    h.clock.advance(Duration::from_secs(60));
    s.record_worktree_size(a.id, size(5 << 30, false))
        .await
        .unwrap();
    s.record_worktree_size(b.id, size(7, true)).await.unwrap();
    let all = s.worktree_disks().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].task, a.id);
    assert_eq!(all[0].repo, "demo");
    assert_eq!(all[0].branch, a.branch);
    assert_eq!(all[0].work_item_id, "DISK-1");
    assert_eq!(all[0].stage, Stage::Development);
    assert_eq!(all[0].size, size(5 << 30, false));
    assert!(all[0].measured_at > first);
    assert_eq!(all[0].cleaned_at, None);
    assert_eq!(all[1].size, size(7, true));

    let measured = all[0].measured_at;
    h.clock.advance(Duration::from_secs(60));
    assert!(
        s.record_worktree_cleanup(a.id, 4 << 30, size(1 << 30, true))
            .await
            .unwrap()
    );
    let c = task(&h, "DISK-3", Stage::Development).await;
    assert!(
        !s.record_worktree_cleanup(c.id, 1, size(1, true))
            .await
            .unwrap(),
        "never measured"
    );
    let after = &s.worktree_disks().await.unwrap()[0];
    assert_eq!(after.measured_at, measured, "the idle clock stays");
    assert_eq!(after.cleaned_at, Some(h.clock.now_ts()));
    assert_eq!(after.freed_bytes, 4 << 30);
    assert_eq!(after.size, size(1 << 30, true));
}

/// Idle: measured long enough ago, not cleaned since, no active job, not terminal.
pub async fn idle_worktrees_skip_active_cleaned_and_terminal_tasks(h: Harness) {
    let s = h.store.as_ref();
    let idle = task(&h, "IDLE-1", Stage::AwaitingApproval).await;
    let busy = task(&h, "IDLE-2", Stage::Development).await;
    let done = task(&h, "IDLE-3", Stage::Development).await;
    let cleaned = task(&h, "IDLE-4", Stage::NeedsAttention).await;
    for t in [&idle, &busy, &done, &cleaned] {
        s.record_worktree_size(t.id, size(100, true)).await.unwrap();
    }
    job(&h, &busy, AgentKind::Developer).await;
    s.set_stage(
        done.id,
        Stage::Failed,
        None,
        EventInput::new("test", EventKind::Failed, "gave up"),
    )
    .await
    .unwrap();
    s.record_worktree_cleanup(cleaned.id, 50, size(50, true))
        .await
        .unwrap();
    let measured = h.clock.now_ts();
    h.clock.advance(Duration::from_secs(3600));
    let ids =
        |v: Vec<crate::model::WorktreeDisk>| v.into_iter().map(|d| d.task).collect::<Vec<_>>();
    // Measured after the cut-off: not idle yet.
    let cut = orch_core::Timestamp(measured.0 - 1);
    assert!(s.idle_worktrees(cut).await.unwrap().is_empty());
    assert_eq!(
        ids(s.idle_worktrees(h.clock.now_ts()).await.unwrap()),
        [idle.id]
    );
    // A new run (a new measure) after the cleanup makes it due again.
    s.record_worktree_size(cleaned.id, size(90, true))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(1));
    assert_eq!(
        ids(s.idle_worktrees(h.clock.now_ts()).await.unwrap()),
        [idle.id, cleaned.id]
    );
}
