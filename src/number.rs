//! Numbers as a person reads them, the same in every human-facing view (terminal tables,
//! Markdown, plot legends, the report, status, plan and the end-of-sweep table): at most 4
//! significant digits unless a column needs more to tell two of its values apart, trailing zeros
//! dropped, scientific notation below 1e-3 and from 1e5 up (`1.012e-6`). CSV, JSON, Parquet and
//! the MLflow export keep full precision and do not come here.

use crate::results::schema::ParamValue;

/// Significant digits a readable number gets unless its column needs more.
const DIGITS: usize = 4;
/// An f64 round-trips with 17.
const MAX_DIGITS: usize = 17;

/// How the values of one column are written: the digits that keep them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ColumnFormat {
    digits: usize,
}

impl Default for ColumnFormat {
    fn default() -> Self {
        ColumnFormat { digits: DIGITS }
    }
}

impl ColumnFormat {
    /// The fewest digits, at least 4, that write every two different `values` differently.
    pub(crate) fn for_values(values: impl IntoIterator<Item = f64>) -> Self {
        let mut distinct: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        distinct.sort_by(f64::total_cmp);
        distinct.dedup();
        let digits = (DIGITS..MAX_DIGITS)
            .find(|&d| {
                let mut written: Vec<String> = distinct.iter().map(|&v| write(v, d)).collect();
                written.sort();
                written.windows(2).all(|w| w[0] != w[1])
            })
            .unwrap_or(MAX_DIGITS);
        ColumnFormat { digits }
    }

    /// The digits of the values of these parameters that are numbers.
    pub(crate) fn for_params<'a>(values: impl IntoIterator<Item = &'a ParamValue>) -> Self {
        Self::for_values(values.into_iter().filter_map(|v| match v {
            ParamValue::Float(f) => Some(*f),
            _ => None,
        }))
    }

    pub(crate) fn number(&self, x: f64) -> String {
        write(x, self.digits)
    }

    /// A parameter's value: floats as numbers of this column, the rest as they are.
    pub(crate) fn param(&self, v: &ParamValue) -> String {
        match v {
            ParamValue::Float(f) => self.number(*f),
            other => other.to_string(),
        }
    }
}

/// One number on its own: 4 significant digits (`ColumnFormat::default()`).
pub fn number(x: f64) -> String {
    ColumnFormat::default().number(x)
}

/// A metric (loss, accuracy, norm): 4 significant digits with trailing zeros kept, so that a
/// column of them lines up (`0.9200`, `0.1235`, `5.470e-5`); scientific outside [1e-3, 1e5).
pub fn metric(x: f64) -> String {
    let a = x.abs();
    if !x.is_finite() || a == 0.0 {
        return number(x);
    }
    if !(1e-3..1e5).contains(&a) {
        return format!("{:.*e}", DIGITS - 1, x);
    }
    let decimals = (DIGITS as i32 - 1 - a.log10().floor() as i32).clamp(0, 6) as usize;
    format!("{x:.decimals$}")
}

/// Each of `values` as its column writes it: `key=value` lists (plan lines, legends, labels)
/// where the same key's values across runs must stay apart.
pub(crate) fn param_columns<'a>(
    runs: impl IntoIterator<Item = &'a [(String, ParamValue)]>,
) -> impl Fn(&str, &ParamValue) -> String {
    let mut by_key: Vec<(String, Vec<f64>)> = Vec::new();
    for params in runs {
        for (k, v) in params {
            let ParamValue::Float(f) = v else { continue };
            match by_key.iter_mut().find(|(key, _)| key == k) {
                Some((_, values)) => values.push(*f),
                None => by_key.push((k.clone(), vec![*f])),
            }
        }
    }
    let formats: Vec<(String, ColumnFormat)> = by_key
        .into_iter()
        .map(|(k, values)| (k, ColumnFormat::for_values(values)))
        .collect();
    move |key: &str, v: &ParamValue| {
        formats
            .iter()
            .find(|(k, _)| k == key)
            .map_or_else(ColumnFormat::default, |(_, f)| *f)
            .param(v)
    }
}

