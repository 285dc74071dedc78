"""Fixtures of the ops tests: a fresh native library cache."""
import pytest

from interformer.ops import library


@pytest.fixture
def fresh_native(monkeypatch, tmp_path):
    """An empty library cache and no loaded library (a new process)."""
    monkeypatch.setenv('INTERFORMER_NATIVE_CACHE', str(tmp_path))
    monkeypatch.delenv('INTERFORMER_NATIVE', raising=False)
    monkeypatch.setattr(library, '_loaded', {})
    return tmp_path
