"""The network as the inferer calls it: a batch of one window runs as two on the CPU (oneDNN's path),
with the network's answer for it; a two-class output reduced to the logits' difference."""

from __future__ import annotations

import torch
from monai.inferers import SlidingWindowInferer

from models.two_class import LogitDifference
from models.windows import PairedWindows


def _network() -> tuple[torch.nn.Module, list[int]]:
    torch.manual_seed(0)
    network = torch.nn.Sequential(
        torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 2, 1)
    )
    batches: list[int] = []
    network.register_forward_hook(lambda _m, inputs, _o: batches.append(inputs[0].shape[0]))
    return network.eval(), batches


def test_one_window_runs_as_two_on_the_cpu_and_gets_its_own_answer():
    network, batches = _network()
    window = torch.randn(1, 1, 12, 12, 12)
    with torch.inference_mode():
        alone = network(window)
        paired = PairedWindows(network, torch.device("cpu"))(window)
    assert batches == [1, 2]
    assert paired.shape == alone.shape
    torch.testing.assert_close(paired, alone)


def test_the_batch_the_network_sees():
    on_cpu, on_gpu = PairedWindows(None, torch.device("cpu")), PairedWindows(None, torch.device("cuda"))
    assert [on_cpu.runs_as(n) for n in (1, 2, 4)] == [2, 2, 4]
    assert [on_gpu.runs_as(n) for n in (1, 2, 4)] == [1, 2, 4]


def test_larger_batches_and_other_devices_run_as_given():
    network, batches = _network()
    with torch.inference_mode():
        PairedWindows(network, torch.device("cpu"))(torch.randn(3, 1, 8, 8, 8))
        PairedWindows(network, torch.device("cuda"))(
            torch.randn(1, 1, 8, 8, 8)
        )  # not run on a GPU: no pairing
    assert batches == [3, 1]


def test_tuple_and_dict_outputs_keep_the_first_window():
    window = torch.randn(1, 1, 4, 4, 4)
    twice = PairedWindows(lambda x: (x * 2, {"pred": x + 1}), torch.device("cpu"))(window)
    torch.testing.assert_close(twice[0], window * 2)
    torch.testing.assert_close(twice[1]["pred"], window + 1)


def test_the_sliding_window_gives_the_networks_values_with_a_last_batch_of_one():
    network, batches = _network()
    inferer = SlidingWindowInferer(
        roi_size=(16, 16, 16), sw_batch_size=2, overlap=0.25, padding_mode="replicate"
    )
    volume = torch.randn(1, 1, 40, 16, 16)  # 3 windows: the last batch has one
    with torch.inference_mode():
        expected = inferer(volume, network)
        assert batches[-1] == 1
        batches.clear()
        paired = inferer(volume, PairedWindows(network, torch.device("cpu")))
    assert batches == [2, 2]
    torch.testing.assert_close(paired, expected)


def test_the_difference_of_two_logits_is_the_sliding_windows_difference():
    network, _ = _network()
    inferer = SlidingWindowInferer(roi_size=(16, 16, 16), sw_batch_size=2, overlap=0.5, mode="gaussian")
    volume = torch.randn(1, 1, 40, 24, 20)
    reduced = LogitDifference(network)
    with torch.inference_mode():
        both = inferer(volume, network)
        difference = inferer(volume, reduced)
    assert reduced.reduced and difference.shape == (1, 1, 40, 24, 20)
    torch.testing.assert_close(difference, both[:, 1:2] - both[:, 0:1])


def test_the_difference_is_taken_in_float32_and_other_outputs_pass_through():
    half = LogitDifference(lambda windows: windows.half())
    # both logits exact in half precision; their difference, 2049, is not (half's step above 2048 is 2)
    difference = half(torch.tensor([[[-1.0], [2048.0]]]))
    assert half.reduced and difference.dtype == torch.float32 and difference.item() == 2049.0
    for output in (torch.zeros(2, 3, 4), torch.zeros(2, 1, 4), (torch.zeros(2, 2, 4),)):
        passed = LogitDifference(lambda _windows, output=output: output)
        assert passed(torch.zeros(2, 1, 4)) is output and not passed.reduced
