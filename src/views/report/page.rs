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
.banner { border: 2px solid #c62828; background: #fdecea; border-radius: 4px; padding: 0.2em 1em; margin: 1em 0; }
.banner code { white-space: pre-wrap; }
.status-done { color: #1a7f37; } .status-diverged, .status-failed { color: #c62828; } .status-running { color: #9a6700; }
"#;

/// A run's section is filled from the JSON payload (`run_data`) when it is first opened, by a
/// click or by a link to it (`#run-…`, also when the page is opened at one); the payload is
/// parsed then, not while the page loads. Text goes in as text (`textContent`), never as markup.
/// A section the page does not hold yet (past the first runs) is created, in table order, when
/// a link asks for it, and all of them by the button after the last one.
/// Click a column header to sort by it, again to reverse. Cells with `data-v` sort as numbers,
/// the others as text; empty and `-` cells last either way. A sort takes in the rows the page
/// keeps as markup (past the first ones), which are otherwise appended as the table is scrolled.
const SCRIPT: &str = r##"
var runData = null;
function el(tag, text, cls) {
  var e = document.createElement(tag);
  if (text !== undefined && text !== null) { e.textContent = text; }
  if (cls) { e.className = cls; }
  return e;
}
function table(cls, head, rows) {
  var t = el("table", null, cls), h = t.createTHead().insertRow(), b = t.createTBody();
  head.forEach(function (c) { h.appendChild(el("th", c)); });
  rows.forEach(function (r) { var tr = b.insertRow(); r.forEach(function (c) { tr.appendChild(c); }); });
  return t;
}
function num(x) { return el("td", String(x), "num"); }
function perClass(pc) {
  var rows = pc.class.map(function (c, i) {
    return [el("td", c), num(pc.accuracy[i]), num(pc.precision[i]), num(pc.recall[i]), num(pc.support[i])];
  });
  return [el("h4", "per class, epoch " + pc.epoch),
    table("", ["class", "accuracy", "precision", "recall", "support"], rows)];
}
function confusion(pc) {
  // shaded by the share of the true class (a row): a strong diagonal reads whatever the sizes
  var rows = pc.confusion.map(function (row, i) {
    var total = row.reduce(function (a, b) { return a + b; }, 0);
    return [el("th", pc.class[i])].concat(row.map(function (n) {
      var share = total > 0 ? n / total : 0, td = num(n);
      td.style.background = "rgba(31, 119, 180, " + share.toFixed(3) + ")";
      td.style.color = share > 0.6 ? "#fff" : "#222";
      td.title = (share * 100).toFixed(1) + "% of true " + pc.class[i];
      return td;
    }));
  });
  return [el("h4", "confusion (rows: true class, columns: predicted)"),
    table("confusion", ["true \\ pred"].concat(pc.class), rows)];
}
function specDiff(r, first) {
  if (r.is_first) { return [el("p", "the first run: the others' spec differences are against this one", "note")]; }
  var h = el("h4", "spec differences from the first run ("), a = el("a", first.id);
  a.href = "#" + first.anchor;
  h.appendChild(a); h.appendChild(document.createTextNode(")"));
  if (r.diff.length === 0) { return [h, el("p", "none", "note")]; }
  var rows = r.diff.map(function (d) {
    return [el("td", d[0]), el("td", d[1] === null ? "(absent)" : d[1]), el("td", d[2] === null ? "(absent)" : d[2])];
  });
  return [h, table("diff", ["key", "first run", "this run"], rows)];
}
function specText(r, first) {
  if (typeof r.spec === "string") { return r.spec; }
  var lines = first.split("\n");
  r.spec.forEach(function (c) { lines[c[0]] = c[1]; });
  return lines.join("\n");
}
function payload() {
  if (!runData) {
    runData = JSON.parse(document.getElementById("run-data").textContent);
    runData.index = {};
    runData.runs.forEach(function (r, i) { runData.index[r.anchor] = i; });
  }
  return runData;
}
function fill(d) {
  if (!d.hasAttribute("data-run")) { return; }
  var data = payload(), r = data.runs[+d.dataset.run], parts = [];
  d.removeAttribute("data-run");
  if (r.label) { parts.push(el("p", r.label)); }
  if (r.error) { parts.push(el("p", "error: " + r.error, "status-failed")); }
  if (r.per_class) { parts = parts.concat(perClass(r.per_class), confusion(r.per_class)); }
  else { parts.push(el("p", "no per_class.parquet / confusion.parquet in this run's folder", "note")); }
  if (r.spec === undefined) { parts.push(el("p", "no spec.toml in this run's folder", "note")); }
  else {
    parts = parts.concat(specDiff(r, data.first));
    var s = el("details");
    s.appendChild(el("summary", "resolved spec"));
    s.appendChild(el("pre", specText(r, data.spec)));
    parts.push(s);
  }
  parts.forEach(function (p) { d.appendChild(p); });
}
// a section the page does not hold yet, as the Rust side writes one, put before `next`
function section(i, next) {
  var r = payload().runs[i], d = el("details"), s = el("summary");
  d.id = r.anchor;
  d.dataset.run = i;
  s.appendChild(el("code", r.id));
  s.appendChild(document.createTextNode(" "));
  s.appendChild(el("span", r.status, "status-" + r.status));
  s.appendChild(document.createTextNode(" \u00b7 " + r.best));
  d.appendChild(s);
  next.parentNode.insertBefore(d, next);
  return d;
}
// every section from the last back, each before the one after it
function allSections() {
  var more = document.getElementById("runs-more");
  if (!more) { return; }
  var runs = payload().runs, next = more;
  for (var i = runs.length - 1; i >= 0; i--) {
    next = document.getElementById(runs[i].anchor) || section(i, next);
  }
  more.remove();
}
function sectionOf(id) {
  var d = document.getElementById(id), more = document.getElementById("runs-more");
  if (d || !more || !/^run-/.test(id)) { return d; }
  var data = payload(), i = data.index[id];
  if (i === undefined) { return null; }
  // before the first section of a later run the page already holds
  var next = more;
  for (var j = i + 1; j < data.runs.length; j++) {
    var n = document.getElementById(data.runs[j].anchor);
    if (n) { next = n; break; }
  }
  return section(i, next);
}
document.addEventListener("toggle", function (e) {
  if (e.target.open) { fill(e.target); }
}, true);
function openTarget() {
  var had = location.hash && document.getElementById(location.hash.slice(1));
  var d = location.hash && sectionOf(location.hash.slice(1));
  if (d && d.tagName === "DETAILS") {
    fill(d);
    d.open = true;
    // the browser scrolls to an element that was there when the address changed
    if (!had) { d.scrollIntoView(); }
  }
}
window.addEventListener("hashchange", openTarget);
var moreButton = document.querySelector("#runs-more > button");
if (moreButton) { moreButton.addEventListener("click", allSections); }
openTarget();
document.querySelectorAll("table.sortable").forEach(function (t) {
  var heads = t.tHead.rows[0].cells, body = t.tBodies[0];
  var more = t.dataset.more && document.getElementById(t.dataset.more);
  var shown = body.rows.length, rows = null;
  // every row in the table's order: those laid out, then the others, parsed the first time
  function all() {
    if (rows) { return rows; }
    rows = Array.prototype.slice.call(body.rows);
    if (more) {
      var tpl = document.createElement("template");
      tpl.innerHTML = more.textContent;
      rows = rows.concat(Array.prototype.slice.call(tpl.content.querySelectorAll("tr")));
    }
    return rows;
  }
  function show(n) {
    var r = all();
    shown = Math.min(n, r.length);
    for (var i = body.rows.length; i < shown; i++) { body.appendChild(r[i]); }
  }
  if (more) {
    var box = t.parentNode;
    box.addEventListener("scroll", function () {
      if (box.scrollTop + box.clientHeight > box.scrollHeight - 200) { show(shown + 200); }
    });
  }
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
      var keyed = all().map(function (r) { return [key(r), r]; });
      keyed.sort(function (a, b) {
        var x = a[0], y = b[0];
        if (x === null || y === null) { return (x === null) - (y === null); }
        var o = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
        return asc ? o : -o;
      });
      rows = keyed.map(function (k) { return k[1]; });
      body.textContent = "";
      show(shown);
    });
  });
});
"##;

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
