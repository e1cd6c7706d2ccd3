use super::*;
use std::collections::HashMap;

fn meta(pairs: &[(&str, &str)]) -> Result<ModelMetadata, ConfigError> {
    let map: HashMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    ModelMetadata::parse(|k| map.get(k).cloned())
}

fn io(input: &[i64], output: &[i64]) -> ModelIo {
    ModelIo {
        input_name: "video".into(),
        input_shape: input.to_vec(),
        input_type: Ok(InputType::F32),
        output_name: "scores".into(),
        output_shape: output.to_vec(),
    }
}

#[test]
fn parses_the_full_contract() {
    let m = meta(&[
        ("clip.length", "8"),
        ("clip.frame_stride", "8"),
        ("preprocess.scale_size", "256"),
        ("preprocess.crop_size", "224"),
        ("preprocess.mean", "114.75, 114.75,114.75"),
        ("preprocess.std", "57.375,57.375,57.375"),
        ("preprocess.layout", "NTHWC"),
        ("output.kind", "logits"),
        ("labels", "a\nb"),
        ("model.name", "c2d-r50-nl"),
        ("model.weights", "random"),
    ])
    .unwrap();
    assert_eq!(m.clip_length, Some(8));
    assert_eq!(m.frame_stride, Some(8));
    assert_eq!(m.scale_size, Some(256));
    assert_eq!(m.mean, Some([114.75; 3]));
    assert_eq!(m.std, Some([57.375; 3]));
    assert_eq!(m.layout, Some(Layout::Nthwc));
    assert_eq!(m.output_kind, Some(OutputKind::Logits));
    assert_eq!(m.labels.as_deref(), Some("a\nb"));
    assert!(m.random_weights());
}

#[test]
fn malformed_numbers_name_key_and_value() {
    let err = meta(&[("clip.length", "eight")]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "model metadata 'clip.length' = 'eight' is not valid: a whole number of at least 1"
    );
    assert!(meta(&[("preprocess.mean", "1,2")]).is_err());
    assert!(meta(&[("preprocess.std", "1,0,2")]).is_err());
    assert!(meta(&[("preprocess.mean", "1,nan,2")]).is_err());
    assert!(meta(&[("preprocess.layout", "NHWC")]).is_err());
    assert!(meta(&[("output.kind", "scores")]).is_err());
    assert!(meta(&[("clip.frame_stride", "0")]).is_err());
}

#[test]
fn graph_dims_win_and_properties_override_metadata() {
    let m = meta(&[
        ("clip.length", "16"),
        ("clip.frame_stride", "2"),
        ("preprocess.crop_size", "112"),
    ])
    .unwrap();
    // Fixed T = 8 and 64×64 in the graph win over clip.length 16 and crop 112.
    let c =
        ClipConfig::resolve(&m, &io(&[-1, 3, 8, 64, 64], &[-1, 5]), Overrides::default()).unwrap();
    assert_eq!(
        (c.clip_length, c.frame_stride, c.clip_stride, c.crop_size),
        (8, 2, 16, 64)
    );
    assert_eq!(c.scale_size, 74); // ceil(64 * 8 / 7)
    assert_eq!(c.fixed_batch, None);
    assert_eq!(c.num_classes, 5);
    // Dynamic T: property beats metadata; clip-stride defaults to length × stride.
    let c = ClipConfig::resolve(
        &m,
        &io(&[1, 3, -1, 64, 64], &[1, 5]),
        Overrides {
            clip_length: 4,
            frame_stride: 3,
            clip_stride: 0,
        },
    )
    .unwrap();
    assert_eq!((c.clip_length, c.frame_stride, c.clip_stride), (4, 3, 12));
    assert_eq!(c.fixed_batch, Some(1));
    assert_eq!(c.input_shape(2), [2, 3, 4, 64, 64]);
    assert_eq!(c.clip_elements(), 3 * 4 * 64 * 64);
}

