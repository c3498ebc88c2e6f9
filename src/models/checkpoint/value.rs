//! The values the pickle reader builds, the globals it accepts by name, and the arena its dicts
//! and lists live in (values refer to them by index, so a memoised container that is filled
//! after it was memoised, `EMPTY_DICT BINPUT … SETITEMS`, is the same container wherever the
//! pickle fetches it again, as in Python).

use std::rc::Rc;

use super::dtype::TorchDtype;

/// A pickled value. Strings, byte strings, tuples and tensors are shared (`Rc`), so that DUP
/// and memo fetches cost the same whatever they copy: a small file cannot make the reader copy
/// a large value many times over.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    None,
    Bool(bool),
    Int(i64),
    /// An integer wider than 64 bits, as pickle's little-endian two's complement bytes.
    BigInt(Rc<[u8]>),
    Float(f64),
    Str(Rc<str>),
    Bytes(Rc<[u8]>),
    Tuple(Rc<[Value]>),
    /// A list in the arena.
    List(usize),
    /// A dict (or OrderedDict) in the arena.
    Dict(usize),
    Global(Global),
    /// A storage a tensor views, named by the persistent id the file gives it.
    Storage(Rc<StorageRef>),
    Tensor(Rc<TensorRef>),
}

impl Value {
    /// What the value is, for messages.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Value::None => "None",
            Value::Bool(_) => "bool",
            Value::Int(_) | Value::BigInt(_) => "int",
            Value::Float(_) => "float",
            Value::Str(_) => "str",
            Value::Bytes(_) => "bytes",
            Value::Tuple(_) => "tuple",
            Value::List(_) => "list",
            Value::Dict(_) => "dict",
            Value::Global(_) => "class or function",
            Value::Storage(_) => "storage",
            Value::Tensor(_) => "tensor",
        }
    }
}

/// The globals a state dict's pickle may name.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Global {
    OrderedDict,
    RebuildTensorV2,
    /// `torch._utils._rebuild_tensor`, the pre-1.0 form without `requires_grad`.
    RebuildTensor,
    /// `torch._utils._rebuild_parameter` and `_rebuild_parameter_with_state`: a Parameter is its
    /// data.
    RebuildParameter,
    Storage(TorchDtype),
}

/// The globals [`Global`] accepts, as the refusal message lists them.
pub(crate) const ALLOWED: &str = "collections.OrderedDict, torch._utils._rebuild_tensor_v2, \
     torch._utils._rebuild_parameter and the torch.*Storage types";

pub(super) fn global(module: &str, name: &str) -> Option<Global> {
    Some(match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            Global::RebuildParameter
        }
        ("torch", storage) => Global::Storage(TorchDtype::of_storage(storage)?),
        _ => return None,
    })
}

/// A storage's persistent id: `('storage', type, key, location, numel[, view])`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StorageRef {
    pub dtype: TorchDtype,
    pub key: String,
    /// Elements of the storage (of the view, for a legacy view storage).
    pub numel: usize,
    /// A legacy view storage: (root key, element offset into it, its own size).
    pub view: Option<(String, usize, usize)>,
}

/// A tensor: a strided view of a storage.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TensorRef {
    pub storage: StorageRef,
    pub offset: usize,
    pub shape: Vec<usize>,
    pub stride: Vec<usize>,
}

/// Dicts (key–value pairs in insertion order) and lists.
#[derive(Default)]
pub(crate) struct Arena {
    pub(super) containers: Vec<Container>,
}

pub(super) enum Container {
    Dict(Vec<(Value, Value)>),
    List(Vec<Value>),
}

impl Arena {
    pub(crate) fn dict(&self, id: usize) -> &[(Value, Value)] {
        match &self.containers[id] {
            Container::Dict(items) => items,
            Container::List(_) => &[],
        }
    }

    pub(crate) fn list(&self, id: usize) -> &[Value] {
        match &self.containers[id] {
            Container::List(items) => items,
            Container::Dict(_) => &[],
        }
    }

    /// Calls `f` on every value in every container, and on the values inside their tuples.
    pub(crate) fn each_value(&self, f: &mut impl FnMut(&Value)) {
        fn walk(v: &Value, f: &mut impl FnMut(&Value)) {
            f(v);
            if let Value::Tuple(items) = v {
                items.iter().for_each(|i| walk(i, f));
            }
        }
        for c in &self.containers {
            match c {
                Container::Dict(items) => items.iter().for_each(|(k, v)| {
                    walk(k, f);
                    walk(v, f);
                }),
                Container::List(items) => items.iter().for_each(|v| walk(v, f)),
            }
        }
    }

    pub(super) fn new_dict(&mut self) -> Value {
        self.containers.push(Container::Dict(Vec::new()));
        Value::Dict(self.containers.len() - 1)
    }

    pub(super) fn new_list(&mut self, items: Vec<Value>) -> Value {
        self.containers.push(Container::List(items));
        Value::List(self.containers.len() - 1)
    }
}
