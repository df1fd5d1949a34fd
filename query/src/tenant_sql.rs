//! Tenant row filtering for SQL: a statement run for a tenant is parsed and rewritten so that every
//! table it reads is the tenant's part of a contract table, then sent to the backend as the
//! rewritten text. The same rewrite serves user SQL (`POST /v1/sql`, Postgres wire) and the API's
//! own queries, on both backends. Pure: no I/O.
//!
//! The rewrite, and why a crafted query cannot escape it:
//! - Only a single `SELECT`-style query is accepted (no `SHOW`, `DESCRIBE`, `EXPLAIN`, DDL, DML).
//! - Every table reference must be either an edgelens contract table, named by one plain
//!   identifier, or a CTE of the statement. A contract table becomes a derived table
//!   `(SELECT * FROM t WHERE site IN (<tenant's sites>)) AS t` (or the alias given); a table
//!   without a `site` column is joined to the tenant's incidents (`incident_timeline`) or hidden
//!   (`dead_letters`: its raw excerpts belong to no tenant). Qualified names (`db.t`), physical
//!   tables (`t_local`, `system.*`, `information_schema.*`), table functions and anything else
//!   are refused.
//! - CTEs are renamed to `edgelens_cte_<name>`, references to them likewise, so a CTE name can
//!   never stand for a real table in another scope; a CTE named like a contract table is refused.
//! - Functions that read tables or files by name (ClickHouse `dictGet*`, `joinGet`, `file`, `url`,
//!   `remote`, the function forms of `IN`, ...) are refused anywhere in the statement, and so is
//!   `x IN (name)`: ClickHouse reads a lone name in an `IN` list as a table.
//! - The rewritten text is what runs, never the original, and it must parse back to exactly the
//!   rewritten statement (a literal the printer renders differently could otherwise end early and
//!   let the rest of it be read as SQL). Only plain literals are accepted: numbers, 'text',
//!   booleans, NULL, `$n`. On ClickHouse the text must not contain a backslash, because the
//!   printer escapes quotes by doubling and ClickHouse also honours a backslash escape.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, ObjectNamePart, Query, Statement, TableAlias, TableFactor, Value, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::{ClickHouseDialect, Dialect as ParserDialect, GenericDialect};
use datafusion::sql::sqlparser::parser::Parser;
use edgelens_schemas::tables::{ALL_TABLES, INCIDENTS, TableDef};

use crate::backend::Dialect;
use crate::error::{QueryError, Result};

/// What a tenant may see: its sites (from the `sites` registry), each for the time it had it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    pub tenant: String,
    pub sites: Vec<SitePeriod>,
    /// Host names of its sites under which the registry keeps rows (imported before the site was
    /// registered; they count as the site's), with their sites: its rows of the registry tables,
    /// not of the others.
    pub registry_hosts: Vec<(String, String)>,
}

/// A site and when it was the tenant's: `[from_us, to_us)` in unix µs, `None` = unbounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SitePeriod {
    pub site: String,
    pub from_us: Option<i64>,
    pub to_us: Option<i64>,
}

impl TenantScope {
    /// A tenant having `sites` at every time.
    pub fn with_sites(tenant: &str, sites: &[&str]) -> Self {
        let sites = sites.iter().map(|s| SitePeriod { site: (*s).to_owned(), from_us: None, to_us: None }).collect();
        TenantScope { tenant: tenant.to_owned(), sites, registry_hosts: Vec::new() }
    }
}

/// Functions that read tables, dictionaries, files or other servers by name.
const DENIED_FUNCTIONS: &[&str] = &[
    "joinget", "file", "url", "remote", "remotesecure", "cluster", "clusterallreplicas", "merge", "input", "jdbc",
    "odbc", "mysql", "postgresql", "hdfs", "s3", "s3cluster", "gcs", "azureblobstorage", "executable", "sqlite",
    "mongodb", "redis", "read_parquet", "read_csv", "read_json", "in", "notin", "globalin", "globalnotin", "nullin",
    "notnullin", "globalnullin", "globalnotnullin", "hascolumnintable",
];

