//! The hidden layers of an MLP head (`head.kind = "mlp"`): per width `[Dropout, Linear,
//! BatchNorm1d (optional), activation]`, then the Dropout before the classifier's last linear
//! layer (a [`super::LinearHead`], kept apart so a linear head is exactly what it always was).
//!
//! The depth and widths are run-time choices, but a dfdx `TensorCollection` visits a fixed set
//! of tensors. So the parameters live in flat buffers by role — every hidden linear weight,
//! every bias, every BatchNorm γ, β and running statistic — and each layer's forward pass
//! slices its part out (on the tape, so gradients land in the buffers). Optimizers, penalties,
//! checkpoints and `alloc_grads` see six tensors; [`HiddenLayers::torch_tensors`] and
//! [`HiddenLayers::load_torch`] translate to PyTorch's `nn.Sequential` names (see
//! [`HiddenLayout::torch_index`]).

use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection, TensorOptions};
use dfdx::prelude::*;

use super::batchnorm1d::{batchnorm1d_eval, batchnorm1d_train};
use super::dropout::{dropout, Step};
use super::init::{linear_uniform, runtime_options, Symmetric};
use super::values;
use crate::nn::head_kinds::Activation;

/// What the hidden layers are; not tensors, so not part of the `TensorCollection`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HiddenLayout {
    /// Width of the input (the backbone's pooled features).
    pub features: usize,
    /// Hidden widths; empty for a linear head (then nothing here runs, not even dropout).
    pub widths: Vec<usize>,
    pub activation: Activation,
    /// Dropout probability before every linear layer, in training only.
    pub dropout: f64,
    pub batch_norm: bool,
    /// Seeds the dropout masks (with the epoch and batch).
    pub seed: u64,
}

/// One entry of the PyTorch `nn.Sequential` the head corresponds to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TorchLayer {
    Dropout,
    /// `Linear(in, out)`.
    Linear(usize, usize),
    BatchNorm1d(usize),
    Activation(Activation, usize),
}

impl HiddenLayout {
    /// Modules per hidden width: Dropout, Linear, (BatchNorm1d), activation.
    fn block(&self) -> usize {
        3 + self.batch_norm as usize
    }
    /// Input width of hidden layer `i` (and of the last linear layer for `i = depth`).
    pub(crate) fn input_of(&self, i: usize) -> usize {
        if i == 0 {
            self.features
        } else {
            self.widths[i - 1]
        }
    }
    /// Width the last linear layer reads.
    pub fn output(&self) -> usize {
        self.widths.last().copied().unwrap_or(self.features)
    }
    /// The whole head as PyTorch `nn.Sequential` entries, the last linear layer (to
    /// `classes`) included; empty for a linear head, which is a bare `nn.Linear`.
    ///
    /// Index of hidden layer i's Linear: b·i + 1, its BatchNorm1d b·i + 2, its activation
    /// b·i + b − 1, with b = 4 with batch_norm and 3 without; then Dropout b·D and the last Linear
    /// b·D + 1 (D hidden layers). Dropout is listed at every p, also 0, so a dropout sweep keeps
    /// the names.
    pub(crate) fn torch_layers(&self, classes: usize) -> Vec<TorchLayer> {
        let mut out = Vec::new();
        if self.widths.is_empty() {
            return out;
        }
        for (i, &w) in self.widths.iter().enumerate() {
            out.push(TorchLayer::Dropout);
            out.push(TorchLayer::Linear(self.input_of(i), w));
            if self.batch_norm {
                out.push(TorchLayer::BatchNorm1d(w));
            }
            out.push(TorchLayer::Activation(self.activation, w));
        }
        out.push(TorchLayer::Dropout);
        out.push(TorchLayer::Linear(self.output(), classes));
        out
    }
    /// `nn.Sequential` index of hidden layer `i`'s Linear (`i = depth`: the last Linear).
    pub(crate) fn torch_index(&self, i: usize) -> usize {
        self.block() * i + 1
    }
    /// State-dict prefix of the last linear layer under the head's name `head` (`fc`, `_fc`).
    pub fn last_linear(&self, head: &str) -> String {
        if self.widths.is_empty() {
            head.to_string()
        } else {
            format!("{head}.{}", self.torch_index(self.widths.len()))
        }
    }
    fn weight_len(&self) -> usize {
        (0..self.widths.len())
            .map(|i| self.input_of(i) * self.widths[i])
            .sum()
    }
    fn bias_len(&self) -> usize {
        self.widths.iter().sum()
    }
    fn norm_len(&self) -> usize {
        if self.batch_norm {
            self.bias_len()
        } else {
            0
        }
    }
}

