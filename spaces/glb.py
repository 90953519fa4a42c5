"""Generate a low-poly binary glTF 2.0 (GLB) scene for each preset.

The file is a pure function of ``(preset, layout, exposure)``: the same input always gives the same
bytes, so the executor uploads each distinct scene once and reuses it by :func:`content_hash`.

What the scene holds:
- a ground (and water, walls or hedges depending on the preset) and a few props made of boxes,
  cylinders and cones with flat, calm colours (no textures, nothing emissive except a steady fire);
- one node per seat carrying ``OMI_seat`` (back/foot/knee points in the seat's local space), named
  like the seat ids in ``org.hearth.room.scene``;
- one node per spawn point carrying ``OMI_spawn_point`` (title, group);
- for graded-exposure rooms, one group node per level (``exposure-<level id>``) carrying
  ``KHR_node_visibility``; only the default (gentlest) level is visible initially;
- a doorway node (``safe-place-door``) by the arrival line: the way out is always in view.

Axes follow glTF: metres, +Y up, seats face the yaw given by :mod:`spaces.scene`.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from spaces.scene import PRESET_TITLES, SEAT_HEIGHT, ground_extent, seat_placements, spawn_placements
from spaces.themes import Exposure, Layout

GLB_MAGIC = 0x46546C67
CHUNK_JSON = 0x4E4F534A
CHUNK_BIN = 0x004E4942
ARRAY_BUFFER = 34962
ELEMENT_ARRAY_BUFFER = 34963
FLOAT = 5126
UNSIGNED_SHORT = 5123

EXTENSIONS = ("KHR_node_visibility", "OMI_seat", "OMI_spawn_point")

Colour = tuple[float, float, float]
Vec = tuple[float, float, float]
Triangle = tuple[Vec, Vec, Vec]

# Calm, desaturated palette (linear RGB factors).
PALETTE: dict[str, Colour] = {
    "sand": (0.76, 0.66, 0.50),
    "sea": (0.20, 0.42, 0.50),
    "grass": (0.33, 0.50, 0.30),
    "moss": (0.26, 0.40, 0.24),
    "leaf": (0.18, 0.36, 0.22),
    "hedge": (0.22, 0.38, 0.24),
    "bark": (0.36, 0.26, 0.18),
    "wood": (0.55, 0.40, 0.27),
    "oak": (0.62, 0.48, 0.33),
    "earth": (0.42, 0.34, 0.26),
    "stone": (0.55, 0.54, 0.52),
    "fire": (0.95, 0.55, 0.20),
    "fabric": (0.47, 0.56, 0.62),
    "cushion": (0.66, 0.58, 0.70),
    "flower-a": (0.80, 0.62, 0.70),
    "flower-b": (0.90, 0.82, 0.50),
    "water": (0.35, 0.55, 0.62),
    "floor": (0.78, 0.72, 0.62),
    "mat": (0.40, 0.55, 0.58),
    "metal": (0.70, 0.72, 0.74),
    "shelf": (0.45, 0.32, 0.22),
    "book-a": (0.52, 0.30, 0.28),
    "book-b": (0.30, 0.40, 0.52),
    "lamp": (0.98, 0.90, 0.70),
    "figure": (0.62, 0.64, 0.70),
    "door": (0.80, 0.76, 0.66),
}
EMISSIVE = {"fire": (0.9, 0.45, 0.12), "lamp": (0.6, 0.55, 0.4)}


# --------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Geometry:
    positions: np.ndarray  # (n, 3) float32
    normals: np.ndarray  # (n, 3) float32
    indices: np.ndarray  # (m,) uint16


def _flat(triangles: Sequence[Triangle]) -> _Geometry:
    """Flat-shaded geometry from counter-clockwise triangles (one normal per face)."""
    pos: list[tuple[float, float, float]] = []
    nor: list[tuple[float, float, float]] = []
    for a, b, c in triangles:
        u = np.subtract(b, a)
        v = np.subtract(c, a)
        n = np.cross(u, v)
        length = float(np.linalg.norm(n))
        if length < 1e-9:
            continue
        n = n / length
        for p in (a, b, c):
            pos.append(p)
            nor.append((float(n[0]), float(n[1]), float(n[2])))
    positions = np.asarray(pos, dtype=np.float32)
    normals = np.asarray(nor, dtype=np.float32)
    # Renormalise in float32 so the validator's unit-length check holds exactly.
    normals = (normals / np.linalg.norm(normals, axis=1, keepdims=True)).astype(np.float32)
    return _Geometry(positions, normals, np.arange(len(pos), dtype=np.uint16))


def _box() -> _Geometry:
    """Unit cube centred on the origin (scale the node to size it)."""
    h = 0.5
    corners: dict[tuple[int, int, int], Vec] = {
        (sx, sy, sz): (sx * h, sy * h, sz * h) for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)
    }
    faces = [
        ((1, -1, -1), (1, 1, -1), (1, 1, 1), (1, -1, 1)),  # +X
        ((-1, -1, 1), (-1, 1, 1), (-1, 1, -1), (-1, -1, -1)),  # -X
        ((-1, 1, -1), (-1, 1, 1), (1, 1, 1), (1, 1, -1)),  # +Y
        ((-1, -1, 1), (-1, -1, -1), (1, -1, -1), (1, -1, 1)),  # -Y
        ((-1, -1, 1), (1, -1, 1), (1, 1, 1), (-1, 1, 1)),  # +Z
        ((1, -1, -1), (-1, -1, -1), (-1, 1, -1), (1, 1, -1)),  # -Z
    ]
    tris: list[Triangle] = []
    for a, b, c, d in faces:
        tris.append((corners[a], corners[b], corners[c]))
        tris.append((corners[a], corners[c], corners[d]))
    return _flat(tris)


def _ring(radius: float, y: float, segments: int) -> list[Vec]:
    return [
        (radius * math.cos(2 * math.pi * i / segments), y, -radius * math.sin(2 * math.pi * i / segments))
        for i in range(segments)
    ]


def _cylinder(segments: int = 10) -> _Geometry:
    """Unit-diameter, unit-height cylinder standing on y=0."""
    bottom, top = _ring(0.5, 0.0, segments), _ring(0.5, 1.0, segments)
    tris: list[Triangle] = []
    for i in range(segments):
        j = (i + 1) % segments
        tris.append((bottom[i], bottom[j], top[j]))
        tris.append((bottom[i], top[j], top[i]))
        tris.append(((0.0, 1.0, 0.0), top[i], top[j]))
        tris.append(((0.0, 0.0, 0.0), bottom[j], bottom[i]))
    return _flat(tris)


def _cone(segments: int = 10) -> _Geometry:
    """Unit-diameter, unit-height cone standing on y=0."""
    base = _ring(0.5, 0.0, segments)
    tris: list[Triangle] = []
    for i in range(segments):
        j = (i + 1) % segments
        tris.append((base[i], base[j], (0.0, 1.0, 0.0)))
        tris.append(((0.0, 0.0, 0.0), base[j], base[i]))
    return _flat(tris)


def _plane() -> _Geometry:
    """Unit square on y=0 facing up."""
    a, b, c, d = (-0.5, 0.0, 0.5), (0.5, 0.0, 0.5), (0.5, 0.0, -0.5), (-0.5, 0.0, -0.5)
    return _flat([(a, b, c), (a, c, d)])


SHAPES = {"box": _box, "cylinder": _cylinder, "cone": _cone, "plane": _plane}


# --------------------------------------------------------------------------- document builder


def _yaw_quat(yaw: float) -> list[float]:
    if abs(math.sin(yaw / 2)) < 1e-12:
        return [0.0, 0.0, 0.0, 1.0]
    return [0.0, round(math.sin(yaw / 2), 6), 0.0, round(math.cos(yaw / 2), 6)]


@dataclass
class _Doc:
    nodes: list[dict[str, Any]] = field(default_factory=list)
    meshes: list[dict[str, Any]] = field(default_factory=list)
    materials: list[dict[str, Any]] = field(default_factory=list)
    accessors: list[dict[str, Any]] = field(default_factory=list)
    buffer_views: list[dict[str, Any]] = field(default_factory=list)
    blob: bytearray = field(default_factory=bytearray)
    _geometry: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    _mesh: dict[tuple[str, str], int] = field(default_factory=dict)
    _material: dict[str, int] = field(default_factory=dict)

    def _view(self, data: bytes, target: int) -> int:
        while len(self.blob) % 4:
            self.blob.append(0)
        self.buffer_views.append(
            {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data), "target": target}
        )
        self.blob.extend(data)
        return len(self.buffer_views) - 1

    def _geometry_accessors(self, shape: str) -> tuple[int, int, int]:
        if shape not in self._geometry:
            geo = SHAPES[shape]()
            pos_view = self._view(geo.positions.tobytes(), ARRAY_BUFFER)
            nor_view = self._view(geo.normals.tobytes(), ARRAY_BUFFER)
            idx_view = self._view(geo.indices.tobytes(), ELEMENT_ARRAY_BUFFER)
            base = len(self.accessors)
            self.accessors.append(
                {
                    "bufferView": pos_view,
                    "componentType": FLOAT,
                    "count": len(geo.positions),
                    "type": "VEC3",
                    "min": [float(v) for v in geo.positions.min(axis=0)],
                    "max": [float(v) for v in geo.positions.max(axis=0)],
                }
            )
            self.accessors.append(
                {"bufferView": nor_view, "componentType": FLOAT, "count": len(geo.normals), "type": "VEC3"}
            )
            self.accessors.append(
                {
                    "bufferView": idx_view,
                    "componentType": UNSIGNED_SHORT,
                    "count": len(geo.indices),
                    "type": "SCALAR",
                }
            )
            self._geometry[shape] = (base, base + 1, base + 2)
        return self._geometry[shape]

    def material(self, name: str) -> int:
        if name not in self._material:
            r, g, b = PALETTE[name]
            mat: dict[str, Any] = {
                "name": name,
                "pbrMetallicRoughness": {
                    "baseColorFactor": [r, g, b, 1.0],
                    "metallicFactor": 0.3 if name == "metal" else 0.0,
                    "roughnessFactor": 0.5 if name in ("metal", "sea", "water") else 0.9,
                },
            }
            if name in EMISSIVE:
                mat["emissiveFactor"] = list(EMISSIVE[name])
            self.materials.append(mat)
            self._material[name] = len(self.materials) - 1
        return self._material[name]

    def mesh(self, shape: str, colour: str) -> int:
        key = (shape, colour)
        if key not in self._mesh:
            pos, nor, idx = self._geometry_accessors(shape)
            self.meshes.append(
                {
                    "name": f"{shape}-{colour}",
                    "primitives": [
                        {
                            "attributes": {"POSITION": pos, "NORMAL": nor},
                            "indices": idx,
                            "material": self.material(colour),
                            "mode": 4,
                        }
                    ],
                }
            )
            self._mesh[key] = len(self.meshes) - 1
        return self._mesh[key]

    def node(
        self,
        name: str,
        *,
        parent: int | None,
        translation: tuple[float, float, float] = (0.0, 0.0, 0.0),
        yaw: float = 0.0,
        scale: tuple[float, float, float] | None = None,
        mesh: tuple[str, str] | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> int:
        node: dict[str, Any] = {"name": name}
        if any(abs(v) > 1e-9 for v in translation):
            node["translation"] = [round(v, 4) for v in translation]
        quat = _yaw_quat(yaw)
        if quat != [0.0, 0.0, 0.0, 1.0]:
            node["rotation"] = quat
        if scale is not None:
            node["scale"] = [round(v, 4) for v in scale]
        if mesh is not None:
            node["mesh"] = self.mesh(*mesh)
        if extensions:
            node["extensions"] = extensions
        self.nodes.append(node)
        index = len(self.nodes) - 1
        if parent is not None:
            self.nodes[parent].setdefault("children", []).append(index)
        return index

    def prop(
        self,
        name: str,
        parent: int,
        shape: str,
        colour: str,
        at: tuple[float, float, float],
        size: tuple[float, float, float],
        yaw: float = 0.0,
    ) -> int:
        """A mesh node: ``size`` scales the unit shape; boxes are centred, others stand on ``at``."""
        return self.node(name, parent=parent, translation=at, yaw=yaw, scale=size, mesh=(shape, colour))


# --------------------------------------------------------------------------- presets


def _ground(doc: _Doc, root: int, preset: str, extent: float) -> None:
    size = 2 * extent
    if preset == "calm-beach":
        doc.prop("sand", root, "plane", "sand", (0, 0, 0), (size, 1, size))
        doc.prop("sea", root, "plane", "sea", (0, 0.02, -extent - extent / 2), (size * 2, 1, extent))
    elif preset in ("forest-clearing", "garden"):
        doc.prop("grass", root, "plane", "grass", (0, 0, 0), (size, 1, size))
    elif preset == "fireside-circle":
        doc.prop("meadow", root, "plane", "moss", (0, 0, 0), (size, 1, size))
    else:
        doc.prop(
            "floor", root, "plane", "floor" if preset == "rehab-gym" else "oak", (0, 0, 0), (size, 1, size)
        )


def _tree(doc: _Doc, parent: int, name: str, x: float, z: float, height: float) -> None:
    group = doc.node(name, parent=parent, translation=(x, 0, z))
    doc.prop(f"{name}-trunk", group, "cylinder", "bark", (0, 0, 0), (0.3, height * 0.4, 0.3))
    doc.prop(
        f"{name}-crown",
        group,
        "cone",
        "leaf",
        (0, height * 0.3, 0),
        (height * 0.45, height * 0.75, height * 0.45),
    )


def _props(doc: _Doc, root: int, preset: str, extent: float, centre_radius: float) -> None:
    props = doc.node("props", parent=root)
    edge = extent - 1.5
    if preset == "calm-beach":
        for i, (x, z) in enumerate(
            [(-edge, -2.0), (edge, -1.0), (-edge + 1.5, edge - 1.0), (edge - 1.0, edge - 2.0)]
        ):
            doc.prop(
                f"driftwood-{i + 1}", props, "box", "wood", (x, 0.12, z), (1.6, 0.24, 0.35), yaw=0.4 * (i + 1)
            )
        for i, x in enumerate((-edge + 2.0, edge - 2.0)):
            doc.prop(
                f"parasol-{i + 1}-pole", props, "cylinder", "wood", (x, 0, -edge + 2.0), (0.08, 2.2, 0.08)
            )
            doc.prop(
                f"parasol-{i + 1}-shade", props, "cone", "fabric", (x, 1.8, -edge + 2.0), (2.2, 0.6, 2.2)
            )
    elif preset == "forest-clearing":
        count = 14
        for i in range(count):
            a = 2 * math.pi * i / count
            r = edge - (0.8 if i % 2 else 0.0)
            _tree(doc, props, f"tree-{i + 1:02d}", r * math.sin(a), r * math.cos(a), 4.0 + (i % 3) * 0.8)
        doc.prop("stream", props, "plane", "water", (0, 0.02, -edge + 2.5), (2 * edge, 1, 0.8))
    elif preset == "fireside-circle":
        doc.prop("fire-ring", props, "cylinder", "stone", (0, 0, 0), (1.4, 0.22, 1.4))
        doc.prop("fire-bed", props, "cylinder", "earth", (0, 0.2, 0), (1.1, 0.04, 1.1))
        doc.prop("fire", props, "cone", "fire", (0, 0.24, 0), (0.7, 0.8, 0.7))
        for i in range(4):
            a = math.pi / 4 + i * math.pi / 2
            doc.prop(
                f"lantern-{i + 1}",
                props,
                "cylinder",
                "lamp",
                (edge * math.sin(a), 0, edge * math.cos(a)),
                (0.25, 0.45, 0.25),
            )
        for i in range(8):
            a = 2 * math.pi * i / 8
            _tree(doc, props, f"tree-{i + 1}", (edge + 0.5) * math.sin(a), (edge + 0.5) * math.cos(a), 4.5)
    elif preset == "garden":
        for i, (x, z, w, d) in enumerate(
            [(0, -edge, 2 * edge, 0.7), (-edge, 0, 0.7, 2 * edge), (edge, 0, 0.7, 2 * edge)]
        ):
            doc.prop(f"hedge-{i + 1}", props, "box", "hedge", (x, 0.6, z), (w, 1.2, d))
        for i in range(6):
            x = -edge + 1.8 + i * (2 * edge - 3.6) / 5
            doc.prop(
                f"flowerbed-{i + 1}",
                props,
                "box",
                "flower-a" if i % 2 else "flower-b",
                (x, 0.15, -edge + 1.3),
                (1.2, 0.3, 0.8),
            )
        if centre_radius > 2.0:
            doc.prop("fountain-basin", props, "cylinder", "stone", (0, 0, 0), (1.6, 0.4, 1.6))
            doc.prop("fountain-water", props, "cylinder", "water", (0, 0.4, 0), (1.3, 0.02, 1.3))
    elif preset == "rehab-gym":
        for side in (-1, 1):
            x = side * (edge - 0.5)
            doc.prop(
                f"parallel-bar-{'left' if side < 0 else 'right'}-a",
                props,
                "box",
                "metal",
                (x - 0.3, 0.9, 0),
                (0.05, 0.05, 3.0),
            )
            doc.prop(
                f"parallel-bar-{'left' if side < 0 else 'right'}-b",
                props,
                "box",
                "metal",
                (x + 0.3, 0.9, 0),
                (0.05, 0.05, 3.0),
            )
            for k, z in enumerate((-1.4, 1.4)):
                doc.prop(f"bar-post-{side}-{k}", props, "cylinder", "metal", (x, 0, z), (0.06, 0.9, 0.06))
        for i in range(4):
            doc.prop(
                f"mat-{i + 1}", props, "box", "mat", (-3.0 + 2.0 * i, 0.02, -edge + 1.2), (1.6, 0.04, 0.8)
            )
        doc.prop("wall-bars", props, "box", "oak", (0, 1.2, -edge), (4.0, 2.4, 0.15))
        doc.prop("host-chair", props, "box", "fabric", (0, 0.25, -edge + 2.4), (0.6, 0.5, 0.6))
    elif preset == "quiet-library":
        count = 6
        for i in range(count):
            x = -edge + 1.0 + i * (2 * edge - 2.0) / (count - 1)
            doc.prop(f"shelf-{i + 1}", props, "box", "shelf", (x, 1.1, -edge), (1.4, 2.2, 0.4))
            doc.prop(
                f"books-{i + 1}",
                props,
                "box",
                "book-a" if i % 2 else "book-b",
                (x, 1.35, -edge + 0.22),
                (1.2, 0.3, 0.05),
            )
        for side in (-1, 1):
            doc.prop(
                f"side-shelf-{side}", props, "box", "shelf", (side * edge, 1.1, 0), (0.4, 2.2, 2 * edge - 2.0)
            )
        doc.prop(
            "reading-lamp-stand", props, "cylinder", "metal", (edge - 2.0, 0, edge - 3.0), (0.06, 1.5, 0.06)
        )
        doc.prop("reading-lamp-shade", props, "cone", "lamp", (edge - 2.0, 1.3, edge - 3.0), (0.5, 0.4, 0.5))
        doc.prop("rug", props, "box", "cushion", (0, 0.01, 0), (2 * centre_radius, 0.02, 2 * centre_radius))
    elif preset == "consultation-office":
        # A small, private, calm office: walls close around, a window of soft light, a low table
        # between the two armchairs (no desk between people), a plant, a lamp, a box of tissues.
        for side in (-1, 1):
            doc.prop(
                f"wall-{'left' if side < 0 else 'right'}",
                props,
                "box",
                "floor",
                (side * edge, 1.3, 0),
                (0.15, 2.6, 2 * edge),
            )
        doc.prop("wall-back", props, "box", "floor", (0, 1.3, -edge), (2 * edge, 2.6, 0.15))
        doc.prop("window", props, "box", "lamp", (0, 1.5, -edge + 0.09), (1.6, 1.0, 0.02))
        doc.prop("low-table", props, "cylinder", "oak", (0, 0, 0), (0.7, 0.45, 0.7))
        doc.prop("tissues", props, "box", "cushion", (0.1, 0.5, 0.05), (0.22, 0.1, 0.12))
        doc.prop("plant-pot", props, "cylinder", "earth", (edge - 0.7, 0, -edge + 0.7), (0.4, 0.45, 0.4))
        doc.prop("plant", props, "cone", "leaf", (edge - 0.7, 0.45, -edge + 0.7), (0.7, 1.1, 0.7))
        doc.prop("lamp-stand", props, "cylinder", "metal", (-edge + 0.7, 0, -edge + 0.7), (0.06, 1.4, 0.06))
        doc.prop("lamp-shade", props, "cone", "lamp", (-edge + 0.7, 1.25, -edge + 0.7), (0.45, 0.35, 0.45))
        doc.prop(
            "rug", props, "box", "cushion", (0, 0.01, 0), (2 * centre_radius + 1.0, 0.02, 2 * centre_radius)
        )


SEAT_STYLE: dict[str, str] = {
    "calm-beach": "lounger",
    "forest-clearing": "stump",
    "fireside-circle": "chair",
    "garden": "bench",
    "rehab-gym": "chair",
    "quiet-library": "armchair",
    "consultation-office": "armchair",
}


def _seat_mesh(doc: _Doc, parent: int, name: str, style: str) -> None:
    """Seat geometry in the seat's local space: the sitter faces +Z, the seat surface at SEAT_HEIGHT."""
    h = SEAT_HEIGHT
    if style == "stump":
        doc.prop(f"{name}-stump", parent, "cylinder", "bark", (0, 0, 0), (0.55, h, 0.55))
    elif style == "lounger":
        doc.prop(f"{name}-base", parent, "box", "wood", (0, h / 2, 0), (0.6, h, 0.7))
        doc.prop(f"{name}-back", parent, "box", "fabric", (0, h + 0.3, -0.3), (0.6, 0.6, 0.1))
    elif style == "bench":
        doc.prop(f"{name}-seat", parent, "box", "wood", (0, h - 0.03, 0), (0.9, 0.06, 0.45))
        doc.prop(f"{name}-back", parent, "box", "wood", (0, h + 0.25, -0.2), (0.9, 0.4, 0.05))
        for k, x in enumerate((-0.4, 0.4)):
            doc.prop(
                f"{name}-leg-{k + 1}", parent, "box", "wood", (x, (h - 0.06) / 2, 0), (0.06, h - 0.06, 0.4)
            )
    else:
        cushion = "cushion" if style == "armchair" else "fabric"
        width = 0.8 if style == "armchair" else 0.5
        doc.prop(f"{name}-seat", parent, "box", cushion, (0, h / 2, 0), (width, h, 0.5))
        doc.prop(f"{name}-back", parent, "box", cushion, (0, h + 0.3, -0.22), (width, 0.6, 0.08))


