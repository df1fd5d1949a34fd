//! Sums divided as fractions and fractions cast to integers rounded on the lake, as PostgreSQL
//! does them, and the other arithmetic PostgreSQL types otherwise than DataFusion (below: a date
//! and an interval, `round` of a `double precision`). PostgreSQL sums `bigint`s (the tables'
//! counts) as `numeric`, so `sum(cache_hits) / sum(requests)` is a fraction there, as it is in
//! ClickHouse, whose `/` always gives one. DataFusion sums integers as integers and divides them
//! as integers (0 for a hit ratio).
//!
//! [`fractional_sums`] rewrites a statement's plan, after DataFusion resolved its names and before
//! its types are coerced. A value is PostgreSQL's `numeric` ([`numeric`]) when it is a `sum(…)`
//! or `avg(…)` (an aggregate or a window's), a cast to `numeric`, a column an input computed as
//! one (so a CTE's, a subquery's, a union's or a join's sum named `h` is one in `h / r`), a
//! scalar subquery giving one, or arithmetic, a sign, a `CASE` result, `COALESCE` (`NVL`,
//! `IFNULL`), `NULLIF`, `GREATEST`, `LEAST`, `ABS`, `ROUND`, `MIN`, `MAX`, `FIRST_VALUE`,
//! `LAST_VALUE`, or `LAG`, `LEAD` or `NTH_VALUE` over one. In each division with such an
//! operand, each such value the operands are made of becomes a `Float64` through
//! `edgelens_fraction` before the arithmetic on it, so a product of a sum cannot wrap around
//! either. `requests / 3` and `count(*) / 2` stay integer divisions, as in PostgreSQL.
//!
//! A date plus or minus an interval is a `timestamp`, as in PostgreSQL (DataFusion keeps a date
//! and drops the time of day: `max(ts::date) + interval '6 hours'` was midnight).
//!
//! `round(x)` of a `double precision` rounds half to even through `edgelens_rint`, as
//! PostgreSQL's does (`round(2.5::float8)` is 2); of a `numeric`, half away from zero.
//!
//! A cast of a float to a signed integer type rounds it, where DataFusion's cast truncates: a
//! `numeric` one (which includes a fractional literal: `1.5` is a `numeric` in PostgreSQL, a float
//! in DataFusion) half away from zero through `edgelens_round`, as PostgreSQL's cast of a
//! `numeric` does — `(sum(a) / sum(b))::bigint`, `avg(requests)::int`, `(requests * 1.5)::int`;
//! any other (`CAST(x AS DOUBLE)`, `date_part(…)`, and arithmetic on them, even with a `numeric`)
//! half to even through `edgelens_rint`, as PostgreSQL's cast of a `double precision` does. `EXTRACT(…)`, a `numeric` in PostgreSQL, is
//! marked as one by [`crate::sql_compat`] ([`NUMERIC_MARK`]).
//!
//! A correlated subquery's outer reference to a sum is one. Not seen: the columns of a recursive
//! CTE.
//!
//! `edgelens_fraction(x)`: an integer or a decimal becomes a `Float64`; `edgelens_round(x)` and
//! `edgelens_rint(x)`: a float is rounded; `edgelens_numeric(x)` changes nothing. Any other value
//! (an interval) is returned as it is. The column each makes is named as its argument's, as a
//! cast's is, so a column keeps the name it has without the rewrite (a `GROUP BY 1` or an outer
//! query finds it). Pure: no I/O.

use std::sync::Arc;

use datafusion::arrow::array::Float64Array;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchema, DFSchemaRef, JoinType, Result, ScalarValue, TableReference, exec_err};
use datafusion::logical_expr::expr::{Cast, ScalarFunction, TryCast, WindowFunctionDefinition};
use datafusion::logical_expr::utils::grouping_set_to_exprlist;
use datafusion::logical_expr::{
    Aggregate, BinaryExpr, ColumnarValue, Distinct, Expr, ExprSchemable, LogicalPlan, Operator, Projection, ScalarUDF, Union, Window,
};

use crate::rewrite_udf::{Rewrite, call, udf};

/// The name of the function that marks a value as PostgreSQL's `numeric` (`edgelens_numeric`,
/// which returns it as it is), for statements to call.
pub const NUMERIC_MARK: &str = "edgelens_numeric";

/// The functions the rewrite and statements call, to register on every session that plans
/// statements [`fractional_sums`] rewrote.
pub fn udfs() -> [ScalarUDF; 4] {
    [Kind::Fraction, Kind::Round, Kind::Rint, Kind::Numeric].map(udf)
}

