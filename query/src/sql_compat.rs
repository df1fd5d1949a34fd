//! PostgreSQL forms that clients and their libraries write but DataFusion does not plan, rewritten
//! on the parsed statement into forms it does, with the same meaning:
//!
//! - `x op ANY (ARRAY[a, b])`, `x op ANY ('{a,b}')` (an array literal in text form, as drivers send
//!   list parameters) and the `ALL` forms: `x = ANY (…)` becomes `x IN (a, b)`, `x <> ALL (…)`
//!   becomes `x NOT IN (a, b)`, any other operator `(x op a OR x op b)` (`AND` for `ALL`). An empty
//!   array is `FALSE` for `ANY` and `TRUE` for `ALL`, as in PostgreSQL. `ANY (subquery)` is left
//!   to the planner.
//! - `x op ANY ($n)` (a list parameter not bound yet, when a statement is described): `x op $n`,
//!   so that planning gives `$n` the type of `x`; [`array_placeholders`] names these parameters,
//!   whose type is then the array of that type. Parameters are bound before a statement runs, so
//!   a statement that runs never has this form.
//! - `LIKE` / `ILIKE` with an `ESCAPE` character other than the backslash, on a literal pattern
//!   (or literals joined with `||`): the pattern is rewritten to escape with the backslash
//!   (DataFusion's only escape character).
//! - Two output columns of one `SELECT` written alike (`SELECT count(*), count(*)`, `SELECT site,
//!   site`), or in the statement's own `SELECT` aliased alike (`SELECT 1 AS a, 2 AS a`; see
//!   [`realias_repeated_aliases`]): PostgreSQL answers both, DataFusion refuses a projection
//!   whose names repeat. Each later one is aliased `<name>_2`, `<name>_3`, … (a name no other
//!   output column of that `SELECT` has); over the Postgres wire both keep PostgreSQL's name.
//! - An unaliased `x AT TIME ZONE z` output column is named `timezone` (`timezone_2`, … for the
//!   next ones), as PostgreSQL names it; DataFusion names it after `x`, and refuses it next to
//!   `x` itself (which `ORDER BY x` adds).
//! - A chain of `AND`s or `OR`s is rebalanced into a tree whose depth grows with the logarithm of
//!   its length, as are the chains written for `ANY`/`ALL`; a statement whose expressions still
//!   nest deeper than [`MAX_EXPRESSION_DEPTH`] is refused, as is one with more than
//!   [`MAX_STATEMENT_PARTS`] `UNION`/`INTERSECT`/`EXCEPT` operators, `WITH` queries or joined
//!   tables.
//! - `date_trunc(unit, t, zone)` truncates at the zone's wall clock and gives a UTC time back, as
//!   PostgreSQL's does; `timezone(zone, t)` is `t AT TIME ZONE zone`.
//! - `EXTRACT(field FROM t)` is marked as a `numeric`, as in PostgreSQL, for [`crate::fraction`]
//!   ([`numeric_extract`]).
//! - `a ^ b` is `a` to the power `b` (PostgreSQL's meaning; DataFusion's generic dialect reads it
//!   as a bitwise XOR, which PostgreSQL writes `#`).
//! - `float` (`x::float`, `CAST(x AS float)`, `float '1.5'`, `float(p)` for p from 25) is `double precision`, as
//!   in PostgreSQL; DataFusion reads it as `real` (single precision), so `sum(a)::float / sum(b)`
//!   lost digits. `real`, `float4` and `float(p)` for p up to 24 stay `real`.
//! - `mod(a, b)` is `(a % b)` and `sign(x)` is `signum(x)` (PostgreSQL's names; DataFusion has the
//!   operator and `signum` only); `ceiling` is `ceil`; `clock_timestamp()`,
//!   `statement_timestamp()` and `transaction_timestamp()` are `now()`.
//! - A text literal PostgreSQL reads as an interval added to or taken from a value (`ts - '1
//!   hour'`, `now() + '2 days'`) is an interval literal; DataFusion found no type for it.
//! - `to_timestamp(text, template)` and `to_date(text, template)` with PostgreSQL's template
//!   patterns, rewritten to chrono's as `to_char`'s are.
//! - `x AT TIME ZONE 'europe/paris'`: the zone named as the zone database writes it
//!   (`Europe/Paris`, `UTC`), as PostgreSQL reads names in any case and Arrow does not.
//! - An interval literal multiplied or divided by a number or negated (`interval '1 hour' * 3`,
//!   `2 * interval '1 day'`, `interval '1 day' / 3`, `-interval '1 hour'`) is the interval scaled
//!   as PostgreSQL scales it ([`crate::time_text::scaled_interval`]); DataFusion refused the
//!   arithmetic. A division by zero is an error. Other time spans (columns, differences of times)
//!   are typed only when planned: [`crate::time_udf::SpanArithmetic`] scales those.
//! - `generate_series(…)` in `FROM` with a table alias and no column aliases
//!   (`generate_series(1, 3) g`) names its one column after the alias, as PostgreSQL does
//!   (DataFusion names it `value`).
//!
//! Every statement planned by DataFusion (lake SQL, the Postgres catalog, `Describe`) passes through
//! [`rewrite`] after the read-only guard. (Divisions of sums are made fractions on the plan, by
//! [`crate::fraction`], where names are resolved.)
//! Pure: no I/O.

use std::ops::ControlFlow;

use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, DataType, ExactNumberInfo, Expr, Ident, Query, Select, SelectItem, SetExpr, TableAliasColumnDef, TableFactor, Value,
    ValueWithSpan, Visit, VisitMut, Visitor, VisitorMut,
};

use crate::error::{QueryError, Result};

/// Most elements an `ANY`/`ALL` array (or an array parameter) may have: each becomes a term of the
/// rewritten expression.
pub const MAX_ARRAY_ELEMENTS: usize = 10_000;

/// Rewrite the PostgreSQL forms of the module header in `statement`.
pub fn rewrite(statement: &mut DfStatement) -> Result<()> {
    match statement {
        DfStatement::Statement(s) => rewrite_sql(s),
        DfStatement::Explain(explain) => rewrite(&mut explain.statement),
        _ => Ok(()),
    }
}

fn rewrite_sql(statement: &mut datafusion::sql::sqlparser::ast::Statement) -> Result<()> {
    let mut rewriter = Rewriter { error: None, outermost: true };
    let _ = statement.visit(&mut rewriter);
    if let Some(e) = rewriter.error {
        return Err(e);
    }
    check_depth(statement)?;
    let size = StatementSize::of(statement);
    for (count, what) in [(size.set_operations, "UNION, INTERSECT or EXCEPT operators"), (size.ctes, "WITH queries"), (size.joins, "joined tables")] {
        if count > MAX_STATEMENT_PARTS {
            return Err(QueryError::LimitExceeded(format!(
                "the statement has {count} {what}, more than the limit of {MAX_STATEMENT_PARTS}; split it into several statements"
            )));
        }
    }
    Ok(())
}

/// Most `UNION`/`INTERSECT`/`EXCEPT` operators, most `WITH` queries, and most joined tables a
/// statement may have (each counted over all its queries): planning a chain of them recurses once
/// per link, and takes time no query time limit can stop (about 600 `UNION ALL` branches, or 3000
/// `WITH` queries each reading the last, exhausted a query thread's stack and aborted the service).
pub const MAX_STATEMENT_PARTS: usize = 256;

/// The parts of a statement [`MAX_STATEMENT_PARTS`] bounds.
#[derive(Debug, Default, PartialEq)]
struct StatementSize {
    set_operations: usize,
    ctes: usize,
    /// Tables after the first in each `FROM`, by a comma or a `JOIN`.
    joins: usize,
}

impl StatementSize {
    fn of(statement: &datafusion::sql::sqlparser::ast::Statement) -> StatementSize {
        let mut size = StatementSize::default();
        let _ = statement.visit(&mut size);
        size
    }

    /// Count the set operations and joins of a query's body (a bracketed query inside a set
    /// operation is a query of its own, counted when visited).
    fn count(&mut self, body: &SetExpr) {
        match body {
            SetExpr::SetOperation { left, right, .. } => {
                self.set_operations += 1;
                self.count(left);
                self.count(right);
            }
            SetExpr::Select(select) => {
                let tables: usize = select.from.iter().map(|t| 1 + t.joins.len()).sum();
                self.joins += tables.saturating_sub(1);
            }
            _ => {}
        }
    }
}

impl Visitor for StatementSize {
    type Break = ();
    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.count(&query.body);
        self.ctes += query.with.as_ref().map_or(0, |w| w.cte_tables.len());
        ControlFlow::Continue(())
    }
}

/// Deepest nesting of expressions a statement may have: the planner recurses once per level, and
/// about 650 levels (`a + b + c …`) exhaust a thread's stack. Chains of `AND`/`OR` are rebalanced
/// first, so only other operators count against it. Above the operator rows that
/// [`crate::sql_guard`] lets through, so this catches only other deep forms.
pub const MAX_EXPRESSION_DEPTH: usize = 300;

fn check_depth(statement: &datafusion::sql::sqlparser::ast::Statement) -> Result<()> {
    if expression_depth(statement, MAX_EXPRESSION_DEPTH) > MAX_EXPRESSION_DEPTH {
        return Err(QueryError::LimitExceeded(format!(
            "an expression nested more than {MAX_EXPRESSION_DEPTH} deep (a long chain of operators); split it, or use IN (...) for a list of values"
        )));
    }
    Ok(())
}

