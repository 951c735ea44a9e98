//! What people said on the task's pull request (issue 16 point 3): a
//! review asking for changes goes back to the developer with its comments,
//! and an approving review counts as the configured
//! `review.human_approval` says. Only reviews of the head orch would merge
//! count: a review of an earlier round was answered by the next round.

use serde::{Deserialize, Serialize};

/// A person's review verdict, mapped from the forge's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewVerdict {
    Approved,
    ChangesRequested,
    /// Comments only, no verdict.
    Commented,
}

/// One inline comment of a review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReviewComment {
    pub path: String,
    pub line: Option<u64>,
    pub body: String,
}

/// A person's review of a pull request, as the forge reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PersonReview {
    pub author: String,
    pub verdict: ReviewVerdict,
    pub body: String,
    /// The commit it reviewed.
    pub commit: String,
    pub comments: Vec<ReviewComment>,
}

impl PersonReview {
    /// The review as the developer reads it: one item for the review's own
    /// text, one per inline comment (`path:line: text`).
    pub fn as_comments(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.body.trim().is_empty() {
            out.push(format!(
                "{} (review on the pull request): {}",
                self.author,
                self.body.trim()
            ));
        }
        for c in &self.comments {
            let at = match c.line {
                Some(l) => format!("{}:{l}", c.path),
                None => c.path.clone(),
            };
            out.push(format!("{} on {at}: {}", self.author, c.body.trim()));
        }
        if out.is_empty() {
            out.push(format!(
                "{} requested changes on the pull request (no text)",
                self.author
            ));
        }
        out
    }
}

/// How a person's approving review counts (`review.human_approval`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HumanApproval {
    /// The merge waits for a person's approval of the head as well.
    Required,
    /// A person's approval of the head is enough for the review stage, even
    /// when the reviewer agent asked for changes.
    Enough,
    /// Approvals change nothing (change requests still go back).
    #[default]
    Ignored,
}

/// What people said about the head, decided.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeopleSay {
    /// The newest review asking for changes, if no later review of the same
    /// person on the head took it back.
    pub changes: Option<PersonReview>,
    /// Who approved the head (the newest approval's author).
    pub approved_by: Option<String>,
}

/// What `reviews` (oldest first) say about `head`: each person's newest
/// verdict on it counts. A review without a verdict that comments on lines
/// of the code asks for those changes as much as a change request does; one
/// with only a text is conversation and changes no verdict.
pub fn people_say(reviews: &[PersonReview], head: &str) -> PeopleSay {
    let asks = |r: &PersonReview| {
        r.verdict == ReviewVerdict::ChangesRequested
            || (r.verdict == ReviewVerdict::Commented && !r.comments.is_empty())
    };
    let mut last: Vec<&PersonReview> = Vec::new();
    for r in reviews
        .iter()
        .filter(|r| r.commit == head && (r.verdict != ReviewVerdict::Commented || asks(r)))
    {
        last.retain(|x| x.author != r.author);
        last.push(r);
    }
    PeopleSay {
        changes: last.iter().rev().find(|r| asks(r)).map(|r| (*r).clone()),
        approved_by: last
            .iter()
            .rev()
            .find(|r| r.verdict == ReviewVerdict::Approved)
            .map(|r| r.author.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn review(author: &str, verdict: ReviewVerdict, commit: &str) -> PersonReview {
        PersonReview {
            author: author.into(),
            verdict,
            body: format!("{author} says"),
            commit: commit.into(),
            comments: Vec::new(),
        }
    }

    #[test]
    fn only_reviews_of_the_head_count_and_each_persons_newest_wins() {
        let rs = vec![
            review("ann", ReviewVerdict::ChangesRequested, "old"),
            review("bob", ReviewVerdict::ChangesRequested, "head"),
            review("ann", ReviewVerdict::Approved, "head"),
            review("bob", ReviewVerdict::Commented, "head"),
        ];
        let say = people_say(&rs, "head");
        assert_eq!(say.changes.as_ref().map(|r| r.author.as_str()), Some("bob"));
        assert_eq!(say.approved_by.as_deref(), Some("ann"));
        let mut rs = rs;
        rs.push(review("bob", ReviewVerdict::Approved, "head"));
        let say = people_say(&rs, "head");
        assert_eq!(say.changes, None, "bob took his request back");
        assert_eq!(people_say(&rs, "new"), PeopleSay::default());
    }

    #[test]
    fn inline_comments_without_a_verdict_ask_for_changes_and_a_text_alone_does_not() {
        let mut commented = review("cy", ReviewVerdict::Commented, "head");
        assert_eq!(
            people_say(&[commented.clone()], "head"),
            PeopleSay::default()
        );
        commented.comments.push(ReviewComment {
            path: "src/login.rs".into(),
            line: Some(3),
            body: "this unwrap panics on an empty form".into(),
        });
        let say = people_say(&[commented.clone()], "head");
        assert_eq!(say.changes.as_ref(), Some(&commented));
        // Her approval afterwards takes the comments' request back.
        let approved = review("cy", ReviewVerdict::Approved, "head");
        let say = people_say(&[commented.clone(), approved], "head");
        assert_eq!(say.changes, None);
        assert_eq!(say.approved_by.as_deref(), Some("cy"));
        // A text-only comment after a change request keeps the request.
        let asked = review("cy", ReviewVerdict::ChangesRequested, "head");
        let chat = review("cy", ReviewVerdict::Commented, "head");
        let say = people_say(&[asked.clone(), chat], "head");
        assert_eq!(say.changes.as_ref(), Some(&asked));
    }

    #[test]
    fn a_review_reads_as_its_text_and_its_inline_comments() {
        let mut r = review("ann", ReviewVerdict::ChangesRequested, "h");
        r.comments.push(ReviewComment {
            path: "src/login.rs".into(),
            line: Some(12),
            body: "handle the empty password".into(),
        });
        assert_eq!(
            r.as_comments(),
            vec![
                "ann (review on the pull request): ann says".to_owned(),
                "ann on src/login.rs:12: handle the empty password".to_owned()
            ]
        );
    }
}