const CTE_PREFIX: &str = "edgelens_cte_";

/// Whether `lower` (an unqualified name, lower case) names a table a backend has besides the
/// contract's: ClickHouse's per-shard `…_local` and cluster-wide `…_all` tables, its migrations
/// table, and the catalogues' tables.
fn is_backend_table(lower: &str) -> bool {
    lower.ends_with("_local")
        || lower.ends_with("_all")
        || lower == edgelens_schemas::clickhouse::MIGRATIONS_TABLE
        || lower.starts_with("pg_")
        || ["tables", "columns", "views", "schemata", "df_settings", "routines", "parameters"].contains(&lower)
}

fn refused(msg: impl Into<String>) -> QueryError {
    QueryError::SqlRefused(msg.into())
}

/// `sql` rewritten so that it reads only `scope`'s rows; refused when it is not a single query
/// over contract tables.
pub fn scope_sql(sql: &str, dialect: Dialect, scope: &TenantScope) -> Result<String> {
    let parser_dialect: &'static dyn ParserDialect = match dialect {
        Dialect::DataFusion => &GenericDialect {},
        Dialect::ClickHouse => &ClickHouseDialect {},
    };
    let mut statements = crate::sql_parse::statements(sql, parser_dialect).map_err(|e| match e {
        QueryError::InvalidSql(e) => QueryError::InvalidSql(format!("{e} (tenant queries must be plain SQL)")),
        other => other,
    })?;
    if statements.len() != 1 {
        return Err(refused(format!("only one statement is allowed, got {}", statements.len())));
    }
    let mut statement = statements.pop().expect("one statement");
    if !matches!(statement, Statement::Query(_)) {
        return Err(refused("tenant tokens may run queries (SELECT, WITH ... SELECT) only"));
    }
    let mut rewriter = Rewriter { dialect, parser_dialect, scope, ctes: HashMap::new(), error: None };
    let _ = statement.visit(&mut rewriter);
    if let Some(e) = rewriter.error {
        return Err(e);
    }
    let text = statement.to_string();
    if dialect == Dialect::ClickHouse && text.contains('\\') {
        return Err(refused("backslashes are not accepted in tenant queries"));
    }
    // What runs is the printed text: it must parse back to exactly the statement checked here.
    let reparsed = crate::sql_parse::statements(&text, parser_dialect).ok().and_then(|mut v| (v.len() == 1).then(|| v.remove(0)));
    if reparsed.as_ref() != Some(&statement) {
        // The printer writes a backslash inside a string as it is, which the parser then reads
        // as an escape.
        if text.contains('\\') {
            return Err(refused("backslashes are not accepted in tenant queries"));
        }
        return Err(refused("this statement cannot be confined to a tenant's rows (it does not print back to itself)"));
    }
    Ok(text)
}

struct Rewriter<'a> {
    dialect: Dialect,
    parser_dialect: &'a dyn ParserDialect,
    scope: &'a TenantScope,
    /// Lower-case CTE name → its new name.
    ctes: HashMap<String, String>,
    error: Option<QueryError>,
}