/// How deep the expressions of `statement` nest, looking no deeper than one level past `limit`.
fn expression_depth(statement: &datafusion::sql::sqlparser::ast::Statement, limit: usize) -> usize {
    struct Depth {
        now: usize,
        deepest: usize,
        limit: usize,
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.now += 1;
            self.deepest = self.deepest.max(self.now);
            if self.now > self.limit { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        }
        fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
    }
    let mut depth = Depth { now: 0, deepest: 0, limit };
    let _ = statement.visit(&mut depth);
    depth.deepest
}

struct Rewriter {
    error: Option<QueryError>,
    /// The next query visited is the statement's own (its columns are the answer's).
    outermost: bool,
}

impl VisitorMut for Rewriter {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        // ClickHouse's `PREWHERE` parses, but DataFusion plans without it: every row came back.
        fn has_prewhere(body: &datafusion::sql::sqlparser::ast::SetExpr) -> bool {
            use datafusion::sql::sqlparser::ast::SetExpr;
            match body {
                SetExpr::Select(s) => s.prewhere.is_some(),
                SetExpr::SetOperation { left, right, .. } => has_prewhere(left) || has_prewhere(right),
                _ => false,
            }
        }
        if has_prewhere(&query.body) {
            self.error = Some(QueryError::InvalidSql("PREWHERE is ClickHouse's; on the lake write the condition in WHERE".into()));
            return ControlFlow::Break(());
        }
        alias_repeated_outputs(&mut query.body);
        if std::mem::take(&mut self.outermost)
            && let Err(e) = realias_repeated_aliases(query)
        {
            self.error = Some(e);
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        // A long chain of ANDs or ORs, as written, is as deep as it is long: rebalanced.
        if let Expr::BinaryOp { op: op @ (BinaryOperator::And | BinaryOperator::Or), .. } = expr {
            let op = op.clone();
            let mut terms = Vec::new();
            flatten(std::mem::replace(expr, Expr::value(Value::Null)), &op, &mut terms);
            *expr = balanced(terms, &op);
        }
        ControlFlow::Continue(())
    }

    fn post_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table { name, args: Some(_), alias: Some(alias), .. } = factor
            && alias.columns.is_empty()
            && let [part] = name.0.as_slice()
            && part.as_ident().is_some_and(|f| ONE_COLUMN_TABLE_FUNCTIONS.contains(&f.value.to_ascii_lowercase().as_str()))
        {
            alias.columns.push(TableAliasColumnDef { name: alias.name.clone(), data_type: None });
        }
        ControlFlow::Continue(())
    }

    fn post_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<()> {
        match rewrite_expr(expr) {
            Ok(Some(new)) => *expr = new,
            Ok(None) => {}
            Err(e) => {
                self.error = Some(e);
                return ControlFlow::Break(());
            }
        }
        ControlFlow::Continue(())
    }
}

/// In each `SELECT` of `body` (not of nested queries, which are visited on their own), alias every
/// output column written exactly like an earlier unaliased one: DataFusion names them alike and
/// refuses the projection.
fn alias_repeated_outputs(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => {
            alias_casts_of_columns(select);
            alias_repeated_in(select);
        }
        SetExpr::SetOperation { left, right, .. } => {
            alias_repeated_outputs(left);
            alias_repeated_outputs(right);
        }
        _ => {}
    }
}

/// PostgreSQL's name for an unaliased `x AT TIME ZONE z` output column (the function it calls).
const AT_TIME_ZONE_NAME: &str = "timezone";

fn alias_repeated_in(select: &mut Select) {
    // An unaliased `x AT TIME ZONE z` is named `timezone` (`timezone_2`, … when that is taken),
    // as PostgreSQL names it: DataFusion names it after `x`, so with `ORDER BY x` (which adds `x`
    // to the projection) it refused the statement for two columns of one name.
    let is_zone = |e: &Expr| matches!(unnested(e), Expr::AtTimeZone { .. });
    if select.projection.iter().any(|item| matches!(item, SelectItem::UnnamedExpr(e) if is_zone(e))) {
        let mut taken = output_names(&select.projection, |e| (!is_zone(e)).then(|| output_key(e)));
        for item in &mut select.projection {
            let SelectItem::UnnamedExpr(expr) = item else { continue };
            if !is_zone(expr) {
                continue;
            }
            let alias = std::iter::once(AT_TIME_ZONE_NAME.to_owned())
                .chain((2..).map(|n| format!("{AT_TIME_ZONE_NAME}_{n}")))
                .find(|a| !taken.contains(a))
                .expect("an unused name");
            taken.push(alias.clone());
            *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias: Ident::with_quote('"', alias) };
        }
    }
    // The name DataFusion gives an unaliased output column, as far as it matters here: a column's
    // own name (`site`, `t.site`), else the expression as written, unquoted parts in lower case.
    let named: Vec<Option<String>> = select
        .projection
        .iter()
        .map(|item| match item {
            SelectItem::UnnamedExpr(e) => Some(output_key(e)),
            _ => None,
        })
        .collect();
    let repeats = named.iter().enumerate().any(|(i, w)| w.is_some() && named[..i].contains(w));
    if !repeats {
        return;
    }
    let mut taken = output_names(&select.projection, |e| Some(output_key(e)));
    for i in 0..select.projection.len() {
        let Some(key) = &named[i] else { continue };
        if !named[..i].contains(&named[i]) {
            continue;
        }
        let SelectItem::UnnamedExpr(expr) = &select.projection[i] else { continue };
        let base = match uncast(expr) {
            Expr::Identifier(id) => id.value.clone(),
            Expr::CompoundIdentifier(ids) => ids.last().map_or_else(|| key.clone(), |id| id.value.clone()),
            e => e.to_string(),
        };
        let alias = (2..).map(|n| format!("{base}_{n}")).find(|a| !taken.contains(&a.to_lowercase())).expect("an unused name");
        taken.push(alias.to_lowercase());
        select.projection[i] = SelectItem::ExprWithAlias { expr: expr.clone(), alias: Ident::with_quote('"', alias) };
    }
}

/// In the statement's own `SELECT` (`query`, the outermost), give each output column aliased
/// like an earlier one (`SELECT 1 AS a, 2 AS a`; `A` and `a` alike unless quoted) the alias
/// `<alias>_2`, `<alias>_3`, … (a name no other output column has): PostgreSQL answers both,
/// DataFusion refused the projection. Over the Postgres wire both keep the alias written.
/// `ORDER BY a` is refused as ambiguous, as PostgreSQL refuses it; in a subquery or a `WITH`
/// query, where a later reference would be ambiguous, repeated aliases stay refused.
fn realias_repeated_aliases(query: &mut Query) -> Result<()> {
    let SetExpr::Select(select) = query.body.as_mut() else { return Ok(()) };
    let aliases: Vec<String> = select.projection.iter().filter_map(|item| match item {
        SelectItem::ExprWithAlias { alias, .. } => Some(folded(alias)),
        _ => None,
    }).collect();
    let repeated: Vec<&String> = aliases.iter().enumerate().filter(|(i, a)| aliases[..*i].contains(a)).map(|(_, a)| a).collect();
    if repeated.is_empty() {
        return Ok(());
    }
    if let Some(datafusion::sql::sqlparser::ast::OrderBy { kind: datafusion::sql::sqlparser::ast::OrderByKind::Expressions(keys), .. }) = &query.order_by {
        for key in keys {
            if let Expr::Identifier(id) = &key.expr
                && repeated.contains(&&folded(id))
            {
                return Err(QueryError::InvalidSql(format!("ORDER BY \"{}\" is ambiguous: more than one output column is named so", id.value)));
            }
        }
    }
    let mut taken = output_names(&select.projection, |e| Some(output_key(e)));
    let mut seen = Vec::new();
    for item in &mut select.projection {
        let SelectItem::ExprWithAlias { alias, .. } = item else { continue };
        if !seen.contains(&folded(alias)) {
            seen.push(folded(alias));
            continue;
        }
        let renamed = (2..).map(|n| format!("{}_{n}", alias.value)).find(|a| !taken.contains(&a.to_lowercase())).expect("an unused name");
        taken.push(renamed.to_lowercase());
        *alias = Ident::with_quote('"', renamed);
    }
    Ok(())
}

/// Alias each unaliased cast of a column (`ts::date`, `(ts AT TIME ZONE 'UTC')::text`) by the
/// column's name, the name PostgreSQL and DataFusion give it, unless another output column has
/// that name (`ts::date, ts`: `ORDER BY ts` is then the column, as DataFusion reads it, where
/// PostgreSQL refuses it as ambiguous). `ORDER BY ts` then means that output column, as in
/// PostgreSQL; DataFusion added the column `ts` to the projection beside it and refused two
/// columns named `ts`. Runs before [`alias_repeated_in`] names repeated columns apart.
fn alias_casts_of_columns(select: &mut Select) {
    let mut taken = output_names(&select.projection, |e| Some(output_key(e)));
    for i in 0..select.projection.len() {
        let SelectItem::UnnamedExpr(expr) = &select.projection[i] else { continue };
        // Casts only: `x AT TIME ZONE z` itself is named `timezone`.
        if !matches!(unnested(expr), Expr::Cast { .. }) {
            continue;
        }
        let name = match uncast(expr) {
            Expr::Identifier(id) => folded(id),
            Expr::CompoundIdentifier(ids) => match ids.last() {
                Some(id) => folded(id),
                None => continue,
            },
            _ => continue,
        };
        if taken.iter().filter(|t| **t == name.to_lowercase()).count() > 1 {
            continue;
        }
        taken.push(name.to_lowercase());
        select.projection[i] = SelectItem::ExprWithAlias { expr: expr.clone(), alias: Ident::with_quote('"', name) };
    }
}

