//! Glue between pure logic and PostgreSQL: raising `VigilError`s with their
//! SQLSTATE, and mapping pure Rust enums onto the schema-qualified SQL enums of
//! `sql/types.sql`. pgrx's `PostgresEnum` derive resolves the type by its bare
//! name through `search_path`, which breaks for callers that write
//! `vigil.severity_above(...)` without `vigil` on their path, hence this.

use crate::error::{ErrorKind, VigilError};
use pgrx::datum::Internal;
use pgrx::prelude::*;

/// Raises the error as a PostgreSQL ERROR with the matching SQLSTATE.
pub fn raise(err: VigilError) -> ! {
    let code = match err.kind {
        ErrorKind::InvalidParameter => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        ErrorKind::OutOfRange => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
        ErrorKind::UndefinedColumn => PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
        ErrorKind::UndefinedTable => PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
        ErrorKind::DuplicateTable => PgSqlErrorCode::ERRCODE_DUPLICATE_TABLE,
        ErrorKind::NullValue => PgSqlErrorCode::ERRCODE_NULL_VALUE_NOT_ALLOWED,
        ErrorKind::DatatypeMismatch => PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
    };
    ereport!(ERROR, code, err.message);
}

/// `result.or_raise()` unwraps a pure result or raises it as an SQL error.
pub trait OrRaise<T> {
    fn or_raise(self) -> T;
}

impl<T> OrRaise<T> for crate::error::Result<T> {
    fn or_raise(self) -> T {
        self.unwrap_or_else(|e| raise(e))
    }
}

/// Implements the pgrx datum traits for a pure enum with `label()` and
/// `from_label()`, bound to the SQL enum type `$sql` (schema-qualified).
macro_rules! sql_enum {
    ($ty:ty, $sql:literal) => {
        impl ::pgrx::datum::FromDatum for $ty {
            unsafe fn from_polymorphic_datum(
                datum: ::pgrx::pg_sys::Datum,
                is_null: bool,
                _typoid: ::pgrx::pg_sys::Oid,
            ) -> Option<Self> {
                if is_null {
                    return None;
                }
                let oid = unsafe { ::pgrx::pg_sys::Oid::from_datum(datum, false)? };
                let (label, _, _) = ::pgrx::enum_helper::lookup_enum_by_oid(oid);
                Some(
                    <$ty>::from_label(&label)
                        .unwrap_or_else(|| ::pgrx::error!("invalid {} value \"{}\"", $sql, label)),
                )
            }
        }

        impl ::pgrx::datum::IntoDatum for $ty {
            fn into_datum(self) -> Option<::pgrx::pg_sys::Datum> {
                Some(::pgrx::enum_helper::lookup_enum_by_label(
                    $sql,
                    self.label(),
                ))
            }

            fn type_oid() -> ::pgrx::pg_sys::Oid {
                ::pgrx::wrappers::regtypein($sql)
            }
        }

        $crate::sqlglue::sql_datum_abi!($ty, $sql);
    };
}

pub(crate) use sql_enum;

/// Implements the pgrx datum traits for a pure type stored as a varlena of
/// its own bytes (`to_bytes()` / `from_bytes()`), bound to the SQL type `$sql`
/// created in `sql/` with the matching in/out functions.
macro_rules! sql_varlena {
    ($ty:ty, $sql:literal) => {
        impl ::pgrx::datum::FromDatum for $ty {
            unsafe fn from_polymorphic_datum(
                datum: ::pgrx::pg_sys::Datum,
                is_null: bool,
                _typoid: ::pgrx::pg_sys::Oid,
            ) -> Option<Self> {
                if is_null {
                    return None;
                }
                let bytes = unsafe {
                    let ptr = ::pgrx::pg_sys::pg_detoast_datum_packed(datum.cast_mut_ptr());
                    ::pgrx::varlena::varlena_to_byte_slice(ptr)
                };
                Some($crate::sqlglue::OrRaise::or_raise(<$ty>::from_bytes(bytes)))
            }
        }

        impl ::pgrx::datum::IntoDatum for $ty {
            fn into_datum(self) -> Option<::pgrx::pg_sys::Datum> {
                let bytes = self.to_bytes();
                let varlena = ::pgrx::varlena::rust_byte_slice_to_bytea(&bytes);
                Some(::pgrx::pg_sys::Datum::from(varlena.into_pg()))
            }

            fn type_oid() -> ::pgrx::pg_sys::Oid {
                ::pgrx::wrappers::regtypein($sql)
            }
        }

        $crate::sqlglue::sql_datum_abi!($ty, $sql);
    };
}

