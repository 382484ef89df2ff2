"""Triton model-directory writing: config.pbtxt rendering and the generic ONNX runner."""
