//! Token accounting for adapters: the per-run token breakdown, its mapping to the
//! core's [`Usage`], and the per-model price table used when an agent reports no cost.

use orch_core::run::Usage;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Tokens of one run, broken down the way the agents bill them.
///
/// The four counted fields are disjoint, so total input is
/// `input + cache_read + cache_write`:
/// - Claude reports them disjoint already (`inputTokens`, `cacheReadInputTokens`,
///   `cacheCreationInputTokens`, `outputTokens` in `modelUsage`).
/// - Codex reports `input_tokens` as all input with `cached_input_tokens` (and, we
///   assume, `cache_write_input_tokens`; always 0 so far) as subsets, so `input` here
///   is the remainder.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Input tokens read without the prompt cache.
    pub input: u64,
    /// Input tokens read from the prompt cache.
    pub cache_read: u64,
    /// Input tokens written to the prompt cache (Claude: cache creation).
    pub cache_write: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    /// Reasoning tokens: a subset of `output`, for display only (Codex).
    pub reasoning_output: u64,
}

impl TokenUsage {
    /// All input, cached or not.
    pub fn total_input(&self) -> u64 {
        self.input
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write)
    }

    pub fn is_zero(&self) -> bool {
        *self == TokenUsage::default()
    }

    pub fn saturating_add(self, o: TokenUsage) -> TokenUsage {
        TokenUsage {
            input: self.input.saturating_add(o.input),
            cache_read: self.cache_read.saturating_add(o.cache_read),
            cache_write: self.cache_write.saturating_add(o.cache_write),
            output: self.output.saturating_add(o.output),
            reasoning_output: self.reasoning_output.saturating_add(o.reasoning_output),
        }
    }

    pub fn saturating_sub(self, o: TokenUsage) -> TokenUsage {
        TokenUsage {
            input: self.input.saturating_sub(o.input),
            cache_read: self.cache_read.saturating_sub(o.cache_read),
            cache_write: self.cache_write.saturating_sub(o.cache_write),
            output: self.output.saturating_sub(o.output),
            reasoning_output: self.reasoning_output.saturating_sub(o.reasoning_output),
        }
    }

    /// Field-wise maximum: several stream lines may report the same API message
    /// with ever more complete usage.
    pub fn max(self, o: TokenUsage) -> TokenUsage {
        TokenUsage {
            input: self.input.max(o.input),
            cache_read: self.cache_read.max(o.cache_read),
            cache_write: self.cache_write.max(o.cache_write),
            output: self.output.max(o.output),
            reasoning_output: self.reasoning_output.max(o.reasoning_output),
        }
    }

    /// The core's view: all input (cache included) and all output, with `cost_usd`.
    pub fn to_core(&self, cost_usd: f64) -> Usage {
        Usage {
            input_tokens: self.total_input(),
            output_tokens: self.output,
            cost_usd,
            ..Usage::default()
        }
    }
}

/// Where a run's cost figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CostSource {
    /// The agent reported it (Claude `total_cost_usd`).
    Reported,
    /// Computed from the [`PriceTable`].
    PriceTable,
    /// Some tokens had no price, so the cost is a lower bound (zero when nothing
    /// was priced). Budgets should rely on tokens then.
    Unpriced,
}

/// List prices of one model, in USD per million tokens.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    pub input_per_mtok: f64,
    /// Defaults to the input price when absent, so a missing entry never
    /// under-charges a budget.
    #[serde(default)]
    pub cache_read_per_mtok: Option<f64>,
    /// Defaults to the input price when absent.
    #[serde(default)]
    pub cache_write_per_mtok: Option<f64>,
    pub output_per_mtok: f64,
}

impl ModelPrice {
    /// The cost of `tokens` at these prices.
    pub fn cost(&self, tokens: &TokenUsage) -> f64 {
        let per = |count: u64, price: f64| count as f64 * price / 1_000_000.0;
        per(tokens.input, self.input_per_mtok)
            + per(
                tokens.cache_read,
                self.cache_read_per_mtok.unwrap_or(self.input_per_mtok),
            )
            + per(
                tokens.cache_write,
                self.cache_write_per_mtok.unwrap_or(self.input_per_mtok),
            )
            + per(tokens.output, self.output_per_mtok)
    }
}

/// Prices by model id, from configuration (`[prices."gpt-5.5"] input_per_mtok = …`).
/// Empty by default: an unknown model costs zero, marked [`CostSource::Unpriced`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PriceTable {
    models: BTreeMap<String, ModelPrice>,
}

impl PriceTable {
    pub fn new() -> PriceTable {
        PriceTable::default()
    }

    /// Adds or replaces the price of `model`.
    pub fn with(mut self, model: impl Into<String>, price: ModelPrice) -> PriceTable {
        self.models.insert(model.into(), price);
        self
    }

    /// The price of `model`: an exact match, else the id without a bracketed
    /// variant suffix (Claude reports `claude-opus-4-8[1m]` for the 1M-context mode).
    pub fn get(&self, model: &str) -> Option<&ModelPrice> {
        self.models.get(model).or_else(|| {
            let base = model.split_once('[').map(|(base, _)| base)?;
            self.models.get(base)
        })
    }

    /// The cost of `tokens` for `model`, when the model is known and priced.
    pub fn cost(&self, model: Option<&str>, tokens: &TokenUsage) -> Option<f64> {
        model
            .and_then(|m| self.get(m))
            .map(|price| price.cost(tokens))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sonnet() -> ModelPrice {
        ModelPrice {
            input_per_mtok: 3.0,
            cache_read_per_mtok: Some(0.30),
            cache_write_per_mtok: Some(3.75),
            output_per_mtok: 15.0,
        }
    }

    #[test]
    fn list_prices_reproduce_claudes_reported_cost() {
        // agent_clis.md: 7650×$3/M + 251×$15/M + 5400×$3.75/M + 18000×$0.30/M = 0.052365.
        let tokens = TokenUsage {
            input: 7650,
            cache_read: 18000,
            cache_write: 5400,
            output: 251,
            reasoning_output: 0,
        };
        assert!((sonnet().cost(&tokens) - 0.052365).abs() < 1e-12);
    }

    #[test]
    fn lookup_strips_a_bracketed_variant() {
        let table = PriceTable::new().with("claude-opus-4-8", sonnet());
        assert!(table.get("claude-opus-4-8[1m]").is_some());
        assert!(table.get("claude-opus-4-9").is_none());
        assert_eq!(table.cost(None, &TokenUsage::default()), None);
    }

    #[test]
    fn missing_cache_prices_fall_back_to_the_input_price() {
        let price: ModelPrice =
            serde_json::from_str(r#"{"input_per_mtok":2.0,"output_per_mtok":8.0}"#).unwrap();
        let tokens = TokenUsage {
            cache_read: 1_000_000,
            ..TokenUsage::default()
        };
        assert!((price.cost(&tokens) - 2.0).abs() < 1e-12);
    }

    #[test]
    fn to_core_counts_all_input() {
        let t = TokenUsage {
            input: 1,
            cache_read: 2,
            cache_write: 4,
            output: 8,
            reasoning_output: 3,
        };
        let u = t.to_core(0.5);
        assert_eq!((u.input_tokens, u.output_tokens, u.cost_usd), (7, 8, 0.5));
    }
}
