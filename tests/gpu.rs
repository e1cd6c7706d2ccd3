//! Checks that need a CUDA card; ignored elsewhere. On a GPU machine (ONNX Runtime with CUDA on
//! ORT_DYLIB_PATH):
//!
//!     NONLOCAL_GPU_MODELS=a.onnx:b.onnx cargo test --release --test gpu -- --ignored
//!
//! NONLOCAL_GPU_MODELS lists the models to compare (default: the float16 and uint8 test models);
//! benches/gpu/run.sh runs these with the exported Non-local and I3D models.

mod common;

use common::*;
use gstnonlocal::config::{ClipConfig, InputType, Overrides};
use gstnonlocal::engine::{
    Batch, LocalBackend, LocalSettings, Provider, ProviderChoice, SharedEngine,
};

fn gpu_models() -> Vec<String> {
    match std::env::var("NONLOCAL_GPU_MODELS") {
        Ok(list) if !list.is_empty() => list.split(':').map(str::to_string).collect(),
        _ => vec![model("probe_nthwc_f16.onnx"), model("probe_u8.onnx")],
    }
}

/// An engine of its own for `path` on `choice`'s provider (device 0).
fn open(path: &std::path::Path, choice: ProviderChoice) -> SharedEngine {
    let backend = LocalBackend::open(path, &LocalSettings::on(choice)).expect("engine");
    SharedEngine::new(Box::new(backend)).expect("engine threads")
}

/// A deterministic clip batch: pixel values from a hash of the position, normalised as the
/// model's metadata says (uint8 models take the pixels themselves).
fn clip_batch(config: &ClipConfig, n: usize) -> Batch {
    let len = config.clip_elements() * n;
    let pixel = |i: usize| ((i.wrapping_mul(2654435761) >> 7) % 256) as u8;
    let norm = |i: usize| {
        let c = match config.layout {
            gstnonlocal::preprocess::Layout::Nthwc => i % 3,
            gstnonlocal::preprocess::Layout::Ncthw => (i / (config.clip_elements() / 3)) % 3,
        };
        (f32::from(pixel(i)) - config.norm.mean[c]) / config.norm.std[c]
    };
    match config.input_type {
        InputType::U8 => Batch::U8((0..len).map(pixel).collect()),
        InputType::F16 => Batch::F16((0..len).map(|i| half::f16::from_f32(norm(i))).collect()),
        InputType::F32 => Batch::F32((0..len).map(norm).collect()),
    }
}

/// CUDA scores `a` against CPU scores `b` of the same clips: within float16 tolerance, the same
/// top class unless the CPU's first two are closer than that.
fn assert_agree(path: &std::path::Path, a: &[Vec<f32>], b: &[Vec<f32>]) {
    for (x, y) in a.iter().zip(b) {
        let top = y.iter().cloned().fold(f32::MIN, f32::max).abs().max(1e-6);
        let diff = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0.0f32, f32::max);
        // float16 keeps about three decimal digits; 2 % of the largest score allows for the
        // different kernels and accumulation orders of the two providers.
        assert!(
            diff <= 0.02 * top + 1e-5,
            "{}: CUDA and CPU scores differ by {diff} (largest score {top})",
            path.display()
        );
        let argmax = |v: &[f32]| {
            v.iter()
                .enumerate()
                .max_by(|p, q| p.1.total_cmp(q.1))
                .map(|(i, _)| i)
        };
        let second = {
            let mut s = y.clone();
            s.sort_by(|p, q| q.total_cmp(p));
            s.get(1).copied().unwrap_or(0.0)
        };
        // The top class agrees unless the CPU's first two are within the tolerance.
        if top - second > 0.02 * top {
            assert_eq!(argmax(x), argmax(y), "{}", path.display());
        }
    }
}

/// Engines of their own for `path` on CUDA (checked to be on CUDA) and on the CPU, and the
/// model's clip configuration.
fn cuda_and_cpu(path: &std::path::Path) -> (SharedEngine, SharedEngine, ClipConfig) {
    let cuda = open(path, ProviderChoice::Cuda);
    assert_eq!(
        cuda.backend::<LocalBackend>().map(|l| l.provider),
        Some(Provider::Cuda)
    );
    let cpu = open(path, ProviderChoice::Cpu);
    let config = ClipConfig::resolve(&cpu.metadata, &cpu.io, Overrides::default()).unwrap();
    (cuda, cpu, config)
}

