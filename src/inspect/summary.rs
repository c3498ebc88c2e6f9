//! `runner summary`: a per-layer table of a model (output shape, parameters, multiply-adds,
//! trainable or frozen) like torchinfo's, and the arithmetic of a single convolution spelled out.
//!
//! The rows come from walking the real model ([`crate::nn::describe::Describe`]), so parameter
//! counts are those of the tensors it trains; what counts as a multiply-add is documented in
//! [`crate::nn::describe`].

use comfy_table::{presets, CellAlignment, Table};

use crate::models::describe::describe_classifier;
use crate::models::freeze::frozen_prefix;
use crate::models::{Arch, ArchVisitor, Backbone, Classifier, Dev, HeadConfig};
use crate::nn::describe::{Chw, ConvLayer, LayerRow};
use crate::ops::Padding;
use crate::setup::{Resolved, ResolvedRun};
use crate::spec::Freeze;
use crate::train::in_blocks;

/// A model's rows for one input, and which of its top-level blocks are frozen.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    pub arch: Arch,
    pub input: Chw,
    pub classes: usize,
    pub rows: Vec<LayerRow>,
    /// Top-level blocks (`Backbone::BLOCKS`) whose parameters do not train.
    pub frozen_blocks: Vec<&'static str>,
    /// The model's own count of its trainable tensors' elements (dfdx's `NumParams` over its
    /// `TensorCollection`): the rows must add up to it (checked by the tests).
    pub model_params: usize,
    /// The head and pooling the rows describe.
    pub head: HeadConfig,
}

/// The smallest input side every backbone accepts (SmallCnn pools twice by 2).
pub(crate) const MIN_SIDE: usize = 4;

impl ModelSummary {
    /// Builds the model with a linear head (random weights: the numbers do not depend on them)
    /// and walks it.
    pub fn of(
        arch: Arch,
        input: Chw,
        classes: usize,
        freeze: &Freeze,
    ) -> Result<ModelSummary, String> {
        Self::with_head(arch, input, classes, freeze, &HeadConfig::default())
    }

