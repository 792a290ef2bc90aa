//! `inrgan`: with no command, opens the explorer window; commands run the same engine headless.

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "inrgan",
    version,
    about = "INR-GAN Explorer: continuous images from a GAN"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Open the explorer window (the default).
    Gui,
    /// List the GPU adapters wgpu sees and say which one would be used.
    Gpu,
}

fn gpu_report() -> Result<()> {
    let opts = inrgan::gpu::GpuOptions::from_env();
    let all = inrgan::gpu::enumerate_adapters(&opts);
    if all.is_empty() {
        println!("no adapters found");
    }
    for (i, a) in all.iter().enumerate() {
        println!("{i}: {a}{}", if a.timestamps { ", timestamps" } else { "" });
    }
    let ctx = inrgan::gpu::GpuContext::with_options(&opts)?;
    let l = ctx.limits();
    println!("\nchosen: {}", ctx.summary());
    println!(
        "limits: storage binding {} MiB, buffer {} MiB, {} storage buffers per stage, \
         workgroup memory {} KiB, {} invocations per workgroup",
        l.max_storage_buffer_binding_size >> 20,
        l.max_buffer_size >> 20,
        l.max_storage_buffers_per_shader_stage,
        l.max_compute_workgroup_storage_size >> 10,
        l.max_compute_invocations_per_workgroup
    );
    if ctx.summary().is_cpu {
        println!("note: this is a software rasteriser; kernels run on the CPU cores");
    }
    Ok(())
}

fn main() -> Result<()> {
    env_logger_init();
    let cli = Cli::parse();
    match cli.command.unwrap_or(Command::Gui) {
        Command::Gui => inrgan::app::run(),
        Command::Gpu => gpu_report(),
    }
}

/// Logs at warn level and above unless `RUST_LOG` says otherwise (errors from wgpu's uncaptured
/// handler must reach the terminal).
fn env_logger_init() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::max_level()
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) && r.target().starts_with("inrgan") {
                eprintln!("[{}] {}", r.level(), r.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    let level = match std::env::var("RUST_LOG").as_deref() {
        Ok("debug") => log::LevelFilter::Debug,
        Ok("info") => log::LevelFilter::Info,
        Ok("trace") => log::LevelFilter::Trace,
        _ => log::LevelFilter::Warn,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
