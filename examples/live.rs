//! Live action recognition: classify a camera, stream or test pattern with `nonlocalclassify` and
//! show the current top label over the video.
//!
//! ```text
//! SOURCE ! videoconvert ! nonlocalclassify smoothing=4 ! videoconvert ! textoverlay
//!        ! videoconvert ! autovideosink            (or an encoder, a muxer and filesink)
//! ```
//!
//! SOURCE is a live `videotestsrc` by default, or `uridecodebin uri=…` for `--uri` (a camera as
//! `v4l2:///dev/video0`, an `rtsp://` stream, a file…). The overlay text is updated from the
//! element's per-clip messages on the bus, which are also printed, one line per clip. Without a
//! display, `--record FILE` writes the overlaid video instead; the container follows the file
//! extension (see `--help`). Stop with `--duration SECONDS` or by pressing Enter, which finishes the
//! recording properly; Ctrl-C stops at once and may leave the last part of a recording unreadable.
//!
//! ```text
//! cargo run --release --example live -- --record out.webm --duration 20
//! cargo run --release --example live -- --uri v4l2:///dev/video0
//! ```

use std::io::{BufRead, IsTerminal};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[path = "../src/bin/nonlocal-classify/common.rs"]
mod common;
use anyhow::{anyhow, bail, Context};
use clap::Parser;
use common::{find_model, with_detail};
use gst::glib;
use gst::prelude::*;
use gstnonlocal::nonlocalclassify::ExecutionProvider;

const AFTER_HELP: &str = "\
Model: --model, else the NONLOCAL_MODEL environment variable, else the project's default model
(tools/default-model, exported once into .cache/models).

Recording (--record FILE) picks the muxer from the extension and the first encoder of the list
that is installed:
  .mkv        matroskamux: x264enc, vp8enc, theoraenc, jpegenc
  .webm       webmmux: vp8enc, vp9enc
  .ogg .ogv   oggmux: theoraenc
  .mp4 .mov   mp4mux / qtmux: x264enc
  .avi        avimux: jpegenc

Live sources drop the clips the model cannot keep up with (the element's max-pending); each
printed line gives the clip's time, the top label and score averaged over the last --smoothing
clips, and how many clips were dropped so far. A live source runs until --duration, Enter, or
Ctrl-C; a file runs to its end.";

#[derive(Parser, Debug)]
#[command(
    name = "live",
    version,
    about = "Show the action the nonlocalclassify element sees in a live video, over the video",
    after_help = AFTER_HELP
)]
struct Args {
    /// Source URI (v4l2:///dev/video0, rtsp://…, file:///…, a path) [default: a live test pattern]
    #[arg(long, value_name = "URI")]
    uri: Option<String>,

    /// ONNX model [default: $NONLOCAL_MODEL, else the output of tools/default-model]
    #[arg(long, value_name = "FILE")]
    model: Option<PathBuf>,

    /// Average the scores of the last N clips
    #[arg(long, value_name = "N", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..))]
    smoothing: u32,

    /// Decoded frames between clip starts [default: the model's clip length × frame stride]
    #[arg(long, value_name = "N")]
    clip_stride: Option<u32>,

    /// Run on the GPU (execution-provider=cuda); fails if CUDA is unavailable
    #[arg(long, conflicts_with = "provider")]
    use_gpu: bool,

    /// Where inference runs (auto = CUDA when available, else CPU)
    // The CPU unless asked, as nonlocal-classify does.
    #[arg(long, value_enum, default_value_t = ExecutionProvider::Cpu)]
    provider: ExecutionProvider,

    /// Write the overlaid video to FILE (.mkv, .webm, .ogg/.ogv, .mp4, .avi) instead of showing it
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,

    /// Stop after this many seconds
    #[arg(long, value_name = "SECONDS")]
    duration: Option<f64>,
}

fn make(factory: &str) -> anyhow::Result<gst::Element> {
    gst::ElementFactory::make(factory)
        .build()
        .with_context(|| format!("the GStreamer element {factory} is missing"))
}

fn exists(factory: &str) -> bool {
    gst::ElementFactory::find(factory).is_some()
}