#[test]
#[ignore = "needs a CUDA card: cargo test --test gpu -- --ignored"]
fn cuda_and_cpu_agree_within_fp16_tolerance() {
    init();
    for path in gpu_models() {
        let path = std::path::Path::new(&path);
        let (cuda, cpu, config) = cuda_and_cpu(path);
        let n = cpu.fixed_batch().unwrap_or(2);
        let batch = clip_batch(&config, n);
        let shape = config.input_shape(n);
        let (a, b) = (
            cuda.run(shape, &batch).unwrap(),
            cpu.run(shape, &batch).unwrap(),
        );
        assert_eq!(a.len(), n);
        assert_agree(path, &a, &b);
        println!(
            "{}: CUDA and CPU agree on {n} clips",
            path.file_name().unwrap().to_string_lossy()
        );
    }
}

/// Clips in a buffer the CUDA engine lends (page-locked), submitted (copied into a page-locked
/// batch, which goes to the card as one block, padding rows included) and run straight from the
/// buffer, score as the CPU scores the same clips.
#[test]
#[ignore = "needs a CUDA card: cargo test --test gpu -- --ignored"]
fn lent_clips_and_padded_batches_agree_with_the_cpu() {
    init();
    for path in gpu_models() {
        let path = std::path::Path::new(&path);
        let (cuda, cpu, config) = cuda_and_cpu(path);
        // Three clips: a batch of four with the last repeated (one of the fixed size when the
        // graph fixes it).
        let n = cpu.fixed_batch().map_or(3, |b| b.saturating_sub(1).max(1));
        let clips = clip_batch(&config, n);
        let mut lent = cuda.page_locked_buffer(clips.len());
        assert!(
            lent.is_lent(),
            "{}: the CUDA engine lent no page-locked buffer",
            path.display()
        );
        lent.copy_from(&clips).unwrap();
        // Straight from the buffer (a graph with a fixed batch takes only that batch).
        let direct = cpu
            .fixed_batch()
            .is_none()
            .then(|| cuda.run(config.input_shape(n), &lent).unwrap());
        let shape = config.input_shape(1);
        let a = cuda.submit(shape, n, lent).recv().unwrap().unwrap();
        let b = cpu.submit(shape, n, clips).recv().unwrap().unwrap();
        assert_eq!(a.len(), n);
        assert_agree(path, &a, &b);
        if let Some(direct) = &direct {
            assert_eq!(direct.len(), n);
            assert_agree(path, direct, &b);
        }
        // Where the CPU scores the clips differently (the probe models do; random weights may
        // not), a clip copied into the wrong slot shows.
        if b.windows(2).all(|w| w[0] != w[1]) {
            assert!(a.windows(2).all(|w| w[0] != w[1]), "{}", path.display());
        }
        println!(
            "{}: {n} lent clips agree with the CPU",
            path.file_name().unwrap().to_string_lossy()
        );
    }
}

#[test]
#[ignore = "needs a CUDA card: cargo test --test gpu -- --ignored"]
fn gpu_out_of_memory_is_one_clear_error() {
    // A 1 MiB arena cannot hold any real model's weights or activations.
    let path = gpu_models().remove(0);
    let started = std::time::Instant::now();
    let e = start_error(&[
        ("model", v(path.as_str())),
        ("execution-provider", v("cuda")),
        ("gpu-memory-limit", v(1u32)),
    ]);
    assert!(
        e.contains("does not fit in the memory of CUDA device 0") && e.contains("gpu-memory-limit"),
        "{e}"
    );
    assert_eq!(e.matches("does not fit").count(), 1, "{e}");
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
}

#[test]
#[ignore = "needs a CUDA card: cargo test --test gpu -- --ignored"]
fn an_int8_model_under_cuda_is_one_clear_error() {
    // An int8 (QDQ) model: refused on CUDA, whether asked for or chosen by auto.
    for provider in ["cuda", "auto"] {
        let e = start_error(&[
            ("model", v(model("qdq_colour.onnx"))),
            ("execution-provider", v(provider)),
        ]);
        assert!(
            e.starts_with("model '") && e.contains("qdq_colour.onnx' is quantized"),
            "{provider}: {e}"
        );
        assert!(e.contains("execution-provider=openvino"), "{provider}: {e}");
        assert_eq!(e.matches("is quantized").count(), 1, "{provider}: {e}");
    }
}

