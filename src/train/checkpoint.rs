//! Checkpoints: the model's tensors (BatchNorm running statistics included), the optimizer's
//! state and the last completed epoch, in one safetensors file written atomically. Data order
//! and augmentation are pure functions of (seed, epoch, sample), so nothing else is needed to
//! resume a run to the same numbers.

use std::collections::HashMap;
use std::path::Path;

use ::safetensors::tensor::{Dtype as SDtype, SafeTensors, TensorView};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
    ViewTensorRef,
};
use dfdx::prelude::*;

use super::{Dev, LoopState, Optimizer, OptimizerConfig, TrainError};
use crate::results::store::write_atomic;

/// Every tensor of `model` by its path, with its shape and values.
fn tensors<M: TensorCollection<f32, Dev>>(model: &M) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    struct Collect(Vec<(String, Vec<usize>, Vec<f32>)>);
    impl TensorVisitor<f32, Dev> for Collect {
        type Viewer = (ViewTensorRef, ViewTensorName);
        type Err = CpuError;
        type E2 = f32;
        type D2 = Dev;
        fn visit<S: Shape>(
            &mut self,
            _: TensorOptions<S, f32, Dev>,
            (t, name): (&Tensor<S, f32, Dev>, String),
        ) -> Result<Option<Tensor<S, f32, Dev>>, CpuError> {
            self.0
                .push((name, t.shape().concrete().into_iter().collect(), t.as_vec()));
            Ok(None)
        }
    }
    let mut c = Collect(Vec::new());
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut c,
    })
    .expect("walking tensors");
    c.0
}

/// f32 values as safetensors' little-endian bytes (also used by the feature cache).
pub(crate) fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// The inverse of [`bytes`].
pub(crate) fn floats(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn write(
    path: &Path,
    named: Vec<(String, Vec<usize>, Vec<u8>)>,
    meta: HashMap<String, String>,
) -> Result<(), TrainError> {
    let views: Vec<(String, TensorView)> = named
        .iter()
        .map(|(n, shape, b)| {
            (
                n.clone(),
                TensorView::new(SDtype::F32, shape.clone(), b).expect("consistent view"),
            )
        })
        .collect();
    let data = ::safetensors::tensor::serialize(views, &Some(meta))
        .map_err(|e| TrainError::Store(format!("{e:?}")))?;
    write_atomic(path, |f| std::io::Write::write_all(f, &data))
        .map_err(|e| TrainError::Store(e.to_string()))
}

/// Saves the model's tensors under their module paths.
pub fn save_weights<M: TensorCollection<f32, Dev>>(
    path: &Path,
    model: &M,
) -> Result<(), TrainError> {
    let named = tensors(model)
        .into_iter()
        .map(|(n, s, v)| (n, s, bytes(&v)))
        .collect();
    write(path, named, HashMap::new())
}

/// Saves model, optimizer state, epoch and the loop's schedule / early-stopping state.
pub fn save<M: TensorCollection<f32, Dev>>(
    path: &Path,
    model: &M,
    opt: &Optimizer,
    epoch: usize,
    state: &LoopState,
) -> Result<(), TrainError> {
    let mut named: Vec<(String, Vec<usize>, Vec<u8>)> = tensors(model)
        .into_iter()
        .map(|(n, s, v)| (format!("model.{n}"), s, bytes(&v)))
        .collect();
    for (kind, states) in [("first", &opt.first), ("second", &opt.second)] {
        for (i, s) in states.iter().enumerate() {
            named.push((format!("optim.{kind}.{i}"), vec![s.len()], bytes(s)));
        }
    }
    let meta = HashMap::from([
        ("epoch".to_string(), epoch.to_string()),
        ("step".to_string(), opt.step.to_string()),
        ("optimizer".to_string(), format!("{:?}", opt.cfg)),
        (
            "loop_state".to_string(),
            serde_json::to_string(state).expect("loop state serialises"),
        ),
    ]);
    write(path, named, meta)
}

/// Loads a checkpoint into `model`; returns the completed epoch, the optimizer state and the
/// loop state (default for checkpoints written before it was kept).
/// A checkpoint of another model or optimizer is an error, never half-applied.
pub fn load<M: TensorCollection<f32, Dev>>(
    path: &Path,
    model: &mut M,
    cfg: &OptimizerConfig,
) -> Result<(usize, Optimizer, LoopState), String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    let st = SafeTensors::deserialize(&data).map_err(|e| format!("{e:?}"))?;
    let (_, meta) = SafeTensors::read_metadata(&data).map_err(|e| format!("{e:?}"))?;
    let meta = meta.metadata().clone().unwrap_or_default();
    if meta.get("optimizer") != Some(&format!("{cfg:?}")) {
        return Err("it was written with another optimizer configuration".into());
    }
    let num = |k: &str| {
        meta.get(k)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or(format!("no `{k}` in its metadata"))
    };
    let (epoch, step) = (num("epoch")? as usize, num("step")?);
    let state = match meta.get("loop_state") {
        Some(json) => serde_json::from_str(json).map_err(|e| format!("its loop_state: {e}"))?,
        None => LoopState::default(),
    };
    apply(&st, "model.", model)?;
    let states = |kind: &str| -> Vec<Vec<f32>> {
        (0..)
            .map_while(|i| {
                st.tensor(&format!("optim.{kind}.{i}"))
                    .ok()
                    .map(|t| floats(t.data()))
            })
            .collect()
    };
    Ok((
        epoch,
        Optimizer {
            lr: cfg.lr(),
            cfg: cfg.clone(),
            step,
            first: states("first"),
            second: states("second"),
        },
        state,
    ))
}

