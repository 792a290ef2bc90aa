//! Kernel benchmarks: each GPU kernel at a realistic shape of the emoji presets, timed on the
//! current adapter (GPU timestamps where the adapter has them, else wall time to completion),
//! beside its plain-Rust CPU reference on one thread.
//!
//! `cargo run --release --bin bench -- [--filter TEXT] [--reps N] [--no-cpu] [--json PATH]`
//!
//! Prints a table and writes JSON (default `target/bench-kernels.json`).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use inrgan::backend::gpu::GpuBackend;
use inrgan::gpu::{GpuBuffer, GpuContext, GpuResult, Recorder};
use inrgan::rng::Rng;

mod cases;
mod cpu;
mod generator;
mod train;

/// Records one run of a case's GPU work.
pub type GpuWork = Box<dyn Fn(&mut Recorder) -> GpuResult<()>>;

/// One benchmark: a GPU recording and the CPU reference of the same work.
pub struct Case {
    pub name: String,
    pub shape: String,
    /// Floating-point operations of one run (a multiply-add counts 2).
    pub flops: f64,
    /// Bytes one run must read and write at the least (each operand once).
    pub bytes: f64,
    pub gpu: GpuWork,
    pub cpu: Box<dyn Fn()>,
}

/// Builds cases: owns the context and a seeded generator for inputs.
pub struct Bench<'a> {
    pub ctx: &'a GpuContext,
    pub rng: Rng,
}

impl Bench<'_> {
    pub fn normal(&mut self, n: usize) -> Vec<f32> {
        self.rng.normal_vec(n)
    }

    pub fn up(&self, v: &[f32]) -> GpuResult<GpuBuffer<f32>> {
        GpuBuffer::from_slice(self.ctx, v, "bench")
    }

    pub fn zeros(&self, n: usize) -> GpuResult<GpuBuffer<f32>> {
        GpuBuffer::zeros(self.ctx, n, "bench")
    }
}

struct Args {
    suite: String,
    budget_s: f64,
    filter: Option<String>,
    reps: usize,
    cpu: bool,
    gpu: bool,
    json: String,
}

fn parse_args() -> Result<Args> {
    let mut a = Args {
        suite: "all".into(),
        budget_s: 60.0,
        filter: None,
        reps: 5,
        cpu: true,
        gpu: true,
        json: "target/bench-kernels.json".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--filter" => a.filter = Some(it.next().context("--filter needs a value")?),
            "--reps" => a.reps = it.next().context("--reps needs a value")?.parse()?,
            "--no-cpu" => a.cpu = false,
            "--no-gpu" => a.gpu = false,
            "--no-fused" => inrgan::backend::Switches {
                fused: false,
                ..inrgan::backend::Switches::current()
            }
            .set(),
            "--profile" => inrgan::backend::Switches {
                profile: true,
                ..inrgan::backend::Switches::current()
            }
            .set(),
            "--suite" => {
                a.suite = it
                    .next()
                    .context("--suite needs kernels, generator or all")?
            }
            "--budget" => a.budget_s = it.next().context("--budget needs seconds")?.parse()?,
            "--json" => a.json = it.next().context("--json needs a path")?,
            "-h" | "--help" => {
                println!(
                    "bench [--suite kernels|generator|train|cpu|all] [--filter TEXT] [--reps N] [--no-cpu] \
                     [--no-gpu] [--no-fused] [--profile] [--budget SECONDS] [--json PATH]\n\
                     --no-fused: renders layer by layer (not through the fused block forward).\n\
                     --no-cpu: GPU rows only (kernels: no CPU reference; generator and train: no CPU backend).\n\
                     --no-gpu: generator and train: CPU backend rows only.\n\
                     kernels: every GPU kernel at realistic shapes beside its CPU reference.\n\
                     generator: the generator's forward at 128², 256², 512², 1024², 4096² per preset and \
                     backend (sizes estimated past the budget per frame, default 60 s).\n\
                     train: training img/s per preset and backend.\n\
                     cpu: the CPU backend's per-pixel products and convolutions.\n\
                     --filter: only the kernels, the generator or training presets, or the cpu cases (modlinear, conv) whose \
                     name contains TEXT."
                );
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?} (try --help)"),
        }
    }
    Ok(a)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

fn gflops(flops: f64, d: Duration) -> f64 {
    flops / d.as_secs_f64() / 1e9
}

