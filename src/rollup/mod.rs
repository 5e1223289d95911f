//! Realtime rollups (SPEC §3.3): a summary table per (group, time bucket)
//! kept exact by statement-level triggers. This module validates a rollup
//! definition and writes every SQL statement the rollup needs; `sql.rs` runs
//! them. Identifiers are always quoted; the only user SQL that is spliced is
//! a measure's `filter`, which `sql.rs` first proves to be one boolean
//! expression over the source table.

pub mod sql;
#[cfg(any(test, feature = "pg_test"))]
mod sql_tests;
pub use sql::require_trusted_schema;
mod citus;
pub mod ddl;
mod definition;
mod direct;
mod pending;
pub(crate) mod rolling;
pub mod trigger;

use crate::error::{Result, VigilError};
use serde_json::Value;
use trigger::{NEW_TABLE as NEW, OLD_TABLE as OLD};

/// A backend-local flag raised while this guard lives: cleared when it is
/// dropped, also while an error unwinds through it (a caller's savepoint
/// may catch the error, and the flag must not outlive the work it marks).
pub(crate) struct Raised(&'static std::thread::LocalKey<std::cell::Cell<bool>>);

impl Raised {
    pub(crate) fn while_alive(flag: &'static std::thread::LocalKey<std::cell::Cell<bool>>) -> Self {
        flag.set(true);
        Raised(flag)
    }
}

impl Drop for Raised {
    fn drop(&mut self) {
        self.0.set(false);
    }
}

/// How a measure aggregates its column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Agg {
    Count,
    Sum,
    Avg,
    Min,
    Max,
    Stats,
    Percentile,
}

impl Agg {
    fn parse(s: &str) -> Option<Agg> {
        Some(match s {
            "count" => Agg::Count,
            "sum" => Agg::Sum,
            "avg" => Agg::Avg,
            "min" => Agg::Min,
            "max" => Agg::Max,
            "stats" => Agg::Stats,
            "percentile" => Agg::Percentile,
            _ => return None,
        })
    }
}

/// The kind of a source column, as far as measures care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnType {
    /// `format_type()` of the column, used verbatim for group and min/max columns.
    pub sql: String,
    pub integer_or_numeric: bool,
    pub float: bool,
    /// Declared NOT NULL: key matches can then use plain `=`.
    pub not_null: bool,
    /// Has a default hash operator class, so a group's slot lock can hash
    /// its values the way the key's equality compares them (`slot_expr`).
    pub hashable: bool,
    /// Has a default btree operator class (what min and max order by).
    pub orderable: bool,
    /// The column's collation, qualified, when it is not its type's
    /// default: the summary's copy of the column sorts, groups and compares
    /// as the source's does.
    pub collate: Option<String>,
}

impl ColumnType {
    fn numeric(&self) -> bool {
        self.integer_or_numeric || self.float
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Measure {
    pub name: String,
    pub agg: Agg,
    pub column: Option<String>,
    pub filter: Option<String>,
    pub relative_error: Option<f64>,
    /// `Some(sum)` for the hidden `count` that goes with sum measure `sum`:
    /// how many of the group's rows it adds (non-NULL, filter passed), so
    /// readers can give NULL where SQL's `sum` does (`nonnull_column`).
    pub counts_for: Option<String>,
}

/// The summary column that counts the values sum measure `name` adds:
/// `_n_<name>`, or — for a definition made before this rule (`Names::Kept`)
/// whose `_n_<name>` would not fit in 63 bytes or is `taken` — a name with
/// a hash of `name` that does. Deterministic: every load of a definition
/// gets the same name.
fn nonnull_column(name: &str, taken: impl Fn(&str) -> bool) -> String {
    let plain = format!("_n_{name}");
    if plain.len() <= 63 && !taken(&plain) {
        return plain;
    }
    // FNV-1a: a stable hash, no dependency for 8 hex digits.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    let mut end = name.len().min(63 - 12);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("_n{hash:08x}_{}", &name[..end])
}

/// How `parse_measures` treats the names of sums' count columns: a new
/// definition must get `_n_<name>` (else 22023); a stored one keeps working
/// whatever its names (`nonnull_column`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Names {
    New,
    Kept,
}

/// A validated rollup definition plus the source's column types.
#[derive(Debug, Clone)]
pub struct Rollup {
    /// Schema and name of the summary table.
    pub schema: String,
    pub name: String,
    /// Schema-qualified, quoted source table.
    pub source: String,
    pub time_column: String,
    /// Whether the time column is timestamptz (else timestamp, read as UTC).
    pub time_has_zone: bool,
    /// The bucket width as PostgreSQL interval text (validated by `sql.rs`).
    pub bucket: String,
    /// The summary's group columns (named as at creation) and their types.
    pub group_by: Vec<(String, ColumnType)>,
    /// The source column each group column reads, by its current name
    /// (a source column renamed since creation keeps its summary name).
    pub group_source: Vec<String>,
    pub measures: Vec<(Measure, Option<ColumnType>)>,
    /// `definition_json`, filled in once the rollup is defined.
    pub definition: String,
}

/// Which summary row of a group an upsert writes (see `Rollup::upsert`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Zero,
    Free,
}

/// Column names the summary table uses for itself.
pub const RESERVED: [&str; 3] = ["bucket", "_rows", "_slot"];

/// What an added row's upsert does with a summary column on conflict
/// (`Rollup::row_columns`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    /// Part of the row key.
    Key,
    /// `s.c + excluded.c`.
    Add,
    /// `LEAST(s.c, excluded.c)`.
    Least,
    /// `GREATEST(s.c, excluded.c)`.
    Greatest,
}

/// Parses and checks `measures` against the source's columns.
pub fn parse_measures(
    measures: &Value,
    column_type: impl Fn(&str) -> Option<ColumnType>,
    group_by: &[String],
    names: Names,
) -> Result<Vec<(Measure, Option<ColumnType>)>> {
    let object = measures.as_object().ok_or_else(|| {
        VigilError::invalid("measures must be a JSON object of {\"column_name\": {\"agg\": ...}}")
    })?;
    if object.is_empty() {
        return Err(VigilError::invalid(
            "measures must define at least one measure",
        ));
    }
    let mut out = Vec::new();
    for (name, spec) in object {
        let what = format!("measures.{name}");
        if name.is_empty() || name.len() > 63 {
            return Err(VigilError::invalid(format!(
                "{what}: a measure name must be 1 to 63 bytes"
            )));
        }
        if RESERVED.contains(&name.as_str()) || group_by.iter().any(|g| g == name) {
            return Err(VigilError::invalid(format!(
                "{what}: the name clashes with a group_by column or a reserved column (bucket, _rows, _slot)"
            )));
        }
        let spec = spec
            .as_object()
            .ok_or_else(|| VigilError::invalid(format!("{what} must be a JSON object")))?;
        for key in spec.keys() {
            if !["agg", "column", "filter", "relative_error"].contains(&key.as_str()) {
                return Err(VigilError::invalid(format!(
                    "{what}: unknown key \"{key}\" (allowed: agg, column, filter, relative_error)"
                )));
            }
        }
        let text = |key: &str| -> Result<Option<String>> {
            match spec.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) if !s.trim().is_empty() => Ok(Some(s.clone())),
                Some(_) => Err(VigilError::invalid(format!(
                    "{what}.{key} must be a non-empty string"
                ))),
            }
        };
        let agg_text = text("agg")?.ok_or_else(|| {
            VigilError::invalid(format!(
                "{what}.agg is required (count, sum, avg, min, max, stats, percentile)"
            ))
        })?;
        let agg = Agg::parse(&agg_text).ok_or_else(|| {
            VigilError::invalid(format!(
                "{what}.agg must be one of count, sum, avg, min, max, stats, percentile, got \"{agg_text}\""
            ))
        })?;
        let column = text("column")?;
        // Checked by PostgreSQL's parser in sql.rs (`check_filter`).
        let filter = text("filter")?;
        let relative_error = match spec.get("relative_error") {
            None | Some(Value::Null) => None,
            Some(v) if agg == Agg::Percentile => Some(v.as_f64().ok_or_else(|| {
                VigilError::invalid(format!("{what}.relative_error must be a number"))
            })?),
            Some(_) => {
                return Err(VigilError::invalid(format!(
                    "{what}.relative_error applies only to agg \"percentile\""
                )))
            }
        };
        if let Some(e) = relative_error {
            if !(1e-4..=0.5).contains(&e) {
                return Err(VigilError::invalid(format!(
                    "{what}.relative_error must be between 0.0001 and 0.5, got {e}"
                )));
            }
        }
        let col_type = match &column {
            None if agg == Agg::Count => None,
            None => {
                return Err(VigilError::invalid(format!(
                    "{what}.column is required for agg \"{agg_text}\""
                )))
            }
            Some(c) => Some(column_type(c).ok_or_else(|| {
                VigilError::invalid(format!(
                    "{what}.column \"{c}\" is not a column of the source table"
                ))
            })?),
        };
        if let Some(t) = &col_type {
            let needs_number = matches!(agg, Agg::Sum | Agg::Avg | Agg::Stats | Agg::Percentile);
            if needs_number && !t.numeric() {
                return Err(VigilError::invalid(format!(
                    "{what}: agg \"{agg_text}\" needs a numeric column, \"{}\" is {}",
                    column.as_deref().unwrap_or_default(),
                    t.sql
                )));
            }
            // LEAST/GREATEST and min/max need the type's btree order (else
            // every later write of the source would fail).
            if matches!(agg, Agg::Min | Agg::Max) && !t.orderable {
                return Err(VigilError::invalid(format!(
                    "{what}: agg \"{agg_text}\" needs a column whose type has an order, \"{}\" is {}",
                    column.as_deref().unwrap_or_default(),
                    t.sql
                )));
            }
        }
        out.push((
            Measure {
                name: name.clone(),
                agg,
                column,
                filter,
                relative_error,
                counts_for: None,
            },
            col_type,
        ));
    }
    // Each sum gets its non-NULL count: a group whose values are all NULL
    // then reads NULL, like SQL's `sum`, also after signed removals (a sum
    // of 0 alone cannot tell "no values" from "values adding up to 0").
    let sums: Vec<(Measure, Option<ColumnType>)> = out
        .iter()
        .filter(|(m, _)| m.agg == Agg::Sum)
        .cloned()
        .collect();
    for (m, t) in sums {
        let taken = |n: &str| {
            out.iter().any(|(o, _)| o.name == n)
                || group_by.iter().any(|g| g == n)
                || RESERVED.contains(&n)
        };
        if names == Names::New {
            let plain = format!("_n_{}", m.name);
            if plain.len() > 63 {
                return Err(VigilError::invalid(format!(
                    "measures.{}: a sum measure's name must be at most 60 bytes (its summary also has a column \"{plain}\")",
                    m.name
                )));
            }
            if taken(&plain) {
                return Err(VigilError::invalid(format!(
                    "measures.{plain}: the name clashes with the column that counts the values of sum measure \"{}\"",
                    m.name
                )));
            }
        }
        let name = nonnull_column(&m.name, taken);
        out.push((
            Measure {
                name,
                agg: Agg::Count,
                counts_for: Some(m.name.clone()),
                ..m
            },
            t,
        ));
    }
    Ok(out)
}