/// `plan` (as planned from a statement, before the analyzer) with its divisions of sums made
/// fractions, its casts of fractions to integers rounded, its dates with intervals made
/// timestamps and its `round` of doubles half to even (see the module docs).
pub fn fractional_sums(plan: LogicalPlan) -> Result<LogicalPlan> {
    rewrite_plan(plan, None, true).map(|t| t.data)
}

/// [`fractional_sums`] of `plan` (in a subquery: `outer` is what the query around it reads): its
/// subqueries and inputs first, then its own expressions; the schema of a node is computed again
/// when they, or what it reads, changed.
fn rewrite_plan(plan: LogicalPlan, outer: Option<&Inputs>, retype: bool) -> Result<Transformed<LogicalPlan>> {
    let around = Inputs::of(&plan, outer);
    // Inside a recursive query, an anchor typed anew would not match its recursive term's work
    // table: dates with intervals are left there to `sql_compat`'s rewrite of the forms written
    // as dates.
    let retype = retype && !matches!(plan, LogicalPlan::RecursiveQuery(_));
    let below =
        plan.map_subqueries(|p| rewrite_plan(p, Some(&around), retype))?.transform_sibling(|n| n.map_children(|p| rewrite_plan(p, outer, retype)))?;
    let changed_below = below.transformed;
    below.transform_parent(|node| {
        // What the node reads is read again only when its subqueries or inputs changed (their
        // types may have).
        let inputs = if changed_below { Inputs::of(&node, outer) } else { around };
        let names: Vec<_> = node.schema().iter().map(|(q, f)| (q.cloned(), f.name().clone())).collect();
        // A `VALUES` list keeps the types it was planned with (its schema is not computed again).
        let retype = retype && !matches!(node, LogicalPlan::Values(_));
        let own = node.map_expressions(|e| e.transform_up(|e| rewrite(e, &inputs, retype)))?;
        if !own.transformed && !changed_below {
            return Ok(own);
        }
        let plan = match own.data {
            // The planner unions branches by the first one's types and the analyzer coerces them;
            // a branch whose type changed must change the union's too.
            LogicalPlan::Union(u) => LogicalPlan::Union(Union::try_new_with_loose_types(u.inputs)?),
            other => other.recompute_schema()?,
        };
        Ok(Transformed::yes(if own.transformed { keep_names(plan, &names)? } else { plan }))
    })
}

/// `plan` with each output column it names again (a name made of a rewritten expression's text,
/// such as an aggregate's `FILTER (WHERE CAST(…))`) aliased back to its name in `names`, the
/// node's before the rewrite, which the nodes above it read it by.
fn keep_names(plan: LogicalPlan, names: &[(Option<TableReference>, String)]) -> Result<LogicalPlan> {
    if plan.schema().fields().len() != names.len() {
        return Ok(plan);
    }
    let schema = Arc::clone(plan.schema());
    let named = |offset: usize, exprs: Vec<Expr>| -> Vec<Expr> {
        exprs
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                let (qualifier, field) = schema.qualified_field(offset + i);
                let (was_qualifier, was) = &names[offset + i];
                if qualifier == was_qualifier.as_ref() && field.name() == was { e } else { e.alias_qualified(was_qualifier.clone(), was) }
            })
            .collect()
    };
    Ok(match plan {
        LogicalPlan::Projection(p) => LogicalPlan::Projection(Projection::try_new(named(0, p.expr), p.input)?),
        // Grouping sets: their expressions stay as they are (an alias cannot be written there);
        // the aggregates, after them and the grouping id, are named again.
        LogicalPlan::Aggregate(a) if matches!(a.group_expr.as_slice(), [Expr::GroupingSet(_)]) => {
            let groups = grouping_set_to_exprlist(&a.group_expr)?.len() + 1;
            LogicalPlan::Aggregate(Aggregate::try_new(a.input, a.group_expr, named(groups, a.aggr_expr))?)
        }
        LogicalPlan::Aggregate(a) => {
            let groups = a.group_expr.len();
            LogicalPlan::Aggregate(Aggregate::try_new(a.input, named(0, a.group_expr), named(groups, a.aggr_expr))?)
        }
        LogicalPlan::Window(w) => {
            let before = w.input.schema().fields().len();
            LogicalPlan::Window(Window::try_new(named(before, w.window_expr), w.input)?)
        }
        other => other,
    })
}

/// What a plan node's expressions read: each input's schema and which of its columns are
/// `numeric` ([`numeric_outputs`]); in a subquery, also what the node of the query around it
/// reads, for its outer references.
struct Inputs<'a> {
    each: Vec<(DFSchemaRef, Vec<bool>)>,
    outer: Option<&'a Inputs<'a>>,
}