/// Loads weights written by [`save_weights`] into `model` (all or nothing).
pub fn load_weights<M: TensorCollection<f32, Dev>>(
    path: &Path,
    model: &mut M,
) -> Result<(), String> {
    let data = std::fs::read(path).map_err(|e| e.to_string())?;
    let st = SafeTensors::deserialize(&data).map_err(|e| format!("{e:?}"))?;
    apply(&st, "", model)
}

/// Copies the tensors named `<prefix><path>` into `model`, after checking every one of them.
fn apply<M: TensorCollection<f32, Dev>>(
    st: &SafeTensors<'_>,
    prefix: &str,
    model: &mut M,
) -> Result<(), String> {
    // check every tensor before changing any
    let expected = tensors(model);
    for (name, shape, _) in &expected {
        let t = st
            .tensor(&format!("{prefix}{name}"))
            .map_err(|_| format!("it has no tensor `{name}`"))?;
        if t.shape() != shape.as_slice() {
            return Err(format!(
                "`{name}` has shape {:?}, the model {:?}",
                t.shape(),
                shape
            ));
        }
    }
    struct Apply<'a>(&'a SafeTensors<'a>, &'a str);
    impl TensorVisitor<f32, Dev> for Apply<'_> {
        type Viewer = (ViewTensorMut, ViewTensorName);
        type Err = CpuError;
        type E2 = f32;
        type D2 = Dev;
        fn visit<S: Shape>(
            &mut self,
            _: TensorOptions<S, f32, Dev>,
            (t, name): (&mut Tensor<S, f32, Dev>, String),
        ) -> Result<Option<Tensor<S, f32, Dev>>, CpuError> {
            let src = self
                .0
                .tensor(&format!("{}{name}", self.1))
                .expect("checked above");
            t.copy_from(&floats(src.data()));
            Ok(None)
        }
    }
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut Apply(st, prefix),
    })
    .expect("walking tensors");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::LinearHead;

    #[test]
    fn round_trips_model_and_optimizer_and_refuses_another_model() {
        let dev = Dev::seed_from_u64(2);
        let mut l = LinearHead::new(&dev, 3, 2);
        let cfg = OptimizerConfig::Adam {
            lr: 0.01,
            betas: [0.9, 0.999],
            eps: 1e-8,
        };
        let mut opt = Optimizer::new(cfg.clone());
        let x = dev.tensor_from_vec(vec![1.0, -1.0, 0.5], (1usize, 3usize));
        let mut grads = l
            .forward(x.traced(l.alloc_grads()))
            .square()
            .sum()
            .backward();
        opt.update(&mut l, &mut grads);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.safetensors");
        let mut state = LoopState::default();
        state.schedule.lr = Some(0.005);
        state.stop.best_epoch = 3;
        save(&path, &l, &opt, 4, &state).unwrap();

        let mut m = LinearHead::new(&dev, 3, 2);
        let (epoch, opt2, state2) = load(&path, &mut m, &cfg).unwrap();
        assert_eq!((epoch, &opt2, &state2), (4, &opt, &state));
        assert_eq!(
            (m.weight.as_vec(), m.bias.as_vec()),
            (l.weight.as_vec(), l.bias.as_vec())
        );

        let mut other = LinearHead::new(&dev, 4, 2);
        let before = other.weight.as_vec();
        let err = load(&path, &mut other, &cfg).unwrap_err();
        assert_eq!(err, "`weight` has shape [2, 3], the model [2, 4]");
        assert_eq!(other.weight.as_vec(), before);
        let sgd = OptimizerConfig::Sgd {
            lr: 0.01,
            momentum: 0.9,
            nesterov: false,
        };
        assert!(load(&path, &mut m, &sgd)
            .unwrap_err()
            .contains("another optimizer"));
    }
}