/// Encoder (with its parser, if any) and muxer for a recording, chosen by extension.
fn recorder(path: &Path) -> anyhow::Result<Vec<gst::Element>> {
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let (muxer, encoders): (&str, &[&[&str]]) = match ext.as_str() {
        "mkv" => (
            "matroskamux",
            &[
                &["x264enc", "h264parse"],
                &["vp8enc"],
                &["theoraenc"],
                &["jpegenc"],
            ],
        ),
        "webm" => ("webmmux", &[&["vp8enc"], &["vp9enc"]]),
        "ogg" | "ogv" => ("oggmux", &[&["theoraenc"]]),
        "mp4" => ("mp4mux", &[&["x264enc", "h264parse"]]),
        "mov" => ("qtmux", &[&["x264enc", "h264parse"]]),
        "avi" => ("avimux", &[&["jpegenc"]]),
        _ => bail!(
            "cannot record to {}: use a .mkv, .webm, .ogg, .ogv, .mp4, .mov or .avi file",
            path.display()
        ),
    };
    if !exists(muxer) {
        bail!("cannot record to .{ext}: the GStreamer element {muxer} is missing");
    }
    let Some(chain) = encoders.iter().find(|c| c.iter().all(|e| exists(e))) else {
        let names: Vec<String> = encoders.iter().map(|c| c.join(" ! ")).collect();
        bail!(
            "cannot record to .{ext}: none of its encoders is installed ({}); try .mkv or .webm",
            names.join(", ")
        );
    };
    let mut elements = chain
        .iter()
        .map(|e| make(e))
        .collect::<anyhow::Result<Vec<_>>>()?;
    elements.push(make(muxer)?);
    elements.push(
        gst::ElementFactory::make("filesink")
            .property("location", path.to_string_lossy().as_ref())
            .build()?,
    );
    Ok(elements)
}

/// The source part: a live test pattern, or `uridecodebin` whose video pad is linked to `next`.
fn add_source(
    pipeline: &gst::Pipeline,
    uri: Option<&str>,
    next: &gst::Element,
) -> anyhow::Result<()> {
    let Some(uri) = uri else {
        let src = gst::ElementFactory::make("videotestsrc")
            .property("is-live", true)
            .property_from_str("pattern", "ball")
            .build()?;
        let caps = gst::ElementFactory::make("capsfilter")
            .property(
                "caps",
                gst::Caps::builder("video/x-raw")
                    .field("width", 320)
                    .field("height", 240)
                    .field("framerate", gst::Fraction::new(25, 1))
                    .build(),
            )
            .build()?;
        pipeline.add_many([&src, &caps])?;
        gst::Element::link_many([&src, &caps, next])?;
        return Ok(());
    };
    let uri = if uri.contains("://") {
        uri.to_string()
    } else {
        let abs = std::path::absolute(uri).with_context(|| format!("bad path {uri}"))?;
        glib::filename_to_uri(&abs, None)?.to_string()
    };
    let decoder = gst::ElementFactory::make("uridecodebin")
        .property("uri", &uri)
        .build()
        .context("uridecodebin is missing (install GStreamer's base plugins)")?;
    pipeline.add(&decoder)?;
    let sink_pad = next
        .static_pad("sink")
        .ok_or_else(|| anyhow!("no sink pad"))?;
    let pad_sink = sink_pad.clone();
    decoder.connect_pad_added(move |_, pad| {
        let caps = pad.current_caps().unwrap_or_else(|| pad.query_caps(None));
        let video = caps
            .structure(0)
            .is_some_and(|s| s.name().as_str() == "video/x-raw");
        if video && !pad_sink.is_linked() {
            let _ = pad.link(&pad_sink);
        }
    });
    decoder.connect_no_more_pads(move |decoder| {
        if !sink_pad.is_linked() {
            gst::element_error!(
                decoder,
                gst::StreamError::WrongType,
                ("{} has no video stream that can be decoded", uri)
            );
        }
    });
    Ok(())
}

fn build(args: &Args, model: &Path) -> anyhow::Result<(gst::Pipeline, gst::Element)> {
    let pipeline = gst::Pipeline::new();
    let convert_in = make("videoconvert")?;
    let classifier = make("nonlocalclassify")?;
    classifier.set_property("model", model.to_string_lossy().as_ref());
    classifier.set_property("smoothing", args.smoothing);
    classifier.set_property("top-k", 1u32);
    if let Some(stride) = args.clip_stride {
        classifier.set_property("clip-stride", stride);
    }
    let provider = if args.use_gpu {
        ExecutionProvider::Cuda
    } else {
        args.provider
    };
    classifier.set_property("execution-provider", provider);
    let convert_mid = make("videoconvert")?;
    let overlay = gst::ElementFactory::make("textoverlay")
        .property("text", "waiting for the first clip…")
        .property_from_str("valignment", "top")
        .property_from_str("halignment", "left")
        .property("shaded-background", true)
        .property("font-desc", "Sans 16")
        .build()
        .context("textoverlay is missing: install the pango elements (Debian: gstreamer1.0-x; tools/install-prereqs does)")?;
    let queue = make("queue")?;
    let convert_out = make("videoconvert")?;
    let mut chain = vec![
        convert_in.clone(),
        classifier.clone(),
        convert_mid,
        overlay.clone(),
        queue,
        convert_out,
    ];
    match &args.record {
        Some(path) => chain.extend(recorder(path)?),
        None => chain.push(make("autovideosink")?),
    }
    pipeline.add_many(&chain)?;
    gst::Element::link_many(&chain)?;
    add_source(&pipeline, args.uri.as_deref(), &convert_in)?;
    Ok((pipeline, overlay))
}