impl<'a> Inputs<'a> {
    fn of(plan: &LogicalPlan, outer: Option<&'a Inputs<'a>>) -> Inputs<'a> {
        let each = plan.inputs().into_iter().map(|i| (Arc::clone(i.schema()), numeric_outputs(i, outer))).collect();
        Inputs { each, outer }
    }

    /// Whether the input column `c` is `numeric` (a name no input has is not).
    fn column(&self, c: &Column) -> bool {
        self.find(c).unwrap_or(false)
    }

    /// Whether the input column `c` is `numeric`, when an input has it.
    fn find(&self, c: &Column) -> Option<bool> {
        self.each.iter().find_map(|(schema, numeric)| schema.maybe_index_of_column(c).map(|i| numeric.get(i).copied().unwrap_or(false)))
    }

    /// Whether the outer reference `c` is `numeric`: in the nearest query around that has it, as
    /// the reference is resolved.
    fn outer_column(&self, c: &Column) -> bool {
        self.outer.is_some_and(|o| o.find(c).unwrap_or_else(|| o.outer_column(c)))
    }
}

/// Which output columns of `plan` (in a subquery: `outer` as for [`Inputs`]) are `numeric` in
/// PostgreSQL (see the module docs), by position.
fn numeric_outputs(plan: &LogicalPlan, outer: Option<&Inputs>) -> Vec<bool> {
    let width = plan.schema().fields().len();
    let inputs = Inputs::of(plan, outer);
    let of = |exprs: &[&Expr]| exprs.iter().map(|e| numeric(e, &inputs)).collect::<Vec<_>>();
    let first = || inputs.each.first().map(|(_, n)| n.clone()).unwrap_or_default();
    let outputs = match plan {
        LogicalPlan::Projection(p) => of(&p.expr.iter().collect::<Vec<_>>()),
        LogicalPlan::Aggregate(a) => {
            let mut out = grouping_set_to_exprlist(&a.group_expr).map(|g| of(&g)).unwrap_or_default();
            if matches!(a.group_expr.as_slice(), [Expr::GroupingSet(_)]) {
                out.push(false); // the grouping id
            }
            out.extend(of(&a.aggr_expr.iter().collect::<Vec<_>>()));
            out
        }
        LogicalPlan::Window(w) => {
            let mut out = first();
            out.extend(of(&w.window_expr.iter().collect::<Vec<_>>()));
            out
        }
        LogicalPlan::Distinct(Distinct::On(d)) => of(&d.select_expr.iter().collect::<Vec<_>>()),
        // `VALUES (0.5), (1.5)`: a column of fractional literals is PostgreSQL's `numeric`.
        LogicalPlan::Values(v) => (0..width).map(|i| v.values.iter().any(|row| row.get(i).is_some_and(|e| numeric(e, &inputs)))).collect(),
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => first(),
        LogicalPlan::Join(j) => {
            // Both sides, or one for a semi or anti join (and its mark for a mark join).
            let (left, right) = (first(), inputs.each.get(1).map(|(_, n)| n.clone()).unwrap_or_default());
            match j.join_type {
                JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => left.into_iter().chain([false]).take(width).collect(),
                JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => right.into_iter().chain([false]).take(width).collect(),
                JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => left.into_iter().chain(right).collect(),
            }
        }
        LogicalPlan::Union(_) => {
            (0..width).map(|i| inputs.each.iter().any(|(_, n)| n.get(i).copied().unwrap_or(false))).collect()
        }
        _ => Vec::new(),
    };
    if outputs.len() == width { outputs } else { vec![false; width] }
}

