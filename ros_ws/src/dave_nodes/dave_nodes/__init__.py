"""Thin rclpy nodes of dave: simulator bridge, steering, command arbitration, stereo camera driver."""
