//! Results written in other tools' formats, for looking at them there.

pub mod mlflow;
pub mod onnx;
mod yaml;
