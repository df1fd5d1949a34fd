//! SQL function `edgelens_fraction(x)` on the lake: `x` as a fraction — an integer or a decimal
//! becomes a `Float64`, any other value (a float, an interval) is returned as it is. The column it
//! makes is named as its argument's, as a cast's is. [`crate::sql_compat`] wraps the sums under a
//! division in it, so that `sum(cache_hits) / sum(requests)` is a fraction, as PostgreSQL's
//! `numeric` sums and ClickHouse's `/` give.

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err, plan_err};
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// The function's name.
pub const NAME: &str = "edgelens_fraction";

/// `edgelens_fraction`, to register on every session that plans rewritten statements.
pub fn fraction_udf() -> ScalarUDF {
    ScalarUDF::new_from_impl(Fraction { signature: Signature::any(1, Volatility::Immutable) })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Fraction {
    signature: Signature,
}

fn becomes_float(t: &DataType) -> bool {
    t.is_integer() || t.is_decimal()
}

impl ScalarUDFImpl for Fraction {
    fn name(&self) -> &str {
        NAME
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(args.first().map(|a| a.schema_name().to_string()).unwrap_or_default())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, types: &[DataType]) -> Result<DataType> {
        match types {
            [t] if becomes_float(t) => Ok(DataType::Float64),
            [t] => Ok(t.clone()),
            _ => plan_err!("{NAME} takes one argument"),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.as_slice() {
            [v] if becomes_float(&v.data_type()) => v.cast_to(&DataType::Float64, None),
            [v] => Ok(v.clone()),
            _ => exec_err!("{NAME} takes one argument"),
        }
    }
}
