//! An ONNX graph built node by node from a run's weights, encoded with the ONNX protobuf types
//! of the `onnx-protobuf` crate (generated from onnx.proto by rust-protobuf).

use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::tensor_proto::DataType;
use onnx_protobuf::tensor_shape_proto::Dimension;
use onnx_protobuf::{
    type_proto, AttributeProto, GraphProto, ModelProto, NodeProto, OperatorSetIdProto,
    StringStringEntryProto, TensorProto, TensorShapeProto, TypeProto, ValueInfoProto,
};

use crate::durable::tensor_file::TensorFile;

/// The opset the graphs are written for (every operator used exists unchanged since).
pub(super) const OPSET: i64 = 17;
/// ONNX IR version 8 goes with opset 17 (onnx's VERSIONS_TABLE, release 1.12).
const IR_VERSION: i64 = 8;

/// A graph under construction: nodes in order, their weights as initializers.
pub(super) struct Graph<'w> {
    weights: &'w TensorFile,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
    next: usize,
}

/// A node attribute.
pub(super) enum Attr {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
}

impl<'w> Graph<'w> {
    pub(super) fn new(weights: &'w TensorFile) -> Self {
        Self {
            weights,
            nodes: Vec::new(),
            initializers: Vec::new(),
            next: 0,
        }
    }

    /// A weight of the run's file, by its state-dict name, as an initializer of that name.
    pub(super) fn weight(&mut self, name: &str) -> Result<String, String> {
        if !self.initializers.iter().any(|t| t.name == name) {
            let (dims, values) = self.weights.f32(name)?;
            self.constant(name, &dims, values);
        }
        Ok(name.to_string())
    }

    /// Whether an initializer of this name was added.
    pub(super) fn has_initializer(&self, name: &str) -> bool {
        self.initializers.iter().any(|t| t.name == name)
    }

    /// Whether the file has a tensor of this name.
    pub(super) fn has(&self, name: &str) -> bool {
        self.weights.f32(name).is_ok()
    }

    /// An f32 initializer.
    pub(super) fn constant(&mut self, name: &str, dims: &[usize], values: Vec<f32>) -> String {
        let mut t = TensorProto::new();
        t.name = name.to_string();
        t.dims = dims.iter().map(|&d| d as i64).collect();
        t.data_type = DataType::FLOAT as i32;
        t.float_data = values;
        self.initializers.push(t);
        name.to_string()
    }

    /// Appends a node; returns the name of its (first) output.
    pub(super) fn node(&mut self, op: &str, inputs: &[&str], attrs: Vec<(&str, Attr)>) -> String {
        self.next += 1;
        let out = format!("{}_{}", op.to_lowercase(), self.next);
        let mut n = NodeProto::new();
        n.op_type = op.to_string();
        n.name = out.clone();
        n.input = inputs.iter().map(|s| s.to_string()).collect();
        n.output = vec![out.clone()];
        for (name, value) in attrs {
            let mut a = AttributeProto::new();
            a.name = name.to_string();
            match value {
                Attr::Int(i) => {
                    a.type_ = AttributeType::INT.into();
                    a.i = i;
                }
                Attr::Ints(v) => {
                    a.type_ = AttributeType::INTS.into();
                    a.ints = v;
                }
                Attr::Float(f) => {
                    a.type_ = AttributeType::FLOAT.into();
                    a.f = f;
                }
            }
            n.attribute.push(a);
        }
        self.nodes.push(n);
        out
    }

    /// The model: input `input` of shape (batch, 3, h, w), output `logits` (batch, classes),
    /// the batch a named dynamic dimension; `metadata` as the model's metadata_props.
    pub(super) fn finish(
        mut self,
        last: &str,
        input: (usize, usize),
        classes: usize,
        metadata: Vec<(String, String)>,
    ) -> ModelProto {
        // the last node's output is renamed to `logits`
        if let Some(n) = self.nodes.iter_mut().rev().find(|n| n.output[0] == last) {
            n.output[0] = "logits".into();
        }
        let mut g = GraphProto::new();
        g.name = "runner".into();
        g.node = self.nodes;
        g.initializer = self.initializers;
        g.input = vec![value_info(
            "input",
            &[None, Some(3), Some(input.0), Some(input.1)],
        )];
        g.output = vec![value_info("logits", &[None, Some(classes)])];
        let mut m = ModelProto::new();
        m.ir_version = IR_VERSION;
        m.producer_name = "runner".into();
        m.producer_version = env!("CARGO_PKG_VERSION").into();
        let mut opset = OperatorSetIdProto::new();
        opset.version = OPSET;
        m.opset_import = vec![opset];
        m.graph = Some(g).into();
        m.metadata_props = metadata
            .into_iter()
            .map(|(k, v)| {
                let mut e = StringStringEntryProto::new();
                e.key = k;
                e.value = v;
                e
            })
            .collect();
        m
    }
}

/// A float tensor's name and shape; `None` is the dynamic batch dimension.
fn value_info(name: &str, dims: &[Option<usize>]) -> ValueInfoProto {
    let mut shape = TensorShapeProto::new();
    for d in dims {
        let mut dim = Dimension::new();
        match d {
            Some(n) => dim.set_dim_value(*n as i64),
            None => dim.set_dim_param("batch".into()),
        }
        shape.dim.push(dim);
    }
    let mut tensor = type_proto::Tensor::new();
    tensor.elem_type = DataType::FLOAT as i32;
    tensor.shape = Some(shape).into();
    let mut t = TypeProto::new();
    t.set_tensor_type(tensor);
    let mut v = ValueInfoProto::new();
    v.name = name.to_string();
    v.type_ = Some(t).into();
    v
}
