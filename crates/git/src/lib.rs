//! Git worktrees and branches (the git CLI, argv only).
