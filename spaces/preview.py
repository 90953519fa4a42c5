"""Render a small PNG preview (top-down plan) of a generated scene with Pillow.

The preview is drawn from the very GLB document :func:`spaces.glb.scene_glb` produces, so it always
matches the scene: each mesh node is drawn as its footprint (boxes and planes as rotated rectangles,
cylinders and cones as ellipses), lowest first, in the material's colour; seats get a small mark
showing which way they face and spawn points a ring. Output bytes are deterministic.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageDraw

from spaces.glb import read_glb_json, scene_glb
from spaces.themes import Exposure, Layout

PREVIEW_SIZE = (512, 288)
BACKGROUND: dict[str, tuple[int, int, int]] = {
    "calm-beach": (74, 128, 148),
    "forest-clearing": (52, 78, 52),
    "fireside-circle": (40, 48, 44),
    "garden": (70, 96, 66),
    "rehab-gym": (200, 196, 188),
    "quiet-library": (72, 58, 46),
    "consultation-office": (96, 88, 80),
}


@dataclass(frozen=True)
class _Xform:
    """2D placement on the ground plane plus height: translate, yaw, scale (x, y, z)."""

    x: float = 0.0
    y: float = 0.0
    z: float = 0.0
    yaw: float = 0.0
    sx: float = 1.0
    sy: float = 1.0
    sz: float = 1.0

    def then(self, node: dict[str, Any]) -> _Xform:
        tx, ty, tz = node.get("translation", [0.0, 0.0, 0.0])
        qx, qy, qz, qw = node.get("rotation", [0.0, 0.0, 0.0, 1.0])
        yaw = 2 * math.atan2(qy, qw)
        sx, sy, sz = node.get("scale", [1.0, 1.0, 1.0])
        # Parent scale applies to the child's translation, then the parent's yaw rotates it.
        lx, lz = tx * self.sx, tz * self.sz
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return _Xform(
            x=self.x + c * lx + s * lz,
            y=self.y + ty * self.sy,
            z=self.z - s * lx + c * lz,
            yaw=self.yaw + yaw,
            sx=self.sx * sx,
            sy=self.sy * sy,
            sz=self.sz * sz,
        )

    def point(self, lx: float, lz: float) -> tuple[float, float]:
        """A local ground-plane point (before scale) in world coordinates."""
        lx, lz = lx * self.sx, lz * self.sz
        c, s = math.cos(self.yaw), math.sin(self.yaw)
        return self.x + c * lx + s * lz, self.z - s * lx + c * lz


def _srgb(linear: float) -> int:
    return max(0, min(255, round(255 * (linear ** (1 / 2.2)))))


def scene_preview_png(
    preset: str, layout: Layout, exposure: Exposure | None = None, size: tuple[int, int] = PREVIEW_SIZE
) -> bytes:
    """A PNG plan view of the scene ``scene_glb(preset, layout, exposure)`` (deterministic bytes)."""
    doc = read_glb_json(scene_glb(preset, layout, exposure))
    nodes, meshes, materials = doc["nodes"], doc["meshes"], doc["materials"]

    shapes: list[tuple[float, int, str, _Xform, tuple[int, int, int]]] = []
    seats: list[_Xform] = []
    spawns: list[_Xform] = []

    def walk(index: int, parent: _Xform) -> None:
        node = nodes[index]
        ext = node.get("extensions", {})
        if ext.get("KHR_node_visibility", {}).get("visible", True) is False:
            return
        xf = parent.then(node)
        if "OMI_seat" in ext:
            seats.append(xf)
        if "OMI_spawn_point" in ext:
            spawns.append(xf)
        if "mesh" in node:
            mesh = meshes[node["mesh"]]
            shape = mesh["name"].split("-", 1)[0]
            base = materials[mesh["primitives"][0]["material"]]["pbrMetallicRoughness"]["baseColorFactor"]
            colour = (_srgb(base[0]), _srgb(base[1]), _srgb(base[2]))
            top = xf.y + {"box": xf.sy / 2, "plane": 0.0}.get(shape, xf.sy)
            shapes.append((top, index, shape, xf, colour))
        for child in node.get("children", []):
            walk(child, xf)

    for root in doc["scenes"][0]["nodes"]:
        walk(root, _Xform())

    width, height = size
    ground = min((s for s in shapes if s[2] == "plane"), key=lambda s: s[1])[3]
    extent = max(abs(ground.sx), abs(ground.sz)) / 2
    scale = (min(width, height) - 16) / (2 * extent)

    def px(wx: float, wz: float) -> tuple[float, float]:
        return (round(width / 2 + wx * scale, 2), round(height / 2 + wz * scale, 2))

    image = Image.new("RGB", size, BACKGROUND.get(preset, (60, 60, 60)))
    draw = ImageDraw.Draw(image)
    for _top, _i, shape, xf, colour in sorted(shapes, key=lambda s: (s[0], s[1])):
        if shape in ("box", "plane"):
            corners = [xf.point(dx, dz) for dx, dz in ((-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5))]
            draw.polygon([px(*c) for c in corners], fill=colour)
        else:
            rx, rz = abs(xf.sx) / 2 * scale, abs(xf.sz) / 2 * scale
            cx, cy = px(xf.x, xf.z)
            draw.ellipse((cx - rx, cy - rz, cx + rx, cy + rz), fill=colour)
    for xf in seats:
        cx, cy = px(xf.x, xf.z)
        hx, hy = px(*xf.point(0.0, 0.45))
        draw.line((cx, cy, hx, hy), fill=(250, 246, 236), width=2)
        draw.ellipse((cx - 2.5, cy - 2.5, cx + 2.5, cy + 2.5), fill=(250, 246, 236))
    for xf in spawns:
        cx, cy = px(xf.x, xf.z)
        draw.ellipse((cx - 4, cy - 4, cx + 4, cy + 4), outline=(255, 224, 160), width=2)

    out = io.BytesIO()
    image.save(out, format="PNG", optimize=False, compress_level=9)
    return out.getvalue()
