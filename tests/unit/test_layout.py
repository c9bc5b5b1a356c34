"""The shape DESIGN.md asks for, checked: one registry, a CO-RE engine free of BCC, small files."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ebpf_magic import families, sections

PACKAGE = Path(__file__).resolve().parents[2] / "ebpf_magic"


def test_every_sec_family_is_in_the_registry():
    assert {d.family for d in sections.SECTION_DEFS} <= set(families.NAMES)


@pytest.mark.parametrize("fam", [f for f in families.FAMILIES if f.attacher], ids=lambda f: f.name)
def test_every_named_attacher_exists(fam):
    assert callable(fam.attach_function())


def test_btf_families_name_a_target_field():
    for fam in families.FAMILIES:
        if fam.btf is not None:
            assert fam.btf.field in ("event", "function") and "{}" in fam.btf.spelled


def test_ci_families_have_probes():
    for name in families.CI_FAMILIES:
        assert families.family(name).probe is not None, name


def test_core_engine_never_imports_bcc():
    pattern = re.compile(r"^\s*(?:import bcc|from bcc\b)", re.M)
    offenders = [p.name for p in (PACKAGE / "core").glob("*.py") if pattern.search(p.read_text())]
    assert offenders == []


def test_core_build_imports_without_bcc_on_the_path():
    code = ("import sys; sys.modules['bcc'] = None\n"
            "import ebpf_magic.core.build, ebpf_magic.features, ebpf_magic.attach.perf\n"
            "assert 'bcc' not in [m.split('.')[0] for m, v in sys.modules.items() if v is not None]\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


def test_no_module_over_about_400_lines():
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines()) for p in PACKAGE.rglob("*.py")}
    assert {name: n for name, n in sizes.items() if n > 420} == {}
