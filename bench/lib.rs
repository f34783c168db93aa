//! Shared code for the benchmarks in bench/ (and the root package's library
//! target, which the end-to-end tests in tests/ belong to).
