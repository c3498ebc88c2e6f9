//! `--filter` expressions (`lambda>=1e-3`, `status=done`, `optimizer.kind!=adam`) and the column
//! names they and `--sort` use: a short name matches a dotted key by its last part.

use std::cmp::Ordering;

use crate::results::schema::ParamValue;
use crate::views::ViewError;

const OPERATORS: &str = "one of >=, <=, >, <, =, !=";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Ge,
    Le,
    Gt,
    Lt,
    Eq,
    Ne,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Ge => ">=",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Lt => "<",
            Op::Eq => "=",
            Op::Ne => "!=",
        }
    }

    fn holds(self, o: Ordering) -> bool {
        match self {
            Op::Ge => o != Ordering::Less,
            Op::Le => o != Ordering::Greater,
            Op::Gt => o == Ordering::Greater,
            Op::Lt => o == Ordering::Less,
            Op::Eq => o == Ordering::Equal,
            Op::Ne => o != Ordering::Equal,
        }
    }
}

/// One parsed `--filter`.
#[derive(Debug, Clone, PartialEq)]
pub struct Filter {
    pub text: String,
    pub column: String,
    pub op: Op,
    pub value: String,
}

/// A value a filter compares against: a parameter, a metric or a text column.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Param(&'a ParamValue),
    Num(f64),
    Text(&'a str),
    /// The run does not have this column (another experiment's parameter): never matches.
    Absent,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, ViewError> {
        let bad = |why: String| ViewError::Filter(format!("bad filter '{text}': {why}"));
        let Some(pos) = text.find(['<', '>', '=', '!']) else {
            return Err(bad(format!("no operator ({OPERATORS})")));
        };
        let rest = &text[pos..];
        let (op, len) = match rest.as_bytes() {
            [b'>', b'=', ..] => (Op::Ge, 2),
            [b'<', b'=', ..] => (Op::Le, 2),
            [b'!', b'=', ..] => (Op::Ne, 2),
            [b'=', b'=', ..] => (Op::Eq, 2),
            [b'>', ..] => (Op::Gt, 1),
            [b'<', ..] => (Op::Lt, 1),
            [b'=', ..] => (Op::Eq, 1),
            _ => return Err(bad(format!("'!' is not an operator ({OPERATORS})"))),
        };
        let column = text[..pos].trim();
        let value = rest[len..].trim();
        if column.is_empty() {
            return Err(bad(format!("no column name before '{}'", op.as_str())));
        }
        if let Some(c) = value.chars().next().filter(|c| "<>=!".contains(*c)) {
            let token = &rest[..len + c.len_utf8()];
            return Err(bad(format!("'{token}' is not an operator ({OPERATORS})")));
        }
        if value.is_empty() {
            return Err(bad(format!("no value after '{}'", op.as_str())));
        }
        Ok(Filter {
            text: text.to_string(),
            column: column.to_string(),
            op,
            value: value.to_string(),
        })
    }

    /// Whether a cell passes; an error names the filter when the types cannot be compared.
    pub fn matches(&self, cell: Cell) -> Result<bool, ViewError> {
        let bad = |why: String| ViewError::Filter(format!("bad filter '{}': {why}", self.text));
        let number = || {
            self.value
                .parse::<f64>()
                .map_err(|_| bad(format!("'{}' is not a number", self.value)))
        };
        let text_eq = |s: &str| match self.op {
            Op::Eq => Ok(s == self.value),
            Op::Ne => Ok(s != self.value),
            op => Err(bad(format!(
                "'{}' needs a number but '{}' holds text",
                op.as_str(),
                self.column
            ))),
        };
        match cell {
            Cell::Absent => Ok(false),
            Cell::Num(x) => Ok(cmp_f64(x, number()?).is_some_and(|o| self.op.holds(o))),
            Cell::Param(ParamValue::Int(i)) => {
                Ok(cmp_f64(*i as f64, number()?).is_some_and(|o| self.op.holds(o)))
            }
            Cell::Param(ParamValue::Float(f)) => {
                Ok(cmp_f64(*f, number()?).is_some_and(|o| self.op.holds(o)))
            }
            Cell::Param(ParamValue::Bool(b)) => {
                let v = self
                    .value
                    .parse::<bool>()
                    .map_err(|_| bad(format!("'{}' is not true or false", self.value)))?;
                match self.op {
                    Op::Eq => Ok(*b == v),
                    Op::Ne => Ok(*b != v),
                    op => Err(bad(format!(
                        "'{}' needs a number but '{}' is true/false",
                        op.as_str(),
                        self.column
                    ))),
                }
            }
            Cell::Param(ParamValue::Str(s)) => text_eq(s),
            Cell::Text(s) => text_eq(s),
        }
    }
}

fn cmp_f64(a: f64, b: f64) -> Option<Ordering> {
    a.partial_cmp(&b)
}

