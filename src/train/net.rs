use dfdx::prelude::*;

pub type Dev = Cpu;
/// A batch of NCHW RGB images.
pub type ImageBatch = Tensor<(usize, Const<3>, usize, usize), f32, Dev>;
pub type Logits<T = NoneTape> = Tensor<(usize, usize), f32, Dev, T>;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("model input mismatch: {0}")]
    Input(String),
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A result file could not be written (or read back): the error names the file and keeps
    /// its cause.
    #[error(transparent)]
    Store(#[from] crate::durable::StoreError),
    #[error("another runner is training this run")]
    Locked,
    /// The spec asks for what this machine cannot do (bf16 without a bf16 engine).
    #[error("{0}")]
    Unsupported(String),
}

/// A batch of model inputs as plain values; each [`Net`] turns it into its tensor type.
#[derive(Debug, Clone)]
pub enum Inputs {
    /// NCHW images.
    Images {
        x: Vec<f32>,
        n: usize,
        h: usize,
        w: usize,
    },
    /// One feature vector per row (flattened pixels, or a frozen backbone's pooled features).
    Features { x: Vec<f32>, n: usize, f: usize },
}

impl Inputs {
    pub fn len(&self) -> usize {
        match self {
            Inputs::Images { n, .. } | Inputs::Features { n, .. } => *n,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The batch as rows of `width` values; images are flattened in CHW order.
    pub fn flat(
        self,
        dev: &Dev,
        width: usize,
    ) -> Result<Tensor<(usize, usize), f32, Dev>, TrainError> {
        let (x, n, f) = match self {
            Inputs::Images { x, n, h, w } => (x, n, 3 * h * w),
            Inputs::Features { x, n, f } => (x, n, f),
        };
        if f != width {
            return Err(TrainError::Input(format!(
                "the model takes {width} values per sample but the data gives {f} (check the transforms' resize/crop)"
            )));
        }
        Ok(dev.tensor_from_vec(x, (n, f)))
    }

    /// The batch as NCHW RGB images.
    pub fn images(self, dev: &Dev) -> Result<ImageBatch, TrainError> {
        match self {
            Inputs::Images { x, n, h, w } => Ok(dev.tensor_from_vec(x, (n, Const::<3>, h, w))),
            Inputs::Features { f, .. } => Err(TrainError::Input(format!(
                "the model takes images but the data gives {f} features per sample"
            ))),
        }
    }
}

/// A classifier the generic loop can train: every tensor it exposes through
/// `TensorCollection` is trainable (frozen backbones stay outside the `Net`), except those in
/// the blocks named by `FitConfig::frozen` (`backbone.freeze = "until:<block>"`).
pub trait Net: TensorCollection<f32, Dev> {
    /// Eval-mode logits (BatchNorm on running statistics), no tape.
    fn logits(&self, dev: &Dev, x: Inputs) -> Result<Logits, TrainError>;
    /// Train-mode logits, recorded on a tape that starts from `grads`.
    fn logits_train(
        &mut self,
        dev: &Dev,
        x: Inputs,
        grads: Gradients<f32, Dev>,
    ) -> Result<Logits<OwnedTape<f32, Dev>>, TrainError>;
    /// Called before each training batch's `logits_train` with the 1-based epoch and the
    /// 0-based batch index: models with dropout derive their masks from it.
    fn begin_batch(&mut self, _epoch: usize, _batch: usize) {}
}
