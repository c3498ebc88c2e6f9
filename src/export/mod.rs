//! Results written in other tools' formats, for looking at them there.

pub mod mlflow;
mod yaml;