/// `statement` with every unaliased output column of each of its `SELECT`s that is not a column
/// aliased by its expression as written (`round(2.5)`, `round(2.5)_2`, …; lower case outside
/// quotes), for a second planning after DataFusion refused two columns it named alike though
/// they are written differently (`round(2.5::float8), round(2.5)`: it names casts as what they
/// cast). Over the Postgres wire the columns keep PostgreSQL's names.
pub fn alias_every_output(statement: &mut DfStatement) {
    struct Aliaser;
    impl VisitorMut for Aliaser {
        type Break = ();
        fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
            fn selects(body: &mut SetExpr, f: &mut dyn FnMut(&mut Select)) {
                match body {
                    SetExpr::Select(select) => f(select),
                    SetExpr::SetOperation { left, right, .. } => {
                        selects(left, f);
                        selects(right, f);
                    }
                    _ => {}
                }
            }
            selects(&mut query.body, &mut |select| {
                let is_column = |e: &Expr| matches!(e, Expr::Identifier(_) | Expr::CompoundIdentifier(_));
                // Names kept: columns' and aliases'.
                let mut used = output_names(&select.projection, |e| is_column(e).then(|| output_key(e)));
                for item in &mut select.projection {
                    let SelectItem::UnnamedExpr(expr) = item else { continue };
                    if is_column(expr) {
                        continue;
                    }
                    let key = output_key(expr);
                    let alias = std::iter::once(key.clone()).chain((2..).map(|n| format!("{key}_{n}"))).find(|a| !used.contains(a)).expect("an unused name");
                    used.push(alias.clone());
                    *item = SelectItem::ExprWithAlias { expr: expr.clone(), alias: Ident::with_quote('"', alias) };
                }
            });
            ControlFlow::Continue(())
        }
    }
    if let DfStatement::Statement(s) = statement {
        let _ = s.visit(&mut Aliaser);
    }
}

/// Names the output columns of `projection` have: every alias (lower case), and each unaliased
/// column's that `name` gives.
fn output_names(projection: &[SelectItem], name: impl Fn(&Expr) -> Option<String>) -> Vec<String> {
    projection
        .iter()
        .filter_map(|item| match item {
            SelectItem::ExprWithAlias { alias, .. } => Some(alias.value.to_lowercase()),
            SelectItem::UnnamedExpr(e) => name(e),
            _ => None,
        })
        .collect()
}

/// `e` without the brackets around it.
pub fn unnested(mut e: &Expr) -> &Expr {
    while let Expr::Nested(inner) = e {
        e = inner;
    }
    e
}

/// The text of an interval literal written without fields (`interval '1 day 02:00'`, not
/// `interval '1' day`), the form PostgreSQL's interval input reads.
fn plain_interval_text(i: &datafusion::sql::sqlparser::ast::Interval) -> Option<&str> {
    if i.leading_field.is_some() || i.last_field.is_some() || i.leading_precision.is_some() || i.fractional_seconds_precision.is_some() {
        return None;
    }
    match i.value.as_ref() {
        Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(text), .. }) => Some(text),
        _ => None,
    }
}

/// `interval 'text'`, without fields.
fn interval_literal(text: String) -> Expr {
    Expr::Interval(datafusion::sql::sqlparser::ast::Interval {
        value: Box::new(Expr::value(Value::SingleQuotedString(text))),
        leading_field: None,
        leading_precision: None,
        last_field: None,
        fractional_seconds_precision: None,
    })
}

/// An identifier as it names a column: unquoted ones fold to lower case.
pub fn folded(id: &Ident) -> String {
    if id.quote_style.is_some() { id.value.clone() } else { id.value.to_lowercase() }
}

/// `e` without the casts and brackets around it, which DataFusion leaves out of a column's name
/// (`ts::date` is named `ts`, as in PostgreSQL).
fn uncast(mut e: &Expr) -> &Expr {
    loop {
        match e {
            // DataFusion names a cast, and a zone's time, as the value it is of.
            Expr::Cast { expr, .. } | Expr::Nested(expr) | Expr::AtTimeZone { timestamp: expr, .. } => e = expr,
            _ => return e,
        }
    }
}

/// See [`alias_repeated_in`].
fn output_key(e: &Expr) -> String {
    match uncast(e) {
        Expr::Identifier(id) => folded(id),
        Expr::CompoundIdentifier(ids) => ids.last().map(folded).unwrap_or_default(),
        e => {
            // Lower case outside quotes: `COUNT(*)` is `count(*)`, `'A'` stays `'A'`.
            let mut out = String::new();
            let mut quote: Option<char> = None;
            for c in e.to_string().chars() {
                match quote {
                    Some(q) if c == q => quote = None,
                    Some(_) => {}
                    None if c == '\'' || c == '"' => quote = Some(c),
                    None => {
                        out.push(c.to_ascii_lowercase());
                        continue;
                    }
                }
                out.push(c);
            }
            out
        }
    }
}

/// The numbers of the parameters of `sql` that are the list of an `ANY`/`ALL` (`x = ANY ($2)` → 2).
/// Empty when `sql` does not parse.
pub fn array_placeholders(sql: &str) -> Vec<usize> {
    struct Found(Vec<usize>);
    impl Visitor for Found {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::AnyOp { right, .. } | Expr::AllOp { right, .. } = expr
                && let Some(n) = placeholder(right)
            {
                self.0.push(n);
            }
            ControlFlow::Continue(())
        }
    }
    let mut found = Found(Vec::new());
    if let Ok(statements) = crate::sql_parse::datafusion_statements(sql) {
        for statement in statements {
            if let DfStatement::Statement(s) = statement {
                let _ = s.visit(&mut found);
            }
        }
    }
    found.0.sort_unstable();
    found.0.dedup();
    found.0
}

/// `n` of a placeholder `$n`, possibly parenthesised.
fn placeholder(expr: &Expr) -> Option<usize> {
    match expr {
        Expr::Nested(inner) => placeholder(inner),
        Expr::Value(ValueWithSpan { value: Value::Placeholder(p), .. }) => p.strip_prefix('$')?.parse().ok(),
        _ => None,
    }
}

/// PostgreSQL's set-returning functions DataFusion has, whose result is one column (`value`).
/// (DataFusion's own `range`, which PostgreSQL has not, keeps DataFusion's naming: `r.value`.)
const ONE_COLUMN_TABLE_FUNCTIONS: &[&str] = &["generate_series"];

/// Whether a `float` type with this precision is PostgreSQL's `double precision`.
fn is_pg_double(info: &ExactNumberInfo) -> bool {
    match info {
        ExactNumberInfo::None => true,
        ExactNumberInfo::Precision(p) | ExactNumberInfo::PrecisionAndScale(p, _) => *p >= 25,
    }
}

