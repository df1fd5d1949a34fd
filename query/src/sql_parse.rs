//! Parsing user SQL within a budget of parser steps.
//!
//! sqlparser backtracks (`maybe_parse`), and on some inputs its time doubles with every element:
//! a placeholder followed by a dotted chain ending in `.` (`$1.a.b.….`), nestings of brackets (which
//! [`sql_guard::check_nesting`](crate::sql_guard::check_nesting) bounds before parsing), and whatever
//! else a fuzzer finds next. A parse cannot be interrupted from outside, so it is bounded from
//! inside: [`Budgeted`] wraps the dialect and counts the parser's calls into it (every expression
//! prefix, infix operator and statement goes through the dialect). When a parse has used up its
//! budget, every further call fails with `RecursionLimitExceeded`, the one error the parser never
//! backtracks over, so the parse ends within a few steps and the statement is refused.
//!
//! The budget is [`BASE_STEPS`] plus [`STEPS_PER_TOKEN`] per token: several times what a statement
//! takes without backtracking (one to two steps per token), far below the seconds an exponential
//! parse needs. A step costs a few hundred nanoseconds, so a spent budget is milliseconds for
//! statements of ordinary length and about a second for the largest one the service accepts.
//!
//! Everything else [`Budgeted`] delegates unchanged to the dialect it wraps, including
//! `dialect()`, so the parser's `dialect_of!` checks see the wrapped dialect — but for two of
//! PostgreSQL's precedences: `^` binds tighter than `*`, and a sign tighter than `^`. The
//! delegation lists every method of sqlparser's `Dialect` trait; a test parses a corpus (without
//! `^`) with and without the wrapper and requires identical statements.

use std::cell::Cell;
use std::collections::VecDeque;
use std::iter::Peekable;
use std::str::Chars;

use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{ColumnOption, Expr, GranteesType, Ident, ObjectNamePart, Statement, UnaryOperator};
use datafusion::sql::sqlparser::dialect::{Dialect, GenericDialect, Precedence};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{QueryError, Result};

/// Parser steps every statement may take, whatever its length.
pub const BASE_STEPS: u64 = 10_000;
/// Further parser steps per token of the statement (whitespace counts as a token).
pub const STEPS_PER_TOKEN: u64 = 10;

/// The statements of user SQL in `dialect`, parsed within its budget, after the nesting check.
/// A statement over budget is refused ([`QueryError::SqlRefused`]); other parse errors are
/// [`QueryError::InvalidSql`].
pub fn statements(sql: &str, dialect: &'static dyn Dialect) -> Result<Vec<Statement>> {
    let budgeted = Budgeted::for_sql(sql, dialect)?;
    let parsed = Parser::parse_sql(&budgeted, sql);
    budgeted.result(parsed.map_err(|e| QueryError::InvalidSql(e.to_string())))
}

/// The statements of user SQL as DataFusion parses them (generic dialect, plus DataFusion's own
/// statements), within the budget, after the nesting check.
pub fn datafusion_statements(sql: &str) -> Result<VecDeque<DfStatement>> {
    let budgeted = Budgeted::for_sql(sql, &GenericDialect {})?;
    let parsed = DFParser::parse_sql_with_dialect(sql, &budgeted);
    budgeted.result(parsed.map_err(QueryError::from_user_sql))
}

/// A dialect that counts the parser's calls into it and fails them all once `limit` is reached.
#[derive(Debug)]
pub struct Budgeted {
    inner: &'static dyn Dialect,
    limit: u64,
    steps: Cell<u64>,
}

impl Budgeted {
    /// `dialect` with a budget of `limit` steps.
    pub fn new(dialect: &'static dyn Dialect, limit: u64) -> Self {
        Budgeted { inner: dialect, limit, steps: Cell::new(0) }
    }

    /// `dialect` with the budget of `sql` (see the module header), once `sql` has passed the
    /// nesting check.
    fn for_sql(sql: &str, dialect: &'static dyn Dialect) -> Result<Self> {
        let tokens = crate::sql_guard::tokenize(sql, dialect)?;
        crate::sql_guard::check_token_nesting(&tokens)?;
        // `COPY ... TO STDOUT` (psql's `\copy`) does not parse everywhere: refused as what it is.
        let first = tokens.iter().find(|t| !matches!(t, datafusion::sql::sqlparser::tokenizer::Token::Whitespace(_)));
        if let Some(datafusion::sql::sqlparser::tokenizer::Token::Word(w)) = first
            && w.value.eq_ignore_ascii_case("copy")
        {
            return Err(QueryError::SqlRefused("COPY is not allowed: the service answers read-only queries; run the SELECT itself".into()));
        }
        Ok(Budgeted::new(dialect, BASE_STEPS.saturating_add(STEPS_PER_TOKEN.saturating_mul(tokens.len() as u64))))
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.steps.get()
    }