/// Whether `e`, over `inputs`, is PostgreSQL's `numeric`: see the module docs.
fn numeric(e: &Expr, inputs: &Inputs) -> bool {
    let any = |es: &[Expr]| es.iter().any(|e| numeric(e, inputs));
    match e {
        Expr::Column(c) => inputs.column(c),
        // A fractional literal: PostgreSQL's `1.5` is a `numeric`.
        Expr::Literal(v, _) => v.data_type().is_floating(),
        Expr::OuterReferenceColumn(_, c) => inputs.outer_column(c),
        Expr::Alias(a) => numeric(&a.expr, inputs),
        // A `double precision` operand makes it one (`CAST(x AS DOUBLE) * 0.5`, as PostgreSQL types it).
        Expr::BinaryExpr(b) => arithmetic(b.op) && (numeric(&b.left, inputs) || numeric(&b.right, inputs)) && !double(&b.left) && !double(&b.right),
        Expr::Negative(inner) => numeric(inner, inputs),
        Expr::Case(c) => c.when_then_expr.iter().any(|(_, then)| numeric(then, inputs)) || c.else_expr.as_deref().is_some_and(|e| numeric(e, inputs)),
        Expr::Cast(Cast { field, .. }) | Expr::TryCast(TryCast { field, .. }) => field.data_type().is_decimal(),
        // What the rewrite made a fraction, or a statement marked ([`NUMERIC_MARK`]), is one.
        Expr::ScalarFunction(f) if [Kind::Fraction.name(), NUMERIC_MARK].contains(&f.name()) => true,
        // Functions PostgreSQL gives a `numeric` of a `numeric`.
        Expr::ScalarFunction(f) => {
            matches!(
                f.name(),
                "coalesce" | "nvl" | "ifnull" | "nullif" | "greatest" | "least" | "abs" | "round" | "floor" | "ceil" | "trunc" | "sqrt" | "exp" | "ln" | "log" | "log10"
                    | "power" | "edgelens_round" | "edgelens_rint"
            ) && any(&f.args)
        }
        Expr::AggregateFunction(f) => numeric_aggregate(f.func.name(), &f.params.args, inputs),
        Expr::WindowFunction(w) => match &w.fun {
            WindowFunctionDefinition::AggregateUDF(f) => numeric_aggregate(f.name(), &w.params.args, inputs),
            // A value of another row: `lag(r) OVER (…)`.
            WindowFunctionDefinition::WindowUDF(f) => {
                matches!(f.name(), "lag" | "lead" | "first_value" | "last_value" | "nth_value") && w.params.args.first().is_some_and(|a| numeric(a, inputs))
            }
        },
        Expr::ScalarSubquery(s) => numeric_outputs(&s.subquery, Some(inputs)).first().copied().unwrap_or(false),
        _ => false,
    }
}

/// Whether `e` is plainly a `double precision` in PostgreSQL: a cast to a float, `date_part(…)`,
/// `random()`, or arithmetic on one.
fn double(e: &Expr) -> bool {
    match e {
        Expr::Cast(Cast { field, .. }) | Expr::TryCast(TryCast { field, .. }) => field.data_type().is_floating(),
        Expr::Alias(a) => double(&a.expr),
        Expr::Negative(inner) => double(inner),
        Expr::BinaryExpr(b) => arithmetic(b.op) && (double(&b.left) || double(&b.right)),
        Expr::ScalarFunction(f) => matches!(f.name(), "date_part" | "random" | "pi"),
        _ => false,
    }
}

fn numeric_aggregate(name: &str, args: &[Expr], inputs: &Inputs) -> bool {
    match name {
        // Of a `double precision`, a `double precision`.
        "sum" | "avg" => !args.first().is_some_and(double),
        "min" | "max" | "first_value" | "last_value" => args.first().is_some_and(|a| numeric(a, inputs)),
        _ => false,
    }
}

fn arithmetic(op: Operator) -> bool {
    matches!(op, Operator::Plus | Operator::Minus | Operator::Multiply | Operator::Divide | Operator::Modulo)
}

/// One step of [`fractional_sums`] on an expression whose own expressions were rewritten
/// already: a division with a `numeric` operand gets fractions for its operands' `numeric` values,
/// a cast of a float to an integer rounds it first, a date with an interval becomes a timestamp
/// (where the node may be `retype`d), `round` of a double rounds half to even.
fn rewrite(e: Expr, inputs: &Inputs, retype: bool) -> Result<Transformed<Expr>> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op: Operator::Divide, right }) if numeric(&left, inputs) || numeric(&right, inputs) => {
            let (left, right) = (fractions(*left, inputs), fractions(*right, inputs));
            let changed = left.transformed || right.transformed;
            let e = Expr::BinaryExpr(BinaryExpr::new(Box::new(left.data), Operator::Divide, Box::new(right.data)));
            Ok(if changed { Transformed::yes(e) } else { Transformed::no(e) })
        }
        Expr::Cast(mut c) if c.field.data_type().is_signed_integer() && floating(&c.expr, inputs) => {
            c.expr = Box::new(rounded(*c.expr, inputs));
            Ok(Transformed::yes(Expr::Cast(c)))
        }
        Expr::TryCast(mut c) if c.field.data_type().is_signed_integer() && floating(&c.expr, inputs) => {
            c.expr = Box::new(rounded(*c.expr, inputs));
            Ok(Transformed::yes(Expr::TryCast(c)))
        }
        // A date and an interval make a timestamp (DataFusion keeps a date, dropping the time
        // of day: `max(ts::date) + interval '6 hours'` was midnight).
        Expr::BinaryExpr(BinaryExpr { left, op: op @ (Operator::Plus | Operator::Minus), right })
            if retype && (date_and_interval(&left, &right, inputs) || (op == Operator::Plus && date_and_interval(&right, &left, inputs))) =>
        {
            let timestamp = |e: Box<Expr>| -> Box<Expr> {
                if is_date(&e, inputs) {
                    Box::new(Expr::Cast(Cast::new(e, DataType::Timestamp(datafusion::arrow::datatypes::TimeUnit::Nanosecond, None))))
                } else {
                    e
                }
            };
            Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr::new(timestamp(left), op, timestamp(right)))))
        }
        // `round(x)` of a `double precision`: half to even, as PostgreSQL's (DataFusion's `round`
        // is half away from zero, PostgreSQL's `round` of a `numeric`).
        Expr::ScalarFunction(mut f)
            if f.name() == "round" && f.args.len() == 1 && floating(&f.args[0], inputs) && !numeric(&f.args[0], inputs) =>
        {
            let x = f.args.remove(0);
            f.args.push(call(Kind::Rint, x));
            Ok(Transformed::yes(Expr::ScalarFunction(f)))
        }
        e => Ok(Transformed::no(e)),
    }
}