fn rewrite_expr(expr: &Expr) -> Result<Option<Expr>> {
    match expr {
        Expr::BinaryOp { left, op: BinaryOperator::BitwiseXor, right } => {
            Ok(Some(Expr::BinaryOp { left: left.clone(), op: BinaryOperator::PGExp, right: right.clone() }))
        }
        Expr::TypedString(t) if matches!(&t.data_type, DataType::Float(info) if is_pg_double(info)) => {
            let mut t = t.clone();
            t.data_type = DataType::DoublePrecision;
            Ok(Some(Expr::TypedString(t)))
        }
        Expr::Cast { kind, expr, data_type: DataType::Float(info), array, format } if is_pg_double(info) => Ok(Some(Expr::Cast {
            kind: kind.clone(),
            expr: expr.clone(),
            data_type: DataType::DoublePrecision,
            array: *array,
            format: format.clone(),
        })),
        Expr::AnyOp { left, compare_op, right, .. } | Expr::AllOp { left, compare_op, right } if placeholder(right).is_some() => {
            Ok(Some(Expr::BinaryOp { left: left.clone(), op: compare_op.clone(), right: right.clone() }))
        }
        Expr::AnyOp { left, compare_op, right, .. } => Ok(array_elements(right)?.map(|list| quantified(left, compare_op, list, true))),
        Expr::AllOp { left, compare_op, right } => Ok(array_elements(right)?.map(|list| quantified(left, compare_op, list, false))),
        Expr::Like { negated, any: false, expr, pattern, escape_char: Some(escape) } => {
            Ok(backslash_pattern(pattern, escape)?.map(|pattern| Expr::Like {
                negated: *negated,
                any: false,
                expr: expr.clone(),
                pattern: Box::new(pattern),
                escape_char: None,
            }))
        }
        Expr::ILike { negated, any: false, expr, pattern, escape_char: Some(escape) } => {
            Ok(backslash_pattern(pattern, escape)?.map(|pattern| Expr::ILike {
                negated: *negated,
                any: false,
                expr: expr.clone(),
                pattern: Box::new(pattern),
                escape_char: None,
            }))
        }
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("to_char") => postgres_to_char(f, false),
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("mod") => Ok(postgres_mod(f)),
        Expr::Function(f) if f.name.to_string().eq_ignore_ascii_case("date_trunc") || f.name.to_string().eq_ignore_ascii_case("timezone") => Ok(zoned_call(f)),
        Expr::Function(f) if let Some(name) = renamed_function(&f.name.to_string()) => {
            let mut f = f.clone();
            f.name = datafusion::sql::sqlparser::ast::ObjectName::from(vec![Ident::new(name)]);
            Ok(Some(Expr::Function(f)))
        }
        Expr::BinaryOp { left, op: op @ (BinaryOperator::Plus | BinaryOperator::Minus), right } => {
            let interval = |e: &Expr| match e {
                Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(text), .. }) => {
                    Some(interval_literal(crate::time_text::interval_of_text(text)?.arrow_text()))
                }
                _ => None,
            };
            let is_text = |e: &Expr| matches!(e, Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(_), .. }));
            let (mut l, mut r) = (left.as_ref().clone(), right.as_ref().clone());
            let mut changed = false;
            match (interval(left), interval(right)) {
                (None, Some(iv)) if !is_text(left) => (r, changed) = (iv, true),
                (Some(iv), None) if *op == BinaryOperator::Plus && !is_text(right) => (l, changed) = (iv, true),
                _ => {}
            }
            // A date and an interval make a timestamp, as in PostgreSQL (DataFusion kept a date,
            // dropping the time of day). Written as such here, where `VALUES` and a recursive
            // query's anchor take it; [`crate::fraction`] makes any other date one on the plan.
            if is_interval_form(&r) && is_date_form(&l) {
                (l, changed) = (timestamp_of(l), true);
            } else if *op == BinaryOperator::Plus && is_interval_form(&l) && is_date_form(&r) {
                (r, changed) = (timestamp_of(r), true);
            }
            Ok(changed.then(|| Expr::BinaryOp { left: Box::new(l), op: op.clone(), right: Box::new(r) }))
        }
        Expr::Function(f) if ["to_timestamp", "to_date"].iter().any(|n| f.name.to_string().eq_ignore_ascii_case(n)) => postgres_to_char(f, true),
        Expr::Extract { .. } => Ok(Some(numeric_extract(expr.clone()))),
        Expr::AtTimeZone { timestamp, time_zone } => Ok(zone_name(time_zone).map(|zone| Expr::AtTimeZone {
            timestamp: timestamp.clone(),
            time_zone: Box::new(Expr::value(Value::SingleQuotedString(zone))),
        })),
        Expr::BinaryOp { left, op: op @ (BinaryOperator::Multiply | BinaryOperator::Divide), right } => match scaled_interval(Some(left), op, right)? {
            Some(literal) => Ok(Some(literal)),
            None => Ok(interval_scaling_call(left, op, right)),
        },
        // An interval literal as PostgreSQL reads it (`interval '1 day 02:00'`, `'@ 1 hour ago'`),
        // written in the amounts and units DataFusion reads.
        Expr::Interval(i) if let Some(text) = plain_interval_text(i) => {
            let Some(read) = crate::time_text::interval_of_text(text) else { return Ok(None) };
            let written = read.arrow_text();
            Ok((written != text).then(|| interval_literal(written)))
        }
        Expr::UnaryOp { op: datafusion::sql::sqlparser::ast::UnaryOperator::Minus, expr: inner } => scaled_interval(None, &BinaryOperator::Multiply, inner),
        _ => Ok(None),
    }
}

/// The name of the time zone a literal `AT TIME ZONE 'europe/paris'` names, as Arrow reads it
/// (`Europe/Paris`): PostgreSQL reads zone names in any case, Arrow only as the zone database
/// writes them (`'utc'` failed). `None` when the literal needs no change or names no zone.
fn zone_name(zone: &Expr) -> Option<String> {
    let Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(name), .. }) = zone else { return None };
    let trimmed = name.trim();
    let known = chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()).find(|n| n.eq_ignore_ascii_case(trimmed))?;
    (known != name).then(|| known.to_owned())
}

/// `interval '1 hour 30 minutes' * 2`, `3 * interval '1 day'`, `interval '1 day' / 3`,
/// `-interval '1 hour'`: the interval literal scaled as PostgreSQL scales it
/// ([`crate::time_text::scaled_interval`]); DataFusion multiplies no interval. `None` unless one
/// side is an interval literal PostgreSQL's input reads and the other (the divisor, for `/`) a
/// number; an error for a division by zero.
fn scaled_interval(left: Option<&Expr>, op: &BinaryOperator, right: &Expr) -> Result<Option<Expr>> {
    use datafusion::sql::sqlparser::ast::UnaryOperator;
    use crate::time_text::{Interval, interval_of_text};
    fn number(e: &Expr) -> Option<f64> {
        match unnested(e) {
            Expr::Value(ValueWithSpan { value: Value::Number(n, _), .. }) => n.parse().ok(),
            Expr::UnaryOp { op: UnaryOperator::Minus, expr } => number(expr).map(|n| -n),
            Expr::UnaryOp { op: UnaryOperator::Plus, expr } => number(expr),
            _ => None,
        }
    }
    fn interval(e: &Expr) -> Option<Interval> {
        match unnested(e) {
            Expr::Interval(i) => interval_of_text(plain_interval_text(i)?),
            _ => None,
        }
    }
    let operands = match (left, op) {
        // `-interval '…'`
        (None, _) => interval(right).map(|i| (i, -1.0, false)),
        (Some(left), BinaryOperator::Multiply) => match (interval(left), interval(right)) {
            (Some(i), None) => number(right).map(|n| (i, n, false)),
            (None, Some(i)) => number(left).map(|n| (i, n, false)),
            _ => None,
        },
        (Some(left), _) => interval(left).zip(number(right)).map(|(i, n)| (i, n, true)),
    };
    let Some((value, factor, divide)) = operands else { return Ok(None) };
    if divide && factor == 0.0 {
        return Err(QueryError::InvalidSql("division by zero (an interval divided by 0)".into()));
    }
    let Some(scaled) = crate::time_text::scaled_interval(value, factor, divide) else {
        return Err(QueryError::InvalidSql("interval out of range".into()));
    };
    Ok(Some(interval_literal(scaled.arrow_text())))
}

/// `date_trunc(unit, t, zone)`, truncated at `zone`'s wall clock and given back as a UTC time, as
/// PostgreSQL does: `CAST(date_trunc(unit, t AT TIME ZONE zone) AS TIMESTAMPTZ)` (DataFusion's
/// `date_trunc` truncates a zone's time at its wall clock, and takes two arguments only); and
/// `timezone(zone, t)`, PostgreSQL's function for `t AT TIME ZONE zone`. `None` for other calls.
fn zoned_call(f: &datafusion::sql::sqlparser::ast::Function) -> Option<Expr> {
    use datafusion::sql::sqlparser::ast::{CastKind, FunctionArg, FunctionArgExpr, FunctionArguments, TimezoneInfo};
    let FunctionArguments::List(list) = &f.args else { return None };
    if f.over.is_some() || f.filter.is_some() || !list.clauses.is_empty() {
        return None;
    }
    let args: Vec<&Expr> = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
            _ => None,
        })
        .collect::<Option<_>>()?;
    let at_zone = |t: &Expr, zone: &Expr| {
        let zone = zone_name(zone).map_or_else(|| zone.clone(), |z| Expr::value(Value::SingleQuotedString(z)));
        Expr::AtTimeZone { timestamp: Box::new(Expr::Nested(Box::new(t.clone()))), time_zone: Box::new(zone) }
    };
    match (f.name.to_string().to_ascii_lowercase().as_str(), args.as_slice()) {
        ("timezone", [zone, t]) => Some(Expr::Nested(Box::new(at_zone(t, zone)))),
        ("date_trunc", [unit, t, zone]) => {
            let mut truncated = f.clone();
            if let FunctionArguments::List(l) = &mut truncated.args {
                l.args = vec![FunctionArg::Unnamed(FunctionArgExpr::Expr((*unit).clone())), FunctionArg::Unnamed(FunctionArgExpr::Expr(at_zone(t, zone)))];
            }
            Some(Expr::Cast {
                kind: CastKind::Cast,
                expr: Box::new(Expr::Function(truncated)),
                data_type: DataType::Timestamp(None, TimezoneInfo::WithTimeZone),
                array: false,
                format: None,
            })
        }
        _ => None,
    }
}

/// Whether `e` is written as a date: `date '…'`, a cast to `date`, `current_date`.
fn is_date_form(e: &Expr) -> bool {
    match unnested(e) {
        Expr::TypedString(t) => matches!(t.data_type, DataType::Date),
        Expr::Cast { data_type: DataType::Date, .. } => true,
        Expr::Function(f) => f.name.to_string().eq_ignore_ascii_case("current_date"),
        _ => false,
    }
}

/// Whether `e` is written as an interval: a literal, a cast to `interval`, a scaled one.
fn is_interval_form(e: &Expr) -> bool {
    match unnested(e) {
        Expr::Interval(_) | Expr::Cast { data_type: DataType::Interval { .. }, .. } => true,
        Expr::Function(f) => {
            let name = f.name.to_string().to_ascii_lowercase();
            [crate::time_udf::interval_scaling_name(false), crate::time_udf::interval_scaling_name(true)].contains(&name.as_str())
        }
        _ => false,
    }
}

/// `CAST(e AS TIMESTAMP)`.
fn timestamp_of(e: Expr) -> Expr {
    use datafusion::sql::sqlparser::ast::{CastKind, TimezoneInfo};
    Expr::Cast { kind: CastKind::Cast, expr: Box::new(e), data_type: DataType::Timestamp(None, TimezoneInfo::None), array: false, format: None }
}

