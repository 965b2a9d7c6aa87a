"""``python -m bench``: run the workloads, write JSON lines, then the report.

    .venv/bin/python -m bench                 # everything (about 15 minutes)
    .venv/bin/python -m bench --short         # the CI smoke sizes (about a minute)
    .venv/bin/python -m bench --only emitter,listener --impls ours,psio
    .venv/bin/python -m bench --only sharded --merge   # one workload again
    .venv/bin/python -m bench --only streams           # streams mode (issue 16)
"""
import argparse
import os
import sys
import time

from . import cluster, micro, recovery, report, sharded, streams
from .common import BENCH_DIR, RedisServer, Results, machine

WORKLOADS = {
    'emitter': micro.emitter_rate,
    'listener': micro.listener_rate,
    'delivery': cluster.delivery,
    'growth': cluster.growth,
    'memory': cluster.memory,
}


def cluster_api(results, redis_url, impls, short):
    from . import clusterapi
    clusterapi.run(results, redis_url, impls, short)


WORKLOADS['cluster_api'] = cluster_api
WORKLOADS['sharded'] = sharded.run
WORKLOADS['streams'] = streams.run
WORKLOADS['recovery'] = recovery.run


# the row kinds a workload writes, where they differ from its name
ROWS = {'delivery': ('delivery', 'latency'), 'streams': streams.KINDS}


def kept_rows(path, only):
    """The rows of ``path`` that re-running the workloads ``only`` does not
    replace: their timing rows go too, and the machine row of a run all of
    whose workloads are replaced."""
    if not os.path.exists(path):
        return []
    gone = {kind for name in only for kind in ROWS.get(name, (name,))}

    def kept(row):
        if row['workload'] == 'machine':
            return not set(row.get('workloads', WORKLOADS)) <= set(only)
        if row['workload'] == 'timing':
            return row['impl'] not in only
        return row['workload'] not in gone
    return [row for row in report.load(path) if kept(row)]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='python -m bench', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--short', action='store_true',
                        help='small sizes: checks that everything runs, measures little')
    parser.add_argument('--only', default=','.join(WORKLOADS),
                        help='comma-separated workloads (default: all): '
                        + ', '.join(WORKLOADS))
    parser.add_argument('--impls', default='ours,psio,node',
                        help='comma-separated: ours, psio (python-socketio), node')
    parser.add_argument('--eventlet', action='store_true',
                        help='also run the delivery workload with eventlet servers (needs '
                        '"pip install eventlet", left out of the bench extra: in the '
                        'tests\' .venv Flask-SocketIO would then pick eventlet)')
    parser.add_argument('--out', default=os.path.join(BENCH_DIR, 'results', 'latest.jsonl'),
                        help='where to write the JSON lines')
    parser.add_argument('--merge', action='store_true',
                        help='keep the rows of --out from the workloads not run this time '
                        '(a workload re-run into the results of a full run)')
    parser.add_argument('--no-report', action='store_true',
                        help='do not rewrite bench/REPORT.md and the plots')
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    impls = tuple(i for i in args.impls.split(',') if i)
    only = [w for w in args.only.split(',') if w]
    unknown = set(only) - set(WORKLOADS)
    if unknown:
        sys.exit('unknown workload(s): %s' % ', '.join(sorted(unknown)))
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    results = Results(args.out, kept=kept_rows(args.out, only) if args.merge else ())
    results.add('machine', 'host', **machine(), short=args.short, workloads=only,
                command=' '.join(['python -m bench'] + (argv if argv is not None
                                                         else sys.argv[1:])))
    redis_url = os.environ.get('REDIS_URL')
    server = None if redis_url else RedisServer()
    try:
        for name in only:
            started = time.monotonic()
            if name == 'delivery' and args.eventlet:
                cluster.delivery(results, redis_url or server.url, impls, args.short,
                                 modes=('threading', 'eventlet'))
            else:
                WORKLOADS[name](results, redis_url or server.url, impls, args.short)
            results.add('timing', name, seconds=round(time.monotonic() - started, 1))
    finally:
        results.close()
        if server is not None:
            server.close()
    if not args.no_report:
        report.write(args.out)
    return results


if __name__ == '__main__':
    main()
