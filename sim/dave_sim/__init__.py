"""dave simulator: world generator, MuJoCo backend, Gazebo SDF export, expert driver."""
