"""The network and compute description: units, stragglers, FedScale pickles, CSV files, settings."""

from __future__ import annotations

import dataclasses
import math
import os
import pickle

import numpy as np
import pytest
from click.testing import CliRunner

from mosaic_fast.cli import main
from mosaic_fast.engine.parts import network_from_config
from mosaic_fast.errors import MosaicValueError
from mosaic_fast.network.readers import assign_clients, read_fedscale_pickle
from mosaic_fast.network.spec import NetworkSpec, read_network_csv, straggler_count, straggler_nodes
from mosaic_fast.network.units import parse_bandwidth, parse_duration
from mosaic_fast.settings import ExperimentConfig


def one_line(info: pytest.ExceptionInfo, *needles: str) -> str:
    message = str(info.value)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


# ----------------------------------------------------------------------------- units


@pytest.mark.parametrize(
    "text, bytes_per_s",
    [
        ("60Mbit", 7.5e6),
        ("60Mbit/s", 7.5e6),
        ("10Mbit", 1.25e6),
        ("1Gbit", 1.25e8),
        ("500kbit", 62500.0),
        ("8bit", 1.0),
        ("1.5Tbit", 1.875e11),
        ("2e3kbit", 2.5e5),
    ],
)
def test_bandwidths_are_si_bits_per_second_returned_in_bytes(text, bytes_per_s):
    assert parse_bandwidth(text) == pytest.approx(bytes_per_s, rel=1e-15)


@pytest.mark.parametrize(
    "text, hint",
    [
        ("60Mbps", "did you mean 60Mbit?"),
        ("60Mb/s", "did you mean 60Mbit?"),
        ("60mbit", "did you mean 60Mbit?"),
        ("500Kbit", "did you mean 500kbit?"),
        ("60MB/s", "bandwidths are in bits, did you mean 480Mbit?"),
        ("2MB", "did you mean 16Mbit?"),
        ("60 Mbit", "write it with no space: 60Mbit"),
        ("60", "it needs a unit, such as 60Mbit"),
        ("60M", "it needs a unit, such as 60Mbit"),
        ("-60Mbit", "it must be positive"),
        ("fast", "such as 60Mbit, 500kbit or 1Gbit"),
        ("inf", "such as 60Mbit"),
        ("", "such as 60Mbit"),
    ],
)
def test_bad_bandwidths_are_one_line_with_a_hint(text, hint):
    with pytest.raises(MosaicValueError) as info:
        parse_bandwidth(text, name="uplink")
    assert one_line(info, hint).startswith(f"uplink={text!r} is not a bandwidth: ")


@pytest.mark.parametrize("text", ["0Mbit", "0bit", "1e400bit"])
def test_zero_and_infinite_bandwidths_are_refused(text):
    with pytest.raises(MosaicValueError) as info:
        parse_bandwidth(text)
    one_line(info, f"bandwidth={text!r} must be positive and finite")


@pytest.mark.parametrize(
    "text, seconds",
    [("0s", 0.0), ("0.5s", 0.5), ("1ms", 1e-3), ("200us", 2e-4), ("200µs", 2e-4), ("50ns", 5e-8)],
)
def test_durations_are_returned_in_seconds(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds, rel=1e-15)


@pytest.mark.parametrize(
    "text, hint",
    [
        ("1 ms", "write it with no space: 1ms"),
        ("-1ms", "it must not be negative"),
        ("0.001", "it needs a unit, such as 0.001s or 0.001ms"),
        ("1sec", "such as 1ms, 200us or 0.5s"),
        ("1h", "such as 1ms"),
    ],
)
def test_bad_durations_are_one_line_with_a_hint(text, hint):
    with pytest.raises(MosaicValueError) as info:
        parse_duration(text)
    assert one_line(info, hint).startswith(f"latency={text!r} is not a duration: ")


def test_an_overflowing_duration_is_refused():
    with pytest.raises(MosaicValueError, match="must be finite"):
        parse_duration("1e999s")


# ----------------------------------------------------------------------------- stragglers


