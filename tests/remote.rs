//! The remote backend against a real Triton Inference Server (tools/triton-serve: the
//! tritonserver bundled in nvidia-pytriton, python-backend entries running ONNX Runtime on the
//! test models), started on 127.0.0.1 with free ports and stopped by PID.

mod common;
#[path = "common/triton.rs"]
mod triton;

use std::time::{Duration, Instant};

use gst::prelude::*;
use gstnonlocal::config::InputType;
use gstnonlocal::engine::remote::{RemoteError, RemoteModel, RemoteSettings};
use gstnonlocal::engine::{Batch, LocalSettings, ProviderChoice, SharedEngine};
use half::f16;
use triton::{Options, Server};

fn settings(servers: &str, model: &str, timeout_ms: u64) -> RemoteSettings {
    RemoteSettings::new(
        servers,
        model,
        Duration::from_millis(timeout_ms),
        4,
        None,
        None,
        None,
        None,
    )
    .unwrap()
}

fn models() -> std::path::PathBuf {
    triton::root().join("tests/models")
}

/// `n` clip items of the probe models' input size (4·8·8·3 values), distinct per item.
fn clip_values(n: usize) -> Vec<f32> {
    (0..n * 768)
        .map(|i| ((i * 7 + i / 768 * 31) % 251) as f32)
        .collect()
}

/// Remote scores of `values` (n items) equal in-process ONNX Runtime's, for one model.
fn assert_same_scores(server: &Server, model: &str, file: &str, n: usize) {
    let remote = RemoteModel::open(settings(&server.grpc, model, 10_000)).unwrap();
    let local = SharedEngine::local(
        &models().join(file),
        &LocalSettings::on(ProviderChoice::Cpu),
    )
    .unwrap();
    assert_eq!(remote.io.input_type, local.io.input_type);
    assert_eq!(remote.io.input_shape, local.io.input_shape);
    assert_eq!(
        remote.metadata, local.metadata,
        "configuration parameters = ONNX metadata"
    );
    let values = clip_values(n);
    let mut shape = [n as i64, 0, 0, 0, 0];
    shape[1..].copy_from_slice(&local.io.input_shape[1..]);
    let (batch, remote_scores) = match local.io.input_type.clone().unwrap() {
        InputType::F32 => {
            let items: Vec<&[f32]> = values.chunks(768).collect();
            (
                Batch::from(values.clone()),
                remote.infer(&shape, &items).unwrap(),
            )
        }
        InputType::U8 => {
            let v: Vec<u8> = values.iter().map(|&x| x as u8).collect();
            let items: Vec<&[u8]> = v.chunks(768).collect();
            (
                Batch::from(v.clone()),
                remote.infer(&shape, &items).unwrap(),
            )
        }
        InputType::F16 => {
            let v: Vec<f16> = values.iter().map(|&x| f16::from_f32(x)).collect();
            let items: Vec<&[f16]> = v.chunks(768).collect();
            (
                Batch::from(v.clone()),
                remote.infer(&shape, &items).unwrap(),
            )
        }
    };
    let local_scores = local.run(shape, &batch).unwrap();
    assert_eq!(remote_scores.len(), n);
    assert_eq!(
        remote_scores, local_scores,
        "{model}: remote scores = in-process scores"
    );
    // The values reveal the clip: not all the same.
    assert_ne!(remote_scores[0], remote_scores[n - 1]);
}

#[test]
fn scores_metadata_and_types_equal_in_process() {
    let server = Server::start();
    assert_same_scores(&server, "probe", "probe.onnx", 3);
    assert_same_scores(&server, "probe_u8", "probe_u8.onnx", 2);
    assert_same_scores(&server, "probe_nthwc_f16", "probe_nthwc_f16.onnx", 5);
    // More clips than the server's max batch (8): split into requests the server accepts.
    assert_same_scores(&server, "probe", "probe.onnx", 11);
}

