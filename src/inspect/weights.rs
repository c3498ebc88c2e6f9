//! `runner weights inspect` and `runner weights convert`: what a weights file holds, which
//! backbone it fits and what a run would load from it; a PyTorch checkpoint written as the
//! safetensors file the training path reads.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use crate::durable::tensor_file::{self, TensorFile};
use crate::models::checkpoint::{looks_like_checkpoint, read_checkpoint};
use crate::models::weights::torch_name;
use crate::models::weights_file::{describe_origin, parse_weights};
use crate::models::{Arch, ArchVisitor, Backbone, Classifier, Dev};
use crate::nn::tensors;

/// One tensor as listed.
struct Listed {
    name: String,
    dtype: String,
    shape: Vec<usize>,
}

/// The text `runner weights inspect FILE` prints; the error names what is wrong with the file.
pub(crate) fn inspect_weights(path: &Path) -> Result<String, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let (origin, listed) = if looks_like_checkpoint(&bytes) {
        let c = read_checkpoint(&bytes).map_err(|e| {
            format!(
                "cannot read {} as a PyTorch checkpoint: {e}",
                path.display()
            )
        })?;
        let listed = c
            .tensors
            .iter()
            .map(|t| Listed {
                name: t.name.clone(),
                dtype: t.dtype.torch_name().to_string(),
                shape: t.shape.clone(),
            })
            .collect();
        (describe_origin(&c), listed)
    } else {
        let file = TensorFile::from_bytes(bytes).map_err(|e| {
            format!(
                "{} is neither a PyTorch checkpoint nor a safetensors file ({e})",
                path.display()
            )
        })?;
        let mut listed: Vec<Listed> = file
            .views()?
            .into_iter()
            .map(|(name, v)| Listed {
                name: name.to_string(),
                dtype: torch_dtype_name(v.dtype()),
                shape: v.shape().to_vec(),
            })
            .collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        ("safetensors".to_string(), listed)
    };
    let mut out = String::new();
    let values: usize = listed
        .iter()
        .map(|t| t.shape.iter().product::<usize>())
        .sum();
    let _ = writeln!(
        out,
        "{}: {origin}, {} tensors, {} values",
        path.display(),
        listed.len(),
        values
    );
    let width = listed
        .iter()
        .map(|t| t.name.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "\n{:width$}  {:8}  {:20}  {:>9}",
        "name", "dtype", "shape", "count"
    );
    for t in &listed {
        let count: usize = t.shape.iter().product();
        let shape = format!("{:?}", t.shape);
        let _ = writeln!(
            out,
            "{:width$}  {:8}  {shape:20}  {count:>9}",
            t.name, t.dtype
        );
    }
    out.push('\n');
    out.push_str(&fit_text(&listed));
    Ok(out)
}

/// A safetensors dtype by torch's name, as checkpoints' tensors are listed.
fn torch_dtype_name(d: ::safetensors::Dtype) -> String {
    use ::safetensors::Dtype;
    match d {
        Dtype::F32 => "float32".into(),
        Dtype::F16 => "float16".into(),
        Dtype::BF16 => "bfloat16".into(),
        Dtype::F64 => "float64".into(),
        Dtype::I64 => "int64".into(),
        Dtype::I32 => "int32".into(),
        Dtype::I16 => "int16".into(),
        Dtype::I8 => "int8".into(),
        Dtype::U8 => "uint8".into(),
        Dtype::BOOL => "bool".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

/// How the file's tensors compare with one backbone.
struct Fit {
    arch: Arch,
    head: &'static str,
    features: usize,
    /// Backbone tensors (BatchNorm counters aside) in the file with their shape.
    present: usize,
    missing: Vec<String>,
    other_shape: Vec<String>,
    /// File tensors that are neither the backbone's, the head's nor BatchNorm counters.
    extra: Vec<String>,
}

struct Compare<'a> {
    file: &'a HashMap<&'a str, &'a [usize]>,
}

impl ArchVisitor for Compare<'_> {
    type Output = Fit;

    fn visit<B: Backbone>(self) -> Fit {
        let model = Classifier::<B>::new(&Dev::default(), 1);
        let head = format!("{}.", B::HEAD);
        let mut fit = Fit {
            arch: Arch::from_name(B::NAME).expect("a backbone's own name"),
            head: B::HEAD,
            features: B::FEATURES,
            present: 0,
            missing: Vec::new(),
            other_shape: Vec::new(),
            extra: Vec::new(),
        };
        let mut known = std::collections::HashSet::new();
        for t in tensors::collect(&model) {
            let name = torch_name(&t.name);
            if name.starts_with(&head) {
                continue;
            }
            match self.file.get(name.as_str()) {
                None => fit.missing.push(format!("{name} {:?}", t.dims)),
                Some(dims) if *dims != t.dims.as_slice() => fit
                    .other_shape
                    .push(format!("{name} {dims:?} (expected {:?})", t.dims)),
                Some(_) => fit.present += 1,
            }
            known.insert(name);
        }
        let mut extra: Vec<String> = self
            .file
            .keys()
            .filter(|n| {
                !known.contains(**n) && !n.starts_with(&head) && !n.ends_with("num_batches_tracked")
            })
            .map(|n| n.to_string())
            .collect();
        extra.sort();
        fit.extra = extra;
        fit
    }
}

