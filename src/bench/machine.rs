//! The machine a benchmark ran on, and an estimate of its CPU's peak f32
//! throughput to read measured rates against.
//!
//! peak = cores × clock × f32 FLOP per cycle per core, where a core's
//! FLOP per cycle is 2 (a fused multiply-add) × the f32 lanes of one FMA
//! pipe × 2 pipes (every x86 core of the last decade has two FMA pipes).
//! The lanes come from `/proc/cpuinfo`'s flags: 16 with AVX-512 (but 8 on
//! AMD Zen 4, family 25, which runs 512-bit instructions as two 256-bit
//! halves), 8 with AVX2 and FMA, 4 otherwise. The clock is the maximum
//! frequency cpufreq reports, else `cpu MHz` (the nominal clock on virtual
//! machines, where turbo is invisible). It is an estimate: `--peak-gflops`
//! overrides it.

use serde::Serialize;

#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub cpu: String,
    pub vendor: String,
    pub family: Option<u32>,
    /// Physical cores (distinct core ids), and logical CPUs.
    pub cores: usize,
    pub logical_cpus: usize,
    pub ghz: f64,
    /// The widest vector extension found (`avx512`, `avx2`, `sse`, `unknown`).
    pub simd: String,
    pub flop_per_cycle: f64,
    /// f32 GFLOP/s of all cores together.
    pub peak_gflops: f64,
    /// How the peak was obtained, in words.
    pub peak_method: String,
    pub os: String,
    /// Load average at the start (1, 5 and 15 minutes).
    pub load_average: Option<[f64; 3]>,
    /// The timed work ran on a GPU, where the CPU's peak says nothing:
    /// fractions of it are left out (NaN, printed as "-").
    pub on_gpu: bool,
}

impl Machine {
    pub fn detect(peak_override: Option<f64>) -> Machine {
        let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        Self::from_cpuinfo(&info, max_frequency_ghz(), peak_override)
    }

    /// The machine described by a `/proc/cpuinfo` text; `max_ghz` is
    /// cpufreq's maximum when there is one.
    pub fn from_cpuinfo(info: &str, max_ghz: Option<f64>, peak_override: Option<f64>) -> Machine {
        let field = |name: &str| {
            info.lines()
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.trim() == name)
                .map(|(_, v)| v.trim().to_string())
        };
        let logical = info.lines().filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor")).count();
        let logical = if logical > 0 { logical } else { std::thread::available_parallelism().map_or(1, |n| n.get()) };
        let mut core_ids: Vec<(String, String)> = Vec::new();
        let mut physical = String::new();
        for line in info.lines() {
            if let Some((k, v)) = line.split_once(':') {
                match k.trim() {
                    "physical id" => physical = v.trim().to_string(),
                    "core id" => core_ids.push((physical.clone(), v.trim().to_string())),
                    _ => {}
                }
            }
        }
        core_ids.sort();
        core_ids.dedup();
        let cores = if core_ids.is_empty() { logical } else { core_ids.len() };
        let vendor = field("vendor_id").unwrap_or_default();
        let family = field("cpu family").and_then(|f| f.parse().ok());
        let flags: Vec<String> = field("flags").unwrap_or_default().split_whitespace().map(String::from).collect();
        let has = |f: &str| flags.iter().any(|x| x == f);
        let nominal = field("cpu MHz").and_then(|m| m.parse::<f64>().ok()).map(|m| m / 1000.0);
        let ghz = max_ghz.or(nominal).unwrap_or(f64::NAN);
        let (simd, lanes, note) = if has("avx512f") {
            if vendor == "AuthenticAMD" && family.is_some_and(|f| f < 26) {
                ("avx512", 8.0, "AVX-512 executed as two 256-bit halves on Zen 4")
            } else {
                ("avx512", 16.0, "AVX-512")
            }
        } else if has("avx2") && has("fma") {
            ("avx2", 8.0, "AVX2 + FMA")
        } else if flags.is_empty() {
            ("unknown", 4.0, "no CPU flags: assuming 128-bit vectors")
        } else {
            ("sse", 4.0, "128-bit vectors")
        };
        let flop_per_cycle = 2.0 * 2.0 * lanes;
        let estimate = cores as f64 * ghz * flop_per_cycle;
        let (peak_gflops, peak_method) = match peak_override {
            Some(p) => (p, format!("given with --peak-gflops (the estimate was {estimate:.0})")),
            None => (
                estimate,
                format!(
                    "{cores} cores × {ghz:.2} GHz × {flop_per_cycle:.0} f32 FLOP/cycle \
                     (2 FMA pipes × {lanes:.0} lanes × 2; {note})"
                ),
            ),
        };
        Machine {
            cpu: field("model name").unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            vendor,
            family,
            cores,
            logical_cpus: logical,
            ghz,
            simd: simd.to_string(),
            flop_per_cycle,
            peak_gflops,
            peak_method,
            os: std::env::consts::OS.to_string(),
            load_average: load_average(),
            on_gpu: false,
        }
    }

    /// A rate in GFLOP/s as a fraction of the peak.
    pub fn fraction(&self, gflops: f64) -> f64 {
        if self.on_gpu { f64::NAN } else { gflops / self.peak_gflops }
    }
}

