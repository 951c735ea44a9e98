//! Every GraphQL document orch sends to Linear, by operation name. The
//! contract test (`tests/linear.rs`) checks each against the excerpt of
//! Linear's published schema in `tests/fixtures/linear/`, and the fake
//! answers by operation name: a field orch starts reading must be added
//! here, where both see it.

/// The key's own user: doctor's check that the key works.
pub const VIEWER: &str = "query OrchViewer { viewer { id name } }";

/// A team by its key, with its workflow states (a team has a few dozen at
/// most, so one page of 250 is all of them).
pub const TEAM_STATES: &str = "query OrchTeamStates($key: String!) { \
teams(filter: { key: { eq: $key } }) { nodes { id key name \
states(first: 250) { nodes { id name type } } } } }";

/// One issue by its identifier (`ENG-42`) or id.
pub const ISSUE: &str = "query OrchIssue($id: String!) { issue(id: $id) { \
id identifier title description updatedAt \
state { id name } team { id key } } }";

/// One page of an issue's comments.
pub const ISSUE_COMMENTS: &str = "query OrchIssueComments($id: String!, $after: String) { \
issue(id: $id) { comments(first: 100, after: $after) { \
nodes { id body createdAt } pageInfo { hasNextPage endCursor } } } }";

/// One page of a team's issues, most recently updated first; the filter
/// (team, and `updatedAt` from the watermark on) is a variable so the
/// first cycle can leave the time out.
pub const TEAM_ISSUES: &str = "query OrchTeamIssues($filter: IssueFilter!, $after: String) { \
issues(first: 100, after: $after, orderBy: updatedAt, filter: $filter) { \
nodes { id identifier updatedAt state { id name } team { id key } } \
pageInfo { hasNextPage endCursor } } }";

/// Move an issue to a workflow state.
pub const ISSUE_UPDATE: &str = "mutation OrchIssueUpdate($id: String!, $stateId: String!) { \
issueUpdate(id: $id, input: { stateId: $stateId }) { success issue { id state { id name } } } }";

/// Comment on an issue (its id, not its identifier).
pub const COMMENT_CREATE: &str = "mutation OrchCommentCreate($issueId: String!, $body: String!) { \
commentCreate(input: { issueId: $issueId, body: $body }) { success comment { id } } }";

/// Every document, for the contract test.
pub const ALL: &[&str] = &[
    VIEWER,
    TEAM_STATES,
    ISSUE,
    ISSUE_COMMENTS,
    TEAM_ISSUES,
    ISSUE_UPDATE,
    COMMENT_CREATE,
];

/// The operation name of a document (`OrchIssue`), sent as
/// `operationName`.
pub fn operation_name(doc: &str) -> &str {
    doc.split_whitespace()
        .nth(1)
        .map_or("", |n| n.split(['(', '{']).next().unwrap_or(n))
}
