"""Greenthread-local storage."""

from __future__ import annotations

import pytest

from nettools import Event, local, spawn


def test_attributes_are_private_to_each_greenthread():
    loc = local()
    loc.x = "main"
    go = Event()

    def worker(name):
        assert not hasattr(loc, "x")
        loc.x = name
        go.wait()  # all workers hold their value at the same time
        return loc.x

    gts = [spawn(worker, f"g{i}") for i in range(5)]
    go.send()
    assert [gt.wait() for gt in gts] == [f"g{i}" for i in range(5)]
    assert loc.x == "main"


def test_delattr_is_per_greenthread():
    loc = local()
    loc.x = 1

    def worker():
        loc.x = 2
        del loc.x
        with pytest.raises(AttributeError):
            del loc.x
        return hasattr(loc, "x")

    assert spawn(worker).wait() is False
    assert loc.x == 1


def test_dict_is_per_greenthread():
    loc = local()
    loc.a = 1
    assert spawn(lambda: dict(loc.__dict__)).wait() == {}
    assert loc.__dict__ == {"a": 1}


def test_dict_cannot_be_replaced_or_deleted():
    # As threading.local: the per-greenthread dict is the object's own.
    loc = local()
    loc.a = 1
    with pytest.raises(AttributeError, match="read-only"):
        loc.__dict__ = {"b": 2}
    with pytest.raises(AttributeError, match="read-only"):
        del loc.__dict__
    assert loc.__dict__ == {"a": 1} and loc.a == 1


def test_subclass_init_reruns_in_each_greenthread_with_the_constructor_args():
    inits = []

    class Counter(local):
        def __init__(self, start, step=1):
            inits.append((start, step))
            self.value = start
            self.step = step

        def bump(self):
            self.value += self.step
            return self.value

    c = Counter(10, step=5)
    assert c.bump() == 15

    def worker():
        return c.bump(), c.bump()

    assert spawn(worker).wait() == (15, 20)
    assert spawn(worker).wait() == (15, 20)
    assert c.value == 15  # the creator's value is untouched
    assert inits == [(10, 5)] * 3


def test_plain_local_rejects_constructor_args():
    with pytest.raises(TypeError):
        local(1)


def test_class_attributes_and_methods_are_shared():
    class WithDefault(local):
        default = "shared"

    w = WithDefault()
    assert spawn(lambda: w.default).wait() == "shared"
