//! The merge lease as a proof (R-6, D7): one task per repo merges and
//! deploys at a time. The store's acquisition is the only source of a
//! [`MergeLeaseProof`], and the irreversible steps (the merge, the finish of
//! an interrupted merge, the deploy's start and finish, `Forge::merge`) take
//! one, so none of them can be reached without asking the store first.

use super::{Pipeline, PipelineError, PipelineResult};
use orch_core::EventKind;
use orch_core::Task;
use orch_store::{LeaseAcquire, MergeLeaseProof};

impl Pipeline {
    /// `Effect::AcquireLease`: take the repo's merge lease, or wait for it.
    pub(crate) async fn acquire_lease(&self, task: &Task) -> PipelineResult<String> {
        match self.hold_lease(task).await? {
            Ok(lease) => {
                self.store
                    .append_event(
                        task.id,
                        self.event(
                            EventKind::LeaseAcquired,
                            format!(
                                "merge lease of {} taken (epoch {})",
                                task.repo,
                                lease.epoch()
                            ),
                        ),
                    )
                    .await?;
                Ok("merge lease taken".into())
            }
            Err(waiting) => Ok(waiting),
        }
    }

    /// The proof that `task` holds its repo's merge lease: taken if it is
    /// free (the core asks for a lease step only when it is the task's
    /// turn), confirmed if the task holds it already (the same epoch), or
    /// `Err` saying who holds it: then the step waits and nothing merges.
    pub(crate) async fn hold_lease(
        &self,
        task: &Task,
    ) -> PipelineResult<Result<MergeLeaseProof, String>> {
        Ok(
            match self
                .store
                .acquire_merge_lease(&task.repo, task.id, &task.branch)
                .await?
            {
                LeaseAcquire::Acquired { proof } => Ok(proof),
                LeaseAcquire::HeldBy { task: holder, .. } => Err(format!(
                    "waiting for the merge lease (held by task {holder})"
                )),
            },
        )
    }
}

/// A step about `task` refuses a proof of another task's or repo's lease:
/// holding one repo's lease never lets another repo's branch merge.
pub(crate) fn check_lease(lease: &MergeLeaseProof, task: &Task) -> PipelineResult<()> {
    if lease.covers(&task.repo, task.id) {
        Ok(())
    } else {
        Err(PipelineError::Invalid(format!(
            "task {} of repo {} was handed the merge lease of task {} of repo {}; it merges only with its own",
            task.id,
            task.repo,
            lease.task(),
            lease.repo()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orch_core::{NewTask, Stage};

    #[tokio::test]
    async fn a_step_refuses_the_lease_of_another_repo_or_task() {
        let dir = tempfile::tempdir().unwrap();
        let store = orch_store::testing::sqlite_in(dir.path()).await;
        let new = |repo: &str| {
            let mut t = NewTask::new(repo, "x");
            t.stage = Stage::Merge;
            t
        };
        let a = store.create_task(new("demo"), "test").await.unwrap();
        let b = store.create_task(new("other"), "test").await.unwrap();
        let c = store.create_task(new("demo"), "test").await.unwrap();
        let LeaseAcquire::Acquired { proof } = store
            .acquire_merge_lease("demo", a.id, &a.branch)
            .await
            .unwrap()
        else {
            panic!("the lease of demo is free")
        };
        assert_eq!((proof.repo(), proof.task()), ("demo", a.id));
        assert!(check_lease(&proof, &a).is_ok());
        for other in [&b, &c] {
            let e = check_lease(&proof, other).unwrap_err();
            assert!(matches!(e, PipelineError::Invalid(_)), "{e:?}");
        }
    }
}
