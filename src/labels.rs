//! Class labels: parsing label files and choosing where a model's labels come from.
//!
//! Resolution order (docs/design.md, `labels` property): the label file set on the element; else the
//! `labels` entry of the model metadata; else the built-in Kinetics-400 list when the model has 400
//! outputs; else `class-N`.

use std::path::Path;

/// The Kinetics-400 labels in model order (`data/kinetics400_labels.txt`).
pub const KINETICS400: &str = include_str!("../data/kinetics400_labels.txt");

/// Where the labels in use came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabelSource {
    File,
    Metadata,
    Kinetics400,
    Generic,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LabelError {
    #[error("cannot read label file '{path}': {reason}")]
    Unreadable { path: String, reason: String },
    #[error(
        "label file '{path}' is not UTF-8 text (line {line}); save it as UTF-8, one label per line"
    )]
    NotUtf8 { path: String, line: usize },
    #[error("{origin}: line {line} is empty; every line must name one class")]
    EmptyLine { origin: String, line: usize },
    #[error(
        "{origin} has {found} labels but the model has {expected} outputs; give one label per output, in model order"
    )]
    CountMismatch {
        origin: String,
        found: usize,
        expected: usize,
    },
}

/// Split label text into labels: one per line, `\r\n` or `\n` endings, trailing blank lines ignored.
/// An empty line before the last label is an error (it would shift every later class).
pub fn parse(text: &str, origin: &str) -> Result<Vec<String>, LabelError> {
    let mut lines: Vec<&str> = text.lines().map(|l| l.trim_end_matches('\r')).collect();
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let label = l.trim();
            if label.is_empty() {
                Err(LabelError::EmptyLine {
                    origin: origin.to_string(),
                    line: i + 1,
                })
            } else {
                Ok(label.to_string())
            }
        })
        .collect()
}

/// Read a label file (UTF-8, one label per line).
pub fn read_file(path: &Path) -> Result<Vec<String>, LabelError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| LabelError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let good = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        LabelError::NotUtf8 {
            path: shown.clone(),
            line: good.iter().filter(|&&b| b == b'\n').count() + 1,
        }
    })?;
    parse(&text, &format!("label file '{shown}'"))
}

