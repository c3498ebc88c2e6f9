use super::*;

use std::path::Path;

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pytorch")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The tiny state dict's tensors as PyTorch printed them (tiny_expected.json).
fn expected() -> Vec<(String, String, Vec<usize>, Vec<f64>)> {
    let text = String::from_utf8(fixture("tiny_expected.json")).unwrap();
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text).unwrap();
    json.into_iter()
        .map(|(name, t)| {
            let dims = t["shape"].as_array().unwrap();
            let values = t["values"].as_array().unwrap();
            (
                name,
                t["dtype"].as_str().unwrap().to_string(),
                dims.iter().map(|d| d.as_u64().unwrap() as usize).collect(),
                values.iter().map(|v| v.as_f64().unwrap()).collect(),
            )
        })
        .collect()
}

fn assert_tiny(c: &Checkpoint) {
    let want = expected();
    assert_eq!(c.tensors.len(), want.len());
    for (t, (name, dtype, shape, values)) in c.tensors.iter().zip(want) {
        assert_eq!(t.name, name);
        assert_eq!(t.dtype.torch_name(), dtype, "{name}");
        assert_eq!(t.shape, shape, "{name}");
        // compared as f32: serde_json's parse of the printed f64 may be one f64 ulp off
        let got: Vec<f32> = match &t.values {
            Values::F32(v) => v.clone(),
            Values::I64(v) => v.iter().map(|x| *x as f32).collect(),
        };
        let want: Vec<f32> = values.iter().map(|v| *v as f32).collect();
        assert_eq!(got, want, "{name}");
    }
}

#[test]
fn zip_and_legacy_files_give_the_same_state_dict() {
    let zip = read_checkpoint(&fixture("tiny_zip.pth")).unwrap();
    assert_eq!(zip.format, Format::Zip);
    assert_eq!(zip.nested_under, None);
    assert_tiny(&zip);
    let legacy = read_checkpoint(&fixture("tiny_legacy.pth")).unwrap();
    assert_eq!(legacy.format, Format::Legacy);
    assert_tiny(&legacy);
    assert_eq!(zip.tensors, legacy.tensors);
}

#[test]
fn a_state_dict_under_state_dict_is_taken_and_said() {
    let c = read_checkpoint(&fixture("tiny_nested.pth")).unwrap();
    assert_eq!(c.nested_under.as_deref(), Some("state_dict"));
    assert_tiny(&c);
}

#[test]
fn a_float64_tensor_is_refused_by_name() {
    let err = read_checkpoint(&fixture("tiny_float64.pth")).unwrap_err();
    assert_eq!(
        err.to_string(),
        "tensor `w`: its dtype float64 is not read (weights are float32, float16 or bfloat16, counters int64)"
    );
}

#[test]
fn a_pickle_that_would_run_a_command_is_refused() {
    // the file the pickle's command would write (when torch.load-ed with weights_only=False)
    let marker = Path::new("/tmp/runner-pickle-was-run");
    let before = marker.exists();
    let err = read_checkpoint(&fixture("os_system.pth")).unwrap_err();
    assert!(err.to_string().contains("`posix.system`"), "{err}");
    assert!(before || !marker.exists(), "the pickle's command ran");
}

#[test]
fn a_whole_pickled_model_is_refused_with_what_to_save_instead() {
    let err = read_checkpoint(&fixture("whole_model.pth")).unwrap_err();
    let err = err.to_string();
    assert!(err.contains("`torch.nn.modules.linear.Linear`"), "{err}");
    assert!(err.contains("save model.state_dict() instead"), "{err}");
}

#[test]
fn a_truncated_zip_is_named_as_such() {
    let bytes = fixture("tiny_zip.pth");
    for cut in [bytes.len() - 10, bytes.len() / 2, 100] {
        let err = read_checkpoint(&bytes[..cut]).unwrap_err();
        assert!(err.to_string().contains("truncated"), "cut at {cut}: {err}");
    }
}

#[test]
fn a_compressed_zip_entry_is_named_as_such() {
    // every entry marked deflated (method 8) in its local and central headers
    let mut bytes = fixture("tiny_zip.pth");
    for (signature, at) in [(b"PK\x03\x04", 8), (b"PK\x01\x02", 10)] {
        let starts: Vec<usize> = bytes
            .windows(4)
            .enumerate()
            .filter(|(_, w)| w == signature)
            .map(|(i, _)| i)
            .collect();
        for i in starts {
            bytes[i + at] = 8;
        }
    }
    let err = read_checkpoint(&bytes).unwrap_err().to_string();
    assert!(err.contains("re-zipped with compression"), "{err}");
}

#[test]
fn a_truncated_legacy_file_is_named_as_such() {
    let bytes = fixture("tiny_legacy.pth");
    let err = read_checkpoint(&bytes[..bytes.len() - 3]).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}

#[test]
fn a_view_past_its_storage_is_refused_with_its_geometry() {
    let t = TensorRef {
        storage: pickle::StorageRef {
            dtype: TorchDtype::Float,
            key: "0".into(),
            numel: 4,
            view: None,
        },
        offset: 1,
        shape: vec![2, 2],
        stride: vec![2, 1],
    };
    let err = strided(&t, &[0u8; 16], 0).unwrap_err();
    assert_eq!(
        err,
        "its view (offset 1, shape [2, 2], stride [2, 1]) reaches past the end of its storage of 4 float32 elements"
    );
    let ok = TensorRef {
        offset: 0,
        ..t.clone()
    };
    assert!(strided(&ok, &[0u8; 16], 0).is_ok());
    // a zero stride repeats elements, but not into a huge allocation
    let broadcast = TensorRef {
        offset: 0,
        shape: vec![1 << 30, 1 << 30],
        stride: vec![0, 0],
        ..t
    };
    let err = strided(&broadcast, &[0u8; 16], 0).unwrap_err();
    assert!(
        err.contains("more elements than its storage of 4 holds"),
        "{err}"
    );
}

#[test]
fn neither_format_is_said() {
    let err = read_checkpoint(b"hello").unwrap_err();
    assert!(err.to_string().contains("neither"), "{err}");
}
