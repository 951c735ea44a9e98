//! Collecting the analysis artefacts (`docs/work-items/<id>/*`) from a task's
//! worktree for the next prompt.
//!
//! The worktree is written by agents, so nothing in it is trusted: the work item
//! id is validated before it becomes a path, and symlinks (at any level of the
//! docs folder or as a file) are skipped, so a committed link cannot pull a file
//! from outside the worktree (a key, `/etc/…`) into a prompt that is sent to a
//! model provider. Only regular files are opened, without blocking, so a FIFO
//! left in the folder cannot hang the orchestrator.

use super::context::{Artefact, cut_to_budget, docs_dir};
use std::fs::{self, File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// At most this many files are collected (each costs a truncation note even
/// when the budget is used up).
pub const MAX_ARTEFACT_FILES: usize = 64;

/// Bytes read from a file beyond the budget to tell text from binary; a file
/// whose budget share is zero is still listed (with a note) if it is text.
const PROBE_BYTES: usize = 4096;

/// The text files directly under `<worktree>/docs/work-items/<work_item_id>/`,
/// sorted by name, with their contents cut so that together they keep at most
/// `budget_bytes` (each cut file ends with a note telling the agent to read the
/// file itself; files after the budget is used up carry only that note).
///
/// Hidden files, subfolders, symlinks, non-regular files, unreadable files and
/// binary files (not UTF-8, or holding a NUL byte) are left out. A missing
/// folder — the analyst's first run — gives an empty list, and so does an
/// invalid work item id (which [`super::PromptContext::new`] already refuses
/// with an error).
pub fn collect_artefacts(
    worktree: &Path,
    work_item_id: &str,
    budget_bytes: usize,
) -> Vec<Artefact> {
    let Ok(rel_dir) = docs_dir(work_item_id) else {
        return Vec::new();
    };
    let mut dir = worktree.to_path_buf();
    for part in rel_dir.split('/') {
        dir.push(part);
        // symlink_metadata does not follow a final link: a linked folder is refused.
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            _ => return Vec::new(),
        }
    }
    let Ok(entries) = fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| !name.starts_with('.'))
        .collect();
    names.sort();

    let mut remaining = budget_bytes;
    let mut artefacts = Vec::new();
    for name in names {
        if artefacts.len() >= MAX_ARTEFACT_FILES {
            break;
        }
        let Some((text, total_len)) = read_text(&dir.join(&name), remaining) else {
            continue;
        };
        let path = format!("{rel_dir}/{name}");
        let hint = format!("Read `{path}` for the rest.");
        let (content, kept) = cut_to_budget(&text, total_len, remaining, "file", &hint);
        remaining = remaining.saturating_sub(kept);
        artefacts.push(Artefact { path, content });
    }
    artefacts
}

/// Reads at most `limit` bytes (at least [`PROBE_BYTES`], to judge the file) of
/// a regular text file; returns the text read and the file's full size, or
/// `None` for anything that is not a readable regular UTF-8 text file.
fn read_text(path: &Path, limit: usize) -> Option<(String, usize)> {
    if !fs::symlink_metadata(path).ok()?.is_file() {
        return None;
    }
    // O_NOFOLLOW closes the gap between the check above and the open;
    // O_NONBLOCK keeps a FIFO swapped in meanwhile from blocking the open.
    let file: File = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() {
        return None;
    }
    let size = usize::try_from(meta.len()).unwrap_or(usize::MAX);
    let want = size.min(limit.max(PROBE_BYTES));
    let mut buf = Vec::with_capacity(want);
    file.take(want as u64).read_to_end(&mut buf).ok()?;
    // The file may have changed since the stat; what was read is the truth.
    let total_len = if buf.len() < want {
        buf.len()
    } else {
        size.max(buf.len())
    };
    if buf.contains(&0) {
        return None;
    }
    let text = match String::from_utf8(buf) {
        Ok(text) => text,
        // A read that stopped early may end inside a character: keep the valid part.
        Err(e) if e.utf8_error().error_len().is_none() && total_len > e.as_bytes().len() => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            bytes.truncate(valid);
            String::from_utf8(bytes).ok()?
        }
        Err(_) => return None,
    };
    Some((text, total_len))
}
