//! The videos to classify: arguments, `--input-path` and the lines of `--input-file` lists, each
//! as given and as a URI, and the path each one's files get in a directory (`--timeline-dir`,
//! `--dump-inputs`).

use std::collections::HashSet;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use gst::glib;

use crate::args::Args;

/// One video to classify: as given, and as a URI.
#[derive(Clone, Debug)]
pub struct Input {
    pub shown: String,
    /// Why it has none: no such file, a directory.
    pub uri: Result<String, String>,
    /// `--dump-inputs`: the directory its clips' model inputs are written to.
    pub dump: Option<PathBuf>,
    /// Objects mode: where its objects' boxes come from.
    pub objects: Option<crate::objects::Source>,
}

/// Every video the command line names, in order, with its boxes in objects mode; an error when a
/// list or a boxes file cannot be read, none is named, or objects mode cannot run.
pub fn gather(args: &Args) -> anyhow::Result<Vec<Input>> {
    let mut names = args.videos.clone();
    names.extend(args.input_path.iter().cloned());
    for list in &args.input_file {
        names.extend(read_list(list)?);
    }
    if names.is_empty() {
        bail!("no videos given: the input files list none");
    }
    let mut inputs: Vec<Input> = names.iter().map(|n| to_input(n)).collect();
    let sources = crate::objects::sources(args, inputs.len())?;
    for (input, source) in inputs.iter_mut().zip(sources) {
        input.objects = source;
    }
    if let Some(dir) = &args.dump_inputs {
        let dirs = per_video(dir, &inputs, None)?;
        for (input, path) in inputs.iter_mut().zip(dirs) {
            input.dump = Some(path);
        }
    }
    Ok(inputs)
}

/// One path in `dir` for each video: its file name's stem, with `extension` (a folder without);
/// an error when two videos would share one.
pub fn per_video(
    dir: &Path,
    inputs: &[Input],
    extension: Option<&str>,
) -> anyhow::Result<Vec<PathBuf>> {
    let mut seen = HashSet::new();
    inputs
        .iter()
        .map(|input| {
            let name = input
                .shown
                .rsplit(['/', '\\'])
                .next()
                .filter(|n| !n.is_empty())
                .unwrap_or("video");
            let stem = Path::new(name)
                .file_stem()
                .map_or(name.into(), |s| s.to_string_lossy());
            let path = match extension {
                Some(ext) => dir.join(format!("{stem}.{ext}")),
                None => dir.join(&*stem),
            };
            if !seen.insert(path.clone()) {
                bail!(
                    "two videos would write {}: give them different names or classify them separately",
                    path.display()
                );
            }
            Ok(path)
        })
        .collect()
}

fn to_input(text: &str) -> Input {
    let shown = text.to_string();
    if text.contains("://") && glib::uri_parse_scheme(text).is_some() {
        return Input {
            shown,
            uri: Ok(text.to_string()),
            dump: None,
            objects: None,
        };
    }
    let path = Path::new(text);
    let uri = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err("no such file".to_string()),
        Err(e) => Err(e.to_string()),
        Ok(m) if m.is_dir() => Err("is a directory".to_string()),
        Ok(_) => std::path::absolute(path)
            .map_err(|e| e.to_string())
            .and_then(|abs| {
                glib::filename_to_uri(&abs, None)
                    .map(|u| u.to_string())
                    .map_err(|e| e.to_string())
            }),
    };
    Input {
        shown,
        uri,
        dump: None,
        objects: None,
    }
}

/// The lines of a list: blank lines and `#` comments skipped.
fn read_list(list: &Path) -> anyhow::Result<Vec<String>> {
    let file = std::fs::File::open(list)
        .with_context(|| format!("cannot read the list {}", list.display()))?;
    let mut out = Vec::new();
    for line in std::io::BufReader::new(file).lines() {
        let line = line.with_context(|| format!("cannot read the list {}", list.display()))?;
        let line = line.trim();
        if !line.is_empty() && !line.starts_with('#') {
            out.push(line.to_string());
        }
    }
    Ok(out)
}
