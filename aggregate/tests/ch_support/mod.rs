//! The ClickHouse server of this crate's integration tests.

/// `$EDGELENS_TEST_CLICKHOUSE`; fails (never skips) without it, saying how to start a server.
pub fn server_url() -> String {
    match std::env::var("EDGELENS_TEST_CLICKHOUSE") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => panic!(
            "EDGELENS_TEST_CLICKHOUSE is not set: this test needs a real ClickHouse server. Start one with \
             `deploy/dev/clickhouse.sh start` and set EDGELENS_TEST_CLICKHOUSE=http://127.0.0.1:18123, or run the tests \
             through `deploy/dev/test.sh`."
        ),
    }
}
