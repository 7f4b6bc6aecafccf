import subprocess
import sys

import ponder


def test_all_names_resolve():
    for name in ponder.__all__:
        assert getattr(ponder, name) is not None, name
    assert sorted(ponder.__all__) == ponder.__all__


def test_core_import_does_not_load_heavy_backends():
    code = (
        "import sys, ponder; "
        "heavy = [m for m in ('llama_cpp', 'matplotlib', 'torch', 'httpx') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""
