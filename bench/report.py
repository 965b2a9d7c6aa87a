"""Turns the JSON lines of a run into bench/REPORT.md and PNG plots: the
machine, the command, one table and plot per workload, and the targets."""
import json
import os
import sys

from .common import BENCH_DIR

PLOTS = os.path.join(BENCH_DIR, 'plots')
NAMES = {'ours': 'sio_redis_sync', 'psio': 'python-socketio RedisManager',
         'node': 'Node socket.io + redis-adapter', 'raw': 'raw redis-py',
         'redis-benchmark': 'redis-benchmark'}
COLORS = {'ours': 'tab:green', 'psio': 'tab:blue', 'node': 'tab:orange',
          'raw': 'tab:gray', 'redis-benchmark': 'black'}


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def _find(rows, workload, impl, **match):
    for row in rows:
        if row['workload'] == workload and row['impl'] == impl and \
                all(row.get(k) == v for k, v in match.items()):
            return row
    return None


def _fmt(value, digits=1):
    if value is None:
        return 'n/a'
    if isinstance(value, float):
        return '{:,.{}f}'.format(value, digits)
    return '{:,}'.format(value) if isinstance(value, int) else str(value)


def _plt():
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    return plt


def _bar(name, labels, values, colors, ylabel, title, ceiling=None):
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.bar(range(len(values)), values, color=colors)
    ax.set_xticks(range(len(values)))
    ax.set_xticklabels(labels, rotation=20, ha='right', fontsize=8)
    if ceiling:
        ax.axhline(ceiling[1], color='red', linestyle='--', label=ceiling[0])
        ax.legend(fontsize=8)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(os.path.join(PLOTS, name), dpi=90)
    plt.close(fig)
    return 'plots/%s' % name


def emitter_section(rows, out):
    found = [r for r in rows if r['workload'] == 'emitter']
    if not found:
        return
    out.append('## 1. Emitter publish rate\n')
    out.append('One `emit` to one room per call (`single`), and batched '
               '(`Emitter.pipeline()`, 1000 per batch; Node\'s node-redis pipelines '
               'by itself). No subscribers. msg/s, higher is better.\n')
    out.append('| implementation | form | msg/s |\n|---|---|---:|')
    for r in found:
        out.append('| %s | %s | %s |' % (NAMES[r['impl']], r['form'], _fmt(r['msg_per_s'])))
    shown = [r for r in found if not (r['impl'] == 'redis-benchmark' and r['form'] == 'batched')]
    img = _bar('emitter.png', ['%s\n%s' % (NAMES[r['impl']], r['form']) for r in shown],
               [r['msg_per_s'] for r in shown], [COLORS[r['impl']] for r in shown],
               'messages / s', 'Emitter publish rate (redis-benchmark -P 1000 not drawn)')
    out.append('\n![emitter](%s)\n' % img)


def listener_section(rows, out):
    found = [r for r in rows if r['workload'] == 'listener']
    if not found:
        return
    out.append('## 2. Listener path\n')
    out.append('Messages/s a server\'s listener reads from a backlog in Redis, decodes and '
               'hands to a stub server (one local client, no websockets). The ceiling is a '
               'bare redis-py `PubSub.get_message` loop on the same backlog.\n')
    out.append('| implementation | messages | loss | msg/s | of the ceiling |\n'
               '|---|---:|---:|---:|---:|')
    raw = _find(rows, 'listener', 'raw')
    for r in found:
        share = r['msg_per_s'] / raw['msg_per_s'] if raw else None
        out.append('| %s | %s | %s | %s | %s |' % (
            NAMES[r['impl']], _fmt(r['messages']), r['loss'], _fmt(r['msg_per_s']),
            '%.0f %%' % (share * 100) if share else 'n/a'))
    img = _bar('listener.png', [NAMES[r['impl']] for r in found],
               [r['msg_per_s'] for r in found], [COLORS[r['impl']] for r in found],
               'messages / s', 'Listener path',
               ceiling=('50 % of the ceiling', raw['msg_per_s'] / 2) if raw else None)
    out.append('\n![listener](%s)\n' % img)


