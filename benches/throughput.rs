//! Throughput and latency of one model: the engine alone against `nonlocalclassify` in pipelines,
//! on the same machine in one run.
//!
//!     cargo bench --bench throughput -- --model MODEL.onnx [--provider cpu|openvino|cuda]
//!         [--batches 1,8] [--streams 1,8] [--objects 1,4,16] [--clips N]
//!         [--live-streams N --live-seconds S]
//!         [--server HOST:PORT[,...] [--server-model NAME] [--server-requests N]]
//!         [--json FILE]
//!
//! With `--server` every measurement runs on the remote backend instead (the element's `server`
//! properties): clips classified by KServe v2 gRPC servers such as one `tools/triton-serve`
//! starts; the model's name on the server defaults to the stem of `--model`.
//!
//! * engine: the shared engine the elements use, fed ready clips (packed, in host memory) in
//!   batches of each `--batches` size: staging copy, transfer and compute, nothing else.
//! * element: N parallel `videotestsrc ! nonlocalclassify ! fakesink` pipelines (non-live, as fast
//!   as they go) sharing that engine; clips/s over all streams, the latency from a clip's last
//!   frame to its result (median, p99), the mean batch the engine formed.
//! * objects (cargo feature `analytics`, GStreamer >= 1.24): one pipeline
//!   `videotestsrc ! nonlocalclassify regions=objects ! fakesink` whose buffers get N object
//!   boxes (GstAnalytics object detections, each related to a tracking id, as a detector and a
//!   tracker upstream would add them) from a pad probe: every object gets its own clips.
//! * live: N live 30 fps sources for S seconds; clips expected, classified and dropped.
//! * the source alone, for scale: what the test pipelines cost without the element.
//!
//! Prints a table with the machine, card and date, and appends one JSON object per measurement to
//! `--json` (benches/gpu/table.py turns those of several models and PyTorch into one table).

use std::io::Write;
use std::time::{Duration, Instant};

use clap::Parser;
use gst::prelude::*;
use gstnonlocal::config::{ClipConfig, Overrides};
use gstnonlocal::engine::{
    Batching, LocalBackend, LocalSettings, OpenVinoOptions, ProviderChoice, RemoteSettings,
    SharedEngine,
};
use serde_json::json;

#[derive(Parser)]
struct Args {
    /// ONNX model (exported by tools/export_model.py)
    #[arg(long)]
    model: String,
    /// Short name of the model in the output [default: the file name]
    #[arg(long)]
    name: Option<String>,
    /// Execution provider: cpu (ONNX Runtime's), openvino (OpenVINO's on the CPU) or cuda
    #[arg(long, default_value = "cpu")]
    provider: String,
    /// The element's openvino-threads (0: OpenVINO's choice)
    #[arg(long, default_value_t = 0)]
    openvino_threads: u32,
    /// The element's openvino-streams (0: OpenVINO's choice)
    #[arg(long, default_value_t = 0)]
    openvino_streams: u32,
    /// Batch sizes to measure the engine alone at (comma-separated; 0 skips)
    #[arg(long, default_value = "1,8", value_delimiter = ',')]
    batches: Vec<usize>,
    /// Numbers of parallel element pipelines to measure (comma-separated; 0 skips)
    #[arg(long, default_value = "1", value_delimiter = ',')]
    streams: Vec<u64>,
    /// Numbers of objects to measure one stream in objects mode with (comma-separated; 0
    /// skips; needs the cargo feature `analytics`)
    #[arg(long, default_value = "0", value_delimiter = ',')]
    objects: Vec<u32>,
    /// Clips per measurement (engine: at least this many; element: over all streams or objects)
    #[arg(long, default_value_t = 16)]
    clips: u64,
    /// The element's max-batch
    #[arg(long, default_value_t = 8)]
    max_batch: u32,
    /// The element's batch-timeout (ms)
    #[arg(long, default_value_t = 0)]
    batch_timeout: u32,
    /// Frame size of the test source
    #[arg(long, default_value = "320x240")]
    size: String,
    /// Pixel format of the test source (a decoder's I420 by default)
    #[arg(long, default_value = "I420")]
    format: String,
    /// videotestsrc pattern of the test streams: a static one (black) is drawn once and
    /// copied per frame, as a decoder hands over frames; `ball` draws every frame (about 0.4 ms
    /// of CPU per 320×240 frame), so the sources then bound the element on most hosts
    #[arg(long, default_value = "black")]
    pattern: String,
    /// Live streams (30 fps) to run for --live-seconds; 0 skips
    #[arg(long, default_value_t = 0)]
    live_streams: u64,
    /// Clip stride of the live streams (frames) [default: the model's]
    #[arg(long)]
    live_clip_stride: Option<u32>,
    #[arg(long, default_value_t = 30)]
    live_seconds: u64,
    /// Start the live streams one by one over one clip period (as independent cameras do),
    /// instead of all at once (whose clips then all end in the same frame)
    #[arg(long)]
    live_stagger: bool,
    /// CUDA devices to spread over (comma-separated): one engine each, engine measurements run
    /// on all of them at once, element streams take them in turn
    #[arg(long, default_value = "0", value_delimiter = ',')]
    devices: Vec<i32>,
    /// KServe v2 gRPC servers to classify on instead of this process (the element's `server`)
    #[arg(long)]
    server: Option<String>,
    /// The model's name on the servers [default: the stem of --model]
    #[arg(long)]
    server_model: Option<String>,
    /// Batches in flight to the servers (the element's `server-requests`)
    #[arg(long, default_value_t = 4)]
    server_requests: u32,
    /// The element's `resample`: element (frames scaled on the streaming threads) or engine
    /// (the centre crop's source pixels resampled a batch at a time on the model's device)
    #[arg(long, default_value = "element")]
    resample: String,
    /// Append one JSON object per measurement to this file
    #[arg(long)]
    json: Option<String>,
    /// Passed by `cargo bench`
    #[arg(long, hide = true)]
    bench: bool,
}

