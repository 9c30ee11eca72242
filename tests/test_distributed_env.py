"""torchrun's environment -> DistInfo, and how a global batch is shared out."""
import pytest

from sdet.engine.distributed import DistInfo, dist_info_from_env, local_slice
from sdet.errors import UserError


def test_no_torchrun_variables_is_one_process():
    assert dist_info_from_env({}) == DistInfo() and not DistInfo().enabled and DistInfo().is_main


def test_torchrun_variables_give_rank_and_world():
    env = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1", "MASTER_ADDR": "node0", "MASTER_PORT": "29500"}
    info = dist_info_from_env(env)
    assert (info.rank, info.world_size, info.local_rank, info.enabled, info.is_main) == (3, 4, 1, True, False)


@pytest.mark.parametrize("drop", ["MASTER_ADDR", "MASTER_PORT", "RANK"])
def test_a_missing_rendezvous_is_one_line_naming_the_setting(drop):
    env = {"WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0", "MASTER_ADDR": "localhost", "MASTER_PORT": "1"}
    del env[drop]
    with pytest.raises(UserError, match=f"{drop} not set.*torchrun"):
        dist_info_from_env(env)
    with pytest.raises(UserError, match="outside WORLD_SIZE"):
        dist_info_from_env({**env, drop: env.get(drop, "0"), "RANK": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"})


def test_ranks_and_micro_batches_tile_the_global_batch_in_order():
    batch = list(range(12))
    slices = [local_slice(batch, DistInfo(r, 2), part, parts=3) for r in range(2) for part in range(3)]
    assert sum(slices, []) == batch and all(len(s) == 2 for s in slices)
    with pytest.raises(ValueError, match="does not split"):
        local_slice(list(range(5)), DistInfo(0, 2))
