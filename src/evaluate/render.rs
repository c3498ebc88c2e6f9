//! The table `runner evaluate` prints: one row per class (images, accuracy, precision, recall)
//! and an `all` row with the overall accuracy and mean loss (precision and recall averaged over
//! the classes), in the formats of `runner compare`.

use comfy_table::presets;

use super::Score;
use crate::number::metric;
use crate::views::compare::comfy_table;
use crate::views::format;

pub use crate::views::compare::Format;

const HEADER: [&str; 6] = ["class", "images", "accuracy", "precision", "recall", "loss"];

/// One row of the table.
struct Line {
    name: String,
    images: u64,
    accuracy: f64,
    precision: f64,
    recall: f64,
    /// Only for `all`.
    loss: Option<f64>,
}

/// Per class, then `all`.
fn rows(classes: &[String], s: &Score) -> Vec<Line> {
    let cm = &s.confusion;
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let mut out: Vec<Line> = classes
        .iter()
        .enumerate()
        .map(|(c, name)| {
            let support: u64 = cm[c].iter().sum();
            let predicted: u64 = cm.iter().map(|r| r[c]).sum();
            // per-class accuracy in the torchvision-tutorial sense: the class's recall
            let recall = ratio(cm[c][c], support);
            Line {
                name: name.clone(),
                images: support,
                accuracy: recall,
                precision: ratio(cm[c][c], predicted),
                recall,
                loss: None,
            }
        })
        .collect();
    let k = classes.len().max(1) as f64;
    let all = Line {
        name: "all".to_string(),
        images: s.images as u64,
        accuracy: s.acc,
        precision: out.iter().map(|l| l.precision).sum::<f64>() / k,
        recall: out.iter().map(|l| l.recall).sum::<f64>() / k,
        loss: Some(s.loss),
    };
    out.push(all);
    out
}

/// The score as `format`: tables with 4 significant digits, CSV and JSON at full precision
/// (JSON also carries the confusion matrix).
pub(super) fn render(classes: &[String], score: &Score, format: Format) -> String {
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
                .map(|l| {
                    vec![
                        l.name.clone(),
                        l.images.to_string(),
                        metric(l.accuracy),
                        metric(l.precision),
                        metric(l.recall),
                        l.loss.map_or(String::new(), metric),
                    ]
                })
                .collect();
            let right = [false, true, true, true, true, true];
            comfy_table(header, cells, preset, &right)
        }
        Format::Csv => {
            let cells: Vec<Vec<String>> = rows
                .iter()
                .map(|l| {
                    vec![
                        l.name.clone(),
                        l.images.to_string(),
                        l.accuracy.to_string(),
                        l.precision.to_string(),
                        l.recall.to_string(),
                        l.loss.map_or(String::new(), |x| x.to_string()),
                    ]
                })
                .collect();
            format::csv(&header, &cells)
        }
        Format::Json => {
            let objects = rows
                .iter()
                .map(|l| {
                    vec![
                        l.name.clone().into(),
                        l.images.into(),
                        format::number(l.accuracy),
                        format::number(l.precision),
                        format::number(l.recall),
                        l.loss.map_or(serde_json::Value::Null, format::number),
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