def delivery_section(rows, out):
    found = [r for r in rows if r['workload'] in ('delivery', 'latency')]
    if not found:
        return
    out.append('## 3. Cluster delivery\n')
    out.append('2 servers x 10 Node `socket.io-client` load clients. `emitter` path: the '
               'bench process emits to the whole namespace (20 deliveries per message) with '
               'python-socketio\'s `RedisManager(write_only=True)` (one call per message, '
               'its only form), or `sio_redis_sync.Emitter` for sio_redis_sync (one call per '
               'message, `emits=single`, and `Emitter.pipeline()` batches of 50, '
               '`emits=batched`) and for Node (batched). `server` path: a client of server 0 sends '
               'an event whose handler broadcasts to a room of the 10 clients of server 1. '
               'Max rate is a closed loop (at most 300 messages in flight); CPU is '
               'user+system of both server processes from /proc. Latency: 200 msg/s, '
               'publish to receipt at the client.\n')
    out.append('| implementation | mode | path | emits | deliveries/s | server CPU us/delivery | '
               'loss | p50 ms @200/s | p99 ms @200/s | loss |\n'
               '|---|---|---|---|---:|---:|---:|---:|---:|---:|')
    for r in [r for r in found if r['workload'] == 'delivery']:
        lat = _find(rows, 'latency', r['impl'], path=r['path'], mode=r['mode']) or {}
        out.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            NAMES[r['impl']], r['mode'], r['path'], r.get('emits', 'event'),
            _fmt(r['deliveries_per_s']),
            _fmt(r['server_cpu_us_per_delivery'], 2), r['loss'], _fmt(lat.get('p50_ms'), 2),
            _fmt(lat.get('p99_ms'), 2), lat.get('loss', 'n/a')))
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 5))
    deliveries = [r for r in found if r['workload'] == 'delivery']
    short = {'ours': 'ours', 'psio': 'psio', 'node': 'node'}
    labels = ['%s %s %s%s' % (short[r['impl']], r['mode'][:3], r['path'][:4],
                              ' ' + r['emits'][:5] if r.get('emits') else '')
              for r in deliveries]
    colors = [COLORS[r['impl']] for r in deliveries]
    axes[0].bar(range(len(deliveries)), [r['deliveries_per_s'] for r in deliveries],
                color=colors)
    axes[0].set_title('deliveries / s (max rate)')
    axes[1].bar(range(len(deliveries)),
                [r['server_cpu_us_per_delivery'] for r in deliveries], color=colors)
    axes[1].set_title('server CPU us / delivery')
    lats = [_find(rows, 'latency', r['impl'], path=r['path'], mode=r['mode']) or {}
            for r in deliveries]
    axes[2].bar(range(len(deliveries)), [x.get('p99_ms') or 0 for x in lats], color=colors)
    axes[2].bar(range(len(deliveries)), [x.get('p50_ms') or 0 for x in lats],
                color='white', alpha=0.5)
    axes[2].set_title('latency ms at 200 msg/s (p99; p50 lighter)')
    for ax in axes:
        ax.set_xticks(range(len(deliveries)))
        ax.set_xticklabels(labels, rotation=60, ha='right', fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(PLOTS, 'delivery.png'), dpi=90)
    plt.close(fig)
    out.append('\n![delivery](plots/delivery.png)\n')


