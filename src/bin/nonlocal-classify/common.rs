//! Model lookup and error text (also used by examples/live.rs).

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail};

/// `--model`, else `NONLOCAL_MODEL`, else what `tools/default-model` prints.
pub fn find_model(arg: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    if let Some(model) = arg {
        return Ok(model);
    }
    if let Some(model) = std::env::var_os("NONLOCAL_MODEL").filter(|m| !m.is_empty()) {
        return Ok(PathBuf::from(model));
    }
    let tool = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/default-model");
    let hint = "pass --model FILE or set NONLOCAL_MODEL";
    let out = std::process::Command::new(&tool)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| anyhow!("no model: {hint} ({} could not run: {e})", tool.display()))?;
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() || path.is_empty() {
        bail!(
            "no model: {hint} ({} failed with {})",
            tool.display(),
            out.status
        );
    }
    Ok(PathBuf::from(path))
}

/// "reason (detail)": the detail is the debug text without its source location line.
pub fn with_detail(error: &gst::glib::Error, debug: Option<gst::glib::GString>) -> String {
    let text = error.to_string();
    let detail = debug
        .as_deref()
        .and_then(|d| d.split_once('\n'))
        .map(|(_, d)| d.trim().to_string())
        .unwrap_or_default();
    if !detail.is_empty() && !text.contains(&detail) {
        format!("{text} ({detail})")
    } else {
        text
    }
}