/// `"name"` with embedded quotes doubled: safe for any identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// A string literal that means `text` whatever `standard_conforming_strings`
/// is: `'text'` with quotes doubled when there is no backslash, else the
/// escape form `E'te\\xt'` with backslashes doubled too. A session that
/// turned the setting off cannot make a backslash end the literal early.
pub fn literal(text: &str) -> String {
    if text.contains('\\') {
        format!("E'{}'", text.replace('\\', "\\\\").replace('\'', "''"))
    } else {
        format!("'{}'", text.replace('\'', "''"))
    }
}

/// Monday 2000-01-03 00:00 UTC: buckets of a day or a week start at UTC
/// midnight, weeks on Mondays.
const BUCKET_ORIGIN: &str = "'2000-01-03 00:00:00+00'::timestamptz";

impl Rollup {
    pub fn table(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.name))
    }

    /// A name derived from the rollup's, for its helper objects.
    pub(super) fn derived(&self, suffix: &str) -> String {
        let mut base = self.name.clone();
        // Keep the derived name within PostgreSQL's 63-byte limit.
        while base.len() + suffix.len() > 63 {
            base.pop();
        }
        format!(
            "{}.{}",
            ident(&self.schema),
            ident(&format!("{base}{suffix}"))
        )
    }

    pub fn since_function(&self) -> String {
        self.derived("_since")
    }

    pub fn window_view(&self, label: &str) -> String {
        self.derived(&format!("_{label}"))
    }

    /// The row's time as timestamptz; a timestamp column is read as UTC so
    /// that the session's TimeZone never moves a row between buckets.
    fn time_expr(&self, alias: &str) -> String {
        if self.time_has_zone {
            format!("{alias}.{}", ident(&self.time_column))
        } else {
            format!("({alias}.{} AT TIME ZONE 'UTC')", ident(&self.time_column))
        }
    }

    fn bucket_expr(&self, alias: &str) -> String {
        format!(
            "date_bin({}::interval, {}, {BUCKET_ORIGIN})",
            literal(&self.bucket),
            self.time_expr(alias)
        )
    }

    /// The group columns of source (or transition table) rows aliased
    /// `alias`, as select-list items named like the summary's columns.
    fn group_columns(&self, alias: &str) -> Vec<String> {
        self.group_by
            .iter()
            .zip(&self.group_source)
            .map(|((g, _), src)| {
                if g == src {
                    format!("{alias}.{}", ident(src))
                } else {
                    format!("{alias}.{} AS {}", ident(src), ident(g))
                }
            })
            .collect()
    }

    /// The group columns of source rows aliased `alias`, as plain references.
    fn source_group_refs(&self, alias: &str) -> Vec<String> {
        self.group_source
            .iter()
            .map(|src| format!("{alias}.{}", ident(src)))
            .collect()
    }

    /// The summary's group columns of rows aliased `alias`.
    fn summary_group_refs(&self, alias: &str) -> Vec<String> {
        self.group_by
            .iter()
            .map(|(g, _)| format!("{alias}.{}", ident(g)))
            .collect()
    }

    /// The group key: group columns and bucket.
    fn key_columns(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.group_by.iter().map(|(g, _)| ident(g)).collect();
        keys.push(ident("bucket"));
        keys
    }

    /// The summary row key: a group may own several slot rows (see
    /// `add_statement`), whose measures add up to the group's.
    fn row_key_columns(&self) -> Vec<String> {
        let mut keys = self.key_columns();
        keys.push(ident("_slot"));
        keys
    }

    fn sum_type(t: &ColumnType) -> &'static str {
        if t.float {
            "float8"
        } else {
            "numeric"
        }
    }

    /// The summary's columns as the rollup makes them, in order: name, type
    /// (as `format_type` prints it, or a name that parses to it), the
    /// collation the copy of a source column keeps, and the rest of the
    /// column's definition.
    pub fn summary_columns(&self) -> Vec<(String, String, Option<String>, &'static str)> {
        let copy =
            |name: &str, t: &ColumnType| (name.to_string(), t.sql.clone(), t.collate.clone(), "");
        let mut cols: Vec<_> = self.group_by.iter().map(|(g, t)| copy(g, t)).collect();
        cols.push(("bucket".into(), "timestamptz".into(), None, " NOT NULL"));
        cols.push((
            "_slot".into(),
            "integer".into(),
            None,
            " NOT NULL DEFAULT 0",
        ));
        cols.push(("_rows".into(), "bigint".into(), None, " NOT NULL"));
        for (m, t) in &self.measures {
            let fixed = |ty: &str, tail| (m.name.clone(), ty.to_string(), None, tail);
            cols.push(match (m.agg, t) {
                (Agg::Count, _) => fixed("bigint", " NOT NULL DEFAULT 0"),
                (Agg::Sum, Some(t)) => fixed(Self::sum_type(t), " NOT NULL DEFAULT 0"),
                (Agg::Avg | Agg::Stats, _) => fixed("vigil.statsagg", ""),
                (Agg::Percentile, _) => fixed("vigil.sketch", ""),
                (Agg::Min | Agg::Max, Some(t)) => copy(&m.name, t),
                (_, None) => unreachable!("validated: column required"),
            });
        }
        cols
    }

    /// `CREATE TABLE` for the summary, with a NULL-safe unique key.
    pub fn create_table(&self) -> String {
        let cols: Vec<String> = self
            .summary_columns()
            .into_iter()
            .map(|(name, ty, collate, tail)| {
                let collate = collate.map(|c| format!(" COLLATE {c}")).unwrap_or_default();
                format!("{} {ty}{collate}{tail}", ident(&name))
            })
            .collect();
        format!(
            "CREATE TABLE {} (\n    {},\n    UNIQUE NULLS NOT DISTINCT ({})\n)",
            self.table(),
            cols.join(",\n    "),
            self.row_key_columns().join(", ")
        )
    }

    /// The name of the column counting the values of sum measure `sum`.
    fn nonnull_of(&self, sum: &str) -> &str {
        self.measures
            .iter()
            .find(|(m, _)| m.counts_for.as_deref() == Some(sum))
            .map(|(m, _)| m.name.as_str())
            .expect("every sum has its count (parse_measures)")
    }

    /// `ALTER TABLE` adding the non-NULL counts of the sums (`counts_for`)
    /// to a summary made without them (0.1.0), all in one statement, so the
    /// summary has its rollup's shape again when it ends; None without sums.
    /// A column of that name already there (one its 0.1.0 owner added)
    /// fails it: the upgrade then leaves that rollup as it is, reported.
    pub fn add_missing_columns(&self) -> Option<String> {
        let adds: Vec<String> = self
            .measures
            .iter()
            .filter(|(m, _)| m.counts_for.is_some())
            .map(|(m, _)| format!("ADD COLUMN {} bigint NOT NULL DEFAULT 0", ident(&m.name)))
            .collect();
        (!adds.is_empty()).then(|| format!("ALTER TABLE {} {}", self.table(), adds.join(", ")))
    }

    /// Dashboards read "every group over the last N buckets": a bucket index
    /// serves them (the unique key leads with the group columns).
    pub fn bucket_index(&self) -> String {
        format!("CREATE INDEX ON {} ({})", self.table(), ident("bucket"))
    }

    fn filter_clause(m: &Measure, extra: Option<String>) -> String {
        let mut parts = Vec::new();
        if let Some(f) = &m.filter {
            parts.push(format!("({f})"));
        }
        if let Some(e) = extra {
            parts.push(e);
        }
        if parts.is_empty() {
            String::new()
        } else {
            format!(" FILTER (WHERE {})", parts.join(" AND "))
        }
    }

    /// The aggregate expression of one measure over rows aliased `r`.
    fn measure_expr(m: &Measure, t: &Option<ColumnType>) -> String {
        let col = m.column.as_deref().map(|c| format!("r.{}", ident(c)));
        let not_null = col.as_ref().map(|c| format!("{c} IS NOT NULL"));
        match m.agg {
            Agg::Count => match &col {
                None => format!("count(*){}", Self::filter_clause(m, None)),
                Some(c) => format!("count({c}){}", Self::filter_clause(m, None)),
            },
            Agg::Sum => {
                let ty = Self::sum_type(t.as_ref().expect("validated"));
                format!(
                    "coalesce(sum({}::{ty}){}, 0)",
                    col.unwrap(),
                    Self::filter_clause(m, None)
                )
            }
            Agg::Avg | Agg::Stats => format!(
                "vigil.stats_agg({}::float8){}",
                col.unwrap(),
                Self::filter_clause(m, not_null)
            ),
            Agg::Percentile => format!(
                "vigil.percentile_agg({}::float8, {}::float8){}",
                col.unwrap(),
                m.relative_error
                    .unwrap_or(crate::sketch::DEFAULT_RELATIVE_ERROR),
                Self::filter_clause(m, not_null)
            ),
            Agg::Min => format!("min({}){}", col.unwrap(), Self::filter_clause(m, None)),
            Agg::Max => format!("max({}){}", col.unwrap(), Self::filter_clause(m, None)),
        }
    }

    /// `SELECT key..., _rows, measures... FROM <from> r GROUP BY keys ORDER BY keys`.
    pub fn aggregate_select(&self, from: &str) -> String {
        self.aggregate_select_where(from, "true")
    }

    /// `r.<time> IS NOT NULL`: a row without a time is in no bucket (and
    /// in no window), so no statement counts it. Written into every read
    /// of source or transition-table rows: a nullable time column's NULL
    /// must not stop the application's write on the summary's NOT NULL
    /// bucket.
    fn has_time(&self) -> String {
        format!("r.{} IS NOT NULL", ident(&self.time_column))
    }

    /// `aggregate_select` of the rows of `from` (aliased `r`) that meet
    /// `condition`: the query then names only the columns the rollup
    /// reads, not `*` (a stored query that did would depend on every
    /// column of the table).
    fn aggregate_select_where(&self, from: &str, condition: &str) -> String {
        let mut cols = self.group_columns("r");
        cols.push(format!("{} AS {}", self.bucket_expr("r"), ident("bucket")));
        cols.push(format!("count(*) AS {}", ident("_rows")));
        for (m, t) in &self.measures {
            cols.push(format!(
                "{} AS {}",
                Self::measure_expr(m, t),
                ident(&m.name)
            ));
        }
        let filter = if condition == "true" {
            format!(" WHERE {}", self.has_time())
        } else {
            format!(" WHERE {condition} AND {}", self.has_time())
        };
        format!(
            "SELECT {} FROM {from} r{filter} GROUP BY {p} ORDER BY {p}",
            cols.join(", "),
            p = self.key_positions()
        )
    }

    /// `1, 2, …` for the group key columns, which lead every select list.
    fn key_positions(&self) -> String {
        (1..=self.key_columns().len())
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn all_columns(&self) -> Vec<String> {
        let mut cols = self.key_columns();
        cols.push(ident("_rows"));
        cols.extend(self.measures.iter().map(|(m, _)| ident(&m.name)));
        cols
    }

    /// `INSERT ... <rows of select> ON CONFLICT (row key) DO UPDATE SET sets`;
    /// `select` yields `all_columns` sorted by key, so groups are locked in
    /// key order. With `Slot::Zero` every group lands in its slot 0 row.
    /// With `Slot::Free` each group takes the first slot that no other
    /// inserting transaction holds (`vigil._rollup_slot`, which never
    /// waits), creating that slot row if needed: writers hitting one hot
    /// group then add to different rows instead of queueing on one row lock
    /// until commit.
    fn upsert(&self, select: &str, sets: &[String], slot: Slot) -> String {
        match slot {
            Slot::Zero => self.upsert_rows(select, sets, false),
            Slot::Free => {
                let select = select
                    .strip_suffix(&format!(" ORDER BY {}", self.key_positions()))
                    .unwrap_or(select);
                self.upsert_rows(
                    &format!(
                        "SELECT d.*, {} FROM ({select}) d ORDER BY {}",
                        self.slot_expr(self.summary_group_refs("d")),
                        self.key_positions()
                    ),
                    sets,
                    true,
                )
            }
        }
    }

    /// The INSERT ... ON CONFLICT around `select`, which yields
    /// `all_columns` (and `_slot` last when `with_slot`).
    fn upsert_rows(&self, select: &str, sets: &[String], with_slot: bool) -> String {
        let slot = if with_slot {
            format!(", {}", ident("_slot"))
        } else {
            String::new()
        };
        format!(
            "INSERT INTO {} AS s ({}{slot}) {select} ON CONFLICT ({}) DO UPDATE SET {}",
            self.table(),
            self.all_columns().join(", "),
            self.row_key_columns().join(", "),
            sets.join(", ")
        )
    }

    /// The slot of the group of row `alias` (see `upsert`). The lock is per
    /// group column values, any bucket: hashing the bucket's text form costs
    /// more than the rare needless spreading of one entity's two buckets.
    /// The values are hashed with their types' hash functions
    /// (`hash_record`), which agree with the key's equality: 1.0 and 1.00,
    /// 0 and -0, '1 day' and '24 hours' are one group and take one lock. A
    /// group column type without a hash function falls back to the text
    /// form, where such equal values printed differently take different
    /// locks and the second writer waits for the first's slot row.
    fn slot_expr(&self, keys: Vec<String>) -> String {
        format!(
            "vigil._rollup_slot({}::regclass, {})",
            literal(&self.table()),
            self.key_hash(keys)
        )
    }

    /// The hash of a group's values its slot locks are taken by.
    fn key_hash(&self, keys: Vec<String>) -> String {
        if keys.is_empty() {
            "0".to_string()
        } else if self.group_by.iter().all(|(_, t)| t.hashable) {
            format!("pg_catalog.hash_record(ROW({}))", keys.join(", "))
        } else {
            format!("pg_catalog.hashtext(ROW({})::text)", keys.join(", "))
        }
    }

    /// Whether slot row `s` is one a removal may lock and fold (always,
    /// but at commit only those held: `vigil._rollup_slot_held`).
    fn slot_held(&self, s: &str) -> String {
        format!(
            "vigil._rollup_slot_held({}::regclass, {}, {s}.{})",
            literal(&self.table()),
            self.key_hash(self.summary_group_refs(s)),
            ident("_slot")
        )
    }

    /// The slot locks a removal applied at commit holds first
    /// (pending.rs): `(group hash, slot)` of every slot row of the groups
    /// the transition tables `from` touch, and of slot 0 of each, hashed
    /// as `slot_expr` hashes them.
    pub fn hold_statement(&self, from: &[&str]) -> String {
        format!(
            "WITH t AS MATERIALIZED ({}) SELECT DISTINCT ({})::int4, x.slot::int4 FROM t, \
             LATERAL (SELECT 0 AS slot UNION SELECT s.{} FROM {} s WHERE {}) x",
            self.touched_union(from),
            self.key_hash(self.summary_group_refs("t")),
            ident("_slot"),
            self.table(),
            self.keys_match("s", "t"),
        )
    }

    /// Upsert of the rows of transition table `from`, adding them. After a
    /// removal pass (an UPDATE) a NULL min/max means "being repaired", so it
    /// stays NULL for the repair to recompute, instead of taking only the
    /// new rows' extreme; that pass works on slot 0 (see `collapse_statement`).
    pub fn add_statement(&self, from: &str, after_removal: bool) -> String {
        let slot = if after_removal {
            Slot::Zero
        } else {
            Slot::Free
        };
        self.upsert(
            &self.aggregate_select(from),
            &self.add_sets(after_removal),
            slot,
        )
    }

    /// The value one row adds to a measure: `measure_expr` over a group
    /// of that row alone, without the aggregate.
    fn row_measure_expr(m: &Measure, t: &Option<ColumnType>) -> String {
        let col = m.column.as_deref().map(|c| format!("r.{}", ident(c)));
        let mut conds: Vec<String> = m.filter.iter().map(|f| format!("({f})")).collect();
        let when = |conds: &[String], then: String, otherwise: &str| {
            if conds.is_empty() {
                then
            } else {
                format!(
                    "CASE WHEN {} THEN {then} ELSE {otherwise} END",
                    conds.join(" AND ")
                )
            }
        };
        if matches!(m.agg, Agg::Count | Agg::Avg | Agg::Stats | Agg::Percentile) {
            conds.extend(col.iter().map(|c| format!("{c} IS NOT NULL")));
        }
        let col = col.unwrap_or_default();
        match m.agg {
            Agg::Count => format!("{}::bigint", when(&conds, "1".into(), "0")),
            Agg::Sum => {
                let ty = Self::sum_type(t.as_ref().expect("validated"));
                format!(
                    "coalesce({}, 0)",
                    when(&conds, format!("{col}::{ty}"), "NULL")
                )
            }
            Agg::Avg | Agg::Stats => {
                when(&conds, format!("vigil._stats_of({col}::float8)"), "NULL")
            }
            Agg::Percentile => when(
                &conds,
                format!(
                    "vigil._sketch_of({col}::float8, {}::float8)",
                    m.relative_error
                        .unwrap_or(crate::sketch::DEFAULT_RELATIVE_ERROR)
                ),
                "NULL",
            ),
            Agg::Min | Agg::Max => when(&conds, col, "NULL"),
        }
    }

    /// The upsert for an INSERT of exactly one row (`from` holds one row):
    /// the row's own values instead of an aggregate over it, which spares
    /// the executor a subquery, a sort and an aggregate per statement.
    pub fn add_row_statement(&self, from: &str) -> String {
        self.row_statement(from, "")
    }

    /// The row upsert of `add_row_statement`, its values negated when
    /// `sign` is `-` (`subtract_row_statement`).
    fn row_statement(&self, from: &str, sign: &str) -> String {
        self.upsert_rows(&self.row_select(from, sign), &self.add_sets(false), true)
    }

    /// The one row of transition table `from` as the summary row it adds
    /// (its values negated when `sign` is `-`): `row_columns`, in order.
    pub fn row_select(&self, from: &str, sign: &str) -> String {
        let mut cols = self.group_columns("r");
        cols.push(self.bucket_expr("r"));
        cols.push(format!("{sign}1::bigint"));
        for (m, t) in &self.measures {
            cols.push(format!("{sign}{}", Self::row_measure_expr(m, t)));
        }
        cols.push(self.slot_expr(self.source_group_refs("r")));
        format!(
            "SELECT {} FROM {from} r WHERE {}",
            cols.join(", "),
            self.has_time()
        )
    }

    /// The summary columns `row_select` yields, in order, each with what a
    /// conflict does with it (`add_sets(false)`): part of the row key
    /// (group columns, bucket, slot), added (`_rows`, counts and sums:
    /// `s.c + excluded.c`), or kept as the least or greatest (`min`/`max`:
    /// `LEAST`/`GREATEST`); None for a measure merged by a function of
    /// vigil's (`avg`, `stats`, `percentile`).
    pub fn row_columns(&self) -> Vec<(String, Option<OnConflict>)> {
        let mut cols: Vec<(String, Option<OnConflict>)> = self
            .group_by
            .iter()
            .map(|(g, _)| (g.clone(), Some(OnConflict::Key)))
            .collect();
        cols.push(("bucket".into(), Some(OnConflict::Key)));
        cols.push(("_rows".into(), Some(OnConflict::Add)));
        cols.extend(self.measures.iter().map(|(m, _)| {
            let on = match m.agg {
                Agg::Count | Agg::Sum => Some(OnConflict::Add),
                Agg::Min => Some(OnConflict::Least),
                Agg::Max => Some(OnConflict::Greatest),
                Agg::Avg | Agg::Stats | Agg::Percentile => None,
            };
            (m.name.clone(), on)
        }));
        cols.push(("_slot".into(), Some(OnConflict::Key)));
        cols
    }

    /// Whether removals can be written as signed deltas: every measure is a
    /// `count` or a `sum`, which subtract exactly and need nothing of the
    /// group's other rows. A DELETE or UPDATE of such a rollup then writes
    /// the negated values of its old rows into a slot of its own (like an
    /// INSERT, `Slot::Free`): it never waits on another writer's slot row,
    /// locks or folds nothing, and runs one statement per transition table.
    /// A group's slot rows may then hold negative counts; only their sum
    /// means anything, and a group whose rows add up to none reads as absent
    /// (`since_function_sql`, `verify_statement`). Other measures (min, max,
    /// stats, percentile, avg) keep the locking path (`maintenance_statements`).
    pub fn removals_subtract(&self) -> bool {
        self.measures
            .iter()
            .all(|(m, _)| matches!(m.agg, Agg::Count | Agg::Sum))
    }

    /// Upsert of the negated aggregate of transition table `from` into free
    /// slots (`removals_subtract` rollups only).
    pub fn subtract_statement(&self, from: &str) -> String {
        let mut cols = self.group_columns("r");
        cols.push(format!("{} AS {}", self.bucket_expr("r"), ident("bucket")));
        cols.push(format!("-count(*) AS {}", ident("_rows")));
        for (m, t) in &self.measures {
            cols.push(format!(
                "-{} AS {}",
                Self::measure_expr(m, t),
                ident(&m.name)
            ));
        }
        self.upsert(
            &format!(
                "SELECT {} FROM {from} r WHERE {} GROUP BY {p} ORDER BY {p}",
                cols.join(", "),
                self.has_time(),
                p = self.key_positions()
            ),
            &self.add_sets(false),
            Slot::Free,
        )
    }

    /// `subtract_statement` for a transition table of exactly one row: its
    /// own negated values, as `add_row_statement` adds them.
    pub fn subtract_row_statement(&self, from: &str) -> String {
        self.row_statement(from, "-")
    }

    /// The UPDATE of a `removals_subtract` rollup as one upsert: every old
    /// row's negated values and every new row's values, added up per group
    /// (a row that stays in its group leaves only its difference), into
    /// free slots; groups whose every delta is 0 (an UPDATE of columns no
    /// measure reads) are not written at all. One statement instead of a
    /// subtraction and an addition, and no conflict on one slot row twice.
    pub fn net_update_statement(&self) -> String {
        let keys = self.key_columns();
        let branch = |from: &str, sign: &str| {
            let mut cols = self.group_columns("r");
            cols.push(format!("{} AS {}", self.bucket_expr("r"), ident("bucket")));
            cols.push(format!("{sign}1::bigint AS {}", ident("_rows")));
            for (m, t) in &self.measures {
                cols.push(format!(
                    "{sign}{} AS {}",
                    Self::row_measure_expr(m, t),
                    ident(&m.name)
                ));
            }
            format!(
                "SELECT {} FROM {from} r WHERE {}",
                cols.join(", "),
                self.has_time()
            )
        };
        let mut cols: Vec<String> = keys.iter().map(|k| format!("u.{k}")).collect();
        let mut deltas = vec![ident("_rows")];
        cols.push(format!("sum(u.{r})::bigint AS {r}", r = ident("_rows")));
        for (m, _) in &self.measures {
            let c = ident(&m.name);
            cols.push(match m.agg {
                Agg::Count => format!("sum(u.{c})::bigint AS {c}"),
                _ => format!("sum(u.{c}) AS {c}"),
            });
            deltas.push(c);
        }
        let having = deltas
            .iter()
            .map(|c| format!("sum(u.{c}) <> 0"))
            .collect::<Vec<_>>()
            .join(" OR ");
        self.upsert(
            &format!(
                "SELECT {} FROM ({} UNION ALL {}) u GROUP BY {p} HAVING {having} ORDER BY {p}",
                cols.join(", "),
                branch(NEW, ""),
                branch(OLD, "-"),
                p = self.key_positions()
            ),
            &self.add_sets(false),
            Slot::Free,
        )
    }

    /// The source columns that place a row in its group and bucket: a
    /// single-row UPDATE that leaves them all as they were stays in its
    /// group (`same_group_update_statement`).
    pub fn placing_columns(&self) -> Vec<String> {
        let mut cols = self.group_source.clone();
        cols.push(self.time_column.clone());
        cols
    }

    /// The UPDATE of one row that stays in its group (the trigger compares
    /// `placing_columns` of the old and new row), for a `removals_subtract`
    /// rollup: one row upsert of the difference, new values minus old, and
    /// nothing at all when no measure changed. Each side is read in a
    /// subquery of its own, where a filter's column names mean its row.
    pub fn same_group_update_statement(&self) -> String {
        let side = |from: &str, with_keys: bool| {
            let mut cols = Vec::new();
            if with_keys {
                cols = self.group_columns("r");
                cols.push(format!("{} AS {}", self.bucket_expr("r"), ident("bucket")));
            }
            for (i, (m, t)) in self.measures.iter().enumerate() {
                cols.push(format!("{} AS m{i}", Self::row_measure_expr(m, t)));
            }
            format!(
                "(SELECT {} FROM {from} r WHERE {})",
                cols.join(", "),
                self.has_time()
            )
        };
        let mut cols: Vec<String> = self
            .key_columns()
            .iter()
            .map(|k| format!("n.{k}"))
            .collect();
        cols.push("0::bigint".into());
        let deltas: Vec<String> = (0..self.measures.len())
            .map(|i| format!("n.m{i} - o.m{i}"))
            .collect();
        cols.extend(deltas.iter().cloned());
        cols.push(self.slot_expr(self.summary_group_refs("n")));
        self.upsert_rows(
            &format!(
                "SELECT {} FROM {} n, {} o WHERE {}",
                cols.join(", "),
                side(NEW, true),
                side(OLD, false),
                deltas
                    .iter()
                    .map(|d| format!("{d} <> 0"))
                    .collect::<Vec<_>>()
                    .join(" OR ")
            ),
            &self.add_sets(false),
            true,
        )
    }

    /// The statements for a DELETE (`del`) or UPDATE (`upd`) of exactly
    /// one row, when `removals_subtract`; else none (the general ones run).
    /// A single-row UPDATE that stays in its group has a cheaper one
    /// (`same_group_update_statement`).
    pub fn one_row_statements(&self, op: &str) -> Vec<String> {
        if !self.removals_subtract() {
            return Vec::new();
        }
        match op {
            "del" => vec![self.subtract_row_statement(OLD)],
            "upd" => vec![
                self.subtract_row_statement(OLD),
                self.add_row_statement(NEW),
            ],
            _ => Vec::new(),
        }
    }

    fn add_sets(&self, after_removal: bool) -> Vec<String> {
        let mut sets = vec![format!("{r} = s.{r} + excluded.{r}", r = ident("_rows"))];
        for (m, _) in &self.measures {
            let c = ident(&m.name);
            sets.push(match m.agg {
                Agg::Count | Agg::Sum => format!("{c} = s.{c} + excluded.{c}"),
                Agg::Avg | Agg::Stats | Agg::Percentile => format!(
                    "{c} = CASE WHEN s.{c} IS NULL THEN excluded.{c} WHEN excluded.{c} IS NULL THEN s.{c} \
                     ELSE vigil.merge(s.{c}, excluded.{c}) END"
                ),
                Agg::Min | Agg::Max if after_removal => format!(
                    "{c} = CASE WHEN s.{c} IS NULL THEN NULL ELSE {}(s.{c}, excluded.{c}) END",
                    if m.agg == Agg::Min { "LEAST" } else { "GREATEST" }
                ),
                Agg::Min => format!("{c} = LEAST(s.{c}, excluded.{c})"),
                Agg::Max => format!("{c} = GREATEST(s.{c}, excluded.{c})"),
            });
        }
        sets
    }

    /// Upsert of the rows of transition table `from`, removing them from
    /// slot 0, which holds the whole group after `collapse_statement`. Every
    /// group exists (its rows were added before), so this always takes the
    /// conflict path.
    /// A min/max whose current value may have left becomes NULL, and a
    /// stats summary that lost an extreme reports it: `repair_statement`
    /// recomputes both from the source afterwards.
    pub fn remove_statement(&self, from: &str) -> String {
        let mut sets = vec![format!("{r} = s.{r} - excluded.{r}", r = ident("_rows"))];
        for (m, _) in &self.measures {
            let c = ident(&m.name);
            sets.push(match m.agg {
                Agg::Count | Agg::Sum => format!("{c} = s.{c} - excluded.{c}"),
                Agg::Avg | Agg::Stats | Agg::Percentile => format!(
                    "{c} = CASE WHEN excluded.{c} IS NULL THEN s.{c} \
                     WHEN vigil.num_vals(excluded.{c}) >= vigil.num_vals(s.{c}) THEN NULL \
                     ELSE vigil.subtract(s.{c}, excluded.{c}) END"
                ),
                Agg::Min => {
                    format!("{c} = CASE WHEN excluded.{c} <= s.{c} THEN NULL ELSE s.{c} END")
                }
                Agg::Max => {
                    format!("{c} = CASE WHEN excluded.{c} >= s.{c} THEN NULL ELSE s.{c} END")
                }
            });
        }
        self.upsert(&self.aggregate_select(from), &sets, Slot::Zero)
    }

    /// Before a removal: folds every other slot row of the groups touched by
    /// `from` into slot 0 (the caller holds their locks, `lock_statement`),
    /// so removals subtract from one row that holds the whole group.
    pub fn collapse_statement(&self, from: &[&str]) -> String {
        format!(
            "WITH moved AS (DELETE FROM {} s USING ({}) k WHERE {} AND s.{} > 0 AND {} RETURNING s.*) {}",
            self.table(),
            self.touched_union(from),
            self.keys_match("s", "k"),
            ident("_slot"),
            self.slot_held("s"),
            self.upsert(
                &self.merged_select("moved"),
                &self.add_sets(false),
                Slot::Zero
            )
        )
    }

    /// Summary rows of `from` merged per group (slots added up), in the
    /// column order of `all_columns`, sorted by key.
    fn merged_select(&self, from: &str) -> String {
        let mut cols: Vec<String> = self
            .key_columns()
            .iter()
            .map(|c| format!("r.{c}"))
            .collect();
        cols.push(format!("sum(r.{r})::bigint AS {r}", r = ident("_rows")));
        for (m, _) in &self.measures {
            let c = ident(&m.name);
            cols.push(match m.agg {
                Agg::Count => format!("sum(r.{c})::bigint AS {c}"),
                Agg::Sum => format!("sum(r.{c}) AS {c}"),
                Agg::Avg | Agg::Stats | Agg::Percentile => format!("vigil.rollup(r.{c}) AS {c}"),
                Agg::Min => format!("min(r.{c}) AS {c}"),
                Agg::Max => format!("max(r.{c}) AS {c}"),
            });
        }
        format!(
            "SELECT {} FROM {from} r GROUP BY {p} ORDER BY {p}",
            cols.join(", "),
            p = self.key_positions()
        )
    }

    /// The groups touched by any of the transition tables `from`.
    fn touched_union(&self, from: &[&str]) -> String {
        from.iter()
            .map(|f| self.touched(f))
            .collect::<Vec<_>>()
            .join(" UNION ")
    }

    /// NULL-safe match of summary row `s` against rows `k` with the same
    /// keys, written so the summary's unique index can serve it (`=` for
    /// NOT NULL columns, `= OR both NULL` otherwise).
    fn keys_match(&self, s: &str, k: &str) -> String {
        let mut conds: Vec<String> = self
            .group_by
            .iter()
            .map(|(g, t)| {
                let c = ident(g);
                if t.not_null {
                    format!("{s}.{c} = {k}.{c}")
                } else {
                    format!("({s}.{c} = {k}.{c} OR ({s}.{c} IS NULL AND {k}.{c} IS NULL))")
                }
            })
            .collect();
        conds.push(format!("{s}.{b} = {k}.{b}", b = ident("bucket")));
        conds.join(" AND ")
    }

    /// The keys as one text value: equal exactly when the keys are equal,
    /// NULLs included, and hashable (for verify's full join).
    fn key_text(&self, alias: &str) -> String {
        let cols: Vec<String> = self
            .key_columns()
            .iter()
            .map(|c| format!("{alias}.{c}"))
            .collect();
        format!("ROW({})::text", cols.join(", "))
    }

    /// The groups touched by transition table `from`: `SELECT DISTINCT keys`.
    fn touched(&self, from: &str) -> String {
        let mut cols = self.group_columns("r");
        cols.push(format!("{} AS {}", self.bucket_expr("r"), ident("bucket")));
        format!(
            "SELECT DISTINCT {} FROM {from} r WHERE {}",
            cols.join(", "),
            self.has_time()
        )
    }

    /// After a removal: drop emptied groups, recompute min/max that became
    /// NULL and stats that lost an extreme, from the source rows of just
    /// those groups.
    pub fn repair_statements(&self, from: &[&str]) -> Vec<String> {
        self.repair_statements_excluding(from, None)
    }

    /// `repair_statements`, recomputing from the source's rows outside
    /// partition `exclude` (whose rows are about to be truncated).
    fn repair_statements_excluding(&self, from: &[&str], exclude: Option<u32>) -> Vec<String> {
        let touched = self.touched_union(from);
        let outside = exclude
            .map(|oid| format!(" AND r.tableoid OPERATOR(pg_catalog.<>) {oid}::pg_catalog.oid"))
            .unwrap_or_default();
        let mut out = vec![format!(
            "DELETE FROM {} s USING ({touched}) k WHERE {} AND s.{} = 0 AND s.{} = 0",
            self.table(),
            self.keys_match("s", "k"),
            ident("_slot"),
            ident("_rows")
        )];
        let group_rows = {
            let mut conds: Vec<String> = self
                .group_by
                .iter()
                .zip(&self.group_source)
                .map(|((g, _), src)| {
                    format!("r.{} IS NOT DISTINCT FROM s.{}", ident(src), ident(g))
                })
                .collect();
            conds.push(format!(
                "{t} >= s.{b} AND {t} < s.{b} + {}::interval",
                literal(&self.bucket),
                t = self.time_expr("r"),
                b = ident("bucket")
            ));
            conds.join(" AND ")
        };
        // Only slot 0 can be stale: removals work there. Other slot rows of
        // the group (added since by concurrent writers) keep their own
        // values, so a stats summary gets back only its extremes, which are
        // the group's (min/max of the group is min/max over its slots).
        for (m, t) in &self.measures {
            let c = ident(&m.name);
            let group_value = |e: String| {
                format!(
                    "(SELECT {e} FROM {} r WHERE {group_rows}{outside})",
                    self.source
                )
            };
            let (stale, value) = match m.agg {
                Agg::Min | Agg::Max => (
                    format!("s.{c} IS NULL"),
                    group_value(Self::measure_expr(m, t)),
                ),
                Agg::Stats => {
                    let col = format!(
                        "r.{}::float8",
                        ident(m.column.as_deref().expect("validated"))
                    );
                    let filter = Self::filter_clause(m, Some(format!("{col} IS NOT NULL")));
                    (
                        format!(
                            "s.{c} IS NOT NULL AND vigil.num_vals(s.{c}) > 0 AND vigil.min_val(s.{c}) IS NULL"
                        ),
                        format!(
                            "vigil._stats_with_extremes(s.{c}, {}, {})",
                            group_value(format!("min({col}){filter}")),
                            group_value(format!("max({col}){filter}"))
                        ),
                    )
                }
                _ => continue,
            };
            out.push(format!(
                "UPDATE {} s SET {c} = {value} FROM ({touched}) k WHERE {} AND s.{} = 0 AND {stale}",
                self.table(),
                self.keys_match("s", "k"),
                ident("_slot"),
            ));
        }
        out
    }

    /// Locks every slot row of the groups touched by a DELETE or UPDATE in
    /// row-key order before its passes, so two writers cannot deadlock.
    pub fn lock_statement(&self, from: &[&str]) -> String {
        let keys = self.row_key_columns();
        format!(
            "SELECT 1 FROM {} s, ({}) k WHERE {} AND {} ORDER BY {} FOR UPDATE OF s",
            self.table(),
            self.touched_union(from),
            self.keys_match("s", "k"),
            self.slot_held("s"),
            keys.iter()
                .map(|c| format!("s.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    /// The statements that keep the summary exact after a DELETE (`del`),
    /// UPDATE (`upd`) or TRUNCATE (`trunc`) of the source, in order; the
    /// shared trigger `vigil._rollup_trigger` (trigger.rs) runs them as the
    /// source's owner. Every name is qualified.
    pub fn maintenance_statements(&self, op: &str) -> Vec<String> {
        let old: &[&str] = &[OLD];
        let both: &[&str] = &[OLD, NEW];
        match op {
            "del" if self.removals_subtract() => vec![self.subtract_statement(OLD)],
            "upd" if self.removals_subtract() => vec![self.net_update_statement()],
            "del" => {
                let mut delete = vec![
                    self.lock_statement(old),
                    self.collapse_statement(old),
                    self.remove_statement(OLD),
                ];
                delete.extend(self.repair_statements(old));
                delete
            }
            "upd" => {
                let mut update = vec![
                    self.lock_statement(both),
                    self.collapse_statement(both),
                    self.remove_statement(OLD),
                ];
                update.push(self.add_statement(NEW, true));
                update.extend(self.repair_statements(both));
                update
            }
            "trunc" => vec![format!("TRUNCATE {}", self.table())],
            _ => unreachable!("ins is add_statement/add_row_statement"),
        }
    }

    /// Before TRUNCATE of leaf partition `partition` (oid `oid`): its rows
    /// leave the summary the way a DELETE of them would (a partition is
    /// truncated to be emptied or reloaded; DROP and DETACH keep history).
    pub fn truncate_partition_statements(&self, partition: &str, oid: u32) -> Vec<String> {
        // count/sum: the partition's rows come off as a signed delta in a
        // free slot, like a DELETE of them; nothing to lock, fold or repair.
        if self.removals_subtract() {
            return vec![self.subtract_statement(partition)];
        }
        let from: &[&str] = &[partition];
        let mut out = vec![
            self.lock_statement(from),
            self.collapse_statement(from),
            self.remove_statement(partition),
        ];
        out.extend(self.repair_statements_excluding(from, Some(oid)));
        out
    }

    /// The name of the trigger on the source for operation `op`, quoted.
    pub fn trigger_name(&self, op: &str) -> String {
        ident(&self.trigger_name_raw(op))
    }

    /// The same name unquoted, as `pg_trigger.tgname` holds it.
    pub fn trigger_name_raw(&self, op: &str) -> String {
        let mut base = format!("vigil_rollup_{}", self.name);
        while base.len() + op.len() + 1 > 63 {
            base.pop();
        }
        format!("{base}_{op}")
    }

    /// CREATE TRIGGER statements on the source: every one runs the shared
    /// `vigil._rollup_trigger('<summary>')` (trigger.rs).
    pub fn triggers(&self) -> Vec<String> {
        self.triggers_named(|op| self.trigger_name(op), false)
    }

    /// The same triggers on `table` (a partition of the source: DML that
    /// names a partition fires only that partition's statement triggers).
    pub fn triggers_on(&self, table: &str) -> Vec<String> {
        self.triggers_for(table, |op| self.trigger_name(op), false)
    }

    /// The definition as the triggers carry it (their second argument), so
    /// a dump of the application's schema alone still says what the rollup
    /// is: `{time_column, bucket, group_by, group_source, measures}`.
    pub fn definition_json(&self, measures: &Value) -> String {
        serde_json::json!({
            "time_column": self.time_column,
            "bucket": self.bucket,
            "group_by": self.group_by.iter().map(|(g, _)| g).collect::<Vec<_>>(),
            "group_source": self.group_source,
            "measures": measures,
        })
        .to_string()
    }

    /// CREATE [OR REPLACE] TRIGGER statements with the given names; the
    /// definition argument is `self.definition` (set by `sql.rs`).
    pub fn triggers_named(&self, name: impl Fn(&str) -> String, replace: bool) -> Vec<String> {
        self.triggers_for(&self.source, name, replace)
    }

    /// CREATE [OR REPLACE] TRIGGER statements on `table`.
    pub fn triggers_for(
        &self,
        table: &str,
        name: impl Fn(&str) -> String,
        replace: bool,
    ) -> Vec<String> {
        let t = |op: &str| name(op);
        let f = format!(
            "vigil._rollup_trigger({}, {})",
            literal(&self.table()),
            literal(&self.definition)
        );
        let create = if replace {
            "CREATE OR REPLACE TRIGGER"
        } else {
            "CREATE TRIGGER"
        };
        vec![
            format!(
                "{create} {} AFTER INSERT ON {} REFERENCING NEW TABLE AS {} FOR EACH STATEMENT EXECUTE FUNCTION {f}",
                t("ins"), table, trigger::NEW_TABLE
            ),
            format!(
                "{create} {} AFTER DELETE ON {} REFERENCING OLD TABLE AS {} FOR EACH STATEMENT EXECUTE FUNCTION {f}",
                t("del"), table, trigger::OLD_TABLE
            ),
            format!(
                "{create} {} AFTER UPDATE ON {} REFERENCING OLD TABLE AS {} NEW TABLE AS {} FOR EACH STATEMENT EXECUTE FUNCTION {f}",
                t("upd"), table, trigger::OLD_TABLE, trigger::NEW_TABLE
            ),
            format!(
                "{create} {} {} TRUNCATE ON {} FOR EACH STATEMENT EXECUTE FUNCTION {f}",
                t("trunc"),
                if table == self.source { "AFTER" } else { "BEFORE" },
                table
            ),
        ]
    }

    /// Recomputes the whole summary from the source (backfill and rebuild).
    pub fn backfill_statement(&self) -> String {
        format!(
            "INSERT INTO {} ({}) {}",
            self.table(),
            self.all_columns().join(", "),
            self.aggregate_select(&self.source)
        )
    }

    /// Recomputes the buckets from `lo` to `hi` (bucket starts, SQL
    /// timestamptz expressions) from the source: their summary rows go,
    /// then the source's rows in them are aggregated again (slot 0).
    pub fn recompute_range_statements(&self, lo: &str, hi: &str) -> Vec<String> {
        let t = self.time_expr("r");
        vec![
            format!(
                "DELETE FROM {} s WHERE s.{b} >= {lo} AND s.{b} <= {hi}",
                self.table(),
                b = ident("bucket")
            ),
            format!(
                "INSERT INTO {} ({}) {}",
                self.table(),
                self.all_columns().join(", "),
                self.aggregate_select(&format!(
                    "(SELECT * FROM {} r WHERE {t} >= {lo} AND {t} < {hi} + {}::interval)",
                    self.source,
                    literal(&self.bucket)
                ))
            ),
        ]
    }

    /// `min(bucket), max(bucket)` of the rows of relation `rel` (its own
    /// rows only), as timestamptz text.
    pub fn bucket_range_of(&self, rel: &str) -> String {
        format!(
            "SELECT min({b})::text, max({b})::text FROM ONLY {rel} r",
            b = self.bucket_expr("r")
        )
    }

    /// Counts groups whose stored measures differ from a full recompute.
    /// Float sums and summaries compare within 1e-9 relative; sketches and
    /// everything else exactly.
    pub fn verify_statement(&self) -> String {
        self.verify_statement_from(None)
    }

    /// `verify_statement`, comparing only buckets within `range` (two SQL
    /// expressions, the first and last bucket): a partitioned source keeps
    /// the summary's history of partitions it detached or dropped.
    pub fn verify_statement_from(&self, range: Option<(String, String)>) -> String {
        let mut diffs = vec![format!("s.{r} IS DISTINCT FROM f.{r}", r = ident("_rows"))];
        for (m, t) in &self.measures {
            let c = ident(&m.name);
            diffs.push(match (m.agg, t) {
                (Agg::Sum, Some(t)) if t.float => format!(
                    "abs(s.{c} - f.{c}) > 1e-9 * greatest(abs(f.{c}), 1e-300)"
                ),
                (Agg::Avg, _) => format!(
                    "vigil.num_vals(s.{c}) IS DISTINCT FROM vigil.num_vals(f.{c}) \
                     OR abs(vigil.mean(s.{c}) - vigil.mean(f.{c})) > 1e-9 * greatest(abs(vigil.mean(f.{c})), 1)"
                ),
                (Agg::Stats, _) => format!(
                    "vigil.num_vals(s.{c}) IS DISTINCT FROM vigil.num_vals(f.{c}) \
                     OR abs(vigil.mean(s.{c}) - vigil.mean(f.{c})) > 1e-9 * greatest(abs(vigil.mean(f.{c})), 1) \
                     OR abs(coalesce(vigil.stddev(s.{c}), 0) - coalesce(vigil.stddev(f.{c}), 0)) > 1e-6 * greatest(coalesce(vigil.stddev(f.{c}), 0), 1) \
                     OR vigil.min_val(s.{c}) IS DISTINCT FROM vigil.min_val(f.{c}) \
                     OR vigil.max_val(s.{c}) IS DISTINCT FROM vigil.max_val(f.{c})"
                ),
                (Agg::Percentile, _) => format!("s.{c}::text IS DISTINCT FROM f.{c}::text"),
                _ => format!("s.{c} IS DISTINCT FROM f.{c}"),
            });
        }
        let (summary, source) = match &range {
            None => (self.table(), self.source.clone()),
            Some((first, last)) => (
                format!(
                    "(SELECT * FROM {} h WHERE h.{b} >= ({first}) AND h.{b} <= ({last}))",
                    self.table(),
                    b = ident("bucket")
                ),
                format!(
                    "(SELECT * FROM {} h WHERE {e} >= ({first}) AND {e} <= ({last}))",
                    self.source,
                    e = self.bucket_expr("h")
                ),
            ),
        };
        // A group whose slot rows add up to no rows is absent (signed
        // removals, `removals_subtract`), whatever rounding a float sum kept.
        let mut empty = vec![format!("s.{} = 0", ident("_rows"))];
        for (m, t) in &self.measures {
            match (m.agg, t) {
                (Agg::Sum, Some(t)) if t.float => {}
                (Agg::Count | Agg::Sum, _) => empty.push(format!("s.{} = 0", ident(&m.name))),
                _ => empty.push("false".into()),
            }
        }
        format!(
            "SELECT count(*) FROM ({}) s FULL JOIN ({}) f ON {} = {} \
             WHERE s.{r} IS NULL OR CASE WHEN f.{r} IS NULL THEN NOT ({}) ELSE ({}) END",
            self.merged_select(&summary),
            self.aggregate_select(&source),
            self.key_text("s"),
            self.key_text("f"),
            empty.join(" AND "),
            diffs.join(") OR ("),
            r = ident("_rows")
        )
    }

    /// The first and last bucket the source still has rows in.
    pub fn source_bucket_range(&self) -> (String, String) {
        let q = |f: &str| {
            format!(
                "SELECT pg_catalog.{f}({}) FROM {} h",
                self.bucket_expr("h"),
                self.source
            )
        };
        (q("min"), q("max"))
    }

    /// A SQL function `<name>_since(interval)` with one row per group over
    /// the buckets that start within the interval before now(). Every
    /// function and operator is qualified, so the caller's search_path
    /// cannot redirect it (and it stays inlinable: no SET clause).
    pub fn since_function_sql(&self) -> String {
        let (out_cols, select, group) = self.since_parts();
        // BEGIN ATOMIC: the body is stored parsed, so it follows renames of
        // the summary and depends on it (DROP takes the function along).
        format!(
            "CREATE FUNCTION {}(since interval) RETURNS TABLE ({}) LANGUAGE sql STABLE PARALLEL SAFE BEGIN ATOMIC\n\
             SELECT {} FROM {} s WHERE s.{b} OPERATOR(pg_catalog.>=) pg_catalog.date_bin({}::interval, pg_catalog.now() OPERATOR(pg_catalog.-) since, {BUCKET_ORIGIN}){group};\nEND",
            self.since_function(),
            Self::since_columns(&out_cols),
            select.join(", "),
            self.table(),
            literal(&self.bucket),
            b = ident("bucket"),
        )
    }

    /// `<name>_since(since interval, exact boolean)`: with `exact`, the
    /// figures of exactly the source rows with `time > now() - since`, as
    /// that WHERE clause gives them. The summary serves the buckets that
    /// start after the cutoff; the raw rows of the bucket the cutoff falls
    /// in are aggregated from the source (through its index on the time
    /// column: the condition is on the bare column), with the measures'
    /// own expressions, and merged like one more slot row. Without
    /// `exact`, what `<name>_since(since)` gives. It reads the source's
    /// columns the rollup reads, as the caller, whatever `exact` says: the
    /// caller needs SELECT on them, and the source's row-level security
    /// applies to the edge rows; the one-argument form reads the summary
    /// only.
    ///
    /// `pinned`: the filters are not all immutable, so the function runs
    /// with the values the triggers pin (TimeZone UTC and the rest,
    /// `security::VALUE_PINS`) and the edge rows count as they did on
    /// write; such a function is not inlined, and `now() - since` is then
    /// reckoned in UTC.
    pub fn since_exact_function_sql(&self, pinned: bool) -> String {
        let (out_cols, select, group) = self.since_parts();
        let from = self.since_exact_from(&self.table(), &self.source, "since", "exact");
        format!(
            "CREATE FUNCTION {}(since interval, exact boolean) RETURNS TABLE ({}) LANGUAGE sql STABLE PARALLEL SAFE{} BEGIN ATOMIC\n\
             SELECT {} FROM {from} s{group};\nEND",
            self.since_function(),
            Self::since_columns(&out_cols),
            Self::pins(pinned),
            select.join(", "),
        )
    }

    /// The SET clauses of an exact window function whose filters are not
    /// all immutable (`since_exact_function_sql`).
    fn pins(pinned: bool) -> String {
        if pinned {
            format!(" {}", crate::security::value_pins_set_clause())
        } else {
            String::new()
        }
    }

    /// The rows `since_exact_function_sql` merges: the summary's rows
    /// after the cutoff, the edge bucket's raw rows aggregated, or (not
    /// `exact`) the summary's rows from the edge bucket on; `table`,
    /// `source`, `since` and `exact` as SQL expressions.
    fn since_exact_from(&self, table: &str, source: &str, since: &str, exact: &str) -> String {
        let cols = self.all_columns();
        let summary_cols: Vec<String> = cols.iter().map(|c| format!("h.{c}")).collect();
        let b = ident("bucket");
        let cutoff = format!("(pg_catalog.now() OPERATOR(pg_catalog.-) {since})");
        let edge_start = format!(
            "pg_catalog.date_bin({}::pg_catalog.interval, {cutoff}, {BUCKET_ORIGIN})",
            literal(&self.bucket)
        );
        let edge_end = format!(
            "({edge_start} OPERATOR(pg_catalog.+) {}::pg_catalog.interval)",
            literal(&self.bucket)
        );
        // The bare column against the bounds in its own type, so that an
        // index on it serves; a timestamp column holds UTC (`time_expr`).
        let bound = |e: &str| {
            if self.time_has_zone {
                e.to_string()
            } else {
                format!("({e} AT TIME ZONE 'UTC')")
            }
        };
        let t = format!("r.{}", ident(&self.time_column));
        let edge = self.aggregate_select_where(
            source,
            &format!(
                "{exact} AND {t} OPERATOR(pg_catalog.>) {} AND {t} OPERATOR(pg_catalog.<) {}",
                bound(&cutoff),
                bound(&edge_end),
            ),
        );
        format!(
            "(SELECT {sc} FROM {table} h WHERE {exact} AND h.{b} OPERATOR(pg_catalog.>) {cutoff} \
             UNION ALL SELECT e.* FROM ({edge}) e \
             UNION ALL SELECT {sc} FROM {table} h WHERE NOT {exact} AND h.{b} OPERATOR(pg_catalog.>=) {edge_start})",
            sc = summary_cols.join(", "),
        )
    }

    /// `since_exact_function_sql` for a summary Citus distributes, as
    /// `since_function_distributed_sql` is: PL/pgSQL running the query
    /// with the summary and source named by oid at each call (`summary`,
    /// `source`) and the values as literals.
    ///
    /// `replacing`: the name of the function to replace (`CREATE OR
    /// REPLACE`, after DDL on the source) instead of creating
    /// `<name>_since`.
    pub fn since_exact_function_distributed_sql(
        &self,
        replacing: Option<&str>,
        summary: u32,
        source: u32,
        pinned: bool,
    ) -> String {
        let (out_cols, select, group) = self.since_parts();
        let typed = Self::typed(&select, &out_cols);
        // Placeholders for format()'s positional arguments, swapped in
        // once every other `%` is doubled: control characters around a
        // name, which only the rollup's owner could write into their own
        // filter or column names (changing nothing but their own query).
        let from = self.since_exact_from(
            "\u{1}vigil-arg-1\u{1}",
            "\u{1}vigil-arg-2\u{1}",
            "\u{1}vigil-arg-3\u{1}::pg_catalog.interval",
            "\u{1}vigil-arg-4\u{1}::pg_catalog.bool",
        );
        let template = format!("SELECT {} FROM {from} s{group}", typed.join(", "))
            .replace('%', "%%")
            .replace("\u{1}vigil-arg-1\u{1}", "%1$s")
            .replace("\u{1}vigil-arg-2\u{1}", "%2$s")
            .replace("\u{1}vigil-arg-3\u{1}", "%3$L")
            .replace("\u{1}vigil-arg-4\u{1}", "%4$L");
        let body = format!(
            "\nBEGIN\n  RETURN QUERY EXECUTE pg_catalog.format({}, {summary}::pg_catalog.oid::pg_catalog.regclass, \
             {source}::pg_catalog.oid::pg_catalog.regclass, since, exact);\nEND\n",
            literal(&template),
        );
        let create = match replacing {
            Some(name) => format!("CREATE OR REPLACE FUNCTION {name}"),
            None => format!("CREATE FUNCTION {}", self.since_function()),
        };
        format!(
            "{create}(since interval, exact boolean) RETURNS TABLE ({}) LANGUAGE plpgsql STABLE PARALLEL RESTRICTED \
             SET search_path = pg_catalog, pg_temp{} AS {}",
            Self::since_columns(&out_cols),
            Self::pins(pinned),
            literal(&body),
        )
    }

    /// `since_function_sql` for a summary Citus distributes (summary oid
    /// `summary`), which cannot plan a SQL function's parameterized query:
    /// PL/pgSQL that runs the same query with its values spliced in as
    /// literals and the summary named by oid at each call (so it follows
    /// renames; create_rollup records its dependency on the summary).
    pub fn since_function_distributed_sql(&self, summary: u32) -> String {
        let (out_cols, select, group) = self.since_parts();
        let typed = Self::typed(&select, &out_cols);
        let template = format!(
            "SELECT {} FROM %s s WHERE s.{} OPERATOR(pg_catalog.>=) pg_catalog.date_bin(%L::pg_catalog.interval, \
             pg_catalog.now() OPERATOR(pg_catalog.-) %L::pg_catalog.interval, {BUCKET_ORIGIN}){group}",
            typed.join(", ").replace('%', "%%"),
            ident("bucket"),
        );
        let body = format!(
            "\nBEGIN\n  RETURN QUERY EXECUTE pg_catalog.format({}, {summary}::pg_catalog.oid::pg_catalog.regclass, {}, since);\nEND\n",
            literal(&template),
            literal(&self.bucket),
        );
        // The body as a quoted literal, not dollar quotes a column name
        // could close.
        format!(
            "CREATE FUNCTION {}(since interval) RETURNS TABLE ({}) LANGUAGE plpgsql STABLE PARALLEL RESTRICTED \
             SET search_path = pg_catalog, pg_temp AS {}",
            self.since_function(),
            Self::since_columns(&out_cols),
            literal(&body),
        )
    }

    /// The select list with each column cast to its declared type (RETURN
    /// QUERY needs them exact).
    fn typed(select: &[String], out_cols: &[(String, String)]) -> Vec<String> {
        select
            .iter()
            .zip(out_cols)
            .map(|(e, (_, t))| format!("({e})::{t}"))
            .collect()
    }

    /// `name type, …` of the `_since` function's RETURNS TABLE.
    fn since_columns(out_cols: &[(String, String)]) -> String {
        out_cols
            .iter()
            .map(|(c, t)| format!("{c} {t}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The `_since` function's columns (name, type), its select list over
    /// the summary `s`, and its GROUP BY … HAVING.
    fn since_parts(&self) -> (Vec<(String, String)>, Vec<String>, String) {
        let mut out_cols: Vec<(String, String)> = self
            .group_by
            .iter()
            .map(|(g, t)| (ident(g), t.sql.clone()))
            .collect();
        let mut select: Vec<String> = self
            .group_by
            .iter()
            .map(|(g, _)| format!("s.{}", ident(g)))
            .collect();
        out_cols.push((ident("rows"), "bigint".into()));
        select.push(format!("pg_catalog.sum(s.{})::bigint", ident("_rows")));
        for (m, t) in self.measures.iter().filter(|(m, _)| m.counts_for.is_none()) {
            let c = ident(&m.name);
            let (ty, expr) = match (m.agg, t) {
                (Agg::Count, _) => (
                    "bigint".to_string(),
                    format!("pg_catalog.sum(s.{c})::bigint"),
                ),
                (Agg::Sum, Some(t)) => (
                    Self::sum_type(t).to_string(),
                    format!(
                        "CASE WHEN pg_catalog.sum(s.{}) OPERATOR(pg_catalog.>) 0 THEN pg_catalog.sum(s.{c}) END",
                        ident(self.nonnull_of(&m.name))
                    ),
                ),
                (Agg::Avg, _) => (
                    "float8".to_string(),
                    format!("vigil.mean(vigil.rollup(s.{c}))"),
                ),
                (Agg::Stats, _) => ("vigil.statsagg".to_string(), format!("vigil.rollup(s.{c})")),
                (Agg::Percentile, _) => {
                    ("vigil.sketch".to_string(), format!("vigil.rollup(s.{c})"))
                }
                (Agg::Min, Some(t)) => (t.sql.clone(), format!("pg_catalog.min(s.{c})")),
                (Agg::Max, Some(t)) => (t.sql.clone(), format!("pg_catalog.max(s.{c})")),
                (_, None) => unreachable!("validated"),
            };
            out_cols.push((c, ty));
            select.push(expr);
        }
        // A group whose slot rows add up to no rows (every row of it
        // removed by signed deltas, `removals_subtract`) is not there.
        let group = if self.group_by.is_empty() {
            String::new()
        } else {
            format!(
                " GROUP BY {} HAVING pg_catalog.sum(s.{}) OPERATOR(pg_catalog.>) 0",
                (1..=self.group_by.len())
                    .map(|i| i.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                ident("_rows")
            )
        };
        (out_cols, select, group)
    }

    pub fn window_views(&self) -> Vec<String> {
        [("1h", "1 hour"), ("24h", "24 hours"), ("7d", "7 days")]
            .iter()
            .map(|(label, span)| {
                format!(
                    "CREATE VIEW {} AS SELECT * FROM {}(interval {})",
                    self.window_view(label),
                    self.since_function(),
                    literal(span)
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