#[test]
fn wrong_model_name_is_one_error_naming_server_and_model() {
    let server = Server::start();
    let started = Instant::now();
    let e = RemoteModel::open(settings(&server.grpc, "no_such_model", 10_000))
        .err()
        .expect("an unknown model is refused");
    let text = e.to_string();
    assert!(matches!(e, RemoteError::Model { .. }), "{text}");
    assert!(
        text.contains(&server.grpc) && text.contains("'no_such_model'"),
        "{text}"
    );
    assert!(text.contains("server-model"), "{text}");
    // Refused at once, not after the bound: the server is ready and has no such model.
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn unreachable_server_fails_after_the_bound_naming_server_and_model() {
    let address = format!("127.0.0.1:{}", triton::dead_port());
    let started = Instant::now();
    let e = RemoteModel::open(settings(&address, "probe", 1500))
        .err()
        .expect("nothing listens there");
    let waited = started.elapsed();
    let text = e.to_string();
    assert!(matches!(e, RemoteError::NotReady { .. }), "{text}");
    assert!(
        text.contains(&address) && text.contains("'probe'"),
        "{text}"
    );
    assert!(text.contains("1500 ms"), "{text}");
    assert!(
        waited >= Duration::from_millis(1400) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
}

#[test]
fn a_server_not_up_yet_at_start_is_waited_for() {
    let port = triton::dead_port();
    let address = format!("127.0.0.1:{port}");
    let opening =
        std::thread::spawn(move || RemoteModel::open(settings(&address, "probe", 60_000)));
    std::thread::sleep(Duration::from_millis(1500));
    let server = Server::start_with(Options {
        grpc_port: port,
        wait: false,
        ..Default::default()
    });
    let remote = opening
        .join()
        .unwrap()
        .expect("opens once the server is up");
    let items: Vec<&[f32]> = vec![&[1.0; 768]];
    let scores = remote.infer(&[1, 3, 4, 8, 8], &items).unwrap();
    assert_eq!(scores.len(), 1);
    // probe: the mean of each (channel, frame) plane of the tensor sent.
    assert_eq!(scores[0], vec![1.0; 12]);
    drop(server);
}

#[test]
fn a_dead_address_is_skipped_and_clips_are_spread_over_the_ready_ones() {
    let a = Server::start();
    let b = Server::start();
    let dead = format!("127.0.0.1:{}", triton::dead_port());
    let list = format!("{dead},{},{}", a.grpc, b.grpc);
    let remote = RemoteModel::open(settings(&list, "probe_nobatch", 10_000)).unwrap();
    let values = clip_values(1);
    let items: Vec<&[f32]> = vec![&values];
    let started = Instant::now();
    for _ in 0..12 {
        remote.infer(&[1, 3, 4, 8, 8], &items).unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(10));
    // The dead one was tried and failed (it is retried after its backoff); both others usable.
    assert!(remote.usable_servers().len() >= 2);
    // Both live servers got clips (per-server statistics: clips answered).
    let count = |s: &Server| {
        let one = RemoteModel::open(settings(&s.grpc, "probe_nobatch", 10_000)).unwrap();
        one.server_statistics().inferences
    };
    let (na, nb) = (count(&a), count(&b));
    assert_eq!(na + nb, 12, "every clip answered once");
    assert!(na >= 3 && nb >= 3, "spread: {na} and {nb}");
}

#[test]
fn the_server_batches_requests_in_flight_together() {
    let server = Server::start();
    let remote = std::sync::Arc::new(
        RemoteModel::open(settings(&server.grpc, "probe_delay", 10_000)).unwrap(),
    );
    let threads: Vec<_> = (0..8)
        .map(|k| {
            let remote = std::sync::Arc::clone(&remote);
            std::thread::spawn(move || {
                let values = clip_values(1 + k % 2);
                let items: Vec<&[f32]> = values.chunks(768).collect();
                remote.infer(&[1, 3, 4, 8, 8], &items).unwrap().len()
            })
        })
        .collect();
    let clips: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let stats = remote.server_statistics();
    assert_eq!(stats.inferences, clips as u64);
    assert_eq!(stats.requests, 8);
    assert!(
        stats.executions < 8,
        "8 requests in flight ran as {stats:?}"
    );
}

#[test]
fn a_shape_or_type_that_does_not_fit_is_refused_by_name() {
    let server = Server::start();
    let remote = RemoteModel::open(settings(&server.grpc, "probe", 10_000)).unwrap();
    // 5 frames where the served model takes 4.
    let values = vec![0.0f32; 3 * 5 * 64];
    let e = remote
        .infer(&[1, 3, 5, 8, 8], &[&values])
        .unwrap_err()
        .to_string();
    assert!(e.contains(&server.grpc) && e.contains("'probe'"), "{e}");
    assert!(e.contains("InvalidArgument") || e.contains("shape"), "{e}");
    // uint8 clips for a float32 input.
    let bytes = vec![0u8; 768];
    let e = remote
        .infer(&[1, 3, 4, 8, 8], &[&bytes])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("'probe'") && (e.contains("UINT8") || e.contains("datatype")),
        "{e}"
    );
}

#[test]
fn server_stopped_and_started_again() {
    let server = Server::start();
    let port = server.grpc_port;
    let remote = RemoteModel::open(settings(&server.grpc, "probe", 3000)).unwrap();
    let values = clip_values(1);
    let items: Vec<&[f32]> = vec![&values];
    let want = remote.infer(&[1, 3, 4, 8, 8], &items).unwrap();
    server.stop(true);
    drop(server);
    // Down longer than the bound: the batch fails after it, naming server and model.
    let started = Instant::now();
    let e = remote.infer(&[1, 3, 4, 8, 8], &items).unwrap_err();
    let waited = started.elapsed();
    assert!(matches!(e, RemoteError::Lost { .. }), "{e}");
    assert!(
        e.to_string().contains("3000 ms") && e.to_string().contains("'probe'"),
        "{e}"
    );
    assert!(
        waited >= Duration::from_millis(2900) && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    // Started again on the same port: the connection is retried and the answers are the same.
    let _again = Server::start_with(Options {
        grpc_port: port,
        wait: true,
        ..Default::default()
    });
    let got = remote.infer(&[1, 3, 4, 8, 8], &items).unwrap();
    assert_eq!(got, want);
}

#[test]
fn tls_server_certificate_checked_and_client_certificate_sent() {
    let dir = triton::scratch("tls");
    let [ca, cert, key, client_cert, client_key] = triton::certificates(&dir);
    let server = Server::start_with(Options {
        tls: Some((cert.clone(), key.clone(), Some(ca.clone()))),
        wait: true,
        ..Default::default()
    });
    let tls_for = |ca: Option<&std::path::Path>, identity: bool, timeout: Duration| {
        RemoteSettings::new(
            &format!("https://{}", server.grpc),
            "probe",
            timeout,
            1,
            ca.map(Into::into),
            identity.then(|| client_cert.clone()),
            identity.then(|| client_key.clone()),
            None,
        )
        .unwrap()
    };
    let tls = |ca, identity| tls_for(ca, identity, Duration::from_millis(2000));
    let remote = RemoteModel::open(tls(Some(&ca), true)).expect("CA and client certificate");
    let values = clip_values(1);
    assert_eq!(
        remote
            .infer(&[1, 3, 4, 8, 8], &[&values[..]])
            .unwrap()
            .len(),
        1
    );
    // No client certificate: the server refuses the handshake (it closes the connection, which
    // looks like a server going away: reported after server-timeout).
    let e = RemoteModel::open(tls(Some(&ca), false))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&server.grpc) && e.contains("'probe'"), "{e}");
    // A CA that did not sign the server's certificate: the client refuses the server, at once
    // (a long server-timeout: waiting would not help).
    let other = triton::scratch("tls-other");
    let [other_ca, ..] = triton::certificates(&other);
    let t = std::time::Instant::now();
    let e = RemoteModel::open(tls_for(Some(&other_ca), true, Duration::from_secs(30)))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains(&server.grpc) && e.contains("'probe'"), "{e}");
    assert!(
        e.contains("TLS handshake") && e.contains("server-ca"),
        "{e}"
    );
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(
        e.to_lowercase().contains("certificate") || e.contains("UnknownIssuer"),
        "{e}"
    );
    // TLS without a CA file: a settings error saying which property to set.
    let e = RemoteModel::open(tls(None, false))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("server-ca"), "{e}");
}