def _figure(doc: _Doc, parent: int, name: str, x: float, z: float, yaw: float) -> None:
    group = doc.node(name, parent=parent, translation=(x, 0, z), yaw=yaw)
    doc.prop(f"{name}-body", group, "cylinder", "figure", (0, 0, 0), (0.45, 1.3, 0.35))
    doc.prop(f"{name}-head", group, "cylinder", "figure", (0, 1.38, 0), (0.26, 0.3, 0.26))


def _exposure(doc: _Doc, root: int, exposure: Exposure, extent: float) -> None:
    group = doc.node("exposure-levels", parent=root)
    steps = len(exposure.levels)
    for k, level in enumerate(exposure.levels):
        node = doc.node(
            f"exposure-{level.id}",
            parent=group,
            extensions={"KHR_node_visibility": {"visible": level.id == exposure.default_level}},
        )
        # Level 0 is the gentlest: no figures. Later levels bring more figures, closer in.
        count = 3 * k
        radius = (extent - 1.0) - (k - 1) * (extent * 0.45 / max(1, steps - 1)) if k else 0.0
        for i in range(count):
            a = -0.9 + 1.8 * (i / max(1, count - 1)) + math.pi  # spread over the far side (-Z)
            x, z = radius * math.sin(a), radius * math.cos(a)
            _figure(doc, node, f"{level.id}-figure-{i + 1}", x, z, math.atan2(-x, -z))


