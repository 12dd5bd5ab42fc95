//! Queries translated to SQL, for stores whose database can do the work.
//! A [`Dialect`] names how its database reads a JSON value; [`translate`]
//! builds the `WHERE` and `ORDER BY` with the semantics of the module
//! documentation, binding every value as a parameter. Paths are written
//! into the SQL: [`Query::parse`] only lets through keys without quotes,
//! backslashes, braces or commas, so they can never end a literal.

use super::*;

/// A JSON type, as a filter asks for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonType {
    True,
    False,
    Null,
}

/// How one database reads JSON. Every expression takes the `path` the
/// dialect rendered with [`Dialect::path`].
pub trait Dialect {
    /// The placeholder of the `index`th parameter (1-based).
    fn placeholder(&self, index: usize) -> String;
    /// The SQL form of a path (a literal, or an expression).
    fn path(&self, segments: &[String]) -> String;
    /// The value at `path` as a double when it is a JSON number, else NULL.
    fn number(&self, path: &str) -> String;
    /// The value at `path` as text comparable byte for byte when it is a
    /// JSON string, else NULL.
    fn string(&self, path: &str) -> String;
    /// A text parameter, comparable with [`Dialect::string`].
    fn string_param(&self, placeholder: &str) -> String {
        placeholder.to_owned()
    }
    /// True when the value at `path` is of the type (false or NULL if not).
    fn is(&self, path: &str, json_type: JsonType) -> String;
    /// True when the document has a value (JSON null included) at `path`.
    fn present(&self, path: &str) -> String;
    /// The sort rank of the value at `path`: 0 number, 1 string, 2 boolean,
    /// 3 null, 4 object or array, 5 missing.
    fn rank(&self, path: &str) -> String;
    /// The text a sort compares for strings and booleans (`false` before
    /// `true`), byte for byte; NULL for other types.
    fn sort_text(&self, path: &str) -> String;
    /// The key column ordered byte for byte.
    fn key_order(&self, column: &str) -> String;
}

/// A parameter of a translated query.
#[derive(Clone, Debug, PartialEq)]
pub enum SqlParam {
    Text(String),
    Float(f64),
}

/// The parts of a translated query.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SqlQuery {
    /// The filter as a condition (`TRUE` without one).
    pub condition: String,
    /// The `ORDER BY` list, ending with the key.
    pub order_by: String,
    /// Parameters of `condition`, in placeholder order.
    pub params: Vec<SqlParam>,
}

struct Builder<'a> {
    dialect: &'a dyn Dialect,
    params: Vec<SqlParam>,
    first: usize,
}