#[test]
fn bearer_token_required_and_never_shown() {
    let token = "tok-3f9a1c";
    let server = Server::start_with(Options {
        token: Some(token.into()),
        wait: true,
        ..Default::default()
    });
    let with = |t: Option<&str>| {
        RemoteSettings::new(
            &server.grpc,
            "probe",
            Duration::from_millis(2000),
            1,
            None,
            None,
            None,
            t,
        )
        .unwrap()
    };
    let remote = RemoteModel::open(with(Some(token))).expect("the right token");
    let values = clip_values(1);
    assert_eq!(
        remote
            .infer(&[1, 3, 4, 8, 8], &[&values[..]])
            .unwrap()
            .len(),
        1
    );
    for wrong in [None, Some("tok-wrong")] {
        let e = RemoteModel::open(with(wrong)).err().unwrap().to_string();
        assert!(e.contains(&server.grpc) && e.contains("'probe'"), "{e}");
        assert!(e.contains("server-token"), "{e}");
        assert!(!e.contains(token) && !e.contains("tok-wrong"), "{e}");
    }
    assert!(!format!("{:?}", with(Some(token))).contains(token));
}

// -- the element --------------------------------------------------------------------------------

use gst::glib;

fn remote_props(server: &str, model: &str) -> Vec<(&'static str, glib::Value)> {
    vec![
        ("server", server.to_value()),
        ("server-model", model.to_value()),
    ]
}

