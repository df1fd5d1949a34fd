//! The scaffolding of the one-argument functions that plan rewrites insert ([`crate::fraction`],
//! [`crate::time_text`]): each is named in a plan as its argument is, as a cast is, so a column
//! keeps the name it has without the rewrite (a `GROUP BY 1` or an outer query still finds it).
//! A rewrite describes its functions by a [`Rewrite`] kind; [`udf`] makes one, [`call`] calls it.
//! Pure: no I/O.

use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::{Result, exec_err};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::{ColumnarValue, Expr, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility};

/// The functions of one rewrite: what each is called, gives and does.
pub trait Rewrite: Debug + Copy + PartialEq + Eq + Hash + Send + Sync + 'static {
    fn name(self) -> &'static str;
    /// The type of the function's value for an argument of type `t`.
    fn return_type(self, t: &DataType) -> Result<DataType>;
    /// The function of one value (a scalar or an array).
    fn invoke(self, v: &ColumnarValue) -> Result<ColumnarValue>;
}

/// Function `kind`, immutable, of one argument of any type.
pub fn udf<K: Rewrite>(kind: K) -> ScalarUDF {
    ScalarUDF::new_from_impl(Udf { kind, signature: Signature::any(1, Volatility::Immutable) })
}

/// `kind(e)`.
pub fn call<K: Rewrite>(kind: K, e: Expr) -> Expr {
    Expr::ScalarFunction(ScalarFunction::new_udf(Arc::new(udf(kind)), vec![e]))
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct Udf<K> {
    kind: K,
    signature: Signature,
}

impl<K: Rewrite> ScalarUDFImpl for Udf<K> {
    fn name(&self) -> &str {
        self.kind.name()
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        Ok(args.first().map(|a| a.schema_name().to_string()).unwrap_or_default())
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, types: &[DataType]) -> Result<DataType> {
        match types {
            [t] => self.kind.return_type(t),
            _ => datafusion::common::plan_err!("{} takes one argument", self.kind.name()),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [v] = args.args.as_slice() else { return exec_err!("{} takes one argument", self.kind.name()) };
        self.kind.invoke(v)
    }
}