def growth_section(rows, out):
    found = [r for r in rows if r['workload'] == 'growth']
    if not found:
        return
    out.append('## 4. Cost growth\n')
    out.append('Max rate, emitter path, one variable changed at a time from 2 servers x 10 '
               'clients, ~100 B messages to the whole namespace. `rooms`: every client '
               'joins rooms of its own, R in all, and each message goes to one room (one '
               'delivery). `size`: bytes of the message. sio_redis_sync and Node are fed '
               '`Emitter.pipeline()` batches, python-socketio one emit per message.\n')
    sweeps = []
    for r in found:
        if r['sweep'] not in sweeps:
            sweeps.append(r['sweep'])
    out.append('| sweep | value | implementation | deliveries/s | server CPU us/delivery '
               '| loss |\n|---|---:|---|---:|---:|---:|')
    for r in found:
        out.append('| %s | %s | %s | %s | %s | %s |' % (
            r['sweep'], _fmt(r['value']), NAMES[r['impl']], _fmt(r['deliveries_per_s']),
            _fmt(r['server_cpu_us_per_delivery'], 2), r['loss']))
    plt = _plt()
    fig, axes = plt.subplots(2, len(sweeps), figsize=(4 * len(sweeps), 7), squeeze=False)
    for col, sweep in enumerate(sweeps):
        for impl in ('ours', 'psio', 'node'):
            points = [r for r in found if r['sweep'] == sweep and r['impl'] == impl]
            if not points:
                continue
            xs = [p['value'] for p in points]
            axes[0][col].plot(xs, [p['deliveries_per_s'] for p in points], marker='o',
                              color=COLORS[impl], label=NAMES[impl])
            axes[1][col].plot(xs, [p['server_cpu_us_per_delivery'] for p in points],
                              marker='o', color=COLORS[impl], label=NAMES[impl])
        for row, what in enumerate(('deliveries / s', 'server CPU us / delivery')):
            axes[row][col].set_xscale('log')
            axes[row][col].set_yscale('log')
            axes[row][col].set_title('%s vs %s' % (what, sweep), fontsize=9)
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(PLOTS, 'growth.png'), dpi=90)
    plt.close(fig)
    out.append('\n![growth](plots/growth.png)\n')


def cluster_api_section(rows, out):
    found = [r for r in rows if r['workload'] == 'cluster_api']
    if not found:
        return
    out.append('## 5. Cluster API\n')
    unavailable = [r for r in found if r.get('unavailable')]
    for r in unavailable:
        out.append('Not measured for %s: %s\n' % (NAMES[r['impl']], r['unavailable']))
    measured = [r for r in found if not r.get('unavailable')]
    if measured:
        out.append('Latency of one call made on server 0 (sequential calls), vs the number '
                   'of servers and of sockets per server.\n')
        out.append('| call | implementation | servers | sockets/server | p50 ms | p99 ms | '
                   'result |\n|---|---|---:|---:|---:|---:|---:|')
        for r in measured:
            out.append('| %s | %s | %s | %s | %s | %s | %s |' % (
                r['call'], NAMES[r['impl']], r['servers'], r['sockets'],
                _fmt(r['p50_ms'], 2), _fmt(r['p99_ms'], 2), r['result']))
        plt = _plt()
        calls = sorted({r['call'] for r in measured})
        fig, axes = plt.subplots(1, len(calls), figsize=(6 * len(calls), 4), squeeze=False)
        for ax, call in zip(axes[0], calls):
            points = [r for r in measured if r['call'] == call]
            labels = ['%s\n%dx%d' % (NAMES[p['impl']].split(' ')[0], p['servers'],
                                     p['sockets']) for p in points]
            ax.bar(range(len(points)), [p['p50_ms'] for p in points],
                   color=[COLORS[p['impl']] for p in points])
            ax.set_xticks(range(len(points)))
            ax.set_xticklabels(labels, fontsize=7)
            ax.set_title('%s p50 ms (servers x sockets)' % call)
        fig.tight_layout()
        fig.savefig(os.path.join(PLOTS, 'cluster_api.png'), dpi=90)
        plt.close(fig)
        out.append('\n![cluster api](plots/cluster_api.png)\n')