/// Per-clip scores of a run, by clip.
fn clip_scores(out: &common::Outcome) -> Vec<std::collections::HashMap<String, f64>> {
    (0..out.results.len()).map(|i| out.scores(i)).collect()
}

#[test]
fn element_results_equal_in_process() {
    let server = Server::start();
    let caps = common::caps("RGB", 16, 8);
    let top = ("top-k", 12u32.to_value());
    let local = common::run_frames(
        &caps,
        &[
            ("model", common::model("probe.onnx").to_value()),
            top.clone(),
        ],
        24,
        common::probe_rgb,
    );
    let mut props = remote_props(&server.grpc, "probe");
    props.push(top.clone());
    let remote = common::run_frames(&caps, &props, 24, common::probe_rgb);
    assert!(remote.errors.is_empty(), "{:?}", remote.errors);
    assert!(local.results.len() >= 2);
    assert_eq!(remote.results.len(), local.results.len());
    assert_eq!(clip_scores(&remote), clip_scores(&local));
    // `model` names the file and server-model defaults to its stem.
    let by_stem = common::run_frames(
        &caps,
        &[
            ("server", server.grpc.to_value()),
            ("model", "/nowhere/probe.onnx".to_value()),
            top,
        ],
        24,
        common::probe_rgb,
    );
    assert_eq!(clip_scores(&by_stem), clip_scores(&local));
}

#[test]
fn element_start_errors_name_server_and_model() {
    let server = Server::start();
    let e = common::start_error(&remote_props(&server.grpc, "no_such_model"));
    assert!(
        e.contains(&server.grpc) && e.contains("no_such_model"),
        "{e}"
    );
    let dead = format!("127.0.0.1:{}", triton::dead_port());
    let mut props = remote_props(&dead, "probe");
    props.push(("server-timeout", 800u32.to_value()));
    let e = common::start_error(&props);
    assert!(
        e.contains(&dead) && e.contains("'probe'") && e.contains("800 ms"),
        "{e}"
    );
    let e = common::start_error(&remote_props("localhost", "probe"));
    assert!(e.contains("server") && e.contains("host:port"), "{e}");
}

