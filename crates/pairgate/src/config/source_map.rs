//! Turning byte offsets into `LINE:COL`.
//!
//! Both the TOML parser and `serde_spanned::Spanned` report positions as byte
//! ranges into the file text. People fix files by line and column, so every error
//! goes through [`SourceMap::location`] before it is shown.

use std::path::{Path, PathBuf};

use super::error::Location;

/// The text of one configuration file with the byte offset of each line start.
pub(crate) struct SourceMap<'a> {
    file: PathBuf,
    text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> SourceMap<'a> {
    pub(crate) fn new(file: &Path, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        SourceMap { file: file.to_path_buf(), text, line_starts }
    }

    /// The file name errors are reported under.
    pub(crate) fn file(&self) -> &Path {
        &self.file
    }

    /// 1-based line and column (columns count characters, not bytes) of `offset`.
    /// An offset past the end (a parser pointing "after the last byte") is clamped.
    pub(crate) fn location(&self, offset: usize) -> Location {
        let offset = offset.min(self.text.len());
        // `line_starts[0] == 0`, so the partition point is at least 1.
        let line_index = self.line_starts.partition_point(|&start| start <= offset).saturating_sub(1);
        let start = self.line_starts.get(line_index).copied().unwrap_or(0);
        let column = match self.text.get(start..offset) {
            Some(prefix) => prefix.chars().count() + 1,
            // Not on a character boundary (never seen from the parser): count bytes.
            None => offset - start + 1,
        };
        Location { file: self.file.clone(), line: line_index + 1, column }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_columns_are_one_based_and_count_characters() {
        let map = SourceMap::new(Path::new("g.toml"), "a = 1\nné = \"x\"\n");
        let at = |o| {
            let l = map.location(o);
            (l.line, l.column)
        };
        assert_eq!(at(0), (1, 1));
        assert_eq!(at(4), (1, 5));
        assert_eq!(at(6), (2, 1));
        // "né = " : 'é' is two bytes but one column.
        assert_eq!(at(6 + "né ".len()), (2, 4));
        assert_eq!(at(10_000), (3, 1));
        assert_eq!(map.location(0).to_string(), "g.toml:1:1");
    }
}