impl Rewriter<'_> {
    fn fail(&mut self, e: QueryError) -> ControlFlow<()> {
        self.error.get_or_insert(e);
        ControlFlow::Break(())
    }

    fn literal(&self, s: &str) -> String {
        self.dialect.string(s)
    }

    /// The rows of the tenant's sites, each within the time it had it: by timestamp column `time`
    /// (`Time::At`), or by a validity `[valid_from, valid_to)` overlapping that time (`Time::Valid`,
    /// the registry tables, whose rows kept under host names of its sites are the sites').
    /// `site IN (...)`, with time bounds per group of sites sharing them.
    fn owned(&self, time: Time<'_>) -> String {
        let mut groups: std::collections::BTreeMap<(Option<i64>, Option<i64>), std::collections::BTreeSet<String>> = std::collections::BTreeMap::new();
        for p in &self.scope.sites {
            let names = groups.entry((p.from_us, p.to_us)).or_default();
            names.insert(self.literal(&p.site));
            if time == Time::Valid {
                names.extend(self.scope.registry_hosts.iter().filter(|(_, site)| *site == p.site).map(|(h, _)| self.literal(h)));
            }
        }
        let terms: Vec<String> = groups
            .iter()
            .map(|((from, to), sites)| {
                let mut term = format!("site IN ({})", sites.iter().map(String::as_str).collect::<Vec<_>>().join(", "));
                match time {
                    Time::At(col) => {
                        let t = self.dialect.epoch_us(col);
                        if let Some(from) = from {
                            term += &format!(" AND {t} >= {from}");
                        }
                        if let Some(to) = to {
                            term += &format!(" AND {t} < {to}");
                        }
                    }
                    Time::Valid => {
                        let (vf, vt) = (self.dialect.epoch_us("valid_from"), self.dialect.epoch_us("valid_to"));
                        if let Some(from) = from {
                            term += &format!(" AND (valid_to IS NULL OR {vt} > {from})");
                        }
                        if let Some(to) = to {
                            term += &format!(" AND {vf} < {to}");
                        }
                    }
                }
                term
            })
            .collect();
        match terms.len() {
            0 => "1 = 0".to_owned(),
            1 => terms.into_iter().next().expect("one term"),
            _ => terms.iter().map(|t| format!("({t})")).collect::<Vec<_>>().join(" OR "),
        }
    }

    /// The tenant's part of `table`, as a query: rows of its sites while they were its (a
    /// registry row of its sites valid at some time then; its own `sites` rows only), the
    /// timelines of those incidents, nothing of tables that belong to no site.
    fn filtered(&self, table: &TableDef) -> Result<Query> {
        let has_site = table.columns.iter().any(|c| c.name == "site");
        let filter = match (self.scope.sites.is_empty(), has_site, table.name) {
            (true, _, _) => "1 = 0".to_owned(),
            (false, true, "sites") => format!("tenant = {}", self.literal(&self.scope.tenant)),
            (false, true, _) if table.latest.is_some() => self.owned(Time::Valid),
            (false, true, _) => self.owned(Time::At(table.time_column)),
            (false, false, "incident_timeline") => {
                format!("incident_id IN (SELECT incident_id FROM incidents WHERE {})", self.owned(Time::At(INCIDENTS.time_column)))
            }
            (false, false, _) => "1 = 0".to_owned(),
        };
        let sql = format!("SELECT * FROM {} WHERE {filter}", table.name);
        let statement = Parser::parse_sql(self.parser_dialect, &sql)
            .map_err(|e| QueryError::Backend(format!("tenant filter for {}: {e}", table.name)))?
            .pop();
        match statement {
            Some(Statement::Query(q)) => Ok(*q),
            _ => Err(QueryError::Backend(format!("tenant filter for {} is not a query", table.name))),
        }
    }
}

/// How a table's rows are bounded in time to a tenant's periods of its sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Time<'a> {
    /// By the time in this column.
    At(&'a str),
    /// By the validity `[valid_from, valid_to)` (the registry tables).
    Valid,
}

/// A name (of a column, or of a table to ClickHouse), in parentheses or not.
fn is_name(e: &Expr) -> bool {
    match e {
        Expr::Identifier(_) | Expr::CompoundIdentifier(_) => true,
        Expr::Nested(inner) => is_name(inner),
        _ => false,
    }
}

fn single_ident(name: &ObjectName) -> Option<&Ident> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(id)] => Some(id),
        _ => None,
    }
}

/// A contract table named in the schema the Postgres catalog shows it in (`public.traffic_1m`,
/// as many clients write it): the plain name.
fn in_public_schema(name: &ObjectName) -> Option<&Ident> {
    match name.0.as_slice() {
        [ObjectNamePart::Identifier(schema), ObjectNamePart::Identifier(id)]
            if schema.value.eq_ignore_ascii_case("public") && ALL_TABLES.iter().any(|t| t.name.eq_ignore_ascii_case(&id.value)) =>
        {
            Some(id)
        }
        _ => None,
    }
}