/// The argument/return ABI and SQL type mapping shared by `sql_enum!` and
/// `sql_varlena!` (needs `FromDatum` and `IntoDatum`).
macro_rules! sql_datum_abi {
    ($ty:ty, $sql:literal) => {
        unsafe impl<'fcx> ::pgrx::callconv::ArgAbi<'fcx> for $ty {
            unsafe fn unbox_arg_unchecked(arg: ::pgrx::callconv::Arg<'_, 'fcx>) -> Self {
                let index = arg.index();
                unsafe {
                    arg.unbox_arg_using_from_datum()
                        .unwrap_or_else(|| panic!("argument {index} must not be null"))
                }
            }
        }

        unsafe impl ::pgrx::datum::UnboxDatum for $ty {
            type As<'dat>
                = $ty
            where
                Self: 'dat;
            unsafe fn unbox<'dat>(d: ::pgrx::datum::Datum<'dat>) -> Self::As<'dat>
            where
                Self: 'dat,
            {
                unsafe {
                    <Self as ::pgrx::datum::FromDatum>::from_datum(
                        ::core::mem::transmute::<::pgrx::datum::Datum<'dat>, ::pgrx::pg_sys::Datum>(
                            d,
                        ),
                        false,
                    )
                    .unwrap()
                }
            }
        }

        unsafe impl ::pgrx::callconv::BoxRet for $ty {
            unsafe fn box_into<'fcx>(
                self,
                fcinfo: &mut ::pgrx::callconv::FcInfo<'fcx>,
            ) -> ::pgrx::datum::Datum<'fcx> {
                match ::pgrx::datum::IntoDatum::into_datum(self) {
                    None => fcinfo.return_null(),
                    Some(datum) => unsafe { fcinfo.return_raw_datum(datum) },
                }
            }
        }

        unsafe impl ::pgrx::pgrx_sql_entity_graph::metadata::SqlTranslatable for $ty {
            const TYPE_IDENT: &'static str = ::pgrx::pgrx_resolved_type!($ty);
            const TYPE_ORIGIN: ::pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin =
                ::pgrx::pgrx_sql_entity_graph::metadata::TypeOrigin::External;
            const ARGUMENT_SQL: Result<
                ::pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef,
                ::pgrx::pgrx_sql_entity_graph::metadata::ArgumentError,
            > = Ok(::pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal($sql));
            const RETURN_SQL: Result<
                ::pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef,
                ::pgrx::pgrx_sql_entity_graph::metadata::ReturnsError,
            > = Ok(::pgrx::pgrx_sql_entity_graph::metadata::ReturnsRef::One(
                ::pgrx::pgrx_sql_entity_graph::metadata::SqlMappingRef::literal($sql),
            ));
        }
    };
}

pub(crate) use sql_datum_abi;

/// The `pg_finfo_<symbol>` records PostgreSQL looks up for C functions
/// written against the raw fmgr ABI (calling convention version 1).
macro_rules! pg_finfo_v1 {
    ($($finfo:ident),* $(,)?) => {$(
        #[unsafe(no_mangle)]
        pub extern "C" fn $finfo() -> &'static ::pgrx::pg_sys::Pg_finfo_record {
            const V1: ::pgrx::pg_sys::Pg_finfo_record =
                ::pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    )*};
}
pub(crate) use pg_finfo_v1;
pub(crate) use sql_varlena;

/// The memory context of the aggregate calling us; transition states must
/// live there, not in the per-row context the call runs in.
pub fn agg_context(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
    let mut ctx = std::ptr::null_mut();
    if unsafe { pg_sys::AggCheckCallContext(fcinfo, &mut ctx) } == 0 {
        ereport!(
            ERROR,
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "pg_vigil aggregate support functions can only be called by an aggregate"
        );
    }
    ctx
}

