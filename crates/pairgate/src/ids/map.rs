//! Each chassis' map, client ID ↔ its own ID, per table (filled in later).