impl VisitorMut for Rewriter<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = query.with.as_mut() {
            if with.recursive {
                return self.fail(refused("WITH RECURSIVE is not accepted in tenant queries"));
            }
            for cte in &mut with.cte_tables {
                let name = cte.alias.name.value.to_ascii_lowercase();
                if ALL_TABLES.iter().any(|t| t.name == name) {
                    return self.fail(refused(format!("a CTE may not be named like the table {name}")));
                }
                if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return self.fail(refused(format!("CTE name {:?} must be letters, digits and _", cte.alias.name.value)));
                }
                let new = format!("{CTE_PREFIX}{name}");
                cte.alias.name = Ident::new(new.clone());
                self.ctes.insert(name, new);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        if let Expr::Value(v) = expr
            && !matches!(
                v.value,
                Value::Number(..) | Value::SingleQuotedString(_) | Value::Boolean(_) | Value::Null | Value::Placeholder(_)
            )
        {
            return self.fail(refused(format!(
                "the literal {} is not accepted in tenant queries: use numbers and 'single-quoted' text",
                v.value
            )));
        }
        if let Expr::InList { list, .. } = expr
            && let [only] = list.as_slice()
            && is_name(only)
        {
            return self.fail(refused(format!(
                "IN ({only}) is not accepted in tenant queries: ClickHouse reads a lone name there as a table (write = {only} to compare with a column)"
            )));
        }
        if let Expr::Function(f) = expr {
            let name = f.name.0.last().and_then(|p| p.as_ident()).map(|i| i.value.to_ascii_lowercase()).unwrap_or_default();
            if f.name.0.len() > 1 || name.starts_with("dict") || DENIED_FUNCTIONS.contains(&name.as_str()) {
                return self.fail(refused(format!("function {} is not accepted in tenant queries", f.name)));
            }
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        match factor {
            TableFactor::Table { name, alias, args, .. } => {
                if args.is_some() {
                    return self.fail(refused(format!("table function {name} is not accepted in tenant queries")));
                }
                let (ident, schema) = match (single_ident(name), in_public_schema(name)) {
                    (Some(ident), _) => (ident, false),
                    (None, Some(ident)) => (ident, true),
                    (None, None) => {
                        return self.fail(refused(format!(
                            "{name}: tenant queries read the edgelens tables by their plain names (or as public.<table>) only"
                        )));
                    }
                };
                let lower = ident.value.to_ascii_lowercase();
                if let Some(new) = self.ctes.get(&lower).filter(|_| !schema) {
                    let original = ident.clone();
                    *name = ObjectName(vec![ObjectNamePart::Identifier(Ident::new(new.clone()))]);
                    if alias.is_none() {
                        *alias = Some(TableAlias { explicit: true, name: original, columns: Vec::new(), at: None });
                    }
                    return ControlFlow::Continue(());
                }
                let Some(table) = ALL_TABLES.iter().copied().find(|t| t.name == lower) else {
                    let tables = ALL_TABLES.iter().map(|t| t.name).collect::<Vec<_>>().join(", ");
                    // A table the backend has is refused; a name no backend has (a typo) is an
                    // unknown table, as it is for an admin.
                    if is_backend_table(&lower) {
                        return self.fail(refused(format!("table {name} is not readable with a tenant token; the edgelens tables are {tables}")));
                    }
                    return self.fail(QueryError::InvalidSql(format!("table {name} does not exist; the edgelens tables are {tables}")));
                };
                let subquery = match self.filtered(table) {
                    Ok(q) => q,
                    Err(e) => return self.fail(e),
                };
                let alias = alias.take().unwrap_or_else(|| TableAlias {
                    explicit: true,
                    name: Ident::new(table.name),
                    columns: Vec::new(),
                    at: None,
                });
                *factor = TableFactor::Derived { lateral: false, subquery: Box::new(subquery), alias: Some(alias), sample: None };
                ControlFlow::Continue(())
            }
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } | TableFactor::UNNEST { .. } => {
                ControlFlow::Continue(())
            }
            other => {
                let text = other.to_string();
                let head: String = text.chars().take(40).collect();
                self.fail(refused(format!("{head}: this kind of FROM item is not accepted in tenant queries")))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> TenantScope {
        TenantScope::with_sites("acme", &["a.example", "b'x.example"])
    }

    fn ok(sql: &str, d: Dialect) -> String {
        scope_sql(sql, d, &scope()).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    #[test]
    fn contract_tables_become_the_tenants_rows() {
        let out = ok("SELECT site, SUM(requests) FROM traffic_1m GROUP BY site", Dialect::DataFusion);
        assert_eq!(
            out,
            "SELECT site, SUM(requests) FROM (SELECT * FROM traffic_1m WHERE site IN ('a.example', 'b''x.example')) AS traffic_1m GROUP BY site"
        );
        let out = ok("SELECT t.site FROM traffic_1m t JOIN site_entities AS e ON t.site = e.site", Dialect::ClickHouse);
        assert!(out.contains("FROM (SELECT * FROM traffic_1m WHERE site IN ('a.example', 'b''x.example')) t JOIN"), "{out}");
        assert!(out.contains("(SELECT * FROM site_entities WHERE site IN"), "{out}");
        // Regression: named in its schema, as the Postgres catalog shows it (and clients write
        // it), a contract table was refused.
        for d in [Dialect::DataFusion, Dialect::ClickHouse] {
            let out = ok("SELECT count(*) FROM public.traffic_1m WHERE traffic_1m.site <> ''", d);
            assert!(out.contains("FROM (SELECT * FROM traffic_1m WHERE site IN ('a.example', 'b''x.example')) AS traffic_1m WHERE"), "{out}");
            let out = ok("SELECT * FROM PUBLIC.Traffic_1m", d);
            assert!(out.contains("(SELECT * FROM traffic_1m WHERE site IN ("), "{out}");
        }
        let out = ok("SELECT * FROM incident_timeline", Dialect::DataFusion);
        assert!(out.contains("incident_id IN (SELECT incident_id FROM incidents WHERE site IN ("), "{out}");
        let out = ok("SELECT COUNT(*) FROM dead_letters", Dialect::DataFusion);
        assert!(out.contains("WHERE 1 = 0"), "{out}");
        let none = TenantScope::with_sites("t", &[]);
        assert!(scope_sql("SELECT * FROM traffic_1m", Dialect::DataFusion, &none).unwrap().contains("WHERE 1 = 0"));
    }

    /// A site the tenant had for a time only: its rows of that time, by each table's time
    /// column; registry rows of the site valid at some time of it; the tenant's own `sites` rows.
    #[test]
    fn sites_held_for_a_time_give_the_rows_of_that_time() {
        let mut scope = TenantScope::with_sites("acme", &["a.example", "b.example"]);
        scope.sites.push(SitePeriod { site: "c.example".into(), from_us: Some(1_000_000), to_us: Some(2_000_000) });
        let run = |sql: &str, d: Dialect| scope_sql(sql, d, &scope).unwrap();
        let out = run("SELECT SUM(requests) FROM site_rates_10s", Dialect::DataFusion);
        assert!(
            out.contains("WHERE (site IN ('a.example', 'b.example')) OR (site IN ('c.example') AND CAST(ts AS BIGINT) >= 1000000 AND CAST(ts AS BIGINT) < 2000000)"),
            "{out}"
        );
        let out = run("SELECT * FROM incident_timeline", Dialect::ClickHouse);
        assert!(out.contains("(toInt64(toUInt32(start_ts)) * 1000000) < 2000000"), "{out}");
        // Registry rows valid at some time the site was the tenant's.
        let out = run("SELECT * FROM site_entities", Dialect::DataFusion);
        assert!(
            out.contains("WHERE (site IN ('a.example', 'b.example')) OR (site IN ('c.example') AND (valid_to IS NULL OR CAST(valid_to AS BIGINT) > 1000000) AND CAST(valid_from AS BIGINT) < 2000000)"),
            "{out}"
        );
        let out = run("SELECT * FROM sites", Dialect::DataFusion);
        assert!(out.contains("(SELECT * FROM sites WHERE tenant = 'acme')"), "{out}");
    }

    #[test]
    fn subqueries_and_ctes_are_rewritten_too() {
        let out = ok(
            "WITH x AS (SELECT site FROM incidents) SELECT * FROM site_rates_10s WHERE site IN (SELECT site FROM x) AND EXISTS (SELECT 1 FROM asn_1m)",
            Dialect::DataFusion,
        );
        assert!(out.starts_with("WITH edgelens_cte_x AS (SELECT site FROM (SELECT * FROM incidents WHERE site IN"), "{out}");
        assert!(out.contains("FROM edgelens_cte_x AS x"), "{out}");
        assert!(out.contains("(SELECT * FROM asn_1m WHERE site IN"), "{out}");
        assert!(out.contains("(SELECT * FROM site_rates_10s WHERE site IN"), "{out}");
    }

    #[test]
    fn escapes_are_refused() {
        for sql in [
            "SELECT * FROM traffic_1m_local",
            "SELECT * FROM system.tables",
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM default.traffic_1m",
            "SELECT * FROM datafusion.public.traffic_1m",
            "SELECT * FROM public.traffic_1m_local",
            "WITH c AS (SELECT 1) SELECT * FROM public.c",
            "SELECT * FROM _spans_local",
            "SELECT * FROM schema_migrations",
            "SELECT * FROM url('http://127.0.0.1/', CSV, 'a String')",
            "SELECT * FROM file('/etc/passwd')",
            "SELECT * FROM remote('127.0.0.1', default, traffic_1m_local)",
            "SELECT joinGet('j', 'x', 1)",
            "SELECT dictGetString('d', 'x', toUInt64(1))",
            "SELECT * FROM traffic_1m_local UNION ALL (WITH traffic_1m_local AS (SELECT 1) SELECT * FROM traffic_1m_local)",
            "WITH traffic_1m AS (SELECT * FROM traffic_1m) SELECT * FROM traffic_1m",
            "WITH RECURSIVE r AS (SELECT 1) SELECT * FROM r",
            "SELECT * FROM traffic_1m; SELECT * FROM traffic_1m_local",
            "SHOW TABLES",
            "DESCRIBE traffic_1m",
            "EXPLAIN SELECT * FROM traffic_1m_local",
            "DROP TABLE traffic_1m",
            "SELECT * FROM traffic_1m WHERE site = $$x$$",
            // ClickHouse reads a lone name in an IN list, or the function forms' second argument,
            // as a table: the whole of it, whoever's rows.
            "SELECT r FROM (SELECT 1 AS r) WHERE (toDateTime('2026-11-01 00:00:00'), 'a.example') IN (traffic_1m)",
            "SELECT 1 WHERE 'x' NOT IN (edgelens.traffic_1m_local)",
            "SELECT 1 WHERE 'x' IN ((sites))",
            "SELECT toUInt8(0) IN (system.one)",
            "SELECT globalIn(1, system.one)",
            "SELECT notIn(1, traffic_1m)",
            "SELECT in(1, traffic_1m)",
            "SELECT hasColumnInTable('edgelens', 'traffic_1m_local', 'site')",
            "SELECT 1 WHERE 'x' IN traffic_1m",
            // ClickHouse reads this as the text `x\`; printed back, `'x\'` would open a string.
            "SELECT * FROM traffic_1m WHERE site = 'x\\\\' OR 1 = 1",
        ] {
            let d = if sql.contains('\\') { Dialect::ClickHouse } else { Dialect::DataFusion };
            for dialect in [d, Dialect::ClickHouse] {
                match scope_sql(sql, dialect, &scope()) {
                    Err(e) => assert!(e.is_user_error(), "{sql}: {e}"),
                    Ok(out) => panic!("{sql} accepted on {dialect:?} as {out}"),
                }
            }
        }
    }

    /// Regression: a misspelt table was refused as not readable (SQLSTATE 42501, insufficient
    /// privilege); it is an unknown table (42P01), as for an admin. The backend's own tables
    /// stay refused.
    #[test]
    fn a_misspelt_table_is_unknown_and_a_backend_table_refused() {
        for d in [Dialect::DataFusion, Dialect::ClickHouse] {
            let e = scope_sql("SELECT * FROM trafic_1m", d, &scope()).unwrap_err();
            assert!(matches!(e, QueryError::InvalidSql(_)) && e.to_string().contains("trafic_1m does not exist"), "{e}");
            assert_eq!(crate::pgwire::handler::sql_error_code(&e.to_string()), "42P01", "{e}");
            for table in ["traffic_1m_local", "_spans_local", "traffic_1m_all", "schema_migrations", "pg_class", "tables"] {
                let e = scope_sql(&format!("SELECT * FROM {table}"), d, &scope()).unwrap_err();
                assert!(matches!(e, QueryError::SqlRefused(_)), "{table}: {e}");
            }
        }
    }

    #[test]
    fn in_lists_of_values_and_subqueries_stay_accepted() {
        for d in [Dialect::DataFusion, Dialect::ClickHouse] {
            let out = ok("SELECT * FROM traffic_1m WHERE country IN ('us') AND requests IN (1, 2) AND site IN (SELECT site FROM sites)", d);
            assert!(out.contains("country IN ('us') AND requests IN (1, 2) AND site IN (SELECT site FROM (SELECT"), "{out}");
        }
    }

    #[test]
    fn statements_that_do_not_print_back_to_themselves_are_refused() {
        // Found by the sql_guard fuzz target: to the generic parser `R'M''F'''` is a raw string,
        // which the printer renders as `R'M'F''`, a different statement.
        let e = scope_sql("SELECT sitSELECT * FeO,R'M''F'''", Dialect::DataFusion, &scope()).unwrap_err();
        assert!(e.is_user_error(), "{e}");
    }

    /// Regression: text with a backslash (bound over the Postgres wire, say) was refused on the
    /// lake with "it does not print back to itself"; it is refused naming the backslash.
    #[test]
    fn backslashes_are_refused_by_name_on_both_backends() {
        for d in [Dialect::DataFusion, Dialect::ClickHouse] {
            let sql = format!("SELECT * FROM traffic_1m WHERE site = {}", d.string("a\\'b"));
            let e = scope_sql(&sql, d, &scope()).unwrap_err();
            assert!(e.to_string().contains("backslashes are not accepted in tenant queries"), "{d:?} {sql}: {e}");
        }
    }

    #[test]
    fn quotes_in_literals_stay_inside_them() {
        // ClickHouse's `\'` is a quote inside the literal; the printed form doubles it instead.
        let out = ok("SELECT * FROM traffic_1m WHERE site = 'x\\' OR 1=1 --'", Dialect::ClickHouse);
        assert!(out.ends_with("WHERE site = 'x'' OR 1=1 --'"), "{out}");
        assert!(out.contains("(SELECT * FROM traffic_1m WHERE site IN ('a.example', 'b''x.example')) AS traffic_1m"));
    }

    #[test]
    fn a_cte_referenced_outside_its_scope_cannot_reach_a_real_table() {
        // The outer `x` is no CTE there: it becomes `edgelens_cte_x`, which names no table.
        let out = ok("SELECT * FROM (WITH x AS (SELECT 1 AS a) SELECT a FROM x) AS y, x", Dialect::DataFusion);
        assert!(out.ends_with("AS y, edgelens_cte_x AS x"), "{out}");
    }
}
