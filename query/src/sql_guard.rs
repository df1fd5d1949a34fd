//! The read-only guard for user SQL (`POST /v1/sql`).
//!
//! Accepts exactly one statement, and only one that reads: a query (`SELECT`, `WITH`, `VALUES`),
//! `SHOW ...`, `DESCRIBE table`, or `EXPLAIN` of an accepted statement. Everything else — DDL
//! (`CREATE [EXTERNAL] TABLE`, `DROP`), DML (`INSERT`, `UPDATE`, `DELETE`, `COPY`), `SET`, `RESET`,
//! transactions, several statements — is refused before planning. The planned statement is checked
//! again against [`read_only_options`] as a second line of defence.
//!
//! Every user statement, on either backend and through the tenant rewrite, first passes
//! [`check_nesting`]: the SQL parser backtracks, and its time doubles with each level of some
//! nestings (`NOT (NOT (…`, `a.b[a.b[…`), so a few hundred bytes could hold a CPU for minutes.
//! It is then parsed within a budget of parser steps ([`crate::sql_parse`]), which bounds the
//! backtracking that is not a matter of nesting.

use std::collections::VecDeque;

use datafusion::execution::context::SQLOptions;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{SetExpr, Statement};
use datafusion::sql::sqlparser::dialect::Dialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{QueryError, Result};

/// Options that make DataFusion reject any plan that writes or changes the session.
pub fn read_only_options() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

/// Check a planned user statement: read-only ([`read_only_options`]). (Comparisons of time
/// spans, which DataFusion orders field by field, are made PostgreSQL's by
/// [`crate::time_text`].)
pub fn verify_plan(plan: &datafusion::logical_expr::LogicalPlan) -> Result<()> {
    read_only_options().verify_plan(plan).map_err(|e| QueryError::SqlRefused(e.strip_backtrace()))
}

/// Deepest nesting of brackets (`(`, `[`, `{`) a statement may have.
pub const MAX_NESTING: usize = 16;
/// Deepest nesting of subscripts and literals in square or curly brackets (`a[b[1]]`): the
/// parser's time multiplies by several for each of these levels, far more than for parentheses.
pub const MAX_SUBSCRIPT_NESTING: usize = 4;

/// Refuse `sql` if its brackets, as `dialect` tokenizes it (literals, quoted names and comments
/// skipped), do not pair up, nest deeper than [`MAX_NESTING`], or its square and curly ones deeper
/// than [`MAX_SUBSCRIPT_NESTING`]. Tokenizing is linear; run this before parsing.
pub fn check_nesting(sql: &str, dialect: &dyn Dialect) -> Result<()> {
    check_token_nesting(&tokenize(sql, dialect)?)
}

/// `sql` as `dialect` tokenizes it.
pub fn tokenize(sql: &str, dialect: &dyn Dialect) -> Result<Vec<Token>> {
    Tokenizer::new(dialect, sql).tokenize().map_err(|e| QueryError::InvalidSql(e.to_string()))
}

/// Most binary operators other than `AND`/`OR` in a row (`a + b + c …` at one bracket level,
/// between commas and clauses; an operator of lower precedence ends the row of those of higher,
/// so `a*b + c*d + …` counts its `+` and one `*`): the expression is as deep as the row is long,
/// and planning recurses once per level (about 650 exhaust a thread's stack in a debug build).
pub const MAX_OPERATOR_CHAIN: usize = 250;
/// Most `AND`/`OR` in a row: [`crate::sql_compat`] rebalances such chains, but the tenant rewrite
/// walks them as written before, and the optimizer rebuilds a conjunction as a chain after.
pub const MAX_LOGIC_CHAIN: usize = 400;

