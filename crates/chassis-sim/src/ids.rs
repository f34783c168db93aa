//! `X-Id-Block: <base>+<count>`: the ids a request's creates must take.
//!
//! Without it a chassis numbers rows like MySQL AUTO_INCREMENT, table by
//! table, so two chassis with different histories disagree. With it, every
//! row the request creates takes `base, base+1, …` in creation order, so two
//! chassis in the same state given the same request and block agree.

use crate::error::ApiError;
use crate::model::MAX_ID;

/// How the chassis' own auto-increment counters behave (`--auto-increment`).
/// Only ids the chassis assigns itself; a create under an `X-Id-Block` takes
/// the block's ids in either mode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AutoIncrement {
    /// Tidy: a request that fails gives its counter advances back, and
    /// counters persist across restarts (identical request streams on two
    /// chassis in the same state give identical ids).
    #[default]
    Exact,
    /// MySQL 5.7 InnoDB: an id a failed create took stays spent (a gap), and
    /// counters live in memory only, so each restart sets a table's counter
    /// to `max(id) + 1` (ids deleted at a table's end are given out again).
    Mysql57,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdBlock {
    pub base: u64,
    pub count: u64,
}

pub const HEADER: &str = "x-id-block";

impl IdBlock {
    /// Parse a header value. The whole block must be valid ids: `base ≥ 1`
    /// and `base + count ≤ 2^53`.
    pub fn parse(value: &str) -> Result<IdBlock, ApiError> {
        let bad = |detail: &str| ApiError::BadHeader {
            header: "X-Id-Block",
            detail: format!("{detail}; expected '<base>+<count>', e.g. '7000+8'"),
        };
        let (base, count) = value.trim().split_once('+').ok_or_else(|| bad("no '+'"))?;
        let base: u64 = base.trim().parse().map_err(|_| bad("base is not a positive integer"))?;
        let count: u64 = count.trim().parse().map_err(|_| bad("count is not a non-negative integer"))?;
        if base == 0 {
            return Err(bad("base must be at least 1"));
        }
        match base.checked_add(count) {
            Some(end) if end <= MAX_ID => Ok(IdBlock { base, count }),
            _ => Err(bad("the block reaches past 2^53")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!(IdBlock::parse("7000+8").ok(), Some(IdBlock { base: 7000, count: 8 }));
        assert_eq!(IdBlock::parse(" 1+0 ").ok(), Some(IdBlock { base: 1, count: 0 }));
        for bad in ["", "7000", "0+3", "-1+3", "7+-1", "a+b", "9007199254740991+2", "18446744073709551615+1"] {
            assert!(IdBlock::parse(bad).is_err(), "{bad} should be rejected");
        }
    }
}
