//! A query written once for both backends: SQL text with `$n` placeholders and its bound
//! arguments, turned into SQLite's or PostgreSQL's sqlx query when it runs.

use sqlx::{Postgres, Sqlite};

/// Typed ids bind as their text.
macro_rules! id_args {
    ($($id:ident),+) => {$(
        impl From<crate::ids::$id> for Arg {
            fn from(v: crate::ids::$id) -> Self {
                Arg::Text(Some(v.0))
            }
        }

        impl From<&crate::ids::$id> for Arg {
            fn from(v: &crate::ids::$id) -> Self {
                Arg::Text(Some(v.0.clone()))
            }
        }
    )+};
}

id_args!(RunId, StepId, WaitId, BusinessId, JobId);

/// One bound argument. Only the types the schema uses: integers and text, each nullable.
#[derive(Clone, Debug)]
pub enum Arg {
    /// BIGINT / INTEGER.
    Int(Option<i64>),
    /// TEXT.
    Text(Option<String>),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::Int(Some(v))
    }
}
impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::Int(v)
    }
}
impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(Some(v.to_owned()))
    }
}
impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(Some(v))
    }
}
impl From<&String> for Arg {
    fn from(v: &String) -> Self {
        Arg::Text(Some(v.clone()))
    }
}
impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::Text(v)
    }
}
impl From<Option<&str>> for Arg {
    fn from(v: Option<&str>) -> Self {
        Arg::Text(v.map(str::to_owned))
    }
}

/// A query: SQL text with `$n` placeholders and its arguments in order.
#[derive(Clone, Debug)]
pub struct Q {
    sql: String,
    args: Vec<Arg>,
    /// The placeholders are `$1`…`$n`, each once and in order (see [`Q::bulk`]).
    in_order: bool,
}

impl Q {
    /// Starts a query.
    pub fn new(sql: impl Into<String>) -> Self {
        Q {
            sql: sql.into(),
            args: Vec::new(),
            in_order: false,
        }
    }

    /// Starts a query with thousands of arguments whose placeholders are `$1`…`$n`, each once
    /// and in order. SQLite gets them as anonymous `?`: it looks a numbered parameter's name up
    /// in a list for every argument bound, which made a 30,000-argument insert take a second
    /// and a half of CPU instead of milliseconds.
    pub fn bulk(sql: impl Into<String>) -> Self {
        Q {
            in_order: true,
            ..Q::new(sql)
        }
    }
    /// `$first, $first+1, …`: `n` placeholders, for an `IN (…)` list bound in order.
    pub fn placeholders(first: usize, n: usize) -> String {
        (first..first + n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Binds the next `$n` argument.
    pub fn bind(mut self, arg: impl Into<Arg>) -> Self {
        self.args.push(arg.into());
        self
    }

    pub(super) fn sqlite(&self) -> sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments> {
        let sql = if self.in_order {
            anonymous_placeholders(&self.sql)
        } else {
            self.sql.clone()
        };
        // SQL text is assembled only from constants in the store modules; values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in &self.args {
            q = match a {
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
            };
        }
        q
    }

    pub(super) fn pg(&self) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        // SQL text is assembled only from constants in the store modules; values are bound.
        let mut q = sqlx::query(sqlx::AssertSqlSafe(self.sql.as_str()));
        for a in &self.args {
            q = match a {
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
            };
        }
        q
    }
}

/// `$1`, `$2`, … as `?` (for [`Q::bulk`], whose placeholders come once each and in order).
pub(super) fn anonymous_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
            while chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}