@pytest.mark.parametrize(
    "n, fraction, count",
    [(16, 0.0, 0), (16, 0.125, 2), (10, 0.35, 4), (10, 0.34, 3), (2, 0.25, 1), (60, 7 / 60, 7)],
)
def test_straggler_count_rounds_half_up(n, fraction, count):
    assert straggler_count(n, fraction) == count


def test_stragglers_are_exact_deterministic_nested_and_seeded():
    picked = straggler_nodes(60, 0.5, seed=3)
    assert picked.dtype == np.int64 and len(picked) == 30 and len(set(picked.tolist())) == 30
    assert np.all(np.diff(picked) > 0) and picked.min() >= 0 and picked.max() < 60
    assert np.array_equal(picked, straggler_nodes(60, 0.5, seed=3))
    fewer = straggler_nodes(60, 7 / 60, seed=3)
    assert len(fewer) == 7 and set(fewer.tolist()) <= set(picked.tolist())
    assert not np.array_equal(picked, straggler_nodes(60, 0.5, seed=4))


def test_slowdown_kinds():
    base = NetworkSpec.uniform(6, step_time_s=0.1, uplink_Bps=8e6, downlink_Bps=4e6, latency_s=1e-3)
    slow = [1, 4]
    fast = [0, 2, 3, 5]
    comm = base.with_stragglers(slow, 4.0, "comm")
    assert np.array_equal(comm.uplink_Bps[slow], [2e6, 2e6])
    assert np.array_equal(comm.downlink_Bps[slow], [1e6, 1e6])
    assert np.array_equal(comm.step_time_s, base.step_time_s)
    assert np.array_equal(comm.uplink_Bps[fast], base.uplink_Bps[fast])
    compute = base.with_stragglers(slow, 4.0, "compute")
    assert np.array_equal(compute.step_time_s[slow], [0.4, 0.4])
    assert np.array_equal(compute.step_time_s[fast], base.step_time_s[fast])
    assert np.array_equal(compute.uplink_Bps, base.uplink_Bps)
    both = base.with_stragglers(slow, 4.0, "both")
    assert np.array_equal(both.step_time_s, compute.step_time_s)
    assert np.array_equal(both.downlink_Bps, comm.downlink_Bps)
    for spec in (comm, compute, both):
        assert spec.stragglers.tolist() == slow
        assert np.array_equal(spec.latency_s, base.latency_s)
    with pytest.raises(MosaicValueError, match="straggler_kind='network' is not one of"):
        base.with_stragglers(slow, 4.0, "network")
    with pytest.raises(MosaicValueError, match="straggler_slowdown=0.5 must be at least 1"):
        base.with_stragglers(slow, 0.5, "comm")
    with pytest.raises(MosaicValueError, match="must be in 0..5"):
        base.with_stragglers([6], 2.0, "comm")


def test_spec_arrays_are_checked_and_read_only():
    spec = NetworkSpec.uniform(3, step_time_s=0.5)
    assert spec.n_nodes == 3 and np.all(np.isinf(spec.uplink_Bps))
    with pytest.raises(ValueError):
        spec.step_time_s[0] = 1.0
    good = dict(step_time_s=[1.0, 1.0], uplink_Bps=[1.0, 1.0], downlink_Bps=[1.0, 1.0])
    for field, values, message in [
        ("step_time_s", [1.0, -1.0], r"step_time_s\[1\]=-1.0 must be positive"),
        ("step_time_s", [1.0, math.inf], r"step_time_s\[1\]=inf must be finite"),
        ("uplink_Bps", [0.0, 1.0], r"uplink_Bps\[0\]=0.0 must be positive"),
        ("downlink_Bps", [1.0, math.nan], r"downlink_Bps\[1\]=nan must be positive"),
        ("latency_s", [-1e-3, 0.0], r"latency_s\[0\]=-0.001 must be non-negative"),
        ("latency_s", [0.0, 0.0, 0.0], r"latency_s has shape \(3,\)"),
    ]:
        with pytest.raises(MosaicValueError, match=message):
            NetworkSpec(**{"latency_s": [0.0, 0.0], **good, field: values})