/// CPU time (user and system) this process has used so far, in seconds.
fn process_cpu_secs() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
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

/// `nvidia-smi` query output, or None without a card.
fn nvidia_smi(args: &[&str]) -> Option<String> {
    let out = std::process::Command::new("nvidia-smi")
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn card() -> Option<String> {
    nvidia_smi(&["--query-gpu=name,driver_version", "--format=csv,noheader"])
        .and_then(|s| s.lines().next().map(str::to_string))
}

/// GPU memory this process holds (MiB), from nvidia-smi.
fn gpu_memory_mib() -> Option<u64> {
    let me = std::process::id().to_string();
    nvidia_smi(&[
        "--query-compute-apps=pid,used_memory",
        "--format=csv,noheader,nounits",
    ])?
    .lines()
    .filter_map(|l| l.split_once(','))
    .filter(|(pid, _)| pid.trim() == me)
    .filter_map(|(_, mib)| mib.trim().parse::<u64>().ok())
    .max()
}

/// The CUDA profiler range (cudaProfilerStart/Stop): kernel-level profilers that honour it
/// (`benches/gpu/kprof.c`, `nsys --capture-range=cudaProfilerApi`) record only the engine's
/// timed runs and the element's pipelines (one range each, in the order of the rows). Without
/// the CUDA runtime in the process it does nothing.
struct ProfilerRange(Option<libloading::Library>);

impl ProfilerRange {
    fn new() -> Self {
        // SAFETY: the CUDA runtime's initialisers have no preconditions; ONNX Runtime's CUDA
        // provider has loaded the same library already.
        let lib = ["libcudart.so.13", "libcudart.so.12", "libcudart.so"]
            .iter()
            .find_map(|name| unsafe { libloading::Library::new(*name) }.ok());
        Self(lib)
    }

    fn call(&self, symbol: &[u8]) {
        if let Some(lib) = &self.0 {
            // SAFETY: cudaProfilerStart/Stop take no arguments and return a cudaError_t.
            unsafe {
                if let Ok(f) = lib.get::<unsafe extern "C" fn() -> i32>(symbol) {
                    f();
                }
            }
        }
    }

    fn start(&self) {
        self.call(b"cudaProfilerStart");
    }

    fn stop(&self) {
        self.call(b"cudaProfilerStop");
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let k = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[k.min(sorted.len() - 1)]
}

/// What a pipeline run gave: seconds, clips, latencies (ms, sorted), the largest `dropped`.
struct PipelineRun {
    secs: f64,
    clips: u64,
    latencies_ms: Vec<f64>,
    dropped: u64,
}

/// What is done to each pipeline once it is made, before it starts.
type Setup<'a> = &'a dyn Fn(&gst::Pipeline) -> anyhow::Result<()>;

fn run_pipeline(desc: &str, stop_after: Option<Duration>) -> anyhow::Result<PipelineRun> {
    run_pipelines(&[desc.to_string()], Duration::ZERO, stop_after, &|_| Ok(()))
}

/// Run pipelines `descs`, each passed to `setup` first, the i-th started i × `spread` / N after
/// the first (independent cameras do not start their clips in step); each gets EOS `stop_after`
/// after its start, if given. Counts the element messages of all of them.
fn run_pipelines(
    descs: &[String],
    spread: Duration,
    stop_after: Option<Duration>,
    setup: Setup,
) -> anyhow::Result<PipelineRun> {
    struct Stream {
        pipeline: gst::Pipeline,
        bus: gst::Bus,
        start: Duration,
        started: bool,
        eos_sent: bool,
        done: bool,
    }
    let n = descs.len().max(1) as u32;
    let mut streams = descs
        .iter()
        .enumerate()
        .map(|(i, desc)| {
            let pipeline = gst::parse::launch(desc)?
                .downcast::<gst::Pipeline>()
                .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
            setup(&pipeline)?;
            pipeline.set_state(gst::State::Paused)?;
            let _ = pipeline.state(gst::ClockTime::NONE);
            let bus = pipeline.bus().ok_or_else(|| anyhow::anyhow!("no bus"))?;
            Ok(Stream {
                pipeline,
                bus,
                start: spread * i as u32 / n,
                started: false,
                eos_sent: false,
                done: false,
            })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let stop_all = |streams: &[Stream]| {
        for s in streams {
            let _ = s.pipeline.set_state(gst::State::Null);
        }
    };
    let t = Instant::now();
    let (mut clips, mut latencies_ms) = (0, Vec::new());
    // Each element counts its own dropped clips; the last count of each, summed.
    let mut dropped = std::collections::HashMap::new();
    while streams.iter().any(|s| !s.done) {
        let now = t.elapsed();
        let mut idle = true;
        for s in streams.iter_mut().filter(|s| !s.done) {
            if !s.started {
                if now < s.start {
                    continue;
                }
                s.pipeline.set_state(gst::State::Playing)?;
                s.started = true;
            }
            if let Some(limit) = stop_after {
                if !s.eos_sent && now >= s.start + limit {
                    s.pipeline.send_event(gst::event::Eos::new());
                    s.eos_sent = true;
                }
            }
            while let Some(msg) = s.bus.pop() {
                idle = false;
                match msg.view() {
                    gst::MessageView::Element(e) => {
                        if let Some(st) = e.structure().filter(|st| st.name() == "nonlocalclassify")
                        {
                            clips += 1;
                            if let Ok(ns) = st.get::<u64>("latency") {
                                latencies_ms.push(ns as f64 / 1e6);
                            }
                            let src = msg.src().map(|s| s.path_string().to_string());
                            dropped.insert(src, st.get::<u64>("dropped").unwrap_or(0));
                        }
                    }
                    gst::MessageView::Eos(_) => {
                        s.done = true;
                        break;
                    }
                    gst::MessageView::Error(e) => {
                        let (error, debug) = (e.error(), e.debug());
                        stop_all(&streams);
                        anyhow::bail!("{error}: {debug:?}")
                    }
                    _ => {}
                }
            }
        }
        if idle {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let secs = t.elapsed().as_secs_f64();
    stop_all(&streams);
    latencies_ms.sort_by(f64::total_cmp);
    Ok(PipelineRun {
        secs,
        clips,
        latencies_ms,
        dropped: dropped.values().sum(),
    })
}

/// `n` person-shaped boxes (x, y, width, height) in a `w`×`h` frame: a fifth of the frame's
/// width by two fifths of its height, eight to a row over two rows, the rows' boxes spread
/// evenly (overlapping where more than four share a row).
fn object_boxes(n: u32, w: u32, h: u32) -> Vec<(i32, i32, i32, i32)> {
    let (bw, bh) = ((w / 5) as i32, (h * 2 / 5) as i32);
    let per_row = n.min(8);
    (0..n)
        .map(|i| {
            let (col, row) = ((i % 8) as i32, (i / 8 % 2) as i32);
            let step = (w as i32 - bw) / per_row.max(2) as i32;
            let x = col * step + step / 2;
            let y = h as i32 / 10 + row * h as i32 / 2;
            (x.min(w as i32 - bw), y.min(h as i32 - bh), bw, bh)
        })
        .collect()
}

/// Give every buffer entering `element` of `pipeline` the object detections `boxes` (type
/// `person`), each related to a tracking id (1, 2, …), as a detector and a tracker upstream
/// would.
#[cfg(feature = "analytics")]
fn attach_boxes(
    pipeline: &gst::Pipeline,
    element: &str,
    boxes: &[(i32, i32, i32, i32)],
) -> anyhow::Result<()> {
    use gst_analytics::prelude::*;
    use gst_analytics::{AnalyticsRelationMeta, RelTypes};
    let pad = pipeline
        .by_name(element)
        .and_then(|e| e.static_pad("sink"))
        .ok_or_else(|| anyhow::anyhow!("no element {element} with a sink pad"))?;
    let boxes = boxes.to_vec();
    let person = gst::glib::Quark::from_str("person");
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        if let Some(gst::PadProbeData::Buffer(buffer)) = &mut info.data {
            let mut meta = AnalyticsRelationMeta::add(buffer.make_mut());
            for (i, &(x, y, w, h)) in boxes.iter().enumerate() {
                let Ok(od) = meta.add_od_mtd(person, x, y, w, h, 0.9) else {
                    continue;
                };
                let od = od.id();
                if let Ok(track) = meta.add_tracking_mtd(i as u64 + 1, gst::ClockTime::ZERO) {
                    let track = track.id();
                    let _ = meta.set_relation(RelTypes::RELATE_TO, od, track);
                }
            }
        }
        gst::PadProbeReturn::Ok
    });
    Ok(())
}

#[cfg(not(feature = "analytics"))]
fn attach_boxes(
    _pipeline: &gst::Pipeline,
    _element: &str,
    _boxes: &[(i32, i32, i32, i32)],
) -> anyhow::Result<()> {
    anyhow::bail!(
        "--objects needs GstAnalytics: build the bench with --features analytics (GStreamer >= 1.24)"
    )
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    gst::init()?;
    gstnonlocal::plugin_register_static()?;
    let choice = match args.provider.as_str() {
        "cuda" => ProviderChoice::Cuda,
        "openvino" => ProviderChoice::OpenVino,
        "cpu" => ProviderChoice::Cpu,
        other => anyhow::bail!("--provider takes cpu, openvino or cuda, not '{other}'"),
    };
    let openvino = OpenVinoOptions {
        threads: args.openvino_threads,
        streams: args.openvino_streams,
        cache_dir: None,
    };
    let path = std::path::Path::new(&args.model);
    let name = args.name.clone().unwrap_or_else(|| {
        path.file_stem()
            .map_or("model".into(), |s| s.to_string_lossy().into_owned())
    });
    let (w, h) = args
        .size
        .split_once('x')
        .and_then(|(w, h)| Some((w.parse::<u32>().ok()?, h.parse::<u32>().ok()?)))
        .ok_or_else(|| anyhow::anyhow!("--size takes WxH, e.g. 320x240"))?;
    let date = std::process::Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let card = card();
    let mut json_out = match &args.json {
        Some(f) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(f)?,
        ),
        None => None,
    };
    let devices = if args.devices.is_empty() {
        vec![0]
    } else {
        args.devices.clone()
    };
    let server_model = args.server_model.clone().unwrap_or_else(|| name.clone());
    let remote = match &args.server {
        Some(servers) => Some(RemoteSettings::new(
            servers,
            &server_model,
            Duration::from_millis(10_000),
            args.server_requests.max(1) as usize,
            None,
            None,
            None,
            None,
        )?),
        None => None,
    };
    // The ONNX Runtime library this process runs on (none with servers).
    let runtime = match &remote {
        Some(_) => None,
        None => Some(gstnonlocal::engine::runtime_info()?),
    };
    let ort_version = runtime.as_ref().map(|r| r.version.clone());
    let ort_library = runtime.as_ref().map(|r| r.path.display().to_string());
    let backend = match &remote {
        Some(_) => "remote".to_string(),
        None => args.provider.clone(),
    };
    let common = json!({
        "model": name, "provider": args.provider, "backend": backend,
        "server": args.server, "server_requests": args.server_requests, "date": date, "machine": machine(),
        "card": card, "ort": ort_version, "ort_library": ort_library, "devices": devices.len(),
        "openvino_threads": args.openvino_threads, "openvino_streams": args.openvino_streams,
        "engine_nice": std::env::var("NONLOCAL_ENGINE_NICE").ok(),
    });
    let mut record = |mut v: serde_json::Value| -> anyhow::Result<()> {
        if let (Some(obj), Some(c)) = (v.as_object_mut(), common.as_object()) {
            for (k, x) in c {
                obj.insert(k.clone(), x.clone());
            }
        }
        if let Some(f) = json_out.as_mut() {
            writeln!(f, "{v}")?;
        }
        Ok(())
    };

    // The engines (one per device) every element below shares, warmed up at every batch size
    // they can form.
    let engines: Vec<std::sync::Arc<SharedEngine>> = match &remote {
        Some(settings) => vec![SharedEngine::remote(settings.clone())?],
        None => devices
            .iter()
            .map(|&d| {
                let settings = LocalSettings {
                    choice,
                    device: d,
                    gpu_mem_limit_mib: 0,
                    openvino: openvino.clone(),
                };
                SharedEngine::local(path, &settings)
            })
            .collect::<Result<_, _>>()?,
    };
    let engine = &engines[0];
    let local = engine.backend::<LocalBackend>();
    let config = ClipConfig::resolve(&engine.metadata, &engine.io, Overrides::default())?;
    let max_batch = args.max_batch.max(1) as usize;
    for e in &engines {
        e.register(Batching {
            max_batch,
            timeout: Duration::from_millis(u64::from(args.batch_timeout)),
        });
        e.warm_up(config.input_shape(1))?;
    }
    // Sums over the engines.
    let profile =
        || -> gstnonlocal::engine::EngineProfile { engines.iter().map(|e| e.profile()).sum() };
    let run_times =
        || -> gstnonlocal::engine::RunTimes { engines.iter().map(|e| e.run_times()).sum() };
    println!("nonlocalclassify throughput benchmark");
    println!("machine : {}", machine());
    if let Some(card) = &card {
        println!("card    : {card}");
    }
    println!("date    : {date}");
    println!("devices : {devices:?}");
    if let Some(r) = &runtime {
        println!(
            "runtime : ONNX Runtime {} ({})",
            r.version,
            r.path.display()
        );
    }
    println!("resample: {} (the element's)", args.resample);
    println!(
        "model   : {} ({name}: {} frames every {}, {}² crops, {:?} {:?}, provider {}{})",
        args.model,
        config.clip_length,
        config.frame_stride,
        config.crop_size,
        config.input_type,
        config.layout,
        engine.describe(),
        if local.is_some_and(LocalBackend::page_locked_clips) {
            ", page-locked clip buffers"
        } else {
            ""
        }
    );
    println!(
        "engine threads: {}, lanes {}",
        match engine.thread_priority() {
            Ok(Some(nice)) => format!("niceness {nice}"),
            Ok(None) => "the process's priority".to_string(),
            Err(e) => format!("the process's priority ({e})"),
        },
        engine.lanes()
    );
    println!("| measurement | clips/s | latency median / p99 (ms) | notes |");
    println!("|---|---|---|---|");

    // Engine alone: ready clips in host memory (ordinary buffers, as the element packs into;
    // then, where the backend lends them, page-locked ones), one batch after another (on every
    // device at once when there are several).
    let per = config.clip_elements();
    let range = match engine.describe().as_str() {
        "cuda" => ProfilerRange::new(),
        _ => ProfilerRange(None),
    };
    let memories: &[bool] = if local.is_some_and(LocalBackend::page_locked_clips) {
        &[false, true]
    } else {
        &[false]
    };
    for (b, locked) in args
        .batches
        .iter()
        .filter(|&&b| b > 0)
        .flat_map(|&b| memories.iter().map(move |&l| (b, l)))
    {
        let b = engine.fixed_batch().unwrap_or(b);
        let batch = if locked {
            engine.page_locked_buffer(per * b)
        } else {
            engine.buffer(per * b)
        };
        let (label, kind) = if locked {
            (", page-locked clips", "engine-page-locked")
        } else {
            ("", "engine")
        };
        let shape = config.input_shape(b);
        let runs = args.clips.div_ceil(b as u64).max(3);
        // One submitting thread per lane of each engine (two under CUDA: one batch's copy-in
        // and read-back overlap the other's compute, as with the element's batching threads).
        // Each thread runs its lane before the clock starts: each lane has its own sessions,
        // whose first run at a new batch size picks its CUDA kernels (seconds), and with CUDA
        // graphs ONNX Runtime captures a session's graph once per calling thread (the warm-up's
        // count of runs).
        let lanes = engine.lanes();
        let runs = runs.div_ceil(lanes as u64) * lanes as u64;
        let per_thread = runs / lanes as u64;
        // Two meetings: every thread warmed (the clock and the run times are read while they
        // wait, so that no lane's lock is contended), then all start.
        let warmed_up = std::sync::Barrier::new(engines.len() * lanes + 1);
        let go = std::sync::Barrier::new(engines.len() * lanes + 1);
        let warm = engine.warm_up_runs().max(1);
        let (t, phases, times) = std::thread::scope(|scope| {
            let threads: Vec<_> = engines
                .iter()
                .flat_map(|e| (0..lanes).map(move |lane| (e, lane)))
                .map(|(e, lane)| {
                    let (batch, warmed_up, go) = (&batch, &warmed_up, &go);
                    scope.spawn(move || {
                        let warmed = (0..warm)
                            .try_for_each(|_| e.run_lane(Some(lane), shape, batch).map(|_| ()));
                        warmed_up.wait();
                        go.wait();
                        warmed?;
                        (0..per_thread)
                            .map(|_| {
                                let r = Instant::now();
                                e.run_lane(Some(lane), shape, batch)
                                    .map(|_| r.elapsed().as_secs_f64() * 1e3)
                            })
                            .collect::<Result<Vec<f64>, _>>()
                    })
                })
                .collect();
            warmed_up.wait();
            let phases = run_times();
            range.start();
            let t = Instant::now();
            go.wait();
            let times = threads
                .into_iter()
                .map(|t| t.join().unwrap_or_else(|_| Ok(Vec::new())))
                .collect::<Result<Vec<Vec<f64>>, _>>()
                .map(|v| v.concat());
            (t, phases, times)
        });
        let mut times = times?;
        let rate = (runs * b as u64 * engines.len() as u64) as f64 / t.elapsed().as_secs_f64();
        range.stop();
        times.sort_by(f64::total_cmp);
        let mem = gpu_memory_mib();
        let now = run_times();
        let all_runs = (runs * engines.len() as u64) as f64;
        let per_run = |a: Duration, b: Duration| (a - b).as_secs_f64() * 1e3 / all_runs;
        let (fill_ms, bind_ms, compute_ms) = (
            per_run(now.fill, phases.fill),
            per_run(now.bind, phases.bind),
            per_run(now.compute, phases.compute),
        );
        println!(
            "| engine, batch {b}{label} | {rate:.1} | {:.1} / {:.1} per batch | GPU memory {}; per run: fill {fill_ms:.2} ms, bind {bind_ms:.2} ms, compute {compute_ms:.2} ms |",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
            mem.map_or("-".into(), |m| format!("{m} MiB"))
        );
        record(json!({"kind": kind, "batch": b, "clips_per_s": rate,
            "batch_ms_p50": percentile(&times, 0.5), "batch_ms_p99": percentile(&times, 0.99),
            "gpu_mib": mem, "fill_ms": fill_ms, "bind_ms": bind_ms, "compute_ms": compute_ms,
            "cuda_options": std::env::var("NONLOCAL_CUDA_OPTIONS").unwrap_or_default(),
            "unfused": local.and_then(LocalBackend::unfused_reason).is_some()}))?;
    }

    let pattern = &args.pattern;
    let caps = format!(
        "video/x-raw,format={},width={w},height={h},framerate=30/1",
        args.format
    );
    let element = |i: u64, extra: &str| {
        if let Some(servers) = &args.server {
            return format!(
                "nonlocalclassify server=\"{servers}\" server-model=\"{server_model}\" server-requests={} max-batch={} batch-timeout={} {extra}",
                args.server_requests, args.max_batch, args.batch_timeout
            );
        }
        format!(
            "nonlocalclassify model=\"{}\" execution-provider={} openvino-threads={} openvino-streams={} device-id={} max-batch={} batch-timeout={} resample={} {extra}",
            args.model,
            args.provider,
            args.openvino_threads,
            args.openvino_streams,
            devices[i as usize % devices.len()],
            args.max_batch,
            args.batch_timeout,
            args.resample
        )
    };
    // Non-live pipelines: as fast as they go, nothing dropped.
    for &streams in args.streams.iter().filter(|&&s| s > 0) {
        let frames = args.clips.div_ceil(streams).max(1) * u64::from(config.clip_stride);
        let desc = (0..streams)
            .map(|i| {
                format!(
                    "videotestsrc num-buffers={frames} pattern={pattern} ! {caps} ! {} ! fakesink sync=false",
                    element(i, "")
                )
            })
            .collect::<Vec<_>>()
            .join(" ");
        let before = profile();
        let phases = run_times();
        let cpu_before = process_cpu_secs();
        range.start();
        let run = run_pipeline(&desc, None);
        range.stop();
        let cpu = process_cpu_secs() - cpu_before;
        let run = run?;
        let after = profile();
        let now = run_times();
        let per_run = |a: Duration, b: Duration| {
            (a - b).as_secs_f64() * 1e3 / (after.runs - before.runs).max(1) as f64
        };
        let (fill_ms, bind_ms, compute_ms) = (
            per_run(now.fill, phases.fill),
            per_run(now.bind, phases.bind),
            per_run(now.compute, phases.compute),
        );
        println!(
            "  per run: fill {fill_ms:.2} ms, bind (transfer) {bind_ms:.2} ms, compute {compute_ms:.2} ms; process CPU {:.1} cores of {}",
            cpu / run.secs,
            std::thread::available_parallelism().map_or(0, |n| n.get()),
        );
        let mem = gpu_memory_mib();
        let rate = run.clips as f64 / run.secs;
        let (runs, items) = (after.runs - before.runs, after.items - before.items);
        let mean_batch = items as f64 / runs.max(1) as f64;
        let busy = (after.run - before.run).as_secs_f64() / run.secs;
        let source = {
            let desc = (0..streams)
                .map(|_| {
                    format!(
                        "videotestsrc num-buffers={frames} pattern={pattern} ! {caps} ! fakesink sync=false"
                    )
                })
                .collect::<Vec<_>>()
                .join(" ");
            let r = run_pipeline(&desc, None)?;
            (streams * frames) as f64 / r.secs / f64::from(config.clip_stride)
        };
        println!(
            "| element, {streams} streams | {rate:.1} | {:.1} / {:.1} | mean batch {mean_batch:.2}, engine busy {:.0} %, source alone {source:.1} clips/s, GPU memory {} |",
            percentile(&run.latencies_ms, 0.5),
            percentile(&run.latencies_ms, 0.99),
            busy * 100.0,
            mem.map_or("-".into(), |m| format!("{m} MiB"))
        );
        record(
            json!({"kind": "element", "streams": streams, "clips": run.clips,
            "clips_per_s": rate, "latency_ms_p50": percentile(&run.latencies_ms, 0.5),
            "latency_ms_p99": percentile(&run.latencies_ms, 0.99), "mean_batch": mean_batch,
            "engine_busy": busy, "source_clips_per_s": source, "gpu_mib": mem,
            "process_cpu_cores": cpu / run.secs,
            "max_batch": args.max_batch, "size": args.size, "format": args.format,
            "pattern": args.pattern, "resample": args.resample}),
        )?;
    }

    // One stream in objects mode: each buffer gets N boxes from a probe on the element's sink
    // pad, each box its own clips.
    for &objects in args.objects.iter().filter(|&&n| n > 0) {
        let clips = args.clips.div_ceil(u64::from(objects)).max(1);
        let frames = clips * u64::from(config.clip_stride);
        let desc = format!(
            "videotestsrc num-buffers={frames} pattern={pattern} ! {caps} ! {} ! fakesink sync=false",
            element(
                0,
                &format!(
                    "name=classify regions=objects max-objects={}",
                    objects.max(16)
                )
            )
        );
        let boxes = object_boxes(objects, w, h);
        let before = profile();
        let cpu_before = process_cpu_secs();
        let run = run_pipelines(&[desc], Duration::ZERO, None, &|p| {
            attach_boxes(p, "classify", &boxes)
        })?;
        let cpu = process_cpu_secs() - cpu_before;
        let after = profile();
        let rate = run.clips as f64 / run.secs;
        let (runs, items) = (after.runs - before.runs, after.items - before.items);
        let mean_batch = items as f64 / runs.max(1) as f64;
        let busy = (after.run - before.run).as_secs_f64() / run.secs;
        println!(
            "| objects, one {w}×{h} stream, {objects} objects | {rate:.1} | {:.1} / {:.1} | {} clips, mean batch {mean_batch:.2}, engine busy {:.0} %, process CPU {:.1} cores |",
            percentile(&run.latencies_ms, 0.5),
            percentile(&run.latencies_ms, 0.99),
            run.clips,
            busy * 100.0,
            cpu / run.secs,
        );
        record(
            json!({"kind": "objects", "streams": 1, "objects": objects, "clips": run.clips,
            "clips_per_s": rate, "latency_ms_p50": percentile(&run.latencies_ms, 0.5),
            "latency_ms_p99": percentile(&run.latencies_ms, 0.99), "mean_batch": mean_batch,
            "engine_busy": busy, "process_cpu_cores": cpu / run.secs,
            "max_batch": args.max_batch, "size": args.size, "format": args.format,
            "pattern": args.pattern, "boxes": boxes.iter().map(|b| [b.0, b.1, b.2, b.3]).collect::<Vec<_>>()}),
        )?;
    }

    // Live sources at 30 fps: every clip should be classified, none dropped.
    if args.live_streams > 0 {
        let stride = args.live_clip_stride.unwrap_or(config.clip_stride);
        let descs = (0..args.live_streams).map(|i| {
            format!(
                "videotestsrc is-live=true pattern={pattern} ! {caps} ! {} ! fakesink sync=false",
                element(i, &format!("clip-stride={stride}"))
            )
        });
        let seconds = Duration::from_secs(args.live_seconds);
        let before = profile();
        let run = if args.live_stagger {
            // One pipeline per stream, started over one clip period.
            let period = Duration::from_secs_f64(f64::from(stride) / 30.0);
            run_pipelines(&descs.collect::<Vec<_>>(), period, Some(seconds), &|_| {
                Ok(())
            })?
        } else {
            run_pipeline(&descs.collect::<Vec<_>>().join(" "), Some(seconds))?
        };
        let after = profile();
        let mem = gpu_memory_mib();
        let frames_per_stream = seconds.as_secs_f64() * 30.0;
        let expected = (args.live_streams as f64
            * ((frames_per_stream - f64::from(config.clip_length * config.frame_stride))
                / f64::from(stride)
                + 1.0)
                .floor()
                .max(0.0)) as u64;
        let (runs, items) = (after.runs - before.runs, after.items - before.items);
        println!(
            "| live, {} streams × 30 fps{}, {:.0} s, clip every {stride} frames | {:.1} | {:.1} / {:.1} | {} clips of about {expected} expected, {} dropped, mean batch {:.2}, GPU memory {} |",
            args.live_streams,
            if args.live_stagger { " (staggered starts)" } else { "" },
            seconds.as_secs_f64(),
            run.clips as f64 / run.secs,
            percentile(&run.latencies_ms, 0.5),
            percentile(&run.latencies_ms, 0.99),
            run.clips,
            run.dropped,
            items as f64 / runs.max(1) as f64,
            mem.map_or("-".into(), |m| format!("{m} MiB"))
        );
        record(json!({"kind": "live", "streams": args.live_streams,
            "seconds": seconds.as_secs_f64(), "staggered": args.live_stagger,
            "clip_stride": stride, "clips": run.clips, "expected": expected,
            "dropped": run.dropped, "clips_per_s": run.clips as f64 / run.secs,
            "latency_ms_p50": percentile(&run.latencies_ms, 0.5),
            "latency_ms_p99": percentile(&run.latencies_ms, 0.99),
            "mean_batch": items as f64 / runs.max(1) as f64, "gpu_mib": mem}))?;
    }
    let p = profile();
    println!(
        "engine thread: {} runs, {} clips, {:.2} s in runs, {:.2} s outside runs",
        p.runs,
        p.items,
        p.run.as_secs_f64(),
        p.other.as_secs_f64()
    );
    Ok(())
}