impl Builder<'_> {
    fn bind(&mut self, param: SqlParam) -> String {
        self.params.push(param);
        self.dialect.placeholder(self.first + self.params.len() - 1)
    }

    /// A condition that is never NULL.
    fn filter(&mut self, filter: &Filter) -> String {
        match filter {
            Filter::Compare { op, path, value } => self.compare(*op, path, value),
            Filter::In { path, values } if values.is_empty() => "(1 = 0)".into(),
            Filter::In { path, values } => self.one_of(path, values),
            Filter::And(filters) => self.join(filters, " AND "),
            Filter::Or(filters) => self.join(filters, " OR "),
        }
    }

    /// `IN`: the numbers in one SQL `IN` list, the strings in another,
    /// booleans and null each on their own, so that the expression stays
    /// shallow however many values there are.
    fn one_of(&mut self, path: &[String], values: &[Scalar]) -> String {
        let path = self.dialect.path(path);
        // Bound in the order they appear in the SQL: numbers, then strings
        // (MySQL's placeholders are positional).
        let mut numbers = Vec::new();
        for value in values {
            if let Scalar::Number(n) = value {
                numbers.push(self.bind(SqlParam::Float(*n)));
            }
        }
        let mut strings = Vec::new();
        for value in values {
            if let Scalar::String(text) = value {
                let p = self.bind(SqlParam::Text(text.clone()));
                strings.push(self.dialect.string_param(&p));
            }
        }
        let mut others: Vec<&Scalar> = Vec::new();
        for value in values {
            if matches!(value, Scalar::Bool(_) | Scalar::Null) && !others.contains(&value) {
                others.push(value);
            }
        }
        let mut parts = Vec::new();
        if !numbers.is_empty() {
            parts.push(format!(
                "COALESCE({} IN ({}), 1 = 0)",
                self.dialect.number(&path),
                numbers.join(", ")
            ));
        }
        if !strings.is_empty() {
            parts.push(format!(
                "COALESCE({} IN ({}), 1 = 0)",
                self.dialect.string(&path),
                strings.join(", ")
            ));
        }
        for other in others {
            parts.push(self.equal(&path, other));
        }
        format!("({})", parts.join(" OR "))
    }

    fn join(&mut self, filters: &[Filter], separator: &str) -> String {
        let parts: Vec<String> = filters.iter().map(|f| self.filter(f)).collect();
        format!("({})", parts.join(separator))
    }

    fn compare(&mut self, op: CompareOp, path: &[String], value: &Scalar) -> String {
        let path = self.dialect.path(path);
        if op == CompareOp::Neq {
            let eq = self.equal(&path, value);
            return format!(
                "(COALESCE({}, 1 = 0) AND NOT {eq})",
                self.dialect.present(&path)
            );
        }
        if op == CompareOp::Eq {
            return self.equal(&path, value);
        }
        let sql_op = op.sql();
        let condition = match value {
            Scalar::Number(n) => {
                let p = self.bind(SqlParam::Float(*n));
                format!("{} {sql_op} {p}", self.dialect.number(&path))
            }
            Scalar::String(s) => {
                let p = self.bind(SqlParam::Text(s.clone()));
                format!(
                    "{} {sql_op} {}",
                    self.dialect.string(&path),
                    self.dialect.string_param(&p)
                )
            }
            // Refused by the parser.
            Scalar::Null | Scalar::Bool(_) => "1 = 0".into(),
        };
        format!("COALESCE({condition}, 1 = 0)")
    }

    fn equal(&mut self, path: &str, value: &Scalar) -> String {
        let condition = match value {
            Scalar::Number(n) => {
                let p = self.bind(SqlParam::Float(*n));
                format!("{} = {p}", self.dialect.number(path))
            }
            Scalar::String(s) => {
                let p = self.bind(SqlParam::Text(s.clone()));
                format!(
                    "{} = {}",
                    self.dialect.string(path),
                    self.dialect.string_param(&p)
                )
            }
            Scalar::Bool(true) => self.dialect.is(path, JsonType::True),
            Scalar::Bool(false) => self.dialect.is(path, JsonType::False),
            Scalar::Null => self.dialect.is(path, JsonType::Null),
        };
        format!("COALESCE({condition}, 1 = 0)")
    }
}

/// Translates a query's filter and sort. `first_param` is the index the
/// filter's first placeholder takes (after the caller's own parameters).
pub fn translate(
    query: &Query,
    dialect: &dyn Dialect,
    key_column: &str,
    first_param: usize,
) -> SqlQuery {
    let mut builder = Builder {
        dialect,
        params: Vec::new(),
        first: first_param,
    };
    let condition = match &query.filter {
        Some(filter) => builder.filter(filter),
        None => "(1 = 1)".into(),
    };
    let mut order = Vec::new();
    for key in &query.sort {
        let path = dialect.path(&key.path);
        let direction = if key.descending { "DESC" } else { "ASC" };
        order.push(format!("{} ASC", dialect.rank(&path)));
        order.push(format!("{} {direction}", dialect.number(&path)));
        order.push(format!("{} {direction}", dialect.sort_text(&path)));
    }
    order.push(format!("{} ASC", dialect.key_order(key_column)));
    SqlQuery {
        condition,
        order_by: order.join(", "),
        params: builder.params,
    }
}

