-- The agent's final message of a run (Claude's `result`, Codex's last
-- `agent_message`, a command's output tail). The pipeline reads the reviewer's
-- verdict from it, also after a restart that lost the in-memory run report.
ALTER TABLE runs ADD COLUMN final_text TEXT;
