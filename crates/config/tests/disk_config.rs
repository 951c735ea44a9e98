//! `[limits]` and `[cleanup]` (issue 12): defaults, the file, the
//! environment, and the errors that name their key.

// Jail's closures must return `Result<(), figment::Error>`; its size is figment's choice.
#![allow(clippy::result_large_err)]

use figment::Jail;
use orch_config::Config;
use std::time::Duration;

fn problems(text: &str) -> String {
    match Config::from_toml_str(text).and_then(|c| c.validate().map(|_| c)) {
        Ok(_) => panic!("expected an error for:\n{text}"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_have_no_size_limit_and_clean_common_build_outputs_after_a_day() {
    let c = Config::from_toml_str("").unwrap();
    assert_eq!(c.limits.worktree_mb, None);
    assert_eq!(c.cleanup.cleanup_after_hours, 24);
    assert_eq!(c.cleanup.idle_after(), Some(Duration::from_secs(24 * 3600)));
    assert!(c.cleanup.build_output_globs.contains(&"target/".to_owned()));
    assert!(
        c.cleanup
            .build_output_globs
            .contains(&"node_modules/".to_owned())
    );
    let globs = c.cleanup.output_globs();
    assert_eq!(globs.len(), c.cleanup.build_output_globs.len());
    assert!(orch_core::disk::is_build_output(&globs, "crates/x/target/"));
}

#[test]
fn the_file_sets_the_limit_the_idle_time_and_the_globs() {
    let c = Config::from_toml_str(
        "[limits]\nworktree_mb = 500\n[cleanup]\ncleanup_after_hours = 0\nbuild_output_globs = [\"dist/\"]\n",
    )
    .unwrap();
    c.validate().unwrap();
    assert_eq!(c.limits.worktree_mb, Some(500));
    assert_eq!(c.cleanup.idle_after(), None);
    let globs = c.cleanup.output_globs();
    assert!(orch_core::disk::is_build_output(&globs, "dist/"));
    assert!(!orch_core::disk::is_build_output(&globs, "target/"));
}

#[test]
fn the_environment_overrides_both_sections() {
    Jail::expect_with(|jail| {
        jail.create_file("orch.toml", "[limits]\nworktree_mb = 500\n")?;
        jail.set_env("ORCH_LIMITS__WORKTREE_MB", "700");
        jail.set_env("ORCH_CLEANUP__CLEANUP_AFTER_HOURS", "6");
        let c = Config::load(None).map_err(|e| e.to_string())?;
        assert_eq!(c.limits.worktree_mb, Some(700));
        assert_eq!(c.cleanup.cleanup_after_hours, 6);
        Ok(())
    });
}

#[test]
fn bad_values_name_their_key() {
    let e = problems("[limits]\nworktree_mb = 0\n");
    assert!(e.contains("limits.worktree_mb"), "{e}");
    let e = problems("[cleanup]\nbuild_output_globs = [\"target/\", \"../up/\", \"*\"]\n");
    assert!(e.contains("cleanup.build_output_globs[1]"), "{e}");
    assert!(e.contains("cleanup.build_output_globs[2]"), "{e}");
    assert!(!e.contains("cleanup.build_output_globs[0]"), "{e}");
    let e = problems("[cleanup]\ncleanup_after_hours = 99999999\n");
    assert!(e.contains("cleanup.cleanup_after_hours"), "{e}");
    let e = problems("[cleanup]\nafter_hours = 3\n");
    assert!(e.contains("after_hours"), "{e}");
}
