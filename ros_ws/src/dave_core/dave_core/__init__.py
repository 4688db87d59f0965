"""ROS-free core of dave: stereo sync, command safety, ONNX runner, model contract, launch runner, the dave CLI."""