/// The float `e`, to be cast to an integer, rounded as PostgreSQL rounds it there: a `numeric`
/// half away from zero, a `double precision` half to even.
fn rounded(e: Expr, inputs: &Inputs) -> Expr {
    let kind = if numeric(&e, inputs) { Kind::Round } else { Kind::Rint };
    call(kind, e)
}

/// Whether `date` is a date and `interval` an interval, over `inputs`.
fn date_and_interval(date: &Expr, interval: &Expr, inputs: &Inputs) -> bool {
    is_date(date, inputs) && type_of(interval, inputs).is_some_and(|t| matches!(t, DataType::Interval(_)))
}

/// Whether `e`, over `inputs`, is a date.
fn is_date(e: &Expr, inputs: &Inputs) -> bool {
    type_of(e, inputs).is_some_and(|t| matches!(t, DataType::Date32 | DataType::Date64))
}

/// The type of `e` over the node's `inputs`, when it has one.
fn type_of(e: &Expr, inputs: &Inputs) -> Option<DataType> {
    match inputs.each.as_slice() {
        [] => e.get_type(&DFSchema::empty()),
        [(schema, _)] => e.get_type(schema.as_ref()),
        [(left, _), (right, _)] => left.join(right).and_then(|both| e.get_type(&both)),
        _ => return None,
    }
    .ok()
}

/// Whether `e`, over the node's `inputs`, has a float type.
fn floating(e: &Expr, inputs: &Inputs) -> bool {
    type_of(e, inputs).is_some_and(|t| t.is_floating())
}

/// `e`, an operand of a division, with each `numeric` value it is made of (through the forms of
/// [`numeric`]) made a fraction.
fn fractions(e: Expr, inputs: &Inputs) -> Transformed<Expr> {
    if !numeric(&e, inputs) {
        return Transformed::no(e);
    }
    let mut each = |e: Box<Expr>| Box::new(fractions(*e, inputs).data);
    let e = match e {
        Expr::Alias(mut a) => {
            a.expr = each(a.expr);
            Expr::Alias(a)
        }
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => Expr::BinaryExpr(BinaryExpr::new(each(left), op, each(right))),
        Expr::Negative(inner) => Expr::Negative(each(inner)),
        Expr::Case(mut c) => {
            c.when_then_expr = c.when_then_expr.into_iter().map(|(when, then)| (when, each(then))).collect();
            c.else_expr = c.else_expr.map(&mut each);
            Expr::Case(c)
        }
        Expr::ScalarFunction(f) if f.name() == Kind::Fraction.name() => Expr::ScalarFunction(f),
        // A marked value is made a fraction as a whole.
        Expr::ScalarFunction(f) if f.name() == NUMERIC_MARK => call(Kind::Fraction, Expr::ScalarFunction(f)),
        // A fractional literal is a float already.
        literal @ Expr::Literal(..) => return Transformed::no(literal),
        Expr::ScalarFunction(ScalarFunction { func, args }) => {
            Expr::ScalarFunction(ScalarFunction { func, args: args.into_iter().map(|a| fractions(a, inputs).data).collect() })
        }
        // A sum, a column or subquery giving one, a cast to `numeric`.
        leaf => call(Kind::Fraction, leaf),
    };
    Transformed::yes(e)
}