def scene_glb(preset: str, layout: Layout, exposure: Exposure | None = None) -> bytes:
    """A GLB (glTF 2.0 binary) for ``preset`` with the seats and spawn points of ``layout``.

    Deterministic: equal arguments give byte-identical output.
    """
    if preset not in PRESET_TITLES:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESET_TITLES)}")
    extent = float(ground_extent(layout))
    seats = seat_placements(layout)
    centre_radius = min((math.hypot(s.x, s.z) for s in seats), default=0.0)
    doc = _Doc()
    root = doc.node(f"hearth-{preset}", parent=None)
    _ground(doc, root, preset, extent)
    _props(
        doc, root, preset, extent, centre_radius if layout.kind in ("circle", "pairs", "semicircle") else 0.0
    )

    seat_group = doc.node("seats", parent=root)
    style = SEAT_STYLE[preset]
    for seat in seats:
        node = doc.node(
            seat.id,
            parent=seat_group,
            translation=(seat.x, 0.0, seat.z),
            yaw=seat.yaw,
            extensions={
                "OMI_seat": {
                    "back": [0.0, SEAT_HEIGHT, -0.18],
                    "foot": [0.0, 0.0, 0.32],
                    "knee": [0.0, SEAT_HEIGHT, 0.25],
                }
            },
        )
        _seat_mesh(doc, node, seat.id, style)

    spawn_group = doc.node("spawn-points", parent=root)
    spawns = spawn_placements(layout)
    for sp in spawns:
        doc.node(
            sp.point.id,
            parent=spawn_group,
            translation=(sp.point.x, 0.0, sp.point.z),
            yaw=sp.point.yaw,
            extensions={"OMI_spawn_point": {"title": sp.label, "group": sp.group}},
        )

    door_z = max(sp.point.z for sp in spawns) + 1.5
    door = doc.node("safe-place-door", parent=root, translation=(0.0, 0.0, min(door_z, extent - 0.3)))
    doc.prop("safe-place-door-left", door, "box", "door", (-0.8, 1.1, 0), (0.2, 2.2, 0.2))
    doc.prop("safe-place-door-right", door, "box", "door", (0.8, 1.1, 0), (0.2, 2.2, 0.2))
    doc.prop("safe-place-door-lintel", door, "box", "door", (0, 2.3, 0), (1.8, 0.2, 0.2))

    if exposure is not None:
        _exposure(doc, root, exposure, extent)

    while len(doc.blob) % 4:
        doc.blob.append(0)
    gltf: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": "Hearth spaces.glb"},
        "extensionsUsed": list(EXTENSIONS)
        if exposure is not None
        else [e for e in EXTENSIONS if e != "KHR_node_visibility"],
        "scene": 0,
        "scenes": [{"name": PRESET_TITLES[preset], "nodes": [root]}],
        "nodes": doc.nodes,
        "meshes": doc.meshes,
        "materials": doc.materials,
        "accessors": doc.accessors,
        "bufferViews": doc.buffer_views,
        "buffers": [{"byteLength": len(doc.blob)}],
    }
    return _pack(gltf, bytes(doc.blob))


