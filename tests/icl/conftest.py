import pytest
import torch


@pytest.fixture
def restore_threads():
    """run_icl sets torch's thread count (IclConfig.threads): put it back after the test."""
    n = torch.get_num_threads()
    yield
    torch.set_num_threads(n)