def test_latency_and_uncontended_transfer_time():
    spec = NetworkSpec(
        step_time_s=[1.0, 1.0, 1.0],
        uplink_Bps=[100.0, 50.0, math.inf],
        downlink_Bps=[200.0, 25.0, 10.0],
        latency_s=[0.0, 0.2, 0.4],
    )
    assert spec.message_latency_s(0, 2) == pytest.approx(0.2)
    assert np.allclose(spec.message_latency_s([1, 2], [2, 1]), [0.3, 0.3])
    # 0 -> 1: min(uplink 100, downlink 25) = 25 B/s; 2 -> 0: min(inf, 200) = 200 B/s.
    assert spec.transfer_time_s(50, 0, 1) == pytest.approx(0.1 + 2.0)
    assert np.allclose(spec.transfer_time_s([400, 20], [2, 0], [0, 2]), [0.2 + 2.0, 0.2 + 2.0])


# ----------------------------------------------------------------------------- settings


def resolved(**settings) -> ExperimentConfig:
    return ExperimentConfig(**{"nodes": 16, "degree": 4, **settings}).resolved()


def test_uniform_network_from_settings():
    cfg = resolved(bandwidth="60Mbit", uplink="10Mbit", latency="2ms", step_time=0.05)
    spec = network_from_config(cfg, measured_step_time_s=9.0)  # the setting wins
    assert spec.n_nodes == 16 and spec.stragglers.size == 0 and spec.clients is None
    assert np.all(spec.step_time_s == 0.05)
    assert np.all(spec.uplink_Bps == 1.25e6) and np.all(spec.downlink_Bps == 7.5e6)
    assert np.allclose(spec.latency_s, 2e-3)
    unlimited = network_from_config(resolved(), measured_step_time_s=0.01)
    assert np.all(np.isinf(unlimited.uplink_Bps)) and np.all(unlimited.step_time_s == 0.01)
    assert np.all(unlimited.latency_s == 0)
    with pytest.raises(MosaicValueError, match="step_time is None and no measured_step_time_s"):
        network_from_config(resolved())


def test_divshare_network_has_its_stragglers():
    # DivShare's emulated network: most nodes at 60 Mbit/s, stragglers at 10.
    cfg = resolved(nodes=60, bandwidth="60Mbit", stragglers=7 / 60, step_time=0.1)
    spec = network_from_config(cfg)
    slow = straggler_nodes(60, 7 / 60, seed=0)
    assert spec.stragglers.tolist() == slow.tolist() and len(slow) == 7
    assert np.allclose(spec.uplink_Bps[slow], 1.25e6)
    assert np.sum(spec.uplink_Bps == 7.5e6) == 53
    compute = network_from_config(dataclasses.replace(cfg, straggler_kind="compute"))
    assert np.allclose(compute.step_time_s[slow], 0.6) and np.all(compute.uplink_Bps == 7.5e6)
    again = network_from_config(cfg)
    assert np.array_equal(again.uplink_Bps, spec.uplink_Bps)


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"bandwidth": "60Mbps"}, "bandwidth='60Mbps' is not a bandwidth: did you mean 60Mbit?"),
        ({"downlink": "1 Gbit"}, "downlink='1 Gbit' is not a bandwidth: write it with no space"),
        ({"latency": "1"}, "latency='1' is not a duration"),
        ({"algorithm": "swift"}, "algorithm='swift' sends whole models: it needs K=1, not K=8"),
        ({"algorithm": "adpsgd", "K": 2}, "it needs K=1, not K=2"),
        (
            {"algorithm": "divshare", "topology": "static"},
            "it needs topology 'el-oracle', not 'static'",
        ),
        ({"network": "n.csv", "bandwidth": "1Mbit"}, "drop bandwidth='1Mbit'"),
        ({"network": "n.csv", "step_time": 0.1}, "drop step_time=0.1"),
        ({"stragglers": 0.01, "bandwidth": "1Mbit"}, "makes 0 of the 16 nodes stragglers"),
        ({"stragglers": 0.99, "bandwidth": "1Mbit"}, "makes 16 of the 16 nodes stragglers"),
        ({"stragglers": 0.25}, "straggler_kind='comm' slows bandwidth, which is unlimited"),
        ({"stragglers": 0.25, "straggler_kind": "both"}, "which is unlimited"),
        ({"straggler_slowdown": 0.5}, "straggler_slowdown=0.5 must be at least 1"),
        ({"stragglers": 1.0}, "stragglers=1.0 must be in [0, 1)"),
        ({"eval_every_s": 0.0}, "eval_every_s=0.0 must be positive"),
        ({"time_budget": -1.0}, "time_budget=-1.0 must be positive"),
        ({"straggler_kind": "network"}, "is not one of comm, compute, both"),
    ],
)
def test_settings_refused_alone_or_together(settings, message):
    with pytest.raises(MosaicValueError) as info:
        resolved(**settings)
    one_line(info, message)