/// `interval * x`, `x * interval`, `interval / x` where the interval is written as one (a literal,
/// a cast to `interval`) and `x` is not: `edgelens_interval_mul(interval, x)` or
/// `edgelens_interval_div(interval, x)` ([`crate::time_udf`]); `None` otherwise.
fn interval_scaling_call(left: &Expr, op: &BinaryOperator, right: &Expr) -> Option<Expr> {
    fn is_interval(e: &Expr) -> bool {
        match e {
            Expr::UnaryOp { expr, .. } => is_interval(expr),
            e => is_interval_form(e),
        }
    }
    let divide = *op == BinaryOperator::Divide;
    let (interval, factor) = match (is_interval(left), is_interval(right)) {
        (true, false) => (left, right),
        (false, true) if !divide => (right, left),
        _ => return None,
    };
    Some(function_call(crate::time_udf::interval_scaling_name(divide), vec![interval.clone(), factor.clone()]))
}

/// DataFusion's name of a PostgreSQL function it has under another name (`sign` is `signum`;
/// `clock_timestamp()` and the others are the statement's `now()`, as DataFusion gives one time
/// per statement).
fn renamed_function(name: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().as_str() {
        "sign" => Some("signum"),
        "ceiling" => Some("ceil"),
        "clock_timestamp" | "statement_timestamp" | "transaction_timestamp" => Some("now"),
        _ => None,
    }
}

/// `EXTRACT(field FROM t)` as `date_part('field', t)` — what DataFusion plans it as, but through
/// the session's `date_part` ([`crate::time_udf::date_part`]; DataFusion's planner calls its own)
/// — marked as the `numeric` it is in PostgreSQL (14 and later), where `date_part(…)` is a `double
/// precision`: [`crate::fraction`] then rounds a cast of it to an integer as a `numeric` (half
/// away from zero), and divides it as one. The mark changes no value nor type.
fn numeric_extract(extract: Expr) -> Expr {
    let part = match extract {
        Expr::Extract { field, expr, .. } => function_call("date_part", vec![Expr::value(Value::SingleQuotedString(format!("{field}"))), *expr]),
        other => other,
    };
    function_call(crate::fraction::NUMERIC_MARK, vec![part])
}

/// `name(args…)`, a plain call.
pub(crate) fn function_call(name: &str, args: Vec<Expr>) -> Expr {
    use datafusion::sql::sqlparser::ast::{Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, ObjectName};
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args.into_iter().map(|a| FunctionArg::Unnamed(FunctionArgExpr::Expr(a))).collect(),
            clauses: Vec::new(),
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: Vec::new(),
    })
}

/// `mod(a, b)`: `(a % b)`, the remainder with the sign of `a`, as in PostgreSQL (DataFusion has
/// the operator only). Any other number of arguments is left for the planner to refuse.
fn postgres_mod(f: &datafusion::sql::sqlparser::ast::Function) -> Option<Expr> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let FunctionArguments::List(list) = &f.args else { return None };
    let [FunctionArg::Unnamed(FunctionArgExpr::Expr(a)), FunctionArg::Unnamed(FunctionArgExpr::Expr(b))] = list.args.as_slice() else { return None };
    if f.over.is_some() || f.filter.is_some() || !list.clauses.is_empty() {
        return None;
    }
    let (a, b) = (Box::new(Expr::Nested(Box::new(a.clone()))), Box::new(Expr::Nested(Box::new(b.clone()))));
    Some(Expr::Nested(Box::new(Expr::BinaryOp { left: a, op: BinaryOperator::Modulo, right: b })))
}

/// `to_char(t, 'YYYY-MM-DD HH24:MI')` with PostgreSQL's template patterns: DataFusion's `to_char`
/// takes chrono's (`%Y-%m-%d %H:%M`) and copies PostgreSQL's as text. A literal template without
/// `%` is read as PostgreSQL's and rewritten; one with `%` is taken as chrono's. The same for the
/// template of `to_timestamp(text, template)` and `to_date(text, template)` (`parse`), which
/// DataFusion reads as chrono's; as PostgreSQL does, those read a month and a day left out of the
/// template as the first (`to_date('2026-11', 'YYYY-MM')`), minutes left out after an hour as 0,
/// and a 12-hour hour without `AM`/`PM` as before noon: the text is given ` 01`, ` 00`, ` AM`
/// and the template ` %m`, ` %d`, ` %M`, ` %p`, as chrono reads whole dates and times only.
fn postgres_to_char(f: &datafusion::sql::sqlparser::ast::Function, parse: bool) -> Result<Option<Expr>> {
    use datafusion::sql::sqlparser::ast::{FunctionArg, FunctionArgExpr, FunctionArguments};
    let FunctionArguments::List(list) = &f.args else { return Ok(None) };
    let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(template), span })))) = list.args.get(1) else {
        return Ok(None);
    };
    if list.args.len() != 2 || template.contains('%') {
        return Ok(None);
    }
    let mut chrono = chrono_template(template, parse).map_err(QueryError::InvalidSql)?;
    let mut f = f.clone();
    let FunctionArguments::List(list) = &mut f.args else { return Ok(None) };
    let has = |chrono: &str, specs: &[&str]| specs.iter().any(|p| chrono.contains(p));
    if parse {
        // What the template leaves out, as PostgreSQL reads it: (text, chrono) appended to both.
        let mut missing: Vec<(&str, &str)> = Vec::new();
        // A template without a year reads no date: left to chrono to refuse.
        if has(&chrono, &["%Y", "%G", "%y"]) {
            if !has(&chrono, &["%m", "%-m", "%b", "%B", "%j", "%-j", "%V", "%-V"]) {
                missing.push((" 01", " %m"));
            }
            if !has(&chrono, &["%d", "%-d", "%j", "%-j"]) {
                missing.push((" 01", " %d"));
            }
        }
        // An hour without minutes (chrono reads no time then, and dropped the hour).
        if has(&chrono, &["%H", "%-H", "%I", "%-I"]) && !has(&chrono, &["%M", "%-M"]) {
            missing.push((" 00", " %M"));
        }
        // A 12-hour hour without AM/PM is before noon (`12` is midnight, `13` an error).
        if has(&chrono, &["%I", "%-I"]) && !has(&chrono, &["%p", "%P"]) {
            missing.push((" AM", " %p"));
        }
        if !missing.is_empty()
            && let Some(FunctionArg::Unnamed(FunctionArgExpr::Expr(text))) = list.args.first_mut()
        {
            let padding: String = missing.iter().map(|m| m.0).collect();
            chrono.extend(missing.iter().map(|m| m.1));
            let padded = Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(text.clone()))),
                op: BinaryOperator::StringConcat,
                right: Box::new(Expr::value(Value::SingleQuotedString(padding))),
            };
            *text = Expr::Nested(Box::new(padded));
        }
    }
    list.args[1] = FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(chrono), span: *span })));
    Ok(Some(Expr::Function(f)))
}