/// The longest rows of binary operators (other than `AND`/`OR`, and of `AND`/`OR`) at one bracket
/// level of `tokens`.
fn operator_chains(tokens: &[Token]) -> (usize, usize) {
    use datafusion::sql::sqlparser::keywords::Keyword;
    // Operators in a row by precedence class (comparison, additive, multiplicative, other), and
    // AND/OR in a row, at each open bracket level, innermost last.
    let mut levels: Vec<([usize; 4], usize)> = vec![([0; 4], 0)];
    let (mut operators, mut logic) = (0usize, 0usize);
    for t in tokens {
        let Some(level) = levels.last_mut() else { break };
        match t {
            Token::LParen | Token::LBracket | Token::LBrace => levels.push(([0; 4], 0)),
            Token::RParen | Token::RBracket | Token::RBrace => {
                levels.pop();
                if levels.is_empty() {
                    levels.push(([0; 4], 0));
                }
            }
            Token::Comma | Token::SemiColon => *level = ([0; 4], 0),
            Token::Eq | Token::DoubleEq | Token::Neq | Token::Lt | Token::Gt | Token::LtEq | Token::GtEq => {
                operators = operators.max(count_operator(&mut level.0, 0));
            }
            Token::Plus | Token::Minus | Token::StringConcat => operators = operators.max(count_operator(&mut level.0, 1)),
            Token::Mul | Token::Div | Token::Mod | Token::DuckIntDiv => operators = operators.max(count_operator(&mut level.0, 2)),
            Token::Caret | Token::Ampersand | Token::Pipe | Token::ShiftLeft | Token::ShiftRight | Token::Tilde => {
                operators = operators.max(count_operator(&mut level.0, 3));
            }
            Token::Word(w) => match w.keyword {
                Keyword::AND | Keyword::OR => {
                    level.0 = [0; 4];
                    level.1 += 1;
                    logic = logic.max(level.1);
                }
                Keyword::SELECT | Keyword::FROM | Keyword::WHERE | Keyword::GROUP | Keyword::HAVING | Keyword::ORDER | Keyword::LIMIT
                | Keyword::OFFSET | Keyword::CASE | Keyword::WHEN | Keyword::THEN | Keyword::ELSE | Keyword::END | Keyword::ON
                | Keyword::AS | Keyword::UNION | Keyword::EXCEPT | Keyword::INTERSECT | Keyword::QUALIFY | Keyword::WINDOW => *level = ([0; 4], 0),
                _ => {}
            },
            _ => {}
        }
    }
    (operators, logic)
}

/// One more operator of precedence `class` in a row: the rows of higher precedence end; how deep
/// the row is now.
fn count_operator(row: &mut [usize; 4], class: usize) -> usize {
    row[class] += 1;
    row[class + 1..].fill(0);
    row.iter().sum()
}