/// Choose the labels for a model with `num_classes` outputs.
pub fn resolve(
    file: Option<&Path>,
    metadata: Option<&str>,
    num_classes: usize,
) -> Result<(Vec<String>, LabelSource), LabelError> {
    let check = |labels: Vec<String>, origin: String, source| {
        if labels.len() == num_classes {
            Ok((labels, source))
        } else {
            Err(LabelError::CountMismatch {
                origin,
                found: labels.len(),
                expected: num_classes,
            })
        }
    };
    if let Some(path) = file {
        let labels = read_file(path)?;
        return check(
            labels,
            format!("label file '{}'", path.display()),
            LabelSource::File,
        );
    }
    if let Some(text) = metadata {
        let origin = "the model's 'labels' metadata".to_string();
        return check(parse(text, &origin)?, origin, LabelSource::Metadata);
    }
    if num_classes == 400 {
        let labels = parse(KINETICS400, "built-in Kinetics-400 labels")?;
        return Ok((labels, LabelSource::Kinetics400));
    }
    Ok((
        (0..num_classes).map(|i| format!("class-{i}")).collect(),
        LabelSource::Generic,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_lines_and_crlf_and_trailing_blank_lines() {
        let labels = parse("a b\r\nc\n\n  \n", "x").unwrap();
        assert_eq!(labels, vec!["a b".to_string(), "c".to_string()]);
    }

    #[test]
    fn empty_line_inside_is_an_error_naming_the_line() {
        let err = parse("a\n\nb\n", "label file 'l.txt'").unwrap_err();
        assert_eq!(
            err.to_string(),
            "label file 'l.txt': line 2 is empty; every line must name one class"
        );
    }

    #[test]
    fn builtin_kinetics_has_400_labels_in_model_order() {
        let (labels, source) = resolve(None, None, 400).unwrap();
        assert_eq!(source, LabelSource::Kinetics400);
        assert_eq!(labels.len(), 400);
        assert_eq!(labels[0], "abseiling");
        assert_eq!(labels[6], "arm wrestling");
        assert_eq!(labels[399], "zumba");
    }

    #[test]
    fn generic_names_when_nothing_else() {
        let (labels, source) = resolve(None, None, 3).unwrap();
        assert_eq!(source, LabelSource::Generic);
        assert_eq!(labels, vec!["class-0", "class-1", "class-2"]);
    }

    #[test]
    fn metadata_wins_over_builtin_and_is_counted() {
        let (labels, source) = resolve(None, Some("x\ny"), 2).unwrap();
        assert_eq!(source, LabelSource::Metadata);
        assert_eq!(labels, vec!["x", "y"]);
        let err = resolve(None, Some("x\ny"), 3).unwrap_err();
        assert!(matches!(
            err,
            LabelError::CountMismatch {
                found: 2,
                expected: 3,
                ..
            }
        ));
    }

    #[test]
    fn file_wins_and_bad_files_are_named() {
        let dir = std::env::temp_dir().join(format!("nl-labels-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.txt");
        std::fs::write(&good, "one\ntwo\n").unwrap();
        let (labels, source) = resolve(Some(&good), Some("x\ny"), 2).unwrap();
        assert_eq!((labels[1].as_str(), source), ("two", LabelSource::File));

        let bad = dir.join("bad.txt");
        std::fs::write(&bad, b"one\ntw\xffo\n").unwrap();
        let err = resolve(Some(&bad), None, 2).unwrap_err().to_string();
        assert!(err.contains("bad.txt") && err.contains("line 2"), "{err}");

        let missing = dir.join("missing.txt");
        let err = resolve(Some(&missing), None, 2).unwrap_err().to_string();
        assert!(err.contains("missing.txt"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }

    // -----------------------------------------------------------------------------------------
    // Properties: any label text parses without a panic into labels that keep the class order,
    // and every line-level mistake is reported with its line number.

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        /// A label as people write them: words, punctuation, non-ASCII, inner spaces.
        fn label() -> impl Strategy<Value = String> {
            prop_oneof![
                "[a-z]{1,12}( [a-z()'-]{1,10}){0,3}",
                "[^\n\r\t\u{b}\u{c}\u{85}\u{2028}\u{2029} ]{1,8}",
            ]
            .prop_filter("no surrounding whitespace", |l| {
                l.trim() == l && !l.is_empty()
            })
        }

        fn newline() -> impl Strategy<Value = &'static str> {
            proptest::sample::select(&["\n", "\r\n"][..])
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(400))]

            /// Arbitrary text: never a panic; labels are non-empty, trimmed, single-line; an error
            /// names a line that really is blank.
            #[test]
            fn any_text(text in prop_oneof![any::<String>(), "[a \t\r\n]{0,40}"]) {
                match parse(&text, "origin") {
                    Ok(labels) => {
                        for l in &labels {
                            prop_assert!(!l.is_empty() && l.trim() == l && !l.contains('\n'));
                        }
                        prop_assert!(labels.len() <= text.lines().count());
                    }
                    Err(LabelError::EmptyLine { origin, line }) => {
                        prop_assert_eq!(origin, "origin");
                        let blank = text.lines().nth(line - 1).map(|l| l.trim().is_empty());
                        prop_assert_eq!(blank, Some(true), "line {}", line);
                        // ...and a label follows it, else it would have been trailing.
                        prop_assert!(text.lines().skip(line).any(|l| !l.trim().is_empty()));
                    }
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }

            /// Labels joined with LF or CRLF, with or without a final newline and trailing blank
            /// lines, come back exactly and in order.
            #[test]
            fn labels_round_trip(
                labels in proptest::collection::vec(label(), 1..50),
                nl in newline(),
                trailing in proptest::sample::select(&["", "\n", "\r\n", "\n\n", "\n \n\t\n"][..]),
                indent in proptest::sample::select(&["", " ", "\t"][..]),
            ) {
                let text = labels
                    .iter()
                    .map(|l| format!("{indent}{l}{indent}"))
                    .collect::<Vec<_>>()
                    .join(nl)
                    + trailing;
                prop_assert_eq!(parse(&text, "x").unwrap(), labels);
            }

            /// A blank line anywhere before the last label is an error naming that line.
            #[test]
            fn blank_line_inside_is_named(
                labels in proptest::collection::vec(label(), 2..40),
                at in any::<proptest::sample::Index>(),
                blank in proptest::sample::select(&["", " ", "\t", "\r"][..]),
                nl in newline(),
            ) {
                let at = 1 + at.index(labels.len() - 1); // between two labels
                let mut lines: Vec<String> = labels.clone();
                lines.insert(at, blank.to_string());
                let text = lines.join(nl);
                prop_assert_eq!(
                    parse(&text, "l.txt"),
                    Err(LabelError::EmptyLine { origin: "l.txt".into(), line: at + 1 })
                );
            }

            /// Label files with any bytes: never a panic; invalid UTF-8 is reported with the
            /// line of the first bad byte; too few or too many labels name both counts.
            #[test]
            fn label_files_with_any_bytes(
                bytes in proptest::collection::vec(any::<u8>(), 0..200),
                lines in proptest::collection::vec(label(), 1..20),
                bad_line in any::<proptest::sample::Index>(),
                classes in 1usize..25,
            ) {
                let dir = std::env::temp_dir().join(format!("nl-labels-prop-{}", std::process::id()));
                std::fs::create_dir_all(&dir).unwrap();
                let path = dir.join("labels.txt");

                std::fs::write(&path, &bytes).unwrap();
                match (read_file(&path), std::str::from_utf8(&bytes)) {
                    (Ok(got), Ok(text)) => prop_assert_eq!(Ok(got), parse(text, "")),
                    (Err(LabelError::EmptyLine { .. }), Ok(_)) => {}
                    (Err(LabelError::NotUtf8 { line, .. }), Err(e)) => {
                        let good = &bytes[..e.valid_up_to()];
                        prop_assert_eq!(line, 1 + good.iter().filter(|&&b| b == b'\n').count());
                    }
                    (got, _) => prop_assert!(false, "unexpected {got:?}"),
                }

                // Valid labels with one invalid byte on line `bad`.
                let bad = bad_line.index(lines.len());
                let mut raw: Vec<u8> = Vec::new();
                for (i, l) in lines.iter().enumerate() {
                    raw.extend_from_slice(l.as_bytes());
                    if i == bad {
                        raw.push(0xff);
                    }
                    raw.push(b'\n');
                }
                std::fs::write(&path, &raw).unwrap();
                let err = resolve(Some(&path), None, lines.len()).unwrap_err();
                prop_assert_eq!(
                    &err,
                    &LabelError::NotUtf8 { path: path.display().to_string(), line: bad + 1 }
                );
                prop_assert!(err.to_string().contains("labels.txt"));

                // The right text with a wrong class count names both numbers.
                std::fs::write(&path, lines.join("\n")).unwrap();
                match resolve(Some(&path), Some("ignored"), classes) {
                    Ok((got, LabelSource::File)) => {
                        prop_assert_eq!(classes, lines.len());
                        prop_assert_eq!(got, lines.clone());
                    }
                    Err(e @ LabelError::CountMismatch { .. }) => {
                        prop_assert_ne!(classes, lines.len());
                        let text = e.to_string();
                        prop_assert!(
                            text.contains(&format!("has {} labels", lines.len()))
                                && text.contains(&format!("{classes} outputs")),
                            "{}", text
                        );
                    }
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
                std::fs::remove_dir_all(&dir).ok();
            }

            /// Metadata labels go through the same rules.
            #[test]
            fn metadata_labels(labels in proptest::collection::vec(label(), 2..30), extra in 0usize..3) {
                let text = labels.join("\n");
                let n = labels.len();
                prop_assert_eq!(
                    resolve(None, Some(&text), n).unwrap(),
                    (labels.clone(), LabelSource::Metadata)
                );
                let more = n + 1 + extra;
                let is_mismatch = matches!(
                    resolve(None, Some(&text), more),
                    Err(LabelError::CountMismatch { found, expected, .. })
                        if found == n && expected == more
                );
                prop_assert!(is_mismatch);
            }
        }
    }
}
