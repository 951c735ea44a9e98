//! The store conformance suite against the PostgreSQL store, each case in a
//! fresh schema dropped after it (`ORCH_TEST_PG_URL`; see `orch_store::testing`).

orch_store::conformance_suite!(orch_store::testing::pg_harness());