impl Fit {
    fn matches(&self) -> bool {
        self.missing.is_empty() && self.other_shape.is_empty() && self.extra.is_empty()
    }
    fn needed(&self) -> usize {
        self.present + self.missing.len() + self.other_shape.len()
    }
}

/// Up to five names, then how many more.
fn some(names: &[String]) -> String {
    let mut s = names.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
    if names.len() > 5 {
        let _ = write!(s, ", … and {} more", names.len() - 5);
    }
    s
}

fn fit_text(listed: &[Listed]) -> String {
    let file: HashMap<&str, &[usize]> = listed
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    let counters = listed
        .iter()
        .filter(|t| t.name.ends_with("num_batches_tracked"))
        .count();
    let fits: Vec<Fit> = Arch::ALL
        .iter()
        .map(|a| a.dispatch(Compare { file: &file }))
        .collect();
    match fits.iter().find(|f| f.matches()) {
        Some(fit) => match_text(fit, &file, counters),
        None => closest_text(&fits),
    }
}

/// For a file that matches no backbone: the closest one, and what the file lacks or adds.
fn closest_text(fits: &[Fit]) -> String {
    let mut out = String::new();
    let best = fits
        .iter()
        .max_by_key(|f| f.present)
        .expect("at least one backbone");
    let _ = writeln!(
        out,
        "matches no backbone; the closest is {}, with {} of its {} tensors",
        best.arch.name(),
        best.present,
        best.needed()
    );
    for (what, names) in [
        ("missing", &best.missing),
        ("of another shape", &best.other_shape),
        (&*format!("not in {}", best.arch.name()), &best.extra),
    ] {
        if !names.is_empty() {
            let _ = writeln!(out, "  {what}: {}", some(names));
        }
    }
    let _ = writeln!(
        out,
        "a run with backbone.weights set to this file is refused"
    );
    out
}

/// For a file that matches a backbone: what a run with it loads, and what it does with the
/// file's head (`counters`: how many BatchNorm counters the file holds).
fn match_text(fit: &Fit, file: &HashMap<&str, &[usize]>, counters: usize) -> String {
    let mut out = String::new();
    let name = fit.arch.name();
    let _ = writeln!(
        out,
        "matches {name}: all {} backbone tensors, with their shapes",
        fit.present
    );
    let (w, b) = (format!("{}.weight", fit.head), format!("{}.bias", fit.head));
    let head = match (file.get(w.as_str()), file.get(b.as_str())) {
        (Some([k, f]), Some([kb])) if *f == fit.features && k == kb => Some(*k),
        _ => None,
    };
    let _ = writeln!(
        out,
        "a run with backbone.name = \"{name}\" and these weights:"
    );
    let _ = writeln!(out, "  loads the {} backbone tensors", fit.present);
    match head {
        Some(k) => {
            let _ = writeln!(
                out,
                "  loads the {k}-class head `{}` too on a {k}-class dataset; on any other, \
                 replaces it with a new head when head.replace = true (and refuses the file \
                 without it)",
                fit.head
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  trains a new head `{}`: the file has none of {} features (set head.replace = true)",
                fit.head, fit.features
            );
        }
    }
    let _ = writeln!(
        out,
        "  leaves nothing of the backbone unset{}",
        if counters > 0 {
            format!(" (the {counters} BatchNorm num_batches_tracked counters are not used)")
        } else {
            String::new()
        }
    );
    out
}

/// What `runner weights convert` did.
pub(crate) struct Converted {
    pub tensors: usize,
    pub origin: String,
}

/// Writes the PyTorch checkpoint at `from` as safetensors at `to` (atomically: `to` is either
/// the old file or the whole new one).
pub(crate) fn convert_weights(from: &Path, to: &Path) -> Result<Converted, String> {
    let bytes = std::fs::read(from).map_err(|e| format!("cannot read {}: {e}", from.display()))?;
    if !looks_like_checkpoint(&bytes) {
        return Err(match parse_weights(bytes) {
            Ok(_) => format!(
                "{} is already safetensors: backbone.weights reads it as it is",
                from.display()
            ),
            Err(e) => format!("{}: {e}", from.display()),
        });
    }
    let c = read_checkpoint(&bytes).map_err(|e| {
        format!(
            "cannot read {} as a PyTorch checkpoint: {e}",
            from.display()
        )
    })?;
    tensor_file::write(to, &c.entries(), HashMap::new()).map_err(|e| e.to_string())?;
    Ok(Converted {
        tensors: c.tensors.len(),
        origin: describe_origin(&c),
    })
}