/// A batch of rows, and a vector, on tape `T`.
type Rows<T> = Tensor<(usize, usize), f32, Cpu, T>;
type Vector<T> = Tensor<(usize,), f32, Cpu, T>;
/// Why [`HiddenLayers::load_torch`] failed: the tensor's name, the shape it needs, and the
/// shape the source has (`None`: the source has no such tensor).
pub(crate) type LoadError = (String, Vec<usize>, Option<Vec<usize>>);

#[derive(Debug, Clone)]
pub struct HiddenLayers<E: Dtype = f32, D: Storage<E> = Cpu> {
    /// Every hidden Linear's `[out, in]` weight, row-major, layer after layer, as one
    /// `(1, Σ out·in)` tensor: rank 2 and named `weight` like every linear weight, which is
    /// what the penalties select.
    pub weight: Tensor<(usize, usize), E, D>,
    /// Every hidden Linear's bias, layer after layer.
    pub bias: Tensor<(usize,), E, D>,
    /// BatchNorm1d γ of every hidden layer (empty without batch_norm).
    pub bn_weight: Tensor<(usize,), E, D>,
    /// BatchNorm1d β.
    pub bn_bias: Tensor<(usize,), E, D>,
    pub running_mean: Tensor<(usize,), E, D>,
    pub running_var: Tensor<(usize,), E, D>,
    pub layout: HiddenLayout,
    /// The training step the next `forward_train` belongs to (sets the dropout masks).
    pub step: Option<(usize, usize)>,
}

impl HiddenLayers<f32, Cpu> {
    /// PyTorch's `nn.Linear` init, U(±1/√in) for weight and bias; BatchNorm γ = 1, β = 0,
    /// running mean 0, variance 1.
    pub fn new(dev: &Cpu, layout: HiddenLayout) -> Self {
        let (mut w, mut b) = (Vec::new(), Vec::new());
        for (i, &out) in layout.widths.iter().enumerate() {
            let fan_in = layout.input_of(i);
            let mut t: Tensor<(usize, usize), f32, Cpu> = dev.zeros_like(&(out, fan_in));
            linear_uniform(&mut t).expect("cpu fill");
            w.extend(t.as_vec());
            let mut t: Tensor<(usize,), f32, Cpu> = dev.zeros_like(&(out,));
            t.fill_with_distr(Symmetric {
                bound: 1.0 / (fan_in.max(1) as f64).sqrt(),
            });
            b.extend(t.as_vec());
        }
        let n = layout.norm_len();
        HiddenLayers {
            weight: dev.tensor_from_vec(w, (1, layout.weight_len())),
            bias: dev.tensor_from_vec(b, (layout.bias_len(),)),
            bn_weight: dev.tensor_from_vec(vec![1.0; n], (n,)),
            bn_bias: dev.zeros_like(&(n,)),
            running_mean: dev.zeros_like(&(n,)),
            running_var: dev.tensor_from_vec(vec![1.0; n], (n,)),
            layout,
            step: None,
        }
    }

    /// No hidden layers: a linear head.
    pub fn none(dev: &Cpu, features: usize) -> Self {
        Self::new(
            dev,
            HiddenLayout {
                features,
                ..HiddenLayout::default()
            },
        )
    }

    pub fn is_empty(&self) -> bool {
        self.layout.widths.is_empty()
    }

    /// Hidden layer `i`'s weight `[out, in]` and bias, sliced out of the buffers on `T`.
    fn linear<T: Tape<f32, Cpu>>(&self, i: usize) -> (Rows<T>, Vector<T>) {
        let l = &self.layout;
        let w0: usize = (0..i).map(|j| l.input_of(j) * l.widths[j]).sum();
        let b0: usize = l.widths[..i].iter().sum();
        let (out, inp) = (l.widths[i], l.input_of(i));
        let w = self
            .weight
            .retaped::<T>()
            .slice((0..1, w0..w0 + out * inp))
            .reshape_like(&(out, inp));
        let b = self.bias.retaped::<T>().slice((b0..b0 + out,));
        (w, b)
    }

    fn norm<T: Tape<f32, Cpu>>(&self, i: usize) -> (Vector<T>, Vector<T>, std::ops::Range<usize>) {
        let b0: usize = self.layout.widths[..i].iter().sum();
        let r = b0..b0 + self.layout.widths[i];
        (
            self.bn_weight.retaped::<T>().slice((r.clone(),)),
            self.bn_bias.retaped::<T>().slice((r.clone(),)),
            r,
        )
    }

    fn activate<T: Tape<f32, Cpu>>(
        &self,
        x: Tensor<(usize, usize), f32, Cpu, T>,
    ) -> Tensor<(usize, usize), f32, Cpu, T> {
        match self.layout.activation {
            Activation::Relu => x.relu(),
            Activation::Gelu => crate::ops::gelu(x),
        }
    }

