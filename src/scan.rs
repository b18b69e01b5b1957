//! `ipta --scan FILE`: every packet of a file, one line (or one JSON object) each; no database.
