"""CI smoke test of the benchmark suite: every workload runs at its short
size against a redis-server of its own and loses nothing; the sharded
workload's message counts are checked exactly, and the streams workload's
rows are all there, its stream capped by max_len. No speed is asserted.
"""
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

from bench import __main__ as bench_main  # noqa: E402
from bench import streams  # noqa: E402


@pytest.mark.serial  # a CPU hog: beside the xdist workers it starved Node peers' tests
def test_every_workload_completes_with_no_loss(tmp_path, monkeypatch):
    monkeypatch.delenv('REDIS_URL', raising=False)  # the bench starts its own
    out = tmp_path / 'short.jsonl'
    results = bench_main.main(['--short', '--no-report', '--out', str(out)])
    rows = results.rows
    done = {row['workload'] for row in rows}
    assert set(bench_main.WORKLOADS) <= done | {'cluster_api'}
    assert {'emitter', 'listener', 'delivery', 'latency', 'growth', 'memory',
            'cluster_api', 'sharded', 'streams', 'streams_latency', 'streams_memory'} <= done
    for impl in ('ours', 'psio', 'node'):
        assert any(row['impl'] == impl and row['workload'] == 'delivery' for row in rows)
    assert not [row for row in rows if row.get('unavailable')]
    lossy = [row for row in rows if row.get('loss')]
    assert not lossy, lossy
    measured = [row for row in rows if 'loss' in row]
    assert all(row['loss'] == 0 for row in measured) and len(measured) > 20
    assert out.read_text().count('\n') == len(rows)
    # message counts are exact: in dynamic mode each server reads the broadcasts
    # to the rooms it hosts and nothing else; in static and classic mode, all
    sharded = [row for row in rows if row['workload'] == 'sharded']
    assert {row['mode'] for row in sharded} == {'classic', 'static', 'dynamic'}
    for row in sharded:
        wanted = row['addressed'] if row['mode'] == 'dynamic' else row['broadcasts']
        assert (row['received'], row['misdelivered']) == (wanted, 0), row
    assert len({row['addressed'] for row in sharded}) > 1  # servers host unequal shares
    check_streams(rows)


def check_streams(rows):
    """Ours in classic and in streams mode and Node's streams adapter, on both
    paths, measured; the stream of the memory check stayed near max_len."""
    for impl, mode in streams.CLUSTERS:
        for kind in ('streams', 'streams_latency'):
            paths = {row['path'] for row in rows if (row['workload'], row['impl'],
                                                     row.get('mode')) == (kind, impl, mode)}
            assert paths == {'emitter', 'server'}, (kind, impl, mode, paths)
    [memory] = [row for row in rows if row['workload'] == 'streams_memory']
    cap = memory['max_len']
    assert memory['broadcasts'] > 2 * cap and memory['deliveries'] == memory['broadcasts']
    # MAXLEN ~ trims whole nodes (100 entries at most): a little above the cap
    assert cap <= memory['stream_len_end'] <= memory['stream_len_max'] < cap + 100, memory