def memory_section(rows, out):
    found = [r for r in rows if r['workload'] == 'memory']
    if not found:
        return
    out.append('## 6. Memory\n')
    out.append('RSS of one server (one client) sampled while it delivers broadcasts.\n')
    out.append('| implementation | what | count | RSS start MB | RSS end MB | growth MB | '
               'loss |\n|---|---|---:|---:|---:|---:|---:|')
    for r in found:
        out.append('| %s | %s | %s | %s | %s | %s | %s |' % (
            NAMES[r['impl']], r.get('what', 'broadcasts'), _fmt(r.get('broadcasts') or
                                                               r.get('requests')),
            _fmt(r['rss_start_mb'], 2), _fmt(r['rss_end_mb'], 2),
            _fmt(r['rss_growth_mb'], 2), r['loss']))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    for r in found:
        xs, ys = zip(*r['samples'][1:])
        ax.plot(xs, ys, marker='.', color=COLORS[r['impl']],
                linestyle='-' if r.get('what', 'broadcasts') == 'broadcasts' else ':',
                label='%s (%s)' % (NAMES[r['impl']], r.get('what', 'broadcasts')))
    ax.set_xlabel('count')
    ax.set_ylabel('RSS MB')
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(PLOTS, 'memory.png'), dpi=90)
    plt.close(fig)
    out.append('\n![memory](plots/memory.png)\n')


SHARDED_MODES = (('classic', 'tab:blue'), ('static', 'tab:orange'), ('dynamic', 'tab:green'))


def _sharded_check(found, mode, wanted):
    """'yes', or 'NO' with the servers whose received count is not ``wanted``."""
    rows = [r for r in found if r['mode'] == mode]
    if not rows:
        return 'not measured'
    off = ['server %d: %s of %s' % (r['server'], _fmt(r['received']), _fmt(r[wanted]))
           for r in rows if r['received'] != r[wanted]]
    return 'NO (%s)' % '; '.join(off) if off else 'yes'


