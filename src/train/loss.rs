//! The training loss's target: cross-entropy against one-hot labels, optionally smoothed as
//! torch's `CrossEntropyLoss(label_smoothing = ε)` does: (1 − ε)·one-hot + ε/K. dfdx's
//! `cross_entropy_with_logits_loss` takes target probabilities, so smoothing is all in the target.

use dfdx::prelude::*;

use super::Dev;

/// The target distribution of a batch, `labels.len()` × `classes`.
pub(super) fn targets(
    dev: &Dev,
    labels: &[usize],
    classes: usize,
    smoothing: f64,
) -> Tensor<(usize, usize), f32, Dev> {
    let off = (smoothing / classes as f64) as f32;
    let on = (1.0 - smoothing + smoothing / classes as f64) as f32;
    let mut v = vec![off; labels.len() * classes];
    for (i, &y) in labels.iter().enumerate() {
        v[i * classes + y] = on;
    }
    dev.tensor_from_vec(v, (labels.len(), classes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGITS: [f32; 12] = [
        2.0, -1.0, 0.5, 0.1, 0.2, 0.3, -3.0, 4.0, 1.0, 1.5, 1.5, -2.0,
    ];
    const LABELS: [usize; 4] = [0, 2, 1, 1];

    fn loss_and_grad(eps: f64) -> (f64, Vec<f32>) {
        let dev = Dev::seed_from_u64(0);
        let logits: Tensor<(usize, usize), f32, Dev> = dev.tensor_from_vec(LOGITS.to_vec(), (4, 3));
        let traced = logits.leaky_trace();
        let loss = cross_entropy_with_logits_loss(traced, targets(&dev, &LABELS, 3, eps));
        let value = loss.array() as f64;
        let grads = loss.backward();
        (value, grads.get(&logits).as_vec())
    }

    /// Expected values: torch.nn.functional.cross_entropy(LOGITS, LABELS, label_smoothing=ε)
    /// and its gradient, printed by tests/golden/torch_reference.py.
    #[test]
    fn matches_torch_cross_entropy_with_label_smoothing() {
        for (eps, loss, grad) in [
            (0.0, CE_SMOOTH_0_0, CE_SMOOTH_0_0_GRAD),
            (0.1, CE_SMOOTH_0_1, CE_SMOOTH_0_1_GRAD),
            (0.3, CE_SMOOTH_0_3, CE_SMOOTH_0_3_GRAD),
        ] {
            let (ours, g) = loss_and_grad(eps);
            assert!(
                (ours - loss).abs() < 1e-6,
                "ε={eps}: ours {ours}, torch {loss}"
            );
            for (a, b) in g.iter().zip(grad) {
                assert!(
                    (*a as f64 - b).abs() < 1e-6,
                    "ε={eps}: grad {g:?} vs {grad:?}"
                );
            }
        }
    }

    // torch 2.15.0
    const CE_SMOOTH_0_0: f64 = 0.5002106940304664;
    const CE_SMOOTH_0_0_GRAD: [f64; 12] = [
        -0.05360074135268103,
        0.009778143317671862,
        0.04382259803500917,
        0.07515240133893183,
        0.08305624838333683,
        -0.1582086497222686,
        0.00021697032372240127,
        -0.012063148611057922,
        0.011846178287335545,
        0.12314073599019873,
        -0.12685926400980127,
        0.0037185280196025275,
    ];
    const CE_SMOOTH_0_1: f64 = 0.6527106940304663;
    const CE_SMOOTH_0_1_GRAD: [f64; 12] = [
        -0.03693407468601437,
        0.0014448099843385291,
        0.03548926470167584,
        0.0668190680055985,
        0.0747229150500035,
        -0.14154198305560195,
        -0.008116363009610932,
        0.004603518055608741,
        0.0035128449540022116,
        0.1148074026568654,
        -0.11019259734313461,
        -0.004614805313730806,
    ];
    const CE_SMOOTH_0_3: f64 = 0.9577106940304663;
    const CE_SMOOTH_0_3_GRAD: [f64; 12] = [
        -0.0036007413526810356,
        -0.015221856682328137,
        0.018822598035009172,
        0.050152401338931826,
        0.058056248383336825,
        -0.10820864972226862,
        -0.024783029676277598,
        0.03793685138894207,
        -0.013153821712664455,
        0.09814073599019872,
        -0.07685926400980127,
        -0.02128147198039747,
    ];
}
