//! The videos to classify: arguments, `--input-path` and the lines of `--input-file` lists, each
//! as given and as a URI.

use std::io::BufRead;
use std::path::Path;

use anyhow::{bail, Context};
use gst::glib;

use crate::args::Args;

/// One video to classify: as given, and as a URI.
#[derive(Clone, Debug)]
pub struct Input {
    pub shown: String,
    /// Why it has none: no such file, a directory.
    pub uri: Result<String, String>,
}

/// Every video the command line names, in order; an error when a list cannot be read or none is
/// named.
pub fn gather(args: &Args) -> anyhow::Result<Vec<Input>> {
    let mut names = args.videos.clone();
    names.extend(args.input_path.iter().cloned());
    for list in &args.input_file {
        names.extend(read_list(list)?);
    }
    if names.is_empty() {
        bail!("no videos given: the input files list none");
    }
    Ok(names.iter().map(|n| to_input(n)).collect())
}

fn to_input(text: &str) -> Input {
    let shown = text.to_string();
    if text.contains("://") && glib::uri_parse_scheme(text).is_some() {
        return Input {
            shown,
            uri: Ok(text.to_string()),
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
    Input { shown, uri }
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