fn seconds(ns: u64) -> String {
    if ns == u64::MAX {
        "      ?".into()
    } else {
        format!("{:7.1}", ns as f64 / 1e9)
    }
}

fn run(args: Args) -> anyhow::Result<()> {
    if let Some(d) = args.duration {
        if !(d.is_finite() && d > 0.0) {
            bail!("--duration must be a positive number of seconds");
        }
    }
    let model = find_model(args.model.clone())?;
    gst::init().context("GStreamer cannot be initialised")?;
    gstnonlocal::plugin_register_static().context("the nonlocal plugin cannot be registered")?;
    let (pipeline, overlay) = build(&args, &model)?;
    let main_loop = glib::MainLoop::new(None, false);
    let bus = pipeline
        .bus()
        .ok_or_else(|| anyhow!("pipeline without bus"))?;
    let failure: std::rc::Rc<std::cell::RefCell<Option<String>>> = Default::default();

    let watch = {
        let main_loop = main_loop.clone();
        let failure = failure.clone();
        bus.add_watch_local(move |_, msg| {
            match msg.view() {
                gst::MessageView::Element(e) => {
                    if let Some(s) = e.structure().filter(|s| s.name() == "nonlocalclassify") {
                        let label = s.get::<&str>("label").unwrap_or("");
                        let score = s.get::<f64>("score").unwrap_or(0.0);
                        let time = s.get::<u64>("stream-time").unwrap_or(u64::MAX);
                        let dropped = s.get::<u64>("dropped").unwrap_or(0);
                        overlay.set_property("text", format!("{label}  {:.0}%", score * 100.0));
                        println!(
                            "{} s  {score:.3}  {label}  ({dropped} dropped)",
                            seconds(time)
                        );
                    }
                }
                gst::MessageView::Warning(w) => {
                    eprintln!("warning: {}", with_detail(&w.error(), w.debug()));
                }
                gst::MessageView::Error(e) => {
                    *failure.borrow_mut() = Some(with_detail(&e.error(), e.debug()));
                    main_loop.quit();
                }
                gst::MessageView::Eos(_) => main_loop.quit(),
                _ => {}
            }
            glib::ControlFlow::Continue
        })?
    };

    // Stop by sending EOS, so that recordings are finished; give up after 10 s more.
    let stop = {
        let pipeline = pipeline.downgrade();
        let main_loop = main_loop.clone();
        move || {
            if let Some(p) = pipeline.upgrade() {
                p.send_event(gst::event::Eos::new());
            }
            let main_loop = main_loop.clone();
            glib::timeout_add_once(Duration::from_secs(10), move || main_loop.quit());
        }
    };
    if std::io::stdin().is_terminal() {
        eprintln!("Press Enter to stop.");
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            if std::io::stdin().lock().read_line(&mut line).unwrap_or(0) > 0 {
                stop();
            }
        });
    }

    // Opening the model happens here; --duration counts from when the video runs.
    let started = pipeline.set_state(gst::State::Playing);
    if started.is_ok() {
        if let Some(d) = args.duration {
            glib::timeout_add_once(Duration::from_secs_f64(d), stop);
        }
        main_loop.run();
    } else {
        // The reason is on the bus.
        while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(e) = msg.view() {
                *failure.borrow_mut() = Some(with_detail(&e.error(), e.debug()));
            }
        }
    }
    let _ = pipeline.set_state(gst::State::Null);
    drop(watch);
    if let Some(reason) = failure.borrow_mut().take() {
        bail!("{reason}");
    }
    if started.is_err() {
        bail!("the pipeline cannot start");
    }
    if let Some(path) = &args.record {
        eprintln!("recorded {}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
