//! Results written in other tools' formats, for looking at them there.

pub(crate) mod mlflow;
pub(crate) mod onnx;
mod yaml;