def sharded_section(rows, out):
    found = [r for r in rows if r['workload'] == 'sharded']
    if not found:
        return
    servers = sorted({r['server'] for r in found})
    first = found[0]
    out.append('## 7. Sharded Pub/Sub: what each server reads (issue 7)\n')
    out.append('%d servers (`RedisManager` in the bench process, each on a stub server that '
               'counts the packets its sockets are sent; no websockets), one socket per room, '
               'server i hosting 2^i times as many rooms as server 0 (%d rooms, none shared). '
               'An `Emitter` sends %s single-room broadcasts, the same number to every room. '
               '*received* is '
               '`stats()[\'received\']`: every message the server\'s listener read from Redis, '
               'on all of its channels. Nothing else is published (the servers\' joins are '
               'local, and the run makes no request), so the counts are exact, not samples. '
               '`static` and `dynamic`: `mode=\'sharded\'` on a 3-master Redis Cluster the '
               'workload starts (`cluster=True`); `classic`: the baseline, PSUBSCRIBE on the '
               'bench\'s standalone Redis. Loss counts the packets a socket of a hosted room '
               'did not get.\n' % (len(servers), first['rooms_total'],
                                    _fmt(first['broadcasts'])))
    out.append('| server | rooms hosted | broadcasts to its rooms (share) | received: classic '
               '| static | dynamic | received / all broadcasts: static | dynamic '
               '| loss (3 modes) |\n'
               '|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for server in servers:
        by_mode = {mode: _find(found, 'sharded', 'ours', mode=mode, server=server) or {}
                   for mode, _ in SHARDED_MODES}
        any_row = next(r for r in by_mode.values() if r)
        out.append('| %d | %d | %s (%.1f %%) | %s | %s | %s | %s | %s | %s |' % (
            server, any_row['rooms'], _fmt(any_row['addressed']), any_row['share'] * 100,
            _fmt(by_mode['classic'].get('received')), _fmt(by_mode['static'].get('received')),
            _fmt(by_mode['dynamic'].get('received')),
            _fmt(by_mode['static'].get('received_ratio'), 3),
            _fmt(by_mode['dynamic'].get('received_ratio'), 3),
            sum(r.get('loss', 0) for r in by_mode.values())))
    out.append('')
    out.append('- dynamic: every server read exactly the broadcasts addressed to the rooms '
               'it hosts: **%s**' % _sharded_check(found, 'dynamic', 'addressed'))
    out.append('- static: every server read every broadcast: **%s**'
               % _sharded_check(found, 'static', 'broadcasts'))
    out.append('- classic: every server read every broadcast: **%s**\n'
               % _sharded_check(found, 'classic', 'broadcasts'))
    out.append('In `dynamic` mode a single-room broadcast goes to the room\'s own channel, '
               'which only the servers hosting the room subscribe to, so what a server reads '
               'grows with the rooms it hosts (here %.1f %% to %.1f %% of the traffic) instead '
               'of with the whole cluster\'s; in `static` and classic mode each server reads '
               'everything and drops what is not for its sockets. Broadcasts to the whole '
               'namespace, to several rooms, with acks, or to a room named like a socket id '
               '(20 characters) still go on the namespace channel and reach every server in '
               'every mode; this workload sends none.\n' % (
                   min(r['share'] for r in found) * 100, max(r['share'] for r in found) * 100))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.2
    series = [('broadcasts to its rooms', 'tab:gray', 'addressed', 'dynamic')] + \
        [('received, %s' % mode, color, 'received', mode) for mode, color in SHARDED_MODES]
    for n, (label, color, field, mode) in enumerate(series):
        values = [(_find(found, 'sharded', 'ours', mode=mode, server=s) or {}).get(field, 0)
                  for s in servers]
        ax.bar([s + (n - 1.5) * width for s in servers], values, width, color=color,
               label=label)
    ax.set_xticks(servers)
    ax.set_xticklabels(['server %d\nrooms: %d' % (s, _find(found, 'sharded', 'ours',
                                                             server=s)['rooms'])
                        for s in servers], fontsize=8)
    ax.set_ylim(0, first['broadcasts'] * 1.3)
    ax.set_ylabel('messages')
    ax.set_title('Messages each server read from Redis, per mode')
    ax.legend(fontsize=8, loc='upper left', ncol=2)
    fig.tight_layout()
    fig.savefig(os.path.join(PLOTS, 'sharded.png'), dpi=90)
    plt.close(fig)
    out.append('![sharded](plots/sharded.png)\n')


STREAMS_NAMES = {('ours', 'classic'): 'sio_redis_sync classic',
                 ('ours', 'streams'): 'sio_redis_sync streams',
                 ('node', 'streams'): 'Node redis-streams-adapter'}
STREAMS_COLORS = {('ours', 'classic'): 'tab:olive', ('ours', 'streams'): 'tab:green',
                  ('node', 'streams'): 'tab:orange'}


def _streams_ratios(rows, out):
    """Ratio lines: ours in streams mode against classic mode and against Node's."""
    def value(impl, mode, path, field, emits=None):
        kind = 'streams' if field in ('deliveries_per_s', 'server_cpu_us_per_delivery') \
            else 'streams_latency'
        match = {'emits': emits} if emits and kind == 'streams' else {}
        row = _find(rows, kind, impl, mode=mode, path=path, **match)
        return row.get(field) if row else None
    fields = (('deliveries/s', 'deliveries_per_s'), ('CPU/delivery', 'server_cpu_us_per_delivery'),
              ('p50', 'p50_ms'), ('p99', 'p99_ms'))
    for against, (impl, mode) in (('classic mode', ('ours', 'classic')),
                                  ('Node\'s streams adapter', ('node', 'streams'))):
        for path, emits in (('emitter', 'batched'), ('server', None)):
            parts = []
            for label, field in fields:
                ours, base = value('ours', 'streams', path, field, emits), \
                    value(impl, mode, path, field, emits)
                parts.append('%s %s' % (label, _fmt(ours / base, 2) if ours and base
                                        else 'n/a'))
            out.append('- ours in streams mode / %s, %s path%s: %s' % (
                against, path, ' (max rate with batched emits)' if emits else '', ', '.join(parts)))
    out.append('')


def streams_section(rows, out):
    found = [r for r in rows if r['workload'] == 'streams']
    memory = [r for r in rows if r['workload'] == 'streams_memory']
    if not found and not memory:
        return
    out.append('## 8. Streams mode (issue 16)\n')
    if found:
        out.append('Workload 3 (same clusters, clients, paths and rates) for sio_redis_sync in '
                   'classic mode, sio_redis_sync in streams mode (`RedisManager(mode='
                   '\'streams\')`: broadcasts XADDed to a stream each server reads with '
                   '`XREAD BLOCK`) and Node servers on `@socket.io/redis-streams-adapter` '
                   '0.3.1, measured one after the other in the same run. Both streams '
                   'clusters are fed by `Emitter(mode=\'streams\')` (Node has no streams '
                   'emitter).\n')
        out.append('| servers | mode | path | emits | deliveries/s | server CPU us/delivery | '
                   'loss | p50 ms @200/s | p99 ms @200/s | loss |\n'
                   '|---|---|---|---|---:|---:|---:|---:|---:|---:|')
        for r in found:
            lat = _find(rows, 'streams_latency', r['impl'], path=r['path'],
                        mode=r['mode']) or {}
            out.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
                NAMES[r['impl']] if r['impl'] != 'node' else 'Node socket.io + '
                'redis-streams-adapter', r['mode'], r['path'], r.get('emits', 'event'),
                _fmt(r['deliveries_per_s']), _fmt(r['server_cpu_us_per_delivery'], 2),
                r['loss'], _fmt(lat.get('p50_ms'), 2), _fmt(lat.get('p99_ms'), 2),
                lat.get('loss', 'n/a')))
        out.append('')
        _streams_ratios(rows, out)
        _streams_delivery_plot(rows, found)
        out.append('![streams](plots/streams.png)\n')
    if memory:
        _streams_memory(memory, out)


