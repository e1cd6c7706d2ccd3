//! A real Triton Inference Server for the remote-backend tests: `tools/triton-serve` on
//! 127.0.0.1 (free ports), serving python-backend entries of the test models (written by
//! `tools/triton-repo`), stopped by its PID.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh scratch directory of this test process.
pub fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("nonlocal-remote-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

fn venv_python() -> PathBuf {
    let cache = std::env::var_os("NONLOCAL_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".cache"));
    std::env::var_os("NONLOCAL_TRITON_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| cache.join("triton-venv"))
        .join("bin/python")
}

/// The model repository of the tests (written once per test process): python-backend entries
/// of probe, probe_u8 and probe_nthwc_f16 (max batch 8, 2 ms queue delay), `probe_nobatch`
/// (probe with max batch 1: the server never merges requests) and `probe_delay` (probe with a
/// 50 ms queue delay: requests arriving together are merged).
pub fn repository() -> &'static Path {
    static REPO: OnceLock<PathBuf> = OnceLock::new();
    REPO.get_or_init(|| {
        let install = Command::new(root().join("tools/triton-serve"))
            .arg("--install")
            .status()
            .expect("tools/triton-serve runs");
        assert!(install.success(), "tools/triton-serve --install failed");
        let repo = scratch("repo");
        let models = root().join("tests/models");
        let write = |extra: &[&str], specs: &[String]| {
            let out = Command::new(venv_python())
                .arg(root().join("tools/triton-repo"))
                .args(["--backend", "python"])
                .args(extra)
                .arg(&repo)
                .args(specs)
                .output()
                .expect("tools/triton-repo runs");
            assert!(
                out.status.success(),
                "tools/triton-repo: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let m = |f: &str, name: &str| format!("{}={name}", models.join(f).display());
        write(
            &[],
            &[
                m("probe.onnx", "probe"),
                m("probe_u8.onnx", "probe_u8"),
                m("probe_nthwc_f16.onnx", "probe_nthwc_f16"),
            ],
        );
        write(&["--max-batch", "1"], &[m("probe.onnx", "probe_nobatch")]);
        write(
            &["--queue-delay-us", "50000"],
            &[m("probe.onnx", "probe_delay")],
        );
        repo
    })
}

/// Options of one server start.
#[derive(Default, Clone)]
pub struct Options {
    pub grpc_port: u16,
    pub tls: Option<(PathBuf, PathBuf, Option<PathBuf>)>,
    pub token: Option<String>,
    pub wait: bool,
}

/// A running tritonserver, stopped (by PID) when dropped.
pub struct Server {
    pub pid: u32,
    pub grpc: String,
    pub grpc_port: u16,
    pub log: PathBuf,
}

impl Server {
    /// Start a server on the test repository and wait until it is ready.
    pub fn start() -> Server {
        Server::start_with(Options {
            wait: true,
            ..Default::default()
        })
    }

    pub fn start_with(options: Options) -> Server {
        let repo = repository();
        let dir = scratch(&format!("server-{}", options.grpc_port));
        let log = dir.join("tritonserver.log");
        let mut cmd = Command::new(root().join("tools/triton-serve"));
        cmd.arg("--repo").arg(repo).arg("--log").arg(&log);
        cmd.args(["--grpc-port", &options.grpc_port.to_string()]);
        if let Some((cert, key, client_ca)) = &options.tls {
            cmd.arg("--tls-cert").arg(cert).arg("--tls-key").arg(key);
            if let Some(ca) = client_ca {
                cmd.arg("--tls-client-ca").arg(ca);
            }
        }
        if let Some(token) = &options.token {
            cmd.args(["--token", token]);
        }
        if !options.wait {
            cmd.arg("--no-wait");
        }
        let out = cmd.output().expect("tools/triton-serve runs");
        assert!(
            out.status.success(),
            "tools/triton-serve failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let line = String::from_utf8_lossy(&out.stdout).to_string();
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|f| f.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!("no {name}= in '{line}'"))
                .to_string()
        };
        let grpc = field("grpc");
        let grpc_port = grpc.rsplit(':').next().unwrap().parse().unwrap();
        Server {
            pid: field("pid").parse().unwrap(),
            grpc,
            grpc_port,
            log,
        }
    }

    /// Stop the server (SIGKILL when `hard`, else SIGTERM) and wait until its process is gone.
    pub fn stop(&self, hard: bool) {
        // tools/triton-serve starts the server as a process group leader (setsid): the group
        // holds its python-backend stub processes too, which outlive a killed server.
        let _ = Command::new("kill")
            .arg(if hard { "-KILL" } else { "-TERM" })
            .arg("--")
            .arg(format!("-{}", self.pid))
            .stderr(std::process::Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Path::new(&format!("/proc/{}", self.pid)).exists() && Instant::now() < deadline {
            // Reap it if it is our child's child: the script started it with setsid, so it was
            // re-parented; /proc/PID/stat says Z while a zombie.
            let zombie = std::fs::read_to_string(format!("/proc/{}/stat", self.pid))
                .map(|s| {
                    s.rsplit(')')
                        .next()
                        .unwrap_or("")
                        .trim_start()
                        .starts_with('Z')
                })
                .unwrap_or(true);
            if zombie {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(true);
    }
}

/// A port nothing listens on (bound and released).
pub fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// A CA and a server certificate for 127.0.0.1 signed by it, and a client certificate signed by
/// it, made by `openssl` in `dir`: (ca.pem, server.pem, server.key, client.pem, client.key).
pub fn certificates(dir: &Path) -> [PathBuf; 5] {
    let p = |f: &str| dir.join(f);
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl runs (apt-get install openssl)");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        "/CN=test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    std::fs::write(
        p("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    // X.509 v3 certificates (rustls refuses v1 ones): every certificate gets extensions.
    std::fs::write(
        p("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    for who in ["server", "client"] {
        run(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={who}"),
            "-keyout",
            &format!("{who}.key"),
            "-out",
            &format!("{who}.csr"),
        ]);
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            &format!("{who}.csr"),
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-out",
            &format!("{who}.pem"),
        ]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
        args.extend(["-extfile".into(), format!("{who}.ext")]);
        run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    }
    [
        p("ca.pem"),
        p("server.pem"),
        p("server.key"),
        p("client.pem"),
        p("client.key"),
    ]
}