/// The smallest string above every string starting with `prefix`, for a
/// key range `key >= prefix AND key < prefix_end(prefix)` (byte order).
/// Key prefixes end with the separator `||`, so the last character can
/// always be raised by one.
pub fn prefix_end(prefix: &str) -> String {
    let mut end = prefix.to_owned();
    let next = match end.pop() {
        Some('\u{d7ff}') => '\u{e000}',
        Some(last) => char::from_u32(last as u32 + 1).unwrap_or(char::MAX),
        None => '\u{1}',
    };
    end.push(next);
    end
}

/// `LIMIT`/`OFFSET` for a query (`LIMIT` reads one row more than the page,
/// see [`QueryResponse::page`]). `no_limit` is what the database takes for
/// "all rows" when only an offset is given.
pub fn limit_offset(query: &Query, no_limit: &str) -> String {
    match (query.fetch(), query.offset) {
        (None, 0) => String::new(),
        (None, offset) => format!(" LIMIT {no_limit} OFFSET {offset}"),
        (Some(fetch), offset) => format!(" LIMIT {fetch} OFFSET {offset}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A dialect that names each function, to check the structure.
    struct Plain;

    impl Dialect for Plain {
        fn placeholder(&self, index: usize) -> String {
            format!("${index}")
        }
        fn path(&self, segments: &[String]) -> String {
            format!("'{}'", segments.join("."))
        }
        fn number(&self, path: &str) -> String {
            format!("num({path})")
        }
        fn string(&self, path: &str) -> String {
            format!("str({path})")
        }
        fn is(&self, path: &str, json_type: JsonType) -> String {
            format!("is({path}, {json_type:?})")
        }
        fn present(&self, path: &str) -> String {
            format!("has({path})")
        }
        fn rank(&self, path: &str) -> String {
            format!("rank({path})")
        }
        fn sort_text(&self, path: &str) -> String {
            format!("text({path})")
        }
        fn key_order(&self, column: &str) -> String {
            format!("bytes({column})")
        }
    }

    #[test]
    fn filters_bind_values_and_never_yield_null() {
        let query = Query::parse(
            r#"{"filter":{"AND":[{"EQ":{"a.b":"x"}},{"IN":{"n":[1,true,"s",2,"t",true]}},{"NEQ":{"c":null}},{"GT":{"n":2}}]},
                "sort":[{"key":"a.b","order":"DESC"}]}"#,
        )
        .unwrap();
        let sql = translate(&query, &Plain, "key", 3);
        assert_eq!(
            sql.condition,
            "(COALESCE(str('a.b') = $3, 1 = 0) AND (COALESCE(num('n') IN ($4, $5), 1 = 0) OR COALESCE(str('n') IN ($6, $7), 1 = 0) \
             OR COALESCE(is('n', True), 1 = 0)) \
             AND (COALESCE(has('c'), 1 = 0) AND NOT COALESCE(is('c', Null), 1 = 0)) AND COALESCE(num('n') > $8, 1 = 0))"
        );
        assert_eq!(
            sql.params,
            vec![
                SqlParam::Text("x".into()),
                SqlParam::Float(1.0),
                SqlParam::Float(2.0),
                SqlParam::Text("s".into()),
                SqlParam::Text("t".into()),
                SqlParam::Float(2.0)
            ]
        );
        assert_eq!(
            sql.order_by,
            "rank('a.b') ASC, num('a.b') DESC, text('a.b') DESC, bytes(key) ASC"
        );
    }

    #[test]
    fn prefix_ranges() {
        assert_eq!(prefix_end("app||"), "app|}");
        assert_eq!(prefix_end("a"), "b");
        assert_eq!(prefix_end("a\u{d7ff}"), "a\u{e000}");
    }

    #[test]
    fn limits() {
        let query = |limit, offset| Query {
            limit,
            offset,
            ..Query::default()
        };
        assert_eq!(limit_offset(&query(None, 0), "-1"), "");
        assert_eq!(limit_offset(&query(None, 5), "-1"), " LIMIT -1 OFFSET 5");
        assert_eq!(
            limit_offset(&query(Some(10), 20), "-1"),
            " LIMIT 11 OFFSET 20"
        );
    }
}