#[test]
#[ignore = "needs a CUDA card: cargo test --test gpu -- --ignored"]
fn refused_fusion_reopens_the_sessions_unfused() {
    init();
    let Some(path) = std::env::var("NONLOCAL_GPU_MODELS")
        .ok()
        .and_then(|l| l.split(':').next().map(str::to_string))
        .filter(|p| !p.is_empty())
    else {
        println!("skipped: needs a real network in NONLOCAL_GPU_MODELS");
        return;
    };
    let path = std::path::Path::new(&path);
    // cuDNN fuses the bias into channels-last convolutions only: asking for fusion with
    // channels-first convolutions makes it refuse every layer, as it would one layer it has no
    // fused kernel for. (run.sh runs these tests one at a time, so the variable is ours.)
    std::env::set_var("NONLOCAL_CUDA_OPTIONS", "prefer_nhwc=0,fuse_conv_bias=1");
    let cuda = open(path, ProviderChoice::Cuda);
    let cpu = open(path, ProviderChoice::Cpu);
    let config = ClipConfig::resolve(&cpu.metadata, &cpu.io, Overrides::default()).unwrap();
    let n = cpu.fixed_batch().unwrap_or(2);
    let batch = clip_batch(&config, n);
    let shape = config.input_shape(n);
    let a = cuda.run(shape, &batch);
    std::env::remove_var("NONLOCAL_CUDA_OPTIONS");
    let a = a.expect("the run succeeds without fusion");
    let reason = cuda
        .backend::<LocalBackend>()
        .and_then(LocalBackend::unfused_reason)
        .expect("fusion was refused and turned off");
    assert!(reason.contains("CUDNN"), "{reason}");
    assert_agree(path, &a, &cpu.run(shape, &batch).unwrap());
    // The next batch size opens its session without fusion straight away.
    let shape1 = config.input_shape(1);
    let one = clip_batch(&config, 1);
    assert_agree(
        path,
        &cuda.run(shape1, &one).unwrap(),
        &cpu.run(shape1, &one).unwrap(),
    );
}

/// Clips sent as source spans (resample=engine), resampled on the card, score as the CPU scores
/// the same spans resampled by the same graph on the CPU: enlarged and reduced frames, three
/// clips of different content in a padded batch.
#[test]
#[ignore = "needs a CUDA card: cargo test --test gpu -- --ignored"]
fn spans_resampled_on_the_card_agree_with_the_cpu() {
    use gstnonlocal::engine::SpanClips;
    use gstnonlocal::preprocess::{FrameView, PixelFormat, Scaler, YuvMatrix, YuvRange};
    init();
    for path in gpu_models() {
        let path = std::path::Path::new(&path);
        let (cuda, cpu, config) = cuda_and_cpu(path);
        if config.input_type != InputType::U8 {
            continue;
        }
        assert!(cuda.resamples() && cpu.resamples(), "{}", path.display());
        let s = config.scale_size;
        for (w, h) in [(s * 4 / 3 * 15 / 16, s * 15 / 16), (s * 5 / 2, s * 2)] {
            let (w, h) = (w.max(1) & !3, h.max(1));
            let mut scaler = Scaler::new();
            let mut data = Vec::new();
            let mut geometry = None;
            let n = 3usize;
            for k in 0..n * config.clip_length as usize {
                let rgb: Vec<u8> = (0..(w * h * 3) as usize)
                    .map(|i| ((i.wrapping_mul(2654435761) >> 7).wrapping_add(k * 37) % 256) as u8)
                    .collect();
                let view = FrameView {
                    format: PixelFormat::Rgb,
                    width: w,
                    height: h,
                    planes: [&rgb, &[], &[]],
                    strides: [w as usize * 3, 0, 0],
                    matrix: YuvMatrix::Bt601,
                    range: YuvRange::Limited,
                };
                let (span, g) = scaler.centre_span(&view, s, config.crop_size).unwrap();
                data.extend_from_slice(&span.data);
                geometry = Some(g);
            }
            let what = SpanClips {
                span: geometry.unwrap(),
                frames: config.clip_length as usize,
                layout: config.layout,
            };
            let shape = config.input_shape(1);
            let a = cuda
                .submit_spans(shape, what, n, Batch::U8(data.clone().into()))
                .recv()
                .unwrap()
                .unwrap();
            let b = cpu
                .submit_spans(shape, what, n, Batch::U8(data.into()))
                .recv()
                .unwrap()
                .unwrap();
            assert_eq!(a.len(), n);
            assert_agree(path, &a, &b);
            if b.windows(2).all(|w| w[0] != w[1]) {
                assert!(a.windows(2).all(|w| w[0] != w[1]), "{}", path.display());
            }
            println!(
                "{}: {n} clips of {w}x{h} spans resampled on the card agree with the CPU",
                path.file_name().unwrap().to_string_lossy()
            );
        }
    }
}

