//! Rewriting IDs in requests, answers and events (filled in later).
