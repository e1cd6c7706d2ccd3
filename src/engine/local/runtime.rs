//! Loading ONNX Runtime at run time, once per process.
//!
//! ONNX Runtime is loaded dynamically (so `gst-inspect-1.0` works without it), from the first of
//! these that loads:
//!
//! 1. `ORT_DYLIB_PATH`, when set (then nothing else is tried);
//! 2. `libonnxruntime.so` (or `.so.1`) on the library path;
//! 3. the wheel inside an active virtual environment (`$VIRTUAL_ENV`): `onnxruntime`,
//!    `onnxruntime-gpu` or `onnxruntime-openvino`, whichever it holds;
//! 4. the OpenVINO build `tools/install-prereqs` installs for the user ([`installed_dir`]).
//!
//! One library serves the whole process: which one a process gets (the CUDA build, the OpenVINO
//! build, the CPU build) is chosen by `ORT_DYLIB_PATH` or the order above, never per element.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use crate::engine::EngineError;

/// ONNX Runtime version the project is built and tested with (the CPU and CUDA builds).
pub const ORT_VERSION: &str = "1.31.1";

/// Version of the OpenVINO build of ONNX Runtime (PyPI's `onnxruntime-openvino`, whose library
/// carries the OpenVINO execution provider and OpenVINO itself) that `tools/install-prereqs`
/// installs: the latest published, older than [`ORT_VERSION`] but within the API the element is
/// built for (23).
pub const OPENVINO_ORT_VERSION: &str = "1.24.1";

/// The ONNX Runtime library this process loaded.
#[derive(Clone, Debug)]
pub struct RuntimeInfo {
    /// The library, as it was found (a bare file name when found on the library path).
    pub path: PathBuf,
    /// Its version as it reports it ("1.31.1"), or "unknown".
    pub version: String,
}

/// The process-wide ONNX Runtime environment and the library it came from.
static RUNTIME: Mutex<Option<(ort::environment::Environment, RuntimeInfo)>> = Mutex::new(None);

/// Where `tools/install-prereqs` installs the OpenVINO build of ONNX Runtime (with
/// `pip install --target`): `$XDG_DATA_HOME/nonlocalclassify/onnxruntime-openvino`, by default
/// `~/.local/share/nonlocalclassify/onnxruntime-openvino`. None without a home directory.
pub fn installed_dir() -> Option<PathBuf> {
    installed_dir_from(&|name| std::env::var_os(name))
}

fn installed_dir_from(var: &dyn Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    let set = |name: &str| var(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    let data = set("XDG_DATA_HOME")
        .filter(|p| p.is_absolute())
        .or_else(|| set("HOME").map(|home| home.join(".local/share")))?;
    Some(data.join("nonlocalclassify/onnxruntime-openvino"))
}

/// The libraries of a Python `onnxruntime` package's `capi` folder (`libonnxruntime.so.1.x.y`),
/// newest name first.
fn wheel_libraries(capi: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(capi)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libonnxruntime.so.1."))
        })
        .collect();
    found.sort();
    found.reverse();
    found
}

/// The OpenVINO build `tools/install-prereqs` installed, if it is there.
pub fn installed_runtime() -> Option<PathBuf> {
    let capi = installed_dir()?.join("onnxruntime/capi");
    wheel_libraries(&capi).into_iter().next()
}

/// The libraries to try, in order (see the module's documentation), with `var` reading the
/// environment.
fn runtime_candidates(var: &dyn Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    if let Some(path) = var("ORT_DYLIB_PATH").filter(|p| !p.is_empty()) {
        return vec![PathBuf::from(path)];
    }
    let mut paths = vec![
        PathBuf::from("libonnxruntime.so"),
        PathBuf::from("libonnxruntime.so.1"),
    ];
    if let Some(venv) = var("VIRTUAL_ENV").filter(|v| !v.is_empty()) {
        if let Ok(entries) = std::fs::read_dir(Path::new(&venv).join("lib")) {
            for entry in entries.flatten() {
                let capi = entry.path().join("site-packages/onnxruntime/capi");
                paths.extend(wheel_libraries(&capi));
            }
        }
    }
    if let Some(dir) = installed_dir_from(var) {
        paths.extend(wheel_libraries(&dir.join("onnxruntime/capi")));
    }
    paths
}

