"""Small value classes for oci/ without the dataclasses module.

`import dataclasses` imports inspect (and with it ast, dis, tokenize...): ~8-15 ms of start-up
that every `dockyard run` paid only because these types live in oci/. A record needs much less:
``__init__`` from the annotated fields and their defaults, ``__slots__``, ``__repr__``, equality
on the field tuple, and on request immutability (then also ``__hash__``) and ordering.

    @record(frozen=True, order=True)
    class Digest:
        algorithm: str
        hex: str

A default of ``Factory(list)`` is called for every instance (like dataclasses' default_factory).
Subclassing a record, zero-argument super() and class variables without a value are not supported
(nothing here needs them).

``__init__`` is generated from the fields (one ``exec`` per class, ~150 us: 1.2 ms of every
`dockyard` command's imports for oci/ alone), unless the class body writes it itself. A written
``__init__`` must take exactly ``(self, *fields)`` with the fields' defaults (``MISSING`` for a
``Factory`` field, which it then makes per instance) and, for a frozen record, set each field with
``object.__setattr__``; the parameters and defaults are checked when the class is decorated,
so the two cannot drift apart (tests/test_oci_record.py compares them with the generated one).
"""
from __future__ import annotations

__all__ = ["record", "Factory", "FrozenRecordError", "MISSING"]

_MISSING = object()
MISSING = _MISSING  # the default of a Factory field in a hand-written __init__


class FrozenRecordError(AttributeError):
    """Assignment to a field of a frozen record."""


class Factory:
    """A default made per instance by calling ``make()``."""

    __slots__ = ("make",)

    def __init__(self, make) -> None:
        self.make = make


def record(cls=None, *, frozen: bool = False, order: bool = False):
    def wrap(c):
        return _build(c, frozen, order)
    return wrap if cls is None else wrap(cls)


def _build(cls, frozen: bool, order: bool):
    names = tuple(cls.__dict__.get("__annotations__", {}))
    ns = {k: v for k, v in cls.__dict__.items() if k not in names and k not in ("__dict__", "__weakref__")}
    ns["__slots__"] = names
    ns["__match_args__"] = names
    init = cls.__dict__.get("__init__")
    if init is not None:
        _check_init(cls, init, names)  # ns holds it already
    else:
        ns["__init__"] = _generate_init(cls, names, frozen)
    ns["__repr__"] = _repr
    ns["__eq__"] = _eq
    ns["__hash__"] = _hash if frozen else None  # mutable and comparable: unhashable, like dataclasses
    if frozen:
        ns["__setattr__"] = _frozen_setattr
        ns["__delattr__"] = _frozen_delattr
    ns["__getstate__"] = _getstate  # copy and pickle work with slots and frozen alike
    ns["__setstate__"] = _setstate
    if order:
        ns["__lt__"] = lambda a, b: _values(a) < _values(b) if a.__class__ is b.__class__ else NotImplemented
        ns["__le__"] = lambda a, b: _values(a) <= _values(b) if a.__class__ is b.__class__ else NotImplemented
        ns["__gt__"] = lambda a, b: _values(a) > _values(b) if a.__class__ is b.__class__ else NotImplemented
        ns["__ge__"] = lambda a, b: _values(a) >= _values(b) if a.__class__ is b.__class__ else NotImplemented
    return type(cls)(cls.__name__, cls.__bases__, ns)


def _generate_init(cls, names: tuple, frozen: bool):
    env = {"_MISSING": _MISSING, "_set": object.__setattr__}
    params, body = [], []
    for n in names:
        default = cls.__dict__.get(n, _MISSING)
        if default is _MISSING:
            params.append(n)
            value = n
        elif isinstance(default, Factory):
            env[f"_make_{n}"] = default.make
            params.append(f"{n}=_MISSING")
            value = f"_make_{n}() if {n} is _MISSING else {n}"
        else:
            env[f"_default_{n}"] = default
            params.append(f"{n}=_default_{n}")
            value = n
        body.append(f"    _set(self, {n!r}, {value})" if frozen else f"    self.{n} = {value}")
    # Generated once per class (as dataclasses does): a plain __init__ is the fastest to call,
    # and Digest/Reference are built on every registry request.
    src = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass") + "\n"
    exec(src, env)  # noqa: S102 - the text is built from this class's own field names
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def _check_init(cls, init, names: tuple) -> None:
    """A hand-written __init__ takes (self, *names) with the fields' defaults, nothing else."""
    code = getattr(init, "__code__", None)
    defaults = [cls.__dict__[n] for n in names if n in cls.__dict__]
    expected = tuple(_MISSING if isinstance(d, Factory) else d for d in defaults)
    given = init.__defaults__ or ()
    if (code is None or code.co_varnames[:code.co_argcount] != ("self", *names)
            or code.co_kwonlyargcount or code.co_flags & 0x0C  # *args, **kwargs
            or names[len(names) - len(defaults):] != tuple(n for n in names if n in cls.__dict__)
            or len(given) != len(expected)
            or not all(g is e or (e is not _MISSING and g == e) for g, e in zip(given, expected))):
        raise TypeError(f"{cls.__qualname__}.__init__ must be (self, {', '.join(names)}) "
                        "with the fields' defaults (MISSING for a Factory)")


def _values(obj) -> tuple:
    return tuple(getattr(obj, n) for n in obj.__slots__)


def _repr(self) -> str:
    fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
    return f"{self.__class__.__qualname__}({fields})"


def _eq(self, other):
    if other.__class__ is self.__class__:
        return _values(self) == _values(other)
    return NotImplemented


def _hash(self) -> int:
    return hash(_values(self))


def _frozen_setattr(self, name, value):
    raise FrozenRecordError(f"cannot assign to field {name!r}")


def _frozen_delattr(self, name):
    raise FrozenRecordError(f"cannot delete field {name!r}")


def _getstate(self) -> tuple:
    return _values(self)


def _setstate(self, state: tuple) -> None:
    for n, v in zip(self.__slots__, state):
        object.__setattr__(self, n, v)
