//! EfficientNet-Lite0 ImageNet inference on the golden (already preprocessed) input:
//! `cargo run --release --example efficientnet_predict`. Shows what `runner predict` wires up:
//! build, load pretrained weights by name, eval forward, softmax, class names.

use dfdx::prelude::*;
use runner::models::{
    imagenet_class_name, load_torchvision_weights, Classifier, Dev, EfficientNetLite0,
};

fn main() {
    let dev = Dev::seed_from_u64(0);
    let mut model = Classifier::<EfficientNetLite0>::new(&dev, 1000);
    let report = load_torchvision_weights(
        &mut model,
        "pipeline/weights/efficientnet_lite0_imagenet.safetensors",
        false,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    println!(
        "loaded {} tensors from {}",
        report.tensors_loaded,
        report.path.display()
    );

    let bytes =
        std::fs::read("tests/fixtures/reference/efficientnet_lite0_golden.safetensors").unwrap();
    let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let input = st.tensor("input").unwrap();
    let shape = input.shape().to_vec();
    let data: Vec<f32> = input
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let x = dev.tensor_from_vec(data, (shape[0], Const::<3>, shape[2], shape[3]));

    let start = std::time::Instant::now();
    let probs = model.forward_eval(x).softmax::<Axis<1>>().as_vec();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} images in {:.3} s ({:.1} img/s)",
        shape[0],
        secs,
        shape[0] as f64 / secs
    );
    for (i, row) in probs.chunks(1000).enumerate() {
        let mut idx: Vec<usize> = (0..1000).collect();
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        let top: Vec<String> = idx[..5]
            .iter()
            .map(|&c| format!("{} {:.3} ({c})", imagenet_class_name(c), row[c]))
            .collect();
        println!("image {i}: {}", top.join(", "));
    }
}
