//! Values of command-line options that are not plain strings or numbers: sizes, paddings,
//! freezing, and the choices of the domain enums.

use clap::builder::PossibleValue;
use clap::ValueEnum;

use crate::spec;

pub(super) fn parse_chw(s: &str) -> Result<crate::nn::describe::Chw, String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    match v[..] {
        [c, h, w] => Ok(crate::nn::describe::Chw::new(c, h, w)),
        _ => Err(format!("expected C,H,W (three numbers), found `{s}`")),
    }
}

pub(super) fn parse_padding(s: &str) -> Result<crate::ops::Padding, String> {
    match s.trim() {
        "same" => Ok(crate::ops::Padding::Same),
        n => n
            .parse()
            .map(crate::ops::Padding::Symmetric)
            .map_err(|_| format!("expected a number or `same`, found `{s}`")),
    }
}

pub(super) fn parse_freeze(s: &str) -> Result<spec::Freeze, String> {
    match s.trim() {
        "false" => Ok(spec::Freeze::No),
        "true" => Ok(spec::Freeze::All),
        other => match other.strip_prefix("until:") {
            Some(block) if !block.trim().is_empty() => {
                Ok(spec::Freeze::Until(block.trim().to_string()))
            }
            _ => Err(format!(
                "expected false, true or until:<block>, found `{s}`"
            )),
        },
    }
}

/// The names clap's derive would give: the variant in kebab case.
macro_rules! value_enum {
    ($ty:ty { $($variant:ident => $name:literal $(: $help:literal)?),* $(,)? }) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$(<$ty>::$variant),*]
            }
            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $(<$ty>::$variant => PossibleValue::new($name)$(.help($help))?,)*
                })
            }
        }
    };
}

value_enum!(crate::views::compare::Format {
    Table => "table",
    Markdown => "markdown",
    Csv => "csv",
    Json => "json",
});

value_enum!(crate::views::compare::BestBy {
    ValLoss => "val-loss": "Lowest val loss",
    ValAcc => "val-acc": "Highest val accuracy",
});

value_enum!(crate::views::status::Format {
    Table => "table",
    Csv => "csv",
    Json => "json",
});
