//! Glue between pure logic and PostgreSQL: raising `VigilError`s with their
//! SQLSTATE, and mapping pure Rust enums onto the schema-qualified SQL enums of
//! `sql/types.sql`. pgrx's `PostgresEnum` derive resolves the type by its bare
//! name through `search_path`, which breaks for callers that write
//! `vigil.severity_above(...)` without `vigil` on their path, hence this.

use crate::error::{ErrorKind, VigilError};
use pgrx::prelude::*;

/// Raises the error as a PostgreSQL ERROR with the matching SQLSTATE.
pub fn raise(err: VigilError) -> ! {
    let code = match err.kind {
        ErrorKind::InvalidParameter => PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        ErrorKind::OutOfRange => PgSqlErrorCode::ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE,
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

pub(crate) use sql_enum;