    /// [`ModelSummary::of`] with the declared head and pooling.
    pub(crate) fn with_head(
        arch: Arch,
        input: Chw,
        classes: usize,
        freeze: &Freeze,
        head: &HeadConfig,
    ) -> Result<ModelSummary, String> {
        if input.c != 3 {
            return Err(format!(
                "the backbones take 3-channel (RGB) images, not {} channels",
                input.c
            ));
        }
        if input.h < MIN_SIDE || input.w < MIN_SIDE {
            return Err(format!(
                "input {}×{} is too small: at least {MIN_SIDE}×{MIN_SIDE} pixels",
                input.h, input.w
            ));
        }
        if classes == 0 {
            return Err("the head needs at least 1 class".into());
        }
        let blocks = arch.blocks();
        let frozen = match freeze {
            Freeze::No => 0,
            Freeze::All => blocks.len() - 1,
            Freeze::Until(block) => {
                frozen_prefix(arch, block).map_err(|e| format!("backbone.freeze: {e}"))?
            }
        };
        struct Walk<'a>(Chw, usize, &'a HeadConfig);
        impl ArchVisitor for Walk<'_> {
            type Output = (Vec<LayerRow>, usize);
            fn visit<B: Backbone>(self) -> Self::Output {
                use dfdx::nn::NumParams;
                let model = Classifier::<B>::with_head(&Dev::seed_from_u64(0), self.1, self.2);
                (
                    describe_classifier(&model, self.0),
                    model.num_trainable_params(),
                )
            }
        }
        let (rows, model_params) = arch.dispatch(Walk(input, classes, head));
        Ok(ModelSummary {
            arch,
            input,
            classes,
            rows,
            frozen_blocks: blocks[..frozen].to_vec(),
            model_params,
            head: head.clone(),
        })
    }

    pub(crate) fn is_frozen(&self, row: &LayerRow) -> bool {
        in_blocks(&row.name, &self.frozen_blocks)
    }
    pub fn total_params(&self) -> usize {
        self.rows.iter().map(|r| r.params).sum()
    }
    pub fn frozen_params(&self) -> usize {
        self.rows
            .iter()
            .filter(|r| self.is_frozen(r))
            .map(|r| r.params)
            .sum()
    }
    pub fn trainable_params(&self) -> usize {
        self.total_params() - self.frozen_params()
    }
    pub fn total_mult_adds(&self) -> u64 {
        self.rows.iter().map(|r| r.mult_adds).sum()
    }

    /// The table and its totals.
    // Long: the summary table's columns and totals, in display order.
    pub fn render(&self) -> String {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED);
        t.set_header(vec![
            "Layer",
            "Type",
            "Output shape",
            "Params",
            "Trainable",
            "Mult-adds",
        ]);
        for r in &self.rows {
            let trainable = match (r.params, self.is_frozen(r)) {
                (0, _) => "",
                (_, true) => "frozen",
                (_, false) => "yes",
            };
            let shape = format!(
                "[{}]",
                r.output
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            let params = if r.params == 0 {
                "--".to_string()
            } else {
                thousands(r.params as u64)
            };
            let macs = if r.mult_adds == 0 {
                "--".to_string()
            } else {
                thousands(r.mult_adds)
            };
            t.add_row(vec![
                r.name.clone(),
                r.kind.to_string(),
                shape,
                params,
                trainable.to_string(),
                macs,
            ]);
        }
        for i in [3, 5] {
            if let Some(c) = t.column_mut(i) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        let Chw { c, h, w } = self.input;
        let frozen = match self.frozen_blocks[..] {
            [] => String::new(),
            [one] => format!(" (block {one})"),
            [first, .., last] if self.frozen_blocks.len() + 1 == self.arch.blocks().len() => {
                format!(" (blocks {first} to {last}: the whole backbone, only the head trains)")
            }
            [first, .., last] => format!(" (blocks {first} to {last})"),
        };
        let h_ = &self.head;
        let head = if h_.widths.is_empty() && h_.pool == crate::spec::Pool::Avg {
            String::new() // the default: the table says it
        } else if h_.widths.is_empty() {
            format!(", linear head, {:?} pooling", h_.pool).to_lowercase()
        } else {
            format!(
                ", mlp head {:?}, {:?}, batch_norm {}, dropout {} before each linear layer, {:?} pooling",
                h_.widths, h_.activation, h_.batch_norm, h_.dropout, h_.pool
            )
            .to_lowercase()
        };
        format!(
            "{} on one {c}×{h}×{w} image, {} classes{head}\n{t}\n\
             Total params: {}\n\
             Trainable params: {}\n\
             Frozen params: {}{frozen}\n\
             Total mult-adds (G): {:.2} ({} per image; convolutions and linear layers only)\n\
             Params size (MB): {:.2} (f32)\n",
            self.arch.name(),
            self.classes,
            thousands(self.total_params() as u64),
            thousands(self.trainable_params() as u64),
            thousands(self.frozen_params() as u64),
            self.total_mult_adds() as f64 / 1e9,
            thousands(self.total_mult_adds()),
            self.total_params() as f64 * 4.0 / 1e6,
        )
    }
}

/// One summary per distinct model among a spec's runs (a sweep over learning rates has one
/// model; a sweep over backbones or freezing has several), each headed by the runs it covers.
pub(crate) fn for_runs(resolved: &Resolved) -> Result<Vec<(Vec<usize>, ModelSummary)>, String> {
    let mut out: Vec<(Vec<usize>, ModelSummary)> = Vec::new();
    let mut keys: Vec<(Arch, Chw, usize, Freeze, HeadConfig)> = Vec::new();
    for run in &resolved.runs {
        let (arch, input, classes) = model_of(run)?;
        // the seed changes no row: runs differing only in it share a table
        let head = HeadConfig {
            seed: 0,
            ..run.head.clone()
        };
        let key = (
            arch,
            input,
            classes,
            run.spec().backbone.freeze.clone(),
            head,
        );
        match keys.iter().position(|k| *k == key) {
            Some(i) => out[i].0.push(run.index() + 1),
            None => {
                out.push((
                    vec![run.index() + 1],
                    ModelSummary::with_head(arch, input, classes, &key.3, &key.4)?,
                ));
                keys.push(key);
            }
        }
    }
    Ok(out)
}