def _streams_delivery_plot(rows, found):
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(14, 5))
    labels = ['%s %s%s' % (STREAMS_NAMES[(r['impl'], r['mode'])], r['path'],
                           ' ' + r['emits'] if r.get('emits') else '') for r in found]
    colors = [STREAMS_COLORS[(r['impl'], r['mode'])] for r in found]
    lats = [_find(rows, 'streams_latency', r['impl'], path=r['path'], mode=r['mode']) or {}
            for r in found]
    axes[0].bar(range(len(found)), [r['deliveries_per_s'] or 0 for r in found], color=colors)
    axes[0].set_title('deliveries / s (max rate)')
    axes[1].bar(range(len(found)), [r['server_cpu_us_per_delivery'] or 0 for r in found],
                color=colors)
    axes[1].set_title('server CPU us / delivery')
    axes[2].bar(range(len(found)), [x.get('p99_ms') or 0 for x in lats], color=colors)
    axes[2].bar(range(len(found)), [x.get('p50_ms') or 0 for x in lats], color='white',
                alpha=0.5)
    axes[2].set_title('latency ms at 200 msg/s (p99; p50 lighter)')
    for ax in axes:
        ax.set_xticks(range(len(found)))
        ax.set_xticklabels(labels, rotation=60, ha='right', fontsize=7)
    fig.tight_layout()
    fig.savefig(os.path.join(PLOTS, 'streams.png'), dpi=90)
    plt.close(fig)


