"""Offscreen stereo rendering of a MuJoCo scene: colour images, class labels and depth.

One GL context, one MjrContext and one scene are made once and reused for every image. The
ground-truth pass draws geoms in segmentation colours (each geom's scene index + 1 encoded in
RGB) and reads the depth buffer of the same pass, so labels and depth cost one render together.

The caller picks the GL backend (MUJOCO_GL=egl for headless) before mujoco is imported; this
module never touches the environment.
"""
from __future__ import annotations

import mujoco
import numpy as np

from dave_sim.labels import CATEGORY_CLASS, TerrainClass


def geom_class_table(model: mujoco.MjModel) -> np.ndarray:
    """Class of every model geom, from its group (labels.GeomCategory); unknown groups -> UNKNOWN."""
    table = np.full(model.ngeom, TerrainClass.UNKNOWN, dtype=np.uint8)
    for category, terrain_class in CATEGORY_CLASS.items():
        table[model.geom_group == int(category)] = terrain_class
    return table


class StereoRenderer:
    """Renders the model's fixed cameras into preallocated-size numpy images."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int) -> None:
        self._model = model
        self._width, self._height = width, height
        self._gl = mujoco.GLContext(width, height)
        self._gl.make_current()
        try:
            self._context = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_100)
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN, self._context)
            # Depth map 1 at near, 0 at far ("reversed z"): MuJoCo's most precise mode at range.
            self._context.readDepthMap = mujoco.mjtDepthMap.mjDEPTH_ZEROFAR
        except Exception:
            self._gl.free()
            raise
        self._rect = mujoco.MjrRect(0, 0, width, height)
        self._scene = mujoco.MjvScene(model, maxgeom=model.ngeom + 64)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = False
        self._scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = False
        self._option = mujoco.MjvOption()
        self._geom_class = geom_class_table(model)
        self._near = model.vis.map.znear * model.stat.extent
        self._far = model.vis.map.zfar * model.stat.extent
        self._rgb = np.empty((height, width, 3), np.uint8)
        self._depth = np.empty((height, width), np.float32)
        self._cameras: dict[str, mujoco.MjvCamera] = {}

    def _camera(self, name: str) -> mujoco.MjvCamera:
        camera = self._cameras.get(name)
        if camera is None:
            camera_id = mujoco.mj_name2id(self._model, mujoco.mjtObj.mjOBJ_CAMERA, name)
            if camera_id < 0:
                raise ValueError(f'camera {name!r} is not in the model')
            camera = mujoco.MjvCamera()
            camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
            camera.fixedcamid = camera_id
            self._cameras[name] = camera
        return camera

    def _draw(self, data: mujoco.MjData, camera: str, segment: bool) -> None:
        self._gl.make_current()
        mujoco.mjv_updateScene(self._model, data, self._option, None, self._camera(camera),
                               mujoco.mjtCatBit.mjCAT_ALL, self._scene)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = segment
        self._scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = segment
        mujoco.mjr_render(self._rect, self._scene, self._context)

    def rgb(self, data: mujoco.MjData, camera: str) -> np.ndarray:
        """HxWx3 uint8 RGB image of `camera` (a new array)."""
        self._draw(data, camera, segment=False)
        mujoco.mjr_readPixels(self._rgb, None, self._rect, self._context)
        return self._rgb[::-1].copy()  # OpenGL rows run bottom-up

    def labels_and_depth(self, data: mujoco.MjData, camera: str) -> tuple[np.ndarray, np.ndarray]:
        """(HxW uint8 TerrainClass labels, HxW float32 depth [m] along the optical axis, +inf for sky)."""
        self._draw(data, camera, segment=True)
        mujoco.mjr_readPixels(self._rgb, self._depth, self._rect, self._context)
        # Scene index + 1 of the geom drawn at each pixel; 0 where nothing was drawn (the sky).
        seg_ids = (self._rgb[..., 0].astype(np.int32) | (self._rgb[..., 1].astype(np.int32) << 8)
                   | (self._rgb[..., 2].astype(np.int32) << 16))
        lut = self._segment_class_table()
        labels = lut[np.minimum(seg_ids, len(lut) - 1)][::-1].copy()
        depth = self._metric_depth(self._depth)[::-1].copy()
        return labels, depth

    def _segment_class_table(self) -> np.ndarray:
        # Scene geoms are rebuilt by every update, so map this scene's indices to classes; the
        # per-geom class table itself was prepared once from the model.
        lut = np.full(self._scene.ngeom + 2, TerrainClass.UNKNOWN, dtype=np.uint8)
        for index in range(self._scene.ngeom):
            geom = self._scene.geoms[index]
            if geom.objtype == mujoco.mjtObj.mjOBJ_GEOM and geom.segid >= 0:
                lut[geom.segid + 1] = self._geom_class[geom.objid]
        return lut

    def _metric_depth(self, zbuffer: np.ndarray) -> np.ndarray:
        # Reversed-z perspective depth b in [0, 1] (1 = near plane) inverts to n*f / (n + b (f - n)).
        near, far = self._near, self._far
        b = zbuffer.astype(np.float64)
        depth = (near * far) / (near + b * (far - near))
        depth[b <= 0.0] = np.inf  # cleared to the far plane: nothing there
        return depth.astype(np.float32)

    def close(self) -> None:
        """Free GL resources; the renderer is unusable afterwards. Safe to call twice."""
        if self._gl is None:
            return
        self._gl.make_current()
        self._context.free()
        self._gl.free()
        self._gl = None

    @property
    def geom_class(self) -> np.ndarray:
        return self._geom_class