/// The backbone, input size (after the transforms' resize and crop) and class count of a run.
fn model_of(run: &ResolvedRun) -> Result<(Arch, Chw, usize), String> {
    let spec = run.spec();
    let arch = spec.backbone.name.arch().ok_or(
        "summary describes the convolutional backbones (small_cnn, resnet18, resnet34, resnet50, efficientnet_lite0); \
         backbone.name is a pixel model",
    )?;
    let folder = &run.dataset.folder;
    let t = &spec.transforms;
    let (h, w) = if t.crop > 0 {
        (t.crop as usize, t.crop as usize)
    } else {
        // resize keeps the aspect ratio: the size depends on the images; take the first one's
        let first = folder
            .train
            .samples
            .first()
            .ok_or("dataset.root: no training images")?;
        let (iw, ih) = image::image_dimensions(&first.path)
            .map_err(|e| format!("{}: {e}", first.path.display()))?;
        let (h, w) = run.transform.output_size(iw, ih);
        (h as usize, w as usize)
    };
    Ok((arch, Chw::new(3, h, w), folder.num_classes()))
}

/// `runner summary --layer conv`: the layer's shape, parameters and multiply-adds, each formula
/// printed with the numbers put in.
pub fn explain_conv(l: &ConvLayer) -> Result<String, String> {
    l.validate()?;
    let ConvLayer {
        input,
        out_channels: co,
        kernel: k,
        stride: s,
        padding,
        groups: g,
        bias,
    } = *l;
    let out = l.output();
    let pad = match padding {
        Padding::Symmetric(p) => p.to_string(),
        Padding::Same => "same".into(),
    };
    let mut text = format!(
        "Conv2d: input {}×{}×{} (C×H×W), {co} output channels, kernel {k}×{k}, stride {s}, padding {pad}, groups {g}, {}\n\n",
        input.c,
        input.h,
        input.w,
        if bias { "with bias" } else { "no bias" }
    );
    for (axis, side, o) in [("H", input.h, out.h), ("W", input.w, out.w)] {
        let line = match padding {
            Padding::Symmetric(p) => {
                format!(
                    "{axis}′ = ⌊({axis} + 2p − k)/s⌋ + 1 = ⌊({side} + 2·{p} − {k})/{s}⌋ + 1 = {o}"
                )
            }
            Padding::Same => {
                let total = ((o - 1) * s + k).saturating_sub(side);
                format!(
                    "{axis}′ = ⌈{axis}/s⌉ = ⌈{side}/{s}⌉ = {o}   (\"same\" pads max(({axis}′ − 1)·s + k − {axis}, 0) = {total}: {} before, {} after)",
                    total / 2,
                    total - total / 2
                )
            }
        };
        text += &format!(
            "{:<10} {line}\n",
            if axis == "H" { "height" } else { "width" }
        );
    }
    text += &format!("{:<10} Cout×H′×W′ = {co}×{}×{}\n", "output", out.h, out.w);
    let params = if bias {
        format!(
            "k·k·Cin/groups·Cout + Cout = {k}·{k}·{}/{g}·{co} + {co} = {}",
            input.c,
            thousands(l.params() as u64)
        )
    } else {
        format!(
            "k·k·Cin/groups·Cout = {k}·{k}·{}/{g}·{co} = {}",
            input.c,
            thousands(l.params() as u64)
        )
    };
    text += &format!("{:<10} {params}\n", "params");
    text += &format!(
        "{:<10} H′·W′·Cout·k·k·Cin/groups = {}·{}·{co}·{k}·{k}·{}/{g} = {}\n",
        "mult-adds",
        out.h,
        out.w,
        input.c,
        thousands(l.mult_adds())
    );
    Ok(text)
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_820), "1,820");
        assert_eq!(thousands(11_689_512), "11,689,512");
    }
}