    /// Eval mode: no dropout, BatchNorm on running statistics.
    pub fn forward_eval<T: Tape<f32, Cpu>>(
        &self,
        mut x: Tensor<(usize, usize), f32, Cpu, T>,
    ) -> Tensor<(usize, usize), f32, Cpu, T> {
        let (rm, rv) = (values(&self.running_mean), values(&self.running_var));
        for i in 0..self.layout.widths.len() {
            x = affine(x, self.linear::<T>(i));
            if self.layout.batch_norm {
                let (g, b, r) = self.norm::<T>(i);
                x = batchnorm1d_eval(x, g, b, &rm[r.clone()], &rv[r]);
            }
            x = self.activate(x);
        }
        x
    }

    /// Train mode: dropout masks of the current step (see [`Self::step`]), BatchNorm on batch
    /// statistics with the running statistics updated. The output feeds the last linear layer,
    /// its dropout already applied.
    pub fn forward_train<T: Tape<f32, Cpu>>(
        &mut self,
        mut x: Tensor<(usize, usize), f32, Cpu, T>,
    ) -> Tensor<(usize, usize), f32, Cpu, T> {
        if self.is_empty() {
            return x;
        }
        let (epoch, batch) = self.step.unwrap_or((0, 0));
        let step = Step {
            seed: self.layout.seed,
            epoch,
            batch,
        };
        let p = self.layout.dropout;
        let (mut rm, mut rv) = (values(&self.running_mean), values(&self.running_var));
        for i in 0..self.layout.widths.len() {
            x = dropout(x, step, i, p);
            x = affine(x, self.linear::<T>(i));
            if self.layout.batch_norm {
                let (g, b, r) = self.norm::<T>(i);
                x = batchnorm1d_train(x, g, b, &mut rm[r.clone()], &mut rv[r]);
            }
            x = self.activate(x);
        }
        if self.layout.batch_norm {
            self.running_mean.copy_from(&rm);
            self.running_var.copy_from(&rv);
        }
        dropout(x, step, self.layout.widths.len(), p)
    }

    /// The buffers as PyTorch state-dict entries `(name, shape, values)` under `head` (`fc`).
    pub fn torch_tensors(&self, head: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
        let l = &self.layout;
        let (w, b) = (values(&self.weight), values(&self.bias));
        let (g, beta) = (values(&self.bn_weight), values(&self.bn_bias));
        let (rm, rv) = (values(&self.running_mean), values(&self.running_var));
        let (mut wo, mut bo) = (0, 0);
        let mut out = Vec::new();
        for (i, &width) in l.widths.iter().enumerate() {
            let inp = l.input_of(i);
            let at = format!("{head}.{}", l.torch_index(i));
            out.push((
                format!("{at}.weight"),
                vec![width, inp],
                w[wo..wo + width * inp].to_vec(),
            ));
            out.push((
                format!("{at}.bias"),
                vec![width],
                b[bo..bo + width].to_vec(),
            ));
            if l.batch_norm {
                let at = format!("{head}.{}", l.torch_index(i) + 1);
                for (name, v) in [
                    ("weight", &g),
                    ("bias", &beta),
                    ("running_mean", &rm),
                    ("running_var", &rv),
                ] {
                    out.push((
                        format!("{at}.{name}"),
                        vec![width],
                        v[bo..bo + width].to_vec(),
                    ));
                }
            }
            wo += width * inp;
            bo += width;
        }
        out
    }

    /// Fills the buffers from PyTorch state-dict entries named as [`Self::torch_tensors`]
    /// names them; `get(name)` returns a tensor's shape and values. Returns the names it read,
    /// or the first name that is missing or has another shape (expected shape alongside).
    pub fn load_torch(
        &mut self,
        head: &str,
        get: impl Fn(&str) -> Option<(Vec<usize>, Vec<f32>)>,
    ) -> Result<Vec<String>, LoadError> {
        let wanted = self.torch_tensors(head);
        let mut values = Vec::with_capacity(wanted.len());
        for (name, shape, _) in &wanted {
            match get(name) {
                Some((s, v)) if &s == shape => values.push(v),
                found => return Err((name.clone(), shape.clone(), found.map(|f| f.0))),
            }
        }
        let per_layer = 2 + 4 * self.layout.batch_norm as usize;
        let (mut w, mut b, mut g, mut beta, mut rm, mut rv) =
            (vec![], vec![], vec![], vec![], vec![], vec![]);
        for layer in values.chunks(per_layer) {
            w.extend_from_slice(&layer[0]);
            b.extend_from_slice(&layer[1]);
            if self.layout.batch_norm {
                g.extend_from_slice(&layer[2]);
                beta.extend_from_slice(&layer[3]);
                rm.extend_from_slice(&layer[4]);
                rv.extend_from_slice(&layer[5]);
            }
        }
        self.weight.copy_from(&w);
        self.bias.copy_from(&b);
        self.bn_weight.copy_from(&g);
        self.bn_bias.copy_from(&beta);
        self.running_mean.copy_from(&rm);
        self.running_var.copy_from(&rv);
        Ok(wanted.into_iter().map(|(n, _, _)| n).collect())
    }
}

