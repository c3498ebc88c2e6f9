//! `runner summary`: parameter and multiply-add counts of the backbones against published
//! numbers and the embedded weights, table and single-layer snapshots.

use runner::inspect::summary::{explain_conv, ModelSummary};
use runner::models::Arch;
use runner::nn::describe::{Chw, ConvLayer};
use runner::ops::Padding;
use runner::spec::Freeze;

fn imagenet(arch: Arch) -> ModelSummary {
    ModelSummary::of(arch, Chw::new(3, 224, 224), 1000, &Freeze::No).unwrap()
}

/// torchvision's resnet18: 11,689,512 parameters (torchinfo), 1.81 GFLOPS in torchvision's
/// model table (multiply-adds). The conv sum by hand: stem 118,013,952; layer1 4 × 115,605,504;
/// layers 2–4 each 57,802,752 + 3 × 115,605,504 + 6,422,528 (shortcut); plus fc 512·1000.
#[test]
fn resnet18_counts_match_torchvision() {
    let s = imagenet(Arch::ResNet18);
    assert_eq!(s.total_params(), 11_689_512);
    assert_eq!(s.total_params(), s.model_params);
    let convs = 118_013_952 + 4 * 115_605_504 + 3 * (57_802_752 + 3 * 115_605_504 + 6_422_528);
    assert_eq!(s.total_mult_adds(), convs + 512_000);
    assert_eq!(format!("{:.2}", s.total_mult_adds() as f64 / 1e9), "1.81");
    assert_eq!(s.rows.last().unwrap().output, vec![1000]);
}

/// resnet34: 21,797,672 parameters, 3.66 GFLOPS (torchvision).
#[test]
fn resnet34_counts_match_torchvision() {
    let s = imagenet(Arch::ResNet34);
    assert_eq!(s.total_params(), 21_797_672);
    assert_eq!(s.total_params(), s.model_params);
    let (stem, full, down, shortcut) =
        (118_013_952u64, 115_605_504u64, 57_802_752u64, 6_422_528u64);
    let convs = stem
        + 6 * full
        + (down + 7 * full + shortcut)
        + (down + 11 * full + shortcut)
        + (down + 5 * full + shortcut);
    assert_eq!(s.total_mult_adds(), convs + 512_000);
    assert_eq!(format!("{:.2}", s.total_mult_adds() as f64 / 1e9), "3.66");
}

/// resnet50: 25,557,032 parameters, 4.09 GFLOPS (torchvision's model table). The multiply-adds
/// of its convs and fc, 4,089,184,256, were summed by forward hooks on torchvision's own
/// resnet50 at 224×224 (out elements · in/groups · k², and in · out for the fc).
#[test]
fn resnet50_counts_match_torchvision() {
    let s = imagenet(Arch::ResNet50);
    assert_eq!(s.total_params(), 25_557_032);
    assert_eq!(s.total_params(), s.model_params);
    assert_eq!(s.total_mult_adds(), 4_089_184_256);
    assert_eq!(format!("{:.2}", s.total_mult_adds() as f64 / 1e9), "4.09");
    // the stride sits on the 3×3 conv (torchvision's v1.5): the 1×1 before it keeps 56×56
    let conv1 = s.rows.iter().find(|r| r.name == "layer2.0.conv1").unwrap();
    assert_eq!(conv1.output, vec![128, 56, 56]);
    let conv2 = s.rows.iter().find(|r| r.name == "layer2.0.conv2").unwrap();
    assert_eq!(conv2.output, vec![128, 28, 28]);
    let pool = s.rows.iter().find(|r| r.name == "avgpool").unwrap();
    assert_eq!(pool.output, vec![2048, 1, 1]);
}

/// EfficientNet-Lite0: the rows add up to the parameters in the embedded ImageNet weights
/// (BatchNorm running statistics are buffers, not parameters).
#[test]
fn efficientnet_lite0_counts_match_the_embedded_weights() {
    let bytes = std::fs::read("pipeline/weights/efficientnet_lite0_imagenet.safetensors").unwrap();
    let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let in_file: usize = st
        .tensors()
        .iter()
        .filter(|(name, _)| {
            !["running_mean", "running_var", "num_batches_tracked"]
                .iter()
                .any(|b| name.ends_with(b))
        })
        .map(|(_, t)| t.shape().iter().product::<usize>())
        .sum();
    let s = imagenet(Arch::EfficientNetLite0);
    assert_eq!(s.total_params(), in_file);
    assert_eq!(s.total_params(), s.model_params);
    assert_eq!(s.total_params(), 4_652_008);
    // 224 → 112 (stem) → 112, 56, 56, 28, 28, 14 ×6, 7 ×5 → 7 (head), SAME padding throughout
    let head = s.rows.iter().find(|r| r.name == "_conv_head").unwrap();
    assert_eq!(head.output, vec![1280, 7, 7]);
}

#[test]
fn small_cnn_rows_add_up_and_frozen_blocks_are_counted_apart() {
    let s = ModelSummary::of(
        Arch::SmallCnn,
        Chw::new(3, 28, 28),
        5,
        &Freeze::Until("bn2".into()),
    )
    .unwrap();
    assert_eq!(s.total_params(), s.model_params);
    assert_eq!(s.total_params(), 864 + 18432 + 73728 + 2 * 224 + 645);
    // conv1, bn1, conv2, bn2 frozen
    assert_eq!(s.frozen_params(), 864 + 64 + 18432 + 128);
    assert_eq!(s.trainable_params(), s.total_params() - s.frozen_params());
    let all = ModelSummary::of(Arch::SmallCnn, Chw::new(3, 28, 28), 5, &Freeze::All).unwrap();
    assert_eq!(all.trainable_params(), 645);
    let err = ModelSummary::of(
        Arch::SmallCnn,
        Chw::new(3, 28, 28),
        5,
        &Freeze::Until("layer3".into()),
    )
    .unwrap_err();
    assert!(err.contains("unknown block `layer3` for small_cnn (expected one of conv1, bn1, conv2, bn2, conv3, bn3)"), "{err}");
}

#[test]
fn every_backbone_describes_non_square_odd_inputs() {
    for arch in Arch::ALL {
        let s = ModelSummary::of(arch, Chw::new(3, 37, 53), 3, &Freeze::No).unwrap();
        assert_eq!(s.total_params(), s.model_params, "{arch}");
        let pooled = &s.rows[s.rows.len() - 2];
        assert_eq!(pooled.output, vec![arch.features(), 1, 1], "{arch}");
    }
    assert!(
        ModelSummary::of(Arch::ResNet18, Chw::new(1, 32, 32), 3, &Freeze::No)
            .unwrap_err()
            .contains("3-channel")
    );
}

#[test]
fn resnet18_table() {
    insta::assert_snapshot!(imagenet(Arch::ResNet18).render());
}

#[test]
fn single_conv_layer_spelled_out() {
    let l = ConvLayer {
        input: Chw::new(10, 48, 64),
        out_channels: 20,
        kernel: 3,
        stride: 1,
        padding: Padding::Symmetric(0),
        groups: 1,
        bias: true,
    };
    let text = explain_conv(&l).unwrap();
    assert!(
        text.contains("20×46×62") && text.contains("= 1,820\n") && text.contains("= 5,133,600\n"),
        "{text}"
    );
    insta::assert_snapshot!("conv_10x48x64_k3", text);
    let same = ConvLayer {
        stride: 2,
        padding: Padding::Same,
        groups: 2,
        bias: false,
        ..l
    };
    insta::assert_snapshot!("conv_same_stride2_groups2", explain_conv(&same).unwrap());
}