fn main() -> Result<()> {
    let args = parse_args()?;
    let ctx = GpuContext::new()?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("adapter: {}", ctx.summary());
    println!(
        "host:    {} ({threads} threads); GPU time from {}",
        cpu_model(),
        if ctx.has_timestamps() {
            "timestamp queries"
        } else {
            "wall clock (no timestamp queries)"
        }
    );
    let mut kernel_rows = Vec::new();
    let mut overhead = None;
    if args.suite == "kernels" || args.suite == "all" {
        kernel_rows = run_kernels(&ctx, &args)?;
        overhead = Some(dispatch_overhead(&ctx)?);
    }
    let mut gen_rows = Vec::new();
    if args.suite == "generator" || args.suite == "all" {
        println!(
            "\ngenerator forward: one viewport frame of one latent over the training square \
             (strips under the buffer limit, to RGBA8):"
        );
        let budget = Duration::from_secs_f64(args.budget_s);
        let presets: Vec<&str> = ["emoji32", "emoji32@nearest", "emoji64", "paper256"]
            .into_iter()
            .filter(|p| args.filter.as_ref().is_none_or(|f| p.contains(f.as_str())))
            .collect();
        let sizes = [128, 256, 512, 1024, 4096];
        let max_binding = ctx.limits().max_storage_buffer_binding_size;
        let mut rows = Vec::new();
        if args.gpu {
            rows = generator::run(
                &mut GpuBackend::new(&ctx),
                &presets,
                &sizes,
                budget,
                max_binding,
            )?;
        }
        if args.cpu {
            let mut cpu = inrgan::backend::cpu::CpuBackend::new()?;
            // The CPU backend's strips are bounded like lavapipe's, to keep host memory modest.
            rows.extend(generator::run(
                &mut cpu,
                &presets,
                &sizes,
                budget,
                128 << 20,
            )?);
        }
        for r in rows {
            gen_rows.push(serde_json::json!({
                "preset": r.preset, "backend": r.backend, "size": r.size,
                "ms": r.ms, "estimated": r.estimated, "gflops": r.gflops,
                "gpu_peak_mb": r.gpu_peak_mb, "peak_share": r.peak_share,
                "strips": r.strips, "host_ms": r.host_ms, "dispatches": r.dispatches,
            }));
        }
    }
    let mut train_rows = Vec::new();
    if args.suite == "train" || args.suite == "all" {
        println!("\ntraining step (G + D phases, lazy R1), random reals:");
        let presets: Vec<(&str, usize)> =
            [("emoji32", 32), ("emoji32@nearest", 32), ("emoji64", 32)]
                .into_iter()
                .filter(|(p, _)| args.filter.as_ref().is_none_or(|f| p.contains(f.as_str())))
                .collect();
        let steps = 3;
        // On a software adapter one preset is enough to show the gap (emoji64 takes minutes).
        let gpu_presets: &[(&str, usize)] = if ctx.summary().is_cpu {
            &presets[..presets.len().min(1)]
        } else {
            &presets
        };
        let mut rows = Vec::new();
        if args.gpu {
            rows = train::run(&mut GpuBackend::new(&ctx), gpu_presets, steps)?;
        }
        if args.cpu {
            // More steps on the CPU backend: its steps take a second, not minutes.
            rows.extend(train::run(
                &mut inrgan::backend::cpu::CpuBackend::new()?,
                &presets,
                3 * steps,
            )?);
        }
        for r in rows {
            train_rows.push(serde_json::json!({
                "preset": r.preset, "backend": r.backend, "batch": r.batch,
                "img_per_s": r.img_per_s, "steps": r.steps,
                "dispatches_per_step": r.recording.map(|x| x.0),
                "buffers_per_step": r.recording.map(|x| x.1),
                "host_ms_per_step": r.recording.map(|x| x.2),
            }));
        }
    }
    if args.suite == "cpu" || args.suite == "all" {
        println!("\nCPU backend products:");
        let pick = |name: &str| args.filter.as_deref().is_none_or(|f| name.contains(f));
        if pick("modlinear") {
            cpu::modlinear()?;
        }
        if pick("conv") {
            cpu::conv()?;
        }
    }
    let report = serde_json::json!({
        "adapter": ctx.summary().to_string(),
        "host": cpu_model(),
        "gpu_timing": if ctx.has_timestamps() { "timestamps" } else { "wall" },
        "reps": args.reps,
        "kernels": kernel_rows,
        "dispatch_host_us": overhead,
        "generator": gen_rows,
        "train": train_rows,
        "host_peak_mb": host_peak_mb(),
        "gpu_buffers_peak_mb": inrgan::gpu::buffer_bytes().1 as f64 / 1e6,
    });
    if let Some(mb) = host_peak_mb() {
        println!(
            "
peak host memory (VmHWM): {mb:.0} MB"
        );
    }
    if let Some(dir) = std::path::Path::new(&args.json).parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let tmp = format!("{}.tmp", args.json);
    std::fs::write(&tmp, serde_json::to_string_pretty(&report)?)?;
    std::fs::rename(&tmp, &args.json).with_context(|| format!("writing {}", args.json))?;
    println!("\nwrote {}", args.json);
    Ok(())
}