def _streams_memory(memory, out):
    out.append('Memory: one streams-mode server (one client) over many broadcasts, the '
               'stream capped by `max_len` (`XADD ... MAXLEN ~`, which trims whole nodes of '
               '100 entries, so the length stays a little above the cap). RSS of the server '
               'process; the stream\'s length (`XLEN`) and size (`MEMORY USAGE`) in Redis.\n')
    out.append('| broadcasts | max_len | RSS start MB | RSS end MB | growth MB | stream length '
               'at end | longest | stream MB at end | loss |\n'
               '|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for r in memory:
        out.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            _fmt(r['broadcasts']), _fmt(r['max_len']), _fmt(r['rss_start_mb'], 2),
            _fmt(r['rss_end_mb'], 2), _fmt(r['rss_growth_mb'], 2),
            _fmt(r['stream_len_end']), _fmt(r['stream_len_max']), _fmt(r['stream_mb_end'], 2),
            r['loss']))
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 4))
    right = ax.twinx()
    for r in memory:
        xs, ys = zip(*r['samples'][1:])
        ax.plot(xs, ys, marker='.', color='tab:green', label='server RSS MB')
        ax.set_ylim(0, max(ys) * 1.3)  # from 0: flat is what it should look
        counts, lengths, _ = zip(*r['stream_samples'])
        right.plot(counts, lengths, marker='.', color='tab:purple', linestyle=':',
                   label='stream length')
        right.axhline(r['max_len'], color='red', linestyle='--', label='max_len')
    ax.set_xlabel('broadcasts')
    ax.set_ylabel('RSS MB')
    right.set_ylabel('entries in the stream')
    right.set_ylim(bottom=0)
    fig.legend(fontsize=8, loc='lower center', ncol=3)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(os.path.join(PLOTS, 'streams_memory.png'), dpi=90)
    plt.close(fig)
    out.append('\n![streams memory](plots/streams_memory.png)\n')


def targets(rows):
    """(target, value, met) for each target of the issue, from this run."""
    out = []

    def ratio(a, b):
        return a / b if a is not None and b else None

    def get(workload, impl, field, **match):
        row = _find(rows, workload, impl, **match)
        return row.get(field) if row else None
    r = ratio(get('emitter', 'ours', 'msg_per_s', form='single'),
              get('emitter', 'psio', 'msg_per_s', form='single'))
    out.append(('Emitter single call >= python-socketio', r, 1.0, '>='))
    r = ratio(get('emitter', 'ours', 'msg_per_s', form='batched'),
              get('emitter', 'node', 'msg_per_s'))
    out.append(('Emitter batched >= Node emitter', r, 1.0, '>='))
    r = ratio(get('listener', 'ours', 'msg_per_s'), get('listener', 'raw', 'msg_per_s'))
    out.append(('Listener >= 50 % of raw redis-py subscribe', r, 0.5, '>='))
    for path in ('emitter', 'server'):
        # the emitter path compares both with one emit per message (the only
        # form python-socketio has), and ours batched on its own line
        forms = [('', {'emits': 'single'}), (', ours batched', {'emits': 'batched'})] \
            if path == 'emitter' else [('', {})]
        for label, form in forms:
            what = '%s path%s' % (path, label)
            r = ratio(get('delivery', 'ours', 'server_cpu_us_per_delivery', path=path,
                          mode='threading', **form),
                      get('delivery', 'psio', 'server_cpu_us_per_delivery', path=path,
                          mode='threading'))
            out.append(('Server CPU/delivery <= 0.5x python-socketio (%s)' % what, r,
                        0.5, '<='))
            r = ratio(get('delivery', 'ours', 'deliveries_per_s', path=path,
                          mode='threading', **form),
                      get('delivery', 'psio', 'deliveries_per_s', path=path, mode='threading'))
            out.append(('Deliveries/s >= 1.5x python-socketio (%s)' % what, r, 1.5, '>='))
            r = ratio(get('delivery', 'ours', 'deliveries_per_s', path=path,
                          mode='threading', **form),
                      get('delivery', 'node', 'deliveries_per_s', path=path, mode='node'))
            out.append(('Deliveries/s >= Node (%s)' % what, r, 1.0, '>='))
        r = ratio(get('latency', 'ours', 'p99_ms', path=path, mode='threading'),
                  get('latency', 'psio', 'p99_ms', path=path, mode='threading'))
        out.append(('p99 at 200 msg/s <= python-socketio (%s path)' % path, r, 1.0, '<='))
    return out


