//! An allow-list reader of the pickles `torch.save` writes for a state dict. It interprets the
//! opcodes into plain values ([`super::value`]) and never imports or calls anything: the few
//! globals a state dict uses (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`,
//! `_rebuild_parameter`, the storage types) are recognised by name and rebuilt here; any other
//! global is refused, by its name, before anything after it is read.

use std::collections::HashMap;
use std::rc::Rc;

use super::value::{global, Container, Global, ALLOWED};
pub(crate) use super::value::{Arena, StorageRef, TensorRef, Value};

/// Why a pickle cannot be read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub(crate) enum PickleError {
    #[error(
        "its pickle refers to `{module}.{name}`, which a state dict does not use; only \
         {ALLOWED} are read (nothing in the file was run){}",
        whole_model_hint(module)
    )]
    Refused { module: String, name: String },
    #[error("its pickle is damaged at byte {at}: {why}")]
    Damaged { at: usize, why: String },
}

/// What to do instead, when the refused global says what the file is: a TorchScript archive, or
/// a whole model pickled by `torch.save(model)`.
fn whole_model_hint(module: &str) -> &'static str {
    let under = |root: &str| module == root || module.starts_with(&format!("{root}."));
    if under("__torch__") {
        "; it is a TorchScript archive (torch.jit.save): save the model's state_dict() with \
         torch.save instead"
    } else if [
        "torch.nn",
        "torchvision",
        "timm",
        "efficientnet_pytorch",
        "__main__",
    ]
    .iter()
    .any(|r| under(r))
    {
        "; it pickles a whole model object (torch.save(model)): save model.state_dict() instead"
    } else {
        ""
    }
}

/// The pickle's value and the arena its containers live in.
pub(crate) struct Unpickled {
    pub root: Value,
    pub arena: Arena,
}

/// Reads one pickle from the start of `bytes`; returns it and the length it took (up to and
/// including STOP), for the legacy format's consecutive pickles.
pub(crate) fn unpickle(bytes: &[u8]) -> Result<(Unpickled, usize), PickleError> {
    let mut m = Machine {
        input: bytes,
        pos: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        arena: Arena::default(),
    };
    let root = m.run()?;
    Ok((
        Unpickled {
            root,
            arena: m.arena,
        },
        m.pos,
    ))
}

struct Machine<'a> {
    input: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    /// Stack lengths at each MARK.
    marks: Vec<usize>,
    memo: HashMap<u64, Value>,
    arena: Arena,
}

