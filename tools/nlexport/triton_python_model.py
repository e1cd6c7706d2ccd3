"""Triton python-backend model: runs the entry's `model.onnx` with the onnxruntime package.

Written next to `model.onnx` by tools/nlexport/triton.py (backend "python"). Every request of a
dynamic batch is concatenated into one onnxruntime run, as Triton's own onnxruntime backend does,
so the server's statistics (execution count against inference count) show the batching.

The server's environment picks the execution provider (`tools/triton-serve --provider` sets it):

- NONLOCAL_TRITON_PROVIDER: `cpu` (default: the CPU provider, NONLOCAL_TRITON_THREADS threads,
  default 1) or `cuda` (the CUDA provider, then the CPU provider for what CUDA does not run; needs
  the onnxruntime-gpu package in the server's Python, see benches/gpu/remote-install.sh).
- Under `cuda`, the card is the instance's when its instance_group kind is KIND_GPU, else
  NONLOCAL_TRITON_DEVICE (default 0). The entries tools/nlexport/triton.py writes keep KIND_CPU:
  the python backend then hands the model host-memory tensors and this session alone chooses the
  card, so the same entry serves either provider.
- Under `cuda`, the provider options are the element's own CUDA defaults (prefer_nhwc=1,
  fuse_conv_bias=1), then NONLOCAL_TRITON_CUDA_OPTIONS ("key=value,..." as ONNX Runtime names
  them) over them. As in the element's engine, each batch size gets a session of its own: ONNX
  Runtime's CUDA convolutions re-plan whenever a session's input shape changes (hundreds of
  milliseconds per run on the Non-local networks when batch sizes alternate, as the dynamic
  batcher's do). Every batch size the server can form gets its session, run once, before the
  model reports ready (cuDNN picks its kernels per input shape, seconds each); the sessions are
  opened again without fuse_conv_bias when cuDNN has no fused kernel for a layer.
  NONLOCAL_TRITON_WARMUP=0 skips those runs (sessions then open on first use).
"""

import json
import os
import time

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

# The element's CUDA provider defaults (src/engine/local/cuda.rs).
CUDA_DEFAULTS = (("prefer_nhwc", "1"), ("fuse_conv_bias", "1"))
_NUMPY_TYPES = {"TYPE_FP32": np.float32, "TYPE_FP16": np.float16, "TYPE_UINT8": np.uint8,
                "TYPE_INT64": np.int64, "TYPE_INT32": np.int32, "TYPE_FP64": np.float64}


