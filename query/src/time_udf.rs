//! SQL function `from_unixtime(seconds[, zone])` on the lake: DataFusion's, except that without a
//! zone the instant is UTC (`timestamptz`, `…Z`) rather than a zoneless time, as `now()` and
//! `to_timestamp(..)` are in the lake's UTC session. A zoneless time would be read by `AT TIME
//! ZONE` as that zone's wall clock, moving the instant.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::Result;
use datafusion::logical_expr::{ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature};

/// `from_unixtime`, to register on a session in place of DataFusion's.
pub fn from_unixtime() -> ScalarUDF {
    ScalarUDF::new_from_impl(FromUnixtimeUtc { inner: datafusion::functions::datetime::from_unixtime() })
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct FromUnixtimeUtc {
    /// DataFusion's function: the signature, and every call that names a zone.
    inner: Arc<ScalarUDF>,
}

fn utc() -> DataType {
    DataType::Timestamp(TimeUnit::Second, Some("UTC".into()))
}

impl ScalarUDFImpl for FromUnixtimeUtc {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        datafusion::common::internal_err!("call return_field_from_args instead")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        match args.arg_fields.len() {
            1 => Ok(Arc::new(Field::new(self.name(), utc(), true))),
            _ => self.inner.return_field_from_args(args),
        }
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        match args.args.as_slice() {
            [seconds] if seconds.data_type() == DataType::Int64 => seconds.cast_to(&utc(), None),
            _ => self.inner.invoke_with_args(args),
        }
    }
}
