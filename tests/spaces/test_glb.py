import io
import struct

import pytest
from PIL import Image

from spaces.glb import CHUNK_BIN, GLB_MAGIC, content_hash, read_glb_json, scene_glb
from spaces.preview import PREVIEW_SIZE, scene_preview_png
from spaces.scene import PRESET_TITLES, layout_content, required_assets
from spaces.themes import Exposure, ExposureLevel, Layout, SpawnGroup

LAYOUT = Layout(kind="circle", seats=8, spawn_groups=[SpawnGroup(id="arrivals", label="Arrivals", points=2)])
EXPOSURE = Exposure(
    stimulus="people nearby",
    default_level="none",
    levels=[
        ExposureLevel(id="none", label="Nobody", description="Just you."),
        ExposureLevel(id="few", label="A few", description="A few people far away."),
        ExposureLevel(id="group", label="A group", description="A small group nearby."),
    ],
)


@pytest.mark.parametrize("preset", sorted(PRESET_TITLES))
def test_glb_is_deterministic_and_well_formed(preset):
    data = scene_glb(preset, LAYOUT, EXPOSURE)
    assert data == scene_glb(preset, LAYOUT, EXPOSURE)
    assert content_hash(data) == content_hash(scene_glb(preset, LAYOUT, EXPOSURE))
    assert len(content_hash(data)) == 64

    magic, version, total = struct.unpack_from("<III", data, 0)
    assert (magic, version, total) == (GLB_MAGIC, 2, len(data))
    doc = read_glb_json(data)
    json_len = struct.unpack_from("<I", data, 12)[0]
    bin_len, bin_type = struct.unpack_from("<II", data, 20 + json_len)
    assert bin_type == CHUNK_BIN
    assert bin_len == doc["buffers"][0]["byteLength"]
    assert json_len % 4 == 0
    assert bin_len % 4 == 0

    assert doc["asset"]["version"] == "2.0"
    assert set(doc["extensionsUsed"]) == {"OMI_seat", "OMI_spawn_point", "KHR_node_visibility"}
    assert "extensionsRequired" not in doc
    nodes = doc["nodes"]
    seats = [n for n in nodes if "OMI_seat" in n.get("extensions", {})]
    spawns = [n for n in nodes if "OMI_spawn_point" in n.get("extensions", {})]
    levels = [n for n in nodes if "KHR_node_visibility" in n.get("extensions", {})]
    assert [n["name"] for n in seats] == [s["id"] for s in layout_content(LAYOUT)["seats"]]
    for seat in seats:
        assert set(seat["extensions"]["OMI_seat"]) >= {"back", "foot", "knee"}
    assert len(spawns) == 2
    assert [n["name"] for n in levels] == ["exposure-none", "exposure-few", "exposure-group"]
    assert [n["extensions"]["KHR_node_visibility"]["visible"] for n in levels] == [True, False, False]
    assert "children" in levels[2]  # higher levels hold figures
    assert any(n["name"] == "safe-place-door" for n in nodes)
    for accessor in doc["accessors"]:
        view = doc["bufferViews"][accessor["bufferView"]]
        assert view["byteOffset"] % 4 == 0
        assert view["byteOffset"] + view["byteLength"] <= bin_len


def test_glb_without_exposure_does_not_declare_visibility():
    doc = read_glb_json(scene_glb("garden", LAYOUT, None))
    assert "KHR_node_visibility" not in doc["extensionsUsed"]
    assert not any("KHR_node_visibility" in n.get("extensions", {}) for n in doc["nodes"])


def test_different_layouts_give_different_bytes():
    other = Layout(kind="circle", seats=9)
    assert content_hash(scene_glb("garden", LAYOUT)) != content_hash(scene_glb("garden", other))


def test_unknown_preset_is_refused():
    with pytest.raises(ValueError, match="unknown preset"):
        scene_glb("nightclub", LAYOUT)


@pytest.mark.parametrize("preset", sorted(PRESET_TITLES))
def test_preview_png_is_deterministic(preset):
    png = scene_preview_png(preset, LAYOUT, EXPOSURE)
    assert png == scene_preview_png(preset, LAYOUT, EXPOSURE)
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    assert image.size == PREVIEW_SIZE
    assert len(set(image.getdata())) > 3  # ground, props and seats, not a blank image


def test_every_theme_asset_builds(themes):
    assets = required_assets(themes)
    hashes = {content_hash(scene_glb(a.preset, a.layout, a.exposure)) for a in assets.values()}
    assert len(hashes) == len(assets)  # distinct keys really are distinct files