def test_settings_accepted_together():
    assert resolved(algorithm="divshare", K=4).algorithm == "divshare"
    assert resolved(algorithm="swift", K=1, drop_unsent=False).K == 1
    assert resolved(stragglers=0.25, straggler_kind="compute").stragglers == 0.25
    assert resolved(stragglers=0.25, uplink="10Mbit").uplink == "10Mbit"
    assert resolved(network="trace.pkl", stragglers=0.5, latency="1ms").network == "trace.pkl"
    assert resolved(target=0.8, eval_every_s=10.0, time_budget=3600.0).target == 0.8


def test_bad_unit_on_the_command_line_is_one_error_line(tmp_path):
    args = ["run", "--dataset", "fashion-mnist", "--bandwidth", "60Mbps"]
    result = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "o")])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["Error: bandwidth='60Mbps' is not a bandwidth: did you mean 60Mbit?"]


# ----------------------------------------------------------------------------- FedScale pickles

CAPACITY = {
    3: {"computation": 20.0, "communication": 8000.0},
    1: {"computation": 5.0, "communication": 80000.0, "model": "pixel"},
    2: {"computation": 50, "communication": 1000},
}


def write_pickle(path, value, protocol=pickle.HIGHEST_PROTOCOL):
    path.write_bytes(pickle.dumps(value, protocol=protocol))
    return path


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_fedscale_pickle_round_trip(tmp_path, protocol):
    path = write_pickle(tmp_path / "client_device_capacity", CAPACITY, protocol)
    assert read_fedscale_pickle(path) == {
        3: (20.0, 8000.0),
        1: (5.0, 80000.0),
        2: (50.0, 1000.0),
    }


def test_fedscale_pickle_gives_per_node_speeds(tmp_path):
    path = write_pickle(tmp_path / "capacity", CAPACITY)
    cfg = resolved(nodes=3, degree=1, network=str(path), batch_size=10, latency="1ms", seed=5)
    spec = network_from_config(cfg)
    assert sorted(spec.clients) == [1, 2, 3]
    assert spec.clients == tuple(assign_clients(CAPACITY, 3, seed=5))
    for node, client in enumerate(spec.clients):
        ms, kbit = CAPACITY[client]["computation"], CAPACITY[client]["communication"]
        assert spec.step_time_s[node] == pytest.approx(ms * 10 / 1000)
        assert spec.uplink_Bps[node] == spec.downlink_Bps[node] == pytest.approx(kbit * 125)
    assert np.allclose(spec.latency_s, 1e-3)
    with pytest.raises(MosaicValueError, match="batch_size is None"):
        network_from_config(dataclasses.replace(cfg, batch_size=None))


def test_clients_are_a_seeded_permutation_reused_cyclically():
    clients = {f"c{i:02d}": None for i in range(10)} | {7: None, 3: None}
    ids = assign_clients(clients, 12, seed=1)
    assert sorted(ids, key=str) == sorted(clients, key=str)  # each once
    assert ids == assign_clients(dict(reversed(clients.items())), 12, seed=1)  # order-free
    assert ids != assign_clients(clients, 12, seed=2)
    assert assign_clients(clients, 5, seed=1) == ids[:5]
    # Fewer clients than nodes: the permutation repeats, node i and i + m share a client.
    cyclic = assign_clients(clients, 30, seed=1)
    assert cyclic == (ids * 3)[:30]


