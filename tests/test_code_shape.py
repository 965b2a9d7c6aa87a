"""The package's shape, read with ``ast``: no module reaches another object's
private attributes (other libraries' privates live in internals.py only), no
class over MAX_CLASS lines, no function over MAX_FUNCTION lines (issue 15).
"""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / 'sio_redis_sync'
# the one place for other libraries' private names (python-socketio's, and
# redis-py's before 5.1), each with the versions it was checked against
INTERNALS = 'internals.py'
MAX_CLASS = 450
MAX_FUNCTION = 60
MODULES = sorted(PACKAGE.glob('*.py'))


def _tree(path):
    return ast.parse(path.read_text(encoding='utf-8'), filename=str(path))


def _own(node):
    """``self.x``, ``cls.x``, ``super().x``: an object's own attributes."""
    if isinstance(node, ast.Name):
        return node.id in ('self', 'cls')
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
        and node.func.id == 'super'


def private_reaches(path):
    """``module:line expression`` of every ``x._name`` where ``x`` is not
    the object itself (dunder names are Python's, not private)."""
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Attribute) and node.attr.startswith('_') \
                and not node.attr.startswith('__') and not _own(node.value):
            found.append('%s:%d %s' % (path.name, node.lineno, ast.unparse(node)))
    return found


def oversized(path):
    """``module:line name lines`` of every class or function too long."""
    found = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ClassDef):
            limit = MAX_CLASS
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            limit = MAX_FUNCTION
        else:
            continue
        lines = node.end_lineno - node.lineno + 1
        if lines > limit:
            found.append('%s:%d %s %d lines' % (path.name, node.lineno, node.name, lines))
    return found


def test_the_package_is_there():
    names = {path.name for path in MODULES}
    assert {'manager.py', 'emitter.py', INTERNALS} <= names


@pytest.mark.parametrize('path', MODULES, ids=lambda path: path.name)
def test_no_reach_into_another_objects_privates(path):
    if path.name == INTERNALS:
        return
    assert private_reaches(path) == []


def test_internals_name_the_versions_they_were_checked_against():
    text = (PACKAGE / INTERNALS).read_text(encoding='utf-8')
    assert 'python-socketio' in text and '5.8.0' in text and '5.18.1' in text


@pytest.mark.parametrize('path', MODULES, ids=lambda path: path.name)
def test_no_class_or_function_too_long(path):
    assert oversized(path) == []


def test_the_checks_see_what_they_look_for(tmp_path):
    """The checks themselves: a reach and a long function are found."""
    sample = tmp_path / 'sample.py'
    sample.write_text('def f(other):\n    return other._secret\n'
                      + 'def g():\n' + '    pass\n' * MAX_FUNCTION)
    assert private_reaches(sample) == ['sample.py:2 other._secret']
    assert oversized(sample) == ['sample.py:3 g %d lines' % (MAX_FUNCTION + 1)]
