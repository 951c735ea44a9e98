//! What a task's branch holds, read from the repo's mirror:
//!
//! ```text
//! GET /api/tasks/{id}/diff        the branch against its base (text/plain)
//! GET /api/tasks/{id}/artefacts   docs/work-items/<key>/*.md, rendered to HTML
//! ```
//!
//! Worktrees share the mirror's refs, so the mirror sees the task's local
//! branch (`refs/heads/<branch>`) while it exists, else the pushed one, else
//! (a cancelled task) its newest archive (`refs/orch/archive/<key>/<n>`).
//! Every read goes through the repo store's control dir, like orch's other
//! git calls (docs/security.md).
//! Markdown comes from agents, so raw HTML in it is escaped and only
//! http(s), mailto and relative links survive.

use crate::error::{ApiError, ApiResult, PathParams};
use crate::{AppState, tasks};
use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use orch_core::Task;
use serde::Serialize;
use std::ffi::OsString;

/// A diff longer than this is cut (with a note), to keep the page light.
const MAX_DIFF: usize = 512 * 1024;
const MAX_ARTEFACTS: usize = 20;
const MAX_ARTEFACT: usize = 256 * 1024;

pub async fn diff(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<impl IntoResponse> {
    let task = tasks::find(s.store(), &id).await?;
    let repo = Repo::of(&s, &task)?;
    let text = match repo.branch_ref(&task).await {
        None => format!(
            "The branch {} no longer exists (merged and deleted, or the task was cancelled).\n",
            task.branch
        ),
        Some(head) => {
            let base = format!("refs/remotes/origin/{}", repo.base);
            let range = format!("{base}...{head}");
            let mut out = repo
                .git(&[
                    "diff",
                    "--no-color",
                    "--no-ext-diff",
                    "--no-textconv",
                    &range,
                    "--",
                ])
                .await?;
            if out.is_empty() {
                out = format!("No changes yet on {} against {}.\n", task.branch, repo.base);
            }
            cut(out, MAX_DIFF)
        }
    };
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text))
}

#[derive(Debug, Serialize)]
pub struct Artefact {
    pub path: String,
    pub html: String,
}

pub async fn artefacts(
    State(s): State<AppState>,
    PathParams(id): PathParams<String>,
) -> ApiResult<Json<Vec<Artefact>>> {
    let task = tasks::find(s.store(), &id).await?;
    let repo = Repo::of(&s, &task)?;
    // After the merge the branch is gone but the artefacts are on the base.
    let base = format!("refs/remotes/origin/{}", repo.base);
    let Some(head) = repo.branch_ref(&task).await.or(Some(base)) else {
        return Ok(Json(Vec::new()));
    };
    let dir = format!("docs/work-items/{}/", task.original_work_item_id());
    let listing = repo
        .git(&["ls-tree", "-r", "-z", "--name-only", &head, "--", &dir])
        .await
        .unwrap_or_default();
    let mut out = Vec::new();
    for path in listing
        .split('\0')
        .filter(|p| p.ends_with(".md"))
        .take(MAX_ARTEFACTS)
    {
        let text = repo.git(&["show", &format!("{head}:{path}")]).await?;
        out.push(Artefact {
            path: path.to_owned(),
            html: render_markdown(&cut(text, MAX_ARTEFACT)),
        });
    }
    Ok(Json(out))
}

struct Repo<'a> {
    s: &'a AppState,
    name: String,
    base: String,
}