/// A started remote element in a non-live or live pipeline.
fn stream(
    server: &str,
    model: &str,
    extra: &[(&'static str, glib::Value)],
    live: bool,
) -> common::Harness {
    let mut props = remote_props(server, model);
    props.extend(extra.iter().cloned());
    let h = common::Harness::new(&common::caps("RGB", 16, 8), &props, live);
    h.start().expect("starts");
    h
}

#[test]
fn two_elements_in_one_process_are_batched_by_the_server() {
    let server = Server::start();
    // Different engines (server-timeout differs), one request in flight each, one clip per
    // request: only the server can merge them.
    let props = |timeout: u32| {
        [
            ("max-batch", 1u32.to_value()),
            ("server-requests", 1u32.to_value()),
            ("server-timeout", timeout.to_value()),
        ]
    };
    let a = stream(&server.grpc, "probe_delay", &props(10_000), false);
    let b = stream(&server.grpc, "probe_delay", &props(10_001), false);
    let pushers: Vec<_> = [a, b]
        .into_iter()
        .map(|h| {
            std::thread::spawn(move || {
                for n in 0..40 {
                    h.push(common::buffer(common::probe_rgb(n), n));
                }
                let out = h.finish();
                assert!(out.errors.is_empty(), "{:?}", out.errors);
                out.results.len()
            })
        })
        .collect();
    let clips: usize = pushers.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(clips >= 8, "{clips}");
    assert_server_merged(&server.grpc, clips as u64, "requests");
}

#[test]
fn two_processes_are_batched_by_the_server() {
    let server = Server::start();
    let classify = std::env::current_exe()
        .unwrap()
        .parent()
        .and_then(|deps| deps.parent())
        .unwrap()
        .join("nonlocal-classify");
    assert!(
        classify.exists(),
        "{} (cargo build --bins)",
        classify.display()
    );
    let video = triton::root().join("tests/data/arm_wrestling.mp4");
    let run = || {
        std::process::Command::new(&classify)
            .args(["--server", &server.grpc, "--server-model", "probe_delay"])
            .args(["--server-requests", "1", "--clips", "0", "--output", "json"])
            .arg(&video)
            .output()
            .unwrap()
    };
    let (x, y) = std::thread::scope(|s| {
        let x = s.spawn(run);
        let y = s.spawn(run);
        (x.join().unwrap(), y.join().unwrap())
    });
    let mut clips = 0;
    for out in [&x, &y] {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        clips += line["clips"].as_u64().unwrap();
    }
    assert!(clips >= 8, "{clips}");
    assert_server_merged(&server.grpc, clips, "requests of two processes");
}

/// The `probe_delay` model on `grpc` ran every one of `clips` and in fewer runs than requests:
/// the server's batcher merged `what`.
fn assert_server_merged(grpc: &str, clips: u64, what: &str) {
    let stats = RemoteModel::open(settings(grpc, "probe_delay", 10_000))
        .unwrap()
        .server_statistics();
    assert_eq!(stats.inferences, clips);
    assert!(
        stats.executions < stats.requests,
        "the server merged {what}: {stats:?}"
    );
}

#[test]
fn non_live_stream_fails_once_after_the_bound_when_the_server_is_lost() {
    let server = Server::start();
    let h = stream(
        &server.grpc,
        "probe",
        &[("server-timeout", 1500u32.to_value())],
        false,
    );
    for n in 0..8 {
        h.push(common::buffer(common::probe_rgb(n), n));
    }
    let first = h
        .next_result(Duration::from_secs(30))
        .expect("a result while the server runs");
    assert_eq!(first.name().as_str(), "nonlocalclassify");
    server.stop(true);
    let lost_at = Instant::now();
    let pusher = {
        let src = h.src.clone();
        std::thread::spawn(move || {
            for n in 8..40 {
                if src
                    .push_buffer(common::buffer(common::probe_rgb(n), n))
                    .is_err()
                {
                    break;
                }
            }
            let _ = src.end_of_stream();
        })
    };
    let bus = h.pipeline.bus().unwrap();
    let mut errors = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        // A second error would come within a few seconds of the first.
        if !errors.is_empty() && lost_at.elapsed() > Duration::from_secs(6) {
            break;
        }
        let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(100)) else {
            continue;
        };
        match msg.view() {
            // The element's errors (appsrc then reports its own flow error).
            gst::MessageView::Error(e) if e.src() == Some(h.element.upcast_ref()) => {
                errors.push((
                    lost_at.elapsed(),
                    format!("{} | {:?}", e.error(), e.debug()),
                ));
            }
            gst::MessageView::Eos(_) => break,
            _ => {}
        }
        if !errors.is_empty() && lost_at.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let _ = h.pipeline.set_state(gst::State::Null);
    pusher.join().unwrap();
    assert_eq!(errors.len(), 1, "one error: {errors:?}");
    let (after, text) = &errors[0];
    assert!(
        text.contains("1500 ms") && text.contains("'probe'") && text.contains(&server.grpc),
        "{text}"
    );
    assert!(
        *after >= Duration::from_millis(1400) && *after < Duration::from_secs(10),
        "{after:?}"
    );
}

#[test]
fn live_stream_counts_drops_while_the_server_is_lost_and_resumes() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let server = Server::start();
    let port = server.grpc_port;
    let h = stream(
        &server.grpc,
        "probe",
        &[
            ("server-timeout", 1000u32.to_value()),
            ("clip-stride", 4u32.to_value()),
        ],
        true,
    );
    let bus = h.pipeline.bus().unwrap();
    let pushing = Arc::new(AtomicBool::new(true));
    let pusher = {
        let (src, pushing) = (h.src.clone(), Arc::clone(&pushing));
        std::thread::spawn(move || {
            let mut n = 0;
            while pushing.load(Ordering::SeqCst) {
                let _ = src.push_buffer(common::buffer(common::probe_rgb(n), n));
                n += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            n
        })
    };
    let mut results: Vec<gst::Structure> = Vec::new();
    let mut errors: Vec<String> = Vec::new();
    let mut collect = |until: Duration, results: &mut Vec<gst::Structure>| {
        let deadline = Instant::now() + until;
        while Instant::now() < deadline {
            let Some(msg) = bus.timed_pop(gst::ClockTime::from_mseconds(50)) else {
                continue;
            };
            match msg.view() {
                gst::MessageView::Element(e) => {
                    if let Some(s) = e.structure().filter(|s| s.name() == "nonlocalclassify") {
                        results.push(s.to_owned());
                    }
                }
                gst::MessageView::Error(e) => errors.push(e.error().to_string()),
                _ => {}
            }
        }
    };
    collect(Duration::from_secs(2), &mut results);
    let before = results.len();
    assert!(before >= 2, "results while the server runs: {before}");
    server.stop(true);
    drop(server);
    collect(Duration::from_secs(4), &mut results);
    let during = results.len() - before;
    let _again = Server::start_with(Options {
        grpc_port: port,
        wait: true,
        ..Default::default()
    });
    collect(Duration::from_secs(4), &mut results);
    pushing.store(false, Ordering::SeqCst);
    let frames = pusher.join().unwrap();
    let _ = h.pipeline.set_state(gst::State::Null);
    assert!(errors.is_empty(), "live: no error, {errors:?}");
    assert!(during <= 1, "no results while lost: {during}");
    let after = &results[before + during..];
    assert!(
        after.len() >= 2,
        "results resume: {} after {frames} frames",
        after.len()
    );
    // The clips that could not be classified are counted as dropped in the results after.
    let dropped = after.last().unwrap().get::<u64>("dropped").unwrap();
    assert!(dropped >= 3, "dropped clips counted: {dropped}");
    assert_eq!(results[before - 1].get::<u64>("dropped").unwrap(), 0);
}
