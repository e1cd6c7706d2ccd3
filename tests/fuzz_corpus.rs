//! Fuzzing from the committed corpus (tests/corpus): model metadata and label files.
//!
//! Every corpus file is replayed as it is, then a few thousand deterministic mutations of the
//! seeds (bytes flipped, inserted, deleted, values cut or replaced by hostile text) go through the
//! same parsers the element uses. Whatever the input: no panic, and either a value that keeps the
//! contract or an error that names what is wrong. `regression-*` files are inputs that once broke
//! a parser; they must fail cleanly. The checkpoint corpus is replayed by
//! tests/python/test_fuzz_checkpoints.py.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use gstnonlocal::config::{ClipConfig, ConfigError, InputType, ModelIo, ModelMetadata, Overrides};
use gstnonlocal::labels;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

fn corpus(kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(files.len() >= 3, "{} holds too few files", dir.display());
    files
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        proptest::test_runner::TestRng::deterministic_rng(
            proptest::test_runner::RngAlgorithm::ChaCha,
        ),
    )
}

/// Byte-level damage: flip, insert, delete, truncate.
fn damage(data: &[u8], edits: &[(usize, u8, u8)]) -> Vec<u8> {
    let mut out = data.to_vec();
    for &(pos, byte, op) in edits {
        let at = if out.is_empty() { 0 } else { pos % out.len() };
        match op % 4 {
            0 if !out.is_empty() => out[at] ^= byte.max(1),
            1 => out.insert(at, byte),
            2 if !out.is_empty() => {
                out.remove(at);
            }
            _ => out.truncate(at),
        }
    }
    out
}

const HOSTILE: &[&str] = &[
    "",
    " ",
    "0",
    "-1",
    "18446744073709551616",
    "4294967296",
    "1e309",
    "NaN",
    "inf,inf,inf",
    "1,2",
    "1,2,3,4",
    "0,0,0",
    "NCTHW\0",
    "nthwc",
    "\u{202e}logits",
    "1_000",
    "0x10",
];

fn io_for(layout_nthwc: bool) -> ModelIo {
    ModelIo {
        input_name: "video".into(),
        input_shape: if layout_nthwc {
            vec![-1, -1, 224, 224, 3]
        } else {
            vec![-1, 3, -1, 224, 224]
        },
        input_type: Ok(InputType::F32),
        output_name: "scores".into(),
        output_shape: vec![-1, 400],
    }
}

/// Parse one metadata map; check what came out.
fn check_metadata(map: &BTreeMap<String, String>) -> Result<(), TestCaseError> {
    match ModelMetadata::parse(|k| map.get(k).cloned()) {
        Ok(meta) => {
            for nthwc in [false, true] {
                match ClipConfig::resolve(&meta, &io_for(nthwc), Overrides::default()) {
                    Ok(c) => {
                        prop_assert!(c.clip_length >= 1 && c.frame_stride >= 1);
                        prop_assert!(c.crop_size >= 1 && c.scale_size >= c.crop_size);
                        prop_assert!(c.norm.std.iter().all(|s| s.is_finite() && *s != 0.0));
                        prop_assert!(c.norm.mean.iter().all(|m| m.is_finite()));
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }
        }
        Err(ConfigError::BadMetadata { key, value, .. }) => {
            prop_assert_eq!(map.get(key).map(String::as_str), Some(value.as_str()));
        }
        Err(e) => prop_assert!(!e.to_string().is_empty(), "{e:?}"),
    }
    Ok(())
}

#[test]
fn metadata_corpus_replays_and_mutations_never_panic() {
    let seeds: Vec<(String, BTreeMap<String, String>)> = corpus("metadata")
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, serde_json::from_str(&text).unwrap())
        })
        .collect();
    for (name, map) in &seeds {
        check_metadata(map).unwrap_or_else(|e| panic!("{name}: {e}"));
        let parsed = ModelMetadata::parse(|k| map.get(k).cloned());
        if name.starts_with("regression-") {
            let config =
                parsed.and_then(|m| ClipConfig::resolve(&m, &io_for(false), Overrides::default()));
            assert!(config.is_err(), "{name} was accepted: {config:?}");
        } else {
            assert!(parsed.is_ok(), "{name}: {parsed:?}");
        }
    }
    let keys: Vec<&str> = gstnonlocal::config::METADATA_KEYS.to_vec();
    let strategy = (
        0..seeds.len(),
        proptest::sample::select(keys),
        prop_oneof![
            proptest::sample::select(HOSTILE).prop_map(|s| s.as_bytes().to_vec()),
            proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..6).prop_map(
                |e| {
                    // Damage a plausible value.
                    damage(b"114.75,114.75,114.75", &e)
                }
            ),
        ],
        proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 0..3),
    );
    runner(2000)
        .run(&strategy, |(seed, key, value, edits)| {
            let mut map = seeds[seed].1.clone();
            let value = String::from_utf8_lossy(&value).into_owned();
            map.insert(key.to_string(), value);
            // Also damage another field of the seed in place.
            if let Some((k, v)) = map
                .iter()
                .nth(seed % map.len().max(1))
                .map(|(k, v)| (k.clone(), v.clone()))
            {
                let damaged = damage(v.as_bytes(), &edits);
                map.insert(k, String::from_utf8_lossy(&damaged).into_owned());
            }
            check_metadata(&map)
        })
        .unwrap();
}

/// Write `bytes` as a label file and read it as the element does.
fn check_labels(dir: &Path, bytes: &[u8]) -> Result<Option<Vec<String>>, TestCaseError> {
    let path = dir.join("labels.txt");
    std::fs::write(&path, bytes).unwrap();
    match labels::read_file(&path) {
        Ok(list) => {
            for l in &list {
                prop_assert!(!l.is_empty() && l.trim() == l && !l.contains('\n'), "{l:?}");
            }
            Ok(Some(list))
        }
        Err(e) => {
            prop_assert!(e.to_string().contains(&path.display().to_string()), "{e}");
            Ok(None)
        }
    }
}

#[test]
fn label_corpus_replays_and_mutations_never_panic() {
    let dir = std::env::temp_dir().join(format!("nl-label-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let seeds: Vec<(String, Vec<u8>)> = corpus("labels")
        .iter()
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read(p).unwrap(),
            )
        })
        .collect();
    for (name, bytes) in &seeds {
        let got = check_labels(&dir, bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        if name.starts_with("regression-") {
            assert!(got.as_ref().is_none_or(|l| l.len() == 2), "{name}: {got:?}");
        }
        if name == "seed-kinetics400.txt" {
            assert_eq!(got.map(|l| l.len()), Some(400));
        }
    }
    let strategy = (
        0..seeds.len(),
        proptest::collection::vec((any::<usize>(), any::<u8>(), any::<u8>()), 1..8),
    );
    runner(2000)
        .run(&strategy, |(seed, edits)| {
            check_labels(&dir, &damage(&seeds[seed].1, &edits)).map(|_| ())
        })
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
}