/// The functions of the rewrite. Each is named after its argument, as a cast is, so a column
/// keeps the name it had without the rewrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    /// `edgelens_fraction(x)`: an integer or a decimal as a `Float64`; any other value as it is.
    Fraction,
    /// `edgelens_round(x)`: a float rounded half away from zero, as PostgreSQL rounds a `numeric`
    /// cast to an integer; any other value as it is.
    Round,
    /// `edgelens_rint(x)`: a float rounded half to even, as PostgreSQL rounds a `double precision`
    /// cast to an integer; any other value as it is.
    Rint,
    /// `edgelens_numeric(x)`: `x` as it is, marked as PostgreSQL's `numeric` ([`NUMERIC_MARK`]).
    Numeric,
}

impl Kind {
    /// Whether the function changes a value of type `t` (others it returns as they are).
    fn changes(self, t: &DataType) -> bool {
        match self {
            Kind::Fraction => t.is_integer() || t.is_decimal(),
            Kind::Round | Kind::Rint => t.is_floating(),
            Kind::Numeric => false,
        }
    }
}

impl Rewrite for Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Fraction => "edgelens_fraction",
            Kind::Round => "edgelens_round",
            Kind::Rint => "edgelens_rint",
            Kind::Numeric => NUMERIC_MARK,
        }
    }

    fn return_type(self, t: &DataType) -> Result<DataType> {
        Ok(if self == Kind::Fraction && self.changes(t) { DataType::Float64 } else { t.clone() })
    }

    fn invoke(self, v: &ColumnarValue) -> Result<ColumnarValue> {
        if !self.changes(&v.data_type()) {
            return Ok(v.clone());
        }
        if self == Kind::Fraction {
            return v.cast_to(&DataType::Float64, None);
        }
        // Rounded as a Float64 (a Float32 or Float16 goes there and back).
        let round = if self == Kind::Round { f64::round } else { f64::round_ties_even };
        let rounded = match v.cast_to(&DataType::Float64, None)? {
            ColumnarValue::Scalar(ScalarValue::Float64(x)) => ColumnarValue::Scalar(ScalarValue::Float64(x.map(round))),
            ColumnarValue::Array(a) => match a.as_any().downcast_ref::<Float64Array>() {
                Some(a) => ColumnarValue::Array(Arc::new(a.unary::<_, Float64Type>(round))),
                None => return exec_err!("{} of a {}", self.name(), a.data_type()),
            },
            other => return exec_err!("{} of a {}", self.name(), other.data_type()),
        };
        rounded.cast_to(&v.data_type(), None)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;
    use datafusion::prelude::SessionContext;

    use super::*;

    /// `t`: (s, a, b) = ('x', 1, 4), ('y', 2, 4), all integers.
    fn session() -> SessionContext {
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false), Field::new("a", DataType::Int64, false), Field::new("b", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![Arc::new(StringArray::from(vec!["x", "y"])), Arc::new(Int64Array::from(vec![1, 2])), Arc::new(Int64Array::from(vec![4, 4]))],
        )
        .unwrap();
        let ctx = SessionContext::new();
        ctx.register_table("t", Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())).unwrap();
        for f in udfs() {
            ctx.register_udf(f);
        }
        ctx
    }

    /// The rows of `sql` after [`fractional_sums`], as text, and its columns' names and types.
    async fn answer(sql: &str) -> (String, Vec<(String, DataType)>) {
        let ctx = session();
        let plan = fractional_sums(ctx.state().create_logical_plan(sql).await.unwrap()).unwrap();
        // The plan's schema, as `Describe` on the Postgres wire tells it, is that of the rows.
        let described: Vec<_> = plan.schema().fields().iter().map(|f| f.data_type().clone()).collect();
        let batches = ctx.execute_logical_plan(plan).await.unwrap().collect().await.unwrap();
        let columns: Vec<_> = batches[0].schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        assert_eq!(described, columns.iter().map(|(_, t)| t.clone()).collect::<Vec<_>>(), "{sql}");
        let rows = datafusion::arrow::util::pretty::pretty_format_batches(&batches).unwrap().to_string();
        let values: Vec<String> = rows.lines().skip(3).filter(|l| !l.starts_with('+')).map(|l| l.split('|').map(str::trim).filter(|v| !v.is_empty()).collect::<Vec<_>>().join(" ")).collect();
        (values.join("; "), columns)
    }

    #[tokio::test]
    async fn sums_divide_as_fractions_wherever_they_are_named() {
        for (sql, want) in [
            ("SELECT sum(a) / sum(b) AS f FROM t", "0.375"),
            ("SELECT 100 * sum(a) / count(*) AS f FROM t", "150.0"),
            ("SELECT (sum(a) - sum(b)) / -sum(a) / 2 AS f FROM t", "0.8333333333333334"),
            ("SELECT s, sum(a) / sum(sum(a)) OVER () AS f FROM t GROUP BY s ORDER BY s", "x 0.3333333333333333; y 0.6666666666666666"),
            ("SELECT max(a) / (SELECT sum(a) FROM t) AS f FROM t", "0.6666666666666666"),
            ("SELECT COALESCE(sum(a), 0) / NULLIF(sum(b), 0) AS f, CASE WHEN true THEN sum(a) ELSE 0 END / 2 AS g, max(a)::numeric / 4 AS h FROM t", "0.375 1.5 0.5"),
            // Names from a CTE, a subquery, a join, a union, and output columns in HAVING and ORDER BY.
            ("WITH q AS (SELECT s, sum(a) AS h, sum(b) AS r FROM t GROUP BY s) SELECT s, h / r AS f FROM q ORDER BY s", "x 0.25; y 0.5"),
            ("SELECT q.s, q.h / u.n AS f FROM (SELECT s, sum(a) AS h FROM t GROUP BY s) AS q JOIN (SELECT s, count(*) * 2 AS n FROM t GROUP BY s) AS u ON q.s = u.s ORDER BY 1", "x 0.5; y 1.0"),
            ("SELECT h / 2 AS f FROM (SELECT max(a) AS h FROM t UNION ALL SELECT sum(a) AS h FROM t) AS u ORDER BY 1", "1.0; 1.5"),
            ("SELECT s, sum(a) AS h, sum(b) AS r FROM t GROUP BY s HAVING h / r > 0.3 ORDER BY h / r DESC", "y 2 4"),
            ("SELECT s FROM t WHERE a * 1.0 > (SELECT sum(a) / sum(b) FROM t) * 4 ORDER BY s", "y"),
            // Values of other rows, and COALESCE's other names.
            ("WITH q AS (SELECT s, sum(a) AS h FROM t GROUP BY s) SELECT s, lag(h) OVER (ORDER BY s) / 4 AS f, first_value(h) OVER (ORDER BY s) / 4 AS g, nvl(h, 0) / 4 AS n FROM q ORDER BY s", "x 0.25 0.25; y 0.25 0.25 0.5"),
            // The sum is the fraction before the arithmetic on it: 3 × 4·10¹⁸ does not wrap around.
            ("SELECT sum(a) * 4000000000000000000 / sum(b) AS f FROM t", "1.5e18"),
            // A cast of a fraction to an integer rounds it, as PostgreSQL's cast of a numeric does.
            ("SELECT (sum(a) * 10 / sum(b))::bigint AS n, avg(a)::int AS m, CAST(sum(a) AS bigint) AS k FROM t", "4 2 3"),
            ("SELECT (count(*) * 1.25)::int AS n, (7 * 0.5)::int AS m, TRY_CAST(-2.5 AS int) AS k FROM t", "3 4 -3"),
            // A double precision rounds half to even (regression: half away from zero, as a numeric),
            // with a numeric too; a numeric function of a numeric is one.
            ("SELECT (CAST(a AS DOUBLE) * 2.5)::int AS n, CAST(CAST(2.5 AS DOUBLE) AS int) AS m, sqrt(6.25)::int AS q FROM t WHERE s = 'x'", "2 2 3"),
            ("SELECT (sum(a) * CAST(0.5 AS DOUBLE))::int AS k, avg(CAST(a AS DOUBLE) + 1.5)::int AS v FROM t WHERE s = 'x'", "0 2"),
            // In VALUES too; an unsigned target is cut as before (a negative half is no error).
            ("SELECT * FROM (VALUES ((7 * 0.5)::int, CAST(-0.6 AS INT UNSIGNED))) AS v(a, b)", "4 0"),
        ] {
            assert_eq!(answer(sql).await.0, want, "{sql}");
        }
        // A column of a subquery's fraction, read as it is: the reading node's schema says so too.
        let (rows, columns) = answer("SELECT f, f AS g FROM (SELECT sum(a) / sum(b) AS f FROM t) AS q").await;
        assert_eq!((rows.as_str(), columns[1].1.clone()), ("0.375 0.375", DataType::Float64));
        // Casts to integers round, wherever the cast is, and keep the names they had (regression:
        // a rounding function named otherwise made `GROUP BY 1` and outer queries fail).
        let q = "(SELECT s, sum(a) / sum(b) AS f FROM t GROUP BY s) AS q";
        for (sql, want) in [
            (format!("SELECT (f * 10)::int AS bucket, count(*) AS n FROM {q} GROUP BY 1 ORDER BY 1"), "3 1; 5 1"),
            (format!("SELECT (f * 10)::int, count(*) FROM {q} GROUP BY (f * 10)::int ORDER BY 1"), "3 1; 5 1"),
            (format!("SELECT DISTINCT (f * 10)::int AS b FROM {q} ORDER BY 1"), "3; 5"),
            (format!("SELECT max((f * 10)::int) AS m, count(*) FILTER (WHERE (f * 10)::int > 3) AS n FROM {q}"), "5 1"),
            (format!("SELECT s, count(*) OVER (PARTITION BY (f * 10)::int) AS n FROM {q} ORDER BY s"), "x 1; y 1"),
            ("SELECT * FROM (SELECT s, (sum(a) * 10 / sum(b))::int FROM t GROUP BY s) AS q ORDER BY 2".to_owned(), "x 3; y 5"),
            (format!("SELECT count(*) AS n FROM {q} JOIN (SELECT 3 AS k) AS k ON (q.f * 10)::int = k.k"), "1"),
            ("SELECT count(*) FILTER (WHERE h / r > 0.3) AS n FROM (SELECT s, sum(a) AS h, sum(b) AS r FROM t GROUP BY s) AS q".to_owned(), "1"),
            ("SELECT count(*) FILTER (WHERE h / r > 0.3) FROM (SELECT s, sum(a) AS h, sum(b) AS r FROM t GROUP BY s) AS q".to_owned(), "1"),
            ("SELECT s, count(*) FILTER (WHERE h / r > 0.3) FROM (SELECT s, sum(a) AS h, sum(b) AS r FROM t GROUP BY s) AS q GROUP BY ROLLUP(s) ORDER BY 1".to_owned(), "x 0; y 1; 1"),
        ] {
            assert_eq!(answer(&sql).await.0, want, "{sql}");
        }
        assert_eq!(answer("SELECT avg(a)::int FROM t").await, ("2".to_owned(), vec![("avg(t.a)".to_owned(), DataType::Int32)]));
        // The side a semi join keeps (regression: of two sides as wide, the left one's columns
        // were taken for the right one's).
        for (left, right, want) in [("count(*)", "sum(a)", "x 0.5; y 1.0"), ("sum(a)", "count(*)", "x 0; y 0")] {
            let sql = format!("SELECT q.s, q.h / 2 AS f FROM (SELECT s, {left} AS h FROM t GROUP BY s) AS p RIGHT SEMI JOIN (SELECT s, {right} AS h FROM t GROUP BY s) AS q ON p.s = q.s ORDER BY 1");
            assert_eq!(answer(&sql).await.0, want, "{sql}");
        }
        // A sum of the query around a correlated subquery (x: 1 * 0.5 = 1 / 2 only as fractions).
        let sql = "SELECT count(*) AS n FROM (SELECT s, sum(a) AS h FROM t GROUP BY s) AS q WHERE EXISTS (SELECT 1 FROM t AS u WHERE u.s = q.s AND u.a * 0.5 = q.h / 2)";
        assert_eq!(answer(sql).await.0, "2", "{sql}");
        // ... as resolved: a middle query's own column of the outer sum's name is its own (a count).
        let sql = "SELECT count(*) AS n FROM (SELECT s, sum(a) AS h FROM t GROUP BY s) AS q WHERE EXISTS (SELECT 1 FROM (SELECT s, count(*) AS h FROM t GROUP BY s) AS q WHERE EXISTS (SELECT 1 FROM t AS u WHERE u.s = q.s AND u.a * 0 = q.h / 2))";
        assert_eq!(answer(sql).await.0, "2", "{sql}");
        // Named as without the rewrite.
        assert_eq!(answer("SELECT sum(a) / sum(b) FROM t").await.1, vec![("sum(t.a) / sum(t.b)".to_owned(), DataType::Float64)]);
    }

    #[tokio::test]
    async fn other_integers_divide_as_integers() {
        let (rows, columns) = answer("SELECT count(*) / 2 AS n, max(a) / 2 AS m, sum(a)::bigint / 2 AS k, sum(a / 2) AS h FROM t").await;
        assert_eq!(rows, "1 1 1 1");
        assert!(columns.iter().all(|(_, t)| t == &DataType::Int64), "{columns:?}");
        let (rows, _) = answer("WITH q AS (SELECT s, count(*) AS n, max(a) AS m FROM t GROUP BY s) SELECT n / m AS f FROM q ORDER BY s").await;
        assert_eq!(rows, "1; 0");
    }
}
