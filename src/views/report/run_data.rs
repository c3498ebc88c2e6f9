//! What each run's collapsible section shows, as one compact JSON payload the page's script
//! turns into HTML when a section is first opened. A page of 10,000 runs then parses one block of
//! text, not 10,000 sections of tables; and the resolved specs, which differ in a few lines from
//! run to run, are written once (the first run's) with each run's changed lines.

use serde_json::{json, Map, Value};

use super::page::run_anchor;
use super::sections::RunFiles;
use crate::number::metric;
use crate::results::scan::Run;
use crate::results::stored_spec::{self, StoredSpec};
use crate::views::compare::per_class::PerClass;

/// The element id of the payload the page's script reads.
pub(super) const PAYLOAD_ID: &str = "run-data";

/// The payload for `runs` in page order (`files[i]` read from `runs[i]`, `labels[i]` its
/// readable label), as a `<script type="application/json">` element.
///
/// `{"first": {"id", "anchor"} | null, "spec": first run's spec text | null, "runs": [...]}`,
/// each run `{"anchor", "id", "status", "best", "label"?, "error"?, "per_class"?: {...}, "is_first"?, "diff"?: [[key, first run's
/// value | null, this run's | null]], "spec"?: [[line index, line]] | text}`: `spec` as a list
/// changes the first run's lines (same line count), as text it is the whole spec; absent, the run
/// has no spec.toml.
pub(super) fn payload(runs: &[&Run], files: &[&RunFiles], labels: &[String]) -> String {
    let reference = runs
        .iter()
        .zip(files)
        .find_map(|(r, f)| f.spec.as_ref().map(|s| (*r, s)));
    let each: Vec<Value> = runs
        .iter()
        .zip(files)
        .zip(labels)
        .map(|((r, f), label)| one_run(r, label, f, reference))
        .collect();
    let page = json!({
        "first": reference.map(|(r, _)| json!({
            "id": r.run_id,
            "anchor": run_anchor(&r.experiment, &r.run_id),
        })),
        "spec": reference.map(|(_, s)| s.text.as_str()),
        "runs": each,
    });
    format!(
        "<script type=\"application/json\" id=\"{PAYLOAD_ID}\">{}</script>\n",
        script_safe(&page.to_string())
    )
}

/// JSON that cannot end its `<script>` element early: `<` only appears inside JSON strings,
/// where `\u003c` reads back as the same character.
fn script_safe(json: &str) -> String {
    json.replace('<', "\\u003c")
}

fn one_run(
    run: &Run,
    label: &str,
    files: &RunFiles,
    reference: Option<(&Run, &StoredSpec)>,
) -> Value {
    let mut out = Map::new();
    // the summary line, for a section the page's script creates
    out.insert(
        "anchor".into(),
        run_anchor(&run.experiment, &run.run_id).into(),
    );
    out.insert("id".into(), run.run_id.as_str().into());
    out.insert("status".into(), run.status_str().into());
    out.insert("best".into(), super::sections::best_text(run).into());
    if !label.is_empty() && label != run.run_id {
        out.insert("label".into(), label.into());
    }
    if let Some(err) = files.manifest.as_ref().and_then(|m| m.error.as_deref()) {
        out.insert("error".into(), err.into());
    }
    if let Some(pc) = &files.per_class {
        out.insert("per_class".into(), per_class(pc));
    }
    if let (Some(spec), Some((first, first_spec))) = (&files.spec, reference) {
        if first.dir == run.dir {
            out.insert("is_first".into(), true.into());
        } else {
            let diff: Vec<Value> = stored_spec::diff(first_spec, spec)
                .into_iter()
                .map(|(k, a, b)| json!([k, a, b]))
                .collect();
            out.insert("diff".into(), diff.into());
        }
        out.insert("spec".into(), spec_against(&first_spec.text, &spec.text));
    }
    Value::Object(out)
}

/// Numbers as the terminal's views write them (`metric`), so the page shows the same text.
fn per_class(pc: &PerClass) -> Value {
    let text = |xs: &[f64]| xs.iter().map(|&x| metric(x)).collect::<Vec<_>>();
    json!({
        "epoch": pc.epoch,
        "class": pc.class,
        "accuracy": text(&pc.accuracy),
        "precision": text(&pc.precision),
        "recall": text(&pc.recall),
        "support": pc.support,
        "confusion": pc.confusion,
    })
}

/// A spec as the lines it changes in `first` (`[[index, line], …]`) when it has as many lines,
/// else its whole text. Lines are split on `\n` so joining them back gives the text exactly.
fn spec_against(first: &str, spec: &str) -> Value {
    let (a, b): (Vec<&str>, Vec<&str>) = (first.split('\n').collect(), spec.split('\n').collect());
    if a.len() != b.len() {
        return spec.into();
    }
    let changed: Vec<Value> = a
        .iter()
        .zip(&b)
        .enumerate()
        .filter(|(_, (x, y))| x != y)
        .map(|(i, (_, y))| json!([i, y]))
        .collect();
    changed.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the page's script does with a run's `spec`.
    fn rebuild(first: &str, spec: &Value) -> String {
        match spec {
            Value::String(text) => text.clone(),
            Value::Array(changes) => {
                let mut lines: Vec<String> = first.split('\n').map(String::from).collect();
                for c in changes {
                    lines[c[0].as_u64().unwrap() as usize] = c[1].as_str().unwrap().to_string();
                }
                lines.join("\n")
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn a_spec_is_the_first_runs_lines_it_changes_or_its_whole_text() {
        let first = "[r]\nlambda = 0\nseed = 1\n";
        let same_shape = "[r]\nlambda = 0.5\nseed = 1\n";
        let d = spec_against(first, same_shape);
        assert_eq!(d, json!([[1, "lambda = 0.5"]]));
        assert_eq!(rebuild(first, &d), same_shape);
        assert_eq!(spec_against(first, first), json!([]));
        let longer = "[r]\nlambda = 0\nseed = 1\nextra = 2\n";
        assert_eq!(spec_against(first, longer), json!(longer));
        assert_eq!(rebuild(first, &spec_against(first, longer)), longer);
    }

    #[test]
    fn the_payload_cannot_close_its_script_element() {
        let json = json!({"error": "bad </script><b>"}).to_string();
        let safe = script_safe(&json);
        assert!(!safe.contains('<'), "{safe}");
        let back: Value = serde_json::from_str(&safe).unwrap();
        assert_eq!(back["error"], "bad </script><b>");
    }
}
