"""Triton python-backend model: runs the entry's `model.onnx` with the onnxruntime package (CPU).

Written next to `model.onnx` by tools/nlexport/triton.py (backend "python"). Every request of a
dynamic batch is concatenated into one onnxruntime run, as Triton's own onnxruntime backend does,
so the server's statistics (execution count against inference count) show the batching.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        here = os.path.join(args["model_repository"], args["model_version"])
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(os.environ.get("NONLOCAL_TRITON_THREADS", "1"))
        self.session = ort.InferenceSession(os.path.join(here, "model.onnx"), options,
                                            providers=["CPUExecutionProvider"])
        self.input = config["input"][0]["name"]
        self.output = config["output"][0]["name"]
        self.batched = int(config.get("max_batch_size", 0)) > 0

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(r, self.input).as_numpy() for r in requests]
        try:
            if self.batched:
                sizes = [a.shape[0] for a in arrays]
                out = self.session.run([self.output], {self.input: np.concatenate(arrays)})[0]
                parts = np.split(out, np.cumsum(sizes)[:-1])
            else:
                parts = [self.session.run([self.output], {self.input: a})[0] for a in arrays]
        except Exception as e:  # noqa: BLE001 - every failure is the requests' error
            error = pb_utils.TritonError(f"onnxruntime: {e}")
            return [pb_utils.InferenceResponse(output_tensors=[], error=error) for _ in requests]
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output, p)])
                for p in parts]
