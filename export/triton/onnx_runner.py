"""Generic Triton Python-backend model: executes the ONNX file named in the model config.

Export copies this file into each model version directory as ``model.py``. It lets the CPU
``tritonserver`` from the nvidia-pytriton wheel (Python backend only) serve ONNX models, and on
a GPU host it uses onnxruntime's CUDA provider when present.

Names, dtypes and the ONNX file come from ``args["model_config"]``, never from this code.
All requests of a dynamic batch are concatenated and run as ONE onnxruntime call, then split
back; a request whose inputs are malformed gets its own error response.

onnxruntime's intra-op threads do not spin-wait for work between runs (config parameter
``ort_allow_spinning``, default "0"): Triton feeds the session one batch at a time, and a
spinning pool kept a core busy after every batch, taking it from the gateway and the other
model instances on the same host.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        version_dir = os.path.join(args["model_repository"], args["model_version"])
        onnx_path = os.path.join(version_dir, parameters.get("onnx_model_filename", "model.onnx"))

        options = ort.SessionOptions()
        options.intra_op_num_threads = int(parameters.get("ort_intra_op_threads", "0"))
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", parameters.get("ort_allow_spinning", "0"))
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        if args.get("model_instance_kind") == "GPU" and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, ("CUDAExecutionProvider", {"device_id": int(args["model_instance_device_id"])}))
        self.session = ort.InferenceSession(onnx_path, sess_options=options, providers=providers)

        self.inputs = [(i["name"], pb_utils.triton_string_to_numpy(i["data_type"])) for i in config["input"]]
        self.outputs = [(o["name"], pb_utils.triton_string_to_numpy(o["data_type"])) for o in config["output"]]

    def execute(self, requests):
        responses = [None] * len(requests)
        batches = {name: [] for name, _ in self.inputs}
        sizes, members = [], []
        for index, request in enumerate(requests):
            try:
                arrays = []
                for name, dtype in self.inputs:
                    tensor = pb_utils.get_input_tensor_by_name(request, name)
                    if tensor is None:
                        raise ValueError(f"missing input {name!r}")
                    arrays.append(np.ascontiguousarray(tensor.as_numpy(), dtype=dtype))
                counts = {a.shape[0] for a in arrays}
                if len(counts) != 1:
                    raise ValueError("all inputs of a request must have the same batch size")
            except ValueError as exc:
                responses[index] = pb_utils.InferenceResponse(error=pb_utils.TritonError(str(exc)))
                continue
            for (name, _), array in zip(self.inputs, arrays):
                batches[name].append(array)
            sizes.append(counts.pop())
            members.append(index)

        if members:
            feed = {name: np.concatenate(parts) if len(parts) > 1 else parts[0] for name, parts in batches.items()}
            try:
                results = self.session.run([name for name, _ in self.outputs], feed)
            except Exception as exc:  # onnxruntime raises its own hierarchy; answer every member
                error = pb_utils.TritonError(f"onnxruntime failed: {exc}")
                for index in members:
                    responses[index] = pb_utils.InferenceResponse(error=error)
                return responses
            offsets = np.cumsum([0, *sizes])
            for k, index in enumerate(members):
                tensors = [
                    pb_utils.Tensor(name, np.ascontiguousarray(result[offsets[k] : offsets[k + 1]], dtype=dtype))
                    for (name, dtype), result in zip(self.outputs, results)
                ]
                responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)
        return responses

    def finalize(self):
        self.session = None