#[test]
fn clip_fps_from_metadata_and_property() {
    let io = io(&[-1, 3, 8, 64, 64], &[-1, 5]);
    let m = meta(&[("clip.fps", "25")]).unwrap();
    let c = ClipConfig::resolve(&m, &io, Overrides::default()).unwrap();
    assert_eq!(c.clip_fps, Rate::new(25, 1));
    assert_eq!(
        c.clone().with_clip_fps(0, 1).unwrap().clip_fps,
        Rate::new(25, 1)
    );
    assert_eq!(c.clone().with_clip_fps(-1, 1).unwrap().clip_fps, None);
    assert_eq!(
        c.clone().with_clip_fps(30000, 1001).unwrap().clip_fps,
        Rate::new(30000, 1001)
    );
    let e = c.clone().with_clip_fps(2000, 1).unwrap_err();
    assert!(e.to_string().starts_with("clip-fps=2000/1 "), "{e}");
    let none = ClipConfig::resolve(&ModelMetadata::default(), &io, Overrides::default());
    assert_eq!(none.unwrap().clip_fps, None);
    let e = meta(&[("clip.fps", "fast")]).unwrap_err();
    assert!(e.to_string().contains("'clip.fps' = 'fast'"), "{e}");
}

#[test]
fn conflicting_property_names_both_values() {
    let err = ClipConfig::resolve(
        &ModelMetadata::default(),
        &io(&[-1, 3, 8, 64, 64], &[-1, 5]),
        Overrides {
            clip_length: 16,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "clip-length=16 conflicts with the model, whose input 'video' fixes it to 8; unset the property or use a model exported for 16"
    );
}

#[test]
fn shape_errors() {
    let none = ModelMetadata::default();
    let d = Overrides::default();
    let e = ClipConfig::resolve(&none, &io(&[-1, 3, 8, 8], &[-1, 5]), d).unwrap_err();
    assert!(e.to_string().contains("rank 4"), "{e}");
    let e = ClipConfig::resolve(&none, &io(&[-1, 4, 8, 8, 8], &[-1, 5]), d).unwrap_err();
    assert!(e.to_string().contains("4 channels"), "{e}");
    let nthwc = meta(&[("preprocess.layout", "NTHWC")]).unwrap();
    let e = ClipConfig::resolve(&nthwc, &io(&[-1, 8, 8, 8, 1], &[-1, 5]), d).unwrap_err();
    assert!(e.to_string().contains("1 channels"), "{e}");
    let e = ClipConfig::resolve(&none, &io(&[-1, 3, 8, 8, 8], &[-1, 1]), d).unwrap_err();
    assert!(e.to_string().contains("1 class"), "{e}");
    let e = ClipConfig::resolve(&none, &io(&[-1, 3, 8, 8, 8], &[-1, -1]), d).unwrap_err();
    assert!(matches!(e, ConfigError::OutputShape { .. }));
    let e = ClipConfig::resolve(&none, &io(&[-1, 3, -1, 8, 8], &[-1, 5]), d).unwrap_err();
    assert_eq!(e, ConfigError::UnknownClipLength);
    let e = ClipConfig::resolve(&none, &io(&[-1, 3, 8, 8, 6], &[-1, 5]), d).unwrap_err();
    assert!(matches!(e, ConfigError::NotSquare { .. }));
    let small = meta(&[("preprocess.scale_size", "32")]).unwrap();
    let e = ClipConfig::resolve(&small, &io(&[-1, 3, 8, 64, 64], &[-1, 5]), d).unwrap_err();
    assert!(matches!(e, ConfigError::ScaleSmallerThanCrop { .. }));
    let mut bad_type = io(&[-1, 3, 8, 8, 8], &[-1, 5]);
    bad_type.input_type = Err("Int64".into());
    let e = ClipConfig::resolve(&none, &bad_type, d).unwrap_err();
    assert!(e.to_string().contains("Int64"), "{e}");
}

// -----------------------------------------------------------------------------------------
// Properties: whatever a model file's metadata says, parsing never panics, a rejected value
// is named with its key, and every value the exporter writes comes back exactly.

mod properties {
    use super::*;
    use proptest::prelude::*;

    const UINT_KEYS: [&str; 4] = [
        "clip.length",
        "clip.frame_stride",
        "preprocess.scale_size",
        "preprocess.crop_size",
    ];
    const ALL_KEYS: [&str; 12] = METADATA_KEYS;

    /// Any text, and text made of the characters numbers are written with (so near-misses
    /// like "-3", "1,2", "1e99,0,2", " 8 " and "0x10" come up often).
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<String>(),
            "[-+0-9., eEinfatyNCTHWlogits]{0,24}",
            Just(String::new()),
            Just("-3".to_string()),
            Just("1,2".to_string()),
            Just("1,0,2".to_string()),
            Just("4294967296".to_string()),
        ]
    }

    fn field_of(m: &ModelMetadata, key: &str) -> String {
        match key {
            "clip.length" => format!("{:?}", m.clip_length),
            "clip.frame_stride" => format!("{:?}", m.frame_stride),
            "clip.fps" => format!("{:?}", m.clip_fps),
            "preprocess.scale_size" => format!("{:?}", m.scale_size),
            "preprocess.crop_size" => format!("{:?}", m.crop_size),
            "preprocess.mean" => format!("{:?}", m.mean),
            "preprocess.std" => format!("{:?}", m.std),
            "preprocess.layout" => format!("{:?}", m.layout),
            "output.kind" => format!("{:?}", m.output_kind),
            "labels" => format!("{:?}", m.labels),
            "model.name" => format!("{:?}", m.name),
            _ => format!("{:?}", m.weights),
        }
    }

    /// The value `parse` must give for one key, decided independently of the parser.
    fn expected(key: &str, v: &str) -> Option<String> {
        let uint = |v: &str| v.trim().parse::<u32>().ok().filter(|&n| n > 0);
        let triple = |v: &str, positive: bool| -> Option<[f32; 3]> {
            let parts: Vec<f32> = v
                .split(',')
                .map(|p| p.trim().parse::<f32>().ok())
                .collect::<Option<_>>()?;
            let t: [f32; 3] = parts.try_into().ok()?;
            t.iter()
                .all(|x| x.is_finite() && (!positive || *x > 0.0))
                .then_some(t)
        };
        Some(match key {
            k if UINT_KEYS.contains(&k) => format!("{:?}", Some(uint(v)?)),
            "preprocess.mean" => format!("{:?}", Some(triple(v, false)?)),
            "preprocess.std" => format!("{:?}", Some(triple(v, true)?)),
            "clip.fps" => format!("{:?}", Some(Rate::parse(v)?)),
            "preprocess.layout" => format!(
                "{:?}",
                Some(match v.trim() {
                    "NCTHW" => Layout::Ncthw,
                    "NTHWC" => Layout::Nthwc,
                    _ => return None,
                })
            ),
            "output.kind" => format!(
                "{:?}",
                Some(match v.trim() {
                    "probabilities" => OutputKind::Probabilities,
                    "logits" => OutputKind::Logits,
                    _ => return None,
                })
            ),
            _ => format!("{:?}", Some(v.to_string())),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// One key at a time, any value: never a panic; accepted exactly when the contract
        /// says so; a rejection names the key and the value as they were written.
        #[test]
        fn any_value_of_any_key(key in proptest::sample::select(&ALL_KEYS[..]), v in value()) {
            let parsed = meta(&[(key, v.as_str())]);
            match (parsed, expected(key, &v)) {
                (Ok(m), Some(want)) => {
                    prop_assert_eq!(field_of(&m, key), want);
                    // Nothing else was filled in.
                    prop_assert_eq!(
                        ALL_KEYS.iter().filter(|k| field_of(&m, k) != "None").count(),
                        1
                    );
                }
                (Err(ConfigError::BadMetadata { key: k, value, expected }), None) => {
                    prop_assert_eq!(k, key);
                    prop_assert_eq!(&value, &v);
                    let text = ConfigError::BadMetadata { key: k, value, expected }.to_string();
                    prop_assert!(text.contains(key) && text.contains(&v), "{}", text);
                }
                (got, want) => prop_assert!(false, "{key}={v:?}: got {got:?}, want {want:?}"),
            }
        }

        /// Every key at once, any values: never a panic, and an error is about one of them.
        #[test]
        fn any_values_of_every_key(values in proptest::collection::vec(value(), 12)) {
            let pairs: Vec<(&str, &str)> =
                ALL_KEYS.iter().copied().zip(values.iter().map(String::as_str)).collect();
            match meta(&pairs) {
                Ok(m) => {
                    for (k, v) in &pairs {
                        prop_assert_eq!(Some(field_of(&m, k)), expected(k, v));
                    }
                }
                Err(ConfigError::BadMetadata { key, value, .. }) => {
                    let (_, v) = pairs.iter().find(|(k, _)| *k == key).unwrap();
                    prop_assert_eq!(*v, value.as_str());
                    prop_assert_eq!(expected(key, v), None);
                }
                Err(e) => prop_assert!(false, "unexpected error {e:?}"),
            }
        }

        /// What the exporter writes (`str(int)`, Python `repr(float)` of the float32 value,
        /// Rust's own formatting, spaces around) parses back to exactly the same numbers.
        #[test]
        fn valid_values_round_trip(
            sizes in proptest::array::uniform4(1u32..),
            mean in proptest::array::uniform3(
                any::<f32>().prop_filter("finite", |v| v.is_finite())
            ),
            std in proptest::array::uniform3(
                any::<f32>().prop_filter("positive", |v| v.is_finite() && *v > 0.0)
            ),
            style in 0..4usize,
            pad in proptest::sample::select(&["", " ", "  ", "\t"][..]),
        ) {
            let num = |v: f32| match style {
                0 => format!("{}", f64::from(v)),
                1 => format!("{v}"),
                2 => format!("{v:e}"),
                // Python repr(float(numpy.float32)) of large and tiny values: "1.5e+20".
                _ => format!("{:e}", f64::from(v)).replace("e", "e+").replace("e+-", "e-"),
            };
            let triple = |t: [f32; 3]| {
                t.iter().map(|&v| format!("{pad}{}{pad}", num(v))).collect::<Vec<_>>().join(",")
            };
            let texts: Vec<String> =
                sizes.iter().map(|n| format!("{pad}{n}{pad}")).collect();
            let (mean_text, std_text) = (triple(mean), triple(std));
            let m = meta(&[
                ("clip.length", texts[0].as_str()),
                ("clip.frame_stride", texts[1].as_str()),
                ("preprocess.scale_size", texts[2].as_str()),
                ("preprocess.crop_size", texts[3].as_str()),
                ("preprocess.mean", mean_text.as_str()),
                ("preprocess.std", std_text.as_str()),
                ("preprocess.layout", "NTHWC"),
                ("output.kind", "logits"),
            ])
            .unwrap();
            prop_assert_eq!(
                [m.clip_length, m.frame_stride, m.scale_size, m.crop_size],
                sizes.map(Some)
            );
            prop_assert_eq!(m.mean, Some(mean));
            prop_assert_eq!(m.std, Some(std));
        }

        /// Any graph shape, metadata and property values: `resolve` never panics or
        /// overflows, and what it accepts is consistent (fixed dimensions honoured, crop fits
        /// the scaled frame, tensors of a size the element can allocate).
        #[test]
        fn resolve_never_panics(
            input in proptest::collection::vec(
                prop_oneof![Just(-1i64), 0i64..10, 1i64..300, any::<i64>()], 3..7),
            classes in prop_oneof![Just(-1i64), 0i64..5, any::<i64>()],
            m in (
                proptest::option::of(prop_oneof![1u32..64, any::<u32>()]),
                proptest::option::of(prop_oneof![1u32..16, any::<u32>()]),
                proptest::option::of(prop_oneof![1u32..400, any::<u32>()]),
                proptest::option::of(prop_oneof![1u32..300, any::<u32>()]),
                any::<bool>(),
            ),
            props in (
                prop_oneof![Just(0u32), 1u32..64, any::<u32>()],
                prop_oneof![Just(0u32), 1u32..16, any::<u32>()],
                prop_oneof![Just(0u32), 1u32..64, any::<u32>()],
            ),
        ) {
            let metadata = ModelMetadata {
                clip_length: m.0,
                frame_stride: m.1,
                scale_size: m.2,
                crop_size: m.3,
                layout: Some(if m.4 { Layout::Nthwc } else { Layout::Ncthw }),
                ..Default::default()
            };
            let overrides = Overrides {
                clip_length: props.0,
                frame_stride: props.1,
                clip_stride: props.2,
            };
            let model = io(&input, &[-1, classes]);
            match ClipConfig::resolve(&metadata, &model, overrides) {
                Ok(c) => {
                    let t = if m.4 { input[1] } else { input[2] };
                    if t > 0 {
                        prop_assert_eq!(i64::from(c.clip_length), t);
                    }
                    prop_assert!(c.clip_length >= 1 && c.frame_stride >= 1);
                    prop_assert!(c.clip_stride >= 1);
                    prop_assert!(c.crop_size >= 1 && c.crop_size <= c.scale_size);
                    prop_assert!(c.scale_size <= MAX_SIDE);
                    prop_assert!(c.num_classes >= 2);
                    let values = c.clip_elements() as u128;
                    prop_assert!(values <= MAX_CLIP_VALUES);
                    let batch = c.fixed_batch.unwrap_or(1) as u128;
                    prop_assert!(values * batch <= MAX_RUN_VALUES.max(values));
                    let shape = c.input_shape(1);
                    prop_assert_eq!(shape.iter().product::<i64>() as u128, values);
                }
                Err(e) => {
                    // Every error reads as a sentence with something to act on.
                    prop_assert!(e.to_string().len() > 20, "{}", e);
                }
            }
        }
    }
}
