//! The page around the sections: escaping, the inline style sheet and the table-sorting script.
//! Everything is inline so the file opens from disk with no network and no server.

/// Text for an HTML element or a quoted attribute.
pub(super) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// An element id for a run (ids are hex, but the experiment part may be anything).
pub(super) fn run_anchor(experiment: &str, run_id: &str) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    };
    format!("run-{}-{}", clean(experiment), clean(run_id))
}

/// A `data:` URI of PNG bytes.
pub(super) fn png_data_uri(png: &[u8]) -> String {
    use base64::Engine;
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(png)
    )
}

/// An SVG document as an inline element: plotters writes a bare `<svg …>` with fixed
/// width/height; the style sheet scales it to the page.
pub(super) fn inline_svg(svg: &str) -> &str {
    svg.find("<svg").map_or(svg, |i| &svg[i..])
}

pub(super) fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n\
         <script>{SCRIPT}</script>\n</body>\n</html>\n",
        esc(title)
    )
}

const STYLE: &str = r#"
body { font-family: system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; margin: 1.5em auto; max-width: 1400px; padding: 0 1em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 0.2em 1em; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.5em; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; background: #f3f3f3; user-select: none; }
table.sortable th[data-dir="asc"]::after { content: " \25B2"; }
table.sortable th[data-dir="desc"]::after { content: " \25BC"; }
.scroll { overflow-x: auto; }
.scroll.tall { max-height: 32em; overflow-y: auto; }
.scroll.tall thead th { position: sticky; top: 0; }
figure { margin: 1em 0; } figure svg, figure img { max-width: 100%; height: auto; }
figure.half { display: inline-block; width: 49%; margin: 0.5em 0; vertical-align: top; }
details { border: 1px solid #ddd; border-radius: 4px; margin: 0.3em 0; padding: 0.3em 0.6em; }
details > summary { cursor: pointer; }
details[open] > summary { margin-bottom: 0.5em; }
pre { background: #f7f7f7; padding: 0.5em; overflow-x: auto; font-size: 0.85em; }
.note { color: #666; font-style: italic; }
.status-done { color: #1a7f37; } .status-diverged, .status-failed { color: #c62828; } .status-running { color: #9a6700; }
"#;

/// A run's section is filled from its `<template>` when it is first opened, by a click or by a
/// link to it (`#run-…`).
/// Click a column header to sort by it, again to reverse. Cells with `data-v` sort as numbers,
/// the others as text; empty and `-` cells last either way.
const SCRIPT: &str = r#"
document.addEventListener("toggle", function (e) {
  var d = e.target, t = d.open && d.querySelector(":scope > template");
  if (t) { d.replaceChild(t.content, t); }
}, true);
function openTarget() {
  var d = location.hash && document.getElementById(location.hash.slice(1));
  if (d && d.tagName === "DETAILS") { d.open = true; }
}
window.addEventListener("hashchange", openTarget);
openTarget();
document.querySelectorAll("table.sortable").forEach(function (t) {
  var heads = t.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, i) {
    th.addEventListener("click", function () {
      var asc = th.dataset.dir !== "asc";
      Array.prototype.forEach.call(heads, function (h) { delete h.dataset.dir; });
      th.dataset.dir = asc ? "asc" : "desc";
      var key = function (row) {
        var c = row.cells[i];
        if (c.dataset.v !== undefined) { var x = parseFloat(c.dataset.v); return isNaN(x) ? null : x; }
        var s = c.textContent.trim();
        return s === "" || s === "-" ? null : s;
      };
      var body = t.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return (x === null) - (y === null); }
        var o = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return asc ? o : -o;
      });
      rows.forEach(function (r) { body.appendChild(r); });
    });
  });
});
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(run_anchor("my exp", "ab12"), "run-my_exp-ab12");
        assert_eq!(inline_svg("<?xml?>\n<svg a>"), "<svg a>");
    }
}
