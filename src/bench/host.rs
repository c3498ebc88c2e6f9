//! The machine a bench table was measured on, printed above it: CPU model, the ISA extensions
//! the kernels dispatch on, and the core count. Tables from different days come from different
//! machines (AVX-512 + AMX one day, AVX2-only the next), so a ratio means nothing without this.

use serde_json::Value;

/// Extensions that change which kernels oneDNN, gemm and runner's own code pick.
const FLAGS_OF_INTEREST: &[&str] = &[
    "avx2",
    "fma",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_bf16",
];

pub(super) struct Host {
    pub cpu: String,
    pub flags: Vec<&'static str>,
    pub cpus: usize,
}

impl Host {
    /// Read from /proc/cpuinfo (Linux); "unknown" and no flags elsewhere.
    pub(super) fn read() -> Host {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Host::parse(&info)
    }

    fn parse(cpuinfo: &str) -> Host {
        let field = |name: &str| {
            cpuinfo
                .lines()
                .find(|l| l.split(':').next().is_some_and(|k| k.trim() == name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let present: Vec<String> = field("flags")
            .unwrap_or_default()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let flags = FLAGS_OF_INTEREST
            .iter()
            .copied()
            .filter(|f| present.iter().any(|p| p == f))
            .collect();
        Host {
            cpu: field("model name").unwrap_or_else(|| "unknown".into()),
            flags,
            cpus: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }

    pub(super) fn describe(&self) -> String {
        let flags = if self.flags.is_empty() {
            "none of avx2/avx512/amx".to_string()
        } else {
            self.flags.join(" ")
        };
        format!("{}, {} CPUs; {flags}", self.cpu, self.cpus)
    }
}

/// The PyTorch side's build and thread pools, from the script's JSON: oneDNN version, then
/// `torch.__config__.parallel_info()` indented under it.
pub(super) fn describe_torch(torch: &Value) -> String {
    let mut out = String::new();
    if let Some(v) = torch.get("mkldnn_version").and_then(Value::as_str) {
        out.push_str(&format!("PyTorch oneDNN: {v}\n"));
    }
    if let Some(info) = torch.get("parallel_info").and_then(Value::as_str) {
        out.push_str("PyTorch parallel_info:\n");
        for line in info.lines().filter(|l| !l.trim().is_empty()) {
            out.push_str("  ");
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_model_and_the_flags_that_matter() {
        let info = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\n\
                    flags\t\t: fpu sse2 avx2 fma avx512f amx_tile\n";
        let h = Host::parse(info);
        assert_eq!(h.cpu, "Intel(R) Xeon(R) Processor");
        assert_eq!(h.flags, vec!["avx2", "fma", "avx512f", "amx_tile"]);
        assert!(h.describe().contains("avx512f amx_tile"));
    }

    #[test]
    fn no_cpuinfo_says_unknown() {
        let h = Host::parse("");
        assert_eq!(h.cpu, "unknown");
        assert!(h.describe().contains("none of"));
    }

    #[test]
    fn torch_side_lists_onednn_and_parallel_info() {
        let v = serde_json::json!({
            "mkldnn_version": "MKL-DNN v3.13.3",
            "parallel_info": "ATen/Parallel:\n\tat::get_num_threads() : 2\n",
        });
        let s = describe_torch(&v);
        assert!(s.starts_with("PyTorch oneDNN: MKL-DNN v3.13.3\n"));
        assert!(s.contains("  \tat::get_num_threads() : 2"));
    }
}
