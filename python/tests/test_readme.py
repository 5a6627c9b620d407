"""The README's Python quick start, run as it is written, in a directory where a
short run of the demo configuration left its snapshots."""

import subprocess
import sys

from conftest import REPO, run_cli


def quick_start():
    readme = (REPO / "README.md").read_text()
    section = readme.split("\n## Python\n", 1)[1]
    return section.split("```python\n", 1)[1].split("\n```", 1)[0]


def test_the_readme_quick_start_runs(gmm_stream_bin, tmp_path):
    run_cli(
        gmm_stream_bin, "run", "--config", REPO / "config" / "demo.toml",
        "--set", "source.generator.limit=30000", "--set", "source.generator.rate=0",
        "--set", "http.listen=", "--set", f"snapshot.dir={tmp_path / 'demo-snapshots'}",
    )
    proc = subprocess.run(
        [sys.executable, "-c", quick_start()], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "model.json").exists()
    lines = proc.stdout.splitlines()
    assert lines[-1].startswith("30000 "), proc.stdout
