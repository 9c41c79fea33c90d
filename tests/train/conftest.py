import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread():
    # Tiny models gain nothing from a second thread, and on a shared 2-core machine an OpenMP
    # pool that spins against other jobs makes each step hundreds of times slower.
    torch.set_num_threads(1)
