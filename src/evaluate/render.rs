//! The table `runner evaluate` prints: one row per class (images, accuracy, precision, recall)
//! and an `all` row with the overall accuracy and mean loss (precision and recall averaged over
//! the classes), in the formats of `runner compare`.

use comfy_table::presets;

use super::Score;
use crate::views::compare::comfy_table;
use crate::views::compare::render::sig4;
use crate::views::format;

pub use crate::views::compare::Format;

const HEADER: [&str; 6] = ["class", "images", "accuracy", "precision", "recall", "loss"];

/// Per class, then `all`: (name, images, accuracy, precision, recall, loss where known).
fn rows(classes: &[String], s: &Score) -> Vec<(String, u64, f64, f64, f64, Option<f64>)> {
    let cm = &s.confusion;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let mut out: Vec<_> = classes
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let support: u64 = cm[c].iter().sum();
            let predicted: u64 = cm.iter().map(|r| r[c]).sum();
            let recall = ratio(cm[c][c], support);
            (
                name.clone(),
                support,
                recall,
                ratio(cm[c][c], predicted),
                recall,
                None,
            )
        })
        .collect();
    let k = classes.len().max(1) as f64;
    let mean = |f: fn(&(String, u64, f64, f64, f64, Option<f64>)) -> f64| {
        out.iter().map(f).sum::<f64>() / k
    };
    let all = (
        "all".to_string(),
        s.images as u64,
        s.acc,
        mean(|r| r.3),
        mean(|r| r.4),
        Some(s.loss),
    );
    out.push(all);
    out
}

/// The score as `format`: tables with 4 significant digits, CSV and JSON at full precision
/// (JSON also carries the confusion matrix).
pub fn render(classes: &[String], score: &Score, format: Format) -> String {
    let rows = rows(classes, score);
    let header: Vec<String> = HEADER.iter().map(|h| h.to_string()).collect();
    match format {
        Format::Table | Format::Markdown => {
            let preset = if format == Format::Table {
                presets::UTF8_FULL_CONDENSED
            } else {
                presets::ASCII_MARKDOWN
            };
            let cells = rows
                .iter()
                .map(|(name, n, acc, p, r, loss)| {
                    vec![
                        name.clone(),
                        n.to_string(),
                        sig4(*acc),
                        sig4(*p),
                        sig4(*r),
                        loss.map_or(String::new(), sig4),
                    ]
                })
                .collect();
            let right = [false, true, true, true, true, true];
            comfy_table(header, cells, preset, &right)
        }
        Format::Csv => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|(name, n, acc, p, r, loss)| {
                    vec![
                        name.clone(),
                        n.to_string(),
                        acc.to_string(),
                        p.to_string(),
                        r.to_string(),
                        loss.map_or(String::new(), |l| l.to_string()),
                    ]
                })
                .collect();
            format::csv(&header, &cells)
        }
        Format::Json => {
            let objects = rows
                .iter()
                .map(|(name, n, acc, p, r, loss)| {
                    vec![
                        name.clone().into(),
                        (*n).into(),
                        format::number(*acc),
                        format::number(*p),
                        format::number(*r),
                        loss.map_or(serde_json::Value::Null, format::number),
                    ]
                })
                .collect();
            format::json(&serde_json::json!({
                "classes": format::objects(&header, objects),
                "confusion": score.confusion,
            }))
        }
    }
}
