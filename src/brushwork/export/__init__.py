"""Deployment: ONNX export, onnxruntime stylizers and INT8 quantization."""