/// A PostgreSQL `to_char` template for dates and times as chrono's: its patterns (`YYYY`, `MM`,
/// `DD`, `HH24`, `MI`, `SS`, `MS`, `Mon`, `Day`, …, with the `FM` prefix), quoted text, and other
/// characters copied. Patterns chrono has no equal for are an error, not text. To `parse` a text
/// (`to_timestamp`, `to_date`), names are read in any case (`MON`, `DAY`), as PostgreSQL reads
/// them.
pub fn chrono_template(template: &str, parse: bool) -> std::result::Result<String, String> {
    // The longest pattern at a place is taken (`SSSS` before `SS`). `None`: a PostgreSQL
    // pattern chrono cannot give.
    const PATTERNS: &[(&str, Option<(&str, &str)>)] = &[
        // (pattern, (chrono, chrono under FM))
        ("HH24", Some(("%H", "%-H"))),
        ("HH12", Some(("%I", "%-I"))),
        ("IYYY", Some(("%G", "%G"))),
        ("YYYY", Some(("%Y", "%Y"))),
        ("MONTH", None),
        ("Month", Some(("%B", "%B"))),
        ("month", None),
        ("A.M.", None),
        ("P.M.", None),
        ("a.m.", None),
        ("p.m.", None),
        ("Y,YYY", None),
        ("DDD", Some(("%j", "%-j"))),
        ("MON", None),
        ("Mon", Some(("%b", "%b"))),
        ("mon", None),
        ("DAY", None),
        ("Day", Some(("%A", "%A"))),
        ("day", None),
        ("YYY", None),
        ("HH", Some(("%I", "%-I"))),
        ("MI", Some(("%M", "%-M"))),
        ("SS", Some(("%S", "%-S"))),
        ("MS", Some(("%3f", "%3f"))),
        ("US", Some(("%6f", "%6f"))),
        ("AM", Some(("%p", "%p"))),
        ("PM", Some(("%p", "%p"))),
        ("am", Some(("%P", "%P"))),
        ("pm", Some(("%P", "%P"))),
        ("YY", Some(("%y", "%y"))),
        ("MM", Some(("%m", "%-m"))),
        ("DD", Some(("%d", "%-d"))),
        ("DY", None),
        ("Dy", Some(("%a", "%a"))),
        ("dy", None),
        ("IW", Some(("%V", "%-V"))),
        ("WW", None),
        ("TZ", Some(("%Z", "%Z"))),
        ("OF", Some(("%:z", "%:z"))),
        ("SSSS", None),
        ("CC", None),
        ("RM", None),
        ("rm", None),
        ("TH", None),
        ("th", None),
        // Lower case, as PostgreSQL also takes them (where case does not change the output).
        ("hh24", Some(("%H", "%-H"))),
        ("hh12", Some(("%I", "%-I"))),
        ("iyyy", Some(("%G", "%G"))),
        ("yyyy", Some(("%Y", "%Y"))),
        ("ddd", Some(("%j", "%-j"))),
        ("hh", Some(("%I", "%-I"))),
        ("mi", Some(("%M", "%-M"))),
        ("ss", Some(("%S", "%-S"))),
        ("ms", Some(("%3f", "%3f"))),
        ("us", Some(("%6f", "%6f"))),
        ("yy", Some(("%y", "%y"))),
        ("mm", Some(("%m", "%-m"))),
        ("dd", Some(("%d", "%-d"))),
        ("iw", Some(("%V", "%-V"))),
        ("Q", None),
        ("J", None),
        ("W", None),
        ("D", None),
        ("Y", None),
        ("I", None),
    ];
    let parsed_as = |p: &str| -> Option<&'static str> {
        match p {
            "MON" | "mon" => Some("%b"),
            "MONTH" | "month" => Some("%B"),
            "DAY" | "day" => Some("%A"),
            "DY" | "dy" => Some("%a"),
            _ => None,
        }
    };
    let mut out = String::new();
    let mut rest = template;
    let mut fill = false;
    while let Some(c) = rest.chars().next() {
        if c == '"' {
            // Quoted text, `\"` for a quote inside it.
            let mut chars = rest[1..].char_indices();
            let mut end = rest.len();
            while let Some((i, q)) = chars.next() {
                match q {
                    '\\' => {
                        if let Some((_, e)) = chars.next() {
                            out.push(e);
                        }
                    }
                    '"' => {
                        end = i + 2;
                        break;
                    }
                    q => out.push(q),
                }
            }
            rest = &rest[end.min(rest.len())..];
            continue;
        }
        if rest.starts_with("FM") || rest.starts_with("fm") {
            fill = true;
            rest = &rest[2..];
            continue;
        }
        let found = PATTERNS.iter().filter(|(p, _)| rest.starts_with(p)).max_by_key(|(p, _)| p.len());
        if parse && let Some((p, _)) = found && let Some(spec) = parsed_as(p) {
            out.push_str(spec);
            rest = &rest[p.len()..];
            fill = false;
            continue;
        }
        match found {
            Some((p, Some((plain, filled)))) => {
                out.push_str(if fill { filled } else { plain });
                rest = &rest[p.len()..];
            }
            Some((p, None)) => {
                let function = if parse { "template" } else { "to_char" };
                return Err(format!(
                    "{function} pattern {p} of {template:?} is not supported; use the patterns YYYY, MM, DD, HH24, HH12, MI, SS, MS, US, AM, Mon, Month, Dy, Day, DDD, IW, IYYY, TZ, OF, or chrono's (%Y-%m-%d)"
                ));
            }
            None => {
                if c == '%' {
                    out.push_str("%%");
                } else {
                    out.push(c);
                }
                rest = &rest[c.len_utf8()..];
            }
        }
        fill = false;
    }
    Ok(out)
}

/// The elements of an array operand: `ARRAY[…]` / `[…]`, or a string literal in PostgreSQL's array
/// text form (`'{a,"b c",NULL}'`), either possibly parenthesised or cast (`'{1,2}'::int[]`).
/// `None` for anything else (a subquery, a column).
fn array_elements(operand: &Expr) -> Result<Option<Vec<Expr>>> {
    use datafusion::sql::sqlparser::ast::{ArrayElemTypeDef, CastKind, DataType};
    let elements = match operand {
        Expr::Nested(inner) => return array_elements(inner),
        // `ARRAY[10]::text[]`: each element cast to the element type.
        Expr::Cast { expr, data_type: DataType::Array(elem), .. } => {
            let elem = match elem {
                ArrayElemTypeDef::SquareBracket(t, _) | ArrayElemTypeDef::AngleBracket(t) | ArrayElemTypeDef::Parenthesis(t) => Some(t.as_ref().clone()),
                ArrayElemTypeDef::None => None,
            };
            return Ok(array_elements(expr)?.map(|items| match elem {
                Some(ty) => items
                    .into_iter()
                    .map(|item| Expr::Cast { kind: CastKind::Cast, expr: Box::new(item), data_type: ty.clone(), array: false, format: None })
                    .collect(),
                None => items,
            }));
        }
        Expr::Array(array) => array.elem.clone(),
        Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(text), .. }) => {
            let items = crate::pgwire::types::array_text_elements(text).ok_or_else(|| {
                QueryError::InvalidSql(format!(
                    "{text:?} is not a one-dimensional array literal ({{a,b,\"c d\",NULL}}) for ANY/ALL"
                ))
            })?;
            items
                .into_iter()
                .map(|item| Expr::value(item.map_or(Value::Null, Value::SingleQuotedString)))
                .collect()
        }
        _ => return Ok(None),
    };
    if elements.len() > MAX_ARRAY_ELEMENTS {
        return Err(QueryError::LimitExceeded(format!(
            "an ANY/ALL array of {} elements; at most {MAX_ARRAY_ELEMENTS} are accepted",
            elements.len()
        )));
    }
    Ok(Some(elements))
}

/// `left op ANY (list)` (`any`) or `left op ALL (list)` as an `IN` list or a chain of comparisons.
fn quantified(left: &Expr, op: &BinaryOperator, list: Vec<Expr>, any: bool) -> Expr {
    if list.is_empty() {
        return Expr::value(Value::Boolean(!any));
    }
    match (op, any) {
        (BinaryOperator::Eq, true) => return Expr::InList { expr: Box::new(left.clone()), list, negated: false },
        (BinaryOperator::NotEq, false) => return Expr::InList { expr: Box::new(left.clone()), list, negated: true },
        _ => {}
    }
    let join = if any { BinaryOperator::Or } else { BinaryOperator::And };
    let terms: Vec<Expr> = list
        .into_iter()
        .map(|item| Expr::BinaryOp {
            left: Box::new(Expr::Nested(Box::new(left.clone()))),
            op: op.clone(),
            right: Box::new(Expr::Nested(Box::new(item))),
        })
        .collect();
    Expr::Nested(Box::new(balanced(terms, &join)))
}

/// The operands of a chain of `op` (`a OR b OR c` → a, b, c), in order.
fn flatten(expr: Expr, op: &BinaryOperator, out: &mut Vec<Expr>) {
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::BinaryOp { left, op: o, right } if &o == op => {
                stack.push(*right);
                stack.push(*left);
            }
            other => out.push(other),
        }
    }
}

/// `terms` joined with `op` as a balanced tree: its depth grows with the logarithm of their number,
/// where a chain's would grow with the number itself (and the planner recurses that deep).
fn balanced(mut terms: Vec<Expr>, op: &BinaryOperator) -> Expr {
    if terms.len() == 1 {
        return terms.pop().expect("one term");
    }
    let right = terms.split_off(terms.len() / 2);
    Expr::BinaryOp { left: Box::new(balanced(terms, op)), op: op.clone(), right: Box::new(balanced(right, op)) }
}

/// A literal `LIKE` pattern escaped with `escape` (one character, or none when empty) rewritten to
/// escape with the backslash. `None` when it already uses the backslash; an error when the pattern
/// is not a literal (it cannot be rewritten, and DataFusion takes no other escape character).
fn backslash_pattern(pattern: &Expr, escape: &ValueWithSpan) -> Result<Option<Expr>> {
    let escape = match &escape.value {
        Value::SingleQuotedString(s) => s.as_str(),
        other => return Err(QueryError::InvalidSql(format!("ESCAPE takes a string literal, not {other}"))),
    };
    let mut chars = escape.chars();
    let escape = match (chars.next(), chars.next()) {
        (Some('\\'), None) => return Ok(None),
        (Some(c), None) => Some(c),
        (None, _) => None,
        _ => return Err(QueryError::InvalidSql(format!("invalid escape string {escape:?}: it must be empty or one character"))),
    };
    let Some(text) = literal_text(pattern) else {
        return Err(QueryError::InvalidSql(format!(
            "LIKE ... ESCAPE {:?} needs a literal pattern (or literals joined with ||); write the pattern with \\ as its escape character instead",
            escape.map(String::from).unwrap_or_default()
        )));
    };
    let mut out = String::with_capacity(text.len() + 4);
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if Some(c) == escape {
            match chars.next() {
                Some(next) => {
                    out.push('\\');
                    out.push(next);
                }
                None => return Err(QueryError::InvalidSql("LIKE pattern must not end with escape character".into())),
            }
        } else if c == '\\' {
            out.push_str("\\\\");
        } else {
            out.push(c);
        }
    }
    Ok(Some(Expr::value(Value::SingleQuotedString(out))))
}

