//! Development helpers of ipta shared by its integration tests, benchmarks and examples, so
//! that none of them copies another's code or reaches into another's files: the workload
//! generator ([`genlog`]) and a throwaway database per test ([`testdb`]). Not published; ipta
//! itself never depends on it (it is a dev-dependency only).

pub mod genlog;
pub mod testdb;