def _cuda_options(device_id, fused=True):
    """The CUDA provider options, merged as the element merges NONLOCAL_CUDA_OPTIONS."""
    options = {"device_id": str(device_id)}
    options.update(CUDA_DEFAULTS)
    user = {}
    for pair in os.environ.get("NONLOCAL_TRITON_CUDA_OPTIONS", "").split(","):
        key, sep, value = pair.partition("=")
        if sep and key.strip():
            user[key.strip()] = value.strip()
    options.update(user)
    # cuDNN fuses the bias into channels-last convolutions only.
    nhwc_off = options.get("prefer_nhwc") == "0" and "fuse_conv_bias" not in user
    if not fused or nhwc_off:
        options.pop("fuse_conv_bias", None)
    return options


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        here = os.path.join(args["model_repository"], args["model_version"])
        self.path = os.path.join(here, "model.onnx")
        self.input = config["input"][0]["name"]
        self.output = config["output"][0]["name"]
        self.batched = int(config.get("max_batch_size", 0)) > 0
        # Under CUDA, a session per batch size (the module's docstring says why); None: one.
        self.per_batch = None
        provider = os.environ.get("NONLOCAL_TRITON_PROVIDER", "cpu").strip().lower() or "cpu"
        if provider == "cpu":
            options = ort.SessionOptions()
            options.intra_op_num_threads = int(os.environ.get("NONLOCAL_TRITON_THREADS", "1"))
            self.session = ort.InferenceSession(self.path, options,
                                                providers=["CPUExecutionProvider"])
            return
        if provider != "cuda":
            raise RuntimeError(
                f"NONLOCAL_TRITON_PROVIDER is {provider!r}: set it to cpu or cuda "
                "(tools/triton-serve --provider)")
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise RuntimeError(
                f"NONLOCAL_TRITON_PROVIDER=cuda, but onnxruntime {ort.__version__} at "
                f"{os.path.dirname(ort.__file__)} has no CUDA provider (it has "
                f"{', '.join(ort.get_available_providers())}): serve from a folder with onnxruntime-gpu "
                "(tools/triton-serve --python PY --site DIR, benches/gpu/remote-install.sh)")
        if args.get("model_instance_kind") == "GPU":
            self.device = int(args.get("model_instance_device_id", 0))
        else:
            self.device = int(os.environ.get("NONLOCAL_TRITON_DEVICE", "0"))
        self.name = args.get("model_instance_name", config.get("name", "model"))
        self.fused = True
        self.session = self._open_cuda()
        self.per_batch = {}
        if os.environ.get("NONLOCAL_TRITON_WARMUP", "1") != "0":
            try:
                self._warm_up(config)
            except Exception as e:  # noqa: BLE001 - only a refused fusion is retried
                if "CUDNN Frontend" not in str(e) and "CUDNN_FE" not in str(e):
                    raise
                print(f"{self.name}: cuDNN has no fused convolution for a layer ({e}); "
                      "opening the sessions without fuse_conv_bias", flush=True)
                self.fused = False
                self.session = self._open_cuda()
                self.per_batch = {}
                self._warm_up(config)

    def _session_for(self, batch):
        """The session that runs inputs of `batch` clips: under CUDA each size's own."""
        if not self.batched or self.per_batch is None:
            return self.session
        if batch not in self.per_batch:
            self.per_batch[batch] = self.session if not self.per_batch else self._open_cuda()
        return self.per_batch[batch]

    def _open_cuda(self):
        providers = [("CUDAExecutionProvider", _cuda_options(self.device, self.fused)),
                     "CPUExecutionProvider"]
        session = ort.InferenceSession(self.path, ort.SessionOptions(), providers=providers)
        if session.get_providers()[0] != "CUDAExecutionProvider":
            raise RuntimeError(
                f"onnxruntime opened {self.path} without the CUDA provider (got "
                f"{session.get_providers()}; the server log has ONNX Runtime's reason): check "
                "that the CUDA 13 and cuDNN 9 libraries and libonnxruntime_providers_cuda.so "
                "are on the server's library path")
        return session

    def _warm_up(self, config):
        """One run at every batch size the server can form (cuDNN's kernel choice per shape)."""
        dims = [int(d) for d in config["input"][0]["dims"]]
        dtype = _NUMPY_TYPES.get(config["input"][0]["data_type"], np.float32)
        if any(d < 0 for d in dims):
            return  # a free dimension: no one shape to warm up with
        sizes = range(1, int(config["max_batch_size"]) + 1) if self.batched else [None]
        start = time.monotonic()
        for b in sizes:
            shape = dims if b is None else [b] + dims
            session = self._session_for(b)
            session.run([self.output], {self.input: np.zeros(shape, dtype)})
        options = self.session.get_provider_options().get("CUDAExecutionProvider", {})
        chosen = {k: options.get(k) for k in ("device_id", "prefer_nhwc", "fuse_conv_bias")}
        print(f"{self.name}: onnxruntime {ort.__version__}, numpy {np.__version__}, CUDA provider "
              f"{chosen}, warmed up at {len(sizes)} batch sizes ({len(self.per_batch)} sessions) "
              f"in {time.monotonic() - start:.1f} s", flush=True)

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        try:
            if self.batched:
                sizes = [a.shape[0] for a in arrays]
                batch = np.concatenate(arrays)
                session = self._session_for(batch.shape[0])
                out = session.run([self.output], {self.input: batch})[0]
                parts = np.split(out, np.cumsum(sizes)[:-1])
            else:
                parts = [self.session.run([self.output], {self.input: a})[0] for a in arrays]
        except Exception as e:  # noqa: BLE001 - every failure is the requests' error
            error = pb_utils.TritonError(f"onnxruntime: {e}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output, p)])
                for p in parts]
