//! The module graph at file level: every `crate::`, `super::` and `self::` path (and every path
//! through a child module or an imported name) of product code, resolved through re-exports to
//! the file that defines the item, must form no cycle, in `runner` and in `crates/kernels`. Unit
//! tests (`#[cfg(test)]`) are left out: a test may reach anywhere.
//!
//! `cargo test --test suite module_graph:: -- --nocapture` prints the graph: one line per file with the
//! files it uses, then the same per top-level module.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// A module: the file it lives in, and the names it brings into scope with `use`.
#[derive(Default)]
struct Module {
    file: String,
    /// `name → absolute path` for every `use` (and `pub use`) in the module.
    imports: HashMap<String, Vec<String>>,
    /// Items defined here (not imported), by name.
    items: BTreeSet<String>,
    /// Child modules, by name.
    children: BTreeSet<String>,
}

/// One crate's modules by absolute path (`[]` is the crate root), and the paths each file uses.
struct Crate {
    modules: BTreeMap<Vec<String>, Module>,
    uses: Vec<(String, Vec<String>, Vec<String>)>,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| match &a.meta {
        syn::Meta::List(l) if a.path().is_ident("cfg") => {
            let text = l.tokens.to_string();
            let words: Vec<&str> = text
                .split(|c: char| !c.is_alphanumeric() && c != '_')
                .collect();
            words.contains(&"test") && !words.contains(&"not") && !words.contains(&"feature")
        }
        _ => false,
    })
}

/// The file of module `path` under `src`: `a/b.rs` or `a/b/mod.rs` (`lib.rs` for the root).
fn module_file(src: &Path, path: &[String]) -> Option<PathBuf> {
    if path.is_empty() {
        return Some(src.join("lib.rs"));
    }
    let base = path.iter().fold(src.to_path_buf(), |p, s| p.join(s));
    let flat = base.with_extension("rs");
    let nested = base.join("mod.rs");
    [flat, nested].into_iter().find(|p| p.is_file())
}

/// Expands a use tree into (name in scope, absolute-or-relative path) pairs.
fn use_paths(prefix: &mut Vec<String>, tree: &syn::UseTree, out: &mut Vec<(String, Vec<String>)>) {
    match tree {
        syn::UseTree::Path(p) => {
            prefix.push(p.ident.to_string());
            use_paths(prefix, &p.tree, out);
            prefix.pop();
        }
        syn::UseTree::Name(n) => {
            let name = n.ident.to_string();
            if name == "self" {
                if let Some(last) = prefix.last() {
                    out.push((last.clone(), prefix.clone()));
                }
            } else {
                let mut p = prefix.clone();
                p.push(name.clone());
                out.push((name, p));
            }
        }
        syn::UseTree::Rename(r) => {
            let mut p = prefix.clone();
            if r.ident != "self" {
                p.push(r.ident.to_string());
            }
            out.push((r.rename.to_string(), p));
        }
        syn::UseTree::Glob(_) => out.push(("*".into(), prefix.clone())),
        syn::UseTree::Group(g) => {
            for t in &g.items {
                use_paths(prefix, t, out);
            }
        }
    }
}

/// Collects the paths a module's code mentions (types, expressions, patterns, macro bodies).
struct PathCollector {
    paths: Vec<Vec<String>>,
}

impl<'ast> Visit<'ast> for PathCollector {
    fn visit_path(&mut self, p: &'ast syn::Path) {
        if p.segments.len() > 1 {
            self.paths
                .push(p.segments.iter().map(|s| s.ident.to_string()).collect());
        }
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // `a::b::c` sequences inside macro bodies (format args, `matches!`, tracing fields)
        let tokens: Vec<proc_macro2::TokenTree> = flatten(m.tokens.clone());
        let mut i = 0;
        while i < tokens.len() {
            let mut path = Vec::new();
            let mut j = i;
            while let Some(proc_macro2::TokenTree::Ident(id)) = tokens.get(j) {
                path.push(id.to_string());
                let colons = matches!(
                    (tokens.get(j + 1), tokens.get(j + 2)),
                    (Some(proc_macro2::TokenTree::Punct(a)), Some(proc_macro2::TokenTree::Punct(b)))
                        if a.as_char() == ':' && b.as_char() == ':'
                );
                if !colons {
                    break;
                }
                j += 3;
            }
            if path.len() > 1 {
                self.paths.push(path);
            }
            i = j.max(i) + 1;
        }
        syn::visit::visit_macro(self, m);
    }

