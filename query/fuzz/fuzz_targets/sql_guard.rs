//! Any text as user SQL: the read-only guards (DataFusion and ClickHouse) and the tenant rewrite
//! never panic; a rewritten statement is accepted by the rewrite again (it reads nothing the
//! rewrite would refuse), and on ClickHouse it carries no backslash.
#![no_main]

use edgelens_query::backend::Dialect;
use edgelens_query::tenant_sql::{TenantScope, scope_sql};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(sql) = std::str::from_utf8(data) else { return };
    let _ = edgelens_query::sql_guard::check(sql);
    let _ = edgelens_query::clickhouse::check_read_only(sql);
    let scope = TenantScope::with_sites("t", &["a.example", "b'c.example"]);
    for dialect in [Dialect::DataFusion, Dialect::ClickHouse] {
        if let Ok(out) = scope_sql(sql, dialect, &scope) {
            if dialect == Dialect::ClickHouse {
                assert!(!out.contains('\\'), "{out:?}");
            }
            let again = scope_sql(&out, dialect, &scope);
            assert!(again.is_ok(), "{sql:?} → {out:?} is refused when rewritten again: {again:?}");
        }
    }
});
