//! Progress and warnings on stderr: a bar of videos done, drawn on terminals only, with the clip
//! each video is at; warnings and `--verbose` notes printed above it.

use std::collections::HashSet;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

/// Progress and warnings of one video's run.
pub trait Report: Sync {
    fn clip(&self, video: &str, index: u64, expected: Option<u64>);
    fn warn(&self, text: String);
    fn note(&self, text: String);
}

/// The progress bar over `videos` videos, and the report drawn on it. A warning is printed once
/// however many pipelines give it (the model's, such as random weights or no CUDA, come from
/// every one).
pub struct BarReport {
    pub bar: ProgressBar,
    warned: Mutex<HashSet<String>>,
}

impl BarReport {
    pub fn new(videos: usize) -> Self {
        let bar = if std::io::stderr().is_terminal() {
            ProgressBar::new(videos as u64).with_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} videos  {wide_msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            )
        } else {
            ProgressBar::hidden()
        };
        bar.enable_steady_tick(Duration::from_millis(200));
        Self {
            bar,
            warned: Mutex::default(),
        }
    }
}

impl Report for BarReport {
    fn clip(&self, video: &str, index: u64, expected: Option<u64>) {
        let name = Path::new(video)
            .file_name()
            .map_or(video.into(), |n| n.to_string_lossy());
        let of = expected.map_or(String::new(), |e| format!("/{e}"));
        self.bar
            .set_message(format!("{name}: clip {}{of}", index + 1));
    }

    fn warn(&self, text: String) {
        let new = self
            .warned
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(text.clone());
        if new {
            self.bar.suspend(|| eprintln!("warning: {text}"));
        }
    }

    fn note(&self, text: String) {
        self.bar.suspend(|| eprintln!("{text}"));
    }
}
