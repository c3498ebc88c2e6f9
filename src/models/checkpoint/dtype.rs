//! The element types of torch storages, and which of them a checkpoint's tensors may have.

/// A storage's element type, from its pickled class (`torch.FloatStorage`, …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TorchDtype {
    Float,
    Double,
    Half,
    BFloat16,
    Long,
    Int,
    Short,
    Char,
    Byte,
    Bool,
}

impl TorchDtype {
    pub(crate) fn of_storage(class: &str) -> Option<TorchDtype> {
        Some(match class {
            "FloatStorage" => TorchDtype::Float,
            "DoubleStorage" => TorchDtype::Double,
            "HalfStorage" => TorchDtype::Half,
            "BFloat16Storage" => TorchDtype::BFloat16,
            "LongStorage" => TorchDtype::Long,
            "IntStorage" => TorchDtype::Int,
            "ShortStorage" => TorchDtype::Short,
            "CharStorage" => TorchDtype::Char,
            "ByteStorage" => TorchDtype::Byte,
            "BoolStorage" => TorchDtype::Bool,
            _ => return None,
        })
    }

    /// Bytes per element.
    pub(crate) fn size(self) -> usize {
        match self {
            TorchDtype::Double | TorchDtype::Long => 8,
            TorchDtype::Float | TorchDtype::Int => 4,
            TorchDtype::Half | TorchDtype::BFloat16 | TorchDtype::Short => 2,
            TorchDtype::Char | TorchDtype::Byte | TorchDtype::Bool => 1,
        }
    }

    /// torch's name (`torch.float32`, …).
    pub(crate) fn torch_name(self) -> &'static str {
        match self {
            TorchDtype::Float => "float32",
            TorchDtype::Double => "float64",
            TorchDtype::Half => "float16",
            TorchDtype::BFloat16 => "bfloat16",
            TorchDtype::Long => "int64",
            TorchDtype::Int => "int32",
            TorchDtype::Short => "int16",
            TorchDtype::Char => "int8",
            TorchDtype::Byte => "uint8",
            TorchDtype::Bool => "bool",
        }
    }
}

/// Values of a tensor as the training path takes them: f32 (f16 and bf16 widened exactly) and
/// i64 (the BatchNorm counters).
#[derive(Debug, Clone, PartialEq)]
pub enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl Values {
    /// Decodes little-endian `elements` of `dtype`; `None` for a type the training path does not
    /// take (f64 would lose precision silently; the integer and bool types hold no weights).
    pub(crate) fn decode<'a>(
        dtype: TorchDtype,
        elements: impl Iterator<Item = &'a [u8]>,
    ) -> Option<Values> {
        let word = |e: &[u8]| -> [u8; 8] {
            let mut b = [0; 8];
            b[..e.len()].copy_from_slice(e);
            b
        };
        Some(match dtype {
            TorchDtype::Float => Values::F32(
                elements
                    .map(|e| f32::from_le_bytes([e[0], e[1], e[2], e[3]]))
                    .collect(),
            ),
            TorchDtype::Half => Values::F32(elements.map(|e| f16_to_f32([e[0], e[1]])).collect()),
            TorchDtype::BFloat16 => Values::F32(
                elements
                    .map(|e| f32::from_bits(u32::from(u16::from_le_bytes([e[0], e[1]])) << 16))
                    .collect(),
            ),
            TorchDtype::Long => {
                Values::I64(elements.map(|e| i64::from_le_bytes(word(e))).collect())
            }
            _ => return None,
        })
    }

    pub fn len(&self) -> usize {
        match self {
            Values::F32(v) => v.len(),
            Values::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// IEEE half to single precision, exactly (every half is a single).
fn f16_to_f32(b: [u8; 2]) -> f32 {
    let h = u16::from_le_bytes([b[0], b[1]]);
    let sign = u32::from(h >> 15) << 31;
    let exp = (h >> 10) & 0x1f;
    let mant = u32::from(h & 0x3ff);
    let bits = match exp {
        0 if mant == 0 => sign,
        0 => {
            // subnormal: normalise the mantissa
            let shift = mant.leading_zeros() - 21;
            let mant = (mant << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (mant << 13)
        }
        0x1f => sign | 0x7f80_0000 | (mant << 13),
        e => sign | ((u32::from(e) + 127 - 15) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn halves_widen_exactly() {
        let half = |h: u16| f16_to_f32(h.to_le_bytes());
        assert_eq!(half(0x3c00), 1.0);
        assert_eq!(half(0xc000), -2.0);
        assert_eq!(half(0x7bff), 65504.0);
        assert_eq!(half(0x0001), 2f32.powi(-24)); // the smallest subnormal
        assert_eq!(half(0x0200), 2f32.powi(-15));
        assert!(half(0x7c00).is_infinite());
        assert!(half(0x7e00).is_nan());
    }
}