def _pack(gltf: dict[str, Any], blob: bytes) -> bytes:
    js = json.dumps(gltf, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    js += b" " * (-len(js) % 4)
    blob += b"\x00" * (-len(blob) % 4)
    total = 12 + 8 + len(js) + 8 + len(blob)
    return b"".join(
        [
            struct.pack("<III", GLB_MAGIC, 2, total),
            struct.pack("<II", len(js), CHUNK_JSON),
            js,
            struct.pack("<II", len(blob), CHUNK_BIN),
            blob,
        ]
    )


def read_glb_json(data: bytes) -> dict[str, Any]:
    """Parse a GLB's header and return its JSON chunk (raises ``ValueError`` if malformed)."""
    if len(data) < 20:
        raise ValueError("too short to be a GLB")
    magic, version, total = struct.unpack_from("<III", data, 0)
    if magic != GLB_MAGIC or version != 2 or total != len(data):
        raise ValueError("bad GLB header")
    length, kind = struct.unpack_from("<II", data, 12)
    if kind != CHUNK_JSON:
        raise ValueError("first chunk is not JSON")
    doc: dict[str, Any] = json.loads(data[20 : 20 + length])
    return doc


def content_hash(data: bytes) -> str:
    """Hex SHA-256 of ``data``: the key under which uploaded media is reused."""
    return hashlib.sha256(data).hexdigest()