/// [`check_nesting`] of a statement already tokenized.
pub fn check_token_nesting(tokens: &[Token]) -> Result<()> {
    let (operators, logic) = operator_chains(tokens);
    if operators > MAX_OPERATOR_CHAIN {
        return Err(QueryError::LimitExceeded(format!(
            "{operators} operators in a row; at most {MAX_OPERATOR_CHAIN} are accepted (use IN (...) for a list of values, or split the expression)"
        )));
    }
    if logic > MAX_LOGIC_CHAIN {
        return Err(QueryError::LimitExceeded(format!(
            "{logic} ANDs/ORs in a row; at most {MAX_LOGIC_CHAIN} are accepted (use IN (...) for a list of values)"
        )));
    }
    // Open brackets, innermost last; the depth of all of them and of the square/curly ones.
    let mut open: Vec<bool> = Vec::new();
    let (mut deepest, mut subscripts, mut deepest_subscripts) = (0usize, 0usize, 0usize);
    for t in tokens {
        match t {
            Token::LParen | Token::LBracket | Token::LBrace => {
                let square = !matches!(t, Token::LParen);
                open.push(square);
                subscripts += usize::from(square);
                deepest = deepest.max(open.len());
                deepest_subscripts = deepest_subscripts.max(subscripts);
            }
            Token::RParen | Token::RBracket | Token::RBrace => match open.pop() {
                Some(square) if square == !matches!(t, Token::RParen) => subscripts -= usize::from(square),
                _ => return Err(unbalanced()),
            },
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(QueryError::SqlRefused(format!("brackets nested {deepest} deep; at most {MAX_NESTING} levels are accepted")));
    }
    if deepest_subscripts > MAX_SUBSCRIPT_NESTING {
        return Err(QueryError::SqlRefused(format!(
            "square or curly brackets nested {deepest_subscripts} deep; at most {MAX_SUBSCRIPT_NESTING} levels are accepted"
        )));
    }
    // A statement whose brackets do not pair up never parses; refused here, since the parser's
    // backtracking is at its worst on exactly such text (every level is retried when the end of
    // the text is reached with brackets still open).
    if !open.is_empty() {
        return Err(unbalanced());
    }
    Ok(())
}

fn unbalanced() -> QueryError {
    QueryError::InvalidSql("brackets do not pair up: every (, [ and { needs its own closing ), ] or }".into())
}

/// Parse `sql` and return its single statement if it only reads, with the PostgreSQL forms of
/// [`crate::sql_compat`] rewritten for DataFusion.
pub fn check(sql: &str) -> Result<DfStatement> {
    let mut statements: VecDeque<DfStatement> = crate::sql_parse::datafusion_statements(sql)?;
    let statement = match statements.len() {
        0 => return Err(QueryError::SqlRefused("no statement".into())),
        1 => statements.pop_front().expect("one statement"),
        n => return Err(QueryError::SqlRefused(format!("only one statement is allowed, got {n}"))),
    };
    check_statement(&statement)?;
    let mut statement = statement;
    crate::sql_compat::rewrite(&mut statement)?;
    Ok(statement)
}

fn check_statement(statement: &DfStatement) -> Result<()> {
    match statement {
        DfStatement::Statement(s) => check_sql_statement(s),
        DfStatement::Explain(explain) => check_statement(&explain.statement),
        DfStatement::CreateExternalTable(_) => Err(refused("CREATE EXTERNAL TABLE")),
        DfStatement::CopyTo(_) => Err(refused("COPY")),
        DfStatement::Reset(_) => Err(refused("RESET")),
    }
}

fn check_sql_statement(statement: &Statement) -> Result<()> {
    match statement {
        Statement::Query(query) => check_set_expr(&query.body),
        Statement::Explain { statement, .. } => check_sql_statement(statement),
        Statement::ExplainTable { .. }
        | Statement::ShowTables { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowViews { .. }
        | Statement::ShowFunctions { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowCatalogs { .. } => Ok(()),
        other => Err(refused(statement_kind(other))),
    }
}

fn check_set_expr(body: &SetExpr) -> Result<()> {
    match body {
        SetExpr::Select(_) | SetExpr::Values(_) | SetExpr::Table(_) => Ok(()),
        SetExpr::Query(q) => check_set_expr(&q.body),
        SetExpr::SetOperation { left, right, .. } => {
            check_set_expr(left)?;
            check_set_expr(right)
        }
        _ => Err(refused("a data-modifying statement inside a query")),
    }
}

fn refused(what: &str) -> QueryError {
    QueryError::SqlRefused(format!(
        "{what} is not allowed: only a single read-only statement (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN)"
    ))
}

/// The statement's leading keywords, for the refusal message (never the whole statement).
fn statement_kind(statement: &Statement) -> &'static str {
    let text = statement.to_string();
    let upper = text.trim_start().to_ascii_uppercase();
    const KINDS: &[&str] = &[
        "INSERT",
        "UPDATE",
        "DELETE",
        "MERGE",
        "DROP",
        "CREATE",
        "ALTER",
        "TRUNCATE",
        "COPY",
        "SET",
        "BEGIN",
        "START TRANSACTION",
        "COMMIT",
        "ROLLBACK",
        "PREPARE",
        "EXECUTE",
        "DEALLOCATE",
        "GRANT",
        "REVOKE",
        "ATTACH",
        "DETACH",
        "LOAD",
        "INSTALL",
        "USE",
        "CALL",
        "VACUUM",
        "ANALYZE",
        "KILL",
    ];
    KINDS.iter().copied().find(|k| upper.starts_with(k)).unwrap_or("this statement")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sql_guard fuzz target's find (35 s for 234 bytes), and nestings whose parse time doubles
    /// per level: refused at once, on every path user SQL takes.
    #[test]
    fn deep_nesting_is_refused_before_parsing() {
        use crate::backend::Dialect as Backend;
        let found = "SELECT joinGCU.L[E$.$.U.L[E$.$.[('g'.sKTELECU.L[E$.$.U].L[E$.$.[CEK.L[E$.$.U.L[E$.$.[('g'.sKTELECU.L[E$.$.U].L[E$.$.[CEK.sKK[CEKnGe% (St('g'.sKTELEC.sKKKKKsKK[CEKnGe% (St('g'.sKTELEC.sKKKKKsC.sKTELEC.sKKKCEK.sKK[CEKnGe% KKsKKKKKKKKite";
        let scope = crate::tenant_sql::TenantScope::with_sites("t", &["a.example"]);
        // Later finds of the same target: 214 and 224 bytes, 11 s and 12 s, with only 6 and 9 levels
        // of square brackets.
        let later = [
            "SELECT joinGCU.L[E$.$.U.L[E$.$.[('g'.sKTELECU.L[E$.$ULEC.sKKKKKsC.sKTCs.KKKKKsC.sKTELEC('g'.sKTELECU.L[~$.$.ULEC.sKKKKKsC.sKTCs.KKKKKsC.sKTELEC.sKKKCEKELEC.sKKKCEK.sK.sKKKCEKELEC.sKKKCEK.sKK[CEKnGGe% KKsKKKKKKKiKte",
            "SELECT joinGCU.L[E$.$.U.L[E$.$.[('g'.sKTELECU.L[E$.$.U].L[E$CU.L[E$.$.U].L[E$.$.[CEK.sKK[CEKnGe% (St('g'.sKTELEC.sKKKKKsKK[CEKnGtS( e%('g'.sKTELEC.sKKKKKsC.sKTC.sKKKKKsC.sKTELEC.sKKKCEKELEC.sKKKCEs.KKK[CEKnGe% KKsKKKKKKKiKte",
        ];
        let deep = [found.to_owned(), later[0].to_owned(), later[1].to_owned(), format!("SELECT {}", "NOT (".repeat(40)), format!("SELECT {}", "a.b[".repeat(40)), format!("SELECT {}1{}", "(".repeat(17), ")".repeat(17)), format!("SELECT x{}", "[1".repeat(5))];
        for sql in deep {
            let started = std::time::Instant::now();
            let e = check(&sql).unwrap_err();
            assert!(e.to_string().contains("levels are accepted"), "{sql}: {e}");
            for backend in [Backend::DataFusion, Backend::ClickHouse] {
                let e = crate::tenant_sql::scope_sql(&sql, backend, &scope).unwrap_err();
                assert!(e.to_string().contains("levels are accepted"), "{e}");
            }
            let e = crate::clickhouse::check_read_only(&sql).unwrap_err();
            assert!(e.to_string().contains("levels are accepted"), "{e}");
            assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?} for {sql}", started.elapsed());
        }
        // Sixteen levels are fine; brackets in literals, quoted names and comments do not count.
        let sixteen = format!("SELECT {}1{} AS x", "(".repeat(16), ")".repeat(16));
        check(&sixteen).unwrap();
        check("SELECT m['a'][1], x[y[z[1]]] FROM t").unwrap();
        // Brackets that do not pair up: refused before parsing, however shallow. The third is the
        // target's next find after the depth bounds: 233 bytes, 8 levels, open at the end, 10 s.
        let third = "SELECT j(St('g'.sKTELEC.sKKKKKsKK[CEKnGtS( e%('g'.sKTELEC.sKKKKKsC.sKTC.sKKKKKsC.sKTELEC.sKKKKAKCEKELEC.sKKKCEs.KKK[CEKnGe% KKsKKK[CEKnGtS( e%('g'.sKTELEC.sKKKKKsC.sKTC.sKKKKKsC.sKTELEC.sKKAKCEKELEC.sKKKCEs.KKK[CEKnGe% KKsKKKKKKKiKte";
        for sql in [third, "SELECT (1]", "SELECT 1)", "SELECT f(x", "SELECT a[1"] {
            let started = std::time::Instant::now();
            let e = check(sql).unwrap_err();
            assert!(e.to_string().contains("do not pair up"), "{sql}: {e}");
            let e = crate::tenant_sql::scope_sql(sql, Backend::ClickHouse, &scope).unwrap_err();
            assert!(e.to_string().contains("do not pair up"), "{sql}: {e}");
            assert!(started.elapsed() < std::time::Duration::from_secs(1), "{:?} for {sql}", started.elapsed());
        }
        let quoted = format!("SELECT '{0}' AS \"{0}\" -- {0}\n", "(".repeat(40));
        check(&quoted).unwrap();
        assert!(crate::clickhouse::check_read_only(&quoted).is_ok());
    }

    #[test]
    fn long_rows_of_operators_are_refused_before_parsing() {
        let dialect = datafusion::sql::sqlparser::dialect::PostgreSqlDialect {};
        // `x > 1 + 1 …` with n operators in all.
        let sum = |n: usize| format!("SELECT count(*) FROM t WHERE x > {}", vec!["1"; n].join(" + "));
        assert!(check_nesting(&sum(MAX_OPERATOR_CHAIN), &dialect).is_ok());
        let e = check_nesting(&sum(MAX_OPERATOR_CHAIN + 1), &dialect).unwrap_err();
        assert!(matches!(e, QueryError::LimitExceeded(_)), "{e}");
        let any = |n: usize| format!("SELECT 1 FROM t WHERE {}", (0..=n).map(|i| format!("x = {i} + 1")).collect::<Vec<_>>().join(" OR "));
        assert!(check_nesting(&any(MAX_LOGIC_CHAIN), &dialect).is_ok());
        assert!(matches!(check_nesting(&any(MAX_LOGIC_CHAIN + 1), &dialect), Err(QueryError::LimitExceeded(_))));
        // Rows are counted at one bracket level, between commas and clauses, and a row of
        // multiplications ends at an addition.
        let products = format!("SELECT sum({}) FROM t", (0..200).map(|i| format!("x*{i}")).collect::<Vec<_>>().join(" + "));
        assert!(check_nesting(&products, &dialect).is_ok());
        let spread = format!("SELECT {} FROM t", (0..100).map(|_| "a + b + c").collect::<Vec<_>>().join(", "));
        assert!(check_nesting(&spread, &dialect).is_ok());
        let bracketed = format!("SELECT {} FROM t", (0..100).map(|_| "(a + b)").collect::<Vec<_>>().join(" * "));
        assert!(check_nesting(&bracketed, &dialect).is_ok());
    }

    #[test]
    fn accepts_reads() {
        for sql in [
            "SELECT 1",
            "select * from traffic_1m where site = 'a'",
            "WITH t AS (SELECT 1 AS x) SELECT x FROM t",
            "SELECT 1 UNION ALL SELECT 2",
            "SHOW TABLES",
            "SHOW COLUMNS FROM traffic_1m",
            "EXPLAIN SELECT 1",
            "DESCRIBE traffic_1m",
            "SELECT 1;",
        ] {
            check(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
    }

    #[test]
    fn refuses_everything_else() {
        for sql in [
            "DROP TABLE traffic_1m",
            "INSERT INTO traffic_1m SELECT * FROM traffic_1m",
            "COPY traffic_1m TO '/tmp/x.parquet'",
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/etc/'",
            "CREATE TABLE x AS SELECT 1",
            "CREATE VIEW v AS SELECT 1",
            "SET datafusion.execution.batch_size = 1",
            "SELECT 1; SELECT 2",
            "SELECT 1; DROP TABLE traffic_1m",
            "EXPLAIN COPY traffic_1m TO '/tmp/x.parquet'",
            "DELETE FROM traffic_1m",
            "",
        ] {
            let err = check(sql).expect_err(sql);
            assert!(err.is_user_error(), "{sql}: {err}");
        }
    }
}
