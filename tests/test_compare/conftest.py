"""One torch thread for this folder: the CI machine has 2 shared cores, where 2 threads can be 10-100× slower."""
import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