    // items inside functions are part of this module's code too; nested `mod`s are walked apart
    fn visit_item_mod(&mut self, _: &'ast syn::ItemMod) {}
    fn visit_item_use(&mut self, _: &'ast syn::ItemUse) {}
}

fn flatten(ts: proc_macro2::TokenStream) -> Vec<proc_macro2::TokenTree> {
    let mut out = Vec::new();
    for t in ts {
        match t {
            proc_macro2::TokenTree::Group(g) => out.extend(flatten(g.stream())),
            other => out.push(other),
        }
    }
    out
}

fn item_name(item: &syn::Item) -> Option<String> {
    Some(match item {
        syn::Item::Const(i) => i.ident.to_string(),
        syn::Item::Enum(i) => i.ident.to_string(),
        syn::Item::Fn(i) => i.sig.ident.to_string(),
        syn::Item::Macro(i) => i.ident.as_ref()?.to_string(),
        syn::Item::Static(i) => i.ident.to_string(),
        syn::Item::Struct(i) => i.ident.to_string(),
        syn::Item::Trait(i) => i.ident.to_string(),
        syn::Item::Type(i) => i.ident.to_string(),
        syn::Item::Union(i) => i.ident.to_string(),
        _ => return None,
    })
}

fn load_crate(src: &Path, root_name: &str) -> Crate {
    let mut krate = Crate {
        modules: BTreeMap::new(),
        uses: Vec::new(),
    };
    let mut pending: Vec<(Vec<String>, PathBuf, Option<Vec<syn::Item>>)> =
        vec![(Vec::new(), src.join("lib.rs"), None)];
    while let Some((path, file, inline)) = pending.pop() {
        let rel = format!("{root_name}/{}", file.strip_prefix(src).unwrap().display());
        let items = match inline {
            Some(items) => items,
            None => {
                let text = std::fs::read_to_string(&file).unwrap();
                syn::parse_file(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", file.display()))
                    .items
            }
        };
        let mut module = Module {
            file: rel.clone(),
            ..Module::default()
        };
        let mut collector = PathCollector { paths: Vec::new() };
        for item in &items {
            match item {
                syn::Item::Mod(m) => {
                    if is_cfg_test(&m.attrs) {
                        continue;
                    }
                    let name = m.ident.to_string();
                    module.children.insert(name.clone());
                    let mut child = path.clone();
                    child.push(name);
                    match &m.content {
                        Some((_, inner)) => {
                            pending.push((child, file.clone(), Some(inner.clone())))
                        }
                        None => {
                            let f = module_file(src, &child)
                                .unwrap_or_else(|| panic!("no file for module {child:?}"));
                            pending.push((child, f, None));
                        }
                    }
                }
                syn::Item::Use(u) => {
                    if is_cfg_test(&u.attrs) {
                        continue;
                    }
                    let mut pairs = Vec::new();
                    use_paths(&mut Vec::new(), &u.tree, &mut pairs);
                    for (name, p) in pairs {
                        module.imports.insert(name, p.clone());
                        krate.uses.push((rel.clone(), path.clone(), p));
                    }
                }
                other => {
                    if let Some(attrs) = item_attrs(other) {
                        if is_cfg_test(attrs) {
                            continue;
                        }
                    }
                    if let Some(n) = item_name(other) {
                        module.items.insert(n);
                    }
                    collector.visit_item(other);
                }
            }
        }
        for p in collector.paths {
            krate.uses.push((rel.clone(), path.clone(), p));
        }
        krate.modules.insert(path, module);
    }
    krate
}

fn item_attrs(item: &syn::Item) -> Option<&Vec<syn::Attribute>> {
    Some(match item {
        syn::Item::Const(i) => &i.attrs,
        syn::Item::Enum(i) => &i.attrs,
        syn::Item::Fn(i) => &i.attrs,
        syn::Item::Impl(i) => &i.attrs,
        syn::Item::Macro(i) => &i.attrs,
        syn::Item::Static(i) => &i.attrs,
        syn::Item::Struct(i) => &i.attrs,
        syn::Item::Trait(i) => &i.attrs,
        syn::Item::Type(i) => &i.attrs,
        _ => return None,
    })
}

impl Crate {
    /// Makes `path`, written in module `at`, absolute: `crate::`, `super::`, `self::`, a child
    /// module's name or an imported name at its start. `None` for other crates' paths.
    fn absolute(&self, at: &[String], path: &[String]) -> Option<Vec<String>> {
        self.absolute_in(at, path, 0)
    }

    fn absolute_in(&self, at: &[String], path: &[String], depth: usize) -> Option<Vec<String>> {
        let (first, rest) = path.split_first()?;
        if depth > 16 {
            return None;
        }
        let mut base: Vec<String> = match first.as_str() {
            "crate" => Vec::new(),
            "self" => at.to_vec(),
            "super" => {
                let mut b = at.to_vec();
                b.pop();
                let mut rest = rest;
                while rest.first().map(String::as_str) == Some("super") {
                    b.pop();
                    rest = &rest[1..];
                }
                b.extend(rest.iter().cloned());
                return Some(b);
            }
            name => {
                let module = self.modules.get(at)?;
                if module.children.contains(name) {
                    let mut b = at.to_vec();
                    b.push(name.to_string());
                    b.extend(rest.iter().cloned());
                    return Some(b);
                }
                let imported = module.imports.get(name)?;
                // `use other_crate::x` names another crate (a module of ours would be a child)
                if imported.first() == Some(first) {
                    return None;
                }
                // an import's own path is relative to the module that wrote it
                let mut b = self.absolute_in(at, imported, depth + 1)?;
                b.extend(rest.iter().cloned());
                return Some(b);
            }
        };
        base.extend(rest.iter().cloned());
        Some(base)
    }

    /// The file that defines what `path` (absolute) names, following re-exports.
    fn defining_file(&self, path: &[String], depth: usize) -> Option<String> {
        if depth > 16 {
            return None;
        }
        // the longest prefix that is a module
        let mut n = path.len();
        while n > 0 && !self.modules.contains_key(&path[..n]) {
            n -= 1;
        }
        let module = self.modules.get(&path[..n])?;
        let Some(item) = path.get(n) else {
            return Some(module.file.clone());
        };
        if module.items.contains(item) {
            return Some(module.file.clone());
        }
        if let Some(target) = module.imports.get(item) {
            if let Some(abs) = self.absolute(&path[..n], target) {
                let mut abs = abs;
                abs.extend(path[n + 1..].iter().cloned());
                if let Some(f) = self.defining_file(&abs, depth + 1) {
                    return Some(f);
                }
            }
            return None; // another crate's item, re-exported
        }
        // a glob re-export of a module of this crate
        if let Some(glob) = module.imports.get("*") {
            if let Some(mut abs) = self.absolute(&path[..n], glob) {
                abs.extend(path[n..].iter().cloned());
                if let Some(f) = self.defining_file(&abs, depth + 1) {
                    return Some(f);
                }
            }
        }
        Some(module.file.clone())
    }

    /// File → the files it uses. With `ancestors` false, a file's uses of the files of its
    /// enclosing modules (a child using what its parent `mod.rs` declares) are left out.
    fn file_graph(&self, ancestors: bool) -> BTreeMap<String, BTreeSet<String>> {
        // a file's own module: the shortest path of the modules it holds (inline ones are longer)
        let mut path_of: HashMap<&str, &Vec<String>> = HashMap::new();
        for (path, m) in &self.modules {
            path_of.entry(m.file.as_str()).or_insert(path);
        }
        let encloses = |outer: &str, inner: &str| {
            let (o, i) = (path_of[outer], path_of[inner]);
            o.len() < i.len() && i.starts_with(o)
        };
        let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for m in self.modules.values() {
            graph.entry(m.file.clone()).or_default();
        }
        for (file, at, path) in &self.uses {
            let Some(abs) = self.absolute(at, path) else {
                continue;
            };
            if let Some(target) = self.defining_file(&abs, 0) {
                if &target != file && (ancestors || !encloses(&target, file)) {
                    graph.get_mut(file).unwrap().insert(target);
                }
            }
        }
        graph
    }
}

/// The groups of nodes that reach each other (Tarjan), largest first; singletons left out.
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        index: HashMap<&'a str, usize>,
        low: HashMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.graph.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let lw = s.low[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if s.on_stack.contains(w) {
                let iw = s.index[w];
                let lv = s.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if s.low[v] == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                group.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if group.len() > 1 {
                group.sort();
                s.out.push(group);
            }
        }
    }
    let mut s = State {
        graph,
        index: HashMap::new(),
        low: HashMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in graph.keys() {
        if !s.index.contains_key(v.as_str()) {
            visit(&mut s, v);
        }
    }
    s.out.sort_by_key(|g| std::cmp::Reverse(g.len()));
    s.out
}

/// `src/spec/validate.rs` → `spec`; `kernels/depthwise/simd.rs` → `kernels`.
fn top_level(file: &str) -> String {
    let mut parts = file.split('/');
    let krate = parts.next().unwrap();
    match parts.next() {
        Some(first) if krate == "runner" => first.trim_end_matches(".rs").to_string(),
        _ => krate.to_string(),
    }
}

fn print(title: &str, graph: &BTreeMap<String, BTreeSet<String>>) {
    println!("{title}:");
    for (from, to) in graph {
        if !to.is_empty() {
            let to: Vec<&str> = to.iter().map(String::as_str).collect();
            println!("  {from} -> {}", to.join(", "));
        }
    }
}

fn graph(ancestors: bool) -> BTreeMap<String, BTreeSet<String>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut graph = load_crate(&root.join("src"), "runner").file_graph(ancestors);
    graph.extend(load_crate(&root.join("crates/kernels/src"), "kernels").file_graph(ancestors));
    graph
}

/// Files that use each other, directly or through others. A module's children may use what the
/// module itself declares (its `mod.rs`): that is the one direction a parent and its children
/// share, so those edges are printed but not counted; siblings and unrelated files may not form
/// a cycle.
#[test]
fn no_file_uses_a_file_that_uses_it_back() {
    let graph = graph(true);
    print("files", &graph);
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, to) in &graph {
        let f = top_level(from);
        let entry = top.entry(f.clone()).or_default();
        entry.extend(to.iter().map(|t| top_level(t)).filter(|t| *t != f));
    }
    print("top-level modules", &top);
    let with_parents = cycles(&graph);
    println!("groups that include a child's use of its parent (not counted): {with_parents:#?}");
    let file_cycles = cycles(&self::graph(false));
    let top_cycles = cycles(&top);
    assert!(
        file_cycles.is_empty() && top_cycles.is_empty(),
        "module cycles (each group's files reach each other):\n  files: {file_cycles:#?}\n  top level: {top_cycles:#?}"
    );
}

/// The checker itself finds a cycle, through a re-export, and not a use of a parent's item that
/// a sibling defines.
#[test]
fn the_checker_sees_cycles_through_re_exports() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::write(src.join("lib.rs"), "mod a;\nmod b;\npub use b::Thing;\n").unwrap();
    std::fs::write(src.join("a.rs"), "pub fn f() -> crate::Thing { todo!() }\n").unwrap();
    std::fs::write(
        src.join("b.rs"),
        "pub struct Thing;\nfn g() { super::a::f(); }\n",
    )
    .unwrap();
    let graph = load_crate(src, "t").file_graph(false);
    assert_eq!(graph["t/a.rs"], BTreeSet::from(["t/b.rs".to_string()]));
    assert_eq!(
        cycles(&graph),
        vec![vec!["t/a.rs".to_string(), "t/b.rs".to_string()]]
    );
    std::fs::write(src.join("b.rs"), "pub struct Thing;\n").unwrap();
    assert!(cycles(&load_crate(src, "t").file_graph(false)).is_empty());
    // a child using what its parent declares is the one direction that is not a cycle
    std::fs::write(
        src.join("lib.rs"),
        "mod a;\npub struct Root;\nfn h() { a::f(); }\n",
    )
    .unwrap();
    std::fs::write(src.join("a.rs"), "pub fn f() -> crate::Root { todo!() }\n").unwrap();
    std::fs::remove_file(src.join("b.rs")).unwrap();
    let crate_ = load_crate(src, "t");
    assert_eq!(cycles(&crate_.file_graph(true)).len(), 1);
    assert!(cycles(&crate_.file_graph(false)).is_empty());
}
