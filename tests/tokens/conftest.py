from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def chorale_dir() -> Path:
    path = SHARED_DATA / "bach-chorales"
    if not path.is_dir():
        pytest.skip("../shared/data/bach-chorales is absent")
    return path
