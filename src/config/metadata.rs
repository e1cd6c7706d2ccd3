//! The model metadata the element reads (docs/design.md "Model metadata"): its keys and their
//! parsing into [`ModelMetadata`], every value checked.

use super::{ConfigError, OutputKind};
use crate::preprocess::Layout;
use crate::sampling::Rate;

/// `data/metadata_keys.txt`: the model metadata keys of the contract (docs/design.md, "Model
/// metadata"), one a line. The exporter (tools/nlexport/onnxgraph.py) reads the same file.
const KEYS_FILE: &str = include_str!("../../data/metadata_keys.txt");

/// The model metadata keys of the contract, in the order of `data/metadata_keys.txt` (read at
/// compile time).
pub const METADATA_KEYS: [&str; KEY_COUNT] = lines(KEYS_FILE).1;

const KEY_COUNT: usize = lines::<0>(KEYS_FILE).0;

/// The non-empty lines of `text` (a trailing carriage return left out), how many there are and
/// the first `N` of them. A `const fn`, so that the keys are a constant array.
const fn lines<const N: usize>(text: &'static str) -> (usize, [&'static str; N]) {
    let mut found = [""; N];
    let mut count = 0;
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        let mut end = 0;
        while end < rest.len() && rest[end] != b'\n' {
            end += 1;
        }
        let (mut line, after) = rest.split_at(end);
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        if !line.is_empty() {
            if count < N {
                found[count] = match std::str::from_utf8(line) {
                    Ok(key) => key,
                    Err(_) => panic!("data/metadata_keys.txt is not UTF-8"),
                };
            }
            count += 1;
        }
        rest = match after.split_first() {
            Some((_, next)) => next,
            None => after,
        };
    }
    (count, found)
}

/// The metadata_props the element understands; every field optional.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ModelMetadata {
    pub clip_length: Option<u32>,
    pub frame_stride: Option<u32>,
    /// The frame rate the model was trained at: clips are then sampled by time.
    pub clip_fps: Option<Rate>,
    pub scale_size: Option<u32>,
    pub crop_size: Option<u32>,
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    pub layout: Option<Layout>,
    pub output_kind: Option<OutputKind>,
    pub labels: Option<String>,
    pub name: Option<String>,
    pub weights: Option<String>,
}

fn parse_uint(key: &'static str, value: &str) -> Result<u32, ConfigError> {
    match value.trim().parse::<u32>() {
        Ok(v) if v > 0 => Ok(v),
        _ => Err(ConfigError::BadMetadata {
            key,
            value: value.to_string(),
            expected: "a whole number of at least 1",
        }),
    }
}

fn parse_triple(key: &'static str, value: &str, positive: bool) -> Result<[f32; 3], ConfigError> {
    let bad = || ConfigError::BadMetadata {
        key,
        value: value.to_string(),
        expected: if positive {
            "three positive decimals \"r,g,b\""
        } else {
            "three decimals \"r,g,b\""
        },
    };
    let parts: Vec<f32> = value
        .split(',')
        .map(|p| p.trim().parse::<f32>().map_err(|_| bad()))
        .collect::<Result<_, _>>()?;
    let [r, g, b]: [f32; 3] = parts.try_into().map_err(|_| bad())?;
    let ok = |v: f32| v.is_finite() && (!positive || v > 0.0);
    if ok(r) && ok(g) && ok(b) {
        Ok([r, g, b])
    } else {
        Err(bad())
    }
}

/// The words `preprocess.layout` takes.
const LAYOUTS: [(&str, Layout); 2] = [("NCTHW", Layout::Ncthw), ("NTHWC", Layout::Nthwc)];

/// The words `output.kind` takes.
const OUTPUT_KINDS: [(&str, OutputKind); 2] = [
    ("probabilities", OutputKind::Probabilities),
    ("logits", OutputKind::Logits),
];

/// What the value of `key` (when the model sets it) names among `words`, surrounding spaces
/// ignored; another value is an error naming `key`, the value as written and what was
/// `expected`.
fn parse_word<T: Copy>(
    get: impl Fn(&str) -> Option<String>,
    key: &'static str,
    words: &[(&str, T)],
    expected: &'static str,
) -> Result<Option<T>, ConfigError> {
    let Some(value) = get(key) else {
        return Ok(None);
    };
    match words.iter().find(|(word, _)| *word == value.trim()) {
        Some(&(_, v)) => Ok(Some(v)),
        None => Err(ConfigError::BadMetadata {
            key,
            value,
            expected,
        }),
    }
}

impl ModelMetadata {
    /// Parse the metadata from a key lookup (the model's custom metadata map).
    pub fn parse(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let uint = |key: &'static str| get(key).map(|v| parse_uint(key, &v)).transpose();
        let layout = parse_word(&get, "preprocess.layout", &LAYOUTS, "NCTHW or NTHWC")?;
        let output_kind = parse_word(
            &get,
            "output.kind",
            &OUTPUT_KINDS,
            "probabilities or logits",
        )?;
        Ok(Self {
            clip_length: uint("clip.length")?,
            frame_stride: uint("clip.frame_stride")?,
            clip_fps: get("clip.fps")
                .map(|v| {
                    Rate::parse(&v).ok_or(ConfigError::BadMetadata {
                        key: "clip.fps",
                        value: v,
                        expected: "a frame rate above 0 and at most 1000, as a decimal (25, 29.97) or a fraction (30000/1001)",
                    })
                })
                .transpose()?,
            scale_size: uint("preprocess.scale_size")?,
            crop_size: uint("preprocess.crop_size")?,
            mean: get("preprocess.mean")
                .map(|v| parse_triple("preprocess.mean", &v, false))
                .transpose()?,
            std: get("preprocess.std")
                .map(|v| parse_triple("preprocess.std", &v, true))
                .transpose()?,
            layout,
            output_kind,
            labels: get("labels"),
            name: get("model.name"),
            weights: get("model.weights"),
        })
    }

    /// True when the model says its weights are untrained (labels then mean nothing).
    pub fn random_weights(&self) -> bool {
        self.weights.as_deref().map(str::trim) == Some("random")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    #[test]
    fn the_keys_are_the_lines_of_the_file_and_the_ones_the_parser_reads() {
        assert_eq!(lines::<3>("a\r\n\nb\nc"), (3, ["a", "b", "c"]));
        assert_eq!(lines::<1>("a\nb\n"), (2, ["a"]));
        assert_eq!(METADATA_KEYS.len(), 12);
        assert_eq!(METADATA_KEYS[0], "clip.length");
        let asked = RefCell::new(Vec::new());
        ModelMetadata::parse(|key| {
            asked.borrow_mut().push(key.to_string());
            None
        })
        .unwrap();
        let mut asked = asked.into_inner();
        let mut keys: Vec<String> = METADATA_KEYS.iter().map(|k| k.to_string()).collect();
        asked.sort();
        keys.sort();
        assert_eq!(asked, keys);
    }
}