def write(results_path, report_path=None):
    rows = load(results_path)
    os.makedirs(PLOTS, exist_ok=True)
    report_path = report_path or os.path.join(BENCH_DIR, 'REPORT.md')
    host = next((r for r in rows if r['workload'] == 'machine'), {})
    out = ['# Benchmark report\n',
           'Generated by `bench/report.py` from `%s`. Numbers are ratios taken in the '
           'same run; absolute figures depend on the machine.\n'
           % os.path.relpath(results_path, os.path.dirname(BENCH_DIR))]
    out.append('## Machine and command\n')
    out.append('- command: `%s`%s' % (host.get('command'), ' (short sizes)'
                                      if host.get('short') else ''))
    out.append('- CPU: %s, %s cores (nproc), %s GiB RAM; %s' % (
        host.get('cpu'), host.get('nproc'), host.get('mem_gb'), host.get('platform')))
    out.append('- load average at start: %s — a shared machine: other engineers ran '
               'tests at the same time, so expect noise of 10-30 %%' % (
                   ', '.join('%.2f' % x for x in host.get('load_avg_at_start', []))))
    out.append('- Python %s; %s; Node %s; %s' % (
        host.get('python'), ', '.join('%s %s' % kv for kv in
                                      (host.get('packages') or {}).items()),
        host.get('node'), host.get('redis_server')))
    out.append('- Node peers: socket.io 4.8.4, @socket.io/redis-adapter 8.3.0, '
               '@socket.io/redis-emitter 5.1.0, @socket.io/redis-streams-adapter 0.3.1, '
               'redis 4.7.1 (tests/package-lock.json)')
    for later in [r for r in rows if r['workload'] == 'machine'][1:]:
        out.append('- merged in from a later run (`--merge`): `%s`%s, load average at start '
                   '%s; Python %s; %s' % (
                       later.get('command'), ' (short sizes)' if later.get('short') else '',
                       ', '.join('%.2f' % x for x in later.get('load_avg_at_start', [])),
                       later.get('python'), later.get('redis_server')))
    timing = [r for r in rows if r['workload'] == 'timing']
    if timing:
        out.append('- wall time per workload: %s' % ', '.join(
            '%s %.0f s' % (r['impl'], r['seconds']) for r in timing))
    out.append('')
    out.append('## Targets\n')
    out.append('| target | ours / baseline | goal | met |\n|---|---:|---:|---|')
    for name, value, goal, op in targets(rows):
        if value is None:
            met = 'not measured'
        else:
            met = 'yes' if (value >= goal if op == '>=' else value <= goal) else 'NO'
        out.append('| %s | %s | %s %s | %s |' % (name, _fmt(value, 2), op, goal, met))
    out.append('')
    lossy = [r for r in rows if r.get('loss')]
    out.append('## Loss\n')
    if not lossy:
        out.append('Every workload delivered everything it sent (loss 0).\n')
    for r in lossy:
        out.append('- **%s / %s %s: lost %s of %s** (%s); last server errors: %s' % (
            r['workload'], NAMES.get(r['impl'], r['impl']),
            ' '.join('%s=%s' % (k, r[k]) for k in ('path', 'mode', 'sweep', 'value', 'server')
                     if k in r),
            _fmt(r['loss']), _fmt(r.get('expected')), 'see the JSON line',
            '; '.join('`%s`' % e[:200] for e in r.get('server_errors', [])) or 'none logged'))
    out.append('')
    analysis = os.path.join(BENCH_DIR, 'ANALYSIS.md')
    if os.path.exists(analysis):
        with open(analysis) as f:
            out.append(f.read())
    for section in (emitter_section, listener_section, delivery_section, growth_section,
                    cluster_api_section, memory_section, sharded_section, streams_section):
        section(rows, out)
    with open(report_path, 'w') as f:
        f.write('\n'.join(out) + '\n')
    return report_path


if __name__ == '__main__':
    print(write(sys.argv[1] if len(sys.argv) > 1
                else os.path.join(BENCH_DIR, 'results', 'latest.jsonl')))
