"""The generated GLBs pass the Khronos glTF validator (npm ``gltf-validator``) with 0 errors."""

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from spaces.care_room import care_asset
from spaces.glb import scene_glb
from spaces.scene import PRESET_TITLES, AssetSpec, required_assets

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def validator() -> Path:
    if shutil.which("node") is None:
        pytest.skip("node is not installed: cannot run the Khronos glTF validator")
    if not (ROOT / "node_modules" / "gltf-validator").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            pytest.skip("npm is not installed: cannot install gltf-validator")
        subprocess.run([npm, "install", "--no-audit", "--no-fund"], cwd=ROOT, check=True, timeout=300)
    return ROOT / "tools" / "gltf_validate.mjs"


def _validate(validator: Path, path: Path) -> dict:
    proc = subprocess.run(
        ["node", str(validator), str(path)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode in (0, 1), proc.stderr
    return json.loads(proc.stdout)


def test_every_theme_scene_passes_the_validator(validator, themes, tmp_path):
    """Each distinct scene the themes and the care room use (every preset, with and without exposure)."""
    assets = required_assets(themes)
    key, spec = care_asset()
    assets[key] = spec
    assert {a.preset for a in assets.values()} == set(PRESET_TITLES)
    chosen: dict[tuple[str, bool], tuple[str, AssetSpec]] = {}
    for key, spec in assets.items():
        chosen.setdefault((spec.preset, spec.exposure is not None), (key, spec))
    for key, spec in chosen.values():
        path = tmp_path / (key.replace("/", "_") + ".glb")
        path.write_bytes(scene_glb(spec.preset, spec.layout, spec.exposure))
        report = _validate(validator, path)
        issues = report["issues"]
        errors = [m for m in issues["messages"] if m["severity"] == 0]
        assert issues["numErrors"] == 0, f"{key}: {errors[:5]}"
        assert issues["numWarnings"] == 0, f"{key}: {issues['messages'][:5]}"