/// Host microseconds to record one dispatch (parameter block, bind group, error scopes) and to
/// create one small buffer: the per-operation floor of every frame and step on a fast GPU.
fn dispatch_overhead(ctx: &GpuContext) -> Result<serde_json::Value> {
    const N: usize = 2000;
    let x = GpuBuffer::<f32>::zeros(ctx, 16, "overhead x")?;
    let y = GpuBuffer::<f32>::zeros(ctx, 16, "overhead y")?;
    let mut rec = inrgan::gpu::Recorder::new(ctx, "dispatch overhead");
    // One first, so that pipeline creation is not counted.
    inrgan::kernels::reduce::axpby(&mut rec, 1.0, &x, 1.0, &y, 16)?;
    let t = Instant::now();
    for _ in 0..N {
        inrgan::kernels::reduce::axpby(&mut rec, 1.0, &x, 1.0, &y, 16)?;
    }
    let record_us = t.elapsed().as_secs_f64() * 1e6 / N as f64;
    let t = Instant::now();
    rec.submit()?;
    ctx.wait()?;
    let run_us = t.elapsed().as_secs_f64() * 1e6 / N as f64;
    let t = Instant::now();
    let bufs: Vec<_> = (0..N)
        .map(|_| GpuBuffer::<f32>::zeros(ctx, 1024, "overhead buffer"))
        .collect::<Result<_, _>>()?;
    let buffer_us = t.elapsed().as_secs_f64() * 1e6 / N as f64;
    drop(bufs);
    println!(
        "\nhost cost per operation: record a dispatch {record_us:.1} µs, submit and run it \
         {run_us:.1} µs, create a 4 KB buffer {buffer_us:.1} µs"
    );
    Ok(serde_json::json!({
        "record_dispatch": record_us, "submit_and_run": run_us, "create_buffer": buffer_us,
    }))
}

fn run_kernels(ctx: &GpuContext, args: &Args) -> Result<Vec<serde_json::Value>> {
    let mut b = Bench {
        ctx,
        rng: Rng::new(7),
    };
    let all = cases::all(&mut b)?;
    let cases: Vec<Case> = all
        .into_iter()
        .filter(|c| {
            args.filter
                .as_ref()
                .is_none_or(|f| c.name.contains(f.as_str()))
        })
        .collect();
    println!(
        "\n{:<28} {:<34} {:>8} {:>10} {:>9} {:>8} {:>10} {:>9} {:>8}",
        "kernel", "shape", "MFLOP", "GPU ms", "GFLOP/s", "GB/s", "CPU ref ms", "GFLOP/s", "CPU/GPU"
    );
    let mut rows = Vec::new();
    for c in &cases {
        // The first run compiles the pipeline (and JIT-compiles it on lavapipe): not timed.
        let mut rec = Recorder::new(ctx, &c.name);
        (c.gpu)(&mut rec)?;
        rec.submit()?;
        ctx.wait()?;
        let mut best_gpu = Duration::MAX;
        for _ in 0..args.reps {
            let mut rec = Recorder::new(ctx, &c.name);
            (c.gpu)(&mut rec)?;
            best_gpu = best_gpu.min(rec.submit_timed()?);
        }
        let best_cpu = if args.cpu {
            let mut best = Duration::MAX;
            let start = Instant::now();
            for _ in 0..args.reps {
                let t = Instant::now();
                (c.cpu)();
                best = best.min(t.elapsed());
                if start.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
            Some(best)
        } else {
            None
        };
        let gms = best_gpu.as_secs_f64() * 1e3;
        let (cms, cg, ratio) = match best_cpu {
            Some(d) => (
                format!("{:.3}", d.as_secs_f64() * 1e3),
                format!("{:.2}", gflops(c.flops, d)),
                format!("{:.2}x", d.as_secs_f64() / best_gpu.as_secs_f64()),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        println!(
            "{:<28} {:<34} {:>8.2} {:>10.3} {:>9.2} {:>8.2} {:>10} {:>9} {:>8}",
            c.name,
            c.shape,
            c.flops / 1e6,
            gms,
            gflops(c.flops, best_gpu),
            gflops(c.bytes, best_gpu),
            cms,
            cg,
            ratio
        );
        rows.push(serde_json::json!({
            "kernel": c.name,
            "shape": c.shape,
            "flops": c.flops,
            "gpu_ms": gms,
            "gpu_gflops": gflops(c.flops, best_gpu),
            "bytes": c.bytes,
            "gpu_gbps": gflops(c.bytes, best_gpu),
            "cpu_ref_ms": best_cpu.map(|d| d.as_secs_f64() * 1e3),
            "cpu_ref_gflops": best_cpu.map(|d| gflops(c.flops, d)),
        }));
    }
    Ok(rows)
}

/// The process's peak resident memory (Linux `VmHWM`), MB.
fn host_peak_mb() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1e3)
}

/// A preset by name; `NAME@nearest` or `NAME@bilinear` overrides its link (the bilinear link's
/// cost against the nearest one, in one binary).
pub fn bench_preset(name: &str) -> Result<inrgan::model::config::ModelConfig> {
    use inrgan::model::config::{LinkMode, ModelConfig};
    let (base, link) = match name.split_once('@') {
        Some((b, "nearest")) => (b, Some(LinkMode::Nearest)),
        Some((b, "bilinear")) => (b, Some(LinkMode::Bilinear)),
        Some((_, other)) => anyhow::bail!("unknown link {other:?} in preset {name:?}"),
        None => (name, None),
    };
    let mut cfg = ModelConfig::preset(base)?;
    if let Some(l) = link {
        cfg.link = l;
    }
    Ok(cfg)
}