    /// Whether the budget ran out.
    pub fn exhausted(&self) -> bool {
        self.steps.get() > self.limit
    }

    /// `parsed`, unless the budget ran out while producing it: then the refusal that says so.
    fn result<T>(&self, parsed: Result<T>) -> Result<T> {
        if self.exhausted() {
            return Err(QueryError::SqlRefused(format!(
                "the statement is too complex to parse: its parse took more than {} steps, the budget for its length",
                self.limit
            )));
        }
        parsed
    }

    /// One step; an error once the budget is used up.
    fn step(&self) -> std::result::Result<(), ParserError> {
        let steps = self.steps.get() + 1;
        self.steps.set(steps);
        if steps > self.limit { Err(ParserError::RecursionLimitExceeded) } else { Ok(()) }
    }
}

/// Delegates the `(&self) -> bool` methods of `Dialect` to the wrapped dialect.
macro_rules! delegate_flags {
    ($($name:ident),* $(,)?) => {
        $(fn $name(&self) -> bool {
            self.inner.$name()
        })*
    };
}

impl Dialect for Budgeted {
    fn dialect(&self) -> std::any::TypeId {
        self.inner.dialect()
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<std::result::Result<Expr, ParserError>> {
        if let Err(e) = self.step() {
            return Some(Err(e));
        }
        // A sign binds tighter than `^` (see `get_next_precedence_default`), as in PostgreSQL:
        // `-2 ^ 2` is 4. sqlparser reads a sign's operand up to `*`'s precedence, which took in
        // the `^` after it (-4).
        let op = match parser.peek_token_ref().token {
            Token::Minus => UnaryOperator::Minus,
            Token::Plus => UnaryOperator::Plus,
            _ => return self.inner.parse_prefix(parser),
        };
        parser.advance_token();
        let operand = parser.parse_subexpr(self.inner.prec_value(Precedence::MulDivModOp) + 1);
        Some(operand.map(|expr| Expr::UnaryOp { op, expr: Box::new(expr) }))
    }

    fn parse_infix(&self, parser: &mut Parser, expr: &Expr, precedence: u8) -> Option<std::result::Result<Expr, ParserError>> {
        if let Err(e) = self.step() {
            return Some(Err(e));
        }
        self.inner.parse_infix(parser, expr, precedence)
    }

    fn get_next_precedence(&self, parser: &Parser) -> Option<std::result::Result<u8, ParserError>> {
        if let Err(e) = self.step() {
            return Some(Err(e));
        }
        self.inner.get_next_precedence(parser)
    }

    fn parse_statement(&self, parser: &mut Parser) -> Option<std::result::Result<Statement, ParserError>> {
        if let Err(e) = self.step() {
            return Some(Err(e));
        }
        self.inner.parse_statement(parser)
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        self.inner.is_delimited_identifier_start(ch)
    }

    fn is_nested_delimited_identifier_start(&self, ch: char) -> bool {
        self.inner.is_nested_delimited_identifier_start(ch)
    }

    fn peek_nested_delimited_identifier_quotes(&self, chars: Peekable<Chars<'_>>) -> Option<(char, Option<char>)> {
        self.inner.peek_nested_delimited_identifier_quotes(chars)
    }

    fn identifier_quote_style(&self, identifier: &str) -> Option<char> {
        self.inner.identifier_quote_style(identifier)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        self.inner.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        self.inner.is_identifier_part(ch)
    }

    fn is_custom_operator_part(&self, ch: char) -> bool {
        self.inner.is_custom_operator_part(ch)
    }

    fn get_next_precedence_default(&self, parser: &Parser) -> std::result::Result<u8, ParserError> {
        // `^` is PostgreSQL's power (`crate::sql_compat`), binding tighter than `*` and `/` (the
        // generic dialect's XOR binds looser than `+`: `2 * 3 ^ 2` was `(2 * 3) ^ 2`).
        if parser.peek_token_ref().token == Token::Caret {
            return Ok(self.inner.prec_value(Precedence::MulDivModOp) + 1);
        }
        self.inner.get_next_precedence_default(parser)
    }

    fn parse_column_option(&self, parser: &mut Parser) -> std::result::Result<Option<std::result::Result<Option<ColumnOption>, ParserError>>, ParserError> {
        self.inner.parse_column_option(parser)
    }

    fn prec_value(&self, prec: Precedence) -> u8 {
        self.inner.prec_value(prec)
    }

    fn prec_unknown(&self) -> u8 {
        self.inner.prec_unknown()
    }

    fn is_reserved_for_identifier(&self, kw: Keyword) -> bool {
        self.inner.is_reserved_for_identifier(kw)
    }

    fn get_reserved_keywords_for_select_item_operator(&self) -> &[Keyword] {
        self.inner.get_reserved_keywords_for_select_item_operator()
    }

    fn get_reserved_grantees_types(&self) -> &[GranteesType] {
        self.inner.get_reserved_grantees_types()
    }

    fn is_column_alias(&self, kw: &Keyword, parser: &mut Parser) -> bool {
        self.inner.is_column_alias(kw, parser)
    }

    fn is_select_item_alias(&self, explicit: bool, kw: &Keyword, parser: &mut Parser) -> bool {
        self.inner.is_select_item_alias(explicit, kw, parser)
    }

    fn is_table_factor(&self, kw: &Keyword, parser: &mut Parser) -> bool {
        self.inner.is_table_factor(kw, parser)
    }

    fn is_table_alias(&self, kw: &Keyword, parser: &mut Parser) -> bool {
        self.inner.is_table_alias(kw, parser)
    }

    fn is_table_factor_alias(&self, explicit: bool, kw: &Keyword, parser: &mut Parser) -> bool {
        self.inner.is_table_factor_alias(explicit, kw, parser)
    }

    fn is_identifier_generating_function_name(&self, ident: &Ident, name_parts: &[ObjectNamePart]) -> bool {
        self.inner.is_identifier_generating_function_name(ident, name_parts)
    }

    delegate_flags!(
        supports_string_literal_backslash_escape, ignores_wildcard_escapes, 
        supports_unicode_string_literal, supports_filter_during_aggregation, 
        supports_window_clause_named_window_reference, supports_within_after_array_aggregation, 
        supports_partition_by_after_order_by, supports_array_join_syntax, supports_group_by_expr, 
        supports_group_by_with_modifier, supports_left_associative_joins_without_parens, 
        supports_outer_join_operator, supports_cross_join_constraint, supports_connect_by, 
        supports_execute_immediate, supports_match_recognize, supports_in_empty_list, 
        supports_start_transaction_modifier, supports_end_transaction_modifier, 
        supports_named_fn_args_with_eq_operator, supports_named_fn_args_with_colon_operator, 
        supports_named_fn_args_with_assignment_operator, supports_named_fn_args_with_rarrow_operator, 
        supports_named_fn_args_with_expr_name, supports_numeric_prefix, 
        supports_numeric_literal_underscores, supports_window_function_null_treatment_arg, 
        supports_dictionary_syntax, support_map_literal_syntax, supports_lambda_functions, 
        supports_parenthesized_set_variables, supports_comma_separated_set_assignments, 
        supports_update_order_by, supports_select_wildcard_except, convert_type_before_value, 
        supports_triple_quoted_string, supports_trailing_commas, supports_limit_comma, 
        supports_string_literal_concatenation, supports_string_literal_concatenation_with_newline, 
        supports_projection_trailing_commas, supports_from_trailing_commas, 
        supports_column_definition_trailing_commas, supports_object_name_double_dot_notation, 
        supports_struct_literal, supports_empty_projections, supports_select_expr_star, 
        supports_from_first_select, supports_from_first_insert, supports_pipe_operator, 
        supports_user_host_grantee, supports_match_against, supports_select_wildcard_exclude, 
        supports_select_exclude, supports_create_table_multi_schema_info_sources, 
        supports_select_modifiers, describe_requires_table_keyword, allow_extract_custom, 
        allow_extract_single_quotes, supports_extract_comma_syntax, supports_subquery_as_function_arg, 
        supports_create_view_comment_syntax, supports_array_typedef_without_element_type, 
        supports_parens_around_table_factor, supports_values_as_table_factor, supports_dollar_placeholder, 
        supports_dollar_as_money_prefix, supports_create_index_with_clause, require_interval_qualifier, 
        supports_explain_with_utility_options, supports_asc_desc_in_column_definition, 
        supports_factorial_operator, supports_bitwise_shift_operators, supports_nested_comments, 
        supports_multiline_comment_hints, supports_eq_alias_assignment, supports_try_convert, 
        supports_bang_not_operator, supports_listen_notify, supports_load_data, supports_load_extension, 
        supports_top_before_distinct, supports_boolean_literals, supports_show_like_before_in, 
        supports_comment_on, supports_create_table_select, supports_partiql, 
        supports_constraint_keyword_without_name, supports_key_column_option, 
        supports_table_sample_before_alias, supports_insert_set, supports_insert_table_function, 
        supports_insert_table_query, supports_insert_format, supports_insert_table_alias, 
        supports_set_stmt_without_operator, supports_table_versioning, supports_string_escape_constant, 
        supports_table_hints, requires_single_line_comment_whitespace, 
        supports_array_typedef_with_brackets, supports_geometric_types, supports_order_by_all, 
        supports_set_names, supports_space_separated_column_options, supports_alter_column_type_using, 
        supports_comma_separated_drop_column_list, supports_notnull_operator, 
        supports_data_type_signed_suffix, supports_interval_options, 
        supports_create_table_like_parenthesized, supports_semantic_view_table_factor, 
        supports_quote_delimited_string, supports_comment_optimizer_hint, 
        supports_double_ampersand_operator, supports_binary_kw_as_cast, supports_select_wildcard_replace, 
        supports_select_wildcard_ilike, supports_select_wildcard_rename, 
        supports_select_wildcard_with_alias, supports_optimize_table, supports_install, supports_detach, 
        supports_prewhere, supports_with_fill, supports_limit_by, supports_interpolate, supports_settings, 
        supports_select_format, supports_comma_separated_trim, supports_cte_without_as, 
        supports_select_item_multi_column_alias, supports_xml_expressions, supports_create_table_using, 
        supports_long_type_as_bigint, supports_map_literal_with_angle_brackets
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::{ClickHouseDialect, PostgreSqlDialect};

    /// Statements exercising what the three dialects parse differently, and the fuzz corpus; not
    /// those the nesting check refuses, which never reach the parser, nor those over their budget,
    /// which would take minutes without it.
    fn corpus() -> Vec<String> {
        let mut sql: Vec<String> = [
            "SELECT 1",
            "SELECT site, sum(requests) AS r FROM traffic_1m WHERE ts >= now() - INTERVAL '1 hour' GROUP BY site ORDER BY r DESC LIMIT 10",
            "WITH t AS (SELECT 1 AS x) SELECT x FROM t UNION ALL SELECT 2",
            "SELECT a::int, CAST(b AS BIGINT), c::text[] FROM t WHERE d ILIKE 'x%' ESCAPE '\\\\'",
            "SELECT $1, $2::int FROM t WHERE a = ?",
            "SELECT toStartOfMinute(ts) AS m, uniqMerge(s) FROM traffic_1m FINAL GROUP BY m",
            "SELECT arr[1], m['k'], s.a.b, t.* FROM t AS s",
            "SELECT * EXCLUDE (a) FROM t",
            "SELECT * FROM t1 JOIN t2 USING (id) LEFT JOIN t3 ON t3.x = t1.x WHERE EXISTS (SELECT 1 FROM t4)",
            "SELECT count(*) FILTER (WHERE status >= 500) OVER (PARTITION BY site ORDER BY ts ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) FROM t",
            "SELECT CASE WHEN a IS NULL THEN 'x' ELSE 'y' END, a BETWEEN 1 AND 2, b IN (1, 2, 3), NOT c, -d FROM t",
            "SELECT DATE '2026-01-01', TIMESTAMP '2026-01-01 00:00:00', INTERVAL '5' MINUTE, E'a\\nb', $$dollar$$",
            "SHOW TABLES",
            "DESCRIBE traffic_1m",
            "EXPLAIN ANALYZE SELECT 1",
            "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/tmp/x'",
            "COPY t TO '/tmp/x.parquet'",
            "INSERT INTO t VALUES (1, 'a'), (2, 'b')",
            "SET datafusion.execution.batch_size = 1",
            "SELECT 1; SELECT 2",
            "SELECT",
            "SELECT (1",
            "SELECT a FROM",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        // A long statement of everything at once.
        let items: Vec<String> = (0..500)
            .map(|i| format!("CASE WHEN a{i} > {i} THEN f(b, c::int, -d) ELSE (SELECT max(x) FROM u WHERE u.k = t.k{i}) END AS c{i}"))
            .collect();
        sql.push(format!("SELECT {} FROM t WHERE a IN (1, 2) AND NOT b LIKE 'x%' ORDER BY 1 LIMIT 5", items.join(", ")));
        let dir = crate::crate_dir().join("fuzz/corpus/sql_guard");
        for entry in std::fs::read_dir(dir).expect("the sql_guard fuzz corpus") {
            let bytes = std::fs::read(entry.expect("corpus entry").path()).expect("corpus file");
            if let Ok(text) = String::from_utf8(bytes) {
                sql.push(text);
            }
        }
        sql.retain(|s| {
            crate::sql_guard::check_nesting(s, &GenericDialect {}).is_ok()
                && [&GenericDialect {} as &'static dyn Dialect, &ClickHouseDialect {}, &PostgreSqlDialect {}]
                    .into_iter()
                    .all(|d| !matches!(statements(s, d), Err(QueryError::SqlRefused(_))))
        });
        sql
    }

    /// The wrapper changes nothing but the budget: every statement of the corpus parses to the same
    /// result with and without it, in each dialect user SQL is parsed in.
    #[test]
    fn budgeted_dialect_parses_exactly_like_the_dialect_it_wraps() {
        let dialects: [&'static dyn Dialect; 3] = [&GenericDialect {}, &ClickHouseDialect {}, &PostgreSqlDialect {}];
        for sql in corpus() {
            for dialect in dialects {
                let plain = Parser::parse_sql(dialect, &sql);
                let budgeted = Budgeted::new(dialect, u64::MAX);
                let wrapped = Parser::parse_sql(&budgeted, &sql);
                assert_eq!(format!("{plain:?}"), format!("{wrapped:?}"), "{dialect:?}: {sql}");
            }
            let plain = DFParser::parse_sql_with_dialect(&sql, &GenericDialect {}).map_err(|e| e.to_string());
            let budgeted = Budgeted::new(&GenericDialect {}, u64::MAX);
            let wrapped = DFParser::parse_sql_with_dialect(&sql, &budgeted).map_err(|e| e.to_string());
            assert_eq!(format!("{plain:?}"), format!("{wrapped:?}"), "DataFusion: {sql}");
        }
    }

    /// Statements that parse without backtracking take a few steps per token: the budget is many
    /// times what they need.
    #[test]
    fn ordinary_statements_use_a_small_part_of_their_budget() {
        for sql in corpus() {
            let tokens = crate::sql_guard::tokenize(&sql, &GenericDialect {}).map(|t| t.len() as u64).unwrap_or(0);
            let budgeted = Budgeted::new(&GenericDialect {}, u64::MAX);
            if DFParser::parse_sql_with_dialect(&sql, &budgeted).is_ok() {
                let allowed = STEPS_PER_TOKEN / 4 * tokens + 100;
                assert!(budgeted.steps() <= allowed, "{} steps for {tokens} tokens: {sql}", budgeted.steps());
            }
        }
    }

    /// Inputs on which the parser's time doubles per element: refused once their budget is spent,
    /// in every dialect, instead of parsing for minutes.
    #[test]
    fn exponential_parses_are_refused_at_their_budget() {
        let found = std::fs::read(crate::crate_dir().join("fuzz/corpus/sql_guard/slow-parse-chain-91s")).expect("corpus input");
        let found = String::from_utf8(found).expect("UTF-8").replace('\0', "");
        // 22 elements: each one more doubles the time; much longer chains reach the parser's
        // recursion limit instead.
        let chain = ".a.b".repeat(11);
        let inputs = [found, format!("SELECT $1{chain}."), format!("SELECT :x{chain}."), format!("SELECT ?{chain}.")];
        for sql in &inputs {
            let started = std::time::Instant::now();
            let e = datafusion_statements(sql).unwrap_err();
            assert!(matches!(e, QueryError::SqlRefused(_)) && e.to_string().contains("too complex to parse"), "{sql}: {e}");
            let e = statements(sql, &GenericDialect {}).unwrap_err();
            assert!(e.to_string().contains("too complex to parse"), "{sql}: {e}");
            // PostgreSQL's tokenizer reads a lone `:` as an error; its chains are as slow.
            assert!(statements(sql, &PostgreSqlDialect {}).is_err(), "{sql}");
            // Unbudgeted, the shortest of these takes minutes.
            assert!(started.elapsed() < std::time::Duration::from_secs(10), "{:?} for {sql}", started.elapsed());
        }
        // A shorter chain of the same shape stays within its budget: an ordinary parse error.
        let e = datafusion_statements("SELECT $1.a.b.").unwrap_err();
        assert!(matches!(e, QueryError::InvalidSql(_)), "{e}");
    }

    /// Once the budget is spent, the parse ends within a few more steps.
    #[test]
    fn a_spent_budget_ends_the_parse() {
        let sql = format!("SELECT $1{}.", ".a.b".repeat(11));
        let budgeted = Budgeted::new(&GenericDialect {}, 1000);
        assert!(matches!(Parser::parse_sql(&budgeted, &sql), Err(ParserError::RecursionLimitExceeded)));
        assert!(budgeted.exhausted());
        assert!(budgeted.steps() < 1100, "{} steps", budgeted.steps());
    }
}
