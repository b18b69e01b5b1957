//! The analyzer modules and their rendering (table, JSON, CSV).