/// Resolves a column name typed by the user: an exact name, or the last part of exactly one
/// dotted key (`lambda` → `regularization.lambda`).
pub fn resolve_column<'a>(
    name: &str,
    columns: &'a [String],
    context: &str,
) -> Result<&'a str, ViewError> {
    if let Some(c) = columns.iter().find(|c| *c == name) {
        return Ok(c);
    }
    let short: Vec<&String> = columns
        .iter()
        .filter(|c| c.rsplit('.').next() == Some(name))
        .collect();
    match short.as_slice() {
        [one] => Ok(one.as_str()),
        [] => Err(ViewError::Column(format!(
            "unknown column '{name}' in {context} (columns: {})",
            columns.join(", ")
        ))),
        many => Err(ViewError::Column(format!(
            "column '{name}' in {context} is ambiguous: {}",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Filter::parse(text).unwrap_err().to_string()
    }

    #[test]
    fn parses_every_operator_and_trims() {
        for (text, op) in [
            ("lambda>=1e-3", Op::Ge),
            ("lambda <= 1e-3", Op::Le),
            ("lambda>1e-3", Op::Gt),
            ("lambda<1e-3", Op::Lt),
            ("lambda=1e-3", Op::Eq),
            ("lambda==1e-3", Op::Eq),
            ("lambda!=1e-3", Op::Ne),
        ] {
            let f = Filter::parse(text).unwrap();
            assert_eq!(
                (f.column.as_str(), f.op, f.value.as_str()),
                ("lambda", op, "1e-3"),
                "{text}"
            );
        }
    }

    #[test]
    fn parse_errors_name_the_bad_token() {
        assert_eq!(
            err("lambda"),
            "bad filter 'lambda': no operator (one of >=, <=, >, <, =, !=)"
        );
        assert_eq!(err(">=1"), "bad filter '>=1': no column name before '>='");
        assert_eq!(
            err("lambda>="),
            "bad filter 'lambda>=': no value after '>='"
        );
        assert_eq!(
            err("lambda=>1"),
            "bad filter 'lambda=>1': '=>' is not an operator (one of >=, <=, >, <, =, !=)"
        );
        assert_eq!(
            err("lambda!1"),
            "bad filter 'lambda!1': '!' is not an operator (one of >=, <=, >, <, =, !=)"
        );
        assert_eq!(
            err("a>>1"),
            "bad filter 'a>>1': '>>' is not an operator (one of >=, <=, >, <, =, !=)"
        );
    }

    #[test]
    fn compares_by_type_and_explains_mismatches() {
        let f = Filter::parse("lambda>=1e-3").unwrap();
        assert!(f.matches(Cell::Param(&ParamValue::Float(0.01))).unwrap());
        assert!(!f.matches(Cell::Param(&ParamValue::Float(1e-4))).unwrap());
        assert!(f.matches(Cell::Param(&ParamValue::Int(1))).unwrap());
        assert!(!f.matches(Cell::Num(f64::NAN)).unwrap());
        assert!(!f.matches(Cell::Absent).unwrap());
        assert_eq!(
            f.matches(Cell::Text("sgd")).unwrap_err().to_string(),
            "bad filter 'lambda>=1e-3': '>=' needs a number but 'lambda' holds text"
        );
        let s = Filter::parse("status!=done").unwrap();
        assert!(s.matches(Cell::Text("diverged")).unwrap());
        assert!(!s.matches(Cell::Text("done")).unwrap());
        let n = Filter::parse("lambda=abc").unwrap();
        assert_eq!(
            n.matches(Cell::Param(&ParamValue::Float(0.1)))
                .unwrap_err()
                .to_string(),
            "bad filter 'lambda=abc': 'abc' is not a number"
        );
        let b = Filter::parse("model.pretrained=true").unwrap();
        assert!(b.matches(Cell::Param(&ParamValue::Bool(true))).unwrap());
    }

    #[test]
    fn short_names_match_the_last_part_of_one_key() {
        let cols: Vec<String> = [
            "experiment.seed",
            "regularization.lambda",
            "data.seed",
            "val_loss@best",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            resolve_column("lambda", &cols, "filter 'x'").unwrap(),
            "regularization.lambda"
        );
        assert_eq!(
            resolve_column("val_loss@best", &cols, "--sort").unwrap(),
            "val_loss@best"
        );
        assert_eq!(
            resolve_column("seed", &cols, "--sort")
                .unwrap_err()
                .to_string(),
            "column 'seed' in --sort is ambiguous: experiment.seed, data.seed"
        );
        assert!(resolve_column("lamda", &cols, "filter 'lamda>1'")
            .unwrap_err()
            .to_string()
            .starts_with("unknown column 'lamda' in filter 'lamda>1' (columns: experiment.seed,"));
    }
}