/// `x · wᵀ + b`.
fn affine<T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize), f32, Cpu, T>,
    (w, b): (Rows<T>, Vector<T>),
) -> Tensor<(usize, usize), f32, Cpu, T> {
    let y = x.matmul(w.permute::<(usize, usize), Axes2<1, 0>>());
    let shape = *y.shape();
    y + b.broadcast_like::<_, Axis<0>>(&shape)
}

fn keep<S: Shape, E: Dtype, D: Device<E>>(_: &mut Tensor<S, E, D>) -> Result<(), D::Err> {
    Ok(())
}

impl<E: Dtype, D: Device<E>> TensorCollection<E, D> for HiddenLayers<E, D> {
    type To<E2: Dtype, D2: Device<E2>> = HiddenLayers<E2, D2>;

    /// The layout is not a tensor: a copy built by a visitor (`to_device`, `BuildModule`) has
    /// the default one. Construct with [`HiddenLayers::new`]. Reset leaves the values alone:
    /// the per-layer fan-in is not visible to a per-tensor reset.
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        let trained = || runtime_options((0,), true, keep);
        let stats = || -> TensorOptions<(usize,), E, D> { runtime_options((0,), false, keep) };
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    runtime_options((0, 0), true, keep),
                ),
                Self::tensor("bias", |s| &s.bias, |s| &mut s.bias, trained()),
                Self::tensor(
                    "bn_weight",
                    |s| &s.bn_weight,
                    |s| &mut s.bn_weight,
                    trained(),
                ),
                Self::tensor("bn_bias", |s| &s.bn_bias, |s| &mut s.bn_bias, trained()),
                Self::tensor(
                    "running_mean",
                    |s| &s.running_mean,
                    |s| &mut s.running_mean,
                    stats(),
                ),
                Self::tensor(
                    "running_var",
                    |s| &s.running_var,
                    |s| &mut s.running_var,
                    stats(),
                ),
            ),
            |(weight, bias, bn_weight, bn_bias, running_mean, running_var)| HiddenLayers {
                weight,
                bias,
                bn_weight,
                bn_bias,
                running_mean,
                running_var,
                layout: HiddenLayout::default(),
                step: None,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout(batch_norm: bool) -> HiddenLayout {
        HiddenLayout {
            features: 5,
            widths: vec![4, 3],
            activation: Activation::Relu,
            dropout: 0.0,
            batch_norm,
            seed: 1,
        }
    }

    #[test]
    fn torch_indices_follow_the_sequential_layout() {
        let l = layout(false);
        assert_eq!(l.last_linear("fc"), "fc.7");
        let names: Vec<String> = HiddenLayers::new(&Cpu::default(), l)
            .torch_tensors("fc")
            .into_iter()
            .map(|t| t.0)
            .collect();
        assert_eq!(
            names,
            ["fc.1.weight", "fc.1.bias", "fc.4.weight", "fc.4.bias"]
        );
        let l = layout(true);
        assert_eq!(l.last_linear("fc"), "fc.9");
        let t = HiddenLayers::new(&Cpu::default(), l.clone()).torch_tensors("fc");
        assert_eq!(t[2].0, "fc.2.weight");
        assert_eq!(t[6].0, "fc.5.weight");
        assert_eq!(t[6].1, vec![3, 4]);
        assert_eq!(
            l.torch_layers(2)[7..],
            [
                TorchLayer::Activation(Activation::Relu, 3),
                TorchLayer::Dropout,
                TorchLayer::Linear(3, 2)
            ]
        );
        assert_eq!(HiddenLayout::default().last_linear("_fc"), "_fc");
    }

    #[test]
    fn torch_round_trip() {
        let dev = Cpu::seed_from_u64(3);
        let mut a = HiddenLayers::new(&dev, layout(true));
        a.bn_bias.copy_from(&[0.5; 7]);
        let mut b = HiddenLayers::new(&Cpu::seed_from_u64(4), layout(true));
        let file = a.torch_tensors("fc");
        let read = b
            .load_torch("fc", |n| {
                file.iter()
                    .find(|t| t.0 == n)
                    .map(|t| (t.1.clone(), t.2.clone()))
            })
            .unwrap();
        assert_eq!(read.len(), 12);
        assert_eq!(a.weight.as_vec(), b.weight.as_vec());
        assert_eq!(b.bn_bias.as_vec(), vec![0.5; 7]);
        let err = b.load_torch("fc", |_| None).unwrap_err();
        assert_eq!(err.0, "fc.1.weight");
    }
}
