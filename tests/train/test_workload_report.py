"""The default workload is the FATE world: under round-robin at N=16, model loads, app-prefix
prefill and remote-parent prefill each take at least 5% of busy server time (the spec's realism check)."""

import pytest

from envs import EnvConfig, make_params
from jaxsched.baselines import earliest_finish, round_robin
from train import demo, workload_report


def test_round_robin_busy_time_has_all_three_state_costs():
    shares = workload_report.busy_shares(round_robin, make_params(EnvConfig(n_servers=16)), seeds=8)
    assert shares["overhead"] >= 0  # the named parts never exceed busy time
    for part in ("load_s", "prefix_s", "remote_s"):
        assert shares[part] >= 0.05, (part, shares)
    # the split by GPU type adds up, and a 24 GB L4 (one model at a time) never keeps part of its set
    by_gpu = shares["evictions_by_gpu"]
    assert sum(e for e, _ in by_gpu.values()) == shares["evicting_loads"]
    assert sum(p for _, p in by_gpu.values()) == round(shares["partial_eviction"] * shares["evicting_loads"])
    assert by_gpu[3] == (by_gpu[3][0], 0) and by_gpu[3][0] > 0


@pytest.mark.xfail(strict=True, reason="issue 13 asks >= 20%; the spec's catalogs give 9.7% here (7.9% over 32 "
                   "episodes): most evicting loads put an 8B on an H100 holding a 32B or 70B alone, which 72 GB "
                   "cannot keep; role maps tried reach 12% (docs/environment.md)")
def test_under_eft_lru_order_decides_what_stays_in_a_fifth_of_evicting_loads():
    """Spec v2: residency makes real choices (v1's catalogs never evicted part of a server's set)."""
    shares = workload_report.busy_shares(earliest_finish, make_params(EnvConfig(n_servers=16)), seeds=8)
    assert shares["evicting_loads"] >= 50, shares
    assert shares["partial_eviction"] >= 0.20, shares


def test_demo_runs_and_orders_the_obvious(capsys):
    rows = demo.main(["--servers", "4", "--seeds", "3", "--policies", "random,eft"])
    out = capsys.readouterr().out
    assert "eft" in out and "mean resp" in out
    assert rows["eft"]["mean_response"].mean() < rows["random"]["mean_response"].mean()


def test_demo_rejects_bad_arguments():
    with pytest.raises(SystemExit):
        demo.main(["--policies", "nope"])
    with pytest.raises(SystemExit):
        demo.main(["--servers", "0"])