fn max_frequency_ghz() -> Option<f64> {
    let khz = std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq").ok()?;
    khz.trim().parse::<f64>().ok().map(|k| k / 1e6)
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let v: Vec<f64> = text.split_whitespace().take(3).filter_map(|s| s.parse().ok()).collect();
    (v.len() == 3).then(|| [v[0], v[1], v[2]])
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZEN4: &str = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel name\t: AMD EPYC\n\
        cpu MHz\t\t: 2595.124\nphysical id\t: 0\ncore id\t\t: 0\nflags\t\t: fpu sse avx2 fma avx512f\n\n\
        processor\t: 1\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel name\t: AMD EPYC\n\
        cpu MHz\t\t: 2595.124\nphysical id\t: 0\ncore id\t\t: 1\nflags\t\t: fpu sse avx2 fma avx512f\n";

    #[test]
    fn zen4_counts_avx512_as_two_256_bit_halves() {
        let m = Machine::from_cpuinfo(ZEN4, None, None);
        assert_eq!((m.cores, m.logical_cpus), (2, 2));
        assert_eq!(m.cpu, "AMD EPYC");
        assert_eq!(m.flop_per_cycle, 32.0);
        assert!((m.peak_gflops - 2.0 * 2.595124 * 32.0).abs() < 1e-6, "{}", m.peak_gflops);
        assert!(m.peak_method.contains("Zen 4"), "{}", m.peak_method);
    }

    #[test]
    fn intel_avx512_has_sixteen_lanes_and_the_override_wins() {
        let intel = ZEN4.replace("AuthenticAMD", "GenuineIntel").replace("cpu family\t: 25", "cpu family\t: 6");
        let m = Machine::from_cpuinfo(&intel, Some(3.0), None);
        assert_eq!(m.flop_per_cycle, 64.0);
        assert!((m.peak_gflops - 2.0 * 3.0 * 64.0).abs() < 1e-9);
        let given = Machine::from_cpuinfo(&intel, Some(3.0), Some(100.0));
        assert_eq!(given.peak_gflops, 100.0);
        assert!((given.fraction(25.0) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn avx2_without_avx512() {
        let m = Machine::from_cpuinfo(&ZEN4.replace(" avx512f", ""), None, None);
        assert_eq!((m.simd.as_str(), m.flop_per_cycle), ("avx2", 32.0));
        let sse = Machine::from_cpuinfo(&ZEN4.replace(" avx2 fma avx512f", ""), None, None);
        assert_eq!(sse.flop_per_cycle, 16.0);
    }
}