impl<'a> Repo<'a> {
    fn of(s: &'a AppState, task: &Task) -> ApiResult<Repo<'a>> {
        let cfg = s.pipeline().config();
        let repo = cfg.repo(&task.repo).ok_or_else(|| {
            ApiError::not_found(format!(
                "repo {:?} is no longer in orch.toml; its branches cannot be shown",
                task.repo
            ))
        })?;
        let mirror = s
            .pipeline()
            .repos()
            .mirror_path(&task.repo)
            .map_err(git_failed)?;
        if !mirror.is_dir() {
            return Err(ApiError::not_found(format!(
                "repo {} has no mirror yet (orch serve creates it at start-up)",
                task.repo
            )));
        }
        Ok(Repo {
            s,
            name: task.repo.clone(),
            base: repo.default_branch.clone(),
        })
    }

    /// The task's work: its local branch while its worktree lives, else the
    /// pushed one, else its newest archive (a cancelled task's work).
    async fn branch_ref(&self, task: &Task) -> Option<String> {
        for r in [
            format!("refs/heads/{}", task.branch),
            format!("refs/remotes/origin/{}", task.branch),
        ] {
            let verify = format!("{r}^{{commit}}");
            if self
                .git(&["rev-parse", "--verify", "--quiet", &verify])
                .await
                .is_ok()
            {
                return Some(r);
            }
        }
        let archives = self
            .s
            .pipeline()
            .repos()
            .list_archives(&self.name, task.original_work_item_id())
            .await
            .ok()?;
        archives.last().map(|a| a.ref_name.clone())
    }

    async fn git(&self, args: &[&str]) -> ApiResult<String> {
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        let out = self
            .s
            .pipeline()
            .repos()
            .read(&self.name, &args)
            .await
            .map_err(git_failed)?;
        if out.success() {
            Ok(out.stdout)
        } else {
            Err(ApiError::new(
                axum::http::StatusCode::BAD_GATEWAY,
                format!("git failed: {}", out.stderr.trim()),
            ))
        }
    }
}

/// A git step failed: a 5xx with git's words, never a 4xx (the request
/// named an existing task; orch's side failed).
fn git_failed(e: orch_git::GitError) -> ApiError {
    ApiError::from(orch_engine::ports::PortError::from(e))
}

fn cut(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("\n… (cut: too long to show here)\n");
    }
    s
}

/// Markdown to HTML that is safe to put in the page: raw HTML is shown as
/// text, images are dropped, and links keep only harmless targets.
pub fn render_markdown(md: &str) -> String {
    use pulldown_cmark::{CowStr, Event, Options, Parser, Tag, TagEnd};
    let safe = |url: CowStr<'_>| -> CowStr<'static> {
        let u = url.trim().to_ascii_lowercase();
        let scheme = u.split_once(':').map(|(s, _)| s);
        let ok = match scheme {
            None => true,
            Some(s) => ["http", "https", "mailto"].contains(&s) || s.contains('/'),
        };
        if ok {
            CowStr::from(url.into_string())
        } else {
            CowStr::from("#")
        }
    };
    let parser = Parser::new_ext(md, Options::ENABLE_TABLES | Options::ENABLE_STRIKETHROUGH)
        .filter_map(|ev| match ev {
            Event::Html(h) | Event::InlineHtml(h) => Some(Event::Text(h)),
            Event::Start(Tag::Link {
                link_type,
                dest_url,
                title,
                id,
            }) => Some(Event::Start(Tag::Link {
                link_type,
                dest_url: safe(dest_url),
                title,
                id,
            })),
            Event::Start(Tag::Image { .. }) | Event::End(TagEnd::Image) => None,
            other => Some(other),
        });
    let mut html = String::new();
    pulldown_cmark::html::push_html(&mut html, parser);
    html
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markdown_is_rendered_and_defused() {
        let html = render_markdown(
            "# Plan\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1)) [y](https://ok.invalid/a) [z](notes.md) ![i](http://img.invalid/x.png)\n",
        );
        assert!(html.contains("<h1>Plan</h1>"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("href=\"#\""), "{html}");
        assert!(!html.contains("javascript:"), "{html}");
        assert!(html.contains("href=\"https://ok.invalid/a\""), "{html}");
        assert!(html.contains("href=\"notes.md\""), "{html}");
        assert!(!html.contains("<img"), "{html}");
    }

    #[test]
    fn cuts_on_a_char_boundary() {
        let s = cut("ééé".to_owned(), 3);
        assert!(s.starts_with('é') && s.contains("cut"));
    }
}