/// The element's results of a `gst-launch`-style pipeline holding `nonlocalclassify name=c`
/// (top-k every class), and the caps its sink negotiated.
fn element_run(launch: &str) -> (Vec<Vec<(String, f64)>>, gst::Caps) {
    use gst::prelude::*;
    init();
    let pipeline = gst::parse::launch(launch)
        .unwrap_or_else(|e| panic!("{launch}: {e}"))
        .downcast::<gst::Pipeline>()
        .unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let bus = pipeline.bus().unwrap();
    let mut results = Vec::new();
    loop {
        let msg = bus
            .timed_pop(gst::ClockTime::from_seconds(120))
            .expect("EOS within 120 s");
        match msg.view() {
            gst::MessageView::Eos(_) => break,
            gst::MessageView::Error(e) => panic!("{launch}: {} | {:?}", e.error(), e.debug()),
            gst::MessageView::Element(e) => {
                if let Some(s) = e.structure().filter(|s| s.name() == "nonlocalclassify") {
                    let mut scores: Vec<(String, f64)> = scores_of(s).into_iter().collect();
                    scores.sort_by(|a, b| a.0.cmp(&b.0));
                    results.push(scores);
                }
            }
            _ => {}
        }
    }
    let caps = pipeline
        .by_name("c")
        .and_then(|c| c.static_pad("sink"))
        .and_then(|p| p.current_caps())
        .expect("negotiated caps");
    pipeline.set_state(gst::State::Null).unwrap();
    (results, caps)
}

/// Frames uploaded to the card (`cudaupload`, CUDA memory) score as the same frames in system
/// memory: exactly with the CPU provider (the same pixels reach the same engine), within float16
/// tolerance on CUDA. Skipped without GStreamer's nvcodec elements (cudaupload).
#[test]
#[ignore = "needs a CUDA card: cargo test --test gpu -- --ignored"]
fn cuda_memory_from_cudaupload_scores_as_system_memory() {
    use gstnonlocal::nonlocalclassify::cuda_memory::CUDA_MEMORY_FEATURE;
    init();
    if gst::ElementFactory::find("cudaupload").is_none() {
        println!("skipped: no cudaupload (gst-plugins-bad's nvcodec, with a card it can open)");
        return;
    }
    for path in gpu_models() {
        for provider in ["cpu", "cuda"] {
            // NV12 as nvh264dec sends it, and RGBA; 80x60 frames are scaled up to the crop.
            for format in ["NV12", "RGBA"] {
                let source = format!(
                    "videotestsrc num-buffers=48 pattern=ball ! video/x-raw,format={format},width=80,height=60,framerate=25/1"
                );
                let element = format!(
                    "nonlocalclassify name=c model={path} execution-provider={provider} top-k=1000 ! fakesink"
                );
                let (host, host_caps) = element_run(&format!("{source} ! {element}"));
                let (card, card_caps) = element_run(&format!("{source} ! cudaupload ! {element}"));
                let features = |c: &gst::Caps| {
                    c.features(0)
                        .is_some_and(|f| f.contains(CUDA_MEMORY_FEATURE))
                };
                assert!(!features(&host_caps), "{host_caps}");
                assert!(features(&card_caps), "cudaupload gave {card_caps}");
                assert!(!host.is_empty());
                assert_eq!(host.len(), card.len(), "{path} {provider} {format}");
                if provider == "cpu" {
                    assert_eq!(host, card, "{path} {provider} {format}");
                } else {
                    let values = |r: &[Vec<(String, f64)>]| -> Vec<Vec<f32>> {
                        r.iter()
                            .map(|s| s.iter().map(|(_, x)| *x as f32).collect())
                            .collect()
                    };
                    for (a, b) in host.iter().zip(&card) {
                        let labels = |s: &[(String, f64)]| {
                            s.iter().map(|(l, _)| l.clone()).collect::<Vec<_>>()
                        };
                        assert_eq!(labels(a), labels(b), "{path} {provider} {format}");
                    }
                    assert_agree(std::path::Path::new(&path), &values(&card), &values(&host));
                }
                println!(
                    "{path} {provider} {format}: {} clips, CUDA memory scores as system memory",
                    host.len()
                );
            }
        }
    }
}
