//! Element overhead: `videotestsrc ! nonlocalclassify ! fakesink` against bare ONNX Runtime runs
//! of the same model over the same number of clips, on the same machine, in one run.
//!
//!     cargo bench --bench element_overhead -- --model MODEL.onnx [--clips N] [--provider cpu|cuda]
//!
//! Prints the machine, the date, both throughputs and their ratio (element / bare).

use std::time::Instant;

use clap::Parser;
use gst::prelude::*;
use gstnonlocal::config::{ClipConfig, InputType, Overrides};
use gstnonlocal::engine::{Batch, Batching, Engine, ProviderChoice};

#[derive(Parser)]
struct Args {
    /// ONNX model (exported by tools/export_model.py)
    #[arg(long)]
    model: String,
    /// Clips to classify in each measurement
    #[arg(long, default_value_t = 8)]
    clips: u64,
    /// Execution provider: cpu or cuda
    #[arg(long, default_value = "cpu")]
    provider: String,
    /// Frame size of the test source
    #[arg(long, default_value = "320x240")]
    size: String,
    /// Parallel streams (videotestsrc ! nonlocalclassify ! fakesink branches sharing the engine)
    #[arg(long, default_value_t = 1)]
    streams: u64,
    /// Most clips per model run (element property max-batch)
    #[arg(long, default_value_t = 8)]
    max_batch: u32,
    /// Passed by `cargo bench`
    #[arg(long, hide = true)]
    bench: bool,
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cpu}, {cores} cores")
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstnonlocal::plugin_register_static()?;
    let choice = match args.provider.as_str() {
        "cuda" => ProviderChoice::Cuda,
        _ => ProviderChoice::Cpu,
    };
    let engine = Engine::open(std::path::Path::new(&args.model), choice, 0)?;
    let config = ClipConfig::resolve(&engine.metadata, &engine.io, Overrides::default())?;
    let (w, h) = args
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<i32>().ok()?, h.parse::<i32>().ok()?)))
        .ok_or_else(|| anyhow::anyhow!("--size takes WxH, e.g. 320x240"))?;

    // Bare ONNX Runtime: the same session type, one clip per run, warm-up first.
    let per = config.clip_elements();
    let shape = config.input_shape(1);
    let input = || match config.input_type {
        InputType::F32 => Batch::F32(vec![0.5; per]),
        InputType::F16 => Batch::F16(vec![half::f16::from_f32(0.5); per]),
        InputType::U8 => Batch::U8(vec![128; per]),
    };
    let one = input();
    engine.run(shape, &one)?;
    let t = Instant::now();
    for _ in 0..args.clips {
        engine.run(shape, &one)?;
    }
    let bare = args.clips as f64 / t.elapsed().as_secs_f64();
    // Bare runs at the element's batch size too (what several streams can reach together).
    let b = args.max_batch.max(1) as usize;
    let batched = |n: usize| match config.input_type {
        InputType::F32 => Batch::F32(vec![0.5; per * n]),
        InputType::F16 => Batch::F16(vec![half::f16::from_f32(0.5); per * n]),
        InputType::U8 => Batch::U8(vec![128; per * n]),
    };
    let runs = args.clips.div_ceil(b as u64).max(1);
    let bare_batched = if b > 1 && engine.fixed_batch().is_none() {
        let many = batched(b);
        engine.run(config.input_shape(b), &many)?;
        let t = Instant::now();
        for _ in 0..runs {
            engine.run(config.input_shape(b), &many)?;
        }
        Some((runs * b as u64) as f64 / t.elapsed().as_secs_f64())
    } else {
        None
    };

    // The elements' shared engine, held across the runs below and warmed up at every batch
    // size it will use (powers of two up to max-batch), as a long-running pipeline would be.
    let shared = Engine::shared(std::path::Path::new(&args.model), choice, 0)?;
    shared.register(Batching {
        max_batch: b,
        timeout: std::time::Duration::ZERO,
    });
    let mut n = 1;
    while n <= b.next_power_of_two() {
        shared
            .submit(shape, n, batched(n))
            .recv()?
            .map_err(|e| anyhow::anyhow!(e))?;
        n *= 2;
    }

    // The element in a pipeline: frames for exactly `clips` clips over all streams, non-live
    // (nothing dropped).
    let streams = args.streams.max(1);
    let frames = args.clips.div_ceil(streams) * u64::from(config.clip_stride);
    let desc = (0..streams)
        .map(|_| {
            format!(
                "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=RGB,width={w},height={h},framerate=30/1 \
                 ! nonlocalclassify model=\"{}\" execution-provider={} max-batch={} ! fakesink sync=false",
                args.model, args.provider, args.max_batch
            )
        })
        .collect::<Vec<_>>()
        .join(" ");
    // Warm-up pipeline (engine creation, allocator warm-up) is not timed.
    let run = |desc: &str| -> anyhow::Result<(f64, u64)> {
        let pipeline = gst::parse::launch(desc)?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
        pipeline.set_state(gst::State::Paused)?;
        let _ = pipeline.state(gst::ClockTime::NONE);
        let bus = pipeline.bus().ok_or_else(|| anyhow::anyhow!("no bus"))?;
        let t = Instant::now();
        pipeline.set_state(gst::State::Playing)?;
        let mut clips = 0;
        for msg in bus.iter_timed(gst::ClockTime::NONE) {
            match msg.view() {
                gst::MessageView::Element(e)
                    if e.structure()
                        .is_some_and(|s| s.name() == "nonlocalclassify") =>
                {
                    clips += 1
                }
                gst::MessageView::Eos(_) => break,
                gst::MessageView::Error(e) => anyhow::bail!("{}", e.error()),
                _ => {}
            }
        }
        let secs = t.elapsed().as_secs_f64();
        pipeline.set_state(gst::State::Null)?;
        Ok((secs, clips))
    };
    let warm = format!(
        "videotestsrc num-buffers={} ! video/x-raw,format=RGB,width={w},height={h} ! nonlocalclassify model=\"{}\" execution-provider={} ! fakesink",
        config.clip_stride, args.model, args.provider
    );
    run(&warm)?;
    let (secs, clips) = run(&desc)?;
    let element = clips as f64 / secs;
    // The source alone, for scale: what the pipeline costs without the element.
    let source_only = format!(
        "videotestsrc num-buffers={frames} pattern=ball ! video/x-raw,format=RGB,width={w},height={h},framerate=30/1 ! fakesink sync=false"
    );
    let (source_secs, _) = run(&source_only)?;

    let date = std::process::Command::new("date")
        .arg("-u")
        .arg("+%Y-%m-%d %H:%M UTC")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    println!("nonlocalclassify element overhead benchmark");
    println!("machine : {}", machine());
    println!("date    : {date}");
    println!(
        "model   : {} ({} frames, {}² crop, {:?}, provider {})",
        args.model,
        config.clip_length,
        config.crop_size,
        config.input_type,
        engine.provider.name()
    );
    println!(
        "source  : {streams} × videotestsrc {w}x{h} RGB, {frames} frames each → {clips} clips, max-batch {}",
        args.max_batch
    );
    println!("| path | clips/s |");
    println!("|---|---|");
    println!("| bare ONNX Runtime session, batch 1 | {bare:.3} |");
    if let Some(bb) = bare_batched {
        println!("| bare ONNX Runtime session, batch {b} | {bb:.3} |");
    }
    println!("| videotestsrc ! nonlocalclassify ! fakesink | {element:.3} |");
    println!(
        "| videotestsrc ! fakesink (source alone) | {:.3} clip-equivalents/s ({:.0} frames/s) |",
        clips as f64 / source_secs,
        frames as f64 / source_secs
    );
    println!(
        "ratio element/bare (batch 1): {:.3} (overhead {:.1}%)",
        element / bare,
        (1.0 - element / bare) * 100.0
    );
    let (runs, items) = shared.stats();
    println!(
        "engine: {items} clips in {runs} runs (mean batch {:.2}, warm-up included)",
        items as f64 / runs.max(1) as f64
    );
    Ok(())
}
