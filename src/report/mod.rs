//! The analyzer modules and their rendering (table, JSON, CSV).

pub mod packet;
