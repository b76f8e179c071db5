import pytest

from canopy_daemon import Canopy


@pytest.fixture
def canopy():
    daemon = Canopy().start()
    yield daemon
    daemon.close()


@pytest.fixture
def make_canopy():
    """Builds daemons the test starts itself (with options of its own)."""
    made = []

    def make(**kwargs):
        daemon = Canopy(**kwargs)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.close()