/// Copies `s` into a palloc'd C string, as type output functions return.
pub fn palloc_cstr(s: &str) -> &'static std::ffi::CStr {
    unsafe {
        let ptr = pg_sys::palloc(s.len() + 1) as *mut u8;
        std::ptr::copy_nonoverlapping(s.as_ptr(), ptr, s.len());
        *ptr.add(s.len()) = 0;
        std::ffi::CStr::from_ptr(ptr as *const std::ffi::c_char)
    }
}

/// The unread rest of a type receive function's message buffer (its
/// `internal` argument, a `StringInfo`), marked read: the binary form of
/// pg_vigil's types is their stored bytes, checked by `from_bytes`.
pub fn recv_rest(buf: Internal) -> &'static [u8] {
    let Some(datum) = buf.unwrap() else {
        raise(crate::error::VigilError::invalid("no binary input"));
    };
    // SAFETY: a receive function's argument is the StringInfo of the
    // message being read; its data outlives this call.
    unsafe {
        let si = datum.cast_mut_ptr::<pg_sys::StringInfoData>();
        let start = (*si).cursor.max(0) as usize;
        let len = ((*si).len.max(0) as usize).max(start);
        (*si).cursor = (*si).len;
        std::slice::from_raw_parts(((*si).data as *const u8).add(start), len - start)
    }
}

/// `Spi::get_one` for statements that only read. pgrx's `get_one` runs
/// every statement read-write and first assigns the transaction an id
/// (`Spi::mark_mutable`): on a hot standby that is an internal error
/// ("cannot assign TransactionIds during recovery", XX000), and on a
/// primary it turns a read into a transaction that writes a commit record.
/// `select` runs read-only until the transaction has written, read-write
/// after (so it sees the transaction's own writes).
pub fn read_one<A: FromDatum + IntoDatum>(sql: &str) -> pgrx::spi::Result<Option<A>> {
    Spi::connect(|c| c.select(sql, Some(1), &[])?.first().get_one())
}

/// `read_one` of two columns.
pub fn read_two<A: FromDatum + IntoDatum, B: FromDatum + IntoDatum>(
    sql: &str,
) -> pgrx::spi::Result<(Option<A>, Option<B>)> {
    Spi::connect(|c| c.select(sql, Some(1), &[])?.first().get_two())
}

/// `read_one` with parameters.
pub fn read_one_with_args<A: FromDatum + IntoDatum>(
    sql: &str,
    args: &[pgrx::datum::DatumWithOid<'_>],
) -> pgrx::spi::Result<Option<A>> {
    Spi::connect(|c| c.select(sql, Some(1), args)?.first().get_one())
}

/// `read_one` of three columns.
pub fn read_three<A: FromDatum + IntoDatum, B: FromDatum + IntoDatum, C: FromDatum + IntoDatum>(
    sql: &str,
) -> pgrx::spi::Result<(Option<A>, Option<B>, Option<C>)> {
    Spi::connect(|c| c.select(sql, Some(1), &[])?.first().get_three())
}

/// A `rollup(<summary>)` transition function against the raw fmgr ABI:
/// `(state, summary)`, a NULL summary skipped (the state passes through),
/// any other decoded and handed to `merge` with the state, which returns
/// the new state.
///
/// # Safety
/// `fcinfo` is PostgreSQL's, for a call with two arguments.
pub unsafe fn rollup_transition<T: FromDatum>(
    fcinfo: pg_sys::FunctionCallInfo,
    merge: impl FnOnce(pg_sys::NullableDatum, T) -> pg_sys::Datum,
) -> pg_sys::Datum {
    let fc = unsafe { &mut *fcinfo };
    let args = unsafe { fc.args.as_slice(2) };
    let (state, value) = (args[0], args[1]);
    if value.isnull {
        fc.isnull = state.isnull;
        return state.value;
    }
    let summary = unsafe { T::from_datum(value.value, false) }.expect("not NULL");
    fc.isnull = false;
    merge(state, summary)
}
