//! Checkpoints: the model's tensors (BatchNorm running statistics included), the optimizer's
//! state and the last completed epoch, in one safetensors file written atomically. Data order
//! and augmentation are pure functions of (seed, epoch, sample), so nothing else is needed to
//! resume a run to the same numbers.

use std::collections::HashMap;
use std::path::Path;

use dfdx::nn::tensor_collection::TensorCollection;

use super::{Dev, LoopState, OptimizerConfig, OptimizerState, TrainError};
use crate::durable::tensor_file::{self, Data, Entry, TensorFile};
use crate::nn::tensors;

fn write(path: &Path, entries: &[Entry], meta: HashMap<String, String>) -> Result<(), TrainError> {
    Ok(tensor_file::write(path, entries, meta)?)
}

/// Saves the model's tensors under their module paths.
pub fn save_weights<M: TensorCollection<f32, Dev>>(
    path: &Path,
    model: &M,
) -> Result<(), TrainError> {
    let all = tensors::collect(model);
    let entries: Vec<Entry> = all
        .iter()
        .map(|t| Entry {
            name: t.name.clone(),
            dims: t.dims.clone(),
            data: Data::F32(&t.values),
        })
        .collect();
    write(path, &entries, HashMap::new())
}

/// Saves model, optimizer state and epoch.
pub fn save<M: TensorCollection<f32, Dev>>(
    path: &Path,
    model: &M,
    opt: &OptimizerState,
    epoch: usize,
    state: &LoopState,
) -> Result<(), TrainError> {
    let all = tensors::collect(model);
    let mut entries: Vec<Entry> = all
        .iter()
        .map(|t| Entry {
            name: format!("model.{}", t.name),
            dims: t.dims.clone(),
            data: Data::F32(&t.values),
        })
        .collect();
    for (kind, states) in [("first", &opt.first), ("second", &opt.second)] {
        for (i, s) in states.iter().enumerate() {
            entries.push(Entry {
                name: format!("optim.{kind}.{i}"),
                dims: vec![s.len()],
                data: Data::F32(s),
            });
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
    write(path, &entries, meta)
}

/// Loads a checkpoint into `model`; returns the completed epoch, the optimizer state and the
/// loop state (schedule, early stopping; the default for checkpoints written before it was kept).
/// A checkpoint of another model or optimizer, or one whose checksum does not match its data,
/// is an error, never half-applied.
pub fn load<M: TensorCollection<f32, Dev>>(
    path: &Path,
    model: &mut M,
    cfg: &OptimizerConfig,
) -> Result<(usize, OptimizerState, LoopState), String> {
    let file = TensorFile::read(path)?;
    let meta = file.metadata();
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
    apply(&file, "model.", model)?;
    let states = |kind: &str| -> Vec<Vec<f32>> {
        (0..)
            .map_while(|i| file.f32(&format!("optim.{kind}.{i}")).ok().map(|t| t.1))
            .collect()
    };
    Ok((
        epoch,
        OptimizerState {
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
pub(crate) fn load_weights<M: TensorCollection<f32, Dev>>(
    path: &Path,
    model: &mut M,
) -> Result<(), String> {
    load_weights_from(&TensorFile::read(path)?, model)
}

/// [`load_weights`] from a file already read.
pub(crate) fn load_weights_from<M: TensorCollection<f32, Dev>>(
    file: &TensorFile,
    model: &mut M,
) -> Result<(), String> {
    apply(file, "", model)
}

/// Copies the tensors named `<prefix><path>` of `file` into `model`, after checking them all.
fn apply<M: TensorCollection<f32, Dev>>(
    file: &TensorFile,
    prefix: &str,
    model: &mut M,
) -> Result<(), String> {
    // check every tensor before changing any
    let mut values = HashMap::new();
    for t in tensors::collect(model) {
        let (dims, v) = file.f32(&format!("{prefix}{}", t.name))?;
        if dims != t.dims {
            return Err(format!(
                "`{}` has shape {dims:?}, the model {:?}",
                t.name, t.dims
            ));
        }
        values.insert(t.name, v);
    }
    tensors::for_each_mut(model, |t| -> Result<(), String> {
        t.set_values(&values[t.name()]);
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::LinearHead;
    use dfdx::prelude::{Backward, Module, SumTo, TensorFromVec, Trace, ZeroGrads};

    #[test]
    fn round_trips_model_and_optimizer_and_refuses_another_model() {
        let dev = Dev::seed_from_u64(2);
        let mut l = LinearHead::new(&dev, 3, 2);
        let cfg = OptimizerConfig::Adam {
            lr: 0.01,
            betas: [0.9, 0.999],
            eps: 1e-8,
        };
        let mut opt = OptimizerState::new(cfg.clone());
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

    #[test]
    fn a_checkpoint_with_corrupted_tensor_bytes_is_refused() {
        let dev = Dev::seed_from_u64(3);
        let l = LinearHead::new(&dev, 64, 4);
        let cfg = OptimizerConfig::Sgd {
            lr: 0.01,
            momentum: 0.9,
            nesterov: false,
        };
        let opt = OptimizerState::new(cfg.clone());
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ckpt.safetensors");
        save(&path, &l, &opt, 2, &LoopState::default()).unwrap();
        // a valid header, wrong data: flip a byte in every tensor's values
        let mut bytes = std::fs::read(&path).unwrap();
        let header = 8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        for i in (header..bytes.len()).step_by(97) {
            bytes[i] ^= 0x10;
        }
        std::fs::write(&path, &bytes).unwrap();
        let mut m = LinearHead::new(&dev, 64, 4);
        let before = m.weight.as_vec();
        let err = load(&path, &mut m, &cfg).unwrap_err();
        assert!(err.contains("checksum"), "{err}");
        assert_eq!(m.weight.as_vec(), before);
    }
}
