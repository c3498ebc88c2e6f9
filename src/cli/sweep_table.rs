//! The table printed at the end of a sweep: one row per run of this invocation.

use comfy_table::{presets, CellAlignment, Table};

use crate::number::{self, metric};
use crate::run::RunReport;

/// One row per run: its swept values, status, best epoch (lowest val loss) with its val
/// accuracy and loss, the final ‖w‖, the kept model's test accuracy (when some run has a test
/// split), and time.
pub fn render(runs: &[RunReport]) -> String {
    let mut keys: Vec<&str> = Vec::new();
    for r in runs {
        for (k, _) in &r.swept {
            if !keys.contains(&k.as_str()) {
                keys.push(k);
            }
        }
    }
    let test = runs.iter().any(|r| r.test.is_some());
    let mut t = Table::new();
    t.load_preset(presets::UTF8_FULL_CONDENSED);
    let mut header = vec!["#".to_string(), "run".to_string()];
    header.extend(keys.iter().map(|k| k.to_string()));
    header.extend(["status", "best epoch", "val acc", "val loss", "final ‖w‖"].map(String::from));
    if test {
        header.push("test acc".into());
    }
    header.push("time".into());
    t.set_header(header);
    let swept = number::param_columns(runs.iter().map(|r| r.swept.as_slice()));
    for r in runs {
        let mut row = vec![(r.index + 1).to_string(), r.run_id.clone()];
        for k in &keys {
            row.push(
                r.swept
                    .iter()
                    .find(|(s, _)| s == k)
                    .map(|(k, v)| swept(k, v))
                    .unwrap_or_default(),
            );
        }
        let best = r.best.as_ref();
        row.push(status_cell(r));
        row.push(
            best.map(|b| b.epoch.to_string())
                .unwrap_or_else(|| "-".into()),
        );
        row.push(
            best.map(|b| metric(b.val_acc))
                .unwrap_or_else(|| "-".into()),
        );
        row.push(
            best.map(|b| metric(b.val_loss))
                .unwrap_or_else(|| "-".into()),
        );
        row.push(
            r.last
                .as_ref()
                .map(|l| metric(l.weight_norm))
                .unwrap_or_else(|| "-".into()),
        );
        if test {
            row.push(
                r.test
                    .as_ref()
                    .map(|t| metric(t.acc))
                    .unwrap_or_else(|| "-".into()),
            );
        }
        row.push(if r.reused {
            "-".into()
        } else {
            format!("{:.1}s", r.seconds)
        });
        t.add_row(row);
    }
    for i in 0..t.column_count() {
        if i != 1 {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
    }
    t.to_string()
}

/// A run's status as the table shows it: where successive halving stopped it, or its status
/// (marked when an earlier invocation trained it).
fn status_cell(r: &RunReport) -> String {
    if let Some(halted) = r.halted {
        return halted.to_string();
    }
    match (&r.error, r.reused) {
        (None, true) => format!("{} (earlier)", r.status),
        _ => r.status.to_string(),
    }
}
