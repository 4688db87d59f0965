"""dave networks: definitions, training, ONNX export; ships the trained ONNX models."""
