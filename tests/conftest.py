"""Shared pytest fixtures: where the shared data and reference fixtures are."""
import os
import os.path as osp

import pytest

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
SHARED_DIR = os.environ.get('INTERFORMER_SHARED_DIR',
                            osp.join(osp.dirname(REPO_ROOT), 'shared'))
REFERENCE_DIR = os.environ.get('INTERFORMER_REFERENCE_DIR',
                               osp.join(SHARED_DIR, 'reference'))
DATA_DIR = osp.join(SHARED_DIR, 'data')


@pytest.fixture(scope='session')
def repo_root() -> str:
    return REPO_ROOT


@pytest.fixture(scope='session')
def reference_dir() -> str:
    return REFERENCE_DIR


@pytest.fixture(scope='session')
def grabcut_root() -> str:
    path = osp.join(DATA_DIR, 'GrabCut')
    if not osp.isdir(path):
        pytest.skip(f'GrabCut not found at {path}')
    return path


@pytest.fixture(scope='session')
def berkeley_root() -> str:
    path = osp.join(DATA_DIR, 'Berkeley')
    if not osp.isdir(path):
        pytest.skip(f'Berkeley not found at {path}')
    return path


def parity_fixture_paths() -> list:
    """Every official parity fixture (``*.npz``) in the reference folder."""
    import glob
    return sorted(glob.glob(osp.join(REFERENCE_DIR, '*.npz')))


def pytest_generate_tests(metafunc) -> None:
    """A test that takes ``parity_fixture`` runs once per ``*.npz`` in the
    reference folder (``INTERFORMER_REFERENCE_DIR`` included); with none
    it gets ``None`` and should skip."""
    if 'parity_fixture' in metafunc.fixturenames:
        paths = parity_fixture_paths()
        metafunc.parametrize(
            'parity_fixture', paths or [None],
            ids=[osp.basename(p) for p in paths] or ['none'])