/// The version ONNX Runtime's library at `path` reports (`OrtGetApiBase()->GetVersionString()`).
fn library_version(path: &Path) -> Option<String> {
    // SAFETY: `path` is the ONNX Runtime library ort has just loaded from it, so opening it again
    // only takes another reference; OrtGetApiBase has that signature in every ONNX Runtime, and
    // the version string it returns is a static NUL-terminated string.
    unsafe {
        let lib = libloading::Library::new(path).ok()?;
        let base: libloading::Symbol<unsafe extern "C" fn() -> *const ort::sys::OrtApiBase> =
            lib.get(b"OrtGetApiBase").ok()?;
        let base = base();
        if base.is_null() {
            return None;
        }
        let version = ((*base).GetVersionString)();
        if version.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr(version)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

/// Load ONNX Runtime once per process; later calls return the same environment.
pub fn runtime() -> Result<ort::environment::Environment, EngineError> {
    loaded().map(|(env, _)| env)
}

/// The library [`runtime`] loaded (loading it now if it is not yet).
pub fn runtime_info() -> Result<RuntimeInfo, EngineError> {
    loaded().map(|(_, info)| info)
}

fn loaded() -> Result<(ort::environment::Environment, RuntimeInfo), EngineError> {
    let mut guard = RUNTIME
        .lock()
        .map_err(|_| EngineError::Inference("runtime lock poisoned".into()))?;
    if let Some(loaded) = guard.as_ref() {
        return Ok(loaded.clone());
    }
    let mut tried = Vec::new();
    for path in runtime_candidates(&|name| std::env::var_os(name)) {
        match ort::init_from(&path) {
            Ok(builder) => {
                let env = builder.with_name("nonlocalclassify").build().map_err(|e| {
                    EngineError::RuntimeMissing {
                        tried: format!("{}: {e}", path.display()),
                    }
                })?;
                let info = RuntimeInfo {
                    version: library_version(&path).unwrap_or_else(|| "unknown".into()),
                    path,
                };
                *guard = Some((env.clone(), info.clone()));
                return Ok((env, info));
            }
            Err(e) => tried.push(format!("{}: {e}", path.display())),
        }
    }
    Err(EngineError::RuntimeMissing {
        tried: tried.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<OsString> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| OsString::from(v))
        }
    }

    /// A Python `onnxruntime` package's capi folder under `root/sub` holding `files`.
    fn capi(root: &Path, sub: &str, files: &[&str]) -> PathBuf {
        let dir = root.join(sub).join("onnxruntime/capi");
        std::fs::create_dir_all(&dir).unwrap();
        for f in files {
            std::fs::write(dir.join(f), b"").unwrap();
        }
        dir
    }

    #[test]
    fn ort_dylib_path_alone_when_set() {
        let got = runtime_candidates(&lookup(&[
            ("ORT_DYLIB_PATH", "/opt/ort/libonnxruntime.so"),
            ("HOME", "/home/u"),
        ]));
        assert_eq!(got, [PathBuf::from("/opt/ort/libonnxruntime.so")]);
    }

    #[test]
    fn library_path_then_the_virtual_environment_then_the_installed_openvino_build() {
        let root = std::env::temp_dir().join(format!("nl-runtime-order-{}", std::process::id()));
        let venv_capi = capi(
            &root,
            "venv/lib/python3.11/site-packages",
            &[
                "libonnxruntime.so.1.31.1",
                "libonnxruntime_providers_shared.so",
            ],
        );
        let data_capi = capi(
            &root,
            "data/nonlocalclassify/onnxruntime-openvino",
            &["libonnxruntime.so.1.24.1", "libopenvino.so"],
        );
        let venv = root.join("venv");
        let data = root.join("data");
        let got = runtime_candidates(&lookup(&[
            ("VIRTUAL_ENV", venv.to_str().unwrap()),
            ("XDG_DATA_HOME", data.to_str().unwrap()),
            ("HOME", "/home/u"),
        ]));
        assert_eq!(
            got,
            [
                PathBuf::from("libonnxruntime.so"),
                PathBuf::from("libonnxruntime.so.1"),
                venv_capi.join("libonnxruntime.so.1.31.1"),
                data_capi.join("libonnxruntime.so.1.24.1"),
            ]
        );
        std::fs::remove_dir_all(&root).ok();
    }

    #[test]
    fn the_installed_build_lives_in_the_users_data_folder() {
        assert_eq!(
            installed_dir_from(&lookup(&[("HOME", "/home/u")])),
            Some(PathBuf::from(
                "/home/u/.local/share/nonlocalclassify/onnxruntime-openvino"
            ))
        );
        assert_eq!(
            installed_dir_from(&lookup(&[("XDG_DATA_HOME", "/d"), ("HOME", "/home/u")])),
            Some(PathBuf::from("/d/nonlocalclassify/onnxruntime-openvino"))
        );
        // A relative XDG_DATA_HOME is invalid (XDG base directory specification).
        assert_eq!(
            installed_dir_from(&lookup(&[("XDG_DATA_HOME", "rel"), ("HOME", "/h")])),
            Some(PathBuf::from(
                "/h/.local/share/nonlocalclassify/onnxruntime-openvino"
            ))
        );
        assert_eq!(installed_dir_from(&lookup(&[])), None);
    }
}
