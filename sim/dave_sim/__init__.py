"""dave_sim: procedural worlds, the MuJoCo simulator of the DAVE truck, and the expert driver.

Modules: world (generator + YAML config), occupancy (distance grid, route search), vehicle
(config + pure dynamics), camera (stereo intrinsics), labels (ground-truth classes), mjcf (scene
writer), render (offscreen stereo renderer), collisions (episode counter), simulator (the
backend), realtime (wall-clock pacing), expert (privileged driver). Importing the package loads
nothing heavy; mujoco is imported by the modules that need it.
"""