impl Machine<'_> {
    fn damaged(&self, why: impl Into<String>) -> PickleError {
        PickleError::Damaged {
            at: self.pos,
            why: why.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&[u8], PickleError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.input.len())
            .ok_or_else(|| self.damaged(format!("it ends inside a {n}-byte field")))?;
        let out = &self.input[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, PickleError> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> Result<[u8; N], PickleError> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }

    fn len_u32(&mut self) -> Result<usize, PickleError> {
        Ok(u32::from_le_bytes(self.le()?) as usize)
    }

    fn len_u64(&mut self) -> Result<usize, PickleError> {
        usize::try_from(u64::from_le_bytes(self.le()?)).map_err(|_| self.damaged("a huge length"))
    }

    /// A text line (protocol 0's arguments), without its newline.
    fn line(&mut self) -> Result<String, PickleError> {
        let rest = &self.input[self.pos..];
        let n = rest
            .iter()
            .position(|&b| b == b'\n')
            .ok_or_else(|| self.damaged("a text argument without its newline"))?;
        let text = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(text)
    }

    fn utf8(&mut self, n: usize) -> Result<Value, PickleError> {
        let raw = self.take(n)?.to_vec();
        String::from_utf8(raw)
            .map(|s| Value::Str(s.into()))
            .map_err(|_| self.damaged("a string that is not UTF-8"))
    }

    fn pop(&mut self) -> Result<Value, PickleError> {
        self.stack
            .pop()
            .ok_or_else(|| self.damaged("an opcode found the stack empty"))
    }

    fn top(&mut self) -> Result<&mut Value, PickleError> {
        let at = self.pos;
        self.stack.last_mut().ok_or(PickleError::Damaged {
            at,
            why: "an opcode found the stack empty".into(),
        })
    }

    /// The values pushed since the last MARK, which is removed.
    fn pop_mark(&mut self) -> Result<Vec<Value>, PickleError> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| self.damaged("an opcode that needs a MARK found none"))?;
        if mark > self.stack.len() {
            return Err(self.damaged("a MARK above the stack"));
        }
        Ok(self.stack.split_off(mark))
    }

    fn memo_get(&self, key: u64) -> Result<Value, PickleError> {
        self.memo
            .get(&key)
            .cloned()
            .ok_or_else(|| self.damaged(format!("memo entry {key} was never stored")))
    }

    fn memo_put(&mut self, key: u64) -> Result<(), PickleError> {
        let v = self.top()?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn push_global(&mut self, module: &str, name: &str) -> Result<(), PickleError> {
        let g = global(module, name).ok_or_else(|| PickleError::Refused {
            module: module.to_string(),
            name: name.to_string(),
        })?;
        self.stack.push(Value::Global(g));
        Ok(())
    }

    /// Items into the dict or list under them on the stack.
    fn extend(&mut self, items: Vec<Value>, pairs: bool) -> Result<(), PickleError> {
        let target = self.top()?.clone();
        let container = match target {
            Value::Dict(id) | Value::List(id) => &mut self.arena.containers[id],
            other => {
                return Err(self.damaged(format!("items added to a {}", other.kind())));
            }
        };
        match (container, pairs) {
            (Container::Dict(d), true) => {
                if !items.len().is_multiple_of(2) {
                    return Err(self.damaged("a dict item without its value"));
                }
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    match d.iter_mut().find(|(key, _)| *key == k) {
                        Some(slot) => slot.1 = v,
                        None => d.push((k, v)),
                    }
                }
            }
            (Container::List(l), false) => l.extend(items),
            _ => return Err(self.damaged("dict items added to a list, or list items to a dict")),
        }
        Ok(())
    }

    // Long: one arm per opcode, each a few lines, as the pickle format lists them.
    fn run(&mut self) -> Result<Value, PickleError> {
        loop {
            let op = self.u8()?;
            match op {
                0x80 => {
                    self.u8()?; // PROTO n: every protocol's opcodes are read alike
                }
                0x95 => {
                    self.take(8)?; // FRAME: a length hint
                }
                b'.' => return self.pop(), // STOP
                b'(' => self.marks.push(self.stack.len()),
                b'0' => {
                    self.pop()?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let v = self.top()?.clone();
                    self.stack.push(v);
                }
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'J' => {
                    let v = i32::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v.into()));
                }
                b'K' => {
                    let v = self.u8()?;
                    self.stack.push(Value::Int(v.into()));
                }
                b'M' => {
                    let v = u16::from_le_bytes(self.le()?);
                    self.stack.push(Value::Int(v.into()));
                }
                0x8a | 0x8b => {
                    let n = if op == 0x8a {
                        self.u8()? as usize
                    } else {
                        self.len_u32()?
                    };
                    let raw = self.take(n)?.to_vec();
                    self.stack.push(long(raw));
                }
                b'I' | b'L' => {
                    let text = self.line()?;
                    let text = text.trim_end_matches('L');
                    let v = match text {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        t => Value::Int(t.parse().map_err(|_| self.damaged("a bad INT"))?),
                    };
                    self.stack.push(v);
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.le()?);
                    self.stack.push(Value::Float(v));
                }
                b'F' => {
                    let text = self.line()?;
                    let v = text.parse().map_err(|_| self.damaged("a bad FLOAT"))?;
                    self.stack.push(Value::Float(v));
                }
                b'X' => {
                    let n = self.len_u32()?;
                    let v = self.utf8(n)?;
                    self.stack.push(v);
                }
                0x8c => {
                    let n = self.u8()? as usize;
                    let v = self.utf8(n)?;
                    self.stack.push(v);
                }
                0x8d => {
                    let n = self.len_u64()?;
                    let v = self.utf8(n)?;
                    self.stack.push(v);
                }
                // BINSTRING, SHORT_BINSTRING (Python 2 str), BINBYTES, SHORT_BINBYTES, BINBYTES8
                b'T' | b'U' | b'B' | b'C' | 0x8e => {
                    let n = match op {
                        b'U' | b'C' => self.u8()? as usize,
                        0x8e => self.len_u64()?,
                        _ => self.len_u32()?,
                    };
                    let raw = self.take(n)?.to_vec();
                    let v = if matches!(op, b'T' | b'U') {
                        String::from_utf8(raw).map_or_else(
                            |e| Value::Bytes(e.into_bytes().into()),
                            |s| Value::Str(s.into()),
                        )
                    } else {
                        Value::Bytes(raw.into())
                    };
                    self.stack.push(v);
                }
                b')' => self.stack.push(Value::Tuple(Rc::from([]))),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items.into()));
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(self.damaged("a TUPLE opcode found too few values"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items.into()));
                }
                b']' => {
                    let v = self.arena.new_list(Vec::new());
                    self.stack.push(v);
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    let v = self.arena.new_list(items);
                    self.stack.push(v);
                }
                // EMPTY_SET: a set's items are read like a list's
                0x8f => {
                    let v = self.arena.new_list(Vec::new());
                    self.stack.push(v);
                }
                b'}' => {
                    let v = self.arena.new_dict();
                    self.stack.push(v);
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let v = self.arena.new_dict();
                    self.stack.push(v);
                    self.extend(items, true)?;
                }
                b'a' => {
                    let v = self.pop()?;
                    self.extend(vec![v], false)?;
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    self.extend(items, false)?;
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    self.extend(vec![k, v], true)?;
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.extend(items, true)?;
                }
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(k.into())?;
                }
                b'r' => {
                    let k = self.len_u32()?;
                    self.memo_put(k as u64)?;
                }
                0x94 => {
                    let k = self.memo.len() as u64;
                    self.memo_put(k)?;
                }
                b'p' => {
                    let k = self.line()?;
                    let k = k.parse().map_err(|_| self.damaged("a bad PUT"))?;
                    self.memo_put(k)?;
                }
                b'h' => {
                    let k = self.u8()?;
                    let v = self.memo_get(k.into())?;
                    self.stack.push(v);
                }
                b'j' => {
                    let k = self.len_u32()?;
                    let v = self.memo_get(k as u64)?;
                    self.stack.push(v);
                }
                b'g' => {
                    let k = self.line()?;
                    let k = k.parse().map_err(|_| self.damaged("a bad GET"))?;
                    let v = self.memo_get(k)?;
                    self.stack.push(v);
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.push_global(&module, &name)?;
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(module), Value::Str(name)) => {
                            self.push_global(&module, &name)?
                        }
                        _ => return Err(self.damaged("STACK_GLOBAL without two strings")),
                    }
                }
                b'Q' => {
                    let pid = self.pop()?;
                    let v = self.storage(pid)?;
                    self.stack.push(v);
                }
                b'R' => {
                    let args = self.pop()?;
                    let f = self.pop()?;
                    let v = self.call(f, args)?;
                    self.stack.push(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    let cls = self.pop()?;
                    let v = self.call(cls, args)?;
                    self.stack.push(v);
                }
                b'b' => {
                    // BUILD: an OrderedDict's `_metadata` attribute (the modules' versions) or a
                    // Parameter's state; neither changes a tensor's values
                    let _state = self.pop()?;
                    match self.top()? {
                        Value::Dict(_) | Value::Tensor(_) => {}
                        other => {
                            let kind = other.kind();
                            return Err(self.damaged(format!("BUILD on a {kind}")));
                        }
                    }
                }
                other => {
                    return Err(self.damaged(format!(
                        "opcode 0x{other:02x} is not one a state dict's pickle uses"
                    )))
                }
            }
        }
    }

    /// What a persistent id names: a storage, in both of torch's formats.
    fn storage(&self, pid: Value) -> Result<Value, PickleError> {
        let bad = || self.damaged("a persistent id that is not a torch storage");
        let Value::Tuple(parts) = pid else {
            return Err(bad());
        };
        match &parts[..] {
            [Value::Str(tag), Value::Global(Global::Storage(dtype)), Value::Str(key), _location, Value::Int(numel), rest @ ..]
                if &**tag == "storage" && rest.len() <= 1 =>
            {
                let numel = usize::try_from(*numel).map_err(|_| bad())?;
                let view = match rest.first() {
                    None | Some(Value::None) => None,
                    Some(Value::Tuple(v)) => match &v[..] {
                        [Value::Str(root), Value::Int(offset), Value::Int(size)] => Some((
                            root.to_string(),
                            usize::try_from(*offset).map_err(|_| bad())?,
                            usize::try_from(*size).map_err(|_| bad())?,
                        )),
                        _ => return Err(bad()),
                    },
                    Some(_) => return Err(bad()),
                };
                Ok(Value::Storage(Rc::new(StorageRef {
                    dtype: *dtype,
                    key: key.to_string(),
                    numel,
                    view,
                })))
            }
            _ => Err(bad()),
        }
    }

    /// REDUCE and NEWOBJ: only the allowed globals, rebuilt here.
    fn call(&mut self, f: Value, args: Value) -> Result<Value, PickleError> {
        let Value::Tuple(args) = args else {
            return Err(self.damaged("a call whose arguments are not a tuple"));
        };
        match f {
            // protocol 2 pickles an OrderedDict as OrderedDict() and then SETITEMS; taking no
            // other form keeps every call O(1)
            Value::Global(Global::OrderedDict) if args.is_empty() => Ok(self.arena.new_dict()),
            Value::Global(Global::RebuildTensorV2 | Global::RebuildTensor) => {
                let bad = |why: &str| self.damaged(format!("a tensor whose {why}"));
                let [Value::Storage(storage), Value::Int(offset), size, stride, ..] = &args[..]
                else {
                    return Err(bad("arguments are not (storage, offset, size, stride, …)"));
                };
                let dims = |v: &Value, what: &str| match v {
                    Value::Tuple(items) => items
                        .iter()
                        .map(|i| match i {
                            Value::Int(n) => usize::try_from(*n).ok(),
                            _ => None,
                        })
                        .collect::<Option<Vec<usize>>>()
                        .ok_or_else(|| bad(&format!("{what} is not a tuple of sizes"))),
                    _ => Err(bad(&format!("{what} is not a tuple"))),
                };
                Ok(Value::Tensor(Rc::new(TensorRef {
                    storage: (**storage).clone(),
                    offset: usize::try_from(*offset).map_err(|_| bad("offset is negative"))?,
                    shape: dims(size, "size")?,
                    stride: dims(stride, "stride")?,
                })))
            }
            Value::Global(Global::RebuildParameter) => match args.first().cloned() {
                Some(t @ Value::Tensor(_)) => Ok(t),
                _ => Err(self.damaged("a Parameter without its tensor")),
            },
            other => Err(self.damaged(format!("a call of a {}", other.kind()))),
        }
    }
}

/// LONG1/LONG4's little-endian two's complement, as an i64 when it fits.
fn long(raw: Vec<u8>) -> Value {
    if raw.len() > 8 {
        return Value::BigInt(raw.into());
    }
    let negative = raw.last().is_some_and(|b| b & 0x80 != 0);
    let mut bytes = [if negative { 0xff } else { 0 }; 8];
    bytes[..raw.len()].copy_from_slice(&raw);
    Value::Int(i64::from_le_bytes(bytes))
}

#[cfg(test)]
#[path = "pickle_tests.rs"]
mod tests;
