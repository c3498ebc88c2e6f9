//! `--set key=value`: one dotted key, one value. The value is read as TOML (`0.01`, `true`,
//! `[1, 2]`, `"x"`); what is not valid TOML is taken as a string, so `--set backbone.name=resnet18`
//! works unquoted. The argument becomes a one-line TOML document and goes through the same
//! strict parsing as a file, so its errors point into it.

use std::sync::Arc;

use super::error::{Diagnostic, Source, SourceKind, SpecError};
use super::layer::Layer;

pub(super) fn parse(arg: &str) -> Result<Layer, SpecError> {
    let bad = |label: &str| {
        let source = Arc::new(Source {
            kind: SourceKind::Override(arg.to_owned()),
            path: None,
            text: arg.to_owned(),
        });
        let diag = Diagnostic::error(format!("invalid override `{arg}`"))
            .at(Some(super::error::Snippet {
                source,
                span: 0..arg.len(),
            }))
            .label(label.to_owned())
            .help("write `--set section.key=value`, e.g. `--set optimizer.lr=0.01`");
        SpecError::Override(Box::new(diag))
    };
    let Some((key, value)) = arg.split_once('=') else {
        return Err(bad("expected `key=value`"));
    };
    let (key, value) = (key.trim(), value.trim());
    if key.is_empty() || toml::from_str::<toml::Table>(&format!("{key} = 0")).is_err() {
        return Err(bad(
            "expected a dotted key such as `optimizer.lr` before `=`",
        ));
    }
    if key == "use" {
        return Err(bad(
            "`use` can only be set in a file: presets apply before the experiment",
        ));
    }
    let text = if toml::from_str::<toml::Table>(&format!("{key} = {value}")).is_ok() {
        format!("{key} = {value}")
    } else {
        format!("{key} = {}", toml::Value::String(value.to_owned()))
    };
    let source = Arc::new(Source {
        kind: SourceKind::Override(arg.to_owned()),
        path: None,
        text,
    });
    Layer::parse(source)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_toml_or_else_strings() {
        let lr = parse("optimizer.lr=0.01").unwrap();
        assert_eq!(lr.raw.optimizer.unwrap().lr, Some(0.01));
        let name = parse("backbone.name=resnet18").unwrap();
        assert!(name.raw.backbone.unwrap().name.is_some());
        let name = parse("experiment.name=a-b").unwrap();
        assert_eq!(name.raw.experiment.unwrap().name.as_deref(), Some("a-b"));
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(matches!(parse("optimizer.lr"), Err(SpecError::Override(_))));
        assert!(matches!(parse("=3"), Err(SpecError::Override(_))));
        assert!(matches!(
            parse("optimizer.lr=fast"),
            Err(SpecError::Schema(_))
        ));
        assert!(matches!(
            parse("optimizer.lrr=0.1"),
            Err(SpecError::Schema(_))
        ));
    }
}