def test_fewer_clients_than_nodes_reuses_device_profiles(tmp_path):
    path = write_pickle(tmp_path / "capacity", CAPACITY)
    spec = network_from_config(resolved(nodes=8, network=str(path), batch_size=4))
    assert spec.n_nodes == 8 and spec.clients[3:6] == spec.clients[:3]
    assert np.array_equal(spec.step_time_s[3:6], spec.step_time_s[:3])


class Exploit:
    """Pickles to a call of os.system: the unpickler must refuse it before calling anything."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class Custom:
    """A plain user class: its global is refused like any other."""


@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL])
def test_a_malicious_pickle_is_refused_without_running(tmp_path, protocol):
    marker = tmp_path / "ran"
    path = write_pickle(tmp_path / "evil", {1: Exploit(marker)}, protocol)
    with pytest.raises(MosaicValueError) as info:
        read_fedscale_pickle(path)
    one_line(info, f"network file {str(path)!r} is not a plain-data pickle", "system")
    assert not marker.exists()


def test_a_registered_pickle_extension_is_refused_too(tmp_path):
    """EXT opcodes name globals through the copyreg registry: they reach find_class as well."""
    import copyreg

    code = 0x7FFF_FF01
    copyreg.add_extension("os", "system", code)
    try:
        # EXT4 code, the command, TUPLE1, REDUCE, SETITEM: {1: os.system("touch ran")}.
        command = f"touch {tmp_path / 'ran'}".encode()
        data = (
            b"\x80\x02}K\x01\x84" + code.to_bytes(4, "little")
            + b"X" + len(command).to_bytes(4, "little") + command + b"\x85Rs."
        )  # fmt: skip
        path = tmp_path / "ext"
        path.write_bytes(data)
        with pytest.raises(MosaicValueError, match="it names the global os.system"):
            read_fedscale_pickle(path)
    finally:
        copyreg.remove_extension("os", "system", code)
    assert not (tmp_path / "ran").exists()


@pytest.mark.parametrize(
    "value, protocol, needle",
    [
        ([1, 2], 4, "it holds a list"),
        ({1: {"computation": (1.0,), "communication": 1.0}}, 4, "it holds a tuple"),
        ({1: {2.0, 3.0}}, 4, "it holds a set"),
        ({1: {2.0, 3.0}}, 2, "it names the global __builtin__.set"),
        ({1: b"x"}, 4, "it holds a bytes"),
        ({1: None}, 4, "it holds a NoneType"),
        ({1: {"computation": True, "communication": 1.0}}, 4, "it holds a bool"),
        ({1: Custom()}, 4, "it names the global test_network.Custom"),
        ({1: np.float64(2.0)}, 4, "it names the global numpy"),
    ],
)
def test_a_pickle_holding_other_types_is_refused(tmp_path, value, protocol, needle):
    path = write_pickle(tmp_path / "p", value, protocol)
    with pytest.raises(MosaicValueError) as info:
        read_fedscale_pickle(path)
    one_line(info, "is not a plain-data pickle", needle)


@pytest.mark.parametrize(
    "data, needle",
    [
        (b"", "is not a valid pickle"),
        (pickle.dumps(CAPACITY)[:-7], "is not a valid pickle"),
        (b"\x80\x05garbage", "is not a valid pickle"),
        (pickle.dumps(CAPACITY) + b"more", "data after the pickle's end"),
        (b"node,step_time_s\n", "is not a valid pickle"),
    ],
)
def test_a_corrupt_pickle_is_one_line_naming_the_file(tmp_path, data, needle):
    path = tmp_path / "capacity"
    path.write_bytes(data)
    with pytest.raises(MosaicValueError) as info:
        read_fedscale_pickle(path)
    one_line(info, f"network file {str(path)!r}", needle)


@pytest.mark.parametrize(
    "value, needle",
    [
        ({}, "must hold a non-empty dict client_id"),
        ("text", "must hold a non-empty dict client_id"),
        ({1: 2.0}, "client 1: 2.0 is not a dict"),
        ({1: {"computation": 1.0}}, "client 1: no 'communication' (kbit/s)"),
        ({"a": {"computation": -1.0, "communication": 1.0}}, "client 'a': computation=-1.0 must"),
        ({1: {"computation": 1.0, "communication": 0}}, "communication=0 must be a positive"),
        ({1: {"computation": "fast", "communication": 1}}, "computation='fast' must be"),
        ({1: {"computation": math.nan, "communication": 1}}, "computation=nan must be"),
    ],
)
def test_bad_capacity_entries_name_the_client(tmp_path, value, needle):
    path = write_pickle(tmp_path / "capacity", value)
    with pytest.raises(MosaicValueError) as info:
        read_fedscale_pickle(path)
    one_line(info, f"network file {str(path)!r}", needle)


def test_a_dict_holding_itself_is_read_without_looping(tmp_path):
    entry = {"computation": 1.0, "communication": 2.0}
    entry["again"] = entry
    path = write_pickle(tmp_path / "capacity", {1: entry})
    assert read_fedscale_pickle(path) == {1: (1.0, 2.0)}


def test_missing_network_files_are_one_line(tmp_path):
    for path in (tmp_path / "none.pkl", tmp_path / "none.csv"):
        with pytest.raises(MosaicValueError, match="does not exist"):
            network_from_config(resolved(network=str(path), batch_size=4))
    with pytest.raises(MosaicValueError, match="is a directory"):
        read_fedscale_pickle(tmp_path)


# ----------------------------------------------------------------------------- CSV files

HEADER = "node,step_time_s,uplink_bps,downlink_bps,latency_s"


def write_csv(tmp_path, *rows, header=HEADER):
    path = tmp_path / "net.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_csv_gives_each_node_its_row(tmp_path):
    path = write_csv(
        tmp_path,
        "2,0.3,8e6,16e6,0.002",
        "0,0.1,60000000,60000000,0",
        "",
        "1,0.2,10e6,10e6,0.001",
    )
    spec = read_network_csv(path, 3)
    assert spec.step_time_s.tolist() == [0.1, 0.2, 0.3]
    assert spec.uplink_Bps.tolist() == [7.5e6, 1.25e6, 1e6]
    assert spec.downlink_Bps.tolist() == [7.5e6, 1.25e6, 2e6]
    assert spec.latency_s.tolist() == [0.0, 0.001, 0.002]
    reordered = tmp_path / "reordered.csv"
    reordered.write_text(
        "latency_s,node,downlink_bps,uplink_bps,step_time_s\n"
        "0.002,2,16e6,8e6,0.3\n0,0,6e7,6e7,0.1\n0.001,1,1e7,1e7,0.2\n"
    )
    again = read_network_csv(reordered, 3)
    assert np.array_equal(again.downlink_Bps, spec.downlink_Bps)
    cfg = resolved(nodes=3, degree=1, network=str(path), stragglers=0.34)
    slowed = network_from_config(cfg)
    (slow,) = slowed.stragglers
    assert slowed.uplink_Bps[slow] == spec.uplink_Bps[slow] / 6
    with pytest.raises(MosaicValueError, match="conflicts with network file .* latency_s column"):
        network_from_config(dataclasses.replace(cfg, latency="1ms"))


ROW = "0,0.1,1e6,1e6,0"


@pytest.mark.parametrize(
    "header, rows, needle",
    [
        ("node,step_time_s,uplink_bps,downlink_bps", [ROW], "lacks column 'latency_s'"),
        (HEADER + ",extra", [ROW], "has column 'extra'"),
        (HEADER + ",node", [ROW], "repeats a column"),
        (HEADER, [ROW, "1,0.1,1e6,1e6"], "row 3: 4 fields; expected 5"),
        (HEADER, [ROW, "one,0.1,1e6,1e6,0"], "row 3: node='one' is not an integer"),
        (HEADER, [ROW, "2,0.1,1e6,1e6,0"], "row 3: node=2 is outside 0..1"),
        (HEADER, [ROW, ROW], "row 3: node 0 already given on row 2"),
        (HEADER, [ROW], "has no row for node 1"),
        (HEADER, [ROW, "1,-0.1,1e6,1e6,0"], "row 3: step_time_s=-0.1 must be positive"),
        (HEADER, [ROW, "1,0.1,0,1e6,0"], "row 3: uplink_bps=0 must be positive"),
        (HEADER, [ROW, "1,0.1,1e6,inf,0"], "row 3: downlink_bps=inf must be positive and finite"),
        (HEADER, [ROW, "1,0.1,1e6,1e6,-1"], "row 3: latency_s=-1 must be non-negative"),
        (HEADER, [ROW, "1,0.1,1e6,1e6,nan"], "row 3: latency_s=nan must be non-negative"),
        (HEADER, [ROW, "1,0.1,1Mbit,1e6,0"], "row 3: uplink_bps='1Mbit' is not a number"),
    ],
)
def test_bad_csv_is_one_line_naming_file_and_row(tmp_path, header, rows, needle):
    path = write_csv(tmp_path, *rows, header=header)
    with pytest.raises(MosaicValueError) as info:
        read_network_csv(path, 2)
    one_line(info, f"network file {str(path)!r}", needle)


def test_csv_that_is_not_text_is_one_line(tmp_path):
    path = tmp_path / "net.csv"
    path.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(MosaicValueError, match="is not UTF-8 text"):
        read_network_csv(path, 2)


# ----------------------------------------------------------------------------- issue 26 guards


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--bandwidth-sharing", "fair"], "'fair' is not one of 'max-min', 'min-share'"),
        (["--algorithm", "divshare", "--local-steps", "0"], "local_steps=0 must be at least 1"),
        (
            ["--algorithm", "divshare", "--step-time", "0.1", "--eval-every-s", "1e-9"],
            "evaluations would outnumber steps",
        ),
        (["--eval-every-s", "nan"], "eval_every_s=nan must be a finite number"),
        (["--step-time", "1e308"], "step_time=1e+308 must be in (0, 1e+09)"),
        (
            ["--algorithm", "swift", "--K", "1", "--drop-unsent"],
            "algorithm='swift' never drops its messages",
        ),
    ],
)
def test_bad_asynchronous_settings_are_one_line_exit_2(tmp_path, args, message):
    out = tmp_path / "o"
    result = CliRunner().invoke(main, ["run", "--dataset", "movielens", *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and message in lines[0], result.output
    assert not out.exists() or not any(out.iterdir())  # nothing written


def test_a_network_csv_with_a_zero_uplink_is_one_line_exit_2(tmp_path, monkeypatch):
    from data_helpers import synthetic_ratings

    from mosaic_fast.engine import parts as parts_module

    # Synthetic ratings: the check needs no MovieLens copy on this machine.
    monkeypatch.setattr(parts_module, "load_data", lambda cfg: synthetic_ratings())
    path = tmp_path / "net.csv"
    rows = [f"{i},0.1,{0 if i == 2 else 1e6},1e6,0.001" for i in range(4)]
    path.write_text("node,step_time_s,uplink_bps,downlink_bps,latency_s\n" + "\n".join(rows))
    out = tmp_path / "o"
    args = ["run", "--dataset", "movielens", "--nodes", "4", "--degree", "2"]
    args += ["--algorithm", "divshare", "--network", str(path), "--out", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "uplink" in lines[0], result.output


def test_stored_configs_without_the_new_settings_read_back_as_they_ran():
    stored = ExperimentConfig(algorithm="swift", K=1).resolved().to_dict()
    for key in ("bandwidth_sharing", "async_semantics", "device_profile"):
        del stored[key]
    stored["drop_unsent"] = True  # the old default, stored for every algorithm
    old = ExperimentConfig.from_dict(stored).resolved()
    assert (old.bandwidth_sharing, old.async_semantics, old.device_profile) == (
        "min-share",
        "v1",
        "measured",
    )
    assert old.drop_unsent is True  # as stored; it never applied to swift
    # Settings given by hand (a few keys) take today's defaults.
    new = ExperimentConfig.from_dict({"algorithm": "divshare", "K": 4}).resolved()
    assert (new.bandwidth_sharing, new.async_semantics, new.device_profile) == (
        "max-min",
        "divshare-code",
        "cpu",
    )
    assert new.drop_unsent is True