/// The text of a string literal, or of literals joined with `||` (`'ab/_' || '%'`, as
/// SQLAlchemy's `startswith(..., autoescape=True)` writes a pattern).
fn literal_text(expr: &Expr) -> Option<String> {
    match expr {
        Expr::Nested(inner) => literal_text(inner),
        Expr::Value(ValueWithSpan { value: Value::SingleQuotedString(text), .. }) => Some(text.clone()),
        Expr::BinaryOp { left, op: BinaryOperator::StringConcat, right } => Some(literal_text(left)? + &literal_text(right)?),
        // `'a'::VARCHAR`, as the SQLAlchemy psycopg dialect casts its parameters.
        Expr::Cast { expr, data_type, .. } => {
            let ty = data_type.to_string().to_ascii_lowercase();
            ["varchar", "text", "char", "string"].iter().any(|t| ty.starts_with(t)).then(|| literal_text(expr)).flatten()
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statement = crate::sql_parse::datafusion_statements(sql).unwrap().pop_front().unwrap();
        rewrite(&mut statement).unwrap();
        statement.to_string()
    }

    fn refused(sql: &str) -> String {
        let mut statement = crate::sql_parse::datafusion_statements(sql).unwrap().pop_front().unwrap();
        rewrite(&mut statement).unwrap_err().to_string()
    }

    /// Regression: `PREWHERE` (ClickHouse's) parsed and was ignored on the lake, which answered
    /// with every row.
    #[test]
    fn prewhere_is_refused_on_the_lake() {
        for sql in ["SELECT count(*) FROM t PREWHERE ts >= 1", "SELECT 1 FROM u UNION ALL SELECT count(*) FROM (SELECT * FROM t PREWHERE x = 1) AS s"] {
            assert!(refused(sql).contains("PREWHERE"), "{sql}");
        }
        assert_eq!(rewritten("SELECT prewhere FROM t WHERE x = 1"), "SELECT prewhere FROM t WHERE x = 1");
    }

    /// Regression: `SELECT ts AT TIME ZONE 'Europe/Berlin' FROM t ORDER BY ts` was refused
    /// ("Projections require unique expression names"): DataFusion named the column `ts`.
    #[test]
    fn an_unaliased_time_zone_conversion_is_named_as_in_postgres() {
        assert_eq!(
            rewritten("SELECT ts AT TIME ZONE 'Europe/Berlin' FROM t ORDER BY ts"),
            r#"SELECT ts AT TIME ZONE 'Europe/Berlin' AS "timezone" FROM t ORDER BY ts"#
        );
        assert_eq!(
            rewritten("SELECT ts AT TIME ZONE 'UTC', ts AT TIME ZONE 'Asia/Tokyo' AS timezone_2, ts AT TIME ZONE 'Europe/Paris' AS b FROM t"),
            r#"SELECT ts AT TIME ZONE 'UTC' AS "timezone", ts AT TIME ZONE 'Asia/Tokyo' AS timezone_2, ts AT TIME ZONE 'Europe/Paris' AS b FROM t"#
        );
        assert_eq!(
            rewritten("SELECT ts AT TIME ZONE 'UTC', ts AT TIME ZONE 'Asia/Tokyo' FROM t"),
            r#"SELECT ts AT TIME ZONE 'UTC' AS "timezone", ts AT TIME ZONE 'Asia/Tokyo' AS "timezone_2" FROM t"#
        );
        // A column named `timezone` keeps its name; a bracketed conversion is named too.
        assert_eq!(
            rewritten("SELECT (ts AT TIME ZONE 'UTC'), timezone, s.timezone_2 FROM s ORDER BY ts"),
            r#"SELECT (ts AT TIME ZONE 'UTC') AS "timezone_3", timezone, s.timezone_2 FROM s ORDER BY ts"#
        );
    }

    /// Regression: PostgreSQL's `to_char` templates came back as their text (one group for every
    /// row of `GROUP BY to_char(ts, 'YYYY-MM-DD HH24:MI')`).
    #[test]
    fn postgres_to_char_templates_become_chrono_formats() {
        assert_eq!(
            rewritten("SELECT to_char(ts, 'YYYY-MM-DD HH24:MI') AS m FROM t GROUP BY 1"),
            "SELECT to_char(ts, '%Y-%m-%d %H:%M') AS m FROM t GROUP BY 1"
        );
        assert_eq!(chrono_template("YYYY-MM-DD\"T\"HH24:MI:SS.MS OF", false).unwrap(), "%Y-%m-%dT%H:%M:%S.%3f %:z");
        assert_eq!(chrono_template("FMDD Mon YYYY, HH12 AM, Dy", false).unwrap(), "%-d %b %Y, %I %p, %a");
        assert_eq!(chrono_template("IYYY-IW / DDD 100 percent", false).unwrap(), "%G-%V / %j 100 percent");
        assert_eq!(chrono_template("yyyy-mm-dd hh24:mi:ss", false).unwrap(), "%Y-%m-%d %H:%M:%S");
        // Read by to_timestamp and to_date: names in any case, a 12-hour hour without AM/PM as it is.
        assert_eq!(chrono_template("DD MON YYYY HH:MI", true).unwrap(), "%d %b %Y %I:%M");
        assert_eq!(chrono_template("HH12:MI PM, Day", true).unwrap(), "%I:%M %p, %A");
        assert!(chrono_template("DD MON YYYY", false).is_err());
        assert_eq!(chrono_template("\"at\" HH24 \"h\", 5%", false).unwrap(), "at %H h, 5%%");
        // A template with % is chrono's already, left as it is.
        assert_eq!(rewritten("SELECT to_char(ts, '%Y %m') FROM t"), "SELECT to_char(ts, '%Y %m') FROM t");
        // What chrono cannot give is an error, not text.
        let e = refused("SELECT to_char(ts, 'YYYY-Q') FROM t");
        assert!(e.contains("pattern Q") && e.contains("not supported"), "{e}");
        assert!(refused("SELECT to_char(ts, 'MONTH') FROM t").contains("pattern MONTH"));
    }

    #[test]
    fn repeated_output_columns_are_aliased() {
        assert_eq!(rewritten("SELECT count(*), count(*) FROM t"), r#"SELECT count(*), count(*) AS "count(*)_2" FROM t"#);
        assert_eq!(rewritten("SELECT site, site, t.site FROM t"), r#"SELECT site, site AS "site_2", t.site AS "site_3" FROM t"#);
        // Named alike by DataFusion though written differently.
        assert_eq!(rewritten("SELECT count(*), COUNT(*) FROM t"), r#"SELECT count(*), COUNT(*) AS "COUNT(*)_2" FROM t"#);
        assert_eq!(rewritten("SELECT value, VALUE, r.value FROM t"), r#"SELECT value, VALUE AS "VALUE_2", r.value AS "value_3" FROM t"#);
        assert_eq!(rewritten("SELECT 'A', 'a', \"X\", x FROM t"), "SELECT 'A', 'a', \"X\", x FROM t");
        // The alias is a name no other column of that SELECT has.
        assert_eq!(rewritten("SELECT 1, 1, 2 AS \"1_2\", 1"), r#"SELECT 1, 1 AS "1_3", 2 AS "1_2", 1 AS "1_4""#);
        // Each SELECT on its own: union sides and subqueries.
        assert_eq!(
            rewritten("SELECT a, a FROM (SELECT b, b FROM t) UNION ALL SELECT c, c FROM u"),
            r#"SELECT a, a AS "a_2" FROM (SELECT b, b AS "b_2" FROM t) UNION ALL SELECT c, c AS "c_2" FROM u"#
        );
        // Regression: DataFusion names a cast after what it casts (as PostgreSQL does), so a cast
        // next to its column was refused.
        assert_eq!(rewritten("SELECT ts, ts::date FROM t"), r#"SELECT ts, ts::DATE AS "ts_2" FROM t"#);
        assert_eq!(
            rewritten("SELECT requests::int, CAST(requests AS BIGINT), (t.requests)::text FROM t"),
            r#"SELECT requests::INT, CAST(requests AS BIGINT) AS "requests_2", (t.requests)::TEXT AS "requests_3" FROM t"#
        );
        // Regression: a cast of a column is named as the column, so `ORDER BY ts` means it, as in
        // PostgreSQL; DataFusion added `ts` beside `ts::date` and refused two columns named `ts`.
        assert_eq!(rewritten("SELECT ts::date FROM t ORDER BY ts"), r#"SELECT ts::DATE AS "ts" FROM t ORDER BY ts"#);
        // Beside the column itself, `ORDER BY ts` stays the column's.
        assert_eq!(rewritten("SELECT ts::date, ts FROM t ORDER BY ts"), r#"SELECT ts::DATE, ts AS "ts_2" FROM t ORDER BY ts"#);
        assert_eq!(
            rewritten("SELECT (t.ts AT TIME ZONE 'UTC')::text, \"Site\"::text, x::int AS y FROM t"),
            r#"SELECT (t.ts AT TIME ZONE 'UTC')::TEXT AS "ts", "Site"::TEXT AS "Site", x::INT AS y FROM t"#
        );
        // Regression: two columns given one alias were refused; PostgreSQL answers both.
        assert_eq!(rewritten("SELECT 1 AS a, 2 AS A, 3 AS a_2, 4 AS \"A\" FROM t"), r#"SELECT 1 AS a, 2 AS "A_3", 3 AS a_2, 4 AS "A" FROM t"#);
        assert_eq!(rewritten("SELECT site AS s, count(*) AS s, sum(x) AS s FROM t"), r#"SELECT site AS s, count(*) AS "s_2", sum(x) AS "s_3" FROM t"#);
        // Only in the statement's own SELECT: a later reference to a subquery's would be ambiguous.
        assert_eq!(rewritten("SELECT a FROM (SELECT 1 AS a, 2 AS a) t"), "SELECT a FROM (SELECT 1 AS a, 2 AS a) t");
        assert!(refused("SELECT site AS s, count(*) AS s FROM t GROUP BY 1 ORDER BY s").contains("ORDER BY \"s\" is ambiguous"));
        assert_eq!(rewritten("SELECT site AS s, count(*) AS s FROM t GROUP BY 1 ORDER BY 2"), r#"SELECT site AS s, count(*) AS "s_2" FROM t GROUP BY 1 ORDER BY 2"#);
        // Columns written differently, or aliased, are left as they are.
        assert_eq!(rewritten("SELECT count(*) AS n, count(*), sum(x) FROM t"), "SELECT count(*) AS n, count(*), sum(x) FROM t");
    }

    #[test]
    fn any_and_all_over_arrays_become_in_lists_and_comparisons() {
        assert_eq!(rewritten("SELECT 1 WHERE x = ANY (ARRAY['r', 'v'])"), "SELECT 1 WHERE x IN ('r', 'v')");
        assert_eq!(rewritten("SELECT 1 WHERE x = ANY(ARRAY[1,2])"), "SELECT 1 WHERE x IN (1, 2)");
        assert_eq!(rewritten("SELECT 1 WHERE x = SOME ('{a,\"b c\",NULL}')"), "SELECT 1 WHERE x IN ('a', 'b c', NULL)");
        assert_eq!(rewritten("SELECT 1 WHERE x = ANY ('{1,2}'::int[])"), "SELECT 1 WHERE x IN (CAST('1' AS INT), CAST('2' AS INT))");
        assert_eq!(rewritten("SELECT 1 WHERE x <> ALL (ARRAY['a'])"), "SELECT 1 WHERE x NOT IN ('a')");
        assert_eq!(rewritten("SELECT 1 WHERE x > ANY (ARRAY[1, 5])"), "SELECT 1 WHERE ((x) > (1) OR (x) > (5))");
        assert_eq!(rewritten("SELECT 1 WHERE x < ALL (ARRAY[1, 5])"), "SELECT 1 WHERE ((x) < (1) AND (x) < (5))");
        assert_eq!(rewritten("SELECT 1 WHERE x = ANY ('{}')"), "SELECT 1 WHERE false");
        assert_eq!(rewritten("SELECT 1 WHERE x <> ALL (ARRAY[])"), "SELECT 1 WHERE true");
        // Nested inside other expressions and subqueries.
        assert_eq!(
            rewritten("SELECT (SELECT count(*) FROM t WHERE s = ANY(ARRAY['a'])) AS n"),
            "SELECT (SELECT count(*) FROM t WHERE s IN ('a')) AS n"
        );
        // A subquery is the planner's.
        assert_eq!(rewritten("SELECT 1 WHERE x = ANY (SELECT y FROM t)"), "SELECT 1 WHERE x = ANY(SELECT y FROM t)");
    }

    #[test]
    fn list_parameters_are_found_and_planned_as_their_elements() {
        assert_eq!(array_placeholders("SELECT 1 FROM t WHERE a = ANY($2) AND b <> ALL (($1)) AND c = $3"), vec![1, 2]);
        assert_eq!(array_placeholders("SELECT 1 FROM t WHERE a = $1"), Vec::<usize>::new());
        assert_eq!(array_placeholders("not sql"), Vec::<usize>::new());
        assert_eq!(rewritten("SELECT 1 FROM t WHERE a = ANY ($1)"), "SELECT 1 FROM t WHERE a = $1");
    }

    #[test]
    fn long_chains_are_planned_as_balanced_trees() {
        // A thousand terms as ANY, and as many ORs as written as the guard lets through: balanced.
        let many = (0..1000).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let ors = (0..=crate::sql_guard::MAX_LOGIC_CHAIN).map(|i| format!("x = {i}")).collect::<Vec<_>>().join(" OR ");
        for sql in [format!("SELECT 1 FROM t WHERE x > ANY ('{{{many}}}')"), format!("SELECT 1 FROM t WHERE {ors}")] {
            let mut statement = crate::sql_parse::datafusion_statements(&sql).unwrap().pop_front().unwrap();
            rewrite(&mut statement).unwrap();
            let DfStatement::Statement(s) = &statement else { panic!() };
            let depth = expression_depth(s, usize::MAX);
            assert!(depth < 30, "{depth} deep");
        }
    }

    #[test]
    fn expressions_nested_too_deep_are_refused() {
        // Deeper than any operator row the guard lets through: built directly.
        let chain = |n: usize| {
            (0..n).fold(Expr::value(Value::Number("1".into(), false)), |acc, _| Expr::BinaryOp {
                left: Box::new(acc),
                op: BinaryOperator::Plus,
                right: Box::new(Expr::value(Value::Number("1".into(), false))),
            })
        };
        let with = |e: Expr| {
            let mut statement = crate::sql_parse::datafusion_statements("SELECT 1").unwrap().pop_front().unwrap();
            let DfStatement::Statement(s) = &mut statement else { panic!() };
            let datafusion::sql::sqlparser::ast::Statement::Query(q) = s.as_mut() else { panic!() };
            let datafusion::sql::sqlparser::ast::SetExpr::Select(select) = q.body.as_mut() else { panic!() };
            select.projection = vec![datafusion::sql::sqlparser::ast::SelectItem::UnnamedExpr(e)];
            rewrite(&mut statement)
        };
        assert!(with(chain(MAX_EXPRESSION_DEPTH - 1)).is_ok());
        assert!(matches!(with(chain(MAX_EXPRESSION_DEPTH)), Err(QueryError::LimitExceeded(_))));
    }

    /// Regression: about 600 `UNION ALL` branches, or 3000 `WITH` queries each reading the last,
    /// overflowed the query thread's stack, which aborted the whole query service.
    #[test]
    fn statements_of_too_many_parts_are_refused() {
        let n = MAX_STATEMENT_PARTS;
        let union = |n: usize| (0..=n).map(|i| format!("SELECT {i} AS x")).collect::<Vec<_>>().join(" UNION ALL ");
        let ctes = |n: usize| {
            let links = (1..n).map(|i| format!("c{i} AS (SELECT x + 1 AS x FROM c{})", i - 1)).collect::<Vec<_>>();
            format!("WITH c0 AS (SELECT 1 AS x), {} SELECT x FROM c{}", links.join(", "), n - 1)
        };
        let joins = |n: usize| format!("SELECT 1 FROM t0{}", (1..=n).map(|i| format!(" JOIN t{i} ON t{i}.k = t0.k")).collect::<String>());
        let with = |sql: String| {
            let mut statement = crate::sql_parse::datafusion_statements(&sql).unwrap().pop_front().unwrap();
            rewrite(&mut statement)
        };
        for (sql, over) in [(union(n), union(n + 1)), (ctes(n), ctes(n + 1)), (joins(n), joins(n + 1))] {
            assert!(with(sql).is_ok());
            assert!(matches!(with(over), Err(QueryError::LimitExceeded(_))));
        }
        // Counted over every query of the statement; a comma joins as JOIN does.
        let half = union(n / 2);
        assert!(matches!(with(format!("SELECT * FROM ({half}) AS a, ({half} INTERSECT SELECT 1) AS b")), Err(QueryError::LimitExceeded(_))));
        let commas = (0..=n + 1).map(|i| format!("t{i}")).collect::<Vec<_>>().join(", ");
        assert!(matches!(with(format!("SELECT 1 FROM {commas}")), Err(QueryError::LimitExceeded(_))));
    }

    #[test]
    fn a_bad_array_literal_or_a_huge_array_is_an_error() {
        assert!(refused("SELECT 1 WHERE x = ANY ('a,b')").contains("array literal"));
        assert!(refused("SELECT 1 WHERE x = ANY ('{{1},{2}}')").contains("one-dimensional"));
        let many = (0..=MAX_ARRAY_ELEMENTS).map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        assert!(refused(&format!("SELECT 1 WHERE x = ANY ('{{{many}}}')")).contains("at most"));
    }

    #[test]
    fn like_escapes_are_rewritten_to_the_backslash() {
        assert_eq!(rewritten("SELECT 1 WHERE n LIKE 'a/%b%' ESCAPE '/'"), "SELECT 1 WHERE n LIKE 'a\\%b%'");
        assert_eq!(rewritten("SELECT 1 WHERE n NOT ILIKE 'x//_\\y' ESCAPE '/'"), "SELECT 1 WHERE n NOT ILIKE 'x\\/_\\\\y'");
        // No escape character: a backslash is an ordinary character.
        assert_eq!(rewritten("SELECT 1 WHERE n LIKE 'a\\b' ESCAPE ''"), "SELECT 1 WHERE n LIKE 'a\\\\b'");
        assert_eq!(rewritten("SELECT 1 WHERE n LIKE ('s/_/%' || '%') ESCAPE '/'"), "SELECT 1 WHERE n LIKE 's\\_\\%%'");
        assert_eq!(rewritten("SELECT 1 WHERE n LIKE 's/_'::VARCHAR || '%' ESCAPE '/'"), "SELECT 1 WHERE n LIKE 's\\_%'");
        assert!(refused("SELECT 1 WHERE n LIKE 's/_'::INT || '%' ESCAPE '/'").contains("literal pattern"));
        assert!(refused("SELECT 1 WHERE n LIKE p ESCAPE '/'").contains("literal pattern"));
        assert_eq!(rewritten("SELECT 1 WHERE n LIKE 'a\\%' ESCAPE '\\'"), "SELECT 1 WHERE n LIKE 'a\\%' ESCAPE '\\'");
        assert!(refused("SELECT 1 WHERE n LIKE 'a/' ESCAPE '/'").contains("escape character"));
        assert!(refused("SELECT 1 WHERE n LIKE 'a' ESCAPE 'xy'").contains("one character"));
    }
}