/// `x` with `digits` significant digits, trailing zeros dropped; scientific outside
/// [1e-3, 1e5).
fn write(x: f64, digits: usize) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    if x == 0.0 {
        return "0".into();
    }
    // the magnitude after rounding to `digits`: 99999.5 at 4 digits is 1e5, written as such
    let rounded: f64 = format!("{:.*e}", digits - 1, x).parse().unwrap_or(x);
    if !(1e-3..1e5).contains(&rounded.abs()) {
        let text = format!("{:.*e}", digits - 1, x);
        let (mantissa, exponent) = text.split_once('e').expect("{:e} writes an exponent");
        return format!("{}e{exponent}", trim_zeros(mantissa));
    }
    let decimals = (digits as i32 - 1 - rounded.abs().log10().floor() as i32).max(0) as usize;
    trim_zeros(&format!("{x:.decimals$}")).to_string()
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_digits_scientific_outside_a_thousandth_to_a_hundred_thousand() {
        assert_eq!(number(0.0000010115794542598985), "1.012e-6");
        assert_eq!(number(0.000574304), "5.743e-4");
        assert_eq!(number(0.001), "0.001");
        assert_eq!(number(0.0012345), "0.001234");
        assert_eq!(number(0.1), "0.1");
        assert_eq!(number(0.92), "0.92");
        assert_eq!(number(1.0), "1");
        assert_eq!(number(-2.5), "-2.5");
        assert_eq!(number(12345.6), "12346");
        assert_eq!(number(99999.96), "1e5");
        assert_eq!(number(123456.0), "1.235e5");
        assert_eq!(number(0.0), "0");
        assert_eq!(number(f64::NAN), "NaN");
        assert_eq!(number(f64::NEG_INFINITY), "-inf");
    }

    #[test]
    fn a_column_gets_the_digits_that_keep_its_values_apart() {
        let close = [1.00001e-6, 1.00002e-6, 5e-4];
        let f = ColumnFormat::for_values(close);
        assert_eq!(f.number(1.00001e-6), "1.00001e-6");
        assert_eq!(f.number(1.00002e-6), "1.00002e-6");
        assert_eq!(f.number(5e-4), "5e-4");
        // far-apart values keep 4 digits
        let f = ColumnFormat::for_values([0.1, 0.01, 1.0 / 3.0]);
        assert_eq!(f.number(1.0 / 3.0), "0.3333");
        // the same value twice is not a reason for more digits
        assert_eq!(
            ColumnFormat::for_values([0.123456, 0.123456]).number(0.123456),
            "0.1235"
        );
    }

    #[test]
    fn metrics_keep_their_trailing_zeros() {
        assert_eq!(metric(0.92), "0.9200");
        assert_eq!(metric(0.123456), "0.1235");
        assert_eq!(metric(12.0), "12.00");
        assert_eq!(metric(0.0), "0");
        assert_eq!(metric(2.5e-6), "2.500e-6");
        assert_eq!(metric(5.47e-5), "5.470e-5");
        assert_eq!(metric(12.3456), "12.35");
        assert_eq!(metric(0.0001234), "1.234e-4");
        assert_eq!(metric(1234.6), "1235");
        assert_eq!(metric(f64::NAN), "NaN");
    }

    #[test]
    fn parameters_keep_their_kind() {
        let f = ColumnFormat::default();
        assert_eq!(f.param(&ParamValue::Int(7)), "7");
        assert_eq!(f.param(&ParamValue::Bool(true)), "true");
        assert_eq!(f.param(&ParamValue::Str("sgd".into())), "sgd");
        assert_eq!(f.param(&ParamValue::Float(0.0)), "0");
        let runs = [
            vec![("lr".to_string(), ParamValue::Float(0.00100001))],
            vec![("lr".to_string(), ParamValue::Float(0.00100002))],
        ];
        let write = param_columns(runs.iter().map(|r| r.as_slice()));
        assert_eq!(write("lr", &ParamValue::Float(0.00100001)), "0.00100001");
        assert_eq!(write("other", &ParamValue::Float(0.00100001)), "0.001");
    }
}
